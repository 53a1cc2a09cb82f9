"""qgvae.rendering.tables: LaTeX tables rendered from the summary of a synthetic results tree.

``build_fake_tree`` (also imported by test_figures / test_report) writes a plan with
2 datasets x 2 methods x 2 seeds in Table 1, a Table 2 (DQ-VAE vs QG-VAE on CIFAR-10), one
ablation with 2 values, and one missing run (mnist / vqvae / seed 1), with synthetic
metrics.json, metrics_per_image.csv, run.json, train_log.jsonl, reconstructions.npz and
analysis.npz files.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from qgvae.rendering import tables
from qgvae.rendering.summary import collect

REPO = Path(__file__).resolve().parents[1]
PAPER_YAML = REPO / "config" / "paper_values.yaml"

DATASETS = {"mnist": (1, 16), "cifar10": (3, 16)}
SEEDS = [0, 1]
MISSING_RUN = "results/mnist/vqvae/default_aaaa0001/seed1"
FLOOR_RUN = "results/cifar10/floor/test200"  # only CIFAR-10's runs name a floor
FLOOR_PSNR = {"vqwae": 13.25, "native": 12.5}


def _run_path(ds: str, method: str, variant: str, seed: int) -> str:
    return f"results/{ds}/{method}/{variant}/seed{seed}"


def _variant(ds: str, method: str, extra: str = "") -> str:
    digest = {"mnist": "aaaa", "cifar10": "bbbb"}[ds] + {
        "vqvae": "0001",
        "qgvae": "0002",
        "dqvae": "0003",
    }[method]
    return f"{extra}_{digest}" if extra else f"default_{digest}"


def _write_run(
    root: Path,
    run: str,
    ds: str,
    method: str,
    seed: int,
    tokens: int,
    rng: np.random.Generator,
    n_images: int = 200,
    fid_n: int = 100,
) -> None:
    folder = root / run
    folder.mkdir(parents=True, exist_ok=True)
    c, s = DATASETS[ds]
    quality = {"vqvae": 0.0, "dqvae": -0.5, "qgvae": 1.0}[method] + tokens / 64

    def metric(mean: float, std: float, n: int = n_images) -> dict:
        return {"mean": float(mean + rng.normal(0, std)), "std": float(abs(std) * 3), "n": n}

    protocols = {}
    for proto, shift in (("vqwae", 0.0), ("native", -1.5)):
        protocols[proto] = {
            "ssim": metric(0.7 + 0.05 * quality, 0.01),
            "psnr": metric(24 + 2 * quality + shift, 0.3),
            "lpips": metric(0.3 - 0.05 * quality, 0.01),
            "rfid": {"value": float(60 - 10 * quality + rng.normal(0, 2)), "n": fid_n},
            "resolution": 256 if proto == "vqwae" else s,
        }
        if ds == "cifar10":
            psnr = protocols[proto]["psnr"]["mean"]
            protocols[proto]["floor_psnr"] = FLOOR_PSNR[proto]
            protocols[proto]["psnr_gain_over_floor_db"] = psnr - FLOOR_PSNR[proto]
            protocols[proto]["input_dependence_db"] = 4.0 + quality
    k = 64
    frac = np.clip(rng.uniform(0.4, 1.0, tokens), 0, 1)
    metrics = {
        "n_images": n_images,
        "dataset": ds,
        "method": method,
        "protocols": protocols,
        "usage": {
            "mean_fraction": float(frac.mean()),
            "mean_perplexity": float((frac * k).mean()),
            "per_position": {"fraction": frac.tolist(), "perplexity": (frac * k).tolist()},
            "codebook_size": k,
        },
        "bits_per_image": float(tokens * np.log2(k)),
        "grayscale_repeated_to_rgb": c == 1,
        "versions": {"torch": "2.4.0", "numpy": "1.26.4"},
        "weights": {"lpips": "alex.pth sha256:0000", "fid": "pt_inception sha256:1111"},
        "protocol_notes": f"synthetic note for {method}_{ds} & co",
        "floor_run": FLOOR_RUN if ds == "cifar10" else None,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    per_img = ["vqwae_ssim,vqwae_psnr,vqwae_lpips,native_ssim,native_psnr,native_lpips"]
    per_img += [",".join(f"{v:.4f}" for v in rng.uniform(0, 1, 6)) for _ in range(5)]
    (folder / "metrics_per_image.csv").write_text("\n".join(per_img) + "\n")
    (folder / "run.json").write_text(
        json.dumps(
            {
                "config": {"method": method, "dataset": ds, "seed": seed},
                "seed": seed,
                "git_commit": "0123abc",
                "versions": {"torch": "2.4.0"},
                "hardware": {"gpu": "Synthetic GPU", "device": "cuda"},
                "start": "2024-01-01T00:00:00+00:00",
                "end": "2024-01-01T01:00:00+00:00",
                "steps": 200,
                "epochs": 2,
                "images_seen": 6400,
            }
        )
    )
    log_lines = []
    for step in range(10, 210, 10):
        log_lines.append(
            {
                "split": "train",
                "step": step,
                "epoch": step // 100,
                "loss": float(1.0 / step**0.5 + rng.uniform(0, 0.01)),
                "mse": float(0.5 / step**0.5),
                "commit": 0.01,
                "perplexity": 30.0,
                "images_per_s": 1000.0,
                "lr": 2e-4,
            }
        )
        if step % 50 == 0:
            log_lines.append(
                {
                    "split": "val",
                    "step": step,
                    "mse": float(0.4 / step**0.5),
                    "psnr": float(15 + 5 * np.log10(step)),
                }
            )
    (folder / "train_log.jsonl").write_text(
        "\n".join(json.dumps(x) for x in log_lines) + '\n{"split": "train", "trunc'
    )
    n_show = 8
    # the same test images for every run of a dataset, as the real pipeline produces
    originals = np.random.default_rng(len(ds) * 7 + c).integers(
        0, 256, (n_show, c, s, s), dtype=np.uint8
    )
    recons = np.clip(originals.astype(int) + rng.integers(-30, 30, originals.shape), 0, 255).astype(
        np.uint8
    )
    codes = rng.integers(0, k, (n_show, tokens))
    np.savez(
        folder / "reconstructions.npz",
        originals=originals,
        reconstructions=recons,
        codes=codes,
        codebook_size=k,
        bits_per_image=tokens * np.log2(k),
    )
    yy, xx = np.mgrid[0:s, 0:s]
    if method == "qgvae":
        influence = rng.uniform(0.5, 1.0, (tokens, s, s)).astype(np.float32)
    else:
        side = int(np.sqrt(tokens))
        influence = np.stack(
            [
                np.exp(
                    -(
                        (yy - (t // side + 0.5) * s / side) ** 2
                        + (xx - (t % side + 0.5) * s / side) ** 2
                    )
                    / 4
                )
                for t in range(tokens)
            ]
        ).astype(np.float32)
    analysis = {"show_index": np.arange(3), "influence": influence}
    if method == "qgvae":
        ks = np.array([0, 1, 2, 4, 8, tokens])
        analysis["progressive_k"] = ks
        analysis["progressive"] = np.stack(
            [(originals[:3] * (kk / tokens)).astype(np.uint8) for kk in ks]
        )
    np.savez(folder / "analysis.npz", **analysis)


def _write_floor(folder: Path) -> None:
    """The floor's metrics.json as `qgvae evaluate --floor <itself>` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    protocols = {
        p: {
            "ssim": {"mean": 0.11, "std": 0.05, "n": 200},
            "psnr": {"mean": psnr, "std": 2.0, "n": 200},
            "lpips": {"mean": 0.71, "std": 0.05, "n": 200},
            "rfid": {"value": 250.0, "n": 100},
            "floor_psnr": psnr,
            "psnr_gain_over_floor_db": 0.0,
            "input_dependence_db": 0.0,
        }
        for p, psnr in FLOOR_PSNR.items()
    }
    metrics = {"n_images": 200, "dataset": "cifar10", "method": "mean_image"}
    metrics |= {"protocols": protocols, "bits_per_image": 0.0, "floor_run": str(folder)}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def build_fake_tree(root: Path) -> dict:
    """Write results/ + results/plan.json under ``root``; returns the plan."""
    rng = np.random.default_rng(1234)
    runs: dict[str, dict] = {}
    tabs: dict[str, list[dict]] = {"table1": [], "table2": [], "ablation_tokens": []}

    def cell(
        table: str, ds: str, method: str, label: str, variant: str, tokens: int, overrides: dict
    ) -> None:
        paths = []
        for seed in SEEDS:
            path = _run_path(ds, method, variant, seed)
            if path not in runs:
                runs[path] = {
                    "dataset": ds,
                    "method": method,
                    "variant": variant,
                    "seed": seed,
                    "config": {
                        "method": method,
                        "dataset": ds,
                        "seed": seed,
                        "model": {"num_tokens": tokens},
                    },
                }
                if path != MISSING_RUN:
                    _write_run(root, path, ds, method, seed, tokens, rng)
            paths.append(path)
        tabs[table].append(
            {
                "dataset": ds,
                "method": method,
                "label": label,
                "variant": variant,
                "overrides": overrides,
                "runs": paths,
            }
        )

    for ds in DATASETS:
        for method in ("vqvae", "qgvae"):
            cell("table1", ds, method, method, _variant(ds, method), 16, {})
    for method in ("dqvae", "qgvae"):
        cell("table2", "cifar10", method, "16 tokens", _variant("cifar10", method), 16, {})
    cell(
        "ablation_tokens",
        "cifar10",
        "qgvae",
        "8 & less_than_16",
        _variant("cifar10", "qgvae", "num_tokens-8"),
        8,
        {"model": {"num_tokens": 8}},
    )
    cell("ablation_tokens", "cifar10", "qgvae", "16", _variant("cifar10", "qgvae"), 16, {})
    plan = {"results": "results", "seeds": SEEDS, "runs": runs, "tables": tabs}
    _write_floor(root / FLOOR_RUN)
    (root / "results").mkdir(exist_ok=True)
    (root / "results" / "plan.json").write_text(json.dumps(plan, indent=1))
    return plan


