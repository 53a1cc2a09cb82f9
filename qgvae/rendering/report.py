"""The benchmark report: ``reports/report.tex`` (always) and ``reports/report.pdf`` (with TeX).

``qgvae report --plan results/plan.json --summary results/summary.csv --tables
reports/tables.tex --figures reports/figures --out reports/report.pdf [--methods-notes FILE]``

report.tex is a complete LaTeX document: a methods section (protocols, test-set sizes, seeds,
statistics, missing runs, every deviation from the paper -- ``deviations`` in
config/paper_values.yaml and the runs' protocol notes --, versions, weights, commits and
devices, all from the summary table, and the optional methods-notes file: ``.tex`` included as
LaTeX, anything else as escaped text); the compute per stage (Snakemake's benchmark files);
every table (tables.tex copied in); every figure of ``figure_stems(plan)`` (and any other PDF
in the figures folder), captioned from its ``<stem>.json``. latexmk (or pdflatex twice) builds
it into ``--out``; without TeX the command says so and exits 0. Packages: booktabs, graphicx,
geometry (Debian: texlive-latex-base + texlive-latex-recommended).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..evaluation.protocols import PROTOCOLS
from ..io import read_json, write_text
from .latex import latex_escape, latex_path, latex_prose, tabular
from .results import DDOF, Names
from .summary import PIXEL, Summary
from .timing import timing

NO_TEX = "TeX not found: {tex} written, PDF not built; install texlive-latex-recommended latexmk"
RUN_FACTS = (("eval_versions", "Versions", " "), ("metric_weights", "Metric weights", ": "))
PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{booktabs}
\usepackage{graphicx}
"""


