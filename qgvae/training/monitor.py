"""What a training run shows while it runs: TensorBoard event files and sample grids.

- :class:`Board`: ``tb/events.out.tfevents.*`` in the run folder (``tensorboard --logdir
  results/quick`` finds every run): the logged scalars (losses, code usage, learning rate,
  images/s), validation PSNR against the mean-image floor, and a reconstruction grid at every
  validation. It only receives numbers the log already read back from the device, so it adds
  no device synchronisation; the event writer works in its own thread. A failure to write (a
  full disk, a read-only folder, tensorboard not installed) is one warning and training goes on
  without event files.
- :func:`sample_grid` / :func:`save_samples`: ``samples/step_XXXXXXX.png``, the same fixed
  validation images at every validation, originals above reconstructions (small: 8 images at
  their native size).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_path

BOARD_DIR = "tb"
SAMPLES_DIR = "samples"
SAMPLE_IMAGES = 8


class Board:
    """TensorBoard event files of one run (see the module docstring). ``purge_step``: on a
    resumed run, events at and after the checkpoint's step are dropped from the display (the
    interrupted attempt logged them once already)."""

    def __init__(self, folder: str | Path, *, purge_step: int | None = None) -> None:
        self.folder = Path(folder)
        self._writer = None
        self._failed = False
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge_step)
        except Exception as exc:  # ImportError, OSError, ...: never stops training
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not self._failed:
            warnings.warn(
                f"TensorBoard: cannot write event files in {self.folder} "
                f"({type(exc).__name__}: {exc}); training continues without them",
                RuntimeWarning,
                stacklevel=3,
            )
        self._failed, self._writer = True, None

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        if self._writer is None:
            return
        try:
            getattr(self._writer, name)(*args, **kwargs)
        except Exception as exc:
            self._fail(exc)

    def scalars(self, step: int, values: dict[str, Any], prefix: str = "") -> None:
        """The numbers among ``values`` (host floats of a log row) as scalars ``prefix/name``
        at ``step`` (the row's own ``step`` and image count ``n`` are not plotted)."""
        for name, value in values.items():
            if name in ("step", "n"):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._call("add_scalar", f"{prefix}{name}", float(value), step)

    def image(self, tag: str, step: int, grid_u8: np.ndarray) -> None:
        """A uint8 ``[C, H, W]`` image."""
        self._call("add_image", tag, grid_u8, step, dataformats="CHW")

    def close(self) -> None:
        self._call("flush")
        self._call("close")


def sample_grid(originals: torch.Tensor, recons: torch.Tensor, pad: int = 2) -> np.ndarray:
    """Two rows, originals above reconstructions: uint8 ``[C, H, W]`` (C = 1 or 3)."""
    from torchvision.utils import make_grid

    both = torch.cat([originals.float(), recons.float().clamp(0, 1)]).cpu()
    grid = make_grid(both, nrow=len(originals), padding=pad, pad_value=1.0)
    if originals.shape[1] == 1:
        grid = grid[:1]
    return (grid * 255).round().to(torch.uint8).numpy()


def save_samples(run_dir: str | Path, step: int, grid_u8: np.ndarray) -> Path:
    """Write ``samples/step_XXXXXXX.png`` (atomically) and return its path."""
    from PIL import Image

    path = Path(run_dir) / SAMPLES_DIR / f"step_{step:07d}.png"
    img = grid_u8[0] if grid_u8.shape[0] == 1 else grid_u8.transpose(1, 2, 0)
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return path
