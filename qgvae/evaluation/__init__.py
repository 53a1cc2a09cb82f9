"""Evaluation: test reconstructions of a finished run, and its metrics under both protocols.

Modules: ``reconstruct`` (a run's test reconstructions), ``evaluator`` (``evaluate_run``),
``passes`` (the per-image pass and the summaries), ``protocols`` (the two protocols and their
notes), ``image_metrics`` / ``torch_metrics`` (SSIM, PSNR, resizing, LPIPS), ``fid`` (Inception
features, Gaussian statistics, Frechet distance), ``fast_inference`` (traced / compiled
networks), ``feature_cache``, ``floor`` (the mean-image floor), ``bootstrap`` (intervals),
``usage`` (code usage, summaries), ``weights`` (the pretrained networks' files) and ``bench``.

Names are imported on first use, so that commands which only read results (tables, figures)
do not load torch.
"""

from importlib import import_module

from .protocols import PROTOCOLS

_LAZY = {
    "METRICS_FILE": "evaluator",
    "PER_IMAGE_FILE": "evaluator",
    "evaluate_run": "evaluator",
    "reconstruct_run": "reconstruct",
    "WEIGHTS": "weights",
    "ensure_weights": "weights",
    "hub_checkpoint_dir": "weights",
    "lpips_linear_weights_path": "weights",
}

__all__ = ["PROTOCOLS", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
