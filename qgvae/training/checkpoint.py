"""The files a training run keeps in its folder, and how they are written, verified and loaded.

``checkpoint.pt`` holds everything a resumed run needs (model, optimiser, scheduler, loader
position, RNG states, step, config); ``model.pt`` the final weights and config (written last);
``train_log.jsonl`` one JSON row per logged step and per validation; ``run.json`` the run's
metadata, including the sha256 of the last ``checkpoint.pt`` and of ``model.pt``.

Safety, because run folders are copied between people and clusters:

- every ``.pt`` file is read with ``torch.load(weights_only=True)``: a crafted file cannot run
  code; everything the project writes loads that way;
- the sha256 recorded in ``run.json`` is checked before a ``.pt`` file is loaded: a corrupt or
  modified file is refused with a message naming it, instead of silently resuming wrong weights;
- :class:`RunLock` keeps two ``qgvae train`` processes out of one run folder;
- :func:`check_resumable` lets ``qgvae train`` refuse a damaged or foreign run folder before
  it loads any data;
- :func:`remove_stale_temporaries` deletes the temporary files a killed write left behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import RunFolderError
from ..io import atomic_path, hash_file, write_text

CHECKPOINT = "checkpoint.pt"
RESULT = "model.pt"
BEST = "best.pt"  # train.select: best_val
KEPT = "checkpoints"  # train.keep_checkpoints: weights at every validation step
LOG = "train_log.jsonl"
RUN_JSON = "run.json"
LOCK = ".train.lock"

# what torch.load raises for a truncated, empty or otherwise unreadable file
_LOAD_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    KeyError,
    IndexError,
)


def rng_state(device: str | torch.device | None = None) -> dict[str, Any]:
    """The random state a checkpoint keeps: torch's CPU generator and, when the run trains on a
    CUDA device, that device's generator (only that one: reading every device's state would
    start a CUDA context on each GPU of the machine). All of it as CPU ByteTensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        state["cuda"] = {"device": index, "state": torch.cuda.get_rng_state(index).cpu()}
    return state


def _bytes(t: Any) -> torch.Tensor:
    """A saved generator state as the CPU ByteTensor ``set_rng_state`` accepts, wherever the
    checkpoint's tensors were loaded to (an older checkpoint loaded onto a GPU included)."""
    return torch.as_tensor(t).detach().to(device="cpu", dtype=torch.uint8)


def set_rng_state(state: Mapping[str, Any], device: str | torch.device | None = None) -> str | None:
    """Restore :func:`rng_state`'s random state for a run on ``device``.

    The CPU state always; a CUDA state only onto a CUDA device that exists: the saved device's
    state goes to the device this attempt trains on. Checkpoints of earlier versions hold a list
    with one state per visible GPU; those are restored for the devices that exist now. Returns
    a sentence when something could not be restored as saved (the run records and prints it),
    else None.
    """
    torch.set_rng_state(_bytes(state["torch"]))
    saved = state.get("cuda")
    if saved is None:
        return None
    dev = torch.device(device) if device is not None else torch.device("cpu")
    states = [saved["state"]] if isinstance(saved, Mapping) else list(saved)
    where = f"cuda:{saved['device']}" if isinstance(saved, Mapping) else f"{len(states)} GPU(s)"
    if dev.type != "cuda" or not torch.cuda.is_available():
        return (
            f"the checkpoint's CUDA random state ({where}) is not restored: this attempt runs "
            f"on {dev}"
        )
    if isinstance(saved, Mapping):
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        torch.cuda.set_rng_state(_bytes(states[0]), index)
        return None
    count = torch.cuda.device_count()
    for index, s in enumerate(states[:count]):
        torch.cuda.set_rng_state(_bytes(s), index)
    if len(states) != count:
        return (
            f"the checkpoint holds the CUDA random states of {len(states)} GPU(s), this machine "
            f"has {count}: restored for the first {min(len(states), count)}"
        )
    return None


