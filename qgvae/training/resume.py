"""Resuming a run: ``checkpoint.pt`` loaded to the CPU, verified, and moved into the fresh
model, optimiser, scheduler and loader of this attempt, on whatever device it runs."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from .. import config as run_config
from ..errors import RunFolderError
from .checkpoint import CHECKPOINT, LOG, load_pt, recorded_sha256, set_rng_state, truncate_log


def resume(cfg, out: Path, device, model, optimizer, scheduler, loader):
    """Load ``checkpoint.pt`` (verified) to the CPU and move it into the fresh objects.

    Returns ``(step, resumed_from, torn log rows, best validation so far, note)``; ``note`` says
    what of the random state could not be restored as saved (None when all of it was)."""
    ckpt_path = out / CHECKPOINT
    fix = (
        f"delete {ckpt_path} to restart this run from step 0 (the log is rewritten), or "
        "restore the file"
    )
    ckpt = load_pt(ckpt_path, sha256=recorded_sha256(out, CHECKPOINT), fix=fix, map_location="cpu")
    if not isinstance(ckpt.get("config"), dict):
        raise RunFolderError(f"{ckpt_path} has no run config; {fix}")
    if run_config.training_part(ckpt["config"], keep_seed=True) != run_config.training_part(
        cfg, keep_seed=True
    ):
        raise RunFolderError(
            f"{ckpt_path} was written by a different configuration; delete the run folder "
            "(or pick another --out) to start afresh"
        )
    try:
        model.load_state_dict(ckpt["model"])  # copies into the parameters on their device
        optimizer.load_state_dict(ckpt["optimizer"])  # moves its state to the parameters' device
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        loader.load_state_dict(ckpt["loader"])
        note = set_rng_state(ckpt["rng"], device)
        step = int(ckpt["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RunFolderError(
            f"{ckpt_path} is incomplete or does not fit this run "
            f"({type(exc).__name__}: {str(exc)[:200]}); {fix}"
        ) from None
    resumed_from = [*list(ckpt.get("resumed_from", [])), step]
    torn = truncate_log(out / LOG, step)
    return step, resumed_from, torn, ckpt.get("best"), note


def read_val_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict) and row.get("split") == "val":
                    rows.append(row)
    return rows
