"""Run configuration: defaults and validation (JSON schema + the method's constructor).

A run config is one mapping with the keys ``method``, ``dataset``, ``data_root``, ``seed``,
``model`` (keyword arguments of the method's model class), ``train`` and ``eval``
(see ``qgvae/schemas/run.schema.json`` for every key and its meaning).
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "max_steps": None,
    "batch_size": 32,
    "optimizer": "adamw",
    "lr": 2e-4,
    "weight_decay": 0.01,
    "adam_betas": [0.9, 0.999],
    "lr_schedule": "none",
    "plateau_factor": 0.5,
    "plateau_patience": 3,
    "plateau_threshold": 1e-4,
    "warmup_steps": 0,
    "val_metric": "mse",
    "select": "final",
    "keep_checkpoints": False,
    "amp": "bf16",
    "cpu_amp": "none",
    "tf32": False,
    "compile": False,
    "checkpoint_every": 1000,
    "log_every": 50,
    "val_every": 0,
    "val_batches": None,
    "device": "auto",
    "grad_clip": None,
}
EVAL_DEFAULTS: dict[str, Any] = {
    "test_n": None,
    "fid_n": None,
    "batch_size": 100,
    "protocols": ["vqwae", "native"],
}
RUN_DEFAULTS: dict[str, Any] = {
    "data_root": "data",
    "seed": 0,
    "model": {},
    "train": TRAIN_DEFAULTS,
    "eval": EVAL_DEFAULTS,
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Recursive dict merge; ``override`` wins, nested mappings merge, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# Keys of a resolved run config that do not change what is trained: the seed (runs of one
# configuration differ only by it and live in seed<k>/ folders), evaluation settings, where the
# data lives, the device, and the logging / checkpoint cadence.
NOT_TRAINING = (
    ("seed",),
    ("eval",),
    ("data_root",),
    ("train", "device"),
    ("train", "log_every"),
    ("train", "checkpoint_every"),
)


def training_part(cfg: Mapping[str, Any], *, keep_seed: bool = False) -> dict[str, Any]:
    """A copy of ``cfg`` without :data:`NOT_TRAINING` (the seed kept if ``keep_seed``)."""
    out = copy.deepcopy(dict(cfg))
    for path in NOT_TRAINING:
        if keep_seed and path == ("seed",):
            continue
        node = out
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return out


def _schema() -> dict[str, Any]:
    return json.loads(resources.files("qgvae").joinpath("schemas/run.schema.json").read_text())


def _path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate_schema(cfg: Mapping[str, Any], schema: Mapping[str, Any], what: str) -> None:
    """Raise ConfigError naming the offending key for the first schema violation."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            raise ConfigError(
                f"{what}: unknown key(s) {extra} under '{_path(err)}'; "
                f"allowed: {sorted(err.schema.get('properties', {}))}"
            )
        raise ConfigError(f"{what}: invalid value at '{_path(err)}': {err.message}")


