"""qgvae.rendering.markdown (``qgvae markdown``): the results page, rendered from the summary
table, shows the numbers of the run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from test_tables import FLOOR_PSNR, PAPER_YAML, build_fake_tree

from qgvae.rendering.markdown import render_markdown
from qgvae.rendering.summary import collect


def _rows(text: str, section: str) -> list[list[str]]:
    """Table rows (cells stripped) of the first Markdown table after the ``section`` heading."""
    body = text.split(section, 1)[1] if section else text
    rows = []
    for line in body.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows


def _render(tmp_path: Path, **kw) -> tuple[str, dict]:
    plan = build_fake_tree(tmp_path)
    pv = yaml.safe_load(PAPER_YAML.read_text())
    figs = tmp_path / "reports" / "figures"
    figs.mkdir(parents=True)
    (figs / "training_curves.png").write_bytes(b"\x89PNG fake")
    (figs / "training_curves.json").write_text(json.dumps({"caption": "Curves, 100 steps."}))
    bench = tmp_path / "results" / "benchmarks" / "train"
    bench.mkdir(parents=True)
    (bench / "a.tsv").write_text("s\th:m:s\tcpu_time\n60.0\t0:01:00\t110.0\n")
    reading = tmp_path / "reading.md"
    reading.write_text("Hand-written reading.")
    out = render_markdown(
        plan,
        pv,
        tmp_path / "docs" / "page.md",
        summary=collect(plan, tmp_path),
        results=tmp_path / "results",
        figures=figs,
        differences=kw.get("differences"),
        command="snakemake --cores 2 all --configfile config/x.yaml",
        title="A page",
        reading=reading,
    )
    return out.read_text(), plan


def test_the_page_reads_every_number_from_the_run_folders(tmp_path):
    text, plan = _render(tmp_path)
    assert text.startswith("# A page")
    assert "snakemake --cores 2 all --configfile config/x.yaml" in text
    cifar = text.split("## Table 1: CIFAR-10", 1)[1]
    rows = _rows(cifar, "### Protocol `vqwae` (the paper's protocol)")
    header, body = rows[0], rows[2:]
    assert header[:3] == ["method", "SSIM ↑", "SSIM (paper)"]
    by_method = {r[0]: r for r in body}
    for cell in plan["tables"]["table1"]:
        if cell["dataset"] != "cifar10":
            continue
        name = {"vqvae": "VQ-VAE", "qgvae": "QG-VAE"}[cell["method"]]
        psnr = [
            json.loads((tmp_path / r / "metrics.json").read_text())["protocols"]["vqwae"]["psnr"][
                "mean"
            ]
            for r in cell["runs"]
        ]
        row = by_method[name]
        assert row[header.index("PSNR ↑")] == f"{np.mean(psnr):.2f}"
        paper = yaml.safe_load(PAPER_YAML.read_text())["table1"]["datasets"]["cifar10"]
        assert row[header.index("PSNR (paper)")] == paper["values"][cell["method"]]["psnr"]
    floor = by_method["mean image (floor)"]
    assert floor[header.index("PSNR ↑")] == f"{FLOOR_PSNR['vqwae']:.2f}"
    # the other protocol shows no paper column
    native = _rows(cifar, "### Protocol `native`")
    assert "PSNR (paper)" not in native[0]
    # the figure is copied beside the page, with its caption
    assert (tmp_path / "docs" / "page" / "training_curves.png").is_file()
    assert "![training_curves](page/training_curves.png)" in text
    assert "*Curves, 100 steps.*" in text
    # stage times from the benchmark file, the hand-written reading verbatim
    stage = {r[0]: r for r in _rows(text, "### Wall time")[2:]}
    assert stage["train"][1:] == ["1", "1.0", "1.8"]
    assert text.rstrip().endswith("Hand-written reading.")


def test_orderings_compare_the_paper_with_ours_and_use_the_intervals(tmp_path):
    diffs = tmp_path / "paired.csv"
    diffs.write_text(
        "dataset,protocol,metric,method,baseline,diff_mean,ci_low,ci_high,n_images,n_seeds,"
        "resamples,seed\n"
        "cifar10,vqwae,psnr,qgvae,vqvae,1.5,1.0,2.0,200,2,2000,0\n"
        "cifar10,vqwae,ssim,qgvae,vqvae,0.01,-0.01,0.03,200,2,2000,0\n"
    )
    text, plan = _render(tmp_path, differences=diffs)
    section = text.split("### The paper's orderings on CIFAR-10", 1)[1]
    rows = {r[0]: r for r in _rows(section, "")[2:]}
    ours = {}
    for cell in plan["tables"]["table1"]:
        if cell["dataset"] == "cifar10":
            vals = [
                json.loads((tmp_path / r / "metrics.json").read_text())["protocols"]["vqwae"][
                    "psnr"
                ]["mean"]
                for r in cell["runs"]
            ]
            ours[cell["method"]] = np.mean(vals)
    # the paper: QG-VAE 26.18 > VQ-VAE 23.14 dB
    psnr = rows["PSNR"]
    assert psnr[1] == "QG-VAE better than VQ-VAE" and psnr[2] == "26.18 vs 23.14"
    assert psnr[4] == ("holds" if ours["qgvae"] > ours["vqvae"] else "**reversed**")
    assert psnr[5] == "interval excludes a tie"
    assert rows["SSIM"][5] == "within the noise"
    assert rows["LPIPS"][5] == "no interval"
    cifar = text.split("## Table 1: CIFAR-10", 1)[1]
    diff_rows = _rows(cifar.split("### Protocol `vqwae`", 1)[1], "Paired bootstrap")
    assert ["VQ-VAE", "PSNR", "+1.50", "[+1.00, +2.00]", "excludes 0", "200"] in diff_rows
