"""``qgvae bench``: training throughput of a configuration (the CIFAR-10 paper setting by default).

For each device, execution mode (eager / ``torch.compile``) and precision (fp32 / bf16 autocast;
bf16 only on CUDA) it times two loops over the same number of optimiser steps:

* **full step**: what ``qgvae train`` does per step: a batch from the device-resident uint8
  ``DeviceLoader``, :func:`~qgvae.training.trainer.train_step`, ``model.after_step`` (codebook
  resets) and a non-finite-loss check without host synchronisation;
* **model only**: :func:`qgvae.training.trainer.train_step` on one pre-converted batch.

``outside = 1 - model_only / full`` is the share of step time spent outside the model (data,
bookkeeping, resets). Input is synthetic uniform noise of the dataset's shape: throughput does not
depend on pixel values. CUDA timings synchronise only at the start and end of each loop.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from .. import machine
from ..data import DeviceLoader, dataset_info
from ..methods import build_model
from .schedule import make_optimizer
from .trainer import train_step

PAPER_CIFAR: dict[str, Any] = {
    "method": "qgvae",
    "dataset": "cifar10",
    "model": {
        "tokens": 64,
        "downscalings": 0,
        "code_dim": 64,
        "codebook_size": 512,
        "heads": 8,
        "blocks": 1,
        "min_channels": 16,
        "max_channels": 128,
        "reset_every": 100,
    },
    "train": {"batch_size": 32, "lr": 2e-4, "weight_decay": 0.01},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    cfg: dict[str, Any], device: torch.device, *, compiled: bool, amp: str, steps: int, warmup: int
) -> dict[str, Any]:
    info = dataset_info(cfg["dataset"])
    bs = cfg["train"]["batch_size"]
    machine.seed_everything(0)
    gen = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randint(
        0,
        256,
        (max(bs * (steps + warmup + 1), 2048), info.channels, info.size, info.size),
        dtype=torch.uint8,
        generator=gen,
    )
    images = images.to(device)
    model = build_model(cfg).to(device).train()
    optimizer = make_optimizer(model, cfg["train"], device)
    forward = torch.compile(model) if compiled else model
    loader = DeviceLoader(images, batch_size=bs, seed=0)
    kw = {"device": device, "amp": amp, "grad_clip": cfg["train"]["grad_clip"]}
    bad = torch.zeros((), dtype=torch.bool, device=device)

    def full(n: int) -> float:
        it = iter(loader)
        _sync(device)
        t0 = time.perf_counter()
        for i in range(n):
            try:
                x = next(it)
            except StopIteration:
                it = iter(loader)
                x = next(it)
            _, loss = train_step(forward, model, optimizer, x, **kw)
            bad.logical_or_(~torch.isfinite(loss.detach()))
            model.after_step(i + 1)
        _sync(device)
        return time.perf_counter() - t0

    x0 = images[:bs].float().div(255)

    def model_only(n: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            train_step(forward, model, optimizer, x0, **kw)
        _sync(device)
        return time.perf_counter() - t0

    full(warmup)
    model_only(warmup)
    t_full, t_model = full(steps), model_only(steps)
    return {
        "device": str(device),
        "device_name": machine.hardware(str(device)).get("gpu", "cpu")
        if device.type == "cuda"
        else "cpu",
        "mode": "compiled" if compiled else "eager",
        "precision": "bf16" if amp == "bf16" else "fp32",
        "batch_size": bs,
        "steps": steps,
        "images_per_s": steps * bs / t_full,
        "step_ms": 1000 * t_full / steps,
        "model_only_step_ms": 1000 * t_model / steps,
        "outside_share": max(0.0, 1 - t_model / t_full),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def run_bench(
    cfg: dict[str, Any],
    devices: list[str],
    modes: list[str],
    precisions: list[str],
    steps_cpu: int,
    steps_gpu: int,
    warmup: int,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (device, mode, precision); ``on_row`` sees each row as soon as it is measured."""
    rows = []
    for name in devices:
        device = machine.resolve_device(name)
        for mode in modes:
            for prec in precisions:
                if prec == "bf16" and device.type != "cuda":
                    continue  # the trainer uses bf16 autocast on CUDA only
                steps = steps_gpu if device.type == "cuda" else steps_cpu
                rows.append(
                    measure(
                        cfg,
                        device,
                        compiled=mode == "compiled",
                        amp="bf16" if prec == "bf16" else "none",
                        steps=steps,
                        warmup=warmup,
                    )
                )
                if on_row is not None:
                    on_row(rows[-1])
    return rows


def bench_transport(
    reference: dict[str, Any],
    vqwae: dict[str, Any],
    solvers: list[str],
    device: torch.device,
    *,
    steps: int,
    warmup: int,
    rounds: int,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """VQ-WAE's training step with each OT solver against the step of ``reference`` (VQ-VAE on
    the same network and data), all measured in this run: ``reference`` and the resolved run
    config ``vqwae`` with ``model.ot_solver`` set to each of ``solvers``, eager fp32, timed by
    :func:`measure` in ``rounds`` interleaved rounds (so that a load on a shared machine falls
    on all of them); each row has the median over the rounds and its ratio to the reference's.
    ``on_row`` sees the rows once all are measured (the ratios need the reference)."""
    entries = [("reference", reference)] + [
        (s, {**vqwae, "model": {**vqwae["model"], "ot_solver": s}}) for s in solvers
    ]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in entries}
    for _ in range(rounds):
        for name, cfg in entries:
            r = measure(cfg, device, compiled=False, amp="none", steps=steps, warmup=warmup)
            times[name].append((r["step_ms"], r["model_only_step_ms"]))

    def median(name: str, i: int) -> float:
        return statistics.median(t[i] for t in times[name])

    base_full, base_model = median("reference", 0), median("reference", 1)
    rows = []
    for name, cfg in entries:
        full, model_only = median(name, 0), median(name, 1)
        rows.append(
            {
                "method": cfg["method"],
                "ot_solver": cfg["model"].get("ot_solver", "-") if name != "reference" else "-",
                "device": str(device),
                "step_ms": full,
                "model_only_step_ms": model_only,
                "ratio": full / base_full,
                "model_only_ratio": model_only / base_model,
                "steps": steps,
                "rounds": rounds,
                "all_step_ms": [t[0] for t in times[name]],
            }
        )
        if on_row is not None:
            on_row(rows[-1])
    return rows
