"""The model interface shared by QG-VAE and every baseline (see the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ModelOutput:
    """What ``forward`` returns.

    recon:  reconstruction ``[B, C, H, W]``.
    losses: named scalar loss terms; the trainer minimises their sum.
    codes:  ``LongTensor [B, T]`` of chosen code indices (``-1``: token unused for that image).
    stats:  diagnostics to log: floats or detached 0-d tensors (converted only when logged,
            so that a training step never waits on the device).
    """

    recon: torch.Tensor
    losses: dict[str, torch.Tensor]
    codes: torch.Tensor
    stats: dict[str, float | torch.Tensor] = field(default_factory=dict)

    @property
    def loss(self) -> torch.Tensor:
        return sum(self.losses.values())


class TokenAutoencoder(nn.Module):
    """Base class: a discrete autoencoder whose latent is ``num_tokens`` codes of ``codebook_size``.

    Subclasses set ``num_tokens`` and ``codebook_size`` in ``__init__`` and implement
    ``forward``, ``encode`` and ``decode``. ``after_step`` is optional.
    """

    num_tokens: int
    codebook_size: int
    display_name: str = ""  # how tables and figures name the method (default: its name)

    def forward(self, x: torch.Tensor) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, step: int) -> dict[str, float]:
        """Hook called after each optimiser step (``step`` counts completed steps)."""
        return {}

    def bits_per_image(self) -> float:
        """Rate of the discrete code: ``num_tokens * log2(codebook_size)``."""
        return self.num_tokens * math.log2(self.codebook_size)

    def bits_for_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Measured rate of each image, float64 ``[B]``, from its codes ``[B, T]``: the used
        tokens (``codes >= 0``) times ``log2(codebook_size)``. Methods that send side information
        (DQ-VAE's routing mask) add it."""
        return (codes >= 0).sum(1).double() * math.log2(self.codebook_size)
