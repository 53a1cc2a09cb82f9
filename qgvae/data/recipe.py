"""What a dataset recipe is, and the helpers the recipes share.

A recipe (one module per dataset: ``mnist``, ``cifar10``, ``svhn``, ``celeba64``, ``photos``)
is a :class:`Recipe`: the dataset's :class:`DatasetInfo`, a pipeline tag that changes whenever
its preprocessing does, the source layout shown in messages, ``check(root, download)`` that
verifies (or downloads) the source files before any work, and ``build(root, sources, writer,
counts, workers)`` that writes the uint8 splits through a :class:`qgvae.data.writer.CacheWriter`.
A new dataset is one new module and one line in :mod:`qgvae.data.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import atomic_path, hash_file

SPLITS = ("train", "val", "test")
SPLIT_SEED = 0  # seed of the permutation that carves validation out of the official train split

# Test-only hook: dataset name -> complete {"train", "val", "test"} counts used instead of
# DATASETS[name].splits.  Empty in production.  Caches record the counts they were built for.
SPLIT_COUNT_OVERRIDES: dict[str, dict[str, int]] = {}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    size: int  # square images, size x size
    splits: dict[str, int]  # expected counts {"train": ..., "val": ..., "test": ...}
    description: str  # one line for reports: source, preprocessing, split rule
    display_name: str = ""  # in tables and figures (default: the name)


@dataclass(frozen=True)
class Recipe:
    """How one dataset is checked and turned into the uint8 cache."""

    info: DatasetInfo
    pipeline: str  # bump when the preprocessing changes; a cache with another value is rebuilt
    layout: str  # where the source files go under the data root (messages and --help)
    check: Callable[[Path, bool], list[Source]]  # (root, download) -> verified sources
    build: Callable[..., dict[str, Any]]  # (root, sources, writer, counts, workers) -> extra


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def md5_of(path: Path) -> str:
    return hash_file(path, "md5")


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
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


def write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass
class Source:
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
            got = md5_of(self.path)
            if got != self.md5:
                return f"corrupt (MD5 {got}, size {self.path.stat().st_size} bytes)"
        if self.sha256 is not None:
            got = hash_file(self.path)
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
        return {
            "path": rel(self.path, root),
            "bytes": self.path.stat().st_size,
            "md5": md5_of(self.path),
            "expected_md5": self.md5,
            **({"expected_sha256": self.sha256} if self.sha256 else {}),
        }


def source_error(
    name: str, root: Path, bad: list[tuple[Source, str]], layout: str, note: str = ""
) -> DataError:
    lines = [f"dataset {name!r}: {len(bad)} source file(s) missing or corrupt under {root}:"]
    for src, why in bad:
        lines.append(f"  - {src.path}: {why}; expected {src.expectation()}")
        if src.url:
            lines.append(f"      download: {src.url}")
        if src.how:
            lines.append(f"      {src.how}")
    if any(not why.startswith("missing") for _, why in bad):
        lines.append(
            "A corrupt (e.g. truncated) file is never overwritten automatically: delete it and "
            "run again to re-download it, or replace it with an intact copy."
        )
    lines.append(f"Expected layout (ROOT = {root}):\n" + layout)
    if note:
        lines.append(note)
    lines.append(f"Then run: qgvae prepare-data {name} --root {root}")
    return DataError("\n".join(lines))


def check_counts(name: str, what: str, got: int, want: int, source: Path) -> None:
    if got != want:
        raise DataError(
            f"dataset {name!r}: {what} in {source} has {got} images, expected {want} "
            f"(counts are fixed in qgvae.data.DATASETS[{name!r}].splits; "
            f"SPLIT_COUNT_OVERRIDES={SPLIT_COUNT_OVERRIDES.get(name)}). The file is not the "
            f"official one, or is incomplete: replace it and run `qgvae prepare-data {name}` again."
        )


def carve(n_total: int, n_val: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices: val = the first n_val entries of a seeded permutation."""
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n_total)
    val = np.sort(perm[:n_val])
    train = np.sort(perm[n_val:])
    return train, val


def fetch_source(src: Source, urls: list[str], name: str, root: Path, layout: str) -> None:
    """Fetch a missing file through torchvision (which checks the MD5 after downloading)."""
    from torchvision.datasets import utils as tvu

    errors = []
    for url in urls:
        try:
            tvu.download_url(url, str(src.path.parent), src.path.name, src.md5)
            return
        except Exception as exc:  # URLError, HTTPError, OSError, RuntimeError (bad MD5), ...
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            if src.path.exists() and src.md5 and md5_of(src.path) != src.md5:
                src.path.unlink()  # torchvision leaves a failed download behind
    raise source_error(
        name,
        root,
        [(src, "missing, and the download failed (" + "; ".join(errors) + ")")],
        layout,
        note="No internet here? Download the file elsewhere, place it as shown and "
        "run with --no-download.",
    )


def extract(archive: Path, to: Path) -> None:
    from torchvision.datasets.utils import extract_archive

    extract_archive(str(archive), str(to))


def resize_stack(images: np.ndarray, size: int) -> np.ndarray:
    """[N, H, W] or [N, H, W, 3] uint8 -> [N, C, size, size] uint8 with PIL bilinear."""
    from PIL import Image

    n = images.shape[0]
    c = 1 if images.ndim == 3 else images.shape[3]
    out = np.empty((n, size, size) if c == 1 else (n, size, size, c), dtype=np.uint8)
    for i in range(n):
        out[i] = np.asarray(
            Image.fromarray(images[i]).resize((size, size), Image.Resampling.BILINEAR)
        )
    return out[:, None] if c == 1 else out.transpose(0, 3, 1, 2)
