"""Tests of qgvae.evaluation: the run-folder contract, the CLI and an end-to-end evaluation."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from qgvae import errors
from qgvae.evaluation import evaluator as E
from qgvae.evaluation import image_metrics, usage, weights


def make_run(run, n=5, c=3, h=32, t=6, k=16, seed=0, identical=(), run_json=True):
    rng = np.random.default_rng(seed)
    run.mkdir(parents=True, exist_ok=True)
    base = gaussian_filter(rng.normal(128, 60, (n, c, h, h)), (0, 0, 1.5, 1.5))
    base = (base - base.mean()) * 3 + 128
    orig = np.clip(np.round(base), 0, 255).astype(np.uint8)
    rec = np.clip(np.round(base + rng.normal(0, 12, base.shape)), 0, 255).astype(np.uint8)
    for i in identical:
        rec[i] = orig[i]
    codes = rng.integers(-1, k, (n, t)).astype(np.int64)
    np.savez(
        run / "reconstructions.npz",
        originals=orig,
        reconstructions=rec,
        codes=codes,
        codebook_size=np.int64(k),
        bits_per_image=np.float64(t * np.log2(k)),
    )
    if run_json:
        (run / "run.json").write_text(
            json.dumps({"config": {"dataset": "synthetic", "method": "noise", "other": 1}})
        )
    return orig, rec, codes


def strict_json(path):
    def bad(x):
        raise ValueError(f"non-standard JSON constant {x}")

    return json.loads(path.read_text(), parse_constant=bad)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------------
# input contract
# ------------------------------------------------------------------------------------------------


def test_load_run_reads_contract(tmp_path):
    orig, rec, codes = make_run(tmp_path / "r")
    d = E.load_run(tmp_path / "r")
    assert d["originals"].shape == orig.shape and d["codebook_size"] == 16
    assert d["bits_per_image"] == pytest.approx(24.0)
    assert (d["dataset"], d["method"]) == ("synthetic", "noise")
    make_run(tmp_path / "s", run_json=False)
    assert E.load_run(tmp_path / "s")["dataset"] is None


def test_load_run_rejects_bad_input(tmp_path):
    with pytest.raises(errors.RunFolderError, match="not found"):
        E.load_run(tmp_path / "nothing")
    run = tmp_path / "bad"
    run.mkdir()
    o = np.zeros((2, 3, 16, 16), np.uint8)
    good = dict(
        originals=o,
        reconstructions=o,
        codes=np.zeros((2, 4), np.int64),
        codebook_size=np.int64(8),
        bits_per_image=np.float64(12),
    )
    for change, match in [
        ({"reconstructions": o.astype(np.float32)}, "uint8"),
        ({"reconstructions": o[:1]}, "shape"),
        (
            {
                "originals": np.zeros((2, 2, 16, 16), np.uint8),
                "reconstructions": np.zeros((2, 2, 16, 16), np.uint8),
            },
            "C in",
        ),
        ({"codes": np.zeros((3, 4), np.int64)}, "codes"),
    ]:
        np.savez(run / "reconstructions.npz", **{**good, **change})
        with pytest.raises(errors.RunFolderError, match=match):
            E.load_run(run)
    np.savez(run / "reconstructions.npz", **{k: v for k, v in good.items() if k != "codes"})
    with pytest.raises(errors.RunFolderError, match="missing keys"):
        E.load_run(run)


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def _parser():
    from qgvae.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub


def test_cli_registration_and_defaults():
    parser, sub = _parser()
    a = parser.parse_args(["evaluate", "runs/x"])
    assert a.run_dir == ["runs/x"] and a.fid_n is None and a.protocols == ["vqwae", "native"]
    assert a.floor is None and a.skip_current is False and a.backend == "auto"
    assert parser.parse_args(["evaluate", "a", "b"]).run_dir == ["a", "b"]  # one process
    assert a.device == "auto" and a.batch_size == 100 and callable(a.func)
    a = parser.parse_args(
        [
            "evaluate",
            "r",
            "--fid-n",
            "500",
            "--protocols",
            "native",
            "--device",
            "cpu",
            "--batch-size",
            "7",
        ]
    )
    assert (a.fid_n, a.protocols, a.device, a.batch_size) == (500, ["native"], "cpu", 7)
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "r", "--protocols", "bogus"])
    a = parser.parse_args(["fetch-weights", "--torch-home", "/tmp/th"])
    assert a.torch_home == "/tmp/th" and callable(a.func)
    helps = {name: p.format_help() for name, p in sub.choices.items()}
    assert "reconstructions.npz" in helps["evaluate"] and "--fid-n" in helps["evaluate"]
    assert "256x256" in helps["evaluate"]
    assert "TORCH_HOME" in helps["fetch-weights"] and "--torch-home" in helps["fetch-weights"]
    assert "shared" not in helps["fetch-weights"]  # users have no ../shared folder


def _block_downloads(monkeypatch, home):
    monkeypatch.setenv("TORCH_HOME", str(home))

    def blocked(*args, **kwargs):
        raise OSError("no internet (blocked by test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", blocked)


def test_fetch_weights_cli_reports_missing(tmp_path, monkeypatch, capsys):
    _block_downloads(monkeypatch, tmp_path / "elsewhere")
    from qgvae.cli import main

    assert main(["fetch-weights", "--torch-home", str(tmp_path / "th")]) == 2
    err = capsys.readouterr().err
    assert "alexnet-owt-7be5be79.pth" in err and str(tmp_path / "th") in err


@pytest.mark.weights
@pytest.mark.weights
def test_fetch_weights_cli_with_present_files(tmp_path, monkeypatch, capsys):
    home = tmp_path / "th"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    for k in ("lpips", "fid"):
        src = weights.expected_weight_path(k)
        (home / "hub" / "checkpoints" / src.name).symlink_to(src)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "unused"))
    monkeypatch.setattr(
        torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("must not download")
    )
    parser, _ = _parser()
    args = parser.parse_args(["fetch-weights", "--torch-home", str(home)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert str(home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth") in out
    assert "sha256=" in out and f"TORCH_HOME={home}" in out


# ------------------------------------------------------------------------------------------------
# missing weights stop everything before any computation
# ------------------------------------------------------------------------------------------------


def test_evaluate_missing_weights_stops_before_computing(tmp_path, monkeypatch):
    make_run(tmp_path / "run")
    _block_downloads(monkeypatch, tmp_path / "empty_home")
    with pytest.raises(errors.MissingWeightsError) as ei:
        E.evaluate_run(tmp_path / "run")
    assert "alexnet-owt-7be5be79.pth" in str(ei.value)
    assert f"TORCH_HOME={tmp_path / 'empty_home'}" in str(ei.value)
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "metrics_per_image.csv").exists()
    # the weights are checked even before the run folder is read
    with pytest.raises(errors.MissingWeightsError):
        E.evaluate_run(tmp_path / "does_not_exist")


@pytest.mark.weights
@pytest.mark.weights
def test_evaluate_names_the_fid_file_when_only_it_is_missing(tmp_path, monkeypatch, capsys):
    home = tmp_path / "th"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").symlink_to(
        weights.expected_weight_path("lpips")
    )
    make_run(tmp_path / "run")
    _block_downloads(monkeypatch, home)
    from qgvae.cli import main

    assert main(["evaluate", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth") in err
    assert "qgvae fetch-weights" in err
    assert not (tmp_path / "run" / "metrics.json").exists()


# ------------------------------------------------------------------------------------------------
# end to end
# ------------------------------------------------------------------------------------------------


@pytest.mark.weights
def test_evaluate_run_end_to_end_rgb(tmp_path):
    run = tmp_path / "run"
    orig, rec, codes = make_run(run, n=4, c=3, h=32)
    res = E.evaluate_run(run, fid_n=2, batch_size=3, device="cpu")

    js = strict_json(run / "metrics.json")
    assert js == json.loads(json.dumps(res))
    for key in (
        "n_images",
        "dataset",
        "method",
        "protocols",
        "usage",
        "bits_per_image",
        "grayscale_repeated_to_rgb",
        "versions",
        "weights",
        "protocol_notes",
        "elapsed_s",
    ):
        assert key in js, key
    assert js["n_images"] == 4 and js["dataset"] == "synthetic" and js["method"] == "noise"
    assert js["grayscale_repeated_to_rgb"] is False and js["bits_per_image"] == pytest.approx(24.0)
    assert set(js["protocols"]) == {"vqwae", "native"}
    assert (
        js["protocols"]["vqwae"]["resolution"] == 256
        and js["protocols"]["native"]["resolution"] == 32
    )
    for p in ("vqwae", "native"):
        d = js["protocols"][p]
        for m in ("ssim", "psnr", "lpips"):
            assert set(d[m]) >= {"mean", "std", "n"} and d[m]["n"] == 4
        assert set(d["rfid"]) >= {"value", "n"} and d["rfid"]["n"] == 2
    assert js["usage"]["codebook_size"] == 16
    assert len(js["usage"]["per_position"]["fraction"]) == codes.shape[1]
    assert js["usage"] == json.loads(json.dumps(usage.code_usage(codes, 16)))
    assert (
        "alexnet-owt-7be5be79.pth" in js["weights"]["lpips"] and "sha256=" in js["weights"]["lpips"]
    )
    assert "pt_inception-2015-12-05-6726825d.pth" in js["weights"]["fid"]
    assert js["versions"]["lpips"] == "0.1.4" and "bilinear" in js["protocol_notes"].lower()

    rows = read_csv(run / "metrics_per_image.csv")
    assert len(rows) == 4 and [int(r["index"]) for r in rows] == list(range(4))
    assert list(rows[0]) == [
        "index",
        "vqwae_ssim",
        "vqwae_psnr",
        "vqwae_lpips",
        "native_ssim",
        "native_psnr",
        "native_lpips",
    ]

    # the CSV holds the per-image values the summary was made of, computed on the right images
    up_o = image_metrics.upscale_pil(orig, 256, "bicubic")
    up_r = image_metrics.upscale_pil(rec, 256, "bicubic")
    for i in (0, 3):
        assert float(rows[i]["vqwae_ssim"]) == pytest.approx(
            image_metrics.ssim(up_o[i], up_r[i]), abs=1e-12
        )
        assert float(rows[i]["native_psnr"]) == pytest.approx(
            image_metrics.psnr(orig[i], rec[i]), abs=1e-12
        )
    for p in ("vqwae", "native"):
        for m in ("ssim", "psnr", "lpips"):
            vals = np.array([float(r[f"{p}_{m}"]) for r in rows])
            assert js["protocols"][p][m]["mean"] == pytest.approx(vals.mean(), rel=1e-12)
            assert js["protocols"][p][m]["std"] == pytest.approx(vals.std(ddof=1), rel=1e-9)
    lp, inc = E.metric_models(torch.device("cpu"))  # the same (cached) networks
    np.testing.assert_allclose([float(r["vqwae_lpips"]) for r in rows], lp(up_o, up_r), atol=1e-6)

    # rFID: originals vs reconstructions, first fid_n=2, on the protocol's Inception inputs
    # (vqwae: PIL bilinear to 229, as VQ-WAE's fid_score.py). With two images per set each
    # covariance is rank one, S = a a^T with a = (f1 - f2) / sqrt(2), so
    # FID = |mu1 - mu2|^2 + |a|^2 + |b|^2 - 2 |a.b| in closed form.
    rgb = image_metrics.to_rgb_float
    inputs = {
        "vqwae": [image_metrics.upscale_pil(x[:2], 229, "bilinear") for x in (orig, rec)],
        "native": [orig[:2], rec[:2]],
    }
    for p, (o_in, r_in) in inputs.items():
        fo = inc(rgb(o_in)).double().numpy()
        fr = inc(rgb(r_in)).double().numpy()
        a, b = (fo[0] - fo[1]) / np.sqrt(2), (fr[0] - fr[1]) / np.sqrt(2)
        d = fo.mean(0) - fr.mean(0)
        want = d @ d + a @ a + b @ b - 2 * abs(a @ b)
        rfid = js["protocols"][p]["rfid"]
        assert rfid["method"] == "svd-lowrank"
        assert rfid["value"] == pytest.approx(want, rel=1e-4)
        saved = np.load(run / f"features_{p}.npy")
        np.testing.assert_allclose(saved, fr, rtol=0, atol=1e-4)


@pytest.mark.weights
def test_evaluate_cli_grayscale_native_only(tmp_path, capsys):
    """Through the CLI: 28x28 grayscale (MNIST-like) is repeated to RGB, native LPIPS is
    unavailable (AlexNet needs >= 31 px), a pixel-identical pair is capped at 100 dB (so the
    mean stays defined and the capped image is counted), and --protocols restricts the output."""
    run = tmp_path / "run"
    make_run(run, n=3, c=1, h=28, identical=(1,), run_json=False)
    parser, _ = _parser()
    args = parser.parse_args(["evaluate", str(run), "--protocols", "native", "--device", "cpu"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "[native @ 28]" in out and "LPIPS n/a" in out and "metrics.json" in out
    js = strict_json(run / "metrics.json")
    res = js
    assert js["n_images"] == 3 and js["grayscale_repeated_to_rgb"] is True
    assert js["dataset"] is None and set(js["protocols"]) == {"native"}
    d = js["protocols"]["native"]
    assert d["resolution"] == 28
    assert d["lpips"]["mean"] is None and d["lpips"]["n"] == 0 and "31" in d["lpips"]["unavailable"]
    rows = read_csv(run / "metrics_per_image.csv")
    psnrs = [float(r["native_psnr"]) for r in rows]
    assert d["psnr"]["n_capped"] == 1 and d["psnr"]["n"] == 3 and psnrs[1] == 100.0
    assert d["psnr"]["mean"] == pytest.approx(np.mean(psnrs), rel=1e-12)
    assert d["rfid"]["n"] == 3 and d["rfid"]["method"] == "svd-lowrank"
    assert list(rows[0]) == ["index", "native_ssim", "native_psnr", "native_lpips"]
    assert rows[1]["native_ssim"] == "1.0"
    assert all(r["native_lpips"] == "" for r in rows)
    assert res["protocols"]["native"]["ssim"]["n"] == 3


def test_evaluate_rejects_bad_arguments(tmp_path):
    make_run(tmp_path / "run")
    with pytest.raises(errors.ConfigError, match="protocols"):
        E.evaluate_run(tmp_path / "run", protocols=("native", "bogus"))
    with pytest.raises(errors.ConfigError, match="batch_size"):
        E.evaluate_run(tmp_path / "run", batch_size=0)


def _fake_runs(tmp_path, names, n=6):
    rng = np.random.default_rng(3)
    orig = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    rec = np.clip(orig.astype(int) + rng.integers(-30, 30, orig.shape), 0, 255).astype(np.uint8)
    runs = []
    for name in names:
        d = tmp_path / name
        d.mkdir()
        np.savez(
            d / "reconstructions.npz",
            originals=orig,
            reconstructions=rec,
            codes=np.zeros((n, 4), np.int64),
            codebook_size=np.int64(8),
            bits_per_image=np.float64(12.0),
        )
        runs.append(d)
    return runs


@pytest.mark.weights
def test_features_cache_gives_identical_rfid(tmp_path):
    """A cache hit for the originals' Inception features changes no number, and rFID recomputed
    from the stored features equals the evaluator's exactly."""
    from qgvae.evaluation.evaluator import evaluate_run, rfid_from_features

    runs = _fake_runs(tmp_path, ("a", "b", "c"))
    cache = tmp_path / "cache"
    plain = evaluate_run(runs[0], protocols=("native",), device="cpu")
    first = evaluate_run(runs[1], protocols=("native",), device="cpu", features_cache=cache)
    hit = evaluate_run(runs[2], protocols=("native",), device="cpu", features_cache=cache)
    assert len(list(cache.glob("*.npy"))) == 1
    assert not first["protocols"]["native"]["rfid"]["originals_features_cached"]
    assert hit["protocols"]["native"]["rfid"]["originals_features_cached"]
    values = [r["protocols"]["native"]["rfid"]["value"] for r in (plain, first, hit)]
    assert values[0] == values[1] == values[2]
    real = np.load(next(cache.glob("*.npy")))
    fake = np.load(runs[2] / "features_native.npy")
    assert fake.dtype == np.float32 and fake.shape == (6, 2048)
    assert rfid_from_features(real, fake)[0] == values[0]


@pytest.mark.weights
@pytest.mark.parametrize("damage", ["truncate", "garbage", "nan"])
def test_a_corrupt_features_cache_is_recomputed(tmp_path, damage):
    from qgvae.evaluation.evaluator import evaluate_run

    runs = _fake_runs(tmp_path, ("a", "b"))
    cache = tmp_path / "cache"
    good = evaluate_run(runs[0], protocols=("native",), device="cpu", features_cache=cache)
    path = next(cache.glob("*.npy"))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not an npy file")
    else:
        feats = np.load(path)
        feats[0, 0] = np.nan
        np.save(path, feats)
    again = evaluate_run(runs[1], protocols=("native",), device="cpu", features_cache=cache)
    assert again["feature_cache_recomputed"] and path.name in again["feature_cache_recomputed"][0]
    assert not again["protocols"]["native"]["rfid"]["originals_features_cached"]
    assert (
        again["protocols"]["native"]["rfid"]["value"]
        == good["protocols"]["native"]["rfid"]["value"]
    )
    assert np.isfinite(np.load(path)).all()  # rewritten
