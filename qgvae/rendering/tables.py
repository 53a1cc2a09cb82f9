"""LaTeX tables (booktabs) of the benchmark, rendered from the summary table.

Inputs: the plan (``results/plan.json``: which runs fill which cell), the summary
(``results/summary.csv``, :mod:`qgvae.rendering.summary`), ``config/paper_values.yaml`` (the
paper's numbers and where they come from) and, for Table 1's marks, ``paired_differences.csv``.
Nothing is trained or measured here; a run absent from the summary renders as ``--`` with a
footnote.

Outputs (``render_tables``): ``<out_dir>/<name>.tex`` per table under the main protocol
(``table1_<dataset>``, ``table2``, ``ablation_<axis>``, and ``generation`` when the plan has a
generation study), ``<out_dir>/<name>_<protocol>.tex`` under every other protocol, and
``<out_tex>`` with all of them (contents copied in), main protocol first.

Decisions
- A cell shows the mean over seeds of each run's mean over its test images +- the sample
  standard deviation (ddof = ``DDOF``); one seed: the mean alone (footnoted).
- Table 1 / Table 2 keep the paper's layout (metric rows, method columns). Under the paper's
  protocol each metric has three rows: ours, the paper's value (verbatim) and Delta = ours -
  paper; under other protocols only ours. Extra rows: bits per image, code usage, the gain over
  the mean image and input dependence; the mean image (floor) is the last column.
- Ablations: rows = values (x method, x dataset where several), the floor as the last row.
- Every caption states the protocol, N, the seeds and the training scale; every file starts
  with comments naming its sources. Required LaTeX package: booktabs only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..evaluation.protocols import PROTOCOLS
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
    tabular,
)
from .names import Names
from .results import DDOF, load_plan, paper_values_of
from .summary import Cell, Summary, scale_phrase

__all__ = ["latex_escape", "render_tables", "table_names"]


@dataclass(frozen=True)
class Quantity:
    """A number a table shows: its header (short: in the wide ablation tables), its decimals."""

    header: str
    decimals: int
    short: str = ""


METRICS = {
    "ssim": Quantity("SSIM", 3),
    "psnr": Quantity("PSNR", 2),
    "lpips": Quantity("LPIPS", 3),
    "rfid": Quantity("rFID", 2),
}
EXTRAS = {
    "bits_per_image": Quantity("Bits / image", 0, "Bits"),
    "usage": Quantity("Code usage (\\%)", 1, "Usage (\\%)"),
    "psnr_gain_over_floor_db": Quantity("PSNR $-$ mean image (dB)", 2, "Gain (dB)"),
    "input_dependence_db": Quantity("Input dependence (dB)", 2, "Indep.\\ (dB)"),
}
MEASURED = {  # Table 2: the rate actually used on the test images (DQ-VAE's varies)
    "tokens_per_image_test": Quantity("Tokens / image (test)", 1),
    "bits_per_image_test": Quantity("Bits / image (test)", 0),
}
FLOOR_KEY = ("floor",)
FLOOR_HEADER = "Mean image"
FLOOR_CAPTION = (
    "Mean image: the training split's mean image as the reconstruction of every test image (the "
    "floor a model must beat), scored the same way; PSNR $-$ mean image: a method's PSNR gain "
    "over it; input dependence: PSNR against each image's own original minus PSNR against "
    "another test image's (about 0 when the reconstructions ignore their input)."
)
USAGE_CAPTION = (
    "Code usage: mean over token positions of the fraction of the codebook used on the test set."
)
SIG_MARK = "$^{\\dagger}$"


@dataclass
class Column:
    key: tuple[str, ...]  # (method,) in Table 1, (budget label, method) in Table 2
    header: str  # escaped
    group: str | None = None  # escaped; the budget of Table 2 (a second header level)


def paper_value(paper: Mapping[str, Any], table: str, ds: str, method: str, metric: str):
    """The paper's value as printed (a string), or None."""
    try:
        v = paper[table]["datasets"][ds]["values"][method][metric]
    except (KeyError, TypeError):
        return None
    return None if v is None else str(v)


