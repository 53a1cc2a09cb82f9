"""Code-usage statistics of a set of token sequences, and the summary of per-image values.

- ``code_usage``: per-position codebook usage fraction and perplexity.
- ``summarize``: mean, sample std and n of per-image metric values (NaN / inf aware).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _hist_stats(counts: np.ndarray, k: int) -> tuple[float, float | None]:
    """(fraction of the k codewords used, perplexity exp(H) with natural-log entropy)."""
    total = counts.sum()
    if total == 0:
        return 0.0, None
    p = counts[counts > 0] / total
    return float((counts > 0).sum() / k), float(np.exp(-np.sum(p * np.log(p))))


def code_usage(codes: np.ndarray, codebook_size: int) -> dict[str, Any]:
    """Codebook usage per token position over a set of images.

    ``codes``: integer ``[N, T]``, ``-1`` marks a token unused for that image (ignored).
    Per position t: ``fraction`` = distinct codewords used / K, ``perplexity`` = exp(H) of that
    position's code histogram (H in nats; 0 log 0 = 0). Positions with no valid entry get
    fraction 0 and perplexity None and are left out of both means (counted in
    ``n_positions_empty``). ``pooled`` is the histogram summed over positions (VQ-WAE's
    perplexity definition; meaningful only when all positions share one codebook)."""
    c = np.asarray(codes)
    if c.ndim != 2 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"codes: expected an integer array [N, T], got {c.dtype} {c.shape}")
    k = int(codebook_size)
    if k < 1:
        raise ValueError(f"codebook_size must be >= 1, got {k}")
    if c.size and (c.min() < -1 or c.max() >= k):
        raise ValueError(f"codes outside [-1, {k - 1}]: min {c.min()}, max {c.max()}")
    n, t = c.shape
    valid = c >= 0
    flat = (c + np.arange(t, dtype=np.int64)[None, :] * k)[valid]
    counts = np.bincount(flat.astype(np.int64), minlength=t * k).reshape(t, k)
    frac, perp = [], []
    for row in counts:
        f, p = _hist_stats(row, k)
        frac.append(f)
        perp.append(p)
    nonempty = [i for i in range(t) if perp[i] is not None]
    pooled_f, pooled_p = _hist_stats(counts.sum(0), k)
    return {
        "mean_fraction": float(np.mean([frac[i] for i in nonempty])) if nonempty else None,
        "mean_perplexity": float(np.mean([perp[i] for i in nonempty])) if nonempty else None,
        "per_position": {
            "fraction": frac,
            "perplexity": perp,
            "n_valid": counts.sum(1).astype(int).tolist(),
        },
        "pooled": {"fraction": pooled_f, "perplexity": pooled_p},
        "codebook_size": k,
        "n_images": int(n),
        "n_positions": int(t),
        "n_positions_empty": int(t - len(nonempty)),
        "n_unused_entries": int((~valid).sum()),
    }


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """mean, sample std (ddof=1; None for n < 2) and n of per-image values (NaN = not computed).
    Infinite values (PSNR of identical images) make mean/std None; ``n_infinite`` counts them
    and ``mean_finite``/``std_finite`` summarise the rest."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    n = int(v.size)
    out: dict[str, Any] = {"mean": None, "std": None, "n": n}
    if n == 0:
        return out
    inf = ~np.isfinite(v)
    fin = v[~inf]
    if inf.any():
        out["n_infinite"] = int(inf.sum())
        out["mean_finite"] = float(fin.mean()) if fin.size else None
        out["std_finite"] = float(fin.std(ddof=1)) if fin.size > 1 else None
        return out
    out["mean"] = float(v.mean())
    out["std"] = float(v.std(ddof=1)) if n > 1 else None
    return out
