"""``qgvae reconstruct``, ``evaluate`` and ``fetch-weights``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import RAW, add, fmt


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from ..evaluation import reconstruct_run

    info = reconstruct_run(
        args.run_dir, test_n=args.test_n, batch_size=args.batch_size, device=args.device
    )
    print(
        f"reconstructed {info['n_images']} test images ({info['num_tokens']} tokens each) "
        f"-> {args.run_dir}/reconstructions.npz, analysis.npz"
    )
    return 0


class _ImagesProgress:
    """``evaluate_run``'s progress callback as a :class:`~qgvae.progress.Progress`: a bar on a
    terminal, else a line every ``QGVAE_PROGRESS_SECONDS`` (a Snakemake or SLURM log)."""

    def __init__(self, what: str) -> None:
        self.what, self.bar = what, None

    def __call__(self, done: int, total: int, seconds: float) -> None:
        from ..progress import Progress

        if self.bar is None:
            self.bar = Progress(total, what=self.what, unit="image")
        self.bar.update(done - self.bar.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import METRICS_FILE, PER_IMAGE_FILE, evaluate_run
    from ..evaluation.evaluator import evaluation_inputs, is_current

    settings = dict(protocols=args.protocols, fid_n=args.fid_n, floor_dir=args.floor)
    for run_dir in args.run_dir:  # several runs share one process: networks load once
        if args.skip_current and is_current(run_dir, evaluation_inputs(run_dir, **settings)):
            print(f"{run_dir}: metrics.json is current (same inputs and settings); skipped")
            continue
        progress = _ImagesProgress(f"evaluate {run_dir}")
        try:
            res = evaluate_run(
                run_dir,
                batch_size=args.batch_size,
                device=args.device,
                progress=progress,
                features_cache=args.features_cache,
                backend=args.backend,
                **settings,
            )
        finally:
            progress.close()
        print(
            f"{run_dir}: n_images={res['n_images']}  dataset={res['dataset']}  "
            f"method={res['method']}"
        )
        for p, d in res["protocols"].items():
            print(
                f"[{p} @ {d['resolution']}] SSIM {fmt(d['ssim']['mean'])}  PSNR "
                f"{fmt(d['psnr']['mean'], 2)}  LPIPS {fmt(d['lpips']['mean'])}  rFID "
                f"{fmt(d['rfid']['value'], 2)} (n={d['rfid']['n']})  floor PSNR "
                f"{fmt(d['floor_psnr'], 2)}  input dependence {fmt(d['input_dependence_db'], 2)} dB"
            )
        u = res["usage"]
        print(
            f"usage: mean fraction {fmt(u['mean_fraction'])}  mean perplexity "
            f"{fmt(u['mean_perplexity'], 2)}  (K={u['codebook_size']})"
        )
        print(f"elapsed {res['elapsed_s']:.1f} s, CPU {res['cpu_s']:.1f} s")
        print(f"wrote {Path(run_dir) / METRICS_FILE} and {Path(run_dir) / PER_IMAGE_FILE}")
    return 0


def bench_eval(args: argparse.Namespace) -> int:
    """``qgvae bench eval``: see :mod:`qgvae.evaluation.bench`."""
    import contextlib
    import io

    import torch

    from ..evaluation.bench import feature_bench, stage_bench
    from ..machine import resolve_device

    device = resolve_device(args.devices[0] if args.devices else "auto")
    print(
        f"qgvae bench eval: {args.images} images, device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    with contextlib.redirect_stderr(io.StringIO()):  # pytorch-fid's progress bar
        rows = feature_bench(args.images, device=str(device), backend=args.backend)
    print(f"{'':62} CPU-s/img  wall-s/img  cheaper  vs tuned  max rel. diff")
    for r in rows:
        ratios = [
            "" if r[k] is None else f"{r[k]:.2f}x"
            for k in ("cheaper_than_reference", "cheaper_than_tuned_reference")
        ]
        diff = "" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        print(
            f"{r['what']:<62} {r['cpu_s_per_image']:9.4f}  {r['wall_s_per_image']:10.4f}  "
            f"{ratios[0]:>7}  {ratios[1]:>8}  {diff:>13}"
        )
    print(
        "cheaper: reference CPU-s / this row's, against the first row of its network; "
        "vs tuned: against the same reference loop after the allocator is tuned"
    )
    st = stage_bench(args.images, args.dataset, str(device), backend=args.backend)
    print(
        f"\nstages of one evaluation: {st['images']} {st['dataset']}-shaped images, both "
        f"protocols, originals uncached; {st['cpu_s']:.1f} CPU-s, {st['elapsed_s']:.1f} s"
    )
    for proto, stages in st["timing"].items():
        for stage, d in stages.items():
            per = d["cpu_s"] / st["images"]
            print(f"  {proto:7} {stage:10} {d['cpu_s']:8.2f} CPU-s  {per:8.4f} CPU-s/img")
    return 0


def _cmd_floor(args: argparse.Namespace) -> int:
    from ..evaluation.floor import write_floor_run

    info = write_floor_run(args.dataset, args.root, args.out, test_n=args.test_n)
    print(
        f"floor of {args.dataset}: the mean of {info['train_images']} training images as the "
        f"reconstruction of {info['n_images']} test images -> {args.out}/reconstructions.npz"
    )
    return 0


def _cmd_fetch_weights(args: argparse.Namespace) -> int:
    import os

    from ..evaluation import WEIGHTS, ensure_weights, hub_checkpoint_dir, lpips_linear_weights_path
    from ..io import hash_file

    if args.torch_home:
        os.environ["TORCH_HOME"] = str(Path(args.torch_home).expanduser().resolve())
    for kind in WEIGHTS:
        path = ensure_weights(kind)
        print(f"{kind}: {path}  sha256={hash_file(path)}")
    print(f"lpips linear layers (inside the lpips package): {lpips_linear_weights_path()}")
    print(f"torch hub cache: {hub_checkpoint_dir()}")
    if args.torch_home:
        print(f"use them with: export TORCH_HOME={os.environ['TORCH_HOME']}")
    return 0


_EVAL_DESC = """\
Compute SSIM, PSNR, LPIPS (AlexNet v0.1), rFID (pytorch-fid Inception pool3) and code usage
for run folders, under the 'vqwae' protocol (as VQ-WAE's released scripts, which produced the
paper's Table 1: SSIM / PSNR / LPIPS on both images resized to 256x256 with PIL bicubic, rFID
on images resized to 229x229 with PIL bilinear) and the 'native' protocol (the dataset's
resolution). With --floor, the dataset's mean-image floor is scored on the same originals and
each run's PSNR gain over it and its input dependence (PSNR against shuffled originals) are
recorded. Several RUN_DIRs are evaluated in one process (the networks load once).

