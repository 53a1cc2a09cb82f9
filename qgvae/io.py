"""Files: atomic writes (JSON, text, ``.npz``), hashing and strict JSON reading.

Every file the project writes goes through :func:`atomic_path`: a reader sees either the old
file or the complete new one, never a partial write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, need: int | None = None, then: str = ""
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A reader therefore sees either the old file or the complete new one, never a partial write.
    A write that fails for lack of space raises :class:`~qgvae.errors.DiskFull` (one line: the
    file, the space free and ``need`` bytes needed, and ``then``: how to go on) instead of what
    the writer raised (``torch.save`` reports a full disk as ``unexpected pos 70592 vs 70484``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        short = out_of_space(exc, tmp, need)
        tmp.unlink(missing_ok=True)
        if not short:
            raise
        raise disk_full_error(path, need, then) from None
    finally:
        tmp.unlink(missing_ok=True)


_TORCH_WRITE_FAILURES = ("unexpected pos", "iostream error", "file write failed")


def out_of_space(exc: BaseException, partial: Path, need: int | None) -> bool:
    """Whether ``exc``, raised while ``partial`` was being written, means the disk is full: an
    ``OSError`` ENOSPC / EDQUOT, or torch's writer reporting a short write as a ``RuntimeError``
    (``unexpected pos``) while the file system has less room than the file still needed."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not any(s in str(exc) for s in _TORCH_WRITE_FAILURES):
        return False
    written = partial.stat().st_size if partial.exists() else 0
    return shutil.disk_usage(partial.parent).free < max((need or 0) - written, 1 << 20)


def disk_full_error(path: Path, need: int | None, then: str = ""):
    """The one-line :class:`~qgvae.errors.DiskFull` for ``path``: space free and needed, whether
    the earlier file is intact, and ``then`` (how to go on)."""
    from .errors import DiskFull

    free = shutil.disk_usage(path.parent).free
    mb = lambda n: f"{n / 1e6:.1f} MB"
    needed = f", about {mb(need)} needed" if need else ""
    earlier = f"the earlier {path.name} is intact" if path.exists() else "nothing was written"
    return DiskFull(
        f"cannot write {path}: its file system is full ({mb(free)} free{needed}); {earlier}"
        + (f"; {then}" if then else "")
    )


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text``."""
    with atomic_path(path, need=len(text.encode())) as tmp:
        tmp.write_text(text)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Atomically write an uncompressed ``.npz``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Atomically write one array as ``.npy`` (no pickle)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def hash_file(path: str | os.PathLike, algo: str = "sha256", chunk: int = 1 << 22) -> str:
    """Hex digest of a file's bytes (``sha256`` by default, any ``hashlib`` name)."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def load_plan(plan: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    """The plan given as a mapping or as the path of its JSON file."""
    return plan if isinstance(plan, Mapping) else json.loads(Path(plan).read_text())


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(data, None) or (None, reason); never raises."""
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable {path.name} ({type(exc).__name__})"
    ok = isinstance(data, dict)
    return (data, None) if ok else (None, f"unreadable {path.name} (not an object)")
