"""MCP tools for learning from the model's own answers: sample_model_answers (a background job on the
shared model server), pick_training_data (rejection-sampled SFT data or preference pairs) and
improve_adapter (rounds of sample → pick → train → held-out judgement, one job)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from tooltune.data import onpolicy
from tooltune.data.onpolicy import PickConfig, SampleConfig, sample_dataset
from tooltune.data.store import dataset_examples, load_dataset
from tooltune.jobs import JobRecord
from tooltune.server.errors import agent_errors
from tooltune.server.options import mcp_options
from tooltune.server.results import JobView, PickResult, SamplingStarted
from tooltune.server.state import ServerState
from tooltune.server.tools.base import (
    DEFAULT_WAIT_SECONDS,
    STARTS_WORK,
    WaitSeconds,
    base_model_for,
    follow_if_asked,
    in_thread,
    refuse_while_busy,
)
from tooltune.training.improve import ImproveConfig, improve


def register(mcp: MCPServer, state: ServerState) -> None:
    ws = state.ws

    @mcp.tool(
        description=(
            "Ask the model (base, or an adapter) for its own answers to a dataset's requests, k per request "
            "at a temperature, and score each against the request's generated truth with the eval scorer "
            "(native and lenient verdicts, a reason code per failure: no_call_made, wrong_value, "
            "called_when_irrelevant...). The answers come from the local model server as an eval gets "
            "them. Returns a job id at once (progress streams with a progress token); seconds per answer "
            "on CPU: use `limit`. The job result summarises the samples set (counts, reasons, per kind). "
            "Next: pick_training_data(samples=<out>, method='rejection' or 'pairs')."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    @mcp_options(SampleConfig)
    async def sample_model_answers(
        ctx: Context,
        dataset: Annotated[str, Field(description="Dataset whose requests are sampled.")],
        out: Annotated[str, Field(description="Name of the new samples set (immutable).")],
        adapter: Annotated[
            str | None, Field(description="Adapter to sample (default: the base model).")
        ] = None,
        base_model: Annotated[
            str | None, Field(description="Base model (default: the adapter's base, else the default).")
        ] = None,
        wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
        **options: Any,
    ) -> SamplingStarted:
        refuse_while_busy(state)
        cfg = SampleConfig(**options)
        info = await in_thread(load_dataset, ws, dataset)
        n = len((await in_thread(dataset_examples, info, cfg.split))[: cfg.limit])
        model_path = await in_thread(base_model_for, state, adapter, base_model)
        work = functools.partial(_sample_job, state, dataset, out, cfg, adapter, model_path)
        job = state.start_background_job(
            "samples",
            work,
            params={
                "dataset": dataset,
                "out": out,
                "adapter": adapter,
                "model": str(model_path),
                **cfg.model_dump(),
            },
            total=n * cfg.k,
        )
        job, followed = await follow_if_asked(ctx, state, job, wait_seconds)
        view = JobView.of(job)
        return SamplingStarted(
            job=view,
            dataset=dataset,
            samples=out,
            requests=n,
            model=str(model_path),
            followed_seconds=followed,
            next=view.next,
        )

    @mcp.tool(
        description=(
            "Turn a samples set into training data. method='rejection': a dataset of the model's own "
            "correct answers (the generated truth where no sample was right), for "
            "train_adapter(method='rejection', init_adapter=<the adapter that was sampled>). "
            "method='pairs': a dataset of preference pairs (a correct answer against the model's own "
            "wrong one, per reason code so refusals, wrong values and over-calls are all represented), "
            "for train_adapter(method='dpo', init_adapter=<the adapter that was sampled>). Instant."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    @mcp_options(PickConfig)
    async def pick_training_data(
        samples: Annotated[str, Field(description="Samples set from sample_model_answers.")],
        out: Annotated[str, Field(description="Name of the new dataset.")],
        **options: Any,
    ) -> PickResult:
        cfg = PickConfig(**options)
        done = await in_thread(onpolicy.pick_training_data, ws, samples, out=out, **cfg.model_dump())
        start = f", init_adapter='{done.samples_adapter}'" if done.samples_adapter else ""
        method = "rejection" if done.method == "rejection" else "dpo"
        after = f"train_adapter(dataset='{done.dataset}', method='{method}'{start})"
        return PickResult(**done.model_dump(exclude={"samples_adapter"}), next=after)


def register_improve(mcp: MCPServer, state: ServerState) -> None:
    @mcp.tool(
        description=(
            "Learn from the model's own mistakes, round by round, as one background job: sample the current "
            "model's answers to a dataset's training requests, pick training data from them (method='dpo': "
            "pairs of a correct and its own wrong answer; 'rejection': its own correct answers), train a "
            "candidate adapter from the current one, and keep the candidate only if its native calls beat "
            "the current model's on the dataset's held-out test requests. Progress says which round and "
            "stage; the result lists each round's held-out native rates, p-value and decision, and `best`; a "
            "round whose candidate its own answer check dropped (or whose GRPO run collapsed) ends the loop "
            "and is listed with `dropped` saying why (no rates). "
            "Minutes per round on the tiny model, hours for the 0.5B on CPU. Next: get_job(id), then "
            "switch_adapter(result.best)."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    @mcp_options(ImproveConfig)
    async def improve_adapter(
        ctx: Context, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS, **options: Any
    ) -> JobView:
        refuse_while_busy(state)
        cfg = ImproveConfig(**options)
        model_path = await in_thread(base_model_for, state, cfg.adapter, cfg.model)
        work = functools.partial(_improve_job, state, cfg, model_path)
        job = state.start_background_job("improve", work, params=cfg.model_dump(), total=cfg.rounds)
        job, _ = await follow_if_asked(ctx, state, job, wait_seconds)
        return JobView.of(job)


async def _improve_job(
    state: ServerState, cfg: ImproveConfig, model_path: Path, job: JobRecord
) -> dict[str, Any]:
    ms = await state.model_server_for(model_path)

    def on_progress(message: str) -> None:
        done = int(message.split(":")[0].removeprefix("round ")) - 1 if message.startswith("round ") else 0
        state.jobs.update(job.id, progress={"current": done, "total": cfg.rounds, "message": message})

    result = await improve(state.settings, ms, cfg, on_progress=on_progress)
    return json.loads(result.model_dump_json())


async def _sample_job(
    state: ServerState,
    dataset: str,
    out: str,
    cfg: SampleConfig,
    adapter: str | None,
    model_path: Path,
    job: JobRecord,
) -> dict[str, Any]:
    ms = await state.model_server_for(model_path)

    def on_progress(done: int, total: int, _result: Any) -> None:
        state.jobs.update(
            job.id, progress={"current": done, "total": total, "message": f"answer {done}/{total}"}
        )

    info = await sample_dataset(ms, state.ws, dataset, out, cfg, adapter=adapter, on_progress=on_progress)
    return {
        "samples": info.name,
        "hash": info.hash,
        "counts": info.counts,
        "reasons": info.reasons,
        "per_kind": info.per_kind,
        "skipped": len(info.skipped),
        "eval_run": info.eval_run,
    }
