"""Own one ``mlx_lm.server`` child: start it, prove what it serves, switch adapters, survive crashes.

Why a wrapper and not just ``subprocess``: the server's ``/health`` answers before the model is
loaded; it silently ignores a per-request adapter when the request names its default model; a pipe
nobody reads eventually blocks it; and when it dies mid-eval the eval should not die with it. So:

* ready means a 1-token chat completion succeeded;
* every request names the model path explicitly and carries the adapter path in the body
  (:attr:`ModelServer.model_name`, :attr:`ModelServer.extra_body`), which makes the server's model key
  the same whether the adapter came from ``--adapter-path`` or from the request;
* after every start and switch a behavioural probe (:mod:`tooltune.adapters.fingerprint`) must match
  the adapter's recorded answer — a mismatch raises :class:`ServedModelMismatchError`, never a silent
  fallback to the base model;
* the child's output is drained by a thread into our log (last lines kept for error messages);
* a dead child is restarted (bounded), and :meth:`ModelServer.chat` retries once after a restart.

Two switch strategies, both kept because the bench (``bench/switch.py``) decides the default:
``restart`` starts a new child with ``--adapter-path`` (next to the old one when memory allows, so the
old one keeps serving until the new one is verified); ``per_request`` keeps the child and changes the
``adapters`` field of every request (the server reloads model+adapter on the first such request).
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import httpx
from pydantic import BaseModel

from tooltune.adapters.active import ActiveSelection, read_active, write_active
from tooltune.adapters.fingerprint import (
    AdapterProbe,
    BaseProbe,
    ProbeSignature,
    ProbeSpec,
    compute_adapter_probe,
    compute_base_probe,
    exact_logprobs,
    greedy_answer_tells,
    probe_request_body,
    signature_distance,
    signature_from_response,
    tolerances,
    weights_dtype,
)
from tooltune.adapters.registry import AdapterRecord, AdapterRegistry
from tooltune.config import Settings
from tooltune.errors import ModelNotFoundError, TooltuneError
from tooltune.logs import get_logger
from tooltune.models.resolve import fingerprint_model, is_mlx_model_dir, resolve_model
from tooltune.serving.blas import subprocess_env, usable_cores
from tooltune.serving.server_flags import default_server_args
from tooltune.subprocs import die_with_parent, exit_status, free_port, port_is_free
from tooltune.workspace import Workspace, atomic_write_json

log = get_logger(__name__)
CONNECTION_RETRIES = 3  # a request a live server dropped unanswered is sent again (after 0.5, 1, 2 s)
_NO_ANSWER = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)

Strategy = Literal["restart", "per_request"]
# Chosen by bench/switch.py (bench/results/switch.json, medians incl. verification, shared 2-core CPU):
# qwen2.5-coder-0.5b f32 per_request 9.6 s vs restart 14.8 s; tiny model 0.24 s vs 2.2 s. Per-request
# skips a new interpreter, the mlx/transformers imports and a second copy of the weights in memory,
# and keeps base_url stable (a restart-strategy switch moves the server to a new port).
DEFAULT_STRATEGY: Strategy = "per_request"
TAIL_LINES = 50


class ModelServerError(TooltuneError):
    pass


class ModelServerCrashedError(ModelServerError):
    pass


class ServedModelMismatchError(ModelServerError):
    pass


class ServerBusyError(ModelServerError):
    pass


class InsufficientMemoryError(ModelServerError):
    pass


class ModelServerHTTPError(ModelServerError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServedState(BaseModel):
    """What the server is serving, and whether the probe proved it."""

    model_path: Path
    model_fingerprint: str
    adapter: str | None = None
    adapter_path: Path | None = None
    adapter_fingerprint: str | None = None
    strategy: Strategy
    port: int
    pid: int | None = None
    verified: bool = False
    distinguishable: bool | None = None
    probe_output: str = ""
    probe_distance: float | None = None
    # half precision: the expected answer token for token, its log-probs past the tolerance
    matched_by_tokens: bool = False
    checked_at: datetime | None = None


# ---------------------------------------------------------------------------------------------- child


class _Child:
    """One ``mlx_lm.server`` process and the thread that drains its output."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.stopping = False
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
        self._log = log.bind(port=port, pid=self.proc.pid)
        self._drain = threading.Thread(target=self._read, name=f"mlx-server-{port}", daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.tail.append(line)
            self._log.debug("mlx_server_output", line=line)
        self.proc.stdout.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def last_output(self, n: int = 15) -> str:
        if not self.alive:  # let the drain thread read what the process wrote before it died
            self._drain.join(timeout=0.5)
        lines = list(self.tail)[-n:]
        return "\n".join(lines) if lines else "(no output)"

    def stop(self, grace: float) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        self.stopping = True
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._log.warning("mlx_server_kill", reason=f"no exit {grace}s after SIGTERM")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=10)
        self._drain.join(timeout=2)
        return self.proc.returncode


