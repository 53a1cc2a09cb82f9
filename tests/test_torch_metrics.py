"""The torch SSIM / PSNR (GPU path) against scikit-image, the reference, on the same images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qgvae.evaluation import image_metrics, torch_metrics

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


def _pairs(c, h, w, n=6, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    noise = rng.integers(-40, 41, a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    b[0] = a[0]  # one identical pair: SSIM 1, PSNR capped
    b[1] = 255 - a[1]  # one very different pair
    return a, b


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 40, 33), (3, 256, 256)])
def test_torch_ssim_psnr_equal_scikit_image(device, shape):
    a, b = _pairs(*shape)
    ref_ssim = image_metrics.ssim_batch(a, b)
    ref_psnr = image_metrics.psnr_batch(a, b)
    np.testing.assert_allclose(torch_metrics.ssim_torch(a, b, device), ref_ssim, rtol=0, atol=1e-6)
    np.testing.assert_allclose(torch_metrics.psnr_torch(a, b, device), ref_psnr, rtol=0, atol=1e-6)
    assert ref_psnr[0] == 100.0 and torch_metrics.psnr_torch(a[:1], b[:1], device)[0] == 100.0


def test_images_below_the_window_get_no_ssim():
    a, b = _pairs(3, 8, 8)
    assert np.isnan(image_metrics.ssim_batch(a, b)).all()
    assert np.isnan(torch_metrics.ssim_torch(a, b)).all()
    assert np.isfinite(image_metrics.psnr_batch(a, b)).all()
