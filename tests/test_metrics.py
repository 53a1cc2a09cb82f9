"""Tests of qgvae.evaluation metrics against independent reference formulas.

Tests that need the pretrained LPIPS / FID networks are marked ``weights`` and skip when the
files are not in the torch hub cache (run ``qgvae fetch-weights`` or set TORCH_HOME)."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import linalg
from scipy.ndimage import gaussian_filter

from qgvae import errors
from qgvae.evaluation import fid, image_metrics, usage, weights

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def smooth_image(
    rng: np.random.Generator, c: int = 3, h: int = 32, w: int | None = None
) -> np.ndarray:
    w = h if w is None else w
    base = gaussian_filter(rng.normal(128, 60, (c, h, w)), (0, 1.5, 1.5))
    return (base - base.mean()) * 3 + 128


def ref_ssim_2d(
    x: np.ndarray,
    y: np.ndarray,
    win: int = 11,
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float = 1.0,
) -> float:
    """Wang et al. (2004) SSIM with a uniform win x win window and sample (n-1) statistics,
    averaged over every window lying fully inside the image (explicit windows, no filters)."""
    X = sliding_window_view(x, (win, win))
    Y = sliding_window_view(y, (win, win))
    npx = win * win
    mx, my = X.mean(axis=(-1, -2)), Y.mean(axis=(-1, -2))
    dx, dy = X - mx[..., None, None], Y - my[..., None, None]
    vx = (dx * dx).sum(axis=(-1, -2)) / (npx - 1)
    vy = (dy * dy).sum(axis=(-1, -2)) / (npx - 1)
    cxy = (dx * dy).sum(axis=(-1, -2)) / (npx - 1)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def ref_ssim(a_u8: np.ndarray, b_u8: np.ndarray) -> float:
    a, b = a_u8.astype(np.float64) / 255, b_u8.astype(np.float64) / 255
    return float(np.mean([ref_ssim_2d(a[i], b[i]) for i in range(a.shape[0])]))


def ref_bilinear_upscale(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear (triangle filter) upscaling with pixel-centre alignment and edge clamping,
    rounded to uint8; img [H, W] uint8."""
    h, w = img.shape

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        u = np.clip(u, 0, n_in - 1)
        i0 = np.floor(u).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, u - i0

    r0, r1, fr = axis(h, out_h)
    c0, c1, fc = axis(w, out_w)
    f = img.astype(np.float64)
    top = f[r0][:, c0] * (1 - fc) + f[r0][:, c1] * fc
    bot = f[r1][:, c0] * (1 - fc) + f[r1][:, c1] * fc
    return np.clip(np.round(top * (1 - fr[:, None]) + bot * fr[:, None]), 0, 255).astype(np.uint8)


def closed_form_fd(mu1, s1, mu2, s2) -> float:
    """|mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), symmetric square roots from
    scipy.linalg.eigh (no scipy.linalg.sqrtm, no product S1 S2)."""
    w1, v1 = linalg.eigh(s1)
    r1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    inner = r1 @ s2 @ r1
    w = linalg.eigvalsh(0.5 * (inner + inner.T))
    d = np.asarray(mu1) - np.asarray(mu2)
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(w, 0, None)).sum())


def random_spd(rng: np.random.Generator, d: int, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


# ------------------------------------------------------------------------------------------------
# PSNR
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1, 5, 17, 64])
@pytest.mark.parametrize("c", [1, 3])
def test_psnr_constant_offset_closed_form(offset, c):
    rng = np.random.default_rng(offset)
    a = rng.integers(0, 256 - offset, (c, 20, 24), dtype=np.uint8)
    b = (a + offset).astype(np.uint8)
    expected = 10 * np.log10(1.0 / (offset / 255.0) ** 2)  # = 20 log10(255 / offset)
    assert image_metrics.psnr(a, b) == pytest.approx(expected, abs=1e-9)
    assert image_metrics.psnr(b, a) == pytest.approx(expected, abs=1e-9)


