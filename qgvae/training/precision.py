"""The numeric precision a run trains in, stated and recorded: autocast, TF32, the device.

``train.amp``      ``bf16``: bf16 autocast on CUDA (the quantisers keep their distances and
                   losses in fp32); ``none``: fp32.
``train.cpu_amp``  ``bf16``: the same autocast on the CPU, where the CPU computes bf16 natively
                   (AVX512-BF16 or AMX; oneDNN's check). Elsewhere torch falls back to
                   reference kernels: QG-VAE's step measured 25x slower than fp32 on an AVX2-only
                   CPU (``aten::_slow_conv2d``), so such a CPU refuses it before training starts.
                   ``none`` (default): fp32 on the CPU.
``train.tf32``     TF32 tensor cores for fp32 matmuls and convolutions on CUDA (Ampere and
                   later). Default false: an fp32 run is fp32 (PyTorch's own default lets cuDNN
                   convolutions use TF32, so an unset policy would make "fp32" baselines TF32).

``run.json`` records what was used (:meth:`Precision.record`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's own test: AVX512-BF16 / AMX)."""
    try:
        mkldnn = torch.backends.mkldnn.is_available()
        return bool(mkldnn and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """How one process computes: the device, the autocast dtype (None: fp32) and TF32."""

    device: torch.device
    dtype: torch.dtype | None = None
    tf32: bool = False

    def autocast(self):
        """The autocast context of a forward pass (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def apply(self) -> None:
        """Set the process's TF32 policy (a global switch of torch) to ``tf32``."""
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32

    def record(self) -> dict[str, Any]:
        """What ``run.json`` says about the precision of the run."""
        autocast = "none" if self.dtype is None else str(self.dtype).replace("torch.", "")
        out: dict[str, Any] = {"device": str(self.device), "autocast": autocast}
        if self.device.type == "cuda":
            out["tf32"] = self.tf32
        else:
            out["cpu_bf16_native"] = cpu_bf16_native()
        return out


def precision_for(device: torch.device, train_cfg: Mapping[str, Any]) -> Precision:
    """The precision of a run's ``train`` section on ``device``; a CPU run with ``cpu_amp: bf16``
    on a CPU without native bf16 is refused (ConfigError naming the key)."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if train_cfg.get("amp", "none") == "bf16" else None
        return Precision(device, dtype, bool(train_cfg.get("tf32", False)))
    if train_cfg.get("cpu_amp", "none") != "bf16":
        return Precision(device)
    if not cpu_bf16_native():
        raise ConfigError(
            "train.cpu_amp: bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); this one has "
            f"{torch.backends.cpu.get_cpu_capability()} only, where bf16 convolutions run on "
            "reference kernels (QG-VAE: 25x slower than fp32); set train.cpu_amp: none"
        )
    return Precision(device, torch.bfloat16)


def autocast(device: torch.device, amp: str, cpu_amp: str = "none"):
    """The autocast context for ``amp`` / ``cpu_amp`` on ``device`` (see the module docstring)."""
    return precision_for(device, {"amp": amp, "cpu_amp": cpu_amp}).autocast()
