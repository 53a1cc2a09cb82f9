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
    modern: {datasets: [...], methods: [...], bits: 576, dataset_bits: {...},
             rate_sweep: {dataset: cifar10, points: {BITS: {METHOD: overrides}}}}
             (tables ``modern`` and ``modern_rates``, :mod:`qgvae.modern`)

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

import json
from collections.abc import Mapping
from typing import Any

from . import config as run_config
from . import modern
from .config import ConfigError
from .runs import config_diff, readable_label, resolve_run, training_digest, variant

__all__ = [
    "build_plan",
    "config_diff",
    "readable_label",
    "resolve_run",
    "runs_for",
    "subplan",
    "training_digest",
    "variant",
]

TABLE1 = "table1"
TABLE2 = "table2"

PATH_KEYS = ("results", "reports", "data_root", "paper_values")
MARKDOWN_PATH_KEYS = ("out", "reading")  # of the optional `markdown` section


def check_paths(wcfg: Mapping[str, Any]) -> None:
    """The free-string paths (:data:`PATH_KEYS`, and the `markdown` section's files) are plain
    paths (:func:`qgvae.config.check_path`: no shell metacharacters, no control characters), or
    ConfigError names the key."""
    for key in PATH_KEYS:
        if wcfg.get(key) is not None:
            run_config.check_path(key, wcfg[key])
    for key in MARKDOWN_PATH_KEYS:
        value = (wcfg.get("markdown") or {}).get(key)
        if value is not None:
            run_config.check_path(f"markdown.{key}", value)


def _model_key(cfg: Mapping[str, Any]) -> str:
    """What decides a model's construction: method (and class), dataset (image shape), kwargs."""
    parts = [cfg["method"], cfg.get("method_class"), cfg["dataset"], cfg["model"]]
    return json.dumps(parts, sort_keys=True, default=str)


def check_buildable(
    cfg: Mapping[str, Any], cell: Mapping[str, str], built: dict[str, Any] | None = None
) -> Any:
    """Build the cell's model on the meta device (:func:`qgvae.config.check_buildable`), so an
    argument its constructor rejects stops the plan (and so the dry run), naming the table cell
    (``cell``: table, label, where) with the constructor's message; returns the (meta) model.
    ``built`` maps the models already built by this plan: cells of one configuration are built
    once."""
    key = _model_key(cfg)
    if built is not None and key in built:
        return built[key]
    try:
        model = run_config.check_buildable(cfg)
    except ConfigError as exc:
        raise ConfigError(
            f"{cell['where']} (table {cell['table']}, cell {cell['label']!r}, method "
            f"{cfg['method']}, dataset {cfg['dataset']}): {exc}"
        ) from None
    if built is not None:
        built[key] = model
    return model


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
    """Yield (table, dataset, method, label, overrides, where, asked bits per image or None)
    for every cell of every table (the asked bits: the ``modern`` tables, :mod:`qgvae.modern`)."""
    t1 = wcfg.get("table1") or {}
    for d in t1.get("datasets", []):
        for m in t1.get("methods", []):
            yield TABLE1, d, m, m, {}, f"table1 ({d}, {m})", None
    t2 = wcfg.get("table2") or {}
    for d in t2.get("datasets", []):
        for label, per_method in (t2.get("budgets") or {}).items():
            for m, ov in per_method.items():
                yield TABLE2, d, m, str(label), ov or {}, f"table2.budgets.{label}.{m}", None
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
                    None,
                )
    yield from modern.cells(wcfg)


def build_plan(wcfg: Mapping[str, Any]) -> dict[str, Any]:
    """Every run (keyed by folder) and every table cell, as plain JSON-able data.

    Returns ``{"results": str, "seeds": [...], "runs": {path: run}, "tables": {name: [cell]}}``
    with ``run = {"dataset", "method", "variant", "seed", "config"}`` and
    ``cell = {"dataset", "method", "label", "variant", "overrides", "runs": [path per seed]}``,
    and ``"generation"`` when the config has that section (:mod:`qgvae.prior.plan`).
    Raises ConfigError (naming the offending key) for unknown methods, datasets or model keys,
    for a path that is not plain, and (naming the table cell) for model arguments the model's
    constructor rejects: every distinct planned model is built once on the meta device
    (measured on a shared, busy 2-core machine: 2.2-4 s of the plan's time for the 48 models of
    config/config.yaml, 0.6-0.8 s for the 13 of config/quick.yaml).
    """
    check_paths(wcfg)
    check_names(wcfg)
    results = str(wcfg.get("results", "results"))
    seeds = [int(s) for s in wcfg.get("seeds", [0])]
    if not seeds:
        raise ConfigError("seeds: at least one seed is needed")
    runs: dict[str, dict[str, Any]] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    built: dict[str, Any] = {}  # models built on the meta device (one per configuration)
    for table, dataset, method, label, overrides, where, bits in _cells(wcfg):
        paths = []
        for seed in seeds:
            cfg = resolve_run(wcfg, dataset, method, overrides, seed, where)
            if seed == seeds[0]:
                cell = {"table": table, "label": label, "where": where}
                model = check_buildable(cfg, cell, built)
                if bits is not None:
                    modern.check_rate(model, bits, where)
            base = resolve_run(wcfg, dataset, method, {}, seed, where)
            var = variant(base, cfg)
            path = f"{results}/{dataset}/{method}/{var}/seed{seed}"
            runs.setdefault(
                path,
                {"dataset": dataset, "method": method, "variant": var, "seed": seed, "config": cfg},
            )
            paths.append(path)
        entry = {
            "dataset": dataset,
            "method": method,
            "label": label,
            "variant": paths[0].split("/")[-2],
            "overrides": overrides,
            "runs": paths,
        }
        if bits is not None:
            entry["bits"] = bits  # the asked rate (checked against the model above)
        tables.setdefault(table, []).append(entry)
    plan = {"results": results, "seeds": seeds, "runs": runs, "tables": tables}
    plan["names"] = display_names(runs)
    if wcfg.get("generation"):  # the generation study's runs and prior folders (qgvae.prior.plan)
        from .prior.plan import generation_plan

        plan["generation"] = generation_plan(wcfg, plan)
    return plan


def display_names(runs: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """How tables and figures name the plan's methods (their classes' ``display_name``) and
    datasets, recorded in the plan so that rendering needs no model code."""
    from .data import display_name as dataset_name
    from .methods import display_name as method_name

    methods, datasets = {}, {}
    for info in runs.values():
        spec = (info.get("config") or {}).get("method_class")
        methods.setdefault(info["method"], method_name(info["method"], spec))
        datasets.setdefault(info["dataset"], dataset_name(info["dataset"]))
    return {"methods": methods, "datasets": datasets}


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
    runs = {path: plan["runs"][path] for path in runs_for({"tables": cells})}
    out = {"results": plan["results"], "seeds": plan["seeds"], "runs": runs, "tables": cells}
    if "names" in plan:
        out["names"] = plan["names"]
    return out
