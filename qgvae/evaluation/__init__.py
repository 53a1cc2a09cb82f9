"""Evaluation: test reconstructions of a finished run, and its metrics under both protocols.

Modules: ``reconstruct`` (a run's test reconstructions), ``evaluator`` (``evaluate_run``),
``protocols`` (the two protocols and their notes), ``image_metrics`` (SSIM, PSNR, upscaling,
LPIPS), ``fid`` (Inception features, Gaussian statistics, Frechet distance), ``usage`` (code
usage, summaries) and ``weights`` (the pretrained networks' files).
"""

from .evaluator import METRICS_FILE, PER_IMAGE_FILE, evaluate_run
from .protocols import PROTOCOLS
from .reconstruct import reconstruct_run
from .weights import WEIGHTS, ensure_weights, hub_checkpoint_dir, lpips_linear_weights_path

__all__ = [
    "METRICS_FILE",
    "PER_IMAGE_FILE",
    "PROTOCOLS",
    "evaluate_run",
    "WEIGHTS",
    "ensure_weights",
    "hub_checkpoint_dir",
    "lpips_linear_weights_path",
    "reconstruct_run",
]
