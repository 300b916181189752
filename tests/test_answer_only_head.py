"""The LM head applied at the answer positions only: the same loss and gradients as every position."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from read_file_examples import example

from tooltune.config import Settings
from tooltune.jobs import JobStore
from tooltune.training import runs
from tooltune.training.losses import answer_positions
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace


def test_answer_positions_are_the_masked_targets_padded_to_a_bucket() -> None:
    # row 0: answer from token 5 to its end at 9 -> targets 4..8; row 1: tokens 3..5 -> targets 2..4
    positions, valid = answer_positions(np.array([[5, 9], [3, 5]]), width=11, bucket=4)
    assert positions.tolist() == [[4, 5, 6, 7, 8, 4, 4, 4], [2, 3, 4, 2, 2, 2, 2, 2]]
    assert valid.tolist() == [[True] * 5 + [False] * 3, [True] * 3 + [False] * 5]
    # the window never exceeds the targets, and an answer cut by max_seq_length stops at the last target
    positions, valid = answer_positions(np.array([[2, 40]]), width=6, bucket=16)
    assert positions.tolist() == [[1, 2, 3, 4, 5, 1]] and valid.tolist() == [[True] * 5 + [False]]
    # a prompt longer than the batch (the answer truncated away): no valid position, none out of bounds
    positions, valid = answer_positions(np.array([[3, 5], [30, 40]]), width=6, bucket=4)
    assert positions.tolist() == [[2, 3, 4, 2], [5, 5, 5, 5]]
    assert valid.tolist() == [[True] * 3 + [False], [False] * 4]


def _lora_model(tiny_model: Path):  # noqa: ANN202
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, tokenizer = load(str(tiny_model))
    model.freeze()
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 20.0, "dropout": 0.0})
    mx.random.seed(3)
    for _, m in model.named_modules():  # non-zero lora_b: gradients reach lora_a too
        if "lora_b" in m:
            m.lora_b = mx.random.normal(m.lora_b.shape) * 0.05
    return model, tokenizer


def test_answer_only_loss_equals_the_weighted_loss_with_the_same_gradients(tiny_model: Path) -> None:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    from tooltune.training.losses import answer_only_loss, head_split, weighted_loss

    model, _ = _lora_model(tiny_model)
    assert head_split(model) is not None
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 200, size=(2, 24)).astype(np.int32)
    tokens[1, 15:] = 0  # padding after the second row's end
    spans = np.array([[10, 24], [6, 15]])
    weights = np.ones(tokens.shape, dtype=np.float32)
    weights[0, 12] = 5.0  # a weighted token (the decision) and an unweighted one (a value)
    weights[1, 8] = 0.0
    batch, lengths, w = mx.array(tokens), mx.array(spans), mx.array(weights)
    positions, valid = answer_positions(spans, tokens.shape[1] - 1)

    full = nn.value_and_grad(model, weighted_loss)
    part = nn.value_and_grad(model, answer_only_loss)
    (want, want_n), want_g = full(model, batch, lengths, w)
    (got, got_n), got_g = part(model, batch, lengths, w, positions, valid)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert got_n.item() == want_n.item() == 14 + 10  # mlx-lm's mask: offset <= i + 1 <= length
    flat_want, flat_got = dict(tree_flatten(want_g)), dict(tree_flatten(got_g))
    assert flat_want.keys() == flat_got.keys() and len(flat_want) > 0
    for key, g in flat_want.items():
        assert float(mx.abs(g).max()) > 0, key
        assert mx.allclose(flat_got[key], g, rtol=1e-4, atol=1e-6).item(), key


@pytest.mark.slow
def test_a_run_trains_the_same_with_the_head_at_the_answers_only(
    tiny_model: Path, settings: Settings
) -> None:
    """Same seed, same batches: the loss curve with answer_only_head matches mlx-lm's every-position
    head, and run.json says which head ran."""
    d = Workspace(settings.workspace).ensure().datasets / "read"
    d.mkdir(parents=True)
    (d / "train.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(8)))
    (d / "valid.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(8, 10)))
    curves = {}
    for on in (True, False):
        cfg = TrainConfig(
            model=str(tiny_model),
            dataset="read",
            num_layers=2,
            rank=4,
            iters=6,
            batch_size=2,
            steps_per_report=1,
            steps_per_eval=3,
            val_batches=1,
            learning_rate=1e-3,
            lr_schedule="constant",
            answer_only_head=on,
        )
        job = runs.start_training(cfg, settings, name=f"head-{on}")
        events = list(runs.follow_events(settings, job.id, poll_interval=0.2))
        job = JobStore(Workspace(settings.workspace)).get(job.id)
        assert job.status == "succeeded", job.error
        run = runs.get_run(settings, job.id)
        assert run.applied["lm_head"] == ("answer positions" if on else "every position")
        curves[on] = [(e.kind, e.train_loss if e.kind == "train" else e.val_loss) for e in events]
        curves[on] = [(k, v) for k, v in curves[on] if k in ("train", "val")]
    assert [k for k, _ in curves[True]] == [k for k, _ in curves[False]]
    assert len(curves[True]) >= 6 + 2
    for (_, a), (_, b) in zip(curves[True], curves[False], strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    train = [v for k, v in curves[True] if k == "train"]
    assert train[-1] < train[0]  # it learned: not two flat curves
