"""``qgvae bench``: training throughput of run configurations, as ratios measured in one run.

For each configuration and device it times the training step in every requested mode (eager /
compiled) and precision (fp32 / bf16 autocast), and states each as a ratio against the eager
fp32 step of the same configuration, measured in the same process a moment before:

* **full step**: what ``qgvae train`` does per step: a batch from the device-resident uint8
  ``DeviceLoader``, the :class:`~qgvae.training.step.Step`, ``model.after_step`` (codebook
  resets) and the trainer's non-finite-loss check (no host synchronisation);
* **model only**: the step on one pre-converted batch; ``outside = 1 - model_only / full`` is
  the share of step time spent outside the model (data, bookkeeping, resets);
* **compile**: for compiled rows, the seconds the first (warm-up) steps took beyond eager
  ones: the one-off cost that the per-step gain must repay (``pays_after_steps``);
* **syncs per step** (CUDA): host synchronisations counted by
  ``torch.cuda.set_sync_debug_mode`` over the timed full steps.

bf16 on a CPU without native bf16 (oneDNN's check) is measured all the same, and marked
``native: false``: the trainer refuses ``cpu_amp: bf16`` there. Input is synthetic uniform
noise of the dataset's shape: throughput does not depend on pixel values. Timings on CUDA
synchronise only at the start and end of each loop.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from .. import machine
from ..data import DeviceLoader, dataset_info
from ..methods import build_model
from ..runs import training_digest
from .precision import Precision, cpu_bf16_native
from .schedule import make_optimizer
from .step import Step

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


def _count_syncs(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` and count the host synchronisations CUDA reports meanwhile (0 on the CPU)."""
    if device.type != "cuda":
        return fn(), 0
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return out, sum("synchroniz" in str(w.message) for w in caught)


def measure(
    cfg: Mapping[str, Any],
    device: torch.device,
    *,
    compiled: bool,
    precision: str,
    steps: int,
    warmup: int,
    repeats: int = 3,
) -> dict[str, Any]:
    """One row: a fresh model and optimiser, ``warmup`` untimed steps, then ``steps`` timed ones
    ``repeats`` times; the median of the repeats (one slow stretch of a shared machine, or a
    one-off cost of the first steps, moves none of them)."""
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
    ).to(device)
    model = build_model(cfg).to(device).train()
    optimizer = make_optimizer(model, cfg["train"], device, tensor_lr=compiled)
    prec = Precision(device, torch.bfloat16 if precision == "bf16" else None)
    step = Step(model, optimizer, prec, grad_clip=cfg["train"].get("grad_clip"), compile=compiled)
    loader = DeviceLoader(images, batch_size=bs, seed=0)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    it = iter(loader)
    done = 0

    def full(n: int) -> float:
        nonlocal it, done
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            try:
                x = next(it)
            except StopIteration:
                it = iter(loader)
                x = next(it)
            _, loss = step(x)
            bad.logical_or_(~torch.isfinite(loss.detach()))
            done += 1
            model.after_step(done)
        _sync(device)
        return time.perf_counter() - t0

    x0 = images[:bs].float().div(255)

    def model_only(n: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            step(x0)
        _sync(device)
        return time.perf_counter() - t0

    t_warm = full(warmup) if warmup else 0.0
    model_only(1)
    t_full, syncs = _count_syncs(device, lambda: full(steps))
    t_full = statistics.median([t_full] + [full(steps) for _ in range(repeats - 1)])
    t_model = statistics.median(model_only(steps) for _ in range(repeats))
    step_s = t_full / steps
    return {
        "method": cfg["method"],
        "dataset": cfg["dataset"],
        "digest": training_digest(cfg),
        "device": str(device),
        "device_name": machine.hardware(str(device)).get("gpu", machine.cpu_model())
        if device.type == "cuda"
        else machine.cpu_model(),
        "threads": torch.get_num_threads(),
        "mode": "compiled" if compiled else "eager",
        "precision": precision,
        "native": device.type == "cuda" or precision == "fp32" or cpu_bf16_native(),
        "batch_size": bs,
        "steps": steps,
        "repeats": repeats,
        "images_per_s": steps * bs / t_full,
        "step_ms": 1000 * step_s,
        "model_only_step_ms": 1000 * t_model / steps,
        "outside_share": max(0.0, 1 - t_model / t_full),
        "warmup_steps": warmup,
        "warmup_s": t_warm,
        "compile_s": max(0.0, t_warm - warmup * step_s) if compiled else None,
        "syncs_per_step": syncs / steps if device.type == "cuda" else None,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``ratio`` (the eager fp32 step time of the same configuration and device over this
    step time: > 1 is faster) and, to compiled rows, ``pays_after_steps`` (compile seconds over
    the time a compiled step saves against the eager step of the same precision)."""

    def find(r: Mapping[str, Any], mode: str, precision: str) -> dict[str, Any] | None:
        key = (r["digest"], r["device"], mode, precision)
        return next(
            (e for e in rows if (e["digest"], e["device"], e["mode"], e["precision"]) == key),
            None,
        )

    for r in rows:
        base = find(r, "eager", "fp32")
        r["ratio"] = None if base is None else base["step_ms"] / r["step_ms"]
        r["pays_after_steps"] = None
        eager = find(r, "eager", r["precision"]) if r["mode"] == "compiled" else None
        if eager is not None and eager["step_ms"] > r["step_ms"]:
            gain_s = (eager["step_ms"] - r["step_ms"]) / 1000
            r["pays_after_steps"] = round(r["compile_s"] / gain_s)
    return rows


def run_bench(
    configs: Iterable[Mapping[str, Any]],
    devices: list[str],
    modes: list[str],
    precisions: list[str],
    steps_cpu: int,
    steps_gpu: int,
    warmup: int,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """One row per (configuration, device, mode, precision), the eager fp32 reference of each
    configuration first; ``on_row`` sees each row as soon as it is measured."""
    rows: list[dict[str, Any]] = []
    order = sorted(
        ((m, p) for m in modes for p in precisions),
        key=lambda mp: (mp != ("eager", "fp32"), mp[0] == "compiled", mp[1]),
    )
    for cfg in configs:
        for name in devices:
            device = machine.resolve_device(name)
            steps = steps_gpu if device.type == "cuda" else steps_cpu
            for mode, prec in order:
                row = measure(
                    cfg,
                    device,
                    compiled=mode == "compiled",
                    precision=prec,
                    steps=steps,
                    warmup=max(warmup, 2) if mode == "compiled" else warmup,
                    repeats=repeats,
                )
                rows.append(row)
                with_ratios(rows)
                if on_row is not None:
                    on_row(row)
                torch._dynamo.reset()  # each compiled row compiles its own model afresh
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
            r = measure(cfg, device, compiled=False, precision="fp32", steps=steps, warmup=warmup)
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
