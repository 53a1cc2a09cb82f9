"""Paired bootstrap intervals of the benchmark's comparisons (``qgvae differences``), from the
runs' ``metrics_per_image.csv`` and stored Inception features: ``paired_differences.csv``
(method minus baseline, 95 % interval, with the table it belongs to: in Table 1 QG-VAE against
every other column first, then every other pair; in the ``modern`` table QG-VAE against every
modern quantiser; in both every method against the mean-image floor) and
``method_intervals.csv`` (each cell's own interval in Tables 1 and 2, ``ablation_tokens`` and
the ``modern`` tables: the rate-distortion figures' error bars). The resampling is
:mod:`qgvae.evaluation.bootstrap`'s: one dataset, protocol and metric share the test-image draws
(paired across methods); each cell draws its seeds (the outer level) from a generator of its
own, so a comparison's interval does not depend on which other cells a plan holds (a target's
own table and the combined tables agree).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import load_plan, read_json, write_text
from . import bootstrap as B

METRICS = ("ssim", "psnr", "lpips", "rfid")
FLOOR = "mean_image"
DIFF_COLUMNS = ["dataset", "table", "protocol", "metric", "method", "baseline", "diff_mean"]
DIFF_COLUMNS += ["ci_low"]
DIFF_COLUMNS += ["ci_high", "n_images", "n_seeds", "resamples", "seed"]
INTERVAL_COLUMNS = ["dataset", "table", "label", "protocol", "metric", "method", "mean", "ci_low"]
INTERVAL_COLUMNS += ["ci_high", "n_images", "n_seeds", "resamples", "seed"]
INTERVAL_TABLES = ("table1", "table2", "ablation_tokens", "modern", "modern_rates")
# the tables whose methods are compared in pairs: Table 1 every pair, ``modern`` QG-VAE first
PAIRED_TABLES = {"table1": "all pairs", "modern": "against qgvae"}


@dataclass
class Arm:
    """One compared cell: its per-seed per-image values and feature sets, per protocol."""

    runs: list[str]
    values: dict[tuple[str, str], np.ndarray]  # (protocol, metric) -> [S, N]
    features: dict[str, list[B.FeatureSet]]  # protocol -> one set per seed

    def n(self, protocol: str, metric: str) -> int | None:
        """Test images of ``metric`` (rFID: of its feature sets), or None without data."""
        if metric == "rfid":
            sets = self.features.get(protocol)
            return len(sets[0].real) if sets else None
        vals = self.values.get((protocol, metric))
        return None if vals is None else vals.shape[1]

    def sample(self, protocol: str, metric: str, counts, rng):
        """(resampled statistic [R], number of seeds, point value), or None without data."""
        seeds = B.seed_draws(rng, len(self.runs), len(counts))
        if self.n(protocol, metric) != counts.shape[1]:
            return None
        if metric == "rfid":
            sets = self.features[protocol]
            point = float(np.mean([fs.rfid(np.ones(len(fs.real))) for fs in sets]))
            return B.resampled_rfid(sets, counts, seeds), len(sets), point
        vals = self.values[(protocol, metric)]
        return B.resampled_means(vals, counts, seeds), vals.shape[0], float(vals.mean(1).mean())


def _features(root: Path, run: str, protocol: str) -> B.FeatureSet | None:
    metrics, _ = read_json(root / run / "metrics.json")
    rfid = (((metrics or {}).get("protocols") or {}).get(protocol) or {}).get("rfid") or {}
    real, fake = rfid.get("originals_features"), rfid.get("features_file")
    if not real or not fake:
        return None
    real_path = Path(real) if Path(real).is_absolute() else root / real
    fake_path = root / run / fake
    if not real_path.is_file() or not fake_path.is_file():
        return None
    return B.FeatureSet(np.load(real_path), np.load(fake_path))


def _arm(root: Path, runs: Sequence[str], protocols: Sequence[str]) -> Arm | None:
    present = [r for r in runs if (root / r / "metrics_per_image.csv").is_file()]
    if not present:
        return None
    tables = [pd.read_csv(root / r / "metrics_per_image.csv") for r in present]
    values, features = {}, {}
    for p in protocols:
        for m in ("ssim", "psnr", "lpips"):
            cols = [t[f"{p}_{m}"].to_numpy(float) for t in tables if f"{p}_{m}" in t and len(t)]
            same = len(cols) == len(present) and len({len(c) for c in cols}) == 1
            if same and np.isfinite(np.stack(cols)).all():
                values[(p, m)] = np.stack(cols)
        sets = [_features(root, r, p) for r in present]
        if all(s is not None for s in sets):
            features[p] = sets
    return Arm(present, values, features)


def compute(
    plan: Mapping[str, Any] | str | Path,
    root: str | Path = ".",
    *,
    resamples: int = 2000,
    rfid_resamples: int = 200,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(paired-difference rows, per-cell interval rows); see the module docstring."""
    plan, root = load_plan(plan), Path(root)
    tables = plan.get("tables") or {}
    diffs, intervals = [], []
    cells_by_ds: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for table in INTERVAL_TABLES:
        for c in tables.get(table) or []:
            cells_by_ds.setdefault(c["dataset"], []).append((table, c))
    for ds, cells in cells_by_ds.items():
        protocols = _protocols(root, [r for _, c in cells for r in c.get("runs", [])])
        arms = {(t, c["label"], c["method"]): _arm(root, c["runs"], protocols) for t, c in cells}
        floor = _floor(root, [r for _, c in cells for r in c.get("runs", [])])
        floor_arm = _arm(root, [floor], protocols) if floor else None
        floor_key = ("floor", "floor", FLOOR)
        for p in protocols:
            for metric in METRICS:
                r = rfid_resamples if metric == "rfid" else resamples
                where = f"{ds}|{p}|{metric}"
                rng = np.random.default_rng([seed, zlib.crc32(where.encode())])
                arms_here = [(k, a) for k, a in arms.items() if a is not None]
                n = next((a.n(p, metric) for _, a in arms_here if a.n(p, metric)), None)
                if n is None or r < 1:
                    continue
                counts = B.image_counts(rng, n, r)  # the images: shared, so pairs are paired
                samples = {}
                for key, arm in [*arms_here, (floor_key, floor_arm)]:
                    own = np.random.default_rng([seed, zlib.crc32(f"{where}|{key}".encode())])
                    got = None if arm is None else arm.sample(p, metric, counts, own)
                    if got is not None:
                        samples[key] = got
                for key, (s, k, point) in samples.items():
                    lo, hi = B.percentile_interval(s)
                    row = [ds, *key[:2], p, metric, key[2], point, lo, hi, n, k, r, seed]
                    intervals.append(dict(zip(INTERVAL_COLUMNS, row)))
                for table, ka, kb in _pairs(arms):
                    if ka not in samples or kb not in samples:
                        continue
                    (sa, na, pa), (sb, nb, pb) = samples[ka], samples[kb]
                    lo, hi = B.percentile_interval(sa - sb)
                    seeds = na if na == nb else f"{na}/{nb}"
                    row = [ds, table, p, metric, ka[2], kb[2], pa - pb, lo, hi, n, seeds, r, seed]
                    diffs.append(dict(zip(DIFF_COLUMNS, row)))
    return diffs, intervals


