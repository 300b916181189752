"""The OpenBLAS preload: found, and an MLX subprocess with that environment really loads it and computes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tooltune.config import Settings
from tooltune.jobs import JobStore
from tooltune.serving import blas
from tooltune.serving.blas import (
    CHECK_FILE,
    BlasCheck,
    blas_env,
    check_openblas,
    find_openblas,
    subprocess_env,
)
from tooltune.workspace import Workspace

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


def test_a_preloaded_parent_does_not_preload_twice(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bench script re-executes itself with the preload, then starts a server with it."""
    first = blas_env(settings.cache_dir, enabled=True).env
    for key, value in first.items():  # what the re-executed process runs with
        monkeypatch.setenv(key, value)
    assert blas_env(settings.cache_dir, enabled=True).env["LD_PRELOAD"].split() == [str(find_openblas())]


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


# A stand-in for an OpenBLAS built for another CPU: it names its kernels, and its sgemm executes an
# instruction that traps (ud2, SIGILL), just as SKYLAKEX kernels do on an AVX2-only CPU.
_TRAPPING_BLAS = r"""
const char *openblas_get_corename(void) { return "FUTURECPU"; }
void cblas_sgemm(void) { __builtin_trap(); }
"""


@pytest.fixture
def trapping_blas(tmp_path: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the stand-in library")
    src = tmp_path / "trap.c"
    src.write_text(_TRAPPING_BLAS)
    lib = tmp_path / "libopenblas.so.0"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def test_a_blas_that_traps_on_this_cpu_is_not_preloaded(
    settings: Settings, trapping_blas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blas, "find_openblas", lambda: trapping_blas)
    choice = blas_env(settings.cache_dir, enabled=True)
    assert choice.name == "reference" and choice.library == str(trapping_blas)
    assert "FUTURECPU" in choice.reason and "SIGILL" in choice.reason
    assert "LD_PRELOAD" not in choice.env
    env = subprocess_env(settings.cache_dir, enabled=True, base={})
    assert str(trapping_blas) not in env.get("LD_PRELOAD", "")
    # and MLX still computes in a child with that environment (its own BLAS)
    assert _run_child({**subprocess_env(settings.cache_dir, enabled=True)})["max_err"] < 1e-2


def test_the_check_is_cached_per_library_file_and_cpu(
    settings: Settings, trapping_blas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = blas._run_check

    def counting(lib: Path, env: dict[str, str], timeout: float) -> tuple[bool, str | None, str]:
        calls.append(lib)
        return real(lib, env, timeout)

    monkeypatch.setattr(blas, "_run_check", counting)
    env = {"LD_PRELOAD": str(trapping_blas)}
    first = check_openblas(trapping_blas, env, settings.cache_dir)
    assert not first.ok and first.core == "FUTURECPU" and len(calls) == 1
    assert BlasCheck.model_validate_json((settings.cache_dir / CHECK_FILE).read_text()) == first
    assert check_openblas(trapping_blas, env, settings.cache_dir) == first and len(calls) == 1
    # another CPU (or another build of the library) is checked again
    monkeypatch.setattr(blas, "_cpu_identity", lambda: "model name: another cpu")
    check_openblas(trapping_blas, env, settings.cache_dir)
    assert len(calls) == 2


def test_the_installed_openblas_passes_the_check(settings: Settings) -> None:
    lib = find_openblas()
    assert lib is not None
    env = blas_env(settings.cache_dir, enabled=True, check=False).env
    check = check_openblas(lib, env, settings.cache_dir)
    assert check.ok, check.detail
    assert check.core  # the kernel family it picked on this CPU, e.g. ZEN or HASWELL


def test_a_child_gets_the_threads_asked_for_unless_the_user_set_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tooltune.serving.blas import THREADS_ENV, subprocess_env

    monkeypatch.delenv(THREADS_ENV, raising=False)
    half = max(1, blas.usable_cores() // 2)
    assert subprocess_env(settings.cache_dir, enabled=True)["OPENBLAS_NUM_THREADS"] == str(half)
    assert subprocess_env(settings.cache_dir, enabled=True, threads=7)["OPENBLAS_NUM_THREADS"] == "7"
    monkeypatch.setenv(THREADS_ENV, "3")
    assert subprocess_env(settings.cache_dir, enabled=True, threads=7)["OPENBLAS_NUM_THREADS"] == "3"


def test_the_training_worker_gets_every_core(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training step is matmul-bound and usually runs alone: bench/results/train_speed.json measured 2
    OpenBLAS threads 1.4x faster than 1 on the 2-core CPU."""
    from tooltune.serving.blas import THREADS_ENV
    from tooltune.training import runs

    monkeypatch.delenv(THREADS_ENV, raising=False)
    seen: dict[str, str] = {}

    class Stop(Exception):
        pass

    real_popen = subprocess.Popen

    def fake_popen(cmd: list[str], *args: object, **kw: object) -> object:
        if "tooltune.training.worker" not in cmd:  # the BLAS check's own child runs for real
            return real_popen(cmd, *args, **kw)  # type: ignore[call-overload]
        seen.update(kw["env"])  # type: ignore[arg-type]
        raise Stop

    monkeypatch.setattr(runs.subprocess, "Popen", fake_popen)
    ws = Workspace(settings.workspace).ensure()
    run_dir = ws.runs / "r"
    run_dir.mkdir(parents=True)
    with pytest.raises(Stop):
        runs._spawn(settings, ws, JobStore(ws), run_dir, "job-x")
    assert seen.get("OPENBLAS_NUM_THREADS") == str(blas.usable_cores()), sorted(seen)


def test_the_model_server_gets_every_core(
    settings: Settings, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tooltune.serving.blas import THREADS_ENV
    from tooltune.serving.model_server import ModelServer

    monkeypatch.delenv(THREADS_ENV, raising=False)
    env = ModelServer(tiny_model, settings=settings)._env()
    assert env["OPENBLAS_NUM_THREADS"] == str(blas.usable_cores())
    monkeypatch.setenv(THREADS_ENV, "1")
    assert ModelServer(tiny_model, settings=settings)._env()["OPENBLAS_NUM_THREADS"] == "1"
