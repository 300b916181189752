"""Fast CPU path on Linux: preload OpenBLAS into MLX subprocesses.

The ``mlx-cpu`` wheel links a netlib *reference* BLAS (~5 GFLOPS for a float32 matmul). The
``cmeel-openblas`` wheel ships an OpenBLAS with standard symbol names; preloading it makes MLX's
float32 matmuls ~20x faster. That OpenBLAS needs ``libgfortran.so.5``, which many systems lack, but
``mlx-cpu`` bundles one under a hashed name: we expose it through a small shim folder of symlinks.

Only *subprocesses* we launch (model server, training worker, benchmarks) get the preload: the
running interpreter has already loaded its BLAS.
"""

from __future__ import annotations

import ctypes.util
import os
import site
import sys
from pathlib import Path

from pydantic import BaseModel

from tooltune.logs import get_logger

log = get_logger(__name__)

DISABLE_ENV = "TOOLTUNE_OPENBLAS"
THREADS_ENV = "TOOLTUNE_BLAS_THREADS"


class BlasChoice(BaseModel):
    """Which BLAS an MLX subprocess will use, and the environment that makes it so."""

    name: str  # "openblas" | "reference" | "accelerate"
    reason: str
    library: str | None = None
    env: dict[str, str] = {}


def _site_dirs() -> list[Path]:
    dirs = [Path(p) for p in site.getsitepackages()]
    user = site.getusersitepackages()
    if isinstance(user, str):
        dirs.append(Path(user))
    dirs += [Path(p) for p in sys.path if p.endswith("site-packages")]
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def find_openblas() -> Path | None:
    for d in _site_dirs():
        lib = d / "cmeel.prefix" / "lib" / "libopenblas.so.0"
        if lib.exists():
            return lib.resolve()
    return None


def _find_bundled(prefix: str) -> Path | None:
    for d in _site_dirs():
        libs = d / "mlx_cpu.libs"
        if libs.is_dir():
            for f in sorted(libs.iterdir()):
                if f.name.startswith(prefix):
                    return f.resolve()
    return None


def _gfortran_shim(cache_dir: Path) -> Path | None:
    """A folder where ``libgfortran.so.5`` resolves, or None if the system already has one."""
    if ctypes.util.find_library("gfortran"):
        return None
    bundled = _find_bundled("libgfortran-")
    if bundled is None:
        return None
    shim = cache_dir / "blas-shim"
    shim.mkdir(parents=True, exist_ok=True)
    link = shim / "libgfortran.so.5"
    if not (link.is_symlink() and link.resolve() == bundled):
        tmp = shim / f".libgfortran.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(bundled)
        os.replace(tmp, link)
    return shim


def blas_env(cache_dir: Path, *, enabled: bool | None = None, threads: int | None = None) -> BlasChoice:
    """Environment additions for an MLX subprocess so it uses the fastest BLAS available."""
    if sys.platform == "darwin":
        return BlasChoice(name="accelerate", reason="macOS: MLX uses Accelerate/Metal")
    if enabled is None:
        enabled = os.environ.get(DISABLE_ENV, "1").lower() not in ("0", "false", "no", "off")
    if not enabled:
        return BlasChoice(name="reference", reason=f"disabled ({DISABLE_ENV}=0 or --no-openblas)")
    lib = find_openblas()
    if lib is None:
        return BlasChoice(name="reference", reason="cmeel-openblas is not installed")
    env: dict[str, str] = {}
    shim = _gfortran_shim(cache_dir)
    bundled = _find_bundled("libgfortran-")
    # the shim's symlink target needs its bundled siblings (libquadmath) on the search path too
    lib_paths = [str(p) for p in (shim, bundled.parent if shim and bundled else None) if p]
    if lib_paths:
        existing = os.environ.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(lib_paths + ([existing] if existing else []))
    preload = os.environ.get("LD_PRELOAD")
    env["LD_PRELOAD"] = f"{lib} {preload}" if preload else str(lib)
    # Half the cores: MLX and the other tooltune process (server vs. worker) need the rest; with every
    # core given to OpenBLAS a loaded 2-core machine measured 2x slower matmuls (bench/results/blas.json).
    n = threads or int(os.environ.get(THREADS_ENV, "0") or 0) or max(1, (os.cpu_count() or 2) // 2)
    env["OPENBLAS_NUM_THREADS"] = str(n)
    return BlasChoice(name="openblas", reason="preloaded from cmeel-openblas", library=str(lib), env=env)


def subprocess_env(
    cache_dir: Path, *, enabled: bool | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """A full environment for an MLX child process, logging which BLAS it gets."""
    choice = blas_env(cache_dir, enabled=enabled)
    log.info("blas", blas=choice.name, reason=choice.reason, library=choice.library)
    env = dict(os.environ if base is None else base)
    env.update(choice.env)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env
