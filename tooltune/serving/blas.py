"""Fast CPU path on Linux: preload OpenBLAS into MLX subprocesses.

The ``mlx-cpu`` wheel links a netlib *reference* BLAS (~5 GFLOPS for a float32 matmul). The
``cmeel-openblas`` wheel ships an OpenBLAS with standard symbol names; preloading it makes MLX's
float32 matmuls ~20x faster. That OpenBLAS needs ``libgfortran.so.5``, which many systems lack, but
``mlx-cpu`` bundles one under a hashed name: we expose it through a small shim folder of symlinks.

Only *subprocesses* we launch (model server, training worker, benchmarks) get the preload: the
running interpreter has already loaded its BLAS.

A wheel's OpenBLAS may be built for one CPU family only: cmeel-openblas 0.3.31's is SKYLAKEX (AVX-512)
and dies with SIGILL on an AVX2-only CPU, taking every MLX child with it. So before the first preload
on a machine, a short child process loads the library and runs an MLX matmul through it; a library that
fails that check is not preloaded (MLX keeps its slow but working BLAS) and the log says why. The
verdict is cached per library file and CPU.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import json
import os
import site
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, ValidationError

from tooltune.device import detect_device
from tooltune.logs import get_logger
from tooltune.subprocs import exit_status

log = get_logger(__name__)

DISABLE_ENV = "TOOLTUNE_OPENBLAS"
THREADS_ENV = "TOOLTUNE_BLAS_THREADS"


class BlasChoice(BaseModel):
    """Which BLAS an MLX subprocess will use, and the environment that makes it so."""

    name: str  # "openblas" | "reference" | "accelerate" | "cublas"
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


class BlasCheck(BaseModel):
    """Whether an OpenBLAS file runs on this CPU (the outcome of :func:`check_openblas`)."""

    library: str
    key: str  # the library file (path, size, mtime) and the CPU (model, flags) this verdict holds for
    ok: bool
    core: str | None = None  # the kernel family OpenBLAS picked ("ZEN", "HASWELL", "SKYLAKEX", ...)
    detail: str = ""


CHECK_FILE = "blas-check.json"
# Loads the library, names its kernels, and runs float32 matmuls through MLX with it preloaded.
_CHECK_CHILD = r"""
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_corename.restype = ctypes.c_char_p
print(json.dumps({"core": lib.openblas_get_corename().decode()}), flush=True)
import mlx.core as mx
for n in (64, 512):
    a = mx.random.normal((n, n))
    mx.eval(a @ a)
print(json.dumps({"ok": True}), flush=True)
"""


def _cpu_identity() -> str:
    """The CPU model and feature flags (what decides which kernels can run), from /proc/cpuinfo."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags")]
    return "\n".join(dict.fromkeys(keep))


def _check_key(lib: Path) -> str:
    st = lib.stat()
    ident = f"{lib}|{st.st_size}|{st.st_mtime_ns}|{_cpu_identity()}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _run_check(lib: Path, env: dict[str, str], timeout: float) -> tuple[bool, str | None, str]:
    """(runs, core name, what happened) for a child process with ``env`` (which preloads ``lib``)."""
    child_env = {**os.environ, **env}
    cmd = [sys.executable, "-c", _CHECK_CHILD, str(lib)]
    try:
        proc = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, None, f"the check did not finish in {timeout:.0f}s"
    core = None
    for line in proc.stdout.splitlines():
        try:
            core = json.loads(line).get("core", core)
        except (ValueError, AttributeError):
            continue
    if proc.returncode == 0 and '"ok": true' in proc.stdout:
        return True, core, "an MLX matmul ran with it preloaded"
    what = f"an MLX matmul with it preloaded {exit_status(proc.returncode)}"
    if proc.returncode < 0:
        return False, core, what
    tail = " ".join(proc.stderr.strip().splitlines()[-2:])[-300:]
    return False, core, f"{what}: {tail}"


def check_openblas(lib: Path, env: dict[str, str], cache_dir: Path, *, timeout: float = 120) -> BlasCheck:
    """Does ``lib`` run on this CPU? Asked of a child process once per library file and CPU, then read
    from ``cache_dir/blas-check.json``."""
    key = _check_key(lib)
    path = cache_dir / CHECK_FILE
    try:
        cached = BlasCheck.model_validate_json(path.read_text())
        if cached.key == key:
            return cached
    except (OSError, ValidationError, ValueError):
        pass
    ok, core, detail = _run_check(lib, env, timeout)
    check = BlasCheck(library=str(lib), key=key, ok=ok, core=core, detail=detail)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(check.model_dump_json(indent=2))
    os.replace(tmp, path)
    log.info("blas check", ok=ok, core=core, library=str(lib), detail=detail)
    return check


def blas_env(
    cache_dir: Path, *, enabled: bool | None = None, threads: int | None = None, check: bool = True
) -> BlasChoice:
    """Environment additions for an MLX subprocess so it uses the fastest BLAS available."""
    if sys.platform == "darwin":
        return BlasChoice(name="accelerate", reason="macOS: MLX uses Accelerate/Metal")
    device = detect_device()
    if device.kind == "cuda":  # matmuls run on the GPU (cuBLAS); a CPU BLAS would only add start-up work
        return BlasChoice(name="cublas", reason=f"MLX runs on the GPU: {device.reason}")
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
    preload = [p for p in os.environ.get("LD_PRELOAD", "").split() if p != str(lib)]
    env["LD_PRELOAD"] = " ".join([str(lib), *preload])  # once, also in a child of a preloaded process
    # Half the cores for children that may run beside others; the training worker and the model server
    # ask for every core (they usually run alone: bench/results/train_speed.json, eval_speed.json). With
    # every core given to OpenBLAS twice over, a loaded 2-core machine measured 2x slower matmuls.
    n = threads or int(os.environ.get(THREADS_ENV, "0") or 0) or max(1, usable_cores() // 2)
    env["OPENBLAS_NUM_THREADS"] = str(n)
    if check:
        verdict = check_openblas(lib, env, cache_dir)
        if not verdict.ok:
            core = f" ({verdict.core} kernels)" if verdict.core else ""
            return BlasChoice(
                name="reference",
                reason=f"cmeel-openblas{core} does not run on this CPU: {verdict.detail}; "
                "MLX keeps its own (slow) BLAS",
                library=str(lib),
            )
    return BlasChoice(name="openblas", reason="preloaded from cmeel-openblas", library=str(lib), env=env)


def usable_cores() -> int:
    """The cores this process may run on (CPU affinity, e.g. taskset or a container's cpuset), not
    every core the machine has."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS)
        return os.cpu_count() or 1


def subprocess_env(
    cache_dir: Path,
    *,
    enabled: bool | None = None,
    base: dict[str, str] | None = None,
    threads: int | None = None,
) -> dict[str, str]:
    """A full environment for an MLX child process, logging which BLAS it gets (``threads``: OpenBLAS
    threads when TOOLTUNE_BLAS_THREADS does not say; default half the cores)."""
    if threads is not None and os.environ.get(THREADS_ENV):
        threads = None  # the user's setting wins
    choice = blas_env(cache_dir, enabled=enabled, threads=threads)
    rejected = choice.name == "reference" and choice.library is not None
    (log.warning if rejected else log.info)(
        "blas", blas=choice.name, reason=choice.reason, library=choice.library
    )
    env = dict(os.environ if base is None else base)
    env.update(choice.env)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env
