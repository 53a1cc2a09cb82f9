"""The machine a run runs on: device choice, seeding, and what a result records about it
(package versions, git commit, hardware, time)."""

from __future__ import annotations

import ctypes
import datetime as _dt
import os
import platform
import random
import subprocess
import uuid
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import gpu_slots

if TYPE_CHECKING:
    import torch

# Packages whose versions go into every run.json / metrics.json.
TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-image",
    "lpips",
    "pytorch-fid",
    "pot",
    "pillow",
    "snakemake",
    "qgvae-bench",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The checkout's commit (with ``-dirty`` when it has uncommitted changes), or None."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: str | None = None) -> dict[str, Any]:
    """What a result records about the machine. ``device`` is the device the run used: ``gpu``
    names that GPU (not device 0), ``gpus_visible`` counts the GPUs the process could see."""
    import torch

    info: dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator_note(),
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpus_visible"] = torch.cuda.device_count()
        dev = torch.device(device) if device else None
        if dev is not None and dev.type == "cuda":
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            info["gpu"] = torch.cuda.get_device_name(index)
            memory = torch.cuda.get_device_properties(index).total_memory
            info["gpu_memory_gb"] = round(memory / 1e9, 1)
    info["device"] = device
    info["gpu_slot"] = gpu_slots.held_info()  # the GPU slot this process holds, or None
    return info


# glibc's malloc serves every block above its mmap threshold (128 KiB, raised dynamically to at
# most 32 MiB) with a fresh mmap and gives it back with munmap on free. A convolutional network
# on the CPU allocates and frees activations of tens to hundreds of MiB per layer, so every
# layer's output is new memory that the kernel faults in and zeroes page by page: measured on
# the 2-core CI machine, a third of Inception-v3's CPU time (0.05 of 0.17 CPU-s per image at
# batch 50) was spent in the kernel, 2.8 million page faults per 100 images. With the
# thresholds below, freed blocks stay in the heap and are reused: the kernel share drops to
# under 1 % and no number changes (the same kernels compute the same values).
ALLOCATOR_ENV = "QGVAE_ALLOCATOR"
_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap (freed blocks are reused)
_TRIM_THRESHOLD = 1 << 31  # keep up to 2 GiB of free heap instead of returning it at once
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)
_allocator_note: str | None = None


def tune_cpu_allocator() -> str:
    """Raise glibc malloc's mmap and trim thresholds for this process (once; later calls return
    the first result) and return what was done, for run.json / metrics.json.

    Set ``QGVAE_ALLOCATOR=default`` to leave the allocator alone, e.g. where the retained
    high-water heap matters more than speed. Without glibc (macOS, musl) nothing is changed."""
    global _allocator_note
    if _allocator_note is None:
        _allocator_note = _tune_allocator()
    return _allocator_note


def allocator_note() -> str:
    """What :func:`tune_cpu_allocator` did in this process, without doing it."""
    return _allocator_note or "default (not tuned in this process)"


def _tune_allocator() -> str:
    if os.environ.get(ALLOCATOR_ENV, "") == "default":
        return f"default ({ALLOCATOR_ENV}=default)"
    if platform.libc_ver()[0] != "glibc":
        return "default (not glibc)"
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError) as exc:
        return f"default (no mallopt: {exc})"
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1 and ok
    if not ok:
        return "default (glibc refused the mallopt thresholds)"
    return "glibc, mmap threshold 1 GiB, trim threshold 2 GiB (freed tensors are reused)"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device of ``name``: ``auto`` (a GPU if CUDA is available, else the CPU), ``cpu``,
    ``cuda`` or ``cuda:N``.

    ``auto`` and ``cuda`` on a machine with CUDA take this process's GPU slot
    (:mod:`qgvae.gpu_slots`: a GPU of its own, or one of ``QGVAE_RUNS_PER_GPU`` places on one,
    held until the process ends; the first call may wait for a slot) and make that GPU the
    current one. ``cuda:N`` names the GPU itself and takes no slot; the CPU never does."""
    dev = check_device(name)
    if dev.type == "cuda" and dev.index is None:
        return gpu_slot_device()
    return dev


def check_device(name: str = "auto") -> torch.device:
    """``name`` as a torch device, refused with a one-line ConfigError when it is not one or
    names CUDA on a machine without it; takes no GPU slot (``auto`` with CUDA is ``cuda``)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from .errors import ConfigError

    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"device {name!r} is not a torch device ({exc}); use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} requested but CUDA is not available on this machine; "
            "use --device cpu (or auto)"
        )
    return dev


def gpu_uuids() -> list[str]:
    """The UUID of every GPU this process sees, in index order (the slot lock files' names)."""
    import torch

    return [gpu_uuid(torch.cuda.get_device_properties(i)) for i in range(torch.cuda.device_count())]


def gpu_uuid(props: Any) -> str:
    """A GPU's UUID from its torch device properties, as 8-4-4-4-12 hex digits; without one (an
    old driver, another backend) its PCI address, which is as unique on one machine."""
    raw = getattr(props, "uuid", None)
    data = getattr(raw, "bytes", None)  # torch's _CUuuid: 16 bytes
    if data is not None and len(bytes(data)) == 16:
        return str(uuid.UUID(bytes=bytes(data)))
    text = str(raw or "")
    if text and " at 0x" not in text:  # never an object's address: it differs per process
        return text
    return f"pci-{props.pci_domain_id:04x}-{props.pci_bus_id:02x}-{props.pci_device_id:02x}"


def gpu_slot_device() -> torch.device:
    """The GPU of this process's slot (taken on the first call), made the current device so
    that code asking for plain ``cuda`` lands on it too."""
    import torch

    slot = gpu_slots.claim(gpu_uuids()).slot
    torch.cuda.set_device(slot.index)
    return torch.device("cuda", slot.index)
