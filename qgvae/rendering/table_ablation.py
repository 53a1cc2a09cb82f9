"""Ablation tables: one row per value of the axis (x method, x dataset where several), the
metrics, rate, code usage, gain over the mean-image floor, and the floor as the last row."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .latex import (
    Notes,
    latex_escape,
    n_phrase,
    protocol_phrase,
    scale_phrase,
    seeds_phrase,
    stat_cell,
    table_env,
    table_row,
)
from .names import Names
from .results import load_cell, load_floor
from .table_parts import EXTRAS, FLOOR_CAPTION, FLOOR_HEADER, METRICS, floor_cell, sources_of


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
        floors = {
            ds: load_floor(
                plan, [st for _, st in named if st.cell["dataset"] == ds], protocol, root
            )
            for ds in datasets
        }
        for ds, floor in floors.items():
            if floor is None:
                continue
            row = [FLOOR_HEADER] + ([""] if multi_method else [])
            row += [latex_escape(names.dataset(ds))] if multi_dataset else []
            row += [floor_cell(floor, key, q.decimals) for key, q in (METRICS | EXTRAS).items()]
            lines += ["\\midrule", table_row(row)]
        lines += ["\\bottomrule", "\\end{tabular}"]
        on = ", ".join(latex_escape(names.dataset(d)) for d in datasets)
        who_methods = ", ".join(latex_escape(names.method(m)) for m in methods)
        caption = [
            f"Ablation of \\emph{{{latex_escape(axis)}}} ({who_methods} on {on}; each row "
            f"changes only this setting from the defaults).",
            f"{protocol_phrase(protocol, paper)}.",
            f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.",
            scale_phrase(named),
            "Bits: bits per image of the code; usage: mean over token positions of the "
            "fraction of the codebook used on the test set (\\%).",
            FLOOR_CAPTION.replace("PSNR $-$ mean image", "gain"),
        ]
        sources = sources_of(named) + [
            f"value {c['label']} / {c['method']}: overrides "
            f"{json.dumps(c.get('overrides') or {}, sort_keys=True)}"
            for c in cells
        ]
        out[name] = table_env(
            name, " ".join(caption), "\n".join(lines), notes, sources, protocol, "\\footnotesize"
        )
    return out
