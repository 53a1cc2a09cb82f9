"""Fixtures of the fault-injection suite (tests/faults/, helpers in ``helpers.py``): a finished
tiny run to damage, a stopped one to resume, and the tally printed at the end.

Every test of the suite injects one fault, bad input or attack and records it with ``tally``:
``case = tally(kind, name)`` when it is injected, ``case.passed()`` after every assertion held
(the message names the file and the fix, the exit status, nothing that existed was lost or
changed). The terminal summary prints, per kind, how many were tried and how many passed:

- ``fault``: a damaged file or an interrupted write; passed = survived with a clear message;
- ``input``: a bad argument or config value; passed = rejected before any work;
- ``security``: a crafted file or value; passed = refused (its payload never ran).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_tiny_run  # tests/conftest.py (tests/ is on sys.path; this is faults.)

KINDS = {
    "fault": ("faults injected", "survived with a clear message"),
    "input": ("bad inputs tried", "rejected before work"),
    "security": ("security cases tried", "refused"),
}
_CASES: dict[str, dict[str, bool]] = {kind: {} for kind in KINDS}


@dataclass
class Case:
    kind: str
    name: str

    def passed(self) -> None:
        _CASES[self.kind][self.name] = True


@pytest.fixture
def tally():
    """``tally(kind, name)`` records an injected case (see the module docstring)."""

    def record(kind: str, name: str) -> Case:
        assert kind in KINDS, kind
        _CASES[kind].setdefault(name, False)
        return Case(kind, name)

    return record


def pytest_terminal_summary(terminalreporter) -> None:
    if not any(_CASES.values()):
        return
    tr = terminalreporter
    tr.section("fault-injection figures")
    for kind, (tried, passed) in KINDS.items():
        cases = _CASES[kind]
        tr.write_line(f"{tried}: {len(cases):3d}   {passed}: {sum(cases.values()):3d}")
    for kind, cases in _CASES.items():
        for name, ok in cases.items():
            if not ok:
                tr.write_line(f"  NOT passed ({kind}): {name}")


# --------------------------------------------------------------------------- the runs
# smaller than tests/conftest.py's tiny QG-VAE (16x16 inside, 4-8 channels): every case needs a
# run folder, not a trained model; 4 steps with one validation at the end
SMALL = {"downscalings": 1, "min_channels": 4, "max_channels": 8}


@pytest.fixture(scope="session")
def tiny_cfg(photos_root) -> dict:
    return make_tiny_run(photos_root, model=SMALL, max_steps=4, val_every=4)


@pytest.fixture(scope="session")
def cfg_file(tiny_cfg, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "run.json"
    path.write_text(json.dumps(tiny_cfg))
    return path


@pytest.fixture(scope="session")
def finished_run(tiny_cfg, tmp_path_factory) -> Path:
    """A finished, reconstructed tiny run (4 steps, 16 test images); tests damage copies."""
    from qgvae.evaluation import reconstruct_run
    from qgvae.training import train

    run = tmp_path_factory.mktemp("finished") / "run"
    train(tiny_cfg, run)
    reconstruct_run(run, device="cpu")
    return run


@pytest.fixture(scope="session")
def stopped_run(tiny_cfg, tmp_path_factory) -> Path:
    """A run stopped after 2 of 4 steps (checkpoint.pt, no model.pt); tests resume copies."""
    from qgvae.training import train

    run = tmp_path_factory.mktemp("stopped") / "run"
    train(tiny_cfg, run, stop_after=2)
    return run


@pytest.fixture
def no_metric_networks(monkeypatch):
    """The evaluator without its networks: the weights count as present, and loading LPIPS or
    Inception fails the test; an input the evaluator must refuse before that work proves it."""
    from qgvae.evaluation import evaluator

    def networks(device):
        raise AssertionError("the metric networks were loaded: work started on a bad input")

    monkeypatch.setattr(evaluator, "ensure_weights", lambda kind: Path(f"/stub/{kind}.pth"))
    monkeypatch.setattr(evaluator, "metric_models", networks)


@pytest.fixture
def no_data(monkeypatch):
    """Reading a dataset split fails the test: training must refuse before it."""
    from qgvae.training import trainer

    def load_split(*args, **kwargs):
        raise AssertionError("the dataset was read: work started on a bad input")

    monkeypatch.setattr(trainer, "load_split", load_split)
