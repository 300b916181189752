"""bench/token_row_step.py (issue 36): how far Adam steps on the tool-call token rows move the marker's
logit, the bound that MLX's Adam and the tied head put on it, and the committed result of the 0.5B."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_import import bench_module

ROOT = Path(__file__).resolve().parents[1]


def test_adam_ratio_is_mlx_adams_step_without_bias_correction() -> None:
    import mlx.core as mx
    import mlx.optimizers as optim

    bench = bench_module("token_row_step")
    w, opt = {"w": mx.zeros((1,))}, optim.Adam(learning_rate=1.0)  # mlx-lm's Adam: MLX's defaults
    moves = []
    for _ in range(12):
        before = w["w"].item()
        w = opt.apply_gradients({"w": mx.array([0.5])}, w)
        moves.append(before - w["w"].item())
    assert moves == pytest.approx([bench.adam_ratio(t) for t in range(1, 13)], rel=1e-4)
    assert bench.adam_ratio(1) == pytest.approx(0.1 / 0.001**0.5) and max(moves) > 6


@pytest.mark.slow
def test_the_benchmark_measures_the_marker_logit_move_on_the_tiny_model(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLTUNE_BENCH_BLAS_SET", "1")  # no restart of the test process
    bench = bench_module("token_row_step")
    out = tmp_path / "r.json"
    argv = ["--model", str(tiny_model), "--n", "2", "--steps", "3", "--lr", "1e-3", "1e-2", "--scale", "6"]
    assert bench.main([*argv, "--rank", "4", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["markers"]) == {"<tool_call>", "</tool_call>"} and r["examples"] == 2
    small, large = r["adam"]["0.001"], r["adam"]["0.01"]
    ratio = max(bench.adam_ratio(t) for t in (1, 2, 3))
    assert r["adam_ratio_max"] == round(ratio, 3)
    assert small["bound_per_step_nats"] == pytest.approx(ratio * 1e-3 * 6 * r["hidden_l1"]["mean"], rel=1e-3)
    # cross-entropy on the answers raises the call marker at the answer's start, more at the higher rate
    assert 0 < small["call_logit_move_mean"] < large["call_logit_move_mean"]
    assert small["call_log_p_after_mean"] > small["call_log_p_before_mean"]
    assert all(n > 0 for n in small["row_delta_norm"])


def test_the_committed_0_5b_result_shows_steps_far_beyond_the_rows_size() -> None:
    """On the 0.5B, ten steps at 5e-6 move the call marker's logit by more than ten nats: the rows the SFT
    adapter trained are what a stacked method moves first, whatever its loss."""
    r = json.loads((ROOT / "bench" / "results" / "token_row_step.json").read_text())
    assert r["model"] == "qwen2.5-coder-0.5b-instruct" and r["examples"] >= 8
    slow = r["adam"]["5e-06"]
    assert slow["steps"] == 10 and slow["call_logit_move_mean"] > 10
    assert slow["call_logit_move_per_step_mean"] <= slow["bound_per_step_nats"]
    assert max(slow["row_delta_norm"]) < r["row_norm"]["median_row"]  # small rows, large logit moves
