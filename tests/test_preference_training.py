"""Preference training (`tooltune train --method dpo`, issue 36): pairs datasets, the checks that keep a
run honest, and that DPO steps move the adapter toward the preferred answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tooltune.config import Settings
from tooltune.data.examples import call_message
from tooltune.data.onpolicy import PAIRS_FORMAT, PreferencePair, SampleConfig, SamplesInfo, save_pairs_dataset
from tooltune.errors import TooltuneError
from tooltune.jobs import JobStore
from tooltune.training import runs
from tooltune.training.train_config import TrainConfig, TrainConfigError, dataset_format
from tooltune.workspace import Workspace

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


def pair(i: int) -> PreferencePair:
    path = f"src/mod{i}.py"
    return PreferencePair(
        id=f"r{i}",
        kind="single",
        reason="no_call_made",
        messages=[{"role": "user", "content": f"open {path}"}],
        tools=TOOLS,
        chosen=call_message([("read_file", {"path": path})]),
        rejected={"role": "assistant", "content": "I cannot open files, sorry."},
        chosen_is_own=False,
    )


def samples_info() -> SamplesInfo:
    return SamplesInfo(
        name="s",
        hash="sha256:test",
        dataset="d",
        dataset_hash="sha256:d",
        model="m",
        adapter=None,
        config=SampleConfig(),
        eval_run="samples-s",
        counts={},
        reasons={},
    )


def write_pairs(ws: Workspace, name: str, n: int = 12) -> Path:
    return save_pairs_dataset(ws, name, [pair(i) for i in range(n)], samples=samples_info(), counts={})


def test_a_pairs_dataset_is_a_dataset_folder_marked_as_pairs(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    d = write_pairs(ws, "p")
    assert dataset_format(d) == PAIRS_FORMAT
    meta = json.loads((d / "dataset.json").read_text())
    assert meta["counts"]["train"] + meta["counts"]["valid"] == 12 and meta["counts"]["valid"] >= 1
    lines = (d / "train.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["rejected"]["content"] == "I cannot open files, sorry."
    assert write_pairs(ws, "p") == d  # the same content again: the same dataset
    with pytest.raises(TooltuneError, match="different content"):
        write_pairs(ws, "p", n=5)


def test_method_and_dataset_must_agree_and_dpo_refuses_sft_loss_weights(
    settings: Settings, tiny_model: Path
) -> None:
    ws = Workspace(settings.workspace).ensure()
    write_pairs(ws, "p")
    sft = ws.datasets / "ex"
    sft.mkdir(parents=True)
    (sft / "train.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(TrainConfigError, match="holds preference pairs; train it with --method dpo"):
        TrainConfig(model=str(tiny_model), dataset="p").resolve(settings)
    with pytest.raises(TrainConfigError, match="method dpo trains on preference pairs"):
        TrainConfig(model=str(tiny_model), dataset="ex", method="dpo").resolve(settings)
    with pytest.raises(ValueError, match="value_loss_weight weigh the SFT loss"):
        TrainConfig(model=str(tiny_model), dataset="p", method="dpo", value_loss_weight=0.5)
    with pytest.raises(TooltuneError, match="not found|no adapter|unknown"):
        TrainConfig(model=str(tiny_model), dataset="p", method="dpo", init_adapter="nope").resolve(settings)


def _train(settings: Settings, name: str, **over: Any) -> Any:
    cfg = TrainConfig(
        **{
            "dataset": "p",
            "method": "dpo",
            "num_layers": 2,
            "rank": 4,
            "iters": 8,
            "batch_size": 2,
            "steps_per_report": 2,
            "steps_per_eval": 4,
            "val_batches": 1,
            "learning_rate": 2e-3,
            "lr_schedule": "constant",
            **over,
        }
    )
    job = runs.start_training(cfg, settings, name=name)
    job = JobStore(Workspace(settings.workspace)).wait(job.id, timeout=600, poll=0.3)
    assert job.status == "succeeded", job.error
    return runs.get_run(settings, job.id)


def _margin(model_path: Path, adapter: Path | None, pairs_file: Path) -> float:
    from mlx_lm import load

    from tooltune.training.preference import load_pairs, preference_margin

    model, tok = load(str(model_path), adapter_path=str(adapter) if adapter else None)
    return preference_margin(
        model, load_pairs(pairs_file, tok, 1024), loss_type="sigmoid", max_seq_length=1024
    )


@pytest.mark.slow
def test_dpo_steps_move_the_adapter_toward_the_preferred_answer(settings: Settings, tiny_model: Path) -> None:
    ws = Workspace(settings.workspace).ensure()
    d = write_pairs(ws, "p")
    run = _train(settings, "dpo-a", model=str(tiny_model), steps_per_report=1)
    method = run.applied["method"]
    assert (
        method["name"] == "dpo"
        and method["pairs"] >= 8
        and method["per_reason"] == {"no_call_made": method["pairs"]}
    )
    assert run.applied["lm_head"] == "every position"
    events = runs.read_events(ws.run_dir(run.id))
    losses = [e.train_loss for e in events if e.kind == "train"]
    assert losses[0] == pytest.approx(0.6931, abs=1e-3) and losses[-1] < losses[0]  # log 2 at the reference
    adapter = ws.adapters / "dpo-a"
    before = _margin(tiny_model, None, d / "train.jsonl")
    after = _margin(tiny_model, adapter, d / "train.jsonl")
    assert after > before + 1.0  # the correct call is now much likelier than the refusal, relative to it

    # stacking: a run from this adapter with a vanishing rate ends where the adapter was
    start = _train(
        settings, "dpo-b", model=str(tiny_model), init_adapter="dpo-a", learning_rate=1e-12, iters=2
    )
    assert (
        start.applied["init_adapter"]["name"] == "dpo-a"
        and "init_adapter" in start.applied["method"]["reference"]
    )
    assert _margin(tiny_model, ws.adapters / "dpo-b", d / "train.jsonl") == pytest.approx(after, rel=1e-3)
    with pytest.raises(TrainConfigError, match="rank 4 \\(this run: 8\\)"):
        TrainConfig(
            model=str(tiny_model), dataset="p", method="dpo", init_adapter="dpo-a", num_layers=2
        ).resolve(settings)


@pytest.mark.slow
@pytest.mark.anyio
async def test_improve_runs_a_round_judges_it_on_held_out_requests_and_resumes(
    settings: Settings, tiny_model: Path
) -> None:
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.evals.runner import load_report
    from tooltune.serving.model_server import ModelServer
    from tooltune.training.improve import ImproveConfig, improve

    ws = Workspace(settings.workspace).ensure()
    generate_dataset(ws, "d", ["builtin:coding"], GenerateConfig(n=40, seed=0), model_path=tiny_model)
    cfg = ImproveConfig(
        dataset="d", name="imp", model=str(tiny_model), rounds=2, k=2, limit=6, iters=3, max_tokens=24,
        learning_rate=1e-3,
    )  # fmt: skip
    said: list[str] = []
    async with ModelServer(tiny_model, settings=settings, record_active=False) as server:
        result = await improve(settings, server, cfg, on_progress=said.append)
        r = result.rounds[0]
        # the decision is the held-out eval runs' native rates, both runs on the same test requests
        base, cand = load_report(ws, "imp-heldout-base"), load_report(ws, "imp-heldout-imp-r1-adapter")
        assert (r.start_native, r.candidate_native) == (base.overall.native_rate, cand.overall.native_rate)
        assert r.held_out_cases == base.n_results == cand.n_results > 0
        assert r.kept == (r.candidate_native > r.start_native)
        assert result.best == ("imp-r1-adapter" if r.kept else None)
        assert len(result.rounds) == (2 if r.kept else 1)  # a dropped candidate ends the loop
        assert r.samples == "imp-r1-samples" and r.data == "imp-r1-data" and sum(r.picked.values()) > 0
        assert any(m.startswith("round 1: training on") for m in said)
        jobs_before = len(list((ws.root / "jobs").glob("*.json")))
        again = await improve(settings, server, cfg)  # everything exists: read back, nothing trained again
    assert again.rounds[0] == r
    assert len(list((ws.root / "jobs").glob("*.json"))) == jobs_before
    with pytest.raises(TooltuneError, match="ran before with other iters"):
        async with ModelServer(tiny_model, settings=settings, record_active=False) as server:
            await improve(settings, server, cfg.model_copy(update={"iters": 5}))


def test_scores_with_the_head_at_answer_positions_equal_mlx_lm_loras(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The fast path (LM head at the answer positions only) gives mlx-lm-lora's own scores, both loss
    forms, chosen and rejected sides of different lengths in one batch."""
    import mlx.core as mx
    from mlx_lm import load

    from tooltune.training.losses import head_split
    from tooltune.training.preference import load_pairs, pair_batch, sequence_scores

    model, tok = load(str(tiny_model))
    assert head_split(model) is not None  # the tiny model takes the fast path
    d = write_pairs(Workspace(tmp_path / "ws").ensure(), "p", n=6)
    pairs = load_pairs(d / "train.jsonl", tok, 1024)
    b = pair_batch(pairs.items[:4], 1024)
    for loss_type in ("sigmoid", "ipo"):
        for tokens, mask, pos, valid in ((b[0], b[2], b[6], b[7]), (b[1], b[3], b[8], b[9])):
            full = sequence_scores(model, tokens, mask, loss_type)
            fast = sequence_scores(model, tokens, mask, loss_type, pos, valid)
            assert mx.allclose(full, fast, rtol=1e-4, atol=1e-4).item(), (loss_type, full, fast)


