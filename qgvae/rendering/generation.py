"""The generation study (the paper's appendix H): its reader, its table and its figures.

Inputs: ``plan["generation"]`` (:func:`qgvae.prior.plan.generation_plan`), each prior folder's
``tokenizer.json``, ``metrics_epochNNNN.json``, ``prior_log.jsonl`` and ``samples_epochNNNN.npz``
(:mod:`qgvae.prior.study`; the study is not part of the run x protocol summary table), and the
``generation`` section of ``config/paper_values.yaml`` (the paper's gFID read off its Fig. 11 by
eye). A missing file renders as ``--`` with a footnote, or a "no data" figure.

The table: one row per tokenizer and sampled prior epoch, the tokenizer's validation PSNR
(matched reconstruction quality) and code bits, then gFID, the paper's value (approximate, ``~``)
and the prior's test NLL; several seeds: mean +- s.d. (ddof 1). ``generation_fid``: gFID
against prior epochs per tokenizer (each seed a dot when several; the paper's points as open
markers on dashed lines where the dataset is the paper's) and the prior's test NLL at every
logged test pass (dotted: the code's bits per image). ``generation_samples``: one row per
tokenizer and sampled epoch, the first samples of the first seed that has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import read_json, write_text
from .latex import DASH, Notes, fmt_stat, latex_escape, latex_prose, table_env, tabular
from .plots import FULL_W, Context, Figure, NoData, mpl_text, pyplot, row_label, show_image, strip
from .results import Names, load_npz, read_log

NAME = "generation"


@dataclass
class PriorResult:
    """What one prior folder holds (``None`` / absent epochs where files are missing)."""

    seed: int
    folder: str
    tokenizer: dict[str, Any] | None
    metrics: dict[int, dict[str, Any]] = field(default_factory=dict)
    test_log: list[dict[str, Any]] = field(default_factory=list)  # prior_log.jsonl test rows


@dataclass
class TokenizerResults:
    key: str
    method: str
    priors: list[PriorResult]

    def values(self, epoch: int, getter) -> list[float]:
        got = [getter(p.metrics[epoch]) for p in self.priors if epoch in p.metrics]
        return [float(v) for v in got if v is not None]

    def tokenizer_values(self, key: str) -> list[float]:
        toks = [p.tokenizer for p in self.priors if p.tokenizer]
        return [float(t[key]) for t in toks if t.get(key) is not None]


def gfid_of(metrics: Mapping[str, Any]) -> float | None:
    return (metrics.get("gfid") or {}).get("value")


def nll_of(metrics: Mapping[str, Any]) -> float | None:
    return metrics.get("nll_bits_per_image")


def load_generation(plan: Mapping[str, Any], root: str | Path = ".") -> list[TokenizerResults]:
    """Every tokenizer of the plan's generation study with whatever its prior folders hold."""
    gen, root, out = plan.get("generation") or {}, Path(root), []
    for tok in gen.get("tokenizers") or []:
        priors = []
        for seed, folder in sorted(tok["priors"].items(), key=lambda kv: int(kv[0])):
            result = PriorResult(int(seed), folder, read_json(root / folder / "tokenizer.json")[0])
            for epoch in map(int, gen.get("epochs") or []):
                metrics, _ = read_json(root / folder / f"metrics_epoch{epoch:04d}.json")
                if metrics is not None:
                    result.metrics[epoch] = metrics
            log = read_log(root / folder / "prior_log.jsonl")
            result.test_log = [r for r in log if r.get("split") == "test"]
            priors.append(result)
        out.append(TokenizerResults(tok["key"], tok["method"], priors))
    return out


def paper_points(paper: Mapping[str, Any], dataset: str) -> dict[str, dict[int, str]]:
    """``{method: {epoch: value as printed}}`` of the paper's plot, when ``dataset`` is its."""
    section = paper.get("generation") or {}
    if section.get("dataset") != dataset:
        return {}
    values = (section.get("values") or {}).items()
    return {str(m): {int(e): str(v) for e, v in (vals or {}).items()} for m, vals in values}


def _n_phrase(results: list[TokenizerResults]) -> str:
    metrics = [m for t in results for p in t.priors for m in p.metrics.values()]
    ns = sorted(
        {(m["gfid"]["n_samples"], m["gfid"]["n_reference"]) for m in metrics if m.get("gfid")}
    )
    texts = [f"N = {a} samples against the first {b} test images" for a, b in ns]
    return "; ".join(texts) or "N: no results yet"


