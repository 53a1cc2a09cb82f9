"""LaTeX text for the tables and the report: escaping, numbers, footnotes, captions, the
tabular (pandas ``Styler.to_latex``) and the table environment. Only glyphs of pdflatex's default
fonts and the booktabs package are used.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .results import DDOF
from .summary import Cell

DASH = "--"

# ---------------------------------------------------------------------------------------------
# Escaping
# ---------------------------------------------------------------------------------------------
_UNICODE = {
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "−": "-",
    "–": "--",
    "—": "---",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "→": r"$\rightarrow$",
    "…": "...",
    "’": "'",
    "‘": "`",
    "“": "``",
    "”": "''",
    "°": r"$^\circ$",
    "µ": r"$\mu$",
}
# Only glyphs of the default OT1/OMS fonts, so no TS1 (bitmap) font is ever needed.
_SPECIAL = {
    "\\": r"\ensuremath{\backslash}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\ensuremath{\$}",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\ensuremath{<}",
    ">": r"\ensuremath{>}",
    "|": r"\ensuremath{|}",
}


def latex_escape(text: Any) -> str:
    """Plain text -> LaTeX that pdflatex typesets literally (specials escaped, unicode mapped)."""
    out: list[str] = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append("".join(_SPECIAL.get(c, c) for c in ascii_) or "?")
    return "".join(out)


def latex_unescape(text: str) -> str:
    """Undo the escaping of ``&%$#_{}`` (for readable names in footnotes)."""
    return re.sub(r"\\([&%$#_{}])", r"\1", text)


def latex_prose(text: Any) -> str:
    """Escaped running text; ``256x256`` becomes ``256$\\times$256``; whitespace folded."""
    return re.sub(r"(\d)x(\d)", r"\1$\\times$\2", latex_escape(" ".join(str(text).split())))


