"""Table 1 (methods side by side per dataset) and Table 2 (QG-VAE vs DQ-VAE at token budgets):
metric rows x method columns, the paper's values and the difference beside ours, the mean-image
floor as the last column, and a mark where a paired bootstrap interval excludes 0."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .latex import (
    DASH,
    Notes,
    fmt_num,
    latex_escape,
    latex_unescape,
    n_phrase,
    protocol_phrase,
    scale_phrase,
    seeds_phrase,
    stat_cell,
    table_env,
    table_row,
)
from .names import Names
from .results import CellStats, finite_float, load_cell, load_floor
from .table_parts import (
    EXTRAS,
    FLOOR_CAPTION,
    FLOOR_HEADER,
    FLOOR_KEY,
    MEASURED,
    METRICS,
    Quantity,
    floor_cell,
    join,
    no_paper_caption,
    paper_caption,
    paper_value,
    sources_of,
)


@dataclass
class Column:
    key: tuple[str, ...]  # (method,) in Table 1, (budget label, method) in Table 2
    header: str  # escaped
    group: str | None = None  # escaped; a second header level (Table 2 budgets)


@dataclass
class Block:
    """One dataset's rows of a comparison table."""

    title: str | None  # escaped; printed above the block when given
    dataset: str
    stats: Mapping[tuple[str, ...], CellStats | None]  # column key -> the cell's numbers


def _who(column: Column, title: str | None) -> str:
    """Readable cell name for footnotes (the escaped parts unescaped)."""
    return " / ".join(latex_unescape(p) for p in (title, column.group, column.header) if p)


def _group_header(columns: Sequence[Column], lead: list[str]) -> list[str]:
    """The budget header row and its rules (Table 2 with several budgets)."""
    groups = [c.group for c in columns]
    header, rules, i = list(lead), [], 0
    while i < len(columns):
        j = i
        while j + 1 < len(columns) and groups[j + 1] == groups[i]:
            j += 1
        span = j - i + 1
        label = groups[i] or ""
        header.append(f"\\multicolumn{{{span}}}{{c}}{{{label}}}" if span > 1 else label)
        first = len(lead) + i + 1
        rules.append(f"\\cmidrule(lr){{{first}-{first + span - 1}}}")
        i = j + 1
    return [table_row(header), " ".join(rules)]


def _tabular_compare(
    columns: Sequence[Column],
    blocks: Sequence[Block],
    printed: Mapping[tuple[str, ...], Mapping[str, str | None]] | None,
    notes: Notes,
    extras: Mapping[str, Quantity] | None = None,
    marks: Mapping[tuple[tuple[str, ...], str], str] | None = None,
) -> str:
    """``printed`` = {(dataset, *column key): {metric: paper value}}; None: no paper rows."""
    compare = printed is not None
    ncol = len(columns) + (2 if compare else 1)
    spec = ("ll" if compare else "l") + "c" * len(columns)
    lead = ["", ""] if compare else [""]
    lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    if any(c.group is not None for c in columns):
        lines += _group_header(columns, lead)
    lines.append(
        table_row((["Metric", ""] if compare else ["Metric"]) + [c.header for c in columns])
    )

    def ours(block: Block, key: str, decimals: int) -> list[str]:
        out = []
        for c in columns:
            stats = block.stats.get(c.key)
            who = _who(c, block.title)
            if c.key == FLOOR_KEY:
                out.append(floor_cell(stats, key, decimals))
            else:
                cell = stat_cell(stats, key, decimals, notes, who) if stats else DASH
                out.append(cell + (marks or {}).get((c.key, key), ""))
        return out

    for block in blocks:
        lines.append("\\midrule")
        if block.title:
            lines.append(f"\\multicolumn{{{ncol}}}{{l}}{{\\emph{{{block.title}}}}} \\\\")
        for i, (metric, q) in enumerate(METRICS.items()):
            if i:
                lines.append("\\addlinespace")
            if not compare:
                lines.append(table_row([q.header] + ours(block, metric, q.decimals)))
                continue
            lines.append(table_row([q.header, "ours"] + ours(block, metric, q.decimals)))
            paper_cells, diff = [], []
            for c in columns:
                if c.key == FLOOR_KEY:  # not in the paper: no paper value, no difference
                    paper_cells.append("")
                    diff.append("")
                    continue
                stats = block.stats.get(c.key)
                value = (printed.get((block.dataset,) + c.key) or {}).get(metric)
                paper_cells.append(latex_escape(value) if value is not None else DASH)
                mean = stats.mean(metric) if stats is not None else None
                paper_num = finite_float(value)
                diff.append(
                    f"${fmt_num(mean - paper_num, q.decimals, sign=True)}$"
                    if mean is not None and paper_num is not None
                    else DASH
                )
            lines.append(table_row(["", "paper"] + paper_cells))
            lines.append(table_row(["", "$\\Delta$"] + diff))
        lines.append("\\addlinespace")
        for key, q in (extras or EXTRAS).items():
            lines.append(
                table_row([q.header] + (["ours"] if compare else []) + ours(block, key, q.decimals))
            )
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