def test_psnr_random_pair_and_batch():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 3, 16, 16), dtype=np.uint8)
    b = rng.integers(0, 256, (4, 3, 16, 16), dtype=np.uint8)
    mse = ((a.astype(float) - b.astype(float)) / 255) ** 2
    expected = 10 * np.log10(1 / mse.mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(image_metrics.psnr_batch(a, b), expected, rtol=0, atol=1e-9)


def test_psnr_is_capped_at_100_db():
    """An identical pair would be infinite and void the mean: it is capped at 100 dB (MSE floor
    1e-10), and only there."""
    a = np.full((3, 8, 8), 7, np.uint8)
    assert image_metrics.psnr(a, a) == 100.0
    b = a.copy()
    b[0, 0, 0] = 8  # MSE = (1/255)^2 / 192: about 70.9 dB, below the cap
    assert image_metrics.psnr(a, b) == pytest.approx(10 * np.log10(192 * 255**2), rel=1e-12)


# ------------------------------------------------------------------------------------------------
# SSIM
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["random", "structured", "noisy", "blurred"])
@pytest.mark.parametrize("c,h,w", [(3, 32, 32), (1, 28, 28), (3, 40, 33)])
def test_ssim_matches_independent_reference(kind, c, h, w):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{c}{h}{w}".encode()))
    if kind == "random":
        a = rng.integers(0, 256, (c, h, w), dtype=np.uint8)
        b = rng.integers(0, 256, (c, h, w), dtype=np.uint8)
    else:
        base = smooth_image(rng, c, h, w)
        a = u8(base)
        if kind == "structured":
            b = u8(base * 0.8 + 20)
        elif kind == "noisy":
            b = u8(base + rng.normal(0, 15, base.shape))
        else:
            b = u8(gaussian_filter(base, (0, 1.0, 1.0)))
    got = image_metrics.ssim(a, b)
    assert got == pytest.approx(ref_ssim(a, b), abs=1e-9)
    assert image_metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_on_upscaled_image_matches_reference():
    rng = np.random.default_rng(3)
    base = smooth_image(rng, 3, 32)
    a = u8(base)[None]
    b = u8(base + rng.normal(0, 10, base.shape))[None]
    ua, ub = image_metrics.upscale_pil(a, 96), image_metrics.upscale_pil(b, 96)
    assert image_metrics.ssim(ua[0], ub[0]) == pytest.approx(ref_ssim(ua[0], ub[0]), abs=1e-9)


def test_ssim_and_psnr_grayscale_equal_rgb_tiled():
    """Justifies computing SSIM/PSNR on the single channel (VQ-WAE saved MNIST as RGB-tiled
    PNGs)."""
    rng = np.random.default_rng(4)
    base = smooth_image(rng, 1, 28)
    a, b = u8(base), u8(base + rng.normal(0, 20, base.shape))
    a3, b3 = np.repeat(a, 3, 0), np.repeat(b, 3, 0)
    assert image_metrics.ssim(a, b) == pytest.approx(image_metrics.ssim(a3, b3), abs=1e-12)
    assert image_metrics.psnr(a, b) == pytest.approx(image_metrics.psnr(a3, b3), abs=1e-12)


def test_ssim_batch_and_small_image_error():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (3, 1, 16, 16), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 1, 16, 16), dtype=np.uint8)
    np.testing.assert_allclose(
        image_metrics.ssim_batch(a, b), [ref_ssim(x, y) for x, y in zip(a, b)], atol=1e-9
    )
    with pytest.raises(ValueError, match="11x11"):
        image_metrics.ssim(a[0, :, :10, :10], b[0, :, :10, :10])


# ------------------------------------------------------------------------------------------------
# upscaling
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 3])
def test_upscale_pil_is_bilinear(c):
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (2, c, 32, 28), dtype=np.uint8)
    up = image_metrics.upscale_pil(img, 256)
    assert up.dtype == np.uint8 and up.shape == (2, c, 256, 256)
    for i in range(2):
        for ch in range(c):
            ref = ref_bilinear_upscale(img[i, ch], 256, 256)
            assert np.abs(up[i, ch].astype(int) - ref.astype(int)).max() <= 1
    # a different filter is detectably different from the reference
    bic = image_metrics.upscale_pil(img, 256, resample="bicubic")
    assert (
        np.abs(bic[0, 0].astype(int) - ref_bilinear_upscale(img[0, 0], 256, 256).astype(int)).max()
        > 1
    )
    # constant images stay constant; non-square target
    const = np.full((1, c, 8, 8), 77, np.uint8)
    assert (image_metrics.upscale_pil(const, (20, 30)) == 77).all()
    assert image_metrics.upscale_pil(const, (20, 30)).shape == (1, c, 20, 30)


def test_upscale_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        image_metrics.upscale_pil(np.zeros((1, 3, 8, 8), np.float32), 16)


