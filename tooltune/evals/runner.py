"""Run a suite against any OpenAI-compatible endpoint: one model request per case, no tool execution.

Why pydantic-ai's direct API rather than an agent: an eval must see the model's *first* answer to a
fixed history — an agent would execute tools, retry on validation errors and hide format failures.
``OpenAIChatModel.request`` with the case's tools gives exactly one request and the raw answer.

Results are appended to ``<ws>/reports/<run_id>/cases.jsonl`` (flushed per case) so a run killed at
any point resumes without redoing or double-counting finished cases. A failed request is that
case's failure (``server_error``), never a crash; when the server stops answering altogether the run
stops early and says how to resume.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic_ai.direct import model_request
from pydantic_ai.exceptions import ModelConnectionError, ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from tooltune import __version__
from tooltune.dropped_calls import server_dropped_call
from tooltune.errors import TooltuneError
from tooltune.evals.report_html import render_html
from tooltune.evals.report_md import render_markdown
from tooltune.evals.results import RETRYABLE_ERRORS, CaseResult, EvalReport, RunMeta, build_report
from tooltune.evals.scoring import RawCall, Reason, Score, score_case
from tooltune.evals.suite import EvalCase, EvalSuite, parse_suite
from tooltune.logs import get_logger
from tooltune.workspace import Workspace, atomic_write_json, atomic_write_text, validate_name

log = get_logger(__name__)

DEFAULT_CONCURRENCY = 8
"""mlx_lm.server batches concurrent requests' decoding. Measured on the 0.5B, 2 cores, the server
prefilling one prompt at a time (as tooltune starts it on a CPU): on all 128 `coding-tools` cases, 8 in
flight answered 9.74 and 9.75 cases/min against 7.89 and 7.83 at 4, in both orders, every answer the
same (bench/results/eval_throughput_c8_full*.json); on BFCL simple_python's first 48, +31% and +30%
(eval_throughput_c8_bfcl*.json). A case waits longer (the 0.5B: 49 s against 30 s; the 1.5B is about
four times slower on a CPU), inside the 600 s request timeout."""
DEFAULT_MAX_TOKENS = 256
ProgressFn = Callable[[int, int, CaseResult], None]


class EvalInterrupted(TooltuneError):
    """The endpoint stopped answering; finished cases are saved and the run can be resumed."""

    def __init__(self, message: str, run_id: str, report: EvalReport) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.report = report


def new_run_id(suite: str, label: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    parts = [stamp, suite[:40], label[:30], secrets.token_hex(2)]
    return validate_name("-".join(p for p in parts if p), "run id")


def run_dir(ws: Workspace, run_id: str) -> Path:
    return ws.reports / validate_name(run_id, "run id")


def to_model_messages(messages: list[dict[str, Any]]) -> list[ModelMessage]:
    """Chat-format messages (incl. assistant ``tool_calls`` and ``role: tool`` results) to
    pydantic-ai messages, so multi-turn cases replay their earlier turns verbatim."""
    out: list[ModelMessage] = []
    pending: list[ModelRequestPart] = []
    last_ids: list[str] = []
    counter = 0

    def flush() -> None:
        nonlocal pending
        if pending:
            out.append(ModelRequest(parts=pending))
            pending = []

    for m in messages:
        role = m["role"]
        content = m.get("content") or ""
        if role == "system":
            pending.append(SystemPromptPart(content=content))
        elif role == "user":
            pending.append(UserPromptPart(content=content))
        elif role == "tool":
            call_id = m.get("tool_call_id") or (last_ids.pop(0) if last_ids else f"call_{counter}")
            pending.append(
                ToolReturnPart(tool_name=m.get("name") or "tool", content=content, tool_call_id=call_id)
            )
        elif role == "assistant":
            flush()
            parts: list[ModelResponsePart] = []
            if content:
                parts.append(TextPart(content=content))
            last_ids = []
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function", tc)
                counter += 1
                call_id = tc.get("id") or f"call_{counter}"
                last_ids.append(call_id)
                parts.append(
                    ToolCallPart(tool_name=fn["name"], args=fn.get("arguments") or {}, tool_call_id=call_id)
                )
            out.append(ModelResponse(parts=parts or [TextPart(content="")]))
    flush()
    return out


def tool_definitions(case: EvalCase) -> list[ToolDefinition]:
    """``strict=False`` keeps the schema verbatim (strict mode would add ``additionalProperties`` and
    change what the chat template shows the model)."""
    return [
        ToolDefinition(
            name=spec.name,
            description=spec.description or None,
            parameters_json_schema=spec.parameters,
            strict=False,
        )
        for spec in case.specs.values()
    ]


def make_model(base_url: str, model_name: str, *, timeout_s: float, http_client: Any = None) -> Any:
    """An ``OpenAIChatModel`` with SDK retries off: a failed case is recorded, not silently retried
    three times against a server that may be dead."""
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    client = AsyncOpenAI(
        base_url=base_url, api_key="local", max_retries=0, timeout=timeout_s, http_client=http_client
    )
    return OpenAIChatModel(model_name, provider=OpenAIProvider(openai_client=client))


def _error_result(case: EvalCase, repeat: int, kind: str, message: str, latency: float) -> CaseResult:
    score = Score(passed=False, reason=Reason.server_error, detail=message[:500])
    return CaseResult(
        case_id=case.id,
        category=case.category,
        repeat=repeat,
        expects_no_call=case.expects_no_call,
        native=score,
        lenient=score,
        latency_s=round(latency, 3),
        error=message[:2000],
        error_kind=kind,  # type: ignore[arg-type]
    )


async def run_case(model: Any, case: EvalCase, *, repeat: int, settings: ModelSettings) -> CaseResult:
    """One request, scored. Every failure mode becomes a recorded :class:`CaseResult`."""
    started = time.perf_counter()
    params = ModelRequestParameters(function_tools=tool_definitions(case), allow_text_output=True)
    try:
        response = await model_request(
            model, to_model_messages(case.messages), model_settings=settings, model_request_parameters=params
        )
    except ModelConnectionError as e:
        kind = "timeout" if "timeout" in type(e.__cause__).__name__.lower() else "connection"
        return _error_result(case, repeat, kind, f"{type(e).__name__}: {e}", time.perf_counter() - started)
    except ModelHTTPError as e:
        body = e.body if isinstance(e.body, str) else json.dumps(e.body, default=str)
        msg = f"HTTP {e.status_code}: {body}"
        return _error_result(case, repeat, "http_status", msg, time.perf_counter() - started)
    except Exception as e:  # malformed responses, unexpected SDK errors: this case fails, the run goes on
        return _error_result(case, repeat, "other", f"{type(e).__name__}: {e}", time.perf_counter() - started)
    latency = time.perf_counter() - started
    text = "".join(p.content for p in response.parts if isinstance(p, TextPart))
    calls = [
        RawCall(name=p.tool_name, arguments=p.args if isinstance(p.args, (dict, str)) else {})
        for p in response.parts
        if isinstance(p, ToolCallPart)
    ]
    dropped = server_dropped_call(response.finish_reason, has_calls=bool(calls), text=text)
    scored = score_case(case, calls, text, dropped_call=dropped)
    return CaseResult(
        case_id=case.id,
        category=case.category,
        repeat=repeat,
        expects_no_call=case.expects_no_call,
        raw_text=text,
        native_calls=calls,
        dropped_call=dropped,
        lenient_calls=scored.lenient_calls,
        parse_strategy=scored.parse_strategy,
        native=scored.native,
        lenient=scored.lenient,
        attempted=scored.attempted,
        latency_s=round(latency, 3),
        input_tokens=response.usage.input_tokens or 0,
        output_tokens=response.usage.output_tokens or 0,
    )


def load_results(path: Path, *, keep_retryable: bool = True) -> list[CaseResult]:
    """Finished results, first one per (case, repeat); a torn last line (killed mid-write) is dropped."""
    if not path.exists():
        return []
    seen: dict[tuple[str, int], CaseResult] = {}
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        try:
            r = CaseResult.model_validate_json(line)
        except ValueError:
            continue
        if not keep_retryable and r.error_kind in RETRYABLE_ERRORS:
            continue
        seen.setdefault(r.key, r)
    return list(seen.values())


class _CaseWriter:
    """Appends one JSON line per finished case and fsyncs, so a kill loses at most the case in flight."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = path.open("a", encoding="utf-8")
        self._lock = anyio.Lock()

    async def write(self, result: CaseResult) -> None:
        async with self._lock:
            self._f.write(result.model_dump_json() + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def _read_elapsed(d: Path) -> float:
    try:
        return float(json.loads((d / "timing.json").read_text())["wall_s"])
    except (OSError, ValueError, KeyError):
        return 0.0


def write_reports(ws: Workspace, report: EvalReport) -> Path:
    """report.json (source of truth), report.md and report.html, each written atomically."""

    d = run_dir(ws, report.meta.run_id)
    atomic_write_json(d / "report.json", report)
    atomic_write_text(d / "report.md", render_markdown(report))
    atomic_write_text(d / "report.html", render_html(report))
    return d


def load_report(ws: Workspace, run_id: str) -> EvalReport:
    """The saved report of a run, rebuilt from cases.jsonl when the run never got to write one."""
    d = run_dir(ws, run_id)
    if (d / "report.json").exists():
        return EvalReport.model_validate_json((d / "report.json").read_text("utf-8"))
    if not (d / "run.json").exists():
        raise TooltuneError(f"no eval run {run_id!r} in {ws.reports}; list runs with `tooltune eval runs`")
    meta = RunMeta.model_validate_json((d / "run.json").read_text("utf-8"))
    return build_report(meta, load_results(d / "cases.jsonl"), wall_s=_read_elapsed(d))


async def _execute(
    ws: Workspace,
    meta: RunMeta,
    suite: EvalSuite,
    *,
    concurrency: int,
    timeout_s: float,
    max_consecutive_connection_errors: int,
    on_progress: ProgressFn | None,
    http_client: Any,
) -> EvalReport:
    d = run_dir(ws, meta.run_id)
    cases_path = d / "cases.jsonl"
    done = load_results(cases_path, keep_retryable=False)
    # rewrite without torn lines and retryable failures, so appends start on a clean line
    atomic_write_text(cases_path, "".join(r.model_dump_json() + "\n" for r in done))
    done_keys = {r.key for r in done}
    todo = [(c, k) for k in range(meta.repeats) for c in suite.cases if (c.id, k) not in done_keys]
    total = len(suite.cases) * meta.repeats
    log.info("eval.start", run_id=meta.run_id, todo=len(todo), done=len(done), concurrency=concurrency)

    urls = meta.shard_urls or [meta.base_url]
    models = [make_model(url, meta.model_name, timeout_s=timeout_s, http_client=http_client) for url in urls]
    try:
        base_settings: ModelSettings = {"temperature": meta.temperature, "max_tokens": meta.max_tokens}
        if meta.extra_body:
            base_settings["extra_body"] = dict(meta.extra_body)
        queue = deque(todo)
        writer = _CaseWriter(cases_path)
        results = list(done)
        failures = [0] * len(urls)  # consecutive unreachable answers per endpoint
        stopped = [False] * len(urls)
        busy = [0]  # cases in flight on any endpoint
        # a case an endpoint could not answer (unreachable, timed out): the endpoints it failed on, and its
        # last failure, recorded once no endpoint that has not tried it is left
        failed_on: dict[tuple[str, int], set[int]] = {}
        last_failure: dict[tuple[str, int], CaseResult] = {}
        prior_wall = _read_elapsed(d)
        started = time.perf_counter()

        def untried_elsewhere(key: tuple[str, int]) -> bool:
            return any(not stopped[j] and j not in failed_on.get(key, ()) for j in range(len(urls)))

        def take(ep: int) -> tuple[EvalCase, int] | None:
            """The next queued case this endpoint has not failed on."""
            for i, (case, repeat) in enumerate(queue):
                if ep not in failed_on.get((case.id, repeat), ()):
                    del queue[i]
                    return case, repeat
            return None

        async def worker(ep: int) -> None:
            """``concurrency`` of these per endpoint take the next case from one queue, so a faster
            server takes more. A case an endpoint could not answer goes back to the queue for an endpoint
            that has not tried it, so each tries it at most once; with none left its failure is recorded
            (resume retries it)."""
            while not stopped[ep]:
                item = take(ep)
                if item is None:
                    if not queue and busy[0] == 0:
                        return
                    await anyio.sleep(0.05)  # a case in flight elsewhere may come back to the queue
                    continue
                busy[0] += 1
                try:
                    await one(ep, *item)
                finally:
                    busy[0] -= 1

        async def record(result: CaseResult) -> None:
            await writer.write(result)
            results.append(result)
            # elapsed time survives a kill too, so a resumed run's cases/min stays honest
            atomic_write_json(d / "timing.json", {"wall_s": prior_wall + (time.perf_counter() - started)})
            if on_progress:
                on_progress(len(results), total, result)

        async def one(ep: int, case: EvalCase, repeat: int) -> None:
            settings = dict(base_settings)
            if meta.temperature > 0 and meta.seed is not None:
                # only when sampling: a seed turns mlx_lm.server's batching off
                settings["seed"] = meta.seed + repeat
            result = await run_case(models[ep], case, repeat=repeat, settings=settings)  # type: ignore[arg-type]
            if result.error_kind not in RETRYABLE_ERRORS:
                failures[ep] = 0
                await record(result)
                return
            failures[ep] += 1
            key = (case.id, repeat)
            failed_on.setdefault(key, set()).add(ep)
            last_failure[key] = result
            if failures[ep] >= max_consecutive_connection_errors:
                stopped[ep] = True
                log.warning("eval.endpoint_stopped", url=urls[ep], failures=failures[ep])
                # queued cases only this endpoint had left to try them: their failures stand
                orphans = [
                    (c, k) for c, k in queue if (c.id, k) in last_failure and not untried_elsewhere((c.id, k))
                ]
                for item in orphans:
                    queue.remove(item)
                for c, k in orphans:
                    await record(last_failure[c.id, k])
            if untried_elsewhere(key):
                queue.append((case, repeat))
            else:
                await record(result)

        try:
            async with anyio.create_task_group() as tg:
                for ep in range(len(urls)):
                    for _ in range(max(1, concurrency)):
                        tg.start_soon(worker, ep)
        finally:
            writer.close()
            wall = prior_wall + (time.perf_counter() - started)
            atomic_write_json(d / "timing.json", {"wall_s": wall})
        state = {"stopped": all(stopped)}
        report = build_report(meta, load_results(cases_path), wall_s=wall)
        write_reports(ws, report)
        if state["stopped"]:
            raise EvalInterrupted(
                f"the model server at {' and '.join(urls)} stopped answering after {report.n_results} of "
                f"{total} "
                f"cases; start it again and resume with `tooltune eval --resume {meta.run_id}`",
                meta.run_id,
                report,
            )
        log.info(
            "eval.done",
            run_id=meta.run_id,
            native=report.overall.native_rate,
            lenient=report.overall.lenient_rate,
        )
        return report
    finally:
        if http_client is None:
            # ours: close it on this event loop. Left open, openai closes it from __del__ on whichever loop
            # runs then, and a transport of a finished loop raises "Event loop is closed" there.
            for model in models:
                await model.client.close()


async def run_suite(
    suite: EvalSuite,
    *,
    ws: Workspace,
    base_url: str | Sequence[str],
    model_name: str,
    extra_body: dict[str, Any] | None = None,
    adapter: str | None = None,
    label: str = "",
    run_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    repeats: int = 1,
    temperature: float = 0.0,
    seed: int | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    limit: int | None = None,
    timeout_s: float = 600.0,
    max_consecutive_connection_errors: int = 3,
    loss_curve: list[tuple[int, float]] | None = None,
    on_progress: ProgressFn | None = None,
    http_client: Any = None,
) -> EvalReport:
    """Run ``suite`` (first ``limit`` cases per category) ``repeats`` times against the endpoint.

    Several endpoints serving the same model (``base_url`` a list) share the cases, ``concurrency``
    requests each, and make one run.

    Writes ``<ws>/reports/<run_id>/{run.json, suite.jsonl, cases.jsonl, report.*}`` and returns the
    report. Raises :class:`EvalInterrupted` (with the partial report) if the server stops answering.
    """
    if repeats < 1:
        raise TooltuneError("repeats must be at least 1")
    urls = [base_url] if isinstance(base_url, str) else list(dict.fromkeys(base_url))
    if not urls:
        raise TooltuneError("no endpoint to evaluate: give at least one base URL")
    if repeats > 1 and temperature == 0:
        log.warning("eval.repeats_at_temperature_0", hint="repeats at temperature 0 give identical answers")
    suite = suite.subset(limit)
    ws.ensure()
    run_id = (
        validate_name(run_id, "run id") if run_id else new_run_id(suite.name, label or (adapter or "base"))
    )
    d = run_dir(ws, run_id)
    if (d / "run.json").exists():
        raise TooltuneError(f"eval run {run_id!r} already exists; resume it with --resume {run_id}")
    d.mkdir(parents=True, exist_ok=True)
    meta = RunMeta(
        run_id=run_id,
        suite=suite.name,
        suite_hash=suite.hash,
        suite_source=suite.source,
        n_cases=len(suite.cases),
        categories=suite.categories,
        model_name=model_name,
        base_url=urls[0],
        shard_urls=urls if len(urls) > 1 else [],
        adapter=adapter,
        label=label or (adapter or "base"),
        temperature=temperature,
        seed=seed,
        repeats=repeats,
        concurrency=concurrency,
        max_tokens=max_tokens,
        extra_body=extra_body or {},
        limit=limit,
        loss_curve=loss_curve or [],
        tooltune_version=__version__,
    )
    atomic_write_text(d / "suite.jsonl", suite.to_jsonl())
    atomic_write_json(d / "run.json", meta)
    return await _execute(
        ws,
        meta,
        suite,
        concurrency=concurrency,
        timeout_s=timeout_s,
        max_consecutive_connection_errors=max_consecutive_connection_errors,
        on_progress=on_progress,
        http_client=http_client,
    )


async def resume_run(
    ws: Workspace,
    run_id: str,
    *,
    base_url: str | Sequence[str] | None = None,
    model_name: str | None = None,
    extra_body: dict[str, Any] | None = None,
    concurrency: int | None = None,
    timeout_s: float = 600.0,
    max_consecutive_connection_errors: int = 3,
    on_progress: ProgressFn | None = None,
    http_client: Any = None,
) -> EvalReport:
    """Finish an interrupted run: same suite snapshot and settings, only the missing cases (plus those
    that failed because the server was unreachable). The endpoint may have moved (new port)."""
    d = run_dir(ws, run_id)
    if not (d / "run.json").exists():
        raise TooltuneError(f"no eval run {run_id!r} in {ws.reports}; check the id with `tooltune eval runs`")
    meta = RunMeta.model_validate_json((d / "run.json").read_text("utf-8"))
    suite = parse_suite((d / "suite.jsonl").read_text("utf-8"), name=meta.suite, source=meta.suite_source)
    updates: dict[str, Any] = {}
    if base_url:
        urls = [base_url] if isinstance(base_url, str) else list(dict.fromkeys(base_url))
        updates["base_url"] = urls[0]
        updates["shard_urls"] = urls if len(urls) > 1 else []
    if model_name:
        updates["model_name"] = model_name
    if extra_body is not None:
        updates["extra_body"] = extra_body
    if updates:
        meta = meta.model_copy(update=updates)
        atomic_write_json(d / "run.json", meta)
    return await _execute(
        ws,
        meta,
        suite,
        concurrency=concurrency or meta.concurrency,
        timeout_s=timeout_s,
        max_consecutive_connection_errors=max_consecutive_connection_errors,
        on_progress=on_progress,
        http_client=http_client,
    )


def list_runs(ws: Workspace) -> list[RunMeta]:
    out = []
    for p in sorted(ws.reports.glob("*/run.json")):
        try:
            out.append(RunMeta.model_validate_json(p.read_text("utf-8")))
        except ValueError:
            continue
    return sorted(out, key=lambda m: m.created)


def rescore_run(ws: Workspace, run_id: str) -> EvalReport:
    """Score a finished run's recorded answers again with the current scorer and parser.

    The raw text and native calls are stored per case, so a scorer fix never needs the model again.
    """
    d = run_dir(ws, run_id)
    if not (d / "run.json").exists():
        raise TooltuneError(f"no eval run {run_id!r} in {ws.reports}; check the id with `tooltune eval runs`")
    meta = RunMeta.model_validate_json((d / "run.json").read_text("utf-8"))
    suite = parse_suite((d / "suite.jsonl").read_text("utf-8"), name=meta.suite, source=meta.suite_source)
    cases = {c.id: c for c in suite.cases}
    rescored = []
    for r in load_results(d / "cases.jsonl"):
        case = cases.get(r.case_id)
        if case is not None and r.error is None:
            s = score_case(case, r.native_calls, r.raw_text, dropped_call=r.dropped_call)
            r = r.model_copy(
                update={
                    "native": s.native,
                    "lenient": s.lenient,
                    "attempted": s.attempted,
                    "lenient_calls": s.lenient_calls,
                    "parse_strategy": s.parse_strategy,
                }
            )
        rescored.append(r)
    atomic_write_text(d / "cases.jsonl", "".join(r.model_dump_json() + "\n" for r in rescored))
    report = build_report(meta, rescored, wall_s=_read_elapsed(d))
    write_reports(ws, report)
    return report
