"""CelebA 64x64: the official aligned JPEGs and partition, CenterCrop(140), Resize(64)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from .recipe import (
    DatasetInfo,
    Recipe,
    Source,
    check_counts,
    extract,
    rel,
    source_error,
)

if TYPE_CHECKING:
    from .writer import CacheWriter

INFO = DatasetInfo(
    "celeba64",
    3,
    64,
    {"train": 162_770, "val": 19_867, "test": 19_962},
    "CelebA aligned & cropped JPEGs (torchvision, MD5-checked list files); official partition of "
    "list_eval_partition.txt (162,770/19,867/19,962); 178x218 center-cropped to 140x140 then "
    "resized to 64x64 (PIL bilinear, antialiased), RGB, uint8.",
    display_name="CelebA 64x64",
)

_CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
_CELEBA_LAYOUT = f"""\
  ROOT/celeba/img_align_celeba/000001.jpg ... 202599.jpg  (178x218 JPEGs, from the
                                     "Align&Cropped Images" img_align_celeba.zip)
  ROOT/celeba/list_eval_partition.txt           ("Eval" folder)
  ROOT/celeba/list_attr_celeba.txt              ("Anno" folder)
  ROOT/celeba/identity_CelebA.txt               ("Anno" folder)
  ROOT/celeba/list_bbox_celeba.txt              ("Anno" folder)
  ROOT/celeba/list_landmarks_align_celeba.txt   ("Anno" folder)
  (ROOT/celeba/img_align_celeba.zip may stay beside them; it is extracted when the image
  folder is missing.) torchvision downloads these from Google Drive (needs the `gdown`
  package), which often fails even with internet access: get them manually from
  {_CELEBA_PAGE}
  (Google Drive or Baidu links), or from a mirror with identical files; torchvision checks
  the MD5 of each .txt file."""


def _celeba_sources(root: Path) -> tuple[list[Source], Source]:
    from torchvision.datasets import CelebA

    folder = root / CelebA.base_folder
    lists, archive = [], None
    for file_id, md5, fname in CelebA.file_list:
        src = Source(
            folder / fname,
            md5,
            f"https://drive.google.com/uc?id={file_id}",
            f"manual placement: {folder / fname} (see layout below)",
        )
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


def _check_celeba64(root: Path, download: bool) -> list[Source]:
    from torchvision.datasets import CelebA

    lists, archive = _celeba_sources(root)
    img_dir = root / CelebA.base_folder / "img_align_celeba"
    img_src = Source(
        img_dir,
        None,
        archive.url,
        f"extract {archive.path.name} into {img_dir.parent}",
        expect="a folder of 202,599 aligned 178x218 JPEGs, from img_align_celeba.zip "
        f"(MD5 {archive.md5})",
    )

    def problems() -> list[tuple[Source, str]]:
        out = [(s, p) for s in lists if (p := s.problem())]
        if not img_dir.is_dir():
            arch = archive.problem()
            if arch is None:  # the intact archive is there: extract it (no network)
                extract(archive.path, archive.path.parent)
            if not img_dir.is_dir():
                out.append((img_src, "missing (folder of JPEGs)"))
                if arch not in (None, "missing"):
                    out.append((archive, arch))
        return out

    bad = problems()
    if bad and (not download or any(not p.startswith("missing") for _, p in bad)):
        raise source_error("celeba64", root, bad, _CELEBA_LAYOUT)
    if bad:
        try:  # torchvision's own download (Google Drive via gdown); it checks the MD5s
            CelebA(str(root), split="all", target_type=[], download=True)
        except Exception as exc:
            raise source_error(
                "celeba64",
                root,
                bad,
                _CELEBA_LAYOUT,
                note=f"torchvision could not download CelebA ({type(exc).__name__}: {exc}).",
            ) from exc
        bad = problems()
        if bad:
            raise source_error("celeba64", root, bad, _CELEBA_LAYOUT)
    # every image named in the partition file must be there (torchvision only checks the folder)
    partition = next(s.path for s in lists if s.path.name == "list_eval_partition.txt")
    present = set(os.listdir(img_dir))
    missing = [f for f, _ in _read_partition(partition) if f not in present]
    if missing:
        raise DataError(
            f"dataset 'celeba64': {len(missing)} image(s) listed in {partition} are missing "
            f"from {img_dir}, e.g. {', '.join(missing[:5])}. Re-extract img_align_celeba.zip "
            f"there.\nExpected layout:\n{_CELEBA_LAYOUT}"
        )
    return lists


class _CelebAUint8:
    """A map-style dataset (what torch's DataLoader needs) of uint8 [3, size, size] images."""

    def __init__(self, root: Path, split: str, size: int) -> None:
        from torchvision import transforms as T
        from torchvision.datasets import CelebA

        self.ds = CelebA(
            str(root),
            split=split,
            target_type=[],
            download=False,
            transform=T.Compose(
                [
                    T.CenterCrop(140),
                    T.Resize((size, size), T.InterpolationMode.BILINEAR, antialias=True),
                    T.PILToTensor(),
                ]
            ),
        )

    def __len__(self) -> int:
        return len(self.ds.filename)

    def __getitem__(self, i: int) -> Any:
        x, _ = self.ds[i]
        if x.shape[0] != 3:
            raise DataError(
                f"{self.ds.filename[i]}: expected an RGB JPEG, got {x.shape[0]} channel(s)"
            )
        return x


def _stack(batch: list[Any]) -> Any:
    import torch

    return torch.stack(batch)


def _build_celeba64(
    root: Path,
    sources: list[Source],
    writer: CacheWriter,
    counts: dict[str, int],
    workers: int | None,
) -> dict[str, Any]:
    import torch.utils.data

    size = INFO.size
    partition = next(s.path for s in sources if s.path.name == "list_eval_partition.txt")
    for split, tv_split in (("train", "train"), ("val", "valid"), ("test", "test")):
        ds = _CelebAUint8(root, tv_split, size)
        n = len(ds)
        check_counts("celeba64", f"the {tv_split!r} partition", n, counts[split], partition)
        nw = workers if workers is not None else (min(4, os.cpu_count() or 1) if n > 2000 else 0)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=256, shuffle=False, num_workers=nw, collate_fn=_stack
        )
        with writer.memmap(split, (n, 3, size, size)) as mm:
            pos = 0
            for chunk in loader:  # uint8 chunks; nothing is ever held as float
                mm[pos : pos + chunk.shape[0]] = chunk.numpy()
                pos += chunk.shape[0]
            assert pos == n
    img_dir = root / "celeba" / "img_align_celeba"
    listing = sorted((e.name, e.stat().st_size) for e in os.scandir(img_dir))
    return {
        "split_rule": "official list_eval_partition.txt (0 train, 1 val, 2 test)",
        "preprocessing": "torchvision CenterCrop(140) then Resize((64, 64), bilinear, "
        "antialias=True) on the PIL image",
        "images": {
            "folder": rel(img_dir, root),
            "count": len(listing),
            "listing_sha256": hashlib.sha256(json.dumps(listing).encode()).hexdigest(),
            "note": "image contents are not hashed (torchvision does not check them either)",
        },
    }


RECIPE = Recipe(
    INFO,
    pipeline="celeba64-v1: torchvision CelebA, CenterCrop(140), Resize(64, bilinear, antialias)",
    layout=_CELEBA_LAYOUT,
    check=_check_celeba64,
    build=_build_celeba64,
)
