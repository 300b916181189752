"""Run an agent task suite: the real coding agent, its real sandboxed tools, the served model.

Each task gets a fresh copy of its project, an agent whose write/exec switches are the task's, a step
limit and a timeout; the agent's whole transcript is saved (also when it hit a limit), then the checks
decide success from the folder and the final answer. The records are ``task_records``'s; two runs
compare task by task with ``task_compare``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic_ai import capture_run_messages
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model
from pydantic_core import to_jsonable_python

from tooltune.agent.agent import ServedEndpoint, build_agent, coding_toolset
from tooltune.agent.session import AgentSession, TurnResult, tool_call_records
from tooltune.errors import TooltuneError
from tooltune.evals.service import serve_again
from tooltune.evals.task_compare import TaskComparison, compare_task_runs
from tooltune.evals.task_records import TaskReport, TaskResult, TaskRunMeta, load_task_report, task_run_dir
from tooltune.evals.tasks import Task, TaskSuite, run_checks, sandbox_copy, snapshot
from tooltune.logs import get_logger
from tooltune.serving.model_server import ModelServer
from tooltune.workspace import Workspace, atomic_write_json, atomic_write_text

log = get_logger(__name__)


def _transcript(messages: list[ModelMessage]) -> str:
    return "".join(json.dumps(to_jsonable_python(m)) + "\n" for m in messages)


async def run_task(
    task: Task,
    suite: TaskSuite,
    *,
    server: ServedEndpoint | None = None,
    model: Model | None = None,
    lenient_tools: bool = False,
    max_tokens: int | None = None,
    repeat_guard: bool = True,
    temperature: float | None = None,
) -> tuple[TaskResult, str]:
    """One attempt at ``task`` in a fresh copy of its project: the result and the transcript (JSONL)."""
    with sandbox_copy(suite.project(task)) as root:
        before = snapshot(root)
        agent = build_agent(
            root=root, allow_write=task.allow_write, allow_exec=task.allow_exec, repeat_guard=repeat_guard
        )
        guard = coding_toolset(agent).repeats
        session = AgentSession(
            agent,
            server=server,
            model=model,
            lenient_tools=lenient_tools,
            max_steps=task.max_steps,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        t0 = time.perf_counter()
        with capture_run_messages() as messages:
            try:
                with anyio.fail_after(task.timeout_s):
                    async with agent:
                        turn = await session.turn(task.request)
            except TimeoutError:
                turn = TurnResult(error=f"timed out after {task.timeout_s:g} s")
        wall = time.perf_counter() - t0
        answer = turn.answer or ""
        outcomes = await anyio.to_thread.run_sync(run_checks, task, root, answer, before)
    calls = turn.tool_calls
    if not calls and messages:  # the run ended in an error: count what the captured messages show
        calls = tool_call_records(messages)
    result = TaskResult(
        task_id=task.id,
        category=task.category,
        success=all(o.passed for o in outcomes),
        checks=outcomes,
        answer=turn.answer,
        error=turn.error,
        steps=turn.usage.requests or sum(1 for m in messages if m.kind == "response"),
        calls=len(calls),
        failed_calls=sum(c.outcome == "failed" for c in calls),
        invalid_calls=sum(c.outcome == "retried" for c in calls),
        dropped_calls=turn.dropped_tool_calls,
        recovered_text_calls=turn.recovered_text_calls,
        degenerate_cuts=turn.degenerate_cuts,
        repeated_calls=guard.blocked if guard is not None else 0,  # a run that timed out counts too
        wall_s=round(wall, 2),
    )
    return result, _transcript(session.history or list(messages))


ProgressFn = Callable[[int, int, TaskResult], None]


async def run_task_suite(
    suite: TaskSuite,
    *,
    ws: Workspace,
    server: ServedEndpoint | None = None,
    model: Model | None = None,
    adapter: str | None = None,
    label: str = "",
    model_name: str = "",
    run_id: str | None = None,
    lenient_tools: bool = False,
    limit: int | None = None,
    max_tokens: int | None = None,
    on_progress: ProgressFn | None = None,
    repeat_guard: bool = True,
    temperature: float | None = None,
    concurrency: int = 1,
) -> TaskReport:
    """Every task (the first ``limit``) once; results are appended as they finish and reported in the
    suite's order. With the ``run_id`` of an earlier run of the same suite and target, the tasks it
    finished are kept and only the rest run (an interrupted run resumes, a finished one is returned as
    it is). ``server`` is used as it is: the caller serves the adapter. ``concurrency``: tasks worked at
    once, each in its own sandbox (a batching server such as mlx_lm.server answers their requests
    together; greedy answers can then differ from one-at-a-time ones where batched sums flip a near-tie)."""
    if concurrency < 1:
        raise TooltuneError(f"concurrency must be at least 1 (got {concurrency})")
    tasks = suite.tasks[:limit] if limit else suite.tasks
    temperature = temperature or None  # 0 is the server's greedy default: one run, one name for it
    run_id = run_id or (
        datetime.now(UTC).strftime("%Y%m%d-%H%M%S-")
        + f"{suite.name}-{label or adapter or 'baseline'}-"
        + uuid.uuid4().hex[:4]
    )
    d = task_run_dir(ws, run_id)
    results: list[TaskResult] = []
    if (d / "run.json").exists():
        earlier = load_task_report(ws, run_id)
        earlier_guard = bool(earlier.meta.repeat_guard)  # runs from before the guard had none
        was = (earlier.meta.suite, earlier.meta.adapter, earlier.meta.lenient_tools, earlier_guard)
        now = (suite.name, adapter, lenient_tools, repeat_guard, temperature)
        if (*was, earlier.meta.temperature) != now:
            raise TooltuneError(
                f"task run {run_id!r} exists for suite {earlier.meta.suite!r}, adapter "
                f"{earlier.meta.adapter!r}, lenient tools {earlier.meta.lenient_tools}, repeat guard "
                f"{earlier_guard}, temperature {earlier.meta.temperature}; choose another run id"
            )
        wanted = {t.id for t in tasks}
        results = [r for r in earlier.results if r.task_id in wanted]
        if len(results) == len(wanted) and earlier.meta.finished:  # nothing left: as recorded, untouched
            meta = earlier.meta.model_copy(update={"tasks": len(tasks)})  # (the first ``limit`` of them)
            return TaskReport(meta=meta, results=_in_order(results, tasks))
        if results and earlier.meta.concurrency != concurrency:
            raise TooltuneError(
                f"task run {run_id!r} worked {earlier.meta.concurrency} task(s) at a time; resume it at "
                f"concurrency {earlier.meta.concurrency} (batched answers can differ), or use another run id"
            )
        log.info("task run resumed", run_id=run_id, done=len(results), tasks=len(tasks))
    (d / "transcripts").mkdir(parents=True, exist_ok=True)
    meta = TaskRunMeta(
        run_id=run_id,
        suite=suite.name,
        suite_hash=suite.hash,
        label=label or (adapter or "baseline"),
        adapter=adapter,
        model=model_name,
        lenient_tools=lenient_tools,
        repeat_guard=repeat_guard,
        temperature=temperature,
        concurrency=concurrency,
        tasks=len(tasks),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    atomic_write_json(d / "run.json", meta)
    atomic_write_text(d / "results.jsonl", "".join(r.model_dump_json() + "\n" for r in results))
    done = {r.task_id for r in results}
    slots = anyio.Semaphore(concurrency)

    async def work(task: Task) -> None:
        async with slots:
            result, transcript = await run_task(
                task,
                suite,
                server=server,
                model=model,
                lenient_tools=lenient_tools,
                max_tokens=max_tokens,
                repeat_guard=repeat_guard,
                temperature=temperature,
            )
        # no await from here on: one task's record is written whole before another's
        atomic_write_text(d / "transcripts" / f"{task.id}.jsonl", transcript)
        with open(d / "results.jsonl", "a", encoding="utf-8") as f:
            f.write(result.model_dump_json() + "\n")
        results.append(result)
        log.info("task done", task=task.id, success=result.success, steps=result.steps, calls=result.calls)
        if on_progress is not None:
            on_progress(len(results), len(tasks), result)

    try:
        async with anyio.create_task_group() as tg:
            for task in tasks:
                if task.id not in done:
                    tg.start_soon(work, task)
    except BaseExceptionGroup as group:
        # one task's failure ends the run as it did one task at a time: that error, not a group of it
        # (the tasks it cancelled left no record and run again on resume)
        raise group.exceptions[0] from None
    report = TaskReport(meta=meta, results=_in_order(results, tasks))
    # the finished run's records in the suite's order, however the tasks finished
    atomic_write_text(d / "results.jsonl", "".join(r.model_dump_json() + "\n" for r in report.results))
    meta.finished = datetime.now(UTC).isoformat(timespec="seconds")
    atomic_write_json(d / "run.json", meta)
    atomic_write_json(d / "summary.json", report.summary())
    return report


def _in_order(results: list[TaskResult], tasks: list[Task]) -> list[TaskResult]:
    order = {t.id: i for i, t in enumerate(tasks)}
    return sorted(results, key=lambda r: order[r.task_id])


TargetProgress = Callable[[int, str], "ProgressFn | None"]


async def evaluate_tasks_on_server(
    server: ModelServer,
    suite: TaskSuite,
    *,
    ws: Workspace,
    targets: list[str | None],
    run_ids: list[str | None] | None = None,
    labels: list[str] | None = None,
    on_target: TargetProgress | None = None,
    restore: bool = False,
    **options: Any,
) -> tuple[list[TaskReport], TaskComparison | None]:
    """Each target (``None`` = the base model) through the agent on one running server, pinned while
    its tasks run; two targets are then compared task by task. ``restore``: serve again what was served
    before (the MCP server's clients keep talking to what they chose)."""
    ids = run_ids or [None] * len(targets)
    previous = server.served.adapter if restore else None
    reports: list[TaskReport] = []
    try:
        for i, target in enumerate(targets):
            label = labels[i] if labels is not None else target or "baseline"
            progress = on_target(i, label) if on_target is not None else None
            await server.switch_adapter(target, record=False)
            async with server.pinned():
                reports.append(
                    await run_task_suite(
                        suite,
                        ws=ws,
                        server=server,
                        adapter=target,
                        label=label,
                        run_id=ids[i],
                        model_name=Path(server.model_path).name,
                        on_progress=progress,
                        **options,
                    )  # fmt: skip
                )
    finally:
        if restore:
            with anyio.CancelScope(shield=True):
                await serve_again(server, previous)
    cmp = None
    if len(reports) == 2:
        cmp = await anyio.to_thread.run_sync(
            compare_task_runs, ws, reports[0].meta.run_id, reports[1].meta.run_id
        )
    return reports, cmp
