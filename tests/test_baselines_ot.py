"""VQ-WAE's optimal transport (``baselines.transport``) against POT's exact solver at production
sizes, on the GRADIENT w.r.t. the latents (what trains the encoder), not only on the cost.

Latents come from a VQ-WAE encoder at the released initialisation (convs N(0, 0.02), codebook
N(0, 1), K = 512, D = 64), the regime where an entropic solver is hardest: the latents are small
next to the codewords, so the costs that decide the plan are a small part of the total cost.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.transport import wasserstein
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
