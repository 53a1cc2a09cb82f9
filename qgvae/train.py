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
    run.json          config, seed, git commit, package versions, hardware, start/end, steps
    train_log.jsonl   one JSON row per logged step ("split": "train") and per validation ("val")
    checkpoint.pt     model + optimiser + scheduler + loader position + RNG states
    model.pt          final weights + config (written last, atomically)
"""
from __future__ import annotations

import json
import math
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from . import config as run_config
from . import utils
from .data import DeviceLoader, dataset_info, load_split
from .registry import build_model

CHECKPOINT = "checkpoint.pt"
RESULT = "model.pt"
LOG = "train_log.jsonl"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step."""


class Interrupted(RuntimeError):
    """SIGTERM/SIGINT arrived; a checkpoint was written and the run can be resumed."""


# ----------------------------------------------------------------------------- helpers

def autocast(device: torch.device, amp: str):
    """bf16 autocast on CUDA when enabled; a no-op elsewhere (CPU runs stay fp32, deterministic)."""
    if device.type == "cuda" and amp == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def make_optimizer(model: torch.nn.Module, tcfg: Mapping[str, Any], device: torch.device):
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[tcfg["optimizer"]]
    kwargs: dict[str, Any] = {"lr": tcfg["lr"], "weight_decay": tcfg["weight_decay"]}
    if device.type == "cuda":
        kwargs["fused"] = True  # one kernel for the whole update instead of one per tensor
    return cls(model.parameters(), **kwargs)


def make_scheduler(optimizer, tcfg: Mapping[str, Any]):
    if tcfg["lr_schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5,
                                                          patience=5)
    return None


def total_steps(tcfg: Mapping[str, Any], steps_per_epoch: int) -> int:
    steps = math.ceil(tcfg["epochs"] * steps_per_epoch)
    if tcfg.get("max_steps"):
        steps = min(steps, int(tcfg["max_steps"]))
    return max(steps, 1)


