"""Figures of the benchmark (PDF + PNG, seaborn "paper" style), read only from run folders.

Figures (``--only`` takes a family name or a file stem)
--------------------------------------------------------
=================  ==========================  ==============================================
family             file stem(s)                inputs
=================  ==========================  ==============================================
reconstructions    ``recon_grid_<dataset>``    Table-1 cells, first available seed:
                                               ``reconstructions.npz`` (input row + one row
                                               per method)
progressive        ``progressive``             ``analysis.npz`` ``progressive`` of the
                                               ``ablation_ordering`` runs (else any QG-VAE run)
influence          ``token_influence``         ``analysis.npz`` ``influence`` of QG-VAE and
                                               VQ-VAE (Table-1 cells, one dataset)
usage              ``code_usage``              ``metrics.json`` usage.per_position
training           ``training_curves``         ``train_log.jsonl`` of the Table-1 runs (train
                                               loss / MSE, val PSNR; one row per dataset)
rate_distortion    ``rate_distortion``         ``metrics.json`` of Table 1, Table 2 and
                                               ``ablation_tokens`` cells: PSNR, LPIPS, rFID
                                               against bits per image
ablations          ``ablation_<axis>``         ``metrics.json`` of each ablation's cells,
                                               mean +- s.d. over seeds (ddof=1) + every seed
=================  ==========================  ==============================================

Every declared figure is always written (``figure_stems(plan)`` lists them): when its inputs
are missing the figure is a single panel reading "no data: <reason>" and the reason is logged.
Beside each ``<stem>.pdf`` / ``<stem>.png`` a ``<stem>.json`` holds the caption (stating N seeds
and the protocol), the source files and the no-data reason, for ``qgvae report``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .tables import (DDOF, CellStats, dataset_name, load_cell, method_name,
                     read_json, seed_of)
from .utils import atomic_path, write_json

log = logging.getLogger(__name__)

FULL_W = 6.75   # inches: full text width of a two-column paper
HALF_W = 3.3
DPI = 200
METHOD_ORDER = ("vqvae", "sqvae", "vqwae", "splitvq", "dqvae", "qgvae")
PREFERRED_DATASETS = ("cifar10", "celeba64", "svhn", "mnist", "photos")


class NoData(Exception):
    """Raised by a figure function when its inputs are absent; the message is the reason."""


@dataclass
class Figure:
    fig: Any
    caption: str
    sources: list[str] = field(default_factory=list)


@dataclass
class Spec:
    family: str
    stem: str
    func: Callable[..., Figure]
    kwargs: dict[str, Any] = field(default_factory=dict)
    title: str = ""


# ---------------------------------------------------------------------------------------------
# plumbing
# ---------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style() -> dict[str, Any]:
    import seaborn as sns

    rc = dict(sns.plotting_context("paper", font_scale=1.0))
    rc.update(sns.axes_style("whitegrid"))
    rc.update({"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.bbox": "tight",
               "savefig.pad_inches": 0.02, "legend.frameon": False, "axes.titlesize": 8.5,
               "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
               "legend.fontsize": 7, "font.size": 8})
    return rc


def _palette(methods: Sequence[str]) -> dict[str, Any]:
    import seaborn as sns

    colours = sns.color_palette("colorblind", 10)
    out = {}
    for m in methods:
        i = METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER) + len(out)
        out[m] = colours[i % len(colours)]
    return out


def _tables(plan: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return plan.get("tables") or {}


def _names(plan: Mapping[str, Any]) -> dict[str, Any]:
    return plan.get("_names") or {}


def _mname(plan: Mapping[str, Any], m: str) -> str:
    return method_name(m, _names(plan))


def _dname(plan: Mapping[str, Any], d: str) -> str:
    return dataset_name(d, _names(plan))


def _table1_datasets(plan: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(c["dataset"] for c in _tables(plan).get("table1", [])))


def load_npz(path: Path, keys: Sequence[str] = ()) -> tuple[dict[str, np.ndarray] | None, str]:
    """(arrays, '') or (None, reason); never raises."""
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                return None, f"{path.name} lacks {', '.join(missing)}"
            return {k: z[k] for k in z.files}, ""
    except Exception as exc:  # corrupt / partial file
        return None, f"unreadable {path.name} ({type(exc).__name__})"


def first_with(root: Path, cell: Mapping[str, Any], filename: str, keys: Sequence[str] = ()
               ) -> tuple[str | None, dict[str, np.ndarray] | None, str]:
    """The first run of ``cell`` (seed order) whose ``filename`` loads with ``keys``."""
    reasons = []
    for run in cell.get("runs", []):
        data, why = load_npz(root / run / filename, keys)
        if data is not None:
            return run, data, ""
        reasons.append(f"{run}: {why}")
    return None, None, "; ".join(reasons) or "cell has no runs"


def read_log(path: Path) -> list[dict[str, Any]]:
    """Rows of a train_log.jsonl; partial or corrupt lines are skipped."""
    rows = []
    try:
        text = path.read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def to_hwc(img: np.ndarray) -> np.ndarray:
    """uint8 [C,H,W] -> [H,W] (grey) or [H,W,3]."""
    img = np.asarray(img)
    if img.ndim == 2:
        return img
    if img.shape[0] == 1:
        return img[0]
    return np.transpose(img[:3], (1, 2, 0))


def strip(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """[n,C,H,W] uint8 -> one image, side by side with ``pad`` white pixels between."""
    tiles = [to_hwc(im) for im in images]
    h = tiles[0].shape[0]
    sep = np.full((h, pad) + tiles[0].shape[2:], 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, t in enumerate(tiles):
        if i:
            parts.append(sep)
        parts.append(t.astype(np.uint8))
    return np.concatenate(parts, axis=1)


def _imshow(ax, img: np.ndarray) -> None:
    if img.ndim == 2:
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    ax.grid(False)


def _t(text: Any) -> str:
    """Plan-derived text for matplotlib: a literal '$' must not start mathtext."""
    return str(text).replace("$", r"\$")


def _row_label(ax, text: str) -> None:
    ax.set_ylabel(_t(text), rotation=0, ha="right", va="center", fontsize=7, labelpad=4)


def no_data_figure(title: str, reason: str) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(HALF_W, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.62, _t(title), ha="center", va="center", fontsize=9, weight="bold",
            transform=ax.transAxes)
    short = reason if len(reason) <= 400 else reason[:400] + " ..."
    ax.text(0.5, 0.3, _t("no data: " + textwrap.fill(short, 90)), ha="center", va="top",
            fontsize=6.5, transform=ax.transAxes)
    return fig


def save_figure(fig: Any, outdir: Path, stem: str, caption: str, sources: Sequence[str],
                no_data: str | None = None) -> list[Path]:
    plt = _plt()
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for ext, kw in (("pdf", {"metadata": {"CreationDate": None}}), ("png", {"dpi": DPI})):
            path = outdir / f"{stem}.{ext}"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, **kw)
            paths.append(path)
    finally:
        plt.close(fig)
    meta = outdir / f"{stem}.json"
    write_json(meta, {"stem": stem, "caption": caption, "sources": list(sources),
                      "no_data": no_data})
    paths.append(meta)
    return paths


def _seed_list(plan: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> list[int]:
    seeds = {seed_of(plan, r) for c in cells for r in c.get("runs", [])}
    return sorted(s for s in seeds if s is not None)


def _cell_title(plan: Mapping[str, Any], table: str, cell: Mapping[str, Any]) -> str:
    m = _mname(plan, cell["method"])
    if table.startswith("ablation_"):
        return f"{m} ({table[len('ablation_'):]}: {cell['label']})"
    if table == "table2":
        return f"{m} ({cell['label']})"
    return m


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def fig_reconstructions(plan: Mapping[str, Any], root: Path, dataset: str,
                        n_show: int = 8) -> Figure:
    cells = [c for c in _tables(plan).get("table1", []) if c["dataset"] == dataset]
    if not cells:
        raise NoData(f"no Table-1 cells for {dataset}")
    rows: list[tuple[str, np.ndarray | None, str]] = []
    originals = None
    sources, notes = [], []
    for c in cells:
        run, data, why = first_with(root, c, "reconstructions.npz",
                                    ("originals", "reconstructions"))
        if data is None:
            rows.append((_mname(plan, c["method"]), None, why))
            continue
        sources.append(f"{run}/reconstructions.npz")
        rec, org = data["reconstructions"], data["originals"]
        if originals is None:
            originals = org
        elif org.shape != originals.shape or not np.array_equal(
                org[:n_show], originals[:min(n_show, len(org))]):
            notes.append(f"{_mname(plan, c['method'])}'s originals differ from the input row")
        rows.append((f"{_mname(plan, c['method'])}\n(seed {seed_of(plan, run)})", rec, ""))
    if originals is None:
        raise NoData("no reconstructions.npz in any Table-1 run of "
                     f"{dataset}: " + "; ".join(w for *_, w in rows))
    n = min([n_show, len(originals)] + [len(r) for _, r, _ in rows if r is not None])
    plt = _plt()
    h, w = originals.shape[-2:]
    strip_aspect = h / (n * (w + 1))
    row_h = FULL_W * 0.86 * strip_aspect
    fig, axes = plt.subplots(len(rows) + 1, 1, figsize=(FULL_W, (row_h + 0.06) * (len(rows) + 1)),
                             squeeze=False)
    _imshow(axes[0, 0], strip(originals[:n]))
    _row_label(axes[0, 0], "input")
    for ax, (label, rec, why) in zip(axes[1:, 0], rows):
        if rec is None:
            _imshow(ax, np.full((h, n * (w + 1) - 1), 235, np.uint8))
            ax.text(0.5, 0.5, _t(f"no data: {why}"), ha="center", va="center", fontsize=6,
                    transform=ax.transAxes)
        else:
            _imshow(ax, strip(rec[:n]))
        _row_label(ax, label)
    fig.subplots_adjust(hspace=0.06, left=0.14, right=0.995, top=0.995, bottom=0.005)
    cap = (f"Test reconstructions on {_dname(plan, dataset)}: the first row shows the first "
           f"{n} test images, each further row one Table-1 method (first available seed, "
           f"stated per row).")
    if notes:
        cap += " Warning: " + "; ".join(notes) + "."
    return Figure(fig, cap, sources)


def _progressive_candidates(plan: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out, seen = [], set()
    tabs = _tables(plan)
    order = [n for n in tabs if n == "ablation_ordering"] + [n for n in tabs
                                                             if n != "ablation_ordering"]
    for name in order:
        for c in tabs[name]:
            if name != "ablation_ordering" and c["method"] != "qgvae":
                continue
            key = tuple(c.get("runs", []))
            if key in seen:
                continue
            seen.add(key)
            out.append((name, c))
    return out


def fig_progressive(plan: Mapping[str, Any], root: Path, max_runs: int = 2,
                    max_images: int = 3, max_k: int = 9) -> Figure:
    found = []
    reasons = []
    for table, c in _progressive_candidates(plan):
        run, data, why = first_with(root, c, "analysis.npz", ("progressive", "progressive_k"))
        if data is None:
            reasons.append(why)
            continue
        found.append((table, c, run, data))
        if table != "ablation_ordering" or len(found) >= max_runs:
            break
    if not found:
        raise NoData("no analysis.npz with 'progressive' in the ablation_ordering runs or any "
                     "QG-VAE run" + (f" ({reasons[0]}...)" if reasons else ""))
    plt = _plt()
    blocks = []
    for table, c, run, data in found:
        ks = np.asarray(data["progressive_k"]).astype(int)
        sel = np.unique(np.linspace(0, len(ks) - 1, min(max_k, len(ks))).round().astype(int))
        prog = data["progressive"]                         # [S, n, C, H, W]
        n_img = min(max_images if len(found) == 1 else 2, prog.shape[1])
        rec, _ = load_npz(root / run / "reconstructions.npz", ("originals",))
        show = data.get("show_index")
        originals = None
        if rec is not None and show is not None and len(show) >= n_img \
                and int(np.max(show[:n_img])) < len(rec["originals"]):
            originals = rec["originals"][np.asarray(show[:n_img]).astype(int)]
        blocks.append((table, c, run, ks, sel, prog, n_img, originals))
    ncols = max(len(b[4]) + (1 if b[7] is not None else 0) for b in blocks)
    nrows = sum(b[6] for b in blocks)
    cell_w = FULL_W * 0.88 / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(FULL_W, cell_w * nrows + 0.35 * len(blocks)),
                             squeeze=False)
    r0 = 0
    sources = []
    for table, c, run, ks, sel, prog, n_img, originals in blocks:
        sources.append(f"{run}/analysis.npz")
        for i in range(n_img):
            for j in range(ncols):
                ax = axes[r0 + i, j]
                if j < len(sel):
                    _imshow(ax, to_hwc(prog[sel[j], i]))
                    if i == 0:
                        ax.set_title(f"k = {ks[sel[j]]}", fontsize=7, pad=2)
                elif j == len(sel) and originals is not None:
                    _imshow(ax, to_hwc(originals[i]))
                    if i == 0:
                        ax.set_title("input", fontsize=7, pad=2)
                else:
                    ax.axis("off")
            if i == 0:
                _row_label(axes[r0, 0], f"{_cell_title(plan, table, c)}\nseed "
                           f"{seed_of(plan, run)}")
        r0 += n_img
    fig.subplots_adjust(wspace=0.04, hspace=0.12, left=0.16, right=0.995, top=0.95,
                        bottom=0.01)
    cap = ("Progressive decoding of QG-VAE: each column decodes only the first k tokens "
           "(the rest nulled); the last column is the input. Rows: test images "
           "(analysis.npz show_index) of " + "; ".join(
               f"{_cell_title(plan, t, c)} (seed {seed_of(plan, r)})"
               for t, c, r, *_ in blocks) + ".")
    return Figure(fig, cap, sources)


def _influence_area(inf: np.ndarray) -> np.ndarray:
    """Per token: fraction of pixels whose influence is at least half the token's maximum."""
    flat = inf.reshape(len(inf), -1)
    mx = flat.max(axis=1, keepdims=True)
    mx[mx <= 0] = np.inf
    return (flat >= 0.5 * mx).mean(axis=1)


