"""qgvae.estimate / ``qgvae estimate``: a plan's training hours from a measured ms/step table."""

from __future__ import annotations

import json

import pytest

from qgvae.data import dataset_info
from qgvae.errors import ConfigError
from qgvae.estimate import estimate, run_steps, summary_lines
from qgvae.plan import build_plan
from qgvae.runs import training_digest

WCFG = {
    "results": "results/est",
    "seeds": [0, 1],
    "defaults": {"train": {"batch_size": 16, "epochs": 3}},
    "datasets": {"photos": {}},
    "methods": {
        "vqvae": {"model": {"channels": 16, "res_channels": 8, "codebook_size": 16}},
        "qgvae": {"model": {"tokens": 8, "heads": 2, "min_channels": 4, "max_channels": 8}},
    },
    "table1": {"datasets": ["photos"], "methods": ["vqvae", "qgvae"]},
    "ablations": {
        "dataset": "photos",
        "axes": {"heads": {"values": {"1": {"qgvae": {"model": {"heads": 1}}}}}},
    },
}


@pytest.fixture(scope="module")
def plan():
    return build_plan(WCFG)


def _row(cfg, ms, mode="eager", precision="fp32", device="cuda:0"):
    return {
        "method": cfg["method"],
        "dataset": cfg["dataset"],
        "digest": training_digest(cfg),
        "device": device,
        "device_name": "Test GPU",
        "mode": mode,
        "precision": precision,
        "step_ms": ms,
    }


def _cfg(plan, method, label=None):
    for run in plan["runs"].values():
        if run["method"] == method and (label is None or "heads-1" in run["variant"]):
            return run["config"]
    raise AssertionError(method)


def test_steps_follow_the_trainer(plan):
    cfg = _cfg(plan, "vqvae")
    per_epoch = dataset_info("photos").splits["train"] // 16  # the last partial batch dropped
    assert run_steps(cfg) == 3 * per_epoch
    capped = dict(cfg, train={**cfg["train"], "max_steps": 7})
    assert run_steps(capped) == 7


def test_hours_are_steps_times_the_measured_step_and_say_how_they_were_matched(plan):
    vq, qg = _cfg(plan, "vqvae"), _cfg(plan, "qgvae")
    rows = [
        _row(vq, 10.0),
        _row(qg, 40.0),  # eager fp32: the reference
        _row(qg, 20.0, precision="bf16"),  # what QG-VAE's default amp: bf16 uses on CUDA
    ]
    frame = estimate(plan, rows).set_index("run")
    for run, r in frame.iterrows():
        cfg = plan["runs"][run]["config"]
        assert r.steps == run_steps(cfg)
        assert r.hours == pytest.approx(r.steps * r.step_ms / 3.6e6)
    table1 = frame[frame.index.isin([p for c in plan["tables"]["table1"] for p in c["runs"]])]
    assert set(table1.match) == {"configuration"}
    assert set(table1[table1.method == "qgvae"].step_ms) == {20.0}  # its own precision
    assert set(table1[table1.method == "qgvae"].measured) == {"eager bf16"}
    heads1 = frame[frame.index.str.contains("heads-1")]
    assert len(heads1) == 2 and set(heads1.match) == {"method and dataset"}
    text = "\n".join(summary_lines(frame.reset_index()))
    assert "Test GPU" in text and "total: 6 runs" in text and "2 runs timed by another" in text


def test_a_method_without_rows_is_left_out_and_said_so(plan):
    frame = estimate(plan, [_row(_cfg(plan, "vqvae"), 10.0)])
    assert set(frame[frame.method == "qgvae"].match) == {"missing"}
    assert frame[frame.method == "qgvae"].hours.isna().all()
    assert "4 runs without a bench row of their method (qgvae)" in "\n".join(summary_lines(frame))
    with pytest.raises(ConfigError, match="several device types"):
        estimate(
            plan, [_row(_cfg(plan, "vqvae"), 1.0), _row(_cfg(plan, "vqvae"), 1.0, device="cpu")]
        )


def test_cli(tmp_path, plan, capsys):
    from qgvae.cli import main

    (tmp_path / "plan.json").write_text(json.dumps(plan))
    rows = [_row(_cfg(plan, m), 5.0, device="cpu") for m in ("vqvae", "qgvae")]
    (tmp_path / "bench.json").write_text(json.dumps({"rows": rows}))
    argv = ["estimate", "--plan", str(tmp_path / "plan.json"), "--bench"]
    assert main([*argv, str(tmp_path / "bench.json"), "--csv", str(tmp_path / "e.csv")]) == 0
    out = capsys.readouterr().out
    assert "device-hours of training" in out and (tmp_path / "e.csv").is_file()
    (tmp_path / "bad.json").write_text("[]")
    assert main([*argv, str(tmp_path / "bad.json")]) == 2
    assert "is not a `qgvae bench train --json` file" in capsys.readouterr().err
