"""The one reader of results: every table, figure and the report read run folders through here.

Nothing here writes or recomputes; a missing or unreadable file gives ``(None, reason)``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

DDOF = 1  # the spread over seeds is numpy's std with this ddof (sample standard deviation)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def load_paper_values(path: str | Path | None) -> dict[str, Any]:
    import yaml

    if path is None:
        return {}
    return yaml.safe_load(Path(path).read_text()) or {}


def paper_values_of(paper_values: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    """The paper values given as a mapping, a YAML path or None (-> {})."""
    if paper_values is None or isinstance(paper_values, Mapping):
        return dict(paper_values or {})
    return load_paper_values(paper_values)


def load_plan(plan: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    """The plan given as a mapping or as the path of its JSON file."""
    if isinstance(plan, Mapping):
        return plan
    return json.loads(Path(plan).read_text())


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(data, None) or (None, reason); never raises."""
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable {path.name} ({type(exc).__name__})"
    if not isinstance(data, dict):
        return None, f"unreadable {path.name} (not an object)"
    return data, None


def load_npz(path: Path, keys: Sequence[str] = ()) -> tuple[dict[str, np.ndarray] | None, str]:
    """(arrays, '') or (None, reason); never raises."""
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                return None, f"{path.name} lacks {', '.join(missing)}"
            return {k: z[k] for k in z.files}, ""
    except Exception as exc:  # corrupt / partial file
        return None, f"unreadable {path.name} ({type(exc).__name__})"


def first_with(
    root: Path, cell: Mapping[str, Any], filename: str, keys: Sequence[str] = ()
) -> tuple[str | None, dict[str, np.ndarray] | None, str]:
    """The first run of ``cell`` (seed order) whose ``filename`` loads with ``keys``."""
    reasons = []
    for run in cell.get("runs", []):
        data, why = load_npz(root / run / filename, keys)
        if data is not None:
            return run, data, ""
        reasons.append(f"{run}: {why}")
    return None, None, "; ".join(reasons) or "cell has no runs"


def floor_of(root: Path, runs: Sequence[str]) -> str | None:
    """The floor run folder (metrics.json ``floor_run``) the first evaluated run names."""
    for run in runs:
        metrics, _ = read_json(root / run / "metrics.json")
        if metrics and metrics.get("floor_run"):
            return str(metrics["floor_run"])
    return None


def scale_text(root: Path, runs: Sequence[str]) -> str:
    """'trained S optimiser steps (E epochs, I images seen)' from the runs' run.json files."""
    steps, epochs, seen = set(), set(), set()
    for run in runs:
        rj, _ = read_json(root / run / "run.json")
        s = run_scale(rj)
        if s["steps"] is not None:
            steps.add(int(s["steps"]))
            if s["epochs"] is not None:
                epochs.add(round(s["epochs"], 3))
            if s["images_seen"] is not None:
                seen.add(int(s["images_seen"]))

    def span(values: set, fmt: str) -> str:
        lo, hi = min(values), max(values)
        return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"

    if not steps:
        return "training length unknown (no run.json)"
    text = f"trained {span(steps, '{:,}')} optimiser steps"
    if epochs:
        text += f" ({span(epochs, '{:.3g}')} epochs"
        text += f", {span(seen, '{:,}')} images seen)" if seen else ")"
    return text


def read_log(path: Path) -> list[dict[str, Any]]:
    """Rows of a train_log.jsonl; partial or corrupt lines are skipped."""
    rows = []
    try:
        text = path.read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Numbers of one run
