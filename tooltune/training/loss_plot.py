"""A loss-curve SVG written with plain string formatting: no matplotlib, renders offline in any browser,
and small enough to embed in the HTML report as-is."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from tooltune.workspace import atomic_write_text

WIDTH, HEIGHT = 640, 360
MARGIN = {"left": 60, "right": 20, "top": 36, "bottom": 44}
COLORS = {"train": "#1f77b4", "val": "#ff7f0e"}


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            ticks.append(round(t, 10))
        t += step
    return ticks


def render_loss_svg(events: Sequence[Any], *, title: str = "loss") -> str:
    """Train and validation loss against iteration.

    ``events`` are TrainEvent-like (kind, iteration, train_loss / val_loss)."""
    series: dict[str, list[tuple[float, float]]] = {"train": [], "val": []}
    for e in events:
        loss = e.train_loss if e.kind == "train" else e.val_loss
        if loss is not None and math.isfinite(loss):
            series[e.kind].append((float(e.iteration), float(loss)))
    points = series["train"] + series["val"]
    x0 = 0.0
    x1 = max((p[0] for p in points), default=1.0) or 1.0
    ys = [p[1] for p in points] or [0.0, 1.0]
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.05 or 0.5
    y0, y1 = max(0.0, y0 - pad), y1 + pad
    pw = WIDTH - MARGIN["left"] - MARGIN["right"]
    ph = HEIGHT - MARGIN["top"] - MARGIN["bottom"]

    def sx(x: float) -> float:
        return MARGIN["left"] + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return MARGIN["top"] + (1 - (y - y0) / (y1 - y0)) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]
    for t in _nice_ticks(y0, y1):
        y = sy(t)
        out.append(
            f'<line x1="{MARGIN["left"]}" y1="{y:.1f}" x2="{WIDTH - MARGIN["right"]}" y2="{y:.1f}" '
            'stroke="#eee"/>'
        )
        out.append(f'<text x="{MARGIN["left"] - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in _nice_ticks(x0, x1):
        x = sx(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{HEIGHT - MARGIN["bottom"]}" x2="{x:.1f}" '
            f'y2="{HEIGHT - MARGIN["bottom"] + 4}" stroke="#333"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - MARGIN["bottom"] + 16}" text-anchor="middle">{t:g}</text>'
        )
    out.append(
        f'<rect x="{MARGIN["left"]}" y="{MARGIN["top"]}" width="{pw}" height="{ph}" '
        'fill="none" stroke="#333"/>'
    )
    out.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">iteration</text>')
    out.append(
        f'<text x="14" y="{HEIGHT / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {HEIGHT / 2})">loss</text>'
    )
    for kind, pts in series.items():
        if not pts:
            continue
        color = COLORS[kind]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(
            f'<polyline class="{kind}" fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>'
        )
        for x, y in pts:
            out.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"><title>'
                f"{kind} iter {x:g}: {y:.4f}</title></circle>"
            )
    legend_x = WIDTH - MARGIN["right"] - 110
    for i, kind in enumerate(k for k in ("train", "val") if series[k]):
        y = MARGIN["top"] + 14 + i * 16
        out.append(
            f'<line x1="{legend_x}" y1="{y - 4}" x2="{legend_x + 18}" y2="{y - 4}" '
            f'stroke="{COLORS[kind]}" stroke-width="2"/>'
        )
        out.append(f'<text x="{legend_x + 24}" y="{y}">{kind} loss</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_loss_plot(path: Path, events: Sequence[Any], *, title: str = "loss") -> Path:
    atomic_write_text(path, render_loss_svg(events, title=title))
    return path
