"""The steps of a generation study on one prior folder, as the ``qgvae prior`` command runs them.

1. :func:`encode` -- choose the tokenizer weights (:mod:`qgvae.prior.tokenizer`), encode the
   train and test splits once: ``codes_train.npz``, ``codes_test.npz``, then ``tokenizer.json``.
2. :func:`qgvae.prior.trainer.train_prior` -- ``prior.pt`` and ``epochs/epochNNNN.pt``.
3. :func:`sample` -- ``samples_epochNNNN.npz``: ``images`` uint8 ``[N, C, H, W]`` decoded by the
   tokenizer, ``codes`` ``[N, T]``, and the sampling settings.
4. :func:`evaluate` -- ``metrics_epochNNNN.json``: gFID against the first N test images (N
   printed), and the test NLL of that epoch's weights in bits per image.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import machine
from ..data import load_split
from ..errors import RunFolderError
from ..io import save_npz, write_json
from .data import code_books, encode_images, load_codes, save_codes
from .metrics import generation_fid, nll_bits
from .sampling import decode_images, sample_codes, sample_generator
from .tokenizer import TOKENIZER_FILE, choose, file_sha256, load_tokenizer
from .trainer import load_prior, snapshot_name

SAMPLES_FILE = "samples_epoch{epoch:04d}.npz"
METRICS_FILE = "metrics_epoch{epoch:04d}.json"


def read_tokenizer_record(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / TOKENIZER_FILE
    if not path.is_file():
        raise RunFolderError(f"{path} not found; run `qgvae prior encode RUN --out {folder}`")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise RunFolderError(f"{path} is unreadable; delete it and re-encode") from None


def encode(
    run_dir: str | Path,
    out: str | Path,
    *,
    match_psnr: float | str | None,
    compare: Sequence[str | Path] = (),
    batch_size: int = 500,
    device: str = "auto",
) -> dict[str, Any]:
    """Step 1; returns the ``tokenizer.json`` record."""
    out = Path(out)
    dev = machine.resolve_device(device)
    record = choose(run_dir, match_psnr, compare)
    record["sha256"] = file_sha256(record)
    tokenizer, cfg = load_tokenizer(record, dev)
    books = code_books(tokenizer)
    t0 = time.perf_counter()
    counts = {}
    for split in ("train", "test"):
        images = load_split(cfg["dataset"], cfg["data_root"], split)
        codes = encode_images(tokenizer, images, batch_size=batch_size, device=dev)
        save_codes(out, split, codes, books, tokenizer.codebook_size)
        counts[split] = len(codes)
    record.update(
        method=cfg["method"],
        dataset=cfg["dataset"],
        data_root=cfg["data_root"],
        num_tokens=int(tokenizer.num_tokens),
        codebook_size=int(tokenizer.codebook_size),
        num_books=max(books) + 1,
        bits_per_image=float(tokenizer.bits_per_image()),
        sequences=counts,
        encode_seconds=time.perf_counter() - t0,
        device=str(dev),
    )
    write_json(out / TOKENIZER_FILE, record)
    return record


def sample(
    folder: str | Path,
    epoch: int,
    *,
    n: int | None,
    batch_size: int,
    temperature: float,
    top_k: int | None,
    seed: int,
    device: str = "auto",
) -> dict[str, Any]:
    """Step 3; ``n=None`` samples as many images as the test split has. Returns timings."""
    folder = Path(folder)
    dev = machine.resolve_device(device)
    prior, blob = load_prior(folder, snapshot_name(epoch), dev)
    tokenizer, _ = load_tokenizer(read_tokenizer_record(folder), dev)
    if n is None:
        n = len(load_codes(folder, "test")[0])
    gen = sample_generator(seed, epoch, dev)
    images, codes = [], []
    t0 = time.perf_counter()
    for c in sample_codes(
        prior, n, batch_size=batch_size, temperature=temperature, top_k=top_k, generator=gen
    ):
        codes.append(c.cpu())
        images.append(decode_images(tokenizer, c))
    seconds = time.perf_counter() - t0
    save_npz(
        folder / SAMPLES_FILE.format(epoch=epoch),
        images=torch.cat(images).numpy(),
        codes=torch.cat(codes).numpy().astype(np.int32),
        epoch=np.int64(epoch),
        step=np.int64(blob["step"]),
        temperature=np.float64(temperature),
        top_k=np.int64(-1 if top_k is None else top_k),
        seed=np.int64(seed),
    )
    return {"n": n, "seconds": seconds, "images_per_s": n / max(seconds, 1e-9), "device": str(dev)}


def evaluate(
    folder: str | Path,
    epoch: int,
    *,
    features_cache: str | Path | None,
    batch_size: int = 200,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Step 4; writes and returns ``metrics_epochNNNN.json``."""
    folder = Path(folder)
    dev = machine.resolve_device(device)
    path = folder / SAMPLES_FILE.format(epoch=epoch)
    if not path.is_file():
        raise RunFolderError(f"{path} not found; run `qgvae prior sample {folder} --epoch {epoch}`")
    with np.load(path, allow_pickle=False) as z:
        samples = z["images"]
        sampling = {k: z[k].item() for k in ("temperature", "top_k", "seed", "step")}
    record = read_tokenizer_record(folder)
    test = load_split(record["dataset"], record["data_root"], "test")
    n = len(samples)
    if n > len(test):
        raise RunFolderError(f"{path}: {n} samples but only {len(test)} test images")
    t0 = time.perf_counter()
    fid = generation_fid(
        samples,
        test[:n].numpy(),
        device=dev,
        features_cache=features_cache,
        batch_size=batch_size,
        progress=progress,
    )
    prior, _ = load_prior(folder, snapshot_name(epoch), dev)
    codes, _, _ = load_codes(folder, "test")
    nll = nll_bits(prior, prior.to_symbols(torch.from_numpy(codes).long().to(dev)))
    result = {
        "epoch": int(epoch),
        "gfid": fid,
        "nll_bits_per_image": float(nll.mean()),
        "nll_bits_per_image_sd": float(nll.std(ddof=1)) if len(nll) > 1 else None,
        "nll_n": int(len(nll)),
        "tokenizer_bits_per_image": record["bits_per_image"],
        "tokenizer": {
            k: record.get(k) for k in ("run", "file", "step", "val_psnr", "target_psnr", "rule")
        },
        "sampling": {**sampling, "top_k": None if sampling["top_k"] < 0 else sampling["top_k"]},
        "seconds": time.perf_counter() - t0,
        "versions": machine.package_versions(),
        "hardware": machine.hardware(str(dev)),
    }
    write_json(folder / METRICS_FILE.format(epoch=epoch), result)
    return result