def _values(series) -> str:
    vals = sorted({int(v) if str(v).isdigit() else str(v) for v in series.dropna()}, key=str)
    return ", ".join(map(str, vals)) or "unknown"


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def methods_section(
    plan: Mapping[str, Any], pv: Mapping[str, Any], summary: Summary, notes_file: Path | None
) -> str:
    names, planned = Names.from_plan(plan), plan.get("runs") or {}
    rows = summary.frame[summary.frame["run"].isin(list(planned))]
    runs = summary.runs(list(planned))
    missing = [r for r in planned if r not in runs.index]
    seeds, tables = [int(s) for s in plan.get("seeds", [])], plan.get("tables") or {}
    out = [
        "\\section{Methods}",
        f"The run plan defines {len(planned)} training runs filling "
        f"{sum(len(c) for c in tables.values())} table cells in {len(tables)} tables "
        f"({latex_escape(', '.join(tables))}). Every cell is run with {len(seeds)} seed"
        f"{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); tables and figures "
        f"show the mean over seeds of each run's mean over its test images, $\\pm$ the sample "
        f"standard deviation over seeds (ddof = {DDOF}). {len(runs)} of {len(planned)} runs "
        "have a \\texttt{metrics.json}; every number below and in the tables and figures is "
        "read from the summary table collected from those files (nothing is recomputed).",
    ]
    if missing:
        shown = "; ".join(f"{latex_path(p)} (no metrics.json)" for p in missing[:40])
        more = f"; and {len(missing) - 40} more." if len(missing) > 40 else "."
        out.append(f"\\paragraph{{Missing runs}} (shown as -- in the tables): {shown}{more}")
    main = pv.get("protocol", "vqwae")
    out.append("\\subsection*{Protocols}\n\\begin{itemize}")
    for p in PROTOCOLS:
        desc = latex_prose((pv.get("protocols") or {}).get(p, ""))
        main_ = " (the paper's; main tables)" * (p == main)
        out.append(f"\\item \\texttt{{{latex_escape(p)}}}{main_}: {desc}")
    out.append("\\end{itemize}")
    if not rows.empty:
        sizes = []
        for (ds, proto), g in rows.groupby(["dataset", "protocol"]):
            pixel, fid = g[g.metric.isin(PIXEL)], g[g.metric == "rfid"]
            cells = [latex_escape(names.dataset(ds)), f"\\texttt{{{latex_escape(proto)}}}"]
            sizes.append(cells + [_values(x) for x in (pixel.n_images, fid.n_images, g.resolution)])
        header = ["Dataset", "Protocol", "$N$ images", "$N$ rFID", "Resolution"]
        out.append("\\subsection*{Test-set sizes}\n" + tabular(header, sizes, "llrrr"))
        gray = sorted(set(runs[runs.grayscale_to_rgb.fillna(False).astype(bool)].dataset))
        if gray:
            who = latex_escape(", ".join(names.dataset(d) for d in gray))
            rest = "are repeated to three channels for LPIPS and rFID."
            out.append(f"\\par\\smallskip Grayscale datasets ({who}) {rest}")
    src, cmap = pv.get("source") or {}, (pv.get("table1") or {}).get("column_map") or {}
    columns = ", ".join(f"{k} → {names.method(v)} ({v})" for k, v in cmap.items())
    out.append(
        "\\subsection*{Paper values}\n"
        f"The paper's numbers come from {latex_escape(src.get('citation', 'the paper'))}"
        f" (text: \\texttt{{{latex_path(src.get('file', '?'))}}}), typed into "
        "\\texttt{config/paper\\_values.yaml} with their source lines; they were "
        f"measured under the \\texttt{{{latex_escape(main)}}} protocol. Paper columns map "
        f"to our methods as: {latex_escape(columns)}."
    )
    out.append("\\subsection*{Deviations from the paper}\n\\begin{itemize}")
    devs = pv.get("deviations") or []
    out += [f"\\item {latex_prose(d)}" for d in devs]
    for note, g in runs.dropna(subset=["protocol_notes"]).groupby("protocol_notes", sort=False):
        whos = sorted(set(g.dataset + "/" + g.method))
        shown = latex_escape(", ".join(whos[:12]) + (", ..." if len(whos) > 12 else ""))
        out.append(f"\\item Protocol note of {_runs(len(g))} ({shown}): {latex_prose(note)}")
    if not devs and runs.protocol_notes.dropna().empty:
        none = "no \\texttt{deviations} in the paper values file and no protocol notes in the runs"
        out.append(f"\\item None recorded ({none}).")
    out.append("\\end{itemize}")
    out.append("\\subsection*{Software, weights and hardware of the runs}\n\\begin{itemize}")
    items = []
    for column, what, sep in RUN_FACTS:
        for blob, n in runs[column].dropna().value_counts(sort=False).items():
            d = json.loads(blob)
            text = ", ".join(f"{k}{sep}{d[k]}" for k in sorted(d))
            items.append(f"\\item {what} ({_runs(n)}): {latex_escape(text)}")
    for c, n in sorted(runs.commit.dropna().value_counts().items()):
        items.append(f"\\item Code commit \\texttt{{{latex_escape(c)}}}: {_runs(n)}")
    for d, n in sorted(runs.device.fillna("unknown").value_counts().items()):
        items.append(f"\\item Hardware {latex_escape(d)}: {_runs(n)}")
    out += (items or ["\\item No run metadata available yet."]) + ["\\end{itemize}"]
    if notes_file is not None:
        out.append("\\subsection*{Notes}")
        if not notes_file.is_file():
            out.append(f"Methods-notes file {latex_path(notes_file)} not found.")
        elif notes_file.suffix == ".tex":
            out.append(f"% ---- {notes_file}\n" + notes_file.read_text())
        else:
            paras = [p for p in notes_file.read_text().split("\n\n") if p.strip()]
            out.append("\n\n".join(latex_escape(" ".join(p.split())) for p in paras))
    return "\n\n".join(out) + "\n"


def compute_section(results: Path) -> str:
    """Where the compute went, by stage, from Snakemake's benchmark files (qgvae timing)."""
    stages = timing(results)
    rows = [
        (latex_escape(s.Index), str(s.jobs), f"{s.wall_s:.0f}", f"{s.cpu_s:.0f}")
        for s in stages.itertuples()
    ]
    text = (
        "\\subsection*{Compute}\nWall and CPU seconds of the workflow's jobs by stage, summed "
        "over jobs (jobs run side by side; Snakemake's benchmark files; the jobs that have run "
        "when this report was written).\n\\par\\smallskip\n"
    )
    return text + tabular(["Stage", "Jobs", "Wall (s)", "CPU (s)"], rows, "lrrr") if rows else ""