def test_vqwae_upscaling_moves_ssim_down_and_psnr_up():
    """Verified, not assumed: for a smooth 32x32 image versus a noisy or a blurred copy,
    upscaling both to 256x256 (PIL bilinear) LOWERS SSIM and RAISES PSNR (bilinear
    interpolation averages the error, while each 11x11 window at 256 spans only ~1.4 native
    pixels, where the signal has little variance left)."""
    rng = np.random.default_rng(0)
    base = smooth_image(rng, 3, 32)
    a = u8(base)[None]
    for b in (
        u8(base + rng.normal(0, 10, base.shape))[None],
        u8(gaussian_filter(base, (0, 1.0, 1.0)))[None],
    ):
        ua, ub = image_metrics.upscale_pil(a, 256), image_metrics.upscale_pil(b, 256)
        s_nat, s_up = image_metrics.ssim(a[0], b[0]), image_metrics.ssim(ua[0], ub[0])
        p_nat, p_up = image_metrics.psnr(a[0], b[0]), image_metrics.psnr(ua[0], ub[0])
        assert s_up < s_nat - 0.01, (s_nat, s_up)
        assert p_up > p_nat + 0.5, (p_nat, p_up)


# ------------------------------------------------------------------------------------------------
# Gaussian statistics and Frechet distance
# ------------------------------------------------------------------------------------------------


def test_gaussian_stats_streaming_equals_numpy():
    rng = np.random.default_rng(7)
    feats = rng.normal(size=(301, 24)) * rng.uniform(0.1, 5, 24) + 1e3  # large mean offset
    st = fid.GaussianStats(24)
    for lo, hi in [(0, 1), (1, 50), (50, 51), (51, 200), (200, 200), (200, 301)]:
        chunk = feats[lo:hi]
        st.update(torch.from_numpy(chunk).float() if lo == 51 else chunk)
    ref_feats = feats.copy()
    ref_feats[51:200] = ref_feats[51:200].astype(np.float32)  # the chunk given as float32
    assert st.n == 301
    np.testing.assert_allclose(st.mean(), ref_feats.mean(0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(st.cov(), np.cov(ref_feats, rowvar=False), rtol=0, atol=1e-9)


def test_gaussian_stats_errors():
    st = fid.GaussianStats(4)
    with pytest.raises(ValueError):
        st.mean()
    st.update(np.ones((1, 4)))
    with pytest.raises(ValueError):
        st.cov()
    with pytest.raises(ValueError):
        st.update(np.ones((2, 5)))


@pytest.mark.parametrize("n,d", [(50, 64), (400, 16)])
def test_fid_of_feature_set_with_itself_is_zero(n, d):
    rng = np.random.default_rng(8)
    feats = rng.normal(size=(n, d)) * 2 + 1
    st = fid.GaussianStats(d)
    st.update(feats)
    mu, cov = st.mean(), st.cov()
    value, info = fid.frechet_distance_info(mu, cov, mu, cov)
    assert abs(value) < 1e-6 * np.trace(cov)


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(9)
    d = 32
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(
        expected, rel=1e-10
    )


def test_frechet_full_covariance_closed_form():
    rng = np.random.default_rng(10)
    d = 24
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d, 2.0)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        closed_form_fd(mu1, s1, mu2, s2), rel=1e-9
    )


def test_fid_between_two_gaussian_feature_sets():
    """Streaming stats of samples -> FD equals the closed form on the sample moments, and
    approaches the population FD."""
    rng = np.random.default_rng(11)
    d = 8
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d) + 0.5
    s1, s2 = random_spd(rng, d), random_spd(rng, d, 0.5)
    x = rng.multivariate_normal(mu1, s1, size=20000)
    y = rng.multivariate_normal(mu2, s2, size=20000)
    a, b = fid.GaussianStats(d), fid.GaussianStats(d)
    for i in range(0, 20000, 3000):
        a.update(x[i : i + 3000])
        b.update(y[i : i + 3000])
    got = fid.frechet_distance(a.mean(), a.cov(), b.mean(), b.cov())
    sample = closed_form_fd(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert got == pytest.approx(sample, rel=1e-8)
    assert got == pytest.approx(closed_form_fd(mu1, s1, mu2, s2), rel=0.05)


def test_frechet_matches_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(12)
    d = 32
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d, 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-10)


