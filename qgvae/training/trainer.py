"""The trainer shared by QG-VAE and every baseline.

One forward pass per optimiser step on batches drawn from uint8 tensors that live on the training
device; the precision the config states (:mod:`qgvae.training.precision`: bf16 autocast on CUDA
or on a CPU with native bf16, TF32 off unless asked; the quantisers keep their distances in fp32);
fused AdamW on CUDA; optionally a compiled step (:mod:`qgvae.training.step`). A checkpoint is
written atomically every ``train.checkpoint_every`` steps, on SIGTERM/SIGINT (preemption), and at
the end; calling :func:`train` again on the same run folder resumes from it, on any device (it is
loaded to the CPU and moved), and on CPU reaches bit-identical weights to an uninterrupted run.
``model.pt`` (the result) is written last, so its presence means the run finished; a NaN/inf loss
stops the run without writing it; a full disk stops it with one line, the last checkpoint intact.
While it runs: TensorBoard event files and sample grids (:mod:`qgvae.training.monitor`), and
progress lines when stderr is not a terminal (:mod:`qgvae.progress`).

Files in the run folder::

    config.yaml       the resolved run config
    run.json          config, seed, git commit, package versions, hardware, start/end, steps,
                      every attempt, and the sha256 of checkpoint.pt and model.pt
    train_log.jsonl   one JSON row per logged step ("split": "train") and per validation ("val")
    checkpoint.pt     model + optimiser + scheduler + loader position + RNG states (CPU tensors)
    tb/               TensorBoard event files (tensorboard --logdir results/...)
    samples/          step_NNNNNNN.png: fixed validation images over their reconstructions
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
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import machine
from ..data import DeviceLoader, dataset_info, load_split
from ..errors import Interrupted, TrainingDiverged
from ..io import write_json, write_text
from ..methods import build_model
from ..progress import Progress
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
)
from .monitor import BOARD_DIR, SAMPLES_DIR, Board, sample_grid, save_samples
from .precision import precision_for
from .resume import read_val_rows, resume
from .schedule import (
    current_lr,
    lr_kind,
    make_optimizer,
    make_scheduler,
    steps_every_step,
    total_steps,
)
from .step import Step, batch_usage, train_step
from .validation import floor_psnr, progress_summary, validate, validation_images

__all__ = ["train", "train_step", "batch_usage", "TrainingDiverged"]


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
    as a preemption would; tests use it to check resume equivalence. ``progress``: True / False
    forces the progress bar on / off; None shows a bar on a terminal and plain progress lines
    otherwise. Returns the final ``run.json`` content. The run folder is locked while this runs.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        removed = remove_stale_temporaries(out)
        return _train_locked(
            cfg, out, progress=progress, stop_after=stop_after, removed_temporaries=removed
        )


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
    precision = precision_for(device, train_cfg)  # refuses an impossible precision before work
    precision.apply()
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
    compiled = bool(train_cfg["compile"])
    optimizer = make_optimizer(model, train_cfg, device, tensor_lr=compiled)
    scheduler = make_scheduler(optimizer, train_cfg, steps)
    per_step_schedule = steps_every_step(scheduler)

    step, resumed_from, torn, best, note = 0, [], 0, None, None
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        step, resumed_from, torn, best, note = resume(
            cfg, out, device, model, optimizer, scheduler, loader
        )
        lr_kind(optimizer, tensor=compiled, device=device)
    else:
        (out / LOG).unlink(missing_ok=True)
        previous = None  # a fresh start: nothing of an earlier attempt is kept
    if note:
        print(f"qgvae train: note: {note}", file=sys.stderr)
    run_step = Step(model, optimizer, precision, grad_clip=train_cfg["grad_clip"], compile=compiled)

    now = machine.now()
    attempts = list((previous or {}).get("attempts", []))
    attempts.append({"start": now, "from_step": step, **({"note": note} if note else {})})
    meta: dict[str, Any] = {
        "config": dict(cfg),
        "seed": int(cfg["seed"]),
        "git_commit": machine.git_commit(),
        "versions": machine.package_versions(),
        "hardware": machine.hardware(str(device)),
        "precision": precision.record(),
        "compiled": compiled,
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
        "tensorboard": BOARD_DIR,
        "samples": SAMPLES_DIR,
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

    last_checkpoint = step if resumed_from else None

    def resume_hint() -> str:
        where = (
            f"it resumes from {CHECKPOINT} (step {last_checkpoint})"
            if last_checkpoint is not None
            else "it starts again from step 0"
        )
        return f"free space, then run the same command again: {where}"

    def save_weights(name: str, **extra: Any) -> None:
        blob = {"model": model.state_dict(), "config": dict(cfg), "step": step, **extra}
        save_pt(out / name, blob, record(name, step=step), then=resume_hint())

    def save_checkpoint() -> None:
        nonlocal last_checkpoint
        blob = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler else None,
            "loader": loader.state_dict(),
            "rng": rng_state(device),
            "step": step,
            "config": dict(cfg),
            "resumed_from": resumed_from,
            "best": best,
        }
        save_pt(ckpt_path, blob, record(CHECKPOINT, step=step), then=resume_hint())
        last_checkpoint = step

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

    board = Board(out / BOARD_DIR, purge_step=step if resumed_from else None)
    sample_failed: list[str] = []

    def show_samples(samples: list) -> None:
        grid = sample_grid(*samples[0])
        board.image("val/reconstructions", step, grid)
        try:
            save_samples(out, step, grid)
        except OSError as exc:  # nice to have: never stops a training
            if not sample_failed:
                warnings.warn(f"sample grid not written: {exc}", RuntimeWarning, stacklevel=2)
            sample_failed.append(str(exc))

    log_fh = open(out / LOG, "a", buffering=1)  # noqa: SIM115 - closed in the finally below
    bar = Progress(
        steps,
        what=f"train {out}",
        initial=step,
        per_unit=train_cfg["batch_size"],
        rate_unit="images",
        show=progress,
    )
    val_every = train_cfg["val_every"] or len(loader)
    t_last, step_last = time.perf_counter(), step
    model.train()
    with _StopFlag() as stop:
        try:
            while step < steps:
                for x in loader:
                    output, loss = run_step(x)
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
                            "lr": current_lr(optimizer),
                        }
                        log_fh.write(json.dumps(row) + "\n")
                        board.scalars(step, row, prefix="train/")
                        bar.update(0, loss=row["loss"])
                        t_last, step_last = time.perf_counter(), step
                    if step % val_every == 0 or step == steps:
                        check_finite()
                        samples: list = []
                        v = validate(
                            model,
                            val_u8,
                            batch_size=val_batch,
                            precision=precision,
                            with_loss=val_metric == "loss",
                            samples=samples,
                        )
                        row = {"split": "val", "step": step, "epoch": loader.epoch, **v}
                        log_fh.write(json.dumps(row) + "\n")
                        board.scalars(step, {**v, "psnr_over_floor": v["psnr"] - floor}, "val/")
                        show_samples(samples)
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
            board.close()
            log_fh.close()

    check_finite()
    save_checkpoint()
    meta.update(progress_summary(read_val_rows(out / LOG), floor))
    if train_cfg["select"] == "best_val" and best is not None:
        fix = f"delete {out} and train again"
        blob = load_pt(out / BEST, sha256=recorded_sha256(out, BEST), fix=fix)
        model.load_state_dict(blob["model"])
        meta["selected"] = {"rule": "best_val", **best}
    else:
        meta["selected"] = {"rule": "final", "step": step}
    if sample_failed:
        meta["samples_not_written"] = sample_failed[0]
    result = {"model": model.state_dict(), "config": dict(cfg), "step": step}
    result["selected_step"] = meta["selected"]["step"]
    save_pt(out / RESULT, result, record(RESULT, step=meta["selected"]["step"]), then=resume_hint())
    meta.update(status="finished", end=machine.now())
    write_json(out / RUN_JSON, meta)
    return meta