def floor_cell(stats: Cell | None, key: str, decimals: int) -> str:
    """The floor's value (one run, no seeds): the number alone, or -- ."""
    vals = [] if stats is None else stats.values(key)
    return f"${fmt_num(vals[0], decimals)}$" if vals else DASH


def sources_of(named: Sequence[tuple[str, Cell | None]]) -> list[str]:
    out = []
    for who, stats in named:
        for seed, run in stats.planned if stats is not None else []:
            state = "present" if (seed, run) in stats.present else "MISSING"
            out.append(f"{who}: {run}/metrics.json [{state}]")
    return out


def scale_of(named: Sequence[tuple[str, Cell | None]]) -> str:
    frames = [s.frame for _, s in named if s is not None]
    return latex_escape(scale_phrase(pd.concat(frames) if frames else pd.DataFrame()))


def paper_caption(paper: Mapping[str, Any], table: str, lines: Any, rest: str) -> list[str]:
    """'Paper: Table N of <citation> (text lines ...)<rest>' and the paper file's notes."""
    citation = latex_escape((paper.get("source") or {}).get("citation", "the paper"))
    notes = " ".join(latex_prose(n) for n in (paper.get(table) or {}).get("notes") or [])
    where = f" (text lines {latex_escape(lines)})" if lines else ""
    return [f"Paper: Table {table[len('table') :]} of {citation}{where}{rest}", notes]


def no_paper_caption(paper: Mapping[str, Any]) -> str:
    used = latex_escape(paper.get("protocol", "vqwae"))
    return f"The paper reports no numbers under this protocol (it used \\texttt{{{used}}})."


def _compare_body(
    columns: Sequence[Column],
    blocks: Sequence[tuple[str | None, str, Mapping[tuple[str, ...], Cell | None]]],
    printed: Mapping[tuple[str, ...], Mapping[str, str | None]] | None,
    notes: Notes,
    extras: Mapping[str, Quantity],
    marks: Mapping[tuple[tuple[str, ...], str], str],
) -> str:
    """Metric rows x method columns; ``blocks``: (escaped title, dataset, {column key: cell});
    ``printed``: {(dataset, *column key): {metric: paper value}}, None: no paper rows."""
    lead = ["Metric", ""] if printed is not None else ["Metric"]
    header: list[Any] = lead + [c.header for c in columns]
    if any(c.group is not None for c in columns):
        header = [("", h) for h in lead] + [(c.group or "", c.header) for c in columns]
    rows: list[list[str]] = []
    before: dict[int, str] = {}

    def ours(stats: Mapping[tuple[str, ...], Cell | None], who: str, key: str, dec: int):
        out = []
        for c in columns:
            cell = stats.get(c.key)
            if c.key == FLOOR_KEY:
                out.append(floor_cell(cell, key, dec))
                continue
            name = " / ".join(latex_unescape(p) for p in (who, c.group, c.header) if p)
            text = stat_cell(cell, key, dec, notes, name) if cell else DASH
            out.append(text + marks.get((c.key, key), ""))
        return out

    for title, ds, stats in blocks:
        first = ["\\midrule"] if rows else []
        if title:
            first.append(f"\\multicolumn{{{len(header)}}}{{l}}{{\\emph{{{title}}}}} \\\\")
        before[len(rows)] = "\n".join(first)
        for i, (metric, q) in enumerate(METRICS.items()):
            if i:
                before[len(rows)] = "\\addlinespace"
            rows.append([q.header, *(["ours"] if printed is not None else [])])
            rows[-1] += ours(stats, title or "", metric, q.decimals)
            if printed is None:
                continue
            paper_row, diff_row = ["", "paper"], ["", "$\\Delta$"]
            for c in columns:
                value = (printed.get((ds, *c.key)) or {}).get(metric)
                mean = stats[c.key].mean(metric) if stats.get(c.key) is not None else None
                if c.key == FLOOR_KEY:  # not in the paper: no value, no difference
                    paper_row.append("")
                    diff_row.append("")
                    continue
                paper_row.append(latex_escape(value) if value is not None else DASH)
                num = pd.to_numeric(value, errors="coerce") if value is not None else None
                ok = mean is not None and num is not None and pd.notna(num)
                diff_row.append(f"${fmt_num(mean - num, q.decimals, sign=True)}$" if ok else DASH)
            rows += [paper_row, diff_row]
        before[len(rows)] = "\\addlinespace"
        for key, q in extras.items():
            lead_cells = [q.header, *(["ours"] if printed is not None else [])]
            rows.append(lead_cells + ours(stats, title or "", key, q.decimals))
    before = {k: v for k, v in before.items() if v}
    return tabular(header, rows, "l" * len(lead) + "c" * len(columns), before)


