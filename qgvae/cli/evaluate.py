"""``qgvae reconstruct``, ``evaluate`` and ``fetch-weights``."""

from __future__ import annotations

import argparse
import sys
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import METRICS_FILE, PER_IMAGE_FILE, evaluate_run

    def progress(done: int, total: int, seconds: float) -> None:
        print(f"  {done}/{total} images, {seconds:.0f} s", file=sys.stderr, flush=True)

    res = evaluate_run(
        args.run_dir,
        protocols=args.protocols,
        fid_n=args.fid_n,
        batch_size=args.batch_size,
        device=args.device,
        progress=progress,
        features_cache=args.features_cache,
    )
    print(f"n_images={res['n_images']}  dataset={res['dataset']}  method={res['method']}")
    for p, d in res["protocols"].items():
        print(
            f"[{p} @ {d['resolution']}] SSIM {fmt(d['ssim']['mean'])}  PSNR "
            f"{fmt(d['psnr']['mean'], 2)}  LPIPS {fmt(d['lpips']['mean'])}  rFID "
            f"{fmt(d['rfid']['value'], 2)} (n={d['rfid']['n']})"
        )
    u = res["usage"]
    print(
        f"usage: mean fraction {fmt(u['mean_fraction'])}  mean perplexity "
        f"{fmt(u['mean_perplexity'], 2)}  (K={u['codebook_size']})"
    )
    print(f"elapsed {res['elapsed_s']:.1f} s, CPU {res['cpu_s']:.1f} s")
    print(f"wrote {Path(args.run_dir) / METRICS_FILE} and {Path(args.run_dir) / PER_IMAGE_FILE}")
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
for one run folder, under the 'vqwae' protocol (both images upscaled to 256x256 as in the
paper's Table 1, after VQ-WAE's evaluation code) and the 'native' protocol (dataset
resolution).

Reads   RUN_DIR/reconstructions.npz  (originals, reconstructions, codes, codebook_size,
        bits_per_image) and RUN_DIR/run.json if present.
Writes  RUN_DIR/metrics_per_image.csv and RUN_DIR/metrics.json (atomically).

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
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder holding reconstructions.npz")
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
        "--features-cache",
        default=None,
        metavar="DIR",
        help="cache the test originals' Inception features here (keyed by the images' "
        "sha256, protocol and weights), shared by every method on a dataset; a corrupt "
        "file is recomputed (default: no cache)",
    )

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
