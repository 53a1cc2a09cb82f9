"""The floor (training mean image) and the input-dependence measure, on hand-made
reconstructions whose values are known in closed form, and `qgvae floor` on a real dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qgvae.evaluation import floor as F
from qgvae.evaluation.evaluator import evaluate_run
from qgvae.evaluation.image_metrics import psnr_batch


def _psnr(a, b):
    mse = ((a.astype(np.float64) - b.astype(np.float64)) / 255.0) ** 2
    return 10 * np.log10(1.0 / mse.reshape(len(a), -1).mean(1))


def _write(folder, originals, recons):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "reconstructions.npz",
        originals=originals,
        reconstructions=recons,
        codes=np.zeros((len(originals), 1), np.int64),
        codebook_size=np.int64(2),
        bits_per_image=np.float64(1.0),
    )


@pytest.fixture
def originals():
    rng = np.random.default_rng(0)
    return rng.integers(40, 216, (6, 3, 16, 16), dtype=np.uint8)


@pytest.fixture
def floor_dir(tmp_path, originals):
    mean = np.full((3, 16, 16), 128, np.uint8)  # the "training mean image"
    folder = tmp_path / "floor"
    _write(folder, originals, np.broadcast_to(mean, originals.shape).copy())
    return folder


@pytest.mark.weights
def test_gain_of_noisy_originals_is_their_psnr_minus_the_floors(tmp_path, originals, floor_dir):
    noise = np.random.default_rng(1).integers(-9, 10, originals.shape)
    recon = np.clip(originals.astype(int) + noise, 0, 255).astype(np.uint8)
    _write(tmp_path / "noisy", originals, recon)
    d = evaluate_run(tmp_path / "noisy", protocols=("native",), device="cpu", floor_dir=floor_dir)
    p = d["protocols"]["native"]
    floor_by_hand = _psnr(originals, np.full_like(originals, 128)).mean()
    assert p["floor_psnr"] == pytest.approx(floor_by_hand, rel=1e-12)
    assert p["psnr_gain_over_floor_db"] == pytest.approx(
        _psnr(originals, recon).mean() - floor_by_hand, rel=1e-12
    )
    # shuffled: each reconstruction against the next original of its batch (one batch here)
    shuffled_by_hand = _psnr(np.roll(originals, -1, 0), recon).mean()
    assert p["psnr_shuffled"] == pytest.approx(shuffled_by_hand, rel=1e-12)
    assert p["input_dependence_db"] == pytest.approx(p["psnr"]["mean"] - shuffled_by_hand)
    assert p["input_dependence_db"] > 10  # these reconstructions depend on their input


@pytest.mark.weights
def test_the_mean_image_itself_gains_nothing_and_depends_on_nothing(originals, floor_dir):
    d = evaluate_run(floor_dir, protocols=("native", "vqwae"), device="cpu", floor_dir=floor_dir)
    for p in d["protocols"].values():
        assert p["psnr_gain_over_floor_db"] == pytest.approx(0.0, abs=1e-12)
        assert p["input_dependence_db"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.weights
def test_a_shuffled_copy_of_the_originals_gains_about_nothing(tmp_path, originals, floor_dir):
    """A 'model' that returns some other test image: PSNR against its own original is that of
    random pairs, so its shuffled measure is about as good: input dependence about 0."""
    rng = np.random.default_rng(2)
    base = rng.integers(40, 216, (60, 3, 16, 16), dtype=np.uint8)
    recon = base[rng.permutation(60)]
    _write(tmp_path / "shuffled", base, recon)
    _write(tmp_path / "floor60", base, np.full_like(base, 128))
    d = evaluate_run(
        tmp_path / "shuffled",
        protocols=("native",),
        device="cpu",
        floor_dir=tmp_path / "floor60",
        fid_n=2,  # rFID is not what this checks
        backend="eager",
    )
    assert abs(d["protocols"]["native"]["input_dependence_db"]) < 0.3


def test_write_floor_run_is_the_rounded_training_mean(tmp_path, photos_root):
    from qgvae.data import load_split

    info = F.write_floor_run("photos", photos_root, tmp_path / "f", test_n=10)
    train = load_split("photos", photos_root, "train").numpy()
    with np.load(tmp_path / "f" / "reconstructions.npz") as z:
        recon, orig = z["reconstructions"], z["originals"]
        assert z["codes"].shape == (10, 0) and float(z["bits_per_image"]) == 0.0
    want = np.round(train.astype(np.float64).mean(0)).astype(np.uint8)
    assert info["n_images"] == 10 and (recon == want).all()
    assert (orig == load_split("photos", photos_root, "test").numpy()[:10]).all()
    meta = json.loads((tmp_path / "f" / "run.json").read_text())
    assert meta["config"]["method"] == "mean_image"
    # the mean image is the constant with the best mean squared error on the training split
    assert (
        psnr_batch(train[:50], np.broadcast_to(want, (50, *want.shape))).mean()
        > psnr_batch(train[:50], np.full((50, *want.shape), 128, np.uint8)).mean()
    )


def test_unique_features_computes_each_distinct_image_once():
    """The floor's reconstructions are one image repeated: its Inception features are computed
    once and broadcast, equal to computing every image."""
    from types import SimpleNamespace

    from qgvae.evaluation.passes import unique_features
    from qgvae.evaluation.protocols import PROTOCOL_SPECS

    seen = []

    def inception(batch):  # a stand-in: features that depend on every pixel
        seen.append(len(batch))
        x = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
        return np.stack([x.sum(1), (x**2).sum(1), x[:, ::7].sum(1)], 1)

    job = SimpleNamespace(inception=inception)
    spec = PROTOCOL_SPECS["native"]
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    images = np.stack([a, b, a, a, b, a])
    got = unique_features(job, images, spec)
    assert seen == [2]
    want = inception(images)
    np.testing.assert_allclose(got, want)
    distinct = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_allclose(unique_features(job, distinct, spec), inception(distinct))
    assert seen[-2] == 4
