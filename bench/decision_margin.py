"""How far the call decision is from flipping: the first answer token's margin for "<tool_call>".

For each prompt the model (with its adapter) scores the first token of the answer; the margin is the
logit of "<tool_call>" minus the best other token's logit, so greedy decoding calls when the margin is
above 0, and adding a bias b to the "<tool_call>" logit calls when margin + b > 0. Prompts come from
finished eval runs (BFCL cases that expect a call, and irrelevance cases that expect none; their
outcomes are joined: native for call cases, any call attempt failing a no-call case) and from a generated dataset's held-out splits (valid + test, never trained on), so
a bias can be chosen on generated data and its effect read on BFCL. The question it answers: is there a
bias that turns the adapter's refusals into calls without making it call on irrelevant questions — that
is, do the two groups' margins separate? The bias is chosen on generated data by a rule fixed in advance
(the middle of the range that gets the most generated decisions right).

    python bench/decision_margin.py --workspace ~/.cache/tooltune/bench-ws --adapter A \\
        --run bfcl-simple-python-s0-n40-adapter-A --run bfcl-irrelevance-s0-n40-adapter-A \\
        --dataset bfcl-simple-python-gen-n800-s0-0d1af1 --out bench/results/decision_margin_A.json

It restarts itself once with the environment tooltune gives its MLX subprocesses (OpenBLAS preloaded on
Linux CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx_lm

from tooltune.data.examples import example_from_record, read_jsonl
from tooltune.data.store import load_dataset
from tooltune.evals.suite import EvalCase
from tooltune.workspace import atomic_write_json

from bench_common import command_line, machine_info, restart_with_blas, run_outcomes

CALL = "<tool_call>"
BIASES = [x / 2 for x in range(-20, 21)]  # -10 .. 10 in steps of 0.5


def first_token(model: Any, tok: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict:
    """The call token's margin and log-probability at the answer's first position, and the top token."""
    ids = tok.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True, tokenize=True)
    logits = model(mx.array(ids)[None])[0, -1].astype(mx.float32)
    call_id = tok.convert_tokens_to_ids(CALL)
    call_logit = logits[call_id].item()
    others = mx.concatenate([logits[:call_id], logits[call_id + 1 :]])
    best_other = mx.argmax(others).item()
    best_other = best_other + (best_other >= call_id)
    return {
        "margin": round(call_logit - logits[best_other].item(), 3),
        "logp_call": round(call_logit - mx.logsumexp(logits).item(), 3),
        "top_other": tok.decode([best_other]),
    }


def dataset_prompts(ws: Path, name: str) -> list[dict[str, Any]]:
    """Held-out generated examples as (prompt, should-call) rows: everything before the last assistant
    turn is the prompt; the label is whether that turn calls a tool."""
    info = load_dataset(ws, name)
    rows = []
    for split in ("valid", "test"):
        path = info.path / f"{split}.jsonl"
        for line, obj in read_jsonl(path):
            ex = example_from_record(obj, f"{path}:{line}")
            last = max(i for i, m in enumerate(ex.messages) if m.get("role") == "assistant")
            rows.append(
                {
                    "id": f"{split}.jsonl:{line}",
                    "kind": ex.meta.kind,
                    "should_call": bool(ex.messages[last].get("tool_calls")),
                    "messages": ex.messages[:last],
                    "tools": ex.tools,
                }
            )
    return rows


def _share(rows: list[dict[str, Any]], bias: float) -> int:
    return sum(r["margin"] + bias > 0 for r in rows)


def summarise(groups: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Calls per group at each bias, and the bias chosen on generated data alone: of the biases that get
    the most generated decisions right, the middle one (fixed before any BFCL margin was read)."""
    table = [{"bias": b, **{g: _share(rows, b) for g, rows in groups.items()}} for b in BIASES]
    gen_call, gen_none = groups.get("gen_call", []), groups.get("gen_no_call", [])
    out: dict[str, Any] = {"n": {g: len(rows) for g, rows in groups.items()}, "calls_at_bias": table}
    if gen_call or gen_none:

        def gen_right(b: float) -> int:
            return _share(gen_call, b) + len(gen_none) - _share(gen_none, b)

        top = max(gen_right(b) for b in BIASES)
        tied = [b for b in BIASES if gen_right(b) == top]
        best = tied[len(tied) // 2]  # the middle of the best range: farthest from both kinds of error
        out["chosen_on_generated"] = {
            "bias": best,
            "generated_right": gen_right(best),
            "at_0": gen_right(0.0),
        }
        bfcl_call, bfcl_none = groups.get("bfcl_call", []), groups.get("bfcl_no_call", [])
        out["bfcl_at_chosen"] = {
            "refusals": sum(r["reason"] == "no_call_made" for r in bfcl_call),
            "refusals_turned_to_calls": sum(
                r["reason"] == "no_call_made" and r["margin"] + best > 0 for r in bfcl_call
            ),
            "calls_passing": sum(bool(r["passed"]) for r in bfcl_call),
            "calls_passing_turned_to_text": sum(
                bool(r["passed"]) and r["margin"] + best <= 0 for r in bfcl_call
            ),
            "irrelevance_passing": sum(bool(r["passed"]) for r in bfcl_none),
            "irrelevance_passing_turned_to_calls": sum(
                bool(r["passed"]) and r["margin"] + best > 0 for r in bfcl_none
            ),
            "irrelevance_failing_turned_to_text": sum(
                not r["passed"] and r["margin"] + best <= 0 for r in bfcl_none
            ),
        }
    for g, rows in groups.items():
        if g.startswith("bfcl_"):
            out[f"{g}_margins"] = sorted(r["margin"] for r in rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, help="the tooltune workspace")
    ap.add_argument("--adapter", help="adapter name in the workspace (default: the base model)")
    ap.add_argument("--run", action="append", default=[], help="an eval run whose cases are scored")
    ap.add_argument("--dataset", help="a generated dataset whose valid and test splits are scored")
    ap.add_argument("--model", default=None, help="model path (default: the first run's model)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--rows-from",
        type=Path,
        help="a result of this script: summarise its rows again (no model is loaded)",
    )
    a = ap.parse_args()
    if a.rows_from:
        out = json.loads(a.rows_from.read_text())
        out["summary"] = summarise(out["rows"])
        atomic_write_json(a.out, out)
        print(json.dumps({k: v for k, v in out["summary"].items() if not k.endswith("_margins")}))
        return
    if not a.workspace or not a.run:
        ap.error("--workspace and at least one --run are needed (or --rows-from)")
    restart_with_blas()
    reports = a.workspace / "reports"
    model_path = a.model or json.loads((reports / a.run[0] / "run.json").read_text())["model_name"]
    adapter_path = str(a.workspace / "adapters" / a.adapter) if a.adapter else None
    model, tok = mlx_lm.load(model_path, adapter_path=adapter_path)
    if len(tok.encode(CALL)) != 1:
        sys.exit(f"{CALL!r} is not one token for {model_path}")
    t0 = time.perf_counter()
    groups: dict[str, list[dict[str, Any]]] = {
        "bfcl_call": [],
        "bfcl_no_call": [],
        "gen_call": [],
        "gen_no_call": [],
    }
    for run in a.run:
        # a call case passes natively or not at all; a no-call case fails on any call attempt (lenient)
        modes = {m: run_outcomes(reports, run, m) for m in ("native", "lenient")}
        for line in (reports / run / "suite.jsonl").open():
            case = EvalCase.model_validate_json(line)
            row = {"id": case.id, "run": run, **first_token(model, tok, case.messages, case.tools)}
            outcome = modes["lenient" if case.expects_no_call else "native"].get(case.id)
            row["passed"] = outcome["passed"] if outcome else None
            row["reason"] = outcome["reason"] if outcome else "not run"
            groups["bfcl_no_call" if case.expects_no_call else "bfcl_call"].append(row)
            print(case.id, row["margin"], row["top_other"], row["reason"], file=sys.stderr)
    if a.dataset:
        for p in dataset_prompts(a.workspace, a.dataset):
            row = {"id": p["id"], "kind": p["kind"], **first_token(model, tok, p["messages"], p["tools"])}
            groups["gen_call" if p["should_call"] else "gen_no_call"].append(row)
    groups = {g: rows for g, rows in groups.items() if rows}
    summary = summarise(groups)
    out = {
        "benchmark": "decision_margin",
        "command": command_line(),
        "machine": machine_info(),
        "model": model_path,
        "adapter": a.adapter,
        "runs": a.run,
        "dataset": a.dataset,
        "wall_s": round(time.perf_counter() - t0, 1),
        "summary": summary,
        "rows": groups,
    }
    atomic_write_json(a.out, out)
    print(json.dumps({k: v for k, v in summary.items() if not k.endswith("_margins")}))


if __name__ == "__main__":
    main()
