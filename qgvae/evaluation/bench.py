"""``qgvae bench eval``: what evaluation costs per image, and the fast feature paths against the
reference loops, on the same images, threads and device, in one run.

Two measurements:

* **features**: CPU-seconds (process plus child processes) per image of
  - pytorch-fid's own ``get_activations`` loop (PNG files, its DataLoader, batch 50) against the
    harness's ``InceptionFeatures`` (uint8 arrays, the requested backend), and
  - LPIPS called as the ``lpips`` package documents (``LPIPS(net='alex')(x0, x1,
    normalize=True)``, eager) against the harness's ``LPIPSMetric``,
  with the largest relative difference of the outputs (features must agree within 1e-5). The
  references are measured twice: under the allocator a plain Python process has, and again
  after :func:`qgvae.machine.tune_cpu_allocator`, so that the allocator's share of the gain is
  visible apart from the networks'. The one-off build (tracing or compiling) is its own row.
* **stages**: a full ``evaluate_run`` of N synthetic reconstructions of a dataset's shape,
  broken down by protocol and stage (resize, SSIM / PSNR, LPIPS, Inception, Frechet).

The figures are ratios measured back to back in one process, so that a busy or slower
machine changes both sides alike; nothing here is asserted by a test.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float, float]:
    """(result of the last call, best CPU-s, best wall-s) over ``repeats`` calls."""
    best_cpu = best_wall = float("inf")
    out = None
    for _ in range(repeats):
        c, w = _cpu(), time.perf_counter()
        out = fn()
        best_cpu = min(best_cpu, _cpu() - c)
        best_wall = min(best_wall, time.perf_counter() - w)
    return out, best_cpu, best_wall


def synthetic_images(n: int, channels: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random uint8 images (closer to natural statistics than white noise)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.normal(128, 60, (n, channels, size, size)), (0, 0, 1.0, 1.0))
    return np.clip(np.round((x - x.mean()) * 3 + 128), 0, 255).astype(np.uint8)


def feature_bench(
    n: int = 100,
    size: int = 229,
    lpips_size: int = 256,
    batch_size: int = 50,
    repeats: int = 2,
    device: str = "cpu",
    backend: str = "auto",
) -> list[dict[str, Any]]:
    """Rows (what, CPU-s and wall-s per image, ratios to the references, max rel. diff).

    Order matters and is fixed: the harness networks are built (and compiled) first, untimed
    but reported; then the reference loops run under the process's allocator as it is
    (glibc's default unless this process tuned it already: the row says which); then
    :func:`qgvae.machine.tune_cpu_allocator` is applied, the references run again, and the
    harness rows follow. ``cheaper`` is against the first reference row,
    ``cheaper_than_tuned_reference`` against the same loop with the tuned allocator. Inception sees
    ``size``-pixel images (the vqwae protocol's 229), LPIPS ``lpips_size`` (its 256)."""
    import torch
    from PIL import Image
    from pytorch_fid.fid_score import get_activations

    from ..machine import allocator_note, tune_cpu_allocator
    from .evaluator import metric_models
    from .fast_inference import relative_error

    dev = torch.device(device)
    (lpips_metric, inception), build_cpu, build_wall = _timed(
        lambda: metric_models(dev, backend, batch_size), 1
    )
    images = synthetic_images(n, 3, size)
    pair0, pair1 = synthetic_images(n, 3, lpips_size), synthetic_images(n, 3, lpips_size, 1)
    _, lp_build_cpu, lp_build_wall = _timed(lambda: lpips_metric(pair0[:1], pair1[:1]), 1)
    rows = [
        _row(
            f"build: Inception {inception.backend}, LPIPS "
            f"{lpips_metric.network(lpips_size, lpips_size)[0]} (once per process)",
            1,
            build_cpu + lp_build_cpu,
            build_wall + lp_build_wall,
        )
    ]

    def batched(fn: Callable[..., Any], *arrays: np.ndarray) -> Callable[[], Any]:
        def run() -> Any:
            parts = [fn(*(a[s : s + batch_size] for a in arrays)) for s in range(0, n, batch_size)]
            return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)

        return run

    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, im in enumerate(images):
            path = Path(tmp) / f"{i}.png"
            Image.fromarray(im.transpose(1, 2, 0)).save(path)
            files.append(str(path))

        def reference_rows() -> tuple[Any, float, Any, float]:
            label = "default allocator" if allocator_note().startswith("default") else "tuned"
            ref, cpu, wall = _timed(
                lambda: get_activations(files, inception.model, batch_size, 2048, dev, 1), repeats
            )
            rows.append(_row(f"Inception: pytorch-fid get_activations [{label}]", n, cpu, wall))
            lp, lp_cpu, lp_wall = _timed(batched(lpips_metric.reference, pair0, pair1), repeats)
            rows.append(_row(f"LPIPS: lpips.LPIPS(net='alex') eager [{label}]", n, lp_cpu, lp_wall))
            return ref, cpu, lp, lp_cpu

        ref, ref_cpu, lp_ref, lp_ref_cpu = reference_rows()
        tune_cpu_allocator()
        _, tuned_cpu, _, lp_tuned_cpu = reference_rows()
    ref = torch.from_numpy(ref).float()
    for what, fn in (
        ("Inception: harness, eager", inception.reference),
        (f"Inception: harness, {inception.backend}", inception),
    ):
        out, cpu, wall = _timed(batched(fn, images), repeats)
        err = relative_error(out.cpu(), ref)
        rows.append(_row(what, n, cpu, wall, ref_cpu, err, tuned_cpu))
    out, cpu, wall = _timed(batched(lpips_metric, pair0, pair1), repeats)
    diff = float(np.abs(out - lp_ref).max() / max(np.abs(lp_ref).max(), 1e-30))
    used = lpips_metric.network(lpips_size, lpips_size)[0]
    rows.append(_row(f"LPIPS: harness, {used}", n, cpu, wall, lp_ref_cpu, diff, lp_tuned_cpu))
    return rows


def _row(
    what: str,
    n: int,
    cpu: float,
    wall: float,
    reference_cpu: float | None = None,
    max_rel_diff: float | None = None,
    tuned_reference_cpu: float | None = None,
) -> dict[str, Any]:
    return {
        "what": what,
        "images": n,
        "cpu_s_per_image": cpu / n,
        "wall_s_per_image": wall / n,
        "cheaper_than_reference": None if reference_cpu is None else reference_cpu / cpu,
        "cheaper_than_tuned_reference": (
            None if tuned_reference_cpu is None else tuned_reference_cpu / cpu
        ),
        "max_rel_diff": max_rel_diff,
    }


def stage_bench(
    n: int = 200, dataset: str = "cifar10", device: str = "auto", backend: str = "auto"
) -> dict[str, Any]:
    """A full evaluation of ``n`` synthetic reconstructions shaped like ``dataset``'s images;
    returns metrics.json's ``timing`` (per protocol and stage) and the totals."""
    from ..data import dataset_info
    from .evaluator import evaluate_run

    info = dataset_info(dataset)
    orig = synthetic_images(n, info.channels, info.size)
    noise = np.random.default_rng(2).integers(-12, 13, orig.shape)
    rec = np.clip(orig.astype(int) + noise, 0, 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(
            Path(tmp) / "reconstructions.npz",
            originals=orig,
            reconstructions=rec,
            codes=np.zeros((n, 1), np.int64),
            codebook_size=np.int64(2),
            bits_per_image=np.float64(1.0),
        )
        m = evaluate_run(tmp, device=device, backend=backend)
    return {
        "dataset": dataset,
        "images": n,
        "device": m["device"],
        "timing": m["timing"],
        "cpu_s": m["cpu_s"],
        "elapsed_s": m["elapsed_s"],
    }
