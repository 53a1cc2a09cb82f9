"""SSIM and PSNR in torch, for evaluation on the GPU.

The same formulas as scikit-image's ``structural_similarity(win_size=11, data_range=1,
gaussian_weights=False, use_sample_covariance=True)`` and ``peak_signal_noise_ratio
(data_range=1)``, in float64: local means, variances and covariance over the 11x11 uniform
window (sample covariance, N / (N - 1)), the SSIM map averaged over the pixels whose window lies
inside the image (scikit-image filters the whole image and crops 5 pixels from each border:
the same pixels), then over channels. scikit-image stays the reference and the CPU default;
``tests/test_torch_metrics.py`` checks these against it to 1e-6.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .image_metrics import SSIM_KWARGS
from .protocols import PSNR_CAP_DB


def _float64(images: Any, device: Any):
    import torch

    t = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    t = t.to(device)
    if t.dtype == torch.uint8:
        return t.double() / 255.0
    return t.double()


def ssim_torch(originals: Any, reconstructions: Any, device: Any = "cpu") -> np.ndarray:
    """Per-image SSIM of two ``[N, C, H, W]`` batches (uint8, or float in [0, 1])."""
    import torch.nn.functional as F

    x, y = _float64(originals, device), _float64(reconstructions, device)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {tuple(x.shape)} vs {tuple(y.shape)}")
    win = SSIM_KWARGS["win_size"]
    if min(x.shape[-2:]) < win:
        return np.full(x.shape[0], np.nan)
    n_px = win * win
    cov_norm = n_px / (n_px - 1.0)
    c1 = (SSIM_KWARGS["K1"] * SSIM_KWARGS["data_range"]) ** 2
    c2 = (SSIM_KWARGS["K2"] * SSIM_KWARGS["data_range"]) ** 2

    def mean(t):
        return F.avg_pool2d(t, win, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1).cpu().numpy()


def psnr_torch(
    originals: Any, reconstructions: Any, device: Any = "cpu", cap: float = PSNR_CAP_DB
) -> np.ndarray:
    """Per-image PSNR (data range 1, MSE over pixels and channels), capped at ``cap`` dB."""
    import torch

    x, y = _float64(originals, device), _float64(reconstructions, device)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = (x - y).pow(2).flatten(1).mean(1)
    psnr = 10.0 * torch.log10(1.0 / mse)  # inf where mse == 0
    return psnr.clamp(max=cap).cpu().numpy()
