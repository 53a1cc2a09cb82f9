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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RunFolderError
from ..io import write_json, write_text
from ..machine import git_commit, hardware, now, package_versions, resolve_device
from .currency import METRICS_FILE, PER_IMAGE_FILE, evaluation_inputs, is_current
from .feature_cache import FeatureCache
from .fid import InceptionFeatures
from .image_metrics import LPIPSMetric, check_images
from .passes import (
    FEATURES_FILE,
    PER_IMAGE_METRICS,
    Job,
    batch_pass,
    rfid_from_features,
    summarize_protocol,
)
from .protocols import PROTOCOL_NOTES, PROTOCOLS, normalize_protocols
from .usage import code_usage
from .weights import ensure_weights, lpips_linear_weights_path

__all__ = ["FEATURES_FILE", "METRICS_FILE", "PER_IMAGE_FILE", "evaluate_run", "load_run"]
__all__ += ["metric_models", "rfid_from_features", "evaluation_inputs", "is_current"]

OPTIONAL_KEYS = ("bits_measured", "tokens_used")
RECONSTRUCTIONS_KEYS = ("originals", "reconstructions", "codes", "codebook_size", "bits_per_image")

# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``reconstructions.npz`` (+ optional ``run.json``) of a run folder.

    Everything the metrics rely on is checked here, before any LPIPS / Inception work: the
    file reads (no pickle; a truncated file or a bad CRC is caught), the arrays' dtypes and
    shapes, a codebook size >= 1, every code in [-1, K-1] and a finite ``bits_per_image``.
    Any problem raises ``RunFolderError`` naming the file and how to rewrite it."""
    run = Path(run_dir)
    path = run / "reconstructions.npz"
    fix = f"rewrite it with `qgvae reconstruct {run}`"
    if not path.is_file():
        raise RunFolderError(
            f"{path} not found (a run folder must contain reconstructions.npz); {fix}"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = set(RECONSTRUCTIONS_KEYS) - set(z.files)
            if missing:
                raise RunFolderError(f"{path}: missing keys {sorted(missing)}; {fix}")
            arrays = {key: z[key] for key in RECONSTRUCTIONS_KEYS}
            optional = {key: z[key] for key in OPTIONAL_KEYS if key in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RunFolderError(
            f"{path}: cannot be read as .npz (truncated or corrupt: {reason}); {fix}"
        ) from None
    try:
        orig = check_images(arrays["originals"], "originals")
        rec = check_images(arrays["reconstructions"], "reconstructions")
    except ValueError as exc:
        raise RunFolderError(f"{path}: {exc}; {fix}") from None
    codes = np.asarray(arrays["codes"])
    k, bits = arrays["codebook_size"], arrays["bits_per_image"]
    if orig.shape != rec.shape:
        raise RunFolderError(
            f"{path}: originals {orig.shape} and reconstructions {rec.shape} differ in shape; {fix}"
        )
    if orig.shape[0] == 0:
        raise RunFolderError(f"{path}: no images; {fix}")
    if (
        codes.ndim != 2
        or codes.shape[0] != orig.shape[0]
        or not np.issubdtype(codes.dtype, np.integer)
    ):
        raise RunFolderError(
            f"{path}: codes: expected an integer array [N={orig.shape[0]}, T], got "
            f"{codes.dtype} {codes.shape}; {fix}"
        )
    if np.size(k) != 1 or np.size(bits) != 1:
        raise RunFolderError(f"{path}: codebook_size and bits_per_image must be scalars; {fix}")
    if not np.issubdtype(np.asarray(k).dtype, np.integer) or int(np.asarray(k).item()) < 1:
        raise RunFolderError(f"{path}: codebook_size must be an integer >= 1, got {k!r}; {fix}")
    k = int(np.asarray(k).item())
    if codes.size and (codes.min() < -1 or codes.max() > k - 1):
        raise RunFolderError(
            f"{path}: codes outside [-1, {k - 1}] (K={k}): min {codes.min()}, max "
            f"{codes.max()}; {fix}"
        )
    try:
        bits = float(np.asarray(bits).item())
    except (TypeError, ValueError):
        bits = math.nan
    if not math.isfinite(bits):
        raise RunFolderError(f"{path}: bits_per_image must be a finite number; {fix}")
    meta: dict[str, Any] = {"dataset": None, "method": None}
    rj = run / "run.json"
    if rj.is_file():
        try:
            info = json.loads(rj.read_text())
            cfg = (info.get("config") or {}) if isinstance(info, dict) else None
            if not isinstance(cfg, dict):
                raise ValueError("no 'config' object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = " ".join(str(exc).split())
            raise RunFolderError(
                f"{rj} is unreadable ({type(exc).__name__}: {reason}); restore it, or delete it "
                "to evaluate without it (metrics.json then lacks dataset and method)"
            ) from None
        meta = {"dataset": cfg.get("dataset"), "method": cfg.get("method")}
    for key, value in optional.items():  # per-image rate at test (variable-rate methods)
        if np.shape(value) != (orig.shape[0],) or not np.isfinite(value).all():
            raise RunFolderError(f"{path}: {key} must be [N={orig.shape[0]}] finite; {fix}")
    return {
        "originals": orig,
        "reconstructions": rec,
        "codes": codes,
        "codebook_size": k,
        "bits_per_image": bits,
        **optional,
        **meta,
    }


# --------------------------------------------------------------------------------------------
# Helpers: timing, TF32, JSON / CSV values
# --------------------------------------------------------------------------------------------


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


def metric_models(
    device: Any, backend: str = "auto", batch_size: int = 100
) -> tuple[LPIPSMetric, InceptionFeatures]:
    """The LPIPS and Inception networks for ``device`` (both with ``backend``, see
    :mod:`.fast_inference`), cached per process and per weight file (path, size, mtime), so
    that evaluating many runs in one process loads (and compiles) them once."""
    files = [ensure_weights("lpips"), lpips_linear_weights_path(), ensure_weights("fid")]
    key = (str(device), backend, batch_size)
    key += tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _MODELS:
        _MODELS.clear()
        inception = InceptionFeatures(device, backend=backend, batch_size=batch_size)
        _MODELS[key] = (LPIPSMetric(device, backend, batch_size), inception)
    return _MODELS[key]


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _prepare(
    run_dir: str | Path,
    protocols: Sequence[str],
    fid_n: int | None,
    batch_size: int,
    device: str,
    features_cache: str | Path | None,
    backend: str = "auto",
) -> Job:
    """Check the arguments, the device and the weights, read and validate the run folder
    (:func:`load_run`), and only then load the metric networks: every bad input is a
    ``QGVAEError`` (``ConfigError`` for an argument) before any LPIPS / Inception work."""
    import operator

    from ..errors import ConfigError

    try:
        protocols = normalize_protocols(protocols)
    except ValueError as exc:
        raise ConfigError(f"protocols (--protocols): {exc}") from None
    for flag, value in (("batch_size (--batch-size)", batch_size), ("fid_n (--fid-n)", fid_n)):
        try:
            ok = (value is None and flag.startswith("fid_n")) or operator.index(value) >= 1
        except TypeError:
            ok = False
        if not ok:
            raise ConfigError(f"{flag} must be an integer >= 1, got {value!r}")
    dev = resolve_device(device)  # CUDA asked for but absent: before anything is read
    run = Path(run_dir)
    # the weights before the run folder: fail before computing or reading anything
    ensure_weights("lpips")
    ensure_weights("fid")
    data = load_run(run)
    n = data["originals"].shape[0]
    if fid_n is None:
        fid_n = n
    if fid_n > n:
        raise ConfigError(
            f"fid_n (--fid-n) {fid_n} exceeds the {n} images of {run / 'reconstructions.npz'}; "
            f"use at most {n} (or omit it)"
        )
    lpips_metric, inception = metric_models(dev, backend, batch_size)
    cache = FeatureCache(features_cache)
    return Job(run, data, protocols, int(fid_n), batch_size, dev, lpips_metric, inception, cache)


def _per_image_csv(protocols: Sequence[str], per_image: dict[str, dict[str, np.ndarray]]) -> str:
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    cols = [f"{p}_{m}" for p in protocols for m in PER_IMAGE_METRICS]
    wr.writerow(["index", *cols])
    n = len(per_image[protocols[0]][PER_IMAGE_METRICS[0]])
    for i in range(n):
        wr.writerow([i, *(_fmt(per_image[p][m][i]) for p in protocols for m in PER_IMAGE_METRICS)])
    return buf.getvalue()


def load_floor(floor_dir: str | Path | None, originals: np.ndarray) -> np.ndarray | None:
    """The floor's constant reconstruction (uint8 [C, H, W]) from the floor run folder written
    by ``qgvae floor`` (its ``reconstructions.npz``), checked against this run's originals."""
    if floor_dir is None:
        return None
    data = load_run(floor_dir)
    path = Path(floor_dir) / "reconstructions.npz"
    if data["originals"].shape[1:] != originals.shape[1:]:
        raise RunFolderError(
            f"{path}: images {data['originals'].shape[1:]} do not match the run's "
            f"{originals.shape[1:]}; give the floor of the run's dataset (qgvae floor)"
        )
    return np.asarray(data["reconstructions"][0])


