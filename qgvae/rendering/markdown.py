"""A benchmark's results as one Markdown page (``qgvae markdown``), read only from run folders.

What it writes, all from files the workflow produced (nothing typed in):

- how the numbers were obtained: the command, the git commit(s), hardware and package versions
  (each run's ``run.json`` / ``metrics.json``), the wall time and CPU time per stage (Snakemake's
  benchmark files, :mod:`qgvae.rendering.timing`);
- training: per run, optimiser steps, images seen, the step at which validation PSNR first
  exceeded the mean image's by the margin (where the plateau ends), the final and selected step;
- Table 1 per dataset and protocol: every method, the mean-image floor, the paper's value beside
  ours under the paper's protocol, the gain over the floor, input dependence, rate and usage;
- QG-VAE minus each baseline with its paired-bootstrap 95 % interval (``paired_differences.csv``);
- which of the paper's pairwise orderings hold here, metric by metric;
- the figures (PNG copies beside the page, with their captions);
- a hand-written reading (``--reading FILE``), included verbatim: the interpretation is the
  only part a person writes, and it must not carry numbers of its own.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import write_text
from .differences import read_differences
from .names import Names
from .results import load_cell, load_floor, load_plan, read_json, run_scale
from .timing import elapsed_wall, timing

METRICS = (("ssim", "SSIM", 3, True), ("psnr", "PSNR", 2, True), ("lpips", "LPIPS", 3, False))
RFID = ("rfid", "rFID", 2, False)
ALL = (*METRICS, RFID)
FIGURES = ("training_curves", "recon_grid_{dataset}", "rate_distortion", "code_usage")


def _num(x: float | None, decimals: int) -> str:
    return "–" if x is None else f"{x:.{decimals}f}"


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    return [_row(header), _row(rule), *(_row(r) for r in rows), ""]


def _runs(plan: Mapping[str, Any]) -> list[str]:
    return [r for cell in (plan.get("tables") or {}).get("table1", []) for r in cell["runs"]]


def _provenance(plan: Mapping[str, Any], root: Path, runs: Sequence[str]) -> list[str]:
    commits, hardware, versions = {}, {}, {}
    for run in runs:
        rj, _ = read_json(root / run / "run.json")
        if not rj:
            continue
        commits[str(rj.get("git_commit"))] = commits.get(str(rj.get("git_commit")), 0) + 1
        hw = rj.get("hardware") or {}
        desc = ", ".join(
            f"{k} {hw[k]}"
            for k in ("gpu", "cpu", "cpu_count", "torch_threads", "device", "platform")
            if hw.get(k) is not None
        )
        hardware[desc] = hardware.get(desc, 0) + 1
        for pkg, ver in (rj.get("versions") or {}).items():
            if pkg in ("torch", "torchvision", "numpy", "python", "lpips", "pytorch-fid", "POT"):
                versions[pkg] = ver
    out = []
    for commit, n in commits.items():
        out.append(f"- git commit of the training runs: `{commit}` ({n} runs)")
    for desc, n in hardware.items():
        out.append(f"- hardware: {desc} ({n} runs)")
    if versions:
        out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    return out


def _stage_lines(results: Path) -> list[str]:
    stages = timing(results)
    if not stages:
        return [
            "No Snakemake benchmark files under `benchmarks/`: the stage times are unknown.",
            "",
        ]
    rows = [
        [name, s.jobs, f"{s.wall_s / 60:.1f}", f"{s.cpu_s / 60:.1f}"] for name, s in stages.items()
    ]
    span = elapsed_wall(results)
    lines = _table(["stage", "jobs", "wall-min (summed over jobs)", "CPU-min"], rows)
    if span is not None:
        lines.insert(
            0,
            f"Elapsed wall time with at least one job running: **{span / 60:.1f} min** (jobs run "
            "side by side, so the per-stage wall times add up to more; pauses between jobs are "
            "not counted).",
        )
        lines.insert(1, "")
    return lines


def _training(plan: Mapping[str, Any], root: Path, names: Names) -> list[str]:
    header = [
        "method",
        "dataset",
        "seed",
        "steps",
        "epochs",
        "images seen",
        "floor (val PSNR)",
        "plateau left at step",
        "final val PSNR",
        "evaluated weights",
    ]
    rows = []
    for cell in (plan.get("tables") or {}).get("table1", []):
        for run in cell["runs"]:
            rj, why = read_json(root / run / "run.json")
            if rj is None:
                rows.append([names.method(cell["method"]), cell["dataset"], "?", why, *[""] * 6])
                continue
            scale = run_scale(rj)
            margin = rj.get("learned_margin_db")
            left = rj.get("step_val_psnr_above_floor_by_margin")
            sel = rj.get("selected") or {}
            rows.append(
                [
                    names.method(cell["method"]),
                    names.dataset(cell["dataset"]),
                    rj.get("seed"),
                    f"{int(scale['steps']):,}" if scale["steps"] is not None else "?",
                    _num(scale["epochs"], 2),
                    f"{int(scale['images_seen']):,}" if scale["images_seen"] else "?",
                    _num(rj.get("val_floor_psnr"), 2),
                    "never"
                    if left is None
                    else f"{int(left):,}" + (f" (+{margin:g} dB)" if margin else ""),
                    _num(rj.get("final_val_psnr"), 2),
                    f"{sel.get('rule', '?')} (step {sel.get('step', '?')})",
                ]
            )
    return _table(header, rows, "llrrrrrrrl")


def _paper(paper: Mapping[str, Any], dataset: str, method: str, metric: str) -> str | None:
    try:
        v = paper["table1"]["datasets"][dataset]["values"][method][metric]
    except (KeyError, TypeError):
        return None
    return None if v is None else str(v)


def _results_table(
    plan: Mapping[str, Any],
    root: Path,
    paper: Mapping[str, Any],
    names: Names,
    dataset: str,
    protocol: str,
) -> list[str]:
    cells = [c for c in (plan.get("tables") or {}).get("table1", []) if c["dataset"] == dataset]
    stats = [load_cell(plan, c, protocol, root) for c in cells]
    floor = load_floor(plan, stats, protocol, root)
    with_paper = protocol == paper.get("protocol")
    header = ["method"]
    for _, title, _, better_high in ALL:
        header.append(f"{title} {'↑' if better_high else '↓'}")
        if with_paper:
            header.append(f"{title} (paper)")
    header += ["PSNR − floor (dB)", "input dependence (dB)", "bits / image", "code usage (%)"]
    rows = []
    for cell, st in zip(cells, stats):
        row = [names.method(cell["method"])]
        for key, _, decimals, _ in ALL:
            row.append(_num(st.mean(key), decimals))
            if with_paper:
                row.append(_paper(paper, dataset, cell["method"], key) or "–")
        row += [
            _num(st.mean("gain"), 2),
            _num(st.mean("indep"), 2),
            _num(st.mean("bits"), 0),
            _num(st.mean("usage"), 1),
        ]
        if st.missing:
            row[0] += " (missing: " + "; ".join(m.reason for m in st.missing) + ")"
        rows.append(row)
    if floor is not None:
        row = ["mean image (floor)"]
        for key, _, decimals, _ in ALL:
            vals = floor.values(key)
            row.append(_num(vals[0] if vals else None, decimals))
            if with_paper:
                row.append("–")
        rows.append(row + ["0.00", "–", "0", "–"])
    ns = sorted({n for st in stats for n in st.ns("n")})
    fid_ns = sorted({n for st in stats for n in st.ns("fid_n")})
    seeds = sorted({len(st.present) for st in stats})
    lines = [
        f"SSIM, PSNR, LPIPS on {', '.join(map(str, ns)) or '?'} test images, rFID between "
        f"{', '.join(map(str, fid_ns)) or '?'} test originals and their reconstructions; "
        f"seeds per cell: {', '.join(map(str, seeds))} (the mean over seeds where more than one).",
        "",
    ]
    notes = sorted({n for st in stats for n in st.notes})
    return lines + _table(header, rows) + [f"Protocol: {n}" for n in notes] + [""]


def _differences(
    rows: Sequence[Mapping[str, str]], names: Names, dataset: str, protocol: str
) -> list[str]:
    mine = [
        r
        for r in rows
        if r["dataset"] == dataset and r["protocol"] == protocol and r["method"] == "qgvae"
    ]
    if not mine:
        return ["No paired differences for this protocol (`paired_differences.csv`).", ""]
    out_rows = []
    for r in mine:
        decimals = {"ssim": 4, "psnr": 2, "lpips": 4, "rfid": 2}.get(r["metric"], 3)
        lo, hi = float(r["ci_low"]), float(r["ci_high"])
        verdict = "excludes 0" if lo > 0 or hi < 0 else "includes 0"
        out_rows.append(
            [
                names.method(r["baseline"]),
                r["metric"].upper() if r["metric"] != "rfid" else "rFID",
                f"{float(r['diff_mean']):+.{decimals}f}",
                f"[{lo:+.{decimals}f}, {hi:+.{decimals}f}]",
                verdict,
                r["n_images"],
            ]
        )
    return _table(
        ["QG-VAE minus", "metric", "difference", "95 % interval", "interval", "images"],
        out_rows,
        "llrrlr",
    )


def _orderings(
    plan: Mapping[str, Any],
    root: Path,
    paper: Mapping[str, Any],
    diffs: Sequence[Mapping[str, str]],
    names: Names,
    dataset: str,
) -> list[str]:
    """For every pair of methods with paper values and every metric: the paper's order against
    ours (under the paper's protocol), with whether our interval excludes a tie."""
    protocol = paper.get("protocol", "vqwae")
    cells = [c for c in (plan.get("tables") or {}).get("table1", []) if c["dataset"] == dataset]
    ours = {c["method"]: load_cell(plan, c, protocol, root) for c in cells}
    methods = [m for m in ours if _paper(paper, dataset, m, "psnr") is not None]
    interval = {}
    for r in diffs:
        if r["dataset"] == dataset and r["protocol"] == protocol:
            interval[(r["method"], r["baseline"], r["metric"])] = (
                float(r["ci_low"]),
                float(r["ci_high"]),
            )
    rows, held, total = [], 0, 0
    for key, title, _, better_high in ALL:
        for i, a in enumerate(methods):
            for b in methods[i + 1 :]:
                pa, pb = _paper(paper, dataset, a, key), _paper(paper, dataset, b, key)
                oa, ob = ours[a].mean(key), ours[b].mean(key)
                if pa is None or pb is None or oa is None or ob is None:
                    continue
                sign = 1 if better_high else -1
                p_order = (float(pa) - float(pb)) * sign
                o_order = (oa - ob) * sign
                if p_order == 0:
                    continue
                winner, loser = (a, b) if p_order > 0 else (b, a)
                p_pair = f"{pa} vs {pb}" if p_order > 0 else f"{pb} vs {pa}"
                o_pair = (oa, ob) if p_order > 0 else (ob, oa)
                holds = o_order * p_order > 0
                ci = interval.get((a, b, key))
                flipped = False
                if ci is None:
                    ci = interval.get((b, a, key))
                    flipped = ci is not None
                if ci is None:
                    sure = "no interval"
                else:
                    lo, hi = (-ci[1], -ci[0]) if flipped else ci
                    sure = "interval excludes a tie" if lo > 0 or hi < 0 else "within the noise"
                total += 1
                held += holds
                rows.append(
                    [
                        title,
                        f"{names.method(winner)} better than {names.method(loser)}",
                        p_pair,
                        f"{_num(o_pair[0], 3)} vs {_num(o_pair[1], 3)}",
                        "holds" if holds else "**reversed**",
                        sure,
                    ]
                )
    if not rows:
        return ["No pair of methods has both paper values and results.", ""]
    lines = [
        f"{held} of {total} of the paper's pairwise orderings hold here (protocol "
        f"`{protocol}`; ties in the paper are skipped).",
        "",
    ]
    return lines + _table(
        ["metric", "paper's ordering", "paper", "ours", "here", "our interval"], rows, "llllll"
    )


def _figures(figures: Path, assets: Path, doc: Path, datasets: Sequence[str]) -> list[str]:
    lines = []
    for pattern in FIGURES:
        stems = [pattern.format(dataset=d) for d in datasets] if "{" in pattern else [pattern]
        for stem in stems:
            png = figures / f"{stem}.png"
            if not png.is_file():
                continue
            meta, _ = read_json(figures / f"{stem}.json")
            assets.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, assets / png.name)
            rel = (assets / png.name).relative_to(doc.parent)
            caption = " ".join(str((meta or {}).get("caption", "")).split())
            caption = caption.replace("\\", "")
            lines += [f"![{stem}]({rel.as_posix()})", "", f"*{caption}*", ""]
    return lines or ["No figures found under the figures folder.", ""]


