"""Figures made of images: the reconstruction grid, progressive decoding, token influence."""

from __future__ import annotations

from collections.abc import Mapping
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
TITLE = dict(fontsize=7, pad=2)
HEAT = dict(cmap="magma", vmin=0, vmax=1, interpolation="nearest")  # influence, own maximum 1


def fig_reconstructions(
    ctx: Context, dataset: str, n_show: int = 8, table: str = "table1"
) -> Figure:
    """The first test images over each method's reconstructions of them (Table 1's methods, or
    those of ``table``: ``modern``) and the mean image's."""
    what = {"table1": "Table-1", "modern": "modern-quantiser table"}.get(table, table)
    cells = [c for c in ctx.cells(table) if c["dataset"] == dataset]
    if not cells:
        raise NoData(f"no {what} cells for {dataset}")
    rows, originals, sources, warnings = [], None, [], []  # rows: (label, images or None, why)
    for c in cells:
        method, keys = ctx.names.method(c["method"]), ("originals", "reconstructions")
        run, data, why = first_with(ctx.root, c, "reconstructions.npz", keys)
        if data is None:
            rows.append((method, None, why))
            continue
        sources.append(f"{run}/reconstructions.npz")
        orig = data["originals"]
        if originals is None:
            originals = orig
        elif orig.shape != originals.shape or not np.array_equal(orig[:n_show], originals[:n_show]):
            warnings.append(f"{method}'s originals differ from the input row")
        rows.append((f"{method}\n(seed {seed_of(ctx.plan, run)})", data["reconstructions"], ""))
    runs = [r for c in cells for r in c.get("runs", [])]
    floor = next(iter(ctx.summary.runs(runs).floor_run.dropna()), None)
    if floor is not None:
        data, why = load_npz(ctx.root / floor / "reconstructions.npz", ("reconstructions",))
        rows.append(("mean image\n(floor)", None if data is None else data["reconstructions"], why))
        sources += [f"{floor}/reconstructions.npz"] if data is not None else []
    if originals is None:
        reasons = "; ".join(why for _, _, why in rows)
        raise NoData(f"no reconstructions.npz in any {what} run of {dataset}: {reasons}")
    n = min([n_show, len(originals)] + [len(im) for _, im, _ in rows if im is not None])
    h, w = originals.shape[-2:]
    size = (FULL_W, (FULL_W * 0.86 * h / (n * (w + 1)) + 0.06) * (len(rows) + 1))
    fig, axes = pyplot().subplots(len(rows) + 1, 1, figsize=size, squeeze=False)
    for ax, (label, images, why) in zip(axes[:, 0], [("input", originals, "")] + rows):
        if images is None:
            show_image(ax, np.full((h, n * (w + 1) - 1), 235, np.uint8))
            panel_note(ax, f"no data: {why}", fontsize=6)
        else:
            show_image(ax, strip(images[:n]))
        row_label(ax, label)
    fig.subplots_adjust(hspace=0.06, left=0.14, right=0.995, top=0.995, bottom=0.005)
    caption = (
        f"Test reconstructions on {ctx.names.dataset(dataset)}: the first row shows the first "
        f"{n} test images, each further row one {what} method (first available seed, "
        "stated per row)"
        + (", and the last row the floor: the training mean image. " if floor else ". ")
        + scale_phrase(ctx.summary.runs(runs))
        + (" Warning: " + "; ".join(warnings) + "." if warnings else "")
    )
    return Figure(fig, caption, sources)


def _progressive_candidates(ctx: Context) -> list[tuple[str, Mapping[str, Any]]]:
    """(table, cell): every ablation_ordering cell, then every other QG-VAE cell."""
    tables = ctx.tables()
    order = sorted(tables, key=lambda n: n != "ablation_ordering")
    out, seen = [], set()
    for name in order:
        for c in tables[name]:
            key = tuple(c.get("runs", []))
            if key not in seen and (name == "ablation_ordering" or c["method"] == "qgvae"):
                seen.add(key)
                out.append((name, c))
    return out


def _progressive_block(ctx: Context, table, cell, run, data, n_images: int, max_k: int) -> dict:
    """The rows of one run: its images decoded from the first k tokens, for up to ``max_k`` k,
    and the inputs (``originals``: None when unknown)."""
    ks = np.asarray(data["progressive_k"]).astype(int)
    shown = np.unique(np.linspace(0, len(ks) - 1, min(max_k, len(ks))).round().astype(int))
    decoded = data["progressive"]  # [len(ks), n, C, H, W]
    n_images = min(n_images, decoded.shape[1])
    recon, _ = load_npz(ctx.root / run / "reconstructions.npz", ("originals",))
    show = data.get("show_index")
    originals = None
    if recon is not None and show is not None and len(show) >= n_images:
        index = np.asarray(show[:n_images]).astype(int)
        if int(index.max()) < len(recon["originals"]):
            originals = recon["originals"][index]
    name, seed = ctx.cell_title(table, cell), seed_of(ctx.plan, run)
    block = dict(run=run, ks=ks, shown=shown, decoded=decoded, n=n_images, originals=originals)
    return block | dict(title=f"{name} (seed {seed})", label=f"{name}\nseed {seed}")


