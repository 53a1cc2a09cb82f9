"""``qgvae prepare-data``, ``verify-data`` and ``plan``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .common import RAW, add, config_json, fill


def _datasets_epilog() -> str:
    from ..data import CACHE_DIRNAME, DATASETS, SPLITS, source_layout

    parts = ["datasets (source files under ROOT, as torchvision expects them):"]
    for name, info in DATASETS.items():
        counts = "/".join(f"{info.splits[s]:,}" for s in SPLITS)
        parts.append(
            f"\n{name}  ({info.channels}x{info.size}x{info.size}, train/val/test "
            f"{counts})\n{source_layout(name)}"
        )
    parts.append(
        f"\nThe cache goes to ROOT/{CACHE_DIRNAME}/NAME/{{train,val,test}}.npy + manifest.json."
    )
    return "\n".join(parts)


def _print_cache(name: str, report: dict[str, Any], seconds: float | None = None) -> None:
    from ..data import DATASETS, SPLITS

    print(f"{name}: {report['folder']}" + (f"  ({seconds:.1f} s)" if seconds is not None else ""))
    print(f"  {DATASETS[name].description}")
    for split in SPLITS:
        s = report["splits"].get(split, {})
        sha = (s.get("sha256") or "")[:16]
        print(
            f"  {split:5s} {s.get('count')!s:>7} images  shape {s.get('shape')}  sha256 {sha}  "
            f"{'ok' if s.get('ok') else 'BAD'}"
        )


def _cmd_prepare_data(args: argparse.Namespace) -> int:
    from ..data import prepare, verify

    t0 = time.perf_counter()
    prepare(args.name, args.root, download=not args.no_download, workers=args.workers)
    report = verify(args.name, args.root)
    _print_cache(args.name, report, time.perf_counter() - t0)
    return 0 if report["ok"] else 1


def _cmd_verify_data(args: argparse.Namespace) -> int:
    from ..data import verify

    report = verify(args.name, args.root)
    if report["splits"]:
        _print_cache(args.name, report)
    for problem in report["problems"]:
        print(f"problem: {problem}", file=sys.stderr)
    print("ok" if report["ok"] else f"FAILED: {len(report['problems'])} problem(s)")
    return 0 if report["ok"] else 1


# ---------------------------------------------------------------------------------- plan
def _cmd_plan(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..io import write_text
    from ..plan import build_plan, subplan

    if args.plan_file is not None:  # a table's plan from the whole plan: no config to resolve
        from .common import read_plan

        if not args.table:
            raise ConfigError("--from needs --table (the table whose plan to write)")
        plan = read_plan(args.plan_file)
    else:
        plan = build_plan(config_json(args.config_json))
    if args.table:
        plan = subplan(plan, args.table)
    write_text(args.out, json.dumps(plan, indent=1) + "\n")
    print(f"wrote {args.out}: {len(plan['runs'])} runs, tables {', '.join(plan['tables'])}")
    return 0


def _data_parsers(sub: Any) -> None:
    from ..data import DATASETS

    names = list(DATASETS)
    p = add(
        sub,
        "prepare-data",
        _cmd_prepare_data,
        "check/download a dataset and write its uint8 cache",
        fill(
            "Check a dataset's source files against torchvision's MD5s (downloading missing "
            "ones through torchvision unless --no-download), then write the uint8 cache "
            "ROOT/qgvae-cache/NAME/{train,val,test}.npy and manifest.json. A valid cache is "
            "kept. Missing or corrupt files are reported with the expected checksum and where "
            "to get them. Exit status: 0 ok, 2 data error."
        ),
        formatter_class=RAW,
        epilog=_datasets_epilog(),
    )
    p.add_argument("name", choices=names, metavar="NAME", help=f"dataset: {', '.join(names)}")
    p.add_argument(
        "--root",
        default="data",
        metavar="DIR",
        help="data root holding the source files; the cache is written below it (default: data)",
    )
    p.add_argument(
        "--no-download",
        action="store_true",
        help="never use the network; fail with instructions if a source file is missing",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for CelebA JPEG decoding (default: up to 4)",
    )
    v = add(
        sub,
        "verify-data",
        _cmd_verify_data,
        "re-check a prepared cache (sha256, counts, shapes) against its manifest",
        fill(
            "Re-hash ROOT/qgvae-cache/NAME/*.npy and compare them, their shapes and counts "
            "with manifest.json and the dataset's expected split sizes. Exit status: 0 ok, 1 "
            "the cache does not verify, 2 error."
        ),
    )
    v.add_argument("name", choices=names, metavar="NAME", help=f"dataset: {', '.join(names)}")
    v.add_argument("--root", default="data", metavar="DIR", help="data root (default: data)")


def _plan_parser(sub: Any) -> None:
    p = add(
        sub,
        "plan",
        _cmd_plan,
        "write the run plan of a workflow config (which runs exist, "
        "where they live, which table cells they fill)",
        "Resolve a workflow config "
        "(config/*.yaml, as JSON) into every run folder and table cell and write them as JSON "
        "(qgvae.plan.build_plan). Tables, figures and the report read this file.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config-json", help="the workflow config as a JSON string")
    src.add_argument(
        "--from",
        dest="plan_file",
        metavar="PLAN",
        help="with --table: cut the table's plan out of this whole plan (a JSON file written "
        "by qgvae plan) instead of resolving the config again",
    )
    p.add_argument("--out", required=True, help="plan file to write (JSON)")
    p.add_argument("--table", help="only this table's cells and runs (e.g. ablation_heads)")


def _cmd_estimate(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..estimate import estimate, summary_lines
    from ..io import write_text
    from .common import need_file, read_plan

    plan = read_plan(args.plan)
    try:
        bench = json.loads(need_file("bench", args.bench).read_text())
    except ValueError as exc:
        raise ConfigError(f"bench file {args.bench} is not JSON ({exc})") from None
    if not isinstance(bench, dict) or not isinstance(bench.get("rows"), list):
        raise ConfigError(f"{args.bench} is not a `qgvae bench train --json` file (no rows)")
    frame = estimate(plan, bench["rows"], table=args.table or "")
    print(f"qgvae estimate: {args.plan}" + (f", tables {args.table}*" if args.table else ""))
    print("\n".join(summary_lines(frame, by=args.by)))
    if args.csv:
        write_text(args.csv, frame.to_csv(index=False, lineterminator="\n"))
        print(f"wrote {args.csv}: one row per run")
    return 0


def _estimate_parser(sub: Any) -> None:
    p = add(
        sub,
        "estimate",
        _cmd_estimate,
        "predicted device-hours of a plan's trainings, from a measured ms/step table",
        "For every run of the plan (or of the tables whose name starts with --table): its "
        "optimiser steps times the ms/step that `qgvae bench train --json` measured for its "
        "configuration on the machine that will train it (matched by training configuration, "
        "else by method and dataset, else by method; each run says which). Training only.",
    )
    p.add_argument("--plan", required=True, help="the plan (qgvae plan; results/plan.json)")
    p.add_argument("--bench", required=True, help="`qgvae bench train --json` output")
    p.add_argument("--table", help="only the runs of the tables whose name starts with this")
    p.add_argument(
        "--by",
        nargs="+",
        default=["method"],
        choices=["method", "dataset"],
        help="how to group the hours (default: method)",
    )
    p.add_argument("--csv", help="also write one row per run to this CSV")


def add_parsers(sub: Any) -> None:
    _data_parsers(sub)
    _plan_parser(sub)
    _estimate_parser(sub)
