"""Evaluate one run folder: SSIM, PSNR, LPIPS, rFID and code usage under two protocols.

Input  ``<run>/reconstructions.npz`` (``originals`` / ``reconstructions`` uint8 [N, C, H, W],
       ``codes`` int [N, T] with -1 = unused token, ``codebook_size`` K, ``bits_per_image``) and
       optionally ``<run>/run.json`` (``config.dataset`` / ``config.method`` are copied).
Output ``<run>/metrics_per_image.csv`` (index, then ``<protocol>_{ssim,psnr,lpips}``) and then
       ``<run>/metrics.json``, both written atomically (metrics.json last, so its presence
       means the CSV is complete).

The protocols (``vqwae``: upscaled to 256x256 first; ``native``) and the notes recording every
decision are in :mod:`qgvae.evaluation.protocols`; the metrics in ``image_metrics``, ``fid`` and
``usage``; the pretrained networks' files in ``weights``.

``evaluate_run`` runs in four steps: load and validate the inputs (``_prepare``), one pass over
the images batch by batch (``_batch_pass``: per-image SSIM / PSNR / LPIPS and the Inception
statistics), the summaries per protocol (``_summarize_protocol``), and writing the files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RunFolderError
from ..io import save_npy, write_json, write_text
from ..machine import git_commit, hardware, now, package_versions, resolve_device
from .feature_cache import FeatureCache
from .fid import GaussianStats, InceptionFeatures, frechet_distance_info
from .image_metrics import (
    LPIPSMetric,
    check_images,
    psnr_batch,
    ssim_batch,
    to_rgb_float,
    upscale_pil,
)
from .protocols import (
    PROTOCOL_NOTES,
    PROTOCOLS,
    VQWAE_RESAMPLE,
    VQWAE_SIZE,
    normalize_protocols,
)
from .usage import code_usage, summarize
from .weights import ensure_weights, lpips_linear_weights_path

if TYPE_CHECKING:
    import torch

METRICS_FILE = "metrics.json"
FEATURES_FILE = "features_{protocol}.npy"  # float32 [fid_n, 2048] Inception features of the recons
PER_IMAGE_FILE = "metrics_per_image.csv"
PER_IMAGE_METRICS = ("ssim", "psnr", "lpips")
RECONSTRUCTIONS_KEYS = ("originals", "reconstructions", "codes", "codebook_size", "bits_per_image")

# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``reconstructions.npz`` (+ optional ``run.json``) of a run folder.

    A missing, unreadable or malformed ``reconstructions.npz`` raises ``RunFolderError`` naming
    the file."""
    run = Path(run_dir)
    path = run / "reconstructions.npz"
    if not path.is_file():
        raise RunFolderError(f"{path} not found (a run folder must contain reconstructions.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = set(RECONSTRUCTIONS_KEYS) - set(z.files)
            if missing:
                raise RunFolderError(f"{path}: missing keys {sorted(missing)}")
            arrays = {key: z[key] for key in RECONSTRUCTIONS_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RunFolderError(f"{path}: cannot be read as .npz ({exc})") from exc
    try:
        orig = check_images(arrays["originals"], "originals")
        rec = check_images(arrays["reconstructions"], "reconstructions")
    except ValueError as exc:
        raise RunFolderError(f"{path}: {exc}") from exc
    codes = np.asarray(arrays["codes"])
    k, bits = arrays["codebook_size"], arrays["bits_per_image"]
    if orig.shape != rec.shape:
        raise RunFolderError(
            f"{path}: originals {orig.shape} and reconstructions {rec.shape} differ in shape"
        )
    if orig.shape[0] == 0:
        raise RunFolderError(f"{path}: no images")
    if (
        codes.ndim != 2
        or codes.shape[0] != orig.shape[0]
        or not np.issubdtype(codes.dtype, np.integer)
    ):
        raise RunFolderError(
            f"{path}: codes: expected an integer array [N={orig.shape[0]}, T], got "
            f"{codes.dtype} {codes.shape}"
        )
    if np.size(k) != 1 or np.size(bits) != 1:
        raise RunFolderError(f"{path}: codebook_size and bits_per_image must be scalars")
    meta: dict[str, Any] = {"dataset": None, "method": None}
    rj = run / "run.json"
    if rj.is_file():
        cfg = json.loads(rj.read_text()).get("config") or {}
        meta = {"dataset": cfg.get("dataset"), "method": cfg.get("method")}
    return {
        "originals": orig,
        "reconstructions": rec,
        "codes": codes,
        "codebook_size": int(np.asarray(k).item()),
        "bits_per_image": float(np.asarray(bits).item()),
        **meta,
    }


# --------------------------------------------------------------------------------------------
# Helpers: timing, TF32, JSON / CSV values
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
            out[p]["total"] = {
                k: round(sum(d[k] for d in stages.values()), 3) for k in ("wall_s", "cpu_s")
            }
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


# --------------------------------------------------------------------------------------------
# The metric networks, cached per process
# --------------------------------------------------------------------------------------------

_MODELS: dict[tuple, tuple[LPIPSMetric, InceptionFeatures]] = {}


def metric_models(device: Any) -> tuple[LPIPSMetric, InceptionFeatures]:
    """The LPIPS and Inception networks for ``device``, cached per process and per weight file
    (path, size, mtime), so that evaluating many runs in one process loads them once."""
    files = [ensure_weights("lpips"), lpips_linear_weights_path(), ensure_weights("fid")]
    key = (str(device), *((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = (LPIPSMetric(device), InceptionFeatures(device))
    return _MODELS[key]


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    """What one evaluation works on: the validated inputs, the settings and the networks."""

    run: Path
    data: dict[str, Any]
    protocols: tuple[str, ...]
    fid_n: int
    batch_size: int
    device: torch.device
    lpips: LPIPSMetric
    inception: InceptionFeatures
    cache: FeatureCache
    timer: _Timer = field(default_factory=_Timer)

    @property
    def originals(self) -> np.ndarray:
        return self.data["originals"]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.originals.shape

    def size(self, protocol: str) -> tuple[int, int]:
        """The (height, width) the protocol's metrics see."""
        return (VQWAE_SIZE, VQWAE_SIZE) if protocol == "vqwae" else self.shape[2:]

    def lpips_ok(self, protocol: str) -> bool:
        return self.lpips.supports(*self.size(protocol))


def _prepare(
    run_dir: str | Path,
    protocols: Sequence[str],
    fid_n: int | None,
    batch_size: int,
    device: str,
    features_cache: str | Path | None,
) -> _Job:
    """Check the arguments and the weights (before anything is computed), read the run folder
    and load the metric networks."""
    protocols = normalize_protocols(protocols)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    run = Path(run_dir)
    # weights first: fail before computing anything
    ensure_weights("lpips")
    ensure_weights("fid")
    data = load_run(run)
    n = data["originals"].shape[0]
    if fid_n is None:
        fid_n = n
    if not 1 <= int(fid_n) <= n:
        raise ValueError(f"fid_n must be in [1, N={n}], got {fid_n}")
    dev = resolve_device(device)
    lpips_metric, inception = metric_models(dev)
    cache = FeatureCache(features_cache)
    return _Job(run, data, protocols, int(fid_n), batch_size, dev, lpips_metric, inception, cache)


def _batch_pass(
    job: _Job,
    cached: dict[str, np.ndarray | None],
    progress: Callable[[int, int, float], None] | None,
    wall0: float,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, tuple[Any, Any]]]:
    """One pass over the images: per-image SSIM / PSNR / LPIPS (NaN where not computed) and the
    Inception features (originals, reconstructions) of the first fid_n images, as float32
    tensors on the device; the originals' are skipped where ``cached`` has them."""
    import torch

    orig, rec = job.data["originals"], job.data["reconstructions"]
    n, batch_size, fid_n = job.shape[0], job.batch_size, job.fid_n
    dev, timer = job.device, job.timer
    lpips_ok = {p: job.lpips_ok(p) for p in job.protocols}
    per_image = {p: {m: np.full(n, np.nan) for m in PER_IMAGE_METRICS} for p in job.protocols}
    feats: dict[str, tuple[list, list]] = {p: ([], []) for p in job.protocols}
    report_every = max(1, math.ceil(n / batch_size) // 20)
    with _no_tf32(), torch.inference_mode():
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            o_u8, r_u8 = orig[s:e], rec[s:e]
            k = max(0, min(e, fid_n) - s)  # how many of this batch enter rFID
            for p in job.protocols:
                if p == "vqwae":
                    with timer(p, "upscale"):
                        o_p = upscale_pil(o_u8, VQWAE_SIZE, VQWAE_RESAMPLE)
                        r_p = upscale_pil(r_u8, VQWAE_SIZE, VQWAE_RESAMPLE)
                else:
                    o_p, r_p = o_u8, r_u8
                with timer(p, "ssim_psnr"):
                    per_image[p]["ssim"][s:e] = ssim_batch(o_p, r_p)
                    per_image[p]["psnr"][s:e] = psnr_batch(o_p, r_p)
                with timer(p, "to_tensor"):
                    o_t = to_rgb_float(o_p, dev)  # shared by LPIPS and Inception
                    r_t = to_rgb_float(r_p, dev)
                if lpips_ok[p]:
                    with timer(p, "lpips"):
                        per_image[p]["lpips"][s:e] = job.lpips(o_t, r_t)
                if k:
                    with timer(p, "inception"):
                        if cached[p] is None:
                            feats[p][0].append(job.inception(o_t[:k]))
                        feats[p][1].append(job.inception(r_t[:k]))
            if progress is not None and (e == n or (s // batch_size) % report_every == 0):
                progress(e, n, time.perf_counter() - wall0)
    out = {}
    for p, (o_list, r_list) in feats.items():
        o_f = torch.from_numpy(cached[p]).to(dev) if cached[p] is not None else _cat(o_list)
        out[p] = (o_f, _cat(r_list))
    return per_image, out


def _cat(chunks: list) -> Any:
    import torch

    return torch.cat(chunks) if chunks else torch.zeros(0, 2048)


def gaussian_stats(features: Any, device: Any) -> GaussianStats:
    """The float64 Gaussian statistics of a whole feature array, in one update (so that the
    same features always give bit-identical statistics, cached or not)."""
    stats = GaussianStats(features.shape[1], device)
    stats.update(features)
    return stats


def rfid_from_features(real: Any, fake: Any, device: Any = "cpu") -> tuple[float, dict]:
    """rFID and the Frechet route's details from two feature arrays ``[n, dim]``."""
    rs, fs = gaussian_stats(real, device), gaussian_stats(fake, device)
    return frechet_distance_info(rs.mean(), rs.cov(), fs.mean(), fs.cov(), factor2=fs.factor())


def _rfid(job: _Job, p: str, real: Any, fake: Any, cached: bool) -> dict[str, Any]:
    """The protocol's rFID entry; stores the originals' features in the cache on a miss, and
    the reconstructions' beside metrics.json (``features_<protocol>.npy``)."""
    if job.fid_n < 2:
        return {"value": None, "n": job.fid_n, "unavailable": "rFID needs at least 2 images"}
    if not cached:
        originals = job.originals[: job.fid_n]
        job.cache.save(originals, p, job.inception.description, real.cpu().numpy())
    save_npy(job.run / FEATURES_FILE.format(protocol=p), fake.cpu().numpy())
    value, info = rfid_from_features(real, fake, job.device)
    return {
        "value": value,
        "n": job.fid_n,
        **info,
        "originals_features_cached": cached,
        "features_file": FEATURES_FILE.format(protocol=p),
    }


def _summarize_protocol(
    job: _Job,
    p: str,
    per_image: dict[str, np.ndarray],
    features: tuple[Any, Any],
    cached: bool,
) -> dict[str, Any]:
    """metrics.json's ``protocols.<p>``: the per-image summaries, rFID, resolution, upscaling."""
    entry: dict[str, Any] = {m: summarize(per_image[m]) for m in PER_IMAGE_METRICS}
    size = job.size(p)
    if not job.lpips_ok(p):
        entry["lpips"]["unavailable"] = (
            f"LPIPS-AlexNet needs inputs of at least {job.lpips.min_size}x"
            f"{job.lpips.min_size}; images are {size[0]}x{size[1]}"
        )
    with job.timer(p, "frechet"):
        entry["rfid"] = _rfid(job, p, *features, cached)
    entry["resolution"] = _resolution(*size)
    if p == "vqwae":
        entry["upscale"] = {
            "library": "PIL",
            "filter": VQWAE_RESAMPLE,
            "size": VQWAE_SIZE,
            "from": _resolution(*job.shape[2:]),
        }
    return entry


def _per_image_csv(protocols: Sequence[str], per_image: dict[str, dict[str, np.ndarray]]) -> str:
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    cols = [f"{p}_{m}" for p in protocols for m in PER_IMAGE_METRICS]
    wr.writerow(["index", *cols])
    n = len(per_image[protocols[0]][PER_IMAGE_METRICS[0]])
    for i in range(n):
        wr.writerow([i, *(_fmt(per_image[p][m][i]) for p in protocols for m in PER_IMAGE_METRICS)])
    return buf.getvalue()


def evaluate_run(
    run_dir: str | Path,
    *,
    protocols: Sequence[str] = PROTOCOLS,
    fid_n: int | None = None,
    batch_size: int = 100,
    device: str = "auto",
    progress: Callable[[int, int, float], None] | None = None,
    features_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``run_dir`` and write ``metrics_per_image.csv`` and ``metrics.json`` there.

    protocols  any of ("vqwae", "native"); both by default.
    fid_n      rFID on the first ``fid_n`` images only (default: all N); SSIM / PSNR / LPIPS
               always use all N images.
    batch_size images per batch (upscaling, LPIPS and Inception run batch by batch).
    device     "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    progress   called as ``progress(images_done, n_images, seconds_so_far)`` about 20 times.
    features_cache folder for the Inception features of the test originals, which are the same
               for every method on a dataset (:class:`FeatureCache`; a corrupt file is
               recomputed). None: no cache.
    Raises ``MissingWeightsError`` before computing anything when LPIPS / FID weights are absent,
    ``RunFolderError`` when ``reconstructions.npz`` is missing or malformed.
    Returns the metrics dict that was written to metrics.json.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    job = _prepare(run_dir, protocols, fid_n, batch_size, device, features_cache)
    originals = job.originals[: job.fid_n]
    dims = job.inception.dims
    cached = {
        p: job.cache.load(originals, p, job.inception.description, dims) for p in job.protocols
    }
    per_image, features = _batch_pass(job, cached, progress, wall0)
    results = {
        p: _summarize_protocol(job, p, per_image[p], features[p], cached[p] is not None)
        for p in job.protocols
    }
    with job.timer("all", "code_usage"):
        usage = code_usage(job.data["codes"], job.data["codebook_size"])

    # per-image sidecar first, metrics.json last
    write_text(job.run / PER_IMAGE_FILE, _per_image_csv(job.protocols, per_image))
    n, c, h, w = job.shape
    out = {
        "n_images": n,
        "dataset": job.data["dataset"],
        "method": job.data["method"],
        "image_shape": [c, h, w],
        "protocols": results,
        "usage": usage,
        "bits_per_image": job.data["bits_per_image"],
        "grayscale_repeated_to_rgb": c == 1,
        "fid_n": job.fid_n,
        "feature_cache_recomputed": job.cache.recomputed,
        "per_image_csv": PER_IMAGE_FILE,
        "versions": package_versions(),
        "weights": {"lpips": job.lpips.description, "fid": job.inception.description},
        "protocol_notes": "\n".join(f"{i + 1}. {t}" for i, t in enumerate(PROTOCOL_NOTES)),
        "device": str(job.device),
        "batch_size": job.batch_size,
        "hardware": hardware(str(job.device)),
        "qgvae_commit": git_commit(),
        "created": now(),
        "timing": job.timer.report(),
        "cpu_s": round(time.process_time() - cpu0, 3),
        "elapsed_s": round(time.perf_counter() - wall0, 3),
    }
    out = _jsonable(out)
    write_json(job.run / METRICS_FILE, out)
    return out
