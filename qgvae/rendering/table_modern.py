"""The ``modern`` tables: QG-VAE against modern quantisers at equal bits (:mod:`qgvae.modern`).

``modern_<dataset>``: Table 1's layout without the paper's rows (the paper has no such table):
metric rows x method columns (QG-VAE first), then bits, code usage, the gain over the mean image
and input dependence, the mean image (floor) last; a mark where the paired bootstrap interval
of QG-VAE minus that method excludes 0 (``paired_differences.csv``, table ``modern``).
``modern_rates``: the rate sweep, one row per (method, bits) like an ablation table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .latex import FLOOR_CAPTION, SIG_MARK, caption_parts, latex_escape, sources_of, table_env
from .results import Names
from .summary import Summary

RATE_SENTENCE = (
    "Every method codes the same number of bits per image (within 1\\%, checked by the plan "
    "from each model's own rate: FSQ the product of its levels, residual VQ depth $\\times$ "
    "$\\log_2 K$ per cell, LFQ $\\log_2 K$, a 1-D tokenizer its latents $\\times \\log_2 K$); "
    "the quantisers of vector-quantize-pytorch run on VQ-VAE's network, the 1-D tokenizer is a "
    "small ViT (docs/baselines.md)."
)


def modern_tables(plan, paper, names: Names, protocol, summary: Summary, diffs) -> dict[str, str]:
    """``modern_<dataset>`` per dataset of the ``modern`` table and ``modern_rates``."""
    from .tables import _compare, _marks, ablation_tables

    tables, out = plan.get("tables") or {}, {}
    no_paper: dict[str, Any] = {}  # no paper rows: the paper compares no modern quantiser
    for ds in dict.fromkeys(c["dataset"] for c in tables.get("modern") or []):
        cells = [c for c in tables["modern"] if c["dataset"] == ds]
        marks, resamples = _marks(diffs, ds, protocol, table="modern")
        body, notes, named, floors = _compare(
            plan, no_paper, names, protocol, summary, "modern", cells, marks
        )
        head, ours, scale = caption_parts(plan, paper, protocol, named)
        bits = pd.Series([s.mean("bits_per_image") for _, s in named if s is not None]).dropna()
        rate = f" at {bits.iloc[0]:.0f} bits per image" if len(bits) else ""
        caption = [
            f"QG-VAE against modern quantisers at equal bits on "
            f"{latex_escape(names.dataset(ds))} (test split){rate}. {head}",
            ours,
            scale,
            RATE_SENTENCE,
            FLOOR_CAPTION,
        ]
        if resamples:
            caption.append(
                f"{SIG_MARK}: the 95\\% paired bootstrap interval of QG-VAE minus this method "
                f"excludes 0 (test images resampled alike for both, seeds as an outer level; "
                f"{resamples}; every interval in paired\\_differences.csv, table modern)."
            )
        caption.append(
            "Code usage: mean over token positions of the fraction of the codebook used on the "
            "test set (residual VQ: over its cell $\\times$ stage slots)."
        )
        name = f"modern_{ds}"
        text = " ".join(x for x in caption if x)
        out[name] = table_env(name, text, body, notes, sources_of(named + floors), protocol)
    out |= ablation_tables(plan, paper, names, protocol, summary, only=("modern_rates",))
    return out