Reads   RUN_DIR/reconstructions.npz  (originals, reconstructions, codes, codebook_size,
        bits_per_image) and RUN_DIR/run.json if present.
Writes  RUN_DIR/metrics_per_image.csv, RUN_DIR/features_<protocol>.npy and RUN_DIR/metrics.json
        (atomically, metrics.json last).

LPIPS / FID weights come from the torch hub cache ($TORCH_HOME/hub/checkpoints); if they are
missing and cannot be downloaded, nothing is computed (see `qgvae fetch-weights`)."""

_FETCH_DESC = """\
Download the pretrained networks the metrics need into the torch hub cache and print where they
are: the AlexNet trunk of LPIPS (alexnet-owt-7be5be79.pth) and pytorch-fid's FID Inception
(pt_inception-2015-12-05-6726825d.pth). Needs internet. For a machine without internet, run it
with --torch-home DIR where there is internet, copy DIR over and set TORCH_HOME=DIR there (or
copy the two files into $TORCH_HOME/hub/checkpoints by hand)."""


def add_parsers(sub: Any) -> None:
    from ..evaluation import PROTOCOLS

    r = add(
        sub,
        "reconstruct",
        _cmd_reconstruct,
        "write a finished run's test reconstructions and codes",
        "Reconstruct the test split of a finished run (RUN_DIR/model.pt) and "
        "write RUN_DIR/reconstructions.npz (uint8 originals and reconstructions, integer "
        "codes) and RUN_DIR/analysis.npz (token influence, progressive decoding).",
    )
    r.add_argument("run_dir", help="run folder written by `qgvae train`")
    r.add_argument(
        "--test-n",
        type=int,
        default=None,
        help="reconstruct only the first N test images (default: the run config's "
        "eval.test_n, else the whole test split)",
    )
    r.add_argument("--batch-size", type=int, default=250, help="images per forward pass")
    r.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1")

    p = add(
        sub,
        "evaluate",
        _cmd_evaluate,
        "metrics of one run folder (SSIM, PSNR, LPIPS, "
        "rFID, code usage) under the vqwae and native protocols",
        _EVAL_DESC,
        formatter_class=RAW,
    )
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        nargs="+",
        help="run folder(s) holding reconstructions.npz; several are evaluated in one process",
    )
    p.add_argument(
        "--fid-n",
        type=int,
        default=None,
        metavar="N",
        help="rFID on the first N test images only (default: all); N is recorded",
    )
    p.add_argument(
        "--protocols",
        nargs="+",
        choices=PROTOCOLS,
        default=list(PROTOCOLS),
        help="which protocols to compute (default: both)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="torch device for LPIPS / Inception: auto (CUDA if available), cpu, "
        "cuda, cuda:N (default: auto)",
    )
    p.add_argument(
        "--batch-size", type=int, default=100, metavar="B", help="images per batch (default: 100)"
    )
    p.add_argument(
        "--floor",
        default=None,
        metavar="DIR",
        help="the dataset's floor run folder (qgvae floor): its mean image is scored on the "
        "same originals and each run's PSNR gain over it is recorded",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "eager", "traced", "compiled"],
        help="how Inception and LPIPS run (all float32, checked against the eager networks to "
        "1e-5): traced (the CPU default), compiled (torch.compile: cheapest per image on the "
        "CPU but compiles for about a minute once per process and image size; for many "
        "images), eager",
    )
    p.add_argument(
        "--skip-current",
        action="store_true",
        help="skip runs whose metrics.json already records the same inputs and settings",
    )
    p.add_argument(
        "--features-cache",
        default=None,
        metavar="DIR",
        help="cache the test originals' Inception features here (keyed by the images' "
        "sha256, protocol and weights), shared by every method on a dataset; a corrupt "
        "file is recomputed (default: no cache)",
    )

    fl = add(
        sub,
        "floor",
        _cmd_floor,
        "write the floor run of a dataset: its training mean image for every test image",
        "Write OUT/reconstructions.npz holding the first N test images and, as the "
        "reconstruction of each, the per-pixel mean of the training split (rounded to uint8); "
        "`qgvae evaluate OUT` then scores this constant prediction like any run.",
    )
    fl.add_argument("dataset", metavar="DATASET", help="dataset name (see prepare-data)")
    fl.add_argument("--root", default="data", metavar="DIR", help="data root (default: data)")
    fl.add_argument("--out", required=True, metavar="DIR", help="floor run folder to write")
    fl.add_argument("--test-n", type=int, default=None, help="first N test images (default: all)")

    f = add(
        sub,
        "fetch-weights",
        _cmd_fetch_weights,
        "download the LPIPS AlexNet and FID Inception weights into the torch hub cache",
        _FETCH_DESC,
        formatter_class=RAW,
    )
    f.add_argument(
        "--torch-home",
        default=None,
        metavar="DIR",
        help="use DIR as TORCH_HOME (files go to DIR/hub/checkpoints); default: the "
        "current TORCH_HOME or torch's default ~/.cache/torch",
    )