def test_frechet_imaginary_component_raises():
    # sqrtm(diag(1, -1)) = diag(1, i): a large imaginary diagonal is an error, as in pytorch-fid
    with pytest.raises(ValueError, match="Imaginary component"):
        fid.frechet_distance(
            np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -1.0]), method="sqrtm"
        )


def test_frechet_non_finite_root_adds_eps(monkeypatch):
    """If sqrtm's result is not finite, eps is added to both diagonals and it is recomputed."""
    calls = []
    real_sqrtm = linalg.sqrtm

    def fake_sqrtm(a):
        calls.append(a.copy())
        if len(calls) == 1:
            return np.full_like(a, np.nan)
        return real_sqrtm(a)

    monkeypatch.setattr(linalg, "sqrtm", fake_sqrtm)
    s1, s2 = np.diag([1.0, 2.0]), np.diag([3.0, 4.0])
    value, info = fid.frechet_distance_info(
        np.zeros(2), s1, np.ones(2), s2, eps=1e-3, method="sqrtm"
    )
    assert info["eps_offset_added"] and len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-3 * np.eye(2)) @ (s2 + 1e-3 * np.eye(2)))
    v1, v2 = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    expected = 2 + np.sum(v1 + v2) - 2 * np.sum(np.sqrt((v1 + 1e-3) * (v2 + 1e-3)))
    assert value == pytest.approx(expected, rel=1e-12)


def test_frechet_shape_mismatch():
    with pytest.raises(ValueError):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


# ------------------------------------------------------------------------------------------------
# code usage
# ------------------------------------------------------------------------------------------------


def test_code_usage_hand_made_histograms():
    k = 16
    n = 24
    codes = np.zeros((n, 4), np.int64)
    codes[:, 0] = np.arange(n) % 6  # uniform over 6 codes -> perplexity 6
    codes[:, 1] = 3  # one code -> perplexity 1
    codes[:, 2] = np.where(np.arange(n) % 2 == 0, -1, np.arange(n) % 4)  # -1 ignored: {1, 3}
    codes[:, 3] = -1  # never used
    u = usage.code_usage(codes, k)
    pp = u["per_position"]
    assert pp["perplexity"][0] == pytest.approx(6.0, abs=1e-12)
    assert pp["fraction"][0] == pytest.approx(6 / k)
    assert pp["perplexity"][1] == pytest.approx(1.0, abs=1e-12)
    assert pp["fraction"][1] == pytest.approx(1 / k)
    assert pp["perplexity"][2] == pytest.approx(2.0, abs=1e-12)  # codes 1 and 3, 6 each
    assert pp["fraction"][2] == pytest.approx(2 / k)
    assert pp["n_valid"] == [24, 24, 12, 0]
    assert pp["perplexity"][3] is None and pp["fraction"][3] == 0.0
    assert u["n_positions_empty"] == 1
    assert u["mean_perplexity"] == pytest.approx((6 + 1 + 2) / 3)
    assert u["mean_fraction"] == pytest.approx((6 + 1 + 2) / 3 / k)
    assert u["codebook_size"] == k and u["n_unused_entries"] == 12 + 24


def test_code_usage_skewed_and_pooled():
    k = 8
    codes = np.array([[0], [0], [0], [1]], np.int64)
    p = np.array([0.75, 0.25])
    u = usage.code_usage(codes, k)
    assert u["per_position"]["perplexity"][0] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    # pooled over positions: both positions together
    codes2 = np.array([[0, 1], [0, 1]], np.int64)
    u2 = usage.code_usage(codes2, k)
    assert u2["mean_perplexity"] == pytest.approx(1.0)
    assert u2["pooled"]["perplexity"] == pytest.approx(2.0)
    assert u2["pooled"]["fraction"] == pytest.approx(2 / k)


def test_code_usage_rejects_out_of_range():
    with pytest.raises(ValueError):
        usage.code_usage(np.array([[0, 8]]), 8)
    with pytest.raises(ValueError):
        usage.code_usage(np.array([[-2, 0]]), 8)
    with pytest.raises(ValueError):
        usage.code_usage(np.array([0.0, 1.0]), 8)


