"""``qgvae bench transport``: VQ-WAE's step per OT solver as a ratio to VQ-VAE's, measured in the
same run (config/quick.yaml's small photos settings, 2 steps a measurement: 1-2 CPU-s on a quiet
machine; far more with 2 threads on a loaded one, where each parallel op waits for both cores)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import yaml

from qgvae.plan import resolve_run

QUICK = Path(__file__).resolve().parents[1] / "config" / "quick.yaml"


def test_bench_transport_rows_are_medians_and_ratios_to_the_reference():
    import torch

    from qgvae.training.bench import bench_transport

    wcfg = yaml.safe_load(QUICK.read_text())
    reference = resolve_run(wcfg, "photos", "vqvae", None, 0, "test")
    vqwae = resolve_run(wcfg, "photos", "vqwae", None, 0, "test")
    seen = []
    rows = bench_transport(
        reference,
        vqwae,
        ["exact", "newton"],
        torch.device("cpu"),
        steps=1,
        warmup=0,
        rounds=2,
        on_row=seen.append,
    )
    assert seen == rows
    assert [(r["method"], r["ot_solver"]) for r in rows] == [
        ("vqvae", "-"),
        ("vqwae", "exact"),
        ("vqwae", "newton"),
    ]
    ref = rows[0]
    assert ref["ratio"] == 1.0 and ref["model_only_ratio"] == 1.0
    for r in rows:
        assert len(r["all_step_ms"]) == 2 and r["step_ms"] == statistics.median(r["all_step_ms"])
        assert r["ratio"] == pytest.approx(r["step_ms"] / ref["step_ms"])
        assert r["model_only_ratio"] == pytest.approx(
            r["model_only_step_ms"] / ref["model_only_step_ms"]
        )
    assert vqwae["model"]["ot_solver"] == "exact"  # the caller's config is not changed


def test_bench_transport_refuses_an_unknown_solver_before_timing(capsys):
    from qgvae.cli import main

    argv = ["bench", "transport", "--workflow-config", str(QUICK), "--dataset", "photos"]
    assert main([*argv, "--solvers", "newton", "simplex"]) == 2
    err = capsys.readouterr().err
    assert "ot_solver must be one of exact, newton, sinkhorn; got 'simplex'" in err
    assert main([*argv, "--rounds", "0"]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err
