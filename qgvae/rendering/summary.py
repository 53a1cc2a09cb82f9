"""The results as one long table: ``qgvae collect`` writes ``<results>/summary.csv``.

One row per run x protocol x metric, for every run of the plan that has a ``metrics.json`` and
for every floor (mean image) those runs were scored against; the README lists the columns (a
column with no value for a row is empty). The tables, the markdown page, the report and the
figures of numbers read their numbers from this table through :class:`Summary`; metrics.json
and run.json are read here only (figures read images, logs and per-position usage themselves).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, RunFolderError
from ..io import load_plan, read_json, write_text
from .results import seed_of

METRICS = ("ssim", "psnr", "lpips", "rfid", "psnr_shuffled", "psnr_gain_over_floor_db")
METRICS += ("input_dependence_db", "floor_psnr")
PIXEL = ("ssim", "psnr", "lpips")  # metrics with their own n (a mean over images)
# run columns copied from a file: "m." metrics.json, "r." run.json, then the key path
COPIED = {
    "bits_per_image": "m.bits_per_image",
    "code_usage": "m.usage.mean_fraction",
    "steps": "r.steps",
    "images_seen": "r.images_seen",
    "commit": "r.git_commit",
    "epochs": "r.epochs",
    "tokens_per_image_test": "m.tokens_per_image_measured",
    "bits_per_image_test": "m.bits_per_image_measured",
    "floor_run": "m.floor_run",
    "val_floor_psnr": "r.val_floor_psnr",
    "final_val_psnr": "r.final_val_psnr",
    "plateau_step": "r.step_val_psnr_above_floor_by_margin",
    "plateau_margin_db": "r.learned_margin_db",
    "selected_rule": "r.selected.rule",
    "selected_step": "r.selected.step",
}
KEYS = ["run", "dataset", "method", "variant", "seed", "protocol", "metric", "value", "n_images"]
RUN_COLUMNS = ["bits_per_image", "code_usage", "steps", "images_seen", "train_seconds", "device"]
RUN_COLUMNS += ["commit", "resolution", *list(COPIED)[5:], "grayscale_to_rgb", "hardware"]
RUN_COLUMNS += ["train_versions", "eval_versions", "metric_weights", "protocol_notes"]
COLUMNS = KEYS + RUN_COLUMNS
INTEGERS = ("seed", "n_images", "steps", "images_seen", "plateau_step", "selected_step")
TEXT = ("run", "dataset", "method", "variant", "protocol", "metric", "device", "commit")
TEXT += ("resolution", "floor_run", "selected_rule", "hardware", "train_versions")
TEXT += ("eval_versions", "metric_weights", "protocol_notes")
FLOOR = "mean_image"


def _get(data: Mapping[str, Any], path: str) -> Any:
    for key in path.split("."):
        data = data.get(key) if isinstance(data, Mapping) else None
    return data


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _run_attributes(metrics: Mapping[str, Any], rj: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for column, where in COPIED.items():
        value = _get(metrics if where[0] == "m" else rj, where[2:])
        out[column] = value if column in TEXT else _num(value)
    hw, js = rj.get("hardware") or {}, lambda d: json.dumps(d, sort_keys=True) if d else None
    what = hw.get("gpu") if str(hw.get("device", "")).startswith("cuda") else hw.get("cpu")
    keys = ("gpu", "cpu", "cpu_count", "torch_threads", "device", "platform")
    try:
        start, end = (datetime.fromisoformat(rj.get(k)) for k in ("start", "end"))
        out["train_seconds"] = (end - start).total_seconds()
    except (TypeError, ValueError):
        out["train_seconds"] = None
    out["device"] = f"{hw['device']} ({what})" if hw.get("device") and what else hw.get("device")
    out["hardware"] = ", ".join(f"{k} {hw[k]}" for k in keys if hw.get(k) is not None) or None
    out["grayscale_to_rgb"] = bool(metrics.get("grayscale_repeated_to_rgb"))
    out["train_versions"] = js(rj.get("versions"))
    out["eval_versions"] = js(metrics.get("versions"))
    out["metric_weights"] = js(metrics.get("weights"))
    notes = " ".join(str(metrics.get("protocol_notes") or "").split())
    return out | {"floor_run": out["floor_run"] or None, "protocol_notes": notes or None}


def run_rows(
    run: str, info: Mapping[str, Any], metrics: Mapping[str, Any], rj: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The summary rows of one run (``info``: its plan entry)."""
    base = {
        "run": run,
        "dataset": info.get("dataset") or metrics.get("dataset"),
        "method": info.get("method") or metrics.get("method"),
        "variant": info.get("variant"),
        "seed": info.get("seed"),
        **_run_attributes(metrics, rj or {}),
    }
    rows = []
    for protocol, values in (metrics.get("protocols") or {}).items():
        size = values.get("resolution")
        size = "x".join(map(str, size)) if isinstance(size, list) else size
        size = None if size is None else str(size)
        psnr_n = (values.get("psnr") or {}).get("n")
        for metric in (m for m in METRICS if m in values):
            entry = values[metric]
            if isinstance(entry, Mapping):
                value, n = entry.get("value" if metric == "rfid" else "mean"), entry.get("n")
            else:
                value, n = entry, psnr_n
            row = {"protocol": protocol, "metric": metric, "value": _num(value), "n_images": n}
            rows.append({**base, **row, "resolution": size})
    return rows