def _metrics_vals(root: Path, runs: list[str], protocol: str, metric: str) -> list[float]:
    out = []
    for r in runs:
        p = root / r / "metrics.json"
        if p.is_file():
            m = json.loads(p.read_text())
            proto = m["protocols"][protocol]
            out.append(proto["rfid"]["value"] if metric == "rfid" else proto[metric]["mean"])
    return out


def _expected(vals: list[float], dec: int) -> str:
    mean, sd = np.mean(vals), np.std(vals, ddof=1)
    return f"${mean:.{dec}f} \\pm {sd:.{dec}f}$"


def _table_rows(tex: str) -> list[list[str]]:
    """Rows of the (first) tabular as lists of cell strings (rules, block titles and a header's
    group row dropped)."""
    body = tex.split("\\begin{tabular}", 1)[1].split("\\end{tabular}", 1)[0]
    rows = []
    for line in body.splitlines()[1:]:
        line = line.rstrip()
        if not line.endswith("\\\\") or line.startswith("\\multicolumn"):
            continue
        rows.append([c.strip() for c in line[:-2].split(" & ")])
    return rows


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = build_fake_tree(tmp_path)
    pv = yaml.safe_load(PAPER_YAML.read_text())
    out = tables.render_tables(
        plan,
        pv,
        tmp_path / "reports/tables.tex",
        tmp_path / "reports/tables",
        summary=collect(plan),
    )
    return tmp_path, plan, pv, out


