"""docs/own-tokenizer.md, run as written: a tokenizer outside qgvae/ and baselines/ goes through
train, reconstruct, evaluate and Table 1 of a workflow, beside a built-in baseline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "own-tokenizer.md"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def code_block(text: str, lang: str, first_line: str) -> str:
    """The fenced ``lang`` block of the walk-through whose first line is ``first_line``."""
    for block in re.findall(rf"```{lang}\n(.*?)```", text, re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"{DOC} has no {lang} block starting with {first_line!r}")


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    text = DOC.read_text()
    work = tmp_path_factory.mktemp("own")
    (work / "mine").mkdir()
    (work / "mine" / "my_tokenizer.py").write_text(code_block(text, "python", "# my_tokenizer.py"))
    config = code_block(text, "yaml", "# my_benchmark.yaml")
    config = config.replace("config/paper_values.yaml", str(REPO / "config" / "paper_values.yaml"))
    (work / "my_benchmark.yaml").write_text(config)
    env = dict(os.environ, PYTHONPATH=str(work / "mine"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return work, env


def snakemake(work: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        "2",
        *args,
        "--configfile",
        str(work / "my_benchmark.yaml"),
    ]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)


def test_the_walkthrough_tokenizer_meets_the_interface(walkthrough):
    """Before any workflow: its class is found from the config's `class` and decodes its codes
    exactly as its forward pass reconstructs (what the evaluator relies on)."""
    import torch

    work, _ = walkthrough
    sys.path.insert(0, str(work / "mine"))
    try:
        from qgvae.methods import get_method

        cls = get_method("patchvq", "my_tokenizer:PatchTokenizer")
        model = cls(in_channels=3, image_size=32).eval()
        x = torch.rand(4, 3, 32, 32)
        codes = model.encode(x)
        assert codes.shape == (4, model.num_tokens) == (4, 16)
        assert torch.equal(model.decode(codes), model(x).recon)
        assert model.bits_per_image() == 16 * 6
    finally:
        sys.path.remove(str(work / "mine"))
        sys.modules.pop("my_tokenizer", None)


@pytest.mark.weights
def test_the_walkthrough_runs_table1_with_the_new_method(walkthrough):
    work, env = walkthrough
    res = snakemake(work, env, "table1")
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    runs = sorted((work / "results/mine/photos/patchvq").glob("*/seed0"))
    assert len(runs) == 1, runs
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["method"] == "patchvq" and metrics["bits_per_image"] == 96
    for protocol in ("vqwae", "native"):
        assert metrics["protocols"][protocol]["psnr"]["mean"] > 0
        assert metrics["protocols"][protocol]["rfid"]["n"] == 32
    run = json.loads((runs[0] / "run.json").read_text())
    assert run["config"]["method_class"] == "my_tokenizer:PatchTokenizer"
    table = (work / "reports/targets/table1/tables.tex").read_text()
    assert "Patch-VQ" in table and "VQ-VAE" in table
    assert (work / "reports/figures/recon_grid_photos.png").stat().st_size > 0
