"""Argument skill with the call decision forced: each case's prompt + "<tool_call>\\n", then greedy.

Separates the two ways a native BFCL case fails: the decision (the model answers in text where it should
call) and the call itself (wrong or missing values). For every case of a finished eval run, the prompt
is rendered by the model's chat template with the case's tools (as mlx_lm.server does), "<tool_call>\\n"
is appended (a clean token boundary: the tokenizer splits newlines off), the model continues greedily
for up to --max-tokens, and the call is parsed and scored with the eval's own scorer. The per-case
outcomes are set beside the run's native outcome and, with --base-run, the base model's text (lenient)
outcome, so the result says how many refusals would have passed and which values the base model also
gets wrong.

    python bench/forced_decision.py --workspace ~/.cache/tooltune/bench-ws \\
        --run bfcl-simple-python-s0-n40-adapter-A --adapter A \\
        --base-run bfcl-simple-python-s0-n40-baseline-base --out bench/results/forced_decision_A_s0.json

Without --adapter the base model is forced (its "<tool_call>" row was never trained, so that mostly
measures the untrained token). It restarts itself once with the environment tooltune gives its MLX
subprocesses (OpenBLAS preloaded on Linux CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import mlx_lm
from mlx_lm.sample_utils import make_sampler

from tooltune.evals.parse_calls import parse_calls
from tooltune.evals.scoring import match_calls
from tooltune.evals.suite import EvalCase
from tooltune.workspace import atomic_write_json

from bench_common import command_line, machine_info, restart_with_blas, run_outcomes

PREFIX = "<tool_call>\n"


def forced_call(model: Any, tok: Any, case: EvalCase, max_tokens: int) -> dict[str, Any]:
    """The case answered with the decision forced to a call: the continuation and its score."""
    prompt = tok.apply_chat_template(
        case.messages, tools=case.tools, add_generation_prompt=True, tokenize=False
    )
    text = mlx_lm.generate(model, tok, prompt + PREFIX, max_tokens=max_tokens, sampler=make_sampler(0.0))
    parsed = parse_calls(PREFIX + text, set(case.specs))
    if parsed.calls:
        score = match_calls(case, parsed.calls)
        passed, reason = score.passed, (str(score.reason) if score.reason else None)
    else:
        passed, reason = False, "bad_json" if parsed.bad_json else "no_call_parsed"
    return {"case_id": case.id, "passed": passed, "reason": reason, "text": text}


def main() -> None:
    restart_with_blas()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, required=True, help="the tooltune workspace holding the runs")
    ap.add_argument("--run", required=True, help="an eval run: its cases are forced, its outcomes compared")
    ap.add_argument("--adapter", help="adapter name in the workspace (default: the base model)")
    ap.add_argument("--base-run", help="the base model's run on the same cases (text outcomes compared)")
    ap.add_argument("--model", default=None, help="model path (default: the run's model)")
    ap.add_argument("--max-tokens", type=int, default=None, help="default: the run's own limit")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    reports = a.workspace / "reports"
    run_meta = json.loads((reports / a.run / "run.json").read_text())
    max_tokens = a.max_tokens or run_meta.get("max_tokens") or 128
    model_path = a.model or run_meta["model_name"]  # mlx_lm.server names the model by its path
    cases = [EvalCase.model_validate_json(line) for line in (reports / a.run / "suite.jsonl").open()]
    cases = [c for c in cases if not c.expects_no_call]
    adapter_path = str(a.workspace / "adapters" / a.adapter) if a.adapter else None
    model, tok = mlx_lm.load(model_path, adapter_path=adapter_path)
    native = run_outcomes(reports, a.run, "native")
    base = run_outcomes(reports, a.base_run, "lenient") if a.base_run else {}
    t0 = time.perf_counter()
    rows = []
    for case in cases:
        row = forced_call(model, tok, case, max_tokens)
        row["native"] = native[case.id]["reason"] if case.id in native else "not run"
        if base:
            row["base_text"] = base[case.id]["reason"] if case.id in base else "not run"
        rows.append(row)
        print(case.id, row["passed"], row["reason"], row["text"][:100].replace("\n", " "), file=sys.stderr)
    wall = time.perf_counter() - t0
    refused = [r for r in rows if r["native"] == "no_call_made"]
    summary: dict[str, Any] = {
        "n": len(rows),
        "forced_pass": sum(r["passed"] for r in rows),
        "native_pass": sum(native[c.id]["passed"] for c in cases if c.id in native),
        "forced_reasons": dict(Counter(r["reason"] for r in rows if not r["passed"])),
        "native_refusals": len(refused),
        "refusals_passing_when_forced": sum(r["passed"] for r in refused),
    }
    if base:
        summary["base_text_pass"] = sum(base[c.id]["passed"] for c in cases if c.id in base)
        failed = [r for r in rows if not r["passed"]]
        summary["forced_fails_base_text_also_fails"] = sum(r["base_text"] is not None for r in failed)
    out = {
        "benchmark": "forced_decision",
        "command": command_line(),
        "machine": machine_info(),
        "model": model_path,
        "adapter": a.adapter,
        "run": a.run,
        "base_run": a.base_run,
        "max_tokens": max_tokens,
        "wall_s": round(wall, 1),
        "summary": summary,
        "cases": rows,
    }
    atomic_write_json(a.out, out)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
