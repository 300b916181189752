"""Run an agent task suite: the real coding agent, its real sandboxed tools, the served model.

Each task gets a fresh copy of its project, an agent whose write/exec switches are the task's, a step
limit and a timeout; the agent's whole transcript is saved (also when it hit a limit), then the checks
decide success from the folder and the final answer. Runs live in ``<ws>/task-runs/<run_id>/``
(``run.json``, ``results.jsonl``, ``transcripts/<task>.jsonl``); two runs compare task by task
(McNemar on success) into ``vs-<run_a>.{json,md,html}`` with both transcripts of every changed task.
"""

from __future__ import annotations

import html
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, Field
from pydantic_ai import capture_run_messages
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model
from pydantic_core import to_jsonable_python

from tooltune.agent.agent import ServedEndpoint, build_agent, coding_toolset
from tooltune.agent.session import AgentSession, TurnResult, tool_call_records
from tooltune.errors import TooltuneError
from tooltune.evals.compare import McNemar, mcnemar_exact
from tooltune.evals.service import serve_again
from tooltune.evals.tasks import CheckOutcome, Task, TaskSuite, run_checks, sandbox_copy, snapshot
from tooltune.logs import get_logger
from tooltune.serving.model_server import ModelServer
from tooltune.workspace import Workspace, atomic_write_json, atomic_write_text, validate_name

log = get_logger(__name__)


class TaskResult(BaseModel):
    task_id: str
    category: str
    success: bool
    checks: list[CheckOutcome] = Field(default_factory=list)
    answer: str | None = None
    error: str | None = None
    steps: int = Field(0, description="Model requests the agent made.")
    calls: int = Field(0, description="Tool calls the model made.")
    failed_calls: int = Field(
        0, description="Calls refused by the sandbox, failing in the tool, or answered by the repeat guard."
    )
    invalid_calls: int = Field(0, description="Calls sent back to the model as invalid (retried).")
    dropped_calls: int = Field(0, description="Answers ending on a call the server could not parse.")
    recovered_text_calls: int = Field(0, description="Calls written as text, recovered by --lenient-tools.")
    degenerate_cuts: int = Field(0, description="Answers cut off for repeating themselves.")
    repeated_calls: int = Field(
        0,
        description="Calls that repeated one the task had made, with nothing changed since, answered by "
        "the agent's guard instead of run again (counted in failed_calls too).",
    )
    wall_s: float = Field(
        0.0, description="The task's own time (with other tasks at once, its waits for the server too)."
    )


class TaskRunMeta(BaseModel):
    run_id: str
    suite: str
    suite_hash: str
    label: str = ""
    adapter: str | None = None
    model: str = ""
    lenient_tools: bool = False
    repeat_guard: bool | None = Field(
        default=None,
        description="Whether the agent answered repeated calls instead of running them again; None: a run "
        "from before the guard existed (it had none).",
    )
    temperature: float | None = Field(
        default=None, description="Sampling temperature of every model request; None: the server's (greedy)."
    )
    concurrency: int = Field(1, description="Tasks worked at once (1 for runs from before it could be more).")
    tasks: int = 0
    started: str = ""
    finished: str | None = None


class TaskReport(BaseModel):
    meta: TaskRunMeta
    results: list[TaskResult]

    @property
    def complete(self) -> bool:
        return self.meta.finished is not None and len(self.results) == self.meta.tasks

    def success_rate(self) -> float:
        return sum(r.success for r in self.results) / len(self.results) if self.results else 0.0

    def summary(self) -> dict[str, Any]:
        """Overall and per-category success, and the call counts that explain failures."""
        cats: dict[str, list[TaskResult]] = {}
        for r in self.results:
            cats.setdefault(r.category, []).append(r)
        total = Counter[str]()
        for r in self.results:
            total.update(
                {
                    "steps": r.steps,
                    "calls": r.calls,
                    "failed_calls": r.failed_calls,
                    "invalid_calls": r.invalid_calls,
                    "dropped_calls": r.dropped_calls,
                    "recovered_text_calls": r.recovered_text_calls,
                    "degenerate_cuts": r.degenerate_cuts,
                    "repeated_calls": r.repeated_calls,
                }
            )
        return {
            "run_id": self.meta.run_id,
            "label": self.meta.label,
            "tasks": len(self.results),
            "success": round(self.success_rate(), 4),
            "succeeded": sum(r.success for r in self.results),
            "categories": {
                c: {"tasks": len(rs), "succeeded": sum(r.success for r in rs)}
                for c, rs in sorted(cats.items())
            },
            **dict(total),
            "wall_s": round(sum(r.wall_s for r in self.results), 1),
        }


