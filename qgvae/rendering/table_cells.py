"""What every table shares: the quantities shown and their decimals, a cell's mean +- s.d. with
its footnote marks, the floor's cell, the caption phrases (protocol, seeds, N, training scale,
the paper's table) and the source comments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd

from .latex import DASH, Notes, fmt_num, fmt_stat, latex_escape, latex_path, latex_prose
from .results import DDOF
from .summary import Cell, scale_phrase


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
        return DASH + notes.sup([notes.mark("value absent from metrics.json", item)])
    rate = key == "bits_per_image"  # a property of the configuration: no spread
    text = (
        f"${fmt_num(vals[0], decimals)}$"
        if rate and len(set(vals)) == 1
        else fmt_stat(vals, decimals)
    )
    letters = []
    if len(vals) < planned:
        miss = stats.missing or [
            (s, r, f"no {key}") for s, r in stats.planned if (s, r) not in stats.present
        ]
        item = f"{who}: {len(vals)} of {planned} (missing {runs_text(miss)})"
        letters.append(notes.mark(NOTE_PARTIAL, item))
    if len(vals) == 1 and not rate:
        letters.append(notes.mark(NOTE_SINGLE))
    return text + notes.sup(letters)


def floor_cell(stats: Cell | None, key: str, decimals: int) -> str:
    """The floor's value (one run, no seeds): the number alone, or -- ."""
    vals = [] if stats is None else stats.values(key)
    return f"${fmt_num(vals[0], decimals)}$" if vals else DASH


def caption_parts(plan, paper, protocol: str, named: Sequence[tuple[str, Cell | None]]) -> str:
    """'Protocol ... Ours: mean +- s.d. (ddof) over k seeds (...); N = ... Scale: ...'."""
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
