"""Eval throughput: the server layout tooltune used (one OpenBLAS thread per server on 2 cores) against
the new one (every core), side by side on the same cases, with the same answers checked.

    python bench/eval_speed.py [--model qwen2.5-coder-0.5b-instruct] [--bfcl-n 12] [--coding-per-category 2]
                               [--concurrency 4] [--out bench/results/eval_speed.json]

For each layout a bare ``mlx_lm.server`` (the chat template and tool parser tooltune scores) answers the
first ``--bfcl-n`` cases of BFCL simple_python and ``--coding-per-category`` cases of each category of
the built-in coding-tools suite, at ``--concurrency`` requests at a time, temperature 0. Recorded per
layout and suite: seconds per case (wall / cases), cases per minute, mean latency, and whether every
answer is the same as the old layout's (text and native calls, token for token).

Then one child per thread count measures, with the same OpenBLAS preload: float32 2048^2 matmul
GFLOPS (the limit), and prompt and generation tokens/s of the model on a ~700-token tool prompt
(mlx-lm's own counters); ``prefill_fraction_of_limit`` puts prompt tokens/s x 2 x the blocks' matmul
parameters per token (``bench_common.model_shape``: not the embedding, a lookup, nor the head, which runs
at the last position only) over that limit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tooltune.config import Settings  # noqa: E402
from tooltune.serving.blas import THREADS_ENV, subprocess_env  # noqa: E402
from tooltune.serving.server_flags import PROMPT_ONE_AT_A_TIME  # noqa: E402

from bench_common import case_answers, machine_info, model_shape, same_answers  # noqa: E402

CHILD = r"""
import json, sys, time
import mlx.core as mx
from mlx_lm import load, stream_generate
model_path, prompt_file = sys.argv[1], sys.argv[2]
n = 2048
a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
mx.eval(a @ b)
best = 0.0
for _ in range(5):
    t = time.perf_counter(); mx.eval(a @ b); best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
model, tok = load(model_path)
prompt = open(prompt_file).read()
runs = []
for _ in range(2):
    last = None
    for r in stream_generate(model, tok, prompt, max_tokens=24):
        last = r
    runs.append((last.prompt_tokens, last.prompt_tps, last.generation_tps))
params = sum(v.size for _, v in __import__("mlx.utils", fromlist=["tree_flatten"]).tree_flatten(model.parameters()))
print(json.dumps({"matmul_gflops": best, "prompt_tokens": runs[-1][0], "prompt_tps": max(r[1] for r in runs),
                  "generation_tps": max(r[2] for r in runs), "parameters": params}))
