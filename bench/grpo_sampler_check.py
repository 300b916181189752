"""Does GRPO's in-loop sampler answer as the server did? (issue 36)

GRPO at 1e-5 from the 0.5B's SFT adapter (one H100, ``bench/results/onpolicy_judge2_0.5b.json``) called a
tool where none was due in 375 of its 1,680 rollout answers and made no call where one was due in 7. The
same adapter's answers to 300 of the same requests, sampled through ``mlx_lm.server`` at the same
temperature before training, did so 158 and 106 times of 1,200. Either training moved the call decision
fast, or the sampler inside training (mlx-lm-lora's ``generate_grpo``, as ``tooltune.training.grpo``
calls it) answers differently from the server from step 0.

This answers a samples set's requests again with the adapter loaded as GRPO loads it and sampled as GRPO
samples (``group_size`` answers of one request at once, the run's temperature, no top-p/top-k), scores
them with GRPO's reward, and sets each group beside the recorded server answers to the same request:

    python bench/grpo_sampler_check.py --samples /tmp/g50/root/ws_dpo/samples/<name> \\
        --model ~/.cache/tooltune/models/qwen2.5-coder-0.5b-instruct --adapter <adapters/sft> \\
        --per-group 24 --out bench/results/grpo_sampler_cpu.json

``--per-group`` requests where no call is due and as many where one is, the first in the set's order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from render_readme import wilson

from tooltune.data.examples import Example
from tooltune.data.onpolicy import example_case
from tooltune.workspace import atomic_write_json

from bench_common import machine_info, restart_with_blas


def server_outcome(sample: dict[str, Any], expects_no_call: bool) -> str:
    """The recorded server answer's outcome in GRPO's words: right, a call where none was due, no call
    where one was, or another miss."""
    if sample["native"] and sample["lenient"] and not (expects_no_call and sample["attempted"]):
        return "right"
    if expects_no_call:  # a native call, or (no reason: native passed, lenient did not) one written as text
        return sample["reason"] or "called_when_irrelevant"
    return sample["reason"] or "no_call_made"


def pick(records: list[dict[str, Any]], per_group: int) -> list[dict[str, Any]]:
    """The first ``per_group`` records where no call is due and the first ``per_group`` where one is."""
    no_call = [r for r in records if r["expects_no_call"]][:per_group]
    call = [r for r in records if not r["expects_no_call"]][:per_group]
    return no_call + call


def tally(outcomes: list[str]) -> dict[str, Any]:
    n = len(outcomes)
    counts = Counter(outcomes)
    silent = counts["no_call_made"]
    called = counts["called_when_irrelevant"]
    return {
        "answers": n,
        "right": counts["right"],
        "called_where_none_due": called,
        "no_call_where_due": silent,
        "outcomes": dict(counts.most_common()),
    }


def share(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": round(k / n, 4) if n else None, "interval": [round(lo, 4), round(hi, 4)]}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per side (``server``, ``sampler``): the outcomes where no call is due and where one is, and the
    shares of calls where none is due and of no call where one is, with 95% Wilson intervals."""

    def side(which: str, no_call: bool) -> dict[str, Any]:
        return tally([o for r in rows if r["expects_no_call"] == no_call for o in r[which]])

    summary = {}
    for which in ("server", "sampler"):
        nc, c = side(which, True), side(which, False)
        summary[which] = {
            "no_call_due": nc,
            "call_due": c,
            "called_where_none_due": share(nc["called_where_none_due"], nc["answers"]),
            "no_call_where_due": share(c["no_call_where_due"], c["answers"]),
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, required=True, help="a samples set's folder (samples.jsonl)")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--adapter", type=Path, required=True, help="the adapter the samples were drawn from")
    ap.add_argument("--per-group", type=int, default=24)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    restart_with_blas()

    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm_lora.trainer.grpo_trainer import generate_grpo

    from tooltune.training.grpo import prompt_tokens, reward

    records = [json.loads(x) for x in (args.samples / "samples.jsonl").read_text().splitlines() if x.strip()]
    chosen = pick(records, args.per_group)
    model, tokenizer = load(str(args.model), adapter_path=str(args.adapter))
    model.eval()
    mx.random.seed(args.seed)
    rows = []
    t0 = time.monotonic()
    for n, rec in enumerate(chosen, 1):
        case = example_case(Example.model_validate(rec["example"]), rec["id"])
        k = len(rec["samples"])
        _, texts, _ = generate_grpo(
            model, tokenizer, [prompt_tokens(tokenizer, case)], max_tokens=args.max_tokens, group_size=k,
            batch_size=k, end_token="", temperature=args.temperature, top_p=1.0, top_k=0, min_p=0.0,
        )  # fmt: skip
        rows.append(
            {
                "id": rec["id"],
                "kind": rec["kind"],
                "expects_no_call": rec["expects_no_call"],
                "server": [server_outcome(s, rec["expects_no_call"]) for s in rec["samples"]],
                "sampler": [reward(case, t, tokenizer)[1] for t in texts],
                "sampler_texts": [t[:200] for t in texts],
            }
        )
        print(f"[{n}/{len(chosen)}] {rec['id']} server {rows[-1]['server']} sampler {rows[-1]['sampler']}",
              file=sys.stderr, flush=True)  # fmt: skip
    seconds = time.monotonic() - t0

    summary = summarize(rows)
    out = {
        "benchmark": "grpo_sampler_check",
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "samples": args.samples.name,
        "adapter": args.adapter.name,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "requests": {"no_call_due": args.per_group, "call_due": args.per_group},
        "seconds": round(seconds, 1),
        "summary": summary,
        "rows": rows,
    }
    atomic_write_json(args.out, out)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