def fig_influence(plan: Mapping[str, Any], root: Path, n_tokens: int = 6) -> Figure:
    t1 = _tables(plan).get("table1", [])
    datasets = sorted(_table1_datasets(plan), key=lambda d: (
        PREFERRED_DATASETS.index(d) if d in PREFERRED_DATASETS else 99))
    chosen, reasons = None, []
    for ds in datasets:
        got = []
        for m in ("qgvae", "vqvae"):
            cell = next((c for c in t1 if c["dataset"] == ds and c["method"] == m), None)
            if cell is None:
                reasons.append(f"{ds}: no {m} cell")
                continue
            run, data, why = first_with(root, cell, "analysis.npz", ("influence",))
            if data is None:
                reasons.append(f"{ds}/{m}: {why}")
                continue
            got.append((m, run, np.asarray(data["influence"], dtype=float)))
        if len(got) == 2 or (got and chosen is None):
            chosen = (ds, got)
            if len(got) == 2:
                break
    if chosen is None:
        raise NoData("no 'influence' in analysis.npz of QG-VAE or VQ-VAE Table-1 runs"
                     + (f" ({reasons[0]})" if reasons else ""))
    ds, got = chosen
    plt = _plt()
    ncols = n_tokens + 1
    fig, axes = plt.subplots(len(got), ncols, figsize=(FULL_W, FULL_W / ncols * len(got) + 0.3),
                             squeeze=False)
    sources = []
    for r, (m, run, inf) in enumerate(got):
        sources.append(f"{run}/analysis.npz")
        toks = np.unique(np.linspace(0, len(inf) - 1, n_tokens).round().astype(int))
        area = _influence_area(inf)
        for j in range(ncols):
            ax = axes[r, j]
            if j < len(toks):
                img, title = inf[toks[j]], f"token {toks[j]}"
            elif j == ncols - 1:
                img, title = inf.mean(axis=0), "mean over tokens"
            else:
                ax.axis("off")
                continue
            ax.imshow(img / (img.max() or 1.0), cmap="magma", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(title, fontsize=7, pad=2)
        _row_label(axes[r, 0], f"{_mname(plan, m)}\nseed {seed_of(plan, run)}\n"
                               f"area {area.mean():.2f}")
    fig.subplots_adjust(wspace=0.05, hspace=0.25, left=0.13, right=0.995, top=0.92, bottom=0.01)
    cap = (f"Token influence on {_dname(plan, ds)}: mean absolute change of the decoded image "
           "when one token's code is changed (analysis.npz influence), each map scaled to its "
           "own maximum. 'area' = mean over all tokens of the fraction of pixels reaching half "
           "the token's maximum influence (global tokens: large; local patches: small).")
    if len(got) < 2:
        cap += " Only " + _mname(plan, got[0][0]) + " has data: " + "; ".join(reasons) + "."
    return Figure(fig, cap, sources)


def fig_code_usage(plan: Mapping[str, Any], root: Path) -> Figure:
    t1 = _tables(plan).get("table1", []) or [c for cs in _tables(plan).values() for c in cs]
    datasets = list(dict.fromkeys(c["dataset"] for c in t1))
    series: dict[str, list[tuple[str, str, np.ndarray, np.ndarray, int]]] = {}
    sources = []
    for ds in datasets:
        for c in (c for c in t1 if c["dataset"] == ds):
            fr, pp = [], []
            for run in c.get("runs", []):
                met, _ = read_json(root / run / "metrics.json")
                per = ((met or {}).get("usage") or {}).get("per_position") or {}
                if per.get("fraction") is None:
                    continue
                fr.append(np.asarray(per["fraction"], dtype=float))
                pp.append(np.asarray(per.get("perplexity") or [np.nan] * len(fr[-1]),
                                     dtype=float))
                sources.append(f"{run}/metrics.json")
            if not fr or len({len(f) for f in fr}) != 1:
                continue
            series.setdefault(ds, []).append((c["method"], c["label"], np.mean(fr, axis=0),
                                              np.mean(pp, axis=0), len(fr)))
    if not series:
        raise NoData("no metrics.json with usage.per_position in the Table-1 runs")
    plt = _plt()
    pal = _palette([m for s in series.values() for m, *_ in s])
    fig, axes = plt.subplots(len(series), 2, figsize=(FULL_W, 1.7 * len(series) + 0.3),
                             squeeze=False)
    for r, (ds, ss) in enumerate(series.items()):
        for m, label, fr, pp, k in ss:
            x = np.arange(len(fr))
            lab = f"{_mname(plan, m)} ({k} seed{'s' if k != 1 else ''})"
            axes[r, 0].plot(x, 100 * fr, color=pal[m], lw=1, label=_t(lab))
            axes[r, 1].plot(x, pp, color=pal[m], lw=1, label=_t(lab))
        axes[r, 0].set_ylabel(_t(f"{_dname(plan, ds)}\ncodebook used (%)"))
        axes[r, 1].set_ylabel("perplexity")
        axes[r, 0].set_ylim(0, 102)
        axes[r, 1].legend(loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("token position")
    fig.tight_layout()
    cap = ("Code usage per token position on the test set (metrics.json usage.per_position): "
           "fraction of each position's codebook used and the perplexity of its code "
           "distribution, averaged over the seeds given in the legend.")
    return Figure(fig, cap, sources)


def fig_training(plan: Mapping[str, Any], root: Path) -> Figure:
    """One row per Table-1 dataset: train loss, train MSE, validation PSNR against steps."""
    datasets = _table1_datasets(plan)
    if not datasets:
        raise NoData("the plan has no Table-1 cells")
    t1 = _tables(plan).get("table1", [])
    per_ds: dict[str, list[tuple[str, int | None, list, list]]] = {}
    sources = []
    for ds in datasets:
        for c in (c for c in t1 if c["dataset"] == ds):
            for run in c.get("runs", []):
                rows = read_log(root / run / "train_log.jsonl")
                tr = [r for r in rows if r.get("split") == "train" and "step" in r]
                va = [r for r in rows if r.get("split") == "val" and "step" in r]
                if tr or va:
                    per_ds.setdefault(ds, []).append((c["method"], seed_of(plan, run), tr, va))
                    sources.append(f"{run}/train_log.jsonl")
    if not per_ds:
        raise NoData("no train_log.jsonl in any Table-1 run")
    plt = _plt()
    pal = _palette([c["method"] for c in t1])
    fig, axes = plt.subplots(len(datasets), 3, figsize=(FULL_W, 1.75 * len(datasets) + 0.45),
                             squeeze=False)
    panels = (("train", "loss", "train loss", True), ("train", "mse", "train MSE", True),
              ("val", "psnr", "validation PSNR (dB)", False))
    seeds_per: dict[str, set] = {}
    for curves in per_ds.values():
        for m, seed, *_ in curves:
            seeds_per.setdefault(m, set()).add(seed)
    for r, ds in enumerate(datasets):
        curves = per_ds.get(ds, [])
        for ax, (split, key, title, logy) in zip(axes[r], panels):
            any_line = False
            for m, seed, tr, va in curves:
                rows = tr if split == "train" else va
                pts = [(r_["step"], r_[key]) for r_ in rows
                       if isinstance(r_.get(key), (int, float)) and math.isfinite(r_[key])]
                if not pts:
                    continue
                x, y = zip(*sorted(pts))
                ax.plot(x, y, color=pal[m], lw=0.9, alpha=0.85,
                        label=_t(f"{_mname(plan, m)} ({len(seeds_per[m])} seed"
                                 f"{'s' if len(seeds_per[m]) != 1 else ''} per dataset)"),
                        marker="o" if split == "val" else None, ms=2)
                any_line = True
            if r == 0:
                ax.set_title(title)
            if r == len(datasets) - 1:
                ax.set_xlabel("optimiser step")
            if logy and any_line and all(v > 0 for ln in ax.get_lines() for v in ln.get_ydata()):
                ax.set_yscale("log")
            if not any_line:
                ax.text(0.5, 0.5, _t(f"no data: no '{key}' in {split} rows"), ha="center",
                        va="center", fontsize=7, transform=ax.transAxes)
        axes[r, 0].set_ylabel(_t(_dname(plan, ds)))
    handles, labels = [], []
    for ax in axes.flat:
        for h_, l_ in zip(*ax.get_legend_handles_labels()):
            if l_ not in labels:
                handles.append(h_)
                labels.append(l_)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3),
                   bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.35 / (1.75 * len(datasets) + 0.45) + 0.02, 1, 1))
    cap = ("Training curves of the Table-1 runs (train_log.jsonl): training loss and MSE and "
           "validation PSNR against optimiser steps, one row per dataset and one line per "
           "seed; the number of seeds per method is in the legend.")
    return Figure(fig, cap, sources)


