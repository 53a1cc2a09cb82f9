"""EMA codebook with random restarts of unused codes: DQ-VAE's quantiser.

Follows github.com/CrossmodalGroup/DynamicVectorQuantization (commit be6dc36c)
``modules/vector_quantization/quantize2_mask.py`` (``VQEmbedding`` with ``ema=True``,
``restart_unused_codes=True``; itself from RQ-VAE). Every training forward pass, with the
codes ``k_n`` of the ``N`` encoder vectors ``z_n`` chosen against the CURRENT codebook:

1. ``counts_k = #{n: k_n = k}``, ``sums_k = sum_{n: k_n = k} z_n``;
   ``cluster_size <- decay * cluster_size + (1 - decay) * counts``,
   ``embed_ema <- decay * embed_ema + (1 - decay) * sums`` (86-91);
2. restart (93-105): every code whose ``cluster_size < 1`` gets ``embed_ema`` := a random vector
   of this batch (the batch's vectors in a random permutation, the first K of them; when the
   batch has fewer than K vectors it is tiled and ``U[0, 1) * 0.01 / sqrt(D)`` noise is added)
   and ``cluster_size`` := 1;
3. the codewords used for THIS step's lookup are the ones from before the update (118-126);
   afterwards ``weight = embed_ema / (n (cluster_size + eps) / (n + K eps))`` with
   ``n = sum(cluster_size)`` (Laplace smoothing, 107-115).

Initial state as the code: ``weight`` U(-1/K, 1/K) (155), ``embed_ema`` an independent N(0, 1)
draw (cloned from ``nn.Embedding``'s default initialisation before the uniform overwrite, 27),
``cluster_size`` 0, so every code with fewer than ``1 / (1 - decay)`` = 100 hits in the first
batch is restarted at the first step. All three are buffers: nothing here is trained by the
optimiser, and they are saved in the state dict.

Deviations: single process (the code all-reduces counts and sums and broadcasts the restart
vectors under DDP); no padding row (the code's ``padding_idx`` row is never chosen by the
nearest-code search either).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from qgvae.models.quantise import squared_distances

__all__ = ["EMACodebook"]


class EMACodebook(nn.Module):
    """``K`` codewords of dimension ``D`` updated by EMA with restarts (module docstring).

    ``nearest(z [B, T, D]) -> [B, T]`` and ``lookup(codes [B, T]) -> [B, T, D]`` (float32) have
    the signatures of :class:`qgvae.models.VectorQuantiser`'s; :meth:`update` is the training
    step's codebook update.
    """

    def __init__(
        self,
        *,
        codebook_size: int,
        dim: int,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart: bool = True,
    ) -> None:
        super().__init__()
        if codebook_size < 2 or dim < 1:
            raise ValueError(f"codebook_size must be >= 2 and dim >= 1, got {codebook_size}, {dim}")
        if not 0.0 <= decay < 1.0 or eps <= 0:
            raise ValueError(f"decay must be in [0, 1) and eps > 0, got {decay}, {eps}")
        self.codebook_size, self.dim = codebook_size, dim
        self.decay, self.eps, self.restart = float(decay), float(eps), bool(restart)
        k = codebook_size
        self.register_buffer("embed_ema", torch.randn(k, dim))
        self.register_buffer("weight", torch.empty(k, dim).uniform_(-1.0 / k, 1.0 / k))
        self.register_buffer("cluster_size", torch.zeros(k))

    def extra_repr(self) -> str:
        return (
            f"codebook_size={self.codebook_size}, dim={self.dim}, decay={self.decay}, "
            f"eps={self.eps}, restart={self.restart}"
        )

    @torch.no_grad()
    def nearest(self, z: Tensor) -> Tensor:
        """Index of the nearest codeword of every vector of ``z [..., D]`` (float32 distances)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            return squared_distances(z.float(), self.weight.float()).argmin(-1)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codewords of ``codes [...]`` -> float32 ``[..., D]`` (a copy: later updates do not
        change it)."""
        return self.weight.float()[codes.long()]

    @torch.no_grad()
    def update(self, vectors: Tensor, codes: Tensor) -> Tensor:
        """One EMA step with ``vectors [..., D]`` and their ``codes [...]``; returns the number of
        restarted codes (a 0-d tensor, so that the step does not wait on the device)."""
        v = vectors.detach().float().reshape(-1, self.dim)
        idx = codes.reshape(-1).long()
        k = self.codebook_size
        ones = torch.ones(idx.shape, device=v.device)
        counts = torch.zeros(k, device=v.device).index_add_(0, idx, ones)
        sums = torch.zeros(k, self.dim, device=v.device).index_add_(0, idx, v)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_ema.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        dead = torch.zeros(k, dtype=torch.bool, device=v.device)
        if self.restart:
            dead = self.cluster_size < 1.0
            pool = v
            if len(pool) < k:  # tile with a little uniform noise (the code's _tile_with_noise)
                pool = pool.repeat(math.ceil(k / len(pool)), 1)
                pool = pool + torch.rand_like(pool) * (0.01 / math.sqrt(self.dim))
            pick = pool[torch.randperm(len(pool), device=pool.device)[:k]]
            self.embed_ema.copy_(torch.where(dead[:, None], pick, self.embed_ema))
            self.cluster_size.copy_(torch.where(dead, 1.0, self.cluster_size))
        n = self.cluster_size.sum()
        smoothed = n * (self.cluster_size + self.eps) / (n + k * self.eps)
        self.weight.copy_(self.embed_ema / smoothed[:, None])
        return dead.sum()
