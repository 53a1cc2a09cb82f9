"""Reading files under ``results/``: the plan, the paper values, and what the figures draw from
run folders besides numbers (images, logs, per-position code usage). Numbers come from the
summary table (:mod:`qgvae.rendering.summary`). Nothing here writes; a missing or unreadable
file gives ``(None, reason)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DDOF = 1  # the spread over seeds is numpy's std with this ddof (sample standard deviation)


def paper_values_of(paper_values: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    """The paper values given as a mapping, a YAML path or None (-> {})."""
    import yaml

    if paper_values is None or isinstance(paper_values, Mapping):
        return dict(paper_values or {})
    return yaml.safe_load(Path(paper_values).read_text()) or {}


def load_plan(plan: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    """The plan given as a mapping or as the path of its JSON file."""
    return plan if isinstance(plan, Mapping) else json.loads(Path(plan).read_text())


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(data, None) or (None, reason); never raises."""
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable {path.name} ({type(exc).__name__})"
    return (
        (data, None)
        if isinstance(data, dict)
        else (None, f"unreadable {path.name} (not an object)")
    )


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
    rows = []
    try:
        text = path.read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


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
