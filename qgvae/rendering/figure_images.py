"""Figures made of images: the reconstruction grid, progressive decoding, token influence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .plots import (
    FULL_W,
    Context,
    Figure,
    NoData,
    panel_note,
    pyplot,
    row_label,
    show_image,
    strip,
    to_hwc,
)
from .results import first_with, load_npz, seed_of
from .summary import scale_phrase

# the dataset the token-influence figure prefers (its images are the most telling)
INFLUENCE_DATASETS = ("cifar10", "celeba64", "svhn", "mnist", "photos")


# ---------------------------------------------------------------------------------------------
# reconstruction grid
# ---------------------------------------------------------------------------------------------
@dataclass
class ReconRow:
    label: str
    images: np.ndarray | None  # [n, C, H, W] uint8; None: no data
    reason: str = ""


def fig_reconstructions(ctx: Context, dataset: str, n_show: int = 8) -> Figure:
    cells = [c for c in ctx.cells("table1") if c["dataset"] == dataset]
    if not cells:
        raise NoData(f"no Table-1 cells for {dataset}")
    rows: list[ReconRow] = []
    originals = None
    sources, warnings = [], []
    for c in cells:
        method = ctx.names.method(c["method"])
        run, data, why = first_with(
            ctx.root, c, "reconstructions.npz", ("originals", "reconstructions")
        )
        if data is None:
            rows.append(ReconRow(method, None, why))
            continue
        sources.append(f"{run}/reconstructions.npz")
        recon, orig = data["reconstructions"], data["originals"]
        if originals is None:
            originals = orig
        elif orig.shape != originals.shape or not np.array_equal(
            orig[:n_show], originals[: min(n_show, len(orig))]
        ):
            warnings.append(f"{method}'s originals differ from the input row")
        rows.append(ReconRow(f"{method}\n(seed {seed_of(ctx.plan, run)})", recon))
    runs = [r for c in cells for r in c.get("runs", [])]
    floor = next(iter(ctx.summary.runs(runs).floor_run.dropna()), None)
    if floor is not None:
        data, why = load_npz(ctx.root / floor / "reconstructions.npz", ("reconstructions",))
        rows.append(
            ReconRow("mean image\n(floor)", None if data is None else data["reconstructions"], why)
        )
        if data is not None:
            sources.append(f"{floor}/reconstructions.npz")
    if originals is None:
        raise NoData(
            "no reconstructions.npz in any Table-1 run of "
            f"{dataset}: " + "; ".join(r.reason for r in rows)
        )
    n = min([n_show, len(originals)] + [len(r.images) for r in rows if r.images is not None])
    plt = pyplot()
    h, w = originals.shape[-2:]
    strip_aspect = h / (n * (w + 1))
    row_h = FULL_W * 0.86 * strip_aspect
    fig, axes = plt.subplots(
        len(rows) + 1, 1, figsize=(FULL_W, (row_h + 0.06) * (len(rows) + 1)), squeeze=False
    )
    show_image(axes[0, 0], strip(originals[:n]))
    row_label(axes[0, 0], "input")
    for ax, row in zip(axes[1:, 0], rows):
        if row.images is None:
            show_image(ax, np.full((h, n * (w + 1) - 1), 235, np.uint8))
            panel_note(ax, f"no data: {row.reason}", fontsize=6)
        else:
            show_image(ax, strip(row.images[:n]))
        row_label(ax, row.label)
    fig.subplots_adjust(hspace=0.06, left=0.14, right=0.995, top=0.995, bottom=0.005)
    caption = (
        f"Test reconstructions on {ctx.names.dataset(dataset)}: the first row shows the first "
        f"{n} test images, each further row one Table-1 method (first available seed, "
        "stated per row)"
        + (", and the last row the floor: the training mean image. " if floor else ". ")
        + scale_phrase(ctx.summary.runs(runs))
    )
    if warnings:
        caption += " Warning: " + "; ".join(warnings) + "."
    return Figure(fig, caption, sources)


# ---------------------------------------------------------------------------------------------
# progressive decoding
# ---------------------------------------------------------------------------------------------
@dataclass
class ProgressiveBlock:
    """The rows of one run: its images decoded from the first k tokens, for some k."""

    table: str
    cell: Mapping[str, Any]
    run: str
    ks: np.ndarray  # every k the run decoded
    shown: np.ndarray  # indices into ks of the columns shown
    decoded: np.ndarray  # [len(ks), n, C, H, W]
    n_images: int
    originals: np.ndarray | None  # [n_images, C, H, W], or None when unknown


def _progressive_candidates(ctx: Context) -> list[tuple[str, Mapping[str, Any]]]:
    """(table, cell): every ablation_ordering cell, then every other QG-VAE cell."""
    tables = ctx.tables()
    order = [n for n in tables if n == "ablation_ordering"] + [
        n for n in tables if n != "ablation_ordering"
    ]
    out, seen = [], set()
    for name in order:
        for c in tables[name]:
            if name != "ablation_ordering" and c["method"] != "qgvae":
                continue
            key = tuple(c.get("runs", []))
            if key in seen:
                continue
            seen.add(key)
            out.append((name, c))
    return out


def _progressive_block(
    ctx: Context,
    table: str,
    cell: Mapping[str, Any],
    run: str,
    data: dict,
    n_images: int,
    max_k: int,
) -> ProgressiveBlock:
    ks = np.asarray(data["progressive_k"]).astype(int)
    shown = np.unique(np.linspace(0, len(ks) - 1, min(max_k, len(ks))).round().astype(int))
    decoded = data["progressive"]  # [S, n, C, H, W]
    n_images = min(n_images, decoded.shape[1])
    recon, _ = load_npz(ctx.root / run / "reconstructions.npz", ("originals",))
    show = data.get("show_index")
    originals = None
    if (
        recon is not None
        and show is not None
        and len(show) >= n_images
        and int(np.max(show[:n_images])) < len(recon["originals"])
    ):
        originals = recon["originals"][np.asarray(show[:n_images]).astype(int)]
    return ProgressiveBlock(table, cell, run, ks, shown, decoded, n_images, originals)


def fig_progressive(ctx: Context, max_runs: int = 2, max_images: int = 3, max_k: int = 9) -> Figure:
    found = []
    reasons = []
    for table, c in _progressive_candidates(ctx):
        run, data, why = first_with(ctx.root, c, "analysis.npz", ("progressive", "progressive_k"))
        if data is None:
            reasons.append(why)
            continue
        found.append((table, c, run, data))
        if table != "ablation_ordering" or len(found) >= max_runs:
            break
    if not found:
        raise NoData(
            "no analysis.npz with 'progressive' in the ablation_ordering runs or any "
            "QG-VAE run" + (f" ({reasons[0]}...)" if reasons else "")
        )
    n_images = max_images if len(found) == 1 else 2
    blocks = [_progressive_block(ctx, *f, n_images, max_k) for f in found]
    ncols = max(len(b.shown) + (1 if b.originals is not None else 0) for b in blocks)
    nrows = sum(b.n_images for b in blocks)
    cell_w = FULL_W * 0.88 / ncols
    plt = pyplot()
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(FULL_W, cell_w * nrows + 0.35 * len(blocks)), squeeze=False
    )
    r0 = 0
    for b in blocks:
        for i in range(b.n_images):
            for j in range(ncols):
                ax = axes[r0 + i, j]
                if j < len(b.shown):
                    show_image(ax, to_hwc(b.decoded[b.shown[j], i]))
                    if i == 0:
                        ax.set_title(f"k = {b.ks[b.shown[j]]}", fontsize=7, pad=2)
                elif j == len(b.shown) and b.originals is not None:
                    show_image(ax, to_hwc(b.originals[i]))
                    if i == 0:
                        ax.set_title("input", fontsize=7, pad=2)
                else:
                    ax.axis("off")
        title = f"{ctx.cell_title(b.table, b.cell)}\nseed {seed_of(ctx.plan, b.run)}"
        row_label(axes[r0, 0], title)
        r0 += b.n_images
    fig.subplots_adjust(wspace=0.04, hspace=0.12, left=0.16, right=0.995, top=0.95, bottom=0.01)
    caption = (
        "Progressive decoding of QG-VAE: each column decodes only the first k tokens "
        "(the rest nulled); the last column is the input. Rows: test images "
        "(analysis.npz show_index) of "
        + "; ".join(
            f"{ctx.cell_title(b.table, b.cell)} (seed {seed_of(ctx.plan, b.run)})" for b in blocks
        )
        + "."
    )
    caption += " " + scale_phrase(ctx.summary.runs([b.run for b in blocks]))
    return Figure(fig, caption, [f"{b.run}/analysis.npz" for b in blocks])


# ---------------------------------------------------------------------------------------------
# token influence
# ---------------------------------------------------------------------------------------------
@dataclass
class InfluenceMaps:
    method: str
    run: str
    maps: np.ndarray  # [tokens, H, W]


def influence_area(maps: np.ndarray) -> np.ndarray:
    """Per token: fraction of pixels whose influence is at least half the token's maximum."""
    flat = maps.reshape(len(maps), -1)
    peak = flat.max(axis=1, keepdims=True)
    peak[peak <= 0] = np.inf
    return (flat >= 0.5 * peak).mean(axis=1)


