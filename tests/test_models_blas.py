"""The OpenBLAS preload: found, and an MLX subprocess with that environment really loads it and computes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tooltune.config import Settings
from tooltune.models.blas import blas_env, find_openblas, subprocess_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux-only")

_CHILD = r"""
import json
from pathlib import Path
import numpy as np
import mlx.core as mx
a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
out = np.array(mx.array(a) @ mx.array(a))
maps = Path("/proc/self/maps").read_text()
print(json.dumps({"max_err": float(np.abs(out - a @ a).max()), "openblas_mapped": "libopenblas" in maps}))
"""


def _run_child(env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-c", _CHILD]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_blas_env_finds_openblas(settings: Settings) -> None:
    lib = find_openblas()
    assert lib is not None and lib.name == "libopenblas.so.0" and lib.exists()
    choice = blas_env(settings.cache_dir, enabled=True)
    assert choice.name == "openblas" and choice.library == str(lib)
    assert str(lib) in choice.env["LD_PRELOAD"].split()
    assert int(choice.env["OPENBLAS_NUM_THREADS"]) >= 1
    assert blas_env(settings.cache_dir, enabled=False).name == "reference"


def test_subprocess_with_preload_runs_mlx_matmul(settings: Settings) -> None:
    with_blas = _run_child(subprocess_env(settings.cache_dir, enabled=True))
    assert with_blas["openblas_mapped"] is True
    assert with_blas["max_err"] < 1e-2
    without = _run_child(subprocess_env(settings.cache_dir, enabled=False))
    assert without["openblas_mapped"] is False
    assert without["max_err"] < 1e-2


def test_results_file_records_its_provenance() -> None:
    """bench/results/blas.json is produced by bench/blas.py: it must say how, where and when."""
    path = Path(__file__).resolve().parent.parent / "bench" / "results" / "blas.json"
    if not path.exists():
        pytest.skip("bench/results/blas.json has not been produced yet (python bench/blas.py)")
    report = json.loads(path.read_text())
    assert report["command"].startswith("python bench/blas.py")
    assert {"platform", "cpu_count", "mlx", "mlx-lm"} <= set(report["machine"])
    assert set(report["results"]) == {"openblas", "reference"}
    assert report["results"]["openblas"]["blas_loaded"] == "openblas"
    assert report["results"]["reference"]["blas_loaded"] == "reference"
    for key, ratio in report["ratio_openblas_over_reference"].items():
        o_key = {"matmul_2048": "matmul_2048_gflops"}.get(key, key)
        o, r = report["results"]["openblas"][o_key], report["results"]["reference"][o_key]
        assert ratio == pytest.approx(o / r, rel=0.05)
