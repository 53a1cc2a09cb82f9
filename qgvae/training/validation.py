"""Validation during training, and what a run's log says about its progress.

``validate`` scores the model on the validation split (mean MSE, mean per-image PSNR with data
range 1, and optionally the model's total loss) in eval mode. ``floor_psnr`` scores the
constant prediction "the training split's mean image" on the same validation images: a model
that does not beat it by a clear margin has not learnt to reconstruct its input.
``progress_summary`` reads the validation rows of ``train_log.jsonl`` at the end of a run: the
first step whose validation PSNR exceeded the floor by :data:`LEARNED_MARGIN_DB`, and the last
validation PSNR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .precision import Precision

LEARNED_MARGIN_DB = 3.0  # a run "has learnt" once its validation PSNR beats the floor by this


def _psnr_per_image(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    err = (recon.float().clamp(0, 1) - x).pow(2).flatten(1).mean(1)
    return err, -10 * torch.log10(err.clamp_min(1e-10))


def validation_images(images_u8: torch.Tensor, batch_size: int, max_batches: int | None):
    """The validation images a pass sees (the first ``max_batches`` batches, or all)."""
    n = len(images_u8) if max_batches is None else min(len(images_u8), max_batches * batch_size)
    return images_u8[:n]


@torch.no_grad()
def validate(
    model,
    images_u8: torch.Tensor,
    *,
    batch_size: int,
    precision: Precision,
    with_loss: bool = False,
    samples: list | None = None,
    num_samples: int = 8,
) -> dict[str, float]:
    """Mean MSE, mean per-image PSNR and (``with_loss``) the mean total loss, in eval mode.

    ``samples``: a list that receives ``(originals, reconstructions)`` of the first
    ``num_samples`` images (from the first batch: no extra forward pass).
    """
    was_training = model.training
    model.eval()
    device = precision.device
    se_sum = torch.zeros((), device=device, dtype=torch.float64)
    psnr_sum = torch.zeros((), device=device, dtype=torch.float64)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    n = 0
    for start in range(0, len(images_u8), batch_size):
        x = images_u8[start : start + batch_size].float().div_(255)
        with precision.autocast():
            output = model(x)
        err, psnr = _psnr_per_image(output.recon, x)
        se_sum += err.sum()
        psnr_sum += psnr.sum()
        if with_loss:
            loss_sum += output.loss.detach().double() * len(x)
        if samples is not None and start == 0:
            samples.append((x[:num_samples], output.recon[:num_samples].float()))
        n += len(x)
    model.train(was_training)
    out = {"mse": (se_sum / n).item(), "psnr": (psnr_sum / n).item(), "n": n}
    if with_loss:
        out["loss"] = (loss_sum / n).item()
    return out


@torch.no_grad()
def mean_image(images_u8: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The float mean image ``[C, H, W]`` in [0, 1] of a uint8 split (float64 accumulation)."""
    total = torch.zeros(images_u8.shape[1:], dtype=torch.float64, device=images_u8.device)
    for start in range(0, len(images_u8), chunk):
        total += images_u8[start : start + chunk].double().sum(0)
    return (total / (255.0 * len(images_u8))).float()


@torch.no_grad()
def floor_psnr(train_u8: torch.Tensor, val_u8: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean per-image PSNR of the training mean image against each validation image."""
    mean = mean_image(train_u8)
    total, n = 0.0, 0
    for start in range(0, len(val_u8), batch_size):
        x = val_u8[start : start + batch_size].float().div_(255)
        _, psnr = _psnr_per_image(mean.expand_as(x), x)
        total += psnr.double().sum().item()
        n += len(x)
    return total / n


def progress_summary(val_rows: Iterable[Mapping[str, Any]], floor: float) -> dict[str, Any]:
    """Where a run stands, from its validation rows (in step order)."""
    first, last = None, None
    for row in val_rows:
        last = row
        if first is None and row["psnr"] >= floor + LEARNED_MARGIN_DB:
            first = int(row["step"])
    return {
        "val_floor_psnr": floor,
        "learned_margin_db": LEARNED_MARGIN_DB,
        "step_val_psnr_above_floor_by_margin": first,
        "final_val_psnr": None if last is None else float(last["psnr"]),
        "final_val_step": None if last is None else int(last["step"]),
    }