def _pairs(arms: Mapping[tuple, Arm | None]) -> list[tuple[str, tuple, tuple]]:
    """``(table, method key, baseline key)`` of every compared pair (see the module docstring),
    QG-VAE first; then every method of those tables against the floor."""
    out: list[tuple[str, tuple, tuple]] = []
    for table, how in PAIRED_TABLES.items():
        order = [k for k, a in arms.items() if k[0] == table and a is not None]
        order.sort(key=lambda k: k[2] != "qgvae")
        for i, ka in enumerate(order):
            if how == "all pairs" or (i == 0 and ka[2] == "qgvae"):
                out += [(table, ka, kb) for kb in order[i + 1 :]]
        out += [(table, ka, ("floor", "floor", FLOOR)) for ka in order]
    return out


def _first_metrics(root: Path, runs: Sequence[str]) -> dict[str, Any]:
    """The first of the runs' metrics.json that names protocols (or {})."""
    for run in runs:
        metrics, _ = read_json(root / run / "metrics.json")
        if metrics and metrics.get("protocols"):
            return metrics
    return {}


def _protocols(root: Path, runs: Sequence[str]) -> list[str]:
    return list(_first_metrics(root, runs).get("protocols") or [])


def _floor(root: Path, runs: Sequence[str]) -> str | None:
    """The floor run folder (metrics.json ``floor_run``) the first evaluated run names."""
    return _first_metrics(root, runs).get("floor_run") or None


def write_differences(
    plan: Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    root: str | Path = ".",
    *,
    resamples: int = 2000,
    rfid_resamples: int = 200,
    seed: int = 0,
) -> tuple[Path, Path, int]:
    """Write ``paired_differences.csv`` and ``method_intervals.csv`` into ``out_dir``."""
    diffs, intervals = compute(
        plan, root, resamples=resamples, rfid_resamples=rfid_resamples, seed=seed
    )
    diff_path, int_path = (
        Path(out_dir, "paired_differences.csv"),
        Path(out_dir, "method_intervals.csv"),
    )
    for path, rows, columns in (
        (diff_path, diffs, DIFF_COLUMNS),
        (int_path, intervals, INTERVAL_COLUMNS),
    ):
        frame = pd.DataFrame(rows, columns=columns)
        write_text(path, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    return diff_path, int_path, len(diffs)


def read_differences(path: str | Path | None) -> pd.DataFrame:
    """A paired_differences.csv / method_intervals.csv (an empty frame when absent)."""
    if path is None or not Path(path).is_file():
        return pd.DataFrame(columns=sorted(set(DIFF_COLUMNS) | set(INTERVAL_COLUMNS)))
    return pd.read_csv(path, dtype={"label": str, "n_seeds": str})
