"""Baselines (package ``baselines``): architecture, quantisation properties against NumPy,
hand-solved optimal transport, DQ-VAE routing budget, training, round trips, registry.

The released networks and initialisations, the EMA codebook and the OT solvers at production
sizes are in ``test_baselines_nets.py``, ``test_baselines_ema.py`` and ``test_baselines_ot.py``."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from baselines.dqvae import DQVAE, budget_loss
from baselines.grid import GridDecoder, GridEncoder, ResidualLayer
from baselines.splitvq import SplitVQVAE
from baselines.sqvae import SQVAE, gumbel_softmax_sample, sq_logits
from baselines.vqvae import VQVAE
from baselines.vqwae import VQWAE, squared_cost, wasserstein

METHODS = {"vqvae": VQVAE, "sqvae": SQVAE, "vqwae": VQWAE, "splitvq": SplitVQVAE, "dqvae": DQVAE}
TINY = dict(channels=16, res_blocks=1, res_channels=8, code_dim=8, codebook_size=16)
# DQ-VAE without LPIPS (its network needs the hub-cache weights; see test_baselines_ema.py)
NO_LPIPS = {"dqvae": {"recon_loss": "l1"}}
# the networks of each grid baseline (DQ-VAE has the grid network only); BN nets: channels = D
NETWORK_CASES = [
    (method, network)
    for method in sorted(METHODS)
    for network in (
        ["grid"] if method == "dqvae" else ["grid", "vqwae_net32", "sqvae_net32", "vqwae_net64"]
    )
]


def _tiny(method, network="grid"):
    kw = dict(TINY, **NO_LPIPS.get(method, {}))
    if method != "dqvae":
        kw["network"] = network
    if network in ("sqvae_net32", "vqwae_net64"):
        kw["channels"] = kw["code_dim"]
    return kw


def _images(n=8, size=32, channels=3, seed=0):
    """Smooth random images in [0, 1] (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(
        low, size=(size, size), mode="bilinear", align_corners=False
    )


# ----------------------------------------------------------------------------- architecture


@pytest.mark.parametrize(
    "image_size,downsample,res_blocks,grid",
    [(32, 2, 2, 8), (64, 2, 6, 16), (32, 3, 2, 4), (32, 1, 2, 16)],
)
def test_grid_sizes(image_size, downsample, res_blocks, grid):
    net = dict(
        channels=16, res_blocks=res_blocks, res_channels=8, downsample=downsample, code_dim=8
    )
    enc, dec = GridEncoder(in_channels=3, **net), GridDecoder(out_channels=3, **net)
    x = torch.rand(2, 3, image_size, image_size)
    z = enc(x)
    assert z.shape == (2, 8, grid, grid)
    assert dec(z).shape == x.shape
    assert sum(isinstance(m, ResidualLayer) for m in enc.modules()) == res_blocks
    strided = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == downsample
    model = VQVAE(
        in_channels=3,
        image_size=image_size,
        downsample=downsample,
        res_blocks=res_blocks,
        channels=16,
        res_channels=8,
        code_dim=8,
    )
    assert model.num_tokens == grid * grid


def test_cifar_architecture_is_vqwae_baseline():
    m = VQVAE(in_channels=3, image_size=32)
    convs = [c for c in m.encoder.modules() if isinstance(c, torch.nn.Conv2d)]
    first, second, third = convs[:3]
    assert (first.out_channels, first.kernel_size, first.stride) == (64, (4, 4), (2, 2))
    assert (second.out_channels, second.kernel_size, second.stride) == (128, (4, 4), (2, 2))
    assert (third.out_channels, third.kernel_size) == (128, (3, 3))
    assert (convs[-1].out_channels, convs[-1].kernel_size) == (64, (1, 1))
    layer = next(c for c in m.encoder.modules() if isinstance(c, ResidualLayer))
    assert layer.block[1].out_channels == 32 and layer.block[3].kernel_size == (1, 1)
    assert m.num_tokens == 64 and m.codebook_size == 512 and m.bits_per_image() == 576.0


# ----------------------------------------------------------------------------- nearest codes


def _np_nearest(z, codebook):
    d = ((z[..., None, :] - codebook[None, None]) ** 2).sum(-1)
    return d.argmin(-1)


def test_vqvae_codes_are_numpy_nearest():
    torch.manual_seed(1)
    m = VQVAE(in_channels=3, image_size=32, init="uniform", **TINY).eval()
    x = _images(4)
    with torch.no_grad():  # codewords near the latents, so that several codes are chosen
        flat = m.tokens(x).reshape(-1, 8)
        pick = flat[torch.randperm(len(flat))[:16]]
        m.quantiser.codebooks.copy_((pick + 0.05 * torch.randn_like(pick))[None])
        z = m.tokens(x).double().numpy()
        codes = m.encode(x).numpy()
    expected = _np_nearest(z, m.quantiser.codebooks[0].detach().double().numpy())
    np.testing.assert_array_equal(codes, expected)
    assert len(np.unique(codes)) > 1  # not a degenerate single-code case


def test_splitvq_quantises_each_group_with_its_own_codebook():
    torch.manual_seed(2)
    m = SplitVQVAE(in_channels=3, image_size=32, groups=4, init="uniform", **TINY).eval()
    with torch.no_grad():
        m.quantiser.codebooks.normal_(0, 0.3)
        x = _images(3)
        z = m.tokens(x).double().numpy()  # [B, T, D]
        codes = m.encode(x).numpy()  # [B, T * G], token-major
    b, t, d = z.shape
    books = m.quantiser.codebooks.detach().double().numpy()  # [G, K, D / G]
    assert codes.shape == (b, t * 4) and m.num_tokens == t * 4
    for g in range(4):
        sub = z[:, :, g * d // 4 : (g + 1) * d // 4]
        np.testing.assert_array_equal(codes[:, g::4], _np_nearest(sub, books[g]))
    assert m.bits_per_image() == t * 4 * math.log2(16)


# ----------------------------------------------------------------------------- SQ-VAE sampling


def _np_softmax_probs(z, codebook, var_q):
    d = ((z[:, None, :] - codebook[None]) ** 2).sum(-1)
    logit = -d / (2 * var_q)
    p = np.exp(logit - logit.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True), d


def test_sqvae_logits_match_numpy():
    g = torch.Generator().manual_seed(0)
    z, cb = torch.randn(6, 4, generator=g), torch.randn(5, 4, generator=g)
    p_np, d = _np_softmax_probs(z.double().numpy(), cb.double().numpy(), 0.7)
    logits = sq_logits(z, cb, torch.tensor(0.7))
    np.testing.assert_allclose(logits.numpy(), -d / 1.4, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), p_np, atol=1e-6)


def test_sqvae_sampling_frequencies_match_softmax():
    g = torch.Generator().manual_seed(3)
    z, cb = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    var_q = 2.0
    p_np, _ = _np_softmax_probs(z.double().numpy(), cb.double().numpy(), var_q)
    assert (p_np.max(-1) < 0.9).all()  # genuinely stochastic
    n = 20000
    logits = sq_logits(z, cb, var_q).expand(n, 3, 5)
    w = gumbel_softmax_sample(logits, 0.5, generator=g)
    assert torch.allclose(w.sum(-1), torch.ones(n, 3), atol=1e-5)
    freq = torch.nn.functional.one_hot(w.argmax(-1), 5).double().mean(0).numpy()
    # 4.5 standard errors of a frequency estimate from n draws
    tol = 4.5 * np.sqrt(p_np * (1 - p_np) / n) + 1e-3
    assert (np.abs(freq - p_np) < tol).all(), (freq, p_np)


def test_sqvae_annealing_limits():
    g = torch.Generator().manual_seed(4)
    z, cb = torch.randn(50, 4, generator=g), torch.randn(7, 4, generator=g)
    nearest = _np_nearest(z.double().numpy()[None], cb.double().numpy())[0]
    # variance -> 0: every sample is the nearest code (the self-annealing limit)
    w = gumbel_softmax_sample(sq_logits(z, cb, 1e-4).expand(20, 50, 7), 1.0, generator=g)
    np.testing.assert_array_equal(w.argmax(-1).numpy(), np.broadcast_to(nearest, (20, 50)))
    # Gumbel temperature -> 0: samples become one-hot
    w = gumbel_softmax_sample(sq_logits(z, cb, 1.0), 1e-6, generator=g)
    assert torch.allclose(w.max(-1).values, torch.ones(50))
    # and a large variance does NOT give the nearest code everywhere (the test can fail)
    w = gumbel_softmax_sample(sq_logits(z, cb, 100.0), 1.0, generator=g)
    assert (w.argmax(-1).numpy() != nearest).any()


def test_sqvae_eval_codes_are_nearest_and_training_is_stochastic():
    torch.manual_seed(5)
    m = SQVAE(in_channels=3, image_size=32, init="randn", **TINY)
    x = _images(2)
    with torch.no_grad():
        z = m.tokens(x).double().numpy()
        m.eval()
        np.testing.assert_array_equal(
            m(x).codes.numpy(), _np_nearest(z, m.codebook.detach().double().numpy())
        )
        m.train()
        a, b = m(x).codes, m(x).codes
    assert not torch.equal(a, b)
    assert m.after_step(100000) == {"temperature": pytest.approx(math.exp(-1.0))}
    assert float(m.temperature) == pytest.approx(math.exp(-1.0))
    assert "temperature" in m.state_dict()  # a resumed run continues the schedule


# ----------------------------------------------------------------------------- OT (VQ-WAE)


def test_ot_2x2_hand_solved():
    # plans [[t, .7-t], [.4-t, t-.1]], t in [.1, .4]; cost = t + 2.4 -> t = .1, cost 2.5
    cost = torch.tensor([[1.0, 3.0], [2.0, 5.0]], requires_grad=True)
    a = torch.tensor([0.7, 0.3], requires_grad=True)
    b = torch.tensor([0.4, 0.6])
    w = wasserstein(cost, a, b, solver="exact")
    assert w.item() == pytest.approx(2.5, abs=1e-6)
    w.backward()
    # gradient w.r.t. the cost = the optimal plan; w.r.t. a = centred dual potential:
    # u0 + v0 = 1, u0 + v1 = 3, u1 + v0 = 2 on the support -> u1 - u0 = 1 -> (-.5, .5)
    np.testing.assert_allclose(cost.grad.numpy(), [[0.1, 0.6], [0.3, 0.0]], atol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), [-0.5, 0.5], atol=1e-6)
    cost.grad = a.grad = None
    w = wasserstein(cost, a, b, solver="sinkhorn", eps=1e-3, iters=400)
    assert w.item() == pytest.approx(2.5, abs=5e-3)
    w.backward()
    np.testing.assert_allclose(cost.grad.numpy(), [[0.1, 0.6], [0.3, 0.0]], atol=2e-2)
    np.testing.assert_allclose(a.grad.numpy(), [-0.5, 0.5], atol=2e-2)


