"""The compiled training step (``train.compile``, :mod:`qgvae.training.step`): every method's
forward pass with its loss captures as ONE graph (``fullgraph=True``: a graph break fails), the
optimiser update as another, and the compiled step trains like the eager one.

Capture is checked with torch.compile's ``aot_eager`` backend (Dynamo and AOTAutograd, no code
generation: seconds per method); Inductor's generated code once, on VQ-VAE (the smallest
graph: about 15 s of C++ compilation on 2 cores, QG-VAE's takes 70 s). Tolerances: the
``aot_eager`` step runs the same kernels, so losses agree to float32 rounding (1e-6 relative);
Inductor fuses and reorders reductions (1e-4 relative after three steps)."""

from __future__ import annotations

import copy

import pytest
import torch
from test_baselines import METHODS, _images, _tiny

from qgvae.models.qgvae import QGVAE
from qgvae.training.precision import Precision
from qgvae.training.schedule import make_optimizer
from qgvae.training.step import Step

TRAIN = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "adam_betas": [0.9, 0.999]}
# VQ-WAE with its device solver (POT's exact solver runs NumPy on the CPU: a graph break)
EXTRA = {"vqwae": {"ot_solver": "newton"}}


def _model(method: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if method == "qgvae":
        return QGVAE(
            in_channels=3,
            image_size=16,
            tokens=8,
            heads=2,
            code_dim=8,
            codebook_size=16,
            min_channels=4,
            max_channels=8,
            reset_every=2,
        )
    return METHODS[method](in_channels=3, image_size=16, **_tiny(method), **EXTRA.get(method, {}))


def _losses(model, *, compiled: bool, backend: str, steps: int = 3) -> list[float]:
    cpu = torch.device("cpu")
    optimizer = make_optimizer(model, TRAIN, cpu, tensor_lr=compiled)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    optimizer._opt_called = True  # the compiled update bypasses the counter the warning checks
    step = Step(model, optimizer, Precision(cpu), grad_clip=1.0, compile=compiled, backend=backend)
    x = _images(4, size=16)
    torch.manual_seed(1)  # the same random draws (Gumbel noise, restarts) in both runs
    out = []
    for i in range(1, steps + 1):
        _, loss = step(x)
        model.after_step(i)
        sched.step()  # a changing learning rate must not recompile the update
        out.append(loss.item())
    return out


@pytest.mark.parametrize("method", [*sorted(METHODS), "qgvae"])
def test_the_training_step_captures_as_full_graphs(method):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager_model = _model(method)
    compiled_model = copy.deepcopy(eager_model)
    eager = _losses(eager_model, compiled=False, backend="aot_eager")
    compiled = _losses(compiled_model, compiled=True, backend="aot_eager")  # fullgraph or error
    assert compiled == pytest.approx(eager, rel=1e-6)
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert frames == 2  # the forward + loss, and the update: nothing recompiled


def test_inductor_compiled_step_trains_like_eager():
    torch._dynamo.reset()
    eager_model = _model("vqvae")
    compiled_model = copy.deepcopy(eager_model)
    eager = _losses(eager_model, compiled=False, backend="inductor")
    compiled = _losses(compiled_model, compiled=True, backend="inductor")
    assert compiled == pytest.approx(eager, rel=1e-4)
    # Adam moves a parameter by at most lr x schedule per step (1e-3, 5e-4, 3.3e-4): where a
    # gradient is ~0 (a conv bias before GroupNorm) its sign may differ, nothing more
    bound = 2 * 1e-3 * (1 + 1 / 2 + 1 / 3)
    for a, b in zip(eager_model.parameters(), compiled_model.parameters()):
        assert (a - b).abs().max() <= bound
