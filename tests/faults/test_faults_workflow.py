"""The workflow config: shell commands built from config values, and the dry run's refusals.

Snakemake runs from the repository on the quick config (no data, weights or results needed for
a dry run). A path with shell metacharacters stops the dry run with one line naming the key; a
path with a space (and the other characters a plain path may hold) reaches every rule's shell
command as one word: the printed commands are replayed through bash with a stand-in ``qgvae``
that records its arguments.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
QUICK = REPO / "config" / "quick.yaml"
REPORTS = "reports"  # workflow/rules/common.smk: REPORTS


def _snakemake(config: dict, tmp_path: Path, *args: str) -> tuple[int, str]:
    """A forced dry run of ``args`` (flags and targets) on ``config``: (status, output)."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    res = subprocess.run(
        [str(BIN / "snakemake"), "--dry-run", "--forceall", "--cores", "1", *args]
        + ["--configfile", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return res.returncode, res.stdout + res.stderr


def _quick() -> dict:
    return yaml.safe_load(QUICK.read_text())


def _refusal(out: str) -> str:
    lines = [line for line in out.splitlines() if "Invalid workflow configuration" in line]
    assert len(lines) == 1, out[-3000:]
    assert "Job stats" not in out and "rule train" not in out
    return lines[0]


INJECTIONS = {
    "results": "results/x;touch {marker};echo",
    "data_root": "data$(touch {marker})",
    "paper_values": "config/`touch {marker}`.yaml",
}


@pytest.mark.parametrize("key", list(INJECTIONS))
def test_dry_run_stops_on_a_shell_command_in_a_path(tmp_path, tally, key):
    case = tally("security", f"workflow config {key} holding a shell command (dry run)")
    marker = tmp_path / "INJECTED"
    config = dict(_quick(), **{key: INJECTIONS[key].format(marker=marker)})
    code, out = _snakemake(config, tmp_path, "all")
    assert code != 0
    line = _refusal(out)
    assert f"Invalid workflow configuration: {key}: " in line and "not a plain path" in line
    assert not marker.exists()
    case.passed()


def test_dry_run_names_the_cell_of_a_model_its_constructor_rejects(tmp_path, tally):
    case = tally("input", "workflow config heads: 3 with 64 tokens (dry run)")
    config = _quick()
    tokens = config["methods"]["qgvae"]["model"]["tokens"]
    config["ablations"]["axes"]["heads"]["values"]["3"] = {"qgvae": {"model": {"heads": 3}}}
    code, out = _snakemake(config, tmp_path, "all")
    assert code != 0
    line = _refusal(out)
    for part in ("ablations.axes.heads.values.3.qgvae", "table ablation_heads", "cell '3'"):
        assert part in line, line
    assert f"tokens ({tokens}) must be divisible by heads (3)" in line
    case.passed()


_FAKE_QGVAE = """#!{python}
import json, os, sys
with open(os.environ["FAKE_QGVAE_LOG"], "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def test_a_results_path_with_a_space_reaches_every_command_whole(tmp_path, tally):
    case = tally("security", "results path with a space, ',', '=', '+', '@': quoted everywhere")
    results = tmp_path / "my results, v=1+x@host"
    config = dict(_quick(), results=str(results))
    # the report's target: every run, plan, table and figure rule of the quick config
    code, out = _snakemake(config, tmp_path, "--printshellcmds", f"{REPORTS}/report.tex")
    assert code == 0, out[-3000:]
    commands: dict[str, str] = {}  # one command per qgvae subcommand
    for line in out.splitlines():  # `qgvae SUB ...`, possibly after VAR=value words
        found = re.match(r"Shell command: ((?:[A-Z_]+=\S+ )*qgvae (\S+).*)", line)
        if found:
            commands.setdefault(found.group(2), found.group(1))
    assert {"train", "reconstruct", "evaluate", "plan", "tables", "figures", "report"} <= set(
        commands
    ), sorted(commands)

    fake = tmp_path / "bin" / "qgvae"
    fake.parent.mkdir()
    fake.write_text(_FAKE_QGVAE.format(python=sys.executable))
    fake.chmod(0o755)
    record = tmp_path / "argv.jsonl"
    env = dict(os.environ, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    env["FAKE_QGVAE_LOG"] = str(record)
    for sub, command in commands.items():
        words = shlex.split(command)
        for redirect, target in zip(words, words[1:]):
            if redirect in (">", ">>"):
                Path(target).parent.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {command}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, f"{sub}: {res.stderr}"
        logs = [t for r, t in zip(words, words[1:]) if r in (">", ">>")]
        assert logs and all(Path(log).is_file() for log in logs), command  # redirect intact
    argvs = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(argvs) == len(commands)
    for argv in argvs:
        if argv[0] not in ("fetch-weights", "prepare-data"):  # they get no path under results
            assert any(word.startswith(str(results)) for word in argv), argv
        pieces = [word for word in argv if "my results" in word or "v=1+x@host" in word]
        assert all(str(results) in word for word in pieces), argv  # never split
    assert (results / ".metric_weights.done").is_file()  # fetch_weights' `&& touch` marker
    case.passed()
