"""Shared grid encoder / decoder of the convolutional baselines (VQ-VAE, SQ-VAE, VQ-WAE, split VQ,
DQ-VAE) and the token <-> grid plumbing they have in common.

Architecture (the VQ-WAE paper's baseline network, which is the DeepMind / van den Oord et al.
2017 VQ-VAE network: ``num_hiddens=128, num_residual_hiddens=32, num_residual_layers=2,
embedding_dim=64``)::

    encoder  conv 4x4/s2 (channels/2) ReLU -> conv 4x4/s2 (channels) ReLU
             [-> conv 4x4/s2 (channels) ReLU, once per extra downsampling]
             -> conv 3x3 (channels) -> res_blocks x ResidualLayer -> ReLU -> conv 1x1 (code_dim)
    decoder  conv 3x3 (code_dim -> channels) -> res_blocks x ResidualLayer -> ReLU
             [-> convT 4x4/s2 (channels) ReLU, once per extra downsampling]
             -> convT 4x4/s2 (channels/2) ReLU -> convT 4x4/s2 (in_channels)

``downsample`` is the number of stride-2 convolutions: 1 uses a single conv 4x4/s2 straight to
``channels`` (and one convT back), 2 is the standard network, 3+ append 4x4/s2 convs at
``channels``. The latent grid is ``image_size / 2**downsample`` per side: 8x8 for 32 px
(MNIST is resized to 32 by the data layer), 16x16 for CelebA 64, 4x4 / 16x16 for downsample 3 / 1
on 32 px. A :class:`ResidualLayer` is ``x + conv1x1(ReLU(conv3x3(ReLU(x))))`` with
``res_channels`` hidden channels.

Tokens are the grid cells, flattened row-major: ``[B, D, h, w] -> [B, h*w, D]``.

Deviations from the public VQ-WAE / SQ-VAE code (``networks/net_32.py``, ``net_64.py``, whose
networks produced the VQ-WAE paper's numbers): that code uses ``dim_z``-wide convolutions
(32 -> 64 channels) with BatchNorm after every conv, residual blocks that keep the full width in
both convs (3x3 and 1x1, BatchNorm each), no 1x1 projection to the code dimension, N(0, 0.02)
conv initialisation and a final Sigmoid. Here: the network the VQ-WAE paper describes (above),
no BatchNorm (train / eval behave identically, so ``decode(encode(x))`` equals the eval forward
pass exactly), PyTorch's default initialisation, and no output activation (the harness's
interface, shared with QG-VAE).

Nothing here imports anything heavier than torch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from qgvae.models.interface import TokenAutoencoder

__all__ = [
    "ResidualLayer",
    "ResidualStack",
    "GridHead",
    "GridEncoder",
    "GridDecoder",
    "GridAutoencoder",
    "grid_to_tokens",
    "tokens_to_grid",
]


class ResidualLayer(nn.Module):
    """``x + conv1x1(ReLU(conv3x3(ReLU(x))))`` (van den Oord et al. 2017, Sonnet's VQ-VAE)."""

    def __init__(self, channels: int, res_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, res_channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(res_channels, channels, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResidualStack(nn.Sequential):
    """``n`` residual layers followed by a ReLU (as in the original residual stack)."""

    def __init__(self, channels: int, res_channels: int, n: int) -> None:
        super().__init__(*[ResidualLayer(channels, res_channels) for _ in range(n)], nn.ReLU())


class GridHead(nn.Sequential):
    """conv 3x3 -> residual stack -> conv 1x1 to ``code_dim`` (the encoder's last stage)."""

    def __init__(self, channels: int, res_blocks: int, res_channels: int, code_dim: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            ResidualStack(channels, res_channels, res_blocks),
            nn.Conv2d(channels, code_dim, kernel_size=1),
        )


def _down_widths(channels: int, downsample: int) -> list[int]:
    """Output widths of the stride-2 convs: ``[channels/2, channels, channels, ...]``."""
    if downsample < 1:
        raise ValueError(f"downsample must be >= 1, got {downsample}")
    if downsample == 1:
        return [channels]
    return [channels // 2] + [channels] * (downsample - 1)


class GridEncoder(nn.Module):
    """Image ``[B, C, H, W]`` -> latent grid ``[B, code_dim, H / 2^d, W / 2^d]``.

    ``trunk`` (the stride-2 convs, each followed by ReLU) and ``head`` (:class:`GridHead`) are
    separate attributes so that DQ-VAE can branch a coarser map off the trunk.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int,
        res_blocks: int,
        res_channels: int,
        downsample: int,
        code_dim: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for width in _down_widths(channels, downsample):
            layers += [nn.Conv2d(c, width, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            c = width
        self.trunk = nn.Sequential(*layers)
        self.head = GridHead(channels, res_blocks, res_channels, code_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


class GridDecoder(nn.Module):
    """Latent grid ``[B, code_dim, h, w]`` -> image ``[B, out_channels, h * 2^d, w * 2^d]``
    (mirror of :class:`GridEncoder`; no output activation)."""

    def __init__(
        self,
        *,
        out_channels: int,
        channels: int,
        res_blocks: int,
        res_channels: int,
        downsample: int,
        code_dim: int,
    ) -> None:
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(code_dim, channels, kernel_size=3, padding=1),
            ResidualStack(channels, res_channels, res_blocks),
        )
        widths = _down_widths(channels, downsample)[::-1][1:] + [out_channels]
        layers: list[nn.Module] = []
        c = channels
        for i, width in enumerate(widths):
            layers.append(nn.ConvTranspose2d(c, width, kernel_size=4, stride=2, padding=1))
            if i < len(widths) - 1:
                layers.append(nn.ReLU())
            c = width
        self.up = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.up(self.head(z))


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


class GridAutoencoder(TokenAutoencoder):
    """Base of the grid baselines: encoder, decoder, grid size and the token plumbing.

    Subclasses add ``self.quantiser`` (a :class:`qgvae.models.VectorQuantiser` with
    ``codebook="shared"``) and implement ``forward``; ``encode`` / ``decode`` are the nearest
    codeword of each cell and its lookup. ``self.grid`` is the latent side
    ``image_size / 2**downsample``, ``self.cells = grid**2``. A subclass that creates modules of
    its own between the encoder and the decoder passes ``build_decoder=False`` and calls
    :meth:`build_decoder` itself, so that parameters are created (and initialised from the RNG)
    in the order of the network.
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
        )
        self.in_channels, self.image_size = in_channels, image_size
        self.code_dim, self.downsample = code_dim, downsample
        self.grid = image_size // 2**downsample
        self.cells = self.grid * self.grid
        self.codebook_size = codebook_size
        self.num_tokens = self.cells
        self.net = dict(
            channels=channels,
            res_blocks=res_blocks,
            res_channels=res_channels,
            downsample=downsample,
            code_dim=code_dim,
        )
        self.encoder = GridEncoder(in_channels=in_channels, **self.net)
        if build_decoder:
            self.build_decoder()

    def build_decoder(self) -> None:
        """Create ``self.decoder``, the mirror of the encoder."""
        self.decoder = GridDecoder(out_channels=self.in_channels, **self.net)

    def tokens(self, x: Tensor) -> Tensor:
        """Encoder output as tokens ``[B, cells, code_dim]``."""
        return grid_to_tokens(self.encoder(x))

    def decode_tokens(self, q: Tensor) -> Tensor:
        """Quantised tokens ``[B, cells, code_dim]`` -> image."""
        return self.decoder(tokens_to_grid(q, self.grid, self.grid))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images -> the nearest codeword of every cell, ``LongTensor [B, num_tokens]``."""
        return self.quantiser.nearest(self.tokens(x))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, num_tokens]`` -> images (equals the eval forward pass's reconstruction)."""
        return self.decode_tokens(self.quantiser.lookup(codes))
