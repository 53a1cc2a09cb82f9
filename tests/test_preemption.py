"""Training survives preemption: kill a run midway, rerun it, get what an uninterrupted run gets.

What a cluster does to a training job, done to real processes on CPU:

* SIGTERM (SLURM's time limit, preemption, ``scancel``): ``qgvae train`` writes a checkpoint at
  the next step boundary and exits 143;
* SIGKILL (node failure, out-of-memory killer, the grace period running out): nothing is
  written; the last periodic checkpoint (``train.checkpoint_every``) is what survives.

Rerunning the same command (or the workflow with ``--rerun-incomplete``) must resume from the
checkpoint (``run.json`` ``resumed_from``), finish with bit-identical weights and the same
validation metrics as a run that was never interrupted, and never leave a ``model.pt`` behind
while the run is unfinished. The fast tests drive ``qgvae train`` directly; the ``slow`` ones
drive one training job of the workflow through Snakemake, including its incomplete-output marker.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64decode
from pathlib import Path

import pytest
import torch
import yaml
from conftest import assert_same_result_weights  # tests/ is on sys.path (pytest rootdir)

ROOT = Path(__file__).resolve().parents[1]
QGVAE = [sys.executable, "-m", "qgvae.cli"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SIGTERM_EXIT = 143  # `qgvae train` after writing its checkpoint on SIGTERM/SIGINT

# A model small enough for 40 steps in a few CPU seconds, with a checkpoint every 2 steps: the
# first checkpoint comes early, and the run is then stopped (SIGSTOP) before it is signalled, so
# the interruption lands midway however fast or loaded the machine is.
TINY = {
    "method": "qgvae",
    "dataset": "photos",
    "seed": 0,
    "model": {
        "tokens": 8,
        "code_dim": 8,
        "codebook_size": 16,
        "heads": 2,
        "min_channels": 8,
        "max_channels": 16,
        "reset_every": 7,
        "ordering": "sample",
    },
    "train": {
        "batch_size": 8,
        "max_steps": 40,
        "checkpoint_every": 2,
        "log_every": 2,
        "val_every": 10,
        "val_batches": 1,
        "device": "cpu",
        "amp": "none",
        "lr": 1.0e-3,
    },
}


def _env() -> dict[str, str]:
    """The child's environment: one thread (as the workflow's threads: 1), this checkout first."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # the workflow's rules call `qgvae`: the one installed beside this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data root prepared the documented way: `qgvae prepare-data photos --root DIR`."""
    from qgvae.cli import main

    root = tmp_path_factory.mktemp("data")
    assert main(["prepare-data", "photos", "--root", str(root)]) == 0  # in-process: one launch less
    return root


