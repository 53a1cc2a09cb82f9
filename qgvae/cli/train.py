"""``qgvae train`` and ``qgvae bench``."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add, config_json


def _cmd_train(args: argparse.Namespace) -> int:
    from .. import config as run_config
    from ..training import RESULT, train

    if args.config:
        cfg = run_config.load(args.config)
    else:
        cfg = run_config.resolve(config_json(args.config_json))
    overrides: dict[str, Any] = {}
    if args.device:
        overrides["device"] = args.device
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps  # 0 or less is refused by the schema
    if overrides:
        cfg = run_config.resolve(run_config.deep_merge(cfg, {"train": overrides}))
    _check_before_training(cfg, args.out)
    meta = train(cfg, args.out, progress=args.progress)
    print(f"finished {meta['steps']} steps ({meta['epochs']:.2f} epochs) -> {args.out}/{RESULT}")
    return 0


def _check_before_training(cfg: dict[str, Any], out: str) -> None:
    """What can be refused before the run folder is created or any data is read: --out that is
    not a folder, a device that is not there, a model its constructor rejects, a damaged
    run.json or checkpoint.pt, another configuration's checkpoint, a run training there."""
    from pathlib import Path

    from .. import config as run_config
    from ..machine import resolve_device
    from ..training.checkpoint import check_resumable

    if Path(out).exists() and not Path(out).is_dir():
        raise run_config.ConfigError(f"--out {out} is a file, not a run folder; give a folder")
    resolve_device(cfg["train"]["device"])
    run_config.check_buildable(cfg)
    check_resumable(out, cfg)  # run.json and checkpoint.pt of an earlier attempt


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    if args.what == "eval":
        from .evaluate import bench_eval

        return bench_eval(args)
    if args.what == "transport":
        return _bench_transport(args)

    from .. import config as run_config
    from ..io import write_json
    from ..machine import hardware, package_versions, tune_cpu_allocator
    from ..training.bench import PAPER_CIFAR, run_bench

    allocator = tune_cpu_allocator()  # as every training does (qgvae.cli.main)
    cfg = run_config.load(args.config) if args.config else run_config.resolve(PAPER_CIFAR)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"qgvae bench: {cfg['method']} on {cfg['dataset']}-shaped synthetic input, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, allocator {allocator}"
    )

    def show(r: dict[str, Any]) -> None:
        print(
            f"{r['device']:>6} {r['device_name'][:24]:<24} {r['mode']:<8} "
            f"{r['precision']:<5} {r['images_per_s']:9.1f} img/s  "
            f"{r['step_ms']:8.2f} ms/step  model-only {r['model_only_step_ms']:8.2f} ms"
            f"  outside {100 * r['outside_share']:5.1f}%",
            flush=True,
        )

    rows = run_bench(
        cfg,
        devices,
        args.modes,
        args.precisions,
        args.steps_cpu,
        args.steps_gpu,
        args.warmup,
        on_row=show,
    )
    if args.json:
        write_json(
            args.json,
            {"config": cfg, "rows": rows, "versions": package_versions(), "hardware": hardware()},
        )
    return 0


