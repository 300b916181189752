"""MCP tool train_adapter: a LoRA run in a worker subprocess, its options read from TrainConfig."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tooltune.options import model_options
from tooltune.server.errors import agent_errors
from tooltune.server.options import mcp_options
from tooltune.server.results import JobView, TrainStarted
from tooltune.server.state import ServerState
from tooltune.server.tools.base import (
    DEFAULT_WAIT_SECONDS,
    STARTS_WORK,
    WaitSeconds,
    follow_if_asked,
    in_thread,
)
from tooltune.training.runs import TrainingBusyError, start_training, training_lock_holder
from tooltune.training.train_config import RESOLVED_FIELDS, TrainConfig


def register(mcp: MCPServer, state: ServerState) -> None:
    settings = state.settings

    @mcp.tool(
        description=(
            "Train a LoRA adapter on a dataset, in a background worker. Returns a job id at once; if your "
            "request carries a progress token, progress (iteration/iters, loss) streams for up to "
            "`wait_seconds` before the call returns. The defaults are the recipe behind tooltune's "
            "published results (150 steps, batch 1, rank 8 on 8 blocks): seconds on the tiny test model, "
            "about 40 minutes for the 0.5B model on a 2-core CPU. Only one training runs per workspace: a "
            "second request gets a busy answer naming the running job. On success the adapter is "
            "registered under `name`. Next: get_job(id) until done, then run_eval_suite(adapter=<name>, "
            "baseline=true)."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    # hosts (processes on other machines over ssh) stays a CLI option: an MCP client would start programs
    @mcp_options(TrainConfig, exclude=("model", "dataset", "hosts", *RESOLVED_FIELDS))
    async def train_adapter(
        ctx: Context,
        dataset: Annotated[str, Field(description="Dataset name from generate_training_examples.")],
        base_model: Annotated[
            str | None,
            Field(description="Base model: cache name, MLX folder or .gguf (default: the default model)."),
        ] = None,
        name: Annotated[
            str | None, Field(description="Adapter name to register on success (default: the run id).")
        ] = None,
        config: Annotated[
            dict[str, Any] | None,
            Field(
                description="A whole training config as one object (e.g. read from a YAML file, mlx-lm's "
                "lora_parameters block accepted); the parameters of this call that differ from their "
                "defaults win over it."
            ),
        ] = None,
        wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
        **options: Any,
    ) -> TrainStarted:
        defaults = {o.name: o.default for o in model_options(TrainConfig)}
        changed = {k: v for k, v in options.items() if v != defaults[k]}  # these win over `config`
        cfg = TrainConfig.from_dict({**(config or {}), "dataset": dataset}, model=base_model, **changed)
        try:
            job = await in_thread(start_training, cfg, settings, name=name)
        except TrainingBusyError as e:
            holder = training_lock_holder(settings)
            if holder is None:
                raise
            raise ToolError(
                f"busy: training job {holder.job_id} (run {holder.run_id}) is running; follow it with "
                f"get_job('{holder.job_id}') or stop it with cancel_job('{holder.job_id}'), then train again"
            ) from e
        job, followed = await follow_if_asked(ctx, state, job, wait_seconds)
        run_id = job.params.get("run_id")
        view = JobView.of(job)
        return TrainStarted(
            job=view,
            run_id=run_id,
            adapter=job.params.get("adapter"),
            followed_seconds=followed,
            resource=f"tooltune://runs/{run_id}" if run_id else None,
            next=view.next,
        )
