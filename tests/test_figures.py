"""qgvae.rendering.figures: every figure as PDF + PNG from a synthetic results tree, and the
no-data path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_tables import build_fake_tree

from qgvae.rendering import figure_images, figures
from qgvae.rendering.summary import collect

NAMES = {
    "method_names": {"qgvae": "QG-VAE", "vqvae": "VQ-VAE", "dqvae": "DQ-VAE"},
    "dataset_names": {"cifar10": "CIFAR-10", "mnist": "MNIST"},
}


def _check_outputs(outdir: Path, stem: str) -> dict:
    pdf, png, meta = (outdir / f"{stem}.{e}" for e in ("pdf", "png", "json"))
    assert pdf.is_file() and pdf.stat().st_size > 1000, stem
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert png.is_file() and png.stat().st_size > 1000, stem
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads(meta.read_text())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("figs")
    plan = build_fake_tree(root)
    out = root / "reports/figures"
    summary = collect(plan, root)
    written, _ = figures.render_figures(plan, out, root=root, paper_values=NAMES, summary=summary)
    return root, plan, out, written


def test_figure_stems_follow_the_plan(rendered):
    _, plan, _, _ = rendered
    # the names the workflow declares (workflow/rules/common.smk FIGURES)
    assert figures.figure_stems(plan) == [
        "recon_grid_mnist",
        "recon_grid_cifar10",
        "progressive",
        "token_influence",
        "code_usage",
        "training_curves",
        "rate_distortion",
        "ablation_tokens",
    ]


def test_every_figure_is_produced_non_empty(rendered):
    _, plan, out, written = rendered
    for stem in figures.figure_stems(plan):
        meta = _check_outputs(out, stem)
        assert meta["no_data"] is None, (stem, meta["no_data"])
        assert meta["caption"] and meta["sources"], stem
    assert len([p for p in written if p.suffix == ".pdf"]) == len(figures.figure_stems(plan))


def test_captions_state_seeds_and_sources(rendered):
    root, plan, out, _ = rendered
    abl = json.loads((out / "ablation_tokens.json").read_text())
    assert "2 seeds" in abl["caption"] and "ddof=1" in abl["caption"]
    assert all((root / s).is_file() for s in abl["sources"])
    recon = json.loads((out / "recon_grid_cifar10.json").read_text())
    assert "Warning" not in recon["caption"]  # same originals across methods
    infl = json.loads((out / "token_influence.json").read_text())
    assert any("vqvae" in s for s in infl["sources"]) and any("qgvae" in s for s in infl["sources"])


def test_influence_area_separates_global_and_local():
    local = np.zeros((4, 8, 8))
    for t in range(4):
        local[t, 2 * t, 2 * t] = 1.0
    glob = np.ones((4, 8, 8))
    assert figure_images.influence_area(glob).mean() == 1.0
    assert figure_images.influence_area(local).mean() == pytest.approx(1 / 64)


def test_missing_inputs_give_no_data_figures(tmp_path, capsys):
    plan = build_fake_tree(tmp_path)
    shutil.rmtree(tmp_path / "results/mnist")
    shutil.rmtree(tmp_path / "results/cifar10")
    out = tmp_path / "figs"
    _, no_data = figures.render_figures(plan, out, root=tmp_path, summary=collect(plan, tmp_path))
    for stem in figures.figure_stems(plan):
        meta = _check_outputs(out, stem)
        assert meta["no_data"], stem
        assert no_data[stem] == meta["no_data"]
    # an empty plan still yields the declared (placeholder-free, "no data") figures
    empty = {"results": "results", "seeds": [0], "runs": {}, "tables": {}}
    stems = figures.figure_stems(empty)
    assert stems == [
        "progressive",
        "token_influence",
        "code_usage",
        "training_curves",
        "rate_distortion",
    ]
    figures.render_figures(
        empty, tmp_path / "empty", root=tmp_path, only=["training_curves", "token_influence"]
    )
    for stem in ("training_curves", "token_influence"):
        assert _check_outputs(tmp_path / "empty", stem)["no_data"]


def test_progressive_prefers_the_ordering_ablation(tmp_path):
    plan = build_fake_tree(tmp_path)
    cell = dict(plan["tables"]["ablation_tokens"][0], label="ordered")
    plan["tables"]["ablation_ordering"] = [cell]
    summary = collect(plan, tmp_path)
    figures.render_figures(
        plan, tmp_path / "f", root=tmp_path, only=["progressive"], summary=summary
    )
    meta = json.loads((tmp_path / "f/progressive.json").read_text())
    assert meta["sources"][0].startswith(cell["runs"][0])
    assert "ordering: ordered" in meta["caption"]
    assert not (tmp_path / "f/token_influence.pdf").exists()


def test_cli_only_and_unknown_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_fake_tree(tmp_path)
    from qgvae.cli import main

    assert main(["collect", "results"]) == 0
    assert (
        main(
            [
                "figures",
                "--plan",
                "results/plan.json",
                "--outdir",
                "reports/figures",
                "--only",
                "token_influence",
                "recon_grid_mnist",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "reports/figures").glob("*.pdf")) == [
        "recon_grid_mnist.pdf",
        "token_influence.pdf",
    ]
    assert main(["figures", "--plan", "results/plan.json", "--only", "nope"]) == 2
