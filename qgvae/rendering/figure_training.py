"""Figures of training and code use (seaborn on long-form frames): code usage per token
position (metrics.json ``usage.per_position``), training curves (train_log.jsonl)."""

from __future__ import annotations

import pandas as pd

from .plots import FULL_W, Context, Figure, NoData, mpl_text, panel_note, pyplot
from .results import read_log, seed_of, usage_per_position
from .summary import scale_phrase


def seeds_text(k: int) -> str:
    return f"{k} seed{'s' if k != 1 else ''}"


def fig_code_usage(ctx: Context) -> Figure:
    import seaborn as sns

    cells = ctx.cells("table1") or [c for cs in ctx.tables().values() for c in cs]
    frames = []
    for c in cells:
        for run in c.get("runs", []):
            usage = usage_per_position(ctx.root, run)
            if usage is not None:
                frame = pd.DataFrame({"fraction": 100 * usage[0], "perplexity": usage[1]})
                frames.append(
                    frame.rename_axis("position")
                    .reset_index()
                    .assign(dataset=c["dataset"], method=c["method"], run=run)
                )
    if not frames:
        raise NoData("no metrics.json with usage.per_position in the Table-1 runs")
    long = pd.concat(frames).drop_duplicates(["dataset", "method", "run", "position"])
    seeds = long.groupby(["dataset", "method"])["run"].transform("nunique")
    long["label"] = [
        mpl_text(f"{ctx.names.method(m)} ({seeds_text(k)})") for m, k in zip(long.method, seeds)
    ]
    palette = {lab: ctx.colour(m) for lab, m in zip(long.label, long.method)}
    datasets = list(dict.fromkeys(long.dataset))
    plt = pyplot()
    fig, axes = plt.subplots(
        len(datasets), 2, figsize=(FULL_W, 1.7 * len(datasets) + 0.3), squeeze=False
    )
    for r, ds in enumerate(datasets):
        data = long[long.dataset == ds]
        for ax, key in zip(axes[r], ("fraction", "perplexity")):  # mean over seeds
            sns.lineplot(
                data=data,
                x="position",
                y=key,
                hue="label",
                palette=palette,
                ax=ax,
                errorbar=None,
                lw=1,
                legend=key == "perplexity",
            )
        axes[r, 0].set(
            ylabel=mpl_text(f"{ctx.names.dataset(ds)}\ncodebook used (%)"), ylim=(0, 102)
        )
        axes[r, 1].set_ylabel("perplexity")
        axes[r, 1].legend(loc="best", title=None)
    for ax in axes.flat:
        ax.set_xlabel("token position" if ax in axes[-1] else "")
    fig.tight_layout()
    caption = (
        "Code usage per token position on the test set (metrics.json usage.per_position): "
        "fraction of each position's codebook used and the perplexity of its code "
        "distribution, averaged over the seeds given in the legend. "
        f"{scale_phrase(ctx.summary.runs(long.run))}"
    )
    return Figure(fig, caption, [f"{run}/metrics.json" for run in dict.fromkeys(long.run)])


TRAINING_PANELS = (  # (split, key, title, log y axis)
    ("train", "loss", "train loss", True),
    ("train", "mse", "train MSE", True),
    ("val", "psnr", "validation PSNR (dB)", False),
)


def fig_training(ctx: Context) -> Figure:
    """One row per Table-1 dataset: train loss, train MSE, validation PSNR against steps."""
    import seaborn as sns

    datasets, table1 = ctx.table1_datasets(), ctx.cells("table1")
    if not datasets:
        raise NoData("the plan has no Table-1 cells")
    frames = []
    for c in table1:
        for run in c.get("runs", []):
            rows = [r for r in read_log(ctx.root / run / "train_log.jsonl") if "step" in r]
            rows = [r for r in rows if r.get("split") in ("train", "val")]
            if rows:
                frames.append(
                    pd.DataFrame(rows).assign(dataset=c["dataset"], method=c["method"], run=run)
                )
    if not frames:
        raise NoData("no train_log.jsonl in any Table-1 run")
    logs = pd.concat(frames).drop_duplicates(["run", "split", "step"])
    logs["seed"] = [seed_of(ctx.plan, run) for run in logs.run]
    seeds = logs.groupby("method")["seed"].nunique()
    logs["label"] = [
        mpl_text(f"{ctx.names.method(m)} ({seeds_text(seeds[m])} per dataset)") for m in logs.method
    ]
    palette = {lab: ctx.colour(m) for lab, m in zip(logs.label, logs.method)}
    floors = ctx.summary.runs(logs.run).groupby("dataset")["val_floor_psnr"].first()
    plt = pyplot()
    fig, axes = plt.subplots(
        len(datasets), 3, figsize=(FULL_W, 1.75 * len(datasets) + 0.45), squeeze=False
    )
    for r, ds in enumerate(datasets):
        for ax, (split, key, title, logy) in zip(axes[r], TRAINING_PANELS):
            data = logs[(logs.dataset == ds) & (logs.split == split)]
            data = (
                data[pd.to_numeric(data.get(key), errors="coerce").notna()]
                if key in data
                else data.iloc[:0]
            )
            if data.empty:
                panel_note(ax, f"no data: no '{key}' in {split} rows")
            else:  # one line per run (seed)
                sns.lineplot(
                    data=data.astype({key: float}),
                    x="step",
                    y=key,
                    hue="label",
                    units="run",
                    estimator=None,
                    palette=palette,
                    ax=ax,
                    lw=0.9,
                    alpha=0.85,
                    marker="o" if split == "val" else None,
                    ms=2,
                    mew=0,
                    legend="full",
                )
                if logy and (data[key].astype(float) > 0).all():
                    ax.set_yscale("log")
            floor = floors.get(ds)
            if key == "psnr" and floor is not None and pd.notna(floor):
                ax.axhline(floor, color="0.45", ls="--", lw=0.8, label="mean image (floor)")
                ax.axhline(floor + 3.0, color="0.65", ls=":", lw=0.8, label="floor + 3 dB")
            ax.set(title=title if r == 0 else "", ylabel="")
            ax.set_xlabel("optimiser step" if r == len(datasets) - 1 else "")
            if ax.get_legend():
                ax.get_legend().remove()
        axes[r, 0].set_ylabel(mpl_text(ctx.names.dataset(ds)))
    legend = {}
    for ax in axes.flat:
        legend |= {lab: h for h, lab in zip(*ax.get_legend_handles_labels()) if lab not in legend}
    if legend:
        fig.legend(
            legend.values(),
            legend.keys(),
            loc="lower center",
            ncol=min(len(legend), 3),
            bbox_to_anchor=(0.5, 0.0),
        )
    fig.tight_layout(rect=(0, 0.35 / (1.75 * len(datasets) + 0.45) + 0.02, 1, 1))
    caption = (
        "Training curves of the Table-1 runs (train_log.jsonl): training loss and MSE and "
        "validation PSNR against optimiser steps, one row per dataset and one line per "
        "seed; the number of seeds per method is in the legend. Dashed: the validation PSNR of "
        "the training mean image (the floor), dotted: 3 dB above it, the margin a run must "
        "clear to count as reconstructing its input. "
        f"{scale_phrase(ctx.summary.runs([r for c in table1 for r in c.get('runs', [])]))}"
    )
    return Figure(fig, caption, [f"{run}/train_log.jsonl" for run in dict.fromkeys(logs.run)])