@pytest.fixture(scope="module")
def tiny_config(data_root, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "run.yaml"
    path.write_text(yaml.safe_dump({**TINY, "data_root": str(data_root)}, sort_keys=False))
    return path


def _train_cmd(config: Path, out: Path) -> list[str]:
    return [*QGVAE, "train", "--config", str(config), "--out", str(out), "--no-progress"]


@pytest.fixture(scope="module")
def straight_run(tiny_config, tmp_path_factory) -> Path:
    """The reference: the same run, never interrupted."""
    out = tmp_path_factory.mktemp("straight") / "run"
    subprocess.run(_train_cmd(tiny_config, out), check=True, env=_env(), capture_output=True)
    assert (out / "model.pt").is_file()
    assert json.loads((out / "run.json").read_text())["resumed_from"] == []
    return out


# ---------------------------------------------------------------------------------- helpers


def _log_rows(run: Path) -> list[dict]:
    return [
        json.loads(line)
        for line in (run / "train_log.jsonl").read_text().splitlines()
        if line.strip()
    ]


def _metrics(run: Path) -> list[tuple]:
    """Every logged number that depends only on the training trajectory (not on wall time)."""
    timing = {"images_per_s"}
    return [
        tuple(sorted((k, v) for k, v in row.items() if k not in timing)) for row in _log_rows(run)
    ]


def _checkpoint_step(run: Path) -> int:
    return int(torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["step"])


def _assert_same_result(run: Path, reference: Path) -> None:
    assert_same_result_weights(reference, run)
    # validation MSE/PSNR, losses, code usage, lr: identical, row for row, step for step
    assert _metrics(run) == _metrics(reference)
    meta, ref = (json.loads((r / "run.json").read_text()) for r in (run, reference))
    assert meta["status"] == ref["status"] == "finished"
    assert meta["steps"] == ref["steps"]


def _wait_for_checkpoint(
    proc: subprocess.Popen, run: Path, min_step: int = 1, timeout: float = 120.0
) -> None:
    """Poll until the run has a checkpoint at >= min_step; meanwhile no model.pt may exist."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not (run / "model.pt").exists(), "model.pt appeared before the run finished"
        if (run / "checkpoint.pt").exists():
            try:
                if _checkpoint_step(run) >= min_step:
                    return
            except Exception:  # replaced while being read: try again
                pass
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(
                f"the run ended (rc {proc.returncode}) before it could be "
                f"interrupted; make it longer\n{out}"
            )
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"no checkpoint at step >= {min_step} after {timeout:.0f} s")


def _interrupt(proc: subprocess.Popen, sig: int, *, group: bool = False) -> int:
    """Freeze the process (so it cannot finish meanwhile), signal it, let it go on, wait."""
    pid = os.getpgid(proc.pid) if group else proc.pid
    kill = os.killpg if group else os.kill
    kill(pid, signal.SIGSTOP)
    kill(pid, sig)
    kill(pid, signal.SIGCONT)
    try:
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            kill(pid, signal.SIGKILL)


def _assert_unfinished(run: Path) -> None:
    assert (run / "checkpoint.pt").is_file(), "no checkpoint survived the interruption"
    assert not (run / "model.pt").exists(), "an interrupted run left a model.pt"
    assert json.loads((run / "run.json").read_text())["status"] == "running"


# ------------------------------------------------------------------ `qgvae train` directly


def test_sigterm_checkpoints_and_resumes_to_identical_weights(tiny_config, straight_run, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(tiny_config, run),
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for_checkpoint(proc, run, min_step=2)
    rc = _interrupt(proc, signal.SIGTERM)
    out = proc.stdout.read()
    assert rc == SIGTERM_EXIT, out
    assert "checkpoint written" in out and "rerun to resume" in out, out
    _assert_unfinished(run)
    stopped_at = _checkpoint_step(run)
    assert 2 <= stopped_at < TINY["train"]["max_steps"]
    # the checkpoint is from the signal, not only the last periodic one: it holds every step done
    assert _log_rows(run)[-1]["step"] <= stopped_at

    resumed = subprocess.run(
        _train_cmd(tiny_config, run), env=_env(), text=True, capture_output=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads((run / "run.json").read_text())["resumed_from"] == [stopped_at]
    _assert_same_result(run, straight_run)


def test_sigkill_resumes_from_the_last_periodic_checkpoint(tiny_config, straight_run, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(tiny_config, run),
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for_checkpoint(proc, run, min_step=6)
    rc = _interrupt(proc, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    _assert_unfinished(run)
    last = _checkpoint_step(run)
    assert last % TINY["train"]["checkpoint_every"] == 0 and last >= 6

    resumed = subprocess.run(
        _train_cmd(tiny_config, run), env=_env(), text=True, capture_output=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads((run / "run.json").read_text())["resumed_from"] == [last]
    _assert_same_result(run, straight_run)


@pytest.mark.slow
def test_two_interruptions_in_a_row(tiny_config, straight_run, tmp_path):
    """Preempted twice (SIGTERM, then SIGKILL): resumed_from lists both, the result is the same."""
    run = tmp_path / "run"
    first = subprocess.Popen(
        _train_cmd(tiny_config, run),
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for_checkpoint(first, run, min_step=2)
    assert _interrupt(first, signal.SIGTERM) == SIGTERM_EXIT
    s1 = _checkpoint_step(run)
    second = subprocess.Popen(
        _train_cmd(tiny_config, run),
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for_checkpoint(second, run, min_step=s1 + 6)
    assert _interrupt(second, signal.SIGKILL) == -signal.SIGKILL
    s2 = _checkpoint_step(run)
    _assert_unfinished(run)
    subprocess.run(_train_cmd(tiny_config, run), check=True, env=_env(), capture_output=True)
    assert json.loads((run / "run.json").read_text())["resumed_from"] == [s1, s2]
    _assert_same_result(run, straight_run)


# ------------------------------------------------------------ one training job of the workflow

# The quick workflow's config with shorter training (60 steps, a checkpoint every 10) and its
# results and data under the test's folders; only the target's one training job runs.
WORKFLOW_TRAIN = {"max_steps": 60, "checkpoint_every": 10, "log_every": 10, "val_every": 20}


@pytest.fixture(scope="module")
def workflow_config(data_root, tmp_path_factory):
    """(config file, the qgvae default run's folder relative to the workdir)."""
    from qgvae.plan import build_plan

    cfg = yaml.safe_load((ROOT / "config" / "quick.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["defaults"]["train"].update(WORKFLOW_TRAIN)
    cfg["data_root"] = str(data_root)
    cfg["paper_values"] = str(ROOT / "config" / "paper_values.yaml")
    cfg["results"] = "results"
    path = tmp_path_factory.mktemp("wcfg") / "workflow.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    runs = [
        p
        for p, r in build_plan(cfg)["runs"].items()
        if r["method"] == "qgvae" and r["variant"].startswith("default")
    ]
    assert len(runs) == 1, runs
    return path, runs[0]


def _snakemake(workdir: Path, config: Path, target: str, *extra: str) -> list[str]:
    return [
        *SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--workflow-profile",
        "none",
        "--cores",
        "1",
        "--configfile",
        str(config),
        "--nocolor",
        *extra,
        "--",
        target,
    ]


def _start_group(cmd: list[str]) -> subprocess.Popen:
    """Run in its own process group, as a batch job's processes are: signals reach all of it."""
    return subprocess.Popen(
        cmd,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _incomplete_markers(workdir: Path) -> set[str]:
    """Outputs Snakemake has marked incomplete (.snakemake/incomplete/<urlsafe base64 of path>)."""
    folder = workdir / ".snakemake" / "incomplete"
    names = [p.name for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return {
        urlsafe_b64decode(n.encode()).decode(errors="replace")
        for n in names
        if n != "migration_underway" and not n.startswith("@")
    }


@pytest.fixture(scope="module")
def workflow_straight(workflow_config, tmp_path_factory) -> Path:
    config, run = workflow_config
    workdir = tmp_path_factory.mktemp("wf_straight")
    done = subprocess.run(
        _snakemake(workdir, config, f"{run}/model.pt"), env=_env(), text=True, capture_output=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return workdir / run


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_workflow_training_job_resumes_after_kill(
    sig, workflow_config, workflow_straight, tmp_path
):
    config, run_rel = workflow_config
    target = f"{run_rel}/model.pt"
    run = tmp_path / run_rel
    proc = _start_group(_snakemake(tmp_path, config, target))
    _wait_for_checkpoint(proc, run, min_step=10, timeout=300)
    rc = _interrupt(proc, sig, group=True)  # Snakemake and the training job below it
    out = proc.stdout.read()
    assert rc != 0, out
    _assert_unfinished(run)
    last = _checkpoint_step(run)

    if sig == signal.SIGKILL:
        # Snakemake died without cleaning up: its lock on the working directory is left (removed
        # with --unlock, as after any killed Snakemake) and so is its incomplete-output marker
        # for model.pt, which --rerun-incomplete below acts on. (Because model.pt is written last
        # and atomically, it never exists while marked incomplete: no partial result to delete.)
        subprocess.run(
            _snakemake(tmp_path, config, target, "--unlock"),
            check=True,
            env=_env(),
            capture_output=True,
        )
        assert target in _incomplete_markers(tmp_path)
        assert not (run / "model.pt").exists()

    rerun = subprocess.run(
        _snakemake(tmp_path, config, target, "--rerun-incomplete"),
        env=_env(),
        text=True,
        capture_output=True,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["resumed_from"] == [last], "the rerun started afresh instead of resuming"
    _assert_same_result(run, workflow_straight)
    assert target not in _incomplete_markers(tmp_path)
    # nothing left to do: the resumed output is complete and not marked incomplete
    check = subprocess.run(
        _snakemake(tmp_path, config, target, "--dry-run"),
        env=_env(),
        text=True,
        capture_output=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Nothing to be done" in check.stdout + check.stderr, check.stdout + check.stderr