"""


def log(msg: str) -> None:
    print(f"[eval_speed {datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def suites(ws: Any, bfcl_n: int, per_category: int) -> dict[str, Any]:
    from tooltune.data.similarity import default_bfcl_dir
    from tooltune.evals.bfcl_import import import_bfcl
    from tooltune.evals.suite import load_suite

    out = {}
    bfcl = default_bfcl_dir()
    if bfcl is not None and bfcl_n > 0:
        s = import_bfcl(bfcl / "BFCL_v4_simple_python.json", ws=ws).suite
        out["bfcl_simple_python"] = s.model_copy(update={"cases": s.cases[:bfcl_n]})
    coding = load_suite("coding-tools")
    picked, seen = [], {}
    for c in coding.cases:
        if seen.get(c.category, 0) < per_category:
            picked.append(c)
            seen[c.category] = seen.get(c.category, 0) + 1
    out["coding_tools"] = coding.model_copy(update={"cases": picked})
    return out


def run_layout(
    settings: Settings,
    ws: Any,
    model: Path,
    threads: int,
    concurrency: int,
    cases: dict,
    server_args: list[str] | None = None,
) -> dict:
    from tooltune.evals.runner import run_suite
    from tooltune.testing.mlx_endpoint import mlx_endpoint

    os.environ[THREADS_ENV] = str(threads)
    out: dict[str, Any] = {}
    log_path = ws.reports / f"server-t{threads}-{len(server_args or [])}.log"
    with mlx_endpoint(model, settings, log_path=log_path, extra_args=server_args) as ep:
        for name, suite in cases.items():
            t0 = time.perf_counter()
            report = anyio.run(
                lambda s=suite, name=name: run_suite(
                    s,
                    ws=ws,
                    base_url=ep.base_url,
                    model_name=ep.model_name,
                    concurrency=concurrency,
                    label=f"t{threads}",
                    run_id=f"speed-{name}-t{threads}-c{concurrency}-{time.time_ns() % 10**8}",
                    max_tokens=128,
                )
            )
            wall = time.perf_counter() - t0
            n = len(report.results)
            out[name] = {
                "cases": n,
                "wall_s": round(wall, 1),
                "s_per_case": round(wall / n, 2),
                "cases_per_min": round(60 * n / wall, 2),
                "mean_latency_s": report.mean_latency_s,
                "output_tokens": report.output_tokens,
                "answers": case_answers(report),
                "native_pass": report.overall.native_pass,
                "lenient_pass": report.overall.lenient_pass,
            }
            log(f"threads {threads}: {name} {n} cases in {wall:.0f}s")
    return out


def limits(settings: Settings, model: Path, threads: int, prompt_file: Path) -> dict[str, Any]:
    env = subprocess_env(settings.cache_dir, enabled=settings.use_openblas)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(prompt_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    r = json.loads(done.stdout.strip().splitlines()[-1])
    shape = model_shape(model)
    gflop_per_token = 2 * shape["block_params"] * shape["layers"] / 1e9
    r["prefill_gflop_per_token"] = round(gflop_per_token, 3)
    r["prefill_gflops"] = round(r["prompt_tps"] * gflop_per_token, 1)
    r["prefill_fraction_of_limit"] = round(r["prefill_gflops"] / r["matmul_gflops"], 3)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}


def tool_prompt(model: Path, suite: Any) -> str:
    from mlx_lm.tokenizer_utils import load

    tok = load(model)
    case = max(suite.cases, key=lambda c: len(json.dumps(c.tools)))
    return tok.apply_chat_template(
        case.messages, tools=case.tools, tokenize=False, add_generation_prompt=True
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--bfcl-n", type=int, default=12)
    ap.add_argument("--coding-per-category", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--old-threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--new-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--prompt-one-at-a-time",
        action="store_true",
        help="a third layout: every core, the server prefilling one prompt at a time (--prompt-concurrency 1)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval_speed.json")
    args = ap.parse_args()

    from tooltune.models.resolve import resolve_model
    from tooltune.workspace import Workspace, atomic_write_json

    root = Path(tempfile.mkdtemp(prefix="tooltune-eval-speed-"))
    settings = Settings.load(workspace=root / "ws")
    ws = Workspace(settings.workspace).ensure()
    model = resolve_model(args.model, settings).path
    cases = suites(ws, args.bfcl_n, args.coding_per_category)
    layouts = {}
    plan = [("old", args.old_threads, []), ("new", args.new_threads, [])]
    if args.prompt_one_at_a_time:  # prompts prefilled one by one, their decoding still batched
        plan.append(("new_prompt_1", args.new_threads, list(PROMPT_ONE_AT_A_TIME)))
    for label, threads, server_args in plan:
        log(
            f"{label}: {threads} OpenBLAS thread(s), concurrency {args.concurrency}, server args {server_args}"
        )
        layouts[label] = {
            "blas_threads": threads,
            "server_args": server_args,
            **run_layout(settings, ws, model, threads, args.concurrency, cases, server_args),
        }
    prompt_file = root / "prompt.txt"
    prompt_file.write_text(tool_prompt(model, cases["coding_tools"]))
    model_limits = {
        str(t): limits(settings, model, t, prompt_file) for t in sorted({args.old_threads, args.new_threads})
    }
    speedup, same, by_layout = {}, {}, {}
    final = list(layouts)[-1]  # the last layout measured: the one tooltune's defaults give
    for label in list(layouts)[1:]:
        by_layout[label] = {
            n: round(layouts["old"][n]["wall_s"] / layouts[label][n]["wall_s"], 2) for n in cases
        }
    for name in cases:
        old, new = layouts["old"][name], layouts[final][name]
        speedup[name] = by_layout[final][name]
        same[name] = {
            "same_answers": same_answers(old["answers"], new["answers"]),
            "cases": old["cases"],
            **{
                f"{label}_same_answers": same_answers(old["answers"], layouts[label][name]["answers"])
                for label in list(layouts)[1:-1]
            },
        }
    doc = {
        "benchmark": "eval_speed",
        "command": "python " + " ".join(["bench/eval_speed.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "model": str(model),
        "concurrency": args.concurrency,
        "layouts": layouts,
        "speedup": speedup,
        "speedup_by_layout": by_layout,
        "same_answers": same,
        "limits": model_limits,
        "notes": "old: one OpenBLAS thread per model server (tooltune's default before, half the cores); new: every "
        "core; new_prompt_1 (when measured): every core and the server prefilling one prompt at a time "
        "(--prompt-concurrency 1; decoding still batched). Same cases, concurrency, temperature 0.",
    }
    atomic_write_json(args.out, doc)
    log(f"wrote {args.out}: speedup {speedup}, same answers {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
