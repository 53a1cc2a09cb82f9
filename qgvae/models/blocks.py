"""Building blocks of QG-VAE: residual blocks, positional encoding and the two U-Net halves.

The network is the authors' (github.com/DaiDaiLoh/QG-VAE, ``QG-VAE.ipynb``: ``SmallResidualBlock``,
``ResidualBlocks``, ``UNetBlock``, ``UNet``), checked by copying their weights into ours: the
outputs agree to float32 rounding and the codes are identical (``docs/fidelity.md``).

- :class:`ResBlock`: Imagen-style residual block. The conditioning input (the U-Net's input plus a
  64-channel positional encoding, brought to the block's resolution as below) enters through a
  bias-free 1x1 conv and is added first; then GroupNorm -> SiLU -> 3x3 conv -> GroupNorm -> SiLU ->
  3x3 conv, plus a bias-free 1x1 conv on the skip path, *always*, also where the channel count does
  not change (the authors' ``conv_res``).
- :func:`positional_encoding`: ``sin / cos(2^i * coordinate)`` for i < 16 frequencies and the two
  coordinates (row / H, column / W): 64 channels.
- :class:`UNet`: recursive U-Net without skip concatenations. Level ``i`` runs at nominal resolution
  ``size / 2^i``; it recurses (bilinear x0.5 down, x2 up) while that is above 8 px. ``skip_up``
  (encoder) drops the upsampling of the first f levels, so the output is ``size / 2^f``;
  ``skip_down`` (decoder) drops the downsampling of the first f levels, so the output is
  ``size * 2^f``.

How the conditioning reaches each level (as the authors' ``UNetBlock.forward`` does it): a level
receives its conditioning map at the size of its input. Its first residual stack uses it as it is.
Its child receives it subsampled by nearest neighbour, x0.5 per step (every 2nd pixel), until it
matches the child's input. Its second residual stack receives it resized to that stack's input in
repeated bilinear x2 / x0.5 steps. Every resize of a skip path is such a chain of x2 / x0.5 steps
(:func:`resize_in_steps`), never one jump to the target size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "norm_groups",
    "ResBlock",
    "ResStack",
    "positional_encoding",
    "halve",
    "double",
    "resize_in_steps",
    "UNet",
    "UNetLevel",
]

HALVING = ("bilinear", "nearest", "average")


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


def halve(x: Tensor, mode: str = "bilinear") -> Tensor:
    """One x0.5 step, ``floor(side / 2)`` per side, as the authors' layers compute it.

    ``"bilinear"``: ``nn.Upsample(scale_factor=0.5, mode="bilinear")`` (the mean of each 2x2 cell);
    ``"nearest"``: ``nn.Upsample(scale_factor=0.5, mode="nearest")`` (every 2nd pixel, starting at
    the first); ``"average"``: ``nn.AvgPool2d(2)``.
    """
    if mode == "average":
        return F.avg_pool2d(x, 2)
    if mode == "nearest":
        return F.interpolate(x, scale_factor=0.5, mode="nearest")
    if mode == "bilinear":
        return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    raise ValueError(f"halving mode must be one of {HALVING}, got {mode!r}")


def double(x: Tensor) -> Tensor:
    """One bilinear x2 step (``nn.Upsample(scale_factor=2, mode="bilinear")``)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def resize_in_steps(x: Tensor, side: int, down: str = "bilinear") -> Tensor:
    """Bring a square map to ``side`` in x2 / x0.5 steps (the authors' ``while`` loops):
    :func:`double` while it is smaller, :func:`halve` (``down``) while it is larger."""
    while x.shape[-2] < side:
        x = double(x)
    while x.shape[-2] > side:
        x = halve(x, down)
    return x


def positional_encoding(height: int, width: int, freqs: int = 16) -> Tensor:
    """2-D sin/cos encoding ``[4 * freqs, H, W]`` (64 channels for 16 frequencies).

    Channel order as in the authors' code: for i in range(freqs): sin(2^i r), sin(2^i c),
    cos(2^i r), cos(2^i c), with r = row / H and c = column / W. The coordinates are the authors'
    float32 values (``row / H`` rounded to float32: at 28 px they are not exact); their multiples
    and sines are then computed in float64 and rounded once, so the encoding is the correctly
    rounded value of the authors' arguments and identical on every device (float32 sines of
    arguments up to 2^15 differ by an ulp between CPU and CUDA libraries).
    """
    rows = (torch.arange(height, dtype=torch.float64) / height).float().double()
    cols = (torch.arange(width, dtype=torch.float64) / width).float().double()
    grid = torch.stack(
        [rows[:, None].expand(height, width), cols[None, :].expand(height, width)]
    )  # [2, H, W]
    parts = []
    for i in range(freqs):
        parts += [torch.sin(2.0**i * grid), torch.cos(2.0**i * grid)]
    return torch.cat(parts).float()