# ----------------------------------------------------------------------------- run.json
def read_run_json(run_dir: str | Path) -> dict[str, Any] | None:
    """``run.json`` of a run folder (None when absent); a corrupt one is a RunFolderError."""
    path = Path(run_dir) / RUN_JSON
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunFolderError(
            f"{path} is unreadable ({type(exc).__name__}: {exc}); it is rewritten by "
            f"`qgvae train --out {run_dir}`: delete it (and the run folder's .pt files, to start "
            "afresh) or restore it"
        ) from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} is not a run.json (a JSON object); delete or restore it")
    return data


def recorded_sha256(run_dir: str | Path, name: str) -> set[str] | None:
    """The sha256 values of ``name`` that ``run.json`` accepts (None when it records none).

    A file is recorded with its new digest *before* it replaces the old one, and the old digest
    stays accepted (``previous_sha256``): a kill between the two writes leaves either file
    verifiable, while any other content is refused.
    """
    meta = read_run_json(run_dir) or {}
    entry = (meta.get("files") or {}).get(name) or {}
    accepted = {entry.get("sha256"), entry.get("previous_sha256")} - {None}
    return accepted or None


def file_record(meta: dict[str, Any], name: str, sha256: str, **extra: Any) -> None:
    """Record the new digest of ``name`` in a run.json dict (keeping the previous one)."""
    files = meta.setdefault("files", {})
    old = (files.get(name) or {}).get("sha256")
    files[name] = {"sha256": sha256, "previous_sha256": old, **extra}


# ----------------------------------------------------------------------------- .pt files
def save_pt(
    path: Path,
    obj: Any,
    before_replace: Callable[[str], None] | None = None,
    then: str = "free space, then run the same command again",
) -> str:
    """Write ``obj`` with ``torch.save`` atomically; returns the file's sha256.

    ``before_replace(sha256)`` runs after the temporary file is complete and before it
    replaces ``path`` (the trainer records the digest in run.json there). A full disk is one
    line (:class:`~qgvae.errors.DiskFull`) naming the file, the space needed and ``then``.
    """
    with atomic_path(path, need=_tensor_bytes(obj) + (1 << 16), then=then) as tmp:
        torch.save(obj, tmp)
        sha = hash_file(tmp)
        if before_replace is not None:
            before_replace(sha)
    return sha


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a nested checkpoint object: about what ``torch.save`` writes."""
    if torch.is_tensor(obj):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, Mapping):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def load_pt(
    path: Path, *, sha256: set[str] | None, fix: str, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` after checking a recorded sha256.

    ``fix`` completes the error message (what the user should do). Every failure, a missing
    file included, is a :class:`RunFolderError` naming the file.
    """
    if not path.is_file():
        raise RunFolderError(f"{path} not found; {fix}")
    if sha256:
        got = hash_file(path)
        if got not in sha256:
            raise RunFolderError(
                f"{path} does not match the sha256 recorded in {path.parent / RUN_JSON} "
                f"(corrupt or modified: {got[:16]}...); {fix}"
            )
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise RunFolderError(f"{path} is unreadable ({_reason(exc)}); {fix}") from None
        # torch's own message advises weights_only=False, which would run the file's code
        raise RunFolderError(
            f"{path} holds Python objects that a weights-only load refuses (not written by "
            f"qgvae, possibly crafted to run code: never load it with weights_only=False); {fix}"
        ) from None
    except _LOAD_ERRORS as exc:
        raise RunFolderError(
            f"{path} is unreadable (truncated, corrupt, or not written by qgvae: "
            f"{_reason(exc)}); {fix}"
        ) from None
    if not isinstance(blob, dict):
        raise RunFolderError(f"{path} does not hold a qgvae checkpoint; {fix}")
    return blob


