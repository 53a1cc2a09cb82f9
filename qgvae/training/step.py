"""One optimiser step, eager or compiled, and the per-batch code usage the log shows.

A step is exactly one forward pass (loss included), one backward pass, optional gradient-norm
clipping and one optimiser update. ``train.compile: true`` compiles it with ``torch.compile``:
the forward pass with its loss as one full graph (``fullgraph=True``: a graph break is an
error, not a silent fallback; AOTAutograd compiles the matching backward graph) and the
optimiser update as a second full graph. On CUDA both use ``mode="reduce-overhead"`` (CUDA
graphs); on the CPU the default mode, where the full graphs stand in for CUDA-graph readiness:
nothing in a step reads data back to the host or branches on it. Codebook resets, logging and
validation stay outside the compiled step (``model.after_step`` sees this step's gradients).

The update graph is the optimiser's ``step`` method itself, under ``no_grad``: torch wraps
``Optimizer.step`` in deliberate graph breaks (to get a no-grad graph) and a scheduler patches
it per instance, so the undecorated method is compiled. Its learning rate is a tensor
(``schedule.make_optimizer(..., tensor_lr=True)``), so a schedule changes a value, not the graph.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from .precision import Precision


def batch_usage(codes: torch.Tensor, codebook_size: int) -> float:
    """Mean over token positions of the fraction of codewords used in this batch (reads back to
    the host: called at log steps only)."""
    valid = codes >= 0
    t = codes.shape[1]
    onehot = torch.zeros(t, codebook_size + 1, device=codes.device, dtype=torch.bool)
    idx = torch.where(valid, codes, codebook_size)
    onehot[torch.arange(t, device=codes.device).expand_as(idx), idx] = True
    return onehot[:, :codebook_size].float().sum(1).div(codebook_size).mean().item()


def train_step(
    forward: Callable[[torch.Tensor], Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    *,
    precision: Precision,
    grad_clip: float | None,
    update: Callable[[], Any] | None = None,
):
    """One optimiser step: exactly one forward pass, backward, optional clipping, update.

    Gradients are left in place (``zero_grad`` happens before the backward pass) so that
    ``model.after_step`` can read them (QG-VAE accumulates codebook gradient magnitudes).
    ``update`` replaces ``optimizer.step`` (the compiled update).
    """
    with precision.autocast():
        output = forward(x)
    loss = output.loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    (update or optimizer.step)()
    return output, loss


class Step:
    """The step of a run: ``step(x) -> (output, loss)``, eager or compiled (module docstring).

    ``backend`` is torch.compile's (``inductor``; tests use ``aot_eager`` to check that a model
    captures as one graph without generating code).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        precision: Precision,
        *,
        grad_clip: float | None,
        compile: bool = False,
        backend: str = "inductor",
    ) -> None:
        self.model, self.optimizer, self.precision = model, optimizer, precision
        self.grad_clip, self.compiled = grad_clip, bool(compile)
        self.forward: Callable[[torch.Tensor], Any] = model
        self.update: Callable[[], Any] | None = None
        if compile:
            kw: dict[str, Any] = {"fullgraph": True, "backend": backend}
            if backend == "inductor" and precision.device.type == "cuda":
                kw["mode"] = "reduce-overhead"
            self.forward = torch.compile(model, **kw)
            self.update = torch.compile(_no_grad_update(optimizer), **kw)

    def __call__(self, x: torch.Tensor):
        return train_step(
            self.forward,
            self.model,
            self.optimizer,
            x,
            precision=self.precision,
            grad_clip=self.grad_clip,
            update=self.update,
        )


def _no_grad_update(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """``optimizer.step()`` without torch's graph-breaking wrappers (see the module docstring)."""
    step = inspect.unwrap(type(optimizer).step)

    def update() -> None:
        with torch.no_grad():
            step(optimizer)

    return update
