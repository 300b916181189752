"""The ``mlx_lm.server`` flags tooltune adds to each model server it starts."""

from __future__ import annotations

from tooltune.device import Device, detect_device

PROMPT_ONE_AT_A_TIME = ["--prompt-concurrency", "1"]
"""On a CPU, requests that arrive together have their prompts processed one at a time (their decoding is
still batched): mlx_lm.server's batched prompt processing prefilled 4 concurrent coding-tools prompts at
59 tokens/s on 2 cores against 89 one after another (measured by hand, docs/PLATFORM.md), and
coding-tools evals took 5-13% less time per pair with the same answers (bench/results/eval_speed.json,
eval_speed_pairs.json)."""


def default_server_args(device: Device | None = None) -> list[str]:
    """The flags for a server on ``device`` (default: the one MLX runs on here); none on a GPU, where
    batched prompt processing is what the hardware is for."""
    device = device or detect_device()
    return list(PROMPT_ONE_AT_A_TIME) if device.kind == "cpu" else []
