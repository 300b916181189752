# ruff: noqa: E501  -- long lines are HTML/SVG fragments; splitting them hurts readability
"""Self-contained HTML reports: inline CSS and inline SVG, no scripts, no external assets.

They must open offline from a file:// URL (a laptop on a plane, an artifact in CI), so every chart
is drawn here as SVG, and every model output is escaped — raw model text is untrusted input.
"""

from __future__ import annotations

from html import escape

from tooltune.evals.compare import Comparison
from tooltune.evals.results import EvalReport

NATIVE = "#3b6fd8"
LENIENT = "#f0a030"
GOOD = "#2a9d5c"
BAD = "#d64545"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
color:#1d2330;background:#fafbfc;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2ea;
padding-bottom:4px}.meta{color:#5a6475}.card{background:#fff;border:1px solid #dde2ea;border-radius:8px;
padding:12px 16px;margin:12px 0}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eef1f5;
padding:5px 8px;text-align:left;vertical-align:top}th{background:#f3f5f8}td.num,th.num{text-align:right}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;
max-height:9em;overflow:auto;background:#f6f7f9;padding:4px 6px;border-radius:4px}
.kpi{display:inline-block;margin-right:28px}.kpi b{display:block;font-size:26px}.legend span{display:inline-block;
width:12px;height:12px;border-radius:2px;margin:0 4px 0 12px;vertical-align:-1px}.warn{color:#a15c00}
.reason{font:12px ui-monospace,monospace;background:#fdecec;color:#8a1f1f;padding:1px 5px;border-radius:3px}
"""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def bar_chart(groups: list[tuple[str, list[tuple[float, str, str]]]], *, width: int = 1000) -> str:
    """Grouped vertical bars, values in [0, 1]. ``groups`` = [(label, [(value, colour, title), ...])]."""
    h, top, bottom, left = 220, 16, 46, 40
    plot_h = h - top - bottom
    n = max(1, len(groups))
    slot = (width - left - 10) / n
    per = max(1, max((len(b) for _, b in groups), default=1))
    bw = min(46.0, slot * 0.75 / per)
    parts = [f"<svg role='img' viewBox='0 0 {width} {h}' width='100%' xmlns='http://www.w3.org/2000/svg'>"]
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f"<line x1='{left}' x2='{width - 10}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e3e7ee'/>")
        parts.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='11' text-anchor='end' fill='#6b7485'>"
            f"{int(frac * 100)}%</text>"
        )
    for i, (label, bars) in enumerate(groups):
        x0 = left + i * slot + (slot - bw * len(bars)) / 2
        for j, (value, colour, title) in enumerate(bars):
            v = min(max(value, 0.0), 1.0)
            bh = plot_h * v
            x = x0 + j * bw
            y = top + plot_h - bh
            parts.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{bw - 3:.1f}' height='{max(bh, 0.5):.1f}' "
                f"fill='{colour}' rx='2'><title>{escape(title)}</title></rect>"
            )
            parts.append(
                f"<text x='{x + (bw - 3) / 2:.1f}' y='{y - 3:.1f}' font-size='10' text-anchor='middle' "
                f"fill='#333'>{round(100 * v)}</text>"
            )
        parts.append(
            f"<text x='{left + i * slot + slot / 2:.1f}' y='{h - bottom + 16}' font-size='12' "
            f"text-anchor='middle' fill='#1d2330'>{escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(items: list[tuple[str, list[tuple[int, str]]]], *, width: int = 1000) -> str:
    """Horizontal bars of counts: [(label, [(count, colour), ...])], one row per label."""
    row, left = 24, 190
    total_max = max((c for _, bars in items for c, _ in bars), default=1) or 1
    h = row * max(1, sum(len(b) for _, b in items)) + 8 * len(items) + 10
    scale = (width - left - 60) / total_max
    parts = [f"<svg role='img' viewBox='0 0 {width} {h}' width='100%' xmlns='http://www.w3.org/2000/svg'>"]
    y = 4
    for label, bars in items:
        parts.append(
            f"<text x='{left - 8}' y='{y + 15}' font-size='12' text-anchor='end' "
            f"fill='#1d2330'>{escape(label)}</text>"
        )
        for count, colour in bars:
            parts.append(
                f"<rect x='{left}' y='{y + 3}' width='{max(count * scale, 1):.1f}' height='{row - 8}' "
                f"fill='{colour}' rx='2'/>"
            )
            parts.append(
                f"<text x='{left + count * scale + 6:.1f}' y='{y + 15}' font-size='11' "
                f"fill='#333'>{count}</text>"
            )
            y += row
        y += 8
    parts.append("</svg>")
    return "".join(parts)


def line_chart(points: list[tuple[int, float]], *, width: int = 1000, label: str = "train loss") -> str:
    h, left, top, bottom = 220, 50, 14, 34
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x_min, x_max = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_min, y_max = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    pw, ph = width - left - 14, h - top - bottom

    def sx(x: float) -> float:
        return left + (x - x_min) / (x_max - x_min) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y_min) / (y_max - y_min)) * ph

    pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts = [
        f"<svg role='img' viewBox='0 0 {width} {h}' width='100%' xmlns='http://www.w3.org/2000/svg'>",
        f"<title>{escape(label)}</title>",
    ]
    for frac in (0, 0.5, 1):
        yv = y_min + frac * (y_max - y_min)
        parts.append(
            f"<line x1='{left}' x2='{width - 14}' y1='{sy(yv):.1f}' y2='{sy(yv):.1f}' stroke='#e3e7ee'/>"
            f"<text x='{left - 6}' y='{sy(yv) + 4:.1f}' font-size='11' text-anchor='end' "
            f"fill='#6b7485'>{yv:.3g}</text>"
        )
    parts.append(f"<polyline points='{pts}' fill='none' stroke='{NATIVE}' stroke-width='2'/>")
    parts.append(
        f"<text x='{left}' y='{h - 8}' font-size='11' fill='#6b7485'>iteration {x_min}</text>"
        f"<text x='{width - 14}' y='{h - 8}' font-size='11' text-anchor='end' fill='#6b7485'>"
        f"iteration {x_max}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    return (
        f"<div class='legend'><span style='background:{NATIVE}'></span>native tool_calls"
        f"<span style='background:{LENIENT}'></span>lenient (calls parsed from text; for no-call "
        "categories: no call attempt of any kind)</div>"
    )


def render_html(report: EvalReport, *, max_failures: int = 60) -> str:
    m = report.meta
    o = report.overall
    body = [
        f"<h1>Tool-calling eval: {escape(m.suite)}</h1>",
        f"<div class='meta'>run <code>{escape(m.run_id)}</code> · model <code>{escape(m.model_name)}</code> · "
        f"adapter <b>{escape(m.adapter or 'none (baseline)')}</b> · temperature {m.temperature} · "
        f"{m.n_cases} cases × {m.repeats} · {escape(report.finished.strftime('%Y-%m-%d %H:%M UTC'))}</div>",
    ]
    if m.shard_urls:
        shown = ", ".join(f"<code>{escape(u)}</code>" for u in m.shard_urls)
        body.append(f"<div class='meta'>cases shared between {len(m.shard_urls)} endpoints: {shown}</div>")
    if not report.complete:
        body.append(
            f"<p class='warn'>Incomplete run: {report.n_results} of {report.n_expected} results "
            f"(resume with <code>tooltune eval --resume {escape(m.run_id)}</code>).</p>"
        )
    body.append(
        "<div class='card'>"
        f"<div class='kpi'>native<b style='color:{NATIVE}'>{_pct(o.native_rate)}</b>{o.native_pass}/{o.n}</div>"
        f"<div class='kpi'>lenient<b style='color:{LENIENT}'>{_pct(o.lenient_rate)}</b>{o.lenient_pass}/{o.n}</div>"
        f"<div class='kpi'>throughput<b>{report.cases_per_min:.1f}</b>cases/min</div>"
        f"<div class='kpi'>mean latency<b>{report.mean_latency_s:.1f} s</b>per case</div></div>"
    )
    groups = [
        (
            cat,
            [
                (c.native_rate, NATIVE, f"{cat} native {c.native_pass}/{c.n}"),
                (c.lenient_rate, LENIENT, f"{cat} lenient {c.lenient_pass}/{c.n}"),
            ],
        )
        for cat, c in report.categories.items()
    ]
    body += ["<h2>Pass rate per category</h2><div class='card'>", bar_chart(groups), _legend(), "</div>"]
    rows = "".join(
        f"<tr><td>{escape(cat)}{' <small>(no call expected)</small>' if c.no_call_category else ''}</td>"
        f"<td class='num'>{c.n}</td><td class='num'>{c.native_pass} ({_pct(c.native_rate)})</td>"
        f"<td class='num'>{c.lenient_pass} ({_pct(c.lenient_rate)})</td><td class='num'>{c.errors}</td></tr>"
        for cat, c in report.categories.items()
    )
    body.append(
        "<div class='card'><table><tr><th>category</th><th class='num'>n</th><th class='num'>native</th>"
        f"<th class='num'>lenient</th><th class='num'>server errors</th></tr>{rows}</table></div>"
    )
    reasons = sorted(set(report.reasons_native) | set(report.reasons_lenient))
    if reasons:
        items = [
            (r, [(report.reasons_native.get(r, 0), NATIVE), (report.reasons_lenient.get(r, 0), LENIENT)])
            for r in reasons
        ]
        body += ["<h2>Failure reasons</h2><div class='card'>", hbar_chart(items), _legend(), "</div>"]
    if m.loss_curve:
        body += ["<h2>Adapter training loss</h2><div class='card'>", line_chart(m.loss_curve), "</div>"]
    failing = [r for r in report.results if not (r.native.passed and r.lenient.passed)]
    if failing:
        body.append(
            f"<h2>Failing cases ({len(failing)}{', first ' + str(max_failures) if len(failing) > max_failures else ''})"
            "</h2><div class='card'><table><tr><th>case</th><th>native</th><th>lenient</th>"
            "<th>raw model output</th></tr>"
        )
        for r in failing[:max_failures]:
            raw = r.answer_text(limit=4000)
            cells = []
            for s in (r.native, r.lenient):
                cells.append(
                    "pass"
                    if s.passed
                    else f"<span class='reason'>{escape(str(s.reason))}</span><br><small>{escape(s.detail)}</small>"
                )
            body.append(
                f"<tr><td><b>{escape(r.case_id)}</b><br><small>{escape(r.category)}"
                f"{' #' + str(r.repeat) if m.repeats > 1 else ''}</small></td><td>{cells[0]}</td>"
                f"<td>{cells[1]}</td><td><pre>{escape(raw) or '<i>(empty)</i>'}</pre></td></tr>"
            )
        body.append("</table></div>")
    return _page(f"eval {m.run_id}", "".join(body))


def render_comparison_html(cmp: Comparison, *, max_items: int = 60) -> str:
    body = [
        f"<h1>{escape(cmp.label_a)} → {escape(cmp.label_b)}</h1>",
        f"<div class='meta'>suite {escape(cmp.suite)} · {cmp.n_paired} paired cases · runs "
        f"<code>{escape(cmp.run_a)}</code> and <code>{escape(cmp.run_b)}</code></div>",
    ]
    if not cmp.same_suite:
        body.append(
            "<p class='warn'>The two runs used different suite versions; only shared case ids are paired.</p>"
        )
    if cmp.differs:
        body.append(
            f"<p class='warn'>The runs differ besides the target: {escape('; '.join(cmp.differs))}</p>"
        )
    t_n, t_l = cmp.mcnemar_native, cmp.mcnemar_lenient
    ov = cmp.categories.get("overall")
    if ov:
        body.append(
            "<div class='card'>"
            f"<div class='kpi'>native<b>{_pct(ov.native_a)} → {_pct(ov.native_b)}</b>"
            f"+{t_n.fixes} / −{t_n.regressions}, McNemar p = {t_n.p_value:.3g}</div>"
            f"<div class='kpi'>lenient<b>{_pct(ov.lenient_a)} → {_pct(ov.lenient_b)}</b>"
            f"+{t_l.fixes} / −{t_l.regressions}, McNemar p = {t_l.p_value:.3g}</div></div>"
        )
    groups = [
        (
            cat,
            [
                (d.native_a, "#9bb5ea", f"{cmp.label_a} native"),
                (d.native_b, NATIVE, f"{cmp.label_b} native"),
                (d.lenient_a, "#f6cf93", f"{cmp.label_a} lenient"),
                (d.lenient_b, LENIENT, f"{cmp.label_b} lenient"),
            ],
        )
        for cat, d in cmp.categories.items()
    ]
    body += [
        "<h2>Per category (light = A, dark = B)</h2><div class='card'>",
        bar_chart(groups),
        "</div><div class='card'><table><tr><th>category</th><th class='num'>n</th><th class='num'>Δ native</th>"
        "<th class='num'>Δ lenient</th></tr>",
    ]
    for cat, d in cmp.categories.items():

        def fmt(x: float) -> str:
            colour = GOOD if x > 0 else BAD if x < 0 else "#333"
            return f"<td class='num' style='color:{colour}'>{100 * x:+.1f}</td>"

        body.append(
            f"<tr><td>{escape(cat)}</td><td class='num'>{d.n}</td>{fmt(d.native_delta)}{fmt(d.lenient_delta)}</tr>"
        )
    body.append("</table></div>")
    for title, items in (("Regressions", cmp.regressions), ("Fixes", cmp.fixes)):
        if not items:
            continue
        body.append(
            f"<h2>{title} ({len(items)})</h2><div class='card'><table><tr><th>case</th><th>mode</th>"
            "<th>A</th><th>B</th><th>A's answer</th><th>B's answer</th></tr>"
        )
        for it in items[:max_items]:
            detail = f"<br><small>{escape(it.detail_b)}</small>" if it.detail_b else ""
            body.append(
                f"<tr><td>{escape(it.case_id)}<br><small>{escape(it.category)}</small></td>"
                f"<td>{it.mode}</td><td>{escape(it.reason_a or 'pass')}</td>"
                f"<td>{escape(it.reason_b or 'pass')}{detail}</td>"
                f"<td><pre>{escape(it.output_a)}</pre></td><td><pre>{escape(it.output_b)}</pre></td></tr>"
            )
        body.append("</table></div>")
    return _page(f"compare {cmp.run_a} vs {cmp.run_b}", "".join(body))
