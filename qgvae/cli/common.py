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
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    return p


def fmt(value: Any, decimals: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"
