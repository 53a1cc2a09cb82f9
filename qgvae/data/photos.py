"""photos: 32x32 crops of scikit-image's bundled photographs (offline; the quick configuration)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .recipe import SPLIT_SEED, DatasetInfo, Recipe, Source, source_error

if TYPE_CHECKING:
    from .writer import CacheWriter

INFO = DatasetInfo(
    "photos",
    3,
    32,
    {"train": 4_096, "val": 512, "test": 512},
    "32x32 RGB crops of scikit-image's bundled photographs (offline; grayscale replicated to RGB); "
    "seeded square crops of side 32-128 px (log-uniform) resized with PIL bilinear (antialiased) "
    "plus random horizontal flips; test = 512 crops of 5 photographs never used for train/val "
    "(coffee, rocket, retina, coins, gravel); train = 4,096 crops from the left 75% and val = 512 "
    "crops from the right 25% of each of 11 other photographs, so val pixels never occur in train.",
    display_name="Photos",
)

# file names inside skimage/data; grayscale ones are replicated to RGB.  The stereo pair
# motorcycle_left/right stays on one side of the split.
PHOTOS_TRAIN = (
    "astronaut.png",
    "chelsea.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "camera.png",
    "moon.png",
    "grass.png",
    "brick.png",
    "cell.png",
)
PHOTOS_TEST = ("coffee.png", "rocket.jpg", "retina.jpg", "coins.png", "gravel.png")
_PHOTO_VAL_FRACTION = 0.25  # right-hand strip of each training photograph reserved for val
_PHOTO_SIDE = (32, 128)  # crop side range in pixels (log-uniform), before resizing to 32


def _photo_sources() -> list[Source]:
    import skimage
    import skimage.data

    try:
        from skimage.data._registry import registry
    except ImportError:  # pragma: no cover - older/newer layouts
        registry = {}
    folder = Path(skimage.data.__file__).parent
    how = (
        f"bundled with scikit-image {skimage.__version__}; reinstall it "
        f"(pip install --force-reinstall scikit-image=={skimage.__version__})"
    )
    return [
        Source(folder / f, None, None, how, sha256=registry.get(f"data/{f}"))
        for f in PHOTOS_TRAIN + PHOTOS_TEST
    ]


def _check_photos(root: Path, download: bool) -> list[Source]:
    sources = _photo_sources()
    bad = [(s, p) for s in sources if (p := s.problem())]
    if bad:
        raise source_error(
            "photos",
            root,
            bad,
            "  files inside the installed skimage/data package folder",
            note="These photographs ship inside the scikit-image wheel; nothing is downloaded.",
        )
    return sources


def _load_photo(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _photo_crops(
    photos: list[np.ndarray], regions: list[tuple[int, int, int, int]], n: int, seed: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """n crops, photo i % len(photos) for crop i, inside region (x0, y0, x1, y1) of that photo."""
    from PIL import Image

    size = INFO.size
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
        crop = Image.fromarray(photos[p][y : y + side, x : x + side])
        crop = crop.resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(crop)
        if flip:
            arr = arr[:, ::-1]
        out[i] = arr.transpose(2, 0, 1)
        boxes.append({"photo": p, "x": x, "y": y, "side": side, "flip": flip})
    return out, boxes


def _build_photos(
    root: Path,
    sources: list[Source],
    writer: CacheWriter,
    counts: dict[str, int],
    workers: int | None,
) -> dict[str, Any]:
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
    return {
        "split_rule": f"test photographs {list(PHOTOS_TEST)}; train/val photographs "
        f"{list(PHOTOS_TRAIN)} with train crops from the left "
        f"{1 - _PHOTO_VAL_FRACTION:.0%} and val crops from the right "
        f"{_PHOTO_VAL_FRACTION:.0%} of each; crop i uses photograph i mod n",
        "preprocessing": f"square crop, side log-uniform in [{_PHOTO_SIDE[0]}, "
        f"min({_PHOTO_SIDE[1]}, region)] px, PIL bilinear resize to 32, "
        f"horizontal flip with p=0.5; "
        f"numpy PCG64 seeds {SPLIT_SEED * 3 + 1}/{SPLIT_SEED * 3 + 2}/"
        f"{SPLIT_SEED * 3 + 3} for train/val/test",
        "photos": {"train_val": list(PHOTOS_TRAIN), "test": list(PHOTOS_TEST)},
    }


RECIPE = Recipe(
    INFO,
    pipeline="photos-v1: skimage bundled photos, log-uniform side 32..128, PIL bilinear, hflip",
    layout="  nothing to place: scikit-image's bundled photographs are used",
    check=_check_photos,
    build=_build_photos,
)
