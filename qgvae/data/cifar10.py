"""CIFAR-10: torchvision's python batches; validation carved from the official train split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .recipe import (
    DatasetInfo,
    Recipe,
    Source,
    carve,
    check_counts,
    extract,
    fetch_source,
    source_error,
)

if TYPE_CHECKING:
    from .writer import CacheWriter

INFO = DatasetInfo(
    "cifar10",
    3,
    32,
    {"train": 40_000, "val": 10_000, "test": 10_000},
    "CIFAR-10 (torchvision, MD5-checked python batches); train/val = 40,000/10,000 carved from the "
    "official 50,000-image train split by a seeded permutation (numpy PCG64, seed 0), test = the "
    "official 10,000 test_batch; native 32x32 RGB, uint8, no resizing.",
    display_name="CIFAR-10",
)

_CIFAR_LAYOUT = (
    "  ROOT/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta\n"
    "  or ROOT/cifar-10-python.tar.gz (extracted into the folder above)"
)


def _cifar_sources(root: Path) -> tuple[list[Source], Source]:
    from torchvision.datasets import CIFAR10 as C

    folder = root / C.base_folder
    how = (
        f"extracted from {C.filename} (downloaded automatically, or place it at "
        f"{root / C.filename})"
    )
    files = [Source(folder / f, md5, None, how) for f, md5 in C.train_list + C.test_list]
    files.append(Source(folder / C.meta["filename"], C.meta["md5"], None, how))
    archive = Source(root / C.filename, C.tgz_md5, C.url, f"place it at {root / C.filename}")
    return files, archive


def _check_cifar10(root: Path, download: bool) -> list[Source]:
    files, archive = _cifar_sources(root)
    bad = [(s, p) for s in files if (p := s.problem())]
    if not bad:
        return files
    arch_problem = archive.problem()
    if arch_problem == "missing" and download:
        fetch_source(archive, [archive.url], "cifar10", root, _CIFAR_LAYOUT)
        arch_problem = archive.problem()
    if arch_problem is not None:
        raise source_error(
            "cifar10",
            root,
            bad + [(archive, arch_problem)],
            _CIFAR_LAYOUT,
            note="The extracted batches are needed, or the archive to extract them from.",
        )
    extract(archive.path, root)
    bad = [(s, p) for s in files if (p := s.problem())]
    if bad:
        raise source_error(
            "cifar10",
            root,
            bad,
            _CIFAR_LAYOUT,
            note=f"{archive.path} passed its MD5 check but did not contain these files.",
        )
    return files + [archive]


def _build_cifar10(
    root: Path,
    sources: list[Source],
    writer: CacheWriter,
    counts: dict[str, int],
    workers: int | None,
) -> dict[str, Any]:
    from torchvision.datasets import CIFAR10

    tr = CIFAR10(str(root), train=True, download=False).data  # [N, 32, 32, 3]
    te = CIFAR10(str(root), train=False, download=False).data
    folder = root / CIFAR10.base_folder
    check_counts(
        "cifar10",
        "the official train split (data_batch_1..5)",
        tr.shape[0],
        counts["train"] + counts["val"],
        folder,
    )
    check_counts(
        "cifar10", "the official test split", te.shape[0], counts["test"], folder / "test_batch"
    )
    train_idx, val_idx = carve(tr.shape[0], counts["val"])
    tr = np.ascontiguousarray(tr.transpose(0, 3, 1, 2))
    writer.write("train", tr[train_idx])
    writer.write("val", tr[val_idx])
    writer.write("test", np.ascontiguousarray(te.transpose(0, 3, 1, 2)))
    writer.write_indices(val_idx)
    return {
        "split_rule": "val = sorted first n_val entries of numpy PCG64(seed 0).permutation of the "
        "50,000 official train images (data_batch_1..5 in order); train = the rest",
        "preprocessing": "none (HWC -> CHW)",
    }


RECIPE = Recipe(
    INFO,
    pipeline="cifar10-v1: torchvision batches, HWC->CHW, numpy PCG64 seed-0 val carve",
    layout=_CIFAR_LAYOUT,
    check=_check_cifar10,
    build=_build_cifar10,
)
