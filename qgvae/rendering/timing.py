"""Where a workflow's compute went: wall and CPU seconds per stage, from Snakemake's benchmark
files (``<results>/benchmarks/<kind>/...tsv``, one per job; the last row of a file is its last
attempt)."""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass
from pathlib import Path

# benchmark folder -> stage
STAGES = {
    "train": "train",
    "reconstruct": "reconstruct",
    "floor": "reconstruct",
    "evaluate": "evaluate",
    "prior_encode": "generation",
    "prior_train": "generation",
    "prior_sample": "generation",
    "prior_evaluate": "generation",
    "render": "render",
}
ORDER = ("train", "reconstruct", "evaluate", "generation", "render", "other")


@dataclass
class Stage:
    jobs: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


def _last_row(path: Path) -> dict[str, str] | None:
    rows = list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))
    return rows[-1] if rows else None


def timing(results: str | Path) -> dict[str, Stage]:
    """``{stage: Stage}`` summed over every benchmark file under ``results/benchmarks``."""
    root = Path(results) / "benchmarks"
    out = {name: Stage() for name in ORDER}
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        row = _last_row(path)
        if row is None:
            continue
        kind = path.relative_to(root).parts[0]
        stage = out[STAGES.get(kind.removesuffix(".tsv"), "other")]
        stage.jobs += 1
        stage.wall_s += float(row.get("s") or 0.0)
        with contextlib.suppress(ValueError):  # "NA" when a job was too short to sample
            stage.cpu_s += float(row.get("cpu_time") or 0.0)
    return {k: v for k, v in out.items() if v.jobs}


def elapsed_wall(results: str | Path) -> float | None:
    """Wall seconds during which at least one job ran: the union of the jobs' intervals (each
    benchmark file is written when its job ends, its mtime, after running ``s`` seconds). A
    pause between jobs, or a table re-rendered an hour later, adds only its own job time, not
    the gap before it. None without benchmark files."""
    root = Path(results) / "benchmarks"
    spans = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        row = _last_row(path)
        if row is None:
            continue
        end = path.stat().st_mtime
        with contextlib.suppress(ValueError):
            spans.append((end - float(row.get("s") or 0.0), end))
    if not spans:
        return None
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy


def timing_text(results: str | Path) -> str:
    """A plain-text table of :func:`timing` (what ``qgvae timing`` prints)."""
    stages = timing(results)
    lines = [f"{'stage':<12} {'jobs':>5} {'wall-s':>9} {'CPU-s':>9}"]
    total = Stage()
    for name, s in stages.items():
        lines.append(f"{name:<12} {s.jobs:>5} {s.wall_s:>9.1f} {s.cpu_s:>9.1f}")
        total.jobs += s.jobs
        total.wall_s += s.wall_s
        total.cpu_s += s.cpu_s
    lines.append(f"{'all jobs':<12} {total.jobs:>5} {total.wall_s:>9.1f} {total.cpu_s:>9.1f}")
    span = elapsed_wall(results)
    if span is not None:
        lines.append(f"elapsed: {span:.1f} s of wall time with at least one job running")
    lines.append(
        "(wall-s is summed over jobs, which run side by side; CPU-s is what psutil sampled for "
        "each job's processes: Snakemake's own bookkeeping is not included)"
    )
    return "\n".join(lines)
