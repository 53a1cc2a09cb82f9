"""The grid encoders / decoders of the convolutional baselines (VQ-VAE, SQ-VAE, VQ-WAE, split
VQ, DQ-VAE) and their initialisations. :mod:`baselines.grid` puts them around a quantiser.

Networks (the constructor argument ``network`` of every grid baseline except DQ-VAE)
-----------------------------------------------------------------------------------
``"grid"`` (the default; the harness's network before issue 10): the network the VQ-WAE paper
*describes* (the DeepMind / van den Oord et al. 2017 VQ-VAE network, ``channels=128,
res_channels=32, res_blocks=2, code_dim=64``)::

    encoder  conv 4x4/s2 (channels/2) ReLU -> conv 4x4/s2 (channels) ReLU
             [-> conv 4x4/s2 (channels) ReLU, once per extra downsampling]
             -> conv 3x3 (channels) -> res_blocks x ResidualLayer -> ReLU -> conv 1x1 (code_dim)
    decoder  conv 3x3 (code_dim -> channels) -> res_blocks x ResidualLayer -> ReLU
             [-> convT 4x4/s2 (channels) ReLU, once per extra downsampling]
             -> convT 4x4/s2 (channels/2) ReLU -> convT 4x4/s2 (in_channels)

with a :class:`ResidualLayer` ``x + conv1x1(ReLU(conv3x3(ReLU(x))))`` (``res_channels`` hidden
channels, convs with bias), every layer its own weights, no BatchNorm, no output activation.

``"vqwae_net32"``: VQ-WAE's released ``networks/net_32.py`` (and ``net_32_mnist.py``), which
produced the VQ-WAE / VQ-VAE numbers of the paper's Table 1 on MNIST, CIFAR-10 and SVHN. The same
layers as ``"grid"`` (the decoder's first layer a convT 3x3/s1, which is the same function
class), except the residual stack (``net_32.py`` 5-46):

- ONE residual layer object repeated ``res_blocks`` times (``[ResidualLayer(...)] * n``): the
  layers share their weights (parameters counted once);
- its two convs have no bias;
- its first ReLU is in place (``nn.ReLU(True)``) and modifies the layer's input before the skip
  is added, so the layer computes ``ReLU(x) + conv1x1(ReLU(conv3x3(ReLU(x))))``; reproduced.

``"sqvae_net32"`` (sony/sqvae's 32-px network) and ``"vqwae_net64"`` (the CelebA network of
VQ-WAE and sony/sqvae): ``code_dim`` wide (``channels`` must equal ``code_dim``;
``res_channels`` is not used), BatchNorm, full-width residual blocks, Sigmoid output; see
:mod:`baselines.bn_nets`. BatchNorm uses batch statistics in training and running statistics in
evaluation, so ``decode(encode(x))`` equals the forward pass exactly in evaluation mode.

``downsample`` is the number of stride-2 convolutions: 2 is the standard network, 1 uses a single
conv 4x4/s2 straight to ``channels`` (and one convT back), 3+ append 4x4/s2 convs at
``channels``. The latent grid is ``image_size / 2**downsample`` per side: 8x8 for 32 px (MNIST is
resized to 32 by the data layer), 16x16 for CelebA 64.

Initialisation (the constructor argument ``init``; :func:`initialise`)
---------------------------------------------------------------------
``"released"``: VQ-WAE's and sony/sqvae's ``weights_init`` (``model.py`` 15-29): every conv and
transposed conv weight N(0, 0.02) (biases keep PyTorch's default), BatchNorm weight N(1, 0.02)
and bias 0; codebook N(0, 1) (``torch.randn(K, D)``). ``"uniform"``: PyTorch's default layers
and a U(-1/K, 1/K) codebook (the harness's VQ-VAE / split VQ before issue 10). ``"randn"``:
PyTorch's default layers and an N(0, 1) codebook (the harness's VQ-WAE / SQ-VAE before it).

Nothing here imports anything heavier than torch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .bn_nets import BN_NETWORKS, BNDecoder, BNEncoder

__all__ = [
    "NETWORKS",
    "INITS",
    "ResidualLayer",
    "ResidualStack",
    "SharedResidualStack",
    "GridHead",
    "GridEncoder",
    "GridDecoder",
    "build_networks",
    "initialise",
]

NETWORKS = ("grid", "vqwae_net32", *BN_NETWORKS)
INITS = ("released", "uniform", "randn")


class ResidualLayer(nn.Module):
    """``x + conv1x1(ReLU(conv3x3(ReLU(x))))`` (van den Oord et al. 2017, Sonnet's VQ-VAE).

    ``bias=False`` drops the convs' biases; ``relu_skip=True`` adds the skip from ``ReLU(x)``
    instead of ``x`` (the effect of VQ-WAE's in-place first ReLU, see the module docstring).
    """

    def __init__(
        self, channels: int, res_channels: int, *, bias: bool = True, relu_skip: bool = False
    ) -> None:
        super().__init__()
        self.relu_skip = relu_skip
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, res_channels, kernel_size=3, padding=1, bias=bias),
            nn.ReLU(),
            nn.Conv2d(res_channels, channels, kernel_size=1, bias=bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        skip = torch.relu(x) if self.relu_skip else x
        return skip + self.block(x)


class ResidualStack(nn.Sequential):
    """``n`` residual layers, each with its own weights, followed by a ReLU."""

    def __init__(self, channels: int, res_channels: int, n: int) -> None:
        super().__init__(*[ResidualLayer(channels, res_channels) for _ in range(n)], nn.ReLU())


class SharedResidualStack(nn.Module):
    """ONE bias-free residual layer (ReLU skip) applied ``n`` times, then a ReLU: VQ-WAE's
    released ``ResidualStack`` (``[ResidualLayer(...)] * n``)."""

    def __init__(self, channels: int, res_channels: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.layer = ResidualLayer(channels, res_channels, bias=False, relu_skip=True)

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(self.n):
            x = self.layer(x)
        return torch.relu(x)


def _stack(channels: int, res_channels: int, n: int, shared: bool) -> nn.Module:
    if shared:
        return SharedResidualStack(channels, res_channels, n)
    return ResidualStack(channels, res_channels, n)


class GridHead(nn.Sequential):
    """conv 3x3 -> residual stack -> conv 1x1 to ``code_dim`` (the encoder's last stage)."""

    def __init__(
        self,
        channels: int,
        res_blocks: int,
        res_channels: int,
        code_dim: int,
        *,
        shared: bool = False,
    ) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            _stack(channels, res_channels, res_blocks, shared),
            nn.Conv2d(channels, code_dim, kernel_size=1),
        )


def down_widths(channels: int, downsample: int) -> list[int]:
    """Output widths of the stride-2 convs: ``[channels/2, channels, channels, ...]``."""
    if downsample < 1:
        raise ValueError(f"downsample must be >= 1, got {downsample}")
    if downsample == 1:
        return [channels]
    return [channels // 2] + [channels] * (downsample - 1)


class GridEncoder(nn.Module):
    """Image ``[B, C, H, W]`` -> latent grid ``[B, code_dim, H / 2^d, W / 2^d]``.

    ``trunk`` (the stride-2 convs, each followed by ReLU) and ``head`` (:class:`GridHead`) are
    separate attributes so that DQ-VAE can branch a coarser map off the trunk. ``shared=True``:
    VQ-WAE's released residual stack (:class:`SharedResidualStack`).
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
        shared: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for width in down_widths(channels, downsample):
            layers += [nn.Conv2d(c, width, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            c = width
        self.trunk = nn.Sequential(*layers)
        self.head = GridHead(channels, res_blocks, res_channels, code_dim, shared=shared)

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
        shared: bool = False,
    ) -> None:
        super().__init__()
        first = (
            nn.ConvTranspose2d(code_dim, channels, kernel_size=3, padding=1)
            if shared  # the released net_32's first layer
            else nn.Conv2d(code_dim, channels, kernel_size=3, padding=1)
        )
        self.head = nn.Sequential(first, _stack(channels, res_channels, res_blocks, shared))
        widths = down_widths(channels, downsample)[::-1][1:] + [out_channels]
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


def build_networks(
    network: str,
    *,
    in_channels: int,
    channels: int,
    res_blocks: int,
    res_channels: int,
    downsample: int,
    code_dim: int,
    part: str = "encoder",
) -> nn.Module:
    """The encoder (``part="encoder"``) or decoder (``"decoder"``) of ``network`` (one of
    :data:`NETWORKS`)."""
    if network in BN_NETWORKS:
        net = dict(style=network, width=channels, res_blocks=res_blocks, downsample=downsample)
        if part == "encoder":
            return BNEncoder(in_channels=in_channels, **net)
        return BNDecoder(out_channels=in_channels, **net)
    net = dict(
        channels=channels,
        res_blocks=res_blocks,
        res_channels=res_channels,
        downsample=downsample,
        code_dim=code_dim,
        shared=network == "vqwae_net32",
    )
    if part == "encoder":
        return GridEncoder(in_channels=in_channels, **net)
    return GridDecoder(out_channels=in_channels, **net)


@torch.no_grad()
def initialise(modules: nn.Module, codebook: Tensor | None, init: str) -> None:
    """Apply initialisation ``init`` (one of :data:`INITS`, see the module docstring) to the
    layers of ``modules`` and to ``codebook`` (a ``[..., K, D]`` parameter, or None)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    if init == "released":
        for m in modules.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
    if codebook is not None:
        if init == "uniform":
            k = codebook.shape[-2]
            codebook.uniform_(-1.0 / k, 1.0 / k)
        else:
            codebook.normal_()
