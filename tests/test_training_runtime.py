"""What a training shows and survives while it runs: resume from checkpoints written on a GPU,
a full disk, the stated precision, progress lines, TensorBoard event files and sample grids."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from qgvae.errors import ConfigError, DiskFull
from qgvae.training import checkpoint, trainer
from qgvae.training.precision import cpu_bf16_native, precision_for


def _rows(run):
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


# -- resume from a checkpoint written on a GPU ---------------------------------------------------
def _rewrite_checkpoint(run, edit):
    """Edit ``checkpoint.pt`` of a stopped run and record its new digest, as a GPU run writes it."""
    path = run / "checkpoint.pt"
    blob = torch.load(path, map_location="cpu", weights_only=True)
    edit(blob)
    meta = json.loads((run / "run.json").read_text())
    sha = checkpoint.save_pt(path, blob)
    checkpoint.file_record(meta, "checkpoint.pt", sha, step=blob["step"])
    (run / "run.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "cuda_state",
    [
        {"device": 3, "state": torch.zeros(16, dtype=torch.uint8)},  # this version: the run's GPU
        [torch.zeros(16, dtype=torch.uint8)] * 2,  # earlier versions: every visible GPU
    ],
    ids=["run-device", "every-gpu"],
)
def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(
    tmp_path, photos_root, tiny_run, same_weights, cuda_state
):
    cfg = tiny_run()
    trainer.train(cfg, tmp_path / "straight")
    run = tmp_path / "resumed"
    trainer.train(cfg, run, stop_after=2)
    _rewrite_checkpoint(run, lambda blob: blob["rng"].__setitem__("cuda", cuda_state))
    meta = trainer.train(cfg, run)
    assert meta["status"] == "finished" and meta["resumed_from"] == [2]
    note = meta["attempts"][-1]["note"]
    assert "CUDA random state" in note and "not restored" in note and "cpu" in note
    same_weights(tmp_path / "straight", run)  # the CPU generator was restored


def test_cuda_random_states_go_to_the_devices_that_exist(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: calls.append((s.device.type, i)))
    cpu = torch.get_rng_state()
    state = {"torch": cpu, "cuda": {"device": 5, "state": torch.zeros(16, dtype=torch.uint8)}}
    assert checkpoint.set_rng_state(state, "cuda:2") is None
    assert calls == [("cpu", 2)]  # the saved GPU's state onto the GPU this attempt uses
    calls.clear()
    old = {"torch": cpu, "cuda": [torch.zeros(16, dtype=torch.uint8)] * 3}
    note = checkpoint.set_rng_state(old, "cuda")
    assert calls == [("cpu", 0)]
    assert note == (
        "the checkpoint holds the CUDA random states of 3 GPU(s), this machine has 1: "
        "restored for the first 1"
    )


# -- a full disk ----------------------------------------------------------------------------------
def test_a_full_disk_is_one_line_and_the_earlier_checkpoint_survives(
    tmp_path, photos_root, tiny_run, monkeypatch
):
    cfg = tiny_run(max_steps=6, checkpoint_every=2)
    run = tmp_path / "run"
    trainer.train(cfg, run, stop_after=2)
    before = (run / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def short_write(obj, f, *a, **k):  # what torch.save raises when the disk fills up
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 70592 vs 7")

    monkeypatch.setattr(torch, "save", short_write)
    usage = type("usage", (), {"free": 180_000, "total": 1, "used": 1})
    monkeypatch.setattr("qgvae.io.shutil.disk_usage", lambda p: usage)
    with pytest.raises(DiskFull) as err:
        trainer.train(cfg, run)
    msg = str(err.value)
    assert "\n" not in msg and str(run / "checkpoint.pt") in msg
    assert "0.2 MB free, about" in msg and "MB needed" in msg
    assert "the earlier checkpoint.pt is intact" in msg
    assert "resumes from checkpoint.pt (step 2)" in msg
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not list(run.glob(".*.tmp"))
    monkeypatch.setattr(torch, "save", real_save)
    monkeypatch.undo()
    assert trainer.train(cfg, run)["status"] == "finished"  # space freed: it resumes


def test_a_runtime_error_with_room_to_spare_is_not_called_a_full_disk(tmp_path):
    from qgvae.io import atomic_path

    with pytest.raises(RuntimeError, match="unexpected pos"), atomic_path(tmp_path / "f", need=10):
        raise RuntimeError("unexpected pos 1 vs 2")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_real_full_tmpfs(tmp_path, photos_root):
    """The real thing: ``qgvae train`` on a tmpfs that holds one checkpoint but not a second."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2600k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        sys.path.insert(0, os.path.dirname(__file__))
        from conftest import make_tiny_run

        cfg = make_tiny_run(photos_root, max_steps=6, checkpoint_every=2)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "QGVAE_PROGRESS_SECONDS": "0"}
        cmd = [sys.executable, "-m", "qgvae.cli", "train", "--config-json", json.dumps(cfg)]
        cmd += ["--out", str(mnt / "run")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "its file system is full" in lines[0], proc.stderr
        assert "resumes from checkpoint.pt (step 2)" in lines[0]
        blob = torch.load(mnt / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)
        assert blob["step"] == 2
    finally:
        subprocess.run(["umount", str(mnt)])


# -- precision ------------------------------------------------------------------------------------
def test_precision_is_stated_and_an_impossible_one_refused(tmp_path, photos_root, tiny_run):
    meta = trainer.train(tiny_run(), tmp_path / "fp32")
    assert meta["precision"] == {
        "device": "cpu",
        "autocast": "none",
        "cpu_bf16_native": cpu_bf16_native(),
    }
    assert meta["hardware"]["device"] == "cpu"
    cuda = precision_for(torch.device("cuda"), {"amp": "bf16", "tf32": False})
    assert cuda.dtype == torch.bfloat16 and cuda.record()["tf32"] is False
    if cpu_bf16_native():
        assert precision_for(torch.device("cpu"), {"cpu_amp": "bf16"}).dtype == torch.bfloat16
    else:
        with pytest.raises(ConfigError, match="train.cpu_amp: bf16 needs a CPU with native bf16"):
            trainer.train(tiny_run(cpu_amp="bf16"), tmp_path / "bf16")
        assert not (tmp_path / "bf16" / "train_log.jsonl").exists()  # refused before work


# -- what a run shows while it runs ---------------------------------------------------------------
def test_progress_lines_tensorboard_and_sample_grids(
    tmp_path, photos_root, tiny_run, capsys, monkeypatch
):
    monkeypatch.setenv("QGVAE_PROGRESS_SECONDS", "0.000001")
    run = tmp_path / "run"
    trainer.train(tiny_run(), run)  # stderr is not a terminal under pytest: plain lines
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"train {run}: step ")]
    assert len(lines) >= 8 and "step 8/8 (100.0 %)" in lines[-1] and "images/s" in lines[-1]
    assert any("loss " in line for line in lines) and any("ETA" in line for line in lines)
    # sample grids: one per validation (steps 4 and 8), originals over reconstructions
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["step_0000004.png", "step_0000008.png"]
    img = Image.open(run / "samples" / grids[0])
    assert img.size == (8 * 34 + 2, 2 * 34 + 2) and img.mode == "RGB"
    # TensorBoard: the logged scalars, validation against the floor, one image per validation
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train/loss", "train/mse", "train/usage", "train/lr", "train/images_per_s"):
        assert tag in tags["scalars"], tag
    assert [e.step for e in acc.Scalars("val/psnr_over_floor")] == [4, 8]
    logged = {r["step"]: r["loss"] for r in _rows(run) if r["split"] == "train"}
    assert {e.step: e.value for e in acc.Scalars("train/loss")} == pytest.approx(logged)
    assert [e.step for e in acc.Images("val/reconstructions")] == [4, 8]


