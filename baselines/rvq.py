"""Residual VQ (Zeghidour et al. 2021, SoundStream, Algorithm 1; Lee et al. 2022, RQ-VAE), on the
shared grid network.

Registry name ``rvq``. Quantiser: ``vector_quantize_pytorch.ResidualVQ`` (1.34.1): ``depth``
``VectorQuantize`` layers, each with its own codebook of K entries; layer 1 quantises the cell's
vector, layer ``d`` the residual left by layers ``1..d-1``; the decoder gets the sum of the
``depth`` codewords. Every layer: EMA codebook and commitment loss as in :mod:`baselines.rotvq`,
but the plain straight-through estimator (SoundStream's and RQ-VAE's; ``rotation_trick=False``,
where the library would default to True).

Codes: a *slot* is one (cell, depth) pair, ``num_tokens = cells * depth`` slots, cell-major
(``codes[:, cell * depth + d]``), each in ``[0, K)``: so the rate is
``cells * depth * log2(K)`` bits (:meth:`ResidualVQVAE.bits_per_image`), the interface's
``num_tokens * log2(codebook_size)``. Table 1's 576 bits: 9 bits per cell, so
``depth * log2(K) = 9``: depth 3 x K 8 (64 x 3 x 3 = 576; depth 1 is VQ-VAE, depth 9 has K 2).

Loss terms: ``mse``; ``commit`` = the sum over layers of ``commitment_weight * mean ||r_d -
sg[e_d]||^2`` (``r_d`` the layer's input residual).

Settings (constructor arguments, recorded in the run's config.yaml): ``depth`` (the library's
``num_quantizers``) 3, ``codebook_size`` 8, ``shared_codebook`` False (library default),
``quantize_dropout`` False (library default; True would drop tail layers in training, the codes
of a dropped layer are -1), and the ``VectorQuantize`` settings of :mod:`baselines.rotvq` with
the same defaults except ``rotation_trick`` False. Library settings fixed here:
``codebook_dim=None`` (no projection), ``heads=1``, ``implicit_neural_codebook=False``,
``diveq=False``, ``beam_size=None`` (greedy), ``quant_grad_frac=0``,
``quantize_dropout_cutoff_index=0``, ``accept_image_fmap=False`` (tokens); fp32
(:mod:`baselines.libvq`); ``encode`` passes ``freeze_codebook=True``.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from .libvq import LibraryQuantisedGrid
from .rotvq import vector_quantize_settings

__all__ = ["ResidualVQVAE"]


class ResidualVQVAE(LibraryQuantisedGrid):
    """ResidualVQ on the shared grid network. See the module docstring."""

    display_name = "RVQ"

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: int,
        channels: int = 128,
        res_blocks: int = 2,
        res_channels: int = 32,
        downsample: int = 2,
        code_dim: int = 64,
        codebook_size: int = 8,
        depth: int = 3,
        network: str = "grid",
        init: str = "released",
        shared_codebook: bool = False,
        quantize_dropout: bool = False,
        rotation_trick: bool = False,
        ema_update: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        commitment_weight: float = 0.25,
        kmeans_init: bool = False,
        dead_code_threshold_ratio: float = 0.0,
    ) -> None:
        from vector_quantize_pytorch import ResidualVQ

        if depth < 1:
            raise ValueError(f"model.depth must be >= 1, got {depth}")
        settings = vector_quantize_settings(
            ema_update=ema_update,
            decay=decay,
            eps=eps,
            commitment_weight=commitment_weight,
            kmeans_init=kmeans_init,
            dead_code_threshold_ratio=dead_code_threshold_ratio,
            rotation_trick=rotation_trick,
        )
        for key in ("codebook_dim", "heads", "separate_codebook_per_head", "accept_image_fmap"):
            settings.pop(key)  # ResidualVQ's own arguments of the same name (set below)
        super().__init__(
            in_channels=in_channels,
            image_size=image_size,
            channels=channels,
            res_blocks=res_blocks,
            res_channels=res_channels,
            downsample=downsample,
            code_dim=code_dim,
            codebook_size=codebook_size,
            network=network,
            slots_per_cell=depth,
        )
        self.depth = depth
        self.quantiser = ResidualVQ(
            dim=code_dim,
            num_quantizers=depth,
            codebook_size=codebook_size,
            codebook_dim=None,
            shared_codebook=shared_codebook,
            heads=1,
            quantize_dropout=quantize_dropout,
            quantize_dropout_cutoff_index=0,
            accept_image_fmap=False,
            implicit_neural_codebook=False,
            diveq=False,
            beam_size=None,
            quant_grad_frac=0.0,
            **settings,
        )
        self.finish_build(init)

    def bits_per_image(self) -> float:
        """``cells * depth * log2(K)``."""
        return self.cells * self.depth * math.log2(self.codebook_size)

    def _quantise(self, z: Tensor, *, freeze: bool = False):
        out, indices, losses = self.quantiser(z, freeze_codebook=freeze)
        codes = indices.long().reshape(z.shape[0], self.num_tokens)  # [B, cells * depth]
        return out, codes, {"commit": losses.sum()}, {}

    def lookup(self, codes: Tensor) -> Tensor:
        """The sum over stages of each cell's codewords (the library's
        ``get_output_from_indices`` without its einx gather, which costs about 0.6 CPU-s to set
        up on first use per shape; no projection: ``codebook_dim`` is ``code_dim``)."""
        books = self.quantiser.codebooks.float()  # [depth, K, D]
        codes = codes.reshape(codes.shape[0], self.cells, self.depth)
        out = F.embedding(codes[..., 0], books[0])
        for d in range(1, self.depth):
            out = out + F.embedding(codes[..., d], books[d])
        return out
