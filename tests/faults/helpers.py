"""Helpers of the fault-injection suite: the CLI run in-process, the one-line refusal check,
folder snapshots, file damage and a pickle payload that proves whether code ran."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path


# ------------------------------------------------------------------------------- the CLI
@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The one line the command printed on stderr (asserts there is exactly one)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{self.err}"
        return lines[0]


def run_cli(*argv: object) -> Result:
    """``qgvae ARGV`` in this process: its exit status and what it printed."""
    from qgvae.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


def refused(res: Result, *, command: str, code: int, names: list[str]) -> str:
    """Assert a one-line ``qgvae COMMAND: error:`` with status ``code`` that contains every
    string of ``names`` (the file, the key, the fix); returns the line."""
    line = res.error_line
    assert res.code == code, f"exit {res.code}, expected {code}: {line}"
    assert line.startswith(f"qgvae {command}: error: "), line
    for text in names:
        assert text in line, f"{text!r} not in: {line}"
    assert "Traceback" not in res.err
    return line


# ------------------------------------------------------------------------------ folders
def snapshot(folder: Path, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (names in ``ignore`` left out)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file() and p.name not in ignore
    }


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def set_record(run: Path, name: str, sha256: str | None) -> None:
    """Make run.json record ``sha256`` for ``name`` (None: record nothing for it), as an
    attacker who rewrites run.json too, or a run folder from before the records, would."""
    meta = json.loads((run / "run.json").read_text())
    files = meta.setdefault("files", {})
    if sha256 is None:
        files.pop(name, None)
    else:
        files[name] = {"sha256": sha256, "previous_sha256": None}
    (run / "run.json").write_text(json.dumps(meta))


def damage(path: Path, how: str) -> None:
    """Truncate to a third, empty, or flip 400 bytes in the middle of a file."""
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 3]
    elif how == "empty":
        data = bytearray()
    elif how == "flipped":
        mid = len(data) // 2
        for i in range(mid, mid + 400):
            data[i] ^= 0x5A
    else:
        raise ValueError(how)
    path.write_bytes(bytes(data))


class Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