def figures_section(plan: Mapping[str, Any], fig_dir: Path, tex_dir: Path) -> str:
    from .figures import figure_stems

    stems = figure_stems(plan)
    pdfs = sorted(p.stem for p in fig_dir.glob("*.pdf")) if fig_dir.is_dir() else []
    out, missing, placed = ["\\clearpage", "\\section{Figures}"], [], 0
    for stem in stems + [p for p in pdfs if p not in stems]:
        pdf = fig_dir / f"{stem}.pdf"
        if not pdf.is_file():
            missing.append(stem)
            continue
        caption = (read_json(fig_dir / f"{stem}.json")[0] or {}).get("caption") or stem
        rel = Path(os.path.relpath(pdf.resolve(), tex_dir.resolve())).as_posix()
        size = "width=\\linewidth,height=0.42\\textheight,keepaspectratio"
        out.append(
            f"\\begin{{figure}}[!htbp]\n\\centering\n\\includegraphics[{size}]{{{rel}}}\n"
            f"\\caption{{{latex_escape(' '.join(str(caption).split()))}}}\n"
            f"\\label{{fig:{stem}}}\n\\end{{figure}}"
        )
        placed += 1
        out += ["\\clearpage"] * (placed % 2 == 0)
    if missing:
        what = latex_escape(", ".join(missing))
        out.insert(2, f"Figures not produced (run \\texttt{{qgvae figures}}): {what}.")
    return "\n\n".join(out) + "\n"


def tables_section(tables_tex: Path) -> str:
    if tables_tex.is_file():
        body = f"% ---- contents of {tables_tex}\n" + tables_tex.read_text()
    else:
        body = f"Tables file {latex_path(tables_tex)} not found: run \\texttt{{qgvae tables}}."
    return "\n\n".join(["\\clearpage", "\\section{Tables}", body]) + "\n"


def write_report_tex(
    plan: Mapping[str, Any],
    tables_tex: Path,
    fig_dir: Path,
    out_tex: Path,
    pv: Mapping[str, Any],
    *,
    summary: Summary | Any,
    root: Path = Path("."),
    notes_file: Path | None = None,
) -> Path:
    """``summary``: the summary table (or its CSV); ``root``: what the plan's ``results`` folder
    (its benchmark files) is relative to."""
    body = [
        PREAMBLE,
        "% Written by qgvae.rendering.report from the plan, the summary table, tables.tex and",
        "% the figures folder; re-run `qgvae report` to refresh.",
        "\\title{qgvae-bench: reproduction of the Quantised Global Autoencoder}",
        "\\author{}\n\\date{}",
        "\\begin{document}",
        "\\maketitle",
        methods_section(plan, pv, Summary.of(summary), notes_file),
        compute_section(Path(root) / str(plan.get("results", "results"))),
        tables_section(tables_tex),
        figures_section(plan, fig_dir, out_tex.parent),
        "\\end{document}",
        "",
    ]
    write_text(out_tex, "\n".join(body))
    return out_tex


def find_tex() -> tuple[str, str] | None:
    """('latexmk', path) or ('pdflatex', path) or None."""
    found = [(t, shutil.which(t)) for t in ("latexmk", "pdflatex") if shutil.which("pdflatex")]
    return next(((t, p) for t, p in found if p), None)


def build_pdf(tex: Path, out_pdf: Path, timeout: int = 600) -> tuple[bool, str]:
    """Compile ``tex`` (cwd = its folder) into ``out_pdf``; (ok, log tail)."""
    tool, path = find_tex()
    tex = tex.resolve()
    build = Path(tempfile.mkdtemp(prefix=".report-build-", dir=tex.parent))
    flags = ["-interaction=nonstopmode", "-halt-on-error"]
    if tool == "latexmk":
        cmds = [[path, "-pdf", *flags, f"-outdir={build}", tex.name]]
    else:
        cmds = [[path, *flags, f"-output-directory={build}", tex.name]] * 2  # twice: references
    try:
        for cmd in cmds:
            run = dict(cwd=tex.parent, capture_output=True, text=True, timeout=timeout)
            proc = subprocess.run(cmd, **run)
            if proc.returncode != 0:
                log = build / f"{tex.stem}.log"
                text = proc.stdout + proc.stderr
                return False, (log.read_text(errors="replace") if log.is_file() else text)[-4000:]
        pdf = build / f"{tex.stem}.pdf"
        if not pdf.is_file():
            return False, "no PDF produced"
        out_pdf.parent.mkdir(parents=True, exist_ok=True)
        os.replace(pdf, out_pdf)
        return True, ""
    except subprocess.TimeoutExpired:
        return False, f"TeX timed out after {timeout} s"
    finally:
        shutil.rmtree(build, ignore_errors=True)
