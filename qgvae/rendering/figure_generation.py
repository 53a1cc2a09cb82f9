"""Figures of the generation study (the paper's appendix H).

``generation_fid``      left: gFID against prior epochs, one line per tokenizer (mean over
                        seeds, each seed as a dot when there are several), the paper's points
                        (read off its Fig. 11 by eye) as open markers on dashed lines where the
                        study's dataset is the paper's; right: the prior's test NLL in bits per
                        image against epochs (every logged test pass), with the code's bits per
                        image (no prior) as a dotted line.
``generation_samples``  one row per tokenizer and sampled epoch: the first samples of the first
                        seed that has them.

Inputs: ``plan["generation"]`` and the prior folders (through
:func:`qgvae.rendering.table_generation.load_generation`), ``config/paper_values.yaml``.
"""

from __future__ import annotations

import numpy as np

from .plots import FULL_W, Context, Figure, NoData, mpl_text, pyplot, row_label, show_image, strip
from .results import load_npz
from .table_generation import gfid_of, load_generation, paper_points


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
    plt = pyplot()
    fig, (ax, ax_nll) = plt.subplots(1, 2, figsize=(FULL_W, 2.4))
    sources, n_info, drawn_paper = [], set(), []
    for tok in results:
        colour = ctx.colour(tok.method)
        label = ctx.names.method(tok.method) + (f" ({tok.key})" if tok.key != tok.method else "")
        xs, means = [], []
        for epoch in gen["epochs"]:
            values = tok.values(epoch, gfid_of)
            if values:
                xs.append(epoch)
                means.append(float(np.mean(values)))
                if len(values) > 1:
                    ax.scatter([epoch] * len(values), values, color=colour, s=6, alpha=0.5)
        for p in tok.priors:
            for epoch, m in p.metrics.items():
                sources.append(f"{p.folder}/metrics_epoch{epoch:04d}.json")
                g = m.get("gfid") or {}
                n_info.add((g.get("n_samples"), g.get("n_reference")))
        seeds = sum(1 for p in tok.priors if p.metrics)
        if xs:
            ax.plot(
                xs,
                means,
                "o-",
                color=colour,
                lw=1.2,
                ms=3.5,
                label=mpl_text(f"{label}, ours ({seeds} seed{'s' if seeds != 1 else ''})"),
            )
        paper = printed.get(tok.method)
        if paper:
            px = sorted(paper)
            ax.plot(
                px,
                [float(paper[e]) for e in px],
                "o--",
                color=colour,
                mfc="white",
                lw=0.9,
                ms=4,
                label=mpl_text(f"{label}, paper (read off its plot)"),
            )
            drawn_paper.append(label)
        # test NLL: every logged test pass (first seed with a log), bits per image of the code
        for p in tok.priors:
            if p.test_log:
                ex = [r["epoch"] for r in p.test_log]
                ax_nll.plot(
                    ex,
                    [r["nll_bits_per_image"] for r in p.test_log],
                    "-",
                    color=colour,
                    lw=1.1,
                    label=mpl_text(f"{label} (seed {p.seed})"),
                )
                sources.append(f"{p.folder}/prior_log.jsonl")
                break
        bits = tok.tokenizer_values("bits_per_image")
        if bits:
            ax_nll.axhline(bits[0], color=colour, lw=0.8, ls=":")
    ax.set_xlabel("prior epoch")
    ax.set_ylabel("gFID (lower is better)")
    ax.legend(loc="best", fontsize=6)
    ax_nll.set_xlabel("prior epoch")
    ax_nll.set_ylabel("test NLL (bits / image)")
    ax_nll.legend(loc="best", fontsize=6)
    fig.tight_layout()
    ns = "; ".join(
        f"N = {a} samples vs the first {b} test images" for a, b in sorted(n_info, key=str)
    )
    caption = (
        f"Generation on {ctx.names.dataset(gen['dataset'])}: gFID of samples from an "
        f"autoregressive prior on each tokenizer's codes against prior epochs ({ns}; native "
        "resolution, pytorch-fid Inception), and the prior's test NLL (dotted: the code's "
        "bits per image without a prior)."
    )
    if drawn_paper:
        caption += (
            " Open markers, dashed: the paper's values read off its plot by eye "
            f"({ctx.paper.get('generation', {}).get('source', 'appendix H')})."
        )
    else:
        where = (ctx.paper.get("generation") or {}).get("dataset")
        other = ctx.names.dataset(where) if where else "another setting"
        caption += f" The paper's points are for {other} and not drawn."
    return Figure(fig, caption, sources)


def fig_generation_samples(ctx: Context, n_show: int = 10) -> Figure:
    gen, results = _study(ctx)
    rows, sources = [], []
    for tok in results:
        label = ctx.names.method(tok.method)
        for epoch in gen["epochs"]:
            for p in tok.priors:
                path = ctx.root / p.folder / f"samples_epoch{epoch:04d}.npz"
                data, _ = load_npz(path, ("images",))
                if data is not None:
                    rows.append((f"{label}\nepoch {epoch}", data["images"][:n_show]))
                    sources.append(f"{p.folder}/samples_epoch{epoch:04d}.npz")
                    break
    if not rows:
        raise NoData("no samples_epochNNNN.npz in any prior folder of the generation study")
    n = min(len(images) for _, images in rows)
    h, w = rows[0][1].shape[-2:]
    row_h = FULL_W * 0.86 * h / (n * (w + 1))
    plt = pyplot()
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(FULL_W, (row_h + 0.08) * len(rows)), squeeze=False
    )
    for ax, (label, images) in zip(axes[:, 0], rows):
        show_image(ax, strip(np.asarray(images[:n])))
        row_label(ax, label)
    fig.subplots_adjust(hspace=0.08)
    caption = (
        f"Unconditional samples on {ctx.names.dataset(gen['dataset'])}: the first {n} samples "
        "of the prior at each sampled epoch, decoded by the tokenizer (not curated)."
    )
    return Figure(fig, caption, sources)
