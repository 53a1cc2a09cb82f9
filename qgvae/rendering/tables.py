"""LaTeX tables (booktabs only) from the plan, the summary table, ``config/paper_values.yaml`` and,
for the marks of Table 1 and the modern tables, ``paired_differences.csv``:
``<out_dir>/<name>.tex`` per table (``table1_<dataset>``, ``table2``, ``ablation_<axis>``,
``modern_<dataset>``, ``modern_rates``, ``generation``), ``<name>_<protocol>.tex`` under the
other protocols, and ``<out_tex>`` with all of them. A cell is the mean over seeds of each run's
test mean +- the sample s.d. (``DDOF``; one seed: the mean, footnoted; a run absent from the
summary: ``--``, footnoted). Table 1 / 2 keep the paper's layout (metric rows, method columns;
under its protocol the rows ours, paper, Delta), with rate, usage, gain over the mean image and
input dependence below and the mean image (floor) as the last column; ablations have one row per
value and the floor last. Captions state protocol, N, seeds and training scale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..evaluation.protocols import PROTOCOLS
from ..io import load_plan, write_text
from .latex import (
    DASH,
    EXTRAS,
    FLOOR_CAPTION,
    FLOOR_HEADER,
    FLOOR_KEY,
    MEASURED,
    METRICS,
    SIG_MARK,
    Notes,
    caption_parts,
    floor_cell,
    fmt_num,
    latex_escape,
    latex_unescape,
    paper_caption,
    paper_value,
    sources_of,
    stat_cell,
    table_env,
    tabular,
)
from .results import DDOF, Names, paper_values_of
from .summary import Cell, Summary

__all__ = ["latex_escape", "render_tables", "table_names"]


def _compare(plan, paper, names: Names, protocol, summary: Summary, table, cells, marks):
    """Table 1 (one dataset's cells) or Table 2 (every dataset a block, budgets as column
    groups): metric rows x method columns, the paper's values and Delta under its protocol.
    Returns (tabular, notes, [(name, cell)], [("Mean image", floor cell)])."""
    two = table == "table2"
    key = (lambda c: (c["label"], c["method"])) if two else (lambda c: (c["method"],))
    multi = two and len({c["label"] for c in cells}) > 1
    keys = list(dict.fromkeys(key(c) for c in cells))
    group = lambda k: latex_escape(k[0]) if multi else None  # the budget, a header level
    columns = [(k, latex_escape(names.method(k[-1])), group(k)) for k in keys]
    notes, blocks, named, printed = Notes(), [], [], {}
    for ds in dict.fromkeys(c["dataset"] for c in cells):
        stats: dict[tuple, Cell | None] = {}
        for c in (c for c in cells if c["dataset"] == ds):
            stats[key(c)] = summary.cell(plan, c, protocol)
            who = f"{names.dataset(ds)} {names.method(c['method'])} {c['label']}"
            named.append((who if two else names.method(c["method"]), stats[key(c)]))
        for k in keys:
            printed[(ds, *k)] = {m: paper_value(paper, table, ds, k[-1], m) for m in METRICS}
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
                num = pd.to_numeric(value, errors="coerce") if value is not None else None
                ok = mean is not None and pd.notna(num)
                diff = f"${fmt_num(mean - num, q.decimals, sign=True)}$" if ok else DASH
                printed_value = DASH if value is None else latex_escape(value)
                paper_row.append("" if k == FLOOR_KEY else printed_value)
                diff_row.append("" if k == FLOOR_KEY else diff)
            rows += [paper_row, diff_row]
        before[len(rows)] = "\\addlinespace"
        for key_, q in (EXTRAS | MEASURED if two else EXTRAS).items():
            rows.append([q.header] + ["ours"] * with_paper + ours(stats, title, key_, q.decimals))
    before = {k: v for k, v in before.items() if v}
    return tabular(header, rows, "l" * len(lead) + "c" * len(columns), before), notes, named, floors


def _marks(diffs: pd.DataFrame, ds: str, protocol: str, table: str = "table1") -> tuple[dict, str]:
    """Marks on the methods of ``table`` whose difference from QG-VAE has a 95 % interval
    excluding 0, and a phrase giving the resample counts."""
    if diffs.empty:
        return {}, ""
    if "table" in diffs:  # files written before the column existed hold Table 1 only
        diffs = diffs[diffs.table.fillna("table1") == table]
    d = diffs[(diffs.dataset == ds) & (diffs.protocol == protocol) & (diffs.method == "qgvae")]
    d = d[(d.baseline != "mean_image") & d.ci_low.notna() & d.ci_high.notna()]
    sig = d[(d.ci_low > 0) | (d.ci_high < 0)]
    marks = {((b,), m): SIG_MARK for b, m in zip(sig.baseline, sig.metric)}
    header = lambda m: METRICS[m].header if m in METRICS else m
    by_n = d.drop_duplicates("metric").groupby("resamples", sort=False)["metric"]
    phrase = [f"{int(n)} resamples for {', '.join(map(header, ms))}" for n, ms in by_n]
    return marks, "; ".join(phrase)


USAGE = "Code usage: mean over token positions of the fraction of the codebook used on the test set"


def _significance(resamples: str, where: str) -> str:
    """The caption sentence of the marks (:func:`_marks`); empty without intervals."""
    return resamples and (
        f"{SIG_MARK}: the 95\\% paired bootstrap interval of QG-VAE minus this method excludes 0 "
        f"(test images resampled alike for both, seeds as an outer level; {resamples}; every "
        f"interval in paired\\_differences.csv{where})."
    )


def compare_tables(plan, paper, names: Names, protocol, summary: Summary, diffs) -> dict[str, str]:
    """``table1_<dataset>`` for every Table-1 dataset and ``table2``."""
    tables, out, common = plan.get("tables") or {}, {}, (plan, paper, names, protocol, summary)
    with_paper = protocol == paper.get("protocol")
    no_paper = latex_escape(paper.get("protocol", "vqwae"))
    no_paper = f"The paper reports no numbers under this protocol (it used \\texttt{{{no_paper}}})."
    for ds in dict.fromkeys(c["dataset"] for c in tables.get("table1") or []):
        cells = [c for c in tables["table1"] if c["dataset"] == ds]
        marks, resamples = _marks(diffs, ds, protocol)
        body, notes, named, floors = _compare(*common, "table1", cells, marks)
        head, ours, scale = caption_parts(plan, paper, protocol, named)
        caption = [f"Reconstruction on {latex_escape(names.dataset(ds))} (test split). {head}"]
        caption += [ours, scale, FLOOR_CAPTION]
        lines = ((paper.get("table1") or {}).get("datasets") or {}).get(ds) or {}
        lines = lines.get("source_lines")
        rest = (
            ", measured with the same protocol; $\\Delta$ = ours $-$ paper (higher is better "
            "for SSIM and PSNR, lower for LPIPS and rFID); -- = no value."
        )
        caption += paper_caption(paper, "table1", lines, rest) if with_paper else [no_paper]
        if any(s is not None and s.grayscale for _, s in named):
            caption.append("Grayscale images are repeated to RGB for LPIPS and rFID.")
        caption += [_significance(resamples, ""), USAGE + "."]
        sources = sources_of(named + floors)
        if with_paper:
            where = f"lines {lines}" if lines else "(no table for this dataset)"
            paper_file = (paper.get("source") or {}).get("file", "paper_values.yaml")
            sources.append(f"paper: {paper_file} {where} via config/paper_values.yaml")
        text, name = " ".join(x for x in caption if x), f"table1_{ds}"
        out[name] = table_env(name, text, body, notes, sources, protocol)
    cells = tables.get("table2") or []
    if cells:
        body, notes, named, _ = _compare(*common, "table2", cells, {})
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


def ablation_tables(
    plan, paper, names: Names, protocol, summary: Summary, only: tuple[str, ...] = ()
) -> dict[str, str]:
    """One row per cell: every ``ablation_<axis>`` table, or the tables named in ``only``
    (``modern_rates``: a method at one rate per row)."""
    out: dict[str, str] = {}
    for name, cells in (plan.get("tables") or {}).items():
        if not cells or (name not in only if only else not name.startswith("ablation_")):
            continue
        axis, quantities = name[len("ablation_") :], METRICS | EXTRAS
        methods = list(dict.fromkeys(c["method"] for c in cells))
        datasets = list(dict.fromkeys(c["dataset"] for c in cells))
        multi_m, multi_d = len(methods) > 1, len(datasets) > 1
        lead = ["Value"] + ["Method"] * multi_m + ["Dataset"] * multi_d
        header = lead + [q.short or q.header for q in quantities.values()]
        notes, rows, named, before = Notes(), [], [], {}
        for c in cells:
            stats = summary.cell(plan, c, protocol)
            method = [names.method(c["method"])] * multi_m
            who = " ".join([str(c["label"]), *method] + [c["dataset"]] * multi_d)
            named.append((who, stats))
            rows.append([latex_escape(x) for x in [c["label"], *method]])
            rows[-1] += [latex_escape(names.dataset(c["dataset"]))] * multi_d
            rows[-1] += [stat_cell(stats, k, q.decimals, notes, who) for k, q in quantities.items()]
        for ds in datasets:
            floor = summary.floor(plan, [s for _, s in named if s.cell["dataset"] == ds], protocol)
            if floor is not None:
                before[len(rows)] = "\\midrule"
                row = [FLOOR_HEADER] + [""] * multi_m + [latex_escape(names.dataset(ds))] * multi_d
                rows.append(row + [floor_cell(floor, k, q.decimals) for k, q in quantities.items()])
        body = tabular(header, rows, "l" * len(lead) + "c" * len(quantities), before)
        on = ", ".join(latex_escape(names.dataset(d)) for d in datasets)
        who = ", ".join(latex_escape(names.method(m)) for m in methods)
        head, ours, scale = caption_parts(plan, paper, protocol, named)
        lead = (
            f"QG-VAE and modern quantisers at several rates ({who} on {on}; Value: the bits per "
            f"image a row is set to code, each model's own rate checked within 1\\% by the plan)."
            if name == "modern_rates"
            else f"Ablation of \\emph{{{latex_escape(axis)}}} ({who} on {on}; each row changes "
            f"only this setting from the defaults)."
        )
        bits = "Bits: bits per image of the code; usage: " + USAGE[12:] + " (\\%)."
        caption = [
            lead,
            head,
            ours,
            scale,
            bits,
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


RATE_SENTENCE = (
    "Every method codes the same number of bits per image (within 1\\%, checked by the plan "
    "from each model's own rate: FSQ the product of its levels, residual VQ depth $\\times$ "
    "$\\log_2 K$ per cell, LFQ $\\log_2 K$, a 1-D tokenizer its latents $\\times \\log_2 K$); "
    "the quantisers of vector-quantize-pytorch run on VQ-VAE's network, the 1-D tokenizer is a "
    "small ViT (docs/baselines.md)."
)


def modern_tables(plan, paper, names: Names, protocol, summary: Summary, diffs) -> dict[str, str]:
    """``modern_<dataset>`` per dataset of the ``modern`` table and ``modern_rates``."""
    tables, out = plan.get("tables") or {}, {}
    no_paper: dict[str, Any] = {}  # no paper rows: the paper compares no modern quantiser
    for ds in dict.fromkeys(c["dataset"] for c in tables.get("modern") or []):
        cells = [c for c in tables["modern"] if c["dataset"] == ds]
        marks, resamples = _marks(diffs, ds, protocol, table="modern")
        body, notes, named, floors = _compare(
            plan, no_paper, names, protocol, summary, "modern", cells, marks
        )
        head, ours, scale = caption_parts(plan, paper, protocol, named)
        bits = pd.Series([s.mean("bits_per_image") for _, s in named if s is not None]).dropna()
        rate = f" at {bits.iloc[0]:.0f} bits per image" if len(bits) else ""
        on = f"{latex_escape(names.dataset(ds))} (test split){rate}. {head}"
        caption = [f"QG-VAE against modern quantisers at equal bits on {on}", ours, scale]
        caption += [RATE_SENTENCE, FLOOR_CAPTION]
        caption += [_significance(resamples, ", table modern")]
        caption += [USAGE + " (residual VQ: over its cell $\\times$ stage slots)."]
        name = f"modern_{ds}"
        text = " ".join(x for x in caption if x)
        out[name] = table_env(name, text, body, notes, sources_of(named + floors), protocol)
    out |= ablation_tables(plan, paper, names, protocol, summary, only=("modern_rates",))
    return out


def table_names(plan: Mapping[str, Any]) -> list[str]:
    """Per-table file stems for one protocol, in rendering order."""
    tables = plan.get("tables") or {}
    names = [f"table1_{d}" for d in dict.fromkeys(c["dataset"] for c in tables.get("table1", []))]
    names += ["table2"] if tables.get("table2") else []
    names += [n for n in tables if n.startswith("ablation_") and tables[n]]
    names += [f"modern_{d}" for d in dict.fromkeys(c["dataset"] for c in tables.get("modern", []))]
    return names + ["modern_rates"] * bool(tables.get("modern_rates"))


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
    ``summary``: the summary table or its CSV; ``differences``: paired_differences.csv (Table
    1's marks); ``root``: what the generation study's prior folders are relative to."""
    from ..evaluation.differences import read_differences
    from .generation import generation_table

    plan, paper, summary = load_plan(plan), paper_values_of(paper_values), Summary.of(summary)
    diffs, names = read_differences(differences), Names.from_plan(plan)
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
        rendered = compare_tables(plan, paper, names, p, summary, diffs)
        rendered |= ablation_tables(plan, paper, names, p, summary)
        rendered |= modern_tables(plan, paper, names, p, summary, diffs)
        combined.append(f"% ===== protocol {p}" + (" (main)" if p == protocol else "") + " =====")
        for i, name in enumerate(table_names(plan)):
            label = f"\\label{{tab:{name}"
            text = rendered[name].replace(label + "}", label + suffix + "}")
            path = Path(out_dir) / f"{name}{suffix}.tex"
            write_text(path, text)
            written.append(path)
            combined += [f"% ---- {path.name}", text] + ["\\clearpage"] * (i % 4 == 3)
        combined.append("\\clearpage\n")
    for name, text in generation_table(plan, paper, root).items():
        path = Path(out_dir) / f"{name}.tex"
        write_text(path, text)
        written.append(path)
        combined += [f"% ---- {path.name} (generation, all protocols)", text, "\\clearpage\n"]
    write_text(out_tex, "\n".join(combined))
    return written + [Path(out_tex)]
