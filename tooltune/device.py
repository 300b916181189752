"""Which MLX backend this machine runs: Apple silicon (Metal), an NVIDIA GPU (MLX's CUDA backend, the
`cuda` extra) or the CPU.

Decided without importing MLX: the parent process (CLI, MCP server) only starts MLX children, and the
choice changes how it starts them (no OpenBLAS preload on a GPU) and what dtype a model is imported in.
``TOOLTUNE_DEVICE=cpu|cuda`` overrides the detection, e.g. to keep a CUDA install on the CPU.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DeviceKind = Literal["metal", "cuda", "cpu"]
DEVICE_ENV = "TOOLTUNE_DEVICE"
CUDA_DISTRIBUTIONS = ("mlx-cuda-13", "mlx-cuda-12", "mlx-cuda")
NVIDIA_PROC = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class Device:
    kind: DeviceKind
    reason: str

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def mlx_cuda_distribution() -> str | None:
    """The installed MLX CUDA backend package whose ``libmlx.so`` is the one on disk, if any.

    ``pip install "tooltune[cuda]"`` installs ``mlx-cpu`` (the base dependency) and ``mlx-cuda-13``; both
    write ``mlx/lib/libmlx.so`` and the last one installed wins (pip installs the CUDA one last, as it
    depends on the nvidia-* packages). The file's size against the package's RECORD says which it is.
    """
    for name in CUDA_DISTRIBUTIONS:
        try:
            files = importlib.metadata.files(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        lib = next((f for f in files if f.name == "libmlx.so" and f.parent.name == "lib"), None)
        if lib is None or lib.size is None:
            return name  # a layout we don't know: trust the package's presence
        on_disk = Path(str(lib.locate()))
        if on_disk.is_file() and on_disk.stat().st_size == lib.size:
            return name
    return None


def nvidia_gpu_present(proc_file: Path = NVIDIA_PROC) -> bool:
    """The NVIDIA kernel driver is loaded (it creates this file); no CUDA context is made to find out."""
    return proc_file.exists()


def detect_device(environ: Mapping[str, str] | None = None, *, proc_file: Path = NVIDIA_PROC) -> Device:
    env = os.environ if environ is None else environ
    forced = env.get(DEVICE_ENV, "").strip().lower()
    if forced and forced not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{DEVICE_ENV}={forced!r}: use cpu, cuda or auto")
    if is_apple_silicon():
        return Device("metal", "Apple silicon: MLX runs on Metal")
    if forced == "cpu":
        return Device("cpu", f"{DEVICE_ENV}=cpu")
    dist = mlx_cuda_distribution()
    if forced == "cuda":
        found = f" ({dist})" if dist else " (no MLX CUDA package found)"
        return Device("cuda", f"{DEVICE_ENV}=cuda{found}")
    if dist is None:
        return Device("cpu", "no MLX CUDA backend installed (pip install 'tooltune[cuda]' adds it)")
    if not nvidia_gpu_present(proc_file):
        return Device("cpu", f"{dist} is installed but no NVIDIA driver is loaded")
    return Device("cuda", f"{dist} and an NVIDIA driver")


def keep_mlx_on(device: Device, mx: Any) -> bool:
    """In an MLX child (``mx``: its ``mlx.core``): make the CPU MLX's default device when tooltune chose
    the CPU and MLX's default is another (a CUDA build that sees a GPU picks it by itself, so
    ``TOOLTUNE_DEVICE=cpu`` would otherwise only change how tooltune starts the child); True when it
    changed something. A GPU choice leaves MLX's own default (its first GPU)."""
    if device.kind == "cpu" and mx.default_device() != mx.cpu:
        mx.set_default_device(mx.cpu)
        return True
    return False
