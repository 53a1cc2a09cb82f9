"""Faster CPU inference of the metric networks (Inception for rFID, the LPIPS pair network),
each checked against the eager reference.

Backends (``qgvae evaluate --backend``; all float32, no reduced precision):

``eager``     the network as it is.
``traced``    ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``: every BatchNorm
              folded into its convolution, convolution + ReLU fused, convolutions through
              oneDNN; builds in a second or two. The CPU default.
``compiled``  ``torch.compile`` (inductor) with frozen weights: fused oneDNN convolutions and
              generated kernels for everything else; the cheapest per image on the CPU, but the
              first call compiles for one to several minutes (once per process and input shape,
              so batches are padded to a fixed size). For long evaluations in one process.
``auto``      ``traced`` on the CPU, ``eager`` on CUDA (cuDNN already fuses).

A fast backend is run on a probe batch beside the eager network; if any output differs by more
than :data:`TOLERANCE` relative to its row's largest magnitude it is dropped for the eager
network, and the reason is kept (``backend_note``, written to metrics.json).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

TOLERANCE = 1e-5
BACKENDS = ("auto", "eager", "traced", "compiled")


def relative_error(a: Any, b: Any) -> float:
    """Largest ``|a - b|`` per row over that row's largest ``|b|`` (the reference)."""
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    scale = b.abs().amax(1).clamp_min(1e-30)
    return float(((a - b).abs().amax(1) / scale).max())


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (list, tuple)) else out


def run_padded(net: Callable[..., Any], x: Any, pad_to: int | None) -> Any:
    """``net(x)``, with the batch padded to ``pad_to`` (repeating its last image) when given, so
    that a compiled graph sees one shape; the padding rows are dropped from every output."""
    import torch

    n = x.shape[0]
    if pad_to is None or n == pad_to:
        return net(x)
    if n > pad_to:
        parts = [run_padded(net, x[s : s + pad_to], pad_to) for s in range(0, n, pad_to)]
        if isinstance(parts[0], torch.Tensor):
            return torch.cat(parts)
        return [torch.cat([p[i] for p in parts]) for i in range(len(parts[0]))]
    pad = x[-1:].expand(pad_to - n, *x.shape[1:])
    out = net(torch.cat([x, pad]))
    return [o[:n] for o in out] if isinstance(out, (list, tuple)) else out[:n]


def build_backend(
    module: Any, device: Any, backend: str, input_shape: tuple[int, ...], batch_size: int = 100
) -> tuple[str, str, Callable[..., Any], int | None]:
    """``(backend used, note, callable, batch padding)`` for ``module`` on ``device``."""
    import torch

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "traced" if torch.device(device).type == "cpu" else "eager"
    if backend == "eager":
        return "eager", "eager", module, None
    module = module.eval()
    g = torch.Generator().manual_seed(0)
    probe = torch.rand(2, *input_shape, generator=g).to(device)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            if backend == "traced":
                frozen = torch.jit.freeze(torch.jit.trace(module, (probe,), check_trace=False))
                net, pad_to = torch.jit.optimize_for_inference(frozen), None
            else:
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True
                net, pad_to = torch.compile(module, dynamic=False), int(batch_size)
            got = _first(run_padded(net, probe, pad_to))
            want = _first(module(probe))
    except Exception as exc:  # a failed fast path only costs speed
        note = f"{backend} unavailable ({type(exc).__name__}: {str(exc)[:200]}); eager used"
        return "eager", note, module, None
    err = relative_error(got, want)
    if err > TOLERANCE:
        return (
            "eager",
            f"{backend} differs by {err:.1e} relative on a probe; eager used",
            module,
            None,
        )
    return backend, f"{backend} (max relative difference {err:.1e} on a probe)", net, pad_to
