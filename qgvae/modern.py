"""The cells of the ``modern`` tables: QG-VAE against modern quantisers at equal bits.

Workflow config (``workflow/schemas/config.schema.yaml``, documented in config/README.md)::

    modern:
      datasets: [mnist, cifar10, svhn, celeba64]
      methods: [qgvae, fsq, lfq, rvq, simvq, rotvq, titok]
      bits: 576                       # what every (dataset, method) cell must code per image
      dataset_bits: {celeba64: 2304}  # per-dataset exceptions
      rate_sweep:                     # optional: the rate-distortion points
        dataset: cifar10
        points: {"144": {METHOD: overrides}, "576": {...}, ...}   # label = the asked bits

Two tables: ``modern`` (one cell per dataset and method, at the method's base configuration on
that dataset, like Table 1; label = the method) and ``modern_rates`` (one cell per sweep point
and method; label = the asked bits). A cell whose model does not code the asked bits per image
within :data:`RATE_TOLERANCE` (``bits_per_image()`` of the model, built on the meta device by
the plan) stops the plan with one line naming the cell: rate matching is checked, not assumed.
Both tables' runs are the target ``modern``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .errors import ConfigError

MODERN = "modern"
MODERN_RATES = "modern_rates"
MODERN_TABLES = (MODERN, MODERN_RATES)
RATE_TOLERANCE = 0.01  # relative: +-1 % of the asked bits per image

__all__ = ["MODERN", "MODERN_RATES", "MODERN_TABLES", "RATE_TOLERANCE", "check_rate", "cells"]


def _asked(label: str, where: str) -> float:
    try:
        bits = float(label)
    except ValueError:
        bits = float("nan")
    if not bits > 0:
        raise ConfigError(f"{where}: the point's label {label!r} must be its bits per image (> 0)")
    return bits


def cells(wcfg: Mapping[str, Any]) -> Iterator[tuple]:
    """Yield ``(table, dataset, method, label, overrides, where, asked_bits)`` of every cell."""
    spec = wcfg.get(MODERN) or {}
    if not spec:
        return
    per_dataset = spec.get("dataset_bits") or {}
    for dataset in per_dataset:
        if dataset not in spec["datasets"]:
            raise ConfigError(
                f"modern.dataset_bits.{dataset}: '{dataset}' is not one of modern.datasets "
                f"{spec['datasets']}"
            )
    for dataset in spec["datasets"]:
        asked = float(per_dataset.get(dataset, spec["bits"]))
        for method in spec["methods"]:
            yield MODERN, dataset, method, method, {}, f"modern ({dataset}, {method})", asked
    sweep = spec.get("rate_sweep") or {}
    for label, per_method in (sweep.get("points") or {}).items():
        where = f"modern.rate_sweep.points.{label}"
        asked = _asked(str(label), where)
        for method, overrides in per_method.items():
            yield (
                MODERN_RATES,
                sweep["dataset"],
                method,
                str(label),
                overrides or {},
                f"{where}.{method}",
                asked,
            )


def check_rate(model: Any, asked: float, where: str) -> float:
    """The model's ``bits_per_image()``; ConfigError naming ``where`` unless it is within
    :data:`RATE_TOLERANCE` of ``asked``."""
    got = float(model.bits_per_image())
    off = (got - asked) / asked
    if abs(off) > RATE_TOLERANCE:
        raise ConfigError(
            f"{where}: the model codes {got:g} bits per image, {100 * off:+.1f} % off the asked "
            f"{asked:g} (allowed +-{100 * RATE_TOLERANCE:g} %): change its model arguments "
            "(tokens / latents, codebook_size, levels, depth, downsample) or the asked bits"
        )
    return got
