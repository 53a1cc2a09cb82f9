"""Reading files under ``results/``: the plan, the paper values, what the figures draw from
run folders besides numbers (images, logs, per-position code usage; numbers come from the
summary table, :mod:`qgvae.rendering.summary`), and the display names of methods and datasets
(those ``build_plan`` recorded in ``plan["names"]``, else the registries': a method class's
``display_name``, with the class a run config's ``method_class`` names; unknown keys as they
are). Nothing here writes; a missing or unreadable file gives ``(None, reason)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import display_name as registry_dataset_name
from ..errors import DataError
from ..io import read_json
from ..methods import display_name as method_display_name

DDOF = 1  # the spread over seeds is numpy's std with this ddof (sample standard deviation)


def paper_values_of(paper_values: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    """The paper values given as a mapping, a YAML path or None (-> {})."""
    import yaml

    if paper_values is None or isinstance(paper_values, Mapping):
        return dict(paper_values or {})
    return yaml.safe_load(Path(paper_values).read_text()) or {}


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


def read_log(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines log (train_log.jsonl); partial or corrupt lines are skipped."""

    def row(line: str) -> Any:
        try:
            return json.loads(line)
        except ValueError:
            return None

    try:
        return [r for r in map(row, path.read_text().splitlines()) if isinstance(r, dict)]
    except OSError:
        return []


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


def plan_methods(plan: Mapping[str, Any]) -> dict[str, str | None]:
    """``{method: method_class or None}`` in the order methods first appear in the plan
    (its tables' cells, then its runs)."""
    specs: dict[str, str | None] = {}
    for info in (plan.get("runs") or {}).values():
        if info.get("method") and specs.get(info["method"]) is None:
            specs[info["method"]] = (info.get("config") or {}).get("method_class")
    order = [c["method"] for cells in (plan.get("tables") or {}).values() for c in cells]
    return {m: specs.get(m) for m in dict.fromkeys(order + list(specs))}


def dataset_display_name(dataset: str) -> str:
    try:
        return registry_dataset_name(dataset)
    except DataError:
        return dataset


@dataclass(frozen=True)
class Names:
    """``{key: display name}`` of methods (in plan order) and datasets."""

    methods: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_plan(cls, plan: Mapping[str, Any]) -> Names:
        recorded = plan.get("names") or {}  # build_plan records them: no model code needed
        if recorded.get("methods") is not None and recorded.get("datasets") is not None:
            methods = {m: recorded["methods"].get(m, m) for m in plan_methods(plan)}
            return cls(methods=methods, datasets=dict(recorded["datasets"]))
        cells = [c for cells in (plan.get("tables") or {}).values() for c in cells]
        runs = list((plan.get("runs") or {}).values())
        datasets = dict.fromkeys([c["dataset"] for c in cells] + [r["dataset"] for r in runs])
        methods = {m: method_display_name(m, spec) for m, spec in plan_methods(plan).items()}
        return cls(methods=methods, datasets={d: dataset_display_name(d) for d in datasets})

    def method(self, method: str) -> str:
        if method in self.methods:
            return self.methods[method]
        return "Mean image" if method == "mean_image" else method_display_name(method)

    def dataset(self, dataset: str) -> str:
        return self.datasets.get(dataset) or dataset_display_name(dataset)
