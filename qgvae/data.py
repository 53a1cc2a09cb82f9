"""Datasets: registry, verified preparation into a uint8 cache, and device-resident loaders.

Every dataset goes through the same two steps.

1. ``prepare(name, root)`` (CLI: ``qgvae prepare-data NAME --root ROOT``) checks the source files
   against the checksums that torchvision itself uses (read from torchvision's classes at call
   time), downloads missing ones through torchvision when allowed, and fails with a
   :class:`DataError` naming the file, the expected checksum and how to obtain it *before* any
   processing starts.  It then parses the sources with torchvision, applies the fixed
   preprocessing (resize / crop) and writes ::

       ROOT/qgvae-cache/NAME/train.npy  val.npy  test.npy   uint8 [N, C, H, W]
       ROOT/qgvae-cache/NAME/val_indices.npy                (carved datasets: indices of the
                                                             validation images in the official
                                                             train split, sorted; train = rest)
       ROOT/qgvae-cache/NAME/manifest.json                  counts, shapes, sha256 of each .npy,
                                                             source files and their md5, split
                                                             seed, library versions

   Every file is written to a temporary name and moved into place with ``os.replace``; the
   manifest is removed first and written last, so it marks a complete cache.  A cache that
   passes :func:`verify` is kept as it is (``prepare`` is idempotent).

2. ``load_split(name, root, split)`` returns the cached split as a uint8 CPU tensor after
   re-checking its sha256 and shape; :class:`DeviceLoader` batches such a tensor once it lives
   on the training device.

Source layout under ROOT (what torchvision expects)::

    mnist     ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    cifar10   ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
              (or ROOT/cifar-10-python.tar.gz, which is extracted)
    svhn      ROOT/svhn/{train_32x32.mat,test_32x32.mat}
    celeba64  ROOT/celeba/img_align_celeba/*.jpg + ROOT/celeba/list_*.txt, identity_CelebA.txt
    photos    nothing: scikit-image's bundled photographs (installed with the package)

Split counts are fixed in :data:`DATASETS` and checked after parsing and after writing.  Tests
that write tiny files in the real formats set :data:`SPLIT_COUNT_OVERRIDES` (normally through
pytest's ``monkeypatch``); the manifest records the counts a cache was built for, so a cache
built under an override never passes :func:`verify` / :func:`load_split` without that override.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.utils.data

from .utils import atomic_path, now, package_versions, write_json

__all__ = ["DataError", "DatasetInfo", "DATASETS", "SPLITS", "SPLIT_SEED", "SPLIT_COUNT_OVERRIDES",
           "dataset_info", "expected_counts", "cache_dir", "prepare", "load_split", "verify",
           "DeviceLoader", "register_cli"]

CACHE_DIRNAME = "qgvae-cache"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
SPLIT_SEED = 0  # seed of the permutation that carves validation out of the official train split
VERSION_PACKAGES = ("torch", "torchvision", "numpy", "pillow", "scipy", "scikit-image", "qgvae-bench")


class DataError(RuntimeError):
    """A dataset file or cache is missing, corrupt or of the wrong size.

    The message names the file, what was expected and how to obtain or rebuild it.
    """


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    size: int  # square images, size x size
    splits: dict[str, int]  # expected counts {"train": ..., "val": ..., "test": ...}
    description: str  # one line for reports: source, preprocessing, split rule


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist", 1, 32, {"train": 50_000, "val": 10_000, "test": 10_000},
        "MNIST (torchvision, the four MD5-checked idx files); train/val = 50,000/10,000 carved from "
        "the official 60,000-image train split by a seeded permutation (numpy PCG64, seed 0), test = "
        "the official 10,000; 28x28 resized to 32x32 with PIL bilinear (VQ-WAE's protocol, giving the "
        "baselines' 8x8 latent; the QG-VAE authors' code keeps 28x28); 1 channel, uint8."),
    "cifar10": DatasetInfo(
        "cifar10", 3, 32, {"train": 40_000, "val": 10_000, "test": 10_000},
        "CIFAR-10 (torchvision, MD5-checked python batches); train/val = 40,000/10,000 carved from the "
        "official 50,000-image train split by a seeded permutation (numpy PCG64, seed 0), test = the "
        "official 10,000 test_batch; native 32x32 RGB, uint8, no resizing."),
    "svhn": DatasetInfo(
        "svhn", 3, 32, {"train": 63_257, "val": 10_000, "test": 26_032},
        "SVHN cropped digits (torchvision, MD5-checked train_32x32.mat / test_32x32.mat; extra_32x32 "
        "unused); train/val = 63,257/10,000 carved from train_32x32.mat by a seeded permutation (numpy "
        "PCG64, seed 0), test = all 26,032 images of test_32x32.mat (the authors' loader read the train "
        "file for both; not copied); native 32x32 RGB, uint8."),
    "celeba64": DatasetInfo(
        "celeba64", 3, 64, {"train": 162_770, "val": 19_867, "test": 19_962},
        "CelebA aligned & cropped JPEGs (torchvision, MD5-checked list files); official partition of "
        "list_eval_partition.txt (162,770/19,867/19,962); 178x218 center-cropped to 140x140 then "
        "resized to 64x64 (PIL bilinear, antialiased), RGB, uint8."),
    "photos": DatasetInfo(
        "photos", 3, 32, {"train": 4_096, "val": 512, "test": 512},
        "32x32 RGB crops of scikit-image's bundled photographs (offline; grayscale replicated to RGB); "
        "seeded square crops of side 32-128 px (log-uniform) resized with PIL bilinear (antialiased) "
        "plus random horizontal flips; test = 512 crops of 5 photographs never used for train/val "
        "(coffee, rocket, retina, coins, gravel); train = 4,096 crops from the left 75% and val = 512 "
        "crops from the right 25% of each of 11 other photographs, so val pixels never occur in train."),
}

# Test-only hook: dataset name -> complete {"train", "val", "test"} counts used instead of
# DATASETS[name].splits.  Empty in production.  Caches record the counts they were built for.
SPLIT_COUNT_OVERRIDES: dict[str, dict[str, int]] = {}

# Bump when a dataset's preprocessing changes; a cache with another value is rebuilt.
_PIPELINE = {
    "mnist": "mnist-v1: torchvision idx parse, PIL bilinear 28->32, numpy PCG64 seed-0 val carve",
    "cifar10": "cifar10-v1: torchvision batches, HWC->CHW, numpy PCG64 seed-0 val carve",
    "svhn": "svhn-v1: torchvision .mat, numpy PCG64 seed-0 val carve, test from test_32x32.mat",
    "celeba64": "celeba64-v1: torchvision CelebA, CenterCrop(140), Resize(64, bilinear, antialias)",
    "photos": "photos-v1: skimage bundled photos, log-uniform side 32..128, PIL bilinear, hflip",
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None


def expected_counts(name: str) -> dict[str, int]:
    """The split counts a prepared cache must have (DATASETS, unless a test overrides them)."""
    info = dataset_info(name)
    counts = SPLIT_COUNT_OVERRIDES.get(name, info.splits)
    if set(counts) != set(SPLITS) or any(int(v) < 1 for v in counts.values()):
        raise DataError(f"split counts for {name!r} must give a positive count for each of "
                        f"{SPLITS}; got {counts}")
    return {s: int(counts[s]) for s in SPLITS}


def cache_dir(name: str, root: str | os.PathLike) -> Path:
    dataset_info(name)
    return Path(root) / CACHE_DIRNAME / name


# --------------------------------------------------------------------------------------------
# file helpers
# --------------------------------------------------------------------------------------------

def _hash_file(path: Path, algo: str = "sha256", chunk: int = 1 << 22) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _md5(path: Path) -> str:
    return _hash_file(path, "md5")


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, header_bytes) of a .npy file without reading its data."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        return tuple(shape), np.dtype(dtype), bool(fortran), fh.tell()


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass
class _Source:
    """One source file and how to check / obtain it."""
    path: Path
    md5: str | None  # expected (torchvision's table); None = existence only
    url: str | None  # where torchvision downloads it from
    how: str  # manual instructions
    sha256: str | None = None  # expected sha256 (scikit-image's registry) instead of an md5
    expect: str | None = None  # what is expected, where no checksum applies (e.g. a folder)

    def problem(self) -> str | None:
        if not self.path.is_file():
            return "missing"
        if self.md5 is not None:
            got = _md5(self.path)
            if got != self.md5:
                return f"corrupt (MD5 {got}, size {self.path.stat().st_size} bytes)"
        if self.sha256 is not None:
            got = _hash_file(self.path)
            if got != self.sha256:
                return f"corrupt (sha256 {got})"
        return None

    def expectation(self) -> str:
        if self.expect:
            return self.expect
        if self.md5:
            return f"MD5 {self.md5} (torchvision's checksum)"
        if self.sha256:
            return f"sha256 {self.sha256} (scikit-image's registry)"
        return "present"

    def record(self, root: Path) -> dict[str, Any]:
        return {"path": _rel(self.path, root), "bytes": self.path.stat().st_size,
                "md5": _md5(self.path), "expected_md5": self.md5,
                **({"expected_sha256": self.sha256} if self.sha256 else {})}


def _source_error(name: str, root: Path, bad: list[tuple[_Source, str]], layout: str,
                  note: str = "") -> DataError:
    lines = [f"dataset {name!r}: {len(bad)} source file(s) missing or corrupt under {root}:"]
    for src, why in bad:
        lines.append(f"  - {src.path}: {why}; expected {src.expectation()}")
        if src.url:
            lines.append(f"      download: {src.url}")
        if src.how:
            lines.append(f"      {src.how}")
    if any(not why.startswith("missing") for _, why in bad):
        lines.append("A corrupt (e.g. truncated) file is never overwritten automatically: delete it and "
                     "run again to re-download it, or replace it with an intact copy.")
    lines.append(f"Expected layout (ROOT = {root}):\n" + layout)
    if note:
        lines.append(note)
    lines.append(f"Then run: qgvae prepare-data {name} --root {root}")
    return DataError("\n".join(lines))


def _check_counts(name: str, what: str, got: int, want: int, source: Path) -> None:
    if got != want:
        raise DataError(
            f"dataset {name!r}: {what} in {source} has {got} images, expected {want} "
            f"(counts are fixed in qgvae.data.DATASETS[{name!r}].splits; "
            f"SPLIT_COUNT_OVERRIDES={SPLIT_COUNT_OVERRIDES.get(name)}). The file is not the official "
            f"one, or is incomplete: replace it and run `qgvae prepare-data {name}` again.")


def _carve(n_total: int, n_val: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices: val = the first n_val entries of a seeded permutation."""
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n_total)
    val = np.sort(perm[:n_val])
    train = np.sort(perm[n_val:])
    return train, val


