"""The methods the harness can train: a registry of :class:`~qgvae.models.TokenAutoencoder`
classes, filled by plug-ins.

A method is any class that implements :class:`qgvae.models.TokenAutoencoder` and takes keyword
arguments only, ``cls(in_channels=..., image_size=..., **run_config["model"])``. It is found by
name in one of two ways:

- an entry point in the group ``qgvae.methods`` of an installed distribution; the built-in
  methods register themselves this way in this project's ``pyproject.toml``::

      [project.entry-points."qgvae.methods"]
      qgvae = "qgvae.models.qgvae:QGVAE"

- a ``"package.module:Class"`` string given with the run config's ``method_class`` (the
  workflow config's ``methods: NAME: {class: ...}``), which needs nothing installed but the
  module on ``sys.path``.

A class may set ``display_name`` (used by tables and figures; default: the method's name).
See docs/own-tokenizer.md for a walk-through.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from typing import Any

from .errors import ConfigError

ENTRY_POINT_GROUP = "qgvae.methods"


@lru_cache(maxsize=1)
def registered() -> dict[str, str]:
    """``{name: "module:Class"}`` of every method registered through entry points."""
    out: dict[str, str] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, ep.value)
    return out


def load_class(spec: str, where: str = "method class") -> type:
    """Import ``"package.module:Class"`` and check that it is a TokenAutoencoder."""
    from .models.interface import TokenAutoencoder

    module, sep, attr = str(spec).partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"{where}: {spec!r} is not of the form 'package.module:Class'")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"{where}: cannot import {spec!r} ({type(exc).__name__}: {exc}); is its package "
            "installed or on PYTHONPATH?"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, TokenAutoencoder)):
        raise ConfigError(f"{where}: {spec!r} is not a subclass of qgvae.models.TokenAutoencoder")
    return cls


def get_method(name: str, spec: str | None = None) -> type:
    """The class of method ``name``: ``spec`` when given, else the registered entry point."""
    if spec:
        return load_class(spec, f"method '{name}'")
    known = registered()
    if name not in known:
        hint = (
            "no methods are registered at all: install the project (pip install -e .)"
            if not known
            else f"known: {sorted(known)}; or give methods.{name}.class: 'package.module:Class'"
        )
        raise ConfigError(f"unknown method {name!r}; {hint}")
    return load_class(known[name], f"method '{name}' (entry point {known[name]})")


def display_name(name: str, spec: str | None = None) -> str:
    """How tables and figures name method ``name`` (its class's ``display_name``)."""
    try:
        cls = get_method(name, spec)
    except ConfigError:
        return name
    return getattr(cls, "display_name", "") or name


def build_model(cfg: Mapping[str, Any]):
    """Instantiate the model of a resolved run config for its dataset's image shape."""
    from .data import dataset_info

    info = dataset_info(cfg["dataset"])
    cls = get_method(cfg["method"], cfg.get("method_class"))
    return cls(in_channels=info.channels, image_size=info.size, **cfg["model"])