def test_paper_values_file_is_complete_and_typed_from_the_paper():
    pv = yaml.safe_load(PAPER_YAML.read_text())
    assert pv["protocol"] == "vqwae"
    assert pv["table1"]["column_map"]["SVQ-VAE"] == "sqvae"
    paper_lines = Path("/work/shared/paper/qgvae-paper.txt")
    for ds in ("mnist", "cifar10", "svhn", "celeba64"):
        vals = pv["table1"]["datasets"][ds]["values"]
        for _col, method in pv["table1"]["column_map"].items():
            assert set(vals[method]) == {"ssim", "psnr", "lpips", "rfid"}
            assert all(isinstance(v, str) for v in vals[method].values())
    for ds in ("cifar10", "celeba64"):
        assert set(pv["table2"]["datasets"][ds]["values"]) == {"dqvae", "qgvae"}
    if paper_lines.is_file():  # cross-check every value against the paper's text lines
        text = paper_lines.read_text().splitlines()
        for ds in ("mnist", "cifar10", "svhn", "celeba64"):
            spec = pv["table1"]["datasets"][ds]
            lo, hi = (int(x) for x in spec["source_lines"].split("-"))
            rows = {
                r.split("|")[0].strip(): [c.strip() for c in r.split("|")[1:5]]
                for r in text[lo - 1 : hi]
            }
            order = list(pv["table1"]["column_map"].values())
            for metric, key in (
                ("SSIM", "ssim"),
                ("PSNR", "psnr"),
                ("LPIPS", "lpips"),
                ("FID", "rfid"),
            ):
                assert rows[metric] == [spec["values"][m][key] for m in order], (ds, metric)
        lo, hi = (int(x) for x in pv["table2"]["source_lines"].split("-"))
        rows = {
            r.split("|")[0].strip(): [c.strip() for c in r.split("|")[1:5]]
            for r in text[lo - 1 : hi]
        }
        t2 = pv["table2"]["datasets"]
        for metric, key in (
            ("SSIM", "ssim"),
            ("PSNR", "psnr"),
            ("LPIPS", "lpips"),
            ("FID", "rfid"),
        ):
            assert rows[metric] == [
                t2["cifar10"]["values"]["dqvae"][key],
                t2["cifar10"]["values"]["qgvae"][key],
                t2["celeba64"]["values"]["dqvae"][key],
                t2["celeba64"]["values"]["qgvae"][key],
            ]


