"""QG-VAE's network is the authors' (github.com/DaiDaiLoh/QG-VAE, ``QG-VAE.ipynb``).

The proof that their weights, copied into ours, give the same outputs and codes lives outside the
repository (their code is not ours to ship; ``docs/fidelity.md`` gives the figures and how to redo
it). These tests pin what that transplant found, so that a change that breaks it fails here:

- the parameter counts of the authors' model (parameters in use: their ``full_residual`` convs are
  built but never called, and their positional encodings are frozen parameters), at five settings;
- S1: every residual block has a bias-free 1x1 conv on its skip path;
- S2: the conditioning each residual block receives: nearest-neighbour subsampling from level to
  level, bilinear steps within a level (checked against NumPy formulas of those resamplings);
- S3: every resize of a skip path is a chain of x2 / x0.5 steps, not one jump;
- the positional encoding's arguments are the authors' float32 coordinates (28 px);
- every parameter starts from the distribution the authors' layers give it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qgvae.models.blocks import (
    ResBlock,
    UNet,
    check_sides,
    double,
    halve,
    positional_encoding,
    resize_in_steps,
)
from qgvae.models.qgvae import QGVAE, HeadwiseLinear

AUTHORS_PARAMETERS = [
    # in_channels, image side, tokens C, downscalings f, heads, blocks, the authors' count
    (1, 32, 64, 0, 8, 1, 6_183_829),  # MNIST resized to 32 px (our configs)
    (1, 28, 64, 0, 8, 1, 5_936_149),  # MNIST at 28 px, as the demo notebook keeps it
    (3, 32, 64, 0, 8, 1, 6_190_059),  # CIFAR-10, SVHN
    (3, 64, 256, 1, 32, 1, 18_703_723),  # our CelebA 64 config
    (3, 128, 256, 3, 128, 2, 26_394_683),  # the ImageNet 128 notebook default
]


@pytest.mark.parametrize("c,size,tokens,f,heads,blocks,count", AUTHORS_PARAMETERS)
def test_parameter_count_equals_the_authors(c, size, tokens, f, heads, blocks, count):
    with torch.device("meta"):
        model = QGVAE(
            in_channels=c,
            image_size=size,
            tokens=tokens,
            downscalings=f,
            heads=heads,
            blocks=blocks,
        )
    assert sum(p.numel() for p in model.parameters()) == count


def small(**kw) -> QGVAE:
    base = dict(
        in_channels=1,
        image_size=32,
        tokens=8,
        heads=2,
        code_dim=8,
        codebook_size=16,
        min_channels=4,
        max_channels=16,
    )
    base.update(kw)
    return QGVAE(**base).eval()


# -- S1 ---------------------------------------------------------------------------------------
def test_every_residual_block_has_a_bias_free_1x1_skip():
    model = small(image_size=64, downscalings=1)
    blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == 14  # 2 stacks per level: encoder 64, 32, 16, 8 px; decoder 32, 16, 8
    same_width = 0
    for b in blocks:
        assert isinstance(b.skip, nn.Conv2d) and b.skip.kernel_size == (1, 1)
        assert b.skip.bias is None
        same_width += b.skip.in_channels == b.skip.out_channels
    assert same_width > 0  # the case an identity skip would have served


# -- S2 ---------------------------------------------------------------------------------------
def np_double(a: np.ndarray) -> np.ndarray:
    """Bilinear x2 with half-pixel centres (align_corners=False), the last two axes: output
    2i = 3/4 a[i] + 1/4 a[i-1] and 2i+1 = 3/4 a[i] + 1/4 a[i+1], the edge row repeated."""
    for axis in (-2, -1):
        a = np.moveaxis(a, axis, 0)
        prev = np.concatenate([a[:1], a[:-1]])
        nxt = np.concatenate([a[1:], a[-1:]])
        out = np.empty((2 * a.shape[0], *a.shape[1:]), dtype=np.float64)
        out[0::2] = 0.75 * a + 0.25 * prev
        out[1::2] = 0.75 * a + 0.25 * nxt
        a = np.moveaxis(out, 0, axis)
    return a


def np_halve(a: np.ndarray) -> np.ndarray:
    """Bilinear x0.5 with half-pixel centres = the mean of each 2x2 cell."""
    h, w = a.shape[-2] // 2, a.shape[-1] // 2
    a = a[..., : 2 * h, : 2 * w]
    return a.reshape(*a.shape[:-2], h, 2, w, 2).mean((-3, -1))


def received_conditioning(unet: UNet, x: torch.Tensor) -> dict[tuple[int, str], torch.Tensor]:
    """``{(depth, "in_res" / "out_res"): cond}`` of the first block of every stack."""
    seen: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for name, module in unet.levels.named_modules():
        if isinstance(module, ResBlock) and name.endswith("blocks.0"):
            key = (name.count("child"), "out_res" if "out_res" in name else "in_res")
            hook = lambda m, args, out, key=key: seen.__setitem__(key, args[1].detach())
            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        unet(x)
    for h in handles:
        h.remove()
    return seen


def test_conditioning_is_subsampled_by_nearest_neighbour_from_level_to_level():
    unet = small().encoder  # 32 px, f = 0: levels at 32, 16, 8
    x = torch.rand(2, 1, 32, 32)
    cond0 = torch.cat([x, unet.pe.expand(2, -1, -1, -1)], 1)
    seen = received_conditioning(unet, x)
    assert sorted(seen) == [(d, s) for d in range(3) for s in ("in_res", "out_res")]
    for (depth, _), cond in seen.items():
        step = 2**depth  # every 2nd, 4th pixel: exact copies, no averaging
        assert torch.equal(cond, cond0[..., ::step, ::step])


def test_a_level_that_does_not_resample_back_gets_its_conditioning_in_bilinear_steps():
    # encoder, 64 px, f = 1: level 0 does not upsample, so its second stack runs at 32 px
    enc = small(image_size=64, downscalings=1).encoder
    x = torch.rand(2, 1, 64, 64)
    cond0 = torch.cat([x, enc.pe.expand(2, -1, -1, -1)], 1)
    seen = received_conditioning(enc, x)
    assert torch.equal(seen[(0, "in_res")], cond0)
    want = np_halve(cond0.double().numpy())
    assert np.abs(seen[(0, "out_res")].numpy() - want).max() < 1e-6
    assert torch.equal(seen[(1, "in_res")], cond0[..., ::2, ::2])  # nearest, not the mean
    assert not torch.allclose(seen[(1, "in_res")], seen[(0, "out_res")], atol=1e-2)
    # decoder, 32 -> 64 px, f = 1: level 0 does not downsample, its child starts at 32 px
    dec = small(image_size=64, downscalings=1).decoder
    feat = torch.rand(2, 8, 32, 32)
    cond0 = torch.cat([feat, dec.pe.expand(2, -1, -1, -1)], 1)
    seen = received_conditioning(dec, feat)
    assert torch.equal(seen[(1, "in_res")], cond0)
    assert torch.equal(seen[(2, "in_res")], cond0[..., ::2, ::2])
    want = np_double(cond0.double().numpy())
    assert np.abs(seen[(0, "out_res")].numpy() - want).max() < 1e-5


# -- S3 ---------------------------------------------------------------------------------------
def test_skip_paths_are_resized_in_x2_steps():
    model = small(image_size=64, downscalings=3, tokens=8)  # 8 px feature map, x8 back
    feat = torch.rand(2, 8, 8, 8)
    with torch.no_grad():
        img = model.images(feat)
        skip = model.decoder_skip(feat)
        rest = img - model.decoder(feat)
    want = np_double(np_double(np_double(skip.double().numpy())))
    assert np.abs(rest.numpy() - want).max() < 1e-5
    one_jump = F.interpolate(skip, scale_factor=8, mode="bilinear", align_corners=False)
    assert (rest - one_jump).abs().max() > 1e-2  # the difference the steps make
    # the encoder's skip: 2x2 average pooling, three times (an 8x8 mean)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        rest = model.features(x) - model.encoder(x)
        skip = model.encoder_skip(x).double().numpy()
    want = skip.reshape(2, 8, 8, 8, 8, 8).mean((3, 5))
    assert np.abs(rest.numpy() - want).max() < 1e-6


def test_resampling_steps_against_numpy():
    a = torch.rand(2, 3, 12, 12)
    assert np.abs(double(a).numpy() - np_double(a.double().numpy())).max() < 1e-6
    assert np.abs(halve(a).numpy() - np_halve(a.double().numpy())).max() < 1e-6
    assert torch.equal(halve(a, "nearest"), a[..., ::2, ::2])
    assert torch.equal(halve(a[..., :7, :7], "nearest"), a[..., :6:2, :6:2])  # floor(7 / 2)
    assert torch.equal(resize_in_steps(a, 12), a)
    assert resize_in_steps(a, 3).shape[-1] == 3 and resize_in_steps(a, 48).shape[-1] == 48
    with pytest.raises(ValueError, match="halving mode"):
        halve(a, "area")


# -- sizes and the positional encoding --------------------------------------------------------
def test_28_px_round_trips_and_odd_halvings_are_refused():
    model = small(image_size=28)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert model(x).recon.shape == x.shape
    check_sides(64, skip_up=2)
    with pytest.raises(ValueError, match="image side 36: U-Net level 2 would halve an odd side"):
        check_sides(36)
    with pytest.raises(ValueError, match="image side 36"):
        small(image_size=36)


def test_positional_encoding_uses_the_authors_float32_coordinates():
    pe = positional_encoding(28, 28).double().numpy()
    r = (np.arange(28) / 28).astype(np.float32).astype(np.float64)  # the authors' grid values
    for i in range(16):
        s = np.sin(2.0**i * r)
        c = np.cos(2.0**i * r)
        np.testing.assert_allclose(pe[4 * i], np.repeat(s[:, None], 28, 1), atol=6e-8)
        np.testing.assert_allclose(pe[4 * i + 1], np.repeat(s[None, :], 28, 0), atol=6e-8)
        np.testing.assert_allclose(pe[4 * i + 2], np.repeat(c[:, None], 28, 1), atol=6e-8)
        np.testing.assert_allclose(pe[4 * i + 3], np.repeat(c[None, :], 28, 0), atol=6e-8)
    # float64 coordinates would move the highest frequencies by up to 1e-3 at 28 px
    exact = np.sin(2.0**15 * np.arange(28) / 28)
    assert np.abs(pe[60, :, 0] - exact).max() > 1e-4


# -- initialisation -----------------------------------------------------------------------------
def test_every_parameter_starts_from_the_authors_distribution():
    torch.manual_seed(0)
    model = QGVAE(in_channels=1, image_size=32, min_channels=8, max_channels=32, codebook_size=64)
    checked = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):  # PyTorch's default: U(+-1/sqrt(fan_in))
            bound = 1 / math.sqrt(module.in_channels * math.prod(module.kernel_size))
            assert module.weight.abs().max() <= bound, name
            if module.weight.numel() >= 2000:
                assert module.weight.abs().max() > 0.95 * bound, name
                assert abs(module.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound
            if module.bias is not None:
                assert module.bias.abs().max() <= bound, name
            checked += 1
        elif isinstance(module, nn.GroupNorm):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
            assert module.eps == 1e-5
        elif isinstance(module, HeadwiseLinear):  # the authors' kernel-1 Conv1d per head
            bound = 1 / math.sqrt(module.in_features)
            assert module.weight.abs().max() <= bound and module.bias.abs().max() <= bound
            assert module.weight.abs().max() > 0.95 * bound
    assert checked > 20
    q = model.quantiser  # codebooks and offset: U(-0.5, 0.5), as the notebook
    for t in (q.codebooks, q.offset):
        assert t.abs().max() <= 0.5 and t.abs().max() > 0.49
        assert abs(t.mean().item()) < 0.01 and abs(t.std().item() - 1 / math.sqrt(12)) < 0.01
