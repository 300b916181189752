"""A bare ``mlx_lm.server`` child for benchmarks and tests of the eval runner.

The product path is :class:`tooltune.serving.model_server.ModelServer` (adapter switching, probes,
restarts). Benchmarks want nothing between the runner and the server, and tests want to kill the
server on purpose, so this is the minimum: start with the OpenBLAS env, wait until a 1-token
completion succeeds (``/health`` answers before the model is loaded), stop with SIGTERM then kill.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tooltune.config import Settings
from tooltune.errors import TooltuneError
from tooltune.serving.blas import subprocess_env
from tooltune.subprocs import die_with_parent, exit_status, free_port


class MlxEndpoint:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, model_path: Path, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.model_path = model_path
        self.log_path = log_path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_name(self) -> str:
        return str(self.model_path)

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_ready(ep: MlxEndpoint, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    body = {"model": ep.model_name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    while time.monotonic() < deadline:
        if ep.proc.poll() is not None:
            tail = ep.log_path.read_text(errors="replace")[-2000:]
            raise TooltuneError(f"mlx_lm.server {exit_status(ep.proc.returncode)}; its output ends:\n{tail}")
        try:
            r = httpx.post(f"{ep.base_url}/chat/completions", json=body, timeout=120)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    ep.stop()
    raise TooltuneError(f"mlx_lm.server did not become ready within {timeout:.0f} s")


@contextlib.contextmanager
def mlx_endpoint(
    model_path: Path,
    settings: Settings,
    *,
    adapter_path: Path | None = None,
    log_path: Path | None = None,
    extra_args: list[str] | None = None,
    ready_timeout: float = 600.0,
) -> Iterator[MlxEndpoint]:
    """Start ``python -m mlx_lm.server`` on a free port and yield it once it answers completions."""
    port = free_port()
    env = subprocess_env(settings.cache_dir, enabled=settings.use_openblas)
    hf_home = settings.cache_dir / "hf"
    (hf_home / "hub").mkdir(parents=True, exist_ok=True)  # /v1/models crashes without $HF_HOME/hub
    env.setdefault("HF_HOME", str(hf_home))
    env["HF_HUB_OFFLINE"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "tooltune.serving.mlx_child",  # on tooltune's device, as ModelServer starts it
        "mlx_lm.server",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if adapter_path is not None:
        cmd += ["--adapter-path", str(adapter_path)]
    cmd += extra_args or []
    log_path = log_path or settings.cache_dir / f"mlx-server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_f:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log_f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),
        )
    ep = MlxEndpoint(proc, port, Path(model_path), log_path)
    try:
        _wait_ready(ep, ready_timeout)
        yield ep
    finally:
        ep.stop()
