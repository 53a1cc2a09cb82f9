"""Whether a run's ``metrics.json`` is current: what it was computed from (the sha256 of the
reconstructions and of the floor's, the protocols, ``fid_n``, the protocol notes), recorded as
its ``inputs`` and compared before an evaluation is repeated (``qgvae evaluate
--skip-current``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import hash_file
from .protocols import PROTOCOL_NOTES, PROTOCOLS, normalize_protocols

METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "metrics_per_image.csv"


def evaluation_inputs(
    run_dir: str | Path,
    *,
    protocols: Sequence[str] = PROTOCOLS,
    fid_n: int | None = None,
    floor_dir: str | Path | None = None,
) -> dict[str, Any]:
    """What a run's metrics.json depends on: the sha256 of its reconstructions (and of the
    floor's), the protocols and fid_n. Recorded as metrics.json's ``inputs``."""
    floor = None if floor_dir is None else Path(floor_dir) / "reconstructions.npz"
    return {
        "reconstructions_sha256": hash_file(Path(run_dir) / "reconstructions.npz"),
        "floor_sha256": hash_file(floor) if floor is not None and floor.is_file() else None,
        "protocols": list(normalize_protocols(protocols)),
        "fid_n": fid_n,
        "protocol_notes_sha256": _notes_digest(),
    }


def _notes_digest() -> str:
    return hashlib.sha256("\n".join(PROTOCOL_NOTES).encode()).hexdigest()[:16]


def is_current(run_dir: str | Path, inputs: dict[str, Any]) -> bool:
    """Whether ``run_dir/metrics.json`` was computed from exactly ``inputs``."""
    path = Path(run_dir) / METRICS_FILE
    try:
        return json.loads(path.read_text()).get("inputs") == inputs
    except (OSError, ValueError, AttributeError):
        return False
