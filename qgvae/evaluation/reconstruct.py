"""Reconstruct a finished run's test split and compute the arrays the figures need.

Writes, atomically, into the run folder:

``reconstructions.npz``
    ``originals`` uint8 [N, C, H, W], ``reconstructions`` uint8 [N, C, H, W] (``round``ed and
    clipped, never truncated), ``codes`` int64 [N, T] (``-1`` = token unused for that image),
    ``codebook_size``, ``bits_per_image`` (the model's nominal rate), ``bits_measured`` float64
    [N] (each image's rate from its codes, ``model.bits_for_codes``: used tokens x log2 K plus
    any side information such as DQ-VAE's routing mask) and ``tokens_used`` int64 [N] (codes
    >= 0 per image). The evaluator reads only this file.
``analysis.npz``
    ``show_index`` int [n]: the test images shown in figures (the first n).
    ``influence`` float32 [T, H, W]: mean absolute change of the decoded image (averaged over the
    shown images and channels) when one token's code is replaced by another code
    (``(c + K // 2) mod K``). Global tokens spread over the whole image, grid tokens stay local.
    ``progressive_k`` int [S] and ``progressive`` uint8 [S, n, C, H, W]: images decoded from the
    first k tokens only (models with ``decode_prefix``, i.e. QG-VAE).

The test split is processed in its stored order (no shuffling); ``test_n`` takes its first N.
Reconstruction runs in fp32 so that ``decode(encode(x))`` and the forward pass agree exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import load_split
from ..errors import ConfigError
from ..io import save_npz
from ..machine import resolve_device
from ..training.checkpoint import load_result


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 by rounding to nearest (values outside [0, 1] are clipped)."""
    return x.float().mul(255).round_().clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def reconstruct_run(
    run_dir: str | Path,
    *,
    test_n: int | None = None,
    batch_size: int = 250,
    device: str = "auto",
    n_show: int = 8,
) -> dict[str, int]:
    """Write ``reconstructions.npz`` and ``analysis.npz`` of a finished run (see above).

    The arguments, the device and ``model.pt`` are checked before the test split is read: a bad
    value is a ``ConfigError``, a missing or damaged ``model.pt`` a ``RunFolderError``, and the
    files already in the run folder are left as they are."""
    _check_counts(test_n=test_n, batch_size=batch_size, n_show=n_show)
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    model, cfg = load_result(run_dir, dev)
    if test_n is None:
        test_n = cfg.get("eval", {}).get("test_n")
        _check_counts(test_n=test_n, batch_size=batch_size, n_show=n_show)
    test = load_split(cfg["dataset"], cfg["data_root"], "test")
    if test_n is not None:
        test = test[:test_n]

    recons, codes, bits = [], [], []
    for start in range(0, len(test), batch_size):
        x = test[start : start + batch_size].to(dev).float().div_(255)
        c = model.encode(x)
        recons.append(to_uint8(model.decode(c)).cpu())
        codes.append(c.cpu())
        bits.append(model.bits_for_codes(c).double().cpu())
    codes_all = torch.cat(codes).long()
    save_npz(
        run_dir / "reconstructions.npz",
        originals=test.numpy(),
        reconstructions=torch.cat(recons).numpy(),
        codes=codes_all.numpy(),
        codebook_size=np.int64(model.codebook_size),
        bits_per_image=np.float64(model.bits_per_image()),
        bits_measured=torch.cat(bits).numpy().astype(np.float64),
        tokens_used=(codes_all >= 0).sum(1).numpy().astype(np.int64),
    )

    show_codes = codes_all[:n_show].to(dev)  # the shown images are decoded from their codes
    arrays: dict[str, np.ndarray] = {
        "show_index": np.arange(len(show_codes)),
        "influence": token_influence(model, show_codes),
    }
    if hasattr(model, "decode_prefix"):
        ks = progressive_steps(model.num_tokens)
        arrays["progressive_k"] = np.asarray(ks)
        arrays["progressive"] = np.stack(
            [to_uint8(model.decode_prefix(show_codes, k)).cpu().numpy() for k in ks]
        )
    save_npz(run_dir / "analysis.npz", **arrays)
    return {"n_images": len(test), "num_tokens": model.num_tokens}


def _check_counts(*, test_n: int | None, batch_size: int, n_show: int) -> None:
    """``test_n`` (None: the whole split), ``batch_size`` and ``n_show``: integers >= 1."""
    for flag, value, least in (
        ("--test-n (or the run config's eval.test_n)", test_n, 1),
        ("--batch-size", batch_size, 1),
        ("n_show", n_show, 1),
    ):
        if value is None and flag.startswith("--test-n"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ConfigError(f"{flag} must be an integer >= {least}, got {value!r}")


def progressive_steps(num_tokens: int, max_steps: int = 17) -> list[int]:
    """k = 0..T, thinned to at most ``max_steps`` values (always including 0 and T)."""
    if num_tokens + 1 <= max_steps:
        return list(range(num_tokens + 1))
    return sorted({int(round(v)) for v in np.linspace(0, num_tokens, max_steps)})


@torch.no_grad()
def token_influence(model, codes: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """[T, H, W]: mean |decode(codes with token t changed) - decode(codes)| over images/channels."""
    base = model.decode(codes)
    n, t = codes.shape
    k = model.codebook_size
    maps = []
    tokens = torch.arange(t, device=codes.device)
    per_chunk = max(1, chunk // n)
    for start in range(0, t, per_chunk):
        ts = tokens[start : start + per_chunk]
        changed = codes.unsqueeze(0).repeat(len(ts), 1, 1)  # [t', n, T]
        rows = torch.arange(len(ts), device=codes.device)
        old = changed[rows, :, ts]  # [t', n]
        changed[rows, :, ts] = torch.where(old >= 0, (old + k // 2) % k, old)
        out = model.decode(changed.reshape(-1, t)).reshape(len(ts), n, *base.shape[1:])
        maps.append((out - base.unsqueeze(0)).abs().mean(dim=(1, 2)).float().cpu())
    return torch.cat(maps).numpy().astype(np.float32)