def generation_table(
    plan: Mapping[str, Any], paper: Mapping[str, Any], root: str | Path = "."
) -> dict[str, str]:
    """``{"generation": LaTeX}``, or ``{}`` when the plan has no generation study."""
    gen = plan.get("generation")
    if not gen:
        return {}
    names, results, dataset = Names.from_plan(plan), load_generation(plan, root), gen["dataset"]
    printed, notes = paper_points(paper, dataset), Notes()
    head = ["Tokenizer", "Val.\\ PSNR (dB)", "Code bits", "Prior epoch", "gFID", "Paper"]
    head.append("NLL (bits)")
    rows, before, sources = [], {}, []
    for i, tok in enumerate(results):
        who = names.method(tok.method) + (f" ({tok.key})" if tok.key != tok.method else "")
        first = [latex_escape(who), fmt_stat(tok.tokenizer_values("val_psnr"), 2)]
        first.append(fmt_stat(tok.tokenizer_values("bits_per_image"), 0))
        for j, epoch in enumerate(gen["epochs"]):
            gfid = tok.values(epoch, gfid_of)
            if not gfid:
                notes.mark("not measured yet (shown as --)", f"{who} epoch {epoch}")
            value = printed.get(tok.method, {}).get(int(epoch))
            rows.append((first if j == 0 else ["", "", ""]) + [str(epoch), fmt_stat(gfid, 1)])
            rows[-1] += [f"$\\sim${latex_escape(value)}" if value else DASH]
            rows[-1] += [fmt_stat(tok.values(epoch, nll_of), 1)]
        if i + 1 < len(results):
            before[len(rows)] = "\\midrule"
        for p in tok.priors:
            for epoch in gen["epochs"]:
                state = "present" if epoch in p.metrics else "MISSING"
                where = f"{p.folder}/metrics_epoch{int(epoch):04d}.json"
                sources.append(f"{who} seed {p.seed}: {where} [{state}]")
    settings = gen["settings"]
    toks = [p.tokenizer for t in results for p in t.priors if p.tokenizer]
    targets = [t["target_psnr"] for t in toks if t.get("target_psnr") is not None]
    targets = sorted({round(float(t), 2) for t in targets})
    match = settings["match_psnr"]
    if match is None:
        matched = "Tokenizers: each run's final weights (no matching)."
    else:
        rule = "auto: the best PSNR every tokenizer reaches" if match == "auto" else f"{match} dB"
        shown = ", ".join(f"{t:.2f}" for t in targets) or "not yet known"
        matched = (
            "Tokenizers matched on reconstruction quality: the first kept checkpoint whose "
            f"validation PSNR reaches the target ({latex_escape(rule)}; target {shown} dB)."
        )
    sample = settings["sample"]
    top_k = "no top-k cut" if sample["top_k"] is None else f"top-$k$ {sample['top_k']}"
    caption = [
        f"Generation on {latex_escape(names.dataset(dataset))} (the paper's appendix H): an "
        "unconditional autoregressive prior on each tokenizer's codes of the training split, "
        f"sampled at temperature {sample['temperature']:g} with {top_k}.",
        f"gFID: pytorch-fid Inception features at native resolution, {_n_phrase(results)}.",
        "NLL: the prior's test negative log-likelihood in bits per image; code bits: "
        "$T \\log_2 K$, the cost of the codes without a prior.",
        matched,
        f"Seeds: {', '.join(str(s) for s in settings['seeds'])} (mean $\\pm$ s.d.\\ over seeds "
        "when several).",
    ]
    section = paper.get("generation") or {}
    if printed:
        caption.append(
            f"Paper: {latex_prose(section.get('source', 'the paper'))}; approximate values."
        )
        sources.append(f"paper: {section.get('source', '')} via config/paper_values.yaml")
    else:
        where = section.get("dataset")
        other = latex_escape(names.dataset(where)) if where else "another setting"
        caption.append(f"The paper's values are for {other} and are not shown.")
    body = tabular(head, rows, "lccrccc", before)
    return {NAME: table_env(NAME, " ".join(caption), body, notes, sources, "native")}


def write_generation_table(
    plan: Mapping[str, Any], paper: Mapping[str, Any], out: str | Path, root: str | Path = "."
) -> Path:
    """The generation table alone (``qgvae prior table``), a document fragment like
    ``reports/tables.tex``; a plan without a generation study gives a comment only."""
    text = generation_table(plan, paper, root).get(NAME)
    body = text or "% the plan has no generation study (workflow config: generation)\n"
    write_text(out, body)
    return Path(out)


OURS = dict(lw=1.2, ms=3.5)
PAPER = dict(mfc="white", lw=0.9, ms=4)


def _study(ctx: Context):
    gen = ctx.plan.get("generation")
    if not gen:
        raise NoData("the plan has no generation study (workflow config: generation)")
    return gen, load_generation(ctx.plan, ctx.root)