def test_summarize_and_infinite_values():
    s = usage.summarize([1.0, 2.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "n": 3}
    s = usage.summarize([1.0, np.inf, 3.0, np.nan])
    assert s["mean"] is None and s["n_infinite"] == 1 and s["n"] == 3
    assert s["mean_finite"] == 2.0
    assert usage.summarize([np.nan])["n"] == 0


# ------------------------------------------------------------------------------------------------
# weights handling
# ------------------------------------------------------------------------------------------------


def test_weight_urls_match_the_libraries():
    import pytorch_fid.inception as pfi
    from torchvision.models import AlexNet_Weights

    assert weights.WEIGHTS["fid"].url == pfi.FID_WEIGHTS_URL
    assert weights.WEIGHTS["lpips"].url == AlexNet_Weights.IMAGENET1K_V1.url
    assert weights.WEIGHTS["lpips"].url.endswith(weights.WEIGHTS["lpips"].filename)
    assert weights.WEIGHTS["fid"].hash_prefix == "6726825d"


@pytest.mark.parametrize("kind", ["lpips", "fid"])
def test_missing_weights_error_names_file_and_torch_home(kind, tmp_path, monkeypatch):
    home = tmp_path / "empty_torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    calls = []

    def blocked(url, dst, *args, **kwargs):
        calls.append((url, dst))
        raise OSError("network is unreachable (blocked by test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", blocked)
    with pytest.raises(errors.MissingWeightsError) as ei:
        weights.ensure_weights(kind)
    msg = str(ei.value)
    spec = weights.WEIGHTS[kind]
    expected = home / "hub" / "checkpoints" / spec.filename
    assert calls and calls[0][0] == spec.url  # the normal download was tried
    assert spec.filename in msg
    assert str(expected) in msg
    assert f"TORCH_HOME={home}" in msg
    assert "qgvae fetch-weights" in msg and "--torch-home" in msg
    assert "shared" not in msg  # users have no ../shared folder
    assert "network is unreachable" in msg
    assert not expected.exists()
    assert isinstance(ei.value, RuntimeError)


def test_ensure_weights_finds_present_file_without_download(tmp_path, monkeypatch):
    ck = tmp_path / "hub" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / weights.WEIGHTS["fid"].filename).write_bytes(b"x")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(
        torch.hub,
        "download_url_to_file",
        lambda *a, **k: pytest.fail("must not download when present"),
    )
    assert weights.ensure_weights("fid") == ck / weights.WEIGHTS["fid"].filename
    desc = weights.file_description(ck / weights.WEIGHTS["fid"].filename, weights.WEIGHTS["fid"])
    assert f"sha256={__import__('hashlib').sha256(b'x').hexdigest()}" in desc
    assert "does NOT match" in desc


# ------------------------------------------------------------------------------------------------
# pretrained networks
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lpips_metric():
    from qgvae.evaluation.evaluator import (
        metric_models,
    )  # per-process cache shared with evaluate_run

    return metric_models(torch.device("cpu"))[0]


@pytest.fixture(scope="module")
def inception():
    from qgvae.evaluation.evaluator import metric_models

    return metric_models(torch.device("cpu"))[1]


def _structured(h: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:h] / h
    img = np.stack(
        [
            0.5 + 0.4 * np.sin(12 * x) * np.cos(9 * y),
            (x > 0.5) * 0.6 + 0.2 * y,
            0.5 + 0.3 * np.cos(20 * x * y),
        ]
    )
    return img.astype(np.float32)


@pytest.mark.weights
@pytest.mark.weights
def test_lpips_zero_for_identical_and_monotone_in_noise(lpips_metric):
    base = torch.from_numpy(_structured())[None]
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(base.shape, generator=gen)
    sig = [0.0, 0.02, 0.05, 0.1, 0.2, 0.4]
    vals = [float(lpips_metric(base, (base + s * noise).clamp(0, 1))[0]) for s in sig]
    assert vals[0] == pytest.approx(0.0, abs=1e-7)
    assert all(b > a for a, b in zip(vals, vals[1:])), vals
    # uint8 input path and grayscale repetition
    g = (np.asarray(_structured())[:1][None] * 255).round().astype(np.uint8)
    assert lpips_metric(g, g)[0] == pytest.approx(0.0, abs=1e-7)
    assert lpips_metric(g, np.repeat(g, 3, 1))[0] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.weights
