"""Bad arguments and config values: each is refused with one line before any work starts.

"Before any work" is checked directly: training must not create its run folder or read the
dataset, the evaluator must not load its networks, reconstruct and evaluate must leave the run
folder as it was, and the renderers must not write their outputs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from qgvae.errors import ConfigError

from .helpers import copy_run, refused, run_cli, snapshot

QUICK = Path(__file__).resolve().parents[2] / "config" / "quick.yaml"


TRAIN_CASES = {
    "--max-steps 0": (["--max-steps", "0"], {}, ["train.max_steps", "minimum of 1"]),
    "--max-steps -5": (["--max-steps", "-5"], {}, ["train.max_steps", "minimum of 1"]),
    "QG-VAE heads: 3 with 8 tokens": ([], {"heads": 3}, ["heads", "divisible", "'model'"]),
    "--device cuda without CUDA": (["--device", "cuda"], {}, ["CUDA is not available", "cpu"]),
}


@pytest.mark.parametrize("case_name", list(TRAIN_CASES))
def test_train_refuses_before_work(tiny_cfg, tmp_path, tally, no_data, case_name):
    flags, model, names = TRAIN_CASES[case_name]
    if "cuda" in case_name and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    case = tally("input", f"qgvae train {case_name}")
    cfg = copy.deepcopy(tiny_cfg)
    cfg["model"].update(model)
    out = tmp_path / "run"
    res = run_cli("train", "--config-json", json.dumps(cfg), "--out", out, *flags)
    refused(res, command="train", code=2, names=names)
    assert not out.exists()
    case.passed()


def test_train_refuses_an_out_that_is_a_file_and_bad_json(tiny_cfg, tmp_path, tally, no_data):
    case = tally("input", "qgvae train --out FILE")
    out = tmp_path / "a-file"
    out.write_text("mine")
    res = run_cli("train", "--config-json", json.dumps(tiny_cfg), "--out", out)
    refused(res, command="train", code=2, names=[f"--out {out}", "is a file"])
    assert out.read_text() == "mine"
    case.passed()
    case = tally("input", "qgvae train --config-json that is not JSON")
    res = run_cli("train", "--config-json", "{method: qgvae", "--out", tmp_path / "run")
    refused(res, command="train", code=2, names=["--config-json is not valid JSON"])
    assert not (tmp_path / "run").exists()
    case.passed()


def test_an_os_error_is_one_line_too(tiny_cfg, tmp_path, tally, no_data):
    case = tally("input", "qgvae train --out below a file (an OSError)")
    (tmp_path / "a-file").write_text("mine")
    out = tmp_path / "a-file" / "run"
    res = run_cli("train", "--config-json", json.dumps(tiny_cfg), "--out", out)
    refused(res, command="train", code=1, names=["Not a directory", str(tmp_path / "a-file")])
    assert (tmp_path / "a-file").read_text() == "mine"
    case.passed()


@pytest.mark.parametrize(
    "flags, names",
    [
        (["--batch-size", "0"], ["--batch-size", ">= 1"]),
        (["--test-n", "0"], ["--test-n", ">= 1"]),
        (["--test-n", "-1"], ["--test-n", ">= 1"]),  # used to reconstruct the whole split
        (["--device", "cuda"], ["CUDA is not available"]),
    ],
)
def test_reconstruct_refuses_before_work(finished_run, tmp_path, tally, flags, names):
    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    case = tally("input", f"qgvae reconstruct {' '.join(flags)}")
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot(run)
    refused(run_cli("reconstruct", run, *flags), command="reconstruct", code=2, names=names)
    assert snapshot(run) == before  # reconstructions.npz is not rewritten
    case.passed()


@pytest.mark.parametrize(
    "flags, names",
    [
        (["--batch-size", "0"], ["--batch-size", ">= 1"]),
        (["--fid-n", "0"], ["--fid-n", ">= 1"]),
        (["--fid-n", "17"], ["--fid-n", "exceeds the 16 images", "reconstructions.npz"]),
        (["--device", "cuda"], ["CUDA is not available"]),
    ],
)
def test_evaluate_refuses_before_work(
    finished_run, tmp_path, tally, flags, names, no_metric_networks
):
    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    case = tally("input", f"qgvae evaluate {' '.join(flags)}")
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot(run)
    refused(run_cli("evaluate", run, *flags), command="evaluate", code=2, names=names)
    assert snapshot(run) == before
    case.passed()


@pytest.mark.parametrize("bad", [16, -2], ids=["K", "-2"])
def test_codes_outside_the_codebook_stop_evaluate_before_work(
    finished_run, tmp_path, tally, bad, no_metric_networks
):
    case = tally("input", f"reconstructions.npz with a code {bad} outside [-1, K-1]")
    run = copy_run(finished_run, tmp_path / "run")
    path = run / "reconstructions.npz"
    arrays = dict(np.load(path))
    assert int(arrays["codebook_size"]) == 16
    arrays["codes"][3, 1] = bad
    np.savez(path, **arrays)
    before = snapshot(run)
    res = run_cli("evaluate", run, "--device", "cpu")
    refused(res, command="evaluate", code=1, names=[str(path), "outside [-1, 15]", "reconstruct"])
    assert snapshot(run) == before
    case.passed()


# ------------------------------------------------------------------------- rendering
def _render(command: str, plan: Path, paper: Path, out: Path) -> list[str]:
    if command == "tables":
        return ["--plan", plan, "--paper", paper, "--out", out / "t.tex", "--outdir", out / "t"]
    if command == "figures":
        return ["--plan", plan, "--paper", paper, "--outdir", out / "f"]
    return ["--plan", plan, "--paper", paper, "--out", out / "report.pdf", "--no-build"]


@pytest.mark.parametrize("command", ["tables", "figures", "report"])
@pytest.mark.parametrize("bad", ["plan not JSON", "plan not a plan", "paper values not YAML"])
def test_renderers_refuse_bad_inputs_on_stderr(tmp_path, tally, command, bad):
    case = tally("input", f"qgvae {command}: {bad}")
    plan, paper, out = tmp_path / "plan.json", tmp_path / "paper.yaml", tmp_path / "out"
    plan.write_text({"plan not JSON": '{"runs": {', "plan not a plan": "[1, 2]"}.get(bad, "{}"))
    if bad == "paper values not YAML":
        plan.write_text(json.dumps({"results": "r", "seeds": [0], "runs": {}, "tables": {}}))
    paper.write_text("table1: [unclosed\n" if bad == "paper values not YAML" else "{}\n")
    res = run_cli(command, *_render(command, plan, paper, out))
    fault = paper if bad.startswith("paper") else plan
    fix = "restore" if bad.startswith("paper") else "qgvae plan"
    refused(res, command=command, code=2, names=[str(fault), fix])
    assert res.out == "" and not out.exists()
    case.passed()


def test_report_latex_failure_is_one_line_naming_its_log(tmp_path, tally, monkeypatch):
    from qgvae.rendering import report

    case = tally("fault", "qgvae report: LaTeX fails")
    plan, paper = tmp_path / "plan.json", tmp_path / "paper.yaml"
    plan.write_text(json.dumps({"results": "r", "seeds": [0], "runs": {}, "tables": {}}))
    paper.write_text("{}\n")
    monkeypatch.setattr(report, "write_report_tex", lambda *a, **k: a[3].write_text("x"))
    monkeypatch.setattr(report, "find_tex", lambda: ("pdflatex", "/usr/bin/pdflatex"))
    monkeypatch.setattr(report, "build_pdf", lambda tex, pdf: (False, "! Undefined control"))
    import pandas as pd

    from qgvae.rendering.summary import COLUMNS, write_summary

    summary = write_summary(pd.DataFrame(columns=COLUMNS), tmp_path / "summary.csv")
    out = tmp_path / "report.pdf"
    res = run_cli("report", "--plan", plan, "--paper", paper, "--summary", summary, "--out", out)
    log = tmp_path / "report.build.log"
    refused(res, command="report", code=1, names=["LaTeX failed", str(log), "--no-build"])
    assert log.read_text() == "! Undefined control" and not out.exists()
    case.passed()


# ------------------------------------------------------------------- workflow config
def _quick() -> dict:
    return yaml.safe_load(QUICK.read_text())


@pytest.mark.parametrize(
    "key, value, shown",
    [
        ("results", "results/x;touch /tmp/p;echo", "';'"),
        ("results", "results/a\nb", "'\\n'"),
        ("data_root", "$(touch /tmp/p)", "'$'"),
        ("data_root", "-rf", "starts with '-'"),
        ("paper_values", "config/`id`.yaml", "'`'"),
        ("paper_values", "  ", "empty"),
    ],
)
def test_workflow_paths_must_be_plain(tally, key, value, shown):
    from qgvae.plan import build_plan

    case = tally("input", f"workflow config {key}: {value!r}")
    wcfg = dict(_quick(), **{key: value})
    with pytest.raises(ConfigError) as err:
        build_plan(wcfg)
    message = str(err.value)
    assert message.startswith(f"{key}: ") and shown in message and "\n" not in message
    assert "not a plain path" in message
    case.passed()


def test_a_model_the_constructor_rejects_stops_the_plan_naming_the_cell(tally):
    from qgvae.plan import build_plan

    case = tally("input", "workflow config: ablation value heads: 3 with 64 tokens")
    wcfg = _quick()
    tokens = wcfg["methods"]["qgvae"]["model"]["tokens"]
    wcfg["ablations"]["axes"]["heads"]["values"]["3"] = {"qgvae": {"model": {"heads": 3}}}
    with pytest.raises(ConfigError) as err:
        build_plan(wcfg)
    message = str(err.value)
    for part in (
        "ablations.axes.heads.values.3.qgvae",
        "table ablation_heads",
        "cell '3'",
        "method qgvae",
        "dataset photos",
        f"tokens ({tokens}) must be divisible by heads (3)",
    ):
        assert part in message, message
    case.passed()