# ---------------------------------------------------------------------------------------------
def finite_float(x: Any) -> float | None:
    """``float(x)`` when that is a finite number, else None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def run_values(metrics: Mapping[str, Any], protocol: str) -> dict[str, float | None]:
    """The numbers one run contributes under ``protocol`` (None where absent)."""
    proto = (metrics.get("protocols") or {}).get(protocol) or {}
    out: dict[str, float | None] = {}
    for m in ("ssim", "psnr", "lpips"):
        out[m] = finite_float((proto.get(m) or {}).get("mean"))
    out["rfid"] = finite_float((proto.get("rfid") or {}).get("value"))
    out["bits"] = finite_float(metrics.get("bits_per_image"))
    frac = finite_float((metrics.get("usage") or {}).get("mean_fraction"))
    out["usage"] = None if frac is None else 100.0 * frac
    out["perplexity"] = finite_float((metrics.get("usage") or {}).get("mean_perplexity"))
    n = None
    for m in ("ssim", "psnr", "lpips"):
        n = n or finite_float((proto.get(m) or {}).get("n"))
    out["n"] = n if n is not None else (finite_float(metrics.get("n_images")) if proto else None)
    out["fid_n"] = finite_float((proto.get("rfid") or {}).get("n"))
    out["resolution"] = finite_float(proto.get("resolution"))
    out["gain"] = finite_float(proto.get("psnr_gain_over_floor_db"))
    out["indep"] = finite_float(proto.get("input_dependence_db"))
    out["floor_psnr"] = finite_float(proto.get("floor_psnr"))
    out["bits_measured"] = finite_float(metrics.get("bits_per_image_measured"))
    out["tokens_measured"] = finite_float(metrics.get("tokens_per_image_measured"))
    return out


def run_scale(run_json: Mapping[str, Any] | None) -> dict[str, float | None]:
    """How long a run trained, from its run.json: optimiser steps, epochs, images seen."""
    rj = run_json or {}
    return {
        "steps": finite_float(rj.get("steps")),
        "epochs": finite_float(rj.get("epochs")),
        "images_seen": finite_float(rj.get("images_seen")),
        "selected_step": finite_float((rj.get("selected") or {}).get("step")),
    }


def seed_of(plan: Mapping[str, Any], run: str) -> int | None:
    info = (plan.get("runs") or {}).get(run)
    if info and "seed" in info:
        return int(info["seed"])
    m = re.search(r"seed(\d+)/?$", run)
    return int(m.group(1)) if m else None


def usage_per_position(root: Path, run: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(fraction, perplexity) per token position from a run's metrics.json, or None."""
    metrics, _ = read_json(root / run / "metrics.json")
    per = ((metrics or {}).get("usage") or {}).get("per_position") or {}
    if per.get("fraction") is None:
        return None
    fraction = np.asarray(per["fraction"], dtype=float)
    perplexity = np.asarray(per.get("perplexity") or [np.nan] * len(fraction), dtype=float)
    return fraction, perplexity


# ---------------------------------------------------------------------------------------------
# One table cell
# ---------------------------------------------------------------------------------------------
class SeedRun(NamedTuple):
    seed: int | None
    run: str  # run folder, relative to the root


class MissingRun(NamedTuple):
    seed: int | None
    run: str
    reason: str


@dataclass
class CellStats:
    """One table cell: per-seed numbers read from the cell's runs under one protocol."""

    cell: dict[str, Any]
    protocol: str
    planned: list[SeedRun]
    present: list[SeedRun] = field(default_factory=list)
    missing: list[MissingRun] = field(default_factory=list)
    per_run: list[dict[str, float | None]] = field(default_factory=list)
    grayscale: bool = False
    notes: list[str] = field(default_factory=list)
    floor_runs: list[str] = field(default_factory=list)  # the floors the runs were scored with

    def values(self, key: str) -> list[float]:
        return [r[key] for r in self.per_run if r.get(key) is not None]

    def mean(self, key: str) -> float | None:
        v = self.values(key)
        return float(np.mean(v)) if v else None

    def ns(self, key: str = "n") -> set[int]:
        return {int(v) for v in self.values(key)}


def load_cell(
    plan: Mapping[str, Any], cell: Mapping[str, Any], protocol: str, root: str | Path = "."
) -> CellStats:
    root = Path(root)
    planned = [SeedRun(seed_of(plan, r), r) for r in cell.get("runs", [])]
    stats = CellStats(cell=dict(cell), protocol=protocol, planned=planned)
    for seed, run in planned:
        metrics, why = read_json(root / run / "metrics.json")
        if metrics is None:
            stats.missing.append(MissingRun(seed, run, why or "missing"))
            continue
        if protocol not in (metrics.get("protocols") or {}):
            stats.missing.append(MissingRun(seed, run, f"protocol {protocol} not evaluated"))
            continue
        stats.present.append(SeedRun(seed, run))
        run_json, _ = read_json(root / run / "run.json")
        stats.per_run.append({**run_values(metrics, protocol), **run_scale(run_json)})
        floor = metrics.get("floor_run")
        if floor and floor not in stats.floor_runs:
            stats.floor_runs.append(str(floor))
        stats.grayscale |= bool(metrics.get("grayscale_repeated_to_rgb"))
        note = metrics.get("protocol_notes")
        if note and note not in stats.notes:
            stats.notes.append(str(note))
    return stats


