"""SVHN cropped digits: torchvision's train_32x32.mat / test_32x32.mat (extra unused)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .recipe import DatasetInfo, Recipe, Source, carve, check_counts, fetch_source, source_error

if TYPE_CHECKING:
    from .writer import CacheWriter

INFO = DatasetInfo(
    "svhn",
    3,
    32,
    {"train": 63_257, "val": 10_000, "test": 26_032},
    "SVHN cropped digits (torchvision, MD5-checked train_32x32.mat / test_32x32.mat; extra_32x32 "
    "unused); train/val = 63,257/10,000 carved from train_32x32.mat by a seeded permutation (numpy "
    "PCG64, seed 0), test = all 26,032 images of test_32x32.mat (the authors' loader read the "
    "train file for both; not copied); native 32x32 RGB, uint8.",
    display_name="SVHN",
)

_SVHN_LAYOUT = """  ROOT/svhn/train_32x32.mat   (73,257 images)
  ROOT/svhn/test_32x32.mat    (26,032 images)"""


def _svhn_sources(root: Path) -> list[Source]:
    from torchvision.datasets import SVHN

    out = []
    for split in ("train", "test"):
        url, fname, md5 = SVHN.split_list[split]
        out.append(Source(root / "svhn" / fname, md5, url, f"place it at {root / 'svhn' / fname}"))
    return out


def _check_svhn(root: Path, download: bool) -> list[Source]:
    sources = _svhn_sources(root)
    bad = [(s, p) for s in sources if (p := s.problem())]
    corrupt = [(s, p) for s, p in bad if p != "missing"]
    if corrupt or (bad and not download):
        raise source_error("svhn", root, bad, _SVHN_LAYOUT)
    for src, _ in bad:
        fetch_source(src, [src.url], "svhn", root, _SVHN_LAYOUT)
    return sources


def _build_svhn(
    root: Path,
    sources: list[Source],
    writer: CacheWriter,
    counts: dict[str, int],
    workers: int | None,
) -> dict[str, Any]:
    from torchvision.datasets import SVHN

    def load(split: str, src: Source) -> np.ndarray:
        try:
            return SVHN(str(root / "svhn"), split=split, download=False).data  # [N, 3, 32, 32]
        except Exception as exc:
            raise DataError(
                f"dataset 'svhn': cannot read {src.path} ({type(exc).__name__}: {exc}); "
                f"expected a MATLAB file with X [32,32,3,N] uint8; replace it "
                f"({src.url})"
            ) from exc

    tr = load("train", sources[0])
    check_counts(
        "svhn", "train_32x32.mat", tr.shape[0], counts["train"] + counts["val"], sources[0].path
    )
    train_idx, val_idx = carve(tr.shape[0], counts["val"])
    writer.write("train", tr[train_idx])
    writer.write("val", tr[val_idx])
    del tr
    te = load("test", sources[1])
    check_counts("svhn", "test_32x32.mat", te.shape[0], counts["test"], sources[1].path)
    writer.write("test", np.ascontiguousarray(te))
    writer.write_indices(val_idx)
    return {
        "split_rule": "val = sorted first n_val entries of numpy PCG64(seed 0).permutation of "
        "train_32x32.mat; train = the rest; test = test_32x32.mat",
        "preprocessing": "none (torchvision's [N, 3, H, W] layout)",
    }


RECIPE = Recipe(
    INFO,
    pipeline="svhn-v1: torchvision .mat, numpy PCG64 seed-0 val carve, test from test_32x32.mat",
    layout=_SVHN_LAYOUT,
    check=_check_svhn,
    build=_build_svhn,
)
