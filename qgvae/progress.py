"""Progress of a long loop, readable on a terminal and in a log file.

On a terminal, a tqdm bar. Anywhere else (a Snakemake rule's ``log:``, a SLURM job's output),
one plain line every ``QGVAE_PROGRESS_SECONDS`` seconds (default 60) and a last one at the end::

    train results/mnist/qgvae/default_0527f469/seed0: step 1200/4500 (26.7 %),
        31.2 images/s, loss 0.01234, ETA 0:52:51   (one line)

The values shown (``loss``) are the last ones the caller passed: the loop's own log steps, so
that printing progress never reads a number back from the device.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from typing import Any, TextIO

PROGRESS_ENV = "QGVAE_PROGRESS_SECONDS"


def interval_seconds(default: float = 60.0) -> float:
    """Seconds between plain progress lines (``QGVAE_PROGRESS_SECONDS``)."""
    try:
        return max(float(os.environ.get(PROGRESS_ENV, default)), 0.0)
    except ValueError:
        return default


def _clock(seconds: float) -> str:
    return str(_dt.timedelta(seconds=round(max(seconds, 0.0))))


class Progress:
    """``Progress(total, what=..., unit=..., initial=..., per_unit=...)``; ``update(n, **values)``
    after each unit of work, ``close()`` at the end (also a context manager).

    ``per_unit`` converts units to the rate shown (e.g. 32 images per training step);
    ``rate_unit`` names it. ``show``: True / False forces the bar; None (default) picks the bar
    on a terminal and plain lines elsewhere.
    """

    def __init__(
        self,
        total: int,
        *,
        what: str,
        unit: str = "step",
        initial: int = 0,
        per_unit: float = 1.0,
        rate_unit: str | None = None,
        stream: TextIO | None = None,
        show: bool | None = None,
        every: float | None = None,
    ) -> None:
        self.total, self.what, self.unit = int(total), what, unit
        self.done = self.start_done = int(initial)
        self.per_unit, self.rate_unit = float(per_unit), rate_unit or f"{unit}s"
        self.stream = stream if stream is not None else sys.stderr
        self.every = interval_seconds() if every is None else every
        self.values: dict[str, Any] = {}
        self.shown = -1  # the count of the last line printed
        self.t0 = self.t_last = time.perf_counter()
        tty = self.stream.isatty() if hasattr(self.stream, "isatty") else False
        self.bar = None
        if show is True or (show is None and tty):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=initial, unit=unit, dynamic_ncols=True, file=self.stream
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1, **values: Any) -> None:
        self.done += n
        self.values.update(values)
        if self.bar is not None:
            self.bar.update(n)
            if values:
                self.bar.set_postfix({k: _fmt(v) for k, v in self.values.items()})
            return
        now = time.perf_counter()
        if self.every and now - self.t_last >= self.every:
            self.t_last = now
            self._line(now)

    def line(self) -> str:
        """The plain progress line as it stands."""
        elapsed = time.perf_counter() - self.t0
        done = self.done - self.start_done
        rate = done * self.per_unit / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.1f} %)" if self.total else ""
        parts = [f"{self.what}: {self.unit} {self.done}/{self.total}{share}"]
        parts.append(f"{rate:.3g} {self.rate_unit}/s")
        parts += [f"{k} {_fmt(v)}" for k, v in self.values.items()]
        left = self.total - self.done
        if done > 0 and left > 0:
            parts.append(f"ETA {_clock(elapsed / done * left)}")
        elif left <= 0:
            parts.append(f"done in {_clock(elapsed)}")
        return ", ".join(parts)

    def _line(self, now: float) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.shown = self.done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.every and self.done > self.start_done and self.shown != self.done:
            self._line(time.perf_counter())
        self.every = 0.0  # closed: no further lines


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
