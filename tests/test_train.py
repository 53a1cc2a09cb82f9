"""The trainer: resume equivalence, divergence handling, run metadata, logs, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from qgvae.training import trainer


@pytest.mark.parametrize("ordering", ["sample", "batch"])
def test_resume_reaches_the_same_weights(tmp_path, photos_root, tiny_run, ordering, same_weights):
    # "sample" needs the RNG state restored, "batch" the model's step count: stopping after step
    # 2 makes the 3rd step a masked one only if the count survives the checkpoint
    cfg = tiny_run(model={"ordering": ordering})
    trainer.train(cfg, tmp_path / "straight")
    trainer.train(cfg, tmp_path / "resumed", stop_after=2)
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    assert not (tmp_path / "resumed" / "model.pt").exists(), "an interrupted run wrote a result"
    meta = trainer.train(cfg, tmp_path / "resumed")
    assert meta["resumed_from"] == [2]
    same_weights(tmp_path / "straight", tmp_path / "resumed")
    # the log holds every step exactly once, as in the uninterrupted run
    rows = lambda d: [json.loads(line) for line in (d / "train_log.jsonl").read_text().splitlines()]
    steps = lambda d: [(r["split"], r["step"]) for r in rows(d)]
    assert steps(tmp_path / "straight") == steps(tmp_path / "resumed")


def test_resume_refuses_a_different_config(tmp_path, photos_root, tiny_run):
    trainer.train(tiny_run(), tmp_path, stop_after=2)
    with pytest.raises(RuntimeError, match="different configuration"):
        trainer.train(tiny_run(lr=1e-3), tmp_path)


def test_resume_accepts_a_different_cadence_but_not_another_seed(tmp_path, photos_root, tiny_run):
    """Logging / checkpoint cadence and device do not change what is trained; the seed does."""
    trainer.train(tiny_run(), tmp_path / "a", stop_after=2)
    meta = trainer.train(tiny_run(log_every=4, checkpoint_every=50), tmp_path / "a")
    assert meta["status"] == "finished" and meta["resumed_from"] == [2]
    trainer.train(tiny_run(), tmp_path / "b", stop_after=2)
    other_seed = dict(tiny_run(), seed=1)
    with pytest.raises(RuntimeError, match="different configuration"):
        trainer.train(other_seed, tmp_path / "b")


def test_run_json_and_log(tmp_path, photos_root, tiny_run):
    cfg = tiny_run()
    trainer.train(cfg, tmp_path)
    meta = json.loads((tmp_path / "run.json").read_text())
    for key in ("config", "seed", "git_commit", "versions", "hardware", "start", "end"):
        assert key in meta
    assert meta["status"] == "finished" and meta["steps"] == 8
    assert torch.__version__.startswith(meta["versions"]["torch"])
    assert meta["config"] == json.loads(json.dumps(cfg))
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [2, 4, 6, 8]
    for r in train_rows:
        for key in ("loss", "mse", "codebook", "commit", "usage", "images_per_s"):
            assert key in r and r[key] == r[key]  # present and not NaN
        assert 0 < r["usage"] <= 1
    assert [r["step"] for r in rows if r["split"] == "val"] == [4, 8]


def test_nan_loss_stops_without_result(tmp_path, photos_root, monkeypatch, tiny_run):
    from qgvae.training import step

    real = step.train_step
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        output, loss = real(*args, **kwargs)
        calls["n"] += 1
        return output, loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(step, "train_step", poisoned)
    with pytest.raises(trainer.TrainingDiverged, match="step 3"):
        trainer.train(tiny_run(), tmp_path)
    assert not (tmp_path / "model.pt").exists()
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "diverged"


def test_loss_falls(tmp_path, photos_root, tiny_run):
    cfg = tiny_run(max_steps=40, log_every=10, lr=2e-3)
    trainer.train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    mse = [r["mse"] for r in rows if r["split"] == "train"]
    assert mse[-1] < mse[0]


def test_cli_train_and_reconstruct(tmp_path, photos_root, capsys, tiny_run):
    from qgvae.cli import main

    cfg = tiny_run()
    out = tmp_path / "run"
    assert main(["train", "--config-json", json.dumps(cfg), "--out", str(out)]) == 0
    assert main(["reconstruct", str(out)]) == 0
    import numpy as np

    rec = np.load(out / "reconstructions.npz")
    assert rec["originals"].shape == rec["reconstructions"].shape == (16, 3, 32, 32)
    assert rec["originals"].dtype == rec["reconstructions"].dtype == np.uint8
    assert rec["codes"].shape == (16, 8) and int(rec["codebook_size"]) == 16
    ana = np.load(out / "analysis.npz")
    assert ana["influence"].shape == (8, 32, 32)
    assert ana["progressive"].shape[0] == len(ana["progressive_k"]) == 9


def test_cli_reports_bad_config(tmp_path, capsys):
    from qgvae.cli import main

    code = main(
        [
            "train",
            "--config-json",
            json.dumps({"method": "qgvae", "dataset": "photos", "train": {"lr": "fast"}}),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "train.lr" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_reconstruction_rounds_not_truncates():
    from qgvae.evaluation.reconstruct import to_uint8

    x = torch.tensor([0.0, 0.999 / 255, 1.5 / 255, 254.6 / 255, 1.0, 1.2, -0.1])
    assert to_uint8(x).tolist() == [0, 1, 2, 255, 255, 255, 0]