def _metrics(path: Path) -> dict[str, Any] | None:
    """metrics.json, None when absent; RunFolderError naming the file when unreadable."""
    data, why = read_json(path)
    if data is None and path.is_file():
        raise RunFolderError(f"{path}: {why}; delete it and run `qgvae evaluate` on its run again")
    return data


def collect(plan: Mapping[str, Any] | str | Path, root: str | Path = ".") -> pd.DataFrame:
    """The summary of the plan's runs (run paths relative to ``root``) and of their floors."""
    plan, root = load_plan(plan), Path(root)
    rows, floors = [], []
    for run, info in (plan.get("runs") or {}).items():
        metrics = _metrics(root / run / "metrics.json")
        if metrics is None:
            continue
        rj, _ = read_json(root / run / "run.json")
        rows += run_rows(run, info, metrics, rj)
        if metrics.get("floor_run") and metrics["floor_run"] not in floors:
            floors.append(str(metrics["floor_run"]))
    for floor in floors:
        metrics = _metrics(root / floor / "metrics.json")
        if metrics is not None:
            rows += run_rows(floor, {"method": FLOOR, "variant": Path(floor).name}, metrics, None)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype(dict.fromkeys(INTEGERS, "Int64"))


def notes_path(path: str | Path) -> Path:
    """The file beside a summary that holds its protocol notes (``<stem>_notes.json``)."""
    return Path(path).with_name(Path(path).stem + "_notes.json")


def write_summary(frame: pd.DataFrame, path: str | Path) -> Path:
    """``frame`` as CSV (floats as Python writes them, so they read back exactly). The protocol
    notes (4.6 kB, the same for almost every run) are written once, to :func:`notes_path`, and
    the CSV names them by a digest; :func:`read_summary` puts the text back."""
    frame, texts = frame.copy(), frame["protocol_notes"].dropna().unique()
    digests = {t: hashlib.sha256(t.encode()).hexdigest()[:16] for t in texts}
    frame["protocol_notes"] = frame["protocol_notes"].map(digests)
    write_text(notes_path(path), json.dumps({d: t for t, d in digests.items()}, indent=1) + "\n")
    write_text(path, frame.to_csv(index=False, lineterminator="\n"))
    return Path(path)


def read_summary(path: str | Path) -> pd.DataFrame:
    """A summary.csv; ConfigError naming the file and the fix when absent or not a summary."""
    path, fix = Path(path), "write it with `qgvae collect RESULTS`"
    if not path.is_file():
        raise ConfigError(f"summary file not found: {path}; {fix}")
    try:
        dtypes = dict.fromkeys(INTEGERS, "Int64") | dict.fromkeys(TEXT, str)
        exact = {} if pd.__version__ >= "3" else {"float_precision": "round_trip"}  # 3: default
        frame = pd.read_csv(path, dtype=dtypes, **exact)
    except (ValueError, TypeError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path} is not a summary table ({exc}); {fix}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path} lacks the columns {missing}; {fix}")
    notes, _ = read_json(notes_path(path))
    frame["protocol_notes"] = frame["protocol_notes"].map(lambda d: (notes or {}).get(d, d))
    return frame


