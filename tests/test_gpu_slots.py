"""qgvae.gpu_slots on a CPU: a fake device list (UUIDs) and a temporary lock folder.

Real processes show what the allocator promises: processes that start at the same instant never
hold the same slot, and a holder killed with SIGKILL (no cleanup of its own) frees its slot for a
process that waits. An in-process random walk checks the slot chosen against a reference model,
and resolve_device's CUDA path runs against a faked torch.cuda. About 2 s on the 2-core CI box."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import qgvae
from qgvae import gpu_slots, machine
from qgvae.errors import ConfigError

REPO = str(Path(qgvae.__file__).resolve().parents[1])
GPUS = ["GPU-aaaa", "GPU-bbbb"]  # two fake GPUs, cuda:0 and cuda:1

# A process that takes a slot (race: at once when told "go", without waiting; hold: at once;
# wait: waiting for one), prints it as [index, k] (or null), and holds it until stdin closes.
_CHILD = """
import json, sys
from pathlib import Path
from qgvae import gpu_slots
mode, lock_dir, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[4])
uuids = sys.argv[3].split(",")
say = lambda obj: print(json.dumps(obj), flush=True)
say("ready")
if mode == "race":
    sys.stdin.readline()
    held = gpu_slots.try_acquire(uuids, runs_per_gpu=runs, lock_dir=lock_dir)
elif mode == "hold":
    held = gpu_slots.try_acquire(uuids, runs_per_gpu=runs, lock_dir=lock_dir)
else:
    held = gpu_slots.acquire(uuids, runs_per_gpu=runs, lock_dir=lock_dir, poll_s=0.02,
                             on_wait=lambda message: say({"wait": message}))