def _influence_maps(ctx: Context) -> tuple[str, list[InfluenceMaps], list[str]]:
    """(dataset, maps of QG-VAE and VQ-VAE, reasons for what is missing)."""
    table1 = ctx.cells("table1")
    datasets = sorted(
        ctx.table1_datasets(),
        key=lambda d: INFLUENCE_DATASETS.index(d) if d in INFLUENCE_DATASETS else 99,
    )
    chosen: tuple[str, list[InfluenceMaps]] | None = None
    reasons: list[str] = []
    for ds in datasets:
        got = []
        for m in ("qgvae", "vqvae"):
            cell = next((c for c in table1 if c["dataset"] == ds and c["method"] == m), None)
            if cell is None:
                reasons.append(f"{ds}: no {m} cell")
                continue
            run, data, why = first_with(ctx.root, cell, "analysis.npz", ("influence",))
            if data is None:
                reasons.append(f"{ds}/{m}: {why}")
                continue
            got.append(InfluenceMaps(m, run, np.asarray(data["influence"], dtype=float)))
        if len(got) == 2 or (got and chosen is None):
            chosen = (ds, got)
            if len(got) == 2:
                break
    if chosen is None:
        raise NoData(
            "no 'influence' in analysis.npz of QG-VAE or VQ-VAE Table-1 runs"
            + (f" ({reasons[0]})" if reasons else "")
        )
    return chosen[0], chosen[1], reasons


