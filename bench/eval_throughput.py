"""Eval throughput: cases/min on the same cases at concurrency 1 vs higher, 0.5B model, greedy.

Usage: python bench/eval_throughput.py [--per-category 4] [--levels 1,4,8] [--max-tokens 128] [--out FILE]

With ``--prefill-steps 2048,256`` each level runs once per mlx_lm.server ``--prefill-step-size`` (the
rest of tooltune's server flags kept), to compare how a prompt is cut into chunks for prefill.

Each level gets a freshly started mlx_lm.server, so no level profits from prompt-cache entries left
by another (docs/PLATFORM.md: a naive repeat showed a false 6x from cache hits). Cases within a level are
all different prompts, as in a real eval. Each level records every case's answer and how many match
the first level's (``same_answers_as_first``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

from tooltune.config import Settings
from tooltune.evals.runner import run_suite
from tooltune.evals.suite import load_suite
from tooltune.serving.server_flags import default_server_args
from tooltune.testing.mlx_endpoint import mlx_endpoint
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import case_answers, command_line, same_answers


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def with_prefill_step(server_args: list[str], step: int) -> list[str]:
    """``server_args`` with mlx_lm.server's ``--prefill-step-size`` set to ``step`` (replaced if given)."""
    out, skip = [], False
    for a in server_args:
        if skip:
            skip = False
        elif a == "--prefill-step-size":
            skip = True
        else:
            out.append(a)
    return [*out, "--prefill-step-size", str(step)]


def main() -> None:
    # One OpenBLAS thread per server: on 2 shared cores, 2 spinning BLAS threads per process made
    # requests ~6x slower under load (measured while writing this bench; docs/PLATFORM.md recommends 1 too).
    os.environ.setdefault("TOOLTUNE_BLAS_THREADS", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="coding-tools")
    ap.add_argument("--per-category", type=int, default=4)
    ap.add_argument("--levels", default="1,4,8")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="bench/results/eval_throughput.json")
    ap.add_argument(
        "--prefill-steps",
        default=None,
        help="compare mlx_lm.server --prefill-step-size values (e.g. 2048,256), each with a fresh server at each "
        "level, in the order given; results keyed '<level>/p<step>'",
    )
    args = ap.parse_args()
    settings = Settings.load()
    model = Path(args.model) if args.model else settings.models_dir / "qwen2.5-coder-0.5b-instruct"
    ws = Workspace(settings.workspace).ensure()
    suite = load_suite(args.suite, ws).subset(args.per_category)
    out: dict = {
        "command": command_line(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "blas_threads": os.environ.get("TOOLTUNE_BLAS_THREADS"),
        },
        "model": str(model),
        "suite": suite.name,
        "cases": len(suite.cases),
        "max_tokens": args.max_tokens,
        # the flags tooltune's own model server passes on this device (on a CPU one prompt at a time, since
        # 2026-12-07 in 256-token chunks); results from before 2026-12-06 ran without them
        "server_args": default_server_args(),
        "levels": {},
    }
    steps = [int(x) for x in args.prefill_steps.split(",")] if args.prefill_steps else [None]
    runs = [(int(x), step) for x in args.levels.split(",") for step in steps]
    for level, step in runs:
        key = str(level) if step is None else f"{level}/p{step}"
        server_args = out["server_args"] if step is None else with_prefill_step(out["server_args"], step)
        log_path = ws.reports / f"throughput-server-c{key.replace('/', '-')}.log"
        with mlx_endpoint(model, settings, log_path=log_path, extra_args=server_args) as ep:
            load_before = loadavg()
            t0 = time.perf_counter()

            async def go(level=level, ep=ep):
                return await run_suite(
                    suite,
                    ws=ws,
                    base_url=ep.base_url,
                    model_name=ep.model_name,
                    concurrency=level,
                    max_tokens=args.max_tokens,
                    label=f"c{level}",
                )

            report = anyio.run(go)
            wall = time.perf_counter() - t0
            out["levels"][key] = {
                "server_args": server_args,
                "run_id": report.meta.run_id,
                "wall_s": round(wall, 1),
                "cases_per_min": round(len(report.results) / wall * 60, 2),
                "mean_latency_s": report.mean_latency_s,
                "output_tokens": report.output_tokens,
                "output_tokens_per_s": round(report.output_tokens / wall, 2),
                "native_pass": report.overall.native_pass,
                "lenient_pass": report.overall.lenient_pass,
                "errors": report.overall.errors,
                "loadavg_before": load_before,
                "loadavg_after": loadavg(),
                # each case's answer (text and calls), so "the same answers" can be read from the file
                "answers": case_answers(report),
            }
            first = next(iter(out["levels"].values()))["answers"]
            got = out["levels"][key]
            got["same_answers_as_first"] = same_answers(first, got["answers"])
            shown = {k: v for k, v in got.items() if k != "answers"}
            print(json.dumps({key: shown}), file=sys.stderr)
            atomic_write_json(Path(args.out), out)
    base = out["levels"].get("1", {}).get("cases_per_min")
    if base:
        out["speedup_vs_1"] = {k: round(v["cases_per_min"] / base, 2) for k, v in out["levels"].items()}
    atomic_write_json(Path(args.out), out)


if __name__ == "__main__":
    main()