def latex_path(path: Any) -> str:
    """A file path in running text: escaped, with break points after every slash."""
    return latex_escape(path).replace("/", r"/\allowbreak{}")


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------
def fmt_num(x: float | None, decimals: int, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return DASH
    s = f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"
    if float(s) == 0.0:  # no "-0.00" / "+0.00"
        s = s.lstrip("+-")
    return s


def fmt_stat(values: Sequence[float], decimals: int) -> str:
    """``$m \\pm s$`` (ddof=DDOF) for >= 2 values, ``$m$`` for one, ``--`` for none."""
    vals = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if vals.size == 0:
        return DASH
    mean = float(np.mean(vals))
    if vals.size == 1:
        return f"${fmt_num(mean, decimals)}$"
    sd = float(np.std(vals, ddof=DDOF))
    return f"${fmt_num(mean, decimals)} \\pm {fmt_num(sd, decimals)}$"


def tabular(
    header: Sequence[str | tuple[str, str]],
    rows: Sequence[Sequence[str]],
    spec: str,
    before: Mapping[int, str] | None = None,
) -> str:
    """A booktabs tabular (pandas ``Styler.to_latex``) of cells already in LaTeX.

    ``header``: the column labels, or (group, label) pairs for a two-level header (the groups
    spanned by ``\\multicolumn`` and ruled by ``\\cmidrule``); ``before``: {row number: a line
    put before that body row (``\\midrule``, ``\\addlinespace``, a block title)}.
    """
    two = isinstance(header[0], tuple)
    columns = pd.MultiIndex.from_tuples(header) if two else pd.Index(header)
    frame = pd.DataFrame([list(r) for r in rows], columns=columns)
    tex = frame.style.hide(axis="index").to_latex(
        column_format=spec, hrules=True, multicol_align="c"
    )
    lines = tex.rstrip("\n").split("\n")
    body = lines.index("\\midrule") + 1
    for i in sorted(before or {}, reverse=True):
        lines.insert(body + i, before[i])
    if two:  # a rule under every named group of the first header row
        groups = [g for g, _ in header]
        rules, i = [], 0
        while i < len(groups):
            j = i
            while j + 1 < len(groups) and groups[j + 1] == groups[i]:
                j += 1
            if groups[i].strip():
                rules.append(f"\\cmidrule(lr){{{i + 1}-{j + 1}}}")
            i = j + 1
        lines.insert(3, " ".join(rules))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Footnotes
# ---------------------------------------------------------------------------------------------
class Notes:
    """Footnote categories with letters; each category lists the items it applies to."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._items: dict[str, list[str]] = {}

    def mark(self, header: str, item: str | None = None) -> str:
        """Register ``item`` under ``header``; returns the footnote letter."""
        if header not in self._items:
            self._order.append(header)
            self._items[header] = []
        if item and item not in self._items[header]:
            self._items[header].append(item)
        return self.letter(header)

    @staticmethod
    def sup(letters: Sequence[str]) -> str:
        return f"\\textsuperscript{{{','.join(letters)}}}" if letters else ""

    def letter(self, header: str) -> str:
        i = self._order.index(header)
        return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"n{i}"

    def render(self) -> str:
        if not self._order:
            return ""
        parts = []
        for h in self._order:
            items = self._items[h]
            text = f"\\textsuperscript{{{self.letter(h)}}}\\,{h}"
            text += (": " + "; ".join(items)) if items else ""
            parts.append(text.rstrip(".") + ".")
        return "\\par\\smallskip\\footnotesize " + "\n\\par ".join(parts) + "\n"


NOTE_MISSING = "no metrics for any seed (shown as --)"
NOTE_PARTIAL = "mean $\\pm$ s.d.\\ over the available seeds only"
NOTE_SINGLE = "one seed available: mean only, no s.d."


def runs_text(entries: Iterable[tuple[int | None, str, str]]) -> str:
    """Compact 'folder/seed{0,2} (why)' text for missing runs, grouped by folder and reason."""
    groups: dict[tuple[str, str], list[str]] = {}
    for seed, run, why in entries:
        parent, _, leaf = run.rstrip("/").rpartition("/")
        groups.setdefault((parent, why), []).append(leaf if seed is None else str(seed))
    out = []
    for (parent, why), leaves in groups.items():
        if all(s.isdigit() for s in leaves):
            leaf = "seed" + (leaves[0] if len(leaves) == 1 else "\\{" + ",".join(leaves) + "\\}")
        else:
            leaf = ",".join(leaves)
        out.append(f"{latex_path(parent + '/')}{leaf} ({latex_escape(why)})")
    return "; ".join(out)


def stat_cell(stats: Cell | None, key: str, decimals: int, notes: Notes, who: str) -> str:
    """Formatted mean +- sd for one metric of one cell, with footnote marks."""
    if stats is None:
        return DASH
    vals = stats.values(key)
    n_planned = len(stats.planned)
    if not vals:
        if stats.missing and not stats.present:
            item = f"{latex_escape(who)}: " + runs_text(stats.missing)
            return DASH + notes.sup([notes.mark(NOTE_MISSING, item)])
        item = f"{latex_escape(who)} ({latex_escape(key)})"
        return DASH + notes.sup([notes.mark("value absent from metrics.json", item)])
    if (
        key == "bits_per_image" and len(set(vals)) == 1
    ):  # a property of the configuration: no spread
        text = f"${fmt_num(vals[0], decimals)}$"
    else:
        text = fmt_stat(vals, decimals)
    letters = []
    if len(vals) < n_planned:
        miss = stats.missing or [
            (s, r, f"no {key}") for s, r in stats.planned if (s, r) not in stats.present
        ]
        item = f"{latex_escape(who)}: {len(vals)} of {n_planned} (missing {runs_text(miss)})"
        letters.append(notes.mark(NOTE_PARTIAL, item))
    if len(vals) == 1 and key != "bits_per_image":
        letters.append(notes.mark(NOTE_SINGLE))
    return text + notes.sup(letters)


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------
def n_phrase(cells: Sequence[tuple[str, Cell | None]]) -> str:
    """'N = 10000 test images (rFID: N = 5000)', or per-cell values when they differ."""

    def collect(key: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for who, stats in cells:
            if stats is None:
                continue
            for n in sorted(stats.ns(key)):
                out.setdefault(n, []).append(who)
        return out

    def phrase(by_n: dict[int, list[str]]) -> str:
        if len(by_n) == 1:
            return f"$N = {next(iter(by_n))}$"
        return "; ".join(
            f"$N = {n}$ ({latex_escape(', '.join(dict.fromkeys(w)))})"
            for n, w in sorted(by_n.items())
        )

    n_img, n_fid = collect("n"), collect("fid_n")
    if not n_img and not n_fid:
        return "N unknown (no metrics available)"
    text = (phrase(n_img) + " test images per run") if n_img else "N unknown"
    if n_fid and n_fid != n_img:
        text += f" (rFID over {phrase(n_fid)} images)"
    return text


def seeds_phrase(plan: Mapping[str, Any], cells: Sequence[tuple[str, Cell | None]]) -> str:
    seeds: dict[int, None] = {}
    for _, stats in cells:
        if stats is not None:
            for seed, _run in stats.planned:
                if seed is not None:
                    seeds[seed] = None
    seed_list = sorted(seeds) or [int(s) for s in plan.get("seeds", [])]
    k = len(seed_list)
    return (
        f"mean $\\pm$ s.d.\\ (ddof = {DDOF}) over {k} seed{'s' if k != 1 else ''} "
        f"({', '.join(str(s) for s in seed_list)}) of each run's mean over its test images"
    )


def protocol_phrase(protocol: str, paper: Mapping[str, Any]) -> str:
    desc = (paper.get("protocols_short") or {}).get(protocol) or (paper.get("protocols") or {}).get(
        protocol
    )
    head = f"Protocol \\texttt{{{latex_escape(protocol)}}}"
    return head + (f" ({latex_prose(desc)})" if desc else "")


# ---------------------------------------------------------------------------------------------
# The table environment
# ---------------------------------------------------------------------------------------------
def table_env(
    name: str,
    caption: str,
    body: str,
    notes: Notes,
    sources: Sequence[str],
    protocol: str,
    size: str = "\\small",
) -> str:
    """One ``table`` float: source comments, caption, label, the centred tabular, footnotes."""
    head = [
        f"% qgvae-bench table '{name}' (protocol {protocol}), written by qgvae.rendering.tables;",
        "% do not edit: re-render with `qgvae tables`. Needs \\usepackage{booktabs}.",
        "% Sources:",
    ]
    head += [f"%   {s}" for s in sources]
    return (
        "\n".join(head)
        + "\n"
        + "\n".join(
            [
                "\\begin{table}[!htbp]",
                "\\centering",
                size,
                "\\setlength{\\tabcolsep}{4pt}",
                f"\\caption{{{caption}}}",
                f"\\label{{tab:{name}}}",
                # centred even when wider than the text block (no overfull box, no extra package)
                "\\makebox[\\linewidth][c]{%",
                body + "}",
                notes.render().rstrip("\n"),
                "\\end{table}",
                "",
            ]
        ).replace("\n\n\\end{table}", "\n\\end{table}")
    )
