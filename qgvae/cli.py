"""The ``qgvae`` command. Each subcommand lives with the module that does the work."""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands through ``register_cli(subparsers)``.
_MODULES = ("qgvae.data", "qgvae.train", "qgvae.reconstruct", "qgvae.evaluate", "qgvae.bench",
            "qgvae.tables", "qgvae.figures", "qgvae.report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qgvae",
        description="qgvae-bench: train, reconstruct and evaluate QG-VAE and its baselines, "
                    "and render the paper's tables. See README.md.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.import_module('qgvae').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .data import DataError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError) as exc:
        print(f"qgvae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # known failure modes get a one-line message, not a traceback
        from .train import Interrupted, TrainingDiverged

        known = [Interrupted, TrainingDiverged, FileNotFoundError]
        try:
            from .metrics import MissingWeightsError
            known.append(MissingWeightsError)
        except ImportError:
            pass
        if isinstance(exc, tuple(known)):
            print(f"qgvae {args.command}: error: {exc}", file=sys.stderr)
            return 143 if isinstance(exc, Interrupted) else 1
        raise


if __name__ == "__main__":
    sys.exit(main())
