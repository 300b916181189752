"""bench/gpu_speed.py runs unchanged on whatever backend MLX has (here the CPU): tooltune's worker and the
bare mlx-lm loop train the same tiny model on the same data, and the result names the device."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_speed_bench_runs_on_this_backend(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    cmd = [sys.executable, "bench/gpu_speed.py", "--shape", "tiny", "--dtypes", "float32", "--batches", "1"]
    cmd += ["--iters", "4", "--workdir", str(tmp_path / "work"), "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    (row,) = doc["training"]
    assert row["dtype"] == "float32" and row["batch"] == 1
    assert row["tooltune_tokens_per_s"] > 0 and row["bare_tokens_per_s"] > 0
    assert row["fraction_of_bare"] == pytest.approx(
        row["tooltune_tokens_per_s"] / row["bare_tokens_per_s"], rel=1e-2
    )
    assert row["worker_device"] == doc["machine"]["mlx_device"]
    assert doc["command"].startswith("python bench/gpu_speed.py") and doc["date"]
