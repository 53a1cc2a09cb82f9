"""Security: crafted run-folder files and config values are refused; their payload never runs.

Each crafted file carries a pickle payload that creates a marker file when unpickled; a control
step shows that it does run on an unsafe load (so the test could fail), then the command must
refuse the file with one line naming it, leave the marker absent and the run folder unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qgvae.io import hash_file

from .helpers import Payload, copy_run, damage, refused, run_cli, set_record, snapshot

LOCK = (".train.lock",)


def _assert_payload_works(marker, load) -> None:
    load()
    assert marker.exists(), "control: the payload did not run on an unsafe load"
    marker.unlink()


@pytest.mark.parametrize("record", ["a matching sha256 in run.json", "no sha256 in run.json"])
def test_crafted_model_pt_runs_no_code(finished_run, tiny_cfg, tmp_path, tally, record):
    case = tally("security", f"crafted model.pt with a pickle payload, {record}")
    run = copy_run(finished_run, tmp_path / "run")
    marker, path = tmp_path / "PAYLOAD_RAN", run / "model.pt"
    torch.save({"model": {"w": Payload(marker)}, "config": tiny_cfg}, path)
    _assert_payload_works(marker, lambda: torch.load(path, weights_only=False))
    set_record(run, "model.pt", hash_file(path) if record.startswith("a matching") else None)
    before = snapshot(run)
    res = run_cli("reconstruct", run, "--device", "cpu")
    refused(
        res,
        command="reconstruct",
        code=1,
        names=[str(path), "weights-only", "never load it with weights_only=False", "qgvae train"],
    )
    assert not marker.exists()
    assert snapshot(run) == before
    case.passed()


def test_crafted_checkpoint_pt_runs_no_code(
    stopped_run, cfg_file, tiny_cfg, tmp_path, tally, no_data
):
    case = tally("security", "crafted checkpoint.pt with a pickle payload (resume)")
    run = copy_run(stopped_run, tmp_path / "run")
    marker, path = tmp_path / "PAYLOAD_RAN", run / "checkpoint.pt"
    torch.save({"optimizer": Payload(marker), "config": tiny_cfg, "step": 2}, path)
    _assert_payload_works(marker, lambda: torch.load(path, weights_only=False))
    set_record(run, "checkpoint.pt", hash_file(path))  # the attacker rewrote run.json too
    before = snapshot(run)
    res = run_cli("train", "--config", cfg_file, "--out", run)
    refused(res, command="train", code=1, names=[str(path), "weights-only", f"delete {path}"])
    assert not marker.exists()
    assert snapshot(run, LOCK) == before
    case.passed()


@pytest.mark.parametrize("name", ["checkpoint.pt", "model.pt"])
def test_flipped_bytes_are_refused_by_the_sha256(
    stopped_run, finished_run, cfg_file, tmp_path, tally, name, no_data
):
    case = tally("security", f"400 flipped bytes inside {name}")
    src = stopped_run if name == "checkpoint.pt" else finished_run
    run = copy_run(src, tmp_path / "run")
    damage(run / name, "flipped")
    before = snapshot(run)
    if name == "checkpoint.pt":
        res, command, fix = run_cli("train", "--config", cfg_file, "--out", run), "train", "delete"
    else:
        res, command, fix = run_cli("reconstruct", run, "--device", "cpu"), "reconstruct", "train"
    refused(res, command=command, code=1, names=[str(run / name), "sha256", "run.json", fix])
    assert snapshot(run, LOCK) == before
    case.passed()


def test_crafted_reconstructions_npz_runs_no_code(
    finished_run, tmp_path, tally, no_metric_networks
):
    case = tally("security", "reconstructions.npz holding a pickled object array")
    run = copy_run(finished_run, tmp_path / "run")
    marker, path = tmp_path / "PAYLOAD_RAN", run / "reconstructions.npz"
    arrays = dict(np.load(path))
    arrays["codes"] = np.array([Payload(marker)], dtype=object)
    np.savez(path, **arrays)
    _assert_payload_works(marker, lambda: np.load(path, allow_pickle=True)["codes"])
    before = snapshot(run)
    res = run_cli("evaluate", run, "--device", "cpu")
    refused(res, command="evaluate", code=1, names=[str(path), f"qgvae reconstruct {run}"])
    assert not marker.exists()
    assert snapshot(run) == before
    case.passed()


def test_run_config_data_root_with_shell_metacharacters(tiny_cfg, tmp_path, tally):
    import json

    case = tally("security", "run config data_root with shell metacharacters")
    marker = tmp_path / "INJECTED"
    cfg = dict(tiny_cfg, data_root=f"data;touch {marker};echo")
    out = tmp_path / "run"
    res = run_cli("train", "--config-json", json.dumps(cfg), "--out", out)
    refused(res, command="train", code=2, names=["data_root", "not a plain path", "';'"])
    assert not marker.exists() and not out.exists()
    case.passed()
