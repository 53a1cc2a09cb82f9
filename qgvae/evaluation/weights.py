"""The pretrained networks behind LPIPS and rFID: where their files are and how they are checked.

The weights are taken from the torch hub cache (``$TORCH_HOME/hub/checkpoints``) and never
silently replaced: ``ensure_weights`` returns the file's path, trying torch's own download (with
its sha256-prefix check) only when the file is absent, and raises ``MissingWeightsError`` naming
the file, the expected path and TORCH_HOME when it cannot be had. ``file_description`` is how a
file is recorded in metrics.json (path and sha256).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingWeightsError
from ..io import hash_file

__all__ = [
    "FETCH_HINT",
    "LPIPS_LINEAR_RELPATH",
    "WEIGHTS",
    "MissingWeightsError",
    "WeightSpec",
    "ensure_weights",
    "expected_weight_path",
    "file_description",
    "file_sha256",
    "hub_checkpoint_dir",
    "lpips_linear_weights_path",
]


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
        "lpips",
        "LPIPS AlexNet trunk (torchvision AlexNet IMAGENET1K_V1)",
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "fid": WeightSpec(
        "fid",
        "FID InceptionV3 (pytorch-fid pt_inception-2015-12-05)",
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
    ),
}

LPIPS_LINEAR_RELPATH = Path("weights") / "v0.1" / "alex.pth"

FETCH_HINT = (
    "Fix: run `qgvae fetch-weights` here if this machine has internet; otherwise run "
    "`qgvae fetch-weights --torch-home DIR` on one that has, copy DIR here and set "
    "TORCH_HOME=DIR (or copy the file into the expected path above)."
)


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
        raise ValueError(
            f"unknown weights kind {kind!r}; expected one of {sorted(WEIGHTS)}"
        ) from None


def _torch_home_desc() -> str:
    th = os.environ.get("TORCH_HOME")
    return f"TORCH_HOME={th}" if th else "TORCH_HOME is not set (torch's default: ~/.cache/torch)"


def _missing_message(spec: WeightSpec, path: Path, reason: str) -> str:
    return (
        f"Missing pretrained weights for {spec.what}: file '{spec.filename}' is not in the "
        f"torch hub cache.\n"
        f"  expected path: {path}\n"
        f"  {_torch_home_desc()}; torch hub dir: {path.parent.parent}\n"
        f"  download from {spec.url} failed: {reason}\n"
        f"{FETCH_HINT}"
    )


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
                f"(expected {lin}); reinstall `lpips==0.1.4`."
            )
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # looked up at call time so that tests can block it
        torch.hub.download_url_to_file(
            spec.url, str(path), hash_prefix=spec.hash_prefix, progress=True
        )
    except Exception as exc:  # noqa: BLE001 - every failure means "not available"
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()
        raise MissingWeightsError(
            _missing_message(spec, path, f"{type(exc).__name__}: {exc}")
        ) from exc
    if not path.is_file():
        raise MissingWeightsError(_missing_message(spec, path, "no file after download"))
    return path


# per process: (resolved path, size, mtime_ns) -> sha256, so a weight file is hashed once
_SHA256: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """``qgvae.io.hash_file(path)``, remembered per process while the file is unchanged."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256:
        _SHA256[key] = hash_file(p)
    return _SHA256[key]


def file_description(path: Path, spec: WeightSpec | None = None) -> str:
    """``"<path> sha256=<hex>"``; with ``spec``, whether the digest matches the hash prefix in
    the file name (it does not for e.g. an offline rebuild of the file)."""
    digest = file_sha256(path)
    out = f"{path} sha256={digest}"
    if spec is not None:
        match = digest.startswith(spec.hash_prefix)
        out += (
            f" (sha256 {'matches' if match else 'does NOT match'} the hash prefix "
            f"{spec.hash_prefix} in the file name"
            + ("" if match else "; not the original download, e.g. an offline rebuild")
            + ")"
        )
    return out