@pytest.mark.slow
def test_an_empty_validation_split_trains_without_validation(settings: Settings, tiny_model: Path) -> None:
    """A small picked dataset can hash every row into train: an empty valid.jsonl is an empty split (mlx-lm's
    loader would fail on its first row), and the run says validation was skipped."""
    ws = Workspace(settings.workspace).ensure()
    d = ws.datasets / "small"
    d.mkdir(parents=True)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"open src/m{i}.py"},
                call_message([("read_file", {"path": f"src/m{i}.py"})]),
            ],
            "tools": TOOLS,
        }
        for i in range(4)
    ]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "valid.jsonl").write_text("")
    (d / "test.jsonl").write_text("")
    cfg = TrainConfig(
        model=str(tiny_model), dataset="small", num_layers=2, rank=4, iters=2, steps_per_report=1
    )
    job = runs.start_training(cfg, settings, name="small")
    job = JobStore(ws).wait(job.id, timeout=300, poll=0.3)
    assert job.status == "succeeded", job.error
    assert any("validation skipped" in w for w in runs.get_run(settings, job.id).warnings)


@pytest.mark.slow
def test_orpo_steps_move_the_adapter_toward_the_preferred_answer_without_a_reference(
    settings: Settings, tiny_model: Path
) -> None:
    ws = Workspace(settings.workspace).ensure()
    d = write_pairs(ws, "p")
    run = _train(settings, "orpo-a", model=str(tiny_model), method="orpo")
    method = run.applied["method"]
    assert method["name"] == "orpo" and "reference" not in method and "orpo_loss" in method["loss"]
    losses = [e.train_loss for e in runs.read_events(ws.run_dir(run.id)) if e.kind == "train"]
    assert losses[-1] < losses[0]
    before = _margin(tiny_model, None, d / "train.jsonl")
    after = _margin(tiny_model, ws.adapters / "orpo-a", d / "train.jsonl")
    assert after > before + 1.0
