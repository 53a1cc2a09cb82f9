"""GPU slots: which GPU of this machine a run uses, and how many runs share one GPU.

Snakemake counts GPUs (``--resources gpu=N``) but does not say which GPU a job gets
(snakemake/snakemake#281), so without this every local job of an 8-GPU workstation would run on
``cuda:0``. Here every process that asks for ``auto`` (or plain ``cuda``) on a machine with CUDA
takes a *slot* for its lifetime: one of ``runs_per_gpu`` places on one GPU.

- A slot is a lock file ``<lock_dir>/<gpu uuid>.<k>.lock`` (k < runs_per_gpu) held with a
  non-blocking ``flock``. The kernel drops the lock when the process ends, however it ends (a
  crash, ``kill -9``, a node's OOM killer): a dead run never keeps its slot. Lock files are never
  deleted (deleting one while another process opens it would let two processes hold "the same"
  slot through two files).
- Slots are tried k-major (place 0 of every GPU, then place 1 of every GPU, ...), so runs spread
  over the GPUs before any GPU gets a second run.
- Files are named by the GPU's UUID, not its index: the index depends on CUDA_VISIBLE_DEVICES,
  the UUID does not, so processes that see different subsets of the GPUs agree on each slot.
- The lock folder is node-local and per user (default ``/tmp/qgvae-gpu-slots-<uid>``; inside a
  SLURM job a sub-folder per job id, so SLURM jobs never contend: each has the GPUs SLURM gave it).
- When every slot is taken the process waits, saying so once, and takes the first slot freed.

Nothing here imports torch: the GPU list comes in as UUIDs (``qgvae.machine`` reads them), so
the logic runs and is tested on a CPU with a fake device list.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

log = logging.getLogger(__name__)

RUNS_PER_GPU_ENV = "QGVAE_RUNS_PER_GPU"  # runs that share one GPU (default 1)
LOCK_DIR_ENV = "QGVAE_GPU_LOCK_DIR"  # folder of the slot lock files (default below)
DEFAULT_LOCK_ROOT = Path("/tmp")  # not $TMPDIR: every shell of a user must find the same folder


@dataclass(frozen=True)
class Slot:
    """One place on one GPU."""

    index: int  # the GPU's index in this process: the run uses cuda:<index>
    uuid: str  # the GPU's UUID: names the lock file, the same in every process
    k: int  # which of the GPU's runs_per_gpu places (0 = the GPU's first run)


class HeldSlot:
    """A slot this process holds: the open, locked file. Closing it frees the slot."""

    def __init__(self, slot: Slot, path: Path, fd: int, runs_per_gpu: int) -> None:
        self.slot, self.path, self.fd, self.runs_per_gpu = slot, path, fd, runs_per_gpu

    def info(self) -> dict[str, Any]:
        """What a run records about its slot (run.json / metrics.json ``hardware``)."""
        return {
            "device": f"cuda:{self.slot.index}",
            "gpu_uuid": self.slot.uuid,
            "slot": self.slot.k,
            "runs_per_gpu": self.runs_per_gpu,
            "lock": str(self.path),
        }

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = -1


def slot_order(uuids: Sequence[str], *, runs_per_gpu: int) -> list[Slot]:
    """Every slot of the GPUs ``uuids`` (in index order), k-major: place 0 of each GPU first."""
    return [Slot(i, u, k) for k in range(runs_per_gpu) for i, u in enumerate(uuids)]


def lock_path(lock_dir: Path, slot: Slot) -> Path:
    """The lock file of ``slot``: its GPU's UUID (made a safe file name) and its place."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", slot.uuid)
    return Path(lock_dir) / f"{name}.{slot.k}.lock"


def try_acquire(uuids: Sequence[str], *, runs_per_gpu: int, lock_dir: Path) -> HeldSlot | None:
    """The first free slot, locked, or None when every slot is held (never waits)."""
    for slot in slot_order(uuids, runs_per_gpu=runs_per_gpu):
        path = lock_path(lock_dir, slot)
        fd = _lock(path)
        if fd is not None:
            held = HeldSlot(slot, path, fd, runs_per_gpu)
            _write_holder(fd)
            return held
    return None


def acquire(
    uuids: Sequence[str],
    *,
    runs_per_gpu: int,
    lock_dir: Path,
    poll_s: float = 5.0,
    on_wait: Callable[[str], None] | None = None,
) -> HeldSlot:
    """A free slot, waiting for one when every slot is held.

    uuids: the GPUs this process sees, in index order (``cuda:i`` is ``uuids[i]``).
    runs_per_gpu: places per GPU; at most this many processes use one GPU through slots.
    lock_dir: the folder of the lock files (:func:`lock_dir_from_env`).
    poll_s: seconds between tries while every slot is held.
    on_wait: told in one line when this process starts waiting (naming the holders) and
        when it got a slot after waiting (default: a warning on this module's logger, which
        reaches stderr)."""
    if not uuids:
        raise ValueError("acquire needs at least one GPU")
    say = on_wait or log.warning
    start = time.monotonic()
    waited = False
    while True:
        held = try_acquire(uuids, runs_per_gpu=runs_per_gpu, lock_dir=lock_dir)
        if held is not None:
            if waited:
                say(
                    f"got GPU slot {held.slot.k} of cuda:{held.slot.index} after "
                    f"{time.monotonic() - start:.0f} s"
                )
            return held
        if not waited:
            say(_busy_message(uuids, runs_per_gpu, lock_dir))
            waited = True
        time.sleep(poll_s)


