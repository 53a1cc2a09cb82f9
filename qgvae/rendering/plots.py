"""Matplotlib plumbing shared by the figures: style (seaborn's "paper" context), colours, image
strips, saving, the "no data" panel, and the :class:`Context` every figure function takes."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import atomic_path, write_json
from .results import Names
from .summary import Summary

FULL_W = 6.75  # inches: full text width of a two-column paper
HALF_W = 3.3
DPI = 200
FLOOR_LINE = dict(color="0.45", ls="--", lw=0.8)  # the mean image (floor) in every figure


class NoData(Exception):
    """Raised by a figure function when its inputs are absent; the message is the reason."""


@dataclass
class Figure:
    fig: Any
    caption: str
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """What a figure function reads besides its own arguments."""

    plan: Mapping[str, Any]
    root: Path  # the folder the plan's run paths are relative to
    names: Names
    colours: Mapping[str, Any]  # method -> matplotlib colour
    summary: Summary  # the numbers (summary.csv)
    protocol: str = "vqwae"
    paper: Mapping[str, Any] = field(default_factory=dict)  # config/paper_values.yaml
    intervals: pd.DataFrame = field(default_factory=pd.DataFrame)  # method_intervals.csv

    @classmethod
    def build(cls, plan, root, summary, protocol="vqwae", paper=None, intervals=None) -> Context:
        import seaborn as sns

        names = Names.from_plan(plan)
        # colour-blind safe by plan order; past its 10 colours, distinct hues (husl)
        n = len(names.methods)
        palette = sns.color_palette("colorblind", 10) if n <= 10 else sns.color_palette("husl", n)
        colours = {m: palette[i % len(palette)] for i, m in enumerate(names.methods)}
        frame = pd.DataFrame() if intervals is None else intervals
        return cls(plan, Path(root), names, colours, summary, protocol, dict(paper or {}), frame)

    def cells(self, table: str) -> list[dict[str, Any]]:
        return self.tables().get(table) or []

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return self.plan.get("tables") or {}

    def table1_datasets(self) -> list[str]:
        return list(dict.fromkeys(c["dataset"] for c in self.cells("table1")))

    def colour(self, method: str) -> Any:
        return self.colours.get(method, "0.3")

    def cell_title(self, table: str, cell: Mapping[str, Any]) -> str:
        """How a figure names one table cell: the method, plus the table's label if needed."""
        method = self.names.method(cell["method"])
        if table.startswith("ablation_"):
            return f"{method} ({table[len('ablation_') :]}: {cell['label']})"
        return f"{method} ({cell['label']})" if table == "table2" else method


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def style() -> dict[str, Any]:
    """rcParams: seaborn's "paper" context on a white grid, small fonts, embeddable fonts."""
    import seaborn as sns

    rc = dict(sns.plotting_context("paper", font_scale=1.0)) | sns.axes_style("whitegrid")
    sizes = {"axes.titlesize": 8.5, "axes.labelsize": 8, "xtick.labelsize": 7}
    sizes |= {"ytick.labelsize": 7, "legend.fontsize": 7, "font.size": 8}
    fonts = {"pdf.fonttype": 42, "ps.fonttype": 42, "legend.frameon": False}
    return rc | sizes | fonts | {"savefig.bbox": "tight", "savefig.pad_inches": 0.02}


def mpl_text(text: Any) -> str:
    """Plan-derived text for matplotlib: a literal '$' must not start mathtext."""
    return str(text).replace("$", r"\$")


def to_hwc(img: np.ndarray) -> np.ndarray:
    """uint8 [C,H,W] -> [H,W] (grey) or [H,W,3]."""
    img = np.asarray(img)
    if img.ndim == 2:
        return img
    return img[0] if img.shape[0] == 1 else np.transpose(img[:3], (1, 2, 0))


def strip(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """[n,C,H,W] uint8 -> one image, side by side with ``pad`` white pixels between."""
    tiles = [to_hwc(im).astype(np.uint8) for im in images]
    sep = np.full((tiles[0].shape[0], pad) + tiles[0].shape[2:], 255, dtype=np.uint8)
    parts = [part for t in tiles for part in (sep, t)][1:]
    return np.concatenate(parts, axis=1)


def show_image(ax, img: np.ndarray) -> None:
    """An image without ticks, spines or grid (grey when 2-D)."""
    grey = dict(cmap="gray", vmin=0, vmax=255) if img.ndim == 2 else {}
    ax.imshow(img, interpolation="nearest", **grey)
    ax.set(xticks=[], yticks=[])
    ax.spines[:].set_visible(False)
    ax.grid(False)


def row_label(ax, text: str) -> None:
    ax.set_ylabel(mpl_text(text), rotation=0, ha="right", va="center", fontsize=7, labelpad=4)


def panel_note(ax, text: str, fontsize: float = 7) -> None:
    """Centred text over an axes (e.g. "no data: ..." for one panel)."""
    kw = dict(ha="center", va="center", fontsize=fontsize, transform=ax.transAxes)
    ax.text(0.5, 0.5, mpl_text(text), **kw)


def no_data_figure(title: str, reason: str) -> Any:
    fig, ax = pyplot().subplots(figsize=(HALF_W, 1.2))
    ax.axis("off")
    kw = dict(ha="center", transform=ax.transAxes)
    ax.text(0.5, 0.62, mpl_text(title), va="center", fontsize=9, weight="bold", **kw)
    short = reason if len(reason) <= 400 else reason[:400] + " ..."
    text = mpl_text("no data: " + textwrap.fill(short, 90))
    ax.text(0.5, 0.3, text, va="top", fontsize=6.5, **kw)
    return fig


def save_figure(
    fig: Any, outdir: str | Path, stem: str, caption: str, sources: Sequence[str], no_data=None
) -> list[Path]:
    """``<stem>.pdf``, ``<stem>.png`` and ``<stem>.json`` (caption, sources, no-data reason)."""
    outdir, paths = Path(outdir), []
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        for ext, kw in (("pdf", {"metadata": {"CreationDate": None}}), ("png", {"dpi": DPI})):
            with atomic_path(outdir / f"{stem}.{ext}") as tmp:
                fig.savefig(tmp, format=ext, **kw)
            paths.append(outdir / f"{stem}.{ext}")
    finally:
        pyplot().close(fig)
    meta = {"stem": stem, "caption": caption, "sources": list(sources), "no_data": no_data}
    write_json(outdir / f"{stem}.json", meta)
    return paths + [outdir / f"{stem}.json"]
