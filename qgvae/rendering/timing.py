"""Where a workflow's compute went: wall and CPU seconds per stage, from Snakemake's benchmark
files (``<results>/benchmarks/<kind>/...tsv``, one per job; the last row of a file is its last
attempt). One frame (:func:`timing`) that the markdown page, the report and ``qgvae timing``
render."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# benchmark folder -> stage (anything else: "other")
STAGES = {"train": "train", "reconstruct": "reconstruct", "floor": "reconstruct"}
STAGES |= {"evaluate": "evaluate", "render": "render"}
STAGES |= {f"prior_{s}": "generation" for s in ("encode", "train", "sample", "evaluate")}
ORDER = ("train", "reconstruct", "evaluate", "generation", "render", "other")
NOTE = (
    "wall-s is summed over jobs, which run side by side; CPU-s is what psutil sampled for each "
    "job's processes: Snakemake's own bookkeeping is not included"
)


def jobs(results: str | Path) -> pd.DataFrame:
    """One row per benchmark file: stage, wall ``s``, ``cpu_time`` ("NA": 0) and end time."""
    root = Path(results) / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        table = pd.read_csv(path, sep="\t")
        if table.empty:
            continue
        last = table.iloc[-1]
        kind = path.relative_to(root).parts[0].removesuffix(".tsv")
        cpu = pd.to_numeric(last.get("cpu_time"), errors="coerce")  # NA: too short to sample
        wall = float(last.get("s") or 0.0)
        end = path.stat().st_mtime  # written when the job ends
        rows.append([STAGES.get(kind, "other"), wall, 0.0 if pd.isna(cpu) else cpu, end])
    return pd.DataFrame(rows, columns=["stage", "wall_s", "cpu_s", "end"])


def timing(results: str | Path) -> pd.DataFrame:
    """``jobs``, ``wall_s`` and ``cpu_s`` summed per stage (index, in pipeline order)."""
    table = jobs(results)
    sums = table.groupby("stage").agg(
        jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum")
    )
    return sums.reindex([s for s in ORDER if s in sums.index])


def elapsed_wall(results: str | Path) -> float | None:
    """Wall seconds during which at least one job ran: the union of the jobs' intervals (each
    benchmark file is written when its job ends, its mtime, after running ``s`` seconds). A
    pause between jobs, or a table re-rendered an hour later, adds only its own job time, not
    the gap before it. None without benchmark files."""
    table = jobs(results)
    if table.empty:
        return None
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(zip(table.end - table.wall_s, table.end)):
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy


def timing_text(results: str | Path) -> str:
    """A plain-text table of :func:`timing` (what ``qgvae timing`` prints)."""
    stages = timing(results)
    stages.loc["all jobs"] = stages.sum()
    text = stages.astype({"jobs": int}).to_string(float_format=lambda x: f"{x:.1f}")
    span = elapsed_wall(results)
    if span is not None:
        text += f"\nelapsed: {span:.1f} s of wall time with at least one job running"
    return text + f"\n({NOTE})"
