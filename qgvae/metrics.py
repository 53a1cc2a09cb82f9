"""Image-quality metrics and code-usage statistics (pure functions and small metric objects).

Everything here works on uint8 images ``[N, C, H, W]`` (C = 1 or 3) as written by the producer
of ``reconstructions.npz``; ``qgvae.evaluate`` composes them into the two evaluation protocols.

- ``psnr`` / ``ssim`` (one image) and ``psnr_batch`` / ``ssim_batch``: scikit-image with the
  Table 1 settings (SSIM: ``win_size=11``, ``data_range=1``, uniform window, sample covariance,
  mean over channels; PSNR: ``data_range=1``), on float64 images in [0, 1].
- ``upscale_pil``: PIL resize of uint8 images (bilinear by default), returning uint8.
- ``LPIPSMetric``: LPIPS v0.1 with the AlexNet trunk, inputs in [0, 1] with ``normalize=True``.
- ``InceptionFeatures``: pytorch-fid's FID InceptionV3, 2048-d pool3 features.
- ``GaussianStats``: streaming float64 mean / covariance (sum and sum of outer products).
- ``frechet_distance``: the Frechet distance of two Gaussians, computed as pytorch-fid does.
- ``code_usage``: per-position codebook usage fraction and perplexity.
- ``ensure_weights`` / ``MissingWeightsError`` / ``weights_info``: the pretrained networks are
  taken from the torch hub cache (``$TORCH_HOME/hub/checkpoints``) and never silently replaced.

Grayscale images are repeated to three channels for LPIPS and Inception (``to_rgb_float``).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# --------------------------------------------------------------------------------------------
# Pretrained weights
# --------------------------------------------------------------------------------------------


class MissingWeightsError(RuntimeError):
    """A pretrained network needed by a metric is not in the torch hub cache and could not be
    downloaded. Raised before anything is computed."""


@dataclass(frozen=True)
class WeightSpec:
    kind: str
    what: str
    filename: str
    url: str

    @property
    def hash_prefix(self) -> str:
        # torch hub convention: "<name>-<first 8+ hex digits of sha256>.<ext>"
        return Path(self.filename).stem.rsplit("-", 1)[-1]


WEIGHTS: dict[str, WeightSpec] = {
    "lpips": WeightSpec(
        "lpips", "LPIPS AlexNet trunk (torchvision AlexNet IMAGENET1K_V1)",
        "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "fid": WeightSpec(
        "fid", "FID InceptionV3 (pytorch-fid pt_inception-2015-12-05)",
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth"),
}

LPIPS_LINEAR_RELPATH = Path("weights") / "v0.1" / "alex.pth"

FETCH_HINT = ("Fix: run `qgvae fetch-weights` on a machine with internet (optionally "
              "`--torch-home DIR`, then copy DIR here and set TORCH_HOME=DIR), or without "
              "internet run `python ../shared/tools/offline_metric_weights.py DIR` and set "
              "`TORCH_HOME=DIR`.")


def hub_checkpoint_dir() -> Path:
    """``<torch hub dir>/checkpoints``; the hub dir is ``$TORCH_HOME/hub`` unless torch.hub.set_dir
    was called."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def expected_weight_path(kind: str) -> Path:
    return hub_checkpoint_dir() / _spec(kind).filename


def _spec(kind: str) -> WeightSpec:
    try:
        return WEIGHTS[kind]
    except KeyError:
        raise ValueError(f"unknown weights kind {kind!r}; expected one of {sorted(WEIGHTS)}") from None


def _torch_home_desc() -> str:
    th = os.environ.get("TORCH_HOME")
    return f"TORCH_HOME={th}" if th else "TORCH_HOME is not set (torch's default: ~/.cache/torch)"


def _missing_message(spec: WeightSpec, path: Path, reason: str) -> str:
    return (f"Missing pretrained weights for {spec.what}: file '{spec.filename}' is not in the "
            f"torch hub cache.\n"
            f"  expected path: {path}\n"
            f"  {_torch_home_desc()}; torch hub dir: {path.parent.parent}\n"
            f"  download from {spec.url} failed: {reason}\n"
            f"{FETCH_HINT}")


def lpips_linear_weights_path() -> Path:
    """The LPIPS v0.1 linear-layer weights that ship inside the ``lpips`` package."""
    import lpips

    return Path(lpips.__file__).resolve().parent / LPIPS_LINEAR_RELPATH


