"""The uint8 cache of a dataset: preparing it, verifying it against its manifest, loading a split.

``ROOT/qgvae-cache/NAME/{train,val,test}.npy`` (uint8 ``[N, C, H, W]``), optional
``val_indices.npy`` and ``manifest.json``, written by :class:`qgvae.data.writer.CacheWriter`
(the manifest is removed first and written last, so it marks a complete cache).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .recipe import (
    SPLITS,
    hash_file,
    npy_header,
)
from .registry import RECIPES, dataset_info, expected_counts
from .writer import FORMAT_VERSION, CacheWriter

CACHE_DIRNAME = "qgvae-cache"


def cache_dir(name: str, root: str | os.PathLike) -> Path:
    dataset_info(name)
    return Path(root) / CACHE_DIRNAME / name


def prepare(
    name: str, root: str | Path, *, download: bool = True, workers: int | None = None
) -> Path:
    """Verify (or download through torchvision) the sources and write the uint8 cache.

    Returns ``root/qgvae-cache/<name>``.  A cache that already verifies is kept untouched.
    ``download=False`` never touches the network (present archives are still extracted).
    ``workers``: DataLoader workers for CelebA's JPEG decoding (default: up to 4).
    """
    dataset_info(name)
    root = Path(root)
    folder = cache_dir(name, root)
    counts = expected_counts(name)
    if (folder / "manifest.json").exists() and verify(name, root)["ok"]:
        return folder
    sources = RECIPES[name].check(root, download)  # raises DataError before any processing
    writer = CacheWriter(RECIPES[name], folder)
    extra = RECIPES[name].build(root, sources, writer, counts, workers)
    writer.finish(root, counts, sources, extra)
    report = verify(name, root)
    if not report["ok"]:
        raise DataError(
            f"dataset {name!r}: the cache just written to {folder} does not verify: "
            + "; ".join(report["problems"])
        )
    return folder


def _read_manifest(name: str, root: Path) -> dict[str, Any]:
    folder = cache_dir(name, root)
    path = folder / "manifest.json"
    hint = f"run `qgvae prepare-data {name} --root {root}`"
    if not path.is_file():
        raise DataError(
            f"dataset {name!r}: no prepared cache at {folder} ({path} is missing); {hint}"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"dataset {name!r}: {path} is unreadable ({exc}); {hint}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise DataError(f"dataset {name!r}: {path} is not a qgvae cache manifest; {hint}")
    return manifest


def _split_problems(
    name: str, root: Path, manifest: dict[str, Any], split: str, *, hash_data: bool = True
) -> list[str]:
    info = dataset_info(name)
    counts = expected_counts(name)
    folder = cache_dir(name, root)
    path = folder / f"{split}.npy"
    want_shape = [counts[split], info.channels, info.size, info.size]
    entry = manifest["splits"].get(split)
    if entry is None:
        return [f"{path}: not listed in {folder / 'manifest.json'}"]
    if not path.is_file():
        return [f"{path}: missing"]
    problems = []
    if list(entry.get("shape", [])) != want_shape:
        problems.append(f"{path}: manifest says shape {entry.get('shape')}, expected {want_shape}")
    try:
        shape, dtype, fortran, _ = npy_header(path)
    except Exception as exc:
        return problems + [f"{path}: not a readable .npy file ({exc})"]
    if list(shape) != want_shape or dtype != np.uint8 or fortran:
        problems.append(
            f"{path}: holds {dtype} {list(shape)}{' (Fortran order)' if fortran else ''}, "
            f"expected uint8 {want_shape}"
        )
    if hash_data:
        got = hash_file(path)
        if got != entry.get("sha256"):
            problems.append(
                f"{path}: sha256 {got} does not match the manifest's {entry.get('sha256')} "
                f"(corrupt or modified)"
            )
    return problems


def verify(name: str, root: str | Path) -> dict[str, Any]:
    """Re-check the cache against its manifest and the expected counts/shapes.

    Returns ``{"ok", "dataset", "folder", "problems": [...], "splits": {split: {...}}}``; never
    raises for a bad cache (only for an unknown dataset name).
    """
    dataset_info(name)
    root = Path(root)
    folder = cache_dir(name, root)
    report: dict[str, Any] = {
        "ok": False,
        "dataset": name,
        "folder": str(folder),
        "problems": [],
        "splits": {},
    }
    try:
        manifest = _read_manifest(name, root)
    except DataError as exc:
        report["problems"].append(str(exc))
        return report
    counts = expected_counts(name)
    problems = report["problems"]
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(
            f"manifest format_version {manifest.get('format_version')} != {FORMAT_VERSION}"
        )
    if manifest.get("pipeline") != RECIPES[name].pipeline:
        problems.append(
            f"cache built by pipeline {manifest.get('pipeline')!r}, "
            f"current is {RECIPES[name].pipeline!r}"
        )
    if manifest.get("expected_counts") != counts:
        problems.append(
            f"cache built for counts {manifest.get('expected_counts')}, expected {counts}"
        )
    for split in SPLITS:
        p = _split_problems(name, root, manifest, split)
        entry = manifest["splits"].get(split, {})
        report["splits"][split] = {
            "ok": not p,
            "count": entry.get("count"),
            "shape": entry.get("shape"),
            "sha256": entry.get("sha256"),
            "problems": p,
        }
        problems.extend(p)
    for fname, entry in (manifest.get("extra_files") or {}).items():
        path = folder / fname
        if not path.is_file() or hash_file(path) != entry.get("sha256"):
            problems.append(f"{path}: missing or sha256 differs from the manifest")
    report["ok"] = not problems
    report["manifest"] = {
        k: manifest.get(k)
        for k in (
            "description",
            "expected_counts",
            "split_seed",
            "counts_overridden",
            "created",
            "versions",
        )
    }
    return report


def load_split(name: str, root: str | Path, split: str) -> Any:
    """The cached split as a uint8 CPU tensor [N, C, H, W] (sha256 and shape checked)."""
    dataset_info(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = Path(root)
    manifest = _read_manifest(name, root)
    hint = f"run `qgvae prepare-data {name} --root {root}` to rebuild the cache"
    problems = _split_problems(name, root, manifest, split, hash_data=False)
    if manifest.get("expected_counts") != expected_counts(name):
        problems.append(
            f"cache built for counts {manifest.get('expected_counts')}, expected "
            f"{expected_counts(name)}"
        )
    if problems:
        raise DataError(f"dataset {name!r}, split {split!r}: " + "; ".join(problems) + f"; {hint}")
    path = cache_dir(name, root) / f"{split}.npy"
    shape, _, _, offset = npy_header(path)
    arr = np.empty(shape, dtype=np.uint8)
    flat = memoryview(arr.reshape(-1)).cast("B")
    h = hashlib.sha256()
    with open(path, "rb") as fh:  # one pass: hash while reading into the array
        h.update(fh.read(offset))
        pos, total = 0, flat.nbytes
        while pos < total:
            got = fh.readinto(flat[pos : pos + (1 << 24)])
            if not got:
                raise DataError(
                    f"{path}: truncated ({pos + offset} of {total + offset} bytes); {hint}"
                )
            h.update(flat[pos : pos + got])
            pos += got
        rest = fh.read()
        h.update(rest)
    want = manifest["splits"][split].get("sha256")
    if h.hexdigest() != want:
        raise DataError(
            f"{path}: sha256 {h.hexdigest()} does not match {want} in the manifest "
            f"(corrupt or modified file); {hint}"
        )
    import torch

    return torch.from_numpy(arr)
