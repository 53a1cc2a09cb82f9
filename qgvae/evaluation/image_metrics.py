"""Per-image quality metrics and the image conversions they share (pure functions and LPIPS).

Everything here works on uint8 images ``[N, C, H, W]`` (C = 1 or 3) as written by the producer
of ``reconstructions.npz``; :mod:`qgvae.evaluation.evaluator` composes them into the two
evaluation protocols.

- ``psnr`` / ``ssim`` (one image) and ``psnr_batch`` / ``ssim_batch``: scikit-image with the
  Table 1 settings (SSIM: ``win_size=11``, ``data_range=1``, uniform window, sample covariance,
  mean over channels; PSNR: ``data_range=1``), on float64 images in [0, 1].
- ``upscale_pil``: PIL resize of uint8 images (bilinear by default), returning uint8.
- ``LPIPSMetric``: LPIPS v0.1 with the AlexNet trunk, inputs in [0, 1] with ``normalize=True``.

Grayscale images are repeated to three channels for LPIPS and Inception (``to_rgb_float``).
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..machine import package_versions
from .fast_inference import build_backend, run_padded
from .protocols import PSNR_CAP_DB
from .weights import WEIGHTS, ensure_weights, file_description, lpips_linear_weights_path

if TYPE_CHECKING:
    import torch

# --------------------------------------------------------------------------------------------
# Image helpers
# --------------------------------------------------------------------------------------------


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """Validate a uint8 ``[N, C, H, W]`` batch with C in (1, 3)."""
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8, got {a.dtype}")
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected shape [N, C, H, W] with C in (1, 3), got {a.shape}")
    return a


def _unit_float(img: np.ndarray) -> np.ndarray:
    """One image ([C, H, W] or [H, W]) as float64 in [0, 1]; uint8 is divided by 255."""
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return a.astype(np.float64, copy=False)


def _hwc_or_hw(img: np.ndarray) -> tuple[np.ndarray, int | None]:
    """[C, H, W] -> ([H, W], None) for C == 1, else ([C, H, W], channel_axis=0)."""
    if img.ndim == 2:
        return img, None
    if img.ndim != 3:
        raise ValueError(f"expected one image [C, H, W] or [H, W], got shape {img.shape}")
    if img.shape[0] == 1:
        return img[0], None
    return img, 0


def psnr(original: np.ndarray, reconstruction: np.ndarray, cap: float = PSNR_CAP_DB) -> float:
    """PSNR of one image pair (uint8, or float in [0, 1]) with
    ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``: 10 log10(1 / MSE), the MSE over
    all pixels and channels, capped at ``cap`` dB (identical images would be infinite)."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _unit_float(original), _unit_float(reconstruction)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    with np.errstate(divide="ignore"):
        return min(float(peak_signal_noise_ratio(a, b, data_range=1.0)), cap)


SSIM_KWARGS = dict(
    win_size=11,
    data_range=1.0,
    gaussian_weights=False,
    use_sample_covariance=True,
    K1=0.01,
    K2=0.03,
)


