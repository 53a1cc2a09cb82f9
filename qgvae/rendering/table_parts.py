"""What every table shares: the quantities shown, the floor column, paper values, captions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .latex import DASH, fmt_num, latex_escape, latex_prose
from .results import CellStats


@dataclass(frozen=True)
class Quantity:
    """A number a table shows: its header and how many decimals it is printed with."""

    header: str
    decimals: int
    short: str = ""  # header in the (wide) ablation tables, when shorter


METRICS: dict[str, Quantity] = {
    "ssim": Quantity("SSIM", 3),
    "psnr": Quantity("PSNR", 2),
    "lpips": Quantity("LPIPS", 3),
    "rfid": Quantity("rFID", 2),
}
EXTRAS: dict[str, Quantity] = {
    "bits": Quantity("Bits / image", 0, short="Bits"),
    "usage": Quantity("Code usage (\\%)", 1, short="Usage (\\%)"),
    "gain": Quantity("PSNR $-$ mean image (dB)", 2, short="Gain (dB)"),
    "indep": Quantity("Input dependence (dB)", 2, short="Indep.\\ (dB)"),
}
MEASURED: dict[str, Quantity] = {  # Table 2: the rate actually used at test (DQ-VAE varies)
    "tokens_measured": Quantity("Tokens / image (test)", 1),
    "bits_measured": Quantity("Bits / image (test)", 0),
}
FLOOR_KEY = ("floor",)
FLOOR_HEADER = "Mean image"
FLOOR_CAPTION = (
    "Mean image: the training split's mean image as the reconstruction of every test image (the "
    "floor a model must beat), scored the same way; PSNR $-$ mean image: a method's PSNR gain "
    "over it; input dependence: PSNR against each image's own original minus PSNR against "
    "another test image's (about 0 when the reconstructions ignore their input)."
)


def floor_cell(stats: CellStats | None, key: str, decimals: int) -> str:
    """The floor's value (one run, no seeds): the number alone, or -- ."""
    vals = [] if stats is None else stats.values(key)
    return f"${fmt_num(vals[0], decimals)}$" if vals else DASH


def paper_value(
    paper: Mapping[str, Any], table: str, dataset: str, method: str, metric: str
) -> str | None:
    """The paper's value as printed (a string), or None."""
    try:
        v = paper[table]["datasets"][dataset]["values"][method][metric]
    except (KeyError, TypeError):
        return None
    return None if v is None else str(v)


def sources_of(named: Sequence[tuple[str, CellStats | None]]) -> list[str]:
    out = []
    for who, stats in named:
        if stats is None:
            continue
        for seed, run in stats.planned:
            state = "present" if (seed, run) in stats.present else "MISSING"
            out.append(f"{who}: {run}/metrics.json [{state}]")
    return out


def paper_caption(paper: Mapping[str, Any], table: str, lines: Any, rest: str) -> list[str]:
    """'Paper: Table N of <citation> (text lines ...)<rest>' and the paper file's notes."""
    citation = latex_escape((paper.get("source") or {}).get("citation", "the paper"))
    number = table[len("table") :]
    notes = " ".join(latex_prose(n) for n in (paper.get(table) or {}).get("notes") or [])
    where = f" (text lines {latex_escape(lines)})" if lines else ""
    return [f"Paper: Table {number} of {citation}{where}{rest}", notes]


def no_paper_caption(paper: Mapping[str, Any]) -> str:
    used = latex_escape(paper.get("protocol", "vqwae"))
    return f"The paper reports no numbers under this protocol (it used \\texttt{{{used}}})."


def join(caption: Sequence[str]) -> str:
    return " ".join(x for x in caption if x)