def model_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor arguments a run config's ``model`` section may set."""
    params = inspect.signature(cls.__init__).parameters
    return {
        n: p
        for n, p in params.items()
        if n not in ("self", "in_channels", "image_size")
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def check_model_kwargs(method: str, model_cfg: Mapping[str, Any], cls: type) -> None:
    """Model kwargs must be parameters of the class's constructor, with the default's type."""
    accepted = model_parameters(cls)
    for key, value in model_cfg.items():
        if key not in accepted:
            raise ConfigError(
                f"model: unknown key 'model.{key}' for method '{method}'; "
                f"allowed: {sorted(accepted)}"
            )
        default = accepted[key].default
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        if isinstance(default, tuple):  # a list in YAML / JSON (which have no tuples)
            ok = isinstance(value, (list, tuple)) and all(
                type(v) is type(d) for v, d in zip(value, default[:1] * len(value))
            )
            if not ok:
                kind = type(default[0]).__name__ if default else "value"
                raise ConfigError(
                    f"model: 'model.{key}' for method '{method}' must be a list of {kind}, "
                    f"got {value!r}"
                )
            continue
        ok = isinstance(value, type(default))
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if isinstance(default, bool) != isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError(
                f"model: 'model.{key}' for method '{method}' must be "
                f"{type(default).__name__}, got {type(value).__name__} ({value!r})"
            )


# What a path given in a configuration may not contain: what a shell would interpret (every
# value is quoted before it reaches a shell; this rejects the rest early, with a clear message)
# and, through ``str.isprintable``, control and other invisible characters.
UNSAFE_PATH_CHARS = frozenset(";&|`$<>(){}[]*?!~#'\"\\")


def check_path(key: str, value: Any) -> None:
    """A path of a configuration is a plain path: ConfigError naming ``key`` otherwise.

    Rejected: shell metacharacters (:data:`UNSAFE_PATH_CHARS`; ``{}`` would also be read as
    Snakemake wildcards), control or other non-printable characters, a leading ``-`` (it would
    read as a command-line option) and an empty path. Spaces are allowed (values are quoted).
    """
    text = str(value)
    bad = sorted({c for c in text if c in UNSAFE_PATH_CHARS or not c.isprintable()})
    problem = ", ".join(repr(c) for c in bad)
    if not text.strip():
        problem = "empty"
    elif text.startswith("-"):
        problem = problem or "starts with '-'"
    if problem:
        raise ConfigError(
            f"{key}: {text!r} is not a plain path ({problem}); use only letters, digits, "
            "spaces and / . _ - + , = : @ (and no leading -)"
        )


def check_buildable(cfg: Mapping[str, Any]) -> Any:
    """Build the model of a resolved run config on the meta device (parameters without memory
    or arithmetic), so that an argument its constructor rejects (e.g. ``heads`` that do not
    divide ``tokens``) is a ConfigError before any work, not a traceback after the data loaded.
    Returns that (meta) model.
    """
    import torch

    from .methods import build_model

    try:
        with torch.device("meta"):
            return build_model(cfg)
    except Exception as exc:  # whatever the constructor raises is a configuration error
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"model: the {cfg['method']} model for {cfg['dataset']} cannot be built: {reason}; "
            "change its 'model' arguments"
        ) from None


def resolve(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults and validate everything; returns the resolved config or raises ConfigError.

    (Whether the model can be built is :func:`check_buildable`'s job: it costs a model build.)
    """
    from .methods import get_method

    if not isinstance(cfg, Mapping):
        raise ConfigError(f"run config must be a mapping, got {type(cfg).__name__}")
    if isinstance(cfg.get("data_root"), str):
        check_path("data_root", cfg["data_root"])
    validate_schema(cfg, _schema(), "run config")
    resolved = deep_merge(RUN_DEFAULTS, cfg)
    validate_schema(resolved, _schema(), "run config")
    from .data import DATASETS

    if resolved["dataset"] not in DATASETS:
        raise ConfigError(
            f"dataset: unknown dataset {resolved['dataset']!r}; known datasets: "
            f"{', '.join(DATASETS)}"
        )
    try:
        cls = get_method(resolved["method"], resolved.get("method_class"))
    except ConfigError as exc:
        raise ConfigError(f"method: {exc}") from None
    check_model_kwargs(resolved["method"], resolved["model"], cls)
    # Spell out every constructor default, so the saved config is complete and two spellings
    # of the same model (an explicit default or none) resolve to the same config.
    # Tuple defaults become lists: the resolved config is plain YAML / JSON data.
    defaults = {
        n: list(p.default) if isinstance(p.default, tuple) else p.default
        for n, p in model_parameters(cls).items()
        if p.default is not inspect.Parameter.empty
    }
    resolved["model"] = {**defaults, **resolved["model"]}
    return resolved


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON run config and resolve it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return resolve(raw or {})
