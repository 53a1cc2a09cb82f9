"""The prior's numbers: test negative log-likelihood in bits per image, and generation FID.

Test NLL: ``-sum_t log2 p(c_t | c_<t)`` per test image under the prior, in eval mode and fp32,
averaged over the test split's cached codes. It is directly comparable with the tokenizer's
``bits_per_image`` (``T * log2 K``, the cost of the codes without a prior).

gFID: the Frechet distance between pytorch-fid Inception pool3 features (the evaluator's own
network, :func:`qgvae.evaluation.evaluator.metric_models`) of the decoded samples (uint8, as a
saved image would be) and of the first N images of the test split, at the dataset's native
resolution. The test images' features are read from / written to the evaluator's shared cache
(:class:`qgvae.evaluation.feature_cache.FeatureCache`) under the protocol key ``"native"``: the
same key the evaluator uses for the same images, so a cache entry written by either is reused
by the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

FID_PROTOCOL = "native"  # FeatureCache key of the reference images (the evaluator's, see above)


@torch.no_grad()
def nll_bits(model, symbols: torch.Tensor, *, batch_size: int = 1000) -> np.ndarray:
    """Per-sequence NLL in bits (float64 ``[N]``) of symbols ``[N, T]`` under ``model``."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(symbols), batch_size):
            s = symbols[start : start + batch_size]
            logits = model(s).float()
            nats = F.cross_entropy(logits.transpose(1, 2), s, reduction="none").sum(1)
            out.append(nats.double().cpu() / math.log(2))
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0)


def inception_features(
    inception, images_u8: np.ndarray, batch_size: int, progress: Callable | None = None
) -> torch.Tensor:
    """float32 ``[N, 2048]`` features of uint8 images ``[N, C, H, W]`` (grey -> RGB)."""
    chunks = []
    for start in range(0, len(images_u8), batch_size):
        batch = np.ascontiguousarray(images_u8[start : start + batch_size])
        chunks.append(inception(torch.from_numpy(batch)))
        if progress is not None:
            progress(min(len(images_u8), start + batch_size), len(images_u8))
    return torch.cat(chunks) if chunks else torch.zeros(0, 2048)


def generation_fid(
    samples_u8: np.ndarray,
    reference_u8: np.ndarray,
    *,
    device: Any,
    features_cache: str | Path | None,
    batch_size: int = 200,
    progress: Callable | None = None,
) -> dict[str, Any]:
    """gFID of ``samples_u8`` against ``reference_u8`` (both uint8 ``[N, C, H, W]``).

    Returns ``{"value", "n_samples", "n_reference", "reference_features_cached", ...}`` with
    the Frechet route's details from :func:`rfid_from_features`."""
    from ..evaluation.evaluator import metric_models, rfid_from_features
    from ..evaluation.feature_cache import FeatureCache

    if len(samples_u8) < 2 or len(reference_u8) < 2:
        raise ValueError("gFID needs at least 2 samples and 2 reference images")
    _, inception = metric_models(device)
    cache = FeatureCache(features_cache)
    real = cache.load(reference_u8, FID_PROTOCOL, inception.description, inception.dims)
    cached = real is not None
    with torch.inference_mode():
        if cached:
            real_t = torch.from_numpy(real).to(device)
        else:
            real_t = inception_features(inception, reference_u8, batch_size, progress)
            cache.save(reference_u8, FID_PROTOCOL, inception.description, real_t.cpu().numpy())
        fake_t = inception_features(inception, samples_u8, batch_size, progress)
    value, info = rfid_from_features(real_t, fake_t, device)
    return {
        "value": value,
        "n_samples": int(len(samples_u8)),
        "n_reference": int(len(reference_u8)),
        "reference_features_cached": cached,
        "feature_cache_protocol_key": FID_PROTOCOL,
        "inception": inception.description,
        **info,
    }
