"""Shared fixtures: a prepared offline dataset and tiny run configs that train in seconds on CPU."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``weights`` skip, naming the files and TORCH_HOME, when the pretrained
    LPIPS / FID networks are not in the torch hub cache (CI provides them; see README)."""
    from qgvae.evaluation.weights import expected_weight_path

    missing = [
        expected_weight_path(k) for k in ("lpips", "fid") if not expected_weight_path(k).is_file()
    ]
    if not missing:
        return
    skip = pytest.mark.skip(
        reason=(
            f"LPIPS/FID weights not in the torch hub cache ($TORCH_HOME/hub/checkpoints): missing "
            f"{', '.join(str(p) for p in missing)}; run `qgvae fetch-weights` or set TORCH_HOME"
        )
    )
    for item in items:
        if "weights" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def photos_root(tmp_path_factory):
    """A data root holding the prepared offline `photos` dataset (built once per session)."""
    from qgvae.data import prepare

    root = tmp_path_factory.mktemp("data")
    prepare("photos", root)
    return root


@pytest.fixture
def tiny_run(photos_root):
    """Factory: ``tiny_run(method="qgvae", **train_overrides)`` -> a resolved run config."""
    return lambda method="qgvae", model=None, **train: make_tiny_run(
        photos_root, method, model, **train
    )


def make_tiny_run(root, method="qgvae", model=None, **train):
    """A resolved run config for a model small enough to train a few steps in a second."""
    from qgvae.config import resolve

    models = {
        "qgvae": {
            "tokens": 8,
            "code_dim": 8,
            "codebook_size": 16,
            "heads": 2,
            "min_channels": 8,
            "max_channels": 16,
            "reset_every": 3,
            "ordering": "sample",
        },
    }
    t = {
        "batch_size": 8,
        "max_steps": 8,
        "checkpoint_every": 100,
        "log_every": 2,
        "val_every": 4,
        "val_batches": 1,
        "device": "cpu",
    }
    t.update(train)
    return resolve(
        {
            "method": method,
            "dataset": "photos",
            "data_root": str(root),
            "seed": 0,
            "model": {**models[method], **(model or {})},
            "train": t,
            "eval": {"test_n": 16, "fid_n": 16},
        }
    )


def assert_same_result_weights(run_a, run_b) -> None:
    """The final model.pt of two run folders holds identical tensors and extra state."""
    load = lambda run: torch.load(run / "model.pt", map_location="cpu", weights_only=True)["model"]
    a, b = load(run_a), load(run_b)
    assert a.keys() == b.keys()
    for key in a:
        same = torch.equal(a[key], b[key]) if torch.is_tensor(a[key]) else a[key] == b[key]
        assert same, f"{key} differs between {run_a} and {run_b}"


@pytest.fixture
def same_weights():
    """``same_weights(run_a, run_b)`` asserts identical final weights (see above)."""
    return assert_same_result_weights
