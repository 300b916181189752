"""bench/answer_check_real.py (issue 36): break an SFT adapter with DPO on purpose and record what the
preference run's answer check made of it; and the committed result of the 0.5B on this CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_import import bench_module

from tooltune.config import Settings
from tooltune.data.datasets import generate_dataset
from tooltune.data.generate_config import GenerateConfig
from tooltune.jobs import JobStore
from tooltune.training import runs
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_cpu_result_shows_the_check_stopping_a_broken_0_5b() -> None:
    """The 0.5B's CPU SFT adapter, DPO at 1e-3 for 20 steps: over all 32 requests the adapter loses 10
    and gains 12 (no significant change), but where a call is due it loses all 10 it had right: the run
    fails, unregistered, on that half."""
    r = json.loads((ROOT / "bench" / "results" / "answer_check_cpu.json").read_text())
    check = r["answer_check"]
    halves = check["groups"]
    assert r["model"] == "qwen2.5-coder-0.5b-instruct" and r["machine"]["device"] == "Device(cpu, 0)"
    assert (r["train"]["status"], r["train"]["registered"], check["worse_in"]) == (
        "failed",
        False,
        ["call_due"],
    )
    for key in ("requests", "right_before", "right_after", "regressions", "fixes"):
        assert check[key] == sum(h[key] for h in halves.values())
    assert check["p_value"] > 0.5 and halves["call_due"]["p_value"] < 0.01  # one count would have passed it
    assert (
        halves["call_due"]["right_before"] - halves["call_due"]["regressions"]
        == halves["call_due"]["right_after"]
    )
    assert "of 16 requests where a call is due, the starting model got 10 right" in r["train"]["error"]
    assert r["seconds"]["answer_check_before"] > 0 and r["seconds"]["answer_check_after"] > 0  # README's cost


@pytest.mark.slow
def test_the_benchmark_builds_both_kinds_of_pair_trains_and_records_the_check(
    settings: Settings, tiny_model: Path, tmp_path: Path
) -> None:
    bench = bench_module("answer_check_real")
    ws = Workspace(settings.workspace).ensure()
    generate_dataset(ws, "d", ["builtin:coding"], GenerateConfig(n=60, seed=0), model_path=tiny_model)
    sft = TrainConfig(model=str(tiny_model), dataset="d", iters=2, num_layers=2, rank=4, batch_size=1)
    job = runs.start_training(sft, settings, name="sft")
    assert JobStore(ws).wait(job.id, timeout=600, poll=0.3).status == "succeeded"
    out = tmp_path / "r.json"
    argv = ["--workspace", str(ws.root), "--adapter", "sft", "--valid-each", "3", "--train-calls", "4"]
    assert bench.main([*argv, "--train-no-calls", "2", "--iters", "2", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    pairs = [json.loads(line) for line in (ws.dataset_dir("answer-check-sft") / "valid.jsonl").open()]
    assert [p["reason"] for p in pairs] == ["no_call_made"] * 3 + ["called_when_irrelevant"] * 3
    assert all(p["rejected"] == bench.REFUSAL for p in pairs[:3]) and all(
        p["rejected"]["tool_calls"] for p in pairs[3:]
    )
    assert r["pairs"]["train"] == 6 and r["pairs"]["valid"] == 6 and r["train"]["learning_rate"] == 1e-3
    check = r["answer_check"]
    assert check["splits"] == {"valid": 6, "train": 6} and set(check["groups"]) == {"call_due", "no_call_due"}
    assert (r["train"]["status"] == "failed") == check["worse"]  # the run's end is the check's verdict
    assert r["start_adapter"] == "sft" and r["seconds"]["answer_check_before"] is not None
    again = tmp_path / "again.json"
    assert (
        bench.main(["--workspace", str(ws.root), "--from-run", r["train"]["run"], "--out", str(again)]) == 0
    )
    assert json.loads(again.read_text())["answer_check"] == check
    # how far the weights moved: both marker rows (the SFT adapter trained them) and the blocks
    moved = r["weight_change"]
    assert r["token_rows"] == "trained" and len(moved["token_rows"]["start_delta_norm"]) == 2
    assert min(moved["token_rows"]["change_norm"]) > 0 and moved["blocks_lora_b_relative_change"] > 0
    held = tmp_path / "held.json"
    argv = ["--workspace", str(ws.root), "--adapter", "sft", "--valid-each", "3", "--train-calls", "4"]
    more = ["--train-no-calls", "2", "--iters", "2", "--freeze-token-rows", "--dpo-loss", "dpop"]
    assert bench.main([*argv, *more, "--out", str(held)]) == 0
    h = json.loads(held.read_text())
    assert (r["train"]["dpo_loss"], h["train"]["dpo_loss"]) == ("sigmoid", "dpop")
    assert r["losses"]["first_val_loss"] > 0 and r["losses"]["last_train_loss"] is not None
    assert h["train"]["run"] != r["train"]["run"]
    assert h["token_rows"] == "frozen (no gradient)" and h["weight_change"]["token_rows"]["change_norm"] == [
        0,
        0,
    ]
    assert h["weight_change"]["blocks_lora_b_relative_change"] > 0


def test_the_committed_cpu_runs_with_and_without_held_rows_lose_the_same() -> None:
    """E1 (issue 36): DPO at 5e-6 for 80 steps from the quick preset's adapter, on the same pairs, once
    with the token rows trained and once held. Held rows do not move; the blocks move as much either way;
    neither run is refused, and both lose 3-4 of the 7 right answers where a call is due."""
    runs = {
        k: json.loads((ROOT / "bench" / "results" / f"dpo_rows_{k}_cpu.json").read_text())
        for k in ("trained", "held")
    }
    trained, held = runs["trained"], runs["held"]
    assert trained["dataset"] == held["dataset"] and trained["start_adapter"] == held["start_adapter"]
    assert (trained["token_rows"], held["token_rows"]) == ("trained", "frozen (no gradient)")
    assert held["weight_change"]["token_rows"]["change_norm"] == [0.0, 0.0]
    assert min(trained["weight_change"]["token_rows"]["change_norm"]) > 0.1
    for r in runs.values():
        assert r["train"]["status"] == "succeeded" and r["train"]["learning_rate"] == 5e-6
        assert r["weight_change"]["blocks_lora_b_relative_change"] > 0.1
        due = r["answer_check"]["groups"]["call_due"]
        assert due["right_before"] == 7 and 3 <= due["regressions"] <= 4 and not due["worse"]


def test_the_committed_dpop_run_keeps_the_right_calls_the_sigmoid_loss_lost() -> None:
    """E2 (issue 36): E1's setup with DPOP (a penalty whenever the chosen answer gets less likely than
    under the reference). Where a call is due it keeps all 7 right answers the sigmoid run lost 4 of."""
    dpop = json.loads((ROOT / "bench" / "results" / "dpo_dpop_cpu.json").read_text())
    sigmoid = json.loads((ROOT / "bench" / "results" / "dpo_rows_trained_cpu.json").read_text())
    assert (dpop["dataset"], dpop["start_adapter"]) == (sigmoid["dataset"], sigmoid["start_adapter"])
    assert dpop["train"]["dpo_loss"] == "dpop" and dpop["train"]["learning_rate"] == 5e-6
    assert dpop["token_rows"] == sigmoid["token_rows"] == "trained"
    groups = dpop["answer_check"]["groups"]
    assert (groups["call_due"]["right_before"], groups["call_due"]["right_after"]) == (7, 7)
    assert (groups["no_call_due"]["right_before"], groups["no_call_due"]["right_after"]) == (13, 13)
    assert sigmoid["answer_check"]["groups"]["call_due"]["right_after"] == 3
    # it learned nothing that holds out either: the validation loss is lowest before the first step
    assert dpop["losses"]["best_val_iteration"] == 0 and dpop["losses"]["last_val_loss"] > 0.75
