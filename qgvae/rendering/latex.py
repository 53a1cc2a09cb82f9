"""LaTeX text for the tables and the report: escaping, numbers, the tabular (pandas
``Styler.to_latex``), footnotes, the table environment, and what every table shares: the
quantities shown, a cell's mean +- s.d. with its footnote marks, the floor's cell, the caption
phrases (protocol, seeds, N, training scale, the paper's table) and the source comments. Only
glyphs of pdflatex's default fonts and the booktabs package are used.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .results import DDOF
from .summary import Cell, scale_phrase

DASH = "--"
# fmt: off
_UNICODE = {
    "±": r"$\pm$", "Δ": r"$\Delta$", "×": r"$\times$", "−": "-", "–": "--", "—": "---",
    "≤": r"$\leq$", "≥": r"$\geq$", "→": r"$\rightarrow$", "…": "...", "’": "'", "‘": "`",
    "“": "``", "”": "''", "°": r"$^\circ$", "µ": r"$\mu$",
}
# Only glyphs of the default OT1/OMS fonts, so no TS1 (bitmap) font is ever needed.
_SPECIAL = {
    "\\": r"\ensuremath{\backslash}", "&": r"\&", "%": r"\%", "$": r"\ensuremath{\$}",
    "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}", "<": r"\ensuremath{<}", ">": r"\ensuremath{>}",
    "|": r"\ensuremath{|}",
}
# fmt: on


def latex_escape(text: Any) -> str:
    """Plain text -> LaTeX that pdflatex typesets literally (specials escaped, unicode mapped)."""

    def one(ch: str) -> str:
        if ch in _SPECIAL or ch in _UNICODE or ord(ch) < 128:
            return _SPECIAL.get(ch) or _UNICODE.get(ch) or ch
        ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        return "".join(_SPECIAL.get(c, c) for c in ascii_) or "?"

    return "".join(map(one, str(text)))


def latex_unescape(text: str) -> str:
    """Undo the escaping of ``&%$#_{}`` (for readable names in footnotes)."""
    return re.sub(r"\\([&%$#_{}])", r"\1", text)


def latex_prose(text: Any) -> str:
    """Escaped running text; ``256x256`` becomes ``256$\\times$256``; whitespace folded."""
    return re.sub(r"(\d)x(\d)", r"\1$\\times$\2", latex_escape(" ".join(str(text).split())))


def latex_path(path: Any) -> str:
    """A file path in running text: escaped, with break points after every slash."""
    return latex_escape(path).replace("/", r"/\allowbreak{}")


