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
    from ..machine import check_device
    from ..training.checkpoint import check_resumable

    if Path(out).exists() and not Path(out).is_dir():
        raise run_config.ConfigError(f"--out {out} is a file, not a run folder; give a folder")
    check_device(cfg["train"]["device"])  # the GPU slot is taken by the training, after these
    run_config.check_buildable(cfg)
    check_resumable(out, cfg)  # run.json and checkpoint.pt of an earlier attempt


def bench_configs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The run configurations ``qgvae bench train`` measures: ``--config`` files, or the distinct
    training configurations of a plan (``--plan`` file or ``--workflow-config``), narrowed by
    ``--table``, ``--datasets`` and ``--methods``; by default every method of Table 1 on MNIST
    from ``config/config.yaml``, or the CIFAR-10 QG-VAE setting where that file is absent."""
    from pathlib import Path

    import yaml

    from .. import config as run_config
    from ..plan import build_plan, runs_for, training_digest
    from ..training.bench import PAPER_CIFAR
    from .common import need_file, read_plan

    if args.config:
        return [run_config.load(c) for c in args.config]
    if args.plan:
        plan = read_plan(args.plan)
    else:
        source = args.workflow_config or "config/config.yaml"
        if not args.workflow_config and not Path(source).is_file():
            return [run_config.resolve(PAPER_CIFAR)]
        try:
            wcfg = yaml.safe_load(need_file("workflow config", source).read_text()) or {}
        except yaml.YAMLError as exc:
            raise run_config.ConfigError(f"{source}: not valid YAML: {exc}") from None
        plan = build_plan(wcfg)
    table = args.table or ("table1" if not args.plan else "")
    datasets = args.datasets or (["mnist"] if not args.plan else None)
    out: dict[str, dict[str, Any]] = {}
    for path in runs_for(plan, table):
        run = plan["runs"][path]
        if datasets and run["dataset"] not in datasets:
            continue
        if args.methods and run["method"] not in args.methods:
            continue
        out.setdefault(training_digest(run["config"]), run["config"])
    if not out:
        raise run_config.ConfigError(
            f"qgvae bench: no run of table {table!r} matches datasets {datasets} and methods "
            f"{args.methods}"
        )
    return list(out.values())


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from ..errors import ConfigError

    if args.repeats < 1:
        raise ConfigError(f"--repeats must be at least 1; got {args.repeats}")

    if args.what == "eval":
        from .evaluate import bench_eval

        return bench_eval(args)
    if args.what == "transport":
        return _bench_transport(args)

    from ..io import write_json
    from ..machine import hardware, package_versions, tune_cpu_allocator
    from ..training.bench import run_bench

    allocator = tune_cpu_allocator()  # as every training does (qgvae.cli.main)
    configs = bench_configs(args)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"qgvae bench: {len(configs)} configuration(s) on synthetic input of each dataset's "
        f"shape, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"allocator {allocator}; ratio = eager fp32 step time / this step time (same run)"
    )

    def show(r: dict[str, Any]) -> None:
        ratio = f"{r['ratio']:5.2f}x" if r["ratio"] is not None else "    - "
        native = "" if r["native"] else " (not native on this CPU)"
        extra = ""
        if r["mode"] == "compiled":
            pays = r["pays_after_steps"]
            extra = f"  compile {r['compile_s']:6.1f} s, pays after " + (
                f"{pays} steps" if pays is not None else "never"
            )
        if r["syncs_per_step"] is not None:
            extra += f"  syncs/step {r['syncs_per_step']:.1f}"
        print(
            f"{r['method']:<8} {r['dataset']:<8} {r['digest']} {r['device']:>6} {r['mode']:<8} "
            f"{r['precision']:<4} {r['step_ms']:9.1f} ms/step {r['images_per_s']:8.1f} img/s "
            f"{ratio}  outside {100 * r['outside_share']:4.1f}%{extra}{native}",
            flush=True,
        )

    rows = run_bench(
        configs,
        devices,
        args.modes,
        args.precisions,
        args.steps_cpu,
        args.steps_gpu,
        args.warmup,
        on_row=show,
        repeats=args.repeats,
    )
    if args.json:
        write_json(
            args.json,
            {
                "configs": configs,
                "rows": rows,
                "versions": package_versions(),
                "hardware": hardware(),
            },
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
    from ..runs import resolve_run
    from ..training.bench import bench_transport
    from .common import need_file

    allocator = tune_cpu_allocator()
    path = args.workflow_config or "config/config.yaml"
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
        nargs="+",
        help="train: run config file(s) to measure (instead of a plan's configurations)",
    )
    b.add_argument(
        "--workflow-config",
        help="train: measure the distinct training configurations of this workflow config "
        "(default: config/config.yaml, Table 1 on MNIST); transport: the workflow config whose "
        "vqvae and vqwae entries are timed (default: config/config.yaml)",
    )
    b.add_argument("--plan", help="train: the same from a plan file (qgvae plan)")
    b.add_argument("--table", help="train: only this table's runs (default: table1)")
    b.add_argument("--datasets", nargs="+", help="train: only these datasets (default: mnist)")
    b.add_argument("--methods", nargs="+", help="train: only these methods")
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
        help="bf16 = autocast (on a CPU without native bf16 it is measured all the same, marked)",
    )
    b.add_argument("--steps-cpu", type=int, default=5, help="timed steps per CPU measurement")
    b.add_argument("--steps-gpu", type=int, default=200, help="timed steps per GPU measurement")
    b.add_argument(
        "--warmup", type=int, default=2, help="untimed steps first (compilation; at least 2)"
    )
    b.add_argument(
        "--repeats", type=int, default=3, help="timings of --steps-* per row (the median is shown)"
    )
    b.add_argument("--json", help="also write the rows to this JSON file")