def fig_progressive(ctx: Context, max_runs: int = 2, max_images: int = 3, max_k: int = 9) -> Figure:
    found, reasons = [], []
    for table, c in _progressive_candidates(ctx):
        run, data, why = first_with(ctx.root, c, "analysis.npz", ("progressive", "progressive_k"))
        if data is None:
            reasons.append(why)
            continue
        found.append((table, c, run, data))
        if table != "ablation_ordering" or len(found) >= max_runs:
            break
    if not found:
        why = f" ({reasons[0]}...)" if reasons else ""
        where = "the ablation_ordering runs or any QG-VAE run"
        raise NoData(f"no analysis.npz with 'progressive' in {where}{why}")
    n_images = max_images if len(found) == 1 else 2
    blocks = [_progressive_block(ctx, *f, n_images, max_k) for f in found]
    ncols = max(len(b["shown"]) + (b["originals"] is not None) for b in blocks)
    nrows = sum(b["n"] for b in blocks)
    size = (FULL_W, FULL_W * 0.88 / ncols * nrows + 0.35 * len(blocks))
    fig, axes = pyplot().subplots(nrows, ncols, figsize=size, squeeze=False)
    r0 = 0
    for b in blocks:
        shown = b["shown"]
        for i in range(b["n"]):
            for j, ax in enumerate(axes[r0 + i]):
                if j < len(shown):
                    show_image(ax, to_hwc(b["decoded"][shown[j], i]))
                    ax.set_title(f"k = {b['ks'][shown[j]]}" if i == 0 else "", **TITLE)
                elif j == len(shown) and b["originals"] is not None:
                    show_image(ax, to_hwc(b["originals"][i]))
                    ax.set_title("input" if i == 0 else "", **TITLE)
                else:
                    ax.axis("off")
        row_label(axes[r0, 0], b["label"])
        r0 += b["n"]
    fig.subplots_adjust(wspace=0.04, hspace=0.12, left=0.16, right=0.995, top=0.95, bottom=0.01)
    caption = (
        "Progressive decoding of QG-VAE: each column decodes only the first k tokens "
        "(the rest nulled); the last column is the input. Rows: test images "
        f"(analysis.npz show_index) of {'; '.join(b['title'] for b in blocks)}. "
        + scale_phrase(ctx.summary.runs([b["run"] for b in blocks]))
    )
    return Figure(fig, caption, [f"{b['run']}/analysis.npz" for b in blocks])


def influence_area(maps: np.ndarray) -> np.ndarray:
    """Per token: fraction of pixels whose influence is at least half the token's maximum."""
    flat = maps.reshape(len(maps), -1)
    peak = flat.max(axis=1, keepdims=True)
    peak[peak <= 0] = np.inf
    return (flat >= 0.5 * peak).mean(axis=1)


def _influence_maps(ctx: Context) -> tuple[str, list[tuple[str, str, np.ndarray]], list[str]]:
    """(dataset, [(method, run, maps [tokens, H, W])] of QG-VAE and VQ-VAE, why any is missing)."""
    table1, chosen, reasons = ctx.cells("table1"), None, []
    rank = lambda d: INFLUENCE_DATASETS.index(d) if d in INFLUENCE_DATASETS else 99
    for ds in sorted(ctx.table1_datasets(), key=rank):
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
            got.append((m, run, np.asarray(data["influence"], dtype=float)))
        if len(got) == 2 or (got and chosen is None):
            chosen = (ds, got)
            if len(got) == 2:
                break
    if chosen is None:
        why = f" ({reasons[0]})" if reasons else ""
        raise NoData(f"no 'influence' in analysis.npz of QG-VAE or VQ-VAE Table-1 runs{why}")
    return chosen[0], chosen[1], reasons


def fig_influence(ctx: Context, n_tokens: int = 6) -> Figure:
    ds, got, reasons = _influence_maps(ctx)
    ncols = n_tokens + 1
    size = (FULL_W, FULL_W / ncols * len(got) + 0.3)
    fig, axes = pyplot().subplots(len(got), ncols, figsize=size, squeeze=False)
    for r, (method, run, maps) in enumerate(got):
        tokens = np.unique(np.linspace(0, len(maps) - 1, n_tokens).round().astype(int))
        panels = [(maps[t], f"token {t}") for t in tokens]
        panels += [None] * (ncols - 1 - len(tokens)) + [(maps.mean(axis=0), "mean over tokens")]
        for ax, panel in zip(axes[r], panels):
            if panel is None:
                ax.axis("off")
                continue
            img, title = panel
            ax.imshow(img / (img.max() or 1.0), **HEAT)
            ax.set(xticks=[], yticks=[])
            ax.grid(False)
            ax.set_title(title, **TITLE)
        area = influence_area(maps).mean()
        label = f"{ctx.names.method(method)}\nseed {seed_of(ctx.plan, run)}\narea {area:.2f}"
        row_label(axes[r, 0], label)
    fig.subplots_adjust(wspace=0.05, hspace=0.25, left=0.13, right=0.995, top=0.92, bottom=0.01)
    caption = (
        f"Token influence on {ctx.names.dataset(ds)}: mean absolute change of the decoded image "
        "when one token's code is changed (analysis.npz influence), each map scaled to its "
        "own maximum. 'area' = mean over all tokens of the fraction of pixels reaching half "
        "the token's maximum influence (global tokens: large; local patches: small)."
    )
    if len(got) < 2:
        caption += f" Only {ctx.names.method(got[0][0])} has data: " + "; ".join(reasons) + "."
    caption += " " + scale_phrase(ctx.summary.runs([run for _, run, _ in got]))
    return Figure(fig, caption, [f"{run}/analysis.npz" for _, run, _ in got])
