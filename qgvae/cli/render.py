"""``qgvae collect``, ``tables``, ``figures``, ``differences``, ``timing``, ``markdown`` and
``report``: the summary table, and rendering from it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import add, need_file, read_paper_values, read_plan


def _summary(args: argparse.Namespace, plan: dict[str, Any]) -> Any:
    """The summary table of ``--summary``, by default ``<the plan's results>/summary.csv``."""
    from ..rendering.summary import Summary

    default = Path(args.root) / str(plan.get("results", "results")) / "summary.csv"
    return Summary.of(args.summary or default)


def _cmd_collect(args: argparse.Namespace) -> int:
    from ..rendering.summary import collect, write_summary

    results = Path(args.results)
    plan = read_plan(args.plan or str(results / "plan.json"))
    frame = collect(plan, args.root)
    out = write_summary(frame, args.out or results / "summary.csv")
    runs = frame["run"].unique()
    missing = [r for r in plan["runs"] if r not in set(runs)]
    for run in missing:
        print(f"qgvae collect: {run}: no metrics.json (not in the summary)")
    print(
        f"qgvae collect: {len(frame)} rows ({len(runs)} runs and floors; {len(missing)} of "
        f"{len(plan['runs'])} planned runs without metrics.json) -> {out}"
    )
    return 0


