"""Figures of the benchmark (PDF + PNG, seaborn "paper" style): numbers from the summary table,
images, logs and per-position code usage from run folders. ``--only`` takes a family or a stem:
reconstructions (``recon_grid_<dataset>``), progressive, influence (``token_influence``), usage
(``code_usage``), training (``training_curves``), rate_distortion, ablations
(``ablation_<axis>``), generation (``generation_fid``, ``generation_samples``). Every declared
figure is written: without its inputs, as one panel reading "no data: <reason>" (logged).
Beside ``<stem>.pdf`` / ``.png``, ``<stem>.json`` holds the caption (N seeds, protocol, scale),
the source files and the no-data reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from ..errors import ConfigError
from ..evaluation.differences import read_differences
from ..io import load_plan
from .figure_images import fig_influence, fig_progressive, fig_reconstructions
from .figure_metrics import fig_ablation, fig_code_usage, fig_rate_distortion, fig_training
from .generation import fig_generation_fid, fig_generation_samples
from .plots import Context, NoData, no_data_figure, pyplot, save_figure, style
from .results import paper_values_of
from .summary import COLUMNS, Summary

log = logging.getLogger(__name__)
FAMILIES = ("reconstructions", "progressive", "influence", "usage", "training")
FAMILIES += ("rate_distortion", "ablations", "generation")


class Spec(NamedTuple):
    """One figure file: family, stem, ``func(ctx, **kwargs)`` and its "no data" title."""

    family: str
    stem: str
    func: Callable[..., Any]
    kwargs: dict[str, Any]
    title: str


def figure_specs(plan: Mapping[str, Any]) -> list[Spec]:
    """Every figure of the plan: ``recon_grid_<dataset>`` per Table-1 dataset, the summary
    figures (always), ``ablation_<axis>`` per ablation, ``recon_grid_modern_<dataset>`` and
    ``rate_distortion_modern`` of the modern tables, the generation study's."""
    tables = plan.get("tables") or {}
    datasets = dict.fromkeys(c["dataset"] for c in tables.get("table1", []))
    recon = lambda ds: ({"dataset": ds}, f"Reconstructions, {ds}")
    specs = [
        Spec("reconstructions", f"recon_grid_{ds}", fig_reconstructions, *recon(ds))
        for ds in datasets
    ]
    specs += [
        Spec("progressive", "progressive", fig_progressive, {}, "Progressive decoding"),
        Spec("influence", "token_influence", fig_influence, {}, "Token influence"),
        Spec("usage", "code_usage", fig_code_usage, {}, "Code usage per position"),
        Spec("training", "training_curves", fig_training, {}, "Training curves"),
        Spec("rate_distortion", "rate_distortion", fig_rate_distortion, {}, "Rate-distortion"),
    ]
    specs += [
        Spec("ablations", n, fig_ablation, {"table": n}, f"Ablation: {n[len('ablation_') :]}")
        for n, cells in tables.items()
        if n.startswith("ablation_") and cells
    ]
    specs += [
        Spec(
            "reconstructions",
            f"recon_grid_modern_{ds}",
            fig_reconstructions,
            {"dataset": ds, "table": "modern"},
            f"Modern quantisers, {ds}",
        )
        for ds in dict.fromkeys(c["dataset"] for c in tables.get("modern", []))
    ]
    if tables.get("modern_rates"):
        kwargs = {"tables": ("modern_rates",)}
        title = "Rate-distortion, modern quantisers"
        specs.append(
            Spec("rate_distortion", "rate_distortion_modern", fig_rate_distortion, kwargs, title)
        )
    if plan.get("generation"):
        specs += [
            Spec("generation", "generation_fid", fig_generation_fid, {}, "Generation: gFID"),
            Spec("generation", "generation_samples", fig_generation_samples, {}, "Samples"),
        ]
    return specs


def figure_stems(plan: Mapping[str, Any]) -> list[str]:
    """Every figure stem ``render_figures`` writes (``<stem>.pdf`` and ``<stem>.png``)."""
    return [s.stem for s in figure_specs(plan)]


def render_figures(
    plan: Mapping[str, Any] | str | Path,
    outdir: str | Path,
    root: str | Path = ".",
    only: Sequence[str] | None = None,
    protocol: str = "vqwae",
    paper_values: Mapping[str, Any] | str | Path | None = None,
    intervals: str | Path | None = None,
    summary: Summary | pd.DataFrame | str | Path | None = None,
) -> tuple[list[Path], dict[str, str]]:
    """Write the figures (all, or those whose family or stem is in ``only``); returns the
    written paths and ``{stem: reason}`` of those drawn as "no data". ``summary``: the summary
    table or its CSV (None: no numbers, as for the generation figures); ``intervals``:
    method_intervals.csv (the rate-distortion figure's error bars)."""
    plan = load_plan(plan)
    specs = figure_specs(plan)
    stems = [s.stem for s in specs]
    unknown = [o for o in only or [] if o not in FAMILIES and o not in stems]
    if unknown:
        raise ConfigError(
            f"unknown figure(s) {unknown}; families: {list(FAMILIES)}, stems: {stems}"
        )
    specs = [s for s in specs if not only or s.family in only or s.stem in only]
    summary = Summary(pd.DataFrame(columns=COLUMNS)) if summary is None else Summary.of(summary)
    paper, intervals = paper_values_of(paper_values), read_differences(intervals)
    ctx = Context.build(plan, Path(root), summary, protocol, paper, intervals)
    written, no_data = [], {}
    with pyplot().rc_context(style()):
        for spec in specs:
            try:
                res = spec.func(ctx, **spec.kwargs)
                written += save_figure(res.fig, outdir, spec.stem, res.caption, res.sources)
            except NoData as exc:
                log.warning("figure %s: no data: %s", spec.stem, exc)
                no_data[spec.stem] = reason = str(exc)
                fig, caption = (
                    no_data_figure(spec.title, reason),
                    f"{spec.title}: no data ({reason}).",
                )
                written += save_figure(fig, outdir, spec.stem, caption, [], reason)
    return written, no_data