def _bench_transport(args: argparse.Namespace) -> int:
    """``qgvae bench transport``: see :func:`qgvae.training.bench.bench_transport`."""
    import torch
    import yaml

    from ..config import check_buildable, deep_merge
    from ..errors import ConfigError
    from ..io import write_json
    from ..machine import hardware, package_versions, resolve_device, tune_cpu_allocator
    from ..plan import resolve_run
    from ..training.bench import bench_transport
    from .common import need_file

    allocator = tune_cpu_allocator()
    path = args.config or "config/config.yaml"
    try:
        wcfg = yaml.safe_load(need_file("workflow config", path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"workflow config {path} is not valid YAML: {exc}") from None
    where = f"qgvae bench transport ({path})"
    if args.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1; got {args.rounds}")
    reference = resolve_run(wcfg, args.dataset, "vqvae", None, 0, where)
    vqwae = resolve_run(wcfg, args.dataset, "vqwae", None, 0, where)
    for solver in args.solvers:  # an unknown solver stops here, before any timing
        check_buildable(deep_merge(vqwae, {"model": {"ot_solver": solver}}))
    device = resolve_device((args.devices or ["cpu"])[0])
    steps = args.steps_gpu if device.type == "cuda" else args.steps_cpu
    print(
        f"qgvae bench transport: the VQ-WAE step with each OT solver against the VQ-VAE step, "
        f"{args.dataset} settings of {path} ({vqwae['model']['ot_scope']} scope), synthetic "
        f"input, eager fp32, {steps} steps x {args.rounds} interleaved rounds (medians), "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, allocator {allocator}"
    )

    def show(r: dict[str, Any]) -> None:
        name = r["method"] + (f" ({r['ot_solver']})" if r["ot_solver"] != "-" else "")
        print(
            f"{r['device']:>6} {name:<18} {r['step_ms']:8.1f} ms/step  {r['ratio']:5.2f}x   "
            f"model-only {r['model_only_step_ms']:8.1f} ms  {r['model_only_ratio']:5.2f}x",
            flush=True,
        )

    rows = bench_transport(
        reference,
        vqwae,
        args.solvers,
        device,
        steps=steps,
        warmup=args.warmup,
        rounds=args.rounds,
        on_row=show,
    )
    if args.json:
        write_json(
            args.json,
            {"rows": rows, "config": path, "versions": package_versions(), "hardware": hardware()},
        )
    return 0


def add_parsers(sub: Any) -> None:
    p = add(
        sub,
        "train",
        _cmd_train,
        "train one model (resumes from RUN_DIR/checkpoint.pt)",
        "Train one method on one dataset. The run config (YAML/JSON, see "
        "qgvae/schemas/run.schema.json) is validated before any work starts. If --out already "
        "holds a checkpoint of the same configuration, training resumes from it. model.pt is "
        "written last, atomically.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="run config file (YAML or JSON)")
    src.add_argument("--config-json", help="run config as a JSON string (used by the workflow)")
    p.add_argument("--out", required=True, help="run folder (created if missing)")
    p.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:1)")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force the progress bar on/off (default: on when stderr is a terminal)",
    )

    b = add(
        sub,
        "bench",
        _cmd_bench,
        "print training throughput (images/s) on CPU and GPU",
        "train: measure training images/s of a configuration (default: QG-VAE, CIFAR-10 "
        "paper setting, batch 32) with synthetic input: eager vs compiled, fp32 vs bf16 (CUDA "
        "only), and the share of step time spent outside the model. eval: CPU-s per image of "
        "every evaluation stage, and the harness's Inception / LPIPS against pytorch-fid's "
        "get_activations loop and lpips' module on the same images and threads. transport: "
        "the VQ-WAE step with each OT solver (--solvers) as a ratio to the VQ-VAE step of the "
        "same workflow config (--config, default config/config.yaml) and --dataset, measured "
        "in the same run.",
    )
    b.add_argument(
        "what",
        nargs="?",
        choices=["train", "eval", "transport"],
        default="train",
        help="train: training images/s (default); eval: evaluation CPU-s per image by stage, "
        "and the fast Inception / LPIPS paths against pytorch-fid's and lpips' own loops; "
        "transport: VQ-WAE's step per OT solver against VQ-VAE's",
    )
    b.add_argument(
        "--config",
        help="train: run config file to benchmark instead of the paper's CIFAR-10 QG-VAE "
        "setting; transport: the workflow config whose vqvae and vqwae entries are timed "
        "(default config/config.yaml)",
    )
    b.add_argument("--images", type=int, default=100, help="eval: images per measurement")
    b.add_argument(
        "--dataset",
        default="cifar10",
        help="eval: image shape of this dataset; transport: the dataset whose settings are timed",
    )
    b.add_argument(
        "--solvers",
        nargs="+",
        default=["exact", "newton"],
        help="transport: VQ-WAE's OT solvers to time (baselines.transport.SOLVERS)",
    )
    b.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="transport: interleaved rounds of every measurement (the medians are printed)",
    )
    b.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "eager", "traced", "compiled"],
        help="eval: the Inception backend of the harness rows",
    )
    b.add_argument(
        "--devices",
        nargs="+",
        default=None,
        help="devices to measure (default: cpu, plus cuda when available)",
    )
    b.add_argument(
        "--modes",
        nargs="+",
        default=["eager", "compiled"],
        choices=["eager", "compiled"],
        help="execution modes",
    )
    b.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16"],
        help="bf16 = autocast on CUDA (skipped on CPU)",
    )
    b.add_argument("--steps-cpu", type=int, default=10, help="timed steps per CPU measurement")
    b.add_argument("--steps-gpu", type=int, default=200, help="timed steps per GPU measurement")
    b.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    b.add_argument("--json", help="also write the rows to this JSON file")
