"""Bootstrap intervals: coverage, pairing, seeds, and rFID recomputed from features."""

from __future__ import annotations

import numpy as np
import pytest

from qgvae.evaluation import bootstrap as B


def _interval(a, b, resamples=1000, seed=0):
    rng = np.random.default_rng(seed)
    counts = B.image_counts(rng, a.shape[1], resamples)
    ma = B.resampled_means(a, counts, B.seed_draws(rng, a.shape[0], resamples))
    mb = B.resampled_means(b, counts, B.seed_draws(rng, b.shape[0], resamples))
    return B.percentile_interval(ma - mb)


def test_paired_interval_covers_the_true_difference_about_95_percent():
    rng = np.random.default_rng(1)
    true, hits, reps = 0.3, 0, 200
    for rep in range(reps):
        x = rng.normal(0, 1, 120)  # per-image difficulty shared by both methods
        a = (x + true + rng.normal(0, 0.5, 120))[None]
        b = (x + rng.normal(0, 0.5, 120))[None]
        lo, hi = _interval(a, b, resamples=400, seed=rep)
        hits += lo <= true <= hi
    assert 0.90 <= hits / reps <= 0.99


def test_identical_methods_give_an_interval_around_zero():
    x = np.random.default_rng(2).normal(0, 1, (1, 200))
    lo, hi = _interval(x, x.copy())
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.0, abs=1e-12)
    y = x + np.random.default_rng(3).normal(0, 0.1, x.shape)
    lo, hi = _interval(x, y)
    assert lo < 0 < hi


def test_paired_is_narrower_than_unpaired_for_correlated_methods():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 300)
    a = (x + 0.1 + rng.normal(0, 0.2, 300))[None]
    b = (x + rng.normal(0, 0.2, 300))[None]
    lo, hi = _interval(a, b)
    # unpaired: independent image draws for the two methods
    r = np.random.default_rng(5)
    ca, cb = B.image_counts(r, 300, 1000), B.image_counts(r, 300, 1000)
    zero = np.zeros((1000, 1), dtype=np.int64)
    d = B.resampled_means(a, ca, zero) - B.resampled_means(b, cb, zero)
    ulo, uhi = B.percentile_interval(d)
    assert (hi - lo) < 0.5 * (uhi - ulo)


def test_seeds_widen_the_interval():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, 200)
    a = np.stack([x + s + rng.normal(0, 0.1, 200) for s in (0.0, 0.5, 1.0)])  # seed spread
    b = np.stack([x + rng.normal(0, 0.1, 200) for _ in range(3)])
    lo, hi = _interval(a, b)
    lo1, hi1 = _interval(a[:1] + 0.5, b[:1])
    assert (hi - lo) > 3 * (hi1 - lo1)


def test_resampled_means_equal_a_loop():
    rng = np.random.default_rng(7)
    v = rng.normal(0, 1, (3, 50))
    counts = B.image_counts(rng, 50, 5)
    seeds = B.seed_draws(rng, 3, 5)
    got = B.resampled_means(v, counts, seeds)
    for r in range(5):
        per_seed = [np.repeat(v[s], counts[r].astype(int)).mean() for s in range(3)]
        assert got[r] == pytest.approx(np.mean([per_seed[s] for s in seeds[r]]), rel=1e-12)


def test_rfid_of_a_resample_equals_the_evaluators_on_the_drawn_set():
    from qgvae.evaluation.passes import rfid_from_features

    rng = np.random.default_rng(8)
    real = rng.normal(0, 1, (40, 16)).astype(np.float32)
    fake = (real + rng.normal(0.2, 0.5, real.shape)).astype(np.float32)
    fs = B.FeatureSet(real, fake)
    ones = np.ones(40)
    assert fs.rfid(ones) == pytest.approx(rfid_from_features(real, fake)[0], rel=1e-9)
    counts = B.image_counts(rng, 40, 1)[0]
    idx = np.repeat(np.arange(40), counts.astype(int))
    want = rfid_from_features(real[idx], fake[idx])[0]
    assert fs.rfid(counts) == pytest.approx(want, rel=1e-8)
    # the covariance route (many images) gives the same number
    fs.use_gram = False
    assert fs.rfid(counts) == pytest.approx(want, rel=1e-6)
    # a set against itself: 0
    assert B.FeatureSet(real, real).rfid(counts) == pytest.approx(0.0, abs=1e-9)