class ResBlock(nn.Module):
    """Imagen-style residual block with a conditioning input (authors' ``SmallResidualBlock``).

    ``out = conv2(silu(gn2(conv1(silu(gn1(x + cond_proj(cond))))))) + skip(x)``, ``skip`` a
    bias-free 1x1 conv (also when ``c_in == c_out``), ``cond`` at the resolution of ``x``.
    """

    def __init__(self, c_in: int, c_mid: int, c_out: int, cond_channels: int) -> None:
        super().__init__()
        self.cond_proj = conv1x1(cond_channels, c_in, bias=False)
        self.norm1 = nn.GroupNorm(norm_groups(c_in), c_in)
        self.conv1 = conv3x3(c_in, c_mid)
        self.norm2 = nn.GroupNorm(norm_groups(c_mid), c_mid)
        self.conv2 = conv3x3(c_mid, c_out)
        self.skip = conv1x1(c_in, c_out, bias=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = x + self.cond_proj(cond)
        h = self.conv1(F.silu(self.norm1(h)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class ResStack(nn.Module):
    """``n`` residual blocks ``c_in -> c_mid -> ... -> c_out`` (authors' ``ResidualBlocks``),
    all conditioned on the same map."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, cond_channels: int, n: int) -> None:
        super().__init__()
        chans = [c_in] + [c_mid] * (n - 1) + [c_out]
        self.blocks = nn.ModuleList(
            ResBlock(a, c_mid, b, cond_channels) for a, b in zip(chans[:-1], chans[1:])
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, cond)
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

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x [B, c_in, s, s]``, ``cond [B, cond_channels, s, s]`` (this level's conditioning)."""
        x = self.in_res(self.in_conv(x), cond)
        if self.child is not None:
            if self.down:
                x = halve(x)
            child_cond = cond
            while child_cond.shape[-2] > x.shape[-2]:
                child_cond = halve(child_cond, "nearest")
            x = self.child(x, child_cond)
            if self.up:
                x = double(x)
        return self.out_conv(self.out_res(x, resize_in_steps(cond, x.shape[-2])))


def check_sides(size: int, skip_up: int = 0, skip_down: int = 0) -> None:
    """Refuse a side that the authors' U-Net cannot halve and double back to itself.

    A level that halves its map for its child (bilinear x0.5, ``floor``) and doubles it back
    afterwards (x2) needs an even side there: an odd one would come back one pixel short.
    28 (28 -> 14 -> 7, the leaf) and the powers of two are fine; 36 (-> 18 -> 9 -> 4 -> 8) is
    not, and the authors' code fails on it too (its conditioning no longer matches the map).
    """
    side, nominal, depth = size, size, 0
    while nominal > 8 or depth < max(skip_up, skip_down):
        if depth >= skip_down:  # this level halves its map for its child
            if side % 2 and depth >= skip_up:  # ... and doubles it back
                raise ValueError(
                    f"image side {size}: U-Net level {depth} would halve an odd side ({side}) "
                    "and not double back to it; use a side that stays even down to 8 px or "
                    "below (e.g. 28, 32, 64)"
                )
            side //= 2
        nominal, depth = nominal // 2, depth + 1


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

    The top level is conditioned on ``cat(input, positional encoding)``; see the module docstring
    for how the levels below receive it. The output is ``out_proj(levels(x) + in_proj(x))`` with
    two bias-free 3x3 convs (the authors' ``mega_residual`` and ``out_projection``), ``in_proj(x)``
    brought to the output's size in bilinear x2 / x0.5 steps.
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
        check_sides(size, skip_up, skip_down)
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
        out = self.levels(x, torch.cat([x, pe], dim=1))
        return self.out_proj(out + resize_in_steps(self.in_proj(x), out.shape[-2]))
