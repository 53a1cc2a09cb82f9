"""Sampling codes from the prior (batched, with a key/value cache) and decoding them to images.

Each position costs one forward pass of *one* new position per sequence: keys and values of
the earlier positions are kept per layer (:class:`qgvae.prior.model.KVCache`), so sampling a
sequence of T codes costs O(T) position-passes instead of the O(T^2) of recomputing the prefix.
``logits / temperature``, then (``top_k``) everything below the k-th largest logit is dropped,
then one draw from the softmax with a ``torch.Generator`` seeded from ``(seed, epoch)``: the
same settings (the batch size included) give the same samples on the same device type.

Samples are decoded with the tokenizer's own ``decode``, clamped to [0, 1] and rounded to uint8
(the images gFID sees are what a saved PNG would hold).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..evaluation.reconstruct import to_uint8
from .model import TokenPrior


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    """``logits / temperature`` with everything below the ``top_k``-th largest set to -inf."""
    logits = logits.float() / float(temperature)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, int(top_k), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


def sample_generator(seed: int, epoch: int, device) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(((int(state[0]) << 32) | int(state[1])) & ((1 << 63) - 1))
    return gen


@torch.no_grad()
def sample_batch(
    prior: TokenPrior,
    batch: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    on_logits: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """``batch`` sequences of symbols ``[batch, T]``; ``on_logits(t, logits)`` sees the raw
    logits of every position (tests compare them with a full recomputation)."""
    prior.eval()
    cache = prior.new_cache(batch)
    t_total = prior.structure.num_tokens
    out = torch.empty(batch, t_total, dtype=torch.long, device=prior.pos_emb.device)
    previous = None
    for t in range(t_total):
        logits = prior.step(previous, cache)
        if on_logits is not None:
            on_logits(t, logits)
        probs = torch.softmax(filter_logits(logits, temperature, top_k), dim=-1)
        previous = torch.multinomial(probs, 1, generator=generator)[:, 0]
        out[:, t] = previous
    return out


def sample_codes(
    prior: TokenPrior,
    n: int,
    *,
    batch_size: int,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
) -> Iterator[torch.Tensor]:
    """Codes (``-1`` for the unused symbol) of ``n`` samples, one batch at a time."""
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        symbols = sample_batch(prior, b, temperature=temperature, top_k=top_k, generator=generator)
        yield prior.to_codes(symbols)


@torch.no_grad()
def decode_images(tokenizer, codes: torch.Tensor) -> torch.Tensor:
    """uint8 images ``[B, C, H, W]`` (CPU) decoded by the tokenizer (clamped, rounded)."""
    return to_uint8(tokenizer.decode(codes).clamp(0, 1)).cpu()