def test_a_failing_event_writer_is_one_warning(tmp_path, photos_root, tiny_run):
    run = tmp_path / "run"
    run.mkdir()
    (run / "tb").write_text("a file where the event folder should be")
    with pytest.warns(RuntimeWarning, match="TensorBoard: cannot write event files") as caught:
        meta = trainer.train(tiny_run(), run)
    assert meta["status"] == "finished"
    assert sum("TensorBoard" in str(w.message) for w in caught) == 1


# -- on a GPU (.ci/gpu.sh runs these with -m cuda) -------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_a_cuda_run_stops_resumes_and_moves_to_the_cpu(tmp_path, photos_root, tiny_run, compiled):
    cfg = tiny_run(device="cuda:0", compile=compiled, amp="bf16")
    run = tmp_path / "gpu"
    trainer.train(cfg, run, stop_after=2)
    blob = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert blob["rng"]["cuda"]["device"] == 0 and blob["rng"]["cuda"]["state"].device.type == "cpu"
    meta = trainer.train(cfg, run, stop_after=4)  # resumed on the GPU: nothing to note
    assert "note" not in meta["attempts"][-1] and meta["precision"]["autocast"] == "bfloat16"
    assert meta["hardware"]["gpu"] == torch.cuda.get_device_name(0)
    meta = trainer.train(dict(cfg, train={**cfg["train"], "device": "cpu"}), run)  # to the CPU
    assert meta["status"] == "finished" and meta["resumed_from"] == [2, 4]
    assert "not restored: this attempt runs on cpu" in meta["attempts"][-1]["note"]
