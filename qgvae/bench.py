"""``qgvae bench``: training throughput of a configuration (the CIFAR-10 paper setting by default).

For each device, execution mode (eager / ``torch.compile``) and precision (fp32 / bf16 autocast;
bf16 only on CUDA) it times two loops over the same number of optimiser steps:

* **full step**: what ``qgvae train`` does per step: a batch from the device-resident uint8
  ``DeviceLoader``, :func:`qgvae.train.train_step`, ``model.after_step`` (codebook resets) and a
  non-finite-loss check without host synchronisation;
* **model only**: :func:`qgvae.train.train_step` on one pre-converted batch.

``outside = 1 - model_only / full`` is the share of step time spent outside the model (data,
bookkeeping, resets). Input is synthetic uniform noise of the dataset's shape: throughput does not
depend on pixel values. CUDA timings synchronise only at the start and end of each loop.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from . import config as run_config
from . import utils
from .data import DeviceLoader, dataset_info
from .registry import build_model
from .train import make_optimizer, train_step

PAPER_CIFAR: dict[str, Any] = {
    "method": "qgvae", "dataset": "cifar10",
    "model": {"tokens": 64, "downscalings": 0, "code_dim": 64, "codebook_size": 512, "heads": 8,
              "blocks": 1, "min_channels": 16, "max_channels": 128, "reset_every": 100},
    "train": {"batch_size": 32, "lr": 2e-4, "weight_decay": 0.01},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg: dict[str, Any], device: torch.device, *, compiled: bool, amp: str,
            steps: int, warmup: int) -> dict[str, Any]:
    info = dataset_info(cfg["dataset"])
    bs = cfg["train"]["batch_size"]
    utils.seed_everything(0)
    gen = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randint(0, 256, (max(bs * (steps + warmup + 1), 2048), info.channels,
                                    info.size, info.size), dtype=torch.uint8, generator=gen)
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
    return {"device": str(device), "device_name": utils.hardware(str(device)).get("gpu", "cpu")
            if device.type == "cuda" else "cpu", "mode": "compiled" if compiled else "eager",
            "precision": "bf16" if amp == "bf16" else "fp32", "batch_size": bs, "steps": steps,
            "images_per_s": steps * bs / t_full, "step_ms": 1000 * t_full / steps,
            "model_only_step_ms": 1000 * t_model / steps,
            "outside_share": max(0.0, 1 - t_model / t_full),
            "parameters": sum(p.numel() for p in model.parameters())}


def run_bench(cfg: dict[str, Any], devices: list[str], modes: list[str], precisions: list[str],
              steps_cpu: int, steps_gpu: int, warmup: int) -> list[dict[str, Any]]:
    rows = []
    for name in devices:
        device = utils.resolve_device(name)
        for mode in modes:
            for prec in precisions:
                if prec == "bf16" and device.type != "cuda":
                    continue  # the trainer uses bf16 autocast on CUDA only
                steps = steps_gpu if device.type == "cuda" else steps_cpu
                rows.append(measure(cfg, device, compiled=mode == "compiled",
                                    amp="bf16" if prec == "bf16" else "none", steps=steps,
                                    warmup=warmup))
                r = rows[-1]
                print(f"{r['device']:>6} {r['device_name'][:24]:<24} {r['mode']:<8} "
                      f"{r['precision']:<5} {r['images_per_s']:9.1f} img/s  "
                      f"{r['step_ms']:8.2f} ms/step  model-only {r['model_only_step_ms']:8.2f} ms"
                      f"  outside {100 * r['outside_share']:5.1f}%", flush=True)
    return rows


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="print training throughput (images/s) on CPU and GPU",
        description="Measure training images/s of a configuration (default: QG-VAE, CIFAR-10 "
                    "paper setting, batch 32) with synthetic input: eager vs compiled, fp32 vs "
                    "bf16 (CUDA only), and the share of step time spent outside the model.")
    p.add_argument("--config", help="run config file to benchmark instead of the paper's CIFAR-10 "
                                    "QG-VAE setting")
    p.add_argument("--devices", nargs="+", default=None,
                   help="devices to measure (default: cpu, plus cuda when available)")
    p.add_argument("--modes", nargs="+", default=["eager", "compiled"],
                   choices=["eager", "compiled"], help="execution modes")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                   help="bf16 = autocast on CUDA (skipped on CPU)")
    p.add_argument("--steps-cpu", type=int, default=10, help="timed steps per CPU measurement")
    p.add_argument("--steps-gpu", type=int, default=200, help="timed steps per GPU measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    cfg = run_config.load(args.config) if args.config else run_config.resolve(PAPER_CIFAR)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"qgvae bench: {cfg['method']} on {cfg['dataset']}-shaped synthetic input, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    rows = run_bench(cfg, devices, args.modes, args.precisions, args.steps_cpu, args.steps_gpu,
                     args.warmup)
    if args.json:
        utils.write_json(args.json, {"config": cfg, "rows": rows, "versions":
                                     utils.package_versions(), "hardware": utils.hardware()})
    return 0