def _rd_cells(plan: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out, seen = [], set()
    for name in ("table1", "table2", "ablation_tokens"):
        for c in _tables(plan).get(name, []):
            key = tuple(c.get("runs", []))
            if key not in seen:
                seen.add(key)
                out.append((name, c))
    return out


def _bits_axis(ax, bits: Sequence[float]) -> None:
    """Log-2 x axis with plain numbers when the rates span more than a factor 4."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    if bits and min(bits) > 0 and max(bits) / min(bits) > 4:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    if bits:
        lo, hi = min(bits), max(bits)
        pad = 0.08 * (hi - lo) if hi > lo else 0.1 * hi or 1.0
        if ax.get_xscale() == "log":
            ax.set_xlim(lo / 1.25, hi * 1.25)
        else:
            ax.set_xlim(lo - pad, hi + pad)


RD_METRICS = (("psnr", "PSNR (dB)"), ("lpips", "LPIPS"), ("rfid", "rFID"))


def fig_rate_distortion(plan: Mapping[str, Any], root: Path, protocol: str = "vqwae") -> Figure:
    pts: dict[str, list[tuple[str, str, CellStats]]] = {}
    for table, c in _rd_cells(plan):
        st = load_cell(plan, c, protocol, root)
        if st.values("bits") and any(st.values(k) for k, _ in RD_METRICS):
            pts.setdefault(c["dataset"], []).append((table, c["method"], st))
    if not pts:
        raise NoData("no metrics.json with bits_per_image in the Table-1, Table-2 or "
                     "ablation_tokens runs")
    plt = _plt()
    pal = _palette([m for v in pts.values() for _, m, _ in v])
    fig, axes = plt.subplots(len(pts), len(RD_METRICS), figsize=(FULL_W, 1.9 * len(pts) + 0.4),
                             squeeze=False)
    sources, seeds = [], set()
    for r, (ds, items) in enumerate(pts.items()):
        for col, (metric, mlabel) in enumerate(RD_METRICS):
            ax = axes[r, col]
            by_m: dict[str, list[tuple[float, float, float]]] = {}
            for table, m, st in items:
                vals = st.values(metric)
                if not vals:
                    continue
                sd = float(np.std(vals, ddof=DDOF)) if len(vals) > DDOF else 0.0
                by_m.setdefault(m, []).append((st.mean("bits"), float(np.mean(vals)), sd))
                seeds.add(len(vals))
                sources += [f"{run}/metrics.json" for _, run in st.present]
            for m, p in by_m.items():
                p.sort()
                x, y, e = map(np.asarray, zip(*p))
                ax.errorbar(x, y, yerr=e, color=pal[m], marker="o", ms=3, lw=0.9, capsize=2,
                            label=_t(_mname(plan, m)))
            _bits_axis(ax, [b for _, _, st in items for b in st.values("bits")])
            ax.set_xlabel("bits per image")
            ax.set_ylabel(mlabel if col else mlabel + ("" if len(pts) == 1
                                                         else _t(f"\n{_dname(plan, ds)}")))
        axes[r, -1].legend(loc="best")
    fig.tight_layout()
    nseeds = ", ".join(str(s) for s in sorted(seeds)) or "0"
    cap = (f"Rate-distortion (protocol {protocol}): PSNR, LPIPS and rFID against the bits per "
           "image "
           "of the code (metrics.json), for every method of Tables 1 and 2 and the tokens "
           f"ablation; points are means over seeds ({nseeds} seeds per point), error bars one "
           f"s.d. (ddof={DDOF}), lines join one method's settings.")
    return Figure(fig, cap, sorted(set(sources)))


def fig_ablation(plan: Mapping[str, Any], root: Path, table: str,
                 protocol: str = "vqwae") -> Figure:
    cells = _tables(plan).get(table, [])
    if not cells:
        raise NoData(f"plan has no cells for {table}")
    stats = [(c, load_cell(plan, c, protocol, root)) for c in cells]
    if not any(st.present for _, st in stats):
        raise NoData(f"no metrics.json in any run of {table}")
    plt = _plt()
    labels = list(dict.fromkeys(str(c["label"]) for c in cells))
    methods = list(dict.fromkeys(c["method"] for c in cells))
    pal = _palette(methods)
    keys = [("ssim", "SSIM"), ("psnr", "PSNR (dB)"), ("lpips", "LPIPS"), ("rfid", "rFID"),
            ("bits", "bits / image"), ("usage", "code usage (%)")]
    fig, axes = plt.subplots(2, 3, figsize=(FULL_W, 3.6))
    width = 0.8 / max(len(methods), 1)
    nseeds = set()
    sources = []
    for ax, (key, title) in zip(axes.flat, keys):
        for mi, m in enumerate(methods):
            xs, ys, es = [], [], []
            for c, st in stats:
                if c["method"] != m:
                    continue
                vals = st.values(key)
                x = labels.index(str(c["label"])) + (mi - (len(methods) - 1) / 2) * width
                if vals:
                    nseeds.add(len(vals))
                    xs.append(x)
                    ys.append(float(np.mean(vals)))
                    es.append(float(np.std(vals, ddof=DDOF)) if len(vals) > DDOF else 0.0)
                    ax.scatter([x] * len(vals), vals, s=6, color=pal[m], alpha=0.45, lw=0)
            if xs:
                ax.errorbar(xs, ys, yerr=es, fmt="o", ms=3.5, capsize=2.5, color=pal[m],
                            label=_t(_mname(plan, m)), lw=1)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels([_t(x) for x in labels], rotation=30 if max(map(len, labels)) > 6 else 0,
                           ha="right" if max(map(len, labels)) > 6 else "center")
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_title(title)
    for _, st in stats:
        sources += [f"{run}/metrics.json" for _, run in st.present]
    axis = table[len("ablation_"):]
    ns = ", ".join(str(n) for n in sorted(nseeds))
    handles, labs = axes.flat[0].get_legend_handles_labels()
    if not handles:
        for ax in axes.flat:
            handles, labs = ax.get_legend_handles_labels()
            if handles:
                break
    if handles:
        fig.legend(handles, [f"{l} (mean $\\pm$ s.d., {ns} seeds)" for l in labs],
                   loc="lower center", ncol=min(len(labs), 4), bbox_to_anchor=(0.5, -0.01))
    fig.supxlabel(_t(axis), y=0.06, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    ds = ", ".join(dict.fromkeys(_dname(plan, c["dataset"]) for c in cells))
    missing = [f"{c['label']}/{_mname(plan, c['method'])}" for c, st in stats if not st.present]
    cap = (f"Ablation of {axis} on {ds} (protocol {protocol}): markers with error bars are "
           f"means ± one s.d. (ddof={DDOF}) over {ns} seeds, small dots the individual "
           "seeds.")
    if missing:
        cap += " No data for: " + ", ".join(missing) + "."
    return Figure(fig, cap, sorted(set(sources)))


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------
FAMILIES = ("reconstructions", "progressive", "influence", "usage", "training",
            "rate_distortion", "ablations")


def figure_specs(plan: Mapping[str, Any], protocol: str = "vqwae") -> list[Spec]:
    """Every figure of the plan: ``recon_grid_<dataset>`` per Table-1 dataset, the summary
    figures (always), ``ablation_<axis>`` per ablation."""
    specs = [Spec("reconstructions", f"recon_grid_{ds}", fig_reconstructions, {"dataset": ds},
                  f"Reconstructions, {ds}") for ds in _table1_datasets(plan)]
    specs += [
        Spec("progressive", "progressive", fig_progressive, {}, "Progressive decoding"),
        Spec("influence", "token_influence", fig_influence, {}, "Token influence"),
        Spec("usage", "code_usage", fig_code_usage, {}, "Code usage per position"),
        Spec("training", "training_curves", fig_training, {}, "Training curves"),
        Spec("rate_distortion", "rate_distortion", fig_rate_distortion, {"protocol": protocol},
             "Rate-distortion"),
    ]
    for name, cells in _tables(plan).items():
        if name.startswith("ablation_") and cells:
            specs.append(Spec("ablations", name, fig_ablation,
                              {"table": name, "protocol": protocol}, f"Ablation: {name[9:]}"))
    return specs


def figure_stems(plan: Mapping[str, Any]) -> list[str]:
    """Every figure stem ``render_figures`` writes (``<stem>.pdf`` and ``<stem>.png``)."""
    return [s.stem for s in figure_specs(plan)]


def render_figures(plan: Mapping[str, Any] | str | Path, outdir: str | Path,
                   root: str | Path = ".", only: Sequence[str] | None = None,
                   protocol: str = "vqwae", names: Mapping[str, Any] | None = None
                   ) -> list[Path]:
    """Write the figures (all, or those whose family or stem is in ``only``)."""
    if not isinstance(plan, Mapping):
        plan = json.loads(Path(plan).read_text())
    plan = dict(plan)
    plan["_names"] = dict(names or {})
    specs = figure_specs(plan, protocol)
    if only:
        unknown = [o for o in only if o not in FAMILIES and o not in {s.stem for s in specs}]
        if unknown:
            raise ValueError(f"unknown figure(s) {unknown}; families: {list(FAMILIES)}, "
                             f"stems: {[s.stem for s in specs]}")
        specs = [s for s in specs if s.family in only or s.stem in only]
    root, outdir = Path(root), Path(outdir)
    plt = _plt()
    written: list[Path] = []
    with plt.rc_context(_style()):
        for spec in specs:
            try:
                res = spec.func(plan, root, **spec.kwargs)
                written += save_figure(res.fig, outdir, spec.stem, res.caption, res.sources)
            except NoData as exc:
                reason = str(exc)
                log.warning("figure %s: no data: %s", spec.stem, reason)
                print(f"qgvae figures: {spec.stem}: no data: {reason}")
                fig = no_data_figure(spec.title or spec.stem, reason)
                written += save_figure(fig, outdir, spec.stem,
                                       f"{spec.title}: no data ({reason}).", [], reason)
    return written


def _run(args: argparse.Namespace) -> int:
    plan_path = Path(args.plan)
    if not plan_path.is_file():
        print(f"qgvae figures: plan file not found: {plan_path}")
        return 2
    names = {}
    if args.paper and Path(args.paper).is_file():
        from .tables import load_paper_values

        pv = load_paper_values(args.paper)
        names = {k: pv.get(k) for k in ("method_names", "dataset_names") if pv.get(k)}
    try:
        written = render_figures(plan_path, args.outdir, root=args.root, only=args.only,
                                 protocol=args.protocol, names=names)
    except ValueError as exc:
        print(f"qgvae figures: {exc}")
        return 2
    n = sum(1 for p in written if p.suffix == ".pdf")
    print(f"qgvae figures: wrote {n} figures (PDF + PNG) under {args.outdir}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", default="results/plan.json")
    p.add_argument("--outdir", default="reports/figures")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help=f"figure families ({', '.join(FAMILIES)}) or file stems")
    p.add_argument("--protocol", default="vqwae", choices=("vqwae", "native"),
                   help="protocol of the metric-based figures")
    p.add_argument("--paper", default="config/paper_values.yaml",
                   help="for display names of methods / datasets (optional)")
    p.add_argument("--root", default=".", help="folder the plan's run paths are relative to")


def register_cli(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("figures", help="figures (PDF + PNG) from results/",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_run)
    return p