# ---------------------------------------------------------------------------------------------- memory


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # macOS / BSD: no MemAvailable; half the physical memory is a cautious guess
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2
    except (ValueError, OSError, AttributeError):
        return None


def estimate_child_bytes(model_path: Path, adapter_path: Path | None = None) -> int:
    """Weights on disk x1.25 (activations, KV cache, load transients) + ~400 MB interpreter and libs."""
    weights = sum(f.stat().st_size for f in Path(model_path).glob("*.safetensors"))
    if adapter_path is not None and (Path(adapter_path) / "adapters.safetensors").exists():
        weights += (Path(adapter_path) / "adapters.safetensors").stat().st_size
    return int(weights * 1.25) + 400 * 1024 * 1024


def fits_in_memory(n_children: int, model_path: Path, adapter_path: Path | None = None) -> bool:
    avail = available_memory_bytes()
    return avail is not None and avail > n_children * estimate_child_bytes(model_path, adapter_path)


# ---------------------------------------------------------------------------------------------- server


class _Target(BaseModel):
    name: str | None
    path: Path | None = None
    record: AdapterRecord | None = None


class ModelServer:
    """An ``mlx_lm.server`` child serving one model and (optionally) one registered adapter.

    Use as ``async with ModelServer(path, settings=s, adapter="x") as server:`` (adds a watchdog that
    restarts a dead child), or call :meth:`start` / :meth:`stop` yourself.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        settings: Settings,
        adapter: str | None = None,
        port: int | None = None,
        strategy: Strategy = DEFAULT_STRATEGY,
        ready_timeout: float = 600.0,
        request_timeout: float = 900.0,
        stop_grace: float = 10.0,
        max_restarts: int = 3,
        restart_window: float = 300.0,
        record_active: bool = True,
        extra_args: list[str] | None = None,
    ) -> None:
        model_path = Path(model_path).expanduser()
        if not is_mlx_model_dir(model_path):
            raise ModelNotFoundError(
                f"model folder {model_path} does not exist or is not an MLX model (needs config.json and "
                "*.safetensors); resolve the model first (`tooltune models list`)"
            )
        if strategy not in ("restart", "per_request"):
            raise ModelServerError(f"unknown switch strategy {strategy!r}; use 'restart' or 'per_request'")
        self.model_path = model_path.resolve()
        self.settings = settings
        self.strategy: Strategy = strategy
        self.ready_timeout = ready_timeout
        self.request_timeout = request_timeout
        self.stop_grace = stop_grace
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.record_active = record_active
        self.extra_args = list(extra_args or [])
        self.model_fingerprint = fingerprint_model(self.model_path)
        self._weights_dtype = weights_dtype(self.model_path)  # sets how closely probe answers must match
        self.ws = Workspace(settings.workspace).ensure()
        self.registry = AdapterRegistry(self.ws)
        self._requested_port = port
        self._initial_adapter = adapter
        self._target = _Target(name=None)
        self._child: _Child | None = None
        self._served: ServedState | None = None
        self._restarts: collections.deque[float] = collections.deque()
        self._fatal: ModelServerError | None = None
        self._closed = True
        self._lock: anyio.Lock | None = None
        self._cond: anyio.Condition | None = None
        self._pins = 0
        self._switching = False
        self._tg: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------------ public surface
    @property
    def port(self) -> int:
        if self._child is None:
            raise ModelServerError("the model server is not running; call start() first")
        return self._child.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_name(self) -> str:
        """Always the model *path*: the server applies a request's ``adapters`` only for a named model."""
        return str(self.model_path)

    @property
    def extra_body(self) -> dict[str, Any]:
        """Merge into every chat request; names the served adapter so the server can't fall back to base."""
        return {"adapters": str(self._target.path)} if self._target.path is not None else {}

    @property
    def served(self) -> ServedState:
        if self._served is None:
            raise ModelServerError("the model server is not running; call start() first")
        return self._served

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    @property
    def restart_count(self) -> int:
        return len(self._restarts)

    def last_output(self, n: int = 15) -> str:
        return self._child.last_output(n) if self._child else "(not started)"

    async def __aenter__(self) -> ModelServer:
        await self.start()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._watchdog)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
                self._tg = None
        finally:
            await self.stop()

    async def start(self) -> ServedState:
        """Start the child (with the initial adapter), wait until a completion works, verify it."""
        self._lock = self._lock or anyio.Lock()
        self._cond = self._cond or anyio.Condition()
        async with self._lock:
            if self._child is not None and self._child.alive:
                return self.served
            self._fatal = None
            self._restarts.clear()
            target = self._resolve(self._initial_adapter)
            expected = await self._expectation(target)
            port = self._requested_port or free_port()
            if self._requested_port and not port_is_free(port):
                raise ModelServerError(
                    f"port {port} on 127.0.0.1 is already in use; "
                    "pass another port or none to pick a free one"
                )
            self._closed = False
            child = self._spawn(target, port)
            try:
                await self._wait_ready(child, target)
                state = await self._verify_with(child, target, expected)
            except BaseException:
                await anyio.to_thread.run_sync(child.stop, self.stop_grace)
                self._closed = True
                raise
            self._child, self._target, self._served = child, target, state
            self._commit(target, expected)
            return state

    async def stop(self) -> None:
        """SIGTERM the child, SIGKILL after the grace period. Safe to call twice."""
        self._closed = True
        child, self._child = self._child, None
        if child is not None:
            code = await anyio.to_thread.run_sync(child.stop, self.stop_grace)
            log.info("mlx_server_stopped", port=child.port, pid=child.pid, returncode=code)
        self._served = None

    async def verify(self) -> ServedState:
        """Re-run the probe against the running child; raises ServedModelMismatchError on mismatch."""
        await self._ensure_running()
        assert self._lock is not None
        async with self._lock:
            child = self._require_child()
            expected = await self._expectation(self._target)
            self._served = await self._verify_with(child, self._target, expected)
            return self._served

    async def switch_adapter(
        self, name: str | None, *, wait: bool = True, timeout: float | None = None, record: bool = True
    ) -> ServedState:
        """Serve adapter ``name`` (None = baseline). The old one keeps serving until the new one is verified.

        Waits for :meth:`pinned` holders (an eval in progress) unless ``wait=False``, which raises
        :class:`ServerBusyError` instead. Nothing on disk changes unless the switch is verified.
        ``record=False`` leaves ``active.json`` alone: a temporary switch (an eval of each target in
        turn) must not change what the next ``serve``/``ask`` picks up.
        """
        await self._ensure_running()
        async with self._exclusive(wait=wait, timeout=timeout):
            assert self._lock is not None
            async with self._lock:
                target = self._resolve(name)
                if name == self._target.name and self._served is not None and self._served.verified:
                    if (
                        target.record is None
                        or target.record.adapter_fingerprint == self._served.adapter_fingerprint
                    ):
                        # already served (maybe by a temporary switch): a recorded switch still records it
                        if record:
                            self._record_active(target)
                        return self._served
                expected = await self._expectation(target)
                t0 = time.perf_counter()
                if self.strategy == "per_request":
                    state = await self._switch_per_request(target, expected)
                else:
                    state = await self._switch_restart(target, expected)
                self._commit(target, expected, record=record)
                log.info(
                    "adapter_switched",
                    adapter=name,
                    strategy=self.strategy,
                    seconds=round(time.perf_counter() - t0, 2),
                )
                return state

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[ServedState]:
        """Hold the current adapter: switches wait until every pin is released (evals hold one)."""
        if self._cond is None:
            raise ModelServerError("the model server is not running; call start() first")
        async with self._cond:
            while self._switching:
                await self._cond.wait()
            self._pins += 1
        try:
            yield self.served
        finally:
            async with self._cond:
                self._pins -= 1
                self._cond.notify_all()

    async def chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> dict[str, Any]:
        """One ``/v1/chat/completions`` call with the right model and adapter fields.

        If the child dies mid-request it is restarted and the request retried once; a second failure
        raises :class:`ModelServerCrashedError` with the child's last output lines. A connection a
        live child dropped without an answer is retried up to ``CONNECTION_RETRIES`` times.
        """
        body: dict[str, Any] = {"messages": messages, **params}
        if tools:
            body["tools"] = tools
        for attempt in (1, 2):
            await self._ensure_running()
            child = self._require_child()
            for reset in range(CONNECTION_RETRIES + 1):
                try:
                    return await self._post(child, {**body, "model": self.model_name, **self.extra_body})
                except httpx.TransportError as e:
                    await anyio.sleep(0.2)  # let the exit status land before deciding it died
                    if child.alive and isinstance(e, _NO_ANSWER) and reset < CONNECTION_RETRIES:
                        # a live server that reset the connection: mlx_lm.server listens with a
                        # backlog of 5 and drops connections of a burst beyond it (32 at once did)
                        log.warning("mlx_server_connection_reset", retry=reset + 1, error=type(e).__name__)
                        await anyio.sleep(0.5 * 2**reset * random.uniform(0.5, 1.5))  # not all at once
                        continue
                    if child.alive or attempt == 2:
                        error = ModelServerError if child.alive else ModelServerCrashedError
                        raise error(
                            f"request to the model server failed ({type(e).__name__}: {e}); "
                            f"last server output:\n{child.last_output()}"
                        ) from e
                    log.warning("mlx_server_died_mid_request", pid=child.pid, code=child.proc.returncode)
                    break
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ classmethods
    @classmethod
    def from_active(cls, settings: Settings, **kwargs: Any) -> ModelServer:
        """A server for what the workspace last served (``active.json``), or the default model."""

        active = read_active(Workspace(settings.workspace))
        ref = active.model if active else settings.default_model
        path = resolve_model(ref, settings, download=False).path
        adapter = active.adapter if active else None
        return cls(path, settings=settings, adapter=adapter, **kwargs)

    # ------------------------------------------------------------------ internals: process
    def _env(self) -> dict[str, str]:
        # every core, as for the training worker: a server usually runs alone, and on the 2-core CPU 2
        # OpenBLAS threads answered BFCL cases 1.4-1.6x faster than 1 with the same answers
        # (bench/results/eval_speed.json); TOOLTUNE_BLAS_THREADS still decides when set
        env = subprocess_env(
            self.settings.cache_dir, enabled=self.settings.use_openblas, threads=usable_cores()
        )
        hf_home = Path(env["HF_HOME"]) if env.get("HF_HOME") else None
        if hf_home is None or not (hf_home / "hub").is_dir():
            hf_home = self.settings.cache_dir / "hf"
            (hf_home / "hub").mkdir(parents=True, exist_ok=True)  # /v1/models crashes without $HF_HOME/hub
        env["HF_HOME"] = str(hf_home)
        env["HF_HUB_OFFLINE"] = "1"  # the model is always a local folder here
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, target: _Target, port: int) -> _Child:
        cmd = [
            sys.executable, "-m", "tooltune.serving.mlx_child", "mlx_lm.server",  # on tooltune's device
            "--model", str(self.model_path),
            "--host", "127.0.0.1", "--port", str(port),
            *default_server_args(), *self.extra_args,  # a flag in extra_args wins (argparse: the last one)
        ]  # fmt: skip
        if target.path is not None:
            cmd += ["--adapter-path", str(target.path)]
        child = _Child(cmd, self._env(), port)
        log.info(
            "mlx_server_started", port=port, pid=child.pid, model=str(self.model_path), adapter=target.name
        )
        return child

    def _require_child(self) -> _Child:
        if self._fatal is not None:
            raise self._fatal
        if self._child is None:
            raise ModelServerError("the model server is not running; call start() first")
        return self._child

    async def _post(
        self, child: _Child, body: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        url = f"http://127.0.0.1:{child.port}/v1/chat/completions"
        t = timeout or self.request_timeout
        async with httpx.AsyncClient(timeout=httpx.Timeout(t, connect=5.0)) as client:
            r = await client.post(url, json=body)
        if r.status_code != 200:
            raise ModelServerHTTPError(
                r.status_code, f"model server answered HTTP {r.status_code}: {r.text[:400]}"
            )
        return r.json()

    async def _wait_ready(self, child: _Child, target: _Target) -> None:
        """Ready = a 1-token completion succeeds (``/health`` says ok before the model is loaded)."""
        deadline = time.monotonic() + self.ready_timeout
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 1,
            "temperature": 0.0,
        }
        if target.path is not None:
            body["adapters"] = str(target.path)
        while True:
            if not child.alive:
                raise ModelServerCrashedError(
                    f"the model server {exit_status(child.proc.returncode)} while starting; "
                    f"its last output:\n{child.last_output()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModelServerError(
                    f"the model server did not answer a completion within {self.ready_timeout:.0f}s; "
                    f"its last output:\n{child.last_output()}"
                )
            try:
                await self._post(child, body, timeout=remaining)
                return
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                await anyio.sleep(0.2)
            except httpx.TimeoutException:
                continue
            except ModelServerHTTPError as e:
                if e.status in (400, 404):  # the server's answer when loading the model or adapter failed
                    raise ModelServerError(
                        f"the model server could not load {target.name or 'the model'}; check its files: {e}"
                    ) from e
                await anyio.sleep(0.2)

    async def _ensure_running(self) -> None:
        """Restart a dead child (bounded by max_restarts per restart_window); no-op if it is alive."""
        if self._fatal is not None:
            raise self._fatal
        if self._closed or self._lock is None:
            raise ModelServerError("the model server is not running; call start() first")
        if self._child is not None and self._child.alive:
            return
        async with self._lock:
            child = self._child
            if self._closed or child is None or child.alive:
                return
            now = time.monotonic()
            while self._restarts and now - self._restarts[0] > self.restart_window:
                self._restarts.popleft()
            if len(self._restarts) >= self.max_restarts:
                self._fatal = ModelServerCrashedError(
                    f"the model server died {len(self._restarts) + 1} times "
                    f"within {self.restart_window:.0f}s; "
                    f"giving up (it {exit_status(child.proc.returncode)}). "
                    f"Its last output:\n{child.last_output()}"
                )
                raise self._fatal
            self._restarts.append(now)
            log.warning(
                "mlx_server_restart",
                code=child.proc.returncode,
                attempt=len(self._restarts),
                tail=child.last_output(5),
            )
            new = self._spawn(self._target, child.port if port_is_free(child.port) else free_port())
            try:
                await self._wait_ready(new, self._target)
                expected = await self._expectation(self._target)
                self._served = await self._verify_with(new, self._target, expected)
            except BaseException:
                await anyio.to_thread.run_sync(new.stop, self.stop_grace)
                raise
            self._child = new

    async def _watchdog(self) -> None:
        while True:
            await anyio.sleep(1.0)
            child = self._child
            if self._closed or child is None or child.alive or child.stopping:
                continue
            if self._lock is not None and self._lock.locked():
                continue
            try:
                await self._ensure_running()
            except TooltuneError as e:
                log.error("mlx_server_unrecoverable", error=str(e))

    @contextlib.asynccontextmanager
    async def _exclusive(self, *, wait: bool, timeout: float | None) -> AsyncIterator[None]:
        assert self._cond is not None
        async with self._cond:
            if (self._pins or self._switching) and not wait:
                raise ServerBusyError(
                    "the served adapter is pinned by a running eval; "
                    "wait for it to finish or cancel it, then switch"
                )
            with anyio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                while self._pins or self._switching:
                    await self._cond.wait()
            self._switching = True
        try:
            yield
        finally:
            async with self._cond:
                self._switching = False
                self._cond.notify_all()

    # ------------------------------------------------------------------ internals: adapters and probes
    def _resolve(self, name: str | None) -> _Target:
        if name is None:
            return _Target(name=None)
        record = self.registry.check_base(name, self.model_fingerprint, f"the served model {self.model_path}")
        return _Target(name=name, path=self.registry.path(name).resolve(), record=record)

    async def _expectation(self, target: _Target) -> AdapterProbe | BaseProbe:
        if target.record is not None:
            probe = target.record.probe
            if probe is not None and probe.base_model_fingerprint == self.model_fingerprint:
                return probe
            assert target.path is not None
            log.info("probe_compute", adapter=target.name, reason="first use on this base model")
            return await anyio.to_thread.run_sync(
                lambda: compute_adapter_probe(
                    self.model_path,
                    target.path,
                    base_model_fingerprint=self.model_fingerprint,
                    env=self._env(),
                )
            )
        # baseline: the last adapter's probe if it separates base from adapter (the stronger check)
        if self._target.record is not None and self._target.record.probe is not None:
            last = self._target.record.probe
            if self._distinguishes(last) and last.base_model_fingerprint == self.model_fingerprint:
                return last
        cache = self.settings.cache_dir / "probes" / f"{self.model_fingerprint}.json"
        if cache.is_file():
            with contextlib.suppress(ValueError):
                return BaseProbe.model_validate_json(cache.read_text("utf-8"))
        log.info("probe_compute", adapter=None, reason="first use of this base model")
        base = await anyio.to_thread.run_sync(
            lambda: compute_base_probe(
                self.model_path, base_model_fingerprint=self.model_fingerprint, env=self._env()
            )
        )
        atomic_write_json(cache, base)
        return base

    async def _probe(self, child: _Child, target: _Target, spec: ProbeSpec) -> ProbeSignature:
        body = {**probe_request_body(spec), "model": self.model_name}
        if target.path is not None:
            body["adapters"] = str(target.path)
        return signature_from_response(await self._post(child, body))

    def _distinguishes(self, probe: AdapterProbe) -> bool:
        """Whether the probe tells base and adapter apart by more than this model's dtype lets noise move
        an answer: a probe recorded under a stricter threshold (before half precision had its own) is
        judged again, not trusted."""
        return probe.distinguishes and probe.distance >= tolerances(self._weights_dtype)[1]

    async def _verify_with(
        self, child: _Child, target: _Target, expected: AdapterProbe | BaseProbe
    ) -> ServedState:
        served = await self._probe(child, target, expected.probe)
        want: ProbeSignature
        other: ProbeSignature | None = None
        distinguishes: bool | None = None
        if isinstance(expected, AdapterProbe):
            distinguishes = self._distinguishes(expected)
            if target.name is not None:
                want, other = expected.adapter, expected.base
            else:
                want, other = expected.base, expected.adapter
            if not distinguishes:
                other = None
        else:
            want = expected.base
        tolerance, apart = tolerances(self._weights_dtype)
        d_want = signature_distance(served, want)
        d_other = signature_distance(served, other) if other is not None else math.inf
        what = f"adapter {target.name!r}" if target.name else "the base model (no adapter)"
        matched = d_want <= tolerance and d_other > d_want
        # half precision: the expected answer token for token, where the other answer differs, is the
        # expected weights even past the log-prob tolerance -- up to the distance that would tell two
        # answers apart (beyond it, other weights that write the same tokens, such as another adapter)
        by_tokens = (
            not matched
            and not exact_logprobs(self._weights_dtype)
            and d_want < apart
            and d_other > tolerance
            and greedy_answer_tells(served, want, other)
        )
        if by_tokens:
            log.warning(
                "probe_matched_by_tokens", served=what, distance=d_want, tolerance=tolerance,
                dtype=self._weights_dtype,
                hint="the answer is the expected one token for token; its log-probs moved past the tolerance",
            )  # fmt: skip
            matched = True
        if not matched:
            resembles = (
                ("the base model" if target.name else "the previous adapter")
                if d_other <= tolerance
                else "neither the base model nor the adapter"
            )
            same = next(
                (i for i, (a, b) in enumerate(zip(served.tokens, want.tokens, strict=False)) if a != b),
                min(len(served.tokens), len(want.tokens)),
            )
            raise ServedModelMismatchError(
                f"the model server should serve {what} but its probe answer "
                f"{served.text!r} resembles {resembles} "
                f"(distance {d_want:.3g} to the expected answer, {d_other:.3g} to the other, tolerance "
                f"{tolerance:g} for {self._weights_dtype} weights; its first {same} of {len(want.tokens)} "
                "greedy tokens are the expected ones); the switch was not applied — check the adapter files "
                "and the server log"
            )
        if distinguishes is False and target.name is not None:
            log.warning(
                "probe_not_distinguishing", adapter=target.name,
                hint="the adapter barely changes the probe answers; serving is verified only loosely",
            )  # fmt: skip
        record = target.record
        return ServedState(
            model_path=self.model_path,
            model_fingerprint=self.model_fingerprint,
            adapter=target.name,
            adapter_path=target.path,
            adapter_fingerprint=record.adapter_fingerprint if record else None,
            strategy=self.strategy,
            port=child.port,
            pid=child.pid,
            verified=True,
            distinguishable=distinguishes,
            probe_output=served.text,
            probe_distance=d_want,
            matched_by_tokens=by_tokens,
            checked_at=datetime.now(UTC),
        )

    async def _switch_per_request(self, target: _Target, expected: AdapterProbe | BaseProbe) -> ServedState:
        child = self._require_child()
        try:
            await self._wait_ready(child, target)  # the first request with the new key reloads the model
            try:
                state = await self._verify_with(child, target, expected)
                stale = state.matched_by_tokens and target.path is not None  # maybe old files, same tokens
            except ServedModelMismatchError:
                if target.path is None:
                    raise
                stale = True
            if stale:
                # Same adapter path, new files (overwrite=True): the server caches the loaded model by
                # path, so force a reload by loading the base first, then probe once more. A match by
                # tokens alone cannot tell the files apart, so it is probed again after a reload too.
                await self._wait_ready(child, _Target(name=None))
                await self._wait_ready(child, target)
                state = await self._verify_with(child, target, expected)
        except BaseException:
            if child.alive:  # the old adapter is reloaded by the next request that names it
                log.warning("adapter_switch_failed", adapter=target.name, keeping=self._target.name)
            raise
        self._served = state
        return state

    async def _switch_restart(self, target: _Target, expected: AdapterProbe | BaseProbe) -> ServedState:
        old = self._require_child()
        if fits_in_memory(1, self.model_path, target.path):
            # side by side: the old child serves until the new one is verified
            new = self._spawn(target, free_port())
            try:
                await self._wait_ready(new, target)
                state = await self._verify_with(new, target, expected)
            except BaseException:
                await anyio.to_thread.run_sync(new.stop, self.stop_grace)
                raise
            self._child, self._served = new, state
            await anyio.to_thread.run_sync(old.stop, self.stop_grace)
            return state
        # not enough memory for two: replace in place, roll back to the old adapter on failure
        port = old.port
        await anyio.to_thread.run_sync(old.stop, self.stop_grace)
        new = self._spawn(target, port)
        try:
            await self._wait_ready(new, target)
            state = await self._verify_with(new, target, expected)
        except BaseException:
            await anyio.to_thread.run_sync(new.stop, self.stop_grace)
            back = self._spawn(self._target, port)
            self._child = back
            with anyio.CancelScope(shield=True):
                await self._wait_ready(back, self._target)
            raise
        self._child, self._served = new, state
        return state

    def _commit(self, target: _Target, expected: AdapterProbe | BaseProbe, *, record: bool = True) -> None:
        """After verification only: remember the probe and the active selection."""
        if (
            target.record is not None
            and isinstance(expected, AdapterProbe)
            and target.record.probe != expected
        ):
            assert target.name is not None
            target.record = self.registry.set_probe(target.name, expected)
        self._target = target
        self._initial_adapter = target.name  # a later stop() + start() serves the same adapter
        if record:
            self._record_active(target)

    def _record_active(self, target: _Target) -> None:
        """Write ``active.json``: what the next ``serve``/``ask`` picks up."""
        if self.record_active:
            write_active(
                self.ws,
                ActiveSelection(
                    model=str(self.model_path),
                    model_fingerprint=self.model_fingerprint,
                    adapter=target.name,
                    adapter_fingerprint=target.record.adapter_fingerprint if target.record else None,
                ),
            )


