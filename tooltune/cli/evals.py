"""`tooltune eval`: run tool-calling eval suites, compare baseline vs adapter, write reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio
import cyclopts
from cyclopts import Parameter

from tooltune.cli import context
from tooltune.errors import TooltuneError
from tooltune.evals.results import CaseResult, EvalReport
from tooltune.evals.runner import DEFAULT_CONCURRENCY, EvalInterrupted, list_runs, load_report, run_dir

app = cyclopts.App(name="eval", help="Run tool-calling eval suites and compare baseline vs adapter.")


def _progress(done: int, total: int, r: CaseResult) -> None:
    mark = "ok " if r.lenient.passed else "ERR" if r.error else "-- "
    context.console_err.print(
        f"[{done}/{total}] {mark} {r.case_id:<28} native={'pass' if r.native.passed else r.native.reason} "
        f"lenient={'pass' if r.lenient.passed else r.lenient.reason} {r.latency_s:.1f}s"
    )


def _summary(report: EvalReport) -> None:
    ws = context.workspace()
    d = run_dir(ws, report.meta.run_id)
    o = report.overall
    context.console.print(
        f"{report.meta.label or report.meta.run_id}: "
        f"native {o.native_pass}/{o.n} ({100 * o.native_rate:.1f}%), "
        f"lenient {o.lenient_pass}/{o.n} ({100 * o.lenient_rate:.1f}%) · {report.cases_per_min:.1f} cases/min"
    )
    for cat, m in report.categories.items():
        context.console.print(
            f"  {cat:<20} native {m.native_pass:>3}/{m.n:<3} lenient {m.lenient_pass:>3}/{m.n}"
        )
    context.console.print(f"run {report.meta.run_id}: {d}/report.html")


@app.default
def run(
    *,
    suite: str = "coding-tools",
    adapter: str | None = None,
    baseline: bool = False,
    model: str | None = None,
    base_url: Annotated[list[str] | None, Parameter(consume_multiple=False)] = None,
    limit: int | None = None,
    repeats: int = 1,
    temperature: float = 0.0,
    seed: int | None = None,
    concurrency: int | None = None,
    max_tokens: int | None = None,
    resume: str | None = None,
    run_id: str | None = None,
    tasks: str | None = None,
    lenient_tools: bool = False,
    repeat_guard: bool = True,
) -> int:
    """Run an eval suite (default: the built-in coding-tools suite), or an agent task suite (--tasks).

    Parameters
    ----------
    suite
        Built-in name (coding-tools), a suite imported into the workspace, or a .jsonl path.
    adapter
        Registered adapter to evaluate. With --baseline, also run the base model and compare.
    baseline
        Run the base model (no adapter); with --adapter, run both and compare them.
    model
        Base model (cache name or path); default: the adapter's base, else the configured default.
        With --base-url: the "model" field to send.
    base_url
        Evaluate an already-running OpenAI-compatible endpoint instead of starting mlx_lm.server. Give
        it again for more endpoints serving the same model: they share the cases (one run).
    limit
        Only the first N cases of each category (with --tasks: the first N tasks).
    repeats
        Run every case K times (use with --temperature > 0).
    temperature
        Sampling temperature (0 = greedy); with --tasks, of every request the agent makes (a task run
        records it and is never resumed at another).
    seed
        Sampling seed; sent only when temperature > 0 (a seed disables the server's batching).
    concurrency
        Requests in flight at once (the server batches them; default 8); with --tasks,
        tasks worked at once, each in its own sandbox (default 1).
    max_tokens
        Generation limit per answer (default 256; with --tasks the server's own, since the agent writes
        whole files through write_file).
    resume
        Finish an interrupted run with this id (skips cases already recorded).
    run_id
        Id for the new run (default: time-suite-label-random); with --adapter and --baseline the two
        runs are ID-baseline and ID-adapter. Without --base-url a finished run with that id is reused
        and an interrupted one resumed.
    tasks
        Run an agent task suite instead (built-in coding-tasks, or a YAML file; docs/TASKS.md): the coding
        agent works each task in a fresh copy of its project; success is decided from the end state.
    lenient_tools
        With --tasks: recover tool calls the model wrote as text (counted apart); off = native calls only.
    repeat_guard
        With --tasks: the agent answers a call that repeats an earlier one of the task (same tool, same
        arguments, nothing changed since) instead of running it again, as `serve` and `ask` do;
        --no-repeat-guard runs every call, to see the model's loops as they are.
    """
    if concurrency is not None and concurrency < 1:
        raise TooltuneError(f"--concurrency must be at least 1 (got {concurrency})")
    if temperature < 0:
        raise TooltuneError(f"--temperature must be 0 (greedy) or more (got {temperature})")
    if tasks is not None:
        given = {"--repeats": repeats != 1, "--seed": seed is not None, "--resume": bool(resume)}
        unused = [flag for flag, on in given.items() if on]
        if unused:
            raise TooltuneError(
                f"{', '.join(unused)} do not apply to --tasks (a task run resumes with --run-id; "
                "run it again under another --run-id to sample again)"
            )
        return run_tasks(
            tasks, adapter=adapter, baseline=baseline, model=model, base_url=base_url, limit=limit,
            max_tokens=max_tokens, run_id=run_id, lenient_tools=lenient_tools, repeat_guard=repeat_guard,
            temperature=temperature if temperature > 0 else None,
            concurrency=1 if concurrency is None else concurrency,
        )  # fmt: skip
    ws = context.workspace()
    settings = context.settings()
    concurrency = DEFAULT_CONCURRENCY if concurrency is None else concurrency
    opts: dict[str, Any] = dict(
        concurrency=concurrency,
        repeats=repeats,
        temperature=temperature,
        seed=seed,
        limit=limit,
        max_tokens=max_tokens or 256,
    )

    async def main() -> list[EvalReport]:
        from tooltune.evals.runner import resume_run, run_suite
        from tooltune.evals.suite import load_suite

        if base_url:
            if resume:
                return [
                    await resume_run(
                        ws,
                        resume,
                        base_url=base_url,
                        model_name=model,
                        concurrency=concurrency,
                        on_progress=_progress,
                    )
                ]
            if adapter and baseline:
                raise TooltuneError(
                    "--adapter with --baseline needs tooltune to start the server; drop --base-url"
                )
            s = load_suite(suite, ws)
            return [
                await run_suite(
                    s,
                    ws=ws,
                    base_url=base_url,
                    model_name=model or "default",
                    adapter=adapter,
                    run_id=run_id,
                    on_progress=_progress,
                    **opts,
                )
            ]

        from tooltune.evals.service import evaluate_on_server
        from tooltune.serving.model_server import ModelServer

        if resume:
            meta = load_report(ws, resume).meta
            async with ModelServer(Path(meta.model_name), settings=settings, adapter=meta.adapter) as server:
                return [
                    await resume_run(
                        ws,
                        resume,
                        base_url=server.base_url,
                        model_name=server.model_name,
                        extra_body=server.extra_body,
                        concurrency=concurrency,
                        on_progress=_progress,
                    )
                ]
        path, targets, run_ids = _served_targets(model, adapter, baseline, run_id)
        async with ModelServer(path, settings=settings, adapter=targets[0]) as server:
            evaluation = await evaluate_on_server(
                server,
                suite,
                ws=ws,
                targets=targets,
                run_ids=run_ids,
                on_target=lambda _i, _label: _progress,
                **opts,
            )
        return evaluation.reports

    try:
        reports = anyio.run(main)
    except EvalInterrupted as e:
        _summary(e.report)
        raise
    for r in reports:
        _summary(r)
    if len(reports) == 2:
        return compare(reports[0].meta.run_id, reports[1].meta.run_id)
    return 0


@app.command(name="compare")
def compare(run_a: str, run_b: str) -> int:
    """Compare two runs case by case (McNemar exact test), e.g. baseline then adapter.

    Parameters
    ----------
    run_a
        Run id of the reference (usually the baseline).
    run_b
        Run id of the candidate (usually the adapter).
    """
    from tooltune.evals.report_md import render_comparison_markdown
    from tooltune.evals.service import compare_runs, comparison_paths

    ws = context.workspace()
    cmp = compare_runs(ws, run_a, run_b)
    context.console.print(render_comparison_markdown(cmp, max_items=10), markup=False, highlight=False)
    context.console.print(f"html: {comparison_paths(ws, run_a, run_b)['html']}")
    return 0


@app.command(name="import-bfcl")
def import_bfcl_cmd(
    file: Path,
    *,
    answers: Path | None = None,
    name: str | None = None,
) -> int:
    """Import a BFCL data file as a suite (answers found in possible_answer/ beside it).

    Parameters
    ----------
    file
        A BFCL_v*_<category>.json file.
    answers
        Its possible_answer file (default: possible_answer/<same name> next to FILE).
    name
        Suite name (default: bfcl-<category>).
    """
    from tooltune.evals.bfcl_import import import_bfcl
    from tooltune.evals.suite import suite_path

    ws = context.workspace()
    imported = import_bfcl(file, answers=answers, name=name, ws=ws)
    suite = imported.suite
    context.console.print(
        f"suite {suite.name}: {len(suite.cases)} cases {suite.categories} → {suite_path(ws, suite.name)}"
    )
    if imported.skipped:
        context.console_err.print(f"{len(imported.skipped)} case(s) skipped:", markup=False)
        for reason in imported.skipped:
            context.console_err.print(f"  {reason}", markup=False, highlight=False)
    if imported.adjusted:
        context.console_err.print(
            f"{len(imported.adjusted)} answer(s) imported with a change that scores them as BFCL does:",
            markup=False,
        )
        for note in imported.adjusted:
            context.console_err.print(f"  {note}", markup=False, highlight=False)
    return 0


@app.command(name="rescore")
def rescore(run_id: str) -> int:
    """Score a run's recorded answers again with the current scorer (no model needed).

    Parameters
    ----------
    run_id
        The run to rescore.
    """
    from tooltune.evals.runner import rescore_run

    _summary(rescore_run(context.workspace(), run_id))
    return 0


@app.command(name="runs")
def runs() -> int:
    """List eval runs in the workspace."""
    for m in list_runs(context.workspace()):
        context.console.print(f"{m.run_id}  suite={m.suite} adapter={m.adapter or '-'} cases={m.n_cases}")
    return 0


@app.command(name="suites")
def suites() -> int:
    """List available suites (built-in and imported) and the built-in agent task suites (--tasks)."""
    from tooltune.evals.suite import list_suites
    from tooltune.evals.tasks import BUILTIN_TASK_SUITES

    for name in list_suites(context.workspace()):
        context.console.print(name)
    for name in BUILTIN_TASK_SUITES:
        context.console.print(f"{name}  (agent tasks: --tasks {name})", highlight=False)
    return 0


@app.command(name="report")
def report(run_id: str, *, format: Annotated[str, Parameter(name="--format")] = "md") -> int:
    """Print a run's report (md or json) and re-render its files.

    Parameters
    ----------
    run_id
        The run to show.
    format
        md or json.
    """
    from tooltune.evals.report_md import render_markdown
    from tooltune.evals.runner import write_reports

    ws = context.workspace()
    rep = load_report(ws, run_id)
    write_reports(ws, rep)
    text = rep.model_dump_json(indent=2) if format == "json" else render_markdown(rep)
    context.console.print(text, markup=False, highlight=False)
    return 0


def _served_targets(
    model: str | None, adapter: str | None, baseline: bool, run_id: str | None
) -> tuple[Path, list[str | None], list[str | None]]:
    """The model to serve (the one named, else the adapter's base, else the default), the targets in
    order (None = the base model) and their run ids (ID-baseline / ID-adapter when both run)."""
    path = context.served_model_path(model, adapter)
    targets: list[str | None] = ([None] if baseline or not adapter else []) + ([adapter] if adapter else [])
    run_ids: list[str | None] = [run_id] * len(targets)
    if run_id and len(targets) == 2:
        run_ids = [f"{run_id}-baseline", f"{run_id}-adapter"]
    return path, targets, run_ids


def _task_progress(done: int, total: int, r: Any) -> None:
    why = "; ".join(o.detail for o in r.checks if not o.passed) or (r.error or "")
    context.console_err.print(
        f"[{done}/{total}] {'ok ' if r.success else '-- '} {r.task_id:<28} steps={r.steps} calls={r.calls} "
        f"{r.wall_s:.0f}s {why[:80]}",
        highlight=False,
    )


def run_tasks(
    suite_ref: str,
    *,
    adapter: str | None,
    baseline: bool,
    model: str | None,
    base_url: list[str] | None,
    limit: int | None,
    max_tokens: int | None,
    run_id: str | None,
    lenient_tools: bool,
    repeat_guard: bool = True,
    temperature: float | None = None,
    concurrency: int = 1,
) -> int:
    """`eval --tasks`: baseline and/or adapter through the agent on every task, then the comparison."""
    from tooltune.evals.task_compare import compare_task_runs
    from tooltune.evals.task_records import TaskReport, task_run_dir
    from tooltune.evals.task_runner import evaluate_tasks_on_server, run_task_suite
    from tooltune.evals.tasks import load_task_suite

    ws = context.workspace()
    settings = context.settings()
    suite = load_task_suite(suite_ref)
    opts: dict[str, Any] = dict(
        ws=ws, lenient_tools=lenient_tools, limit=limit, max_tokens=max_tokens, on_progress=_task_progress,
        repeat_guard=repeat_guard, temperature=temperature, concurrency=concurrency,
    )  # fmt: skip

    async def main() -> list[TaskReport]:
        if base_url:
            if len(base_url) > 1 or (adapter and baseline):
                raise TooltuneError(
                    "--tasks with --base-url runs one endpoint: give one --base-url, no --baseline"
                )
            from tooltune.agent.agent import RemoteEndpoint

            endpoint = RemoteEndpoint(base_url=base_url[0].rstrip("/"), model_name=model or "default")
            return [await run_task_suite(suite, server=endpoint, adapter=adapter, run_id=run_id,
                                         model_name=endpoint.model_name, **opts)]  # fmt: skip
        from tooltune.serving.model_server import ModelServer

        path, targets, ids = _served_targets(model, adapter, baseline, run_id)
        async with ModelServer(path, settings=settings, adapter=targets[0]) as server:
            reports, _ = await evaluate_tasks_on_server(
                server, suite, ws=ws, targets=targets, run_ids=ids, on_target=lambda _i, _l: _task_progress,
                lenient_tools=lenient_tools, limit=limit, max_tokens=max_tokens, repeat_guard=repeat_guard,
                temperature=temperature, concurrency=concurrency,
            )  # fmt: skip
        return reports

    reports = anyio.run(main)
    for r in reports:
        s = r.summary()
        context.console.print(
            f"{s['label']}: {s['succeeded']}/{s['tasks']} tasks ({100 * s['success']:.0f}%), "
            f"{s['calls']} calls, "
            f"{s['failed_calls']} failed, {s['invalid_calls']} invalid, {s['dropped_calls']} dropped, "
            f"{s['recovered_text_calls']} recovered from text, {s['degenerate_cuts']} cut off, "
            f"{s['repeated_calls']} repeats not run again"
            f" · run {r.meta.run_id}",
            highlight=False,
        )
        for cat, c in s["categories"].items():
            context.console.print(f"  {cat:<20} {c['succeeded']:>3}/{c['tasks']}", highlight=False)
    if len(reports) == 2:
        cmp = compare_task_runs(ws, reports[0].meta.run_id, reports[1].meta.run_id)
        m = cmp.mcnemar
        context.console.print(
            f"{cmp.label_a} {cmp.success_a:.0%} -> {cmp.label_b} {cmp.success_b:.0%}: fixed {m.fixes}, "
            f"regressed {m.regressions}, McNemar p = {m.p_value:.3g}; "
            f"{task_run_dir(ws, reports[1].meta.run_id)}/vs-{reports[0].meta.run_id}.html",
            highlight=False,
        )
        if cmp.differs:
            context.console.print(
                f"the runs differ besides the target: {'; '.join(cmp.differs)}", highlight=False
            )
    return 0
