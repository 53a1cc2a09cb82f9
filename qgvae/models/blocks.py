"""Building blocks of QG-VAE: residual blocks, positional encoding and the two U-Net halves.

Follows the authors' notebook (github.com/DaiDaiLoh/QG-VAE, ``SmallResidualBlock`` /
``UNetBlock`` / ``UNet``):

- :class:`ResBlock`: Imagen-style residual block. The conditioning input (the U-Net's input
  plus a 64-channel positional encoding, resized to the block's resolution) enters through a
  1x1 conv and is added first; then GroupNorm -> SiLU -> 3x3 conv -> GroupNorm -> SiLU -> 3x3 conv,
  plus a skip (1x1 conv when the channel count changes, identity otherwise).
- :func:`positional_encoding`: ``sin / cos(2^i * coordinate)`` for i < 16 frequencies and the two
  coordinates (row / H, column / W): 64 channels.
- :class:`UNet`: recursive U-Net. Level ``i`` runs at nominal resolution ``size / 2^i``; it
  recurses (bilinear x0.5 down, x2 up) while that is above 8 px. ``skip_up`` (encoder) drops the
  upsampling of the first f levels, so the output is ``size / 2^f``; ``skip_down`` (decoder) drops
  the downsampling of the first f levels, so the output is ``size * 2^f``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "norm_groups",
    "ResBlock",
    "ResStack",
    "positional_encoding",
    "resize",
    "UNet",
    "UNetLevel",
]

Cond = Callable[[Tensor], Tensor]  # feature map -> conditioning input at its resolution


def norm_groups(channels: int, max_groups: int = 16) -> int:
    """GroupNorm groups: the largest divisor of ``channels`` up to ``max_groups`` (authors: 16)."""
    g = min(max_groups, channels)
    while channels % g:
        g -= 1
    return g


def conv3x3(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias)


def conv1x1(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, bias=bias)


def resize(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Resize a map to ``size``: box average when shrinking (equal to repeated bilinear x0.5
    for powers of two), bilinear when growing; identity when the size already matches."""
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        kh, kw = x.shape[-2] // size[0], x.shape[-1] // size[1]
        if (size[0] * kh, size[1] * kw) == tuple(x.shape[-2:]):
            return F.avg_pool2d(x, (kh, kw))  # same as "area", cheaper
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def positional_encoding(height: int, width: int, freqs: int = 16) -> Tensor:
    """2-D sin/cos encoding ``[4 * freqs, H, W]`` (64 channels for 16 frequencies).

    Channel order as in the authors' code: for i in range(freqs): sin(2^i r), sin(2^i c),
    cos(2^i r), cos(2^i c), with r = row / H and c = column / W. Computed in float64 (the high
    frequencies have large arguments) and returned as float32, so it is identical on every device.
    """
    rows = (torch.arange(height, dtype=torch.float64) / height)[:, None].expand(height, width)
    cols = (torch.arange(width, dtype=torch.float64) / width)[None, :].expand(height, width)
    grid = torch.stack([rows, cols])  # [2, H, W]
    parts = []
    for i in range(freqs):
        parts += [torch.sin(2.0**i * grid), torch.cos(2.0**i * grid)]
    return torch.cat(parts).float()


