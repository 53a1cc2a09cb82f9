"""The workflow's generation target (the paper's appendix H): which jobs it schedules under the
paper's and the quick configuration, and (slow) the quick target end to end."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from test_workflow import PROFILE, QUICK, REPO, dry_run, job_counts, snakemake, trained_runs

from qgvae.plan import build_plan

GENERATION_RULES = ("prior_encode", "prior_train", "prior_sample", "prior_evaluate")


def _plan(path):
    return build_plan(yaml.safe_load(path.read_text()))


@pytest.fixture(scope="module")
def quick_generation():
    return dry_run("generation", QUICK)


def test_quick_generation_target_schedules_only_its_jobs(quick_generation):
    plan = _plan(QUICK)
    gen = plan["generation"]
    counts = job_counts(quick_generation)
    priors, epochs = len(gen["priors"]), len(gen["epochs"])
    assert priors == 2 and epochs == 2
    assert counts["prior_encode"] == counts["prior_train"] == priors
    assert counts["prior_sample"] == counts["prior_evaluate"] == priors * epochs
    assert counts["generation_figure"] == 2 and counts["generation_table"] == 1
    # the tokenizers are Table 1's photos runs (they keep their checkpoints in quick.yaml)
    runs = {entry["run"] for entry in gen["priors"].values()}
    assert trained_runs(quick_generation) == runs and runs <= set(plan["runs"])
    for rule in ("reconstruct", "evaluate", "tables", "report_document", "summary_figure"):
        assert counts[rule] == 0, rule


def test_quick_generation_commands_are_quoted_and_complete(quick_generation):
    out = quick_generation
    plan = _plan(QUICK)
    for prior, entry in plan["generation"]["priors"].items():
        (other,) = entry["compare"]
        assert (
            f"qgvae prior encode {entry['run']} --out {prior} --match-psnr auto "
            f"--compare {other} --batch-size 256 >" in out
        )
        settings = json.dumps(entry["train_settings"], sort_keys=True)
        assert f"qgvae prior train {prior} --config-json '{settings}' >>" in out
        for epoch in plan["generation"]["epochs"]:
            assert (
                f"qgvae prior sample {prior} --epoch {epoch} --batch-size 16 --temperature 1.0 "
                "--seed 0 --n 16 >" in out
            )
            assert (
                f"qgvae prior evaluate {prior} --epoch {epoch} --features-cache "
                "results/quick/.inception-features >" in out
            )
    assert re.search(r"qgvae figures .* --only generation_fid ", out)
    assert "qgvae prior table --plan results/quick/plan.json" in out


def test_paper_generation_target_has_the_papers_setting():
    out = dry_run("generation")
    plan = _plan(REPO / "config" / "config.yaml")
    gen = plan["generation"]
    counts = job_counts(out)
    assert gen["dataset"] == "cifar10" and {50, 200, 500} <= set(gen["epochs"])
    assert counts["prior_sample"] == counts["prior_evaluate"] == 2 * len(gen["epochs"])
    # the tokenizers: Table 1's CIFAR-10 VQ-VAE and QG-VAE, retrained with kept checkpoints
    assert trained_runs(out) == set(gen["runs"])
    assert {r.split("/")[2] for r in gen["runs"]} == {"vqvae", "qgvae"}
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    for block in blocks:
        if re.match(r"rule (prior_\w+|train):", block):
            assert "gpu=1" in re.search(r"resources: (.*)", block).group(1), block[:200]


def test_all_and_the_tables_include_the_generation_study():
    out = dry_run("all", QUICK)
    counts = job_counts(out)
    assert counts["generation_table"] == 1 and counts["generation_figure"] == 2
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    tables = next(b for b in blocks if re.match(r"(?:local)?rule tables:", b))
    assert "metrics_epoch0004.json" in tables  # reports/tables.tex waits for the study


# ---------------------------------------------------------------------------------------------
# The quick generation target end to end (a few minutes on 2 cores; needs the FID weights)


@pytest.mark.slow
@pytest.mark.weights
def test_quick_generation_end_to_end(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    args = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    quick = ["--configfile", str(tmp_path / "config" / "quick.yaml")]
    res = snakemake(
        *args,
        "--workflow-profile",
        str(PROFILE),
        "--cores",
        "2",
        "generation",
        *quick,
        cwd=tmp_path,
        timeout=1800,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    figures = tmp_path / "reports" / "figures"
    for name in ("generation_fid", "generation_samples"):
        meta = json.loads((figures / f"{name}.json").read_text())
        assert meta["no_data"] is None and (figures / f"{name}.png").stat().st_size > 0
    table = (tmp_path / "reports" / "targets" / "generation" / "tables.tex").read_text()
    assert "N = 16 samples against the first 16 test images" in table
    assert "not measured yet" not in table
    again = snakemake(*args, "--dry-run", "--cores", "2", "generation", *quick, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
