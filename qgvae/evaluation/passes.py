"""The per-image pass of an evaluation and the summaries built from it.

``batch_pass`` walks the images batch by batch. For every protocol (:mod:`.protocols`) it
resizes each batch once for the pixel metrics and once for Inception, and computes per-image
SSIM and PSNR (scikit-image on the CPU, the same formulas in torch on CUDA), LPIPS, the
Inception features of the first ``fid_n`` images, the floor's PSNR (the mean image scored
against every original) and the PSNR against shuffled originals (each reconstruction against
the next original of its batch). ``summarize_protocol`` turns that into metrics.json's
``protocols.<name>`` entry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import save_npy
from .feature_cache import FeatureCache
from .fid import GaussianStats, InceptionFeatures, frechet_from_stats
from .image_metrics import (
    LPIPSMetric,
    psnr_batch,
    ssim_batch,
    ssim_supported,
    to_rgb_float,
    upscale_pil,
)
from .protocols import PROTOCOL_SPECS, Protocol
from .torch_metrics import psnr_torch, ssim_torch
from .usage import summarize

PER_IMAGE_METRICS = ("ssim", "psnr", "lpips")
FEATURES_FILE = "features_{protocol}.npy"  # float32 [fid_n, 2048] Inception features of recons


class Timer:
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
def no_tf32() -> Iterator[None]:
    import torch

    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@dataclass
class Job:
    """What one evaluation works on: the validated inputs, the settings and the networks."""

    run: Path
    data: dict[str, Any]
    protocols: tuple[str, ...]
    fid_n: int
    batch_size: int
    device: Any
    lpips: LPIPSMetric
    inception: InceptionFeatures
    cache: FeatureCache
    floor: np.ndarray | None = None  # uint8 [C, H, W]: the training mean image, or None
    timer: Timer = field(default_factory=Timer)

    @property
    def originals(self) -> np.ndarray:
        return self.data["originals"]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.originals.shape

    def spec(self, protocol: str) -> Protocol:
        return PROTOCOL_SPECS[protocol]

    def size(self, protocol: str) -> tuple[int, int]:
        """The (height, width) the protocol's pixel metrics see."""
        s = self.spec(protocol).pixel_size
        return (s, s) if s is not None else tuple(self.shape[2:])

    def lpips_ok(self, protocol: str) -> bool:
        return self.lpips.supports(*self.size(protocol))

    def ssim_ok(self, protocol: str) -> bool:
        return ssim_supported(*self.size(protocol))


def resize(images: np.ndarray, size: int | None, resample: str) -> np.ndarray:
    return images if size is None else upscale_pil(images, size, resample)


