"""Figures of numbers: rate-distortion and the ablations (training and usage: figure_training)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .plots import FULL_W, Context, Figure, NoData, mpl_text, pyplot
from .results import (
    DDOF,
    CellStats,
    load_cell,
    load_floor,
    scale_text,
)


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and s.d. (ddof=DDOF; 0 when there are too few values) for error bars."""
    sd = float(np.std(values, ddof=DDOF)) if len(values) > DDOF else 0.0
    return float(np.mean(values)), sd


# ---------------------------------------------------------------------------------------------
# rate-distortion
# ---------------------------------------------------------------------------------------------
RD_TABLES = ("table1", "table2", "ablation_tokens")
RD_METRICS = (("psnr", "PSNR (dB)"), ("lpips", "LPIPS"), ("rfid", "rFID"))


def _rd_cells(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    """(table, cell) of RD_TABLES, each set of runs once."""
    out, seen = [], set()
    for name in RD_TABLES:
        for c in ctx.cells(name):
            key = tuple(c.get("runs", []))
            if key not in seen:
                seen.add(key)
                out.append((name, c))
    return out


def _interval(ctx: Context, table: str, cell: Mapping[str, Any], metric: str):
    """(low, high) of the cell's 95 % bootstrap interval (method_intervals.csv), or None."""
    want = (cell["dataset"], table, str(cell["label"]), cell["method"], ctx.protocol, metric)
    for row in ctx.intervals:
        key = tuple(row[k] for k in ("dataset", "table", "label", "method", "protocol", "metric"))
        if key == want and row["ci_low"] and row["ci_high"]:
            return float(row["ci_low"]), float(row["ci_high"])
    return None


def _bits_axis(ax, bits: Sequence[float]) -> None:
    """Log-2 x axis with plain numbers when the rates span more than a factor 4."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    if bits and min(bits) > 0 and max(bits) / min(bits) > 4:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    if bits:
        lo, hi = min(bits), max(bits)
        pad = 0.08 * (hi - lo) if hi > lo else 0.1 * hi or 1.0
        if ax.get_xscale() == "log":
            ax.set_xlim(lo / 1.25, hi * 1.25)
        else:
            ax.set_xlim(lo - pad, hi + pad)


def fig_rate_distortion(ctx: Context) -> Figure:
    cells: dict[str, list[tuple[str, CellStats]]] = {}  # dataset -> (method, stats)
    where: dict[int, tuple[str, dict[str, Any]]] = {}  # id(stats) -> (table, cell)
    for table, c in _rd_cells(ctx):
        stats = load_cell(ctx.plan, c, ctx.protocol, ctx.root)
        if stats.values("bits") and any(stats.values(k) for k, _ in RD_METRICS):
            cells.setdefault(c["dataset"], []).append((c["method"], stats))
            where[id(stats)] = (table, c)
    use_ci = bool(ctx.intervals)
    if not cells:
        raise NoData(
            "no metrics.json with bits_per_image in the Table-1, Table-2 or ablation_tokens runs"
        )
    plt = pyplot()
    fig, axes = plt.subplots(
        len(cells), len(RD_METRICS), figsize=(FULL_W, 1.9 * len(cells) + 0.4), squeeze=False
    )
    sources, seed_counts = [], set()
    for r, (ds, items) in enumerate(cells.items()):
        for col, (metric, metric_label) in enumerate(RD_METRICS):
            ax = axes[r, col]
            by_method: dict[str, list[tuple[float, float, float, float]]] = {}
            for method, stats in items:  # (bits, mean, error below, error above)
                vals = stats.values(metric)
                if not vals:
                    continue
                mean, sd = _mean_sd(vals)
                ci = _interval(ctx, *where[id(stats)], metric) if use_ci else None
                low, high = (mean - ci[0], ci[1] - mean) if ci else (sd, sd)
                by_method.setdefault(method, []).append((stats.mean("bits"), mean, low, high))
                seed_counts.add(len(vals))
                sources += [f"{run}/metrics.json" for _, run in stats.present]
            for method, points in by_method.items():
                points.sort()
                x, y, lo, hi = map(np.asarray, zip(*points))
                ax.errorbar(
                    x,
                    y,
                    yerr=np.stack([np.clip(lo, 0, None), np.clip(hi, 0, None)]),
                    color=ctx.colour(method),
                    marker="o",
                    ms=3,
                    lw=0.9,
                    capsize=2,
                    label=mpl_text(ctx.names.method(method)),
                )
            floor = load_floor(ctx.plan, [st for _, st in items], ctx.protocol, ctx.root)
            floor_vals = [] if floor is None else floor.values(metric)
            if floor_vals:
                ax.axhline(floor_vals[0], color="0.45", ls="--", lw=0.8, label="mean image (floor)")
            _bits_axis(ax, [b for _, stats in items for b in stats.values("bits")])
            ax.set_xlabel("bits per image")
            if col or len(cells) == 1:
                ax.set_ylabel(metric_label)
            else:
                ax.set_ylabel(metric_label + mpl_text(f"\n{ctx.names.dataset(ds)}"))
        axes[r, -1].legend(loc="best")
    fig.tight_layout()
    nseeds = ", ".join(str(s) for s in sorted(seed_counts)) or "0"
    caption = (
        f"Rate-distortion (protocol {ctx.protocol}): PSNR, LPIPS and rFID against the bits per "
        "image "
        "of the code (metrics.json), for every method of Tables 1 and 2 and the tokens "
        f"ablation; points are means over seeds ({nseeds} seeds per point), error bars "
        + (
            "95% bootstrap intervals (test images resampled, seeds as an outer level; "
            "method_intervals.csv)"
            if use_ci
            else f"one s.d. (ddof={DDOF}) over seeds"
        )
        + "; lines join one method's settings; dashed: the training mean image "
        "(the floor). "
        f"Runs {scale_text(ctx.root, sorted({s.split('/metrics.json')[0] for s in sources}))}."
    )
    return Figure(fig, caption, sorted(set(sources)))


# ---------------------------------------------------------------------------------------------
# ablations
# ---------------------------------------------------------------------------------------------
ABLATION_PANELS = (
    ("ssim", "SSIM"),
    ("psnr", "PSNR (dB)"),
    ("lpips", "LPIPS"),
    ("rfid", "rFID"),
    ("bits", "bits / image"),
    ("usage", "code usage (%)"),
)


def fig_ablation(ctx: Context, table: str) -> Figure:
    cells = ctx.cells(table)
    if not cells:
        raise NoData(f"plan has no cells for {table}")
    stats = [(c, load_cell(ctx.plan, c, ctx.protocol, ctx.root)) for c in cells]
    if not any(st.present for _, st in stats):
        raise NoData(f"no metrics.json in any run of {table}")
    plt = pyplot()
    labels = list(dict.fromkeys(str(c["label"]) for c in cells))
    methods = list(dict.fromkeys(c["method"] for c in cells))
    fig, axes = plt.subplots(2, 3, figsize=(FULL_W, 3.6))
    width = 0.8 / max(len(methods), 1)
    seed_counts = set()
    long_labels = max(map(len, labels)) > 6
    for ax, (key, title) in zip(axes.flat, ABLATION_PANELS):
        for mi, method in enumerate(methods):
            xs, ys, es = [], [], []
            colour = ctx.colour(method)
            for c, st in stats:
                if c["method"] != method:
                    continue
                vals = st.values(key)
                x = labels.index(str(c["label"])) + (mi - (len(methods) - 1) / 2) * width
                if vals:
                    seed_counts.add(len(vals))
                    mean, sd = _mean_sd(vals)
                    xs.append(x)
                    ys.append(mean)
                    es.append(sd)
                    ax.scatter([x] * len(vals), vals, s=6, color=colour, alpha=0.45, lw=0)
            if xs:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=es,
                    fmt="o",
                    ms=3.5,
                    capsize=2.5,
                    color=colour,
                    label=mpl_text(ctx.names.method(method)),
                    lw=1,
                )
        floor = load_floor(ctx.plan, [st for _, st in stats], ctx.protocol, ctx.root)
        floor_vals = [] if floor is None or key in ("bits", "usage") else floor.values(key)
        if floor_vals:
            ax.axhline(floor_vals[0], color="0.45", ls="--", lw=0.8, label="mean image (floor)")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(
            [mpl_text(x) for x in labels],
            rotation=30 if long_labels else 0,
            ha="right" if long_labels else "center",
        )
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_title(title)
    sources = [f"{run}/metrics.json" for _, st in stats for _, run in st.present]
    axis = table[len("ablation_") :]
    ns = ", ".join(str(n) for n in sorted(seed_counts))
    handles, legend_labels = [], []
    for ax in axes.flat:  # the first panel with a legend entry
        handles, legend_labels = ax.get_legend_handles_labels()
        if handles:
            break
    if handles:
        fig.legend(
            handles,
            [
                label
                if label.startswith("mean image")
                else f"{label} (mean $\\pm$ s.d., {ns} seeds)"
                for label in legend_labels
            ],
            loc="lower center",
            ncol=min(len(legend_labels), 4),
            bbox_to_anchor=(0.5, -0.01),
        )
    fig.supxlabel(mpl_text(axis), y=0.06, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    on = ", ".join(dict.fromkeys(ctx.names.dataset(c["dataset"]) for c in cells))
    missing = [f"{c['label']}/{ctx.names.method(c['method'])}" for c, st in stats if not st.present]
    runs = [r for c in cells for r in c.get("runs", [])]
    caption = (
        f"Ablation of {axis} on {on} (protocol {ctx.protocol}): markers with error bars are "
        f"means ± one s.d. (ddof={DDOF}) over {ns} seeds, small dots the individual "
        f"seeds; dashed: the training mean image (the floor). Runs {scale_text(ctx.root, runs)}."
    )
    if missing:
        caption += " No data for: " + ", ".join(missing) + "."
    return Figure(fig, caption, sorted(set(sources)))
