"""What one MCP server process holds between requests: settings, the job store, the model server and
the eval jobs it runs itself.

Everything a client must find again after reconnecting lives on disk (jobs, runs, adapters, reports);
this object only owns the live things: the ``mlx_lm.server`` child (started on first need, stopped with
the server) and the eval tasks. Evals run here as background tasks because the eval room ships no worker
process; each writes its progress and result through :class:`~tooltune.jobs.JobStore` like a training
worker does, with this process's pid, so a restarted server sees a dead pid and marks the job failed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from tooltune.adapters.active import read_active
from tooltune.adapters.registry import AdapterRegistry
from tooltune.config import Settings
from tooltune.errors import TooltuneError
from tooltune.jobs import JobRecord, JobStore
from tooltune.logs import get_logger
from tooltune.models.resolve import resolve_model
from tooltune.serving.model_server import ModelServer
from tooltune.workspace import Workspace

log = get_logger(__name__)

SERVER_STOPPED = "the MCP server stopped while this eval ran; start it again with run_eval_suite"


class BusyError(TooltuneError):
    """Something else holds the resource; the message names it and what to do."""


class ServerState:
    def __init__(self, settings: Settings, *, allow_spawn: bool = True) -> None:
        self.settings = settings
        # the owner's permission for tools to start programs a client names (generate_training_examples'
        # mcp_server as a command line): `tooltune mcp` grants it over stdio, withholds it over HTTP
        self.allow_spawn = allow_spawn
        self.ws = Workspace(settings.workspace).ensure()
        self.jobs = JobStore(self.ws)
        self.registry = AdapterRegistry(self.ws)
        self._model_server: ModelServer | None = None
        self._ms_lock = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None
        self._tasks: dict[str, anyio.CancelScope] = {}

    # ---- lifespan ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ServerState]:
        """Owns the background task group; on exit cancels in-process evals and stops the model server."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()  # running evals record themselves as failed (SERVER_STOPPED)
                self._tg = None
                with anyio.CancelScope(shield=True):
                    await self.stop_model_server()

    # ---- model server ------------------------------------------------------------------------------

    @property
    def model_server(self) -> ModelServer | None:
        return self._model_server

    def resolve_model_path(self, ref: str | None) -> Path:
        """A base-model reference (cache name, folder, .gguf) → its local folder; never downloads."""

        if ref is None:
            ms = self._model_server
            if ms is not None:
                return Path(ms.model_path)
            active = read_active(self.ws)
            ref = active.model if active is not None else self.settings.default_model
        return resolve_model(ref, self.settings, download=False).path

    async def model_server_for(self, model_path: Path) -> ModelServer:
        """The running model server for ``model_path``, starting (or replacing) it as needed.

        Starts with the workspace's last verified adapter when it was trained on this model, so a
        restarted MCP server keeps serving what it served before.
        """

        model_path = Path(model_path).resolve()
        async with self._ms_lock:
            ms = self._model_server
            if ms is not None and ms.model_path == model_path:
                return ms
            if ms is not None:
                if self.running_evals():
                    raise BusyError(
                        f"eval job {self.running_evals()[0]} is using the model server on {ms.model_path}; "
                        "wait for it (get_job) or cancel it (cancel_job) before using another base model"
                    )
                await ms.stop()
                self._model_server = None
            active = read_active(self.ws)
            initial = None
            if active is not None and active.adapter is not None:
                with contextlib.suppress(TooltuneError, OSError):
                    if self.resolve_model_path(active.model) == model_path:
                        initial = active.adapter
            ms = ModelServer(model_path, settings=self.settings, adapter=initial)
            log.info("mcp.model_server_starting", model=str(model_path), adapter=initial)
            await ms.start()
            self._model_server = ms
            return ms

    async def stop_model_server(self) -> None:
        ms, self._model_server = self._model_server, None
        if ms is not None:
            await ms.stop()

    # ---- in-process jobs ---------------------------------------------------------------------------

    def running_evals(self) -> list[str]:
        return list(self._tasks)

    def start_background_job(
        self,
        kind: str,
        work: Callable[[JobRecord], Awaitable[dict[str, Any]]],
        *,
        params: dict[str, Any],
        total: int | None,
    ) -> JobRecord:
        """Create a job record and run ``work(job)`` in the background; its return value is the result.

        A TooltuneError from the work becomes the job's error as-is; anything else is logged with the
        job id and recorded as an internal error (the job never stays ``running`` after its task ends).
        """
        if self._tg is None:
            raise TooltuneError("the MCP server is shutting down; reconnect and try again")
        job = self.jobs.create(kind, params=params, total=total)
        job = self.jobs.update(job.id, status="running", pid=os.getpid(), progress={"message": "starting"})
        scope = anyio.CancelScope()
        self._tasks[job.id] = scope

        async def run() -> None:
            try:
                with scope:
                    result = await work(job)
                    self.jobs.update(job.id, status="succeeded", result=result, progress={"message": "done"})
                    return
                self.jobs.update(job.id, status="cancelled", error="cancelled by cancel_job")
            except TooltuneError as exc:
                self.jobs.update(job.id, status="failed", error=str(exc))
            except Exception as exc:  # noqa: BLE001 — must end up in the job record, not vanish
                log.error("mcp.job_crashed", job=job.id, exc_info=exc)
                self.jobs.update(
                    job.id, status="failed", error=f"internal error in job {job.id}; see the server log"
                )
            except BaseException:  # the server is stopping: the task group cancelled us
                self.jobs.update(job.id, status="failed", error=SERVER_STOPPED)
                raise
            finally:
                self._tasks.pop(job.id, None)

        self._tg.start_soon(run)
        return job

    def cancel_job(self, job_id: str) -> JobRecord:
        """In-process jobs are cancelled here; worker jobs through the store (SIGTERM to their worker)."""
        scope = self._tasks.get(job_id)
        if scope is not None:
            scope.cancel()
            return self.jobs.update(job_id, cancel_requested=True)
        job = self.jobs.get(job_id)
        if job.done:
            return job
        if job.pid == os.getpid():
            # ours, but its task is gone (e.g. the lifespan that ran it ended): never SIGTERM ourselves
            return self.jobs.update(job_id, status="cancelled", error="cancelled by cancel_job")
        if job.kind != "train" and job.pid is not None:
            # an in-process job of another tooltune MCP server: its pid is that server, not a worker
            raise BusyError(
                f"job {job_id} runs inside another tooltune MCP server (pid {job.pid}) on this workspace; "
                "cancel it through that server"
            )
        return self.jobs.cancel(job_id)
