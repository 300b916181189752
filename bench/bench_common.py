"""Pieces the measurement scripts in bench/ share: the OpenBLAS restart, the machine record, run outcomes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tooltune.config import Settings
from tooltune.serving.blas import subprocess_env

_RESTARTED = "TOOLTUNE_BENCH_BLAS_SET"


def restart_with_blas() -> None:
    """Restart this script once with the environment tooltune gives its MLX subprocesses (OpenBLAS
    preloaded on Linux CPU); a preload only takes effect at process start."""
    if not os.environ.get(_RESTARTED):
        env = {**subprocess_env(Settings.load().cache_dir), _RESTARTED: "1"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


# the settings that change what a measurement measures (never a token: results are committed)
COMMAND_SETTINGS = ("TOOLTUNE_BLAS_THREADS", "TOOLTUNE_OPENBLAS", "TOOLTUNE_DEVICE", "TOOLTUNE_HOME",
                    "TOOLTUNE_CACHE", "TOOLTUNE_MODEL", "TOOLTUNE_BFCL_DIR")  # fmt: skip


def command_line() -> str:
    """The command as typed, for a result file: the settings it ran under (threads, home, device change
    what is measured; :data:`COMMAND_SETTINGS`) in front of ``python`` and the script's own arguments."""
    env = [f"{k}={os.environ[k]}" for k in COMMAND_SETTINGS if k in os.environ]
    return " ".join([*env, "python", *sys.argv])


def result_head(benchmark: str, model: Path | str) -> dict[str, Any]:
    """The fields every result file opens with: what ran, how it was typed, when, where, on which model."""
    return {
        "benchmark": benchmark,
        "command": command_line(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "model": str(model),
    }


def case_answers(report: Any) -> dict[str, str]:
    """Each case's answer in an eval report (its text, then its native calls), for a speed bench to show
    that another layout or concurrency answered the same."""
    return {r.case_id: r.answer_text(limit=2000) for r in report.results}


def same_answers(first: dict[str, str], other: dict[str, str]) -> int:
    """How many of ``first``'s cases ``other`` answered exactly alike."""
    return sum(first[k] == other.get(k) for k in first)


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def gpu_info() -> str | None:
    """The NVIDIA GPUs nvidia-smi reports (name, memory, driver; one line each), or None without one."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Where and when a measurement ran: the machine, MLX's device and, on NVIDIA machines, the GPU.
    Puts this process's MLX on tooltune's device first, so what it records is where the measurement runs."""
    import mlx.core as mx
    import mlx_lm

    from tooltune.device import detect_device, keep_mlx_on
    from tooltune.serving.blas import CHECK_FILE, BlasCheck

    device = detect_device()
    keep_mlx_on(device, mx)  # this process computes where tooltune's children do (TOOLTUNE_DEVICE)

    cpu = next((ln.split(":", 1)[1].strip() for ln in _cpuinfo() if ln.startswith("model name")), None)
    check = Settings.load().cache_dir / CHECK_FILE
    core = BlasCheck.model_validate_json(check.read_text()).core if check.exists() else None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "openblas_kernels": core if os.environ.get("LD_PRELOAD") else None,
        "cpus": os.cpu_count(),
        "blas_threads_env": os.environ.get("TOOLTUNE_BLAS_THREADS"),
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "mlx_lm": mlx_lm.__version__,
        "mlx_device": str(mx.default_device()),
        "tooltune_device": device.reason,
        "gpu": gpu_info(),
    }


def run_outcomes(reports: Path, run_id: str, mode: str) -> dict[str, dict[str, Any]]:
    """An eval run's per-case outcome in one mode ("native" or "lenient"), by case id."""
    path = reports / run_id / "cases.jsonl"
    return {r["case_id"]: r[mode] for r in (json.loads(line) for line in path.open())}


def model_shape(model_path: Path) -> dict[str, int]:
    """Matmul parameters of a decoder from its config.json: per block (q, o, k, v, gate/up/down), the
    number of blocks, and the LM head. The embedding is a lookup, not a matmul: a prompt token costs
    ~2 x block_params x layers FLOPs (the head runs at the last position only)."""
    cfg = json.loads((model_path / "config.json").read_text())
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * (h // cfg["num_attention_heads"])
    block = h * h * 2 + h * kv * 2 + 3 * h * inter
    return {"block_params": block, "layers": layers, "head_params": cfg["vocab_size"] * h}
