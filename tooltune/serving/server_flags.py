"""The ``mlx_lm.server`` flags tooltune adds to each model server it starts."""

from __future__ import annotations

from tooltune.device import Device, detect_device

PROMPT_ONE_AT_A_TIME = ["--prompt-concurrency", "1"]
"""On a CPU, requests that arrive together have their prompts processed one at a time (their decoding is
still batched): mlx_lm.server's batched prompt processing prefilled 4 concurrent coding-tools prompts at
59 tokens/s on 2 cores against 89 one after another (measured by hand, docs/PLATFORM.md), and
coding-tools evals took 5-13% less time per pair with the same answers (bench/results/eval_speed.json,
eval_speed_pairs.json)."""

PREFILL_IN_CHUNKS = ["--prefill-step-size", "256"]
"""On a CPU, a prompt is prefilled 256 tokens at a time (mlx_lm's default: 2,048). Attention is most of a
long prompt's prefill here (2,000 tokens in one chunk: 22 of 32 s; by hand, its softmax, which MLX's CPU
kernels run on one thread, was most of that), and a chunk's queries meet every key before them, so one
chunk of T tokens pays for T x T attention scores and chunks of 256 for about half: the 0.5B's forward
pass over 2,000 tokens took 22.1 s instead of 31.6 (1.43x), over 1,015 tokens 1.16x, over 500 tokens
1.06x (bench/results/prefill_chunks.json). A server's first prompt of a session gains that; evals, whose cases
share a cached prefix of tool definitions, gain less: 4-5% less time on notes-calendar, 1% (noise) on
coding-tools, every answer the same (bench/results/eval_throughput_prefill_*.json)."""

CPU_SERVER_ARGS = [*PROMPT_ONE_AT_A_TIME, *PREFILL_IN_CHUNKS]


def default_server_args(device: Device | None = None) -> list[str]:
    """The flags for a server on ``device`` (default: the one MLX runs on here); none on a GPU, where
    batched prompt processing and long prefill chunks are what the hardware is for."""
    device = device or detect_device()
    return list(CPU_SERVER_ARGS) if device.kind == "cpu" else []
