"""LaTeX tables (booktabs) of the benchmark, read only from files.

Inputs: ``results/plan.json`` (``qgvae.plan.build_plan``), each run's ``metrics.json`` (through
``qgvae.rendering.results``) and ``config/paper_values.yaml`` (the paper's numbers and where
they come from). Nothing is trained or measured here; a run whose ``metrics.json`` is absent
renders as ``--`` with a footnote.

Outputs (``render_tables``)
---------------------------
``<out_dir>/<name>.tex``            one file per table under the main protocol (default
                                    ``vqwae``, the paper's), to ``\\input`` alone:
                                    ``table1_<dataset>``, ``table2``, ``ablation_<axis>``;
``<out_dir>/<name>_<protocol>.tex`` the same tables under every other protocol (``native``);
``<out_tex>``                       all of them (contents copied in, so it is self-contained),
                                    main protocol first.

Decisions
---------
- Spread over seeds: each run contributes its own mean over the N test images; a cell shows
  the mean over seeds +- the sample standard deviation (numpy ``ddof=1``, ``DDOF``); a cell with
  one seed shows the mean alone (footnoted).
- Table 1 / Table 2 keep the paper's layout (metric rows, method columns). Under the paper's
  protocol each metric has three rows: ours, the paper's value (verbatim, as printed) and
  Delta = ours - paper. Under other protocols only our row is printed (the paper has no such
  numbers). Bits per image and code usage (mean fraction of each token's codebook used, %) are
  extra rows.
- Ablations: rows = values (x method when an axis has several), columns = SSIM, PSNR, LPIPS,
  rFID, bits / image, code usage.
- Every caption states the protocol, N (rFID's N when it differs), the number of seeds and
  which seeds; every file starts with comments naming its source files.
- Method and dataset names come from the registries (``qgvae.rendering.names``).
- Required LaTeX packages: booktabs only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluation import PROTOCOLS
from ..io import write_text
from .latex import (
    DASH,
    Notes,
    fmt_num,
    latex_escape,
    latex_prose,
    latex_unescape,
    n_phrase,
    protocol_phrase,
    seeds_phrase,
    stat_cell,
    table_env,
    table_row,
)
from .names import Names
from .results import DDOF, CellStats, finite_float, load_cell, load_plan, paper_values_of


@dataclass(frozen=True)
class Quantity:
    """A number a table shows: its header and how many decimals it is printed with."""

    header: str
    decimals: int
    short: str = ""  # header in the (wide) ablation tables, when shorter


METRICS: dict[str, Quantity] = {
    "ssim": Quantity("SSIM", 3),
    "psnr": Quantity("PSNR", 2),
    "lpips": Quantity("LPIPS", 3),
    "rfid": Quantity("rFID", 2),
}
EXTRAS: dict[str, Quantity] = {
    "bits": Quantity("Bits / image", 0, short="Bits"),
    "usage": Quantity("Code usage (\\%)", 1, short="Usage (\\%)"),
}


def paper_value(
    paper: Mapping[str, Any], table: str, dataset: str, method: str, metric: str
) -> str | None:
    """The paper's value as printed (a string), or None."""
    try:
        v = paper[table]["datasets"][dataset]["values"][method][metric]
    except (KeyError, TypeError):
        return None
    return None if v is None else str(v)


# ---------------------------------------------------------------------------------------------
# Table 1 / Table 2 body: metric rows x method columns
# ---------------------------------------------------------------------------------------------
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
            out.append(stat_cell(stats, key, decimals, notes, who) if stats is not None else DASH)
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
        for key, q in EXTRAS.items():
            lines.append(
                table_row([q.header] + (["ours"] if compare else []) + ours(block, key, q.decimals))
            )
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Captions and source comments
# ---------------------------------------------------------------------------------------------
def _sources(named: Sequence[tuple[str, CellStats | None]]) -> list[str]:
    out = []
    for who, stats in named:
        if stats is None:
            continue
        for seed, run in stats.planned:
            state = "present" if (seed, run) in stats.present else "MISSING"
            out.append(f"{who}: {run}/metrics.json [{state}]")
    return out


