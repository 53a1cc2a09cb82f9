"""DQ-VAE's quantiser and losses as released: the EMA codebook update against a hand computation,
the restart of unused codes, the lookup-before-update order, the measured rate of a router with
known fractions, and the frozen LPIPS term."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.dqvae import DQVAE
from baselines.ema import EMACodebook

TINY = dict(channels=16, res_blocks=1, res_channels=8, code_dim=8, codebook_size=16)


def _images(n, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")


def test_ema_update_matches_hand_computation():
    torch.manual_seed(0)
    book = EMACodebook(codebook_size=3, dim=2, decay=0.9, eps=1e-5, restart=False)
    book.cluster_size.copy_(torch.tensor([2.0, 1.0, 3.0]))
    book.embed_ema.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 3.0]]))
    v = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0], [5.0, 5.0]])
    codes = torch.tensor([0, 0, 1, 2])
    book.update(v, codes)
    # counts (2, 1, 1), sums ((4, 2), (0, 2), (5, 5)); EMA with decay 0.9
    size = np.array([0.9 * 2 + 0.1 * 2, 0.9 * 1 + 0.1 * 1, 0.9 * 3 + 0.1 * 1])
    ema = np.array([[0.9 * 2 + 0.4, 0.2], [0.0, 0.9 + 0.2], [2.7 + 0.5, 2.7 + 0.5]])
    n = size.sum()
    smoothed = n * (size + 1e-5) / (n + 3 * 1e-5)
    np.testing.assert_allclose(book.cluster_size.numpy(), size, rtol=1e-6)
    np.testing.assert_allclose(book.embed_ema.numpy(), ema, rtol=1e-6)
    np.testing.assert_allclose(book.weight.numpy(), ema / smoothed[:, None], rtol=1e-6)
    assert book.weight[0, 0].item() == pytest.approx(2.2 / 2.0, rel=1e-4)  # a running mean
    assert not any(p.requires_grad for p in book.parameters())  # nothing for the optimiser


def test_restart_replaces_codes_with_ema_count_below_one():
    torch.manual_seed(1)
    book = EMACodebook(codebook_size=4, dim=3, decay=0.99)
    book.cluster_size.copy_(torch.tensor([5.0, 1.0, 0.2, 3.0]))
    before = book.embed_ema.clone()
    v = torch.randn(10, 3) + 10.0  # far from every codeword: a restarted row is one of these
    codes = torch.tensor([0, 0, 0, 3, 3, 0, 0, 3, 0, 3])  # codes 1 and 2 unused this step
    restarted = book.update(v, codes)
    # code 1: 0.99 * 1 < 1 -> restarted; code 2: 0.198 -> restarted; 0 and 3 keep their EMA
    assert int(restarted) == 2
    np.testing.assert_allclose(book.cluster_size[[1, 2]].numpy(), [1.0, 1.0])
    for k in (1, 2):
        assert any(torch.equal(book.embed_ema[k], row) for row in v), k
    assert not torch.equal(book.embed_ema[1], book.embed_ema[2])  # a permutation, no repeat
    sums0 = v[codes == 0].sum(0)
    expected0 = 0.99 * before[0] + 0.01 * sums0
    torch.testing.assert_close(book.embed_ema[0], expected0)
    assert book.cluster_size[0].item() == pytest.approx(0.99 * 5 + 0.01 * 6)
    # fewer vectors than codes: tiled with U[0, 1) * 0.01 / sqrt(D) noise
    small = EMACodebook(codebook_size=8, dim=4, decay=0.99)
    w = torch.randn(3, 4)
    small.update(w, torch.zeros(3, dtype=torch.long))
    gap = (small.embed_ema[:, None, :] - w[None]).abs().amax(-1).amin(-1)  # [8]
    assert (small.cluster_size == 1.0).all()  # the first step restarts everything (< 100 hits)
    assert (gap <= 0.01 / 2 + 1e-7).all(), gap


def test_dqvae_ema_updates_in_training_forward_only_after_the_lookup():
    torch.manual_seed(2)
    m = DQVAE(in_channels=3, image_size=32, recon_loss="l1", **TINY)
    assert isinstance(m.quantiser, EMACodebook) and not any(
        "quantiser" in name for name, _ in m.named_parameters()
    )
    x = _images(4)
    m.eval()
    state = {k: v.clone() for k, v in m.quantiser.state_dict().items()}
    with torch.no_grad():
        ref = m(x)
    for k, v in m.quantiser.state_dict().items():  # evaluation leaves the codebook alone
        assert torch.equal(v, state[k]), k
    assert torch.equal(m.decode(m.encode(x)), ref.recon)
    m.train()
    torch.manual_seed(3)
    out = m(x)
    assert not torch.equal(m.quantiser.weight, state["weight"])  # updated by the forward pass
    # this step's reconstruction used the codebook from before the update
    with torch.no_grad():
        m.eval()
        fine, _ = m._unlayout(out.codes)
        old = state["weight"][fine]
        torch.testing.assert_close(m._decode_fine(old), out.recon.detach())
    assert set(out.losses) == {"l1", "commit", "budget"}  # no codebook-gradient term
    assert float(out.stats["restarted"]) > 0  # first step: nearly every code is restarted
    grad_version = DQVAE(
        in_channels=3, image_size=32, recon_loss="mse", codebook_update="gradient", **TINY
    )
    assert set(grad_version(x).losses) == {"mse", "codebook", "commit", "budget"}


def test_dqvae_commitment_weight_and_mask():
    torch.manual_seed(4)
    m = DQVAE(in_channels=3, image_size=32, recon_loss="l1", **TINY).eval()
    x = _images(2)
    with torch.no_grad():
        out = m(x)
        h_fine, h_coarse = m.features(x)
        refine = m.router_logits(h_fine, h_coarse).argmax(1) == 1
        h_dual = torch.where(m._up(refine)[:, None], h_fine, m._up(h_coarse))
        z = h_dual.flatten(2).transpose(1, 2)
        fine, _ = m._unlayout(out.codes)
        e = m.quantiser.lookup(fine)
        mask = torch.where(m._up(refine), 1.0, 0.25).reshape(2, -1, 1)
    want = 0.25 * (mask * (z - e).square()).mean()  # quantize2_mask.py 175, beta 0.25
    assert out.losses["commit"].item() == pytest.approx(want.item(), rel=1e-5)
    l1 = 2 * (out.recon - x).abs().mean()  # on the original's [-1, 1] scale
    assert out.losses["l1"].item() == pytest.approx(l1.item(), rel=1e-5)


@pytest.mark.parametrize("refined_per_image", [[0, 4, 16], [1, 8, 15]])
def test_dqvae_measured_budget_with_a_router_of_known_fractions(refined_per_image):
    """Image i refines exactly ``refined_per_image[i]`` of its 16 regions: the measured bits are
    its used codes (16 coarse + 3 more per refined region) x log2 K plus 16 routing bits."""
    torch.manual_seed(5)
    m = DQVAE(in_channels=3, image_size=32, recon_loss="l1", **TINY).eval()
    n = len(refined_per_image)

    def known_router(h_fine, h_coarse):
        logits = torch.zeros(n, 2, 4, 4)
        for i, r in enumerate(refined_per_image):
            logits[i, 1].view(-1)[:r] = 5.0  # the first r regions refine
        return logits

    m.router_logits = known_router
    codes = m.encode(_images(n))
    used = torch.tensor([16 + 3 * r for r in refined_per_image])
    assert torch.equal((codes >= 0).sum(1), used)
    bits = m.bits_for_codes(codes)
    assert bits.dtype == torch.float64
    np.testing.assert_allclose(bits.numpy(), used.numpy() * math.log2(16) + 16)
    with torch.no_grad():
        out = m(_images(n))
    expected_mean = float(np.mean(used.numpy() * 4 + 16))
    assert out.stats["bits"].item() == pytest.approx(expected_mean)
    # the nominal rate is the budget's expectation, whatever the router does
    assert m.bits_per_image() == pytest.approx((16 + 3 * 0.5 * 16) * 4 + 16)


def test_interface_default_bits_for_codes():
    from baselines.vqvae import VQVAE

    m = VQVAE(in_channels=3, image_size=32, **TINY)
    codes = torch.zeros(3, 64, dtype=torch.long)
    codes[1, :10] = -1  # a method may mark unused tokens
    np.testing.assert_allclose(m.bits_for_codes(codes).numpy(), [256.0, 216.0, 256.0])


@pytest.mark.weights
def test_dqvae_lpips_term_is_frozen_and_outside_the_state_dict():
    from qgvae.evaluation.image_metrics import LPIPSMetric

    torch.manual_seed(6)
    m = DQVAE(in_channels=3, image_size=32, **TINY)  # default: L1 + 1.0 x LPIPS (AlexNet)
    keys_before = set(m.state_dict())
    n_params = sum(p.numel() for p in m.parameters())
    x = _images(4)
    out = m(x)
    assert set(out.losses) == {"l1", "lpips", "commit", "budget"}
    out.loss.backward()
    assert set(m.state_dict()) == keys_before  # the LPIPS network is not saved
    assert sum(p.numel() for p in m.parameters()) == n_params
    assert m.decoder.up[-1].weight.grad.abs().sum() > 0
    from baselines.perceptual import lpips_network

    net = lpips_network("alex", "cpu")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert all(p.grad is None for p in net.parameters())
    metric = LPIPSMetric("cpu")(x, out.recon.detach().clamp(0, 1))  # the evaluator's LPIPS
    m.eval()
    with torch.no_grad():
        assert m.lpips_weight == 1.0
        clamped = m.reconstruction_losses(out.recon.detach().clamp(0, 1), x)["lpips"]
    assert clamped.item() == pytest.approx(float(np.mean(metric)), rel=1e-4)