SIG_MARK = "$^{\\dagger}$"


def _significance_marks(
    rows: Sequence[Mapping[str, str]], dataset: str, protocol: str
) -> tuple[dict[tuple[tuple[str, ...], str], str], str]:
    """``{((baseline,), metric): mark}`` for the Table-1 baselines whose difference from
    QG-VAE has a 95 % interval excluding 0, and a phrase giving the resample counts."""
    marks, counts = {}, {}
    for r in rows:
        if (r["dataset"], r["protocol"], r["method"]) != (dataset, protocol, "qgvae"):
            continue
        if r["baseline"] == "mean_image" or not r["ci_low"] or not r["ci_high"]:
            continue
        counts[r["metric"]] = r["resamples"]
        if float(r["ci_low"]) > 0 or float(r["ci_high"]) < 0:
            marks[((r["baseline"],), r["metric"])] = SIG_MARK
    if not counts:
        return marks, ""
    by_n: dict[str, list[str]] = {}
    for metric, n in counts.items():
        by_n.setdefault(n, []).append(METRICS[metric].header if metric in METRICS else metric)
    phrase = "; ".join(f"{n} resamples for {', '.join(m)}" for n, m in by_n.items())
    return marks, phrase


def table1_tables(
    plan: Mapping[str, Any],
    paper: Mapping[str, Any],
    names: Names,
    protocol: str,
    root: Path,
    differences: Sequence[Mapping[str, str]] = (),
) -> dict[str, str]:
    cells = (plan.get("tables") or {}).get("table1") or []
    compare = protocol == paper.get("protocol")
    out: dict[str, str] = {}
    for ds in dict.fromkeys(c["dataset"] for c in cells):
        notes = Notes()
        columns, stats_by_col, named = [], {}, []
        printed: dict[tuple[str, ...], dict[str, str | None]] = {}
        for c in (c for c in cells if c["dataset"] == ds):
            key = (c["method"],)
            method = names.method(c["method"])
            columns.append(Column(key, latex_escape(method)))
            stats = load_cell(plan, c, protocol, root)
            stats_by_col[key] = stats
            named.append((method, stats))
            printed[(ds, c["method"])] = {
                m: paper_value(paper, "table1", ds, c["method"], m) for m in METRICS
            }
        floor = load_floor(plan, list(stats_by_col.values()), protocol, root)
        if floor is not None:
            columns.append(Column(FLOOR_KEY, FLOOR_HEADER))
            stats_by_col[FLOOR_KEY] = floor
        marks, resamples = _significance_marks(differences, ds, protocol)
        body = _tabular_compare(
            columns,
            [Block(None, ds, stats_by_col)],
            printed if compare else None,
            notes,
            marks=marks,
        )
        caption = [
            f"Reconstruction on {latex_escape(names.dataset(ds))} (test split). "
            f"{protocol_phrase(protocol, paper)}.",
            f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.",
            scale_phrase(named),
            FLOOR_CAPTION,
        ]
        lines = (((paper.get("table1") or {}).get("datasets") or {}).get(ds) or {}).get(
            "source_lines"
        )
        if compare:
            caption += paper_caption(
                paper,
                "table1",
                lines,
                ", measured with the same protocol; "
                "$\\Delta$ = ours $-$ paper (higher is better for SSIM and PSNR, "
                "lower for LPIPS and rFID); -- = no value.",
            )
        else:
            caption.append(no_paper_caption(paper))
        if any(stats.grayscale for _, stats in named):
            caption.append("Grayscale images are repeated to RGB for LPIPS and rFID.")
        if resamples:
            caption.append(
                f"{SIG_MARK}: the 95\\% paired bootstrap interval of QG-VAE minus this method "
                f"excludes 0 (test images resampled alike for both, seeds as an outer level; "
                f"{resamples}; every interval in paired\\_differences.csv)."
            )
        caption.append(
            "Code usage: mean over token positions of the fraction of the codebook "
            "used on the test set."
        )
        name = f"table1_{ds}"
        sources = sources_of(named + ([(FLOOR_HEADER, floor)] if floor else []))
        if compare:
            where = f"lines {lines}" if lines else "(no table for this dataset)"
            sources.append(
                f"paper: {(paper.get('source') or {}).get('file', 'paper_values.yaml')} "
                f"{where} via config/paper_values.yaml"
            )
        out[name] = table_env(name, join(caption), body, notes, sources, protocol)
    return out