@dataclass
class Cell:
    """One table cell under one protocol: its planned runs and the summary rows of those that
    have numbers (``frame``: one row per run, :meth:`Summary.per_run` columns)."""

    cell: dict[str, Any]
    protocol: str
    planned: list[tuple[int | None, str]]  # (seed, run folder)
    frame: pd.DataFrame
    missing: list[tuple[int | None, str, str]] = field(default_factory=list)  # (seed, run, why)

    @property
    def present(self) -> list[tuple[int | None, str]]:
        return [(s, r) for s, r in self.planned if r in self.frame.index]

    def values(self, key: str) -> list[float]:
        if key not in self.frame:
            return []
        return [float(v) for v in self.frame[key] if pd.notna(v)]

    def mean(self, key: str) -> float | None:
        v = self.values(key)
        return float(np.mean(v)) if v else None

    def ns(self, key: str = "n") -> set[int]:
        return {int(v) for v in self.values(key)}

    @property
    def grayscale(self) -> bool:
        return bool(self.frame.get("grayscale_to_rgb", pd.Series(dtype=bool)).fillna(False).any())

    @property
    def floor_runs(self) -> list[str]:
        return list(dict.fromkeys(str(f) for f in self.frame.get("floor_run", []) if pd.notna(f)))


class Summary:
    """The summary table (:func:`collect` / :func:`read_summary`) and the views of it the
    tables, figures, the page and the report use."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._per_run: dict[str, pd.DataFrame] = {}

    @classmethod
    def of(cls, summary: Summary | pd.DataFrame | str | Path) -> Summary:
        if isinstance(summary, Summary):
            return summary
        return cls(summary if isinstance(summary, pd.DataFrame) else read_summary(summary))

    def per_run(self, protocol: str) -> pd.DataFrame:
        """One row per run evaluated under ``protocol`` (index: run): each metric's value, ``n``
        (images of SSIM / PSNR / LPIPS), ``fid_n``, ``usage`` (%) and the run's columns."""
        if protocol not in self._per_run:
            rows = self.frame[self.frame["protocol"] == protocol]
            values = rows.pivot(index="run", columns="metric", values="value")
            pixel = rows[rows["metric"].isin(PIXEL)].dropna(subset=["n_images"])
            attrs = rows.groupby("run", sort=False)[["dataset", "method", *RUN_COLUMNS]].first()
            wide = attrs.join(values.reindex(columns=list(METRICS)).astype(float))
            wide["n"] = pixel.groupby("run")["n_images"].first()
            wide["fid_n"] = rows[rows["metric"] == "rfid"].groupby("run")["n_images"].first()
            wide["usage"] = 100.0 * wide["code_usage"].astype(float)
            self._per_run[protocol] = wide
        return self._per_run[protocol]

    def runs(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per run (index: run) with its columns, optionally only ``names``."""
        frame = self.frame.groupby("run", sort=False)[["dataset", "method", *RUN_COLUMNS]].first()
        return frame if names is None else frame[frame.index.isin(list(names))]

    def cell(self, plan: Mapping[str, Any], cell: Mapping[str, Any], protocol: str) -> Cell:
        planned = [(seed_of(plan, r), r) for r in cell.get("runs", [])]
        wide, known = self.per_run(protocol), set(self.frame["run"])
        present = [r for _, r in planned if r in wide.index]
        missing = [
            (s, r, "no metrics.json" if r not in known else f"protocol {protocol} not evaluated")
            for s, r in planned
            if r not in wide.index
        ]
        return Cell(dict(cell), protocol, planned, wide.loc[present], missing)

    def floor(self, plan: Mapping[str, Any], cells: Sequence[Cell | None], protocol: str):
        """The floor (mean image) the cells' runs were scored against (the first, when they
        name several), as a cell of its own; None when no run names one."""
        floors = list(dict.fromkeys(f for c in cells if c is not None for f in c.floor_runs))
        cell = {"method": FLOOR, "label": "floor", "runs": floors[:1]}
        return self.cell(plan, cell, protocol) if floors else None


def span(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"


def scale_phrase(runs: pd.DataFrame) -> str:
    """How long the given runs (summary rows) trained, so that a table or figure of a toy
    configuration cannot be taken for the paper's experiment."""
    col = lambda k: [float(v) for v in runs.get(k, []) if pd.notna(v)]
    steps, epochs, seen = col("steps"), col("epochs"), col("images_seen")
    if not steps:
        return "Training length unknown (no run.json)."
    text = f"Scale: {span(steps)} optimiser steps per run"
    if epochs:
        text += f" ({span(epochs, '{:.3g}')} epochs"
        text += f", {span(seen)} training images seen)" if seen else ")"
    return text + "."
