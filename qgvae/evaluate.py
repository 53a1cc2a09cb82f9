"""Evaluate one run folder: SSIM, PSNR, LPIPS, rFID and code usage under two protocols.

Input  ``<run>/reconstructions.npz`` (``originals`` / ``reconstructions`` uint8 [N, C, H, W],
       ``codes`` int [N, T] with -1 = unused token, ``codebook_size`` K, ``bits_per_image``) and
       optionally ``<run>/run.json`` (``config.dataset`` / ``config.method`` are copied).
Output ``<run>/metrics_per_image.csv`` (index, then ``<protocol>_{ssim,psnr,lpips}``) and then
       ``<run>/metrics.json``, both written atomically (metrics.json last, so its presence
       means the CSV is complete).

Protocols
- ``vqwae``  (Table 1 of the paper, from VQ-WAE's code): both images upscaled to 256x256 with
  PIL bilinear (uint8 result), then SSIM / PSNR / LPIPS / rFID on those images.
- ``native`` the same metrics at the dataset's own resolution.
The upscaled images of a batch are computed once and shared by SSIM, PSNR, LPIPS and the
Inception features. See ``PROTOCOL_NOTES`` for every decision (also written to metrics.json).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from . import metrics as M
from .utils import git_commit, hardware, now, package_versions, resolve_device, write_json, write_text

PROTOCOLS = ("vqwae", "native")
VQWAE_SIZE = 256
VQWAE_RESAMPLE = "bilinear"
METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "metrics_per_image.csv"
PER_IMAGE_METRICS = ("ssim", "psnr", "lpips")

PROTOCOL_NOTES = [
    "Protocol 'vqwae' (the paper's Table 1, after VQ-WAE's code): original and reconstruction are "
    "each upscaled to 256x256 with PIL Image.resize(BILINEAR) on the uint8 image (result rounded "
    "to uint8, as when resizing saved PNGs); SSIM, PSNR, LPIPS and the Inception features all use "
    "these same upscaled images. VQ-WAE's README calls evaluations/evaluation.py, which is not in "
    "its public repository, so the resampling filter could not be checked: bilinear is an "
    "assumption (note PIL's Image.resize defaults to BICUBIC since Pillow 7 when no filter is "
    "given, torchvision's Resize to BILINEAR).",
    "Protocol 'native': the same metrics at the dataset's own resolution, no resizing by us. "
    "pytorch-fid's InceptionV3 resizes every input internally to 299x299 (F.interpolate bilinear, "
    "align_corners=False) in both protocols.",
    "SSIM: skimage.metrics.structural_similarity(win_size=11, data_range=1, gaussian_weights=False, "
    "use_sample_covariance=True, K1=0.01, K2=0.03; channel_axis for RGB, i.e. the mean of the "
    "per-channel SSIMs) per image on float64 images in [0, 1] (uint8 / 255), then the mean over "
    "images. PSNR: skimage.metrics.peak_signal_noise_ratio(data_range=1) per image (MSE over all "
    "pixels and channels), then the mean of the per-image PSNRs (not the PSNR of the mean MSE). "
    "std is the sample standard deviation (ddof=1) over images. A pixel-identical pair has "
    "PSNR = inf: then psnr.mean/std are null and n_infinite, mean_finite, std_finite are given.",
    "LPIPS: lpips 0.1.4, LPIPS(net='alex', version='0.1'), spatially averaged, inputs in [0, 1] with "
    "normalize=True (i.e. [-1, 1]); trunk weights read from the torch hub cache file named in "
    "'weights', linear layers from the lpips package. The AlexNet trunk cannot take inputs smaller "
    "than 31x31, so native LPIPS is null (with a reason) for e.g. 28x28 MNIST.",
    "rFID: pytorch-fid 0.3.0's FID InceptionV3, 2048-d pool3 features, between the test originals "
    "and their reconstructions (the first n images; n recorded). Features are streamed batch by "
    "batch into float64 sums and sums of outer products; mean and unbiased (n-1) covariance; "
    "Frechet distance with scipy.linalg.sqrtm of the covariance product as pytorch-fid does "
    "(eps=1e-6 on the diagonals if the root is not finite, imaginary part dropped if the "
    "diagonal's is within 1e-3 of zero). With n < 2049 the covariances are rank-deficient and "
    "FID is biased upward: compare rFID only at equal n.",
    "VQ-WAE's README runs fid_score.py on the image folders its trainer writes, which are at native "
    "resolution; the rFID that corresponds to that command is therefore protocols.native.rfid. "
    "protocols.vqwae.rfid feeds the 256x256 upscaled images to Inception (as this harness's "
    "vqwae protocol shares the upscaled images between all metrics).",
    "Grayscale images (C=1) are repeated to three channels for LPIPS and Inception; SSIM and PSNR "
    "are computed on the single channel (identical to computing them on VQ-WAE's RGB-tiled PNGs, "
    "whose three channels are equal).",
    "Inputs are the producer's uint8 images (rounded and clipped). VQ-WAE's tensor2im truncated "
    "(x*255 cast to uint8) when writing its PNGs; that is not reproduced.",
    "On CUDA, TF32 is disabled while the metric networks run (full float32, as on CPU).",
    "Code usage over the evaluated images: per token position, fraction = distinct codewords used / "
    "K and perplexity = exp(entropy in nats) of that position's code histogram, -1 entries "
    "ignored; means over positions with at least one valid entry. usage.pooled sums the "
    "histograms over positions (VQ-WAE's perplexity definition; meaningful only for a codebook "
    "shared by all positions).",
]


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``reconstructions.npz`` (+ optional ``run.json``) of a run folder."""
    run = Path(run_dir)
    path = run / "reconstructions.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (a run folder must contain reconstructions.npz)")
    with np.load(path, allow_pickle=False) as z:
        missing = {"originals", "reconstructions", "codes", "codebook_size",
                   "bits_per_image"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: missing keys {sorted(missing)}")
        orig = M.check_images(z["originals"], "originals")
        rec = M.check_images(z["reconstructions"], "reconstructions")
        codes = np.asarray(z["codes"])
        k = z["codebook_size"]
        bits = z["bits_per_image"]
    if orig.shape != rec.shape:
        raise ValueError(f"originals {orig.shape} and reconstructions {rec.shape} differ in shape")
    if orig.shape[0] == 0:
        raise ValueError(f"{path}: no images")
    if codes.ndim != 2 or codes.shape[0] != orig.shape[0] or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes: expected an integer array [N={orig.shape[0]}, T], got "
                         f"{codes.dtype} {codes.shape}")
    if np.size(k) != 1 or np.size(bits) != 1:
        raise ValueError("codebook_size and bits_per_image must be scalars")
    meta: dict[str, Any] = {"dataset": None, "method": None}
    rj = run / "run.json"
    if rj.is_file():
        cfg = json.loads(rj.read_text()).get("config") or {}
        meta = {"dataset": cfg.get("dataset"), "method": cfg.get("method")}
    return {"originals": orig, "reconstructions": rec, "codes": codes,
            "codebook_size": int(np.asarray(k).item()), "bits_per_image": float(np.asarray(bits).item()),
            **meta}


