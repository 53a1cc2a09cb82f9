"""The writer of a dataset's uint8 cache: the splits under temporary names, moved into place,
then ``manifest.json`` (counts, shapes, sha256 of each file, sources and their MD5, split seed,
pipeline tag, library versions), written last so that it marks a complete cache.

Recipes write through it (:mod:`qgvae.data.recipe`); it knows the recipe it is given, never the
registry of recipes, so that the registry -> recipe -> writer imports run one way only.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, write_json
from ..machine import now, package_versions
from .recipe import (
    SPLIT_COUNT_OVERRIDES,
    SPLIT_SEED,
    Recipe,
    Source,
    hash_file,
    npy_header,
    write_npy,
)

FORMAT_VERSION = 1
VERSION_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "pillow",
    "scipy",
    "scikit-image",
    "qgvae-bench",
)


class CacheWriter:
    """Writes one dataset's splits into ``folder`` and, last, the manifest that marks them
    complete. ``recipe`` is the dataset's recipe (its info and pipeline tag go into the
    manifest); the caller (:func:`qgvae.data.cache.prepare`) looks it up in the registry."""

    def __init__(self, recipe: Recipe, folder: Path) -> None:
        self.recipe = recipe
        self.name = recipe.info.name
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.json"
        if manifest.exists():  # invalidate first: the manifest marks a complete cache
            manifest.unlink()
        self.files: dict[str, dict[str, Any]] = {}
        self.extra_files: dict[str, dict[str, Any]] = {}

    def _record(self, split: str, path: Path) -> None:
        shape, dtype, _, _ = npy_header(path)
        self.files[split] = {
            "file": path.name,
            "count": shape[0],
            "shape": list(shape),
            "dtype": str(dtype),
            "sha256": hash_file(path),
            "bytes": path.stat().st_size,
        }

    def write(self, split: str, array: np.ndarray) -> None:
        if array.dtype != np.uint8 or array.ndim != 4:
            raise AssertionError(
                f"{split}: expected uint8 [N,C,H,W], got {array.dtype} {array.shape}"
            )
        path = self.folder / f"{split}.npy"
        write_npy(path, array)
        self._record(split, path)

    @contextlib.contextmanager
    def memmap(self, split: str, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
        """A uint8 .npy memmap on a temporary file; moved into place when the block succeeds."""
        path = self.folder / f"{split}.npy"
        with atomic_path(path) as tmp:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            try:
                yield mm
                mm.flush()
            finally:
                del mm
        self._record(split, path)

    def write_indices(self, array: np.ndarray, filename: str = "val_indices.npy") -> None:
        path = self.folder / filename
        write_npy(path, array.astype(np.int64))
        self.extra_files[filename] = {"sha256": hash_file(path), "count": int(array.shape[0])}

    def finish(
        self, root: Path, counts: dict[str, int], sources: list[Source], extra: dict[str, Any]
    ) -> dict[str, Any]:
        info = self.recipe.info
        manifest = {
            "format_version": FORMAT_VERSION,
            "dataset": self.name,
            "description": info.description,
            "pipeline": self.recipe.pipeline,
            "channels": info.channels,
            "size": info.size,
            "expected_counts": counts,
            "counts_overridden": self.name in SPLIT_COUNT_OVERRIDES,
            "split_seed": SPLIT_SEED,
            "splits": self.files,
            "extra_files": self.extra_files,
            "sources": [s.record(root) for s in sources],
            **extra,
            "versions": package_versions(VERSION_PACKAGES),
            "python": sys.version.split()[0],
            "created": now(),
        }
        write_json(self.folder / "manifest.json", manifest)
        return manifest
