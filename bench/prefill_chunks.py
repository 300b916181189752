"""Prefill time by chunk size: one prompt through the model in chunks of N tokens, as mlx_lm processes a
prompt ``--prefill-step-size`` tokens at a time, and where one chunk's time goes.

Usage: python bench/prefill_chunks.py [--model PATH] [--tokens 500,1015,2000] [--chunks 2048,512,256,128]
       [--repeats 2] [--out bench/results/prefill_chunks.json]

Each chunk's queries attend to every key before them, so a prompt processed in one chunk computes all
T x T attention scores and in chunks of c about T x T / 2 + T x c / 2. On a CPU where the softmax and
``exp`` are the slow part (MLX's CPU kernels run them on one thread), smaller chunks are faster until the
matmuls get too skinny to run at full speed. The script records, per prompt length, the best of
``--repeats`` full passes per chunk size (cache states evaluated, no LM head: as a server's prefill), and
for the longest prompt in one chunk the time of the matmuls alone at the model's shapes, one block's
attention and ``scaled_dot_product_attention``, and one block's MLP. The prompt's tokens are arbitrary ids
(the time does not depend on which); the model is tooltune's 0.5B unless ``--model`` names another.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tooltune.config import Settings  # noqa: E402
from tooltune.serving.blas import subprocess_env  # noqa: E402
from tooltune.workspace import atomic_write_json  # noqa: E402

from bench_common import result_head  # noqa: E402

CHILD = r"""
import json, sys, time
import mlx.core as mx
from mlx_lm import load
from mlx_lm.models.cache import make_prompt_cache
model_path, lengths, chunks, repeats = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
model, _ = load(model_path)
vocab = model.model.embed_tokens.weight.shape[0]

def best(f):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return round(min(times), 6)

def prefill(x, c):
    cache = make_prompt_cache(model)
    for s in range(0, x.shape[1], c):
        model.model(x[:, s : s + c], cache=cache)
        mx.eval([e.state for e in cache])
    return cache[0].offset

out = {"dtype": str(model.model.layers[0].mlp.up_proj.weight.dtype), "by_length": {}}
for n in lengths:
    x = mx.array([[(7 * i + 3) % (vocab - 1) for i in range(n)]])
    out["by_length"][str(n)] = {str(c): best(lambda: prefill(x, c)) for c in chunks}
    out.setdefault("tokens_in_cache", {})[str(n)] = sorted({prefill(x, c) for c in chunks})
n = max(lengths)
block = model.model.layers[0]
attn, mlp = block.self_attn, block.mlp
h = mx.random.normal((1, n, block.input_layernorm.weight.shape[0])).astype(mlp.up_proj.weight.dtype)
inner = mx.random.normal((1, n, mlp.down_proj.weight.shape[1])).astype(h.dtype)
mx.eval(h, inner)
weights = [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.o_proj.weight,
           mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight]
layers = len(model.model.layers)
def matmuls():
    mx.eval([(inner if w.shape[1] == inner.shape[-1] else h) @ w.T for w in weights])
q = mx.random.normal((1, attn.n_heads, n, h.shape[-1] // attn.n_heads)).astype(h.dtype)
kv = mx.random.normal((1, attn.n_kv_heads, n, q.shape[-1])).astype(h.dtype)
mx.eval(q, kv)
def attention():
    mx.eval(attn(h, mask="causal", cache=make_prompt_cache(model)[0]))
t_mm = best(matmuls)
flop = 2 * n * sum(w.size for w in weights)
out["one_chunk_parts"] = {
    "tokens": n,
    "layers": layers,
    "matmuls_all_layers_s": round(t_mm * layers, 6),
    "matmul_gflops_at_model_shapes": round(flop / t_mm / 1e9, 1),
    "attention_block_s": best(attention),
    "sdpa_s": best(lambda: mx.eval(mx.fast.scaled_dot_product_attention(q, kv, kv, scale=1.0, mask="causal"))),
    "mlp_block_s": best(lambda: mx.eval(mlp(h))),
}
print(json.dumps(out))
"""


def measure(
    model: Path, lengths: list[int], chunks: list[int], repeats: int, threads: str | None
) -> dict[str, Any]:
    """Run the measurement in a child with tooltune's MLX environment (OpenBLAS preloaded on a Linux CPU)."""
    env = subprocess_env(Settings.load().cache_dir)
    if threads:
        env["OPENBLAS_NUM_THREADS"] = threads
    args = [str(model), json.dumps(lengths), json.dumps(chunks), str(repeats)]
    done = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"prefill_chunks: the measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(raw: dict[str, Any], chunks: list[int]) -> dict[str, Any]:
    """Tokens/s per length and chunk size, and each chunk size's speedup over the first (the baseline)."""
    base = str(chunks[0])
    rows = {}
    for n, times in raw["by_length"].items():
        rows[n] = {
            "seconds": times,
            "tokens_per_s": {c: round(int(n) / t, 1) for c, t in times.items()},
            f"speedup_vs_{base}": {c: round(times[base] / t, 2) for c, t in times.items()},
        }
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--tokens", default="500,1015,2000", help="prompt lengths, comma-separated")
    ap.add_argument("--chunks", default="2048,512,256,128", help="chunk sizes; the first is the baseline")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", default=None, help="OpenBLAS threads (default: tooltune's choice)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "prefill_chunks.json")
    args = ap.parse_args()
    model = args.model or Settings.load().models_dir / "qwen2.5-coder-0.5b-instruct"
    lengths = [int(x) for x in args.tokens.split(",")]
    chunks = [int(x) for x in args.chunks.split(",")]
    raw = measure(model, lengths, chunks, args.repeats, args.threads)
    result = {
        **result_head("prefill_chunks", model),
        "dtype": raw["dtype"],
        "threads": args.threads,
        "by_length": summarize(raw, chunks),
        "one_chunk_parts": raw["one_chunk_parts"],
        "tokens_in_cache": raw["tokens_in_cache"],
    }
    atomic_write_json(args.out, result)
    print(json.dumps({n: r[f"speedup_vs_{chunks[0]}"] for n, r in result["by_length"].items()}))


if __name__ == "__main__":
    main()