def evaluate_run(
    run_dir: str | Path,
    *,
    protocols: Sequence[str] = PROTOCOLS,
    fid_n: int | None = None,
    batch_size: int = 100,
    device: str = "auto",
    progress: Callable[[int, int, float], None] | None = None,
    features_cache: str | Path | None = None,
    floor_dir: str | Path | None = None,
    backend: str = "auto",
) -> dict[str, Any]:
    """Evaluate ``run_dir`` and write ``metrics_per_image.csv`` and ``metrics.json`` there.

    protocols  any of ("vqwae", "native"); both by default.
    fid_n      rFID on the first ``fid_n`` images only (default: all N); SSIM / PSNR / LPIPS
               always use all N images.
    batch_size images per batch (resizing, LPIPS and Inception run batch by batch).
    device     "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    progress   called as ``progress(images_done, n_images, seconds_so_far)`` about 20 times.
    features_cache folder for the Inception features of the test originals, which are the same
               for every method on a dataset (:class:`FeatureCache`; a corrupt file is
               recomputed). None: no cache.
    floor_dir  the dataset's floor run folder (``qgvae floor``): its mean image is scored
               against the same originals, and the run's gain over it is recorded.
    backend    how Inception runs: auto, eager, traced or compiled (:mod:`.fast_inference`;
               every fast backend is checked against the eager network to 1e-5).
    Raises ``MissingWeightsError`` before computing anything when LPIPS / FID weights are absent,
    ``RunFolderError`` when ``reconstructions.npz`` is missing or malformed.
    Returns the metrics dict that was written to metrics.json.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    job = _prepare(run_dir, protocols, fid_n, batch_size, device, features_cache, backend)
    inputs = evaluation_inputs(run_dir, protocols=protocols, fid_n=fid_n, floor_dir=floor_dir)
    job.floor = load_floor(floor_dir, job.originals)
    originals = job.originals[: job.fid_n]
    dims = job.inception.dims
    cached = {
        p: job.cache.load(originals, p, job.inception.description, dims) for p in job.protocols
    }
    per_image, features = batch_pass(job, cached, progress, wall0)
    results = {
        p: summarize_protocol(job, p, per_image[p], features[p], cached[p] is not None)
        for p in job.protocols
    }
    with job.timer("all", "code_usage"):
        usage = code_usage(job.data["codes"], job.data["codebook_size"])

    # per-image sidecar first, metrics.json last
    write_text(job.run / PER_IMAGE_FILE, _per_image_csv(job.protocols, per_image))
    n, c, h, w = job.shape
    out = {
        "n_images": n,
        "inputs": inputs,
        "dataset": job.data["dataset"],
        "method": job.data["method"],
        "image_shape": [c, h, w],
        "protocols": results,
        "usage": usage,
        "bits_per_image": job.data["bits_per_image"],
        **_measured_rate(job.data),
        "grayscale_repeated_to_rgb": c == 1,
        "fid_n": job.fid_n,
        "floor_run": None if floor_dir is None else str(floor_dir),
        "feature_cache_recomputed": job.cache.recomputed,
        "per_image_csv": PER_IMAGE_FILE,
        "versions": package_versions(),
        "weights": {"lpips": job.lpips.description, "fid": job.inception.description},
        "inference": {"inception": job.inception.backend_note, "lpips": job.lpips.backend_note},
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


def _measured_rate(data: dict[str, Any]) -> dict[str, Any]:
    """Tokens and bits per image actually used at test (variable-rate methods, e.g. DQ-VAE),
    when the reconstruction recorded them; else from the codes (``-1`` = unused token)."""
    codes = np.asarray(data["codes"])
    tokens = data.get("tokens_used")
    tokens = (codes >= 0).sum(1) if tokens is None else np.asarray(tokens)
    out = {"tokens_per_image_measured": float(tokens.mean()) if tokens.size else 0.0}
    bits = data.get("bits_measured")
    if bits is not None:
        out["bits_per_image_measured"] = float(np.asarray(bits, dtype=np.float64).mean())
    else:
        k = max(int(data["codebook_size"]), 1)
        out["bits_per_image_measured"] = out["tokens_per_image_measured"] * math.log2(k)
    return out
