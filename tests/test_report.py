"""qgvae.rendering.report: report.tex holds every table and figure; PDF with TeX; clean exit
without."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from test_tables import PAPER_YAML, build_fake_tree

from qgvae.rendering import figures, report, tables
from qgvae.rendering.summary import collect, write_summary


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    plan = build_fake_tree(root)
    pv = yaml.safe_load(PAPER_YAML.read_text())
    summary = write_summary(collect(plan, root), root / "results/summary.csv")  # the default
    tables.render_tables(
        plan, pv, root / "reports/tables.tex", root / "reports/tables", summary=summary
    )
    # one real figure (figure rendering itself is tested in test_figures.py), copied under
    # every other declared stem to keep this module fast
    figdir = root / "reports/figures"
    figures.render_figures(plan, figdir, root=root, only=["ablation_tokens"], summary=summary)
    for stem in figures.figure_stems(plan):
        for ext in ("pdf", "png", "json"):
            if not (figdir / f"{stem}.{ext}").exists():
                shutil.copy(figdir / f"ablation_tokens.{ext}", figdir / f"{stem}.{ext}")
    (root / "notes.md").write_text("Trained on 1 GPU & 50% of the budget.\n\nSecond para_x.\n")
    return root, plan, pv


def _parser():
    from qgvae.cli import build_parser

    return build_parser()


def _args(root: Path, *extra: str):
    return _parser().parse_args(
        [
            "report",
            "--plan",
            str(root / "results/plan.json"),
            "--tables",
            str(root / "reports/tables.tex"),
            "--figures",
            str(root / "reports/figures"),
            "--methods-notes",
            str(root / "notes.md"),
            "--paper",
            str(PAPER_YAML),
            "--root",
            str(root),
            "--out",
            str(root / "reports/report.pdf"),
            *extra,
        ]
    )


def test_report_tex_contains_every_table_and_figure(tree):
    root, plan, pv = tree
    assert _args(root, "--no-build").func(_args(root, "--no-build")) == 0
    tex = (root / "reports/report.tex").read_text()
    for name in tables.table_names(plan):
        assert f"\\label{{tab:{name}}}" in tex
        assert f"\\label{{tab:{name}_native}}" in tex
    for stem in figures.figure_stems(plan):
        assert re.search(r"\\includegraphics\[[^]]*\]\{figures/" + stem + r"\.pdf\}", tex), stem
        assert f"\\label{{fig:{stem}}}" in tex
    # methods: protocol, N, seeds, deviations, protocol notes, notes file (escaped)
    assert "ddof = 1" in tex and "(0, 1)" in tex
    assert "CIFAR-10 & \\texttt{vqwae} & 200 & 100 & 256" in tex
    for dev in pv["deviations"]:
        assert report.latex_prose(dev)[:60] in tex
    assert "synthetic note for qgvae\\_cifar10 \\& co" in tex
    assert "1 GPU \\& 50\\% of the budget." in tex and "para\\_x" in tex
    assert "results/\\allowbreak{}mnist/\\allowbreak{}vqvae" in tex  # the missing run


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_report_builds_pdf(tree, capsys):
    root, *_ = tree
    args = _args(root)
    assert args.func(args) == 0, capsys.readouterr().out
    pdf = root / "reports/report.pdf"
    assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20000
    assert not list((root / "reports").glob(".report-build-*"))


def test_without_tex_prints_message_and_exits_0(tree, tmp_path, monkeypatch, capsys):
    root, *_ = tree
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    out = tmp_path / "r/report.pdf"
    args = _parser().parse_args(
        [
            "report",
            "--plan",
            str(root / "results/plan.json"),
            "--tables",
            str(root / "reports/tables.tex"),
            "--figures",
            str(root / "reports/figures"),
            "--paper",
            str(PAPER_YAML),
            "--root",
            str(root),
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    msg = capsys.readouterr().out
    assert (
        f"TeX not found: {out.with_suffix('.tex')} written, PDF not built; install "
        "texlive-latex-recommended latexmk" in msg
    )
    assert out.with_suffix(".tex").is_file() and not out.exists()


def test_missing_tables_and_figures_do_not_crash(tmp_path):
    plan = build_fake_tree(tmp_path)
    out = tmp_path / "rep/report.tex"
    summary = collect(plan, tmp_path)
    report.write_report_tex(
        plan, tmp_path / "nope.tex", tmp_path / "nofigs", out, {}, summary=summary, root=tmp_path
    )
    tex = out.read_text()
    assert "not found: run \\texttt{qgvae tables}" in tex
    assert "Figures not produced" in tex and "recon\\_grid\\_mnist" in tex