def fig_influence(ctx: Context, n_tokens: int = 6) -> Figure:
    ds, got, reasons = _influence_maps(ctx)
    plt = pyplot()
    ncols = n_tokens + 1
    fig, axes = plt.subplots(
        len(got), ncols, figsize=(FULL_W, FULL_W / ncols * len(got) + 0.3), squeeze=False
    )
    for r, item in enumerate(got):
        maps = item.maps
        tokens = np.unique(np.linspace(0, len(maps) - 1, n_tokens).round().astype(int))
        for j in range(ncols):
            ax = axes[r, j]
            if j < len(tokens):
                img, title = maps[tokens[j]], f"token {tokens[j]}"
            elif j == ncols - 1:
                img, title = maps.mean(axis=0), "mean over tokens"
            else:
                ax.axis("off")
                continue
            ax.imshow(
                img / (img.max() or 1.0), cmap="magma", vmin=0, vmax=1, interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(title, fontsize=7, pad=2)
        row_label(
            axes[r, 0],
            f"{ctx.names.method(item.method)}\nseed {seed_of(ctx.plan, item.run)}\n"
            f"area {influence_area(maps).mean():.2f}",
        )
    fig.subplots_adjust(wspace=0.05, hspace=0.25, left=0.13, right=0.995, top=0.92, bottom=0.01)
    caption = (
        f"Token influence on {ctx.names.dataset(ds)}: mean absolute change of the decoded image "
        "when one token's code is changed (analysis.npz influence), each map scaled to its "
        "own maximum. 'area' = mean over all tokens of the fraction of pixels reaching half "
        "the token's maximum influence (global tokens: large; local patches: small)."
    )
    if len(got) < 2:
        caption += f" Only {ctx.names.method(got[0].method)} has data: " + "; ".join(reasons) + "."
    caption += " " + scale_phrase(ctx.summary.runs([item.run for item in got]))
    return Figure(fig, caption, [f"{item.run}/analysis.npz" for item in got])
