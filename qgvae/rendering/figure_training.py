"""Figures of training and code use: code usage per token position, training curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .plots import FULL_W, Context, Figure, NoData, mpl_text, panel_note, pyplot
from .results import (
    finite_float,
    read_json,
    read_log,
    scale_text,
    seed_of,
    usage_per_position,
)


def seeds_text(k: int) -> str:
    return f"{k} seed{'s' if k != 1 else ''}"


# ---------------------------------------------------------------------------------------------
# code usage per token position
# ---------------------------------------------------------------------------------------------
@dataclass
class UsageSeries:
    method: str
    fraction: np.ndarray  # per position, mean over seeds
    perplexity: np.ndarray
    seeds: int


def fig_code_usage(ctx: Context) -> Figure:
    cells = ctx.cells("table1") or [c for cs in ctx.tables().values() for c in cs]
    series: dict[str, list[UsageSeries]] = {}
    sources = []
    for ds in dict.fromkeys(c["dataset"] for c in cells):
        for c in (c for c in cells if c["dataset"] == ds):
            fractions, perplexities = [], []
            for run in c.get("runs", []):
                usage = usage_per_position(ctx.root, run)
                if usage is None:
                    continue
                fractions.append(usage[0])
                perplexities.append(usage[1])
                sources.append(f"{run}/metrics.json")
            if not fractions or len({len(f) for f in fractions}) != 1:
                continue
            series.setdefault(ds, []).append(
                UsageSeries(
                    c["method"],
                    np.mean(fractions, axis=0),
                    np.mean(perplexities, axis=0),
                    len(fractions),
                )
            )
    if not series:
        raise NoData("no metrics.json with usage.per_position in the Table-1 runs")
    plt = pyplot()
    fig, axes = plt.subplots(
        len(series), 2, figsize=(FULL_W, 1.7 * len(series) + 0.3), squeeze=False
    )
    for r, (ds, items) in enumerate(series.items()):
        for s in items:
            x = np.arange(len(s.fraction))
            label = mpl_text(f"{ctx.names.method(s.method)} ({seeds_text(s.seeds)})")
            colour = ctx.colour(s.method)
            axes[r, 0].plot(x, 100 * s.fraction, color=colour, lw=1, label=label)
            axes[r, 1].plot(x, s.perplexity, color=colour, lw=1, label=label)
        axes[r, 0].set_ylabel(mpl_text(f"{ctx.names.dataset(ds)}\ncodebook used (%)"))
        axes[r, 1].set_ylabel("perplexity")
        axes[r, 0].set_ylim(0, 102)
        axes[r, 1].legend(loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("token position")
    fig.tight_layout()
    caption = (
        "Code usage per token position on the test set (metrics.json usage.per_position): "
        "fraction of each position's codebook used and the perplexity of its code "
        "distribution, averaged over the seeds given in the legend."
    )
    runs = sorted({s.rsplit("/", 1)[0] for s in sources})
    caption += f" Runs {scale_text(ctx.root, runs)}."
    return Figure(fig, caption, sources)


# ---------------------------------------------------------------------------------------------
# training curves
# ---------------------------------------------------------------------------------------------
@dataclass
class RunLog:
    method: str
    seed: int | None
    rows: Mapping[str, list[dict[str, Any]]]  # split ("train" / "val") -> rows with a step


TRAINING_PANELS = (  # (split, key, title, log y axis)
    ("train", "loss", "train loss", True),
    ("train", "mse", "train MSE", True),
    ("val", "psnr", "validation PSNR (dB)", False),
)


def _points(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    return [
        (row["step"], row[key])
        for row in rows
        if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])
    ]


def fig_training(ctx: Context) -> Figure:
    """One row per Table-1 dataset: train loss, train MSE, validation PSNR against steps."""
    datasets = ctx.table1_datasets()
    if not datasets:
        raise NoData("the plan has no Table-1 cells")
    table1 = ctx.cells("table1")
    logs: dict[str, list[RunLog]] = {}
    sources = []
    for ds in datasets:
        for c in (c for c in table1 if c["dataset"] == ds):
            for run in c.get("runs", []):
                rows = read_log(ctx.root / run / "train_log.jsonl")
                by_split = {
                    split: [r for r in rows if r.get("split") == split and "step" in r]
                    for split in ("train", "val")
                }
                if any(by_split.values()):
                    logs.setdefault(ds, []).append(
                        RunLog(c["method"], seed_of(ctx.plan, run), by_split)
                    )
                    sources.append(f"{run}/train_log.jsonl")
    if not logs:
        raise NoData("no train_log.jsonl in any Table-1 run")
    floors: dict[str, float] = {}  # dataset -> validation floor PSNR (run.json)
    for ds in datasets:
        for c in (c for c in table1 if c["dataset"] == ds):
            for run in c.get("runs", []):
                rj, _ = read_json(ctx.root / run / "run.json")
                if rj and finite_float(rj.get("val_floor_psnr")) is not None:
                    floors.setdefault(ds, float(rj["val_floor_psnr"]))
    plt = pyplot()
    fig, axes = plt.subplots(
        len(datasets), 3, figsize=(FULL_W, 1.75 * len(datasets) + 0.45), squeeze=False
    )
    seeds_per: dict[str, set] = {}
    for run_logs in logs.values():
        for run_log in run_logs:
            seeds_per.setdefault(run_log.method, set()).add(run_log.seed)
    for r, ds in enumerate(datasets):
        for ax, (split, key, title, logy) in zip(axes[r], TRAINING_PANELS):
            any_line = False
            for run_log in logs.get(ds, []):
                pts = _points(run_log.rows[split], key)
                if not pts:
                    continue
                x, y = zip(*sorted(pts))
                n_seeds = seeds_text(len(seeds_per[run_log.method]))
                label = f"{ctx.names.method(run_log.method)} ({n_seeds} per dataset)"
                ax.plot(
                    x,
                    y,
                    color=ctx.colour(run_log.method),
                    lw=0.9,
                    alpha=0.85,
                    label=mpl_text(label),
                    marker="o" if split == "val" else None,
                    ms=2,
                )
                any_line = True
            if key == "psnr" and ds in floors:
                ax.axhline(floors[ds], color="0.45", ls="--", lw=0.8, label="mean image (floor)")
                ax.axhline(floors[ds] + 3.0, color="0.65", ls=":", lw=0.8, label="floor + 3 dB")
            if r == 0:
                ax.set_title(title)
            if r == len(datasets) - 1:
                ax.set_xlabel("optimiser step")
            if logy and any_line and all(v > 0 for ln in ax.get_lines() for v in ln.get_ydata()):
                ax.set_yscale("log")
            if not any_line:
                panel_note(ax, f"no data: no '{key}' in {split} rows")
        axes[r, 0].set_ylabel(mpl_text(ctx.names.dataset(ds)))
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(
            handles, labels, loc="lower center", ncol=min(len(labels), 3), bbox_to_anchor=(0.5, 0.0)
        )
    fig.tight_layout(rect=(0, 0.35 / (1.75 * len(datasets) + 0.45) + 0.02, 1, 1))
    runs = [r for c in table1 for r in c.get("runs", [])]
    caption = (
        "Training curves of the Table-1 runs (train_log.jsonl): training loss and MSE and "
        "validation PSNR against optimiser steps, one row per dataset and one line per "
        "seed; the number of seeds per method is in the legend. Dashed: the validation PSNR of "
        "the training mean image (the floor), dotted: 3 dB above it, the margin a run must "
        f"clear to count as reconstructing its input. Runs {scale_text(ctx.root, runs)}."
    )
    return Figure(fig, caption, sources)
