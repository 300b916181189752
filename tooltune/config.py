"""Typed settings: where the workspace and model cache live, defaults for models and ports.

Values come from (highest first) explicit arguments, environment variables (``TOOLTUNE_*``), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tooltune.device import detect_device

Dtype = Literal["float32", "bfloat16", "float16"]


def default_dtype() -> Dtype:
    """float32 is the fast format on a Linux CPU (BLAS matmuls); Apple silicon and NVIDIA GPUs run
    bfloat16 fast (on an H200, LoRA training on the 0.5B shape ran 1.9x faster in bf16 than in f32 at
    batch 16 and 1.07x at batch 1, in half the memory: bench/results/gpu_speed.json)."""
    return "float32" if detect_device().kind == "cpu" else "bfloat16"


def default_quantize_bits() -> int | None:
    """4-bit on Apple silicon (the norm there); none on a Linux CPU, where quantized matmuls are slow,
    nor on a GPU, where the 0.5B-1.5B models fit whole."""
    return 4 if detect_device().kind == "metal" else None


def _default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "tooltune"


class Settings(BaseModel):
    """Resolved settings for one tooltune invocation."""

    workspace: Path = Field(description="Folder holding datasets, runs, adapters and reports.")
    cache_dir: Path = Field(description="Model cache shared across workspaces (imported base models).")
    default_model: str = Field(
        default="qwen2.5-coder-0.5b-instruct", description="Model used when none is named."
    )
    use_openblas: bool = Field(default=True, description="Preload OpenBLAS into MLX subprocesses on Linux.")
    host: str = "127.0.0.1"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @classmethod
    def load(
        cls,
        workspace: Path | str | None = None,
        cache_dir: Path | str | None = None,
    ) -> Settings:
        env = os.environ
        ws = workspace or env.get("TOOLTUNE_HOME") or Path.cwd() / ".tooltune"
        cache = cache_dir or env.get("TOOLTUNE_CACHE") or _default_cache_dir()
        return cls(
            workspace=Path(ws).expanduser().resolve(),
            cache_dir=Path(cache).expanduser().resolve(),
            default_model=env.get("TOOLTUNE_MODEL", "qwen2.5-coder-0.5b-instruct"),
            use_openblas=env.get("TOOLTUNE_OPENBLAS", "1").lower() not in ("0", "false", "no", "off"),
        )
