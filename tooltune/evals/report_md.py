"""Markdown reports: short enough to paste into a chat or a PR, derived only from the JSON report."""

from __future__ import annotations

from tooltune.evals.compare import Comparison
from tooltune.evals.results import EvalReport


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cell(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("`", "'")


def render_markdown(report: EvalReport, *, max_failures: int = 15) -> str:
    m = report.meta
    lines = [
        f"# Eval `{m.run_id}`",
        "",
        f"Suite **{m.suite}** ({m.n_cases} cases × {m.repeats}) · model `{m.model_name}` · "
        f"adapter **{m.adapter or 'none (baseline)'}** · temperature {m.temperature}"
        + ("" if report.complete else f" · **incomplete: {report.n_results}/{report.n_expected}**"),
        "",
        *(
            [f"Cases shared between {len(m.shard_urls)} endpoints: {', '.join(m.shard_urls)}.", ""]
            if m.shard_urls
            else []
        ),
        "| category | n | native | lenient |",
        "|---|---:|---:|---:|",
    ]
    for cat, met in report.categories.items():
        lenient_label = " (any-attempt)" if met.no_call_category else ""
        lines.append(
            f"| {cat} | {met.n} | {met.native_pass} ({_pct(met.native_rate)}) | "
            f"{met.lenient_pass} ({_pct(met.lenient_rate)}){lenient_label} |"
        )
    o = report.overall
    lines.append(
        f"| **overall** | {o.n} | {o.native_pass} ({_pct(o.native_rate)}) | "
        f"{o.lenient_pass} ({_pct(o.lenient_rate)}) |"
    )
    lines += [
        "",
        "For no-call categories *lenient* counts a call written as text as a call (any call attempt fails).",
        "",
        f"Throughput: {report.cases_per_min:.2f} cases/min over {report.wall_s:.0f} s, "
        f"mean latency {report.mean_latency_s:.2f} s, "
        f"tokens in/out {report.input_tokens}/{report.output_tokens}.",
        "",
    ]
    if report.reasons_native or report.reasons_lenient:
        lines += ["| failure reason | native | lenient |", "|---|---:|---:|"]
        for reason in sorted(set(report.reasons_native) | set(report.reasons_lenient)):
            lines.append(
                f"| {reason} | {report.reasons_native.get(reason, 0)} | "
                f"{report.reasons_lenient.get(reason, 0)} |"
            )
        lines.append("")
    failing = [r for r in report.results if not r.lenient.passed][:max_failures]
    if failing:
        lines += [
            "## Failing cases (lenient)",
            "",
            "| case | reason | detail | output |",
            "|---|---|---|---|",
        ]
        for r in failing:
            lines.append(
                f"| {r.case_id} | {r.lenient.reason} | {_cell(r.lenient.detail)} | "
                f"{_cell(r.raw_text or str([c.model_dump() for c in r.native_calls]))} |"
            )
        lines.append("")
    return "\n".join(lines)


def _answer(text: str, limit: int = 160) -> str:
    """An answer inline in a list item: one line, in a code span (backticks inside would end it)."""
    flat = " ⏎ ".join(line for line in text.splitlines() if line.strip()).replace("`", "'")
    return f"`{flat[:limit]}{'…' if len(flat) > limit else ''}`" if flat else "(empty)"


def render_comparison_markdown(cmp: Comparison, *, max_items: int = 20) -> str:
    lines = [
        f"# Comparison: `{cmp.run_a}` → `{cmp.run_b}`",
        "",
        f"{cmp.label_a} vs {cmp.label_b} on suite **{cmp.suite}**, {cmp.n_paired} paired cases"
        + (" (suite versions differ!)" if not cmp.same_suite else ""),
        "",
        *([f"**The runs differ besides the target:** {'; '.join(cmp.differs)}", ""] if cmp.differs else []),
        "| category | n | native A | native B | Δ native | lenient A | lenient B | Δ lenient |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cat, d in cmp.categories.items():
        lines.append(
            f"| {cat} | {d.n} | {_pct(d.native_a)} | {_pct(d.native_b)} | {100 * d.native_delta:+.1f} | "
            f"{_pct(d.lenient_a)} | {_pct(d.lenient_b)} | {100 * d.lenient_delta:+.1f} |"
        )
    lines.append("")
    for mode, t in (("native", cmp.mcnemar_native), ("lenient", cmp.mcnemar_lenient)):
        lines.append(
            f"McNemar exact ({mode}): {t.fixes} fixed, {t.regressions} regressed, p = {t.p_value:.4g}"
            + (" — significant at 0.05" if t.p_value < 0.05 else "")
        )
    for title, items in (("Regressions", cmp.regressions), ("Fixes", cmp.fixes)):
        if items:
            lines += ["", f"## {title} ({len(items)})", ""]
            for it in items[:max_items]:
                lines.append(
                    f"- `{it.case_id}` ({it.category}, {it.mode}): {it.reason_a or 'pass'} → "
                    f"{it.reason_b or 'pass'} · A: {_answer(it.output_a)} · B: {_answer(it.output_b)}"
                )
    lines.append("")
    return "\n".join(lines)
