"""Optimiser and learning-rate schedule of a run, from its ``train`` section.

``optimizer``      ``adamw`` (QG-VAE: lr 2e-4, weight decay 0.01) or ``adam`` (the baselines),
                   with ``adam_betas``; fused into one kernel per step on CUDA.
``lr_schedule``    ``none``; ``plateau``: reduce-on-plateau stepped after every validation pass
                   on ``val_metric`` (VQ-WAE / SQ-VAE: factor 0.5, patience 3, relative
                   threshold 1e-4, validation once per epoch); ``cosine``: linear warm-up over
                   ``warmup_steps`` then cosine decay to 0 at the last step (DQ-VAE), stepped
                   every optimiser step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def make_optimizer(
    model: torch.nn.Module,
    train_cfg: Mapping[str, Any],
    device: torch.device,
    *,
    tensor_lr: bool = False,
):
    """The run's optimiser. ``tensor_lr``: the learning rate as a 0-d tensor on ``device`` (a
    compiled update then reads it instead of baking the number into its graph)."""
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[train_cfg["optimizer"]]
    lr = train_cfg["lr"]
    kwargs: dict[str, Any] = {
        "lr": torch.tensor(float(lr), device=device) if tensor_lr else lr,
        "weight_decay": train_cfg["weight_decay"],
        "betas": tuple(train_cfg["adam_betas"]),
    }
    if device.type == "cuda":
        kwargs["fused"] = True  # one kernel for the whole update instead of one per tensor
    return cls(model.parameters(), **kwargs)


def lr_kind(optimizer: torch.optim.Optimizer, *, tensor: bool, device: torch.device) -> None:
    """Make every group's learning rate a tensor (``tensor``) or a float, keeping its value: a
    checkpoint written with the other kind (compile switched between attempts) loads into
    either."""
    for group in optimizer.param_groups:
        value = float(group["lr"])
        group["lr"] = torch.tensor(value, device=device) if tensor else value


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The first group's learning rate as a float (it may be a tensor)."""
    return float(optimizer.param_groups[0]["lr"])


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor at optimiser step ``step`` (0-based): linear from 0 to 1 over
    ``warmup`` steps, then half a cosine from 1 to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / span)))


def make_scheduler(optimizer, train_cfg: Mapping[str, Any], total_steps: int):
    """The run's scheduler, or None. ``plateau`` is stepped with a validation value, ``cosine``
    after every optimiser step (see :func:`scheduler_steps_per_step`)."""
    kind = train_cfg["lr_schedule"]
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=train_cfg["plateau_factor"],
            patience=train_cfg["plateau_patience"],
            threshold=train_cfg["plateau_threshold"],
            threshold_mode="rel",
        )
    if kind == "cosine":
        warmup = int(train_cfg["warmup_steps"])
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total_steps)
        )
    return None


def steps_every_step(scheduler) -> bool:
    """Whether ``scheduler`` is stepped after every optimiser step (not on validation)."""
    return isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)


def total_steps(train_cfg: Mapping[str, Any], steps_per_epoch: int) -> int:
    steps = math.ceil(train_cfg["epochs"] * steps_per_epoch)
    if train_cfg.get("max_steps"):
        steps = min(steps, int(train_cfg["max_steps"]))
    return max(steps, 1)
