"""MCP tools for evals: run_eval_suite (a background job on the shared model server), compare_runs."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tooltune.evals.results import EvalReport
from tooltune.evals.runner import DEFAULT_CONCURRENCY, ProgressFn, run_suite
from tooltune.evals.service import compare_runs as compare_saved_runs
from tooltune.evals.service import evaluate_on_server
from tooltune.evals.suite import EvalSuite, load_suite
from tooltune.evals.task_runner import evaluate_tasks_on_server
from tooltune.evals.tasks import BUILTIN_TASK_SUITES, TaskSuite, is_task_suite, load_task_suite
from tooltune.jobs import JobRecord
from tooltune.logs import get_logger
from tooltune.server.errors import agent_errors
from tooltune.server.results import (
    ComparisonView,
    EvalStarted,
    JobView,
)
from tooltune.server.state import ServerState
from tooltune.server.tools.base import (
    DEFAULT_WAIT_SECONDS,
    READ_ONLY,
    STARTS_WORK,
    WaitSeconds,
    base_model_for,
    follow_if_asked,
    in_thread,
    refuse_while_busy,
)

log = get_logger(__name__)


class TaskOptions(NamedTuple):
    """How a task suite's runs go (run_task_suite's keywords; each run's meta records them)."""

    lenient_tools: bool
    repeat_guard: bool
    temperature: float | None
    concurrency: int


