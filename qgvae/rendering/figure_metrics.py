"""Figures of numbers, seaborn on long-form frames: rate-distortion and the ablations (from the
summary table), code usage per token position (metrics.json ``usage.per_position``) and the
training curves (train_log.jsonl, the summary's validation floor)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .plots import FLOOR_LINE, FULL_W, Context, Figure, NoData, mpl_text, panel_note, pyplot
from .results import DDOF, read_log, seed_of, usage_per_position
from .summary import scale_phrase

RD_TABLES = ("table1", "table2", "ablation_tokens", "modern", "modern_rates")
RD_METRICS = (("psnr", "PSNR (dB)"), ("lpips", "LPIPS"), ("rfid", "rFID"))
RD_LINE = dict(marker="o", ms=3, lw=0.9, capsize=2)
ABLATION_PANELS = (("ssim", "SSIM"), ("psnr", "PSNR (dB)"), ("lpips", "LPIPS"), ("rfid", "rFID"))
ABLATION_PANELS += (("bits_per_image", "bits / image"), ("usage", "code usage (%)"))


def sd(values: pd.Series) -> float:
    """One s.d. over seeds (ddof=DDOF; 0 when there are too few values)."""
    return float(values.std(ddof=DDOF)) if len(values) > DDOF else 0.0


def mean_sd(values: pd.Series) -> tuple[float, float]:
    """Mean -+ one s.d. (ddof=DDOF): the ablation figures' error bars (seaborn ``errorbar``)."""
    return values.mean() - sd(values), values.mean() + sd(values)


def cell_values(ctx: Context, tables: Sequence[str], keys: Sequence[str]) -> pd.DataFrame:
    """Long form: one row per (table cell, present run, key) of the ``tables``' cells (each set
    of runs once), with the cell's table, label, dataset, method and number (``cell``)."""
    frames, seen = [], set()
    for table in tables:
        for c in ctx.cells(table):
            if tuple(c.get("runs", [])) in seen:
                continue
            seen.add(tuple(c.get("runs", [])))
            frame = ctx.summary.cell(ctx.plan, c, ctx.protocol).frame.reindex(columns=keys)
            frame = frame.rename_axis("run").reset_index().melt("run", var_name="key")
            about = dict(table=table, label=str(c["label"]), dataset=c["dataset"])
            frames.append(frame.assign(method=c["method"], cell=len(seen), **about))
    out = pd.concat(frames) if frames else pd.DataFrame(columns=["run", "key", "value", "cell"])
    return out.astype({"value": float}).dropna(subset=["value"])


def floor_value(ctx: Context, cells: Sequence[dict], key: str) -> float | None:
    stats = [ctx.summary.cell(ctx.plan, c, ctx.protocol) for c in cells]
    floor = ctx.summary.floor(ctx.plan, stats, ctx.protocol)
    return (floor.values(key) or [None])[0] if floor is not None else None


