"""What every MCP tool group uses: tool annotations, the wait parameter, service code run in a worker
thread with progress relayed to the client, and how a tool picks its model."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from tooltune.errors import TooltuneError
from tooltune.jobs import JobNotFoundError, JobRecord
from tooltune.logs import get_logger
from tooltune.server.progress import follow_job, progress_requested
from tooltune.server.state import ServerState

log = get_logger(__name__)
T = TypeVar("T")

DEFAULT_WAIT_SECONDS = 120
WaitSeconds = Annotated[
    int,
    Field(
        ge=0,
        le=3600,
        description="Only when your request carries a progress token: keep this call open for up to this "
        "many seconds, streaming progress, then return the job's state (the job keeps running either way). "
        "Without a progress token the call returns at once.",
    ),
]

READ_ONLY = ToolAnnotations(
    readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False
)
STARTS_WORK = ToolAnnotations(
    readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False
)


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def lint_model_path(state: ServerState, base_model: str | None) -> Path | None:
    """Model whose chat template the dataset check round-trips through: the one named, else the default
    model if it is already imported; None skips that check (the lint report says so)."""
    try:
        return state.resolve_model_path(base_model or state.settings.default_model)
    except TooltuneError:
        if base_model is not None:
            raise
        return None


def thread_progress(ctx: Context, message: str, every: float = 0.5) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for service code running in a worker thread: relays to the
    client at most every ``every`` seconds (and at the end) through the event loop."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < every and done < total:
            return
        last[0] = now
        try:
            anyio.from_thread.run(ctx.report_progress, done, total, message)
        except Exception as exc:  # noqa: BLE001 — a lost client must not fail the generation
            log.info("mcp.progress_stopped", reason=repr(exc))

    return report


def base_model_for(state: ServerState, adapter: str | None, base_model: str | None) -> Path:
    """The model folder to serve: the one named; else the adapter's base (the running server's model when
    its weights are that base, so no restart); else the served, last active or default model."""
    if base_model is None and adapter is not None:
        record = state.registry.get(adapter)
        ms = state.model_server
        if ms is not None and ms.model_fingerprint == record.base_model_fingerprint:
            return Path(ms.model_path)
        base_model = record.base_model
    return state.resolve_model_path(base_model)


def find_job(state: ServerState, job_id: str) -> JobRecord:
    """The job, or a ToolError pointing at list_jobs (the store's own message names a CLI command)."""

    try:
        return state.jobs.get(job_id)
    except JobNotFoundError as e:
        raise ToolError(f"no job {job_id!r} in this workspace; list_jobs() shows the existing ones") from e


async def follow_if_asked(
    ctx: Context, state: ServerState, job: JobRecord, wait_seconds: int
) -> tuple[JobRecord, float]:
    """The job after streaming its progress for up to ``wait_seconds`` when the request carries a progress
    token (else at once), and how many seconds were spent following it."""
    if not (wait_seconds and progress_requested(ctx)):
        return job, 0.0
    t0 = time.monotonic()
    job = await follow_job(ctx, state.jobs, job.id, max_seconds=wait_seconds)
    return job, round(time.monotonic() - t0, 1)


def refuse_while_busy(state: ServerState) -> None:
    """One job at a time on the shared model server (evals, sampling, improve rounds): a second is told
    which job holds it and how to follow or stop it."""
    if state.running_evals():
        busy = state.running_evals()[0]
        raise ToolError(
            f"busy: job {busy} is using the model server; follow it with get_job('{busy}') or "
            f"cancel_job('{busy}') first"
        )
