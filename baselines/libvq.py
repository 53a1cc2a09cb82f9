"""The grid network of :mod:`baselines.grid` around a quantiser of ``vector-quantize-pytorch``
(lucidrains, pinned at 1.34.1): the shared base of the ``fsq``, ``lfq``, ``rvq``, ``simvq`` and
``rotvq`` methods (:mod:`baselines.fsq`, :mod:`baselines.lfq`, :mod:`baselines.rvq`,
:mod:`baselines.simvq`, :mod:`baselines.rotvq`).

One network, one evaluator: the encoder, the decoder, the token plumbing (the ``h x w`` cells
of the latent grid, row-major, as ``[B, cells, code_dim]`` tokens), the initialisation options and
the training recipe are those of VQ-VAE (:mod:`baselines.vqvae`); only the quantiser differs.

What this base does for every library quantiser (``self.quantiser``, built by the subclass):

- **fp32.** The quantiser runs with autocast disabled on float32 tokens (projections included),
  as the harness's own quantisers do. The library forces fp32 only under CUDA autocast and only
  around the rounding step (FSQ, LFQ), and FSQ loses codebook use in bf16 (the library's issue
  #114); the decoder then gets the quantised tokens in the autocast dtype
  (:meth:`GridAutoencoder.decode_tokens`), as in ``decode``.
- **Tokens, not maps.** The quantiser sees ``[B, cells, code_dim]`` sequences, so the library's
  channel-first options (``channel_first``, ``accept_image_fmap``) are set off explicitly.
- **Exact round trip.** In evaluation mode the forward pass returns the codes' codewords as
  ``decode`` computes them (:meth:`lookup`), with the library output's gradient
  (:func:`qgvae.models.quantise.straight_through`): the library's own straight-through /
  rotation outputs equal the codewords only up to float round-off, and an exponential-moving-
  average codebook has moved by the time a lookup runs in training mode, so training keeps the
  library's output unchanged.
- **Codes.** ``LongTensor [B, num_tokens]``: one code per cell, or ``slots_per_cell`` codes per
  cell (residual VQ's depth), cell-major (``codes[:, cell * slots + s]``), each in
  ``[0, codebook_size)``. The rate is ``num_tokens * log2(codebook_size)`` unless a subclass
  overrides :meth:`bits_per_image`.

Subclasses implement ``_quantise(z, *, freeze) -> (out, codes, losses, stats)`` (``z`` float32
``[B, cells, code_dim]``; ``out`` the library's output; ``codes [B, num_tokens]``; ``losses``
named loss terms, summed by the trainer with the reconstruction MSE; ``freeze=True`` when
``encode`` calls it: an EMA codebook must not move then) and ``lookup(codes)`` (float32 tokens
``[B, cells, code_dim]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from qgvae.models.interface import ModelOutput
from qgvae.models.quantise import code_perplexity, straight_through

from .grid import GridAutoencoder, initialise

__all__ = ["LIBRARY", "LibraryQuantisedGrid", "power_of_two"]

# the library these methods wrap; pinned in pyproject.toml and environment.yml
LIBRARY = "vector-quantize-pytorch==1.34.1"


def power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


def _fp32(device: torch.device):
    """Autocast off (fp32 quantisation on every device type)."""
    return torch.autocast(device_type=device.type, enabled=False)


class LibraryQuantisedGrid(GridAutoencoder):
    """Base of the library-quantiser grid methods. See the module docstring.

    ``slots_per_cell``: codes per grid cell (residual VQ: its depth), so that
    ``num_tokens = cells * slots_per_cell``. Subclasses build ``self.quantiser`` between
    ``super().__init__`` and :meth:`finish_build` (which creates the decoder and initialises).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: int,
        channels: int,
        res_blocks: int,
        res_channels: int,
        downsample: int,
        code_dim: int,
        codebook_size: int,
        network: str,
        slots_per_cell: int = 1,
    ) -> None:
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
            build_decoder=False,
        )
        if slots_per_cell < 1:
            raise ValueError(f"slots_per_cell must be >= 1, got {slots_per_cell}")
        self.slots_per_cell = slots_per_cell
        self.num_tokens = self.cells * slots_per_cell

    def finish_build(self, init: str) -> None:
        """Create the decoder (after the quantiser: parameters in network order) and apply
        ``init`` to the encoder and decoder layers (the library initialises its quantiser)."""
        self.build_decoder()
        initialise(self.encoder, None, init)
        initialise(self.decoder, None, init)

    # -- per quantiser ------------------------------------------------------------------------
    def _quantise(self, z: Tensor, *, freeze: bool = False):  # pragma: no cover - abstract
        raise NotImplementedError

    def lookup(self, codes: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _perplexity(self, codes: Tensor) -> Tensor:
        """Batch perplexity of the codes (per slot's codebook when ``slots_per_cell > 1``)."""
        if self.slots_per_cell == 1:
            return code_perplexity(codes, self.codebook_size)
        book = torch.arange(codes.shape[1], device=codes.device) % self.slots_per_cell
        return code_perplexity(codes, self.codebook_size, book, self.slots_per_cell)

    # -- TokenAutoencoder ---------------------------------------------------------------------
    def forward(self, x: Tensor) -> ModelOutput:
        z = self.tokens(x)
        with _fp32(z.device):
            out, codes, losses, stats = self._quantise(z.float())
            if not self.training:
                out = straight_through(out, self.lookup(codes))
        recon = self.decode_tokens(out)
        losses = {"mse": F.mse_loss(recon.float(), x.float()), **losses}
        stats = {"perplexity": self._perplexity(codes), **stats}
        return ModelOutput(recon, losses, codes, stats)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images -> codes ``LongTensor [B, num_tokens]`` (the quantiser's choice; no codebook
        update, whatever the mode)."""
        z = self.tokens(x)
        with _fp32(z.device):
            return self._quantise(z.float(), freeze=True)[1]

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, num_tokens]`` -> images (equals the eval forward pass's reconstruction)."""
        if codes.dim() != 2 or codes.shape[1] != self.num_tokens:
            raise ValueError(
                f"expected codes of shape [B, {self.num_tokens}], got {tuple(codes.shape)}"
            )
        with _fp32(codes.device):
            q = self.lookup(codes.long())
        return self.decode_tokens(q)