def ensure_weights(kind: str) -> Path:
    """Return the hub-cache path of the weights for ``kind`` ('lpips' or 'fid').

    Checks for the file first; when absent, tries torch's normal download (into the same path,
    with torch's sha256-prefix check); any failure becomes ``MissingWeightsError`` naming the
    file, the expected path and TORCH_HOME. For 'lpips' the linear-layer file inside the lpips
    package is checked too (it cannot be downloaded; reinstall lpips if it is missing).
    """
    import torch

    spec = _spec(kind)
    path = expected_weight_path(kind)
    if kind == "lpips":
        lin = lpips_linear_weights_path()
        if not lin.is_file():
            raise MissingWeightsError(
                f"LPIPS v0.1 linear-layer weights '{lin.name}' are missing from the lpips package "
                f"(expected {lin}); reinstall `lpips==0.1.4`.")
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # looked up at call time so that tests can block it
        torch.hub.download_url_to_file(spec.url, str(path), hash_prefix=spec.hash_prefix,
                                       progress=True)
    except Exception as exc:  # noqa: BLE001 - every failure means "not available"
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()
        raise MissingWeightsError(_missing_message(spec, path, f"{type(exc).__name__}: {exc}")) from exc
    if not path.is_file():
        raise MissingWeightsError(_missing_message(spec, path, "no file after download"))
    return path


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _file_desc(path: Path, spec: WeightSpec | None = None) -> str:
    digest = sha256_file(path)
    out = f"{path} sha256={digest}"
    if spec is not None:
        match = digest.startswith(spec.hash_prefix)
        out += (f" (sha256 {'matches' if match else 'does NOT match'} the hash prefix "
                f"{spec.hash_prefix} in the file name"
                + ("" if match else "; not the original download, e.g. an offline rebuild") + ")")
    return out


def _pkg_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def weights_info() -> dict[str, Any]:
    """Where the metric weights are expected / found and their sha256 (no download)."""
    out: dict[str, Any] = {"torch_home": os.environ.get("TORCH_HOME"),
                           "hub_checkpoints": str(hub_checkpoint_dir())}
    for kind, spec in WEIGHTS.items():
        path = expected_weight_path(kind)
        entry: dict[str, Any] = {"file": str(path), "url": spec.url, "exists": path.is_file()}
        if path.is_file():
            entry["sha256"] = sha256_file(path)
            entry["sha256_matches_name"] = entry["sha256"].startswith(spec.hash_prefix)
        out[kind] = entry
    try:
        lin = lpips_linear_weights_path()
        out["lpips"]["linear_layers"] = {"file": str(lin), "exists": lin.is_file(),
                                         **({"sha256": sha256_file(lin)} if lin.is_file() else {})}
    except ImportError:
        out["lpips"]["linear_layers"] = None
    return out


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


