"""qgvae.rendering.summary (``qgvae collect``): the long results table equals the run folders'
metrics.json and run.json, survives its CSV, and bad input is one line naming the file."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from test_tables import FLOOR_RUN, MISSING_RUN, build_fake_tree

from qgvae.errors import ConfigError, RunFolderError
from qgvae.rendering.summary import (
    COLUMNS,
    METRICS,
    Summary,
    collect,
    read_summary,
    write_summary,
)


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path, build_fake_tree(tmp_path)


def _expected(root, run: str) -> dict:
    """{(protocol, metric): (value, n)} read from metrics.json directly (the oracle)."""
    m = json.loads((root / run / "metrics.json").read_text())
    out = {}
    for proto, values in m["protocols"].items():
        for key, entry in values.items():
            if key not in METRICS:
                continue
            if isinstance(entry, dict):
                out[(proto, key)] = (entry["value" if key == "rfid" else "mean"], entry["n"])
            else:
                out[(proto, key)] = (entry, values["psnr"]["n"])
    return out


def test_every_row_equals_its_metrics_json_and_run_json(tree):
    root, plan = tree
    frame = collect(plan)
    assert list(frame.columns) == COLUMNS
    runs = set(frame.run)
    assert runs == (set(plan["runs"]) - {MISSING_RUN}) | {FLOOR_RUN}
    for run in runs:
        rows = frame[frame.run == run]
        expected = _expected(root, run)
        got = {(r.protocol, r.metric): (r.value, r.n_images) for r in rows.itertuples()}
        assert got == expected, run  # exact: the numbers are copied, not recomputed
        m = json.loads((root / run / "metrics.json").read_text())
        assert set(rows.bits_per_image) == {m["bits_per_image"]}
        if run == FLOOR_RUN:
            assert set(rows.method) == {"mean_image"} and rows.seed.isna().all()
            assert rows.steps.isna().all() and rows.code_usage.isna().all()
            continue
        info, rj = plan["runs"][run], json.loads((root / run / "run.json").read_text())
        assert set(rows.code_usage) == {m["usage"]["mean_fraction"]}
        assert set(rows.seed) == {info["seed"]} and set(rows.variant) == {info["variant"]}
        assert set(rows.steps) == {rj["steps"]} and set(rows.images_seen) == {rj["images_seen"]}
        assert set(rows.train_seconds) == {3600.0}  # start 00:00, end 01:00
        assert set(rows.commit) == {"0123abc"} and set(rows.device) == {"cuda (Synthetic GPU)"}
        assert list(rows.floor_run.fillna("none").unique()) == [m["floor_run"] or "none"]


def test_the_csv_reads_back_exactly(tree, capsys):
    root, plan = tree
    from qgvae.cli import main

    assert main(["collect", "results"]) == 0
    out = capsys.readouterr().out
    assert f"{MISSING_RUN}: no metrics.json" in out and "results/summary.csv" in out
    back = read_summary(root / "results/summary.csv")
    frame = collect(plan)
    assert back.shape == frame.shape
    assert back["value"].astype(float).equals(frame["value"].astype(float))
    assert (back.n_images.astype("Int64") == frame.n_images).all()
    assert back.seed.dtype == "Int64"
    for text in ("run", "device", "commit", "eval_versions", "protocol_notes"):
        assert (back[text].fillna("") == frame[text].fillna("")).all(), text
    # the views the renderers use agree however the table arrived
    a, b = Summary(frame).per_run("vqwae"), Summary(back).per_run("vqwae")
    for key in ("ssim", "rfid", "psnr_gain_over_floor_db", "usage", "n", "fid_n"):
        assert a[key].astype(float).equals(b[key].astype(float)), key


def test_per_run_view_and_a_cell(tree):
    root, plan = tree
    summary = Summary(collect(plan))
    cell = next(c for c in plan["tables"]["table1"] if MISSING_RUN in c["runs"])
    stats = summary.cell(plan, cell, "native")
    assert [r for _, r in stats.present] == [r for r in cell["runs"] if r != MISSING_RUN]
    assert stats.missing == [(1, MISSING_RUN, "no metrics.json")]
    m = json.loads((root / stats.present[0][1] / "metrics.json").read_text())
    assert stats.values("psnr") == [m["protocols"]["native"]["psnr"]["mean"]]
    assert stats.ns("n") == {200} and stats.ns("fid_n") == {100}
    assert math.isclose(stats.values("usage")[0], 100 * m["usage"]["mean_fraction"])
    assert stats.grayscale  # MNIST
    cifar = [summary.cell(plan, c, "vqwae") for c in plan["tables"]["table1"][2:]]
    floor = summary.floor(plan, cifar, "vqwae")
    assert floor.values("psnr") == [13.25] and not floor.missing


def test_bad_input_is_one_line_naming_the_file(tree):
    root, plan = tree
    with pytest.raises(ConfigError, match="summary file not found: .*nope.csv.*qgvae collect"):
        read_summary(root / "nope.csv")
    pd.DataFrame({"run": ["x"]}).to_csv(root / "bad.csv", index=False)
    with pytest.raises(ConfigError, match="bad.csv lacks the columns .*qgvae collect"):
        read_summary(root / "bad.csv")
    run = next(iter(plan["runs"]))
    (root / run / "metrics.json").write_text('{"protocols": {')
    with pytest.raises(RunFolderError, match=f"{run}/metrics.json: unreadable.*qgvae evaluate"):
        collect(plan)
    write_summary(pd.DataFrame(columns=COLUMNS), root / "empty.csv")
    assert read_summary(root / "empty.csv").empty