def load_floor(
    plan: Mapping[str, Any], cells: Sequence[CellStats | None], protocol: str, root: str | Path
) -> CellStats | None:
    """The floor (mean image) that the given cells' runs were scored against, as a cell of its
    own; None when no run names one (metrics.json ``floor_run``)."""
    floors = list(dict.fromkeys(f for st in cells if st is not None for f in st.floor_runs))
    if not floors:
        return None
    cell = {"method": "mean_image", "label": "floor", "runs": floors[:1]}
    stats = load_cell(plan, cell, protocol, root)
    if len(floors) > 1:
        stats.notes.append(f"runs were scored against {len(floors)} floors; shown: {floors[0]}")
    return stats


# ---------------------------------------------------------------------------------------------
# Every run of the plan (the report's methods section)
# ---------------------------------------------------------------------------------------------
@dataclass
class SetSizes:
    """Test-set sizes seen for one (dataset, protocol)."""

    images: set[int] = field(default_factory=set)
    fid_images: set[int] = field(default_factory=set)
    resolution: set[int] = field(default_factory=set)


@dataclass
class RunsSummary:
    present: list[str] = field(default_factory=list)  # run folders with a metrics.json
    missing: list[tuple[str, str]] = field(default_factory=list)  # (run folder, why)
    notes: dict[str, list[str]] = field(default_factory=dict)  # protocol note -> "ds/method"s
    versions: dict[str, list[str]] = field(default_factory=dict)  # JSON of versions -> runs
    weights: dict[str, list[str]] = field(default_factory=dict)  # JSON of weights -> runs
    sizes: dict[tuple[str, str], SetSizes] = field(default_factory=dict)  # (dataset, protocol)
    grayscale: set[str] = field(default_factory=set)  # datasets repeated to RGB
    commits: dict[str, int] = field(default_factory=dict)  # git commit -> number of runs
    gpus: dict[str, int] = field(default_factory=dict)  # hardware -> number of runs


def summarize_runs(plan: Mapping[str, Any], root: Path) -> RunsSummary:
    """What the plan's run folders' metrics.json and run.json say about all runs."""
    out = RunsSummary()
    for path, info in (plan.get("runs") or {}).items():
        metrics, why = read_json(root / path / "metrics.json")
        if metrics is None:
            out.missing.append((path, why or "missing"))
            continue
        out.present.append(path)
        dataset = info.get("dataset", "?")
        note = metrics.get("protocol_notes")
        if note:
            who = f"{dataset}/{info.get('method', '?')}"
            out.notes.setdefault(" ".join(str(note).split()), []).append(who)
        if metrics.get("versions"):
            out.versions.setdefault(json.dumps(metrics["versions"], sort_keys=True), []).append(
                path
            )
        if metrics.get("weights"):
            out.weights.setdefault(json.dumps(metrics["weights"], sort_keys=True), []).append(path)
        if metrics.get("grayscale_repeated_to_rgb"):
            out.grayscale.add(dataset)
        for protocol, values in (metrics.get("protocols") or {}).items():
            sizes = out.sizes.setdefault((dataset, protocol), SetSizes())
            for m in ("ssim", "psnr", "lpips"):
                if isinstance(values.get(m), Mapping) and values[m].get("n") is not None:
                    sizes.images.add(int(values[m]["n"]))
            rfid = values.get("rfid")
            if isinstance(rfid, Mapping) and rfid.get("n") is not None:
                sizes.fid_images.add(int(rfid["n"]))
            if values.get("resolution") is not None:
                sizes.resolution.add(int(values["resolution"]))
        run_json, _ = read_json(root / path / "run.json")
        if run_json:
            commit = str(run_json.get("git_commit"))
            out.commits[commit] = out.commits.get(commit, 0) + 1
            hardware = run_json.get("hardware") or {}
            gpu = str(hardware.get("gpu") or hardware.get("device") or "unknown")
            out.gpus[gpu] = out.gpus.get(gpu, 0) + 1
    return out
