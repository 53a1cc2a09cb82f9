"""Tests of qgvae.models.qgvae.QGVAE and qgvae.models.blocks (CPU, small widths)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qgvae.config import ConfigError, check_model_kwargs
from qgvae.models.blocks import UNet, norm_groups, positional_encoding
from qgvae.models.interface import ModelOutput, TokenAutoencoder
from qgvae.models.qgvae import (
    QGVAE,
    HeadwiseLinear,
    from_global_tokens,
    from_local_tokens,
    ordering_mask,
    prefix_mask,
    to_global_tokens,
    to_local_tokens,
)

SMALL = dict(min_channels=8, max_channels=32)


def unet_depth(unet) -> int:
    """Number of levels of a U-Net (each level builds its child)."""
    n, level = 0, unet.levels
    while level is not None:
        n, level = n + 1, level.child
    return n


def tiny(**kw) -> QGVAE:
    """A 16 px model that trains in a fraction of a second."""
    base = dict(
        in_channels=3, image_size=16, tokens=8, heads=2, code_dim=8, codebook_size=16, **SMALL
    )
    base.update(kw)
    return QGVAE(**base)


# -- shapes -------------------------------------------------------------------------------------
PAPER = [  # (name, in_channels, image_size, downscalings, extra)
    ("mnist28", 1, 28, 0, {}),
    ("mnist32", 1, 32, 0, {}),
    ("cifar10", 3, 32, 0, {}),
    ("svhn", 3, 32, 0, {}),
    ("celeba64_f1", 3, 64, 1, {}),
    ("celeba64_f2", 3, 64, 2, {}),
    (
        "imagenet128",
        3,
        128,
        3,
        dict(tokens=256, heads=128, blocks=2, min_channels=4, max_channels=8),
    ),
]


@pytest.mark.parametrize("name,c,size,f,extra", PAPER, ids=[p[0] for p in PAPER])
def test_paper_configurations_shapes(name, c, size, f, extra):
    torch.manual_seed(0)
    kw = dict(tokens=64, heads=8)
    kw.update(extra)
    model = QGVAE(in_channels=c, image_size=size, downscalings=f, **kw).eval()
    x = torch.rand(2, c, size, size)
    with torch.no_grad():
        feat = model.features(x)
        out = model(x)
    h = size // 2**f
    assert feat.shape == (2, kw["tokens"], h, h)
    assert model.to_tokens(feat).shape == (2, kw["tokens"], 64)
    assert isinstance(out, ModelOutput)
    assert out.recon.shape == x.shape
    assert out.codes.shape == (2, kw["tokens"]) and out.codes.dtype == torch.long
    assert set(out.losses) == {"mse", "codebook", "commit"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.losses.values())
    assert out.stats["perplexity"].dim() == 0  # a tensor: logging converts, no per-step sync
    assert model.num_tokens == kw["tokens"] and model.codebook_size == 512
    assert model.quantiser.codebooks.shape == (kw["tokens"], 512, 64)
    # recursion until the map is at most 8 px (the first f encoder levels never upsample)
    assert unet_depth(model.encoder) == max(math.ceil(math.log2(size / 8)) + 1, f + 1)


def test_unet_levels_follow_authors_rules():
    # encoder: width doubles 16 -> 32 -> 64, top level outputs the tokens; f=1 halves the map
    enc = UNet(
        in_channels=3,
        out_channels=64,
        size=32,
        width=16,
        min_channels=16,
        max_channels=128,
        skip_up=1,
    )
    assert unet_depth(enc) == 3
    assert enc.levels.in_conv.out_channels == 16
    assert enc.levels.child.in_conv.out_channels == 32
    assert enc.levels.child.child.in_conv.out_channels == 64
    assert enc(torch.rand(1, 3, 32, 32)).shape == (1, 64, 16, 16)
    # decoder: max width throughout, f=2 doubles the map twice
    dec = UNet(
        in_channels=64,
        out_channels=3,
        size=8,
        width=128,
        min_channels=16,
        max_channels=128,
        skip_down=2,
    )
    assert unet_depth(dec) == 3  # continues below 8 px nominal while skips remain
    assert dec(torch.rand(1, 64, 8, 8)).shape == (1, 3, 32, 32)
    assert norm_groups(64) == 16 and norm_groups(24) == 12 and norm_groups(3) == 3


def test_positional_encoding_channels():
    pe = positional_encoding(8, 4)
    assert pe.shape == (64, 8, 4) and pe.dtype == torch.float32
    rows = torch.arange(8.0)[:, None] / 8
    cols = torch.arange(4.0)[None, :] / 4
    assert torch.allclose(pe[0], torch.sin(rows).expand(8, 4))
    assert torch.allclose(pe[1], torch.sin(cols).expand(8, 4))
    assert torch.allclose(pe[2], torch.cos(rows).expand(8, 4))
    assert torch.allclose(pe[7], torch.cos(2 * cols).expand(8, 4))


# -- transpose and heads ------------------------------------------------------------------------
def test_token_transpose_on_arange():
    b, c, h, w = 2, 3, 4, 5
    feat = torch.arange(b * c * h * w).view(b, c, h, w)
    g = to_global_tokens(feat)
    assert g.shape == (b, c, h * w)
    for i in range(h):
        for j in range(w):
            assert torch.equal(g[:, :, i * w + j], feat[:, :, i, j])
    assert torch.equal(from_global_tokens(g, h, w), feat)
    loc = to_local_tokens(feat)
    assert loc.shape == (b, h * w, c)
    assert torch.equal(loc[:, 1 * w + 2, :], feat[:, :, 1, 2])
    assert torch.equal(from_local_tokens(loc, h, w), feat)


def test_headwise_linear_matches_authors_conv1d_loop():
    torch.manual_seed(1)
    heads, tokens, n, d = 4, 8, 12, 5
    lin = HeadwiseLinear(heads, n, d)
    x = torch.randn(2, tokens, n)  # [B, C, h*w]
    # authors: [B, h*w, C], one kernel-1 Conv1d per contiguous slice of C/heads tokens
    xt = x.transpose(1, 2)
    per = tokens // heads
    outs = [
        F.conv1d(xt[:, :, i * per : (i + 1) * per], lin.weight[i].t()[..., None], lin.bias[i])
        for i in range(heads)
    ]
    ref = torch.cat(outs, 2).transpose(1, 2)  # [B, C, D]
    assert torch.allclose(lin(x), ref, atol=1e-6)


# -- ordering -----------------------------------------------------------------------------------
def test_prefix_mask_exact():
    m = prefix_mask(torch.tensor([0, 1, 3, 5]), 5)
    assert m.tolist() == [[False] * 5, [True] + [False] * 4, [True] * 3 + [False] * 2, [True] * 5]
    assert prefix_mask(2, 4, batch=3).tolist() == [[True, True, False, False]] * 3


def test_ordering_mask_modes():
    gen = torch.Generator().manual_seed(0)
    t = 16
    m = ordering_mask(500, t, mode="sample", prob=1.0, generator=gen)
    k = m.sum(1)
    assert torch.equal(m, prefix_mask(k, t))  # always a prefix
    assert k.min() >= 1 and k.max() <= t - 1 and len(k.unique()) == t - 1
    assert ordering_mask(50, t, mode="sample", prob=0.0, generator=gen).all()
    frac = (~ordering_mask(3000, t, mode="sample", prob=1 / 3, generator=gen).all(1)).float().mean()
    assert abs(frac.item() - 1 / 3) < 0.05
    assert ordering_mask(8, t, mode="off").all()
    for step in range(6):
        mb = ordering_mask(8, t, mode="batch", step=step, generator=gen)
        if step % 3 == 2:  # the 3rd, 6th, ... batch: one k for the whole batch
            assert (
                not mb.all() and (mb == mb[0]).all() and torch.equal(mb, prefix_mask(mb.sum(1), t))
            )
        else:
            assert mb.all()
    with pytest.raises(ValueError):
        ordering_mask(2, t, mode="every-third")


@pytest.mark.parametrize("fill", ["zeros", "null"])
def test_ordering_applied_in_training_only(fill, monkeypatch):
    torch.manual_seed(2)
    model = tiny(ordering="sample", ordering_prob=1.0, ordering_fill=fill)
    seen = []
    original = model.from_tokens
    monkeypatch.setattr(model, "from_tokens", lambda q: seen.append(q.detach()) or original(q))
    x = torch.rand(6, 3, 16, 16)

    with torch.no_grad():
        out = model.train()(x)
        q, codes = seen[-1], out.codes
        full = model.quantiser(model.to_tokens(model.features(x))).quantised
    fill_value = model.null_token.detach() if fill == "null" else torch.zeros(8)
    for b in range(6):
        k = int((codes[b] >= 0).sum())
        assert 1 <= k <= 7 and (codes[b, :k] >= 0).all() and (codes[b, k:] == -1).all()
        assert torch.equal(q[b, :k], full[b, :k])
        assert torch.equal(q[b, k:], fill_value.expand(8 - k, 8))
    assert (model.null_token is not None) == (fill == "null")

    model.eval()
    with torch.no_grad():
        out = model(x)
    assert torch.equal(seen[-1], model.quantiser.lookup(model.encode(x)))
    assert (out.codes >= 0).all()


def test_ordering_batch_mode_follows_steps():
    model = tiny(ordering="batch").train()
    x = torch.rand(4, 3, 16, 16)
    dropped = []
    for step in range(1, 7):
        with torch.no_grad():  # ordering is a training-mode switch, not a gradient one
            out = model(x)
        dropped.append(bool((out.codes == -1).any()))
        model.after_step(step)
    assert dropped == [False, False, True, False, False, True]


def test_decode_prefix():
    torch.manual_seed(3)
    model = tiny().eval()
    x = torch.rand(2, 3, 16, 16)
    codes = model.encode(x)
    assert torch.equal(model.decode_prefix(codes, 8), model.decode(codes))
    q = model.quantiser.lookup(codes)
    q[:, 3:] = 0
    assert torch.equal(model.decode_prefix(codes, 3), model.from_tokens(q))
    per_sample = model.decode_prefix(codes, torch.tensor([3, 8]))
    assert torch.equal(per_sample[0], model.decode_prefix(codes, 3)[0])
    assert torch.equal(per_sample[1], model.decode(codes)[1])
    with pytest.raises(ValueError):
        model.decode_prefix(codes, 9)


# -- encode / decode, training, resets ------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {},
        dict(groups=2, codebook="shared"),
        dict(global_tokens=False, downscalings=2),
        dict(ordering="sample", ordering_fill="null", downscalings=1),
    ],
)
def test_decode_encode_equals_forward_in_eval(kw):
    torch.manual_seed(4)
    model = tiny(**kw).eval()
    x = torch.rand(3, 3, 16, 16)
    codes = model.encode(x)
    out = model(x)
    assert codes.shape == (3, model.num_tokens)
    assert torch.equal(codes, out.codes)
    assert torch.equal(model.decode(codes), out.recon)


def test_local_tokens_ablation_token_count():
    model = tiny(global_tokens=False, downscalings=2)  # 16 px / 4 = 4x4 local tokens
    assert model.num_tokens == 16 and model.quantiser.num_tokens == 16
    assert model(torch.rand(2, 3, 16, 16)).codes.shape == (2, 16)
    assert (
        QGVAE(in_channels=3, image_size=32, global_tokens=False, downscalings=2, **SMALL).num_tokens
        == 64
    )


def test_adamw_steps_lower_the_loss():
    torch.manual_seed(5)
    model = tiny().train()
    x = torch.rand(2, 3, 16, 16)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    losses = []
    for step in range(1, 13):
        out = model(x)
        loss = out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step(step)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < min(losses[:3])


def test_after_step_resets_on_interval(monkeypatch):
    torch.manual_seed(6)
    model = tiny(reset_every=3)
    calls = []
    original = model.quantiser.reset_unused
    monkeypatch.setattr(model.quantiser, "reset_unused", lambda: calls.append(1) or original())
    x = torch.rand(1, 3, 16, 16)
    results = []
    for step in range(1, 8):
        model.zero_grad()
        model(x).loss.backward()
        results.append(model.after_step(step))
        if step % 3:
            assert (model.quantiser.usage > 0).any()  # gradients were accumulated
        else:
            assert model.quantiser.usage.abs().sum() == 0  # zeroed by the reset
    assert len(calls) == 2
    assert [bool(r) for r in results] == [False, False, True, False, False, True, False]
    moved = results[2]["reset_moved"]
    # 3 steps on 1 image use at most 3 codes per token: <= 3 splits per codebook
    assert isinstance(moved, int) and 0 < moved <= model.num_tokens * 3

    off = tiny(reset_every=0)
    off(x).loss.backward()
    assert all(off.after_step(s) == {} for s in range(1, 201))


def test_bits_per_image():
    assert QGVAE(in_channels=3, image_size=32, **SMALL).bits_per_image() == 64 * 9
    assert tiny(groups=2).bits_per_image() == 8 * 2 * 4
    assert tiny(codebook_size=512).bits_per_image() == 8 * 9
    assert tiny(global_tokens=False, downscalings=1).bits_per_image() == 64 * 4
    assert isinstance(tiny(), TokenAutoencoder)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(tokens=10, heads=4), "heads"),
        (dict(code_dim=8, groups=3), "groups"),
        (dict(codebook="per-token"), "codebook"),
        (dict(ordering="every-third"), "ordering"),
        (dict(ordering_fill="noise"), "ordering_fill"),
        (dict(ordering_prob=1.5), "ordering_prob"),
        (dict(downscalings=5), "divisible"),
        (dict(min_channels=64, max_channels=32), "min_channels"),
        (dict(reset_every=-1), "reset_every"),
        (dict(tokens=0), "tokens"),
        (dict(codebook_size=1), "codebook_size"),
        (dict(global_tokens="yes"), "global_tokens"),
        (dict(blocks=1.5), "blocks"),
    ],
)
def test_bad_arguments_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match="expected images"):
        tiny()(torch.rand(2, 1, 16, 16))


def test_constructor_fits_config_checks():
    check_model_kwargs(
        "qgvae",
        dict(tokens=32, ordering_prob=0.5, global_tokens=False, codebook="shared", beta_commit=1),
        QGVAE,
    )
    with pytest.raises(ConfigError):
        check_model_kwargs("qgvae", dict(tokens=32.0), QGVAE)
    with pytest.raises(ConfigError):
        check_model_kwargs("qgvae", dict(heads_per_token=2), QGVAE)
