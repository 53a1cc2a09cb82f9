"""Method name -> model class. Every class takes keyword arguments only:
``cls(in_channels=..., image_size=..., **run_config["model"])`` and implements
``qgvae.interface.TokenAutoencoder``."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

METHODS: dict[str, str] = {
    "qgvae": "qgvae.model:QGVAE",
    "vqvae": "baselines.vqvae:VQVAE",
    "sqvae": "baselines.sqvae:SQVAE",
    "vqwae": "baselines.vqwae:VQWAE",
    "splitvq": "baselines.splitvq:SplitVQVAE",
    "dqvae": "baselines.dqvae:DQVAE",
}


def get_method(name: str) -> type:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    module, attr = METHODS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_model(cfg: Mapping[str, Any]):
    """Instantiate the model of a resolved run config for its dataset's image shape."""
    from .data import dataset_info

    info = dataset_info(cfg["dataset"])
    cls = get_method(cfg["method"])
    return cls(in_channels=info.channels, image_size=info.size, **cfg["model"])