def runs_per_gpu_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """``QGVAE_RUNS_PER_GPU`` (default 1), checked: a whole number >= 1."""
    raw = environ.get(RUNS_PER_GPU_ENV, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"{RUNS_PER_GPU_ENV}={raw!r} is not a whole number >= 1; set it to how many runs "
            "may share one GPU (workflow config key runs_per_gpu), or unset it for 1"
        )
    return value


def lock_dir_from_env(environ: Mapping[str, str] = os.environ) -> Path:
    """The slot folder, created if missing: ``QGVAE_GPU_LOCK_DIR`` as given, else
    ``/tmp/qgvae-gpu-slots-<uid>`` (refused unless it is this user's own folder), plus
    ``slurm-job-<id>`` inside a SLURM job (jobs never contend; runs inside one job do)."""
    given = environ.get(LOCK_DIR_ENV, "").strip()
    base = Path(given) if given else DEFAULT_LOCK_ROOT / f"qgvae-gpu-slots-{os.getuid()}"
    _make_dir(base, own=not given)
    job = re.sub(r"[^A-Za-z0-9._-]", "_", environ.get("SLURM_JOB_ID", "").strip())
    if not job:
        return base
    folder = base / f"slurm-job-{job}"
    _make_dir(folder, own=not given)
    return folder


# ---- the process's own slot ------------------------------------------------------------------
_held: HeldSlot | None = None


def claim(uuids: Sequence[str], *, environ: Mapping[str, str] = os.environ) -> HeldSlot:
    """This process's slot: taken on the first call (waiting if need be), the same one after.

    Settings come from ``environ``: ``QGVAE_RUNS_PER_GPU`` and ``QGVAE_GPU_LOCK_DIR``."""
    global _held
    if _held is None:
        runs = runs_per_gpu_from_env(environ)
        _held = acquire(uuids, runs_per_gpu=runs, lock_dir=lock_dir_from_env(environ))
    return _held


def held_info() -> dict[str, Any] | None:
    """The slot this process holds (:meth:`HeldSlot.info`), or None (CPU, explicit cuda:N)."""
    return None if _held is None else _held.info()


# ---- files -------------------------------------------------------------------------------------
def _lock(path: Path) -> int | None:
    """An open descriptor holding ``path``'s flock, or None when another process holds it."""
    for _ in range(3):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # The file may have been replaced between open and flock (a /tmp cleaner): then the
        # lock is on an orphan that others cannot see; take the file that is there now.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    return None


def _write_holder(fd: int) -> None:
    """Who holds the slot, for the waiting message of others (best effort)."""
    argv = [arg[:80] for arg in sys.argv[:4]]  # e.g. qgvae train --out RUN (not the config)
    note = {"pid": os.getpid(), "host": socket.gethostname(), "argv": argv}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)
    except OSError:
        pass


def _holder(path: Path) -> str:
    try:
        note = json.loads(path.read_text())
        return f"pid {note['pid']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def _busy_message(uuids: Sequence[str], runs_per_gpu: int, lock_dir: Path) -> str:
    holders = [
        _holder(lock_path(lock_dir, s)) for s in slot_order(uuids, runs_per_gpu=runs_per_gpu)
    ]
    return (
        f"all {len(holders)} GPU slots ({len(uuids)} GPU(s) x {RUNS_PER_GPU_ENV}={runs_per_gpu}) "
        f"are held ({', '.join(holders)}; lock files in {lock_dir}); "
        "waiting for one to be freed. Give Snakemake --resources gpu=<GPUs x runs_per_gpu> "
        "to avoid waiting, or --device cuda:N to bypass the slots"
    )


def _make_dir(path: Path, *, own: bool) -> None:
    """Create ``path`` (mode 700); with ``own``, refuse a folder that is not this user's own
    directory (in the shared /tmp another user could have planted it, or a link)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"GPU slot folder {path} cannot be created ({exc.strerror}); set {LOCK_DIR_ENV} to "
            "a writable node-local folder"
        ) from None
    st = path.lstat()
    if not path.is_dir() or (own and (path.is_symlink() or st.st_uid != os.getuid())):
        raise ConfigError(
            f"GPU slot folder {path} is not a directory owned by you (uid {os.getuid()}); "
            f"remove it or set {LOCK_DIR_ENV} to a node-local folder of your own"
        )
