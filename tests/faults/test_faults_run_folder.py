"""Faults in a run folder: damaged files, interrupted writes, a second process, a stale lock.

Each case damages a copy of a real (tiny) run folder and runs the command that reads it. A
refusal must be one stderr line naming the file and the fix, with the exit status of
:mod:`qgvae.errors`, come before any data is read (``no_data``) or any network loaded
(``no_metric_networks``), and leave every file as it was; a fault the command can repair (a
torn log line, a leftover temporary, a corrupt shared cache) must be repaired, said so, and
lose nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from .helpers import copy_run, damage, refused, run_cli, set_record, snapshot

LOCK = (".train.lock",)


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("how", ["truncated", "empty"])
@pytest.mark.parametrize("record", [True, False], ids=["sha256 recorded", "no record"])
def test_damaged_checkpoint_stops_the_resume(
    stopped_run, cfg_file, tmp_path, tally, how, record, no_data
):
    case = tally("fault", f"checkpoint.pt {how} ({'sha256 recorded' if record else 'no record'})")
    run = copy_run(stopped_run, tmp_path / "run")
    if not record:
        set_record(run, "checkpoint.pt", None)
    damage(run / "checkpoint.pt", how)
    before = snapshot(run)
    res = run_cli("train", "--config", cfg_file, "--out", run)
    path = run / "checkpoint.pt"
    why = "sha256" if record else "unreadable"
    refused(res, command="train", code=1, names=[str(path), why, f"delete {path}", "restore"])
    assert snapshot(run, LOCK) == before
    case.passed()


def test_damaged_checkpoint_as_a_process(stopped_run, cfg_file, tmp_path, tally):
    """The same refusal from a real `qgvae train` process: status 1, one stderr line."""
    case = tally("fault", "checkpoint.pt truncated (a `qgvae train` process)")
    run = copy_run(stopped_run, tmp_path / "run")
    damage(run / "checkpoint.pt", "truncated")
    before = snapshot(run)
    qgvae = [sys.executable, "-m", "qgvae.cli"]
    res = subprocess.run(
        [*qgvae, "train", "--config", str(cfg_file), "--out", str(run)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 1, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("qgvae train: error: "), res.stderr
    assert str(run / "checkpoint.pt") in lines[0] and "delete" in lines[0]
    assert snapshot(run, LOCK) == before
    case.passed()


@pytest.mark.parametrize("record", [True, False], ids=["sha256 recorded", "no record"])
def test_truncated_model_pt_stops_reconstruct(finished_run, tmp_path, tally, record):
    case = tally("fault", f"model.pt truncated ({'sha256 recorded' if record else 'no record'})")
    run = copy_run(finished_run, tmp_path / "run")
    if not record:
        set_record(run, "model.pt", None)
    damage(run / "model.pt", "truncated")
    before = snapshot(run)
    res = run_cli("reconstruct", run, "--device", "cpu")
    fix = f"qgvae train --out {run}"
    refused(res, command="reconstruct", code=1, names=[str(run / "model.pt"), fix])
    assert snapshot(run) == before  # reconstructions.npz of the earlier call is kept
    case.passed()


@pytest.mark.parametrize("how", ["truncated", "bad CRC"])
def test_damaged_reconstructions_stop_evaluate(
    finished_run, tmp_path, tally, how, no_metric_networks
):
    case = tally("fault", f"reconstructions.npz {how}")
    run = copy_run(finished_run, tmp_path / "run")
    path = run / "reconstructions.npz"
    damage(path, "truncated" if how == "truncated" else "flipped")  # flipped: inside an array
    before = snapshot(run)
    res = run_cli("evaluate", run, "--device", "cpu")
    line = refused(res, command="evaluate", code=1, names=[str(path), f"qgvae reconstruct {run}"])
    assert ("CRC" in line) == (how == "bad CRC")
    assert snapshot(run) == before
    case.passed()


@pytest.mark.parametrize("command", ["train", "reconstruct", "evaluate"])
def test_corrupt_run_json(
    finished_run, stopped_run, cfg_file, tmp_path, tally, command, no_metric_networks, no_data
):
    case = tally("fault", f"run.json corrupt ({command})")
    run = copy_run(stopped_run if command == "train" else finished_run, tmp_path / "run")
    (run / "run.json").write_text('{"config": {"dataset": "pho')  # a write cut short
    before = snapshot(run)
    if command == "train":
        res = run_cli("train", "--config", cfg_file, "--out", run)
    else:
        res = run_cli(command, run, "--device", "cpu")
    refused(res, command=command, code=1, names=[str(run / "run.json"), "restore"])
    assert snapshot(run, LOCK) == before
    case.passed()


def test_another_configurations_checkpoint(stopped_run, tiny_cfg, tmp_path, tally, no_data):
    case = tally("fault", "train on a folder holding another configuration's checkpoint")
    run = copy_run(stopped_run, tmp_path / "run")
    other = dict(tiny_cfg, train={**tiny_cfg["train"], "lr": 1e-3})
    before = snapshot(run)
    res = run_cli("train", "--config-json", json.dumps(other), "--out", run)
    names = [str(run / "checkpoint.pt"), "different configuration", "another --out"]
    refused(res, command="train", code=1, names=names)
    assert snapshot(run, LOCK) == before
    case.passed()


def test_torn_last_log_line_is_dropped_on_resume(stopped_run, cfg_file, tmp_path, tally):
    case = tally("fault", "torn last line of train_log.jsonl (kill during a write)")
    run = copy_run(stopped_run, tmp_path / "run")
    log = run / "train_log.jsonl"
    kept = log.read_text()
    log.write_text(kept + '{"split": "train", "step": 3, "lo')
    res = run_cli("train", "--config", cfg_file, "--out", run)
    assert res.code == 0, res.err
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished" and meta["log_rows_dropped_unreadable"] == 1
    assert log.read_text().startswith(kept)  # the rows before the tear are all there
    assert [r["step"] for r in _rows(log) if r["split"] == "train"] == [2, 4]
    case.passed()


def test_leftover_temporary_is_removed(stopped_run, cfg_file, tmp_path, tally):
    case = tally("fault", "leftover .checkpoint.pt.*.tmp from a killed write")
    run = copy_run(stopped_run, tmp_path / "run")
    (run / ".checkpoint.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    res = run_cli("train", "--config", cfg_file, "--out", run)
    assert res.code == 0, res.err
    meta = json.loads((run / "run.json").read_text())
    assert meta["stale_temporaries_removed"] == [".checkpoint.pt.k1ll3d.tmp"]
    assert not list(run.glob(".*.tmp")) and meta["status"] == "finished"
    case.passed()


def test_resume_keeps_the_original_start(stopped_run, cfg_file, tmp_path, tally):
    case = tally("fault", "resume after an interruption: run.json keeps its original start")
    run = copy_run(stopped_run, tmp_path / "run")
    first = json.loads((run / "run.json").read_text())
    time.sleep(1.1)  # start times have a resolution of one second
    assert run_cli("train", "--config", cfg_file, "--out", run).code == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["start"] == first["start"]
    assert [a["from_step"] for a in meta["attempts"]] == [0, 2]
    assert meta["attempts"][1]["start"] > first["start"]
    case.passed()


_HOLD = """
import sys, time
from qgvae.training.checkpoint import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_train_on_one_folder_is_refused(stopped_run, cfg_file, tmp_path, tally):
    case = tally("fault", "two `qgvae train` on one --out")
    run = copy_run(stopped_run, tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run, LOCK)
        res = run_cli("train", "--config", cfg_file, "--out", run)
        names = [str(run), "in use by another `qgvae train`", f"pid {holder.pid}", "another --out"]
        refused(res, command="train", code=1, names=names)
        assert snapshot(run, LOCK) == before
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the kernel releases its lock
        holder.wait(timeout=60)
    assert run_cli("train", "--config", cfg_file, "--out", run).code == 0
    case.passed()


