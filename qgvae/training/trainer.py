"""The trainer shared by QG-VAE and every baseline.

One forward pass per optimiser step on batches drawn from uint8 tensors that live on the training
device; bf16 autocast on CUDA (the quantisers keep their distances in fp32); fused AdamW where
available; optional ``torch.compile``. A checkpoint is written atomically every
``train.checkpoint_every`` steps, on SIGTERM/SIGINT (preemption), and at the end; calling
:func:`train` again on the same run folder resumes from it and, on CPU, reaches bit-identical
weights to an uninterrupted run. ``model.pt`` (the result) is written last, so its presence means
the run finished; a NaN/inf loss stops the run without writing it.

Files in the run folder::

    config.yaml       the resolved run config
    run.json          config, seed, git commit, package versions, hardware, start/end, steps,
                      every attempt, and the sha256 of checkpoint.pt and model.pt
    train_log.jsonl   one JSON row per logged step ("split": "train") and per validation ("val")
    checkpoint.pt     model + optimiser + scheduler + loader position + RNG states
    best.pt           (train.select: best_val) weights of the lowest validation val_metric
    checkpoints/      (train.keep_checkpoints) weights at every validation step, stepNNNNNNN.pt
    model.pt          the result, written last, atomically: the final weights, or best.pt's
                      with ``select: best_val`` (VQ-WAE and SQ-VAE evaluate their best.pt)

The folder is locked while a run trains in it; files are read with ``weights_only=True`` after
their recorded sha256 is checked (see :mod:`qgvae.training.checkpoint`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import config as run_config
from .. import machine
from ..data import DeviceLoader, dataset_info, load_split
from ..errors import Interrupted, RunFolderError, TrainingDiverged
from ..io import write_json, write_text
from ..methods import build_model
from .checkpoint import (
    BEST,
    CHECKPOINT,
    KEPT,
    LOG,
    RESULT,
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
from .schedule import make_optimizer, make_scheduler, steps_every_step, total_steps
from .validation import (
    autocast,
    floor_psnr,
    progress_summary,
    validate,
    validation_images,
)

# ----------------------------------------------------------------------------- helpers


def batch_usage(codes: torch.Tensor, codebook_size: int) -> float:
    """Mean over token positions of the fraction of codewords used in this batch."""
    valid = codes >= 0
    t = codes.shape[1]
    onehot = torch.zeros(t, codebook_size + 1, device=codes.device, dtype=torch.bool)
    idx = torch.where(valid, codes, codebook_size)
    onehot[torch.arange(t, device=codes.device).expand_as(idx), idx] = True
    return onehot[:, :codebook_size].float().sum(1).div(codebook_size).mean().item()


# ----------------------------------------------------------------------------- training


def train_step(
    forward,
    model,
    optimizer,
    x: torch.Tensor,
    *,
    device: torch.device,
    amp: str,
    grad_clip: float | None,
):
    """One optimiser step: exactly one forward pass, backward, optional clipping, update.

    Gradients are left in place (``zero_grad`` happens before the backward pass) so that
    ``model.after_step`` can read them (QG-VAE accumulates codebook gradient magnitudes).
    """
    with autocast(device, amp):
        output = forward(x)
    loss = output.loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return output, loss


class _StopFlag:
    """Turns SIGTERM/SIGINT into a flag the loop checks at the next step boundary."""

    def __init__(self):
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(
    cfg: Mapping[str, Any],
    out: str | Path,
    *,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train one resolved run config into ``out``; resume when ``out`` holds a checkpoint.

    ``stop_after`` ends the call after that many optimiser steps in total (with a checkpoint),
    as a preemption would; tests use it to check resume equivalence.
    Returns the final ``run.json`` content. The run folder is locked while this runs.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        removed = remove_stale_temporaries(out)
        return _train_locked(
            cfg, out, progress=progress, stop_after=stop_after, removed_temporaries=removed
        )


def _resume(cfg, out: Path, device, model, optimizer, scheduler, loader):
    """Load ``checkpoint.pt`` (verified) into the fresh objects.

    Returns ``(step, resumed_from, torn log rows, best validation so far)``."""
    ckpt_path = out / CHECKPOINT
    fix = (
        f"delete {ckpt_path} to restart this run from step 0 (the log is rewritten), or "
        "restore the file"
    )
    ckpt = load_pt(ckpt_path, sha256=recorded_sha256(out, CHECKPOINT), fix=fix, map_location=device)
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
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        loader.load_state_dict(ckpt["loader"])
        set_rng_state(ckpt["rng"])
        step = int(ckpt["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RunFolderError(
            f"{ckpt_path} is incomplete or does not fit this run "
            f"({type(exc).__name__}: {str(exc)[:200]}); {fix}"
        ) from None
    resumed_from = [*list(ckpt.get("resumed_from", [])), step]
    torn = truncate_log(out / LOG, step)
    return step, resumed_from, torn, ckpt.get("best")


def _read_val_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict) and row.get("split") == "val":
                    rows.append(row)
    return rows


def _train_locked(
    cfg: Mapping[str, Any],
    out: Path,
    *,
    progress: bool | None,
    stop_after: int | None,
    removed_temporaries: list[str],
) -> dict[str, Any]:
    train_cfg = cfg["train"]
    device = machine.resolve_device(train_cfg["device"])
    machine.seed_everything(int(cfg["seed"]))
    info = dataset_info(cfg["dataset"])
    previous = read_run_json(out)  # a corrupt run.json stops here, before any work

    # Data: uint8 on the device once; batches are sliced and converted there.
    train_u8 = load_split(cfg["dataset"], cfg["data_root"], "train").to(device)
    val_u8 = load_split(cfg["dataset"], cfg["data_root"], "val").to(device)
    loader = DeviceLoader(train_u8, batch_size=train_cfg["batch_size"], seed=int(cfg["seed"]))
    steps = total_steps(train_cfg, len(loader))
    val_batch = max(train_cfg["batch_size"], 256)
    val_u8 = validation_images(val_u8, val_batch, train_cfg["val_batches"])
    floor = floor_psnr(train_u8, val_u8)
    val_metric = train_cfg["val_metric"]

    model = build_model(cfg).to(device)
    optimizer = make_optimizer(model, train_cfg, device)
    scheduler = make_scheduler(optimizer, train_cfg, steps)
    per_step_schedule = steps_every_step(scheduler)
    forward = torch.compile(model) if train_cfg["compile"] else model

    step, resumed_from, torn, best = 0, [], 0, None
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        step, resumed_from, torn, best = _resume(
            cfg, out, device, model, optimizer, scheduler, loader
        )
    else:
        (out / LOG).unlink(missing_ok=True)
        previous = None  # a fresh start: nothing of an earlier attempt is kept

    now = machine.now()
    attempts = list((previous or {}).get("attempts", []))
    attempts.append({"start": now, "from_step": step})
    meta: dict[str, Any] = {
        "config": dict(cfg),
        "seed": int(cfg["seed"]),
        "git_commit": machine.git_commit(),
        "versions": machine.package_versions(),
        "hardware": machine.hardware(str(device)),
        "start": (previous or {}).get("start", now),
        "end": None,
        "status": "running",
        "steps": steps,
        "steps_per_epoch": len(loader),
        "epochs": steps / len(loader),
        "train_images": len(train_u8),
        "val_images": len(val_u8),
        "images_seen": steps * train_cfg["batch_size"],
        "image_size": info.size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "num_tokens": model.num_tokens,
        "codebook_size": model.codebook_size,
        "bits_per_image": model.bits_per_image(),
        "val_floor_psnr": floor,
        "resumed_from": resumed_from,
        "attempts": attempts,
        "files": dict((previous or {}).get("files") or {}),
    }
    if torn:
        meta["log_rows_dropped_unreadable"] = torn
    if removed_temporaries:
        meta["stale_temporaries_removed"] = removed_temporaries
    write_text(out / "config.yaml", yaml.safe_dump(dict(cfg), sort_keys=False))
    write_json(out / RUN_JSON, meta)

    def record(name: str, **extra: Any):
        def before_replace(sha: str) -> None:
            file_record(meta, name, sha, **extra)
            write_json(out / RUN_JSON, meta)

        return before_replace

    def save_weights(name: str, **extra: Any) -> None:
        blob = {"model": model.state_dict(), "config": dict(cfg), "step": step, **extra}
        save_pt(out / name, blob, record(name, step=step))

    def save_checkpoint() -> None:
        blob = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler else None,
            "loader": loader.state_dict(),
            "rng": rng_state(),
            "step": step,
            "config": dict(cfg),
            "resumed_from": resumed_from,
            "best": best,
        }
        save_pt(ckpt_path, blob, record(CHECKPOINT, step=step))

    def after_validation(v: dict[str, float]) -> None:
        nonlocal best
        if scheduler is not None and not per_step_schedule:
            scheduler.step(v[val_metric])
        if train_cfg["keep_checkpoints"]:
            save_weights(f"{KEPT}/step{step:07d}.pt", val=v)
        if train_cfg["select"] == "best_val" and (best is None or v[val_metric] <= best["value"]):
            best = {"step": step, "value": v[val_metric], "metric": val_metric, "val": v}
            save_weights(BEST, val=v)

    bad_step = torch.full((), -1, dtype=torch.long, device=device)  # first non-finite step

    def check_finite() -> None:
        first = int(bad_step.item())
        if first >= 0:
            meta.update(status="diverged", end=machine.now(), diverged_at_step=first)
            write_json(out / RUN_JSON, meta)
            raise TrainingDiverged(
                f"loss became NaN/inf at step {first}; no result written "
                f"(lower train.lr or enable train.grad_clip)"
            )

    log_fh = open(out / LOG, "a", buffering=1)  # noqa: SIM115 - closed in the finally below
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm import tqdm

    bar = tqdm(total=steps, initial=step, disable=not show, unit="step", dynamic_ncols=True)
    val_every = train_cfg["val_every"] or len(loader)
    t_last, step_last = time.perf_counter(), step
    model.train()
    with _StopFlag() as stop:
        try:
            while step < steps:
                for x in loader:
                    output, loss = train_step(
                        forward,
                        model,
                        optimizer,
                        x,
                        device=device,
                        amp=train_cfg["amp"],
                        grad_clip=train_cfg["grad_clip"],
                    )
                    bad_step.copy_(
                        torch.where(
                            (bad_step < 0) & ~torch.isfinite(loss.detach()), step + 1, bad_step
                        )
                    )
                    step += 1
                    extra = model.after_step(step)  # sees this step's gradients (resets)
                    if per_step_schedule:
                        scheduler.step()
                    bar.update(1)

                    if step % train_cfg["log_every"] == 0 or step == steps:
                        check_finite()
                        now = time.perf_counter()
                        row = {
                            "split": "train",
                            "step": step,
                            "epoch": loader.epoch,
                            "loss": loss.item(),
                            **{k: v.item() for k, v in output.losses.items()},
                            **{k: float(v) for k, v in output.stats.items()},
                            **{k: float(v) for k, v in extra.items()},
                            "usage": batch_usage(output.codes, model.codebook_size),
                            "images_per_s": (step - step_last) * x.shape[0] / (now - t_last),
                            "lr": optimizer.param_groups[0]["lr"],
                        }
                        log_fh.write(json.dumps(row) + "\n")
                        bar.set_postfix(loss=f"{row['loss']:.4f}")
                        t_last, step_last = time.perf_counter(), step
                    if step % val_every == 0 or step == steps:
                        check_finite()
                        v = validate(
                            model,
                            val_u8,
                            batch_size=val_batch,
                            device=device,
                            amp=train_cfg["amp"],
                            with_loss=val_metric == "loss",
                        )
                        row = {"split": "val", "step": step, "epoch": loader.epoch, **v}
                        log_fh.write(json.dumps(row) + "\n")
                        after_validation(v)
                        t_last, step_last = time.perf_counter(), step
                    if step % train_cfg["checkpoint_every"] == 0:
                        check_finite()
                        save_checkpoint()
                    if stop.signal is not None or (stop_after is not None and step >= stop_after):
                        check_finite()
                        save_checkpoint()
                        if stop.signal is not None:
                            raise Interrupted(
                                f"signal {stop.signal} at step {step}: checkpoint "
                                f"written to {ckpt_path}; rerun to resume"
                            )
                        return meta
                    if step >= steps:
                        break
        finally:
            bar.close()
            log_fh.close()

    check_finite()
    save_checkpoint()
    meta.update(progress_summary(_read_val_rows(out / LOG), floor))
    if train_cfg["select"] == "best_val" and best is not None:
        fix = f"delete {out} and train again"
        blob = load_pt(out / BEST, sha256=recorded_sha256(out, BEST), fix=fix)
        model.load_state_dict(blob["model"])
        meta["selected"] = {"rule": "best_val", **best}
    else:
        meta["selected"] = {"rule": "final", "step": step}
    result = {"model": model.state_dict(), "config": dict(cfg), "step": step}
    result["selected_step"] = meta["selected"]["step"]
    save_pt(out / RESULT, result, record(RESULT, step=meta["selected"]["step"]))
    meta.update(status="finished", end=machine.now())
    write_json(out / RUN_JSON, meta)
    return meta