def _bits_axis(ax, bits: Sequence[float]) -> None:
    """Log-2 x axis with plain numbers when the rates span more than a factor 4."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    lo, hi = min(bits), max(bits)
    if lo > 0 and hi / lo > 4:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(lo / 1.25, hi * 1.25)
    else:
        pad = 0.08 * (hi - lo) if hi > lo else 0.1 * hi or 1.0
        ax.set_xlim(lo - pad, hi + pad)


def fig_rate_distortion(ctx: Context, tables: tuple[str, ...] = RD_TABLES) -> Figure:
    """PSNR, LPIPS and rFID against bits per image, a line per method through its cells of
    ``tables`` (all: every method of Tables 1 and 2, the tokens ablation and the modern tables;
    ``modern_rates``: the modern quantisers' rate sweep)."""
    keys = [m for m, _ in RD_METRICS]
    long = cell_values(ctx, tables, keys + ["bits_per_image"])
    bits = long[long.key == "bits_per_image"].groupby("cell")["value"].mean().rename("bits")
    long = long[long.key.isin(keys)].join(bits, on="cell").dropna(subset=["bits"])
    if long.empty:
        raise NoData(f"no metrics.json with bits_per_image in the runs of {', '.join(tables)}")
    group = ["dataset", "table", "label", "method", "cell", "key", "bits"]
    points = long.groupby(group, sort=False)["value"].agg(["mean", "count", sd]).reset_index()
    points["low"], points["high"] = points["mean"] - points["sd"], points["mean"] + points["sd"]
    use_ci = not ctx.intervals.empty
    if use_ci:  # 95 % bootstrap intervals where `qgvae differences` wrote them
        ci = ctx.intervals[ctx.intervals.protocol == ctx.protocol].rename(columns={"metric": "key"})
        on = ["dataset", "table", "label", "method", "key"]
        points = points.merge(ci[on + ["ci_low", "ci_high"]], on=on, how="left")
        has = points.ci_low.notna() & points.ci_high.notna()
        points.loc[has, "low"], points.loc[has, "high"] = points.ci_low, points.ci_high
    datasets = list(dict.fromkeys(points.dataset))
    size = (FULL_W, 1.9 * len(datasets) + 0.4)
    fig, axes = pyplot().subplots(len(datasets), len(keys), figsize=size, squeeze=False)
    for r, ds in enumerate(datasets):
        here = points[points.dataset == ds]
        cells = [c for t in tables for c in ctx.cells(t) if c["dataset"] == ds]
        methods = list(dict.fromkeys(here.method))
        for ax, (key, label) in zip(axes[r], RD_METRICS):
            for method, p in here[here.key == key].groupby("method", sort=False):
                p = p.sort_values("bits")  # a line joins one method's settings
                err = np.stack([(p["mean"] - p.low).clip(0), (p.high - p["mean"]).clip(0)])
                name = mpl_text(ctx.names.method(method))
                # methods at the same rate side by side (1.5 % apart), not on top of each other
                dodge = 1.015 ** (methods.index(method) - (len(methods) - 1) / 2)
                ax.errorbar(
                    p.bits * dodge, p["mean"], err, color=ctx.colour(method), label=name, **RD_LINE
                )
            floor = floor_value(ctx, cells, key)
            if floor is not None:
                ax.axhline(floor, label="mean image (floor)", **FLOOR_LINE)
            _bits_axis(ax, list(here.bits))
            first = ax is axes[r, 0] and len(datasets) > 1
            where = f"\n{ctx.names.dataset(ds)}" if first else ""
            ax.set(xlabel="bits per image", ylabel=label + mpl_text(where))
        axes[r, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    seeds = ", ".join(str(n) for n in sorted(set(points["count"])))
    bars = f"one s.d. (ddof={DDOF}) over seeds"
    if use_ci:
        bars = "95% bootstrap intervals (test images resampled, seeds as an outer level; "
        bars += "method_intervals.csv)"
    caption = (
        f"Rate-distortion (protocol {ctx.protocol}): PSNR, LPIPS and rFID against the bits per "
        f"image of the code (metrics.json), for every method of {_rd_scope(tables)}; points are "
        f"means over seeds ({seeds} seeds per point), error bars {bars}; "
        "lines join one method's settings, methods at one rate drawn 1.5% apart on the rate "
        "axis; dashed: the training mean image (the floor). "
        + scale_phrase(ctx.summary.runs(long.run))
    )
    return Figure(fig, caption, sorted({f"{r}/metrics.json" for r in long.run}))


def _rd_scope(tables: tuple[str, ...]) -> str:
    if tables == RD_TABLES:
        return "Tables 1 and 2, the tokens ablation and the modern-quantiser tables"
    if tables == ("modern_rates",):
        return "the modern-quantiser rate sweep (QG-VAE and the quantisers at several rates)"
    return ", ".join(tables)


def fig_ablation(ctx: Context, table: str) -> Figure:
    import seaborn as sns
    from matplotlib.lines import Line2D

    cells = ctx.cells(table)
    if not cells:
        raise NoData(f"plan has no cells for {table}")
    long = cell_values(ctx, [table], [k for k, _ in ABLATION_PANELS])
    if long.empty:
        raise NoData(f"no metrics.json in any run of {table}")
    labels = list(dict.fromkeys(str(c["label"]) for c in cells))
    methods = list(dict.fromkeys(c["method"] for c in cells))
    palette = {m: ctx.colour(m) for m in methods}
    rotate = max(map(len, labels)) > 6
    dodge = 0.8 / len(methods) if len(methods) > 1 else False
    kw = dict(x="label", y="value", hue="method", order=labels, hue_order=methods, legend=False)
    kw |= dict(palette=palette, dodge=dodge)
    bars = dict(markersize=3.5, capsize=0.15, linestyle="none", err_kws={"linewidth": 1})
    fig, axes = pyplot().subplots(2, 3, figsize=(FULL_W, 3.6))
    for ax, (key, title) in zip(axes.flat, ABLATION_PANELS):
        data = long[long.key == key]
        sns.stripplot(data=data, ax=ax, size=2.5, alpha=0.45, jitter=False, **kw)  # every seed
        sns.pointplot(data=data, ax=ax, errorbar=mean_sd, **bars, **kw)
        floor = None if key in ("bits_per_image", "usage") else floor_value(ctx, cells, key)
        if floor is not None:
            ax.axhline(floor, **FLOOR_LINE)
        rotation = dict(rotation=30, ha="right") if rotate else {}
        ax.set_xticks(range(len(labels)), [mpl_text(x) for x in labels], **rotation)
        ax.set(xlim=(-0.6, len(labels) - 0.4), title=title, xlabel="", ylabel="")
    seeds = ", ".join(str(n) for n in sorted(set(long.groupby(["cell", "key"]).size())))
    handles = [Line2D([], [], color=palette[m], marker="o", ls="none") for m in methods]
    names = [f"{mpl_text(ctx.names.method(m))} (mean $\\pm$ s.d., {seeds} seeds)" for m in methods]
    if floor_value(ctx, cells, "psnr") is not None:
        handles, names = handles + [Line2D([], [], **FLOOR_LINE)], names + ["mean image (floor)"]
    where = dict(loc="lower center", ncol=min(len(names), 4), bbox_to_anchor=(0.5, -0.01))
    fig.legend(handles, names, **where)
    axis = table[len("ablation_") :]
    fig.supxlabel(mpl_text(axis), y=0.06, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    on = ", ".join(dict.fromkeys(ctx.names.dataset(c["dataset"]) for c in cells))
    present = set(long.run)
    missing = [c for c in cells if not present & set(c.get("runs", []))]
    missing = [f"{c['label']}/{ctx.names.method(c['method'])}" for c in missing]
    runs = [r for c in cells for r in c.get("runs", [])]
    caption = (
        f"Ablation of {axis} on {on} (protocol {ctx.protocol}): markers with error bars are "
        f"means ± one s.d. (ddof={DDOF}) over {seeds} seeds, small dots the individual "
        "seeds; dashed: the training mean image (the floor). "
        + scale_phrase(ctx.summary.runs(runs))
        + (" No data for: " + ", ".join(missing) + "." if missing else "")
    )
    return Figure(fig, caption, sorted({f"{r}/metrics.json" for r in present}))


TRAINING_PANELS = (  # (split, key, title, log y axis)
    ("train", "loss", "train loss", True),
    ("train", "mse", "train MSE", True),
    ("val", "psnr", "validation PSNR (dB)", False),
)


def seeds_text(k: int) -> str:
    return f"{k} seed{'s' if k != 1 else ''}"


def _labelled(ctx: Context, frame: pd.DataFrame, seeds: pd.Series, suffix: str = ""):
    """``frame`` with a legend label per method ("QG-VAE (2 seeds)") and their palette."""
    frame["label"] = [
        mpl_text(f"{ctx.names.method(m)} ({seeds_text(k)}{suffix})")
        for m, k in zip(frame.method, seeds)
    ]
    return frame, {lab: ctx.colour(m) for lab, m in zip(frame.label, frame.method)}


def fig_code_usage(ctx: Context) -> Figure:
    import seaborn as sns

    frames = []
    for c in ctx.cells("table1") or [c for cs in ctx.tables().values() for c in cs]:
        for run in c.get("runs", []):
            usage = usage_per_position(ctx.root, run)
            if usage is not None:
                frame = pd.DataFrame({"fraction": 100 * usage[0], "perplexity": usage[1]})
                frame = frame.rename_axis("position").reset_index()
                frames.append(frame.assign(dataset=c["dataset"], method=c["method"], run=run))
    if not frames:
        raise NoData("no metrics.json with usage.per_position in the Table-1 runs")
    long = pd.concat(frames).drop_duplicates(["dataset", "method", "run", "position"])
    seeds = long.groupby(["dataset", "method"])["run"].transform("nunique")
    long, palette = _labelled(ctx, long, seeds)
    datasets = list(dict.fromkeys(long.dataset))
    size = (FULL_W, 1.7 * len(datasets) + 0.3)
    fig, axes = pyplot().subplots(len(datasets), 2, figsize=size, squeeze=False)
    for r, ds in enumerate(datasets):
        for ax, key in zip(axes[r], ("fraction", "perplexity")):  # the mean over seeds
            kw = dict(x="position", y=key, hue="label", palette=palette, errorbar=None, lw=1)
            sns.lineplot(data=long[long.dataset == ds], ax=ax, legend=key == "perplexity", **kw)
            ax.set_xlabel("token position" if r == len(datasets) - 1 else "")
        ylabel = mpl_text(f"{ctx.names.dataset(ds)}\ncodebook used (%)")
        axes[r, 0].set(ylabel=ylabel, ylim=(0, 102))
        axes[r, 1].set_ylabel("perplexity")
        axes[r, 1].legend(loc="best", title=None)
    fig.tight_layout()
    caption = (
        "Code usage per token position on the test set (metrics.json usage.per_position): "
        "fraction of each position's codebook used and the perplexity of its code "
        "distribution, averaged over the seeds given in the legend. "
        + scale_phrase(ctx.summary.runs(long.run))
    )
    return Figure(fig, caption, [f"{run}/metrics.json" for run in dict.fromkeys(long.run)])


def fig_training(ctx: Context) -> Figure:
    """One row per Table-1 dataset: train loss, train MSE, validation PSNR against steps."""
    import seaborn as sns

    datasets, table1 = ctx.table1_datasets(), ctx.cells("table1")
    if not datasets:
        raise NoData("the plan has no Table-1 cells")
    frames = []
    for c in table1:
        for run in c.get("runs", []):
            rows = read_log(ctx.root / run / "train_log.jsonl")
            rows = [r for r in rows if "step" in r and r.get("split") in ("train", "val")]
            if rows:
                about = dict(dataset=c["dataset"], method=c["method"], run=run)
                frames.append(pd.DataFrame(rows).assign(seed=seed_of(ctx.plan, run), **about))
    if not frames:
        raise NoData("no train_log.jsonl in any Table-1 run")
    logs = pd.concat(frames).drop_duplicates(["run", "split", "step"])
    seeds = logs.groupby("method")["seed"].transform("nunique")
    logs, palette = _labelled(ctx, logs, seeds, " per dataset")
    floors = ctx.summary.runs(logs.run).groupby("dataset")["val_floor_psnr"].first()
    size = (FULL_W, 1.75 * len(datasets) + 0.45)
    fig, axes = pyplot().subplots(len(datasets), 3, figsize=size, squeeze=False)
    for r, ds in enumerate(datasets):
        for ax, (split, key, title, logy) in zip(axes[r], TRAINING_PANELS):
            data = logs[(logs.dataset == ds) & (logs.split == split)]
            y = pd.to_numeric(data[key], errors="coerce") if key in data else float("nan")
            data = data.assign(y=y).dropna(subset="y")
            if data.empty:
                panel_note(ax, f"no data: no '{key}' in {split} rows")
            else:  # one line per run (seed)
                kw = dict(x="step", y="y", hue="label", units="run", estimator=None, lw=0.9)
                kw |= dict(alpha=0.85, marker="o" if split == "val" else None, ms=2, mew=0)
                sns.lineplot(data=data, ax=ax, palette=palette, legend="full", **kw)
                ax.set_yscale("log" if logy and (data.y > 0).all() else "linear")
                ax.get_legend().remove()
            floor = floors.get(ds)
            if key == "psnr" and floor is not None and pd.notna(floor):
                ax.axhline(floor, label="mean image (floor)", **FLOOR_LINE)
                ax.axhline(floor + 3.0, color="0.65", ls=":", lw=0.8, label="floor + 3 dB")
            ax.set(title=title if r == 0 else "", ylabel="")
            ax.set_xlabel("optimiser step" if r == len(datasets) - 1 else "")
        axes[r, 0].set_ylabel(mpl_text(ctx.names.dataset(ds)))
    legend = {}
    for ax in axes.flat:
        legend |= {lab: h for h, lab in zip(*ax.get_legend_handles_labels()) if lab not in legend}
    if legend:
        where = dict(loc="lower center", ncol=min(len(legend), 3), bbox_to_anchor=(0.5, 0.0))
        fig.legend(legend.values(), legend.keys(), **where)
    fig.tight_layout(rect=(0, 0.35 / (1.75 * len(datasets) + 0.45) + 0.02, 1, 1))
    caption = (
        "Training curves of the Table-1 runs (train_log.jsonl): training loss and MSE and "
        "validation PSNR against optimiser steps, one row per dataset and one line per "
        "seed; the number of seeds per method is in the legend. Dashed: the validation PSNR of "
        "the training mean image (the floor), dotted: 3 dB above it, the margin a run must "
        "clear to count as reconstructing its input. "
        + scale_phrase(ctx.summary.runs([r for c in table1 for r in c.get("runs", [])]))
    )
    return Figure(fig, caption, [f"{run}/train_log.jsonl" for run in dict.fromkeys(logs.run)])