def fmt_num(x: float | None, decimals: int, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return DASH
    s = f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"
    return s.lstrip("+-") if float(s) == 0.0 else s  # no "-0.00" / "+0.00"


def fmt_stat(values: Sequence[float], decimals: int) -> str:
    """``$m \\pm s$`` (ddof=DDOF) for >= 2 values, ``$m$`` for one, ``--`` for none."""
    vals = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if vals.size == 0:
        return DASH
    mean = fmt_num(float(np.mean(vals)), decimals)
    if vals.size == 1:
        return f"${mean}$"
    return f"${mean} \\pm {fmt_num(float(np.std(vals, ddof=DDOF)), decimals)}$"


def tabular(
    header: Sequence[Any], rows: Sequence[Sequence[str]], spec: str, before: Mapping = None
) -> str:
    """A booktabs tabular (pandas ``Styler.to_latex``) of cells already in LaTeX.

    ``header``: the column labels, or (group, label) pairs for a two-level header (the groups
    spanned by ``\\multicolumn`` and ruled by ``\\cmidrule``); ``before``: {row number: a line
    put before that body row (``\\midrule``, ``\\addlinespace``, a block title)}.
    """
    two = isinstance(header[0], tuple)
    columns = pd.MultiIndex.from_tuples(header) if two else pd.Index(header)
    frame = pd.DataFrame([list(r) for r in rows], columns=columns)
    style = frame.style.hide(axis="index")
    lines = style.to_latex(column_format=spec, hrules=True, multicol_align="c").split("\n")[:-1]
    body = lines.index("\\midrule") + 1
    for i in sorted(before or {}, reverse=True):
        lines.insert(body + i, before[i])
    if two:  # a rule under every named group of the first header row
        groups, rules = [g for g, _ in header], []
        for i, g in enumerate(groups):
            if g.strip() and (i == 0 or groups[i - 1] != g):
                last = i + next((k for k, h in enumerate(groups[i:]) if h != g), len(groups) - i)
                rules.append(f"\\cmidrule(lr){{{i + 1}-{last}}}")
        lines.insert(3, " ".join(rules))
    return "\n".join(lines)


class Notes:
    """Footnote categories with letters; each category lists the items it applies to."""

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = {}  # header -> items, in order of first use

    def mark(self, header: str, item: str | None = None) -> str:
        """Register ``item`` under ``header``; returns the footnote letter."""
        items = self.items.setdefault(header, [])
        if item and item not in items:
            items.append(item)
        i = list(self.items).index(header)
        return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"n{i}"

    @staticmethod
    def sup(letters: Sequence[str]) -> str:
        return f"\\textsuperscript{{{','.join(letters)}}}" if letters else ""

    def render(self) -> str:
        parts = []
        for header, items in self.items.items():
            text = f"\\textsuperscript{{{self.mark(header)}}}\\,{header}"
            parts.append((text + (": " + "; ".join(items) if items else "")).rstrip(".") + ".")
        return "\\par\\smallskip\\footnotesize " + "\n\\par ".join(parts) if parts else ""


def table_env(name, caption, body, notes: Notes, sources, protocol, size="\\small") -> str:
    """One ``table`` float: source comments, caption, label, the centred tabular (centred even
    when wider than the text block: no overfull box, no extra package), footnotes."""
    lines = [
        f"% qgvae-bench table '{name}' (protocol {protocol}), written by qgvae.rendering.tables;",
        "% do not edit: re-render with `qgvae tables`. Needs \\usepackage{booktabs}.",
        "% Sources:",
        *(f"%   {s}" for s in sources),
        "\\begin{table}[!htbp]",
        "\\centering",
        size,
        "\\setlength{\\tabcolsep}{4pt}",
        f"\\caption{{{caption}}}",
        f"\\label{{tab:{name}}}",
        "\\makebox[\\linewidth][c]{%",
        body + "}",
        notes.render(),
        "\\end{table}",
        "",
    ]
    return "\n".join(x for x in lines[:-1] if x) + "\n"


class Quantity(NamedTuple):
    """A number a table shows: its header (short: in the wide ablation tables), its decimals."""

    header: str
    decimals: int
    short: str = ""


METRICS = {"ssim": Quantity("SSIM", 3), "psnr": Quantity("PSNR", 2)}
METRICS |= {"lpips": Quantity("LPIPS", 3), "rfid": Quantity("rFID", 2)}
EXTRAS = {
    "bits_per_image": Quantity("Bits / image", 0, "Bits"),
    "usage": Quantity("Code usage (\\%)", 1, "Usage (\\%)"),
    "psnr_gain_over_floor_db": Quantity("PSNR $-$ mean image (dB)", 2, "Gain (dB)"),
    "input_dependence_db": Quantity("Input dependence (dB)", 2, "Indep.\\ (dB)"),
}
MEASURED = {  # Table 2: the rate actually used on the test images (DQ-VAE's varies)
    "tokens_per_image_test": Quantity("Tokens / image (test)", 1),
    "bits_per_image_test": Quantity("Bits / image (test)", 0),
}
FLOOR_KEY, FLOOR_HEADER = ("floor",), "Mean image"
FLOOR_CAPTION = (
    "Mean image: the training split's mean image as the reconstruction of every test image (the "
    "floor a model must beat), scored the same way; PSNR $-$ mean image: a method's PSNR gain "
    "over it; input dependence: PSNR against each image's own original minus PSNR against "
    "another test image's (about 0 when the reconstructions ignore their input)."
)
SIG_MARK = "$^{\\dagger}$"
NOTE_MISSING = "no metrics for any seed (shown as --)"
NOTE_PARTIAL = "mean $\\pm$ s.d.\\ over the available seeds only"
NOTE_SINGLE = "one seed available: mean only, no s.d."


def paper_value(paper: Mapping[str, Any], table: str, ds: str, method: str, metric: str):
    """The paper's value as printed (a string), or None."""
    try:
        v = paper[table]["datasets"][ds]["values"][method][metric]
    except (KeyError, TypeError):
        return None
    return None if v is None else str(v)


def runs_text(entries: Sequence[tuple[int | None, str, str]]) -> str:
    """Compact 'folder/seed{0,2} (why)' text for missing runs, grouped by folder and reason."""
    groups: dict[tuple[str, str], list[str]] = {}
    for seed, run, why in entries:
        parent, _, leaf = run.rstrip("/").rpartition("/")
        groups.setdefault((parent, why), []).append(leaf if seed is None else str(seed))
    out = []
    for (parent, why), leaves in groups.items():
        leaf = ",".join(leaves)
        if all(s.isdigit() for s in leaves):
            leaf = "seed" + (leaf if len(leaves) == 1 else "\\{" + leaf + "\\}")
        out.append(f"{latex_path(parent + '/')}{leaf} ({latex_escape(why)})")
    return "; ".join(out)


def stat_cell(stats: Cell | None, key: str, decimals: int, notes: Notes, who: str) -> str:
    """Formatted mean +- sd for one metric of one cell, with footnote marks."""
    if stats is None:
        return DASH
    vals, planned, who = stats.values(key), len(stats.planned), latex_escape(who)
    if not vals and stats.missing and not stats.present:
        return DASH + notes.sup([notes.mark(NOTE_MISSING, f"{who}: {runs_text(stats.missing)}")])
    if not vals:
        item = f"{who} ({latex_escape(key)})"
        return DASH + notes.sup(
            [notes.mark("value absent from metrics.json (summary column)", item)]
        )
    rate = key == "bits_per_image"  # a property of the configuration: no spread
    text = fmt_stat(vals[:1] if rate and len(set(vals)) == 1 else vals, decimals)
    letters = []
    if len(vals) < planned:
        absent = [(s, r, f"no {key}") for s, r in stats.planned if (s, r) not in stats.present]
        miss = stats.missing or absent
        item = f"{who}: {len(vals)} of {planned} (missing {runs_text(miss)})"
        letters.append(notes.mark(NOTE_PARTIAL, item))
    if len(vals) == 1 and not rate:
        letters.append(notes.mark(NOTE_SINGLE))
    return text + notes.sup(letters)


def floor_cell(stats: Cell | None, key: str, decimals: int) -> str:
    """The floor's value (one run, no seeds): the number alone, or -- ."""
    vals = [] if stats is None else stats.values(key)
    return f"${fmt_num(vals[0], decimals)}$" if vals else DASH


def caption_parts(plan, paper, protocol: str, named: Sequence[tuple[str, Cell | None]]):
    """The caption sentences 'Protocol ... (description).', 'Ours: mean +- s.d. (ddof) over k
    seeds (...) ...; N = ...' and 'Scale: ...'."""
    cells = [s for _, s in named if s is not None]
    seeds = sorted({s for c in cells for s, _ in c.planned if s is not None})
    seeds = seeds or [int(s) for s in plan.get("seeds", [])]

    def ns(key: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for who, c in named:
            for n in sorted(c.ns(key)) if c is not None else []:
                out.setdefault(n, []).append(who)
        return out

    def phrase(by_n: dict[int, list[str]]) -> str:
        if len(by_n) == 1:
            return f"$N = {next(iter(by_n))}$"
        who = lambda w: latex_escape(", ".join(dict.fromkeys(w)))
        return "; ".join(f"$N = {n}$ ({who(w)})" for n, w in sorted(by_n.items()))

    n_img, n_fid = ns("n"), ns("fid_n")
    n_text = (phrase(n_img) + " test images per run") if n_img else "N unknown"
    n_text = n_text if n_img or n_fid else "N unknown (no metrics available)"
    n_text += f" (rFID over {phrase(n_fid)} images)" if n_fid and n_fid != n_img else ""
    desc = (paper.get("protocols_short") or {}).get(protocol)
    desc = desc or (paper.get("protocols") or {}).get(protocol)
    head = f"Protocol \\texttt{{{latex_escape(protocol)}}}"
    head += f" ({latex_prose(desc)})" if desc else ""
    k = len(seeds)
    ours = (
        f"mean $\\pm$ s.d.\\ (ddof = {DDOF}) over {k} seed{'s' if k != 1 else ''} "
        f"({', '.join(map(str, seeds))}) of each run's mean over its test images"
    )
    scale = scale_phrase(pd.concat([c.frame for c in cells]) if cells else pd.DataFrame())
    return f"{head}.", f"Ours: {ours}; {n_text}.", latex_escape(scale)


def paper_caption(paper: Mapping[str, Any], table: str, lines: Any, rest: str) -> list[str]:
    """'Paper: Table N of <citation> (text lines ...)<rest>' and the paper file's notes, or
    that the paper has no numbers under this protocol (``lines`` None)."""
    citation = latex_escape((paper.get("source") or {}).get("citation", "the paper"))
    notes = " ".join(latex_prose(n) for n in (paper.get(table) or {}).get("notes") or [])
    where = f" (text lines {latex_escape(lines)})" if lines else ""
    return [f"Paper: Table {table[len('table') :]} of {citation}{where}{rest}", notes]


def sources_of(named: Sequence[tuple[str, Cell | None]]) -> list[str]:
    return [
        f"{who}: {run}/metrics.json [{'present' if (seed, run) in c.present else 'MISSING'}]"
        for who, c in named
        if c is not None
        for seed, run in c.planned
    ]