def test_ot_3x3_hand_solved_on_points():
    # codewords 0, 1, 2 (weights .5, .25, .25); latents 0, 2, 4 (1/3 each); squared distance.
    # In 1-D with a convex cost the monotone coupling is optimal: 0->0 1/3, 0->2 1/6,
    # 1->2 1/6, 1->4 1/12, 2->4 1/4: cost 0 + 4/6 + 1/6 + 9/12 + 4/4 = 31/12.
    codebook = torch.tensor([[0.0], [1.0], [2.0]])
    z = torch.tensor([[0.0], [2.0], [4.0]])
    cost = squared_cost(z, codebook)
    np.testing.assert_allclose(cost.numpy(), [[0, 4, 16], [1, 1, 9], [4, 0, 4]])
    a, b = torch.tensor([0.5, 0.25, 0.25]), torch.full((3,), 1 / 3)
    assert wasserstein(cost, a, b, solver="exact").item() == pytest.approx(31 / 12, abs=1e-6)
    assert wasserstein(cost, a, b, solver="sinkhorn", eps=1e-3, iters=400).item() == pytest.approx(
        31 / 12, abs=5e-3
    )
    # uniform codeword weights: identity-like matching 0->0, 1->2, 2->4: (0 + 1 + 4) / 3
    u = torch.full((3,), 1 / 3)
    assert wasserstein(cost, u, b, solver="exact").item() == pytest.approx(5 / 3, abs=1e-6)