def _cmd_tables(args: argparse.Namespace) -> int:
    from ..rendering import render_tables

    plan, paper = read_plan(args.plan), read_paper_values(args.paper)
    written = render_tables(
        plan,
        paper,
        args.out,
        args.outdir,
        summary=_summary(args, plan),
        protocol=args.protocol,
        root=args.root,
        differences=args.differences,
    )
    print(f"qgvae tables: wrote {len(written) - 1} table files under {args.outdir} and {args.out}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from ..rendering import render_figures
    from ..rendering.figures import figure_specs

    plan = read_plan(args.plan)
    paper = read_paper_values(args.paper) if args.paper and Path(args.paper).is_file() else None
    wanted = [s for s in figure_specs(plan) if not args.only or {s.family, s.stem} & set(args.only)]
    numbers = args.summary or any(s.family != "generation" for s in wanted)  # gFID: no summary
    written, no_data = render_figures(
        plan,
        args.outdir,
        root=args.root,
        only=args.only,
        protocol=args.protocol,
        paper_values=paper,
        intervals=args.intervals,
        summary=_summary(args, plan) if numbers else None,
    )
    for stem, reason in no_data.items():
        print(f"qgvae figures: {stem}: no data: {reason}")
    n = sum(1 for p in written if p.suffix == ".pdf")
    print(f"qgvae figures: wrote {n} figures (PDF + PNG) under {args.outdir}")
    return 0


def _cmd_differences(args: argparse.Namespace) -> int:
    from ..evaluation.differences import write_differences

    diff_path, int_path, n = write_differences(
        read_plan(args.plan),
        args.outdir,
        root=args.root,
        resamples=args.resamples,
        rfid_resamples=args.rfid_resamples,
        seed=args.seed,
    )
    print(f"qgvae differences: {n} paired differences -> {diff_path}; intervals -> {int_path}")
    return 0


def _cmd_timing(args: argparse.Namespace) -> int:
    from ..rendering.timing import timing_text

    print(f"compute of {args.results} by stage (Snakemake benchmark files):")
    print(timing_text(args.results))
    return 0


def _cmd_markdown(args: argparse.Namespace) -> int:
    from ..rendering.markdown import render_markdown

    plan = read_plan(args.plan)
    paper = read_paper_values(args.paper)
    if args.reading is not None:
        need_file("reading", args.reading)
    out = render_markdown(
        plan,
        paper,
        args.out,
        summary=_summary(args, plan),
        results=args.results or plan.get("results", "results"),
        figures=args.figures,
        differences=args.differences,
        command=args.command,
        title=args.title,
        reading=args.reading,
    )
    print(f"qgvae markdown: wrote {out} (figures in {out.parent / out.stem})")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ..errors import ToolError
    from ..io import write_text
    from ..rendering.report import NO_TEX, build_pdf, find_tex, write_report_tex

    plan = read_plan(args.plan)
    pv: dict[str, Any] = {}
    if args.paper and Path(args.paper).is_file():
        pv = read_paper_values(args.paper)
    else:
        print(
            f"qgvae report: warning: paper values {args.paper} not found; no deviations listed "
            "from it",
            file=sys.stderr,
        )
    out_pdf = Path(args.out)
    out_tex = out_pdf.with_suffix(".tex")
    notes = Path(args.methods_notes) if args.methods_notes else None
    write_report_tex(
        plan,
        Path(args.tables),
        Path(args.figures),
        out_tex,
        pv,
        summary=_summary(args, plan),
        root=Path(args.root),
        notes_file=notes,
    )
    if args.no_build:
        print(f"qgvae report: {out_tex} written (--no-build)")
        return 0
    if find_tex() is None:
        print(NO_TEX.format(tex=out_tex))
        return 0
    ok, tail = build_pdf(out_tex, out_pdf)
    if not ok:
        log = out_tex.with_suffix(".build.log")
        write_text(log, tail)
        raise ToolError(
            f"{out_tex} written but LaTeX failed to build {out_pdf}; the end of its log is in "
            f"{log}: fix what it reports, or pass --no-build"
        )
    print(f"qgvae report: wrote {out_tex} and {out_pdf}")
    return 0


def add_parsers(sub: Any) -> None:
    from ..evaluation import PROTOCOLS
    from ..rendering.figures import FAMILIES

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plan", default="results/plan.json", help="the run plan (qgvae plan)")
        p.add_argument("--root", default=".", help="folder the plan's run paths are relative to")
        p.add_argument(
            "--paper",
            default="config/paper_values.yaml",
            help="the paper's values, notes and deviations (YAML)",
        )
        p.add_argument(
            "--summary",
            default=None,
            metavar="CSV",
            help="the summary table (qgvae collect; default: <the plan's results>/summary.csv)",
        )

    c = add(
        sub,
        "collect",
        _cmd_collect,
        "the results as one table: RESULTS/summary.csv (one row per run x protocol x metric)",
        "Read every planned run's metrics.json and run.json, and the floors they were scored "
        "against, into one long table: one row per run x protocol x metric, with the run's "
        "rate, code usage, training length, device and commit (README: summary.csv). Every "
        "table, figure, page and the report is rendered from it.",
    )
    c.add_argument(
        "results", nargs="?", default="results", help="the workflow's results folder (plan.json)"
    )
    c.add_argument("--plan", default=None, help="the run plan (default: RESULTS/plan.json)")
    c.add_argument("--root", default=".", help="folder the plan's run paths are relative to")
    c.add_argument("--out", default=None, help="the CSV to write (default: RESULTS/summary.csv)")

    t = add(
        sub,
        "tables",
        _cmd_tables,
        "LaTeX tables from results/ (no recomputation)",
        "Write one LaTeX (booktabs) file per table under --outdir and all of them in --out, "
        "read only from the plan, the summary table (qgvae collect) and the paper values.",
    )
    common(t)
    t.add_argument("--out", default="reports/tables.tex", help="combined .tex of all tables")
    t.add_argument("--outdir", default="reports/tables", help="folder for one file per table")
    t.add_argument(
        "--differences",
        default=None,
        metavar="CSV",
        help="paired_differences.csv (qgvae differences): Table 1 marks the baselines whose "
        "difference from QG-VAE has a 95%% interval excluding 0",
    )
    t.add_argument(
        "--protocol",
        default="vqwae",
        choices=PROTOCOLS,
        help="main protocol (compared with the paper when it is the paper's)",
    )

    d = add(
        sub,
        "differences",
        _cmd_differences,
        "paired bootstrap intervals of every Table-1 comparison (CSV)",
        "Resample the test images (paired across methods) and the seeds (outer level) to give "
        "95%% intervals: OUTDIR/paired_differences.csv (method minus baseline, every pair and "
        "the mean-image floor) and OUTDIR/method_intervals.csv (each cell's own interval). "
        "Reads metrics_per_image.csv and the stored Inception features only.",
    )
    d.add_argument("--plan", default="results/plan.json", help="the run plan (qgvae plan)")
    d.add_argument("--root", default=".", help="folder the plan's run paths are relative to")
    d.add_argument("--outdir", default="reports/tables", help="folder for the two CSV files")
    d.add_argument("--resamples", type=int, default=2000, help="resamples (SSIM, PSNR, LPIPS)")
    d.add_argument(
        "--rfid-resamples",
        type=int,
        default=200,
        help="resamples for rFID (each costs one eigendecomposition per run; 0: none)",
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the resampling")

    tm = add(
        sub,
        "timing",
        _cmd_timing,
        "wall and CPU seconds per stage of a workflow run (train, evaluate, render, ...)",
        "Sum Snakemake's benchmark files under RESULTS/benchmarks by stage: train, reconstruct "
        "(and the mean-image floors), evaluate, generation, render (plans, tables, figures, "
        "report).",
    )
    tm.add_argument("results", nargs="?", default="results", help="the workflow's results folder")

    g = add(
        sub,
        "figures",
        _cmd_figures,
        "figures (PDF + PNG) from results/",
        "Draw the benchmark's figures (PDF + PNG + a JSON caption): numbers from the summary "
        "table, images and logs from the run folders; a figure whose inputs are missing says so "
        "in a 'no data' panel.",
    )
    common(g)
    g.add_argument("--outdir", default="reports/figures")
    g.add_argument(
        "--intervals",
        default=None,
        metavar="CSV",
        help="method_intervals.csv (qgvae differences): error bars of the rate-distortion "
        "figure (default: s.d. over seeds)",
    )
    g.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"figure families ({', '.join(FAMILIES)}) or file stems",
    )
    g.add_argument(
        "--protocol",
        default="vqwae",
        choices=PROTOCOLS,
        help="protocol of the metric-based figures",
    )

    m = add(
        sub,
        "markdown",
        _cmd_markdown,
        "a benchmark's results as one Markdown page (docs/results/*.md)",
        "Write a Markdown page from the summary table: the command, commit, hardware and "
        "stage times; training (where each run left the plateau); Table 1 per protocol with the "
        "paper's values and the mean-image floor; QG-VAE minus each baseline with paired "
        "bootstrap intervals; which of the paper's orderings hold; the figures (PNG copies in "
        "a folder named after --out). Only --reading is hand-written, and included verbatim.",
    )
    common(m)
    m.add_argument("--out", required=True, help="the Markdown file to write")
    m.add_argument("--title", required=True, help="the page's title")
    m.add_argument("--command", required=True, help="the command that produced the results")
    m.add_argument(
        "--results", default=None, help="results folder, for its stage times (default: the plan's)"
    )
    m.add_argument("--figures", default="reports/figures", help="figures folder (qgvae figures)")
    m.add_argument(
        "--differences",
        default="reports/tables/paired_differences.csv",
        help="paired_differences.csv (qgvae differences)",
    )
    m.add_argument("--reading", default=None, metavar="FILE", help="hand-written reading (.md)")

    r = add(
        sub,
        "report",
        _cmd_report,
        "report.tex (+ PDF when TeX is installed)",
        "Write report.tex (methods, every table and figure) beside --out and build --out "
        "with latexmk / pdflatex when TeX is installed (without TeX: report.tex only).",
    )
    common(r)
    r.add_argument("--tables", default="reports/tables.tex", help="combined tables (qgvae tables)")
    r.add_argument("--figures", default="reports/figures", help="figures folder (qgvae figures)")
    r.add_argument(
        "--methods-notes",
        default=None,
        metavar="FILE",
        help="extra methods text (.tex included as LaTeX, other files as text)",
    )
    r.add_argument(
        "--out", default="reports/report.pdf", help="PDF to build; report.tex is written beside it"
    )
    r.add_argument("--no-build", action="store_true", help="write report.tex only")
