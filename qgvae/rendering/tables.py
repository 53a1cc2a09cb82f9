"""LaTeX tables (booktabs) of the benchmark, read only from files.

Inputs: ``results/plan.json`` (``qgvae.plan.build_plan``), each run's ``metrics.json`` (through
``qgvae.rendering.results``) and ``config/paper_values.yaml`` (the paper's numbers and where
they come from). Nothing is trained or measured here; a run whose ``metrics.json`` is absent
renders as ``--`` with a footnote.

Outputs (``render_tables``)
---------------------------
``<out_dir>/<name>.tex``            one file per table under the main protocol (default
                                    ``vqwae``, the paper's), to ``\\input`` alone:
                                    ``table1_<dataset>``, ``table2``, ``ablation_<axis>``,
                                    and ``generation`` (protocol-free; ``table_generation``)
                                    when the plan has a generation study;
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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..evaluation import PROTOCOLS
from ..io import write_text
from .latex import latex_escape
from .names import Names
from .results import DDOF, load_plan, paper_values_of
from .table_ablation import ablation_tables
from .table_compare import table1_tables, table2_table

__all__ = ["latex_escape", "render_tables", "table_names"]


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
    differences: str | Path | None = None,
) -> list[Path]:
    """Write every table (per-table files, then the combined ``out_tex``); returns the paths.

    ``root`` is the folder that the plan's run paths are relative to (the repository root);
    ``differences`` the paired_differences.csv of ``qgvae differences`` (marks in Table 1).
    """
    from .differences import read_differences

    diff_rows = read_differences(differences)
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
        rendered.update(table1_tables(plan, paper, names, p, root, diff_rows))
        for kind in (table2_table, ablation_tables):
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
    from .table_generation import generation_table  # the plan's generation study, if any

    for name, text in generation_table(plan, paper, root).items():
        path = out_dir / f"{name}.tex"
        write_text(path, text)
        written.append(path)
        combined += [f"% ---- {path.name} (generation, all protocols)", text, "\\clearpage\n"]
    write_text(out_tex, "\n".join(combined))
    written.append(out_tex)
    return written
