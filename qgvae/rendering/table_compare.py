"""Table 1 (methods side by side per dataset) and Table 2 (QG-VAE against DQ-VAE at token
budgets): metric rows x method columns, the paper's values and Delta beside ours under its
protocol, the mean-image floor as the last column, and a mark where a paired bootstrap interval
excludes 0 (the conventions: :mod:`qgvae.rendering.tables`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .latex import DASH, Notes, fmt_num, latex_escape, latex_unescape, table_env, tabular
from .names import Names
from .summary import Cell, Summary
from .table_cells import (
    EXTRAS,
    FLOOR_CAPTION,
    FLOOR_HEADER,
    FLOOR_KEY,
    MEASURED,
    METRICS,
    SIG_MARK,
    caption_parts,
    floor_cell,
    paper_caption,
    paper_value,
    sources_of,
    stat_cell,
)


def _compare(plan, paper, names: Names, protocol, summary: Summary, table, cells, marks):
    """Table 1 (one dataset's cells) or Table 2 (every dataset a block, budgets as column
    groups): metric rows x method columns, the paper's values and Delta under its protocol.
    Returns (tabular, notes, [(name, cell)], [("Mean image", floor cell)])."""
    two = table == "table2"
    key = (lambda c: (c["label"], c["method"])) if two else (lambda c: (c["method"],))
    multi = two and len({c["label"] for c in cells}) > 1
    keys = list(dict.fromkeys(key(c) for c in cells))
    columns = [
        (k, latex_escape(names.method(k[-1])), latex_escape(k[0]) if multi else None) for k in keys
    ]
    notes, blocks, named, printed = Notes(), [], [], {}
    for ds in dict.fromkeys(c["dataset"] for c in cells):
        stats: dict[tuple, Cell | None] = {}
        for c in (c for c in cells if c["dataset"] == ds):
            stats[key(c)] = summary.cell(plan, c, protocol)
            who = f"{names.dataset(ds)} {names.method(c['method'])} {c['label']}"
            named.append((who if two else names.method(c["method"]), stats[key(c)]))
        printed |= {
            (ds, *k): {m: paper_value(paper, table, ds, k[-1], m) for m in METRICS} for k in keys
        }
        stats[FLOOR_KEY] = summary.floor(plan, list(stats.values()), protocol)
        blocks.append((latex_escape(names.dataset(ds)) if two else None, ds, stats))
    floors = [(FLOOR_HEADER, b[2][FLOOR_KEY]) for b in blocks if b[2][FLOOR_KEY] is not None]
    if floors:
        columns.append((FLOOR_KEY, FLOOR_HEADER, "" if multi else None))
    with_paper = protocol == paper.get("protocol")
    lead = ["Metric", ""] if with_paper else ["Metric"]
    header: list[Any] = lead + [h for _, h, _ in columns]
    if multi:
        header = [("", h) for h in lead] + [(g or "", h) for _, h, g in columns]
    rows: list[list[str]] = []
    before: dict[int, str] = {}

    def ours(stats, title: str, key: str, dec: int) -> list[str]:
        out = []
        for k, h, g in columns:
            if k == FLOOR_KEY:
                out.append(floor_cell(stats.get(k), key, dec))
                continue
            who = " / ".join(latex_unescape(p) for p in (title, g, h) if p)
            text = stat_cell(stats[k], key, dec, notes, who) if stats.get(k) else DASH
            out.append(text + marks.get((k, key), ""))
        return out

    for title, ds, stats in blocks:
        first = ["\\midrule"] if rows else []
        first += [f"\\multicolumn{{{len(header)}}}{{l}}{{\\emph{{{title}}}}} \\\\"] if title else []
        before[len(rows)] = "\n".join(first)
        for i, (metric, q) in enumerate(METRICS.items()):
            before[len(rows)] = before.get(len(rows)) or ("\\addlinespace" if i else "")
            rows.append([q.header] + ["ours"] * with_paper + ours(stats, title, metric, q.decimals))
            if not with_paper:
                continue
            paper_row, diff_row = ["", "paper"], ["", "$\\Delta$"]
            for k, _, _ in columns:  # the floor is not in the paper: no value, no difference
                value = (printed.get((ds, *k)) or {}).get(metric)
                mean = stats[k].mean(metric) if stats.get(k) is not None else None
                num = pd.to_numeric(value, errors="coerce") if value is not None else float("nan")
                diff = (
                    f"${fmt_num(mean - num, q.decimals, sign=True)}$"
                    if mean is not None and pd.notna(num)
                    else DASH
                )
                paper_row.append(
                    "" if k == FLOOR_KEY else latex_escape(value) if value is not None else DASH
                )
                diff_row.append("" if k == FLOOR_KEY else diff)
            rows += [paper_row, diff_row]
        before[len(rows)] = "\\addlinespace"
        for key_, q in (EXTRAS | MEASURED if two else EXTRAS).items():
            rows.append([q.header] + ["ours"] * with_paper + ours(stats, title, key_, q.decimals))
    before = {k: v for k, v in before.items() if v}
    return tabular(header, rows, "l" * len(lead) + "c" * len(columns), before), notes, named, floors


def _marks(diffs: pd.DataFrame, ds: str, protocol: str) -> tuple[dict, str]:
    """Marks on the Table-1 baselines whose difference from QG-VAE has a 95 % interval
    excluding 0, and a phrase giving the resample counts."""
    if diffs.empty:
        return {}, ""
    d = diffs[(diffs.dataset == ds) & (diffs.protocol == protocol) & (diffs.method == "qgvae")]
    d = d[(d.baseline != "mean_image") & d.ci_low.notna() & d.ci_high.notna()]
    sig = d[(d.ci_low > 0) | (d.ci_high < 0)]
    marks = {((b,), m): SIG_MARK for b, m in zip(sig.baseline, sig.metric)}
    header = lambda m: METRICS[m].header if m in METRICS else m
    by_n = d.drop_duplicates("metric").groupby("resamples", sort=False)["metric"]
    return marks, "; ".join(
        f"{int(n)} resamples for {', '.join(map(header, ms))}" for n, ms in by_n
    )


def compare_tables(plan, paper, names: Names, protocol, summary: Summary, diffs) -> dict[str, str]:
    """``table1_<dataset>`` for every Table-1 dataset and ``table2``."""
    tables, out = plan.get("tables") or {}, {}
    with_paper = protocol == paper.get("protocol")
    no_paper = latex_escape(paper.get("protocol", "vqwae"))
    no_paper = f"The paper reports no numbers under this protocol (it used \\texttt{{{no_paper}}})."
    for ds in dict.fromkeys(c["dataset"] for c in tables.get("table1") or []):
        cells = [c for c in tables["table1"] if c["dataset"] == ds]
        marks, resamples = _marks(diffs, ds, protocol)
        body, notes, named, floors = _compare(
            plan, paper, names, protocol, summary, "table1", cells, marks
        )
        head, ours, scale = caption_parts(plan, paper, protocol, named)
        caption = [f"Reconstruction on {latex_escape(names.dataset(ds))} (test split). {head}"]
        caption += [ours, scale, FLOOR_CAPTION]
        lines = (((paper.get("table1") or {}).get("datasets") or {}).get(ds) or {}).get(
            "source_lines"
        )
        rest = (
            ", measured with the same protocol; $\\Delta$ = ours $-$ paper (higher is better "
            "for SSIM and PSNR, lower for LPIPS and rFID); -- = no value."
        )
        caption += paper_caption(paper, "table1", lines, rest) if with_paper else [no_paper]
        if any(s is not None and s.grayscale for _, s in named):
            caption.append("Grayscale images are repeated to RGB for LPIPS and rFID.")
        if resamples:
            caption.append(
                f"{SIG_MARK}: the 95\\% paired bootstrap interval of QG-VAE minus this method "
                f"excludes 0 (test images resampled alike for both, seeds as an outer level; "
                f"{resamples}; every interval in paired\\_differences.csv)."
            )
        caption.append(
            "Code usage: mean over token positions of the fraction of the codebook used on the "
            "test set."
        )
        sources = sources_of(named + floors)
        if with_paper:
            where = f"lines {lines}" if lines else "(no table for this dataset)"
            paper_file = (paper.get("source") or {}).get("file", "paper_values.yaml")
            sources.append(f"paper: {paper_file} {where} via config/paper_values.yaml")
        name = f"table1_{ds}"
        out[name] = table_env(
            name, " ".join(x for x in caption if x), body, notes, sources, protocol
        )
    cells = tables.get("table2") or []
    if cells:
        body, notes, named, _ = _compare(plan, paper, names, protocol, summary, "table2", cells, {})
        head, ours, scale = caption_parts(plan, paper, protocol, named)
        caption = [f"Comparison with DQ-VAE (Table 2). {head}"]
        labels = list(dict.fromkeys(c["label"] for c in cells))
        caption += [f"Token budget: {latex_escape(labels[0])}."] if len(labels) == 1 else []
        caption += [ours, scale, FLOOR_CAPTION]
        caption.append(
            "Bits / image is the nominal rate of the configuration; tokens and bits per image "
            "(test) are measured on the test images (DQ-VAE codes a region with 1 or 4 tokens and "
            "pays one routing bit per region)."
        )
        lines = (paper.get("table2") or {}).get("source_lines")
        rest = "; $\\Delta$ = ours $-$ paper; -- = no value."
        caption += paper_caption(paper, "table2", lines, rest) if with_paper else [no_paper]
        text = " ".join(x for x in caption if x)
        out["table2"] = table_env("table2", text, body, notes, sources_of(named), protocol)
    return out
