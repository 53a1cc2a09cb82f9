"""Learning-rate schedules, best-validation selection, kept checkpoints, the validation floor
and the progress summary of the trainer."""

from __future__ import annotations

import json
import math

import pytest
import torch

from qgvae.training import schedule, trainer, validation
from qgvae.training.checkpoint import load_pt


def _val_rows(run):
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "val"]


def test_warmup_cosine_matches_closed_form():
    total, warmup = 100, 10
    for step in range(total + 1):
        want = (
            (step + 1) / warmup
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        )
        assert schedule.warmup_cosine(step, warmup, total) == pytest.approx(want)
    assert schedule.warmup_cosine(total, warmup, total) == pytest.approx(0.0, abs=1e-12)


def test_plateau_settings_reach_the_scheduler(tiny_run):
    cfg = tiny_run(lr_schedule="plateau", plateau_patience=7, plateau_threshold=0.01)
    model = torch.nn.Linear(2, 2)
    opt = schedule.make_optimizer(model, cfg["train"], torch.device("cpu"))
    sched = schedule.make_scheduler(opt, cfg["train"], 10)
    assert (sched.patience, sched.threshold, sched.factor) == (7, 0.01, 0.5)
    assert sched.threshold_mode == "rel" and not schedule.steps_every_step(sched)


def test_adam_betas_reach_the_optimiser(tiny_run):
    cfg = tiny_run(optimizer="adam", adam_betas=[0.5, 0.9], weight_decay=0.0)
    opt = schedule.make_optimizer(torch.nn.Linear(2, 2), cfg["train"], torch.device("cpu"))
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["betas"] == (0.5, 0.9)


def test_cosine_schedule_is_stepped_every_step(tmp_path, photos_root, tiny_run):
    cfg = tiny_run(lr_schedule="cosine", warmup_steps=2, lr=1e-3)
    trainer.train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if r["split"] == "train"}
    # the lr logged at step s is the one the next step uses: factor(s) of the LambdaLR
    for step, lr in lrs.items():
        assert lr == pytest.approx(1e-3 * schedule.warmup_cosine(step, 2, 8))


def test_best_val_selects_the_lowest_validation_mse(tmp_path, photos_root, tiny_run):
    cfg = tiny_run(select="best_val", max_steps=12, val_every=3, keep_checkpoints=True)
    meta = trainer.train(cfg, tmp_path)
    vals = _val_rows(tmp_path)
    best_step = min(reversed(vals), key=lambda r: r["mse"])["step"]  # ties: the later pass
    assert meta["selected"]["rule"] == "best_val" and meta["selected"]["step"] == best_step
    result = load_pt(tmp_path / "model.pt", sha256=None, fix="")
    kept = load_pt(tmp_path / f"checkpoints/step{best_step:07d}.pt", sha256=None, fix="")
    for name, value in kept["model"].items():
        other = result["model"][name]
        assert torch.equal(value, other) if torch.is_tensor(value) else value == other, name
    assert result["selected_step"] == best_step
    # every validation step kept its weights, each recorded with its sha256 in run.json
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        f"step{r['step']:07d}.pt" for r in vals
    ]
    files = json.loads((tmp_path / "run.json").read_text())["files"]
    assert f"checkpoints/step{best_step:07d}.pt" in files and "best.pt" in files


def test_final_is_the_default_selection(tmp_path, photos_root, tiny_run):
    meta = trainer.train(tiny_run(), tmp_path)
    assert meta["selected"] == {"rule": "final", "step": 8}
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "checkpoints").exists()


def test_best_val_survives_a_resume(tmp_path, photos_root, tiny_run, same_weights):
    cfg = tiny_run(select="best_val", max_steps=12, val_every=3)
    straight = trainer.train(cfg, tmp_path / "straight")
    trainer.train(cfg, tmp_path / "resumed", stop_after=7)
    resumed = trainer.train(cfg, tmp_path / "resumed")
    assert resumed["selected"] == straight["selected"]
    same_weights(tmp_path / "straight", tmp_path / "resumed")


def test_floor_is_the_mean_image_psnr():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (50, 3, 4, 4), generator=g, dtype=torch.uint8)
    val = torch.randint(0, 256, (7, 3, 4, 4), generator=g, dtype=torch.uint8)
    mean = train.double().mean(0) / 255
    want = [(-10 * torch.log10(((v.double() / 255 - mean) ** 2).mean())).item() for v in val]
    assert validation.floor_psnr(train, val, batch_size=3) == pytest.approx(
        sum(want) / len(want), abs=1e-4
    )
    # the mean image is the constant prediction with the lowest MSE over the training split
    m = validation.mean_image(train)
    assert torch.allclose(m.double(), mean, atol=1e-6)


def test_progress_summary_finds_the_first_step_past_the_margin():
    rows = [{"step": 10, "psnr": 12.0}, {"step": 20, "psnr": 15.5}, {"step": 30, "psnr": 14.0}]
    s = validation.progress_summary(rows, floor=12.0)
    assert s["step_val_psnr_above_floor_by_margin"] == 20 and s["final_val_psnr"] == 14.0
    s = validation.progress_summary(rows, floor=13.0)
    assert s["step_val_psnr_above_floor_by_margin"] is None and s["final_val_step"] == 30


def test_run_json_says_where_training_stands(tmp_path, photos_root, tiny_run):
    meta = trainer.train(tiny_run(), tmp_path)
    for key in ("val_floor_psnr", "step_val_psnr_above_floor_by_margin", "final_val_psnr"):
        assert key in meta
    assert meta["final_val_psnr"] == _val_rows(tmp_path)[-1]["psnr"]
    assert meta["images_seen"] == 8 * 8
