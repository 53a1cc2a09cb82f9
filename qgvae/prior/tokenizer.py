"""Which tokenizer weights a prior is trained on: matched reconstruction quality.

The paper caps VQ-VAE and QG-VAE "at the same reconstruction quality" before training the
prior on their codes. A tokenizer run trained with ``train.keep_checkpoints: true`` keeps the
weights of every validation pass (``<run>/checkpoints/stepNNNNNNN.pt``) and logs that pass's
validation PSNR in ``train_log.jsonl``. A target PSNR picks, per run, the *first* validation
pass whose PSNR reaches it.

``match_psnr``
    a number   the target in dB (validation PSNR: mean per-image PSNR on the validation split
               at native resolution, as the trainer logs it);
    ``"auto"``  the highest PSNR every tokenizer of the comparison reaches: the minimum over the
               runs of their best validation PSNR (so the weaker tokenizer is used at its best);
    ``None``   no matching: each run's final ``model.pt``.

The choice is written to the prior folder's ``tokenizer.json`` (run, file, its sha256, step,
validation PSNR, target), and every later step loads the tokenizer from there, verifying the
file against the sha256 that the tokenizer run's ``run.json`` records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, RunFolderError
from ..methods import build_model
from ..training.checkpoint import KEPT, LOG, RESULT, load_pt, read_run_json, recorded_sha256

TOKENIZER_FILE = "tokenizer.json"


def validation_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ``split: val`` rows of a run's ``train_log.jsonl`` (step order)."""
    path = Path(run_dir) / LOG
    if not path.is_file():
        raise RunFolderError(f"{path} not found; train the run with `qgvae train --out {run_dir}`")
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("split") == "val" and "psnr" in row:
            rows.append(row)
    return sorted(rows, key=lambda r: int(r["step"]))


def kept_name(step: int) -> str:
    """The kept checkpoint of a validation step, relative to the run folder."""
    return f"{KEPT}/step{int(step):07d}.pt"


def kept_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """Validation rows whose weights were kept; RunFolderError when there are none."""
    run_dir = Path(run_dir)
    rows = [r for r in validation_rows(run_dir) if (run_dir / kept_name(r["step"])).is_file()]
    if not rows:
        raise RunFolderError(
            f"{run_dir} kept no checkpoints ({run_dir / KEPT}/ is empty): matching on "
            "reconstruction quality needs the run trained with train.keep_checkpoints: true "
            "(or set generation.match_psnr: null to use model.pt)"
        )
    return rows


def auto_target(run_dirs: Sequence[str | Path]) -> float:
    """The highest validation PSNR that every run reaches at a kept checkpoint."""
    return min(max(float(r["psnr"]) for r in kept_rows(run)) for run in run_dirs)


def choose(
    run_dir: str | Path, match_psnr: float | str | None, others: Sequence[str | Path] = ()
) -> dict[str, Any]:
    """The tokenizer weights of ``run_dir`` for a target (see the module docstring).

    ``others`` are the runs compared with it (``"auto"`` takes the target over all of them).
    Returns the ``tokenizer.json`` record.
    """
    run_dir = Path(run_dir)
    if match_psnr is None:
        meta = read_run_json(run_dir) or {}
        step = (meta.get("selected") or {}).get("step")
        psnr = next((float(r["psnr"]) for r in validation_rows(run_dir) if r["step"] == step), None)
        return {
            "run": str(run_dir),
            "file": RESULT,
            "step": step,
            "val_psnr": psnr,
            "target_psnr": None,
            "rule": "final weights (model.pt)",
        }
    if match_psnr == "auto":
        target = auto_target([run_dir, *others])
        rule = "auto: the highest validation PSNR every tokenizer reaches"
    else:
        target = float(match_psnr)
        rule = "first validation pass reaching generation.match_psnr"
    rows = kept_rows(run_dir)
    hit = next((r for r in rows if float(r["psnr"]) >= target), None)
    if hit is None:
        best = max(rows, key=lambda r: float(r["psnr"]))
        raise ConfigError(
            f"generation.match_psnr: {run_dir} never reaches {target:.3f} dB on validation "
            f"(best {float(best['psnr']):.3f} dB at step {best['step']}); lower it or use auto"
        )
    return {
        "run": str(run_dir),
        "file": kept_name(hit["step"]),
        "step": int(hit["step"]),
        "epoch": hit.get("epoch"),
        "val_psnr": float(hit["psnr"]),
        "val_n": hit.get("n"),
        "target_psnr": target,
        "compared_with": [str(o) for o in others],
        "rule": rule,
    }


def load_tokenizer(record: Mapping[str, Any], device: str | torch.device = "cpu"):
    """The tokenizer of a ``tokenizer.json`` record, in eval mode, and its run config.

    The file is checked against the sha256 its run's ``run.json`` records (and, when given,
    the one ``tokenizer.json`` recorded when the codes were made)."""
    run_dir = Path(record["run"])
    path = run_dir / record["file"]
    fix = f"retrain {run_dir} or delete the prior folder's {TOKENIZER_FILE} to re-encode"
    accepted = recorded_sha256(run_dir, record["file"])
    if record.get("sha256"):
        accepted = {record["sha256"]} if accepted is None else accepted & {record["sha256"]}
        if not accepted:
            raise RunFolderError(f"{path} changed since its codes were made; {fix}")
    blob = load_pt(path, sha256=accepted, fix=fix, map_location=device)
    if not isinstance(blob.get("config"), dict) or not isinstance(blob.get("model"), dict):
        raise RunFolderError(f"{path} lacks its config or weights; {fix}")
    model = build_model(blob["config"]).to(device)
    try:
        model.load_state_dict(blob["model"])
    except (RuntimeError, KeyError) as exc:
        raise RunFolderError(f"{path}: weights do not fit its config ({exc}); {fix}") from None
    return model.eval(), blob["config"]


def file_sha256(record: Mapping[str, Any]) -> str | None:
    """The sha256 ``run.json`` records for the chosen file (the current one)."""
    meta = read_run_json(record["run"]) or {}
    return ((meta.get("files") or {}).get(record["file"]) or {}).get("sha256")