def test_per_table_files_exist(fake):
    root, plan, pv, out = fake
    names = ["table1_mnist", "table1_cifar10", "table2", "ablation_tokens"]
    for n in names:
        assert (root / f"reports/tables/{n}.tex").is_file()
        assert (root / f"reports/tables/{n}_native.tex").is_file()
    expected = {
        root / "reports/tables" / f"{n}{suffix}.tex"
        for n in tables.table_names(plan)
        for suffix in ("", "_native")
    }
    assert expected == {p for p in out if p.parent == root / "reports/tables"}
    combined = (root / "reports/tables.tex").read_text()
    assert "\\usepackage{booktabs}" in combined.splitlines()[1]
    for n in names:
        assert f"\\label{{tab:{n}}}" in combined
        assert f"\\label{{tab:{n}_native}}" in combined


def test_mean_std_over_seeds_match_numpy(fake):
    root, plan, pv, _ = fake
    tex = (root / "reports/tables/table1_cifar10.tex").read_text()
    rows = _table_rows(tex)
    header = rows[0]
    assert header[2:] == ["VQ-VAE", "QG-VAE", "Mean image"]
    cells = {c["method"]: c for c in plan["tables"]["table1"] if c["dataset"] == "cifar10"}
    for metric, label, dec in (
        ("ssim", "SSIM", 3),
        ("psnr", "PSNR", 2),
        ("lpips", "LPIPS", 3),
        ("rfid", "rFID", 2),
    ):
        ours = next(r for r in rows if r[0] == label)
        assert ours[1] == "ours"
        for col, method in enumerate(["vqvae", "qgvae"], start=2):
            vals = _metrics_vals(root, cells[method]["runs"], "vqwae", metric)
            assert len(vals) == 2
            assert ours[col] == _expected(vals, dec)
    assert "ddof = 1" in tex and "over 2 seeds (0, 1)" in tex
    assert "$N = 200$ test images per run" in tex and "rFID over $N = 100$" in tex
    # native protocol: other numbers, no paper rows
    native = (root / "reports/tables/table1_cifar10_native.tex").read_text()
    nrows = _table_rows(native)
    psnr = next(r for r in nrows if r[0] == "PSNR")
    vals = _metrics_vals(root, cells["qgvae"]["runs"], "native", "psnr")
    assert psnr[2] == _expected(vals, 2)
    assert not any(r[1:2] == ["paper"] for r in nrows)
    assert "\\texttt{native}" in native


