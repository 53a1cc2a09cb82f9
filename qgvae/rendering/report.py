"""The benchmark report: ``reports/report.tex`` (always) and ``reports/report.pdf`` (with TeX).

``qgvae report --plan results/plan.json --tables reports/tables.tex --figures reports/figures
--out reports/report.pdf [--methods-notes FILE] [--paper config/paper_values.yaml]``

report.tex is a complete LaTeX document:
- a methods section stating the protocols, N (test images and rFID images, per dataset, read
  from metrics.json), the seeds, the statistics (mean +- s.d., ddof=1), which runs are missing,
  every deviation from the paper (``deviations`` in config/paper_values.yaml plus each run's
  ``protocol_notes``), software versions, weights, commits and hardware of the runs, and the
  optional methods-notes file (``.tex``: included as LaTeX; anything else: escaped text);
- every table (the contents of tables.tex, copied in);
- every figure of ``qgvae.rendering.figures.figure_stems(plan)`` (plus any other PDF in the figures
  folder), captioned from the figure's ``<stem>.json``.

It is then built with latexmk (or pdflatex twice) into ``--out``. Without TeX the command
prints "TeX not found: ... PDF not built; install texlive-latex-extra latexmk" and exits 0
(the workflow declares report.tex as the output and the PDF as optional). Packages used:
booktabs, graphicx, geometry (Debian: texlive-latex-base + texlive-latex-recommended).
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
from ..io import write_text
from .latex import latex_escape, latex_path, latex_prose
from .names import Names
from .results import DDOF, read_json, summarize_runs

NO_TEX = "TeX not found: {tex} written, PDF not built; install texlive-latex-recommended latexmk"
PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{booktabs}
\usepackage{graphicx}
"""


