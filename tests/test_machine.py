"""qgvae.machine: the allocator tuning every command applies (a fresh process per case, since
malloc settings are process-wide), and what run records say about it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from qgvae import machine

GLIBC = platform.libc_ver()[0] == "glibc"

# Page faults of five forward passes of a small convolutional network (activations of 16 to
# 64 MiB), after one untimed pass: with glibc's default every activation is a fresh mmap that
# the kernel faults in (about 500,000 faults), tuned they reuse the first pass's heap memory.
_FAULTS = """
import json, resource, sys
import torch
from qgvae import machine
note = machine.tune_cpu_allocator() if sys.argv[1] == "tune" else machine.allocator_note()
torch.manual_seed(0)
C = torch.nn.Conv2d
net = torch.nn.Sequential(C(3, 32, 3, padding=1), torch.nn.ReLU(), C(32, 64, 3, padding=1),
                          torch.nn.ReLU(), torch.nn.MaxPool2d(2), C(64, 64, 3, padding=1))
x = torch.rand(16, 3, 128, 128)
with torch.inference_mode():
    net(x)  # the first pass takes new memory either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        net(x)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"note": note, "again": machine.tune_cpu_allocator(), "faults": faults}))
"""


def _faults(mode: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc's malloc only")
def test_tuned_allocator_reuses_freed_tensors_instead_of_faulting_new_pages():
    default = _faults("none")
    tuned = _faults("tune")
    assert default["note"].startswith("default (not tuned")
    assert tuned["note"].startswith("glibc, mmap threshold 1 GiB")
    assert tuned["again"] == tuned["note"]  # applied once, then only reported
    assert default["faults"] > 100_000  # every activation faulted in afresh
    assert tuned["faults"] < default["faults"] / 10


def test_the_environment_variable_leaves_the_allocator_alone():
    off = _faults("tune", QGVAE_ALLOCATOR="default")
    assert off["note"] == "default (QGVAE_ALLOCATOR=default)"
    if GLIBC:
        assert off["faults"] > 100_000


def test_hardware_records_the_allocator_without_changing_it(monkeypatch):
    monkeypatch.setattr(machine, "_allocator_note", None)
    assert machine.hardware("cpu")["allocator"] == "default (not tuned in this process)"
    assert machine._allocator_note is None
