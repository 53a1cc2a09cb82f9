"""The fast inference paths equal the reference networks: pytorch-fid's InceptionV3 (within
1e-5 relative), and the padding / fallback logic of the backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qgvae.evaluation import fast_inference as FI


@pytest.mark.weights
@pytest.mark.parametrize("size", [32, 229])
def test_traced_inception_equals_pytorch_fid(size):
    from pytorch_fid.fid_score import get_activations  # noqa: F401  (the reference's module)

    from qgvae.evaluation.fid import InceptionFeatures

    inc = InceptionFeatures("cpu", backend="traced")
    assert inc.backend == "traced", inc.backend_note
    x = np.random.default_rng(size).integers(0, 256, (3, 3, size, size), dtype=np.uint8)
    got, want = inc(x), inc.reference(x)  # reference: pytorch-fid's module, its own resize
    assert got.shape == (3, 2048)
    assert FI.relative_error(got, want) < 1e-5


def test_run_padded_returns_what_the_unpadded_call_returns():
    net = torch.nn.Linear(4, 3)
    x = torch.randn(7, 4)
    with torch.no_grad():
        for pad in (None, 7, 10, 3):
            assert torch.allclose(
                torch.as_tensor(FI.run_padded(lambda t: [net(t)], x, pad)[0]), net(x), atol=1e-6
            )
            assert torch.allclose(FI.run_padded(net, x, pad), net(x), atol=1e-6)  # a tensor


class _Noisy(torch.nn.Module):
    def forward(self, x):
        return x + torch.rand_like(x)  # a trace of this cannot match a fresh eager call


def test_a_fast_path_that_differs_falls_back_to_eager():
    backend, note, net, pad = FI.build_backend(_Noisy(), "cpu", "traced", (3, 4, 4))
    assert backend == "eager" and "differs" in note and pad is None


def test_auto_is_traced_on_the_cpu():
    backend, note, _, _ = FI.build_backend(torch.nn.ReLU(), "cpu", "auto", (3, 4, 4))
    assert backend == "traced" and "relative difference" in note


@pytest.mark.weights
@pytest.mark.parametrize("backend", ["traced", "compiled"])
def test_fast_lpips_equals_the_lpips_module(backend):
    """The stacked-pair network, traced or compiled, gives lpips' own values (grayscale at the
    native size and RGB at another size: each size gets its own checked network)."""
    from qgvae.evaluation.image_metrics import LPIPSMetric

    metric = LPIPSMetric("cpu", backend=backend, batch_size=4)
    rng = np.random.default_rng(7)
    for shape in [(3, 1, 32, 32), (5, 3, 40, 40)]:  # 5 > batch_size: two padded batches
        x, y = (rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(2))
        got, want = metric(x, y), metric.reference(x, y)
        assert got.shape == (shape[0],) and np.all(want > 0)
        assert np.max(np.abs(got - want) / want) < 1e-5
    assert metric.network(32, 32)[0] == backend, metric.backend_note
    assert metric.backend_note.startswith("32x32: ") and "; 40x40: " in metric.backend_note
