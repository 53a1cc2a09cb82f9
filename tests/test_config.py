"""Run-config validation, variant names and the experiment plan."""

from __future__ import annotations

import pytest

from qgvae import plan as experiments
from qgvae.config import ConfigError, resolve


def test_defaults_are_the_papers():
    cfg = resolve({"method": "qgvae", "dataset": "cifar10"})
    assert cfg["train"]["optimizer"] == "adamw"
    assert cfg["train"]["lr"] == 2e-4 and cfg["train"]["weight_decay"] == 0.01
    assert cfg["train"]["batch_size"] == 32 and cfg["train"]["epochs"] == 100


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"method": "qgvae", "dataset": "cifar10", "trian": {}}, "trian"),
        ({"method": "qgvae", "dataset": "cifar10", "train": {"lr": "x"}}, "train.lr"),
        ({"method": "qgvae", "dataset": "cifar10", "train": {"batch_size": 0}}, "train.batch_size"),
        ({"method": "qgvae", "dataset": "imagenet"}, "dataset"),
        ({"method": "nope", "dataset": "cifar10"}, "nope"),
        ({"method": "qgvae", "dataset": "cifar10", "model": {"tokenz": 3}}, "model.tokenz"),
        ({"method": "qgvae", "dataset": "cifar10", "model": {"heads": "8"}}, "model.heads"),
        ({"method": "qgvae", "dataset": "cifar10", "eval": {"fid_n": 1}}, "eval.fid_n"),
    ],
)
def test_bad_configs_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve(bad)


def test_variant_names_are_unique_and_readable():
    base = resolve({"method": "qgvae", "dataset": "cifar10"})
    h32 = resolve({"method": "qgvae", "dataset": "cifar10", "model": {"heads": 32}})
    h64 = resolve({"method": "qgvae", "dataset": "cifar10", "model": {"heads": 64}})
    assert experiments.variant(base, base).startswith("default_")
    assert experiments.variant(base, h32).startswith("heads-32_")
    assert experiments.variant(base, h32) != experiments.variant(base, h64)
    assert experiments.variant(base, h32) == experiments.variant(base, dict(h32))
    # the readable part names nested keys by their leaf; the digest keeps different configs apart
    assert (
        experiments.readable_label({"model": {"heads": 8, "codebook": "shared"}})
        == "codebook-shared_heads-8"
    )
    assert experiments.readable_label({}) == "default"


def _wcfg(**extra):
    cfg = {
        "results": "results",
        "seeds": [0, 1],
        "data_root": "data",
        "datasets": {"cifar10": {}, "mnist": {}},
        "methods": {"qgvae": {}, "vqvae": {}},
        "table1": {"datasets": ["cifar10", "mnist"], "methods": ["qgvae"]},
        "ablations": {
            "dataset": "cifar10",
            "axes": {
                "heads": {
                    "values": {
                        "8": {"qgvae": {"model": {"heads": 8}}},
                        "32": {"qgvae": {"model": {"heads": 32}}},
                    }
                }
            },
        },
    }
    cfg.update(extra)
    return cfg


def test_plan_dedupes_identical_configs_and_separates_different_ones():
    plan = experiments.build_plan(_wcfg())
    # table1: 2 datasets x 1 method x 2 seeds = 4; heads=8 equals the default -> shares the folder
    # only if its resolved config is identical: heads 8 is QG-VAE's default, so 4 + 2 (heads 32)
    assert len(plan["runs"]) == 6
    cells = {c["label"]: c for c in plan["tables"]["ablation_heads"]}
    default = [c for c in plan["tables"]["table1"] if c["dataset"] == "cifar10"][0]
    assert cells["8"]["runs"] == default["runs"]
    assert "/default_" in default["runs"][0] and "/heads-32_" in cells["32"]["runs"][0]
    assert cells["32"]["runs"][0] != cells["8"]["runs"][0]
    assert experiments.runs_for(plan, "ablation_heads") == cells["8"]["runs"] + cells["32"]["runs"]


def test_plan_errors_name_the_place():
    with pytest.raises(ConfigError, match=r"ablations\.axes\.heads\.values\.32\.qgvae"):
        experiments.build_plan(
            _wcfg(
                ablations={
                    "dataset": "cifar10",
                    "axes": {"heads": {"values": {"32": {"qgvae": {"model": {"headz": 32}}}}}},
                }
            )
        )
    with pytest.raises(ConfigError, match="svhn"):
        experiments.build_plan(_wcfg(table1={"datasets": ["svhn"], "methods": ["qgvae"]}))


def test_plan_checks_method_and_dataset_names_against_the_registries():
    """The schemas list no names: the plan checks them, naming the key."""
    bad = _wcfg()
    bad["methods"]["qgvea"] = {}
    with pytest.raises(ConfigError, match=r"methods\.qgvea: unknown method 'qgvea'.*class"):
        experiments.build_plan(bad)
    bad = _wcfg()
    bad["datasets"]["imagenet"] = {}
    with pytest.raises(ConfigError, match=r"datasets\.imagenet: unknown dataset 'imagenet'"):
        experiments.build_plan(bad)
    bad = _wcfg(method_dataset={"dqvae": {"cifar10": {}}})
    with pytest.raises(ConfigError, match=r"method_dataset\.dqvae: method 'dqvae' has no entry"):
        experiments.build_plan(bad)
    bad = _wcfg()
    bad["methods"]["mine"] = {"class": "no.such.module:Tokenizer"}
    with pytest.raises(ConfigError, match=r"methods\.mine: .*cannot import 'no\.such\.module"):
        experiments.build_plan(bad)
    bad["methods"]["mine"] = {"class": "qgvae.plan:build_plan"}
    with pytest.raises(ConfigError, match="not a subclass of qgvae.models.TokenAutoencoder"):
        experiments.build_plan(bad)


def test_a_method_given_by_class_reaches_the_run_config():
    """methods.NAME.class plugs in any TokenAutoencoder: its runs carry method_class, the model
    is built from it, and its folder name is the method's."""
    from qgvae.methods import build_model

    cfg = _wcfg(table1={"datasets": ["cifar10"], "methods": ["mine"]})
    cfg["methods"]["mine"] = {"class": "baselines.vqvae:VQVAE", "model": {"channels": 16}}
    plan = experiments.build_plan(cfg)
    (path, run), *_ = plan["runs"].items()
    assert path.startswith("results/cifar10/mine/")
    assert run["config"]["method_class"] == "baselines.vqvae:VQVAE"
    assert run["config"]["model"]["channels"] == 16 and "class" not in run["config"]
    assert type(build_model(run["config"])).__name__ == "VQVAE"
    # a built-in method's config has no method_class (its folder digest is unchanged)
    assert all(
        "method_class" not in r["config"] for r in experiments.build_plan(_wcfg())["runs"].values()
    )