@torch.no_grad()
def validate(model, images_u8: torch.Tensor, *, batch_size: int, device: torch.device, amp: str,
             max_batches: int | None = None) -> dict[str, float]:
    """Mean MSE and mean per-image PSNR (data range 1) on a uint8 split, in eval mode."""
    was_training = model.training
    model.eval()
    se_sum = torch.zeros((), device=device, dtype=torch.float64)
    psnr_sum = torch.zeros((), device=device, dtype=torch.float64)
    n = 0
    for i, start in enumerate(range(0, len(images_u8), batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        x = images_u8[start:start + batch_size].float().div_(255)
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


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows past the checkpoint's step (they are recomputed after a resume)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    utils.write_text(path, "".join(line + "\n" for line in keep))


def load_result(run_dir: str | Path, device: str | torch.device = "cpu"):
    """The finished model of a run folder, in eval mode, and its resolved config."""
    path = Path(run_dir) / RESULT
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run has not finished "
                                f"(train it with `qgvae train --out {run_dir}`)")
    blob = torch.load(path, map_location=device, weights_only=False)
    model = build_model(blob["config"]).to(device)
    model.load_state_dict(blob["model"])
    return model.eval(), blob["config"]


# ----------------------------------------------------------------------------- training

def train_step(forward, model, optimizer, x: torch.Tensor, *, device: torch.device, amp: str,
               grad_clip: float | None):
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
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(cfg: Mapping[str, Any], out: str | Path, *, progress: bool | None = None,
          stop_after: int | None = None) -> dict[str, Any]:
    """Train one resolved run config into ``out``; resume when ``out`` holds a checkpoint.

    ``stop_after`` ends the call after that many optimiser steps in total (with a checkpoint),
    as a preemption would; tests use it to check resume equivalence.
    Returns the final ``run.json`` content.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tcfg = cfg["train"]
    device = utils.resolve_device(tcfg["device"])
    utils.seed_everything(int(cfg["seed"]))
    info = dataset_info(cfg["dataset"])

    # Data: uint8 on the device once; batches are sliced and converted there.
    train_u8 = load_split(cfg["dataset"], cfg["data_root"], "train").to(device)
    val_u8 = load_split(cfg["dataset"], cfg["data_root"], "val").to(device)
    loader = DeviceLoader(train_u8, batch_size=tcfg["batch_size"], seed=int(cfg["seed"]))
    steps = total_steps(tcfg, len(loader))

    model = build_model(cfg).to(device)
    optimizer = make_optimizer(model, tcfg, device)
    scheduler = make_scheduler(optimizer, tcfg)
    forward = torch.compile(model) if tcfg["compile"] else model

    step = 0
    resumed_from: list[int] = []
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if (run_config.training_part(ckpt["config"], keep_seed=True)
                != run_config.training_part(cfg, keep_seed=True)):
            raise RuntimeError(f"{ckpt_path} was written by a different configuration; "
                               "delete the run folder (or pick another --out) to start afresh")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        loader.load_state_dict(ckpt["loader"])
        _set_rng_state(ckpt["rng"])
        step = int(ckpt["step"])
        resumed_from = list(ckpt.get("resumed_from", [])) + [step]
        _truncate_log(out / LOG, step)
    else:
        (out / LOG).unlink(missing_ok=True)

    meta: dict[str, Any] = {
        "config": dict(cfg), "seed": int(cfg["seed"]), "git_commit": utils.git_commit(),
        "versions": utils.package_versions(), "hardware": utils.hardware(str(device)),
        "start": utils.now(), "end": None, "status": "running", "steps": steps,
        "steps_per_epoch": len(loader), "epochs": steps / len(loader),
        "train_images": len(train_u8), "val_images": len(val_u8), "image_size": info.size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "num_tokens": model.num_tokens, "codebook_size": model.codebook_size,
        "bits_per_image": model.bits_per_image(), "resumed_from": resumed_from,
    }
    utils.write_text(out / "config.yaml", yaml.safe_dump(dict(cfg), sort_keys=False))
    utils.write_json(out / "run.json", meta)

    def save_checkpoint() -> None:
        with utils.atomic_path(ckpt_path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler else None,
                        "loader": loader.state_dict(), "rng": _rng_state(), "step": step,
                        "config": dict(cfg), "resumed_from": resumed_from}, tmp)

    bad_step = torch.full((), -1, dtype=torch.long, device=device)  # first non-finite step

    def check_finite() -> None:
        first = int(bad_step.item())
        if first >= 0:
            meta.update(status="diverged", end=utils.now(), diverged_at_step=first)
            utils.write_json(out / "run.json", meta)
            raise TrainingDiverged(f"loss became NaN/inf at step {first}; no result written "
                                   f"(lower train.lr or enable train.grad_clip)")

    log_fh = open(out / LOG, "a", buffering=1)
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm import tqdm

    bar = tqdm(total=steps, initial=step, disable=not show, unit="step", dynamic_ncols=True)
    val_every = tcfg["val_every"] or len(loader)
    t_last, step_last = time.perf_counter(), step
    model.train()
    with _StopFlag() as stop:
        try:
            while step < steps:
                for x in loader:
                    output, loss = train_step(forward, model, optimizer, x, device=device,
                                              amp=tcfg["amp"], grad_clip=tcfg["grad_clip"])
                    bad_step.copy_(torch.where((bad_step < 0) & ~torch.isfinite(loss.detach()),
                                               step + 1, bad_step))
                    step += 1
                    extra = model.after_step(step)  # sees this step's gradients (resets)
                    bar.update(1)

                    if step % tcfg["log_every"] == 0 or step == steps:
                        check_finite()
                        now = time.perf_counter()
                        row = {"split": "train", "step": step, "epoch": loader.epoch,
                               "loss": loss.item(),
                               **{k: v.item() for k, v in output.losses.items()},
                               **{k: float(v) for k, v in output.stats.items()},
                               **{k: float(v) for k, v in extra.items()},
                               "usage": batch_usage(output.codes, model.codebook_size),
                               "images_per_s": (step - step_last) * x.shape[0] / (now - t_last),
                               "lr": optimizer.param_groups[0]["lr"]}
                        log_fh.write(json.dumps(row) + "\n")
                        bar.set_postfix(loss=f"{row['loss']:.4f}")
                        t_last, step_last = time.perf_counter(), step
                    if step % val_every == 0 or step == steps:
                        v = validate(model, val_u8, batch_size=max(tcfg["batch_size"], 256),
                                     device=device, amp=tcfg["amp"],
                                     max_batches=tcfg["val_batches"])
                        log_fh.write(json.dumps({"split": "val", "step": step,
                                                 "epoch": loader.epoch, **v}) + "\n")
                        if scheduler is not None:
                            scheduler.step(v["mse"])
                        t_last, step_last = time.perf_counter(), step
                    if step % tcfg["checkpoint_every"] == 0:
                        check_finite()
                        save_checkpoint()
                    if stop.signal is not None or (stop_after is not None and step >= stop_after):
                        check_finite()
                        save_checkpoint()
                        if stop.signal is not None:
                            raise Interrupted(f"signal {stop.signal} at step {step}: checkpoint "
                                              f"written to {ckpt_path}; rerun to resume")
                        return meta
                    if step >= steps:
                        break
        finally:
            bar.close()
            log_fh.close()

    check_finite()
    save_checkpoint()
    with utils.atomic_path(out / RESULT) as tmp:
        torch.save({"model": model.state_dict(), "config": dict(cfg), "step": step}, tmp)
    meta.update(status="finished", end=utils.now())
    utils.write_json(out / "run.json", meta)
    return meta



# ----------------------------------------------------------------------------- command line

def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train one model (resumes from RUN_DIR/checkpoint.pt)",
        description="Train one method on one dataset. The run config (YAML/JSON, see "
                    "qgvae/schemas/run.schema.json) is validated before any work starts. If "
                    "--out already holds a checkpoint of the same configuration, training "
                    "resumes from it. model.pt is written last, atomically.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="run config file (YAML or JSON)")
    src.add_argument("--config-json", help="run config as a JSON string (used by the workflow)")
    p.add_argument("--out", required=True, help="run folder (created if missing)")
    p.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:1)")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    p.add_argument("--progress", action=argparse_bool(), default=None,
                   help="force the progress bar on/off (default: on when stderr is a terminal)")
    p.set_defaults(func=_cli)


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def _cli(args) -> int:
    if args.config:
        cfg = run_config.load(args.config)
    else:
        try:
            raw = json.loads(args.config_json)
        except json.JSONDecodeError as exc:
            raise run_config.ConfigError(f"--config-json is not valid JSON: {exc}") from None
        cfg = run_config.resolve(raw)
    overrides: dict[str, Any] = {}
    if args.device:
        overrides["device"] = args.device
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    if overrides:
        cfg = run_config.resolve(run_config.deep_merge(cfg, {"train": overrides}))
    meta = train(cfg, args.out, progress=args.progress)
    print(f"finished {meta['steps']} steps ({meta['epochs']:.2f} epochs) -> {args.out}/{RESULT}")
    return 0
