"""The settings of a generation study (the workflow config's ``generation`` section).

Every key, its default and meaning (config/README.md documents the same)::

    dataset            the tokenizers' dataset (its train split trains the prior, its test
                       split gives the test NLL and the gFID reference)
    tokenizers         [{table, method, label?}]: the table cells whose runs are the tokenizers
    seeds              tokenizer seeds; one prior per tokenizer and seed (seed k's prior is
                       seeded with k)
    match_psnr         "auto" | dB | null  (qgvae.prior.tokenizer)
    encode_batch_size  images per batch when encoding the splits
    prior              width, layers, heads, dropout (qgvae.prior.model.TokenPrior)
    train              batch_size, lr, weight_decay, adam_betas, grad_clip, amp, compile,
                       test_every (epochs between test-NLL log rows), checkpoint_every,
                       log_every (optimiser steps), device
    sample             epochs (prior epochs sampled and scored; training runs to the last),
                       n (samples per epoch = gFID's N, and the first n test images are the
                       reference; null = the whole test split), temperature, top_k (null =
                       no cut), batch_size, seed

Our defaults (the paper gives no sizes; minGPT's trainer defaults where it has one): width
256, 8 layers, 8 heads, dropout 0.1, batch 64, AdamW lr 3e-4, betas (0.9, 0.95), weight decay
0.1 on matrices only, gradient-norm clip 1.0, constant learning rate, bf16 autocast on CUDA;
sampling at temperature 1 without top-k (plain ancestral sampling).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..config import deep_merge
from ..errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "seeds": [0],
    "match_psnr": "auto",
    "encode_batch_size": 500,
    "prior": {"width": 256, "layers": 8, "heads": 8, "dropout": 0.1},
    "train": {
        "batch_size": 64,
        "lr": 3.0e-4,
        "weight_decay": 0.1,
        "adam_betas": [0.9, 0.95],
        "grad_clip": 1.0,
        "amp": "bf16",
        "cpu_amp": "none",
        "tf32": False,
        "compile": False,
        "test_every": 10,
        "checkpoint_every": 1000,
        "log_every": 100,
        "device": "auto",
    },
    "sample": {
        "epochs": [50, 200, 500],
        "n": None,
        "temperature": 1.0,
        "top_k": None,
        "batch_size": 500,
        "seed": 0,
    },
}
REQUIRED = ("dataset", "tokenizers")
# train keys that do not change what is trained (kept out of the prior folder's digest)
BOOKKEEPING = ("device", "log_every", "checkpoint_every", "test_every")


def _check_keys(given: Mapping[str, Any], allowed: Mapping[str, Any], where: str) -> None:
    for key, value in given.items():
        if key not in allowed and key not in REQUIRED:
            raise ConfigError(f"{where}.{key}: unknown key; allowed: {sorted(allowed)}")
        if isinstance(allowed.get(key), dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            _check_keys(value, allowed[key], f"{where}.{key}")


def resolve(section: Mapping[str, Any], where: str = "generation") -> dict[str, Any]:
    """The section with every default filled in; ConfigError names a bad key."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    _check_keys(section, DEFAULTS, where)
    out = deep_merge(DEFAULTS, section)
    for key in REQUIRED:
        if key not in out:
            raise ConfigError(f"{where}.{key}: required")
    epochs = out["sample"]["epochs"]
    if not epochs or any(int(e) < 1 for e in epochs) or len(set(epochs)) != len(epochs):
        raise ConfigError(f"{where}.sample.epochs: distinct epochs >= 1 needed, got {epochs}")
    out["sample"]["epochs"] = sorted(int(e) for e in epochs)
    arch = out["prior"]
    if int(arch["width"]) % int(arch["heads"]):
        raise ConfigError(
            f"{where}.prior.width ({arch['width']}) must be a multiple of heads ({arch['heads']})"
        )
    match = out["match_psnr"]
    if not (match is None or match == "auto" or isinstance(match, (int, float))):
        raise ConfigError(f"{where}.match_psnr: auto, a number (dB) or null, got {match!r}")
    if float(out["sample"]["temperature"]) <= 0:
        raise ConfigError(f"{where}.sample.temperature must be > 0")
    return out


def training_settings(settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """What ``qgvae prior train`` needs: sizes, optimiser, the sampled epochs, the seed."""
    return {
        "prior": copy.deepcopy(dict(settings["prior"])),
        "train": copy.deepcopy(dict(settings["train"])),
        "epochs": list(settings["sample"]["epochs"]),
        "seed": int(seed),
    }


def training_part(train_settings: Mapping[str, Any]) -> dict[str, Any]:
    """Training settings without bookkeeping keys (resume compares these)."""
    out = copy.deepcopy(dict(train_settings))
    out["train"] = {k: v for k, v in out["train"].items() if k not in BOOKKEEPING}
    return out


def prior_digest(train_settings: Mapping[str, Any], match: Mapping[str, Any]) -> str:
    """8-hex digest naming a prior folder: what is trained and on which tokenizer weights."""
    blob = json.dumps({"train": training_part(train_settings), "match": match}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def check_training_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``qgvae prior train --config-json``: the keys of :func:`training_settings`, filled."""
    if not isinstance(cfg, Mapping) or set(cfg) - {"prior", "train", "epochs", "seed"}:
        raise ConfigError("--config-json: expected {prior, train, epochs, seed}")
    section = {"dataset": "-", "tokenizers": []}
    section.update({k: cfg[k] for k in ("prior", "train") if k in cfg})
    if "epochs" in cfg:
        section["sample"] = {"epochs": cfg["epochs"]}
    return training_settings(resolve(section, "--config-json"), int(cfg.get("seed", 0)))
