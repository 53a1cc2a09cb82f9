"""LaTeX tables (booktabs) of the benchmark, rendered from the summary table.

Inputs: the plan (which runs fill which cell), the summary table (:mod:`.summary`),
``config/paper_values.yaml`` (the paper's numbers and where they come from) and, for Table 1's
marks, ``paired_differences.csv``. A run absent from the summary renders as ``--``, footnoted.
Outputs (``render_tables``): ``<out_dir>/<name>.tex`` per table under the main protocol
(``table1_<dataset>``, ``table2``, ``ablation_<axis>``, and ``generation`` with a generation
study), ``<out_dir>/<name>_<protocol>.tex`` under every other protocol, and ``<out_tex>`` with
all of them, main protocol first.

A cell is the mean over seeds of each run's mean over its test images +- the sample s.d.
(ddof = ``DDOF``); one seed: the mean alone, footnoted. Table 1 / 2 keep the paper's layout
(metric rows, method columns); under the paper's protocol each metric has the rows ours, the
paper's value (verbatim) and Delta = ours - paper; extra rows give bits per image, code usage,
the gain over the mean image and input dependence, and the mean image (floor) is the last
column. Ablations: one row per value (x method, x dataset where several), the floor last. Every
caption states the protocol, N, the seeds and the training scale; every file starts with
comments naming its sources. Needs the LaTeX package booktabs only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..evaluation.protocols import PROTOCOLS
from ..io import write_text
from .latex import Notes, latex_escape, table_env, tabular
from .names import Names
from .results import DDOF, load_plan, paper_values_of
from .summary import Summary
from .table_cells import (
    EXTRAS,
    FLOOR_CAPTION,
    FLOOR_HEADER,
    METRICS,
    caption_parts,
    floor_cell,
    sources_of,
    stat_cell,
)
from .table_compare import compare_tables

__all__ = ["latex_escape", "render_tables", "table_names"]


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
        notes, rows, named, before = Notes(), [], [], {}
        for c in cells:
            stats = summary.cell(plan, c, protocol)
            parts = [names.method(c["method"])] * multi_m + [names.dataset(c["dataset"])] * multi_d
            named.append(
                (" ".join([str(c["label"])] + parts[:multi_m] + [c["dataset"]] * multi_d), stats)
            )
            row = [latex_escape(x) for x in [c["label"], *parts]]
            rows.append(
                row
                + [
                    stat_cell(stats, k, q.decimals, notes, named[-1][0])
                    for k, q in quantities.items()
                ]
            )
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
        caption = [
            f"Ablation of \\emph{{{latex_escape(axis)}}} ({who} on {on}; each row changes only "
            f"this setting from the defaults).",
            head,
            ours,
            scale,
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
    ``summary``: the summary table or its CSV; ``differences``: paired_differences.csv (Table
    1's marks); ``root``: what the generation study's prior folders are relative to."""
    from .differences import read_differences
    from .table_generation import generation_table

    plan, paper = load_plan(plan), paper_values_of(paper_values)
    summary, diffs, names = (
        Summary.of(summary),
        read_differences(differences),
        Names.from_plan(plan),
    )
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