def _marks(diffs: pd.DataFrame, ds: str, protocol: str) -> tuple[dict, str]:
    """Marks on the Table-1 baselines whose difference from QG-VAE has a 95 % interval
    excluding 0, and a phrase giving the resample counts."""
    if diffs.empty:
        return {}, ""
    d = diffs[(diffs.dataset == ds) & (diffs.protocol == protocol) & (diffs.method == "qgvae")]
    d = d[(d.baseline != "mean_image") & d.ci_low.notna() & d.ci_high.notna()]
    sig = d[(d.ci_low > 0) | (d.ci_high < 0)]
    marks = {((b,), m): SIG_MARK for b, m in zip(sig.baseline, sig.metric)}
    by_n = d.drop_duplicates("metric").groupby("resamples", sort=False)["metric"]
    header = lambda m: METRICS[m].header if m in METRICS else m
    phrase = "; ".join(f"{int(n)} resamples for {', '.join(map(header, ms))}" for n, ms in by_n)
    return marks, phrase


def table1_tables(plan, paper, names: Names, protocol, summary: Summary, diffs) -> dict[str, str]:
    cells = (plan.get("tables") or {}).get("table1") or []
    compare = protocol == paper.get("protocol")
    out: dict[str, str] = {}
    for ds in dict.fromkeys(c["dataset"] for c in cells):
        notes, columns, stats, named, printed = Notes(), [], {}, [], {}
        for c in (c for c in cells if c["dataset"] == ds):
            method = names.method(c["method"])
            columns.append(Column((c["method"],), latex_escape(method)))
            stats[(c["method"],)] = summary.cell(plan, c, protocol)
            named.append((method, stats[(c["method"],)]))
            printed[(ds, c["method"])] = {
                m: paper_value(paper, "table1", ds, c["method"], m) for m in METRICS
            }
        floor = summary.floor(plan, list(stats.values()), protocol)
        if floor is not None:
            columns.append(Column(FLOOR_KEY, FLOOR_HEADER))
            stats[FLOOR_KEY] = floor
        marks, resamples = _marks(diffs, ds, protocol)
        block = [(None, ds, stats)]
        body = _compare_body(columns, block, printed if compare else None, notes, EXTRAS, marks)
        caption = [
            f"Reconstruction on {latex_escape(names.dataset(ds))} (test split). "
            f"{protocol_phrase(protocol, paper)}.",
            f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.",
            scale_of(named),
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
                ", measured with the same protocol; $\\Delta$ = ours $-$ paper (higher is better "
                "for SSIM and PSNR, lower for LPIPS and rFID); -- = no value.",
            )
        else:
            caption.append(no_paper_caption(paper))
        if any(s.grayscale for _, s in named):
            caption.append("Grayscale images are repeated to RGB for LPIPS and rFID.")
        if resamples:
            caption.append(
                f"{SIG_MARK}: the 95\\% paired bootstrap interval of QG-VAE minus this method "
                f"excludes 0 (test images resampled alike for both, seeds as an outer level; "
                f"{resamples}; every interval in paired\\_differences.csv)."
            )
        caption.append(USAGE_CAPTION)
        sources = sources_of(named + ([(FLOOR_HEADER, floor)] if floor else []))
        if compare:
            where = f"lines {lines}" if lines else "(no table for this dataset)"
            sources.append(
                f"paper: {(paper.get('source') or {}).get('file', 'paper_values.yaml')} "
                f"{where} via config/paper_values.yaml"
            )
        name = f"table1_{ds}"
        out[name] = table_env(
            name, " ".join(x for x in caption if x), body, notes, sources, protocol
        )
    return out


