"""BFCL baseline (no adapter): simple_python and irrelevance, native and lenient, on the 0.5B model.

Usage: python bench/bfcl_baseline.py [--n 40] [--concurrency 4] [--model PATH] [--out FILE.json]
Starts its own mlx_lm.server (OpenBLAS env) and writes the numbers plus command, machine and date.
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
from tooltune.evals.bfcl_import import import_bfcl
from tooltune.evals.mlx_endpoint import mlx_endpoint
from tooltune.evals.runner import resume_run, run_dir, run_suite
from tooltune.workspace import Workspace, atomic_write_json

BFCL = Path("/work/shared/bench/bfcl")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="cases per BFCL category (first N)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--model", default=None)
    ap.add_argument("--bfcl", default=str(BFCL))
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--out", default="bench/results/bfcl_baseline.json")
    args = ap.parse_args()
    settings = Settings.load()
    model = Path(args.model) if args.model else settings.models_dir / "qwen2.5-coder-0.5b-instruct"
    ws = Workspace(settings.workspace).ensure()
    out: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "model": str(model),
        "n_per_category": args.n,
        "concurrency": args.concurrency,
        "temperature": 0.0,
        "max_tokens": args.max_tokens,
        "results": {},
    }
    with mlx_endpoint(model, settings, log_path=ws.reports / "bench-mlx-server.log") as ep:
        for cat in ("simple_python", "irrelevance"):
            suite = import_bfcl(Path(args.bfcl) / f"BFCL_v4_{cat}.json", ws=ws)
            suite = suite.model_copy(update={"cases": suite.cases[: args.n]})
            t0 = time.perf_counter()

            # a fixed run id per (category, n): re-running the script resumes instead of starting over
            run_id = f"bfcl-baseline-{cat.replace('_', '-')}-n{args.n}"

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
            m = report.overall
            out["results"][cat] = {
                "run_id": report.meta.run_id,
                "n": m.n,
                "native_pass": m.native_pass,
                "lenient_pass": m.lenient_pass,
                "any_call_attempt": m.attempted,
                "native_rate": round(m.native_rate, 4),
                "lenient_rate": round(m.lenient_rate, 4),
                "note": "for irrelevance, lenient = no call attempt of any kind (text calls count)"
                if cat == "irrelevance"
                else "",
                "reasons_native": report.reasons_native,
                "reasons_lenient": report.reasons_lenient,
                "wall_s_this_session": round(time.perf_counter() - t0, 1),
                "wall_s_all_sessions": report.wall_s,
                "cases_per_min": report.cases_per_min,
                "mean_latency_s": report.mean_latency_s,
            }
            print(json.dumps({cat: out["results"][cat]}, indent=1), file=sys.stderr)
            atomic_write_json(Path(args.out), out)
    atomic_write_json(Path(args.out), out)


if __name__ == "__main__":
    main()