@pytest.mark.weights
def test_lpips_equals_lpips_package_default_loading(lpips_metric):
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()
    rng = np.random.default_rng(13)
    a = rng.integers(0, 256, (3, 3, 48, 48), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 3, 48, 48), dtype=np.uint8)
    with torch.no_grad():
        expected = (
            ref(
                torch.from_numpy(a).float() / 255, torch.from_numpy(b).float() / 255, normalize=True
            )
            .flatten()
            .numpy()
        )
    np.testing.assert_allclose(lpips_metric(a, b), expected, rtol=1e-5, atol=1e-6)
    assert "alex v0.1" in lpips_metric.description and "sha256=" in lpips_metric.description
    assert not lpips_metric.supports(28, 28) and lpips_metric.supports(32, 32)
    with pytest.raises(ValueError, match="at least 31"):
        lpips_metric(a[:, :, :28, :28], b[:, :, :28, :28])


@pytest.mark.weights
@pytest.mark.weights
def test_inception_stats_equal_pytorch_fid_on_png_folder(inception, tmp_path):
    """Our uint8 -> Inception -> GaussianStats path equals pytorch-fid's own
    calculate_activation_statistics on PNG files of the same (grayscale) images."""
    from pytorch_fid.fid_score import calculate_activation_statistics
    from pytorch_fid.inception import InceptionV3

    rng = np.random.default_rng(14)
    imgs = u8(np.stack([smooth_image(rng, 1, 28) for _ in range(3)]))
    files = []
    for i, im in enumerate(imgs):
        p = tmp_path / f"{i}.png"
        Image.fromarray(im[0], mode="L").save(p)
        files.append(str(p))
    st = fid.GaussianStats(2048)
    st.update(inception(imgs[:1]))
    st.update(inception(imgs[1:]))
    model = InceptionV3([3]).eval()
    mu, sigma = calculate_activation_statistics(
        files, model, batch_size=3, dims=2048, device="cpu", num_workers=0
    )
    # batch sizes 1 + 2 against 3 (and the traced network on a CPU): oneDNN's kernels differ
    # in the last bits, so 1e-5 relative to the entry's size on top of 1e-5 absolute
    np.testing.assert_allclose(st.mean(), mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(st.cov(), sigma, rtol=1e-5, atol=1e-5)
    assert "pool3 2048-d" in inception.description and "sha256=" in inception.description


def test_eigh_frechet_matches_pytorch_fid_sqrtm_route():
    """The default eigendecomposition route equals pytorch-fid's sqrtm route, full and
    rank-deficient."""
    from qgvae.evaluation.fid import frechet_distance

    rng = np.random.default_rng(7)
    for n, d in ((500, 64), (40, 64)):  # n < d: singular covariances, as with a small fid_n
        a = rng.normal(size=(n, d))
        b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.5
        args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
        ref = frechet_distance(*args, method="sqrtm")
        assert frechet_distance(*args) == pytest.approx(ref, rel=1e-6, abs=1e-6)
    with pytest.raises(ValueError, match="method"):
        frechet_distance(*args, method="nope")


def test_lowrank_frechet_equals_full_when_n_is_below_dim():
    """With n <= d samples on one side, the n x n route gives the full-rank route's distance."""
    rng = np.random.default_rng(11)
    d = 96
    real = rng.normal(size=(400, d))
    fake = rng.normal(size=(30, d)) * 1.3 + 0.2
    st = fid.GaussianStats(d)
    st.update(fake[:10])
    st.update(fake[10:])
    b = st.factor()
    np.testing.assert_allclose(b @ b.T, np.cov(fake, rowvar=False), atol=1e-12)
    args = (real.mean(0), np.cov(real, rowvar=False), st.mean(), st.cov())
    full = fid.frechet_distance(*args, method="sqrtm")
    low, info = fid.frechet_distance_info(*args, factor2=b)
    assert info["method"] == "eigh-lowrank"
    # independent reference: Tr sqrtm(S1 S2) = nuclear norm of S1^1/2 B (singular values)
    w, u = np.linalg.eigh(args[1])
    nuclear = np.linalg.svd((u * np.sqrt(w)) @ u.T @ b, compute_uv=False).sum()
    dm = args[0] - args[2]
    assert low == pytest.approx(
        dm @ dm + np.trace(args[1]) + np.trace(args[3]) - 2 * nuclear, rel=1e-12
    )
    # the d x d routes add sqrt(round-off) from the ~d - n zero eigenvalues: 1e-8 relative here
    assert low == pytest.approx(full, rel=1e-7)
    big = fid.GaussianStats(4)
    big.update(rng.normal(size=(5, 4)))
    assert big.factor() is None  # n > dim: no factor, the d x d route is used