def _normalize_protocols(protocols: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(protocols, str):
        protocols = (protocols,)
    out = tuple(dict.fromkeys(protocols))
    bad = [p for p in out if p not in PROTOCOLS]
    if bad or not out:
        raise ValueError(f"unknown or empty protocols {list(protocols)}; choose from {PROTOCOLS}")
    return out


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


class _Timer:
    """Wall and process-CPU seconds per (protocol, stage)."""

    def __init__(self) -> None:
        self.t: dict[str, dict[str, dict[str, float]]] = {}

    @contextmanager
    def __call__(self, protocol: str, stage: str) -> Iterator[None]:
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            d = self.t.setdefault(protocol, {}).setdefault(stage, {"wall_s": 0.0, "cpu_s": 0.0})
            d["wall_s"] += time.perf_counter() - w
            d["cpu_s"] += time.process_time() - c

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p, stages in self.t.items():
            out[p] = {s: {k: round(v, 3) for k, v in d.items()} for s, d in stages.items()}
            out[p]["total"] = {k: round(sum(d[k] for d in stages.values()), 3)
                               for k in ("wall_s", "cpu_s")}
        return out


@contextmanager
def _no_tf32() -> Iterator[None]:
    import torch

    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _resolution(h: int, w: int) -> int | list[int]:
    return h if h == w else [h, w]


def _jsonable(x: Any) -> Any:
    """NaN / inf -> None, numpy scalars -> Python (strict JSON)."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _fmt(v: float) -> str:
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


_MODELS: dict[tuple, tuple[M.LPIPSMetric, M.InceptionFeatures]] = {}


def metric_models(device: Any) -> tuple[M.LPIPSMetric, M.InceptionFeatures]:
    """The LPIPS and Inception networks for ``device``, cached per process and per weight file
    (path, size, mtime), so that evaluating many runs in one process loads them once."""
    files = [M.ensure_weights("lpips"), M.lpips_linear_weights_path(), M.ensure_weights("fid")]
    key = (str(device), *((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = (M.LPIPSMetric(device), M.InceptionFeatures(device))
    return _MODELS[key]


def _stats_key(originals: np.ndarray, protocol: str, inception: M.InceptionFeatures) -> str:
    h = hashlib.sha256()
    h.update(f"{protocol}|{VQWAE_SIZE}|{VQWAE_RESAMPLE}|{originals.shape}|".encode())
    h.update(inception.description.encode())
    h.update(np.ascontiguousarray(originals).tobytes())
    return h.hexdigest()[:24]


def _load_real_stats(cache, originals, protocol, inception):
    if cache is None or len(originals) < 2:
        return None
    path = Path(cache) / f"{_stats_key(originals, protocol, inception)}.npz"
    if not path.is_file():
        return None
    with np.load(path) as z:
        return z["mean"], z["cov"]


def _save_real_stats(cache, originals, protocol, inception, mean, cov) -> None:
    if cache is None:
        return
    from .utils import save_npz

    save_npz(Path(cache) / f"{_stats_key(originals, protocol, inception)}.npz", mean=mean, cov=cov)


def evaluate_run(run_dir: str | Path, *, protocols: Sequence[str] = PROTOCOLS,
                 fid_n: int | None = None, batch_size: int = 100, device: str = "auto",
                 progress: bool = False, stats_cache: str | Path | None = None) -> dict[str, Any]:
    """Evaluate ``run_dir`` and write ``metrics_per_image.csv`` and ``metrics.json`` there.

    protocols  any of ("vqwae", "native"); both by default.
    fid_n      rFID on the first ``fid_n`` images only (default: all N); SSIM / PSNR / LPIPS
               always use all N images.
    batch_size images per batch (upscaling, LPIPS and Inception run batch by batch).
    device     "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    stats_cache folder for the Inception statistics of the test originals, which are the same
               for every method on a dataset: keyed by the sha256 of the fid_n original images,
               the protocol and the Inception weights, so a hit is exactly what would have been
               recomputed. None: no cache.
    Raises ``MissingWeightsError`` before computing anything when LPIPS / FID weights are absent.
    Returns the metrics dict that was written to metrics.json.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    protocols = _normalize_protocols(protocols)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    run = Path(run_dir)
    # weights first: fail before computing anything
    M.ensure_weights("lpips")
    M.ensure_weights("fid")
    data = load_run(run)
    orig, rec = data["originals"], data["reconstructions"]
    n, c, h, w = orig.shape
    if fid_n is None:
        fid_n = n
    if not 1 <= int(fid_n) <= n:
        raise ValueError(f"fid_n must be in [1, N={n}], got {fid_n}")
    fid_n = int(fid_n)

    import torch

    dev = resolve_device(device)
    lpips_metric, inception = metric_models(dev)
    timer = _Timer()
    size = {"vqwae": (VQWAE_SIZE, VQWAE_SIZE), "native": (h, w)}
    lpips_ok = {p: lpips_metric.supports(*size[p]) for p in protocols}
    per_image = {p: {m: np.full(n, np.nan) for m in PER_IMAGE_METRICS} for p in protocols}
    stats = {p: (M.GaussianStats(inception.dims, dev), M.GaussianStats(inception.dims, dev))
             for p in protocols}

    cached = {p: _load_real_stats(stats_cache, orig[:fid_n], p, inception) for p in protocols}

    report_every = max(1, math.ceil(n / batch_size) // 20)
    with _no_tf32(), torch.inference_mode():
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            o_u8, r_u8 = orig[s:e], rec[s:e]
            k = max(0, min(e, fid_n) - s)          # how many of this batch enter rFID
            for p in protocols:
                if p == "vqwae":
                    with timer(p, "upscale"):
                        o_p = M.upscale_pil(o_u8, VQWAE_SIZE, VQWAE_RESAMPLE)
                        r_p = M.upscale_pil(r_u8, VQWAE_SIZE, VQWAE_RESAMPLE)
                else:
                    o_p, r_p = o_u8, r_u8
                with timer(p, "ssim_psnr"):
                    per_image[p]["ssim"][s:e] = M.ssim_batch(o_p, r_p)
                    per_image[p]["psnr"][s:e] = M.psnr_batch(o_p, r_p)
                with timer(p, "to_tensor"):
                    o_t = M.to_rgb_float(o_p, dev)   # shared by LPIPS and Inception
                    r_t = M.to_rgb_float(r_p, dev)
                if lpips_ok[p]:
                    with timer(p, "lpips"):
                        per_image[p]["lpips"][s:e] = lpips_metric(o_t, r_t)
                if k:
                    with timer(p, "inception"):
                        if cached[p] is None:
                            stats[p][0].update(inception(o_t[:k]))
                        stats[p][1].update(inception(r_t[:k]))
            if progress and (e == n or (s // batch_size) % report_every == 0):
                print(f"  {e}/{n} images, {time.perf_counter() - wall0:.0f} s", file=sys.stderr,
                      flush=True)

    results: dict[str, Any] = {}
    for p in protocols:
        entry: dict[str, Any] = {m: M.summarize(per_image[p][m]) for m in PER_IMAGE_METRICS}
        if not lpips_ok[p]:
            entry["lpips"]["unavailable"] = (
                f"LPIPS-AlexNet needs inputs of at least {lpips_metric.min_size}x"
                f"{lpips_metric.min_size}; images are {size[p][0]}x{size[p][1]}")
        with timer(p, "frechet"):
            real, fake = stats[p]
            if fid_n >= 2:
                if cached[p] is None:
                    real_mean, real_cov = real.mean(), real.cov()
                    _save_real_stats(stats_cache, orig[:fid_n], p, inception, real_mean, real_cov)
                else:
                    real_mean, real_cov = cached[p]
                value, info = M.frechet_distance_info(real_mean, real_cov, fake.mean(), fake.cov(),
                                                      factor2=fake.factor())
                entry["rfid"] = {"value": value, "n": fid_n, **info,
                                 "originals_stats_cached": cached[p] is not None}
            else:
                entry["rfid"] = {"value": None, "n": fid_n,
                                 "unavailable": "rFID needs at least 2 images"}
        entry["resolution"] = _resolution(*size[p])
        if p == "vqwae":
            entry["upscale"] = {"library": "PIL", "filter": VQWAE_RESAMPLE, "size": VQWAE_SIZE,
                                "from": _resolution(h, w)}
        results[p] = entry
    with timer("all", "code_usage"):
        usage = M.code_usage(data["codes"], data["codebook_size"])

    # per-image sidecar first, metrics.json last
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    cols = [f"{p}_{m}" for p in protocols for m in PER_IMAGE_METRICS]
    wr.writerow(["index", *cols])
    for i in range(n):
        wr.writerow([i, *(_fmt(per_image[p][m][i]) for p in protocols for m in PER_IMAGE_METRICS)])
    write_text(run / PER_IMAGE_FILE, buf.getvalue())

    out = {
        "n_images": n,
        "dataset": data["dataset"],
        "method": data["method"],
        "image_shape": [c, h, w],
        "protocols": results,
        "usage": usage,
        "bits_per_image": data["bits_per_image"],
        "grayscale_repeated_to_rgb": c == 1,
        "fid_n": fid_n,
        "per_image_csv": PER_IMAGE_FILE,
        "versions": package_versions(),
        "weights": {"lpips": lpips_metric.description, "fid": inception.description},
        "protocol_notes": "\n".join(f"{i + 1}. {t}" for i, t in enumerate(PROTOCOL_NOTES)),
        "device": str(dev),
        "batch_size": batch_size,
        "hardware": hardware(str(dev)),
        "qgvae_commit": git_commit(),
        "created": now(),
        "timing": timer.report(),
        "cpu_s": round(time.process_time() - cpu0, 3),
        "elapsed_s": round(time.perf_counter() - wall0, 3),
    }
    out = _jsonable(out)
    write_json(run / METRICS_FILE, out)
    return out


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

_EVAL_DESC = """\
Compute SSIM, PSNR, LPIPS (AlexNet v0.1), rFID (pytorch-fid Inception pool3) and code usage
for one run folder, under the 'vqwae' protocol (both images upscaled to 256x256 with PIL
bilinear, as in the paper's Table 1) and the 'native' protocol (dataset resolution).

Reads   RUN_DIR/reconstructions.npz  (originals, reconstructions, codes, codebook_size,
        bits_per_image) and RUN_DIR/run.json if present.
Writes  RUN_DIR/metrics_per_image.csv and RUN_DIR/metrics.json (atomically).

LPIPS / FID weights come from the torch hub cache ($TORCH_HOME/hub/checkpoints); if they are
missing and cannot be downloaded, nothing is computed (see `qgvae fetch-weights`)."""

_FETCH_DESC = """\
Download the pretrained networks the metrics need into the torch hub cache and print where they
are: the AlexNet trunk of LPIPS (alexnet-owt-7be5be79.pth) and pytorch-fid's FID Inception
(pt_inception-2015-12-05-6726825d.pth). Needs internet. Without internet, use
`python ../shared/tools/offline_metric_weights.py DIR` and set TORCH_HOME=DIR."""


def _summary_lines(res: dict[str, Any]) -> list[str]:
    def f(v: Any, nd: int = 4) -> str:
        return "n/a" if v is None else f"{v:.{nd}f}"

    lines = [f"n_images={res['n_images']}  dataset={res['dataset']}  method={res['method']}"]
    for p, d in res["protocols"].items():
        lines.append(f"[{p} @ {d['resolution']}] SSIM {f(d['ssim']['mean'])}  PSNR "
                     f"{f(d['psnr']['mean'], 2)}  LPIPS {f(d['lpips']['mean'])}  rFID "
                     f"{f(d['rfid']['value'], 2)} (n={d['rfid']['n']})")
    u = res["usage"]
    lines.append(f"usage: mean fraction {f(u['mean_fraction'])}  mean perplexity "
                 f"{f(u['mean_perplexity'], 2)}  (K={u['codebook_size']})")
    lines.append(f"elapsed {res['elapsed_s']:.1f} s, CPU {res['cpu_s']:.1f} s")
    return lines


def _cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        res = evaluate_run(args.run_dir, protocols=args.protocols, fid_n=args.fid_n,
                           batch_size=args.batch_size, device=args.device, progress=True,
                           stats_cache=args.stats_cache)
    except M.MissingWeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in _summary_lines(res):
        print(line)
    print(f"wrote {Path(args.run_dir) / METRICS_FILE} and {Path(args.run_dir) / PER_IMAGE_FILE}")
    return 0


def _cmd_fetch_weights(args: argparse.Namespace) -> int:
    import os

    if args.torch_home:
        os.environ["TORCH_HOME"] = str(Path(args.torch_home).expanduser().resolve())
    try:
        for kind in ("lpips", "fid"):
            path = M.ensure_weights(kind)
            print(f"{kind}: {path}  sha256={M.sha256_file(path)}")
    except M.MissingWeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"lpips linear layers (inside the lpips package): {M.lpips_linear_weights_path()}")
    print(f"torch hub cache: {M.hub_checkpoint_dir()}")
    if args.torch_home:
        print(f"use them with: export TORCH_HOME={os.environ['TORCH_HOME']}")
    return 0


def register_cli(subparsers: Any) -> None:
    """Add the ``evaluate`` and ``fetch-weights`` sub-commands (``func(args) -> int``)."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("evaluate", help="metrics of one run folder (SSIM, PSNR, LPIPS, "
                              "rFID, code usage) under the vqwae and native protocols",
                              description=_EVAL_DESC, formatter_class=fmt)
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder holding reconstructions.npz")
    p.add_argument("--fid-n", type=int, default=None, metavar="N",
                   help="rFID on the first N test images only (default: all); N is recorded")
    p.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS),
                   help="which protocols to compute (default: both)")
    p.add_argument("--device", default="auto",
                   help="torch device for LPIPS / Inception: auto (CUDA if available), cpu, cuda, "
                        "cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, default=100, metavar="B",
                   help="images per batch (default: 100)")
    p.add_argument("--stats-cache", default=None, metavar="DIR",
                   help="cache the test originals' Inception statistics here (keyed by the "
                        "images' sha256, protocol and weights), shared by every method on a "
                        "dataset (default: no cache)")
    p.set_defaults(func=_cmd_evaluate)

    f = subparsers.add_parser("fetch-weights", help="download the LPIPS AlexNet and FID "
                              "Inception weights into the torch hub cache",
                              description=_FETCH_DESC, formatter_class=fmt)
    f.add_argument("--torch-home", default=None, metavar="DIR",
                   help="use DIR as TORCH_HOME (files go to DIR/hub/checkpoints); default: the "
                        "current TORCH_HOME or torch's default ~/.cache/torch")
    f.set_defaults(func=_cmd_fetch_weights)
