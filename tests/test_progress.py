"""qgvae.progress: plain progress lines where there is no terminal (Snakemake and SLURM logs)."""

from __future__ import annotations

import io

from qgvae.progress import Progress, interval_seconds


def test_plain_lines_carry_the_count_rate_last_values_and_eta(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("qgvae.progress.time.perf_counter", lambda: now[0])
    out = io.StringIO()  # not a terminal
    bar = Progress(
        10, what="train x", initial=2, per_unit=32, rate_unit="images", stream=out, every=3
    )
    for step in range(3, 11):  # one step per second
        now[0] += 1.0
        bar.update(1, loss=0.5 / step) if step % 4 == 0 else bar.update(1)
    now[0] += 0.5
    bar.close()
    assert out.getvalue().splitlines() == [
        # 3 s after the start: 3 steps of 32 images done, 5 left at 1 s each
        "train x: step 5/10 (50.0 %), 32 images/s, loss 0.125, ETA 0:00:05",
        "train x: step 8/10 (80.0 %), 32 images/s, loss 0.0625, ETA 0:00:02",
        "train x: step 10/10 (100.0 %), 30.1 images/s, loss 0.0625, done in 0:00:08",
    ]


def test_no_lines_when_switched_off_and_the_interval_from_the_environment(monkeypatch):
    out = io.StringIO()
    with Progress(5, what="evaluate y", unit="image", stream=out, every=0) as bar:
        bar.update(5)
    assert out.getvalue() == ""
    monkeypatch.setenv("QGVAE_PROGRESS_SECONDS", "15")
    assert interval_seconds() == 15.0
    monkeypatch.setenv("QGVAE_PROGRESS_SECONDS", "soon")
    assert interval_seconds() == 60.0