def test_batched_sinkhorn_matches_exact_per_problem():
    import ot

    g = torch.Generator().manual_seed(6)
    cost = torch.rand(4, 5, 6, generator=g)
    a = torch.softmax(torch.randn(4, 5, generator=g), -1)
    b = torch.full((4, 6), 1 / 6)
    got = wasserstein(cost, a, b, solver="sinkhorn", eps=1e-3, iters=600)
    want = [
        ot.emd2(a[i].double().numpy(), b[i].double().numpy(), cost[i].double().numpy())
        for i in range(4)
    ]
    np.testing.assert_allclose(got.numpy(), want, atol=5e-3)
    exact = wasserstein(cost, a, b, solver="exact")  # a batch: one ot.emd per problem
    np.testing.assert_allclose(exact.numpy(), want, rtol=1e-5)
    # the harness's earlier eps scale (relative to the mean cost) stays available
    old = wasserstein(cost, a, b, solver="sinkhorn", eps=1e-3, iters=600, scale="mean")
    np.testing.assert_allclose(old.numpy(), want, atol=5e-3)


def test_vqwae_global_losses_and_kl_to_uniform():
    torch.manual_seed(7)
    m = VQWAE(in_channels=3, image_size=32, ot_scope="global", **TINY)
    x = _images(4)
    out = m(x)
    assert set(out.losses) == {"mse", "ot", "kl"}
    assert out.losses["kl"].item() == pytest.approx(0.0, abs=1e-7)  # uniform start
    # the ot term equals beta * W between uniform codewords and the batch latents (by POT)
    import ot

    z = m.tokens(x).detach().reshape(-1, 8).double().numpy()
    cb = m.codebook.detach().double().numpy()
    c = ((cb[:, None] - z[None]) ** 2).sum(-1)
    w = ot.emd2(np.full(16, 1 / 16), np.full(len(z), 1 / len(z)), c)
    assert out.losses["ot"].item() == pytest.approx(1e-3 * w, rel=1e-4)
    out.loss.backward()
    assert m.codebook_weight.grad is not None and m.codebook_weight.grad.abs().sum() > 0
    with torch.no_grad():
        m.codebook_weight[0] += 2.0
    pi = torch.softmax(m.codebook_weight.detach(), -1).double().numpy()
    expected = (pi * np.log(pi * 16)).sum() / 16  # nn.KLDivLoss mean reduction: KL / K
    assert m(x).losses["kl"].item() == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="ot_scope"):
        VQWAE(in_channels=3, image_size=32, ot_scope="batch")