def _pixel_metrics(job: Job, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if job.device.type == "cuda":
        return ssim_torch(a, b, job.device), psnr_torch(a, b, job.device)
    return ssim_batch(a, b), psnr_batch(a, b)


def _psnr_only(job: Job, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return psnr_torch(a, b, job.device) if job.device.type == "cuda" else psnr_batch(a, b)


def batch_pass(
    job: Job,
    cached: dict[str, np.ndarray | None],
    progress: Callable[[int, int, float], None] | None,
    wall0: float,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, tuple[Any, Any]]]:
    """Per-image values ``{protocol: {metric: [N]}}`` (NaN where not computed; also
    ``floor_psnr`` and ``shuffled_psnr``) and the Inception features ``{protocol: (originals,
    reconstructions)}`` of the first fid_n images (originals from ``cached`` where given)."""
    import torch

    orig, rec = job.data["originals"], job.data["reconstructions"]
    n, batch_size, fid_n = job.shape[0], job.batch_size, job.fid_n
    timer = job.timer
    keys = (*PER_IMAGE_METRICS, "floor_psnr", "shuffled_psnr")
    per_image = {p: {m: np.full(n, np.nan) for m in keys} for p in job.protocols}
    feats: dict[str, tuple[list, list]] = {p: ([], []) for p in job.protocols}
    floor_pix = {}
    for p in job.protocols:
        spec = job.spec(p)
        if job.floor is not None:
            floor_pix[p] = resize(job.floor[None], spec.pixel_size, spec.pixel_resample)[0]
    report_every = max(1, math.ceil(n / batch_size) // 20)
    with no_tf32(), torch.inference_mode():
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            o_u8, r_u8 = orig[s:e], rec[s:e]
            k = max(0, min(e, fid_n) - s)  # how many of this batch enter rFID
            for p in job.protocols:
                spec, values = job.spec(p), per_image[p]
                with timer(p, "resize"):
                    o_p = resize(o_u8, spec.pixel_size, spec.pixel_resample)
                    r_p = resize(r_u8, spec.pixel_size, spec.pixel_resample)
                with timer(p, "ssim_psnr"):
                    values["ssim"][s:e], values["psnr"][s:e] = _pixel_metrics(job, o_p, r_p)
                    if e - s > 1:
                        values["shuffled_psnr"][s:e] = _psnr_only(job, np.roll(o_p, -1, 0), r_p)
                    if p in floor_pix:
                        const = np.broadcast_to(floor_pix[p], o_p.shape)
                        values["floor_psnr"][s:e] = _psnr_only(job, o_p, const)
                if job.lpips_ok(p):
                    with timer(p, "lpips"):
                        values["lpips"][s:e] = job.lpips(
                            to_rgb_float(o_p, job.device), to_rgb_float(r_p, job.device)
                        )
                if k:
                    with timer(p, "inception"):
                        if cached[p] is None:
                            o_f = resize(o_u8[:k], spec.fid_size, spec.fid_resample)
                            feats[p][0].append(job.inception(o_f))
                        feats[p][1].append(unique_features(job, r_u8[:k], spec))
            if progress is not None and (e == n or (s // batch_size) % report_every == 0):
                progress(e, n, time.perf_counter() - wall0)
    out = {}
    for p, (o_list, r_list) in feats.items():
        if cached[p] is not None:
            o_all = torch.from_numpy(cached[p]).to(job.device)
        else:
            o_all = _cat(o_list)
        out[p] = (o_all, _cat(r_list))
    return per_image, out


def unique_features(job: Job, images_u8: np.ndarray, spec: Protocol) -> Any:
    """Inception features of a uint8 batch, each distinct image computed once: the mean-image
    floor's reconstructions are one image repeated (its rFID then costs one image, not N)."""
    flat = np.ascontiguousarray(images_u8).reshape(len(images_u8), -1)
    _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    if len(first) == len(images_u8):
        return job.inception(resize(images_u8, spec.fid_size, spec.fid_resample))
    unique = job.inception(resize(images_u8[first], spec.fid_size, spec.fid_resample))
    return unique[np.asarray(inverse).reshape(-1)]


def _cat(chunks: list) -> Any:
    import torch

    return torch.cat(chunks) if chunks else torch.zeros(0, InceptionFeatures.dims)


def gaussian_stats(features: Any, device: Any = "cpu") -> GaussianStats:
    """The float64 Gaussian statistics of a whole feature array, in one update (so that the
    same features always give bit-identical statistics, cached or not)."""
    stats = GaussianStats(features.shape[1], device)
    stats.update(features)
    return stats


def rfid_from_features(real: Any, fake: Any, device: Any = "cpu") -> tuple[float, dict]:
    """rFID and the Frechet route's details from two feature arrays ``[n, dim]``."""
    return frechet_from_stats(gaussian_stats(real, device), gaussian_stats(fake, device))


def rfid_entry(job: Job, p: str, real: Any, fake: Any, cached: bool) -> dict[str, Any]:
    """The protocol's rFID entry; stores the originals' features in the cache on a miss, and
    the reconstructions' beside metrics.json (``features_<protocol>.npy``)."""
    if job.fid_n < 2:
        return {"value": None, "n": job.fid_n, "unavailable": "rFID needs at least 2 images"}
    originals = job.originals[: job.fid_n]
    if not cached:
        job.cache.save(originals, p, job.inception.description, real.cpu().numpy())
    save_npy(job.run / FEATURES_FILE.format(protocol=p), fake.cpu().numpy())
    value, info = rfid_from_features(real, fake, job.device)
    entry = {"value": value, "n": job.fid_n, **info, "originals_features_cached": cached}
    entry["features_file"] = FEATURES_FILE.format(protocol=p)
    if job.cache.folder is not None:
        entry["originals_features"] = str(job.cache.path(originals, p, job.inception.description))
    return entry


def _mean(values: np.ndarray) -> float | None:
    v = values[~np.isnan(values)]
    return float(v.mean()) if v.size else None


def summarize_protocol(
    job: Job, p: str, values: dict[str, np.ndarray], features: tuple[Any, Any], cached: bool
) -> dict[str, Any]:
    """metrics.json's ``protocols.<p>``: per-image summaries, rFID, floor and input
    dependence, resolution and resizing."""
    entry: dict[str, Any] = {m: summarize(values[m]) for m in PER_IMAGE_METRICS}
    entry["psnr"]["n_capped"] = int(np.sum(values["psnr"] >= 100.0))
    size = job.size(p)
    if not job.lpips_ok(p):
        entry["lpips"]["unavailable"] = (
            f"LPIPS-AlexNet needs inputs of at least {job.lpips.min_size}x"
            f"{job.lpips.min_size}; images are {size[0]}x{size[1]}"
        )
    if not job.ssim_ok(p):
        entry["ssim"]["unavailable"] = (
            f"SSIM's 11x11 window needs images of at least 11x11; images are {size[0]}x{size[1]}"
        )
    with job.timer(p, "frechet"):
        entry["rfid"] = rfid_entry(job, p, *features, cached)
    psnr_mean = entry["psnr"]["mean"]
    shuffled = _mean(values["shuffled_psnr"])
    entry["psnr_shuffled"] = shuffled
    entry["input_dependence_db"] = (
        None if shuffled is None or psnr_mean is None else psnr_mean - shuffled
    )
    floor = _mean(values["floor_psnr"])
    entry["floor_psnr"] = floor
    entry["psnr_gain_over_floor_db"] = (
        None if floor is None or psnr_mean is None else psnr_mean - floor
    )
    entry["resolution"] = size[0] if size[0] == size[1] else list(size)
    entry["resizing"] = job.spec(p).describe()
    return entry