def psnr(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """PSNR of one image pair (uint8, or float in [0, 1]) with
    ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``: 10 log10(1 / MSE), the MSE over
    all pixels and channels. ``inf`` for identical images."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _unit_float(original), _unit_float(reconstruction)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(a, b, data_range=1.0))


SSIM_KWARGS = dict(win_size=11, data_range=1.0, gaussian_weights=False, use_sample_covariance=True,
                   K1=0.01, K2=0.03)


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
    return np.array([ssim(a, b) for a, b in zip(originals, reconstructions)], dtype=np.float64)


_RESAMPLE = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST",
             "lanczos": "LANCZOS"}


def upscale_pil(images: np.ndarray, size: int | tuple[int, int] = 256,
                resample: str = "bilinear") -> np.ndarray:
    """Resize uint8 images ``[N, C, H, W]`` with ``PIL.Image.resize`` (default bilinear) to
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


def to_rgb_float(images: Any, device: Any = "cpu") -> "torch.Tensor":
    """uint8 numpy/tensor ``[N, C, H, W]`` -> float32 tensor in [0, 1] on ``device``, grayscale
    repeated to three channels. Float input is taken to be in [0, 1] already."""
    import torch

    t = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
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
        a = (s + 4 - 11) // 4 + 1          # conv1
        if a < 1:
            continue
        b = (a - 3) // 2 + 1               # maxpool1
        if b < 1:
            continue
        c = (b - 3) // 2 + 1               # conv2 keeps size; maxpool2
        if c >= 1:
            return s
    raise AssertionError("unreachable")


class LPIPSMetric:
    """LPIPS v0.1 with the AlexNet trunk (``lpips.LPIPS(net='alex', version='0.1')``).

    The trunk is loaded from the hub-cache file ``ensure_weights('lpips')`` returns (the file
    that is hashed in ``description``), the linear layers from the lpips package. Call with two
    uint8 ``[B, C, H, W]`` batches (or float tensors in [0, 1]); returns float64 per-image values.
    Inputs are mapped to [-1, 1] by LPIPS (``normalize=True``)."""

    def __init__(self, device: Any = "cpu"):
        import lpips
        import torch

        self.device = torch.device(device)
        self.backbone_path = ensure_weights("lpips")
        self.linear_path = lpips_linear_weights_path()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # random trunk and random linear layers; both are then loaded (strictly) below
            net = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True,
                              verbose=False)
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
            raise RuntimeError(f"unexpected LPIPS linear-layer keys in {self.linear_path}: "
                               f"{sorted(set(lin) ^ lin_keys)}")
        net.load_state_dict(lin, strict=False)
        for prm in net.parameters():
            prm.requires_grad_(False)
        self.net = net.eval().to(self.device)
        self.min_size = lpips_alex_min_size()
        self.description = (f"alex v0.1 (lpips {_pkg_version('lpips')}, normalize=True); backbone "
                            f"{_file_desc(self.backbone_path, WEIGHTS['lpips'])}; linear layers "
                            f"{_file_desc(self.linear_path)}")

    def supports(self, height: int, width: int) -> bool:
        return min(height, width) >= self.min_size

    def __call__(self, originals: Any, reconstructions: Any) -> np.ndarray:
        import torch

        x0 = to_rgb_float(originals, self.device)
        x1 = to_rgb_float(reconstructions, self.device)
        if x0.shape != x1.shape:
            raise ValueError(f"shape mismatch {tuple(x0.shape)} vs {tuple(x1.shape)}")
        if not self.supports(*x0.shape[-2:]):
            raise ValueError(f"LPIPS-AlexNet needs inputs of at least {self.min_size}x"
                             f"{self.min_size}, got {tuple(x0.shape[-2:])}")
        with torch.inference_mode():
            d = self.net(x0, x1, normalize=True)
        return d.reshape(-1).double().cpu().numpy()


# --------------------------------------------------------------------------------------------
# Inception features and Gaussian statistics
# --------------------------------------------------------------------------------------------


class InceptionFeatures:
    """pytorch-fid's FID InceptionV3 (``InceptionV3([3])``: bilinear resize to 299, inputs
    mapped to [-1, 1]) returning 2048-d pool3 features as a float32 tensor ``[B, 2048]``.

    The network is pytorch-fid's own class; only its state dict is read from the exact
    hub-cache file ``ensure_weights('fid')`` returns (the file hashed in ``description``)."""

    dims = 2048

    def __init__(self, device: Any = "cpu"):
        import torch
        from unittest import mock

        import pytorch_fid.inception as pfi

        self.device = torch.device(device)
        self.path = ensure_weights("fid")
        if pfi.FID_WEIGHTS_URL != WEIGHTS["fid"].url:
            raise RuntimeError(f"pytorch-fid's FID_WEIGHTS_URL changed: {pfi.FID_WEIGHTS_URL}")
        path = self.path

        def _load(url: str, *args: Any, **kwargs: Any) -> dict:
            if url != pfi.FID_WEIGHTS_URL:
                raise RuntimeError(f"unexpected weights URL {url}")
            return torch.load(path, map_location="cpu", weights_only=True)

        with mock.patch.object(pfi, "load_state_dict_from_url", _load):
            model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[self.dims]],
                                    resize_input=True, normalize_input=True)
        self.model = model.eval().to(self.device)
        self.description = (f"pytorch-fid pt_inception-2015-12-05 pool3 2048-d (pytorch-fid "
                            f"{_pkg_version('pytorch-fid')}, resize_input=True -> 299 bilinear); "
                            f"{_file_desc(self.path, WEIGHTS['fid'])}")

    def __call__(self, images: Any) -> "torch.Tensor":
        import torch

        x = to_rgb_float(images, self.device)
        with torch.inference_mode():
            f = self.model(x)[0]
            if f.shape[2] != 1 or f.shape[3] != 1:
                f = torch.nn.functional.adaptive_avg_pool2d(f, (1, 1))
        return f.reshape(f.shape[0], -1)


