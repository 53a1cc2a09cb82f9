"""qgvae.rendering.timing: stage sums and the elapsed (busy) wall time from benchmark files."""

from __future__ import annotations

import os

from qgvae.rendering.timing import elapsed_wall, timing

HEADER = "s\th:m:s\tmax_rss\tcpu_time\n"


def _bench(root, rel, seconds, end, cpu=1.0):
    path = root / "benchmarks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t1\t{cpu}\n")
    os.utime(path, (end, end))


def test_elapsed_is_the_union_of_job_intervals(tmp_path):
    # two overlapping trainings [0, 100] and [50, 120], an evaluation [120, 150], then a table
    # re-rendered an hour later [3600, 3610]: busy time 150 + 10, not 3610
    _bench(tmp_path, "train/a.tsv", 100, 1000.0 + 100)
    _bench(tmp_path, "train/b.tsv", 70, 1000.0 + 120)
    _bench(tmp_path, "evaluate/a.tsv", 30, 1000.0 + 150)
    _bench(tmp_path, "render/table.tsv", 10, 1000.0 + 3610)
    assert abs(elapsed_wall(tmp_path) - 160.0) < 1e-6
    stages = timing(tmp_path)
    assert stages.loc["train", "jobs"] == 2 and stages.loc["train", "wall_s"] == 170.0
    assert stages.loc["render", "wall_s"] == 10.0
    assert list(stages.index) == ["train", "evaluate", "render"]  # pipeline order


def test_a_job_inside_another_adds_nothing_and_no_files_give_none(tmp_path):
    assert elapsed_wall(tmp_path) is None
    _bench(tmp_path, "train/a.tsv", 100, 1100.0)
    _bench(tmp_path, "reconstruct/a.tsv", 10, 1050.0)
    assert abs(elapsed_wall(tmp_path) - 100.0) < 1e-6
