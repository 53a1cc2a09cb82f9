"""The bill before submitting: device-hours of a plan's trainings (``qgvae estimate``).

For every run of a plan (or of one target's tables) the steps it will take (its ``train``
section: ``epochs`` over the dataset's training split, capped by ``max_steps``; one step per
batch, the last partial batch dropped, as the trainer does) times the milliseconds per step
measured for its configuration by ``qgvae bench train`` on the machine that will train it
(``--json`` rows: method, dataset, training digest, device, mode, precision, ms/step).

A run's step time is looked up by, in order: the same training configuration (its digest);
the same method on the same dataset (another configuration: e.g. an ablation value that was
not benched); the same method on any dataset. Rows are taken in the run's own mode and
precision where the bench has them (``train.compile`` -> compiled; ``amp: bf16`` on CUDA /
``cpu_amp: bf16`` on a CPU -> bf16), else the eager fp32 row of that configuration; every
estimate says which match it used. Training only: reconstruction, evaluation and the
generation study come on top (the workflow's ``benchmarks/`` folder measures them afterwards).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from .data import dataset_info
from .errors import ConfigError
from .plan import runs_for
from .runs import training_digest

MATCHES = ("configuration", "method and dataset", "method")


def run_steps(cfg: Mapping[str, Any]) -> int:
    """Optimiser steps of a resolved run config (the trainer's ``total_steps``)."""
    train = cfg["train"]
    per_epoch = dataset_info(cfg["dataset"]).splits["train"] // int(train["batch_size"])
    steps = math.ceil(float(train["epochs"]) * per_epoch)
    if train.get("max_steps"):
        steps = min(steps, int(train["max_steps"]))
    return max(steps, 1)


def wanted(cfg: Mapping[str, Any], device_type: str) -> tuple[str, str]:
    """(mode, precision) the run trains in on a device of ``device_type``."""
    train = cfg["train"]
    mode = "compiled" if train.get("compile") else "eager"
    amp = train.get("amp") if device_type == "cuda" else train.get("cpu_amp", "none")
    return mode, "bf16" if amp == "bf16" else "fp32"


def _pick(rows: pd.DataFrame, mode: str, precision: str) -> tuple[pd.Series | None, str]:
    """The row in the run's own mode and precision, else eager fp32; and which it is."""
    for m, p in ((mode, precision), ("eager", "fp32")):
        hit = rows[(rows["mode"] == m) & (rows["precision"] == p)]
        if len(hit):
            return hit.iloc[0], f"{m} {p}"
    return None, ""


def estimate(
    plan: Mapping[str, Any], bench_rows: Iterable[Mapping[str, Any]], *, table: str = ""
) -> pd.DataFrame:
    """One row per run of ``plan`` (or of the tables whose name starts with ``table``): method,
    dataset, steps, ms/step, hours, and how the step time was matched (``match``; ``missing``
    when the bench has no row of the method)."""
    bench = pd.DataFrame(list(bench_rows))
    if bench.empty:
        raise ConfigError("the bench file has no rows; measure with `qgvae bench train --json`")
    devices = bench["device"].str.split(":").str[0].unique()
    if len(devices) != 1:
        raise ConfigError(
            f"the bench rows are of several device types ({sorted(devices)}); give one "
            "machine's bench (qgvae bench train --devices ...)"
        )
    out = []
    for run in runs_for(plan, table):
        cfg = plan["runs"][run]["config"]
        mode, precision = wanted(cfg, devices[0])
        digest = training_digest(cfg)
        row, used, match = None, "", "missing"
        for how, rows in zip(
            MATCHES,
            (
                bench[bench["digest"] == digest],
                bench[(bench["method"] == cfg["method"]) & (bench["dataset"] == cfg["dataset"])],
                bench[bench["method"] == cfg["method"]],
            ),
        ):
            row, used = _pick(rows, mode, precision)
            if row is not None:
                match = how
                break
        steps = run_steps(cfg)
        ms = None if row is None else float(row["step_ms"])
        out.append(
            {
                "run": run,
                "method": cfg["method"],
                "dataset": cfg["dataset"],
                "steps": steps,
                "wants": f"{mode} {precision}",
                "measured": used or None,
                "match": match,
                "step_ms": ms,
                "hours": None if ms is None else steps * ms / 3.6e6,
                "device": row["device"] if row is not None else None,
                "device_name": row.get("device_name") if row is not None else None,
            }
        )
    return pd.DataFrame(out)


def summary_lines(frame: pd.DataFrame, by: Sequence[str] = ("method",)) -> list[str]:
    """Hours per group and in total, as printed by ``qgvae estimate``."""
    if frame.empty:
        return ["no runs"]
    device = next(iter(frame["device_name"].dropna()), None) or next(
        iter(frame["device"].dropna()), "?"
    )
    groups = frame.groupby(list(by), sort=False).agg(
        runs=("run", "count"),
        steps=("steps", "sum"),
        hours=("hours", lambda h: h.sum(min_count=1)),
        unmatched=("match", lambda m: int((m == "missing").sum())),
        approximate=("match", lambda m: int(m.isin(MATCHES[1:]).sum())),
    )
    lines = [f"device-hours of training on {device} (steps x measured ms/step, one job at a time)"]
    lines.append(groups.to_string(float_format=lambda x: f"{x:,.2f}"))
    total = frame["hours"].sum(min_count=1)
    lines.append(
        f"total: {len(frame)} runs, {int(frame['steps'].sum()):,} steps, "
        + ("no matched run" if pd.isna(total) else f"{total:,.1f} device-hours")
    )
    missing = frame[frame["match"] == "missing"]
    if len(missing):
        methods = ", ".join(sorted(set(missing["method"])))
        lines.append(f"{len(missing)} runs without a bench row of their method ({methods}): out")
    approx = frame[frame["match"].isin(MATCHES[1:])]
    if len(approx):
        lines.append(
            f"{len(approx)} runs timed by another configuration of their method (match column); "
            "bench their plan (qgvae bench train --plan PLAN) for exact figures"
        )
    return lines