def ssim(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """SSIM of one image pair (uint8, or float in [0, 1]; [C, H, W] or [H, W]) with
    ``skimage.metrics.structural_similarity(win_size=11, data_range=1)`` and its defaults
    (uniform 11x11 window, sample covariance, K1=0.01, K2=0.03; RGB: mean over channels)."""
    from skimage.metrics import structural_similarity

    a, b = _unit_float(original), _unit_float(reconstruction)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    a, axis = _hwc_or_hw(a)
    b, _ = _hwc_or_hw(b)
    if min(a.shape[-2:]) < SSIM_KWARGS["win_size"]:
        raise ValueError(f"SSIM with win_size=11 needs images of at least 11x11, got {a.shape}")
    return float(structural_similarity(a, b, channel_axis=axis, **SSIM_KWARGS))


def psnr_batch(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    return np.array([psnr(a, b) for a, b in zip(originals, reconstructions)], dtype=np.float64)


def ssim_batch(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-image SSIM; NaN for every image when they are smaller than the 11x11 window."""
    if min(np.asarray(originals).shape[-2:]) < SSIM_KWARGS["win_size"]:
        return np.full(len(originals), np.nan)
    return np.array([ssim(a, b) for a, b in zip(originals, reconstructions)], dtype=np.float64)


def ssim_supported(height: int, width: int) -> bool:
    return min(height, width) >= SSIM_KWARGS["win_size"]


_RESAMPLE = {
    "bilinear": "BILINEAR",
    "bicubic": "BICUBIC",
    "nearest": "NEAREST",
    "lanczos": "LANCZOS",
}


def upscale_pil(
    images: np.ndarray, size: int | tuple[int, int] = 256, resample: str = "bilinear"
) -> np.ndarray:
    """Resize uint8 images ``[N, C, H, W]`` with ``PIL.Image.resize`` (``resample``) to
    ``size`` (int: square; tuple: (height, width)). Returns uint8 ``[N, C, h, w]`` (PIL rounds),
    i.e. exactly what resizing saved PNGs with PIL gives."""
    from PIL import Image

    a = check_images(images)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    filt = getattr(Image.Resampling, _RESAMPLE[resample])
    out = np.empty((a.shape[0], a.shape[1], h, w), dtype=np.uint8)
    for i, img in enumerate(a):
        if a.shape[1] == 1:
            pil = Image.fromarray(np.ascontiguousarray(img[0]), mode="L")
            out[i, 0] = np.asarray(pil.resize((w, h), resample=filt))
        else:
            pil = Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)), mode="RGB")
            out[i] = np.asarray(pil.resize((w, h), resample=filt)).transpose(2, 0, 1)
    return out


def to_rgb_float(images: Any, device: Any = "cpu") -> torch.Tensor:
    """uint8 numpy/tensor ``[N, C, H, W]`` -> float32 tensor in [0, 1] on ``device``, grayscale
    repeated to three channels. Float input is taken to be in [0, 1] already."""
    import torch

    t = (
        images
        if isinstance(images, torch.Tensor)
        else torch.from_numpy(np.ascontiguousarray(images))
    )
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"expected [N, C, H, W] with C in (1, 3), got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.to(device).float().div_(255.0)
    else:
        t = t.to(device=device, dtype=torch.float32)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t


# --------------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------------

# torchvision AlexNet `features` index -> LPIPS slice (lpips.pretrained_networks.alexnet)
_ALEX_SLICES = {1: range(0, 2), 2: range(2, 5), 3: range(5, 8), 4: range(8, 10), 5: range(10, 12)}


def lpips_alex_min_size() -> int:
    """Smallest square input the AlexNet trunk accepts (conv 11/4 pad 2, maxpool 3/2, twice)."""
    for s in range(1, 512):
        a = (s + 4 - 11) // 4 + 1  # conv1
        if a < 1:
            continue
        b = (a - 3) // 2 + 1  # maxpool1
        if b < 1:
            continue
        c = (b - 3) // 2 + 1  # conv2 keeps size; maxpool2
        if c >= 1:
            return s
    raise AssertionError("unreachable")


class LPIPSMetric:
    """LPIPS v0.1 with the AlexNet trunk (``lpips.LPIPS(net='alex', version='0.1')``).

    The trunk is loaded from the hub-cache file ``ensure_weights('lpips')`` returns (the file
    that is hashed in ``description``), the linear layers from the lpips package. Call with two
    uint8 ``[B, C, H, W]`` batches (or float tensors in [0, 1]); returns float64 per-image values.
    Inputs are mapped to [-1, 1] by LPIPS (``normalize=True``).

    ``backend`` is that of :mod:`.fast_inference` (``auto``: traced on the CPU, eager on CUDA).
    The pair goes in as one stacked tensor ``[B, 2, 3, H, W]`` (:func:`_pair_network`), so the
    lpips module traces and compiles like any network. Each input size gets its own fast
    network, built on first use and checked against the eager lpips module on a probe of that
    size (1e-5 relative, else eager); ``backend_note`` lists what every size used."""

    def __init__(self, device: Any = "cpu", backend: str = "auto", batch_size: int = 100):
        import lpips
        import torch

        self.device = torch.device(device)
        self.backbone_path = ensure_weights("lpips")
        self.linear_path = lpips_linear_weights_path()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # random trunk and random linear layers; both are then loaded (strictly) below
            net = lpips.LPIPS(
                net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False
            )
            trunk = torch.load(self.backbone_path, map_location="cpu", weights_only=True)
            lin = torch.load(self.linear_path, map_location="cpu", weights_only=True)
        mapped = {}
        for k, idx in _ALEX_SLICES.items():
            for i in idx:
                for p in ("weight", "bias"):
                    src = f"features.{i}.{p}"
                    if src in trunk:
                        mapped[f"slice{k}.{i}.{p}"] = trunk[src]
        net.net.load_state_dict(mapped, strict=True)
        # "linN.*" (the ModuleList "lins.N.*" aliases the same tensors)
        lin_keys = {k for k in net.state_dict() if re.match(r"lin\d+\.", k)}
        if set(lin) != lin_keys:
            raise RuntimeError(
                f"unexpected LPIPS linear-layer keys in {self.linear_path}: "
                f"{sorted(set(lin) ^ lin_keys)}"
            )
        net.load_state_dict(lin, strict=False)
        for prm in net.parameters():
            prm.requires_grad_(False)
        self.net = net.eval().to(self.device)
        self.min_size = lpips_alex_min_size()
        self.backend_request, self.batch_size = backend, batch_size
        self._pair = _pair_network(self.net)
        self._built: dict[tuple[int, int], tuple[str, str, Any, int | None]] = {}
        version = package_versions(("lpips",))["lpips"]
        self.description = (
            f"alex v0.1 (lpips {version}, normalize=True); backbone "
            f"{file_description(self.backbone_path, WEIGHTS['lpips'])}; linear layers "
            f"{file_description(self.linear_path)}"
        )

    def supports(self, height: int, width: int) -> bool:
        return min(height, width) >= self.min_size

    def network(self, height: int, width: int) -> tuple[str, str, Any, int | None]:
        """``(backend, note, callable, batch padding)`` for pairs of ``height x width`` images,
        built (traced or compiled, and checked) on first use."""
        key = (int(height), int(width))
        if key not in self._built:
            self._built[key] = build_backend(
                self._pair, self.device, self.backend_request, (2, 3, *key), self.batch_size
            )
        return self._built[key]

    @property
    def backend_note(self) -> str:
        """What each input size used so far (metrics.json ``inference.lpips``)."""
        if not self._built:
            return f"{self.backend_request} requested; no batch evaluated yet"
        return "; ".join(f"{h}x{w}: {b[1]}" for (h, w), b in sorted(self._built.items()))

    def __call__(self, originals: Any, reconstructions: Any) -> np.ndarray:
        import torch

        x0 = to_rgb_float(originals, self.device)
        x1 = to_rgb_float(reconstructions, self.device)
        if x0.shape != x1.shape:
            raise ValueError(f"shape mismatch {tuple(x0.shape)} vs {tuple(x1.shape)}")
        if not self.supports(*x0.shape[-2:]):
            raise ValueError(
                f"LPIPS-AlexNet needs inputs of at least {self.min_size}x"
                f"{self.min_size}, got {tuple(x0.shape[-2:])}"
            )
        _, _, net, pad_to = self.network(*x0.shape[-2:])
        with torch.inference_mode():
            d = run_padded(net, torch.stack([x0, x1], 1), pad_to)
        return d.reshape(-1).double().cpu().numpy()

    def reference(self, originals: Any, reconstructions: Any) -> np.ndarray:
        """The eager lpips network's values (what ``__call__`` is checked against)."""
        import torch

        x0 = to_rgb_float(originals, self.device)
        x1 = to_rgb_float(reconstructions, self.device)
        with torch.inference_mode():
            return self.net(x0, x1, normalize=True).reshape(-1).double().cpu().numpy()


def _pair_network(lpips_net: Any) -> Any:
    """``lpips_net(x0, x1, normalize=True)`` as a module of one input, the stacked pair
    ``[B, 2, 3, H, W]`` -> ``[B]`` (what :func:`.fast_inference.build_backend` traces)."""
    import torch

    class PairDistance(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lpips = lpips_net

        def forward(self, pair: torch.Tensor) -> torch.Tensor:
            return self.lpips(pair[:, 0], pair[:, 1], normalize=True).reshape(-1)

    return PairDistance().eval()