def task_run_dir(ws: Workspace, run_id: str) -> Path:
    return ws.root / "task-runs" / validate_name(run_id, "run id")


def load_task_report(ws: Workspace, run_id: str) -> TaskReport:
    d = task_run_dir(ws, run_id)
    meta = TaskRunMeta.model_validate_json((d / "run.json").read_text("utf-8"))
    lines = (d / "results.jsonl").read_text("utf-8").splitlines() if (d / "results.jsonl").exists() else []
    return TaskReport(
        meta=meta, results=[TaskResult.model_validate_json(line) for line in lines if line.strip()]
    )


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


# --- comparing two runs ------------------------------------------------------------------------------
class ChangedTask(BaseModel):
    task_id: str
    category: str
    a: TaskResult
    b: TaskResult


class TaskComparison(BaseModel):
    run_a: str
    run_b: str
    label_a: str
    label_b: str
    suite: str
    n_paired: int
    success_a: float
    success_b: float
    mcnemar: McNemar
    fixes: list[ChangedTask] = Field(default_factory=list)
    regressions: list[ChangedTask] = Field(default_factory=list)
    differs: list[str] = Field(
        default_factory=list,
        description="How the two runs were made differently besides the target (suite version, model, "
        "sampling, tool settings): each a reason the pairing measures more than the adapter.",
    )


def _settings(m: TaskRunMeta) -> dict[str, Any]:
    """What a run was made with besides its target, as a run of today would record it (runs from before
    the repeat guard had none; temperature 0 is greedy, recorded as None)."""
    return {
        "suite_hash": m.suite_hash,
        "model": m.model,
        "temperature": m.temperature or None,
        "lenient_tools": m.lenient_tools,
        "repeat_guard": bool(m.repeat_guard),
        "concurrency": m.concurrency,
    }


def run_differences(a: TaskRunMeta, b: TaskRunMeta) -> list[str]:
    """The settings two task runs did not share, as ``name: a vs b``."""
    sa, sb = _settings(a), _settings(b)
    return [f"{k}: {sa[k]} vs {sb[k]}" for k in sa if sa[k] != sb[k]]


def compare_task_reports(a: TaskReport, b: TaskReport) -> TaskComparison:
    by_a = {r.task_id: r for r in a.results}
    pairs = [(by_a[r.task_id], r) for r in b.results if r.task_id in by_a]
    fixes = [
        ChangedTask(task_id=y.task_id, category=y.category, a=x, b=y)
        for x, y in pairs
        if not x.success and y.success
    ]
    regs = [
        ChangedTask(task_id=y.task_id, category=y.category, a=x, b=y)
        for x, y in pairs
        if x.success and not y.success
    ]
    n = len(pairs)
    return TaskComparison(
        run_a=a.meta.run_id,
        run_b=b.meta.run_id,
        label_a=a.meta.label,
        label_b=b.meta.label,
        suite=b.meta.suite,
        n_paired=n,
        success_a=round(sum(x.success for x, _ in pairs) / n, 4) if n else 0.0,
        success_b=round(sum(y.success for _, y in pairs) / n, 4) if n else 0.0,
        mcnemar=McNemar(
            both_pass=sum(x.success and y.success for x, y in pairs),
            both_fail=sum(not x.success and not y.success for x, y in pairs),
            regressions=len(regs),
            fixes=len(fixes),
            p_value=mcnemar_exact(len(regs), len(fixes)),
        ),
        fixes=fixes,
        regressions=regs,
        differs=run_differences(a.meta, b.meta),
    )


