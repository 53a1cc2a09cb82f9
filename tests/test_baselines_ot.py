"""VQ-WAE's optimal transport (``baselines.transport``) against POT's exact solver at production
sizes, on the GRADIENT w.r.t. the latents (what trains the encoder), not only on the cost.

Latents come from a VQ-WAE encoder at the released initialisation (convs N(0, 0.02), codebook
N(0, 1), K = 512, D = 64), the regime where an entropic solver is hardest: the latents are small
next to the codewords, so the costs that decide the plan are a small part of the total cost;
and from a "trained-like" regime (latents = codewords + N(0, 0.3^2) noise, uneven weights).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from baselines.transport import exact, newton, round_plan, wasserstein
from baselines.vqwae import VQWAE, squared_cost


def _smooth_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(low, size=(32, 32), mode="bilinear")


@pytest.fixture(scope="module")
def released_latents():
    """``(z [64 cells, 32, 64], codebook [512, 64], pi [64, 512])`` of a released-init VQ-WAE."""
    torch.manual_seed(0)
    m = VQWAE(in_channels=3, image_size=32, network="vqwae_net32", init="released")
    with torch.no_grad():
        z = m.tokens(_smooth_images(32)).transpose(0, 1).contiguous()
    return z, m.codebook.detach().clone(), m.codeword_weights().detach()


def _latent_grads(z, codebook, a, **solver):
    """Gradient of ``sum_p W_p`` w.r.t. the latents ``z [P, N, D]``."""
    z = z.clone().requires_grad_(True)
    b = torch.full(z.shape[:2], 1.0 / z.shape[1])
    wasserstein(squared_cost(z, codebook), a, b, **solver).sum().backward()
    return z.grad


def _cosines(g, ref):
    """Per latent ``[P * N]`` and per problem (whole gradient) ``[P]`` cosine similarities."""
    per_latent = torch.nn.functional.cosine_similarity(g, ref, dim=-1).flatten()
    whole = torch.nn.functional.cosine_similarity(g.flatten(1), ref.flatten(1), dim=-1)
    return per_latent.numpy(), whole.numpy()


def test_exact_matches_pot_emd2_value_and_gradients():
    """The exact path gives POT's emd2 value and POT's emd2 gradients (torch backend)."""
    import ot

    g = torch.Generator().manual_seed(1)
    cost = torch.rand(40, 12, generator=g, dtype=torch.float64)
    a = torch.softmax(torch.randn(40, generator=g, dtype=torch.float64), 0)
    b = torch.full((12,), 1 / 12, dtype=torch.float64)
    c1, a1 = cost.clone().requires_grad_(True), a.clone().requires_grad_(True)
    c2, a2 = cost.clone().requires_grad_(True), a.clone().requires_grad_(True)
    ours = wasserstein(c1, a1, b, solver="exact")
    ours.backward()
    theirs = ot.emd2(a2, b, c2)
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    np.testing.assert_allclose(c1.grad.numpy(), c2.grad.numpy(), atol=1e-7)
    np.testing.assert_allclose(a1.grad.numpy(), a2.grad.numpy(), atol=1e-5)


def test_position_scope_sinkhorn_gradient_agrees_with_exact(released_latents):
    """Production per-position problems (512 codewords x 32 latents; 4 of the 64 cells): the
    batched Sinkhorn at the configured centred eps 0.01 / 200 iterations follows the exact
    gradient; the earlier eps (0.01 x mean cost, 100 iterations) does not."""
    z, codebook, pi = released_latents
    cells = [0, 21, 42, 63]
    z, a = z[cells], pi[cells]
    assert z.shape == (4, 32, 64) and codebook.shape == (512, 64)
    exact = _latent_grads(z, codebook, a, solver="exact")
    sink = _latent_grads(z, codebook, a, solver="sinkhorn", eps=0.01, iters=200)
    per_latent, whole = _cosines(sink, exact)
    assert np.median(per_latent) > 0.99, np.median(per_latent)
    assert whole.min() > 0.98, whole
    old = _latent_grads(z, codebook, a, solver="sinkhorn", eps=0.01, iters=100, scale="mean")
    per_latent_old, whole_old = _cosines(old, exact)
    assert np.median(per_latent_old) < 0.6 and whole_old.max() < 0.6, (per_latent_old, whole_old)


def test_position_scope_model_loss_is_the_exact_sum(released_latents):
    """The model's per-position ``ot`` term is beta x the sum of POT's emd2 over cells, and its
    gradient w.r.t. the latents is the exact plans' gradient."""
    import ot

    z, codebook, pi = released_latents
    zz = z[:4].double().numpy()
    cb = codebook.double().numpy()
    grads = _latent_grads(z[:4], codebook, pi[:4], solver="exact").double().numpy()
    m = VQWAE(in_channels=3, image_size=32, network="vqwae_net32")
    with torch.no_grad():
        m.quantiser.codebooks.copy_(codebook[None])
        assert m.ot_scope == "position" and m.ot_solver == "exact"
        loss, _ = m.ot_losses(z.transpose(0, 1))  # [B, cells, D]
    costs = squared_cost(z, codebook).double().numpy()  # the float32 costs the model solves
    weights = m.codeword_weights().detach().double().numpy()
    want = sum(ot.emd2(weights[p], np.full(32, 1 / 32), costs[p]) for p in range(64))
    assert loss.item() == pytest.approx(1e-3 * want, rel=1e-5)
    for p in range(4):
        c = costs[p]  # (ties between plans are broken the same way on the same costs)
        plan = ot.emd(pi[p].double().numpy(), np.full(32, 1 / 32), c)
        want = 2 * (plan.sum(0)[:, None] * zz[p] - plan.T @ cb)  # d<T, C>/dz_n
        np.testing.assert_allclose(grads[p], want, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_global_scope_sinkhorn_gradient_agrees_with_exact(released_latents):
    """The global problem of a CIFAR-10 batch (512 codewords x 2048 latents) at the configured
    centred eps 0.001 / 1000 iterations (CelebA's setting; 188 s on a shared CPU core)."""
    z, codebook, _ = released_latents
    zg = z.reshape(1, -1, 64)
    a = torch.full((1, 512), 1 / 512)
    exact = _latent_grads(zg, codebook, a, solver="exact", num_itermax=500000)
    sink = _latent_grads(zg, codebook, a, solver="sinkhorn", eps=0.001, iters=1000)
    per_latent, whole = _cosines(sink, exact)
    assert np.median(per_latent) > 0.99 and whole.min() > 0.98, (np.median(per_latent), whole)


# ----------------------------------------------------------------------------- Newton solver


def test_round_plan_gives_the_marginals_and_keeps_a_feasible_plan():
    """Against NumPy sums: any nonnegative plan comes back with marginals (a, b), nonnegative,
    moved by at most twice its marginal error (Altschuler et al.'s bound); POT's exact plan (already
    feasible) comes back unchanged to float32 rounding."""
    g = torch.Generator().manual_seed(3)
    a = torch.softmax(torch.randn(5, 30, generator=g), -1)
    b = torch.softmax(torch.randn(5, 7, generator=g), -1)
    plan = torch.rand(5, 30, 7, generator=g) / 150
    out = round_plan(plan, a, b).numpy()
    np.testing.assert_allclose(out.sum(2), a.numpy(), atol=1e-7)
    np.testing.assert_allclose(out.sum(1), b.numpy(), atol=1e-7)
    assert out.min() >= 0
    err = np.abs(plan.numpy().sum(2) - a.numpy()).sum(1) + np.abs(
        plan.numpy().sum(1) - b.numpy()
    ).sum(1)
    assert (np.abs(out - plan.numpy()).sum((1, 2)) <= 2 * err + 1e-6).all()
    cost = torch.rand(5, 30, 7, generator=g)
    feasible, _ = exact(cost, a, b)
    np.testing.assert_allclose(round_plan(feasible, a, b).numpy(), feasible.numpy(), atol=1e-7)


@pytest.mark.parametrize("k, n", [(40, 12), (12, 40), (30, 30)])
def test_newton_matches_pot_on_small_problems_in_both_orientations(k, n):
    """Random 3-D point clouds, uneven weights on both sides (K < N is solved transposed): at 30
    steps (such low-dimensional problems need more than VQ-WAE's 12; ``baselines/transport.py``)
    the value is POT's within 1e-3, the centred potential (the gradient w.r.t. a) within 5 % of
    its largest value (entropic potentials are off by about eps log n), the marginals exact."""
    g = torch.Generator().manual_seed(k * n)
    x = torch.randn(8, k, 3, generator=g, dtype=torch.float64)
    y = torch.randn(8, n, 3, generator=g, dtype=torch.float64)
    cost = torch.cdist(x, y) ** 2
    a = torch.softmax(torch.randn(8, k, generator=g, dtype=torch.float64), -1)
    b = torch.softmax(0.5 * torch.randn(8, n, generator=g, dtype=torch.float64), -1)
    info = {}
    plan, f = newton(cost, a, b, iters=30, info=info)
    want_plan, want_f = exact(cost, a, b)
    value, want = (plan * cost.float()).sum((1, 2)), (want_plan * cost.float()).sum((1, 2))
    np.testing.assert_allclose(value.numpy(), want.numpy(), rtol=1e-3)
    np.testing.assert_allclose(plan.sum(2).numpy(), a.numpy(), atol=1e-6)
    np.testing.assert_allclose(plan.sum(1).numpy(), b.numpy(), atol=1e-6)
    f, want_f = f - f.mean(1, keepdim=True), want_f - want_f.mean(1, keepdim=True)
    assert ((f - want_f).abs().amax(1) < 0.05 * want_f.abs().amax(1)).all()
    assert info["marginal_error"].shape == (8,) and info["marginal_error"].max() < 1e-2
    # 3 steps are far from it: the comparison can fail
    few, _ = newton(cost, a, b, iters=3)
    assert ((few * cost.float()).sum((1, 2)) / want - 1).abs().max() > 1e-2


class _Ops(TorchDispatchMode):
    """Records the name of every aten operator that runs under it."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def test_newton_reads_nothing_back_to_the_host():
    """No scalar read (``.item()``, ``bool(tensor)``, data-dependent Python branches) and no
    ``nonzero`` in the solve and its backward: on CUDA each would wait for the device. The
    recorder itself sees an ``.item()`` (the test can fail)."""
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(4, 64, 16, generator=g).requires_grad_(True)
    a = torch.softmax(torch.randn(4, 64, generator=g), -1).requires_grad_(True)
    b = torch.full((4, 16), 1 / 16)
    with _Ops() as rec:
        wasserstein(cost, a, b, solver="newton", info={}).sum().backward()
    host_reads = {"aten._local_scalar_dense", "aten.item", "aten.nonzero", "aten.is_nonzero"}
    assert not rec.ops & host_reads, rec.ops & host_reads
    assert "aten.bmm" in rec.ops and cost.grad is not None and a.grad is not None
    with _Ops() as probe:
        cost.sum().item()
    assert probe.ops & host_reads


def _production_batches(regime, count):
    """``count`` batches of the 64 per-position problems of a released-init ``vqwae_net32``
    (K = 512, D = 64): ``[(z [64, 32, 64], codebook [512, 64], weights [64, 512]), ...]``.
    ``"init"``: 32 fresh smooth images per batch through the encoder; ``"trained"``: latents =
    random codewords + N(0, 0.3^2) noise, weights = softmax(released logits + N(0, 0.5^2))."""
    torch.manual_seed(0)
    m = VQWAE(in_channels=3, image_size=32, network="vqwae_net32", init="released")
    codebook = m.codebook.detach().clone()
    g = torch.Generator().manual_seed(1)
    logits = m.codebook_weight.detach() + 0.5 * torch.randn(64, 512, generator=g)
    out = []
    for i in range(count):
        if regime == "init":
            with torch.no_grad():
                z = m.tokens(_smooth_images(32, seed=100 + i)).transpose(0, 1).contiguous()
            out.append((z, codebook, m.codeword_weights().detach()))
        else:
            idx = torch.randint(0, 512, (64, 32), generator=g)
            z = codebook[idx] + 0.3 * torch.randn(64, 32, 64, generator=g)
            out.append((z, codebook, torch.softmax(logits, -1)))
    return out


def _newton_agreement(regime, count, settings=({},)):
    """Median per-latent and per-problem cosines of Newton's latent gradients with the exact
    ones over ``count`` production batches (64 x count problems), one pair per Newton setting."""
    cosines = [([], []) for _ in settings]
    for z, codebook, a in _production_batches(regime, count):
        want = _latent_grads(z, codebook, a, solver="exact")
        for (per_latent, whole), setting in zip(cosines, settings):
            p, w = _cosines(_latent_grads(z, codebook, a, solver="newton", **setting), want)
            per_latent.append(p)
            whole.append(w)
    return [(np.median(np.concatenate(p)), np.median(np.concatenate(w))) for p, w in cosines]


@pytest.mark.parametrize("regime", ["init", "trained"])
def test_newton_gradient_agrees_with_exact_at_production_size(regime):
    """64 positions x (512 codewords x 32 latents), D = 64, one batch (the slow test below runs
    the 20 of the acceptance bar; 0.6-1.0 CPU-s here): median cosine of the latent gradients with
    POT's >= 0.99, per latent and per problem. 3 Newton steps do not pass at the released init
    (the test can fail)."""
    settings = ({}, {"newton_iters": 3}) if regime == "init" else ({},)
    results = _newton_agreement(regime, 1, settings)
    per_latent, whole = results[0]
    assert per_latent >= 0.99 and whole >= 0.99, (per_latent, whole)
    if regime == "init":
        assert results[1][0] < 0.95, results[1]


@pytest.mark.slow
@pytest.mark.parametrize("regime", ["init", "trained"])
def test_newton_gradient_agrees_with_exact_over_20_batches(regime):
    """The acceptance bar: 64 positions x 20 batches (1,280 problems; 6-8 CPU-s a regime at one
    thread, 45-55 s wall with 2 threads on the loaded 2-core machine)."""
    [(per_latent, whole)] = _newton_agreement(regime, 20)
    assert per_latent >= 0.99 and whole >= 0.99, (per_latent, whole)


def test_position_scope_newton_model_loss_is_close_to_the_exact_sum(released_latents):
    """The model's ``ot`` term with ``ot_solver: newton`` is the exact one within 1e-4 (its
    rounded plan is feasible, so never below), and the model logs how far the solver got."""
    z, codebook, _ = released_latents
    losses = {}
    for solver in ("exact", "newton"):
        m = VQWAE(in_channels=3, image_size=32, network="vqwae_net32", ot_solver=solver)
        with torch.no_grad():
            m.quantiser.codebooks.copy_(codebook[None])
        info = {}
        losses[solver] = m.ot_losses(z.transpose(0, 1), info=info)[0].item()
        assert info["marginal_error"].shape == (64,)
    assert losses["newton"] == pytest.approx(losses["exact"], rel=1e-4)
    assert losses["newton"] >= losses["exact"] * (1 - 1e-6)
    m.train()
    out = m(_smooth_images(4))
    assert 0 <= out.stats["ot_marginal_error"].item() < 0.05
