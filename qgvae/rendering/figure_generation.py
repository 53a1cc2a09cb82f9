"""Figures of the generation study (the paper's appendix H), from the prior folders
(:func:`qgvae.rendering.table_generation.load_generation`) and ``config/paper_values.yaml``.

``generation_fid``: left, gFID against prior epochs, one line per tokenizer (mean over seeds,
each seed a dot when there are several) and the paper's points (read off its Fig. 11 by eye) as
open markers on dashed lines where the study's dataset is the paper's; right, the prior's test
NLL in bits per image at every logged test pass, the code's bits per image (no prior) dotted.
``generation_samples``: one row per tokenizer and sampled epoch, the first samples of the first
seed that has them.
"""

from __future__ import annotations

import numpy as np

from .plots import FULL_W, Context, Figure, NoData, mpl_text, pyplot, row_label, show_image, strip
from .results import load_npz
from .table_generation import gfid_of, load_generation, paper_points

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
