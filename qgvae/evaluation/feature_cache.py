"""Inception features of the test originals, cached on disk and shared by every run of a dataset.

The originals a dataset's runs reconstruct are the same for every method, so their Inception
features (float32 ``[N, 2048]`` per protocol) are computed once and kept in a folder (the
workflow's ``<results>/.inception-features``). A file's name is a digest of the original images'
bytes, the protocol (its resizing), and the Inception weights' description, so a hit is exactly what
would have been recomputed. Files are written atomically; a file that cannot be read, has the
wrong shape or holds non-finite values is reported, deleted and recomputed (a crash while
writing, a full disk or a copy gone wrong must not stop every later evaluation of the dataset).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..io import save_npy
from .protocols import PROTOCOL_SPECS

log = logging.getLogger(__name__)


class FeatureCache:
    """``load`` / ``save`` the originals' features of one protocol; ``folder=None``: no cache."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = None if folder is None else Path(folder)
        self.recomputed: list[str] = []  # corrupt files found (and removed) by this instance

    @staticmethod
    def key(originals: np.ndarray, protocol: str, inception_description: str) -> str:
        h = hashlib.sha256()
        spec = PROTOCOL_SPECS[protocol]
        h.update(f"{spec}|{originals.shape}|".encode())
        h.update(inception_description.encode())
        h.update(np.ascontiguousarray(originals).tobytes())
        return h.hexdigest()[:24]

    def path(self, originals: np.ndarray, protocol: str, inception_description: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{self.key(originals, protocol, inception_description)}.npy"

    def load(
        self, originals: np.ndarray, protocol: str, inception_description: str, dims: int
    ) -> np.ndarray | None:
        """The cached features ``[len(originals), dims]``, or None (absent, or corrupt: then
        the file is removed and the caller recomputes)."""
        if self.folder is None:
            return None
        path = self.path(originals, protocol, inception_description)
        if not path.is_file():
            return None
        try:
            feats = np.load(path, allow_pickle=False)
            ok = (
                feats.dtype == np.float32
                and feats.shape == (len(originals), dims)
                and bool(np.isfinite(feats).all())
            )
            why = "" if ok else f"holds {feats.dtype} {feats.shape}, expected float32 "
            why += "" if ok else f"[{len(originals)}, {dims}] of finite values"
        except (OSError, ValueError, EOFError) as exc:
            ok, why = False, f"unreadable ({type(exc).__name__}: {exc})"
        if ok:
            return feats
        log.warning("feature cache %s %s: removed, recomputing", path, why)
        self.recomputed.append(f"{path.name}: {why}")
        path.unlink(missing_ok=True)
        return None

    def save(
        self, originals: np.ndarray, protocol: str, inception_description: str, feats: np.ndarray
    ) -> None:
        if self.folder is None:
            return
        path = self.path(originals, protocol, inception_description)
        save_npy(path, np.ascontiguousarray(feats, dtype=np.float32))