def _reason(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch's run on for lines), or its type."""
    text = " ".join(str(exc).split())
    return text.split(". ")[0] if text else type(exc).__name__


def load_result(run_dir: str | Path, device: str | torch.device = "cpu"):
    """The finished model of a run folder, in eval mode, and its resolved config."""
    from ..methods import build_model

    run_dir = Path(run_dir)
    path = run_dir / RESULT
    fix = f"train it (again) with `qgvae train --out {run_dir}`"
    if not path.is_file():
        raise RunFolderError(f"{path} not found: the run has not finished; {fix}")
    blob = load_pt(path, sha256=recorded_sha256(run_dir, RESULT), fix=fix, map_location=device)
    if not isinstance(blob.get("config"), dict) or not isinstance(blob.get("model"), dict):
        raise RunFolderError(f"{path} lacks its config or weights; {fix}")
    try:
        model = build_model(blob["config"]).to(device)
    except Exception as exc:  # a config the code cannot build (edited, or from another version)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RunFolderError(
            f"{path}: its config does not build a model ({reason}); {fix}"
        ) from None
    try:
        model.load_state_dict(blob["model"])
    except (RuntimeError, KeyError) as exc:
        raise RunFolderError(
            f"{path}: the weights do not fit the model of its config "
            f"({str(exc).splitlines()[0]}); {fix}"
        ) from None
    return model.eval(), blob["config"]


# ----------------------------------------------------------------------------- the log
def truncate_log(path: Path, step: int) -> int:
    """Drop log rows past the checkpoint's step (they are recomputed after a resume), and rows
    that do not parse (a torn last line from a kill during a write). Returns how many were
    dropped as unreadable."""
    if not path.exists():
        return 0
    keep, torn = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            row_step = int(row["step"])
        except (ValueError, TypeError, KeyError):
            torn += 1
            continue
        if row_step <= step:
            keep.append(line)
    write_text(path, "".join(line + "\n" for line in keep))
    return torn


# ----------------------------------------------------------------------------- the folder
class RunLock:
    """An exclusive lock on a run folder while ``qgvae train`` works in it (``fcntl.flock``
    on ``.train.lock``, released by the kernel if the process dies)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl

        self._fh = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown"
            self._fh.close()
            raise RunFolderError(
                f"{self.path.parent} is in use by another `qgvae train` (pid {holder}); wait for "
                "it to finish, or give this run another --out"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fh is not None:
            self._fh.close()
            with contextlib.suppress(OSError):
                self.path.unlink()


def check_resumable(run_dir: str | Path, cfg: Mapping[str, Any]) -> None:
    """Check what ``qgvae train --out run_dir`` is about to read, before it loads any data:
    ``run.json`` parses, and ``checkpoint.pt`` (when present) matches its recorded sha256, loads
    weights-only and was written by the same training configuration. The trainer checks the same
    again when it resumes (these messages are the same as its); checking first means a damaged
    or foreign run folder costs no data loading. A RunFolderError names the file and the fix.
    Done under the folder's lock, so a run training there is reported, not misread."""
    from .. import config as run_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    with RunLock(run_dir):
        read_run_json(run_dir)
        path = run_dir / CHECKPOINT
        if not path.exists():
            return
        fix = (
            f"delete {path} to restart this run from step 0 (the log is rewritten), or restore "
            "the file"
        )
        ckpt = load_pt(path, sha256=recorded_sha256(run_dir, CHECKPOINT), fix=fix)
        if not isinstance(ckpt.get("config"), dict):
            raise RunFolderError(f"{path} has no run config; {fix}")
        same = run_config.training_part(ckpt["config"], keep_seed=True) == run_config.training_part(
            cfg, keep_seed=True
        )
        if not same:
            raise RunFolderError(
                f"{path} was written by a different configuration; delete the run folder "
                "(or pick another --out) to start afresh"
            )


def remove_stale_temporaries(run_dir: Path) -> list[str]:
    """Delete the ``.<name>.*.tmp`` files that an interrupted atomic write left behind (only
    while the run folder is locked, so no live write is touched). Returns their names."""
    removed = []
    run_dir = Path(run_dir)
    for tmp in [*run_dir.glob(".*.tmp"), *(run_dir / KEPT).glob(".*.tmp")]:
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(str(tmp.relative_to(run_dir)))
    return removed