def register(mcp: MCPServer, state: ServerState) -> None:
    ws = state.ws

    @mcp.tool(
        description=(
            "Measure tool calling on an eval suite ('coding-tools', 'issue-tracker', 'notes-calendar' are "
            "built in; BFCL suites can be imported), or whole agent tasks with suite='coding-tasks' (the "
            "coding agent works each task in a copy of a small project; success is decided from the end "
            "state and the answer; minutes per task on CPU): the baseline (base model, no adapter) "
            "and/or an adapter, scored natively (the "
            "server's parsed tool_calls) and leniently (calls found in the text too), then paired case "
            "by case when both run. Starts the local model server if needed. Returns a job id at once "
            "(progress streams if your request has a progress token). Takes ~1-10 s per case on CPU: "
            "use `limit` (cases per category) for a quick look. The result holds scores per category, "
            "the comparison and report URIs. Afterwards the model server serves what it served before. "
            "Next: get_job(id), then switch_adapter."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    async def run_eval_suite(
        ctx: Context,
        suite: Annotated[
            str,
            Field(
                description="Suite name ('coding-tools'), path to a suite .jsonl, or a task suite "
                "('coding-tasks' or a tasks .yaml)."
            ),
        ] = "coding-tools",
        adapter: Annotated[
            str | None, Field(description="Registered adapter to evaluate (list_adapters).")
        ] = None,
        baseline: Annotated[
            bool, Field(description="Also run the base model without adapter, first.")
        ] = True,
        limit: Annotated[
            int | None,
            Field(
                ge=1,
                description="First N cases per category (default: the whole suite); for a task suite, "
                "the first N tasks.",
            ),
        ] = None,
        base_model: Annotated[
            str | None,
            Field(
                description="Base model for a baseline-only run (default: the adapter's base, else the "
                "served or default model)."
            ),
        ] = None,
        base_urls: Annotated[
            list[str] | None,
            Field(
                description="Already-running OpenAI-compatible endpoints serving one model (e.g. "
                "mlx_lm.server on other machines) to evaluate instead of the local model server: the "
                "cases are shared between them in one run. What they serve is evaluated as it is (no "
                "switching), so pass adapter='<name>' or baseline=true to label it, not both; base_model "
                "is then the 'model' field sent (default 'default')."
            ),
        ] = None,
        concurrency: Annotated[
            int | None,
            Field(
                ge=1,
                description=f"Cases evaluated at once (mlx_lm.server batches them; default "
                f"{DEFAULT_CONCURRENCY}), as `tooltune eval --concurrency`; per endpoint with base_urls. "
                "For a task suite, tasks worked at once, each in its own sandbox (default 1).",
            ),
        ] = None,
        lenient_tools: Annotated[
            bool,
            Field(
                description="Task suites only: recover tool calls the model wrote as text (counted apart, "
                "as `tooltune eval --tasks --lenient-tools`); off = native calls only."
            ),
        ] = False,
        repeat_guard: Annotated[
            bool,
            Field(
                description="Task suites only: answer a call that repeats an earlier one of the task "
                "(same tool and arguments, nothing changed since) instead of running it again, as "
                "`tooltune serve` does; false runs every call, to see the model's loops as they are."
            ),
        ] = True,
        temperature: Annotated[
            float | None,
            Field(
                ge=0,
                description="Task suites only: sampling temperature of every request the agent makes "
                "(default and 0: greedy). A task run records it.",
            ),
        ] = None,
        wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
    ) -> EvalStarted:
        if adapter is None and not baseline:
            raise ToolError("nothing to evaluate: pass adapter='<name>' and/or baseline=true")
        is_tasks = await in_thread(is_task_suite, suite)
        if not is_tasks:
            changed = {"lenient_tools": lenient_tools, "repeat_guard": not repeat_guard,
                       "temperature": temperature}  # fmt: skip
            if given := [name for name, on in changed.items() if on]:
                raise ToolError(
                    f"{', '.join(given)} apply to task suites only ('coding-tasks' or a tasks .yaml); "
                    f"{suite!r} is a suite of single requests: leave them out"
                )
        concurrency = concurrency or (1 if is_tasks else DEFAULT_CONCURRENCY)
        if base_urls is not None and not is_tasks:
            return await _start_endpoint_eval(
                ctx, state, suite, base_urls, adapter, baseline, limit, base_model, concurrency, wait_seconds
            )
        refuse_while_busy(state)
        if is_tasks:
            if base_urls is not None:
                raise ToolError("a task suite runs on the local model server: leave out base_urls")
            options = TaskOptions(lenient_tools=lenient_tools, repeat_guard=repeat_guard,
                                  temperature=temperature or None, concurrency=concurrency)  # fmt: skip
            return await _start_task_eval(
                ctx, state, suite, adapter, baseline, limit, base_model, options, wait_seconds
            )
        loaded = await in_thread(load_suite, suite, ws)
        n_cases = len(loaded.subset(limit).cases)
        model_path = await in_thread(base_model_for, state, adapter, base_model)
        targets: list[str | None] = ([None] if baseline else []) + ([adapter] if adapter else [])
        labels = [t or "baseline" for t in targets]
        work = functools.partial(_eval_job, state, loaded, targets, model_path, limit, n_cases, concurrency)
        job = state.start_background_job(
            "eval",
            work,
            params={
                "suite": loaded.name,
                "adapter": adapter,
                "baseline": baseline,
                "limit": limit,
                "model": str(model_path),
                "concurrency": concurrency,
            },
            total=n_cases * len(targets),
        )
        job, followed = await follow_if_asked(ctx, state, job, wait_seconds)
        view = JobView.of(job)
        return EvalStarted(
            job=view,
            suite=loaded.name,
            cases=n_cases,
            runs=labels,
            model=str(model_path),
            followed_seconds=followed,
            next=view.next,
        )

    @mcp.tool(
        description=(
            "Compare two finished eval runs case by case (typically baseline vs adapter on the same suite): "
            "per-category rates, McNemar's exact test (native and lenient) and the cases that regressed or "
            "got fixed. Instant. Run ids are in run_eval_suite's job result (result.runs). Writes a Markdown "
            "report "
            "(resource URI in `report`)."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def compare_runs(
        a: Annotated[str, Field(description="Reference run id (usually the baseline).")],
        b: Annotated[str, Field(description="Candidate run id (usually the adapter).")],
    ) -> ComparisonView:
        cmp = await in_thread(compare_saved_runs, ws, a, b)
        native = cmp.mcnemar_native
        verdict = (
            "the candidate is significantly better natively (p<0.05)"
            if native.fixes > native.regressions and native.p_value < 0.05
            else "no significant native difference — more cases (no limit) or more training may be needed"
        )
        if cmp.differs:
            verdict += f"; note that the runs differ besides the target ({'; '.join(cmp.differs)})"
        return ComparisonView.of(cmp, report=f"tooltune://reports/{b}/vs/{a}", next=verdict)


def _job_result(suite: str, model: str, reports: list[EvalReport]) -> dict[str, Any]:
    """An eval job's result: per run label its id, scores and report URI."""
    return {
        "suite": suite,
        "model": model,
        "runs": {r.meta.label: r.meta.run_id for r in reports},
        "scores": {r.meta.label: r.rates() for r in reports},
        "complete": all(r.complete for r in reports),
        "reports": {r.meta.label: f"tooltune://reports/{r.meta.run_id}" for r in reports},
    }


async def _eval_job(
    state: ServerState,
    suite: EvalSuite,
    targets: list[str | None],
    model_path: Path,
    limit: int | None,
    n_cases: int,
    concurrency: int,
    job: JobRecord,
) -> dict[str, Any]:
    """The eval job's work: the shared baseline → adapter → compare loop on the server's model server,
    with progress written to the job; what was served before is served again afterwards."""
    ms = await state.model_server_for(model_path)
    total = n_cases * len(targets)

    def on_target(i: int, label: str) -> ProgressFn:
        offset = i * n_cases
        state.jobs.update(job.id, progress={"current": offset, "message": f"{label}: loading"})

        def on_progress(done: int, run_total: int, _result: Any) -> None:
            message = f"{label}: case {done}/{run_total}"
            state.jobs.update(job.id, progress={"current": offset + done, "total": total, "message": message})

        return on_progress

    evaluation = await evaluate_on_server(
        ms, suite, ws=state.ws, targets=targets, on_target=on_target, restore=True, limit=limit,
        concurrency=concurrency,
    )  # fmt: skip
    reports, cmp = evaluation.reports, evaluation.comparison
    result = _job_result(suite.name, str(model_path), reports)
    # run_suite_on_server recorded the adapter's scores in its registry entry
    if cmp is not None:
        a, b = cmp.run_a, cmp.run_b
        result["comparison"] = {
            "run_a": a,
            "run_b": b,
            "n_paired": cmp.n_paired,
            "native": {
                "a": reports[0].overall.native_rate,
                "b": reports[1].overall.native_rate,
                **cmp.mcnemar_native.model_dump(),
            },
            "lenient": {
                "a": reports[0].overall.lenient_rate,
                "b": reports[1].overall.lenient_rate,
                **cmp.mcnemar_lenient.model_dump(),
            },
            "regressions": cmp.regressed_ids()[:20],
            "fixes": cmp.fixed_ids()[:20],
            "report": f"tooltune://reports/{b}/vs/{a}",
        }
    return result


async def _start_endpoint_eval(
    ctx: Context,
    state: ServerState,
    suite: str,
    urls: list[str],
    adapter: str | None,
    baseline: bool,
    limit: int | None,
    model_name: str | None,
    concurrency: int,
    wait_seconds: int,
) -> EvalStarted:
    """run_eval_suite on endpoints someone else serves: one run, its cases shared between them."""
    if not urls:
        raise ToolError("base_urls is empty: give one or more endpoint URLs, or leave it out")
    if adapter is not None and baseline:
        raise ToolError(
            "with base_urls the endpoints' model is evaluated as it is: pass adapter='<name>' or "
            "baseline=true (baseline=false with an adapter), not both"
        )
    refuse_while_busy(state)
    loaded = await in_thread(load_suite, suite, state.ws)
    n_cases = len(loaded.subset(limit).cases)
    label = adapter or "baseline"
    name = model_name or "default"

    async def work(job: JobRecord) -> dict[str, Any]:
        def on_progress(done: int, total: int, _result: Any) -> None:
            message = f"{label}: case {done}/{total} on {len(urls)} endpoint(s)"
            state.jobs.update(job.id, progress={"current": done, "total": total, "message": message})

        report = await run_suite(
            loaded, ws=state.ws, base_url=urls, model_name=name, adapter=adapter, label=label, limit=limit,
            concurrency=concurrency, on_progress=on_progress,
        )  # fmt: skip
        return {**_job_result(loaded.name, name, [report]), "endpoints": urls}

    job = state.start_background_job(
        "eval",
        work,
        params={
            "suite": loaded.name,
            "adapter": adapter,
            "limit": limit,
            "model": name,
            "endpoints": urls,
            "concurrency": concurrency,
        },  # fmt: skip
        total=n_cases,
    )
    job, followed = await follow_if_asked(ctx, state, job, wait_seconds)
    view = JobView.of(job)
    return EvalStarted(
        job=view, suite=loaded.name, cases=n_cases, runs=[label], model=name, followed_seconds=followed,
        next=view.next,
    )  # fmt: skip


async def _start_task_eval(
    ctx: Context,
    state: ServerState,
    suite_ref: str,
    adapter: str | None,
    baseline: bool,
    limit: int | None,
    base_model: str | None,
    options: TaskOptions,
    wait_seconds: float,
) -> EvalStarted:
    """An agent task suite as an eval job: each target through the agent, then the comparison."""
    if not state.allow_spawn and suite_ref not in BUILTIN_TASK_SUITES:
        # a task file's checks run commands and its tasks may let the agent run them: starting programs
        # for a client is off on this server (the default over HTTP)
        raise ToolError(
            "a task suite from a file runs its own commands, and starting programs is off on this server; "
            f"use a built-in task suite ({', '.join(BUILTIN_TASK_SUITES)}) or have the owner restart it "
            "with `tooltune mcp --http --allow-spawn`"
        )
    suite = await in_thread(load_task_suite, suite_ref)
    n_tasks = len(suite.tasks[:limit] if limit else suite.tasks)
    model_path = await in_thread(base_model_for, state, adapter, base_model)
    targets: list[str | None] = ([None] if baseline else []) + ([adapter] if adapter else [])
    work = functools.partial(_task_job, state, suite, targets, model_path, limit, n_tasks, options)
    params = {"suite": suite.name, "adapter": adapter, "baseline": baseline, "limit": limit, "tasks": True,
              **options._asdict()}  # fmt: skip
    job = state.start_background_job("eval", work, params={**params, "model": str(model_path)},
                                     total=n_tasks * len(targets))  # fmt: skip
    job, followed = await follow_if_asked(ctx, state, job, wait_seconds)
    view = JobView.of(job)
    return EvalStarted(
        job=view,
        suite=suite.name,
        cases=n_tasks,
        runs=[t or "baseline" for t in targets],
        model=str(model_path),
        followed_seconds=followed,
        next=view.next,
    )


async def _task_job(
    state: ServerState,
    suite: TaskSuite,
    targets: list[str | None],
    model_path: Path,
    limit: int | None,
    n_tasks: int,
    options: TaskOptions,
    job: JobRecord,
) -> dict[str, Any]:
    ms = await state.model_server_for(model_path)
    total = n_tasks * len(targets)

    def on_target(i: int, label: str) -> Any:
        def on_progress(done: int, run_total: int, _result: Any) -> None:
            message = f"{label}: task {done}/{run_total}"
            state.jobs.update(
                job.id, progress={"current": i * n_tasks + done, "total": total, "message": message}
            )

        return on_progress

    reports, cmp = await evaluate_tasks_on_server(
        ms, suite, ws=state.ws, targets=targets, on_target=on_target, restore=True, limit=limit,
        **options._asdict(),
    )  # fmt: skip
    result: dict[str, Any] = {
        "suite": suite.name,
        "model": str(model_path),
        "runs": {r.meta.label: r.meta.run_id for r in reports},
        "scores": {r.meta.label: r.summary() for r in reports},
        "complete": all(r.complete for r in reports),
    }
    if cmp is not None:
        result["comparison"] = {
            "run_a": cmp.run_a,
            "run_b": cmp.run_b,
            "success": {"a": cmp.success_a, "b": cmp.success_b, **cmp.mcnemar.model_dump()},
            "fixes": [c.task_id for c in cmp.fixes][:20],
            "regressions": [c.task_id for c in cmp.regressions][:20],
            "differs": cmp.differs,
        }
    return result