def test_paper_values_and_differences_in_the_right_cells(fake):
    root, plan, pv, _ = fake
    tex = (root / "reports/tables/table1_cifar10.tex").read_text()
    rows = _table_rows(tex)
    cells = {c["method"]: c for c in plan["tables"]["table1"] if c["dataset"] == "cifar10"}
    for label, metric, dec in (("SSIM", "ssim", 3), ("PSNR", "psnr", 2), ("rFID", "rfid", 2)):
        i = next(i for i, r in enumerate(rows) if r[0] == label)
        assert rows[i + 1][1] == "paper" and rows[i + 2][1] == "$\\Delta$"
        for col, method in enumerate(["vqvae", "qgvae"], start=2):
            paper = pv["table1"]["datasets"]["cifar10"]["values"][method][metric]
            assert rows[i + 1][col] == paper  # verbatim, e.g. "0.70"
            ours = np.mean(_metrics_vals(root, cells[method]["runs"], "vqwae", metric))
            assert rows[i + 2][col] == f"${ours - float(paper):+.{dec}f}$"
    assert "0.70" in tex  # the paper's printed precision survives
    assert "121-126" in tex  # source lines cited
    # Table 2: paper DQ/QG values for CIFAR-10, nothing for the dataset-less rows
    t2 = _table_rows((root / "reports/tables/table2.tex").read_text())
    i = next(i for i, r in enumerate(t2) if r[0] == "LPIPS")
    assert t2[i + 1][2:] == ["0.469", "0.357", ""]  # no paper value for the mean image


def test_missing_run_and_missing_paper_value_render_dashes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = build_fake_tree(tmp_path)
    # make mnist/vqvae fully missing and add a split-VQ column the paper does not have
    shutil.rmtree(tmp_path / "results/mnist/vqvae/default_aaaa0001/seed0")
    split = {
        "dataset": "mnist",
        "method": "splitvq",
        "label": "splitvq",
        "variant": "d_x",
        "overrides": {},
        "runs": ["results/mnist/splitvq/d_x/seed0"],
    }
    plan["tables"]["table1"].append(split)
    pv = yaml.safe_load(PAPER_YAML.read_text())
    tables.render_tables(plan, pv, tmp_path / "t.tex", tmp_path / "t", summary=collect(plan))
    rows = _table_rows((tmp_path / "t/table1_mnist.tex").read_text())
    assert rows[0][2:] == ["VQ-VAE", "QG-VAE", "Split-VQ"]
    ssim = next(i for i, r in enumerate(rows) if r[0] == "SSIM")
    assert rows[ssim][2].startswith("--\\textsuperscript{")  # ours missing, footnoted
    assert rows[ssim][4].startswith("--\\textsuperscript{")
    assert rows[ssim + 1][4] == "--"  # no paper value for split VQ
    assert rows[ssim + 2][2] == "--" and rows[ssim + 2][4] == "--"  # no difference
    assert rows[ssim + 1][2] == "0.98"  # paper value still shown
    tex = (tmp_path / "t/table1_mnist.tex").read_text()
    assert "no metrics for any seed" in tex and "seed\\{0,1\\}" in tex


def test_partial_seeds_are_footnoted(fake):
    root, plan, pv, _ = fake
    tex = (root / "reports/tables/table1_mnist.tex").read_text()
    rows = _table_rows(tex)
    ours = next(r for r in rows if r[0] == "PSNR")
    cell = next(
        c for c in plan["tables"]["table1"] if c["dataset"] == "mnist" and c["method"] == "vqvae"
    )
    vals = _metrics_vals(root, cell["runs"], "vqwae", "psnr")
    assert len(vals) == 1
    assert ours[2].startswith(f"${vals[0]:.2f}$")
    assert "\\textsuperscript{" in ours[2] and "1 of 2" in tex and "one seed available" in tex
    assert "Grayscale images are repeated to RGB" in tex


def test_ablation_table_rows_and_escaping(fake):
    root, plan, pv, _ = fake
    tex = (root / "reports/tables/ablation_tokens.tex").read_text()
    rows = _table_rows(tex)
    assert rows[0] == [
        "Value",
        "SSIM",
        "PSNR",
        "LPIPS",
        "rFID",
        "Bits",
        "Usage (\\%)",
        "Gain (dB)",
        "Indep.\\ (dB)",
    ]
    assert rows[-1][:3] == ["Mean image", "$0.110$", "$13.25$"]  # the floor row
    assert rows[1][0] == "8 \\& less\\_than\\_16"
    assert rows[2][0] == "16"
    for row, c in zip(rows[1:], plan["tables"]["ablation_tokens"]):
        vals = _metrics_vals(root, c["runs"], "vqwae", "lpips")
        assert row[3] == _expected(vals, 3)
        bits = [
            json.loads((root / r / "metrics.json").read_text())["bits_per_image"] for r in c["runs"]
        ]
        assert len(set(bits)) == 1 and row[5] == f"${bits[0]:.0f}$"  # no spread for a rate