def _fmt_set(xs: set[int]) -> str:
    return ", ".join(str(x) for x in sorted(xs)) if xs else "unknown"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def methods_section(
    plan: Mapping[str, Any], pv: Mapping[str, Any], root: Path, notes_file: Path | None
) -> str:
    info = summarize_runs(plan, root)
    names = Names.from_plan(plan)
    runs = plan.get("runs") or {}
    seeds = [int(s) for s in plan.get("seeds", [])]
    out = ["\\section{Methods}"]
    tables = plan.get("tables") or {}
    out.append(
        f"The run plan defines {len(runs)} training runs filling "
        f"{sum(len(c) for c in tables.values())} table cells in {len(tables)} tables "
        f"({latex_escape(', '.join(tables))}). Every cell is run with {len(seeds)} seed"
        f"{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); tables and figures "
        f"show the mean over seeds of each run's mean over its test images, $\\pm$ the sample "
        f"standard deviation over seeds (ddof = {DDOF}). {len(info.present)} of {len(runs)} "
        "runs have a \\texttt{metrics.json}; every number below and in the tables and "
        "figures is read from those files (nothing is recomputed)."
    )
    if info.missing:
        shown = info.missing[:40]
        out.append(
            "\\paragraph{Missing runs} (shown as -- in the tables): "
            + "; ".join(f"{latex_path(p)} ({latex_escape(w)})" for p, w in shown)
            + (f"; and {len(info.missing) - 40} more." if len(info.missing) > 40 else ".")
        )
    out.append("\\subsection*{Protocols}\n\\begin{itemize}")
    main = pv.get("protocol", "vqwae")
    for p in PROTOCOLS:
        desc = (pv.get("protocols") or {}).get(p, "")
        out.append(
            f"\\item \\texttt{{{latex_escape(p)}}}"
            + (" (the paper's; main tables)" if p == main else "")
            + f": {latex_prose(desc)}"
        )
    out.append("\\end{itemize}")
    if info.sizes:
        out.append(
            "\\subsection*{Test-set sizes}\n\\begin{tabular}{llrrr}\n\\toprule\n"
            "Dataset & Protocol & $N$ images & $N$ rFID & Resolution \\\\\n\\midrule"
        )
        for (ds, proto), sizes in sorted(info.sizes.items()):
            out.append(
                f"{latex_escape(names.dataset(ds))} & \\texttt{{{latex_escape(proto)}}}"
                f" & {_fmt_set(sizes.images)} & {_fmt_set(sizes.fid_images)} & "
                f"{_fmt_set(sizes.resolution)} \\\\"
            )
        out.append("\\bottomrule\n\\end{tabular}")
        if info.grayscale:
            out.append(
                "\\par\\smallskip Grayscale datasets ("
                + latex_escape(", ".join(names.dataset(d) for d in sorted(info.grayscale)))
                + ") are repeated to three channels for LPIPS and rFID."
            )
    src = pv.get("source") or {}
    cmap = (pv.get("table1") or {}).get("column_map") or {}
    out.append(
        "\\subsection*{Paper values}\n"
        f"The paper's numbers come from {latex_escape(src.get('citation', 'the paper'))}"
        f" (text: \\texttt{{{latex_path(src.get('file', '?'))}}}), typed into "
        "\\texttt{config/paper\\_values.yaml} with their source lines; they were "
        f"measured under the \\texttt{{{latex_escape(main)}}} protocol. Paper columns map "
        "to our methods as: "
        + latex_escape(", ".join(f"{k} → {names.method(v)} ({v})" for k, v in cmap.items()))
        + "."
    )
    out.append("\\subsection*{Deviations from the paper}\n\\begin{itemize}")
    devs = pv.get("deviations") or []
    for d in devs:
        out.append(f"\\item {latex_prose(d)}")
    for note, who in info.notes.items():
        whos = sorted(set(who))
        out.append(
            f"\\item Protocol note of {len(who)} run{'s' if len(who) != 1 else ''} ("
            + latex_escape(", ".join(whos[:12]))
            + (", ..." if len(whos) > 12 else "")
            + f"): {latex_prose(note)}"
        )
    if not devs and not info.notes:
        out.append(
            "\\item None recorded (no \\texttt{deviations} in the paper values file and "
            "no protocol notes in the runs)."
        )
    out.append("\\end{itemize}")
    out.append("\\subsection*{Software, weights and hardware of the runs}\n\\begin{itemize}")
    for v, paths in info.versions.items():
        d = json.loads(v)
        out.append(
            f"\\item Versions ({_plural(len(paths), 'run')}): "
            + latex_escape(", ".join(f"{k} {d[k]}" for k in sorted(d)))
        )
    for v, paths in info.weights.items():
        d = json.loads(v)
        out.append(
            f"\\item Metric weights ({_plural(len(paths), 'run')}): "
            + latex_escape(", ".join(f"{k}: {d[k]}" for k in sorted(d)))
        )
    for c, n in sorted(info.commits.items()):
        out.append(f"\\item Code commit \\texttt{{{latex_escape(c)}}}: {_plural(n, 'run')}")
    for g, n in sorted(info.gpus.items()):
        out.append(f"\\item Hardware {latex_escape(g)}: {_plural(n, 'run')}")
    if len(out[-1]) and out[-1].endswith("\\begin{itemize}"):
        out.append("\\item No run metadata available yet.")
    out.append("\\end{itemize}")
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


def compute_section(plan: Mapping[str, Any], root: Path) -> str:
    """Where the compute went, by stage, from Snakemake's benchmark files (qgvae timing)."""
    from .timing import timing

    stages = timing(root / str(plan.get("results", "results")))
    if not stages:
        return ""
    rows = [
        f"{latex_escape(name)} & {s.jobs} & {s.wall_s:.0f} & {s.cpu_s:.0f} \\\\"
        for name, s in stages.items()
    ]
    return "\n".join(
        [
            "\\subsection*{Compute}",
            "Wall and CPU seconds of the workflow's jobs by stage, summed over jobs (jobs run "
            "side by side; Snakemake's benchmark files; the jobs that have run when this report "
            "was written).",
            "\\par\\smallskip\\begin{tabular}{lrrr}\\toprule",
            "Stage & Jobs & Wall (s) & CPU (s) \\\\\\midrule",
            *rows,
            "\\bottomrule\\end{tabular}",
        ]
    )