def _render_transcript(path: Path) -> str:
    """A transcript as readable lines: who said what, each call and what came back."""
    if not path.exists():
        return "(no transcript)"
    out: list[str] = []
    for line in path.read_text("utf-8").splitlines():
        msg = json.loads(line)
        for part in msg.get("parts", []):
            kind = part.get("part_kind")
            if kind == "user-prompt":
                out.append(f"user: {part.get('content')}")
            elif kind == "text":
                out.append(f"model: {part.get('content')}")
            elif kind == "tool-call":
                args = part.get("args")
                out.append(
                    f"call: {part.get('tool_name')}({args if isinstance(args, str) else json.dumps(args)})"
                )
            elif kind in ("tool-return", "retry-prompt"):
                content = str(part.get("content"))
                out.append(f"{'result' if kind == 'tool-return' else 'retry'}: {content[:400]}")
    return "\n".join(out)


def render_task_comparison_html(ws: Workspace, cmp: TaskComparison) -> str:
    def block(title: str, changed: list[ChangedTask]) -> str:
        rows = []
        for c in changed:
            ta = _render_transcript(task_run_dir(ws, cmp.run_a) / "transcripts" / f"{c.task_id}.jsonl")
            tb = _render_transcript(task_run_dir(ws, cmp.run_b) / "transcripts" / f"{c.task_id}.jsonl")
            why = lambda r: "; ".join(o.detail for o in r.checks if not o.passed) or (r.error or "")  # noqa: E731
            rows.append(
                f"<h3>{html.escape(c.task_id)} <small>({html.escape(c.category)})</small></h3>"
                f"<table><tr><th>{html.escape(cmp.label_a)}: {'pass' if c.a.success else 'fail'}</th>"
                f"<th>{html.escape(cmp.label_b)}: {'pass' if c.b.success else 'fail'}</th></tr>"
                f"<tr><td><pre>{html.escape(why(c.a))}\n\n{html.escape(ta)}</pre></td>"
                f"<td><pre>{html.escape(why(c.b))}\n\n{html.escape(tb)}</pre></td></tr></table>"
            )
        return f"<h2>{title} ({len(changed)})</h2>" + "".join(rows)

    a_runs = {r.task_id: r for r in load_task_report(ws, cmp.run_a).results}
    rows = "".join(
        f"<tr><td>{html.escape(r.task_id)}</td><td>{html.escape(r.category)}</td>"
        + "".join(
            f"<td>{'pass' if x.success else 'fail'} · {x.steps} steps, {x.calls} calls</td>"
            for x in (a_runs[r.task_id], r)
        )
        + "</tr>"
        for r in load_task_report(ws, cmp.run_b).results
        if r.task_id in a_runs
    )
    table = (
        f"<table><tr><th>task</th><th>category</th><th>{html.escape(cmp.label_a)}</th>"
        f"<th>{html.escape(cmp.label_b)}</th></tr>{rows}</table>"
    )
    m = cmp.mcnemar
    head = (
        f"<h1>{html.escape(cmp.suite)}: {html.escape(cmp.label_a)} vs {html.escape(cmp.label_b)}</h1>"
        f"<p>success {cmp.success_a:.1%} → {cmp.success_b:.1%} on {cmp.n_paired} tasks; fixed {m.fixes}, "
        f"regressed {m.regressions}, McNemar p = {m.p_value:.3g}</p>"
    )
    if cmp.differs:
        head += f"<p><b>The runs differ besides the target:</b> {html.escape('; '.join(cmp.differs))}</p>"
    style = "<style>td{vertical-align:top;width:50%}pre{white-space:pre-wrap;font-size:12px}</style>"
    body = table + block("Fixed", cmp.fixes) + block("Regressed", cmp.regressions)
    return f"<!doctype html><meta charset=utf-8>{style}{head}{body}"


def compare_task_runs(ws: Workspace, run_a: str, run_b: str) -> TaskComparison:
    """Pair two task runs and write ``<ws>/task-runs/<run_b>/vs-<run_a>.{json,html}``."""
    cmp = compare_task_reports(load_task_report(ws, run_a), load_task_report(ws, run_b))
    if cmp.differs:
        log.warning("task runs differ besides the target", run_a=run_a, run_b=run_b, differs=cmp.differs)
    d = task_run_dir(ws, run_b)
    atomic_write_json(d / f"vs-{run_a}.json", cmp)
    atomic_write_text(d / f"vs-{run_a}.html", render_task_comparison_html(ws, cmp))
    return cmp


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