def table2_table(plan, paper, names: Names, protocol, summary: Summary) -> dict[str, str]:
    cells = (plan.get("tables") or {}).get("table2") or []
    if not cells:
        return {}
    compare = protocol == paper.get("protocol")
    labels = list(dict.fromkeys(c["label"] for c in cells))
    multi = len(labels) > 1
    keys = list(dict.fromkeys((c["label"], c["method"]) for c in cells))
    columns = [
        Column((lab, m), latex_escape(names.method(m)), latex_escape(lab) if multi else None)
        for lab, m in keys
    ]
    notes, blocks, named, printed = Notes(), [], [], {}
    for ds in dict.fromkeys(c["dataset"] for c in cells):
        stats: dict[tuple[str, ...], Cell | None] = {}
        for c in (c for c in cells if c["dataset"] == ds):
            stats[(c["label"], c["method"])] = summary.cell(plan, c, protocol)
            named.append(
                (
                    f"{names.dataset(ds)} {names.method(c['method'])} {c['label']}",
                    stats[(c["label"], c["method"])],
                )
            )
        for lab, m in keys:
            printed[(ds, lab, m)] = {k: paper_value(paper, "table2", ds, m, k) for k in METRICS}
        stats[FLOOR_KEY] = summary.floor(plan, list(stats.values()), protocol)
        blocks.append((latex_escape(names.dataset(ds)), ds, stats))
    if any(b[2][FLOOR_KEY] is not None for b in blocks):
        columns.append(Column(FLOOR_KEY, FLOOR_HEADER, "" if multi else None))
    extras = EXTRAS | MEASURED
    body = _compare_body(columns, blocks, printed if compare else None, notes, extras, {})
    caption = [f"Comparison with DQ-VAE (Table 2). {protocol_phrase(protocol, paper)}."]
    if not multi:
        caption.append(f"Token budget: {latex_escape(labels[0])}.")
    caption += [f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.", scale_of(named)]
    caption += [
        FLOOR_CAPTION,
        "Bits / image is the nominal rate of the configuration; tokens and bits per image "
        "(test) are measured on the test images (DQ-VAE codes a region with 1 or 4 tokens and "
        "pays one routing bit per region).",
    ]
    if compare:
        lines = (paper.get("table2") or {}).get("source_lines")
        rest = "; $\\Delta$ = ours $-$ paper; -- = no value."
        caption += paper_caption(paper, "table2", lines, rest)
    else:
        caption.append(no_paper_caption(paper))
    text = " ".join(x for x in caption if x)
    return {"table2": table_env("table2", text, body, notes, sources_of(named), protocol)}


def ablation_tables(plan, paper, names: Names, protocol, summary: Summary) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, cells in (plan.get("tables") or {}).items():
        if not name.startswith("ablation_") or not cells:
            continue
        axis, quantities = name[len("ablation_") :], METRICS | EXTRAS
        methods = list(dict.fromkeys(c["method"] for c in cells))
        datasets = list(dict.fromkeys(c["dataset"] for c in cells))
        multi_m, multi_d = len(methods) > 1, len(datasets) > 1
        lead = ["Value"] + ["Method"] * multi_m + ["Dataset"] * multi_d
        header = lead + [q.short or q.header for q in quantities.values()]
        notes, rows, named = Notes(), [], []
        for c in cells:
            stats = summary.cell(plan, c, protocol)
            who = " ".join(
                [str(c["label"])] + [names.method(c["method"])] * multi_m + [c["dataset"]] * multi_d
            )
            named.append((who, stats))
            row = [latex_escape(c["label"])] + [latex_escape(names.method(c["method"]))] * multi_m
            row += [latex_escape(names.dataset(c["dataset"]))] * multi_d
            row += [stat_cell(stats, k, q.decimals, notes, who) for k, q in quantities.items()]
            rows.append(row)
        before = {}
        for ds in datasets:
            floor = summary.floor(plan, [s for _, s in named if s.cell["dataset"] == ds], protocol)
            if floor is not None:
                before[len(rows)] = "\\midrule"
                row = [FLOOR_HEADER] + [""] * multi_m
                row += [latex_escape(names.dataset(ds))] * multi_d
                rows.append(row + [floor_cell(floor, k, q.decimals) for k, q in quantities.items()])
        body = tabular(header, rows, "l" * len(lead) + "c" * len(quantities), before)
        on = ", ".join(latex_escape(names.dataset(d)) for d in datasets)
        who_methods = ", ".join(latex_escape(names.method(m)) for m in methods)
        caption = [
            f"Ablation of \\emph{{{latex_escape(axis)}}} ({who_methods} on {on}; each row "
            f"changes only this setting from the defaults).",
            f"{protocol_phrase(protocol, paper)}.",
            f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.",
            scale_of(named),
            "Bits: bits per image of the code; usage: mean over token positions of the "
            "fraction of the codebook used on the test set (\\%).",
            FLOOR_CAPTION.replace("PSNR $-$ mean image", "gain"),
        ]
        sources = sources_of(named) + [
            f"value {c['label']} / {c['method']}: overrides "
            f"{json.dumps(c.get('overrides') or {}, sort_keys=True)}"
            for c in cells
        ]
        text = " ".join(caption)
        out[name] = table_env(name, text, body, notes, sources, protocol, "\\footnotesize")
    return out


def table_names(plan: Mapping[str, Any]) -> list[str]:
    """Per-table file stems for one protocol, in rendering order."""
    tables = plan.get("tables") or {}
    names = [f"table1_{d}" for d in dict.fromkeys(c["dataset"] for c in tables.get("table1", []))]
    names += ["table2"] if tables.get("table2") else []
    return names + [n for n in tables if n.startswith("ablation_") and tables[n]]


def render_tables(
    plan: Mapping[str, Any] | str | Path,
    paper_values: Mapping[str, Any] | str | Path | None,
    out_tex: str | Path,
    out_dir: str | Path,
    *,
    summary: Summary | pd.DataFrame | str | Path,
    protocol: str = "vqwae",
    root: str | Path = ".",
    differences: str | Path | None = None,
) -> list[Path]:
    """Write every table (per-table files, then the combined ``out_tex``); returns the paths.

    ``summary``: the summary table (or its CSV); ``differences``: the paired_differences.csv of
    ``qgvae differences`` (marks in Table 1); ``root``: the folder the generation study's prior
    folders are relative to.
    """
    from .differences import read_differences
    from .table_generation import generation_table

    plan, paper = load_plan(plan), paper_values_of(paper_values)
    summary, diffs = Summary.of(summary), read_differences(differences)
    names = Names.from_plan(plan)
    out_dir, out_tex = Path(out_dir), Path(out_tex)
    written: list[Path] = []
    combined = [
        "% qgvae-bench: every table of the benchmark, written by qgvae.rendering.tables.",
        "% Needs: \\usepackage{booktabs} (nothing else). Numbers come only from the summary",
        "% table (summary.csv, collected from the run folders' metrics.json and run.json) and",
        "% config/paper_values.yaml (see each table's source comments). Main protocol first,",
        f"% then the other protocols; s.d. over seeds uses ddof = {DDOF}.",
        "",
    ]
    for p in [protocol] + [p for p in PROTOCOLS if p != protocol]:
        suffix = "" if p == protocol else f"_{p}"
        rendered = table1_tables(plan, paper, names, p, summary, diffs)
        rendered |= table2_table(plan, paper, names, p, summary)
        rendered |= ablation_tables(plan, paper, names, p, summary)
        combined.append(f"% ===== protocol {p}" + (" (main)" if p == protocol else "") + " =====")
        for i, name in enumerate(table_names(plan)):
            text = rendered[name].replace(
                f"\\label{{tab:{name}}}", f"\\label{{tab:{name}{suffix}}}"
            )
            path = out_dir / f"{name}{suffix}.tex"
            write_text(path, text)
            written.append(path)
            combined += [f"% ---- {path.name}", text] + (["\\clearpage"] if i % 4 == 3 else [])
        combined.append("\\clearpage\n")
    for name, text in generation_table(plan, paper, root).items():
        path = out_dir / f"{name}.tex"
        write_text(path, text)
        written.append(path)
        combined += [f"% ---- {path.name} (generation, all protocols)", text, "\\clearpage\n"]
    write_text(out_tex, "\n".join(combined))
    return written + [out_tex]