def test_vqwae_position_losses_sum_over_cells():
    """Per-position scope (the released MNIST / CIFAR-10 / SVHN configs): one exact problem per
    cell, summed; the released block initialisation of the weights; the KL summed over cells."""
    import ot

    torch.manual_seed(8)
    m = VQWAE(in_channels=3, image_size=16, **dict(TINY, codebook_size=32))  # 4x4 cells, K 32
    assert (m.ot_scope, m.ot_solver, m.cells) == ("position", "exact", 16)
    logits = m.codebook_weight.detach()
    assert logits.shape == (16, 32)
    for t in range(16):  # cell t: logit 1 on codewords 2t, 2t + 1 (model.py 118-120)
        assert logits[t].nonzero().flatten().tolist() == [2 * t, 2 * t + 1]
    x = _images(6, size=16)
    out = m(x)
    z = m.tokens(x).detach().double().numpy()  # [B, cells, D]
    cb = m.codebook.detach().double().numpy()
    pi = torch.softmax(logits, -1).double().numpy()
    want = 0.0
    for t in range(16):
        c = ((cb[:, None] - z[None, :, t]) ** 2).sum(-1)  # [K, B]
        want += ot.emd2(pi[t], np.full(6, 1 / 6), c)
    assert out.losses["ot"].item() == pytest.approx(1e-3 * want, rel=1e-4)
    kl = (pi * np.log(pi * 32)).sum() / 32  # summed over cells, each KL / K
    assert out.losses["kl"].item() == pytest.approx(kl, rel=1e-4)
    m.eval()
    assert m(x).losses["ot"].item() == 0.0  # no OT in evaluation