@pytest.mark.weights
@pytest.mark.parametrize("how", ["truncated", "pickle payload"])
def test_corrupt_shared_feature_cache_is_recomputed(finished_run, tmp_path, tally, how):
    """The originals' Inception features come from the shared cache; a damaged file is
    reported, recomputed and rewritten, and metrics.json says so."""
    from .helpers import Payload

    kind = "security" if how == "pickle payload" else "fault"
    case = tally(kind, f"shared Inception feature cache: {how}")
    run, cache = copy_run(finished_run, tmp_path / "run"), tmp_path / "cache"
    args = ["evaluate", run, "--device", "cpu", "--protocols", "native", "--fid-n", "2"]
    args += ["--features-cache", cache]  # rFID (and the cache) on 2 images: fast enough
    assert run_cli(*args).code == 0
    (path,) = cache.glob("*.npy")
    marker = tmp_path / "PAYLOAD_RAN"
    if how == "truncated":
        damage(path, "truncated")
    else:
        np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    kept = snapshot(run, ("metrics.json", "metrics_per_image.csv", "features_native.npy"))
    res = run_cli(*args)
    assert res.code == 0, res.err
    metrics = json.loads((run / "metrics.json").read_text())
    assert path.name in metrics["feature_cache_recomputed"][0]
    assert not metrics["protocols"]["native"]["rfid"]["originals_features_cached"]
    assert np.load(path).shape == (2, 2048) and not marker.exists()
    assert snapshot(run, ("metrics.json", "metrics_per_image.csv", "features_native.npy")) == kept
    case.passed()
