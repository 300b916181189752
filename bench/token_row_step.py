"""How far does one Adam step on the tool-call token rows move those tokens' logits? (issue 36)

On one H100, DPO from the 0.5B's SFT adapter failed the answer check at learning rate 5e-6 as at 5e-5
(bench/results/onpolicy_dpo_0.5b.json): where a call was due, 10 of 16 right before, 0 after, although
at 5e-6 the training loss barely moved. The adapter trains the rows of ``<tool_call>`` and
``</tool_call>`` (training/token_rows.py) and the 0.5B ties its embedding to its LM head, so a row's
change moves that token's logit at every position by ``Δrow · h`` (``h`` the final hidden state). Adam
moves each coordinate of a row by about ``learning_rate × scale`` per step whatever the gradient's size,
times Adam's ratio ``m/√v``; MLX's Adam has no bias correction (``bias_correction=False``, as mlx-lm
builds it), so with a steady gradient that ratio is ``(1 - 0.9^t) / √(1 - 0.999^t)``: 3.2 at step 1,
about 6.5 near step 10, still 3.2 at step 100. The move is bounded by
``ratio × learning_rate × scale × |h|₁`` and comes near it when the gradient's signs follow ``h``'s.

This measures, on requests of a generated dataset for the built-in coding tools (as the model trains):

  1. ``|h|₁`` and ``|h|₂`` at the answer positions, and the markers' row norms beside a median row's;
  2. the bound per step for each ``--lr``;
  3. the move itself: a fresh token-rows adapter (rows only, nothing else trainable), cross-entropy on
     the answers, ``--steps`` Adam steps at each ``--lr``; the change of the ``<tool_call>`` logit at each
     answer's first position, and of ``log p(<tool_call>)`` there.

    python bench/token_row_step.py --model qwen2.5-coder-0.5b-instruct --out bench/results/token_row_step.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tooltune.config import Settings
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import machine_info, restart_with_blas


def _answers(model_path: Path, tokenizer: Any, n: int, seed: int) -> list[tuple[list[int], int]]:
    """(tokens, prompt length) of ``n`` generated examples whose answer is a tool call."""
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig

    with tempfile.TemporaryDirectory(prefix="tooltune-token-rows-") as tmp:
        ws = Workspace(Path(tmp) / "ws").ensure()
        info, _ = generate_dataset(
            ws, "d", ["builtin:coding"], GenerateConfig(n=max(4 * n, 40), seed=seed), model_path=model_path
        )
        rows = [json.loads(line) for line in (Path(info.path) / "train.jsonl").read_text().splitlines()]
    out = []
    for row in rows:
        messages, tools = row["messages"], row.get("tools")
        if not messages[-1].get("tool_calls"):
            continue
        prompt = tokenizer.apply_chat_template(messages[:-1], tools=tools, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tools=tools)
        if list(full[: len(prompt)]) == list(prompt):
            out.append((list(full), len(prompt)))
        if len(out) == n:
            break
    return out


def adam_ratio(t: int, b1: float = 0.9, b2: float = 0.999) -> float:
    """``m/√v`` of MLX's Adam (no bias correction) at step ``t`` under a steady gradient."""
    return (1 - b1**t) / (1 - b2**t) ** 0.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model name in the cache or a folder (default: the demo's)")
    ap.add_argument("--n", type=int, default=8, help="examples whose answer is a call")
    ap.add_argument("--lr", type=float, nargs="+", default=[5e-6, 5e-5])
    ap.add_argument("--scale", type=float, default=20.0, help="the adapter's LoRA scale")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    restart_with_blas()

    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm import load

    from tooltune.models.resolve import resolve_model
    from tooltune.training.token_rows import apply_token_rows, default_tokens, resolve_token_ids

    settings = Settings.load()
    model_path = resolve_model(args.model or settings.default_model, settings).path
    t0 = time.perf_counter()
    model, tokenizer = load(str(model_path))
    machine = machine_info()
    ids = resolve_token_ids(tokenizer, default_tokens(tokenizer))
    if not ids:
        raise SystemExit(f"{model_path.name}: the tool-call markers are not single tokens; no rows to train")
    call_id = ids.get("<tool_call>", next(iter(ids.values())))
    examples = _answers(model_path, tokenizer, args.n, args.seed)
    if not examples:
        raise SystemExit("no generated example answers with a call")

    weight = model.model.embed_tokens.weight
    norms = mx.sqrt((weight.astype(mx.float32) ** 2).sum(-1))
    l1, l2 = [], []
    for tokens, start in examples:
        h = model.model(mx.array(tokens)[None])[0, start - 1 : len(tokens) - 1].astype(mx.float32)
        l1 += mx.abs(h).sum(-1).tolist()
        l2 += mx.sqrt((h * h).sum(-1)).tolist()
    l1_mean = statistics.fmean(l1)
    ratio = max(adam_ratio(t) for t in range(1, args.steps + 1))

    def first_call_logits(m: nn.Module) -> list[tuple[float, float]]:
        """(logit, log p) of the call marker at each answer's first position."""
        out = []
        for tokens, start in examples:
            logits = m(mx.array(tokens[:start])[None])[0, -1].astype(mx.float32)
            out.append((logits[call_id].item(), (logits[call_id] - mx.logsumexp(logits)).item()))
        return out

    def loss_fn(m: nn.Module, tokens: mx.array, start: int) -> mx.array:
        logits = m(tokens[None, :-1])[0]
        return nn.losses.cross_entropy(logits, tokens[1:])[start - 1 :].mean()

    before = first_call_logits(model)
    measured = {}
    base_rows, base_head = model.model.embed_tokens, getattr(model, "lm_head", None)
    for lr in args.lr:
        model.freeze()
        apply_token_rows(model, list(ids.values()), rank=args.rank, scale=args.scale)
        opt = optim.Adam(learning_rate=lr)
        grad = nn.value_and_grad(model, loss_fn)
        for step in range(args.steps):
            tokens, start = examples[step % len(examples)]
            _, g = grad(model, mx.array(tokens), start)
            opt.update(model, g)
            mx.eval(model.parameters(), opt.state)
        after = first_call_logits(model)
        rows = model.model.embed_tokens
        delta = (rows.scale * rows.lora_b[: len(ids)]).astype(mx.float32)
        logit_moves = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
        measured[f"{lr:g}"] = {
            "steps": args.steps,
            "bound_per_step_nats": round(ratio * lr * args.scale * l1_mean, 4),
            "call_logit_move_mean": round(statistics.fmean(logit_moves), 4),
            "call_logit_move_max": round(max(logit_moves, key=abs), 4),
            "call_logit_move_per_step_mean": round(statistics.fmean(logit_moves) / args.steps, 4),
            "call_log_p_before_mean": round(statistics.fmean(b[1] for b in before), 4),
            "call_log_p_after_mean": round(statistics.fmean(a[1] for a in after), 4),
            "row_delta_norm": [round(x, 5) for x in mx.sqrt((delta**2).sum(-1)).tolist()],
            "row_delta_coord_abs_max": round(mx.abs(delta).max().item(), 7),
        }
        model.model.update_modules({"embed_tokens": base_rows})  # the next rate starts from the base again
        if base_head is not None:  # an untied head got its own rows too
            model.update_modules({"lm_head": base_head})

    doc = {
        "benchmark": "token_row_step",
        "command": " ".join(
            ["python", "bench/token_row_step.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "model": model_path.name,
        "markers": ids,
        "examples": len(examples),
        "answer_positions": len(l1),
        "hidden_l1": {"mean": round(l1_mean, 1), "min": round(min(l1), 1), "max": round(max(l1), 1)},
        "hidden_l2_mean": round(statistics.fmean(l2), 2),
        "row_norm": {
            **{t: round(norms[i].item(), 4) for t, i in ids.items()},
            "median_row": round(mx.sort(norms)[norms.shape[0] // 2].item(), 4),
        },
        "adam_ratio_max": round(ratio, 3),
        "adam": measured,
        "seconds": round(time.perf_counter() - t0, 1),
        "notes": "bound_per_step_nats = adam_ratio_max × lr × scale × mean |h|₁ at the answer positions: "
        "about the most one step of MLX's Adam (no bias correction) on the tied marker rows can move a "
        "marker's logit; the measured move is that of cross-entropy on the answers from the base model's "
        "rows (a fresh adapter), rows the only trainable weights.",
    }
    atomic_write_json(args.out, doc)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
