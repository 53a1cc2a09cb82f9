"""One run of the plan: its resolved config and its folder name (the variant).

Both the table plan (:mod:`qgvae.plan`) and the generation study's plan (:mod:`qgvae.prior.plan`)
resolve runs through here, so the generation plan never imports the plan that includes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from . import config as run_config
from .config import ConfigError, deep_merge, training_part


def training_digest(cfg: Mapping[str, Any]) -> str:
    """8-hex digest of the training-relevant part of a resolved run config."""
    blob = json.dumps(training_part(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def config_diff(base: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """The nested entries of ``other`` whose values differ from ``base``."""
    out: dict[str, Any] = {}
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            sub = config_diff(base[key], value)
            if sub:
                out[key] = sub
        elif base.get(key, object()) != value:
            out[key] = value
    return out


def readable_label(diff: Mapping[str, Any]) -> str:
    """``{}`` -> ``default``; else the sorted leaf ``key-value`` pairs, e.g. ``heads-32``.

    Only for people reading folder names: uniqueness comes from the digest beside it.
    """
    flat: list[str] = []

    def walk(obj: Any, key: str) -> None:
        if isinstance(obj, Mapping):
            for k in sorted(obj):
                walk(obj[k], k)
        else:
            flat.append(f"{key}-{obj}")

    walk(diff, "")
    if not flat:
        return "default"
    readable = "_".join(flat).replace("/", "-").replace(" ", "")
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in readable)[:80]


def variant(base: Mapping[str, Any], resolved: Mapping[str, Any]) -> str:
    """``<readable difference from the method's base config>_<training digest>``.

    The readable part comes from the resolved configs, not from how the overrides were written,
    so an ablation value that equals the default lands in the default's folder.
    """
    label = readable_label(config_diff(training_part(base), training_part(resolved)))
    return f"{label}_{training_digest(resolved)}"


def resolve_run(
    wcfg: Mapping[str, Any],
    dataset: str,
    method: str,
    overrides: Mapping[str, Any] | None,
    seed: int,
    where: str,
) -> dict[str, Any]:
    """The resolved run config of one cell and seed; ConfigError names ``where`` on failure."""
    methods = wcfg.get("methods", {})
    if method not in methods:
        raise ConfigError(
            f"{where}: method '{method}' has no entry under 'methods' (known: {sorted(methods)})"
        )
    datasets = wcfg.get("datasets", {})
    if dataset not in datasets:
        raise ConfigError(
            f"{where}: dataset '{dataset}' has no entry under 'datasets' "
            f"(known: {sorted(datasets)})"
        )
    cfg: dict[str, Any] = {}
    method_layer = {k: v for k, v in methods[method].items() if k != "class"}
    for layer in (
        wcfg.get("defaults"),
        method_layer,
        datasets[dataset],
        wcfg.get("method_dataset", {}).get(method, {}).get(dataset),
        overrides,
    ):
        cfg = deep_merge(cfg, layer or {})
    cfg.update(
        method=method, dataset=dataset, data_root=str(wcfg.get("data_root", "data")), seed=int(seed)
    )
    if methods[method].get("class"):
        cfg["method_class"] = str(methods[method]["class"])
    try:
        return run_config.resolve(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
