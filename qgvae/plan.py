"""From the workflow config to the list of runs and the cells of every table.

This module is the single source of truth for *which* runs exist and *where* they live; the
Snakefile, the tables and the figures all call it, so they can never disagree.

Workflow config (see ``workflow/schemas/config.schema.yaml`` for every key)::

    results: results            # run folders: results/<dataset>/<method>/<variant>/seed<k>/
    data_root: data
    seeds: [0, 1, 2]
    defaults:  {train: {...}, eval: {...}}           # run-config defaults for every run
    datasets:  {cifar10: {...}, ...}                 # per-dataset run-config overrides
    methods:   {qgvae: {model: {...}}, ...}          # per-method base run config; a method
                                                     # not registered gives class: "pkg.mod:Cls"
    method_dataset: {qgvae: {celeba64: {...}}}       # per (method, dataset) overrides
    table1: {datasets: [...], methods: [...]}
    table2: {datasets: [...], budgets: {LABEL: {METHOD: overrides, ...}}}
    ablations: {dataset: cifar10,
                axes: {AXIS: {dataset?: ..., values: {LABEL: {METHOD: overrides}}}}}

A run's config is merged in this order (later wins): qgvae.config.RUN_DEFAULTS, ``defaults``,
``methods[m]``, ``datasets[d]``, ``method_dataset[m][d]``, the cell's overrides; then
``method``, ``dataset``, ``data_root`` and ``seed`` are set.

The variant folder name is the readable difference between the run's resolved config and the
method's base config on that dataset, plus a digest of everything in the resolved config that
influences training (not the seed, eval settings, device or logging
cadence). Two different training configurations therefore never share a folder, and a run whose
configuration equals another cell's (e.g. an ablation value equal to the default) is trained once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from . import config as run_config
from .config import ConfigError, deep_merge, training_part

TABLE1 = "table1"
TABLE2 = "table2"


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


# Characters a path of the workflow config may not contain: control characters and what a shell
# would interpret (every value is quoted before it reaches a shell; this rejects the rest early).
_UNSAFE_PATH_CHARS = set(";&|`$<>(){}[]*?!~#'\"\\")


def check_paths(wcfg: Mapping[str, Any]) -> None:
    """The free-string paths (``results``, ``data_root``, ``paper_values``) are plain paths."""
    for key in ("results", "data_root", "paper_values"):
        value = wcfg.get(key)
        if value is None:
            continue
        text = str(value)
        bad = sorted({c for c in text if c in _UNSAFE_PATH_CHARS or ord(c) < 32 or ord(c) == 127})
        if bad or not text.strip():
            shown = ", ".join(repr(c) for c in bad) or "an empty path"
            raise ConfigError(
                f"{key}: {text!r} is not a plain path ({shown}); use letters, digits, spaces, "
                "'/', '.', '_', '-', '+', ',', '=', ':' or '@'"
            )


def check_buildable(cfg: Mapping[str, Any], where: str) -> None:
    """Build the run's model on the meta device (no memory, no compute; a second for a whole
    plan), so that an argument its constructor rejects stops the dry run, naming the cell."""
    import torch

    from .methods import build_model

    try:
        with torch.device("meta"):
            build_model(cfg)
    except (ValueError, TypeError, AssertionError) as exc:
        raise ConfigError(f"{where}: the {cfg['method']} model cannot be built: {exc}") from None


def check_names(wcfg: Mapping[str, Any]) -> None:
    """Every method and dataset named in the config exists, or ConfigError names the key.

    Method names come from the plug-in registry (:mod:`qgvae.methods`; a ``class`` entry makes any
    name a method), dataset names from :data:`qgvae.data.DATASETS`; the schema lists neither.
    """
    from .data import DATASETS
    from .methods import get_method

    methods = wcfg.get("methods") or {}
    for name, entry in methods.items():
        try:
            get_method(name, (entry or {}).get("class"))
        except ConfigError as exc:
            raise ConfigError(f"methods.{name}: {exc}") from None
    for name in wcfg.get("datasets") or {}:
        if name not in DATASETS:
            raise ConfigError(
                f"datasets.{name}: unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}"
            )
    for method, per_dataset in (wcfg.get("method_dataset") or {}).items():
        if method not in methods:
            raise ConfigError(
                f"method_dataset.{method}: method '{method}' has no entry under 'methods' "
                f"(known: {sorted(methods)})"
            )
        for dataset in per_dataset or {}:
            if dataset not in (wcfg.get("datasets") or {}):
                raise ConfigError(
                    f"method_dataset.{method}.{dataset}: dataset '{dataset}' has no entry under "
                    f"'datasets' (known: {sorted(wcfg.get('datasets') or {})})"
                )


def _cells(wcfg: Mapping[str, Any]):
    """Yield (table, dataset, method, label, overrides, where) for every cell of every table."""
    t1 = wcfg.get("table1") or {}
    for d in t1.get("datasets", []):
        for m in t1.get("methods", []):
            yield TABLE1, d, m, m, {}, f"table1 ({d}, {m})"
    t2 = wcfg.get("table2") or {}
    for d in t2.get("datasets", []):
        for label, per_method in (t2.get("budgets") or {}).items():
            for m, ov in per_method.items():
                yield TABLE2, d, m, str(label), ov or {}, f"table2.budgets.{label}.{m}"
    abl = wcfg.get("ablations") or {}
    for axis, spec in (abl.get("axes") or {}).items():
        d = spec.get("dataset", abl.get("dataset"))
        if d is None:
            raise ConfigError(f"ablations.axes.{axis}: no dataset (set ablations.dataset)")
        for label, per_method in spec["values"].items():
            for m, ov in per_method.items():
                yield (
                    f"ablation_{axis}",
                    d,
                    m,
                    str(label),
                    ov or {},
                    f"ablations.axes.{axis}.values.{label}.{m}",
                )


def build_plan(wcfg: Mapping[str, Any]) -> dict[str, Any]:
    """Every run (keyed by folder) and every table cell, as plain JSON-able data.

    Returns ``{"results": str, "seeds": [...], "runs": {path: run}, "tables": {name: [cell]}}``
    with ``run = {"dataset", "method", "variant", "seed", "config"}`` and
    ``cell = {"dataset", "method", "label", "variant", "overrides", "runs": [path per seed]}``.
    Raises ConfigError (naming the offending key) for unknown methods, datasets or model keys.
    """
    check_paths(wcfg)
    check_names(wcfg)
    results = str(wcfg.get("results", "results"))
    seeds = [int(s) for s in wcfg.get("seeds", [0])]
    if not seeds:
        raise ConfigError("seeds: at least one seed is needed")
    runs: dict[str, dict[str, Any]] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, dataset, method, label, overrides, where in _cells(wcfg):
        paths = []
        for seed in seeds:
            cfg = resolve_run(wcfg, dataset, method, overrides, seed, where)
            if seed == seeds[0]:
                check_buildable(cfg, where)
            base = resolve_run(wcfg, dataset, method, {}, seed, where)
            var = variant(base, cfg)
            path = f"{results}/{dataset}/{method}/{var}/seed{seed}"
            runs.setdefault(
                path,
                {"dataset": dataset, "method": method, "variant": var, "seed": seed, "config": cfg},
            )
            paths.append(path)
        tables.setdefault(table, []).append(
            {
                "dataset": dataset,
                "method": method,
                "label": label,
                "variant": paths[0].split("/")[-2],
                "overrides": overrides,
                "runs": paths,
            }
        )
    return {"results": results, "seeds": seeds, "runs": runs, "tables": tables}


def runs_for(plan: Mapping[str, Any], table_prefix: str = "") -> list[str]:
    """Run folders needed by the tables whose name starts with ``table_prefix`` ('' = all)."""
    out: dict[str, None] = {}
    for name, cells in plan["tables"].items():
        if name.startswith(table_prefix):
            for cell in cells:
                for path in cell["runs"]:
                    out[path] = None
    return list(out)


def subplan(plan: Mapping[str, Any], table: str) -> dict[str, Any]:
    """The plan restricted to one table and its runs (same structure as build_plan's)."""
    if table not in plan["tables"]:
        raise ConfigError(f"no table {table!r} in the plan (tables: {sorted(plan['tables'])})")
    cells = {table: plan["tables"][table]}
    return {
        "results": plan["results"],
        "seeds": plan["seeds"],
        "runs": {path: plan["runs"][path] for path in runs_for({"tables": cells})},
        "tables": cells,
    }
