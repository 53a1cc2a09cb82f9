"""The BatchNorm ResNet encoders / decoders of the released SQ-VAE and VQ-WAE code.

``"sqvae_net32"``: sony/sqvae ``vision/networks/net_32.py`` (10-66), the SQ-VAE paper's 32-px
network. ``"vqwae_net64"``: VQ-WAE ``networks/net_64.py`` (8-66; sony/sqvae's ``net_64.py`` is the
same), the CelebA 64 network. Both are ``width`` (= the code dimension) wide, with BatchNorm
after every conv and a Sigmoid output::

    encoder  conv 4x4/s2 (w/2) BN ReLU -> conv 4x4/s2 (w) BN ReLU [-> ... per extra downsampling]
             -> conv 3x3 (w) [BN ReLU: sqvae_net32 only] -> res_blocks x ResBlockBN
    decoder  (res_blocks: sqvae_net32 | res_blocks - 1: vqwae_net64) x ResBlockBN
             -> convT 3x3 (w) BN ReLU [-> convT 4x4/s2 (w) BN ReLU ...]
             -> convT 4x4/s2 (w/2) BN ReLU -> convT 4x4/s2 (in_channels) -> Sigmoid

with ``ResBlockBN`` = ``x + BN(conv1x1(ReLU(BN(conv3x3(ReLU(x))))))``. ``vqwae_net64`` with
``res_blocks=6``, ``width=64`` on RGB has 319,584 encoder and 278,179 decoder parameters, like
the released one; ``sqvae_net32`` with ``res_blocks=2`` 154,336 / 154,147. ``downsample`` other
than 2 (the released value) appends / drops 4x4/s2 stages at full width, like
:mod:`baselines.grid`.

Notes: the released Sigmoid is kept, so reconstructions are in (0, 1) (the harness's other
networks have no output activation); sony's ``nn.ReLU(True)`` (in place) directly after a
BatchNorm changes nothing and is a plain ReLU here.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["BN_NETWORKS", "ResBlockBN", "BNEncoder", "BNDecoder"]

BN_NETWORKS = ("sqvae_net32", "vqwae_net64")


def _check_style(style: str) -> None:
    if style not in BN_NETWORKS:
        raise ValueError(f"style must be one of {', '.join(BN_NETWORKS)}; got {style!r}")


def _widths(width: int, downsample: int) -> list[int]:
    if downsample < 1:
        raise ValueError(f"downsample must be >= 1, got {downsample}")
    return [width] if downsample == 1 else [width // 2] + [width] * (downsample - 1)


class ResBlockBN(nn.Module):
    """``x + BN(conv1x1(ReLU(BN(conv3x3(ReLU(x))))))`` (``networks/util.py`` 4-21, both repos)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(width, width, kernel_size=3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, kernel_size=1),
            nn.BatchNorm2d(width),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class BNEncoder(nn.Module):
    """Image -> latent grid ``[B, width, H / 2^d, W / 2^d]`` (``trunk`` then ``head``)."""

    def __init__(
        self, *, style: str, in_channels: int, width: int, res_blocks: int, downsample: int
    ) -> None:
        super().__init__()
        _check_style(style)
        layers: list[nn.Module] = []
        c = in_channels
        for w in _widths(width, downsample):
            layers += [nn.Conv2d(c, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        self.trunk = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Conv2d(width, width, kernel_size=3, padding=1)]
        if style == "sqvae_net32":
            head += [nn.BatchNorm2d(width), nn.ReLU()]
        head += [ResBlockBN(width) for _ in range(res_blocks)]  # res (num_rb - 1) + res_m
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


class BNDecoder(nn.Module):
    """Latent grid -> image in (0, 1) (Sigmoid output)."""

    def __init__(
        self, *, style: str, out_channels: int, width: int, res_blocks: int, downsample: int
    ) -> None:
        super().__init__()
        _check_style(style)
        n_res = res_blocks if style == "sqvae_net32" else res_blocks - 1
        self.res = nn.Sequential(*[ResBlockBN(width) for _ in range(n_res)])
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(width, width, kernel_size=3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        widths = _widths(width, downsample)[::-1][1:] + [out_channels]
        c = width
        for i, w in enumerate(widths):
            layers.append(nn.ConvTranspose2d(c, w, kernel_size=4, stride=2, padding=1))
            if i < len(widths) - 1:
                layers += [nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        layers.append(nn.Sigmoid())
        self.convt = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.convt(self.res(z))