# --------------------------------------------------------------------------------------------
# cache writer
# --------------------------------------------------------------------------------------------

class _CacheWriter:
    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.json"
        if manifest.exists():  # invalidate first: the manifest marks a complete cache
            manifest.unlink()
        self.files: dict[str, dict[str, Any]] = {}
        self.extra_files: dict[str, dict[str, Any]] = {}

    def _record(self, split: str, path: Path) -> None:
        shape, dtype, _, _ = _npy_header(path)
        self.files[split] = {"file": path.name, "count": shape[0], "shape": list(shape),
                             "dtype": str(dtype), "sha256": _hash_file(path),
                             "bytes": path.stat().st_size}

    def write(self, split: str, array: np.ndarray) -> None:
        if array.dtype != np.uint8 or array.ndim != 4:
            raise AssertionError(f"{split}: expected uint8 [N,C,H,W], got {array.dtype} {array.shape}")
        path = self.folder / f"{split}.npy"
        _write_npy(path, array)
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
        _write_npy(path, array.astype(np.int64))
        self.extra_files[filename] = {"sha256": _hash_file(path), "count": int(array.shape[0])}

    def finish(self, root: Path, counts: dict[str, int], sources: list[_Source],
               extra: dict[str, Any]) -> dict[str, Any]:
        info = DATASETS[self.name]
        manifest = {
            "format_version": FORMAT_VERSION,
            "dataset": self.name,
            "description": info.description,
            "pipeline": _PIPELINE[self.name],
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


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------

_MNIST_LAYOUT = """  ROOT/MNIST/raw/train-images-idx3-ubyte.gz
  ROOT/MNIST/raw/train-labels-idx1-ubyte.gz
  ROOT/MNIST/raw/t10k-images-idx3-ubyte.gz
  ROOT/MNIST/raw/t10k-labels-idx1-ubyte.gz
  (torchvision's layout; the uncompressed copies beside them are (re)created from the .gz files)"""


def _mnist_sources(root: Path) -> list[_Source]:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    return [_Source(raw / fname, md5, MNIST.mirrors[0] + fname,
                    f"or any mirror of {fname} ({', '.join(MNIST.mirrors)}); put it at {raw / fname}")
            for fname, md5 in MNIST.resources]


def _download(src: _Source, urls: list[str], name: str, root: Path, layout: str) -> None:
    """Fetch a missing file through torchvision (which checks the MD5 after downloading)."""
    from torchvision.datasets import utils as tvu

    errors = []
    for url in urls:
        try:
            tvu.download_url(url, str(src.path.parent), src.path.name, src.md5)
            return
        except Exception as exc:  # URLError, HTTPError, OSError, RuntimeError (bad MD5), ...
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            if src.path.exists() and src.md5 and _md5(src.path) != src.md5:
                src.path.unlink()  # torchvision leaves a failed download behind
    raise _source_error(name, root, [(src, "missing, and the download failed (" + "; ".join(errors)
                                      + ")")], layout,
                        note="No internet here? Download the file elsewhere, place it as shown and "
                             "run with --no-download.")


def _ensure_gunzipped(gz: Path, out: Path) -> bool:
    """Make ``out`` the exact decompression of ``gz`` (verified .gz); True if (re)written."""
    if out.is_file():
        same = True
        with gzip.open(gz, "rb") as a, open(out, "rb") as b:
            while same:
                x, y = a.read(1 << 22), b.read(1 << 22)
                same = x == y
                if not x:
                    break
        if same:
            return False
    with atomic_path(out) as tmp:
        with gzip.open(gz, "rb") as a, open(tmp, "wb") as b:
            shutil.copyfileobj(a, b, 1 << 22)
    return True


def _check_mnist(root: Path, download: bool) -> list[_Source]:
    from torchvision.datasets import MNIST

    sources = _mnist_sources(root)
    bad = [(s, p) for s in sources if (p := s.problem())]
    corrupt = [(s, p) for s, p in bad if p != "missing"]
    if corrupt or (bad and not download):
        raise _source_error("mnist", root, bad, _MNIST_LAYOUT)
    for src, _ in bad:
        fname = src.path.name
        _download(src, [m + fname for m in MNIST.mirrors], "mnist", root, _MNIST_LAYOUT)
    bad = [(s, p) for s in sources if (p := s.problem())]
    if bad:
        raise _source_error("mnist", root, bad, _MNIST_LAYOUT)
    return sources


def _resize_stack(images: np.ndarray, size: int) -> np.ndarray:
    """[N, H, W] or [N, H, W, 3] uint8 -> [N, C, size, size] uint8 with PIL bilinear."""
    from PIL import Image

    n = images.shape[0]
    c = 1 if images.ndim == 3 else images.shape[3]
    out = np.empty((n, size, size) if c == 1 else (n, size, size, c), dtype=np.uint8)
    for i in range(n):
        out[i] = np.asarray(Image.fromarray(images[i]).resize((size, size), Image.Resampling.BILINEAR))
    return out[:, None] if c == 1 else out.transpose(0, 3, 1, 2)


def _build_mnist(root: Path, sources: list[_Source], writer: _CacheWriter, counts: dict[str, int],
                 workers: int | None) -> dict[str, Any]:
    from torchvision.datasets.mnist import read_image_file

    size = DATASETS["mnist"].size
    images = {}
    for src in sources:
        if "images" in src.path.name:
            raw = src.path.with_suffix("")  # strip .gz
            _ensure_gunzipped(src.path, raw)
            try:
                images[src.path.name.split("-")[0]] = read_image_file(str(raw)).numpy()
            except Exception as exc:
                raise DataError(f"dataset 'mnist': cannot parse {raw} as an idx3 image file ({exc}); "
                                f"delete it and {src.path} and run again") from exc
    train_full, test = images["train"], images["t10k"]
    _check_counts("mnist", "the official train split", train_full.shape[0],
                  counts["train"] + counts["val"], sources[0].path)
    _check_counts("mnist", "the official test split", test.shape[0], counts["test"], sources[2].path)
    train_idx, val_idx = _carve(train_full.shape[0], counts["val"])
    train_full = _resize_stack(train_full, size)
    writer.write("train", train_full[train_idx])
    writer.write("val", train_full[val_idx])
    del train_full
    writer.write("test", _resize_stack(test, size))
    writer.write_indices(val_idx)
    return {"split_rule": "val = sorted first n_val entries of numpy PCG64(seed 0).permutation of the "
                          "official train split; train = the rest, in file order",
            "preprocessing": "PIL Image.resize((32, 32), BILINEAR) of each 28x28 image"}


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------

_CIFAR_LAYOUT = """  ROOT/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
  or ROOT/cifar-10-python.tar.gz (extracted into the folder above)"""


def _cifar_sources(root: Path) -> tuple[list[_Source], _Source]:
    from torchvision.datasets import CIFAR10 as C

    folder = root / C.base_folder
    how = f"extracted from {C.filename} (downloaded automatically, or place it at {root / C.filename})"
    files = [_Source(folder / f, md5, None, how) for f, md5 in C.train_list + C.test_list]
    files.append(_Source(folder / C.meta["filename"], C.meta["md5"], None, how))
    archive = _Source(root / C.filename, C.tgz_md5, C.url, f"place it at {root / C.filename}")
    return files, archive


def _extract(archive: Path, to: Path) -> None:
    from torchvision.datasets.utils import extract_archive

    extract_archive(str(archive), str(to))


def _check_cifar10(root: Path, download: bool) -> list[_Source]:
    files, archive = _cifar_sources(root)
    bad = [(s, p) for s in files if (p := s.problem())]
    if not bad:
        return files
    arch_problem = archive.problem()
    if arch_problem == "missing" and download:
        _download(archive, [archive.url], "cifar10", root, _CIFAR_LAYOUT)
        arch_problem = archive.problem()
    if arch_problem is not None:
        raise _source_error("cifar10", root, bad + [(archive, arch_problem)], _CIFAR_LAYOUT,
                            note="The extracted batches are needed, or the archive to extract them from.")
    _extract(archive.path, root)
    bad = [(s, p) for s in files if (p := s.problem())]
    if bad:
        raise _source_error("cifar10", root, bad, _CIFAR_LAYOUT,
                            note=f"{archive.path} passed its MD5 check but did not contain these files.")
    return files + [archive]


def _build_cifar10(root: Path, sources: list[_Source], writer: _CacheWriter, counts: dict[str, int],
                   workers: int | None) -> dict[str, Any]:
    from torchvision.datasets import CIFAR10

    tr = CIFAR10(str(root), train=True, download=False).data  # [N, 32, 32, 3]
    te = CIFAR10(str(root), train=False, download=False).data
    folder = root / CIFAR10.base_folder
    _check_counts("cifar10", "the official train split (data_batch_1..5)", tr.shape[0],
                  counts["train"] + counts["val"], folder)
    _check_counts("cifar10", "the official test split", te.shape[0], counts["test"], folder / "test_batch")
    train_idx, val_idx = _carve(tr.shape[0], counts["val"])
    tr = np.ascontiguousarray(tr.transpose(0, 3, 1, 2))
    writer.write("train", tr[train_idx])
    writer.write("val", tr[val_idx])
    writer.write("test", np.ascontiguousarray(te.transpose(0, 3, 1, 2)))
    writer.write_indices(val_idx)
    return {"split_rule": "val = sorted first n_val entries of numpy PCG64(seed 0).permutation of the "
                          "50,000 official train images (data_batch_1..5 in order); train = the rest",
            "preprocessing": "none (HWC -> CHW)"}


# --------------------------------------------------------------------------------------------
# SVHN
# --------------------------------------------------------------------------------------------

_SVHN_LAYOUT = """  ROOT/svhn/train_32x32.mat   (73,257 images)
  ROOT/svhn/test_32x32.mat    (26,032 images)"""


def _svhn_sources(root: Path) -> list[_Source]:
    from torchvision.datasets import SVHN

    out = []
    for split in ("train", "test"):
        url, fname, md5 = SVHN.split_list[split]
        out.append(_Source(root / "svhn" / fname, md5, url, f"place it at {root / 'svhn' / fname}"))
    return out


def _check_svhn(root: Path, download: bool) -> list[_Source]:
    sources = _svhn_sources(root)
    bad = [(s, p) for s in sources if (p := s.problem())]
    corrupt = [(s, p) for s, p in bad if p != "missing"]
    if corrupt or (bad and not download):
        raise _source_error("svhn", root, bad, _SVHN_LAYOUT)
    for src, _ in bad:
        _download(src, [src.url], "svhn", root, _SVHN_LAYOUT)
    return sources


def _build_svhn(root: Path, sources: list[_Source], writer: _CacheWriter, counts: dict[str, int],
                workers: int | None) -> dict[str, Any]:
    from torchvision.datasets import SVHN

    def load(split: str, src: _Source) -> np.ndarray:
        try:
            return SVHN(str(root / "svhn"), split=split, download=False).data  # [N, 3, 32, 32]
        except Exception as exc:
            raise DataError(f"dataset 'svhn': cannot read {src.path} ({type(exc).__name__}: {exc}); "
                            f"expected a MATLAB file with X [32,32,3,N] uint8; replace it "
                            f"({src.url})") from exc

    tr = load("train", sources[0])
    _check_counts("svhn", "train_32x32.mat", tr.shape[0], counts["train"] + counts["val"], sources[0].path)
    train_idx, val_idx = _carve(tr.shape[0], counts["val"])
    writer.write("train", tr[train_idx])
    writer.write("val", tr[val_idx])
    del tr
    te = load("test", sources[1])
    _check_counts("svhn", "test_32x32.mat", te.shape[0], counts["test"], sources[1].path)
    writer.write("test", np.ascontiguousarray(te))
    writer.write_indices(val_idx)
    return {"split_rule": "val = sorted first n_val entries of numpy PCG64(seed 0).permutation of "
                          "train_32x32.mat; train = the rest; test = test_32x32.mat",
            "preprocessing": "none (torchvision's [N, 3, H, W] layout)"}


# --------------------------------------------------------------------------------------------
# CelebA 64
# --------------------------------------------------------------------------------------------

_CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
_CELEBA_LAYOUT = f"""  ROOT/celeba/img_align_celeba/000001.jpg ... 202599.jpg   (178x218 JPEGs, "Align&Cropped Images",
                                                          from img_align_celeba.zip)
  ROOT/celeba/list_eval_partition.txt                    ("Eval" folder)
  ROOT/celeba/list_attr_celeba.txt                       ("Anno" folder)
  ROOT/celeba/identity_CelebA.txt                        ("Anno" folder)
  ROOT/celeba/list_bbox_celeba.txt                       ("Anno" folder)
  ROOT/celeba/list_landmarks_align_celeba.txt            ("Anno" folder)
  (ROOT/celeba/img_align_celeba.zip may stay beside them; it is extracted when the image folder
  is missing.) torchvision downloads these from Google Drive (needs the `gdown` package), which
  often fails even with internet access: get them manually from
  {_CELEBA_PAGE}
  (Google Drive or Baidu links), or from a mirror with identical files; torchvision checks the
  MD5 of each .txt file."""


def _celeba_sources(root: Path) -> tuple[list[_Source], _Source]:
    from torchvision.datasets import CelebA

    folder = root / CelebA.base_folder
    lists, archive = [], None
    for file_id, md5, fname in CelebA.file_list:
        src = _Source(folder / fname, md5, f"https://drive.google.com/uc?id={file_id}",
                      f"manual placement: {folder / fname} (see layout below)")
        if fname.endswith(".zip"):
            archive = src
        else:
            lists.append(src)
    assert archive is not None
    return lists, archive


def _read_partition(path: Path) -> list[tuple[str, int]]:
    rows = []
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if parts:
                rows.append((parts[0], int(parts[1])))
    return rows


def _check_celeba64(root: Path, download: bool) -> list[_Source]:
    from torchvision.datasets import CelebA

    lists, archive = _celeba_sources(root)
    img_dir = root / CelebA.base_folder / "img_align_celeba"
    img_src = _Source(img_dir, None, archive.url, f"extract {archive.path.name} into {img_dir.parent}",
                      expect="a folder of 202,599 aligned 178x218 JPEGs, from img_align_celeba.zip "
                             f"(MD5 {archive.md5})")

    def problems() -> list[tuple[_Source, str]]:
        out = [(s, p) for s in lists if (p := s.problem())]
        if not img_dir.is_dir():
            arch = archive.problem()
            if arch is None:  # the intact archive is there: extract it (no network)
                _extract(archive.path, archive.path.parent)
            if not img_dir.is_dir():
                out.append((img_src, "missing (folder of JPEGs)"))
                if arch not in (None, "missing"):
                    out.append((archive, arch))
        return out

    bad = problems()
    if bad and (not download or any(not p.startswith("missing") for _, p in bad)):
        raise _source_error("celeba64", root, bad, _CELEBA_LAYOUT)
    if bad:
        try:  # torchvision's own download (Google Drive via gdown); it checks the MD5s
            CelebA(str(root), split="all", target_type=[], download=True)
        except Exception as exc:
            raise _source_error("celeba64", root, bad, _CELEBA_LAYOUT,
                                note=f"torchvision could not download CelebA ({type(exc).__name__}: "
                                     f"{exc}).") from exc
        bad = problems()
        if bad:
            raise _source_error("celeba64", root, bad, _CELEBA_LAYOUT)
    # every image named in the partition file must be there (torchvision only checks the folder)
    partition = next(s.path for s in lists if s.path.name == "list_eval_partition.txt")
    present = set(os.listdir(img_dir))
    missing = [f for f, _ in _read_partition(partition) if f not in present]
    if missing:
        raise DataError(f"dataset 'celeba64': {len(missing)} image(s) listed in {partition} are missing "
                        f"from {img_dir}, e.g. {', '.join(missing[:5])}. Re-extract img_align_celeba.zip "
                        f"there.\nExpected layout:\n{_CELEBA_LAYOUT}")
    return lists


class _CelebAUint8(torch.utils.data.Dataset):
    def __init__(self, root: Path, split: str, size: int) -> None:
        from torchvision import transforms as T
        from torchvision.datasets import CelebA

        self.ds = CelebA(str(root), split=split, target_type=[], download=False,
                         transform=T.Compose([T.CenterCrop(140),
                                              T.Resize((size, size), T.InterpolationMode.BILINEAR,
                                                       antialias=True),
                                              T.PILToTensor()]))

    def __len__(self) -> int:
        return len(self.ds.filename)

    def __getitem__(self, i: int) -> torch.Tensor:
        x, _ = self.ds[i]
        if x.shape[0] != 3:
            raise DataError(f"{self.ds.filename[i]}: expected an RGB JPEG, got {x.shape[0]} channel(s)")
        return x


def _stack(batch: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(batch)


def _build_celeba64(root: Path, sources: list[_Source], writer: _CacheWriter, counts: dict[str, int],
                    workers: int | None) -> dict[str, Any]:
    size = DATASETS["celeba64"].size
    partition = next(s.path for s in sources if s.path.name == "list_eval_partition.txt")
    for split, tv_split in (("train", "train"), ("val", "valid"), ("test", "test")):
        ds = _CelebAUint8(root, tv_split, size)
        n = len(ds)
        _check_counts("celeba64", f"the {tv_split!r} partition", n, counts[split], partition)
        nw = workers if workers is not None else (min(4, os.cpu_count() or 1) if n > 2000 else 0)
        loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=False, num_workers=nw,
                                             collate_fn=_stack)
        with writer.memmap(split, (n, 3, size, size)) as mm:
            pos = 0
            for chunk in loader:  # uint8 chunks; nothing is ever held as float
                mm[pos:pos + chunk.shape[0]] = chunk.numpy()
                pos += chunk.shape[0]
            assert pos == n
    img_dir = root / "celeba" / "img_align_celeba"
    listing = sorted((e.name, e.stat().st_size) for e in os.scandir(img_dir))
    return {"split_rule": "official list_eval_partition.txt (0 train, 1 val, 2 test)",
            "preprocessing": "torchvision CenterCrop(140) then Resize((64, 64), bilinear, antialias=True) "
                             "on the PIL image",
            "images": {"folder": _rel(img_dir, root), "count": len(listing),
                       "listing_sha256": hashlib.sha256(json.dumps(listing).encode()).hexdigest(),
                       "note": "image contents are not hashed (torchvision does not check them either)"}}


# --------------------------------------------------------------------------------------------
# photos (scikit-image's bundled photographs)
# --------------------------------------------------------------------------------------------

# file names inside skimage/data; grayscale ones are replicated to RGB.  The stereo pair
# motorcycle_left/right stays on one side of the split.
PHOTOS_TRAIN = ("astronaut.png", "chelsea.png", "motorcycle_left.png", "motorcycle_right.png",
                "hubble_deep_field.jpg", "ihc.png", "camera.png", "moon.png", "grass.png",
                "brick.png", "cell.png")
PHOTOS_TEST = ("coffee.png", "rocket.jpg", "retina.jpg", "coins.png", "gravel.png")
_PHOTO_VAL_FRACTION = 0.25  # right-hand strip of each training photograph reserved for val
_PHOTO_SIDE = (32, 128)  # crop side range in pixels (log-uniform), before resizing to 32


def _photo_sources() -> list[_Source]:
    import skimage
    import skimage.data
    try:
        from skimage.data._registry import registry
    except ImportError:  # pragma: no cover - older/newer layouts
        registry = {}
    folder = Path(skimage.data.__file__).parent
    how = (f"bundled with scikit-image {skimage.__version__}; reinstall it "
           f"(pip install --force-reinstall scikit-image=={skimage.__version__})")
    return [_Source(folder / f, None, None, how, sha256=registry.get(f"data/{f}"))
            for f in PHOTOS_TRAIN + PHOTOS_TEST]


def _check_photos(root: Path, download: bool) -> list[_Source]:
    sources = _photo_sources()
    bad = [(s, p) for s in sources if (p := s.problem())]
    if bad:
        raise _source_error("photos", root, bad, "  files inside the installed skimage/data package folder",
                            note="These photographs ship inside the scikit-image wheel; nothing is "
                                 "downloaded.")
    return sources


def _load_photo(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _photo_crops(photos: list[np.ndarray], regions: list[tuple[int, int, int, int]], n: int,
                 seed: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """n crops, photo i % len(photos) for crop i, inside region (x0, y0, x1, y1) of that photo."""
    from PIL import Image

    size = DATASETS["photos"].size
    rng = np.random.Generator(np.random.PCG64(seed))
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    boxes = []
    for i in range(n):
        p = i % len(photos)
        x0, y0, x1, y1 = regions[p]
        max_side = min(_PHOTO_SIDE[1], x1 - x0, y1 - y0)
        side = int(round(np.exp(rng.uniform(np.log(_PHOTO_SIDE[0]), np.log(max_side)))))
        x = x0 + int(rng.integers(0, x1 - x0 - side + 1))
        y = y0 + int(rng.integers(0, y1 - y0 - side + 1))
        flip = bool(rng.integers(0, 2))
        crop = Image.fromarray(photos[p][y:y + side, x:x + side])
        crop = crop.resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(crop)
        if flip:
            arr = arr[:, ::-1]
        out[i] = arr.transpose(2, 0, 1)
        boxes.append({"photo": p, "x": x, "y": y, "side": side, "flip": flip})
    return out, boxes


def _build_photos(root: Path, sources: list[_Source], writer: _CacheWriter, counts: dict[str, int],
                  workers: int | None) -> dict[str, Any]:
    ntr = len(PHOTOS_TRAIN)
    imgs = [_load_photo(s.path) for s in sources]
    train_imgs, test_imgs = imgs[:ntr], imgs[ntr:]
    train_regions, val_regions = [], []
    for im in train_imgs:
        h, w = im.shape[:2]
        cut = int(round(w * (1 - _PHOTO_VAL_FRACTION)))
        train_regions.append((0, 0, cut, h))
        val_regions.append((cut, 0, w, h))
    test_regions = [(0, 0, im.shape[1], im.shape[0]) for im in test_imgs]
    # distinct seeds per split, derived from SPLIT_SEED
    tr, _ = _photo_crops(train_imgs, train_regions, counts["train"], SPLIT_SEED * 3 + 1)
    va, _ = _photo_crops(train_imgs, val_regions, counts["val"], SPLIT_SEED * 3 + 2)
    te, _ = _photo_crops(test_imgs, test_regions, counts["test"], SPLIT_SEED * 3 + 3)
    writer.write("train", tr)
    writer.write("val", va)
    writer.write("test", te)
    return {"split_rule": f"test photographs {list(PHOTOS_TEST)}; train/val photographs "
                          f"{list(PHOTOS_TRAIN)} with train crops from the left "
                          f"{1 - _PHOTO_VAL_FRACTION:.0%} and val crops from the right "
                          f"{_PHOTO_VAL_FRACTION:.0%} of each; crop i uses photograph i mod n",
            "preprocessing": f"square crop, side log-uniform in [{_PHOTO_SIDE[0]}, min({_PHOTO_SIDE[1]}, "
                             f"region)] px, PIL bilinear resize to 32, horizontal flip with p=0.5; "
                             f"numpy PCG64 seeds {SPLIT_SEED * 3 + 1}/{SPLIT_SEED * 3 + 2}/"
                             f"{SPLIT_SEED * 3 + 3} for train/val/test",
            "photos": {"train_val": list(PHOTOS_TRAIN), "test": list(PHOTOS_TEST)}}


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------

_CHECK: dict[str, Callable[[Path, bool], list[_Source]]] = {
    "mnist": _check_mnist, "cifar10": _check_cifar10, "svhn": _check_svhn,
    "celeba64": _check_celeba64, "photos": _check_photos}
_BUILD = {"mnist": _build_mnist, "cifar10": _build_cifar10, "svhn": _build_svhn,
          "celeba64": _build_celeba64, "photos": _build_photos}


def prepare(name: str, root: str | Path, *, download: bool = True, workers: int | None = None) -> Path:
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
    sources = _CHECK[name](root, download)  # raises DataError before any processing
    writer = _CacheWriter(name, folder)
    extra = _BUILD[name](root, sources, writer, counts, workers)
    writer.finish(root, counts, sources, extra)
    report = verify(name, root)
    if not report["ok"]:
        raise DataError(f"dataset {name!r}: the cache just written to {folder} does not verify: "
                        + "; ".join(report["problems"]))
    return folder


def _read_manifest(name: str, root: Path) -> dict[str, Any]:
    folder = cache_dir(name, root)
    path = folder / "manifest.json"
    hint = f"run `qgvae prepare-data {name} --root {root}`"
    if not path.is_file():
        raise DataError(f"dataset {name!r}: no prepared cache at {folder} ({path} is missing); {hint}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"dataset {name!r}: {path} is unreadable ({exc}); {hint}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise DataError(f"dataset {name!r}: {path} is not a qgvae cache manifest; {hint}")
    return manifest


def _split_problems(name: str, root: Path, manifest: dict[str, Any], split: str,
                    *, hash_data: bool = True) -> list[str]:
    info = DATASETS[name]
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
        shape, dtype, fortran, _ = _npy_header(path)
    except Exception as exc:
        return problems + [f"{path}: not a readable .npy file ({exc})"]
    if list(shape) != want_shape or dtype != np.uint8 or fortran:
        problems.append(f"{path}: holds {dtype} {list(shape)}{' (Fortran order)' if fortran else ''}, "
                        f"expected uint8 {want_shape}")
    if hash_data:
        got = _hash_file(path)
        if got != entry.get("sha256"):
            problems.append(f"{path}: sha256 {got} does not match the manifest's {entry.get('sha256')} "
                            f"(corrupt or modified)")
    return problems


def verify(name: str, root: str | Path) -> dict[str, Any]:
    """Re-check the cache against its manifest and the expected counts/shapes.

    Returns ``{"ok", "dataset", "folder", "problems": [...], "splits": {split: {...}}}``; never
    raises for a bad cache (only for an unknown dataset name).
    """
    dataset_info(name)
    root = Path(root)
    folder = cache_dir(name, root)
    report: dict[str, Any] = {"ok": False, "dataset": name, "folder": str(folder), "problems": [],
                              "splits": {}}
    try:
        manifest = _read_manifest(name, root)
    except DataError as exc:
        report["problems"].append(str(exc))
        return report
    counts = expected_counts(name)
    problems = report["problems"]
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"manifest format_version {manifest.get('format_version')} != {FORMAT_VERSION}")
    if manifest.get("pipeline") != _PIPELINE[name]:
        problems.append(f"cache built by pipeline {manifest.get('pipeline')!r}, current is "
                        f"{_PIPELINE[name]!r}")
    if manifest.get("expected_counts") != counts:
        problems.append(f"cache built for counts {manifest.get('expected_counts')}, expected {counts}")
    for split in SPLITS:
        p = _split_problems(name, root, manifest, split)
        entry = manifest["splits"].get(split, {})
        report["splits"][split] = {"ok": not p, "count": entry.get("count"), "shape": entry.get("shape"),
                                   "sha256": entry.get("sha256"), "problems": p}
        problems.extend(p)
    for fname, entry in (manifest.get("extra_files") or {}).items():
        path = folder / fname
        if not path.is_file() or _hash_file(path) != entry.get("sha256"):
            problems.append(f"{path}: missing or sha256 differs from the manifest")
    report["ok"] = not problems
    report["manifest"] = {k: manifest.get(k) for k in ("description", "expected_counts", "split_seed",
                                                       "counts_overridden", "created", "versions")}
    return report


def load_split(name: str, root: str | Path, split: str) -> torch.Tensor:
    """The cached split as a uint8 CPU tensor [N, C, H, W] (sha256 and shape checked)."""
    dataset_info(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = Path(root)
    manifest = _read_manifest(name, root)
    hint = f"run `qgvae prepare-data {name} --root {root}` to rebuild the cache"
    problems = _split_problems(name, root, manifest, split, hash_data=False)
    if manifest.get("expected_counts") != expected_counts(name):
        problems.append(f"cache built for counts {manifest.get('expected_counts')}, expected "
                        f"{expected_counts(name)}")
    if problems:
        raise DataError(f"dataset {name!r}, split {split!r}: " + "; ".join(problems) + f"; {hint}")
    path = cache_dir(name, root) / f"{split}.npy"
    shape, _, _, offset = _npy_header(path)
    arr = np.empty(shape, dtype=np.uint8)
    flat = memoryview(arr.reshape(-1)).cast("B")
    h = hashlib.sha256()
    with open(path, "rb") as fh:  # one pass: hash while reading into the array
        h.update(fh.read(offset))
        pos, total = 0, flat.nbytes
        while pos < total:
            got = fh.readinto(flat[pos:pos + (1 << 24)])
            if not got:
                raise DataError(f"{path}: truncated ({pos + offset} of {total + offset} bytes); {hint}")
            h.update(flat[pos:pos + got])
            pos += got
        rest = fh.read()
        h.update(rest)
    want = manifest["splits"][split].get("sha256")
    if h.hexdigest() != want:
        raise DataError(f"{path}: sha256 {h.hexdigest()} does not match {want} in the manifest "
                        f"(corrupt or modified file); {hint}")
    return torch.from_numpy(arr)


# --------------------------------------------------------------------------------------------
# device-resident loader
# --------------------------------------------------------------------------------------------

class DeviceLoader:
    """Batches from a uint8 tensor that already lives on the training device.

    Each epoch's order is ``torch.randperm(N)`` drawn on the images' device from a
    ``torch.Generator`` seeded with a 63-bit value derived from ``(seed, epoch)`` by
    ``numpy.random.SeedSequence([seed, epoch])``; batches are gathered with ``index_select`` and
    converted to float32 in [0, 1] on the device, so no host->device copy and no PIL happen per
    step.  (torch's CPU and CUDA generators give different permutations for the same seed: a run
    is reproducible on the same device type.)  ``shuffle=False`` keeps the stored order.

    ``epoch`` / ``batch_index`` give the position of the *next* batch; they advance as batches
    are yielded (after the last batch of an epoch: ``epoch + 1``, ``0``).  ``state_dict()`` saved
    at any point and loaded into a fresh loader over the same images reproduces exactly the
    batches an uninterrupted run would have produced next.  Iterating again after a ``break``
    continues the current epoch.  Do not iterate two iterators of one loader at the same time.
    """

    def __init__(self, images_uint8: torch.Tensor, *, batch_size: int, seed: int, shuffle: bool = True,
                 drop_last: bool = True) -> None:
        if not isinstance(images_uint8, torch.Tensor) or images_uint8.dtype != torch.uint8 \
                or images_uint8.dim() != 4:
            raise TypeError("DeviceLoader needs a uint8 tensor [N, C, H, W], got "
                            f"{getattr(images_uint8, 'dtype', type(images_uint8))} "
                            f"{tuple(getattr(images_uint8, 'shape', ()))}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.images = images_uint8
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.batch_index = 0
        self._order_cache: tuple[int, torch.Tensor] | None = None
        if len(self) == 0:
            raise ValueError(f"{self.num_images} images give no full batch of {self.batch_size} "
                             f"(drop_last=True)")

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        n, b = self.num_images, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch_seed(self, epoch: int) -> int:
        state = np.random.SeedSequence([self.seed, int(epoch)]).generate_state(2, np.uint32)
        return ((int(state[0]) << 32) | int(state[1])) & ((1 << 63) - 1)

    def order(self, epoch: int) -> torch.Tensor:
        """The image order of ``epoch`` (a LongTensor on the device)."""
        if self._order_cache is not None and self._order_cache[0] == epoch:
            return self._order_cache[1]
        if self.shuffle:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(self.epoch_seed(epoch))
            perm = torch.randperm(self.num_images, generator=gen, device=self.device)
        else:
            perm = torch.arange(self.num_images, device=self.device)
        self._order_cache = (epoch, perm)
        return perm

    def __iter__(self) -> Iterator[torch.Tensor]:
        nb = len(self)
        if self.batch_index >= nb:  # a position at the very end of an epoch
            self.epoch, self.batch_index = self.epoch + 1, 0
        epoch, start = self.epoch, self.batch_index
        order = self.order(epoch)
        bs = self.batch_size
        for b in range(start, nb):
            idx = order[b * bs:(b + 1) * bs]
            batch = self.images.index_select(0, idx).to(torch.float32).div_(255.0)
            if b + 1 == nb:
                self.epoch, self.batch_index = epoch + 1, 0
            else:
                self.epoch, self.batch_index = epoch, b + 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch_index": self.batch_index, "seed": self.seed,
                "batch_size": self.batch_size, "num_images": self.num_images, "shuffle": self.shuffle,
                "drop_last": self.drop_last, "device_type": self.device.type}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "batch_size", "num_images", "shuffle", "drop_last"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"DeviceLoader state has {key}={state[key]!r} but this loader has "
                                 f"{getattr(self, key)!r}: resuming would not reproduce the batches")
        if state.get("device_type", self.device.type) != self.device.type:
            warnings.warn(f"DeviceLoader state saved on {state['device_type']!r}, resumed on "
                          f"{self.device.type!r}: permutations differ between device types",
                          stacklevel=2)
        epoch, index = int(state["epoch"]), int(state["batch_index"])
        if epoch < 0 or not 0 <= index <= len(self):
            raise ValueError(f"invalid DeviceLoader position epoch={epoch}, batch_index={index}")
        self.epoch, self.batch_index = epoch, index


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

_LAYOUTS = {"mnist": _MNIST_LAYOUT, "cifar10": _CIFAR_LAYOUT, "svhn": _SVHN_LAYOUT,
            "celeba64": _CELEBA_LAYOUT,
            "photos": "  nothing to place: scikit-image's bundled photographs are used"}


def _datasets_epilog() -> str:
    parts = ["datasets (source files under ROOT, as torchvision expects them):"]
    for name, info in DATASETS.items():
        counts = "/".join(f"{info.splits[s]:,}" for s in SPLITS)
        parts.append(f"\n{name}  ({info.channels}x{info.size}x{info.size}, train/val/test {counts})\n"
                     f"{_LAYOUTS[name]}")
    parts.append(f"\nThe cache goes to ROOT/{CACHE_DIRNAME}/NAME/{{train,val,test}}.npy + manifest.json.")
    return "\n".join(parts)


def _print_summary(name: str, folder: Path, report: dict[str, Any], seconds: float | None = None) -> None:
    info = DATASETS[name]
    print(f"{name}: {folder}" + (f"  ({seconds:.1f} s)" if seconds is not None else ""))
    print(f"  {info.description}")
    for split in SPLITS:
        s = report["splits"].get(split, {})
        sha = (s.get("sha256") or "")[:16]
        print(f"  {split:5s} {s.get('count')!s:>7} images  shape {s.get('shape')}  sha256 {sha}  "
              f"{'ok' if s.get('ok') else 'BAD'}")


def _cmd_prepare(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    try:
        folder = prepare(args.name, args.root, download=not args.no_download, workers=args.workers)
    except DataError as exc:  # same exit status as qgvae.cli.main gives a DataError
        print(f"qgvae prepare-data: error: {exc}", file=sys.stderr)
        return 2
    report = verify(args.name, args.root)
    _print_summary(args.name, folder, report, time.perf_counter() - t0)
    return 0 if report["ok"] else 1


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        report = verify(args.name, args.root)
    except DataError as exc:
        print(f"qgvae verify-data: error: {exc}", file=sys.stderr)
        return 2
    if report["splits"]:
        _print_summary(args.name, Path(report["folder"]), report)
    for p in report["problems"]:
        print(f"problem: {p}", file=sys.stderr)
    print("ok" if report["ok"] else f"FAILED: {len(report['problems'])} problem(s)")
    return 0 if report["ok"] else 1


def register_cli(subparsers: Any) -> None:
    """Add ``prepare-data`` and ``verify-data`` to an argparse subparsers object."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "prepare-data", formatter_class=fmt, epilog=_datasets_epilog(),
        help="check/download a dataset and write its uint8 cache",
        description=textwrap.fill(
            "Check a dataset's source files against torchvision's MD5s (downloading missing ones "
            "through torchvision unless --no-download), then write the uint8 cache "
            "ROOT/qgvae-cache/NAME/{train,val,test}.npy and manifest.json. A valid cache is kept. "
            "Missing or corrupt files are reported with the expected checksum and where to get them. "
            "Exit status: 0 ok, 2 data error.", 92))
    p.add_argument("name", choices=list(DATASETS), metavar="NAME",
                   help=f"dataset: {', '.join(DATASETS)}")
    p.add_argument("--root", default="data", metavar="DIR",
                   help="data root holding the source files; the cache is written below it (default: data)")
    p.add_argument("--no-download", action="store_true",
                   help="never use the network; fail with instructions if a source file is missing")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes for CelebA JPEG decoding (default: up to 4)")
    p.set_defaults(func=_cmd_prepare)

    v = subparsers.add_parser(
        "verify-data", formatter_class=fmt,
        help="re-check a prepared cache (sha256, counts, shapes) against its manifest",
        description=textwrap.fill(
            "Re-hash ROOT/qgvae-cache/NAME/*.npy and compare them, their shapes and counts with "
            "manifest.json and the dataset's expected split sizes. Exit status: 0 ok, 1 the cache "
            "does not verify, 2 error.", 92))
    v.add_argument("name", choices=list(DATASETS), metavar="NAME", help=f"dataset: {', '.join(DATASETS)}")
    v.add_argument("--root", default="data", metavar="DIR", help="data root (default: data)")
    v.set_defaults(func=_cmd_verify)