def fig_generation_fid(ctx: Context) -> Figure:
    gen, results = _study(ctx)
    printed = paper_points(ctx.paper, gen["dataset"])
    if not any(p.metrics for t in results for p in t.priors):
        raise NoData("no metrics_epochNNNN.json in any prior folder of the generation study")
    fig, (ax, ax_nll) = pyplot().subplots(1, 2, figsize=(FULL_W, 2.4))
    sources, n_info, drawn_paper = [], set(), []
    for tok in results:
        colour = ctx.colour(tok.method)
        label = ctx.names.method(tok.method) + (f" ({tok.key})" if tok.key != tok.method else "")
        points = [(e, tok.values(e, gfid_of)) for e in gen["epochs"] if tok.values(e, gfid_of)]
        for epoch, values in (pt for pt in points if len(pt[1]) > 1):  # every seed a dot
            ax.scatter([epoch] * len(values), values, color=colour, s=6, alpha=0.5)
        for p in tok.priors:
            for epoch, m in p.metrics.items():
                sources.append(f"{p.folder}/metrics_epoch{epoch:04d}.json")
                g = m.get("gfid") or {}
                n_info.add((g.get("n_samples"), g.get("n_reference")))
        seeds = sum(1 for p in tok.priors if p.metrics)
        if points:
            xs, means = [e for e, _ in points], [float(np.mean(v)) for _, v in points]
            name = f"{label}, ours ({seeds} seed{'s' if seeds != 1 else ''})"
            ax.plot(xs, means, "o-", color=colour, label=mpl_text(name), **OURS)
        if printed.get(tok.method):
            px = sorted(printed[tok.method])
            py = [float(printed[tok.method][e]) for e in px]
            name = mpl_text(f"{label}, paper (read off its plot)")
            ax.plot(px, py, "o--", color=colour, label=name, **PAPER)
            drawn_paper.append(label)
        logged = next((p for p in tok.priors if p.test_log), None)  # every logged test pass
        if logged is not None:
            ex, nll = zip(*[(r["epoch"], r["nll_bits_per_image"]) for r in logged.test_log])
            name = mpl_text(f"{label} (seed {logged.seed})")
            ax_nll.plot(ex, nll, "-", color=colour, lw=1.1, label=name)
            sources.append(f"{logged.folder}/prior_log.jsonl")
        bits = tok.tokenizer_values("bits_per_image")
        if bits:
            ax_nll.axhline(bits[0], color=colour, lw=0.8, ls=":")
    ax.set(xlabel="prior epoch", ylabel="gFID (lower is better)")
    ax_nll.set(xlabel="prior epoch", ylabel="test NLL (bits / image)")
    for a in (ax, ax_nll):
        a.legend(loc="best", fontsize=6)
    fig.tight_layout()
    ns = [f"N = {a} samples vs the first {b} test images" for a, b in sorted(n_info, key=str)]
    caption = (
        f"Generation on {ctx.names.dataset(gen['dataset'])}: gFID of samples from an "
        f"autoregressive prior on each tokenizer's codes against prior epochs ({'; '.join(ns)}; "
        "native resolution, pytorch-fid Inception), and the prior's test NLL (dotted: the code's "
        "bits per image without a prior)."
    )
    section = ctx.paper.get("generation") or {}
    if drawn_paper:
        where = section.get("source", "appendix H")
        caption += f" Open markers, dashed: the paper's values read off its plot by eye ({where})."
    else:
        other = ctx.names.dataset(section["dataset"]) if section.get("dataset") else None
        caption += f" The paper's points are for {other or 'another setting'} and not drawn."
    return Figure(fig, caption, sources)


def fig_generation_samples(ctx: Context, n_show: int = 10) -> Figure:
    gen, results = _study(ctx)
    rows, sources = [], []
    for tok in results:
        for epoch in gen["epochs"]:
            for p in tok.priors:
                name = f"samples_epoch{epoch:04d}.npz"
                data, _ = load_npz(ctx.root / p.folder / name, ("images",))
                if data is not None:
                    label = f"{ctx.names.method(tok.method)}\nepoch {epoch}"
                    rows.append((label, data["images"][:n_show]))
                    sources.append(f"{p.folder}/{name}")
                    break
    if not rows:
        raise NoData("no samples_epochNNNN.npz in any prior folder of the generation study")
    n = min(len(images) for _, images in rows)
    h, w = rows[0][1].shape[-2:]
    size = (FULL_W, (FULL_W * 0.86 * h / (n * (w + 1)) + 0.08) * len(rows))
    fig, axes = pyplot().subplots(len(rows), 1, figsize=size, squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows):
        show_image(ax, strip(np.asarray(images[:n])))
        row_label(ax, label)
    fig.subplots_adjust(hspace=0.08)
    caption = (
        f"Unconditional samples on {ctx.names.dataset(gen['dataset'])}: the first {n} samples "
        "of the prior at each sampled epoch, decoded by the tokenizer (not curated)."
    )
    return Figure(fig, caption, sources)
