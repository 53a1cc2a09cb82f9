"""QG-VAE's tokens: the transpose that makes channels tokens, the per-head affine maps, and the
ordering regularisation's masks. Used by :class:`qgvae.models.qgvae.QGVAE`."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "ORDERINGS",
    "HeadwiseLinear",
    "to_global_tokens",
    "from_global_tokens",
    "to_local_tokens",
    "from_local_tokens",
    "prefix_mask",
    "ordering_mask",
]

ORDERINGS = ("off", "sample", "batch")


# -- the token transpose --------------------------------------------------------------------
def to_global_tokens(feat: Tensor) -> Tensor:
    """``[B, C, h, w] -> [B, C, h*w]``: token ``c`` is channel ``c``'s whole (row-major) map.

    This is the paper's transpose: local tokens would be ``[B, h*w, C]`` (one per position);
    swapping the two axes makes every channel one token whose features are all positions.
    """
    return feat.flatten(2)


def from_global_tokens(tokens: Tensor, h: int, w: int) -> Tensor:
    """Inverse of :func:`to_global_tokens`: ``[B, C, h*w] -> [B, C, h, w]``."""
    return tokens.unflatten(2, (h, w))


def to_local_tokens(feat: Tensor) -> Tensor:
    """``[B, C, h, w] -> [B, h*w, C]``: one token per position (the "local tokens" ablation)."""
    return feat.flatten(2).transpose(1, 2)


def from_local_tokens(tokens: Tensor, h: int, w: int) -> Tensor:
    """Inverse of :func:`to_local_tokens`: ``[B, h*w, C] -> [B, C, h, w]``."""
    return tokens.transpose(1, 2).unflatten(2, (h, w))


class HeadwiseLinear(nn.Module):
    """``heads`` affine maps ``R^in -> R^out``; map ``i`` serves the i-th ``T / heads`` tokens.

    ``[B, T, in] -> [B, T, out]``; the same as the authors' list of kernel-1 Conv1d (one per head,
    applied to a contiguous slice of tokens), as one einsum. Initialised like Conv1d / Linear:
    ``U(-1/sqrt(in), 1/sqrt(in))`` for weight and bias.
    """

    def __init__(self, heads: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.heads, self.in_features, self.out_features = heads, in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(
            torch.empty(heads, in_features, out_features).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(heads, out_features).uniform_(-bound, bound))

    def extra_repr(self) -> str:
        return (
            f"heads={self.heads}, in_features={self.in_features}, out_features={self.out_features}"
        )

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        x = x.reshape(b, self.heads, t // self.heads, self.in_features)
        y = torch.einsum("bhti,hio->bhto", x, self.weight) + self.bias[None, :, None, :]
        return y.reshape(b, t, self.out_features)


# -- ordering regularisation ----------------------------------------------------------------
def prefix_mask(
    k: Tensor | int,
    num_tokens: int,
    batch: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """BoolTensor ``[B, T]``: True for the kept tokens ``0..k-1``, False from token ``k`` on.

    ``k`` is an int (same for all samples; then ``batch`` gives B) or a LongTensor ``[B]``.
    """
    if not torch.is_tensor(k):
        k = torch.full((batch or 1,), int(k), dtype=torch.long, device=device)
    positions = torch.arange(num_tokens, device=k.device)
    return positions[None, :] < k.reshape(-1, 1)


def ordering_mask(
    batch: int,
    num_tokens: int,
    *,
    mode: str,
    prob: float = 1 / 3,
    step: int = 0,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Which tokens the decoder sees in one training step: BoolTensor ``[B, T]`` (True = kept).

    - ``"off"``:    everything kept.
    - ``"sample"``: (authors' code) each sample independently, with probability ``prob``, draws
      ``k ~ U{1, ..., T-1}`` and loses tokens ``k..T-1``.
    - ``"batch"``:  (the paper's text, "every third batch") when ``step % 3 == 2`` (``step`` =
      optimiser steps completed so far, so the 3rd, 6th, ... batch), one ``k ~ U{1, ..., T-1}``
      for the whole batch; other steps keep everything. ``prob`` is not used.
    """
    if mode not in ORDERINGS:
        raise ValueError(f"ordering mode must be one of {ORDERINGS}, got {mode!r}")
    full = torch.full((batch,), num_tokens, dtype=torch.long, device=device)
    if mode == "off" or num_tokens < 2:
        return prefix_mask(full, num_tokens)
    if mode == "sample":
        hit = torch.rand(batch, device=device, generator=generator) < prob
        k = torch.randint(1, num_tokens, (batch,), device=device, generator=generator)
        return prefix_mask(torch.where(hit, k, full), num_tokens)
    if step % 3 != 2:  # mode == "batch"
        return prefix_mask(full, num_tokens)
    k = torch.randint(1, num_tokens, (1,), device=device, generator=generator)
    return prefix_mask(k.expand(batch), num_tokens)
