"""Optimal transport for VQ-WAE: POT's exact solver and two batched entropic solvers on the
cost's device, all differentiable like POT's ``ot.emd2`` (which VQ-WAE's released code calls).

Gradients of ``W = <T*, C>``: w.r.t. the cost the optimal plan ``T*`` (so latents and codewords
move along the plan), w.r.t. the source weights ``a`` the centred dual potential ``f - mean(f)``
(POT's convention), none w.r.t. ``b``.

Solvers:
- ``"exact"``: POT's network simplex (``ot.emd``) in float64 on the CPU, one call per problem
  (a batch of problems is a Python loop, like the released per-position loop). Measured on one
  core of a shared 2-core CPU: about 3 ms per 512 x 32 problem (0.19-0.24 s for the 64 problems of
  a CIFAR-10 step), 0.2-0.65 s for one 512 x 2048 problem; the solver holds the GIL, so threads do
  not help. On a GPU every step pays a device-to-host copy of the cost and a synchronisation.
- ``"newton"`` (:func:`newton`): all problems at once on the cost's device, float32: Newton's
  method on the entropic semi-dual over the potentials of the SMALLER side (the 32 latents of a
  position; a ``[P, 32, 32]`` system per step), eps-scaling, a fixed number of steps, and a final
  rounding of the plan onto the transport polytope. Measured against ``ot.emd`` below.
- ``"sinkhorn"`` (:func:`sinkhorn`): batched log-domain Sinkhorn with eps-scaling: eps falls
  geometrically from 1 to ``eps`` (both in units of ``scale``) over the first half of the
  ``iters`` iterations, then stays. ``scale``:

  * ``"centred"`` (default): the mean absolute value of the DOUBLE-CENTRED cost
    ``C - rowmean - colmean + mean``. The plan does not change when a constant is added to a row
    or a column of ``C``, so Sinkhorn runs on the centred cost, and eps is relative to the part
    of the cost that decides the plan. With squared distances that part is
    ``-2 (c_k - mean c).(z_n - mean z)``, which at VQ-WAE's initialisation (codewords N(0, 1),
    latents about 0.5 in norm and nearly equal across images) is 0.015 % of the mean cost
    (measured on the per-position problems below).
  * ``"mean"``: the mean cost (the harness before issue 10). At initialisation eps is then far
    larger than the cost differences that matter: the plan spreads every latent over most
    codewords and the latents' gradient points at the codebook mean.

Measured agreement with ``ot.emd``: cosine between the gradients w.r.t. the latents, per latent
(median, 5th percentile) and of the whole gradient of a problem (minimum over problems).
Latents at the released initialisation (convs N(0, 0.02), N(0, 1) codebook, K = 512, D = 64):
"init" = 32 ``photos`` images through the 32-px encoder (latents about 0.5 in norm; the
``"mean"`` global figure and the tests use ``vqwae_net32`` on smooth random images), CelebA =
``vqwae_net64`` on smooth random 64-px images (BatchNorm: latents about 20 in norm);
"trained" = codewords + N(0, 0.3^2) noise. One core of a shared 2-core CPU.

- per position, 64 x (512 x 32), init: exact 0.19-0.24 s. ``"mean"`` 0.01 / 100 iterations:
  median 0.223 (5th pct. 0.032), whole 0.208. ``"centred"`` 0.01 / 200: median 0.997 (0.979),
  whole 0.992, 6.5 s; trained: median 0.9998 (0.999), whole 0.9994.
- global 512 x 2048 (a CIFAR-10 batch), init: exact 0.2-0.65 s. ``"mean"`` 0.01 / 100: median
  0.086, whole 0.087. ``"centred"`` 0.01 / 200: median 0.9998 (0.66), whole 0.945; 0.001 /
  1000: median 1.000 (0.89), whole 0.984, 50 s; trained at 0.001 / 1000: whole 0.980
  (2000 iterations: 0.984 / 0.983).
- global 512 x 8192 (a CelebA batch, net_64 latents): exact 5.4-9.0 s. ``"centred"`` 0.01 / 200:
  median 1.000 (0.985), whole 0.998, 74 s; 0.001 / 1000: median 1.000 (1.000), whole 0.999,
  556 s.

Newton (``eps`` 0.003, 12 steps: VQ-WAE's default), per position 64 x (512 x 32), the same
cosines over 20 batches (1,280 problems):

- released init on smooth random images (the tests' regime): median 0.9998 (5th pct. 0.9975),
  whole median 0.9995 (min 0.9955); trained-like (codewords + N(0, 0.3^2), weights
  softmax(released logits + N(0, 0.5^2))): median 1.0000 (0.9995), whole 0.9999 (min 0.9983).
- real MNIST batches at the released init: median 0.9997 (0.991), whole median 0.9992, min
  0.669. The lowest are corner positions where up to 150 of a batch's 496 latent pairs lie
  within 1e-4 of each other (near float32's resolution of the cost): the exact plan splits the
  mass among such near-duplicates arbitrarily, so a per-latent comparison there measures
  tie-breaking (Sinkhorn 0.01 / 200: min 0.945 over 4 batches).
- real MNIST latents after 250 and 400 steps of training (``config/mnist_cpu.yaml``, exact
  solver): median 0.9996 / 0.9997 (0.994), whole median 0.9988 / 0.9989 (min 0.989 / 0.996);
  marginal error before the rounding at 400 steps: mean 4e-4, max 1.3e-2 (16 steps: 3e-5,
  5e-4).
- a stress case not seen in training so far: weights softmax(2 N(0, 1)) (the heaviest codeword
  carries 5 latents' mass), latents = codewords + N(0, 0.1^2): median 0.9992 (0.859), whole
  median 0.9905 (min 0.854); 16 steps: 1.0000 (0.986), 0.9999 (0.842); 20: 1.0000 (0.999),
  0.9999 (0.901).
- harder problems need more steps: ``config/quick.yaml``'s toy VQ-WAE (K 64, D 16, 16 latents)
  after 500 steps: 12 steps leave marginal errors up to 0.4 (whole min 0.82-0.90), 16 converge
  (max 0.08, whole min >= 0.984); random 3-D point clouds (12-512 x 12-40, uneven weights)
  need 20 (marginal error <= 1e-3, value within 1e-3 of POT's; 12 steps: 0.01-0.7). The model
  logs ``ot_marginal_error`` (before the rounding) so that a run shows how far the solver got.
- the global scope is not a fit: one 512 x 2048 problem (solved over the 512 codeword
  potentials) at released init gives whole cosine 0.982, but trained-like 0.56 at 12 steps and
  0.81 at 20 (0.7-1.1 s on a core); CelebA's global problem stays with Sinkhorn.
- time on one core of the shared 2-core CPU (loaded by other jobs, so upper bounds): 58-63 ms
  for the 64 problems (12 steps), against 210-430 ms for exact and 6.5-8.4 s for Sinkhorn
  0.01 / 200. It is float32 throughout and device-agnostic; no GPU was available to time it.

(``tests/test_baselines_ot.py`` checks the per-position and global settings against ``ot.emd``,
Newton's on one batch per regime and, marked slow, on the 20.)
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

__all__ = [
    "SCALES",
    "SOLVERS",
    "exact",
    "marginal_error",
    "newton",
    "round_plan",
    "sinkhorn",
    "wasserstein",
]

SOLVERS = ("exact", "newton", "sinkhorn")
SCALES = ("centred", "mean")


@torch.no_grad()
def sinkhorn(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    eps: float = 0.01,
    iters: int = 200,
    scale: str = "centred",
) -> tuple[Tensor, Tensor]:
    """Batched log-domain Sinkhorn: ``cost [P, K, N]``, ``a [P, K]``, ``b [P, N]`` (rows are
    probability vectors) -> ``(plan [P, K, N], f [P, K])``, ``f`` the source dual potential of
    ``cost`` (defined up to a constant per problem). No gradient (see :func:`wasserstein`)."""
    if scale not in SCALES:
        raise ValueError(f"sinkhorn scale must be one of {', '.join(SCALES)}; got {scale!r}")
    cost = cost.float()
    row = cost.mean(2, keepdim=True)  # [P, K, 1]
    if scale == "centred":
        c = cost - row - cost.mean(1, keepdim=True) + cost.mean((1, 2), keepdim=True)
        unit = c.abs().mean((1, 2), keepdim=True)
    else:
        c = cost
        unit = cost.mean((1, 2), keepdim=True)
    unit = unit.clamp_min(1e-12)
    log_a = torch.log(a.float().clamp_min(1e-30))
    log_b = torch.log(b.float().clamp_min(1e-30))
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    iters = max(int(iters), 1)
    ramp = max(iters // 2, 1)
    target = max(float(eps), 1e-6)
    for i in range(iters):
        rel = max(target, target ** (min(i, ramp) / ramp))  # 1 -> eps, geometrically
        e = unit * rel  # [P, 1, 1]
        e2 = e.squeeze(-1)  # [P, 1]
        f = e2 * (log_a - torch.logsumexp((g[:, None, :] - c) / e, dim=2))
        g = e2 * (log_b - torch.logsumexp((f[:, :, None] - c) / e, dim=1))
    e = unit * target
    plan = torch.exp((f[:, :, None] + g[:, None, :] - c) / e)
    if scale == "centred":  # the potential of the original cost: add back the row offsets
        f = f + row.squeeze(-1)
    return plan, f


@torch.no_grad()
def newton(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    eps: float = 0.003,
    iters: int = 12,
    info: dict[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Batched entropic OT by Newton's method: ``cost [P, K, N]``, ``a [P, K]``, ``b [P, N]``
    (rows are probability vectors) -> ``(plan [P, K, N], f [P, K])`` in float32 on cost's device,
    ``f`` the source potential (up to a constant per problem). No gradient (see
    :func:`wasserstein`). The problem is solved over the potentials of its smaller side (the
    ``N`` side here; ``K < N`` is solved transposed), so each step solves one small system per
    problem.

    ``eps``: the final entropic regularisation in units of the mean absolute DOUBLE-CENTRED cost
    (the ``"centred"`` scale of :func:`sinkhorn`). ``iters``: Newton steps. eps starts at the
    largest absolute centred cost and falls to ``eps`` over the first ``iters - 2`` steps (the
    last of them at ``eps``), then 2 more steps at ``eps``; ``log eps`` falls as
    ``(step / (iters - 3)) ** RAMP_POWER``, front-loaded, because after each decrease Newton
    needs more steps to re-converge where eps is small (measured: 0.7 converged more problems
    than a geometric ramp at the same count).

    The count of steps is fixed and nothing is read back to the host, so on CUDA the solve
    queues without a synchronisation (tested on the CPU by the absence of scalar reads).
    ``info``, if given, receives ``"marginal_error" [P]``: the L1 distance of the plan's
    marginals from ``(a, b)`` BEFORE the rounding, 0 at convergence (how far it got).
    """
    a, b = a.float(), b.float()
    if cost.shape[1] < cost.shape[2]:  # solve over the potentials of the smaller side
        plan_t, _, f = _semi_dual_newton(cost.transpose(1, 2), b, a, eps=eps, iters=iters)
        plan = plan_t.transpose(1, 2)
    else:
        plan, f, _ = _semi_dual_newton(cost, a, b, eps=eps, iters=iters)
    if info is not None:
        info["marginal_error"] = marginal_error(plan, a, b)
    return round_plan(plan, a, b), f


