"""How likely an adapter is to make a second call after the first one, on a suite's parallel cases.

For each parallel case, the first expected call is appended to the prompt (as the chat template writes
it) and the log-probabilities of "\\n<tool_call>" (a second call) and "<|im_end|>" (the turn ends) are
compared; printed is P(second call) per case and the mean. Greedy decoding makes the second call only
where it is above 0.5. Used for docs/TRANSCRIPTS.md (generator 6, 7, 8 and 9 demo adapters: 0.45, 0.25,
0.78, 0.92; generator 9's adapter is the one on branch `gen9`).

    python bench/second_call_probability.py --model ~/.cache/tooltune/models/qwen2.5-coder-0.5b-instruct \\
        --adapters-dir /tmp/demo2/.tooltune/adapters ADAPTER [ADAPTER ...]

It restarts itself once with the environment tooltune gives its MLX subprocesses (OpenBLAS preloaded
on Linux CPU; MLX's bundled reference BLAS is about 20x slower).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import mlx.core as mx
from mlx_lm import load

from tooltune.evals.suite import builtin_suite_text

from bench_common import restart_with_blas


def second_call_probability(model, tok, case: dict) -> float:  # noqa: ANN001 - mlx-lm objects
    name, args = next(iter(case["expected"][0].items()))
    first = {k: v[0] for k, v in args.items() if v and v[0] != ""}
    prompt = tok.apply_chat_template(
        case["messages"], tools=case.get("tools"), add_generation_prompt=True, tokenize=False
    )
    call = "<tool_call>\n" + json.dumps({"name": name, "arguments": first}) + "\n</tool_call>"
    base = tok.encode(prompt + call)

    def logprob(text: str) -> float:
        extra = tok.encode(prompt + call + text)[len(base) :]
        logits = model(mx.array([base + extra]))[0].astype(mx.float32)
        logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        return sum(logp[len(base) - 1 + i, t].item() for i, t in enumerate(extra))

    more, end = logprob("\n<tool_call>"), logprob("<|im_end|>")
    return 1 / (1 + math.exp(end - more))


def main() -> None:
    restart_with_blas()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapters-dir", type=Path, required=True)
    ap.add_argument("--suite", default="coding-tools")
    ap.add_argument("adapters", nargs="+")
    a = ap.parse_args()
    cases = [json.loads(line) for line in builtin_suite_text(a.suite).splitlines() if line.strip()]
    cases = [c for c in cases if c["category"] == "parallel"]
    for adapter in a.adapters:
        model, tok = load(a.model, adapter_path=str(a.adapters_dir / adapter))
        ps = [second_call_probability(model, tok, c) for c in cases]
        print(adapter, " ".join(f"{p:.2f}" for p in ps), f"mean {sum(ps) / len(ps):.3f}", flush=True)


if __name__ == "__main__":
    main()
