"""BFCL with base models only (no adapter): how well each writes the right call, natively and as text.

Usage: python bench/bfcl_base_models.py --models qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct
       [--n 40] [--seed 0] [--concurrency 4] [--max-tokens 128] [--out bench/results/bfcl_base_models.json]

The questions are bfcl_adapter.py's seeded samples (same ``--seed``, same ``--n``), so a model's lenient
score here is the argument skill an adapter of it starts from: the ceiling that format training alone
can reach. Runs go to a workspace of their own and resume by id; the models are served one at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from bfcl_adapter import DEFAULT_BFCL, sample_cases
from bfcl_baseline import summarize

from tooltune.config import Settings
from tooltune.evals.bfcl_import import import_bfcl
from tooltune.evals.service import run_suite_on_server
from tooltune.models.resolve import resolve_model
from tooltune.serving.model_server import ModelServer
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import command_line, machine_info, restart_with_blas, run_outcomes

SUITES = ("simple_python", "irrelevance")


async def evaluate(
    settings: Settings, ws: Workspace, model: str, suites: list[Any], args: Any
) -> dict[str, Any]:
    path = resolve_model(model, settings).path
    out: dict[str, Any] = {"path": str(path)}
    async with ModelServer(path, settings=settings, record_active=False) as server:
        for key, suite in zip(SUITES, suites, strict=True):
            t0 = time.perf_counter()
            report = await run_suite_on_server(
                server,
                suite,
                ws=ws,
                label="baseline",
                run_id=f"{suite.name}-{path.name}"[:100],
                concurrency=args.concurrency,
                max_tokens=args.max_tokens,
            )
            out[key] = summarize(key, report)
            print(
                f"{model} {key}: {json.dumps(out[key])} ({time.perf_counter() - t0:.0f}s)",
                file=sys.stderr,
            )
    return out


def main() -> None:
    restart_with_blas()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="cache names or paths of base models")
    ap.add_argument("--n", type=int, default=40, help="cases per suite (bfcl_adapter.py's --eval-n)")
    ap.add_argument("--seed", type=int, default=0, help="question sample (bfcl_adapter.py's --seed)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--bfcl", type=Path, default=DEFAULT_BFCL)
    # bfcl_adapter.py's workspace: its baseline runs of a non-default model are these runs
    ap.add_argument("--workspace", type=Path, default=Path.home() / ".cache" / "tooltune" / "bench-ws")
    ap.add_argument("--out", type=Path, default=Path("bench/results/bfcl_base_models.json"))
    ap.add_argument("--notes", default="", help="how the runs went, for the results file")
    args = ap.parse_args()
    settings = Settings.load(workspace=args.workspace)
    ws = Workspace(settings.workspace).ensure()
    suites = [
        sample_cases(import_bfcl(args.bfcl / f"BFCL_v4_{name}.json", ws=ws).suite, args.n, args.seed)
        for name in SUITES
    ]
    t0 = time.perf_counter()
    models = {m: anyio.run(evaluate, settings, ws, m, suites, args) for m in args.models}
    # which questions each model gets right in text, for the cases the models disagree on
    lenient = {
        m: {
            key: {
                cid: o["passed"] for cid, o in run_outcomes(ws.reports, r[key]["run_id"], "lenient").items()
            }
            for key in SUITES
        }
        for m, r in models.items()
    }
    first = lenient[args.models[0]]
    disagree = {
        key: sorted(cid for cid in first[key] if len({lenient[m][key][cid] for m in models}) > 1)
        for key in SUITES
    }
    result = {
        "benchmark": "bfcl_base_models",
        "command": command_line(),
        "machine": machine_info(),
        "question_sample": {"seed": args.seed, "n": args.n, "suites": list(SUITES)},
        "temperature": 0.0,
        "max_tokens": args.max_tokens,
        "concurrency": args.concurrency,
        "models": models,
        "lenient_pass_by_case": {
            key: {cid: [m for m in models if lenient[m][key][cid]] for cid in disagree[key]} for key in SUITES
        },
        "wall_s": round(time.perf_counter() - t0, 1),
        "notes": args.notes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(args.out)


if __name__ == "__main__":
    main()
