"""rFID: Inception features, their streamed Gaussian statistics and the Frechet distance.

- ``InceptionFeatures``: pytorch-fid's FID InceptionV3, 2048-d pool3 features.
- ``GaussianStats``: streaming float64 mean / covariance (sum and sum of outer products).
- ``frechet_distance``: the Frechet distance of two Gaussians, computed as pytorch-fid does.

Grayscale images are repeated to three channels for Inception (``to_rgb_float``).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..machine import package_versions
from .fast_inference import build_backend, run_padded
from .image_metrics import to_rgb_float
from .weights import WEIGHTS, ensure_weights, file_description

if TYPE_CHECKING:
    import torch


class InceptionFeatures:
    """pytorch-fid's FID InceptionV3 (``InceptionV3([3])``: bilinear resize to 299, inputs
    mapped to [-1, 1]) returning 2048-d pool3 features as a float32 tensor ``[B, 2048]``.

    The network is pytorch-fid's own class; only its state dict is read from the exact
    hub-cache file ``ensure_weights('fid')`` returns (the file hashed in ``description``).
    pytorch-fid's resize to 299 and its mapping to [-1, 1] are done here with the same
    operations (``F.interpolate(bilinear, align_corners=False)``, ``2 x - 1``) before the
    network, so that the network always sees ``[B, 3, 299, 299]``: one traced or compiled graph
    serves every input size.

    ``backend`` (see :mod:`.fast_inference`): ``eager`` (pytorch-fid's module as it is),
    ``traced`` (frozen TorchScript, oneDNN; the CPU default), ``compiled`` (``torch.compile``
    with frozen weights: the cheapest per image on the CPU, but it compiles for a minute or two
    once per process, so it pays for long evaluations; batches are padded to ``batch_size`` so
    that it compiles once), ``auto`` (traced on the CPU, eager on CUDA). A fast backend is
    checked against the eager network on a probe batch and dropped (with the reason in
    ``backend_note``) when it differs by more than 1e-5 relative."""

    dims = 2048

    def __init__(self, device: Any = "cpu", backend: str = "auto", batch_size: int = 100):
        from unittest import mock

        import pytorch_fid.inception as pfi
        import torch

        self.device = torch.device(device)
        self.path = ensure_weights("fid")
        if WEIGHTS["fid"].url != pfi.FID_WEIGHTS_URL:
            raise RuntimeError(f"pytorch-fid's FID_WEIGHTS_URL changed: {pfi.FID_WEIGHTS_URL}")
        path = self.path

        def _load(url: str, *args: Any, **kwargs: Any) -> dict:
            if url != pfi.FID_WEIGHTS_URL:
                raise RuntimeError(f"unexpected weights URL {url}")
            return torch.load(path, map_location="cpu", weights_only=True)

        with mock.patch.object(pfi, "load_state_dict_from_url", _load):
            model = pfi.InceptionV3(
                [pfi.InceptionV3.BLOCK_INDEX_BY_DIM[self.dims]],
                resize_input=True,
                normalize_input=True,
            )
        self.model = model.eval().to(self.device)  # pytorch-fid's module, untouched
        trunk = copy.deepcopy(self.model)
        trunk.resize_input = trunk.normalize_input = False  # done in _prepare instead
        self.trunk = trunk
        version = package_versions(("pytorch-fid",))["pytorch-fid"]
        self.description = (
            f"pytorch-fid pt_inception-2015-12-05 pool3 2048-d (pytorch-fid "
            f"{version}, resize_input=True -> 299 bilinear); "
            f"{file_description(self.path, WEIGHTS['fid'])}"
        )
        self.backend, self.backend_note, self.net, self.pad_to = build_backend(
            self.trunk, self.device, backend, (3, 299, 299), batch_size
        )

    @staticmethod
    def _prepare(x: torch.Tensor) -> torch.Tensor:
        """pytorch-fid's own input transform (InceptionV3.forward, resize_input and
        normalize_input), applied outside the network."""
        import torch.nn.functional as F

        if x.shape[-2:] != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def __call__(self, images: Any) -> torch.Tensor:
        import torch

        x = to_rgb_float(images, self.device)
        with torch.inference_mode():
            f = run_padded(self.net, self._prepare(x), self.pad_to)[0]
        return f.reshape(f.shape[0], -1)

    def reference(self, images: Any) -> torch.Tensor:
        """pytorch-fid's module as it is (what ``__call__`` is checked against)."""
        import torch

        with torch.inference_mode():
            f = self.model(to_rgb_float(images, self.device))[0]
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

        x = (
            features
            if isinstance(features, torch.Tensor)
            else torch.from_numpy(np.asarray(features))
        )
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
        import torch

        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 samples, have {self.n}")
        c = (self._outer - torch.outer(self._sum, self._sum) / self.n) / (self.n - 1)
        c = 0.5 * (c + c.T)
        return c.cpu().numpy()


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


def frechet_distance_info(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    method: str = "eigh",
    factor2: np.ndarray | None = None,
) -> tuple[float, dict[str, Any]]:
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
    info: dict[str, Any] = {
        "method": method,
        "eps_offset_added": False,
        "max_abs_imag_dropped": 0.0,
    }
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


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    method: str = "eigh",
) -> float:
    """See ``frechet_distance_info``; returns only the distance."""
    return frechet_distance_info(mu1, sigma1, mu2, sigma2, eps, method)[0]


def nuclear_norm_cross(b1: np.ndarray, b2: np.ndarray) -> float:
    """``Tr sqrt(S1 S2)`` for ``S1 = B1 B1^T``, ``S2 = B2 B2^T``: the sum of the singular values
    of ``B1^T B2`` (an n1 x n2 matrix). The nonzero eigenvalues of ``S1^1/2 S2 S1^1/2`` are the
    squared singular values of ``B1^T B2``; taking singular values directly keeps zero ones at
    round-off size (a set against itself gives exactly ``Tr S``, rFID about 1e-13)."""
    m = np.asarray(b1, dtype=np.float64).T @ np.asarray(b2, dtype=np.float64)
    return float(np.linalg.svd(m, compute_uv=False).sum())


def frechet_from_stats(s1: GaussianStats, s2: GaussianStats) -> tuple[float, dict[str, Any]]:
    """The Frechet distance of two streamed feature sets: via :func:`nuclear_norm_cross` when
    both hold at most ``dim`` samples ("svd-lowrank"), else :func:`frechet_distance_info`."""
    f1, f2 = s1.factor(), s2.factor()
    if f1 is None or f2 is None:
        return frechet_distance_info(s1.mean(), s1.cov(), s2.mean(), s2.cov(), factor2=f2)
    diff = s1.mean() - s2.mean()
    tr1, tr2 = float(np.square(f1).sum()), float(np.square(f2).sum())
    value = float(diff.dot(diff) + tr1 + tr2 - 2.0 * nuclear_norm_cross(f1, f2))
    return value, {"method": "svd-lowrank", "eps_offset_added": False, "max_abs_imag_dropped": 0.0}
