"""A benchmark's results as one Markdown page (``qgvae markdown``), rendered with pandas'
``DataFrame.to_markdown`` from the summary table: how it was run (command, commits, hardware,
versions, stage times), training (where each run left the plateau, the evaluated weights), Table
1 per dataset and protocol with the paper's values and the floor, QG-VAE minus each baseline with
its paired-bootstrap interval, which of the paper's orderings hold, the figures (PNG copies) and
a hand-written reading (``--reading``), included verbatim: the only part a person writes, and it
must not carry numbers of its own.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..evaluation.differences import read_differences
from ..io import load_plan, read_json, write_text
from .latex import paper_value
from .results import Names
from .summary import Summary
from .timing import elapsed_wall, timing

METRICS = (("ssim", "SSIM", 3, True), ("psnr", "PSNR", 2, True), ("lpips", "LPIPS", 3, False))
ALL = (*METRICS, ("rfid", "rFID", 2, False))
FIGURES = ("training_curves", "recon_grid_{dataset}", "rate_distortion", "code_usage")
VERSIONS = ("torch", "torchvision", "numpy", "python", "lpips", "pytorch-fid", "POT")


def _num(x: Any, decimals: int) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:.{decimals}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    """A pipe table (``DataFrame.to_markdown``) of already formatted cells, and a blank line."""
    align = align or "l" + "r" * (len(header) - 1)
    frame = pd.DataFrame([[str(c) for c in r] for r in rows], columns=list(header))
    colalign = ["right" if a == "r" else "left" for a in align]
    text = frame.to_markdown(index=False, disable_numparse=True, colalign=colalign)
    return [text, ""]


def _paper(paper: Mapping[str, Any], dataset: str, method: str, metric: str) -> str | None:
    return paper_value(paper, "table1", dataset, method, metric)


def _provenance(runs: pd.DataFrame) -> list[str]:
    count = lambda column: runs[column].dropna().value_counts(sort=False).items()
    out = [f"- git commit of the training runs: `{c}` ({n} runs)" for c, n in count("commit")]
    out += [f"- hardware: {h} ({n} runs)" for h, n in count("hardware")]
    versions = {}
    for blob in runs.train_versions.dropna():
        versions |= {k: v for k, v in json.loads(blob).items() if k in VERSIONS}
    text = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    return out + ([f"- versions: {text}"] if versions else [])


def _stage_lines(results: Path) -> list[str]:
    stages, span = timing(results), elapsed_wall(results)
    if stages.empty:
        return [
            "No Snakemake benchmark files under `benchmarks/`: the stage times are unknown.",
            "",
        ]
    rows = [
        (s.Index, s.jobs, f"{s.wall_s / 60:.1f}", f"{s.cpu_s / 60:.1f}")
        for s in stages.itertuples()
    ]
    lines = _table(["stage", "jobs", "wall-min (summed over jobs)", "CPU-min"], rows)
    elapsed = (
        f"Elapsed wall time with at least one job running: **{span / 60:.1f} min** (jobs run "
        "side by side, so the per-stage wall times add up to more; pauses between jobs are "
        "not counted)."
    )
    return lines if span is None else [elapsed, ""] + lines


def _training(plan: Mapping[str, Any], summary: Summary, names: Names) -> list[str]:
    header = ["method", "dataset", "seed", "steps", "epochs", "images seen", "floor (val PSNR)"]
    header += ["plateau left at step", "final val PSNR", "evaluated weights"]
    runs, rows = summary.runs(), []
    whole = lambda x: "?" if pd.isna(x) else f"{int(x):,}"
    for cell in (plan.get("tables") or {}).get("table1", []):
        for run in cell["runs"]:
            method = names.method(cell["method"])
            if run not in runs.index or pd.isna(runs.loc[run, "steps"]):
                rows.append([method, cell["dataset"], "?", "no run.json", *[""] * 6])
                continue
            r, seed = runs.loc[run], (plan.get("runs") or {}).get(run, {}).get("seed")
            left = "never" if pd.isna(r.plateau_step) else whole(r.plateau_step)
            if pd.notna(r.plateau_step) and pd.notna(r.plateau_margin_db) and r.plateau_margin_db:
                left += f" (+{r.plateau_margin_db:g} dB)"
            rule = "?" if pd.isna(r.selected_rule) else r.selected_rule
            rows.append([method, names.dataset(cell["dataset"]), seed, whole(r.steps)])
            rows[-1] += [_num(r.epochs, 2), whole(r.images_seen), _num(r.val_floor_psnr, 2), left]
            rows[-1] += [_num(r.final_val_psnr, 2), f"{rule} (step {whole(r.selected_step)})"]
    return _table(header, rows, "llrrrrrrrl")


def _results_table(plan, summary: Summary, paper, names: Names, dataset: str, protocol: str):
    cells = [c for c in (plan.get("tables") or {}).get("table1", []) if c["dataset"] == dataset]
    stats = [summary.cell(plan, c, protocol) for c in cells]
    floor = summary.floor(plan, stats, protocol)
    with_paper = protocol == paper.get("protocol")
    header = ["method"]
    for _, title, _, high in ALL:
        header += [f"{title} {'↑' if high else '↓'}"] + [f"{title} (paper)"] * with_paper
    header += ["PSNR − floor (dB)", "input dependence (dB)", "bits / image", "code usage (%)"]
    rows = []
    for cell, st in zip(cells, stats):
        missing = "; ".join(why for _, _, why in st.missing)
        rows.append([names.method(cell["method"]) + (f" (missing: {missing})" if missing else "")])
        for key, _, decimals, _ in ALL:
            rows[-1] += [_num(st.mean(key), decimals)]
            rows[-1] += [_paper(paper, dataset, cell["method"], key) or "–"] * with_paper
        extras = [("psnr_gain_over_floor_db", 2), ("input_dependence_db", 2)]
        rows[-1] += [_num(st.mean(k), d) for k, d in extras + [("bits_per_image", 0), ("usage", 1)]]
    if floor is not None:
        rows.append(["mean image (floor)"])
        for key, _, decimals, _ in ALL:
            rows[-1] += [_num((floor.values(key) or [None])[0], decimals)] + ["–"] * with_paper
        rows[-1] += ["0.00", "–", "0", "–"]
    listed = lambda xs: ", ".join(map(str, sorted(xs)))
    ns = {n for st in stats for n in st.ns("n")}
    fid_ns = {n for st in stats for n in st.ns("fid_n")}
    notes = sorted({n for st in stats for n in st.frame.protocol_notes.dropna()})
    lines = [
        f"SSIM, PSNR, LPIPS on {listed(ns) or '?'} test images, rFID between "
        f"{listed(fid_ns) or '?'} test originals and their reconstructions; seeds per cell: "
        f"{listed({len(st.present) for st in stats})} (the mean over seeds where more than one).",
        "",
    ]
    return lines + _table(header, rows) + [f"Protocol: {n}" for n in notes] + [""]


def _differences(diffs: pd.DataFrame, names: Names, dataset: str, protocol: str) -> list[str]:
    mine = diffs[(diffs.dataset == dataset) & (diffs.protocol == protocol)]
    mine = mine[mine.method == "qgvae"]
    if mine.empty:
        return ["No paired differences for this protocol (`paired_differences.csv`).", ""]
    rows = []
    for r in mine.itertuples():
        d = {"ssim": 4, "psnr": 2, "lpips": 4, "rfid": 2}.get(r.metric, 3)
        ci = f"[{r.ci_low:+.{d}f}, {r.ci_high:+.{d}f}]"
        verdict = "excludes 0" if r.ci_low > 0 or r.ci_high < 0 else "includes 0"
        metric = "rFID" if r.metric == "rfid" else r.metric.upper()
        diff = f"{r.diff_mean:+.{d}f}"
        rows.append((names.method(r.baseline), metric, diff, ci, verdict, r.n_images))
    header = ["QG-VAE minus", "metric", "difference", "95 % interval", "interval", "images"]
    return _table(header, rows, "llrrlr")


def _orderings(plan, summary: Summary, paper, diffs: pd.DataFrame, names: Names, dataset: str):
    """For every pair of methods with paper values and every metric: the paper's order against
    ours (under the paper's protocol), with whether our interval excludes a tie."""
    protocol = paper.get("protocol", "vqwae")
    cells = [c for c in (plan.get("tables") or {}).get("table1", []) if c["dataset"] == dataset]
    ours = {c["method"]: summary.cell(plan, c, protocol) for c in cells}
    methods = [m for m in ours if _paper(paper, dataset, m, "psnr") is not None]
    here = diffs[(diffs.dataset == dataset) & (diffs.protocol == protocol)]
    interval = {(r.method, r.baseline, r.metric): (r.ci_low, r.ci_high) for r in here.itertuples()}
    rows = []
    for key, title, _, better_high in ALL:
        for i, a in enumerate(methods):
            for b in methods[i + 1 :]:
                pa, pb = _paper(paper, dataset, a, key), _paper(paper, dataset, b, key)
                oa, ob = ours[a].mean(key), ours[b].mean(key)
                if None in (pa, pb, oa, ob) or float(pa) == float(pb):  # ties are skipped
                    continue
                sign = 1 if better_high else -1
                p_order, o_order = (float(pa) - float(pb)) * sign, (oa - ob) * sign
                flip = p_order < 0  # name the paper's winner first
                first, second = (b, pb, ob), (a, pa, oa)
                (win, pw, ow), (lose, pl, ol) = (first, second) if flip else (second, first)
                lo, hi = interval.get((a, b, key)) or (None, None)
                if lo is None and (b, a, key) in interval:
                    hi, lo = (-x for x in interval[(b, a, key)])
                sure = "no interval" if lo is None else "within the noise"
                sure = "interval excludes a tie" if lo is not None and (lo > 0 or hi < 0) else sure
                here_ = "holds" if o_order * p_order > 0 else "**reversed**"
                rows.append([title, f"{names.method(win)} better than {names.method(lose)}"])
                rows[-1] += [f"{pw} vs {pl}", f"{_num(ow, 3)} vs {_num(ol, 3)}", here_, sure]
    if not rows:
        return ["No pair of methods has both paper values and results.", ""]
    held = sum(r[4] == "holds" for r in rows)
    held = f"{held} of {len(rows)} of the paper's pairwise orderings hold here (protocol "
    header = ["metric", "paper's ordering", "paper", "ours", "here", "our interval"]
    lines = [held + f"`{protocol}`; ties in the paper are skipped).", ""]
    return lines + _table(header, rows, "llllll")


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
    summary: Summary | pd.DataFrame | str | Path,
    results: str | Path,
    figures: str | Path,
    differences: str | Path | None,
    command: str,
    title: str,
    reading: str | Path | None = None,
) -> Path:
    """Write the page to ``out`` (figures copied into ``<out stem>/``); returns ``out``.
    ``results``: the workflow's results folder (its Snakemake benchmark files)."""
    plan, out, summary = load_plan(plan), Path(out), Summary.of(summary)
    names, diffs = Names.from_plan(plan), read_differences(differences)
    table1 = (plan.get("tables") or {}).get("table1", [])
    datasets = list(dict.fromkeys(c["dataset"] for c in table1))
    runs = [r for c in table1 for r in c["runs"]]
    rows = summary.frame[summary.frame.run.isin(runs)]
    protocols = sorted(dict.fromkeys(rows.protocol), key=lambda p: p != paper.get("protocol"))
    lines = [
        f"# {title}",
        "",
        f"Rendered by `qgvae markdown` on "
        f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from the summary "
        f"table of the run folders under `{Path(results).as_posix()}`; every number below is read "
        "from those files. Only the section *Reading* is written by hand.",
        "",
        "## How it was run",
        "",
        f"```\n{command}\n```",
        "",
        *_provenance(summary.runs(runs)),
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
        *_training(plan, summary, names),
    ]
    for dataset in datasets:
        lines += [f"## Table 1: {names.dataset(dataset)}", ""]
        for protocol in protocols:
            tag = " (the paper's protocol)" if protocol == paper.get("protocol") else ""
            lines += [f"### Protocol `{protocol}`{tag}", ""]
            lines += _results_table(plan, summary, paper, names, dataset, protocol)
            lines += ["Paired bootstrap (test images resampled, the same for both methods):", ""]
            lines += _differences(diffs, names, dataset, protocol)
        lines += [f"### The paper's orderings on {names.dataset(dataset)}", ""]
        lines += _orderings(plan, summary, paper, diffs, names, dataset)
    lines += ["## Figures", "", *_figures(Path(figures), out.parent / out.stem, out, datasets)]
    lines += ["## Reading", ""]
    if reading is not None and Path(reading).is_file():
        lines += [Path(reading).read_text().strip(), ""]
    else:
        lines += ["(no reading written yet)", ""]
    write_text(out, "\n".join(lines))
    return out
