"""Training the prior on a prior folder's cached codes, with the tokenizer trainer's habits.

Codes live on the training device (:class:`qgvae.prior.data.CodeLoader`); the precision of
:mod:`qgvae.training.precision` (bf16 autocast on CUDA by default, the loss in fp32); AdamW with
minGPT's decay groups, gradient-norm clipping, a constant learning rate. Progress lines when
stderr is not a terminal, TensorBoard event files in ``tb/``. Files in the prior folder (all
written atomically; ``.pt`` files recorded with their sha256 in ``run.json`` and read back with
``weights_only=True``)::

    run.json             settings, structure, parameters, versions, hardware, attempts, files
    prior_log.jsonl      "train" rows (loss in bits per token, tokens/s, lr) every log_every
                         steps; "test" rows (test NLL in bits per image) every test_every
                         epochs and at every sampled epoch
    checkpoint.pt        model + optimiser + loader position + RNG states (resumable)
    epochs/epochNNNN.pt  the weights at every sampled epoch (sample.epochs)
    prior.pt             the final weights, written last: its presence means training finished

Calling :func:`train_prior` again on the folder resumes from ``checkpoint.pt`` (loaded to the
CPU, on any device); on CPU the result is bit-identical to an uninterrupted run
(tests/test_prior.py). SIGTERM / SIGINT write a checkpoint and stop
(:class:`qgvae.errors.Interrupted`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import machine
from ..errors import Interrupted, RunFolderError, TrainingDiverged
from ..io import write_json
from ..progress import Progress
from ..training.checkpoint import (
    CHECKPOINT,
    RUN_JSON,
    RunLock,
    file_record,
    load_pt,
    read_run_json,
    recorded_sha256,
    remove_stale_temporaries,
    rng_state,
    save_pt,
    set_rng_state,
    truncate_log,
)
from ..training.monitor import BOARD_DIR, Board
from ..training.precision import precision_for
from ..training.trainer import _StopFlag  # SIGTERM/SIGINT -> a flag checked between steps
from .data import CodeLoader, load_codes, structure_of
from .metrics import nll_bits
from .model import Structure, build_prior, decay_groups
from .settings import check_training_settings, training_part

PRIOR_RESULT = "prior.pt"
PRIOR_LOG = "prior_log.jsonl"
SNAPSHOTS = "epochs"


def snapshot_name(epoch: int) -> str:
    return f"{SNAPSHOTS}/epoch{int(epoch):04d}.pt"


def train_prior(
    folder: str | Path,
    settings: Mapping[str, Any],
    *,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) the prior of ``folder`` (holding ``codes_train.npz`` and
    ``codes_test.npz``) with :func:`qgvae.prior.settings.training_settings`-style settings.

    ``stop_after`` ends the call after that many optimiser steps in total, with a checkpoint,
    as a preemption would. Returns the final ``run.json`` content."""
    folder = Path(folder)
    settings = check_training_settings(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with RunLock(folder):
        removed = remove_stale_temporaries(folder)
        for tmp in (folder / SNAPSHOTS).glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(str(tmp.relative_to(folder)))
        return _train_locked(folder, settings, progress, stop_after, removed)


def _resume(folder: Path, settings, structure: Structure, model, optimizer, loader, device):
    path = folder / CHECKPOINT
    fix = f"delete {path} to restart the prior from step 0, or restore the file"
    ckpt = load_pt(path, sha256=recorded_sha256(folder, CHECKPOINT), fix=fix, map_location="cpu")
    if (
        training_part(ckpt.get("settings") or {}) != training_part(settings)
        or ckpt.get("structure") != structure.as_dict()
    ):
        raise RunFolderError(
            f"{path} was written with other settings or codes; delete {folder} to start afresh"
        )
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        loader.load_state_dict(ckpt["loader"])
        note = set_rng_state(ckpt["rng"], device)
        step = int(ckpt["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RunFolderError(f"{path} does not fit this prior ({exc}); {fix}") from None
    truncate_log(folder / PRIOR_LOG, step)
    return step, [*ckpt.get("resumed_from", []), step], note


def _train_locked(folder: Path, settings, progress, stop_after, removed) -> dict[str, Any]:
    tcfg = settings["train"]
    device = machine.resolve_device(tcfg["device"])
    precision = precision_for(device, tcfg)
    precision.apply()
    machine.seed_everything(int(settings["seed"]))
    train_codes, books, k = load_codes(folder, "train")
    test_codes, test_books, _ = load_codes(folder, "test")
    if test_books != books:
        raise RunFolderError(f"{folder}: train and test codes name different codebooks")
    structure = structure_of(train_codes, test_codes, books, k)
    model = build_prior(structure, settings["prior"]).to(device)
    train_sym = model.to_symbols(torch.from_numpy(train_codes).long()).to(device)
    test_sym = model.to_symbols(torch.from_numpy(test_codes).long()).to(device)
    loader = CodeLoader(train_sym, batch_size=tcfg["batch_size"], seed=int(settings["seed"]))
    per_epoch = len(loader)
    snapshot_at = {e * per_epoch: e for e in settings["epochs"]}
    steps = max(snapshot_at)
    kwargs = {"lr": tcfg["lr"], "betas": tuple(tcfg["adam_betas"])}
    if device.type == "cuda":
        kwargs["fused"] = True
    optimizer = torch.optim.AdamW(decay_groups(model, tcfg["weight_decay"]), **kwargs)
    forward = torch.compile(model) if tcfg["compile"] else model

    previous = read_run_json(folder)
    step, resumed_from, note = 0, [], None
    if (folder / CHECKPOINT).exists():
        step, resumed_from, note = _resume(
            folder, settings, structure, model, optimizer, loader, device
        )
        if note:
            print(f"qgvae prior: note: {note}", file=sys.stderr)
    else:
        (folder / PRIOR_LOG).unlink(missing_ok=True)
        previous = None
    now = machine.now()
    meta: dict[str, Any] = {
        "settings": dict(settings),
        "structure": structure.as_dict(),
        "git_commit": machine.git_commit(),
        "versions": machine.package_versions(),
        "hardware": machine.hardware(str(device)),
        "precision": precision.record(),
        "start": (previous or {}).get("start", now),
        "end": None,
        "status": "running",
        "steps": steps,
        "steps_per_epoch": per_epoch,
        "train_sequences": len(train_codes),
        "test_sequences": len(test_codes),
        "parameters": sum(p.numel() for p in model.parameters()),
        "resumed_from": resumed_from,
        "attempts": [
            *(previous or {}).get("attempts", []),
            {"start": now, "from_step": step, **({"note": note} if note else {})},
        ],
        "tensorboard": BOARD_DIR,
        "files": dict((previous or {}).get("files") or {}),
    }
    if removed:
        meta["stale_temporaries_removed"] = removed
    write_json(folder / RUN_JSON, meta)

    def save(name: str, blob: dict[str, Any]) -> None:
        def before_replace(sha: str) -> None:
            file_record(meta, name, sha, step=step)
            write_json(folder / RUN_JSON, meta)

        save_pt(folder / name, blob, before_replace)

    def weights(**extra: Any) -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "structure": structure.as_dict(),
            "settings": dict(settings),
            "step": step,
            **extra,
        }

    def checkpoint() -> None:
        save(
            CHECKPOINT,
            weights(
                optimizer=optimizer.state_dict(),
                loader=loader.state_dict(),
                rng=rng_state(device),
                resumed_from=resumed_from,
            ),
        )

    bad = torch.full((), -1, dtype=torch.long, device=device)

    def check_finite() -> None:
        if int(bad.item()) >= 0:
            meta.update(status="diverged", end=machine.now(), diverged_at_step=int(bad.item()))
            write_json(folder / RUN_JSON, meta)
            raise TrainingDiverged(
                f"prior loss became NaN/inf at step {int(bad.item())}; lower generation.train.lr"
            )

    tokens = tcfg["batch_size"] * structure.num_tokens
    bar = Progress(
        steps,
        what=f"prior {folder}",
        initial=step,
        per_unit=tokens,
        rate_unit="tokens",
        show=progress,
    )
    board = Board(folder / BOARD_DIR, purge_step=step if resumed_from else None)
    t_last, step_last = time.perf_counter(), step
    model.train()
    with open(folder / PRIOR_LOG, "a", buffering=1) as log, _StopFlag() as stop:
        try:
            while step < steps:
                for symbols in loader:
                    with precision.autocast():
                        logits = forward(symbols)
                    loss = F.cross_entropy(logits.float().flatten(0, 1), symbols.flatten())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if tcfg["grad_clip"]:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
                    optimizer.step()
                    bad.copy_(
                        torch.where((bad < 0) & ~torch.isfinite(loss.detach()), step + 1, bad)
                    )
                    step += 1
                    bar.update(1)
                    if step % tcfg["log_every"] == 0 or step == steps:
                        check_finite()
                        elapsed = time.perf_counter() - t_last
                        bits = loss.item() / math.log(2)
                        row = {
                            "split": "train",
                            "step": step,
                            "epoch": step / per_epoch,
                            "bits_per_token": bits,
                            "bits_per_image": bits * structure.num_tokens,
                            "tokens_per_s": (step - step_last) * tokens / max(elapsed, 1e-9),
                            "lr": float(optimizer.param_groups[0]["lr"]),
                        }
                        log.write(json.dumps(row) + "\n")
                        board.scalars(step, row, prefix="train/")
                        bar.update(0, bits_per_token=bits)
                        t_last, step_last = time.perf_counter(), step
                    epoch = step // per_epoch if step % per_epoch == 0 else None
                    if epoch and (epoch % tcfg["test_every"] == 0 or step in snapshot_at):
                        check_finite()
                        nll = nll_bits(model, test_sym)
                        row = {
                            "split": "test",
                            "step": step,
                            "epoch": epoch,
                            "nll_bits_per_image": float(nll.mean()),
                            "nll_bits_per_token": float(nll.mean()) / structure.num_tokens,
                            "n": len(nll),
                        }
                        log.write(json.dumps(row) + "\n")
                        board.scalars(step, row, prefix="test/")
                        t_last, step_last = time.perf_counter(), step
                    if step in snapshot_at:
                        save(snapshot_name(snapshot_at[step]), weights(epoch=snapshot_at[step]))
                    if step % tcfg["checkpoint_every"] == 0:
                        check_finite()
                        checkpoint()
                    if stop.signal is not None or (stop_after is not None and step >= stop_after):
                        check_finite()
                        checkpoint()
                        if stop.signal is not None:
                            raise Interrupted(
                                f"signal {stop.signal} at step {step}: checkpoint written to "
                                f"{folder / CHECKPOINT}; rerun to resume"
                            )
                        return meta
                    if step >= steps:
                        break
        finally:
            bar.close()
            board.close()
    check_finite()
    checkpoint()
    save(PRIOR_RESULT, weights(epoch=steps // per_epoch))
    meta.update(status="finished", end=machine.now())
    write_json(folder / RUN_JSON, meta)
    return meta


def load_prior(folder: str | Path, name: str, device: str | torch.device = "cpu"):
    """A saved prior (``prior.pt`` or a snapshot) of a prior folder, in eval mode, and its blob
    (settings, structure, step, epoch); the file is verified against ``run.json``."""
    folder = Path(folder)
    fix = f"retrain the prior with `qgvae prior train {folder}`"
    blob = load_pt(
        folder / name, sha256=recorded_sha256(folder, name), fix=fix, map_location=device
    )
    try:
        structure = Structure.from_dict(blob["structure"])
        model = build_prior(structure, blob["settings"]["prior"]).to(device)
        model.load_state_dict(blob["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RunFolderError(
            f"{folder / name} is not a prior of this version ({exc}); {fix}"
        ) from None
    return model.eval(), blob
