"""The ``qgvae`` command: the only part of the package that parses arguments or prints.

One module per stage (``data``: prepare-data, verify-data, plan; ``train``: train, bench;
``evaluate``: reconstruct, evaluate, fetch-weights; ``render``: collect, tables, figures,
differences, timing, markdown, report), each with an ``add_parsers(sub)`` and small
``_cmd_<name>(args) -> int`` functions that call the core and print what it returns. Errors of
the core are :class:`qgvae.errors.QGVAEError` subclasses; they are printed here, once, as
``qgvae COMMAND: error: MESSAGE`` on stderr (one line: any line break in a message is folded),
and the process exits with the class's ``exit_code`` (see :mod:`qgvae.errors`); an ``OSError``
is reported the same way with status 1.

Every command but ``bench`` first raises glibc malloc's thresholds
(:func:`qgvae.machine.tune_cpu_allocator`; ``QGVAE_ALLOCATOR=default`` leaves them), which
removes most of the kernel time of CPU inference and training; ``bench`` does it itself, after
measuring the reference loops under the default allocator.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import QGVAEError
from ..machine import tune_cpu_allocator
from . import data, evaluate, prior, render, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qgvae",
        description="qgvae-bench: train, reconstruct and evaluate QG-VAE and its baselines, "
        "and render the paper's tables. See README.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for stage in (data, train, evaluate, prior, render):
        stage.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command != "bench":  # bench measures the references under the default first
        tune_cpu_allocator()
    try:
        return int(args.func(args) or 0)
    except QGVAEError as exc:
        return _report(args.command, str(exc), exc.exit_code)
    except OSError as exc:  # e.g. [Errno 13] Permission denied: 'results/x' (names the file)
        return _report(args.command, str(exc), 1)


def _report(command: str, message: str, exit_code: int) -> int:
    """The one place an error becomes output: one line on stderr, and the exit status."""
    one_line = " ".join(message.split())
    print(f"qgvae {command}: error: {one_line}", file=sys.stderr)
    return exit_code