# ---------------------------------------------------------------------------------------------- A/B


class ModelServerPair:
    """Baseline and adapter served side by side (two children), so evals can compare without switching."""

    def __init__(
        self, model_path: Path, *, settings: Settings, adapter: str, check_memory: bool = True, **kwargs: Any
    ) -> None:
        self.model_path = Path(model_path)
        self.check_memory = check_memory
        kwargs.setdefault("record_active", False)
        self.baseline = ModelServer(model_path, settings=settings, adapter=None, **kwargs)
        self.adapter = ModelServer(model_path, settings=settings, adapter=adapter, **kwargs)

    @staticmethod
    def fits(model_path: Path, adapter_path: Path | None = None) -> bool:
        return fits_in_memory(2, Path(model_path), adapter_path)

    async def __aenter__(self) -> ModelServerPair:
        if self.check_memory and not self.fits(self.model_path):
            need = 2 * estimate_child_bytes(self.model_path) / 2**30
            have = (available_memory_bytes() or 0) / 2**30
            raise InsufficientMemoryError(
                f"serving baseline and adapter side by side needs ~{need:.1f} GB "
                f"but {have:.1f} GB is available; "
                "run the comparison with one server and switch_adapter instead"
            )
        await self.baseline.__aenter__()
        try:
            await self.adapter.__aenter__()
        except BaseException:
            await self.baseline.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.adapter.__aexit__(None, None, None)
        finally:
            await self.baseline.__aexit__(None, None, None)
