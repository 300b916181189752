"""BFCL baseline (no adapter): simple_python and irrelevance, native and lenient, on the 0.5B model.

Usage: python bench/bfcl_baseline.py [--n 40] [--categories simple_python,irrelevance] [--concurrency 4]
       [--model PATH] [--out FILE.json] [--summarize-only]

Starts its own mlx_lm.server (OpenBLAS env). Each (category, n) has a fixed run id, so running the
script again resumes; ``--summarize-only`` writes the numbers of whatever has finished (a partial run
is marked ``complete: false``) without starting a server. Results of other categories already in the
output file are kept.
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
from typing import Any

import anyio

from tooltune.config import Settings
from tooltune.data.similarity import default_bfcl_dir
from tooltune.device import detect_device
from tooltune.evals.bfcl_import import import_bfcl
from tooltune.evals.results import EvalReport
from tooltune.evals.runner import load_report, resume_run, run_dir, run_suite
from tooltune.serving.server_flags import default_server_args
from tooltune.testing.mlx_endpoint import mlx_endpoint
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import command_line

BFCL = default_bfcl_dir() or Path(__file__).resolve().parents[2] / "shared" / "bench" / "bfcl"


def summarize(cat: str, report: EvalReport) -> dict[str, Any]:
    m = report.overall
    return {
        "run_id": report.meta.run_id,
        "complete": report.complete,
        "n_planned": report.n_expected,
        "n": m.n,
        "native_pass": m.native_pass,
        "lenient_pass": m.lenient_pass,
        "any_call_attempt": m.attempted,
        "native_rate": round(m.native_rate, 4),
        "lenient_rate": round(m.lenient_rate, 4),
        "note": "irrelevance: native = no native tool_calls; lenient = no call attempt of any kind "
        "(calls written as text count as calls)"
        if cat == "irrelevance"
        else "",
        "reasons_native": report.reasons_native,
        "reasons_lenient": report.reasons_lenient,
        "wall_s": report.wall_s,
        "cases_per_min": report.cases_per_min,
        "mean_latency_s": report.mean_latency_s,
        "output_tokens": report.output_tokens,
        "loadavg_at_summary": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    # One OpenBLAS thread per server: on 2 shared cores, 2 spinning BLAS threads per process made
    # requests ~6x slower under load (measured while writing this bench; docs/PLATFORM.md recommends 1 too).
    os.environ.setdefault("TOOLTUNE_BLAS_THREADS", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="cases per BFCL category (first N)")
    ap.add_argument("--categories", default="simple_python,irrelevance")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--model", default=None)
    ap.add_argument("--bfcl", default=str(BFCL))
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--out", default="bench/results/bfcl_baseline.json")
    ap.add_argument("--summarize-only", action="store_true")
    args = ap.parse_args()
    settings = Settings.load()
    model = Path(args.model) if args.model else settings.models_dir / "qwen2.5-coder-0.5b-instruct"
    ws = Workspace(settings.workspace).ensure()
    out_path = Path(args.out)
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    out: dict[str, Any] = {
        "command": command_line(),
        "commands_before": previous.get("commands_before", []) + ([previous["command"]] if previous else []),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "blas_threads": os.environ.get("TOOLTUNE_BLAS_THREADS"),
            "device": detect_device().reason,
        },
        "model": str(model),
        "concurrency": args.concurrency,
        "temperature": 0.0,
        "max_tokens": args.max_tokens,
        "results": previous.get("results", {}),
    }
    cats = [c for c in args.categories.split(",") if c]

    def run_id_for(cat: str) -> str:
        return f"bfcl-baseline-{cat.replace('_', '-')}-n{args.n}"

    if args.summarize_only:
        for cat in cats:
            if (run_dir(ws, run_id_for(cat)) / "run.json").exists():
                kept = {k: v for k, v in out["results"].get(cat, {}).items() if k.startswith("server_args")}
                out["results"][cat] = summarize(cat, load_report(ws, run_id_for(cat))) | kept
        atomic_write_json(out_path, out)
        return

    # the flags tooltune's own model server passes on this device (one prompt at a time on a CPU)
    server_args = default_server_args()
    with mlx_endpoint(
        model, settings, log_path=ws.reports / "bench-mlx-server.log", extra_args=server_args
    ) as ep:
        for cat in cats:
            suite = import_bfcl(Path(args.bfcl) / f"BFCL_v4_{cat}.json", ws=ws).suite
            suite = suite.model_copy(update={"cases": suite.cases[: args.n]})
            run_id = run_id_for(cat)
            resumed = (run_dir(ws, run_id) / "run.json").exists()
            before = out["results"].get(cat, {})
            t0 = time.perf_counter()

            async def go(suite=suite, run_id=run_id):
                if (run_dir(ws, run_id) / "run.json").exists():
                    return await resume_run(
                        ws,
                        run_id,
                        base_url=ep.base_url,
                        model_name=ep.model_name,
                        concurrency=args.concurrency,
                    )
                return await run_suite(
                    suite,
                    ws=ws,
                    base_url=ep.base_url,
                    model_name=ep.model_name,
                    concurrency=args.concurrency,
                    label="baseline",
                    run_id=run_id,
                    max_tokens=args.max_tokens,
                )

            report = anyio.run(go)
            out["results"][cat] = summarize(cat, report) | {
                "wall_s_this_session": round(time.perf_counter() - t0, 1),
                # a resumed run's earlier answers came from an earlier server: its flags are the ones
                # recorded then (none recorded: before 2026-12-06, without these flags)
                "server_args": before.get("server_args") if resumed else server_args,
                **({"server_args_this_session": server_args} if resumed else {}),
            }
            print(json.dumps({cat: out["results"][cat]}, indent=1), file=sys.stderr)
            atomic_write_json(out_path, out)
    atomic_write_json(out_path, out)


if __name__ == "__main__":
    main()
