"""The eval orchestration shared by the CLI, the MCP server and the demo.

Kept separate from the runner so the runner stays endpoint-agnostic: these functions know about
:class:`~tooltune.serving.model_server.ModelServer` (switch adapter, hold it pinned while a suite
runs) and about where adapters keep their training loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from tooltune.adapters.registry import AdapterRegistry
from tooltune.errors import TooltuneError
from tooltune.evals.compare import Comparison, compare_reports
from tooltune.evals.report_html import render_comparison_html
from tooltune.evals.report_md import render_comparison_markdown
from tooltune.evals.results import RETRYABLE_ERRORS, EvalReport, RunMeta
from tooltune.evals.runner import (
    DEFAULT_CONCURRENCY,
    ProgressFn,
    load_report,
    resume_run,
    run_dir,
    run_suite,
)
from tooltune.evals.suite import EvalSuite, load_suite, parse_suite
from tooltune.logs import get_logger
from tooltune.serving.model_server import ModelServer
from tooltune.workspace import Workspace, atomic_write_json, atomic_write_text

log = get_logger(__name__)


def adapter_loss_curve(ws: Workspace, adapter: str) -> list[tuple[int, float]]:
    """Train-loss points of the run that produced ``adapter`` (empty when unknown): the adapter's
    ``tooltune.json`` names its ``run_id``; the run's ``events.jsonl`` has ``kind: train`` lines."""
    try:
        record = json.loads((ws.adapter_dir(adapter) / "tooltune.json").read_text("utf-8"))
    except (OSError, ValueError):
        return []
    run_id = record.get("run_id") or (record.get("train") or {}).get("run_id")
    if not run_id:
        return []
    events = ws.runs / str(run_id) / "events.jsonl"
    points: list[tuple[int, float]] = []
    if events.exists():
        for line in events.read_text("utf-8").splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("kind") == "train" and "iteration" in e and "train_loss" in e:
                points.append((int(e["iteration"]), float(e["train_loss"])))
    return points


def _same_model(a: str, b: str) -> bool:
    return a == b or Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _check_same_target(meta: RunMeta, server: ModelServer, adapter: str | None) -> None:
    """A run id names one model and adapter: reusing or resuming it with others would report one
    model's answers as another's (a bench baseline id without the model in it did exactly that)."""
    if _same_model(meta.model_name, server.model_name) and meta.adapter == adapter:
        return
    raise TooltuneError(
        f"eval run {meta.run_id!r} was made with model {meta.model_name} and adapter "
        f"{meta.adapter or 'none'}, not {server.model_name} with {adapter or 'none'}; give this run "
        "another id (or delete that one)"
    )


def _check_same_cases(d: Path, suite: EvalSuite, limit: int | None) -> None:
    """A run id names one set of cases with their expected answers: reusing or resuming it for others
    would score answers by another truth (an on-policy judge that changed between versions did)."""
    stored = parse_suite(
        (d / "suite.jsonl").read_text("utf-8"), name=suite.name, source=str(d / "suite.jsonl")
    )
    if stored.cases == suite.subset(limit).cases:
        return
    raise TooltuneError(
        f"eval run {d.name!r} was made for other cases or expected answers of suite {suite.name!r} than "
        "these (the suite or its judge changed since); give this run another id (or delete that one)"
    )


async def run_suite_on_server(
    server: ModelServer,
    suite: EvalSuite | str,
    *,
    ws: Workspace,
    adapter: str | None = None,
    label: str = "",
    run_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    repeats: int = 1,
    temperature: float = 0.0,
    seed: int | None = None,
    limit: int | None = None,
    max_tokens: int = 256,
    extra_body: dict[str, Any] | None = None,
    on_progress: ProgressFn | None = None,
) -> EvalReport:
    """Serve ``adapter`` (None = baseline) on a running ModelServer and run the suite while the
    adapter is pinned, so a concurrent switch cannot change the model mid-run. ``extra_body`` adds
    request fields (e.g. ``logit_bias``); the server's adapter selection always wins over it.

    With a fixed ``run_id`` the call is idempotent: a finished run is returned as it is and an
    interrupted one is resumed (only its missing cases run) — what resumable pipelines want. Cases the
    server did not answer (unreachable, timed out) count as missing: a rerun asks them again.

    A complete run of an adapter is recorded in its registry entry (``eval_scores[suite]``), whichever
    skin ran it, so `adapters list` and the MCP ``list_adapters`` show what it was measured at.
    """
    if run_id is not None:
        d = run_dir(ws, run_id)
        if (d / "run.json").exists():
            meta = RunMeta.model_validate_json((d / "run.json").read_text("utf-8"))
            _check_same_target(meta, server, adapter)
            if isinstance(suite, EvalSuite) and (d / "suite.jsonl").is_file():
                _check_same_cases(d, suite, limit)
        done = load_report(ws, run_id) if (d / "report.json").exists() else None
        unanswered = sum(r.error_kind in RETRYABLE_ERRORS for r in done.results) if done else 0
        if done is not None and done.complete and not unanswered:
            log.info("eval.reused", run_id=run_id)
            return _recorded(ws, adapter, done)
    suite = load_suite(suite, ws) if isinstance(suite, str) else suite
    await server.switch_adapter(adapter, record=False)  # an eval never changes what `serve` picks up
    async with server.pinned():
        body = {**(extra_body or {}), **server.extra_body}
        endpoint = dict(base_url=server.base_url, model_name=server.model_name, extra_body=body)
        if run_id is not None and (run_dir(ws, run_id) / "run.json").exists():
            log.info("eval.resumed", run_id=run_id)
            resumed = resume_run(ws, run_id, concurrency=concurrency, on_progress=on_progress, **endpoint)
            return _recorded(ws, adapter, await resumed)
        report = await run_suite(
            suite,
            ws=ws,
            adapter=adapter,
            label=label or (adapter or "baseline"),
            run_id=run_id,
            concurrency=concurrency,
            repeats=repeats,
            temperature=temperature,
            seed=seed,
            limit=limit,
            max_tokens=max_tokens,
            loss_curve=adapter_loss_curve(ws, adapter) if adapter else None,
            on_progress=on_progress,
            **endpoint,
        )
        return _recorded(ws, adapter, report)


