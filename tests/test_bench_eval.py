"""``qgvae bench eval``'s feature rows: every harness path agrees with its reference loop, the
references are measured under the default allocator before the tuned one, and the ratios are
the quotients they claim to be. (No timing is asserted.)"""

from __future__ import annotations

import platform

import pytest


@pytest.mark.weights
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator rows need glibc")
def test_feature_bench_rows_compare_like_with_like(monkeypatch):
    from qgvae import machine
    from qgvae.evaluation.bench import feature_bench

    monkeypatch.setattr(machine, "_allocator_note", None)  # as a fresh `qgvae bench` process
    rows = feature_bench(n=4, size=48, lpips_size=40, batch_size=2, repeats=1, backend="traced")
    by = {r["what"]: r for r in rows}
    assert [r["what"] for r in rows] == [
        "build: Inception traced, LPIPS traced (once per process)",
        "Inception: pytorch-fid get_activations [default allocator]",
        "LPIPS: lpips.LPIPS(net='alex') eager [default allocator]",
        "Inception: pytorch-fid get_activations [tuned]",
        "LPIPS: lpips.LPIPS(net='alex') eager [tuned]",
        "Inception: harness, eager",
        "Inception: harness, traced",
        "LPIPS: harness, traced",
    ]
    for what in rows[5:]:
        r = by[what := what["what"]]
        assert r["max_rel_diff"] < 1e-5, what
        network = what.split(":")[0]
        ref = next(v for k, v in by.items() if k.startswith(network) and "[default" in k)
        tuned = next(v for k, v in by.items() if k.startswith(network) and "[tuned]" in k)
        assert r["cheaper_than_reference"] == pytest.approx(
            ref["cpu_s_per_image"] / r["cpu_s_per_image"]
        )
        assert r["cheaper_than_tuned_reference"] == pytest.approx(
            tuned["cpu_s_per_image"] / r["cpu_s_per_image"]
        )
    assert machine.allocator_note() == machine.tune_cpu_allocator()  # tuned after the references