class ResBlock(nn.Module):
    """Imagen-style residual block with a conditioning input (authors' ``SmallResidualBlock``).

    ``out = conv2(silu(gn2(conv1(silu(gn1(x + cond_proj(cond))))))) + skip(x)``.
    """

    def __init__(self, c_in: int, c_mid: int, c_out: int, cond_channels: int) -> None:
        super().__init__()
        self.cond_proj = conv1x1(cond_channels, c_in, bias=False)
        self.norm1 = nn.GroupNorm(norm_groups(c_in), c_in)
        self.conv1 = conv3x3(c_in, c_mid)
        self.norm2 = nn.GroupNorm(norm_groups(c_mid), c_mid)
        self.conv2 = conv3x3(c_mid, c_out)
        self.skip = conv1x1(c_in, c_out, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = x + self.cond_proj(cond)
        h = self.conv1(F.silu(self.norm1(h)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class ResStack(nn.Module):
    """``n`` residual blocks ``c_in -> c_mid -> ... -> c_out`` (authors' ``ResidualBlocks``)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, cond_channels: int, n: int) -> None:
        super().__init__()
        chans = [c_in] + [c_mid] * (n - 1) + [c_out]
        self.blocks = nn.ModuleList(
            ResBlock(a, c_mid, b, cond_channels) for a, b in zip(chans[:-1], chans[1:])
        )

    def forward(self, x: Tensor, cond: Cond) -> Tensor:
        c = cond(x)
        for block in self.blocks:
            x = block(x, c)
        return x


class UNetLevel(nn.Module):
    """One U-Net level (authors' ``UNetBlock``); it builds its own child level.

    in_conv (3x3, c_in -> width) -> ResStack(width -> next width) -> [down -> child -> up]
    -> ResStack(-> c_out) -> out_conv (3x3). ``next width = min(2 * width, max_channels)``.

    Output channels (authors' rules): the top level gives ``c_out``; an encoder level that does not
    upsample keeps its child's width; a decoder level that does not downsample shrinks to
    ``min(min_channels * 2^depth, child width)``; any other level returns to ``width``.
    """

    def __init__(
        self,
        *,
        c_in: int,
        width: int,
        c_out: int | None,
        nominal: int,
        depth: int,
        min_channels: int,
        max_channels: int,
        blocks: int,
        cond_channels: int,
        skip_up: int,
        skip_down: int,
    ) -> None:
        super().__init__()
        c_next = min(2 * width, max_channels)
        self.down = depth >= skip_down  # halve the map before the child
        self.up = depth >= skip_up  # double it after the child
        self.in_conv = conv3x3(c_in, width)
        self.in_res = ResStack(width, width, c_next, cond_channels, blocks)
        self.child = None
        if nominal > 8 or depth < skip_up or depth < skip_down:
            self.child = UNetLevel(
                c_in=c_next,
                width=c_next,
                c_out=None,
                nominal=nominal // 2,
                depth=depth + 1,
                min_channels=min_channels,
                max_channels=max_channels,
                blocks=blocks,
                cond_channels=cond_channels,
                skip_up=skip_up,
                skip_down=skip_down,
            )
        inner = self.child.out_channels if self.child is not None else c_next
        if c_out is None:
            if depth < skip_up:
                c_out = inner
            elif depth < skip_down:
                c_out = min(min_channels * 2**depth, inner)
            else:
                c_out = width
        c_mid = inner if depth < skip_down else max(width, c_out)
        self.out_res = ResStack(inner, c_mid, c_out, cond_channels, blocks)
        self.out_conv = conv3x3(c_out, c_out)
        self.out_channels = c_out

    def forward(self, x: Tensor, cond: Cond) -> Tensor:
        x = self.in_res(self.in_conv(x), cond)
        if self.child is not None:
            size = x.shape[-2:]
            if self.down:
                x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
            x = self.child(x, cond)
            if self.up:
                target = size if self.down else (2 * x.shape[-2], 2 * x.shape[-1])
                x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
        return self.out_conv(self.out_res(x, cond))


class UNet(nn.Module):
    """The authors' U-Net (one half of QG-VAE).

    Args:
        in_channels / out_channels: channels of the input and output maps.
        size:         side of the (square) input map; level i runs at nominal ``size / 2^i`` and
                      the recursion stops at the first level whose nominal side is <= 8
                      (or continues while a skip below still applies).
        width:        channels of the top level (encoder: ``min_channels``; the authors' decoder
                      uses ``max_channels``); doubles per level up to ``max_channels``.
        min_channels / max_channels: see :class:`UNetLevel`.
        blocks:       residual blocks per ResStack (two ResStacks per level).
        skip_up:      encoder: the first ``skip_up`` levels do not upsample back (output
                      ``size / 2^skip_up``).
        skip_down:    decoder: the first ``skip_down`` levels do not downsample (output
                      ``size * 2^skip_down``).
        pe_freqs:     frequencies of the positional encoding (64 channels for 16).

    Every residual block is conditioned on ``cat(input, positional encoding)`` resized to its
    resolution. The output is ``out_proj(levels(x) + resize(in_proj(x)))`` with two bias-free 3x3
    convs (the authors' ``mega_residual`` and ``out_projection``).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        size: int,
        width: int,
        min_channels: int,
        max_channels: int,
        blocks: int = 1,
        skip_up: int = 0,
        skip_down: int = 0,
        pe_freqs: int = 16,
    ) -> None:
        super().__init__()
        if skip_up and skip_down:
            raise ValueError("a U-Net skips either upsampling (encoder) or downsampling (decoder)")
        self.register_buffer("pe", positional_encoding(size, size, pe_freqs), persistent=False)
        self.levels = UNetLevel(
            c_in=in_channels,
            width=width,
            c_out=out_channels,
            nominal=size,
            depth=0,
            min_channels=min_channels,
            max_channels=max_channels,
            blocks=blocks,
            cond_channels=in_channels + 4 * pe_freqs,
            skip_up=skip_up,
            skip_down=skip_down,
        )
        self.in_proj = conv3x3(in_channels, out_channels, bias=False)
        self.out_proj = conv3x3(out_channels, out_channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pe = self.pe.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        cond0 = torch.cat([x, pe], dim=1)
        cache: dict[tuple[int, int], Tensor] = {}

        def cond(h: Tensor) -> Tensor:
            key = (h.shape[-2], h.shape[-1])
            if key not in cache:
                cache[key] = resize(cond0, key)
            return cache[key]

        out = self.levels(x, cond)
        return self.out_proj(out + resize(self.in_proj(x), out.shape[-2:]))
