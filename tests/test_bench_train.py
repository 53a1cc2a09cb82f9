"""qgvae bench train (qgvae.training.bench): one row per measurement, each the median of its
repeated timings, with ratios against the eager fp32 step of the same configuration."""

from __future__ import annotations

import pytest
import torch

from qgvae.training import bench


def test_a_slow_first_timing_is_not_the_figure(tiny_run, monkeypatch):
    """The first timed stretch takes 9 s (a one-off stall, faked); the two repeats after it take
    milliseconds: the row is their median, not the stall (a single timing would give 4.5 s/step)."""
    cfg = tiny_run("qgvae")
    ran = []

    def stalled(device, fn):
        ran.append(fn())  # the steps really run
        return 9.0, 0

    monkeypatch.setattr(bench, "_count_syncs", stalled)
    row = bench.measure(
        cfg, torch.device("cpu"), compiled=False, precision="fp32", steps=2, warmup=1, repeats=3
    )
    assert len(ran) == 1 and row["repeats"] == 3
    assert 0 < row["step_ms"] < 1000  # a tiny model's step, not 4,500 ms
    images = 2 * cfg["train"]["batch_size"]
    assert row["images_per_s"] == pytest.approx(images / (2 * row["step_ms"] / 1000))


def test_ratios_are_against_the_eager_fp32_row_of_the_same_configuration(tiny_run):
    rows = bench.run_bench([tiny_run("qgvae")], ["cpu"], ["eager"], ["fp32"], 2, 2, 1, repeats=2)
    assert len(rows) == 1 and rows[0]["ratio"] == pytest.approx(1.0)
    assert rows[0]["repeats"] == 2 and rows[0]["step_ms"] > 0


def test_repeats_below_one_are_refused_before_any_work():
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "qgvae.cli", "bench", "--repeats", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "qgvae bench: error: --repeats must be at least 1; got 0"
    )