def _paper_caption(paper: Mapping[str, Any], table: str, lines: Any, rest: str) -> list[str]:
    """'Paper: Table N of <citation> (text lines ...)<rest>' and the paper file's notes."""
    citation = latex_escape((paper.get("source") or {}).get("citation", "the paper"))
    number = table[len("table") :]
    notes = " ".join(latex_prose(n) for n in (paper.get(table) or {}).get("notes") or [])
    where = f" (text lines {latex_escape(lines)})" if lines else ""
    return [f"Paper: Table {number} of {citation}{where}{rest}", notes]


def _no_paper_caption(paper: Mapping[str, Any]) -> str:
    used = latex_escape(paper.get("protocol", "vqwae"))
    return f"The paper reports no numbers under this protocol (it used \\texttt{{{used}}})."


def _join(caption: Sequence[str]) -> str:
    return " ".join(x for x in caption if x)


# ---------------------------------------------------------------------------------------------
# The three kinds of table
# ---------------------------------------------------------------------------------------------
def table1_tables(
    plan: Mapping[str, Any], paper: Mapping[str, Any], names: Names, protocol: str, root: Path
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
        body = _tabular_compare(
            columns, [Block(None, ds, stats_by_col)], printed if compare else None, notes
        )
        caption = [
            f"Reconstruction on {latex_escape(names.dataset(ds))} (test split). "
            f"{protocol_phrase(protocol, paper)}.",
            f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.",
        ]
        lines = (((paper.get("table1") or {}).get("datasets") or {}).get(ds) or {}).get(
            "source_lines"
        )
        if compare:
            caption += _paper_caption(
                paper,
                "table1",
                lines,
                ", measured with the same protocol; "
                "$\\Delta$ = ours $-$ paper (higher is better for SSIM and PSNR, "
                "lower for LPIPS and rFID); -- = no value.",
            )
        else:
            caption.append(_no_paper_caption(paper))
        if any(stats.grayscale for _, stats in named):
            caption.append("Grayscale images are repeated to RGB for LPIPS and rFID.")
        caption.append(
            "Code usage: mean over token positions of the fraction of the codebook "
            "used on the test set."
        )
        name = f"table1_{ds}"
        sources = _sources(named)
        if compare:
            where = f"lines {lines}" if lines else "(no table for this dataset)"
            sources.append(
                f"paper: {(paper.get('source') or {}).get('file', 'paper_values.yaml')} "
                f"{where} via config/paper_values.yaml"
            )
        out[name] = table_env(name, _join(caption), body, notes, sources, protocol)
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
        blocks.append(Block(latex_escape(names.dataset(ds)), ds, by_col))
    body = _tabular_compare(columns, blocks, printed if compare else None, notes)
    caption = [f"Comparison with DQ-VAE (Table 2). {protocol_phrase(protocol, paper)}."]
    if not multi_budget:
        caption.append(f"Token budget: {latex_escape(labels[0])}.")
    caption.append(f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.")
    if compare:
        lines = (paper.get("table2") or {}).get("source_lines")
        caption += _paper_caption(
            paper, "table2", lines, "; $\\Delta$ = ours $-$ paper; -- = no value."
        )
    else:
        caption.append(_no_paper_caption(paper))
    return {"table2": table_env("table2", _join(caption), body, notes, _sources(named), protocol)}


def ablation_tables(
    plan: Mapping[str, Any], paper: Mapping[str, Any], names: Names, protocol: str, root: Path
) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, cells in (plan.get("tables") or {}).items():
        if not name.startswith("ablation_") or not cells:
            continue
        axis = name[len("ablation_") :]
        methods = list(dict.fromkeys(c["method"] for c in cells))
        datasets = list(dict.fromkeys(c["dataset"] for c in cells))
        multi_method, multi_dataset = len(methods) > 1, len(datasets) > 1
        notes = Notes()
        lead = (
            ["Value"]
            + (["Method"] if multi_method else [])
            + (["Dataset"] if multi_dataset else [])
        )
        headers = [q.header for q in METRICS.values()] + [q.short for q in EXTRAS.values()]
        lines = [
            f"\\begin{{tabular}}{{{'l' * len(lead)}{'c' * len(headers)}}}",
            "\\toprule",
            table_row(lead + headers),
            "\\midrule",
        ]
        named = []
        for c in cells:
            stats = load_cell(plan, c, protocol, root)
            who = " ".join(
                [str(c["label"])]
                + ([names.method(c["method"])] if multi_method else [])
                + ([c["dataset"]] if multi_dataset else [])
            )
            named.append((who, stats))
            row = [latex_escape(c["label"])]
            if multi_method:
                row.append(latex_escape(names.method(c["method"])))
            if multi_dataset:
                row.append(latex_escape(names.dataset(c["dataset"])))
            for key, q in (METRICS | EXTRAS).items():
                row.append(stat_cell(stats, key, q.decimals, notes, who))
            lines.append(table_row(row))
        lines += ["\\bottomrule", "\\end{tabular}"]
        on = ", ".join(latex_escape(names.dataset(d)) for d in datasets)
        who_methods = ", ".join(latex_escape(names.method(m)) for m in methods)
        caption = [
            f"Ablation of \\emph{{{latex_escape(axis)}}} ({who_methods} on {on}; each row "
            f"changes only this setting from the defaults).",
            f"{protocol_phrase(protocol, paper)}.",
            f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.",
            "Bits: bits per image of the code; usage: mean over token positions of the "
            "fraction of the codebook used on the test set (\\%).",
        ]
        sources = _sources(named) + [
            f"value {c['label']} / {c['method']}: overrides "
            f"{json.dumps(c.get('overrides') or {}, sort_keys=True)}"
            for c in cells
        ]
        out[name] = table_env(
            name, " ".join(caption), "\n".join(lines), notes, sources, protocol, "\\footnotesize"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------
def table_names(plan: Mapping[str, Any]) -> list[str]:
    """Per-table file stems for one protocol, in rendering order."""
    tables = plan.get("tables") or {}
    names = [f"table1_{d}" for d in dict.fromkeys(c["dataset"] for c in tables.get("table1", []))]
    if tables.get("table2"):
        names.append("table2")
    names += [n for n in tables if n.startswith("ablation_") and tables[n]]
    return names


def render_tables(
    plan: Mapping[str, Any] | str | Path,
    paper_values: Mapping[str, Any] | str | Path | None,
    out_tex: str | Path,
    out_dir: str | Path,
    protocol: str = "vqwae",
    root: str | Path = ".",
) -> list[Path]:
    """Write every table (per-table files, then the combined ``out_tex``); returns the paths.

    ``root`` is the folder that the plan's run paths are relative to (the repository root).
    """
    plan = load_plan(plan)
    paper = paper_values_of(paper_values)
    names = Names.from_plan(plan)
    root, out_dir, out_tex = Path(root), Path(out_dir), Path(out_tex)
    written: list[Path] = []
    combined = [
        "% qgvae-bench: every table of the benchmark, written by qgvae.rendering.tables.",
        "% Needs: \\usepackage{booktabs} (nothing else). Numbers come only from the",
        "% run folders' metrics.json and config/paper_values.yaml (see each table's",
        "% source comments). Main protocol first, then the other protocols;",
        f"% s.d. over seeds uses ddof = {DDOF}.",
        "",
    ]
    for p in [protocol] + [p for p in PROTOCOLS if p != protocol]:
        suffix = "" if p == protocol else f"_{p}"
        rendered: dict[str, str] = {}
        for kind in (table1_tables, table2_table, ablation_tables):
            rendered.update(kind(plan, paper, names, p, root))
        combined.append(f"% ===== protocol {p}" + (" (main)" if p == protocol else "") + " =====")
        for i, name in enumerate(table_names(plan)):
            text = rendered[name]
            if suffix:
                text = text.replace(f"\\label{{tab:{name}}}", f"\\label{{tab:{name}{suffix}}}")
            path = out_dir / f"{name}{suffix}.tex"
            write_text(path, text)
            written.append(path)
            combined += [f"% ---- {path.name}", text]
            if i % 4 == 3:
                combined.append("\\clearpage")
        combined.append("\\clearpage\n")
    write_text(out_tex, "\n".join(combined))
    written.append(out_tex)
    return written
