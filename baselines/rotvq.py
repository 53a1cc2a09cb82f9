"""VQ with the rotation trick (Fifty et al. 2024, "Restructuring Vector Quantization with the
Rotation Trick", arXiv 2410.06424), on the shared grid network.

Registry name ``rotvq``. Quantiser: ``vector_quantize_pytorch.VectorQuantize`` (1.34.1): ONE
codebook of K entries shared by all cells, nearest codeword (Euclidean), updated by an
exponential moving average of the vectors assigned to it (the library's default; van den Oord et
al. 2017, App. A.1), the commitment loss on the encoder. The gradient reaches the encoder through
the rotation trick instead of the straight-through estimator: the encoder output ``z`` is mapped
to its codeword ``e`` by the rotation and rescaling that take ``z`` to ``e``, treated as constants
in the backward pass, so the gradient at ``e`` is rotated back rather than copied.

Rate: ``cells * log2(codebook_size)`` (576 bits for K = 512 on the 8x8 grid).

Loss terms: ``mse``; ``commit`` = ``commitment_weight * mean ||z - sg[e]||^2`` (the library's
loss; no codebook term: the EMA moves the codebook).

Settings (constructor arguments, recorded in the run's config.yaml) and the library's defaults:

============================  =======  ===========  ==============================================
argument                      ours     library      note
============================  =======  ===========  ==============================================
``codebook_size``             512      (required)   Table 1's K
``rotation_trick``            True     True         (the library: True when dim > 1)
``ema_update``                True     True         False: a learnable codebook (gradient), as
                                                    the library requires without EMA
``decay``                     0.99     0.8          van den Oord et al.'s EMA decay
``eps``                       1e-5     1e-5         Laplace smoothing of the EMA counts
``commitment_weight``         0.25     1.0          van den Oord et al.'s beta
``kmeans_init``               False    False        True: k-means on the first batch
``dead_code_threshold_ratio`` 0.0      0.0          > 0: replace codes whose EMA count falls
                                                    below this fraction of the mean count
============================  =======  ===========  ==============================================

Library settings fixed here (its defaults): one head, ``codebook_dim=None`` (= ``code_dim``, no
projection), ``use_cosine_sim=False``, ``stochastic_sample_codes=False``,
``straight_through=False``, ``orthogonal_reg_weight=0``, ``codebook_diversity_loss_weight=0``,
``affine_param=False``, ``sync_codebook=False`` (the library's default asks
``torch.distributed``), ``channel_last=True`` and ``accept_image_fmap=False`` (tokens); the
quantiser runs in fp32 (:mod:`baselines.libvq`). ``encode`` passes ``freeze_codebook=True``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .libvq import LibraryQuantisedGrid

__all__ = ["RotationVQVAE", "vector_quantize_settings"]


def vector_quantize_settings(
    *,
    ema_update: bool,
    decay: float,
    eps: float,
    commitment_weight: float,
    kmeans_init: bool,
    dead_code_threshold_ratio: float,
    rotation_trick: bool,
) -> dict:
    """Every ``VectorQuantize`` keyword this project relies on, explicit (also used by residual
    VQ, whose layers are ``VectorQuantize``); ValueError naming the ``model`` key on bad input."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"model.decay must be in [0, 1), got {decay}")
    if not 0.0 <= dead_code_threshold_ratio < 1.0:
        raise ValueError(
            f"model.dead_code_threshold_ratio must be in [0, 1), got {dead_code_threshold_ratio}"
        )
    if commitment_weight < 0:
        raise ValueError(f"model.commitment_weight must be >= 0, got {commitment_weight}")
    return dict(
        codebook_dim=None,
        heads=1,
        separate_codebook_per_head=False,
        decay=decay,
        eps=eps,
        kmeans_init=kmeans_init,
        kmeans_iters=10,
        use_cosine_sim=False,
        dead_code_threshold_ratio=dead_code_threshold_ratio,
        channel_last=True,
        accept_image_fmap=False,
        commitment_weight=commitment_weight,
        orthogonal_reg_weight=0.0,
        codebook_diversity_loss_weight=0.0,
        stochastic_sample_codes=False,
        straight_through=False,
        rotation_trick=rotation_trick,
        sync_codebook=False,
        ema_update=ema_update,
        learnable_codebook=not ema_update,
        affine_param=False,
    )


class RotationVQVAE(LibraryQuantisedGrid):
    """VectorQuantize (EMA codebook, rotation trick) on the shared grid network."""

    display_name = "VQ + rotation"

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
        codebook_size: int = 512,
        network: str = "grid",
        init: str = "released",
        rotation_trick: bool = True,
        ema_update: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        commitment_weight: float = 0.25,
        kmeans_init: bool = False,
        dead_code_threshold_ratio: float = 0.0,
    ) -> None:
        from vector_quantize_pytorch import VectorQuantize

        settings = vector_quantize_settings(
            ema_update=ema_update,
            decay=decay,
            eps=eps,
            commitment_weight=commitment_weight,
            kmeans_init=kmeans_init,
            dead_code_threshold_ratio=dead_code_threshold_ratio,
            rotation_trick=rotation_trick,
        )
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
        )
        self.quantiser = VectorQuantize(dim=code_dim, codebook_size=codebook_size, **settings)
        self.finish_build(init)

    def _quantise(self, z: Tensor, *, freeze: bool = False):
        out, indices, loss = self.quantiser(z, freeze_codebook=freeze)
        return out, indices.long(), {"commit": loss}, {}

    def lookup(self, codes: Tensor) -> Tensor:
        return F.embedding(codes, self.quantiser.codebook.float())
