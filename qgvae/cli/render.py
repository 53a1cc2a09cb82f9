"""``qgvae tables``, ``figures`` and ``report``: rendering from results/ only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import add, need_file


def _cmd_tables(args: argparse.Namespace) -> int:
    from ..rendering import render_tables

    plan, paper = need_file("plan", args.plan), need_file("paper values", args.paper)
    written = render_tables(
        plan, paper, args.out, args.outdir, protocol=args.protocol, root=args.root
    )
    print(f"qgvae tables: wrote {len(written) - 1} table files under {args.outdir} and {args.out}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from ..rendering import render_figures

    plan = need_file("plan", args.plan)
    paper = args.paper if args.paper and Path(args.paper).is_file() else None
    written, no_data = render_figures(
        plan,
        args.outdir,
        root=args.root,
        only=args.only,
        protocol=args.protocol,
        paper_values=paper,
    )
    for stem, reason in no_data.items():
        print(f"qgvae figures: {stem}: no data: {reason}")
    n = sum(1 for p in written if p.suffix == ".pdf")
    print(f"qgvae figures: wrote {n} figures (PDF + PNG) under {args.outdir}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ..rendering.report import NO_TEX, build_pdf, find_tex, write_report_tex
    from ..rendering.results import load_paper_values

    plan = json.loads(need_file("plan", args.plan).read_text())
    pv: dict[str, Any] = {}
    if args.paper and Path(args.paper).is_file():
        pv = load_paper_values(args.paper)
    else:
        print(f"qgvae report: paper values {args.paper} not found; no deviations listed from it")
    out_pdf = Path(args.out)
    out_tex = out_pdf.with_suffix(".tex")
    notes = Path(args.methods_notes) if args.methods_notes else None
    write_report_tex(
        plan,
        Path(args.tables),
        Path(args.figures),
        out_tex,
        pv,
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
        print(f"qgvae report: {out_tex} written but LaTeX failed:\n{tail}", file=sys.stderr)
        return 1
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

    t = add(
        sub,
        "tables",
        _cmd_tables,
        "LaTeX tables from results/ (no recomputation)",
        "Write one LaTeX (booktabs) file per table under --outdir and all of them in --out, "
        "read only from the plan, the runs' metrics.json and the paper values.",
    )
    common(t)
    t.add_argument("--out", default="reports/tables.tex", help="combined .tex of all tables")
    t.add_argument("--outdir", default="reports/tables", help="folder for one file per table")
    t.add_argument(
        "--protocol",
        default="vqwae",
        choices=PROTOCOLS,
        help="main protocol (compared with the paper when it is the paper's)",
    )

    g = add(
        sub,
        "figures",
        _cmd_figures,
        "figures (PDF + PNG) from results/",
        "Draw the benchmark's figures (PDF + PNG + a JSON caption) from the run folders; a "
        "figure whose inputs are missing says so in a 'no data' panel.",
    )
    common(g)
    g.add_argument("--outdir", default="reports/figures")
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