# ----------------------------------------------------------------------------- DQ-VAE


def test_dqvae_budget_loss_is_zero_iff_fraction_equals_budget():
    gate = torch.tensor([1.0, 0.0, 0.0, 0.0])  # 1 of 4 regions refined
    assert budget_loss(gate, 0.25, 10.0).item() == 0.0
    assert budget_loss(gate, 0.5, 10.0).item() == pytest.approx(2 * 10 * 0.25**2)
    assert budget_loss(torch.ones(4), 0.5, 10.0).item() == pytest.approx(5.0)


@pytest.mark.parametrize("target", [0.25, 0.75])
def test_dqvae_router_learns_its_budget(target):
    torch.manual_seed(8)
    m = DQVAE(in_channels=3, image_size=16, budget=target, **_tiny("dqvae"))  # 2x2 regions
    for p in m.parameters():
        p.requires_grad_(False)
    for p in m.router.parameters():
        p.requires_grad_(True)
    x = _images(32, size=16)
    with torch.no_grad():
        h_fine, h_coarse = m.features(x)  # the router's inputs, fixed: only the router trains
    prob = lambda: torch.softmax(m.router_logits(h_fine, h_coarse), 1)[:, 1].mean().item()
    with torch.no_grad():
        start = prob()
    assert abs(start - target) > 0.1  # the router does not start at the budget
    opt = torch.optim.Adam(m.router.parameters(), lr=2e-2)
    for i in range(60):
        if i == 40:
            opt.param_groups[0]["lr"] = 5e-3
        gate = m.sample_gate(m.router_logits(h_fine, h_coarse))  # hard Gumbel, straight-through
        loss = budget_loss(gate[:, 1], target, m.budget_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert abs(prob() - target) < 0.05  # expected refined fraction
        fracs = [m(x).stats["fine_ratio"].item() for _ in range(3)]  # sampled, full forward
    assert abs(np.mean(fracs) - target) < 0.08, fracs


def test_dqvae_codes_layout_and_rate():
    torch.manual_seed(9)
    m = DQVAE(in_channels=3, image_size=32, **_tiny("dqvae"))
    assert (m.fine, m.coarse, m.num_tokens) == (8, 4, 64)
    assert m.bits_per_image() == pytest.approx((16 + 3 * 0.5 * 16) * 4 + 16)
    with torch.no_grad():
        out = m(_images(4))  # training mode: sampled routing, a mix of both grains
    codes = out.codes.reshape(4, 16, 4)
    refined = codes[:, :, 1] >= 0
    assert (codes[:, :, 0] >= 0).all()
    assert ((codes[:, :, 1:] >= 0) == refined[:, :, None]).all()  # -1 exactly when coarse
    frac = refined.float().mean().item()
    assert out.stats["fine_ratio"].item() == pytest.approx(frac)
    assert out.losses["budget"].item() == pytest.approx(2 * m.budget_weight * (frac - 0.5) ** 2)
    assert out.stats["bits"].item() == pytest.approx((16 + 3 * frac * 16) * 4 + 16)
    assert 0 < frac < 1
    m.eval()  # evaluation: argmax routing, budget term on the expected fraction
    with torch.no_grad():
        out = m(_images(4))
    p = out.stats["fine_prob"].item()
    assert out.losses["budget"].item() == pytest.approx(2 * m.budget_weight * (p - 0.5) ** 2)
    # the 64-token budget of QG-VAE on 32 px: 16 regions of 4x4 fine cells, r = 0.2
    m64 = DQVAE(in_channels=3, image_size=32, downsample=1, region=4, budget=0.2, **_tiny("dqvae"))
    assert (m64.regions, m64.num_tokens) == (16, 256)
    assert m64.bits_per_image() == pytest.approx(64 * math.log2(16) + 16)
    d = DQVAE(in_channels=3, image_size=32)
    assert d.bits_per_image() == pytest.approx(376.0)


# ----------------------------------------------------------------------------- every baseline


@pytest.mark.parametrize("method,network", NETWORK_CASES)
def test_trains_round_trips_and_reports_rate(method, network):
    torch.manual_seed(10)
    m = METHODS[method](in_channels=3, image_size=16, **_tiny(method, network))
    x = _images(8, size=16)

    def eval_loss():
        m.eval()
        with torch.no_grad():
            out = m(x)
        m.train()
        return out.loss.item(), ((out.recon - x) ** 2).mean().item()

    before = eval_loss()
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    totals = []
    for step in range(1, 11):
        out = m(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        assert isinstance(m.after_step(step), dict)
        assert all(torch.isfinite(v) for v in out.losses.values())
        assert all(
            isinstance(v, float) or (v.dim() == 0 and not v.requires_grad)
            for v in out.stats.values()
        )
        totals.append(out.loss.item())
    after = eval_loss()
    assert after[0] < before[0] and after[1] < before[1], (before, after)
    if method != "dqvae":  # DQ-VAE's training loss carries the sampled routing's budget noise
        assert np.mean(totals[-3:]) < np.mean(totals[:3]), totals

    m.eval()
    with torch.no_grad():
        out = m(x)
        codes = m.encode(x)
        recon = m.decode(codes)
    assert torch.equal(codes, out.codes)
    assert torch.equal(recon, out.recon)
    assert recon.shape == x.shape
    assert codes.dtype == torch.long and codes.shape == (8, m.num_tokens)
    assert m.num_tokens == {"splitvq": 64}.get(method, 16)  # 4x4 cells (x 4 groups)
    valid = codes[codes >= 0]
    assert valid.numel() > 0 and int(valid.max()) < m.codebook_size
    if method != "dqvae":
        assert (codes >= 0).all()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # as in validation
        out16, codes16 = m(x), m.encode(x)
        assert torch.equal(m.decode(codes16), out16.recon)
    bits = m.bits_per_image()
    assert math.isfinite(bits) and 0 < bits <= m.num_tokens * math.log2(m.codebook_size) + 64
    measured = m.bits_for_codes(codes)
    assert measured.dtype == torch.float64 and measured.shape == (8,)
    if method != "dqvae":  # every token used: the measured rate is the nominal one
        assert torch.allclose(measured, torch.full((8,), bits, dtype=torch.float64))
    assert float(out.stats["perplexity"]) >= 1.0


# ----------------------------------------------------------------------------- registry


@pytest.mark.parametrize("method", sorted(METHODS))
def test_constructor_contract(method):
    from qgvae.methods import get_method

    cls = get_method(method)
    assert cls is METHODS[method]
    params = inspect.signature(cls.__init__).parameters
    for name, p in params.items():
        if name == "self":
            continue
        assert p.kind is p.KEYWORD_ONLY, name
        if name in ("in_channels", "image_size"):
            continue
        assert p.default is not p.empty and p.default is not None, name
        assert p.annotation in ("int", "float", "str", "bool"), (name, p.annotation)
        assert type(p.default).__name__ == p.annotation, name


@pytest.mark.parametrize("method", sorted(METHODS))
def test_resolve_accepts_defaults_and_rejects_unknown_keys(method):
    from qgvae.config import ConfigError, resolve

    params = inspect.signature(METHODS[method].__init__).parameters
    defaults = {
        n: p.default for n, p in params.items() if n not in ("self", "in_channels", "image_size")
    }
    cfg = resolve({"method": method, "dataset": "cifar10", "model": defaults})
    assert cfg["model"] == defaults
    with pytest.raises(ConfigError, match="not_a_key"):
        resolve({"method": method, "dataset": "cifar10", "model": {"not_a_key": 1}})
    with pytest.raises(ConfigError, match="code_dim"):
        resolve({"method": method, "dataset": "cifar10", "model": {"code_dim": "64"}})


def test_build_model_for_datasets():
    data = pytest.importorskip("qgvae.data", reason="qgvae/data.py (dataset_info) not there yet")
    from qgvae.config import resolve
    from qgvae.methods import build_model

    assert data.dataset_info("cifar10").size == 32
    m = build_model(resolve({"method": "vqvae", "dataset": "cifar10"}))
    assert m.num_tokens == 64 and m.bits_per_image() == 576.0
    m = build_model(resolve({"method": "sqvae", "dataset": "mnist"}))
    assert m.in_channels == 1 and m.num_tokens == 64  # MNIST resized to 32 by the data layer
    m = build_model(
        resolve(
            {
                "method": "vqwae",
                "dataset": "celeba64",
                "model": {"res_blocks": 6, "ot_solver": "sinkhorn"},
            }
        )
    )
    assert m.grid == 16 and m.num_tokens == 256


@pytest.mark.parametrize("method", sorted(METHODS))
def test_trainer_and_reconstruction_integration(method, photos_root, tmp_path):
    """Two optimiser steps through the real trainer (validation, checkpoint, run.json), then the
    test-split reconstruction the evaluator reads."""
    from qgvae.config import resolve
    from qgvae.evaluation.reconstruct import reconstruct_run
    from qgvae.training.trainer import train

    cfg = resolve(
        {
            "method": method,
            "dataset": "photos",
            "data_root": str(photos_root),
            "seed": 0,
            "model": _tiny(method),
            "train": {
                "batch_size": 8,
                "max_steps": 2,
                "checkpoint_every": 100,
                "log_every": 1,
                "val_every": 2,
                "val_batches": 1,
                "device": "cpu",
            },
            "eval": {"test_n": 8, "fid_n": 8},
        }
    )
    meta = train(cfg, tmp_path)
    assert (
        meta["status"] == "finished"
        and meta["num_tokens"]
        == METHODS[method](in_channels=3, image_size=32, **_tiny(method)).num_tokens
    )
    reconstruct_run(tmp_path, test_n=8, batch_size=8, device="cpu", n_show=2)
    rec = np.load(tmp_path / "reconstructions.npz")
    assert rec["codes"].shape == (8, meta["num_tokens"])
    assert rec["reconstructions"].shape == rec["originals"].shape
    assert float(rec["bits_per_image"]) == pytest.approx(meta["bits_per_image"])
    used = (rec["codes"] >= 0).sum(1)
    assert rec["tokens_used"].dtype == np.int64 and np.array_equal(rec["tokens_used"], used)
    assert rec["bits_measured"].dtype == np.float64 and rec["bits_measured"].shape == (8,)
    side = 16 if method == "dqvae" else 0  # DQ-VAE: one routing bit per region (4x4 of them)
    np.testing.assert_allclose(rec["bits_measured"], used * math.log2(16) + side)