def marginal_error(plan: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``||plan 1 - a||_1 + ||plan^T 1 - b||_1`` per problem of ``plan [P, K, N]``: ``[P]``."""
    return (plan.sum(2) - a).abs().sum(1) + (plan.sum(1) - b).abs().sum(1)


RAMP_POWER = 0.7  # log eps falls as (step / ramp) ** 0.7: more of the steps at small eps
TRUST = 6.0  # no Newton step moves a potential by more than TRUST x eps (see below)
FLOOR = -25.0  # exp() arguments below this (e^-25 = 1.4e-11 of the row's largest) are raised


def _semi_dual_newton(
    cost: Tensor, a: Tensor, b: Tensor, *, eps: float, iters: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Maximise the entropic semi-dual ``F(g) = <g, b> - e sum_k a_k LSE_n((g_n - c_kn) / e +
    log b_n)`` over ``g [P, N]`` by Newton steps; returns ``(plan, f, g)`` with the potentials of
    ``cost`` (``f`` the smoothed c-transform of ``g``) and ``plan[k, n] = a_k softmax_n(...)``,
    whose rows sum to ``a`` exactly and whose columns sum to ``b`` at the optimum.

    The gradient of ``F`` is ``b - col`` (``col`` the plan's column sums), its Hessian
    ``-(diag(col) - sum_k a_k pi_k pi_k^T) / e``: an ``[N, N]`` matrix per problem, singular
    along the constant vector (``g + t`` is the same solution), which the ridge and the centring
    of the step handle. Without a line search a step can overshoot where the softmax is nearly
    hard (small eps); scaling each problem's step so that no potential moves by more than
    ``TRUST * e`` keeps the iteration stable (measured: without it, some problems diverge).
    """
    cost, a, b = cost.float(), a.float(), b.float()
    n = cost.shape[2]
    row = cost.mean(2, keepdim=True)  # [P, K, 1]
    col_mean = cost.mean(1, keepdim=True)  # [P, 1, N]
    c = cost - row - col_mean + cost.mean((1, 2), keepdim=True)
    unit = c.abs().mean((1, 2), keepdim=True).clamp_min(1e-30)  # [P, 1, 1]
    c = c / unit
    e0 = c.abs().amax((1, 2), keepdim=True).clamp_min(1.0)  # >= 1 unit; 1 if c is all 0
    a3 = a[:, :, None]
    # a floor in the Newton system only: products p * p * a / z^2 of a weight near 0 would be
    # subnormal floats, which make the CPU's matmul many times slower (the mass the floor adds,
    # at most K * 1e-12, is below float32's resolution of the column sums)
    a3_newton = a3.clamp_min(1e-12)
    log_b = torch.log(b.clamp_min(1e-30))[:, None, :]
    ridge = 1e-6 * torch.eye(n, device=cost.device, dtype=torch.float32)
    g = torch.zeros_like(log_b)  # [P, 1, N], in units of `unit`
    ramp = max(iters - 2, 1)
    for i in range(iters + 1):
        t = min(i / max(ramp - 1, 1), 1.0) ** RAMP_POWER if i < iters else 1.0
        e = e0 * (eps / e0) ** t  # [P, 1, 1]
        s = torch.addcmul(g / e + log_b, c, -1.0 / e)  # (g_n - c_kn) / e + log b_n
        m = s.amax(2, keepdim=True)
        # the floor before exp: exp() of very negative floats is subnormal or takes a slow path
        # on the CPU (measured 10-20x slower); the raised entries change nothing measurable
        p = s.sub_(m).clamp_(min=FLOOR).exp_()  # softmax over n = p / z
        z = p.sum(2, keepdim=True)
        if i == iters:
            break
        # col = sum_k a_k pi_k and sum_k a_k pi_k pi_k^T from the unnormalised p: one pass fewer
        w = a3_newton / z  # [P, K, 1]
        col = torch.bmm(w.transpose(1, 2), p)[:, 0]  # [P, N]
        hess = torch.diag_embed(col) - torch.bmm(p.transpose(1, 2), p * (w / z)) + ridge
        chol, failed = torch.linalg.cholesky_ex(hess)  # failed > 0: no step for that problem
        step = torch.cholesky_solve((b - col)[..., None], chol).transpose(1, 2)  # [P, 1, N]
        step = torch.where(failed[:, None, None] == 0, step, torch.zeros_like(step))
        step = step - step.mean(2, keepdim=True)
        step = step * (TRUST / step.abs().amax(2, keepdim=True).clamp_min(1e-30)).clamp(max=1.0)
        g = g + e * step
    plan = p.mul_(a3 / z)
    f = (-(e * unit) * (m + z.log()))[..., 0] + row[..., 0]  # potentials of the original cost
    g = (g * unit)[:, 0] + col_mean[:, 0]
    return plan, f, g


def round_plan(plan: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Altschuler, Weed and Rigollet (2017), Algorithm 2: a plan with marginals ``a [P, K]`` and
    ``b [P, N]`` (to float rounding) from a nonnegative ``plan [P, K, N]``: scale down the rows,
    then the columns, that carry too much, then add the outer product of the remaining deficits
    (divided by their total). It moves at most twice the marginal error in L1 and returns a
    feasible ``plan`` unchanged."""
    plan = plan * (a / plan.sum(2).clamp_min(1e-30)).clamp(max=1.0)[:, :, None]
    plan = plan * (b / plan.sum(1).clamp_min(1e-30)).clamp(max=1.0)[:, None, :]
    # the deficits are >= 0 but for float rounding, which must not be divided by its own sum
    short_a = (a - plan.sum(2)).clamp_min(0.0)
    short_b = (b - plan.sum(1)).clamp_min(0.0)
    total = short_b.sum(1).clamp_min(1e-30)[:, None, None]
    return plan + short_a[:, :, None] * (short_b[:, None, :] / total)


@torch.no_grad()
def exact(
    cost: Tensor, a: Tensor, b: Tensor, *, num_itermax: int = 100000
) -> tuple[Tensor, Tensor]:
    """POT's ``ot.emd`` on each problem of ``cost [P, K, N]`` (float64, on the CPU) ->
    ``(plan [P, K, N], u [P, K])`` on cost's device, float32."""
    import numpy as np
    import ot

    c = cost.detach().double().cpu().numpy()
    pa = a.detach().double().cpu().numpy()
    pb = b.detach().double().cpu().numpy()
    plans, pots = np.empty_like(c), np.empty(pa.shape)
    for p in range(c.shape[0]):
        ap, bp = pa[p] / pa[p].sum(), pb[p] / pb[p].sum()
        plan, log = ot.emd(ap, bp, np.ascontiguousarray(c[p]), numItermax=num_itermax, log=True)
        if log.get("warning"):
            warnings.warn(f"ot.emd: {log['warning']}", RuntimeWarning, stacklevel=3)
        plans[p], pots[p] = plan, log["u"]
    as_t = lambda v: torch.from_numpy(v).to(device=cost.device, dtype=torch.float32)
    return as_t(plans), as_t(pots)


def wasserstein(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    solver: str = "exact",
    eps: float = 0.01,
    iters: int = 200,
    scale: str = "centred",
    num_itermax: int = 100000,
    newton_eps: float = 0.003,
    newton_iters: int = 12,
    info: dict[str, Tensor] | None = None,
) -> Tensor:
    """Optimal transport cost ``<T*, cost>`` per problem, differentiable like POT's ``emd2``.

    ``cost [K, N]`` (one problem) or ``[P, K, N]`` (a batch), ``a [(P,) K]`` and ``b [(P,) N]``
    probability vectors. Returns a scalar or ``[P]``. ``num_itermax`` bounds the exact solver
    (POT's default 100000 for the released per-position loop, 500000 for its global call);
    ``eps``, ``iters``, ``scale`` are Sinkhorn's, ``newton_eps``, ``newton_iters`` Newton's.
    ``info``, if given, receives ``"marginal_error"``: per problem, the L1 distance of the
    solver's plan's marginals from ``(a, b)`` (Newton: before its rounding; exact: 0).
    """
    single = cost.dim() == 2
    if single:
        cost, a, b = cost[None], a[None], b[None]
    if cost.dim() != 3 or a.shape != cost.shape[:2] or b.shape != (cost.shape[0], cost.shape[2]):
        raise ValueError(
            f"shape mismatch: cost {tuple(cost.shape)}, a {tuple(a.shape)}, b {tuple(b.shape)}"
        )
    if solver == "exact":
        plan, f = exact(cost, a, b, num_itermax=num_itermax)
    elif solver == "newton":
        plan, f = newton(
            cost.detach(), a.detach(), b.detach(), eps=newton_eps, iters=newton_iters, info=info
        )
    elif solver == "sinkhorn":
        plan, f = sinkhorn(cost.detach(), a.detach(), b.detach(), eps=eps, iters=iters, scale=scale)
    else:
        raise ValueError(f"unknown OT solver {solver!r}; use one of {', '.join(SOLVERS)}")
    if info is not None and solver != "newton":
        info["marginal_error"] = marginal_error(plan, a.detach().float(), b.detach().float())
    f = f - f.mean(-1, keepdim=True)
    value = (plan * cost.float()).sum((-2, -1))
    value = value + (f * (a.float() - a.detach().float())).sum(-1)  # zero value, gradient f
    return value[0] if single else value