def table2_table(
    plan: Mapping[str, Any], paper: Mapping[str, Any], names: Names, protocol: str, root: Path
) -> dict[str, str]:
    cells = (plan.get("tables") or {}).get("table2") or []
    if not cells:
        return {}
    compare = protocol == paper.get("protocol")
    labels = list(dict.fromkeys(c["label"] for c in cells))
    multi_budget = len(labels) > 1
    col_keys = list(dict.fromkeys((c["label"], c["method"]) for c in cells))
    columns = [
        Column(
            (label, method),
            latex_escape(names.method(method)),
            latex_escape(label) if multi_budget else None,
        )
        for label, method in col_keys
    ]
    notes = Notes()
    blocks, named, printed = [], [], {}
    for ds in dict.fromkeys(c["dataset"] for c in cells):
        by_col: dict[tuple[str, ...], CellStats | None] = {}
        for c in (c for c in cells if c["dataset"] == ds):
            stats = load_cell(plan, c, protocol, root)
            by_col[(c["label"], c["method"])] = stats
            named.append((f"{names.dataset(ds)} {names.method(c['method'])} {c['label']}", stats))
        for label, method in col_keys:
            printed[(ds, label, method)] = {
                m: paper_value(paper, "table2", ds, method, m) for m in METRICS
            }
        by_col[FLOOR_KEY] = load_floor(plan, list(by_col.values()), protocol, root)
        blocks.append(Block(latex_escape(names.dataset(ds)), ds, by_col))
    if any(b.stats[FLOOR_KEY] is not None for b in blocks):
        columns.append(Column(FLOOR_KEY, FLOOR_HEADER, "" if multi_budget else None))
    body = _tabular_compare(
        columns, blocks, printed if compare else None, notes, extras=EXTRAS | MEASURED
    )
    caption = [f"Comparison with DQ-VAE (Table 2). {protocol_phrase(protocol, paper)}."]
    if not multi_budget:
        caption.append(f"Token budget: {latex_escape(labels[0])}.")
    caption.append(f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.")
    caption += [scale_phrase(named), FLOOR_CAPTION]
    caption.append(
        "Bits / image is the nominal rate of the configuration; tokens and bits per image "
        "(test) are measured on the test images (DQ-VAE codes a region with 1 or 4 tokens and "
        "pays one routing bit per region)."
    )
    if compare:
        lines = (paper.get("table2") or {}).get("source_lines")
        caption += paper_caption(
            paper, "table2", lines, "; $\\Delta$ = ours $-$ paper; -- = no value."
        )
    else:
        caption.append(no_paper_caption(paper))
    return {"table2": table_env("table2", join(caption), body, notes, sources_of(named), protocol)}