def render_markdown(
    plan: Mapping[str, Any] | str | Path,
    paper: Mapping[str, Any],
    out: str | Path,
    *,
    root: str | Path = ".",
    results: str | Path,
    figures: str | Path,
    differences: str | Path | None,
    command: str,
    title: str,
    reading: str | Path | None = None,
) -> Path:
    """Write the page to ``out`` (figures copied into ``<out stem>/``); returns ``out``."""
    plan = load_plan(plan)
    root, out = Path(root), Path(out)
    names = Names.from_plan(plan)
    diffs = read_differences(differences)
    runs = _runs(plan)
    datasets = list(dict.fromkeys(c["dataset"] for c in plan["tables"].get("table1", [])))
    protocols = []
    for run in runs:
        metrics, _ = read_json(root / run / "metrics.json")
        for p in (metrics or {}).get("protocols") or {}:
            if p not in protocols:
                protocols.append(p)
    paper_protocol = paper.get("protocol")
    protocols.sort(key=lambda p: p != paper_protocol)

    lines = [
        f"# {title}",
        "",
        f"Rendered by `qgvae markdown` on "
        f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from the run "
        f"folders under `{Path(results).as_posix()}`; every number below is read from those "
        "files. Only the section *Reading* is written by hand.",
        "",
        "## How it was run",
        "",
        f"```\n{command}\n```",
        "",
        *_provenance(plan, root, runs),
        "",
        "### Wall time and CPU time per stage",
        "",
        *_stage_lines(Path(results)),
        "## Training",
        "",
        "Validation PSNR against the mean image's on the validation images (the floor). "
        "*Plateau left at step*: the first validation step at which a run's PSNR exceeded the "
        "floor by the margin.",
        "",
        *_training(plan, root, names),
    ]
    for dataset in datasets:
        lines += [f"## Table 1: {names.dataset(dataset)}", ""]
        for protocol in protocols:
            tag = " (the paper's protocol)" if protocol == paper_protocol else ""
            lines += [f"### Protocol `{protocol}`{tag}", ""]
            lines += _results_table(plan, root, paper, names, dataset, protocol)
            lines += ["Paired bootstrap (test images resampled, the same for both methods):", ""]
            lines += _differences(diffs, names, dataset, protocol)
        lines += [f"### The paper's orderings on {names.dataset(dataset)}", ""]
        lines += _orderings(plan, root, paper, diffs, names, dataset)
    lines += ["## Figures", ""]
    lines += _figures(Path(figures), out.parent / out.stem, out, datasets)
    lines += ["## Reading", ""]
    if reading is not None and Path(reading).is_file():
        lines += [Path(reading).read_text().strip(), ""]
    else:
        lines += ["(no reading written yet)", ""]
    write_text(out, "\n".join(lines))
    return out
