"""The prior over tokens (qgvae.prior): causality, the KV cache, top-k, learning a known
distribution, resume, matched tokenizers, the generation plan, gFID, the CLI and rendering."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from qgvae.errors import ConfigError
from qgvae.prior import study, tokenizer
from qgvae.prior.data import CodeLoader, code_books, save_codes
from qgvae.prior.model import Structure, TokenPrior
from qgvae.prior.sampling import decode_images, sample_batch
from qgvae.prior.settings import check_training_settings
from qgvae.prior.trainer import PRIOR_LOG, PRIOR_RESULT, load_prior, snapshot_name, train_prior

REPO = Path(__file__).resolve().parents[1]
STRUCTURES = {
    "shared": Structure(num_tokens=7, codebook_size=5, books=(0,) * 7),
    "per-position": Structure(num_tokens=7, codebook_size=5, books=tuple(range(7))),
    "groups+unused": Structure(7, 5, (0, 1, 0, 1, 0, 1, 0), unused_symbol=True),
}


def tiny_prior(structure: Structure, dtype=torch.float32) -> TokenPrior:
    torch.manual_seed(0)
    return TokenPrior(structure=structure, width=16, layers=2, heads=2, dropout=0.1).to(dtype)


@pytest.mark.parametrize("kind", list(STRUCTURES))
def test_changing_token_t_never_changes_logits_up_to_t(kind):
    prior = tiny_prior(STRUCTURES[kind]).eval()
    vocab = prior.structure.vocab
    x = torch.randint(0, vocab, (4, 7), generator=torch.Generator().manual_seed(1))
    full = prior(x)
    for t in range(7):
        changed = x.clone()
        changed[:, t] = (changed[:, t] + 1 + torch.arange(4)) % vocab
        other = prior(changed)
        assert torch.equal(full[:, : t + 1], other[:, : t + 1]), t
        if t + 1 < 7:  # ... and it does matter for the next position
            assert not torch.equal(full[:, t + 1], other[:, t + 1])
        # a prefix alone gives the same logits
        assert torch.equal(prior(x[:, : t + 1]), full[:, : t + 1])


@pytest.mark.parametrize("kind", list(STRUCTURES))
def test_kv_cache_sampling_gives_the_logits_of_a_full_recomputation(kind):
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        prior = tiny_prior(STRUCTURES[kind], dtype).eval()
        seen = {}
        symbols = sample_batch(
            prior, 6, generator=torch.Generator().manual_seed(2), on_logits=seen.__setitem__
        )
        full = prior(symbols)
        cached = torch.stack([seen[t] for t in range(7)], dim=1)
        assert (cached - full).abs().max().item() < tol, dtype


def test_top_k_1_equals_greedy_decoding():
    prior = tiny_prior(STRUCTURES["per-position"]).eval()
    top1 = sample_batch(prior, 5, top_k=1, generator=torch.Generator().manual_seed(3))
    greedy = torch.zeros(5, 7, dtype=torch.long)
    with torch.no_grad():
        for t in range(7):  # argmax of a full recomputation at every position
            greedy[:, t] = prior(greedy)[:, t].argmax(-1)
    assert torch.equal(top1, greedy)
    # temperature does not change an argmax; top-k 1 ignores the generator
    assert torch.equal(sample_batch(prior, 5, top_k=1, temperature=0.3), greedy)


def test_unused_symbol_round_trip():
    prior = tiny_prior(STRUCTURES["groups+unused"])
    codes = torch.tensor([[0, -1, 4, -1, 2, 3, 1]])
    symbols = prior.to_symbols(codes)
    assert symbols.min() >= 0 and symbols.max() == 5
    assert torch.equal(prior.to_codes(symbols), codes)


# ---------------------------------------------------------------------------------------------
# training: a known distribution, resume


def markov_chain(n: int, t: int, seed: int) -> tuple[np.ndarray, float]:
    """``n`` sequences of a fixed 4-state Markov chain started in its stationary distribution,
    and the true entropy of one sequence in bits."""
    transition = np.array(
        [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4], [0.5, 0.0, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]]
    )
    evals, evecs = np.linalg.eig(transition.T)
    pi = np.real(evecs[:, np.argmin(abs(evals - 1))])
    pi /= pi.sum()

    def h(p):
        p = p[p > 0]
        return float(-(p * np.log2(p)).sum())

    entropy = h(pi) + (t - 1) * sum(pi[i] * h(transition[i]) for i in range(4))
    rng = np.random.default_rng(seed)
    seq = np.zeros((n, t), dtype=np.int32)
    seq[:, 0] = rng.choice(4, size=n, p=pi)
    for j in range(1, t):
        u = rng.random(n)[:, None]
        seq[:, j] = (u > np.cumsum(transition[seq[:, j - 1]], axis=1)).sum(1)
    return seq, entropy


def settings(epochs, **train):
    t = {"batch_size": 64, "lr": 3e-3, "test_every": 1, "log_every": 10, "device": "cpu"}
    t.update(train)
    return check_training_settings(
        {
            "prior": {"width": 32, "layers": 2, "heads": 2, "dropout": 0.0},
            "train": t,
            "epochs": epochs,
            "seed": 0,
        }
    )


def test_training_reaches_the_entropy_of_a_markov_chain(tmp_path):
    train, entropy = markov_chain(4096, 12, seed=0)
    test, _ = markov_chain(2048, 12, seed=1)
    save_codes(tmp_path, "train", train, [0] * 12, 4)
    save_codes(tmp_path, "test", test, [0] * 12, 4)
    meta = train_prior(tmp_path, settings([2, 4], batch_size=128), progress=False)
    assert meta["status"] == "finished" and meta["steps"] == 4 * 32
    rows = [json.loads(line) for line in (tmp_path / PRIOR_LOG).read_text().splitlines()]
    test_rows = [r for r in rows if r["split"] == "test"]
    assert [r["epoch"] for r in test_rows] == [1, 2, 3, 4]
    nll = test_rows[-1]["nll_bits_per_image"]
    uniform = 12 * math.log2(4)  # what the code costs without a prior: 42 % above the entropy
    assert abs(nll - entropy) / entropy < 0.05, (nll, entropy, uniform)
    assert (tmp_path / snapshot_name(2)).is_file() and (tmp_path / PRIOR_RESULT).is_file()
    prior, blob = load_prior(tmp_path, snapshot_name(2))
    assert blob["epoch"] == 2 and blob["step"] == 2 * 32


def test_resume_reaches_the_same_weights_and_log(tmp_path):
    train, _ = markov_chain(640, 6, seed=0)
    for folder in ("straight", "resumed"):
        save_codes(tmp_path / folder, "train", train, list(range(6)), 4)
        save_codes(tmp_path / folder, "test", train[:64], list(range(6)), 4)
    cfg = settings([1, 3], checkpoint_every=7, lr=1e-3)
    cfg["prior"]["dropout"] = 0.1  # the RNG state must survive the checkpoint
    train_prior(tmp_path / "straight", cfg, progress=False)
    meta = train_prior(tmp_path / "resumed", cfg, progress=False, stop_after=13)
    assert meta["status"] == "running" and not (tmp_path / "resumed" / PRIOR_RESULT).exists()
    meta = train_prior(tmp_path / "resumed", cfg, progress=False)
    assert meta["resumed_from"] == [13] and meta["status"] == "finished"
    for name in (PRIOR_RESULT, snapshot_name(1), snapshot_name(3)):
        a = load_prior(tmp_path / "straight", name)[0].state_dict()
        b = load_prior(tmp_path / "resumed", name)[0].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name

    def rows(folder):
        out = []
        for line in (tmp_path / folder / PRIOR_LOG).read_text().splitlines():
            row = json.loads(line)
            row.pop("tokens_per_s", None)
            out.append(row)
        return out

    assert rows("straight") == rows("resumed")
    other = settings([1, 3], checkpoint_every=7, lr=2e-3)
    train_prior(tmp_path / "resumed", cfg, progress=False)  # finished: trains again, same result
    with pytest.raises(RuntimeError, match="other settings"):
        train_prior(tmp_path / "resumed", other, progress=False)


def take(loader: CodeLoader, k: int) -> list[torch.Tensor]:
    """The next ``k`` batches (iterating again continues where the last iteration stopped)."""
    out: list[torch.Tensor] = []
    while len(out) < k:
        for batch in loader:
            out.append(batch)
            if len(out) == k:
                break
    return out


def test_code_loader_resumes_mid_epoch():
    codes = torch.arange(40).view(20, 2)
    a = CodeLoader(codes, batch_size=3, seed=5)
    first = take(a, 8)  # 6 batches per epoch: one epoch and two batches
    assert len(a) == 6 and (a.epoch, a.batch_index) == (1, 2)
    b = CodeLoader(codes, batch_size=3, seed=5)
    got = take(b, 4)
    c = CodeLoader(codes, batch_size=3, seed=5)
    c.load_state_dict(b.state_dict())
    got += take(c, 4)
    assert all(torch.equal(x, y) for x, y in zip(first, got, strict=True))
    assert not torch.equal(torch.cat(first[:6]), torch.cat(take(a, 6)))  # a new order per epoch


# ---------------------------------------------------------------------------------------------
# tokenizers: codebooks per position, matched reconstruction quality


def test_code_books_per_position_for_qgvae_and_shared_for_vqvae(tiny_run):
    from qgvae.config import resolve
    from qgvae.methods import build_model

    qg = build_model(tiny_run())
    assert code_books(qg) == list(range(qg.num_tokens))
    vq_cfg = dict(tiny_run(), method="vqvae", model={"channels": 8, "res_channels": 4})
    vq = build_model(resolve(vq_cfg))
    assert code_books(vq) == [0] * vq.num_tokens
    shared = build_model(tiny_run(model={"codebook": "shared"}))
    assert code_books(shared) == [0] * shared.num_tokens


def fake_run(folder: Path, psnrs: list[float], kept: bool = True) -> Path:
    folder.mkdir(parents=True)
    rows = [{"split": "val", "step": 10 * (i + 1), "psnr": p} for i, p in enumerate(psnrs)]
    (folder / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if kept:
        (folder / "checkpoints").mkdir()
        for r in rows:
            (folder / tokenizer.kept_name(r["step"])).write_bytes(b"")
    return folder


def test_matching_picks_the_first_checkpoint_reaching_the_target(tmp_path):
    weak = fake_run(tmp_path / "weak", [18.0, 20.0, 21.5, 21.0])
    strong = fake_run(tmp_path / "strong", [19.0, 21.6, 23.0])
    assert tokenizer.auto_target([weak, strong]) == 21.5
    rec = tokenizer.choose(strong, "auto", [weak])
    assert rec["file"] == "checkpoints/step0000020.pt" and rec["val_psnr"] == 21.6
    assert rec["target_psnr"] == 21.5
    assert tokenizer.choose(weak, "auto", [strong])["step"] == 30  # its best pass
    assert tokenizer.choose(weak, 19.5)["step"] == 20
    with pytest.raises(ConfigError, match="never reaches 22.000 dB"):
        tokenizer.choose(weak, 22.0)
    with pytest.raises(RuntimeError, match="keep_checkpoints"):
        tokenizer.choose(fake_run(tmp_path / "none", [20.0], kept=False), 19.0)


# ---------------------------------------------------------------------------------------------
# the plan of the configs


def test_generation_plan_of_the_paper_and_quick_configs():
    from qgvae.plan import build_plan

    paper = build_plan(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    gen = paper["generation"]
    assert gen["dataset"] == "cifar10" and [t["method"] for t in gen["tokenizers"]] == [
        "vqvae",
        "qgvae",
    ]
    assert {50, 200, 500} <= set(gen["epochs"])
    # Table 1's runs keep no checkpoints: the study trains its own, differing only in that
    assert len(gen["runs"]) == 2
    for run, info in gen["runs"].items():
        assert info["config"]["train"]["keep_checkpoints"] is True
        assert "/keep_checkpoints-True_" in run and run not in paper["runs"]
        cell_run = next(
            c["runs"][0]
            for c in paper["tables"]["table1"]
            if c["dataset"] == "cifar10" and c["method"] == info["method"]
        )
        cell_cfg = dict(paper["runs"][cell_run]["config"])
        cell_cfg["train"] = {**cell_cfg["train"], "keep_checkpoints": True}
        assert cell_cfg == info["config"]
    assert len(gen["priors"]) == 2
    for prior, entry in gen["priors"].items():
        assert prior.startswith(entry["run"] + "/prior/") and len(entry["compare"]) == 1
    quick = build_plan(yaml.safe_load((REPO / "config" / "quick.yaml").read_text()))
    assert quick["generation"]["runs"] == {}  # quick's Table 1 runs keep their checkpoints
    for entry in quick["generation"]["priors"].values():
        assert entry["run"] in quick["runs"]


def test_generation_config_errors_name_the_key():
    from qgvae.plan import build_plan

    cfg = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    cfg["generation"]["tokenizers"].append({"table": "table1", "method": "dqvae"})
    with pytest.raises(ConfigError, match=r"generation.tokenizers\[2\]"):
        build_plan(cfg)
    cfg["generation"]["tokenizers"].pop()
    cfg["generation"]["prior"]["width"] = 33
    with pytest.raises(ConfigError, match="generation.prior.width"):
        build_plan(cfg)


# ---------------------------------------------------------------------------------------------
# a whole study on a tiny tokenizer; gFID; the CLI; rendering


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, photos_root):
    """A tiny QG-VAE trained with kept checkpoints, its codes, a prior and samples."""
    from conftest import make_tiny_run

    from qgvae.training import trainer

    root = tmp_path_factory.mktemp("study")
    run = root / "tok"
    trainer.train(make_tiny_run(photos_root, keep_checkpoints=True), run)
    prior = run / "prior" / "abcdef12"
    rec = study.encode(run, prior, match_psnr="auto", batch_size=256, device="cpu")
    train_prior(prior, settings([1, 2], batch_size=128), progress=False)
    for epoch in (1, 2):
        study.sample(
            prior, epoch, n=8, batch_size=4, temperature=1.0, top_k=None, seed=0, device="cpu"
        )
    return root, run, prior, rec


def test_encode_sample_on_a_tiny_tokenizer(tiny_study):
    _, run, prior, rec = tiny_study
    assert rec["file"].startswith("checkpoints/step") and rec["sha256"]
    assert rec["sequences"] == {"train": 4096, "test": 512} and rec["num_books"] == 8
    with np.load(prior / "codes_train.npz") as z:
        assert z["codes"].shape == (4096, 8) and z["codes"].min() >= 0
    with np.load(prior / "samples_epoch0002.npz") as z:
        assert z["images"].shape == (8, 3, 32, 32) and z["images"].dtype == np.uint8
        assert z["codes"].shape == (8, 8)
        # the samples are the tokenizer's decoding of the sampled codes
        tok, _ = tokenizer.load_tokenizer(rec)
        with torch.no_grad():
            again = decode_images(tok, torch.from_numpy(z["codes"]).long())
        assert np.array_equal(again.numpy(), z["images"])
    # the same settings (batch size included) sample the same images
    first = np.load(prior / "samples_epoch0001.npz")["images"]
    study.sample(prior, 1, n=8, batch_size=4, temperature=1.0, top_k=None, seed=0, device="cpu")
    assert np.array_equal(np.load(prior / "samples_epoch0001.npz")["images"], first)


@pytest.mark.weights
def test_gfid_of_a_set_against_itself_is_zero(tmp_path, photos_root):
    from qgvae.data import load_split
    from qgvae.prior.metrics import generation_fid

    x = load_split("photos", photos_root, "test")[:12].numpy()
    same = generation_fid(x, x, device="cpu", features_cache=tmp_path, batch_size=12)
    assert abs(same["value"]) < 1e-6 and same["n_samples"] == same["n_reference"] == 12
    assert not same["reference_features_cached"] and len(list(tmp_path.glob("*.npy"))) == 1
    other = generation_fid(x[::-1][:6], x, device="cpu", features_cache=tmp_path, batch_size=12)
    assert other["reference_features_cached"] and other["value"] > 1.0


@pytest.mark.weights
def test_evaluate_and_render_a_tiny_study(tiny_study, tmp_path):
    from qgvae.rendering import figures
    from qgvae.rendering.generation import generation_table

    root, run, prior, rec = tiny_study
    res = study.evaluate(prior, 2, features_cache=tmp_path / "cache", batch_size=8, device="cpu")
    assert res["gfid"]["n_samples"] == 8 and res["gfid"]["value"] > 0
    assert 0 < res["nll_bits_per_image"] < 2 * res["tokenizer_bits_per_image"]
    assert json.loads((prior / "metrics_epoch0002.json").read_text())["epoch"] == 2
    plan = {
        "results": str(root),
        "seeds": [0],
        "runs": {},
        "tables": {},
        "generation": {
            "dataset": "cifar10",  # so that the paper's points are drawn
            "epochs": [1, 2, 50, 500],  # the paper's points: 50, 200, 500 (none measured)
            "settings": {
                "seeds": [0],
                "match_psnr": "auto",
                "sample": {"temperature": 1.0, "top_k": None},
            },
            "tokenizers": [
                {"key": "qgvae", "method": "qgvae", "priors": {"0": str(prior)}},
            ],
        },
    }
    paper = yaml.safe_load((REPO / "config" / "paper_values.yaml").read_text())
    tex = generation_table(plan, paper, root="/")["generation"]
    assert f"{res['gfid']['value']:.1f}" in tex and "$\\sim$110" in tex and "$\\sim$63" in tex
    assert "not measured yet (shown as --): QG-VAE epoch 1; QG-VAE epoch 50" in tex
    written, no_data = figures.render_figures(
        plan, tmp_path / "fig", root="/", only=["generation"], paper_values=paper
    )
    assert not no_data and {p.name for p in written} >= {
        "generation_fid.png",
        "generation_samples.png",
    }
    meta = json.loads((tmp_path / "fig" / "generation_fid.json").read_text())
    assert "read off its plot" in meta["caption"]


def test_cli_help_lists_the_steps():
    out = subprocess.run(
        [sys.executable, "-m", "qgvae.cli", "prior", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for step in ("encode", "train", "sample", "evaluate", "table", "bench"):
        assert step in out.stdout
