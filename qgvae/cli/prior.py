"""``qgvae prior encode|train|sample|evaluate|table|bench``: generation on a tokenizer's codes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import add, config_json, fmt, need_file, read_paper_values, read_plan


def _match(value: str) -> float | str | None:
    if value == "final":
        return None
    if value == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("auto, final or a PSNR in dB") from None


def _cmd_encode(args: argparse.Namespace) -> int:
    from ..prior.study import encode

    rec = encode(
        args.run_dir,
        args.out,
        match_psnr=args.match_psnr,
        compare=args.compare,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(
        f"tokenizer {rec['run']}/{rec['file']} (step {rec['step']}, validation PSNR "
        f"{fmt(rec['val_psnr'], 2)} dB, target {fmt(rec['target_psnr'], 2)}; {rec['rule']})"
    )
    print(
        f"encoded {rec['sequences']['train']} train and {rec['sequences']['test']} test images "
        f"({rec['num_tokens']} tokens, K={rec['codebook_size']}, {rec['num_books']} codebooks) "
        f"in {rec['encode_seconds']:.1f} s -> {args.out}"
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ..prior.settings import check_training_settings
    from ..prior.trainer import PRIOR_RESULT, train_prior

    if args.config:
        import yaml

        cfg = yaml.safe_load(need_file("prior settings", args.config).read_text()) or {}
    else:
        cfg = config_json(args.config_json)
    settings = check_training_settings(cfg)
    if args.device:
        settings["train"]["device"] = args.device
    meta = train_prior(args.folder, settings, progress=args.progress)
    print(
        f"trained {meta['steps']} steps ({meta['steps'] // meta['steps_per_epoch']} epochs, "
        f"{meta['parameters']:,} parameters) -> {args.folder}/{PRIOR_RESULT}"
    )
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from ..prior.study import SAMPLES_FILE, sample

    info = sample(
        args.folder,
        args.epoch,
        n=args.n,
        batch_size=args.batch_size,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        device=args.device,
    )
    print(
        f"sampled {info['n']} images at epoch {args.epoch} in {info['seconds']:.1f} s "
        f"({info['images_per_s']:.1f} images/s, {info['device']}) -> "
        f"{Path(args.folder) / SAMPLES_FILE.format(epoch=args.epoch)}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..prior.study import METRICS_FILE, evaluate

    def progress(done: int, total: int) -> None:
        print(f"  inception {done}/{total}", file=sys.stderr, flush=True)

    res = evaluate(
        args.folder,
        args.epoch,
        features_cache=args.features_cache,
        batch_size=args.batch_size,
        device=args.device,
        progress=progress,
    )
    g = res["gfid"]
    print(
        f"epoch {res['epoch']}: gFID {fmt(g['value'], 2)} (N = {g['n_samples']} samples vs "
        f"{g['n_reference']} test images), test NLL {res['nll_bits_per_image']:.1f} bits/image "
        f"(tokenizer: {res['tokenizer_bits_per_image']:.0f} bits/image)"
    )
    print(f"wrote {Path(args.folder) / METRICS_FILE.format(epoch=res['epoch'])}")
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    from ..rendering.generation import write_generation_table

    plan = read_plan(args.plan)
    paper = read_paper_values(args.paper) if Path(args.paper).is_file() else {}
    write_generation_table(plan, paper, args.out, root=args.root)
    print(f"qgvae prior table: wrote {args.out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from ..io import write_json
    from ..machine import hardware, package_versions
    from ..prior.bench import PRESETS, bench_one

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"qgvae prior bench: torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    rows = []
    for device in devices:
        for name, structure, arch in PRESETS[args.preset]:
            row = bench_one(
                structure,
                arch,
                device=device,
                batch_size=args.batch_size,
                steps=args.steps_gpu if device.startswith("cuda") else args.steps_cpu,
                sample_batch_size=args.sample_batch,
                no_cache=not args.skip_no_cache,
            )
            row["name"] = name
            rows.append(row)
            no_cache = row.get("sample_no_cache_images_per_s")
            print(
                f"{device:>6} {name:<26} {row['parameters'] / 1e6:5.1f} M params  "
                f"train {row['train_tokens_per_s']:9.0f} tokens/s ({row['step_ms']:7.1f} ms/step, "
                f"CIFAR-10 epoch {row['epoch_s']:7.1f} s)  sample {row['sample_images_per_s']:8.1f}"
                " images/s" + (f" (no cache: {no_cache:.1f})" if no_cache else ""),
                flush=True,
            )
    if args.json:
        write_json(
            args.json, {"rows": rows, "versions": package_versions(), "hardware": hardware()}
        )
    return 0


def _cmd_help(parser: argparse.ArgumentParser):
    def run(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return run


def add_parsers(sub: Any) -> None:
    top = add(
        sub,
        "prior",
        lambda args: 2,
        "autoregressive prior over a tokenizer's codes: encode, train, sample, evaluate (gFID)",
        "Generation on the tokens (the paper's appendix H). Steps on one prior folder: "
        "encode (choose the tokenizer weights, cache the codes), train, sample at an epoch, "
        "evaluate (gFID against the test split and test NLL). The workflow's `generation` "
        "target runs them for every tokenizer of the config.",
    )
    top.set_defaults(func=_cmd_help(top))
    psub = top.add_subparsers(dest="prior_command", metavar="STEP")

    e = add(psub, "encode", _cmd_encode, "choose the tokenizer weights and cache the codes")
    e.add_argument("run_dir", help="the tokenizer's run folder")
    e.add_argument("--out", required=True, help="the prior folder (codes_*.npz, tokenizer.json)")
    e.add_argument(
        "--match-psnr",
        type=_match,
        default="auto",
        metavar="auto|final|DB",
        help="matched reconstruction quality: first kept checkpoint whose validation PSNR "
        "reaches DB; auto: the highest PSNR all of RUN_DIR and --compare reach; final: model.pt",
    )
    e.add_argument("--compare", nargs="*", default=[], help="the other tokenizers' run folders")
    e.add_argument("--batch-size", type=int, default=500, help="images per encoding batch")
    e.add_argument("--device", default="auto")

    t = add(psub, "train", _cmd_train, "train (or resume) the prior of a prior folder")
    t.add_argument("folder", help="the prior folder (holding codes_train.npz, codes_test.npz)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="settings file (YAML/JSON: prior, train, epochs, seed)")
    src.add_argument("--config-json", help="settings as JSON (used by the workflow)")
    t.add_argument("--device", help="override train.device")
    t.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force the progress bar on/off (default: on when stderr is a terminal)",
    )

    s = add(psub, "sample", _cmd_sample, "sample images from the prior's weights at one epoch")
    s.add_argument("folder")
    s.add_argument("--epoch", type=int, required=True, help="a sampled epoch (sample.epochs)")
    s.add_argument("--n", type=int, default=None, help="samples (default: test split size)")
    s.add_argument("--batch-size", type=int, default=500)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int, default=None, help="keep the k most likely codes")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")

    v = add(psub, "evaluate", _cmd_evaluate, "gFID and test NLL of one epoch's samples")
    v.add_argument("folder")
    v.add_argument("--epoch", type=int, required=True)
    v.add_argument(
        "--features-cache",
        default=None,
        metavar="DIR",
        help="shared cache of the test images' Inception features (the evaluator's)",
    )
    v.add_argument("--batch-size", type=int, default=200, help="images per Inception batch")
    v.add_argument("--device", default="auto")

    tb = add(psub, "table", _cmd_table, "the generation table alone (LaTeX)")
    tb.add_argument("--plan", default="results/plan.json")
    tb.add_argument("--paper", default="config/paper_values.yaml")
    tb.add_argument("--root", default=".", help="folder the plan's run paths are relative to")
    tb.add_argument("--out", required=True)

    b = add(psub, "bench", _cmd_bench, "training tokens/s and sampling images/s of the prior")
    b.add_argument("--preset", choices=["paper", "quick"], default="paper")
    b.add_argument("--devices", nargs="+", default=None)
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--sample-batch", type=int, default=64)
    b.add_argument("--steps-cpu", type=int, default=5)
    b.add_argument("--steps-gpu", type=int, default=100)
    b.add_argument("--skip-no-cache", action="store_true", help="skip the no-cache sampler")
    b.add_argument("--json", help="also write the rows to this JSON file")
