"""The floor of a reconstruction table: the training split's mean image, for every test image.

A tokenizer that has not learnt to encode its input can still reach this constant prediction
(its PSNR is what "predicting the average" scores), so every table and figure shows it, and
every run's metrics.json records its PSNR gain over it. ``write_floor_run`` writes a run
folder that the evaluator treats like any other (``reconstructions.npz`` with zero tokens per
image), so the floor is scored with exactly the same code and protocols.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import dataset_info, load_split
from ..errors import ConfigError
from ..io import save_npz, write_json
from ..machine import git_commit, now, package_versions

FLOOR_METHOD = "mean_image"
FLOOR_NAME = "Mean image"


def mean_image_uint8(train_u8: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """The per-pixel mean of a uint8 split ``[N, C, H, W]``, rounded to uint8 ``[C, H, W]``."""
    total = torch.zeros(train_u8.shape[1:], dtype=torch.float64)
    for start in range(0, len(train_u8), chunk):
        total += train_u8[start : start + chunk].double().sum(0)
    return (total / len(train_u8)).round().clamp(0, 255).to(torch.uint8).numpy()


def write_floor_run(
    dataset: str, data_root: str | Path, out: str | Path, test_n: int | None = None
) -> dict[str, int]:
    """Write ``out/reconstructions.npz`` (the first ``test_n`` test images and the training mean
    image for each) and ``out/run.json``."""
    info = dataset_info(dataset)
    if test_n is not None and int(test_n) < 1:
        raise ConfigError(f"test_n (--test-n) must be >= 1, got {test_n}")
    train = load_split(dataset, data_root, "train")
    test = load_split(dataset, data_root, "test")
    if test_n is not None:
        test = test[: int(test_n)]
    mean = mean_image_uint8(train)
    n = len(test)
    out = Path(out)
    save_npz(
        out / "reconstructions.npz",
        originals=test.numpy(),
        reconstructions=np.broadcast_to(mean, (n, *mean.shape)).copy(),
        codes=np.zeros((n, 0), dtype=np.int64),
        codebook_size=np.int64(1),
        bits_per_image=np.float64(0.0),
        bits_measured=np.zeros(n, dtype=np.float64),
        tokens_used=np.zeros(n, dtype=np.int64),
    )
    write_json(
        out / "run.json",
        {
            "config": {"dataset": dataset, "method": FLOOR_METHOD, "data_root": str(data_root)},
            "floor": {
                "what": "the training split's per-pixel mean image (rounded to uint8) as the "
                "reconstruction of every test image",
                "train_images": len(train),
                "test_images": n,
                "image_shape": [info.channels, info.size, info.size],
            },
            "git_commit": git_commit(),
            "versions": package_versions(),
            "created": now(),
        },
    )
    return {"n_images": n, "train_images": len(train)}
