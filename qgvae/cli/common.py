"""Helpers every subcommand module of the CLI uses."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError

RAW = argparse.RawDescriptionHelpFormatter


def fill(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), 92)


def add(
    sub: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    description: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A subcommand ``name`` that runs ``func(args)``."""
    p = sub.add_parser(name, help=help, description=description or help, **kwargs)
    p.set_defaults(func=func)
    return p


def need_file(what: str, path: str) -> Path:
    """``path`` as a Path; ConfigError naming it when it is not a file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    return p


def config_json(text: str) -> Any:
    """The value of a ``--config-json`` argument; ConfigError naming the flag when it is not
    JSON."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config-json is not valid JSON: {exc}") from None


def fmt(value: Any, decimals: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def read_plan(path: str) -> dict[str, Any]:
    """The plan file (``qgvae plan``) as a mapping; ConfigError naming the file and the fix when
    it is missing, unreadable or not a plan (``runs`` and ``tables`` objects)."""
    import json

    p = need_file("plan", path)
    fix = "rewrite it with `qgvae plan` (or `snakemake results/plan.json`)"
    try:
        plan = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"plan {p} is unreadable ({type(exc).__name__}: {exc}); {fix}") from None
    if not (
        isinstance(plan, dict)
        and isinstance(plan.get("runs"), dict)
        and isinstance(plan.get("tables"), dict)
        and all(isinstance(cells, list) for cells in plan["tables"].values())
    ):
        raise ConfigError(f"plan {p} is not a plan (no 'runs' and 'tables' objects); {fix}")
    return plan


def read_paper_values(path: str) -> dict[str, Any]:
    """The paper values (YAML mapping); ConfigError naming the file when it does not parse."""
    import yaml

    p = need_file("paper values", path)
    try:
        values = yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(
            f"paper values {p} are not valid YAML ({reason}); restore config/paper_values.yaml"
        ) from None
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"paper values {p} are not a YAML mapping; restore the file")
    return values or {}
