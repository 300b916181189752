"""bench/onpolicy_cost.py's training stages (issue 36: what each method costs on this CPU): each trains
the method it is named for on the pick stage's dataset, and its record says what the steps cost."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from bench_import import bench_module
from test_preference_training import write_pairs

from tooltune.config import Settings
from tooltune.workspace import Workspace

cost = bench_module("onpolicy_cost")


def args(**over: object) -> argparse.Namespace:
    return argparse.Namespace(**{"iters": 4, "adapter": None, **over})


def test_each_training_stage_trains_its_method_on_the_pick_stages_dataset(tmp_path: Path) -> None:
    got = {m: cost.picked_config(tmp_path, m, args()) for m in cost.PICKED_STAGES}
    assert {m: (c.method, c.dataset) for m, c in got.items()} == {
        "dpo": ("dpo", "pairs"),
        "orpo": ("orpo", "pairs"),
        "rejection": ("rejection", "own"),
    }
    # the steps are what is timed: no answer check, one report halfway, one validation at the end
    assert all(
        (c.answer_check, c.iters, c.batch_size, c.steps_per_eval) == (0, 4, 1, 4) for c in got.values()
    )
    assert cost.picked_config(tmp_path, "orpo", args(adapter="sft-a")).init_adapter == "sft-a"
    assert set(cost.STAGES) == {"sample", *cost.PICKED_STAGES, "grpo"}


@pytest.mark.slow
def test_an_orpo_stage_times_its_steps_and_has_no_reference_pass(
    settings: Settings, tiny_model: Path
) -> None:
    ws = Workspace(settings.workspace).ensure()
    write_pairs(ws, "pairs")
    cfg = cost.picked_config(tiny_model, "orpo", args(iters=2)).model_copy(
        update={"num_layers": 2, "rank": 4}
    )
    stage = cost.training_stage(settings, ws, cfg)
    assert stage["status"] == "succeeded", stage["error"]
    assert stage["iters"] == 2 and stage["metrics"]["iterations"] == 2
    assert stage["reference_seconds"] is None  # ORPO scores no pair under a reference model; DPO does
    assert (
        stage["s_per_step"] > 0
        and stage["time"]["steps_s"] > 0
        and stage["wall_s"] >= stage["time"]["steps_s"]
    )
    first, last = stage["train_loss_first_last"]
    assert first is not None and last is not None
