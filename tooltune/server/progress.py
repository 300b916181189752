"""Stream a job's progress to the MCP client while its request is open.

Long work always runs as a job (on disk, see :mod:`tooltune.jobs`); a tool starts it and returns. A
client that sent a progress token has said it wants to watch, so for it the tool keeps the request open
for a bounded time and relays the job's progress (iteration/iters, loss) as progress notifications. A
client without a token gets the job id at once and polls ``get_job`` — blocking it would only look like
a hang.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from mcp.server.mcpserver import Context

from tooltune.jobs import JobRecord, JobStore
from tooltune.logs import get_logger

log = get_logger(__name__)

POLL_SECONDS = 0.5


def progress_requested(ctx: Context[Any, Any]) -> bool:
    """Did the caller attach a progress token (i.e. will ``report_progress`` reach anyone)?

    Over JSON-RPC transports the token arrives in ``params._meta.progressToken`` (``ctx`` exposes it as
    ``meta["progress_token"]``). The SDK's in-process transport passes the client's callback to the
    dispatch context instead of a token, behind wrapper contexts; the SDK has no public accessor for
    either, so we look at both places.
    """
    request = ctx.request_context
    meta = request.meta or {}
    if meta.get("progress_token") is not None or meta.get("progressToken") is not None:
        return True
    dispatch = getattr(request.session, "_request_outbound", None)
    for _ in range(5):  # unwrap the SDK's dispatch-context wrappers
        if dispatch is None:
            return False
        if any(
            getattr(dispatch, a, None) is not None
            for a in ("_progress_token", "progress_token", "_on_progress")
        ):
            return True
        dispatch = getattr(dispatch, "_inner", None)
    return False


async def follow_job(
    ctx: Context[Any, Any], store: JobStore, job_id: str, *, max_seconds: float
) -> JobRecord:
    """Relay the job's progress until it ends or ``max_seconds`` pass; return the last record seen.

    Only changes are sent (same numbers twice would be noise). A failure to send (client gone) stops the
    relay but never the job.
    """
    deadline = time.monotonic() + max_seconds
    last: tuple[int, int | None, str] | None = None
    while True:
        job = await anyio.to_thread.run_sync(store.get, job_id)
        p = job.progress
        key = (p.current, p.total, p.message)
        if key != last:
            last = key
            try:
                await ctx.report_progress(p.current, p.total, p.message or job.status)
            except Exception as exc:  # noqa: BLE001 — the client went away; the job carries on
                log.info("mcp.progress_stopped", job=job_id, reason=repr(exc))
                return job
        if job.done or time.monotonic() >= deadline:
            return job
        await anyio.sleep(POLL_SECONDS)
