"""Batches from a uint8 image tensor that already lives on the training device."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


class DeviceLoader:
    """Batches from a uint8 tensor that already lives on the training device.

    Each epoch's order is ``torch.randperm(N)`` drawn on the images' device from a
    ``torch.Generator`` seeded with a 63-bit value derived from ``(seed, epoch)`` by
    ``numpy.random.SeedSequence([seed, epoch])``; batches are gathered with ``index_select`` and
    converted to float32 in [0, 1] on the device, so no host->device copy and no PIL happen per
    step.  (torch's CPU and CUDA generators give different permutations for the same seed: a run
    is reproducible on the same device type.)  ``shuffle=False`` keeps the stored order.

    ``epoch`` / ``batch_index`` give the position of the *next* batch; they advance as batches
    are yielded (after the last batch of an epoch: ``epoch + 1``, ``0``).  ``state_dict()`` saved
    at any point and loaded into a fresh loader over the same images reproduces exactly the
    batches an uninterrupted run would have produced next.  Iterating again after a ``break``
    continues the current epoch.  Do not iterate two iterators of one loader at the same time.
    """

    def __init__(
        self,
        images_uint8: torch.Tensor,
        *,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        if (
            not isinstance(images_uint8, torch.Tensor)
            or images_uint8.dtype != torch.uint8
            or images_uint8.dim() != 4
        ):
            raise TypeError(
                "DeviceLoader needs a uint8 tensor [N, C, H, W], got "
                f"{getattr(images_uint8, 'dtype', type(images_uint8))} "
                f"{tuple(getattr(images_uint8, 'shape', ()))}"
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.images = images_uint8
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.batch_index = 0
        self._order_cache: tuple[int, torch.Tensor] | None = None
        if len(self) == 0:
            raise ValueError(
                f"{self.num_images} images give no full batch of {self.batch_size} (drop_last=True)"
            )

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        n, b = self.num_images, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch_seed(self, epoch: int) -> int:
        state = np.random.SeedSequence([self.seed, int(epoch)]).generate_state(2, np.uint32)
        return ((int(state[0]) << 32) | int(state[1])) & ((1 << 63) - 1)

    def order(self, epoch: int) -> torch.Tensor:
        """The image order of ``epoch`` (a LongTensor on the device)."""
        if self._order_cache is not None and self._order_cache[0] == epoch:
            return self._order_cache[1]
        if self.shuffle:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(self.epoch_seed(epoch))
            perm = torch.randperm(self.num_images, generator=gen, device=self.device)
        else:
            perm = torch.arange(self.num_images, device=self.device)
        self._order_cache = (epoch, perm)
        return perm

    def __iter__(self) -> Iterator[torch.Tensor]:
        nb = len(self)
        if self.batch_index >= nb:  # a position at the very end of an epoch
            self.epoch, self.batch_index = self.epoch + 1, 0
        epoch, start = self.epoch, self.batch_index
        order = self.order(epoch)
        bs = self.batch_size
        for b in range(start, nb):
            idx = order[b * bs : (b + 1) * bs]
            batch = self.images.index_select(0, idx).to(torch.float32).div_(255.0)
            if b + 1 == nb:
                self.epoch, self.batch_index = epoch + 1, 0
            else:
                self.epoch, self.batch_index = epoch, b + 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "num_images": self.num_images,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "device_type": self.device.type,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "batch_size", "num_images", "shuffle", "drop_last"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"DeviceLoader state has {key}={state[key]!r} but this loader has "
                    f"{getattr(self, key)!r}: resuming would not reproduce the batches"
                )
        if state.get("device_type", self.device.type) != self.device.type:
            warnings.warn(
                f"DeviceLoader state saved on {state['device_type']!r}, resumed on "
                f"{self.device.type!r}: permutations differ between device types",
                stacklevel=2,
            )
        epoch, index = int(state["epoch"]), int(state["batch_index"])
        if epoch < 0 or not 0 <= index <= len(self):
            raise ValueError(f"invalid DeviceLoader position epoch={epoch}, batch_index={index}")
        self.epoch, self.batch_index = epoch, index