def test_latex_escape():
    assert tables.latex_escape("a_b & 50% #1 {x} ~ ^ \\ $ <") == (
        "a\\_b \\& 50\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} "
        "\\ensuremath{\\backslash} \\ensuremath{\\$} \\ensuremath{<}"
    )
    assert tables.latex_escape("±") == "$\\pm$"


def test_cli_renders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    build_fake_tree(tmp_path)
    from qgvae.cli import main

    # no summary table yet: one line naming the file and the command that writes it
    assert main(["tables", "--plan", "results/plan.json", "--paper", str(PAPER_YAML)]) == 2
    err = capsys.readouterr().err
    assert "results/summary.csv" in err and "qgvae collect" in err and len(err.splitlines()) == 1
    assert main(["collect", "results"]) == 0
    assert (
        main(
            [
                "tables",
                "--plan",
                "results/plan.json",
                "--paper",
                str(PAPER_YAML),
                "--out",
                "reports/tables.tex",
                "--outdir",
                "reports/tables",
                "--protocol",
                "native",
            ]
        )
        == 0
    )
    # main protocol native: unsuffixed files are native, vqwae ones suffixed
    assert (tmp_path / "reports/tables/table1_cifar10_vqwae.tex").is_file()
    assert "\\texttt{native}" in (tmp_path / "reports/tables/table1_cifar10.tex").read_text()
    assert main(["tables", "--plan", "nope.json", "--paper", str(PAPER_YAML)]) == 2


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_tables_compile_with_pdflatex(fake):
    root, *_ = fake
    doc = root / "reports" / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\input{tables.tex}\n\\end{document}\n"
    )
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=doc.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (doc.parent / "doc.pdf").stat().st_size > 1000
    assert not re.search(r"^! ", proc.stdout, re.M)


def test_table2_budgets_and_single_table_plans(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = build_fake_tree(tmp_path)
    pv = yaml.safe_load(PAPER_YAML.read_text())
    # a second budget: a group header per budget, the paper value beside each
    extra = [dict(c, label="8 tokens") for c in plan["tables"]["table2"]]
    plan["tables"]["table2"] += extra
    # the workflow's per-table plan (results/plans/<table>.json) holds one table only
    sub = {**plan, "tables": {"table2": plan["tables"]["table2"]}}
    t2 = tmp_path / "t2"
    out = tables.render_tables(sub, pv, t2 / "tables.tex", t2 / "tables", summary=collect(sub))
    assert sorted(p.name for p in out) == ["table2.tex", "table2_native.tex", "tables.tex"]
    tex = (tmp_path / "t2/tables/table2.tex").read_text()
    assert "\\multicolumn{2}{c}{16 tokens} & \\multicolumn{2}{c}{8 tokens}" in tex
    rows = _table_rows(tex)
    assert rows[0][2:] == ["DQ-VAE", "QG-VAE", "DQ-VAE", "QG-VAE", "Mean image"]
    i = next(i for i, r in enumerate(rows) if r[0] == "PSNR")
    assert rows[i + 1][2:] == ["17.35", "21.94", "17.35", "21.94", ""]


def test_table1_shows_the_floor_and_the_gain_over_it(fake):
    """CIFAR-10's runs name a floor: its column holds the floor's numbers, and every method's
    gain and input dependence rows hold the mean over seeds; MNIST's runs name none: no column."""
    root, plan, pv, _ = fake
    tex = (root / "reports/tables/table1_cifar10.tex").read_text()
    rows = _table_rows(tex)
    assert rows[0][-1] == "Mean image"
    psnr_ours = next(r for r in rows if r[:2] == ["PSNR", "ours"])
    assert psnr_ours[-1] == "$13.25$"
    gain = next(r for r in rows if r[0].startswith("PSNR $-$ mean image"))
    for col, cell in enumerate(c for c in plan["tables"]["table1"] if c["dataset"] == "cifar10"):
        vals = [v - 13.25 for v in _metrics_vals(root, cell["runs"], "vqwae", "psnr")]
        assert gain[2 + col] == _expected(vals, 2)
    assert gain[-1] == "$0.00$"
    assert "Mean image: the training split's mean image" in tex
    assert "Scale: 200 optimiser steps per run (2 epochs, 6,400 training images seen)" in tex
    mnist = _table_rows((root / "reports/tables/table1_mnist.tex").read_text())
    assert "Mean image" not in mnist[0]
