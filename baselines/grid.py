"""The grid autoencoder shared by the convolutional baselines (VQ-VAE, SQ-VAE, VQ-WAE, split
VQ, DQ-VAE, and the library quantisers of :mod:`baselines.libvq`): a grid encoder, a quantiser of
the subclass's choice over the grid cells, a grid decoder, and the token <-> grid plumbing.

The networks (``network``: ``grid``, ``vqwae_net32``, ``sqvae_net32``, ``vqwae_net64``) and their
initialisations (``init``: ``released``, ``uniform``, ``randn``) are in
:mod:`baselines.grid_nets`, re-exported here.

Tokens are the grid cells, flattened row-major: ``[B, D, h, w] -> [B, h*w, D]``.

Nothing here imports anything heavier than torch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qgvae.models.interface import TokenAutoencoder

from .bn_nets import BN_NETWORKS
from .grid_nets import (
    INITS,
    NETWORKS,
    GridDecoder,
    GridEncoder,
    GridHead,
    ResidualLayer,
    ResidualStack,
    SharedResidualStack,
    build_networks,
    initialise,
)

__all__ = [
    "NETWORKS",
    "INITS",
    "ResidualLayer",
    "ResidualStack",
    "SharedResidualStack",
    "GridHead",
    "GridEncoder",
    "GridDecoder",
    "GridAutoencoder",
    "build_networks",
    "initialise",
    "grid_to_tokens",
    "tokens_to_grid",
]


def grid_to_tokens(z: Tensor) -> Tensor:
    """``[B, D, h, w] -> [B, h*w, D]`` (cells row-major)."""
    return z.flatten(2).transpose(1, 2)


def tokens_to_grid(t: Tensor, h: int, w: int) -> Tensor:
    """``[B, h*w, D] -> [B, D, h, w]`` (inverse of :func:`grid_to_tokens`)."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)


def check_grid_args(
    *,
    in_channels: int,
    image_size: int,
    channels: int,
    res_blocks: int,
    res_channels: int,
    downsample: int,
    code_dim: int,
    codebook_size: int,
    network: str = "grid",
) -> None:
    """Reject impossible grid configurations with a message that names the argument."""
    for name, value in (
        ("in_channels", in_channels),
        ("image_size", image_size),
        ("channels", channels),
        ("res_channels", res_channels),
        ("downsample", downsample),
        ("code_dim", code_dim),
        ("codebook_size", codebook_size),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}; got {network!r}")
    if res_blocks < 0:
        raise ValueError(f"res_blocks must be >= 0, got {res_blocks}")
    if image_size % (2**downsample):
        raise ValueError(
            f"image_size {image_size} is not divisible by 2**downsample = {2**downsample}"
        )
    if downsample >= 2 and channels % 2:
        raise ValueError(f"channels must be even (the first conv has channels/2), got {channels}")
    if codebook_size < 2:
        raise ValueError(f"codebook_size must be >= 2, got {codebook_size}")
    if network in BN_NETWORKS:
        if channels != code_dim:
            raise ValueError(
                f"network {network!r} is code_dim wide: set channels = code_dim "
                f"(got channels {channels}, code_dim {code_dim})"
            )
        if res_blocks < 1:
            raise ValueError(f"network {network!r} needs res_blocks >= 1, got {res_blocks}")


class GridAutoencoder(TokenAutoencoder):
    """Base of the grid baselines: encoder, decoder, grid size and the token plumbing.

    Subclasses add ``self.quantiser`` (a :class:`qgvae.models.VectorQuantiser` with
    ``codebook="shared"``, or anything with ``nearest`` / ``lookup``) and implement ``forward``;
    ``encode`` / ``decode`` are the nearest codeword of each cell and its lookup. ``self.grid`` is
    the latent side ``image_size / 2**downsample``, ``self.cells = grid**2``. A subclass that
    creates modules of its own between the encoder and the decoder passes
    ``build_decoder=False`` and calls :meth:`build_decoder` itself, so that parameters are
    created (and initialised from the RNG) in the order of the network.
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
        network: str = "grid",
        build_decoder: bool = True,
    ) -> None:
        super().__init__()
        check_grid_args(
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
        self.in_channels, self.image_size = in_channels, image_size
        self.code_dim, self.downsample = code_dim, downsample
        self.grid = image_size // 2**downsample
        self.cells = self.grid * self.grid
        self.codebook_size = codebook_size
        self.num_tokens = self.cells
        self.network = network
        self.net = dict(
            in_channels=in_channels,
            channels=channels,
            res_blocks=res_blocks,
            res_channels=res_channels,
            downsample=downsample,
            code_dim=code_dim,
        )
        self.encoder = build_networks(network, part="encoder", **self.net)
        if build_decoder:
            self.build_decoder()

    def build_decoder(self) -> None:
        """Create ``self.decoder``, the mirror of the encoder."""
        self.decoder = build_networks(self.network, part="decoder", **self.net)

    def tokens(self, x: Tensor) -> Tensor:
        """Encoder output as tokens ``[B, cells, code_dim]``."""
        return grid_to_tokens(self.encoder(x))

    def decode_tokens(self, q: Tensor) -> Tensor:
        """Quantised tokens ``[B, cells, code_dim]`` -> image. Under autocast the tokens are cast
        to the autocast dtype first, so that the forward pass (whose tokens may already be in
        that dtype) and ``decode`` (float32 lookups) feed the decoder identical values even when
        its first layer is a residual block (the BatchNorm networks)."""
        grid = tokens_to_grid(q, self.grid, self.grid)
        kind = grid.device.type
        if torch.is_autocast_enabled(kind):
            grid = grid.to(torch.get_autocast_dtype(kind))
        return self.decoder(grid)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images -> the nearest codeword of every cell, ``LongTensor [B, num_tokens]``."""
        return self.quantiser.nearest(self.tokens(x))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, num_tokens]`` -> images (equals the eval forward pass's reconstruction)."""
        return self.decode_tokens(self.quantiser.lookup(codes))
