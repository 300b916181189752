"""MCP tools for jobs: get_job, cancel_job, list_jobs."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from tooltune.logs import get_logger
from tooltune.server.errors import agent_errors
from tooltune.server.results import (
    JobList,
    JobView,
)
from tooltune.server.state import ServerState
from tooltune.server.tools.base import (
    READ_ONLY,
    find_job,
    in_thread,
)
from tooltune.training.runs import cancel_training

log = get_logger(__name__)


def register(mcp: MCPServer, state: ServerState) -> None:
    settings = state.settings

    @mcp.tool(
        description=(
            "Status of a training or eval job: progress (current/total, message, latest loss), and once done "
            "its result (adapter name and metrics; eval scores, comparison and report URIs) or error. Jobs "
            "live on disk, so ids stay valid across reconnects. Instant; poll every 10-60 s while it runs."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def get_job(
        id: Annotated[str, Field(description="Job id from train_adapter or run_eval_suite.")],
    ) -> JobView:
        return JobView.of(await in_thread(find_job, state, id))

    @mcp.tool(
        description=(
            "Stop a running job. Training stops at the next step boundary, keeps its last checkpoint and "
            "ends 'cancelled'; an eval stops at once (finished cases are kept). Returns the job; poll "
            "get_job to see it end. Cancelling a finished job changes nothing."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False
        ),
    )
    @agent_errors
    async def cancel_job(id: Annotated[str, Field(description="Job id to cancel.")]) -> JobView:

        job = await in_thread(find_job, state, id)
        if job.kind == "train":
            job = await in_thread(cancel_training, id, settings)
        else:
            job = state.cancel_job(id)
        return JobView.of(job)

    @mcp.tool(
        description=(
            "List jobs of this workspace, oldest first (training and eval; optionally one kind or status). "
            "Instant. Use it to find a job again after reconnecting."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def list_jobs(
        kind: Annotated[Literal["train", "eval"] | None, Field(description="Only this kind.")] = None,
        status: Annotated[
            Literal["queued", "running", "succeeded", "failed", "cancelled"] | None,
            Field(description="Only this status."),
        ] = None,
        last: Annotated[int, Field(ge=1, le=500, description="At most this many (the most recent).")] = 50,
    ) -> JobList:
        jobs = await in_thread(state.jobs.list, kind)
        if status is not None:
            jobs = [j for j in jobs if j.status == status]
        return JobList(jobs=[JobView.of(j) for j in jobs[-last:]])
