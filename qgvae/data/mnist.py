"""MNIST: the four idx files of torchvision's MNIST, resized to 32x32 (VQ-WAE's protocol)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from ..io import atomic_path
from .recipe import (
    DatasetInfo,
    Recipe,
    Source,
    carve,
    check_counts,
    fetch_source,
    resize_stack,
    source_error,
)

if TYPE_CHECKING:
    from .writer import CacheWriter

INFO = DatasetInfo(
    "mnist",
    1,
    32,
    {"train": 50_000, "val": 10_000, "test": 10_000},
    "MNIST (torchvision, the four MD5-checked idx files); train/val = 50,000/10,000 carved from "
    "the official 60,000-image train split by a seeded permutation (numpy PCG64, seed 0), test = "
    "the official 10,000; 28x28 resized to 32x32 with PIL bilinear (VQ-WAE's protocol, giving the "
    "baselines' 8x8 latent; the QG-VAE authors' code keeps 28x28); 1 channel, uint8.",
    display_name="MNIST",
)

_MNIST_LAYOUT = """  ROOT/MNIST/raw/train-images-idx3-ubyte.gz
  ROOT/MNIST/raw/train-labels-idx1-ubyte.gz
  ROOT/MNIST/raw/t10k-images-idx3-ubyte.gz
  ROOT/MNIST/raw/t10k-labels-idx1-ubyte.gz
  (torchvision's layout; the uncompressed copies beside them are (re)created from the .gz files)"""


def _mnist_sources(root: Path) -> list[Source]:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    return [
        Source(
            raw / fname,
            md5,
            MNIST.mirrors[0] + fname,
            f"or any mirror of {fname} ({', '.join(MNIST.mirrors)}); put it at {raw / fname}",
        )
        for fname, md5 in MNIST.resources
    ]


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
    with atomic_path(out) as tmp, gzip.open(gz, "rb") as a, open(tmp, "wb") as b:
        shutil.copyfileobj(a, b, 1 << 22)
    return True


def _check_mnist(root: Path, download: bool) -> list[Source]:
    from torchvision.datasets import MNIST

    sources = _mnist_sources(root)
    bad = [(s, p) for s in sources if (p := s.problem())]
    corrupt = [(s, p) for s, p in bad if p != "missing"]
    if corrupt or (bad and not download):
        raise source_error("mnist", root, bad, _MNIST_LAYOUT)
    for src, _ in bad:
        fname = src.path.name
        fetch_source(src, [m + fname for m in MNIST.mirrors], "mnist", root, _MNIST_LAYOUT)
    bad = [(s, p) for s in sources if (p := s.problem())]
    if bad:
        raise source_error("mnist", root, bad, _MNIST_LAYOUT)
    return sources


def _build_mnist(
    root: Path,
    sources: list[Source],
    writer: CacheWriter,
    counts: dict[str, int],
    workers: int | None,
) -> dict[str, Any]:
    from torchvision.datasets.mnist import read_image_file

    size = INFO.size
    images = {}
    for src in sources:
        if "images" in src.path.name:
            raw = src.path.with_suffix("")  # strip .gz
            _ensure_gunzipped(src.path, raw)
            try:
                images[src.path.name.split("-")[0]] = read_image_file(str(raw)).numpy()
            except Exception as exc:
                raise DataError(
                    f"dataset 'mnist': cannot parse {raw} as an idx3 image file ({exc}); "
                    f"delete it and {src.path} and run again"
                ) from exc
    train_full, test = images["train"], images["t10k"]
    check_counts(
        "mnist",
        "the official train split",
        train_full.shape[0],
        counts["train"] + counts["val"],
        sources[0].path,
    )
    check_counts("mnist", "the official test split", test.shape[0], counts["test"], sources[2].path)
    train_idx, val_idx = carve(train_full.shape[0], counts["val"])
    train_full = resize_stack(train_full, size)
    writer.write("train", train_full[train_idx])
    writer.write("val", train_full[val_idx])
    del train_full
    writer.write("test", resize_stack(test, size))
    writer.write_indices(val_idx)
    return {
        "split_rule": "val = sorted first n_val entries of numpy PCG64(seed 0).permutation of the "
        "official train split; train = the rest, in file order",
        "preprocessing": "PIL Image.resize((32, 32), BILINEAR) of each 28x28 image",
    }


RECIPE = Recipe(
    INFO,
    pipeline="mnist-v1: torchvision idx parse, PIL bilinear 28->32, numpy PCG64 seed-0 val carve",
    layout=_MNIST_LAYOUT,
    check=_check_mnist,
    build=_build_mnist,
)