class GaussianStats:
    """Streaming mean and covariance in float64 from the sum and the sum of outer products.

    Features are shifted by the first batch's mean before accumulating (exact in arithmetic,
    better conditioned in floating point). ``update`` takes numpy arrays or torch tensors
    ``[B, dim]``; accumulation happens on ``device`` (e.g. the GPU the features came from)."""

    def __init__(self, dim: int, device: Any = "cpu"):
        import torch

        self.dim = int(dim)
        self.device = torch.device(device)
        self.n = 0
        self._shift = None
        self._sum = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        self._outer = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)
        self._kept: list | None = []  # the features themselves while n <= dim (see factor())

    def update(self, features: Any) -> None:
        import torch

        x = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
        x = x.detach().to(device=self.device, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features [B, {self.dim}], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return
        if self._shift is None:
            self._shift = x.mean(0)
        xc = x - self._shift
        self._sum += xc.sum(0)
        self._outer += xc.T @ xc
        self.n += x.shape[0]
        if self._kept is not None:
            self._kept = self._kept + [xc] if self.n <= self.dim else None

    def factor(self) -> np.ndarray | None:
        """``B [dim, n]`` with ``cov() == B @ B.T`` while ``2 <= n <= dim``, else None.

        The covariance of n <= dim samples has rank < n; this factor lets
        :func:`frechet_distance_info` work with an n x n matrix instead of dim x dim ones.
        """
        import torch

        if self._kept is None or self.n < 2:
            return None
        xc = torch.cat(self._kept)
        xc = xc - xc.mean(0)
        return (xc.T / math.sqrt(self.n - 1)).cpu().numpy()

    def mean(self) -> np.ndarray:
        if self.n == 0:
            raise ValueError("no samples")
        return (self._shift + self._sum / self.n).cpu().numpy()

    def cov(self) -> np.ndarray:
        """Unbiased (n - 1) covariance, like ``np.cov(x, rowvar=False)``."""
        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 samples, have {self.n}")
        c = (self._outer - torch_outer(self._sum, self._sum) / self.n) / (self.n - 1)
        c = 0.5 * (c + c.T)
        return c.cpu().numpy()


def torch_outer(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    return a[:, None] * b[None, :]


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """``Tr sqrtm(S1 S2)`` for symmetric PSD ``S1, S2`` via two symmetric eigendecompositions.

    ``S1 S2`` is similar to ``A = S1^1/2 S2 S1^1/2`` (symmetric PSD), so its eigenvalues are
    real and non-negative and ``Tr sqrtm(S1 S2) = sum_i sqrt(eig_i(A))``. This is the quantity
    pytorch-fid obtains from ``scipy.linalg.sqrtm`` of the (non-symmetric) product, computed
    about ten times faster for 2048-d features and without complex round-off; tiny negative
    eigenvalues from round-off are clipped to 0.
    """
    w, u = np.linalg.eigh(s1)
    root = (u * np.sqrt(np.clip(w, 0, None))) @ u.T
    lam = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def frechet_distance_info(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                          sigma2: np.ndarray, eps: float = 1e-6, method: str = "eigh",
                          factor2: np.ndarray | None = None) -> tuple[float, dict[str, Any]]:
    """Frechet distance ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))``.

    ``method="eigh"`` (default): the trace term from :func:`trace_sqrt_product`.
    ``method="sqrtm"``: pytorch-fid 0.3.0's handling, kept for cross-checks:
    ``scipy.linalg.sqrtm`` of the product; if the result is not finite, ``eps`` is added to both
    diagonals and it is recomputed; an imaginary part is dropped if the diagonal's imaginary
    parts are within 1e-3 of zero, otherwise ``ValueError``.
    ``factor2`` (optional, ``[d, n]`` with ``sigma2 == factor2 @ factor2.T``, from
    :meth:`GaussianStats.factor` when n <= d): with ``method="eigh"``, the nonzero eigenvalues of
    ``S1 S2`` are those of the n x n matrix ``B^T S1 B``, so the trace term costs an n x n
    eigendecomposition instead of two d x d ones. Same quantity, exactly.
    Returns ``(distance, info)``; info records the method, whether the offset was needed and the
    largest imaginary magnitude that was dropped."""
    from scipy import linalg

    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different shapes {mu1.shape} vs {mu2.shape}")
    if s1.shape != s2.shape or s1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"covariances {s1.shape}, {s2.shape} do not match means {mu1.shape}")
    info: dict[str, Any] = {"method": method, "eps_offset_added": False,
                            "max_abs_imag_dropped": 0.0}
    diff = mu1 - mu2
    if method == "eigh":
        if factor2 is not None:
            b = np.asarray(factor2, dtype=np.float64)
            lam = np.linalg.eigvalsh(b.T @ s1 @ b)
            tr_sqrt = float(np.sqrt(np.clip(lam, 0, None)).sum())
            info["method"] = "eigh-lowrank"
        else:
            tr_sqrt = trace_sqrt_product(s1, s2)
        value = float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)
        return value, info
    if method != "sqrtm":
        raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1.dot(s2))
        if not np.isfinite(covmean).all():
            info["eps_offset_added"] = True
            info["eps"] = eps
            offset = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError(f"Imaginary component {m}")
        info["max_abs_imag_dropped"] = float(np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    value = float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return value, info


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6, method: str = "eigh") -> float:
    """See ``frechet_distance_info``; returns only the distance."""
    return frechet_distance_info(mu1, sigma1, mu2, sigma2, eps, method)[0]


