"""Throughput of the prior: training tokens/s, sampling images/s (with and without the cache).

Synthetic codes of the paper's CIFAR-10 shapes (64 tokens, K = 512; QG-VAE: one codebook per
position, VQ-VAE: one shared) or the quick config's (16 tokens, K = 64), with the default sizes
of :mod:`qgvae.prior.settings` (or the quick config's toy prior). Training steps are full
optimiser steps (AdamW, clipping, bf16 autocast on CUDA); ``epoch_s`` is the time of one pass
over CIFAR-10's 40,000 training sequences at that rate. Sampling without the cache recomputes
the whole prefix at every position (what the cache avoids); decoding by the tokenizer is not
included.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..training.precision import autocast
from .model import Structure, build_prior, decay_groups
from .sampling import filter_logits, sample_batch
from .settings import DEFAULTS

CIFAR_TRAIN = 40_000  # sequences per epoch (CIFAR-10's training split here)
QUICK_PRIOR = {"width": 32, "layers": 2, "heads": 2, "dropout": 0.1}
PRESETS: dict[str, list[tuple[str, Structure, Mapping[str, Any]]]] = {
    "paper": [
        ("qgvae 64x512 per-position", Structure(64, 512, tuple(range(64))), DEFAULTS["prior"]),
        ("vqvae 64x512 shared", Structure(64, 512, (0,) * 64), DEFAULTS["prior"]),
    ],
    "quick": [
        ("qgvae 16x64 per-position", Structure(16, 64, tuple(range(16))), QUICK_PRIOR),
        ("vqvae 16x64 shared", Structure(16, 64, (0,) * 16), QUICK_PRIOR),
    ],
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _sample_no_cache(prior, batch: int) -> torch.Tensor:
    """Reference sampler: the whole prefix recomputed at every position."""
    t_total = prior.structure.num_tokens
    seq = torch.zeros(batch, t_total, dtype=torch.long, device=prior.pos_emb.device)
    for t in range(t_total):
        probs = torch.softmax(filter_logits(prior(seq[:, : t + 1])[:, t], 1.0, None), dim=-1)
        seq[:, t] = torch.multinomial(probs, 1)[:, 0]
    return seq


def bench_one(
    structure: Structure,
    arch: Mapping[str, Any],
    *,
    device: str,
    batch_size: int = 64,
    steps: int = 10,
    warmup: int = 2,
    sample_batch_size: int = 64,
    amp: str = "bf16",
    no_cache: bool = True,
) -> dict[str, Any]:
    dev = torch.device(device)
    torch.manual_seed(0)
    prior = build_prior(structure, arch).to(dev)
    opt = torch.optim.AdamW(decay_groups(prior, 0.1), lr=3e-4, betas=(0.9, 0.95))
    data = torch.randint(0, structure.vocab, (batch_size, structure.num_tokens), device=dev)

    def step() -> None:
        with autocast(dev, amp):
            logits = prior(data)
        loss = F.cross_entropy(logits.float().flatten(0, 1), data.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        opt.step()

    prior.train()
    for _ in range(warmup):
        step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    step_s = (time.perf_counter() - t0) / steps
    row = {
        "device": str(dev),
        "parameters": sum(p.numel() for p in prior.parameters()),
        "batch_size": batch_size,
        "step_ms": 1000 * step_s,
        "train_tokens_per_s": batch_size * structure.num_tokens / step_s,
        "epoch_s": CIFAR_TRAIN // batch_size * step_s,
    }
    prior.eval()
    with autocast(dev, amp):
        sample_batch(prior, sample_batch_size)  # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        sample_batch(prior, sample_batch_size)
        _sync(dev)
        row["sample_images_per_s"] = sample_batch_size / (time.perf_counter() - t0)
        if no_cache:
            t0 = time.perf_counter()
            _sample_no_cache(prior, sample_batch_size)
            _sync(dev)
            row["sample_no_cache_images_per_s"] = sample_batch_size / (time.perf_counter() - t0)
    row["sample_batch_size"] = sample_batch_size
    return row
