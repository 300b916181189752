"""bench/default_run.py times what `tooltune train` does by default: the commands a user runs, the run's
own time split, and the validation share against issue 35's goal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tooltune.config import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_default_run_bench_records_where_the_time_went(
    tiny_model: Path, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "default_run.json"
    cmd = [sys.executable, "bench/default_run.py", "--model", str(tiny_model), "--iters", "6"]
    cmd += ["--workspace", str(tmp_path / "ws"), "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    split = doc["run_time_s"]
    assert split["total_s"] >= split["steps_s"] > 0 and split["validation_s"] > 0
    assert doc["validation_share_of_run"] == round(split["validation_s"] / split["total_s"], 4)
    assert doc["goal"]["met"] == (doc["validation_share_of_run"] <= 0.10)
    # nothing but the model and the steps was set: the run used the defaults
    assert doc["commands"][1] == f"tooltune train --dataset default-data --model {tiny_model} --iters 6"
    config = doc["config"]
    assert (config["iters"], config["batch_size"], config["val_batches"]) == (6, 1, 4)
    assert doc["machine"]["mlx_device"] and doc["wall_s"]["train_command"] > 0


def test_the_committed_default_run_measured_todays_defaults() -> None:
    """bench/results/default_run.json timed the recipe `tooltune train` gives today: if a default changes,
    this fails until the run is measured again (a default users get must be a measured one)."""
    from tooltune.training.train_config import DEFAULT_ITERS, DEFAULT_NUM_LAYERS, TrainConfig

    doc = json.loads((ROOT / "bench" / "results" / "default_run.json").read_text())
    config = doc["config"]
    assert (config["iters"], config["num_layers"]) == (DEFAULT_ITERS, DEFAULT_NUM_LAYERS)
    assert config["steps_per_eval"] == DEFAULT_ITERS // 2  # the default: the middle and the end
    assert config["warmup"] == TrainConfig(dataset="d").default_warmup(DEFAULT_ITERS)
    # every other setting is TrainConfig's default (those the run resolved are checked above)
    resolved = {"model", "dataset", "iters", "num_layers", "steps_per_eval", "warmup"}
    resolved |= {"model_path", "dataset_path", "model_layers", "train_examples", "valid_examples"}
    # settings added after the run whose default is what the run did (the rows were trained then too;
    # an SFT run draws no GRPO requests and holds no GRPO decision)
    added_since = {"freeze_token_rows": False, "no_call_share": None, "decision_kl": 0.0}
    for key, value in TrainConfig(dataset="d").model_dump().items():
        if key in resolved:
            continue
        if key not in config:
            assert key in added_since and added_since[key] == value, f"{key}: not in the measured run"
            continue
        assert config[key] == value, key
    split = doc["run_time_s"]
    assert doc["validation_share_of_run"] == round(split["validation_s"] / split["total_s"], 4)
    assert doc["commands"][1] == f"tooltune train --dataset default-data --model {doc['model']}"
