"""SimVQ (Zhu, Li, Zhang, Li, Ouyang, Hu 2024, "Addressing Representation Collapse in Vector
Quantized Models with One Linear Layer", arXiv 2411.02038), on the shared grid network.

Registry name ``simvq``. Quantiser: ``vector_quantize_pytorch.SimVQ`` (1.34.1). The codebook is
implicit: a FROZEN random basis ``C [K, D]`` (N(0, 1/D), a saved buffer) times ONE learned linear
map ``W`` (D x D, no bias), ``codebook = C W``; every code moves whenever ``W`` does, which is the
paper's remedy for codebook collapse. Nearest codeword (Euclidean) of each cell's vector;
straight-through estimator (the paper's; ``rotation_trick=False``, where the library defaults to
True).

Rate: ``cells * log2(codebook_size)`` (576 bits for K = 512 on the 8x8 grid).

Loss terms: ``mse``; ``commit`` = the library's
``commitment_weight * (mean ||sg[z] - e||^2 + input_to_quantize_commit_loss_weight *
mean ||z - sg[e]||^2)`` (the codebook term trains ``W``; the paper's beta = 0.25 on the second).

Settings (constructor arguments, recorded in the run's config.yaml): ``codebook_size`` 512,
``rotation_trick`` False (library: True), ``input_to_quantize_commit_loss_weight`` 0.25 and
``commitment_weight`` 1.0 (library defaults). Library settings fixed here (its defaults):
``codebook_transform=None`` (the bias-free ``nn.Linear(D, D)``), ``init_fn`` identity,
``frozen_codebook_dim=None`` (= ``code_dim``), ``channel_first=False`` (tokens; the library
needs True for conv maps); fp32 (:mod:`baselines.libvq`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .libvq import LibraryQuantisedGrid

__all__ = ["SimVQVAE"]


class SimVQVAE(LibraryQuantisedGrid):
    """SimVQ on the shared grid network. See the module docstring."""

    display_name = "SimVQ"

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
        rotation_trick: bool = False,
        input_to_quantize_commit_loss_weight: float = 0.25,
        commitment_weight: float = 1.0,
    ) -> None:
        from vector_quantize_pytorch import SimVQ

        for key, value in (
            ("input_to_quantize_commit_loss_weight", input_to_quantize_commit_loss_weight),
            ("commitment_weight", commitment_weight),
        ):
            if value < 0:
                raise ValueError(f"model.{key} must be >= 0, got {value}")
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
        self.quantiser = SimVQ(
            dim=code_dim,
            codebook_size=codebook_size,
            codebook_transform=None,
            channel_first=False,
            rotation_trick=rotation_trick,
            input_to_quantize_commit_loss_weight=input_to_quantize_commit_loss_weight,
            commitment_weight=commitment_weight,
            frozen_codebook_dim=None,
        )
        self.finish_build(init)

    def _quantise(self, z: Tensor, *, freeze: bool = False):
        out, indices, loss = self.quantiser(z)
        return out, indices.long(), {"commit": loss}, {}

    def lookup(self, codes: Tensor) -> Tensor:
        return F.embedding(codes, self.quantiser.codebook.float())
