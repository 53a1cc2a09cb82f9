"""Modern quantisers (FSQ, LFQ, residual VQ, SimVQ, VQ + rotation trick: vector-quantize-pytorch
on the grid network) and the TiTok-style 1-D tokenizer: round trips, codes, rates, the codes
against independent NumPy formulas, settings the library would reject, resume equivalence, and
the ``modern`` tables of the plan (rate matching checked).

The classes are used directly or through ``class:`` specs, so that nothing here needs the new
entry points installed, except ``test_registered_names`` (skipped until ``pip install -e .``)."""

from __future__ import annotations

import functools
import inspect
import math

import numpy as np
import pytest
import torch

from baselines.fsq import FSQVAE
from baselines.lfq import LFQVAE
from baselines.rotvq import RotationVQVAE
from baselines.rvq import ResidualVQVAE
from baselines.simvq import SimVQVAE
from baselines.titok import TiTokVAE

CLASSES = {
    "fsq": FSQVAE,
    "lfq": LFQVAE,
    "rvq": ResidualVQVAE,
    "simvq": SimVQVAE,
    "rotvq": RotationVQVAE,
    "titok": TiTokVAE,
}
SPECS = {name: f"{cls.__module__}:{cls.__name__}" for name, cls in CLASSES.items()}
GRID = dict(channels=16, res_blocks=1, res_channels=8, code_dim=8, init="uniform")
TINY = {
    "fsq": dict(GRID, codebook_size=60, levels=[5, 4, 3]),
    "lfq": dict(GRID, codebook_size=16),
    "rvq": dict(GRID, codebook_size=4, depth=3),
    "simvq": dict(GRID, codebook_size=16),
    "rotvq": dict(GRID, codebook_size=16),
    "titok": dict(
        patch_size=4, width=16, depth=1, heads=2, latents=6, code_dim=4, codebook_size=16
    ),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models, one intra-op thread: with two, a round trip cost 3.3-3.6 s instead of 0.04 s
    on a busy 2-core machine (measured; the conftest's default is two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(n=8, size=16, channels=3, seed=0):
    """Smooth random images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")


@functools.cache
def _trained(name, size=16, steps=3):
    """Method ``name`` after ``steps`` Adam steps on 8 images, in eval mode (built once per
    module: the library's einx builds its kernels on first use, about 1 CPU-s per method)."""
    torch.manual_seed(0)
    m = CLASSES[name](in_channels=3, image_size=size, **TINY[name])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    x = _images(size=size)
    for step in range(1, steps + 1):
        out = m(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        assert isinstance(m.after_step(step), dict)
        assert all(torch.isfinite(v) for v in out.losses.values())
    return m.eval(), x


# ----------------------------------------------------------------------------- every method


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_round_trip_codes_and_rate(name):
    m, x = _trained(name)
    with torch.no_grad():
        out, codes = m(x), m.encode(x)
        recon = m.decode(codes)
    assert torch.equal(codes, out.codes) and torch.equal(recon, out.recon)
    assert codes.dtype == torch.long and codes.shape == (8, m.num_tokens)
    assert int(codes.min()) >= 0 and int(codes.max()) < m.codebook_size
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # as in validation
        out16, codes16 = m(x), m.encode(x)
        assert torch.equal(m.decode(codes16), out16.recon)
    measured = m.bits_for_codes(codes)
    assert torch.allclose(measured, torch.full((8,), m.bits_per_image(), dtype=torch.float64))
    assert float(out.stats["perplexity"]) >= 1.0
    assert all(not torch.is_tensor(v) or not v.requires_grad for v in out.stats.values())


def test_bits_per_image_against_hand_arithmetic():
    def build(name, **kw):
        return CLASSES[name](in_channels=3, image_size=32, **{**TINY[name], **kw})

    assert build("fsq").bits_per_image() == pytest.approx(64 * math.log2(60))  # 8x8 cells
    fsq = build("fsq", codebook_size=1000, levels=[8, 5, 5, 5], downsample=3)
    assert fsq.bits_per_image() == pytest.approx(16 * (3 + 3 * math.log2(5)))
    assert build("lfq", codebook_size=512).bits_per_image() == 64 * 9
    rvq = build("rvq", codebook_size=8, depth=3)
    assert (rvq.num_tokens, rvq.bits_per_image()) == (192, 576.0)  # 64 cells x 3 x 3 bits
    assert build("simvq", codebook_size=512).bits_per_image() == 576.0
    assert build("rotvq", codebook_size=512, downsample=1).bits_per_image() == 256 * 9
    assert build("titok", latents=64, codebook_size=512).bits_per_image() == 576.0


def test_titok_token_count_does_not_depend_on_the_image_size():
    for size in (16, 32, 64):
        m = TiTokVAE(in_channels=3, image_size=size, **TINY["titok"]).eval()
        assert m.num_tokens == 6 and m.patches == (size // 4) ** 2
        assert m.encode(_images(2, size)).shape == (2, 6)
        assert m.decode(torch.zeros(2, 6, dtype=torch.long)).shape == (2, 3, size, size)


def test_constructor_contract():
    for name, cls in CLASSES.items():
        for arg, p in inspect.signature(cls.__init__).parameters.items():
            if arg == "self":
                continue
            assert p.kind is p.KEYWORD_ONLY, (name, arg)
            if arg not in ("in_channels", "image_size"):
                assert p.default is not p.empty and p.default is not None, (name, arg)
                assert type(p.default).__name__ == p.annotation, (name, arg)


# ----------------------------------------------------------------------------- the codes, by hand


def _codes(name, seed=1):
    """A trained model's codes of spread-out tokens z ~ N(0, 1) ``[4, cells, D]`` (the tiny
    encoder's own tokens barely differ between images), as ``encode`` computes them."""
    m, _ = _trained(name)
    z = torch.randn(4, m.cells, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        codes = m._quantise(z, freeze=True)[1]
    return m, z.double(), codes.numpy()


def _linear(layer, z):
    return z @ layer.weight.detach().double().T + layer.bias.detach().double()


def _nearest(z, books):
    return ((z[..., None, :] - books[None, None]) ** 2).sum(-1).argmin(-1)


def test_fsq_codes_are_the_rounded_bounded_projection():
    # FSQ paper, App. A.1: bound z to (-L/2, L/2) by tanh, round, index = mixed-radix digits
    m, z, codes = _codes("fsq")
    levels = np.array([5, 4, 3], dtype=np.float64)
    p = _linear(m.quantiser.project_in, z).numpy()
    half_l = (levels - 1) * (1 + 1e-3) / 2
    offset = np.where(levels % 2 == 0, 0.5, 0.0)
    digits = np.round(np.tanh(p + np.arctanh(offset / half_l)) * half_l - offset) + levels // 2
    want = (digits * np.array([1, 5, 20])).sum(-1)
    np.testing.assert_array_equal(codes, want)
    assert len(np.unique(want)) > 5


def test_lfq_codes_are_the_sign_bits():
    m, z, codes = _codes("lfq")
    p = _linear(m.quantiser.project_in, z).numpy()  # [B, T, 4]
    want = ((p > 0) * np.array([8, 4, 2, 1])).sum(-1)  # first dimension = most significant bit
    np.testing.assert_array_equal(codes, want)
    assert len(np.unique(want)) > 5


def test_rvq_codes_are_greedy_residual_nearest_codewords():
    m, z, codes = _codes("rvq")
    r, books = z.numpy(), m.quantiser.codebooks.detach().double().numpy()  # [depth, K, D]
    want = []
    for d in range(3):
        want.append(_nearest(r, books[d]))
        r = r - books[d][want[-1]]
    np.testing.assert_array_equal(codes, np.stack(want, -1).reshape(4, -1))  # cell-major
    assert len(np.unique(want[0])) > 1 and len(np.unique(want[2])) > 1


@pytest.mark.parametrize("name", ["simvq", "rotvq"])
def test_codes_are_the_nearest_codeword(name):
    m, z, codes = _codes(name)
    book = m.quantiser.codebook.detach().double().numpy()  # SimVQ: the frozen basis times W
    want = _nearest(z.numpy(), book)
    np.testing.assert_array_equal(codes, want)
    assert len(np.unique(want)) > 5


# ----------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    "name, kwargs, key",
    [
        ("lfq", dict(codebook_size=500), "model.codebook_size"),
        ("fsq", dict(codebook_size=64, levels=[2, 4, 8]), "preserve_symmetry"),
        ("fsq", dict(codebook_size=512, levels=[8, 8, 7]), "model.levels"),
        ("rvq", dict(depth=0), "model.depth"),
        ("rotvq", dict(decay=1.0), "model.decay"),
        ("titok", dict(patch_size=5), "model.patch_size"),
        ("titok", dict(init="xavier"), "model.init"),
    ],
)
def test_bad_settings_name_the_key(name, kwargs, key):
    with pytest.raises(ValueError, match=key):
        CLASSES[name](in_channels=3, image_size=32, **{**TINY[name], **kwargs})


def test_fsq_level_two_with_symmetry_is_accepted():
    m = FSQVAE(in_channels=3, image_size=16, **{**GRID, "codebook_size": 16}, levels=[2, 8],
               preserve_symmetry=True)  # fmt: skip
    assert m.bits_per_image() == 16 * 4


# ----------------------------------------------------------------------------- trainer, config


def test_resume_reaches_the_same_weights(tmp_path, photos_root, same_weights):
    """The EMA codebook (buffers) and the optimiser survive a checkpoint: 3 + 3 steps = 6."""
    from qgvae.config import resolve
    from qgvae.training import trainer

    train = dict(batch_size=8, max_steps=6, checkpoint_every=100, log_every=2, val_every=3,
                 val_batches=1, device="cpu")  # fmt: skip
    cfg = resolve(
        {
            "method": "rotvq",
            "method_class": SPECS["rotvq"],
            "dataset": "photos",
            "data_root": str(photos_root),
            "model": {**GRID, "codebook_size": 16, "dead_code_threshold_ratio": 0.5},
            "train": train,
        }
    )
    trainer.train(cfg, tmp_path / "straight")
    trainer.train(cfg, tmp_path / "resumed", stop_after=3)
    assert trainer.train(cfg, tmp_path / "resumed")["resumed_from"] == [3]
    same_weights(tmp_path / "straight", tmp_path / "resumed")


def test_resolved_config_records_every_setting_as_plain_data():
    import yaml

    from qgvae.config import ConfigError, resolve

    cfg = resolve({"method": "fsq", "method_class": SPECS["fsq"], "dataset": "cifar10"})
    assert cfg["model"]["levels"] == [8, 8, 8] and cfg["model"]["preserve_symmetry"] is False
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg  # no tuples: the run's config.yaml
    with pytest.raises(ConfigError, match="model.levels"):
        resolve({"method": "fsq", "method_class": SPECS["fsq"], "dataset": "cifar10",
                 "model": {"levels": [8, 8.5, 8]}})  # fmt: skip
    cfg = resolve({"method": "lfq", "method_class": SPECS["lfq"], "dataset": "cifar10"})
    assert cfg["model"]["inv_temperature"] == 1.0 and cfg["model"]["spherical"] is False


def _workflow(**modern):
    grid = dict(GRID, network="vqwae_net32", downsample=3)  # 4x4 cells on 32 px
    methods = {
        "qgvae": {"model": dict(tokens=16, code_dim=8, codebook_size=16, heads=2)},
        "fsq": {"class": SPECS["fsq"], "model": dict(grid, codebook_size=16, levels=[4, 4])},
        "rvq": {"class": SPECS["rvq"], "model": dict(grid, codebook_size=4, depth=2)},
        "titok": {"class": SPECS["titok"], "model": dict(TINY["titok"], latents=16)},
    }
    spec = {"datasets": ["photos"], "methods": ["qgvae", "rvq", "titok"], "bits": 64, **modern}
    return {"seeds": [0, 1], "defaults": {}, "datasets": {"photos": {}}, "methods": methods,
            "resources": {}, "modern": spec}  # fmt: skip


def test_plan_has_the_modern_tables_and_checks_every_rate():
    from qgvae.errors import ConfigError
    from qgvae.plan import build_plan

    # 64 bits: QG-VAE 16 x 4, FSQ 16 cells x log2(4 * 4), residual VQ 16 x 2 x 2, 1-D 16 x 4;
    # 256 bits: the grid methods on 8x8 cells
    down2 = {"model": {"downsample": 2}}
    sweep = {"dataset": "photos", "points": {"64": {"qgvae": {}, "fsq": {"model": {}}},
             "256": {"fsq": down2, "rvq": down2}}}  # fmt: skip
    plan = build_plan(_workflow(rate_sweep=sweep))
    modern, rates = plan["tables"]["modern"], plan["tables"]["modern_rates"]
    assert [c["method"] for c in modern] == ["qgvae", "rvq", "titok"]
    assert {c["bits"] for c in modern} == {64.0} and all(len(c["runs"]) == 2 for c in modern)
    assert [(c["label"], c["method"], c["bits"]) for c in rates] == [
        ("64", "qgvae", 64.0), ("64", "fsq", 64.0), ("256", "fsq", 256.0), ("256", "rvq", 256.0)
    ]  # fmt: skip
    assert rates[0]["runs"] == modern[0]["runs"]  # the same configuration: one run
    with pytest.raises(ConfigError, match=r"modern\.rate_sweep\.points\.256\.fsq: .* 64 bits"):
        build_plan(_workflow(rate_sweep={"dataset": "photos", "points": {"256": {"fsq": {}}}}))
    with pytest.raises(
        ConfigError,
        match=r"modern \(photos, qgvae\): .* 64 bits per image, -36.0 % off the asked 100",
    ):
        build_plan(_workflow(bits=100, dataset_bits={}))
    ok = build_plan(_workflow(bits=100, dataset_bits={"photos": 64.5}))  # within 1 %
    assert ok["tables"]["modern"][0]["bits"] == 64.5


@pytest.mark.skipif(
    "fsq" not in __import__("qgvae.methods").methods.registered(),
    reason="the new entry points need `pip install -e .` (after merging)",
)
def test_registered_names():
    from qgvae.methods import get_method

    for name, cls in CLASSES.items():
        assert get_method(name) is cls