# --------------------------------------------------------------------------------------------
# Code usage
# --------------------------------------------------------------------------------------------


def _hist_stats(counts: np.ndarray, k: int) -> tuple[float, float | None]:
    """(fraction of the k codewords used, perplexity exp(H) with natural-log entropy)."""
    total = counts.sum()
    if total == 0:
        return 0.0, None
    p = counts[counts > 0] / total
    return float((counts > 0).sum() / k), float(np.exp(-np.sum(p * np.log(p))))


def code_usage(codes: np.ndarray, codebook_size: int) -> dict[str, Any]:
    """Codebook usage per token position over a set of images.

    ``codes``: integer ``[N, T]``, ``-1`` marks a token unused for that image (ignored).
    Per position t: ``fraction`` = distinct codewords used / K, ``perplexity`` = exp(H) of that
    position's code histogram (H in nats; 0 log 0 = 0). Positions with no valid entry get
    fraction 0 and perplexity None and are left out of both means (counted in
    ``n_positions_empty``). ``pooled`` is the histogram summed over positions (VQ-WAE's
    perplexity definition; meaningful only when all positions share one codebook)."""
    c = np.asarray(codes)
    if c.ndim != 2 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"codes: expected an integer array [N, T], got {c.dtype} {c.shape}")
    k = int(codebook_size)
    if k < 1:
        raise ValueError(f"codebook_size must be >= 1, got {k}")
    if c.size and (c.min() < -1 or c.max() >= k):
        raise ValueError(f"codes outside [-1, {k - 1}]: min {c.min()}, max {c.max()}")
    n, t = c.shape
    valid = c >= 0
    flat = (c + np.arange(t, dtype=np.int64)[None, :] * k)[valid]
    counts = np.bincount(flat.astype(np.int64), minlength=t * k).reshape(t, k)
    frac, perp = [], []
    for row in counts:
        f, p = _hist_stats(row, k)
        frac.append(f)
        perp.append(p)
    nonempty = [i for i in range(t) if perp[i] is not None]
    pooled_f, pooled_p = _hist_stats(counts.sum(0), k)
    return {
        "mean_fraction": float(np.mean([frac[i] for i in nonempty])) if nonempty else None,
        "mean_perplexity": float(np.mean([perp[i] for i in nonempty])) if nonempty else None,
        "per_position": {"fraction": frac, "perplexity": perp,
                         "n_valid": counts.sum(1).astype(int).tolist()},
        "pooled": {"fraction": pooled_f, "perplexity": pooled_p},
        "codebook_size": k,
        "n_images": int(n),
        "n_positions": int(t),
        "n_positions_empty": int(t - len(nonempty)),
        "n_unused_entries": int((~valid).sum()),
    }


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """mean, sample std (ddof=1; None for n < 2) and n of per-image values (NaN = not computed).
    Infinite values (PSNR of identical images) make mean/std None; ``n_infinite`` counts them
    and ``mean_finite``/``std_finite`` summarise the rest."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    n = int(v.size)
    out: dict[str, Any] = {"mean": None, "std": None, "n": n}
    if n == 0:
        return out
    inf = ~np.isfinite(v)
    fin = v[~inf]
    if inf.any():
        out["n_infinite"] = int(inf.sum())
        out["mean_finite"] = float(fin.mean()) if fin.size else None
        out["std_finite"] = float(fin.std(ddof=1)) if fin.size > 1 else None
        return out
    out["mean"] = float(v.mean())
    out["std"] = float(v.std(ddof=1)) if n > 1 else None
    return out