def _recorded(ws: Workspace, adapter: str | None, report: EvalReport) -> EvalReport:
    """Record a complete run in the adapter's entry when it measures the adapter: answers at temperature
    0 (a sampling run, e.g. ``tooltune data sample``'s, is training material, not a score)."""
    if adapter is not None and report.complete and report.meta.temperature == 0:
        record_eval_scores(ws, adapter, report)
    return report


def record_eval_scores(ws: Workspace, adapter: str, report: EvalReport) -> None:
    """``eval_scores[suite] = {overall rates, n, limit, run_id}`` in the adapter's record (the latest
    complete run of that suite wins; an adapter that is not in the registry is left alone)."""
    registry = AdapterRegistry(ws)
    if adapter not in registry.names():
        return
    entry = {
        "overall": report.rates()["overall"],
        "n": report.overall.n,
        "limit": report.meta.limit,
        "run_id": report.meta.run_id,
    }
    registry.update_eval_scores(adapter, {report.meta.suite: entry})


def comparison_paths(ws: Workspace, run_a: str, run_b: str) -> dict[str, Path]:
    d = run_dir(ws, run_b)
    return {ext: d / f"vs-{run_a}.{ext}" for ext in ("json", "md", "html")}


def compare_runs(ws: Workspace, run_a: str, run_b: str) -> Comparison:
    """Pair two saved runs case by case and write ``<ws>/reports/<run_b>/vs-<run_a>.{json,md,html}``."""
    cmp = compare_reports(load_report(ws, run_a), load_report(ws, run_b))
    paths = comparison_paths(ws, run_a, run_b)
    atomic_write_json(paths["json"], cmp)
    atomic_write_text(paths["md"], render_comparison_markdown(cmp))
    atomic_write_text(paths["html"], render_comparison_html(cmp))
    return cmp


TargetProgress = Callable[[int, str], ProgressFn | None]


@dataclass
class Evaluation:
    """What :func:`evaluate_on_server` returns: one report per target, in order, and their paired
    comparison when there were two."""

    reports: list[EvalReport]
    comparison: Comparison | None = None


def target_label(target: str | None) -> str:
    return target or "baseline"


async def evaluate_on_server(
    server: ModelServer,
    suite: EvalSuite | str,
    *,
    ws: Workspace,
    targets: Sequence[str | None],
    run_ids: Sequence[str | None] | None = None,
    labels: Sequence[str] | None = None,
    on_target: TargetProgress | None = None,
    restore: bool = False,
    **options: Any,
) -> Evaluation:
    """The one baseline → adapter → compare loop the CLI, the MCP server and the demo run.

    Each target (``None`` = the base model) is evaluated in turn on one running server with
    :func:`run_suite_on_server` (pinned, resumable with a fixed run id, scores recorded in the registry);
    two targets are then paired case by case and the comparison reports written. ``on_target(i, label)``
    is called as target ``i`` starts and may return the per-case progress callback for its run.
    With ``restore`` the adapter served before is served again afterwards (also on failure), so an eval
    never changes what a connected client talks to.
    """
    suite = load_suite(suite, ws) if isinstance(suite, str) else suite
    ids = list(run_ids) if run_ids is not None else [None] * len(targets)
    names = list(labels) if labels is not None else [target_label(t) for t in targets]
    if not (len(ids) == len(names) == len(targets)) or not targets:
        raise ValueError("evaluate_on_server needs one run id and one label per target, and a target")
    previous = server.served.adapter if restore else None
    reports: list[EvalReport] = []
    try:
        for i, target in enumerate(targets):
            progress = on_target(i, names[i]) if on_target is not None else None
            report = await run_suite_on_server(
                server,
                suite,
                ws=ws,
                adapter=target,
                label=names[i],
                run_id=ids[i],
                on_progress=progress,
                **options,
            )
            reports.append(report)
    finally:
        if restore:
            with anyio.CancelScope(shield=True):
                await serve_again(server, previous)
    comparison = None
    if len(reports) == 2:  # renders Markdown and HTML: off the event loop
        a, b = reports[0].meta.run_id, reports[1].meta.run_id
        comparison = await anyio.to_thread.run_sync(compare_runs, ws, a, b)
    return Evaluation(reports, comparison)


async def serve_again(server: ModelServer, previous: str | None) -> None:
    """Serve again what was served before; a failure here must not hide the eval's own outcome."""
    try:
        if server.served.adapter != previous:
            await server.switch_adapter(previous, record=False)
    except TooltuneError as e:
        log.warning("eval.restore_failed", adapter=previous, error=str(e))
