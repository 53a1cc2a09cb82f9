"""The ``qgvae`` command: the only part of the package that parses arguments or prints.

One module per stage (``data``: prepare-data, verify-data, plan; ``train``: train, bench;
``evaluate``: reconstruct, evaluate, fetch-weights; ``render``: tables, figures, report), each
with an ``add_parsers(sub)`` and small ``_cmd_<name>(args) -> int`` functions that call the core
and print what it returns. Errors of the core are :class:`qgvae.errors.QGVAEError` subclasses;
they are printed here, once, as ``qgvae COMMAND: error: MESSAGE`` on stderr, and the process
exits with the class's ``exit_code`` (see :mod:`qgvae.errors`).
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import QGVAEError
from . import data, evaluate, render, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qgvae",
        description="qgvae-bench: train, reconstruct and evaluate QG-VAE and its baselines, "
        "and render the paper's tables. See README.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for stage in (data, train, evaluate, render):
        stage.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except QGVAEError as exc:
        print(f"qgvae {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        print(f"qgvae {args.command}: error: {exc}", file=sys.stderr)
        return 1
