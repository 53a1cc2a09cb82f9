"""The generation study of a workflow config: which tokenizer runs, which prior folders.

``generation_plan(wcfg, plan)`` is called by :func:`qgvae.plan.build_plan` when the config has
a ``generation`` section; its result is ``plan["generation"]``::

    dataset, settings (resolved, qgvae.prior.settings), epochs (sampled prior epochs)
    tokenizers  [{key, table, method, label, runs: {seed: run}, priors: {seed: prior}}]
    runs        {run: run entry}  tokenizer runs that no table has (see below)
    priors      {prior: {run, method, key, seed, compare: [runs], train_settings, match}}

A tokenizer is a table cell (``table``, the study's ``dataset``, ``method``, optionally
``label``); its run for seed k is that cell's run config for seed k. Matching on reconstruction
quality (``match_psnr`` not null) needs ``train.keep_checkpoints: true``: when the cell's config
already has it (e.g. set through ``method_dataset``), the table's own run is used; otherwise the
study uses the cell's configuration plus ``keep_checkpoints`` -- a run folder of its own
(``keep_checkpoints-True_<digest>``), trained by the same ``train`` rule, listed in ``runs``.
That costs one more training per tokenizer and seed, instead of keeping every epoch's weights
of every run sharing the cell's (method, dataset) overrides (on CIFAR-10 that is every QG-VAE
ablation: ~100 checkpoints of ~25 MB per run).

A prior lives in ``<tokenizer run>/prior/<digest>/``; the digest covers the prior's training
settings and the tokenizer choice (target, and for ``auto`` the runs compared), so changing
either starts a new folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import deep_merge
from ..errors import ConfigError
from ..runs import resolve_run, variant
from .settings import prior_digest, resolve, training_settings


def _cell(plan: Mapping[str, Any], spec: Mapping[str, Any], dataset: str, where: str):
    table = spec.get("table")
    cells = [
        c
        for c in (plan.get("tables") or {}).get(table) or []
        if c["dataset"] == dataset
        and c["method"] == spec.get("method")
        and ("label" not in spec or str(c["label"]) == str(spec["label"]))
    ]
    if len(cells) != 1:
        found = "no" if not cells else f"{len(cells)} (give a label)"
        raise ConfigError(
            f"{where}: {found} cell of table {table!r} on {dataset} for method "
            f"{spec.get('method')!r}; name a cell of the plan's tables ({sorted(plan['tables'])})"
        )
    return cells[0]


def generation_plan(wcfg: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    settings = resolve(wcfg["generation"])
    dataset = settings["dataset"]
    if dataset not in (wcfg.get("datasets") or {}):
        raise ConfigError(f"generation.dataset: {dataset!r} has no entry under 'datasets'")
    results = plan["results"]
    match_psnr = settings["match_psnr"]
    tokenizers, runs = [], {}
    for i, spec in enumerate(settings["tokenizers"]):
        where = f"generation.tokenizers[{i}]"
        cell = _cell(plan, spec, dataset, where)
        method = cell["method"]
        entry = {
            "key": method if cell["label"] == method else f"{method} ({cell['label']})",
            "table": spec["table"],
            "method": method,
            "label": cell["label"],
            "runs": {},
            "priors": {},
        }
        for seed in settings["seeds"]:
            overrides = cell.get("overrides") or {}
            cfg = resolve_run(wcfg, dataset, method, overrides, seed, where)
            if match_psnr is not None and not cfg["train"]["keep_checkpoints"]:
                overrides = deep_merge(overrides, {"train": {"keep_checkpoints": True}})
                cfg = resolve_run(wcfg, dataset, method, overrides, seed, where)
            base = resolve_run(wcfg, dataset, method, {}, seed, where)
            path = f"{results}/{dataset}/{method}/{variant(base, cfg)}/seed{seed}"
            if path not in plan["runs"]:
                runs[path] = {
                    "dataset": dataset,
                    "method": method,
                    "variant": path.split("/")[-2],
                    "seed": int(seed),
                    "config": cfg,
                }
            entry["runs"][str(seed)] = path
        if entry["key"] in {t["key"] for t in tokenizers}:
            raise ConfigError(f"{where}: the same tokenizer is listed twice")
        tokenizers.append(entry)
    priors = {}
    for entry in tokenizers:
        for seed, run in entry["runs"].items():
            compare = sorted(t["runs"][seed] for t in tokenizers if t["runs"][seed] != run)
            match = {
                "match_psnr": match_psnr,
                "compare": compare if match_psnr == "auto" else [],
            }
            train = training_settings(settings, int(seed))
            prior = f"{run}/prior/{prior_digest(train, match)}"
            entry["priors"][seed] = prior
            priors[prior] = {
                "run": run,
                "method": entry["method"],
                "key": entry["key"],
                "seed": int(seed),
                "compare": match["compare"],
                "match": match,
                "train_settings": train,
            }
    return {
        "dataset": dataset,
        "settings": settings,
        "epochs": settings["sample"]["epochs"],
        "tokenizers": tokenizers,
        "runs": runs,
        "priors": priors,
    }