say(None if held is None else [held.slot.index, held.slot.k])
sys.stdin.read()
"""


@pytest.fixture
def spawn(tmp_path):
    """spawn(mode, uuids, runs) -> a child process of _CHILD on the lock folder tmp_path/locks;
    every child still running at the end is killed (by its pid)."""
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}

    def start(mode: str, uuids: list[str], runs: int) -> subprocess.Popen:
        args = [sys.executable, "-c", _CHILD, mode, str(lock_dir), ",".join(uuids), str(runs)]
        proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        procs.append(proc)
        return proc

    start.lock_dir = lock_dir
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _line(proc: subprocess.Popen, timeout: float = 20.0):
    """The next JSON line the child prints (a byte at a time: select sees nothing buffered)."""
    buf, deadline = b"", time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise AssertionError(f"child {proc.pid} printed no line in {timeout} s ({buf!r})")
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            raise AssertionError(f"child {proc.pid} ended: {proc.stderr.read().decode()}")
        buf += byte
    return json.loads(buf)


def test_slots_spread_over_every_gpu_before_any_gpu_gets_a_second_run():
    order = gpu_slots.slot_order(["u0", "u1", "u2"], runs_per_gpu=2)
    assert [(s.index, s.k) for s in order] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert [s.uuid for s in order] == ["u0", "u1", "u2"] * 2


def test_processes_starting_together_never_hold_the_same_slot(spawn):
    runs = 2  # 2 GPUs x 2 runs = 4 slots for 6 processes released at the same instant
    procs = [spawn("race", GPUS, runs) for _ in range(6)]
    assert all(_line(p) == "ready" for p in procs)
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    got = [_line(p) for p in procs]
    held = [tuple(g) for g in got if g is not None]
    assert sorted(held) == [(0, 0), (0, 1), (1, 0), (1, 1)], got  # each slot once
    assert got.count(None) == 2
    for p in procs:
        p.stdin.close()
        assert p.wait(timeout=20) == 0


def test_a_killed_holder_frees_its_slot_for_a_waiting_process(spawn):
    holder = spawn("hold", GPUS[:1], 1)  # one GPU, one run
    assert _line(holder) == "ready" and _line(holder) == [0, 0]
    waiter = spawn("wait", GPUS[:1], 1)
    assert _line(waiter) == "ready"
    wait = _line(waiter)["wait"]  # told once, naming the holder
    assert "all 1 GPU slots" in wait and f"pid {holder.pid}" in wait
    here = gpu_slots.try_acquire(GPUS[:1], runs_per_gpu=1, lock_dir=spawn.lock_dir)
    assert here is None  # still held by the live holder
    holder.send_signal(signal.SIGKILL)  # no cleanup: only the kernel can free the slot
    assert holder.wait(timeout=20) == -signal.SIGKILL
    assert _line(waiter)["wait"].startswith("got GPU slot 0 of cuda:0 after")
    assert _line(waiter) == [0, 0]  # the freed slot
    assert gpu_slots.try_acquire(GPUS[:1], runs_per_gpu=1, lock_dir=spawn.lock_dir) is None
    waiter.stdin.close()  # the waiter ends normally: its slot is free again
    assert waiter.wait(timeout=20) == 0
    again = gpu_slots.try_acquire(GPUS[:1], runs_per_gpu=1, lock_dir=spawn.lock_dir)
    assert again is not None and (again.slot.index, again.slot.k) == (0, 0)
    again.release()


def test_random_takes_and_releases_match_a_reference_model(tmp_path):
    """In one process (flock locks conflict between two open files of one process too): the
    slot taken is always the free one with the lowest (k, index), None when all are held."""
    uuids, runs = ["u0", "u1", "u2"], 2
    rng = random.Random(0)
    held: dict[tuple[int, int], gpu_slots.HeldSlot] = {}
    every = {(i, k) for i in range(len(uuids)) for k in range(runs)}
    for _ in range(200):
        if held and rng.random() < 0.45:
            held.pop(rng.choice(sorted(held))).release()
            continue
        got = gpu_slots.try_acquire(uuids, runs_per_gpu=runs, lock_dir=tmp_path)
        free = sorted(every - set(held), key=lambda s: (s[1], s[0]))
        if not free:
            assert got is None
            continue
        assert got is not None and (got.slot.index, got.slot.k) == free[0]
        assert got.slot.uuid == uuids[got.slot.index]
        held[free[0]] = got
    for slot in held.values():
        slot.release()
    # one file per slot, named by UUID and place, never deleted
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{u}.{k}.lock" for u in uuids for k in range(runs)
    )


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_runs_per_gpu_must_be_a_whole_number_of_at_least_one(value):
    with pytest.raises(ConfigError, match=f"QGVAE_RUNS_PER_GPU='{value}' is not a whole number"):
        gpu_slots.runs_per_gpu_from_env({"QGVAE_RUNS_PER_GPU": value})
    assert gpu_slots.runs_per_gpu_from_env({}) == 1
    assert gpu_slots.runs_per_gpu_from_env({"QGVAE_RUNS_PER_GPU": " 3 "}) == 3


def test_lock_folder_is_per_user_per_slurm_job_and_never_a_planted_link(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_slots, "DEFAULT_LOCK_ROOT", tmp_path)
    own = tmp_path / f"qgvae-gpu-slots-{os.getuid()}"
    assert gpu_slots.lock_dir_from_env({}) == own and own.is_dir()
    assert own.stat().st_mode & 0o777 == 0o700
    job = gpu_slots.lock_dir_from_env({"SLURM_JOB_ID": "4242"})
    assert job == own / "slurm-job-4242" and job.is_dir()  # SLURM jobs never contend
    given = gpu_slots.lock_dir_from_env({"QGVAE_GPU_LOCK_DIR": str(tmp_path / "mine")})
    assert given == tmp_path / "mine" and given.is_dir()
    own.rename(tmp_path / "elsewhere")
    own.symlink_to(tmp_path / "elsewhere")  # someone else's link in the shared /tmp
    with pytest.raises(ConfigError, match=f"GPU slot folder {own} is not a directory owned"):
        gpu_slots.lock_dir_from_env({})


# ---- machine.resolve_device: who takes a slot --------------------------------------------------
class _Props:
    def __init__(self, n: int) -> None:
        self.uuid = type("CUuuid", (), {"bytes": bytes([n] * 16)})()


@pytest.fixture
def fake_cuda(tmp_path, monkeypatch):
    """torch.cuda with two GPUs (nothing runs on them), a fresh process slot, the lock folder
    tmp_path/locks; yields the list of set_device calls."""
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: _Props(i + 1))
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    monkeypatch.setattr(gpu_slots, "_held", None)
    monkeypatch.setenv("QGVAE_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("QGVAE_RUNS_PER_GPU", "1")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    yield calls
    if gpu_slots._held is not None:
        gpu_slots._held.release()


def test_auto_and_cuda_take_a_free_gpu_once_per_process(fake_cuda, tmp_path):
    uuids = machine.gpu_uuids()
    assert uuids == [
        f"{n:02x}" * 4
        + "-"
        + f"{n:02x}" * 2
        + "-"
        + f"{n:02x}" * 2
        + "-"
        + f"{n:02x}" * 2
        + "-"
        + f"{n:02x}" * 6
        for n in (1, 2)
    ]
    other = gpu_slots.try_acquire(uuids, runs_per_gpu=1, lock_dir=gpu_slots.lock_dir_from_env())
    assert other.slot.index == 0  # another run holds cuda:0
    assert machine.resolve_device("auto") == torch.device("cuda", 1)
    assert machine.resolve_device("cuda") == torch.device("cuda", 1)  # the same slot again
    assert fake_cuda == [1, 1]  # made the current device: plain "cuda" elsewhere lands there
    info = gpu_slots.held_info()
    assert info["device"] == "cuda:1" and info["gpu_uuid"] == uuids[1] and info["slot"] == 0
    other.release()


def test_an_explicit_gpu_and_the_cpu_take_no_slot(fake_cuda, tmp_path, monkeypatch):
    assert machine.resolve_device("cuda:0") == torch.device("cuda", 0)
    assert machine.check_device("auto") == torch.device("cuda")  # `qgvae train`'s early check
    assert machine.resolve_device("cpu") == torch.device("cpu")
    assert fake_cuda == [] and gpu_slots.held_info() is None
    assert not (tmp_path / "locks").exists()  # the allocator was never asked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert machine.resolve_device("auto") == torch.device("cpu")
    assert not (tmp_path / "locks").exists()


def test_a_gpu_without_a_uuid_is_named_by_its_pci_address():
    props = type(
        "P", (), {"uuid": None, "pci_domain_id": 0, "pci_bus_id": 0x41, "pci_device_id": 0}
    )
    assert machine.gpu_uuid(props()) == "pci-0000-41-00"
    props.uuid = object()  # a str() that would differ per process
    assert machine.gpu_uuid(props()) == "pci-0000-41-00"
