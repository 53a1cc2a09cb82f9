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
    model.pt          final weights + config (written last, atomically)

The folder is locked while a run trains in it; files are read with ``weights_only=True`` after
their recorded sha256 is checked (see :mod:`qgvae.training.checkpoint`).
"""

from __future__ import annotations

import contextlib
import json
import math
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
    CHECKPOINT,
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

# ----------------------------------------------------------------------------- helpers


def autocast(device: torch.device, amp: str):
    """bf16 autocast on CUDA when enabled; a no-op elsewhere (CPU runs stay fp32, deterministic)."""
    if device.type == "cuda" and amp == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: torch.nn.Module, train_cfg: Mapping[str, Any], device: torch.device):
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[train_cfg["optimizer"]]
    kwargs: dict[str, Any] = {"lr": train_cfg["lr"], "weight_decay": train_cfg["weight_decay"]}
    if device.type == "cuda":
        kwargs["fused"] = True  # one kernel for the whole update instead of one per tensor
    return cls(model.parameters(), **kwargs)


def make_scheduler(optimizer, train_cfg: Mapping[str, Any]):
    if train_cfg["lr_schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=5
        )
    return None


def total_steps(train_cfg: Mapping[str, Any], steps_per_epoch: int) -> int:
    steps = math.ceil(train_cfg["epochs"] * steps_per_epoch)
    if train_cfg.get("max_steps"):
        steps = min(steps, int(train_cfg["max_steps"]))
    return max(steps, 1)


@torch.no_grad()
def validate(
    model,
    images_u8: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device,
    amp: str,
    max_batches: int | None = None,
) -> dict[str, float]:
    """Mean MSE and mean per-image PSNR (data range 1) on a uint8 split, in eval mode."""
    was_training = model.training
    model.eval()
    se_sum = torch.zeros((), device=device, dtype=torch.float64)
    psnr_sum = torch.zeros((), device=device, dtype=torch.float64)
    n = 0
    for i, start in enumerate(range(0, len(images_u8), batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        x = images_u8[start : start + batch_size].float().div_(255)
        with autocast(device, amp):
            recon = model(x).recon
        err = (recon.float().clamp(0, 1) - x).pow(2).flatten(1).mean(1)
        se_sum += err.sum()
        psnr_sum += (-10 * torch.log10(err.clamp_min(1e-10))).sum()
        n += len(x)
    model.train(was_training)
    return {"mse": (se_sum / n).item(), "psnr": (psnr_sum / n).item(), "n": n}


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


def _resume(cfg, out: Path, device, model, optimizer, scheduler, loader) -> tuple[int, list, int]:
    """Load ``checkpoint.pt`` (verified) into the fresh objects; (step, resumed_from, torn)."""
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
    return step, resumed_from, torn


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

    model = build_model(cfg).to(device)
    optimizer = make_optimizer(model, train_cfg, device)
    scheduler = make_scheduler(optimizer, train_cfg)
    forward = torch.compile(model) if train_cfg["compile"] else model

    step, resumed_from, torn = 0, [], 0
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        step, resumed_from, torn = _resume(cfg, out, device, model, optimizer, scheduler, loader)
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
        "image_size": info.size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "num_tokens": model.num_tokens,
        "codebook_size": model.codebook_size,
        "bits_per_image": model.bits_per_image(),
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
        }
        save_pt(ckpt_path, blob, record(CHECKPOINT, step=step))

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
                        v = validate(
                            model,
                            val_u8,
                            batch_size=max(train_cfg["batch_size"], 256),
                            device=device,
                            amp=train_cfg["amp"],
                            max_batches=train_cfg["val_batches"],
                        )
                        log_fh.write(
                            json.dumps({"split": "val", "step": step, "epoch": loader.epoch, **v})
                            + "\n"
                        )
                        if scheduler is not None:
                            scheduler.step(v["mse"])
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
    result = {"model": model.state_dict(), "config": dict(cfg), "step": step}
    save_pt(out / RESULT, result, record(RESULT, step=step))
    meta.update(status="finished", end=machine.now())
    write_json(out / RUN_JSON, meta)
    return meta
