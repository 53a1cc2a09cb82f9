"""What the quick workflow produced (`snakemake --cores 2 all --configfile config/quick.yaml`):
every run reconstructs its own input, and the tables and figures say so.

Marked ``quickrun``: CI runs these right after its end-to-end quick run (.ci/quick.sh), on
that run's results; they do not train anything themselves. ``QGVAE_QUICK_RESULTS`` names the
results folder (default results/quick)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.quickrun

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("QGVAE_QUICK_RESULTS", REPO / "results" / "quick"))
MARGIN_DB = 3.0


@pytest.fixture(scope="module")
def plan():
    path = RESULTS / "plan.json"
    if not path.is_file():
        pytest.fail(f"{path} not found: run the quick workflow first (.ci/quick.sh)")
    return json.loads(path.read_text())


def _metrics(run: str) -> dict:
    return json.loads((REPO / run / "metrics.json").read_text())


def _cells(plan, prefix=""):
    return [
        (table, cell)
        for table, cells in plan["tables"].items()
        if table.startswith(prefix)
        for cell in cells
    ]


def test_every_run_beats_the_mean_image_by_3_db(plan):
    """Test PSNR (vqwae protocol) at least 3 dB above the floor, for every table cell."""
    short = []
    for table, cell in _cells(plan):
        for run in cell["runs"]:
            p = _metrics(run)["protocols"]["vqwae"]
            gain = p["psnr_gain_over_floor_db"]
            assert gain == pytest.approx(p["psnr"]["mean"] - p["floor_psnr"])
            if gain < MARGIN_DB:
                short.append(f"{table}/{cell['label']}/{cell['method']}: {gain:.2f} dB")
    assert not short, "runs within 3 dB of the mean image: " + "; ".join(short)


def test_every_reconstruction_depends_on_its_input(plan):
    """PSNR against each image's own original at least 3 dB above that against another's."""
    flat = []
    for table, cell in _cells(plan):
        for run in cell["runs"]:
            d = _metrics(run)["protocols"]["vqwae"]["input_dependence_db"]
            if d < MARGIN_DB:
                flat.append(f"{table}/{cell['label']}/{cell['method']}: {d:.2f} dB")
    assert not flat, "input-independent reconstructions: " + "; ".join(flat)


def test_the_recon_grid_shows_different_reconstructions(plan):
    """Rows of the Table-1 grid: the shown reconstructions differ from one another as much as a
    tenth of the originals do (a grey square for every input would not)."""
    for _, cell in _cells(plan, "table1"):
        with np.load(REPO / cell["runs"][0] / "reconstructions.npz") as z:
            rec, orig = z["reconstructions"][:8].astype(float), z["originals"][:8].astype(float)
        assert rec.std(0).mean() > 0.1 * orig.std(0).mean(), cell["method"]
    png = REPO / "reports" / "figures" / "recon_grid_photos.png"
    assert png.is_file() and png.stat().st_size > 10_000


def test_tables_show_the_floor_and_the_scale():
    tex = (REPO / "reports" / "tables.tex").read_text()
    assert "Mean image" in tex and "PSNR $-$ mean image" in tex
    assert "optimiser steps per run" in tex and "training images seen" in tex
    assert "paired bootstrap interval" in tex  # Table 1's significance marks are explained


@pytest.mark.parametrize("table", ["table1", "modern"])
def test_the_paired_differences_file_is_complete(plan, table):
    """QG-VAE against every other method of Table 1 and of the modern-quantiser table, and
    against the mean image, under every metric: one finite interval each."""
    import csv

    path = REPO / "reports" / "tables" / "paired_differences.csv"
    rows = list(csv.DictReader(path.open()))
    methods = [c["method"] for t, c in _cells(plan, table) if t == table]
    assert len(methods) >= 5
    for baseline in [m for m in methods if m != "qgvae"] + ["mean_image"]:
        for metric in ("ssim", "psnr", "lpips", "rfid"):
            hits = [
                r
                for r in rows
                if (r["table"], r["method"], r["baseline"], r["metric"], r["protocol"])
                == (table, "qgvae", baseline, metric, "vqwae")
            ]
            assert len(hits) == 1, (baseline, metric)
            lo, mid, hi = (float(hits[0][k]) for k in ("ci_low", "diff_mean", "ci_high"))
            assert lo <= hi and np.isfinite([lo, mid, hi]).all()
            if metric != "rfid":  # a resampled rFID is biased (repeated images): not around it
                assert lo <= mid <= hi


def test_summary_csv_equals_the_metrics_json_files(plan):
    """Every row of summary.csv is the number its run's metrics.json holds (and every planned
    run with a metrics.json is in it); Table 1's cells are the means of those rows."""
    from qgvae.rendering.summary import METRICS, read_summary

    summary = read_summary(RESULTS / "summary.csv")
    assert set(plan["runs"]) <= set(summary.run)
    for run, rows in summary.groupby("run"):
        protocols = _metrics(run)["protocols"]
        for r in rows.itertuples():
            entry = protocols[r.protocol][r.metric]
            want = (
                entry["value" if r.metric == "rfid" else "mean"]
                if isinstance(entry, dict)
                else entry
            )
            assert (want is None and np.isnan(r.value)) or r.value == want, (
                run,
                r.protocol,
                r.metric,
            )
        assert set(rows.metric) <= set(METRICS)
    for table in ("table1", "modern"):
        tex = (REPO / "reports" / "tables" / f"{table}_photos.tex").read_text()
        for _, cell in [(t, c) for t, c in _cells(plan, table) if t == table]:
            psnr = summary[summary.run.isin(cell["runs"]) & (summary.protocol == "vqwae")]
            psnr = psnr[psnr.metric == "psnr"]["value"].mean()
            assert f"{psnr:.2f}" in tex, (table, cell["method"])


def test_the_modern_target_drew_its_figures_and_rates(plan):
    """The modern table's methods code the bits they were set to (within 1 %), and its
    figures exist: the reconstruction grid and the rate-distortion sweep."""
    from qgvae.modern import RATE_TOLERANCE

    spec = plan["tables"]["modern"]
    for cell in spec:
        for run in cell["runs"]:
            bits = _metrics(run)["bits_per_image"]
            assert bits == pytest.approx(bits_asked(plan, cell), rel=RATE_TOLERANCE), cell
    for stem in ("recon_grid_modern_photos", "rate_distortion_modern", "rate_distortion"):
        png = REPO / "reports" / "figures" / f"{stem}.png"
        assert png.is_file() and png.stat().st_size > 10_000, stem


def bits_asked(plan, cell):
    """The bits the QG-VAE cell of the same dataset codes: every modern cell matches it."""
    qgvae = next(c for c in plan["tables"]["modern"] if c["method"] == "qgvae")
    return _metrics(qgvae["runs"][0])["bits_per_image"]
