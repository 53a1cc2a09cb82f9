"""Figures of training and code use (seaborn on long-form frames): code usage per token
position (metrics.json ``usage.per_position``), training curves (train_log.jsonl)."""

from __future__ import annotations

import pandas as pd

from .plots import FLOOR_LINE, FULL_W, Context, Figure, NoData, mpl_text, panel_note, pyplot
from .results import read_log, seed_of, usage_per_position
from .summary import scale_phrase

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