def figures_section(plan: Mapping[str, Any], fig_dir: Path, tex_dir: Path) -> str:
    from .figures import figure_stems

    stems = figure_stems(plan)
    extra = (
        sorted(p.stem for p in fig_dir.glob("*.pdf") if p.stem not in stems)
        if fig_dir.is_dir()
        else []
    )
    out = ["\\clearpage", "\\section{Figures}"]
    missing = []
    placed = 0
    for stem in stems + extra:
        pdf = fig_dir / f"{stem}.pdf"
        if not pdf.is_file():
            missing.append(stem)
            continue
        meta, _ = read_json(fig_dir / f"{stem}.json")
        caption = (meta or {}).get("caption") or stem
        rel = Path(os.path.relpath(pdf.resolve(), tex_dir.resolve())).as_posix()
        out.append(
            "\n".join(
                [
                    "\\begin{figure}[!htbp]",
                    "\\centering",
                    f"\\includegraphics[width=\\linewidth,height=0.42\\textheight,keepaspectratio]"
                    f"{{{rel}}}",
                    f"\\caption{{{latex_escape(' '.join(str(caption).split()))}}}",
                    f"\\label{{fig:{stem}}}",
                    "\\end{figure}",
                ]
            )
        )
        placed += 1
        if placed % 2 == 0:
            out.append("\\clearpage")
    if missing:
        out.insert(
            2,
            "Figures not produced (run \\texttt{qgvae figures}): "
            + latex_escape(", ".join(missing))
            + ".",
        )
    return "\n\n".join(out) + "\n"


def tables_section(tables_tex: Path) -> str:
    out = ["\\clearpage", "\\section{Tables}"]
    if tables_tex.is_file():
        out.append(f"% ---- contents of {tables_tex}\n" + tables_tex.read_text())
    else:
        out.append(f"Tables file {latex_path(tables_tex)} not found: run \\texttt{{qgvae tables}}.")
    return "\n\n".join(out) + "\n"


def write_report_tex(
    plan: Mapping[str, Any],
    tables_tex: Path,
    fig_dir: Path,
    out_tex: Path,
    pv: Mapping[str, Any],
    root: Path = Path("."),
    notes_file: Path | None = None,
) -> Path:
    body = [
        PREAMBLE,
        "% Written by qgvae.rendering.report from the plan, tables.tex, the figures folder and the",
        "% run folders' metrics.json / run.json; re-run `qgvae report` to refresh.",
        "\\title{qgvae-bench: reproduction of the Quantised Global Autoencoder}",
        "\\author{}\n\\date{}",
        "\\begin{document}",
        "\\maketitle",
        methods_section(plan, pv, root, notes_file),
        compute_section(plan, root),
        tables_section(tables_tex),
        figures_section(plan, fig_dir, out_tex.parent),
        "\\end{document}",
        "",
    ]
    write_text(out_tex, "\n".join(body))
    return out_tex


def find_tex() -> tuple[str, str] | None:
    """('latexmk', path) or ('pdflatex', path) or None."""
    if shutil.which("latexmk") and shutil.which("pdflatex"):
        return "latexmk", shutil.which("latexmk")
    if shutil.which("pdflatex"):
        return "pdflatex", shutil.which("pdflatex")
    return None


def build_pdf(tex: Path, out_pdf: Path, timeout: int = 600) -> tuple[bool, str]:
    """Compile ``tex`` (cwd = its folder) into ``out_pdf``; (ok, log tail)."""
    tool = find_tex()
    assert tool is not None
    tex = tex.resolve()
    build = Path(tempfile.mkdtemp(prefix=".report-build-", dir=tex.parent))
    try:
        if tool[0] == "latexmk":
            cmds = [
                [
                    tool[1],
                    "-pdf",
                    "-interaction=nonstopmode",
                    "-halt-on-error",
                    f"-outdir={build}",
                    tex.name,
                ]
            ]
        else:
            cmd = [
                tool[1],
                "-interaction=nonstopmode",
                "-halt-on-error",
                f"-output-directory={build}",
                tex.name,
            ]
            cmds = [cmd, cmd]
        for cmd in cmds:
            proc = subprocess.run(
                cmd, cwd=tex.parent, capture_output=True, text=True, timeout=timeout
            )
            if proc.returncode != 0:
                logf = build / f"{tex.stem}.log"
                tail = (
                    logf.read_text(errors="replace")[-4000:]
                    if logf.is_file()
                    else (proc.stdout + proc.stderr)[-4000:]
                )
                return False, tail
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
