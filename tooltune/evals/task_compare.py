"""Two agent task runs paired task by task: McNemar on success, the tasks fixed and regressed, the settings
the runs did not share, and an HTML page with both transcripts of every changed task
(``<ws>/task-runs/<run_b>/vs-<run_a>.{json,html}``)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from pydantic import BaseModel, Field

from tooltune.evals.compare import McNemar, mcnemar_exact, setting_differences
from tooltune.evals.task_records import TaskReport, TaskResult, TaskRunMeta, load_task_report, task_run_dir
from tooltune.logs import get_logger
from tooltune.workspace import Workspace, atomic_write_json, atomic_write_text

log = get_logger(__name__)


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


def _settings(m: TaskRunMeta) -> dict[str, object]:
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
    return setting_differences(_settings(a), _settings(b))


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
