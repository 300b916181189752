"""LoRA training runs end to end on the tiny model: real worker subprocesses, real mlx-lm training.

Kept short (tens of iterations) so the file runs in well under two minutes on two shared cores.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from read_file_examples import example

from tooltune.config import Settings
from tooltune.errors import TooltuneError
from tooltune.jobs import DEAD_WORKER_REASON, JobRecord, JobStore
from tooltune.training import runs
from tooltune.training.runs import TrainEvent, TrainingBusyError
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace


@pytest.fixture
def dataset(settings: Settings) -> str:
    """30 examples (24 train / 6 valid) as a workspace dataset."""
    d = Workspace(settings.workspace).ensure().datasets / "read-main"
    d.mkdir(parents=True)
    (d / "train.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(24)))
    (d / "valid.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(24, 30)))
    return "read-main"


def _wait_for(pred, timeout: float = 90.0, poll: float = 0.2):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("timed out waiting")


def _train_events(job: JobRecord) -> list[TrainEvent]:
    assert job.run_dir is not None
    return [e for e in runs.read_events(job.run_dir) if e.kind == "train"]


@pytest.mark.slow
def test_run_learns_and_every_config_value_reaches_mlx(
    tiny_model: Path, settings: Settings, dataset: str
) -> None:
    """Non-default values everywhere, then read them back from what mlx-lm produced, not from our config."""
    import mlx.core as mx
    from mlx_lm.tuner.utils import build_schedule

    cfg = TrainConfig(
        model=str(tiny_model),
        dataset=dataset,
        fine_tune_type="lora",
        num_layers=1,
        rank=4,
        scale=6.0,
        dropout=0.05,
        keys=["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"],
        train_tokens=[],  # only the block modules here; token rows have their own test
        optimizer="adamw",
        weight_decay=0.01,
        learning_rate=1e-2,
        lr_schedule="cosine",
        warmup=2,
        min_learning_rate=1e-3,
        iters=30,
        batch_size=2,
        grad_accumulation_steps=2,
        max_seq_length=512,
        mask_prompt=True,
        seed=7,
        steps_per_report=2,
        steps_per_eval=10,
        save_every=10,
        val_batches=2,
    )
    job = runs.start_training(cfg, settings, name="read-main-lora")
    seen = list(runs.follow_events(settings, job.id, poll_interval=0.2))
    job = JobStore(Workspace(settings.workspace)).get(job.id)
    assert job.status == "succeeded", job.error
    run = runs.get_run(settings, job.id)
    assert run.status == "succeeded" and run.registered and run.adapter_name == "read-main-lora"
    assert seen, "progress stream yielded nothing"

    # the loss goes down on a learnable dataset (train and validation)
    train = [e for e in seen if e.kind == "train"]
    val = [e for e in seen if e.kind == "val"]
    assert [e.iteration for e in train] == list(range(2, 31, 2))
    # (15 optimizer updates on one layer's q/v/down projections: a clear drop, not convergence)
    assert train[-1].train_loss < 0.65 * train[0].train_loss
    assert val[-1].val_loss < 0.65 * val[0].val_loss
    assert sum(e.train_loss for e in train[-3:]) < sum(e.train_loss for e in train[:3])

    # adapter_config.json of the *registered* adapter carries every value under mlx-lm's names
    adir = Workspace(settings.workspace).adapter_dir("read-main-lora")
    ac = json.loads((adir / "adapter_config.json").read_text())
    assert ac["fine_tune_type"] == "lora" and ac["num_layers"] == 1
    assert ac["lora_parameters"] == {"rank": 4, "scale": 6.0, "dropout": 0.05, "keys": cfg.keys}
    expected = {
        "optimizer": "adamw",
        "optimizer_config": {"adamw": {"weight_decay": 0.01}},
        "learning_rate": 1e-2,
        "iters": 30,
        "batch_size": 2,
        "grad_accumulation_steps": 2,
        "max_seq_length": 512,
        "mask_prompt": True,
        "grad_checkpoint": False,
        "seed": 7,
        "steps_per_report": 2,
        "steps_per_eval": 10,
        "save_every": 10,
        "val_batches": 2,
    }
    assert {k: ac[k] for k in expected} == expected
    assert ac["lr_schedule"] == {
        "name": "cosine_decay",
        "arguments": [1e-2, 27, 1e-3],
        "warmup": 2,
        "warmup_init": 0.0,
    }

    # ...and they took effect. Weight shapes: rank 4, only the last layer, only the chosen modules.
    weights = mx.load(str(adir / "adapters.safetensors"))
    assert weights, "no adapter weights"
    for name, w in weights.items():
        assert name.startswith("model.layers.1."), name  # num_layers=1 → the last of 2 layers
        assert any(f".{k}." in name for k in cfg.keys), name
        if name.endswith("lora_a"):
            assert w.shape[1] == 4, (name, w.shape)
        elif name.endswith("lora_b"):
            assert w.shape[0] == 4, (name, w.shape)
    assert len(weights) == 2 * len(cfg.keys)
    # scale and dropout as mlx-lm rebuilds them when loading the adapter
    from mlx_lm import load
    from mlx_lm.tuner.lora import LoRALinear

    model, _ = load(str(tiny_model), adapter_path=str(adir))
    loras = [m for _, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert len(loras) == 3
    assert {m.scale for m in loras} == {6.0}
    assert {round(1 - m.dropout._p_1, 6) for m in loras} == {0.05}
    assert run.applied["rank"] == [4] and run.applied["adapted_layers"] == 1
    lengths = run.applied["sequence_lengths"]  # read back from the tokenized training set
    assert lengths["max_seq_length"] == 512 and lengths["examples"] == 24
    assert 0 < lengths["longest"] <= 512 and lengths["truncated"] == lengths["answer_cut_off"] == 0
    assert run.device == str(mx.default_device())  # what the worker ran on, from MLX itself

    # grad accumulation: after 10 micro-steps the optimizer has made 5 updates
    ckpt = mx.load(str(job.run_dir / "checkpoints" / "0000010_optimizer.safetensors"))
    assert int(ckpt["step"].item()) == 5
    # learning rate (reported by mlx-lm's optimizer) follows warmup + cosine over the *updates*
    sched = build_schedule(ac["lr_schedule"])
    for e in train:
        assert e.learning_rate == pytest.approx(float(sched(e.iteration // 2 - 1)), rel=1e-4), e.iteration
    # mask_prompt: only the assistant's tool call is trained (~30 tokens), not the ~200-token prompt
    tokens_per_example = train[-1].trained_tokens / (30 * 2)
    assert 5 < tokens_per_example < 60

    # run folder artefacts
    rd = job.run_dir
    metrics = json.loads((rd / "metrics.json").read_text())
    assert metrics["last_train_loss"] == pytest.approx(train[-1].train_loss)
    assert metrics["best_val_loss"] <= metrics["first_val_loss"] and metrics["s_per_iter"] > 0
    # time and tokens named for what they are: validation and checkpoints apart from the steps, and every
    # token the steps processed (the ~200-token prompts too) apart from the few that carry loss
    spent = metrics["time"]
    assert spent["validation_s"] > 0 and spent["checkpoints_s"] > 0 and spent["steps_s"] > 0
    assert spent["steps_s"] + spent["validation_s"] + spent["checkpoints_s"] == pytest.approx(
        spent["total_s"], abs=0.3
    )
    assert train[-1].processed_tokens > 3 * train[-1].trained_tokens
    # every processed token over the steps' own time (mlx-lm's loss-token rate times its step calls
    # alone, so on a tiny model under load the two rates need not order as the counts do)
    assert metrics["processed_tokens_per_second"] == pytest.approx(
        train[-1].processed_tokens / spent["steps_s"], abs=0.1
    )
    assert metrics["loss_tokens_per_second"] > 0
    assert "tokens_per_second" not in metrics
    assert json.loads((rd / "config.json").read_text())["rank"] == 4
    assert run.base_model_fingerprint and run.dataset_hash and run.mlx_lm_version and run.seed == 7
    assert "<polyline" in (rd / "loss.svg").read_text()
    record = json.loads((adir / "tooltune.json").read_text())
    assert record["run_id"] == run.id and record["train_config"]["rank"] == 4
    assert record["base_model_fingerprint"] == run.base_model_fingerprint


@pytest.mark.slow
def test_busy_then_cancel_then_resume_continues(tiny_model: Path, settings: Settings, dataset: str) -> None:
    cfg = TrainConfig(
        model=str(tiny_model),
        dataset=dataset,
        rank=4,
        learning_rate=1e-3,
        mask_prompt=True,
        iters=400,
        batch_size=2,
        steps_per_report=2,
        steps_per_eval=1000,
        save_every=4,
        val_batches=1,
    )
    store = JobStore(Workspace(settings.workspace))
    first = runs.start_training(cfg, settings)

    # a second start while the first runs is refused, naming the job to wait for or cancel
    busy = f"busy: training job {first.id} .*tooltune train cancel {first.id}"
    with pytest.raises(TrainingBusyError, match=busy):
        runs.start_training(cfg, settings, name="other")
    assert len(runs.list_runs(settings)) == 1  # the refused start left nothing behind

    _wait_for(lambda: any(e.iteration >= 16 for e in _train_events(first)))
    runs.cancel_training(first.run_dir.name, settings)  # by run id
    done = store.wait(first.id, timeout=60, poll=0.2)
    assert done.status == "cancelled", done.error
    run = runs.get_run(settings, first.id)
    assert run.status == "cancelled" and not run.registered
    stopped_at = run.last_checkpoint
    assert stopped_at is not None and stopped_at >= 16
    assert stopped_at in runs.checkpoints(first.run_dir)
    before = _train_events(first)
    assert not (Workspace(settings.workspace).adapters / run.adapter_name).exists()

    resumed = runs.resume_training(run.id, settings, iters=stopped_at + 6)
    assert resumed.id != first.id and resumed.run_dir == first.run_dir
    job = store.wait(resumed.id, timeout=240, poll=0.2)
    assert job.status == "succeeded", job.error
    after = [e for e in _train_events(resumed) if e.time > before[-1].time]
    # iteration count continues from the checkpoint, not from 1
    assert after and after[0].iteration > stopped_at and after[-1].iteration == stopped_at + 6
    # loss continues where it was (weights and optimizer restored), not from the untrained start
    progress = before[0].train_loss - before[-1].train_loss
    assert progress > 0.5, [e.train_loss for e in before]
    assert after[0].train_loss < before[0].train_loss - 0.5 * progress
    # (against the last few steps' mean: which step the cancel caught is timing, one batch is noise)
    tail = [e.train_loss for e in before[-3:]]
    assert after[0].train_loss < sum(tail) / len(tail) * 1.2
    # trained tokens keep counting up across the resume
    assert after[0].trained_tokens > before[-1].trained_tokens
    final = runs.get_run(settings, run.id)
    assert final.status == "succeeded" and final.resumes == [stopped_at] and final.registered
    log = (first.run_dir / "worker.log").read_text()
    assert '"event": "train.resumed"' in log and f'"iteration": {stopped_at}' in log


@pytest.mark.slow
def test_killed_worker_fails_without_adapter_and_frees_the_lock(
    tiny_model: Path, settings: Settings, dataset: str
) -> None:
    cfg = TrainConfig(model=str(tiny_model), dataset=dataset, iters=400, batch_size=2, steps_per_report=1)
    job = runs.start_training(cfg, settings, name="never")
    _wait_for(lambda: _train_events(job))
    os.kill(job.pid, signal.SIGKILL)
    store = JobStore(Workspace(settings.workspace))
    failed = _wait_for(lambda: (j := store.get(job.id)).done and j)
    assert failed.status == "failed" and failed.error == DEAD_WORKER_REASON
    run = runs.get_run(settings, job.id)
    assert run.status == "failed" and run.error == DEAD_WORKER_REASON
    assert not (Workspace(settings.workspace).adapters / "never").exists()
    assert runs.training_lock_holder(settings) is None  # the next start is not blocked by a dead worker


def test_bad_config_fails_at_once_and_leaves_no_run_behind(
    tiny_model: Path, settings: Settings, dataset: str
) -> None:
    with pytest.raises(TooltuneError, match="num_layers=5 but model .* has only 2 layers"):
        runs.start_training(TrainConfig(model=str(tiny_model), dataset=dataset, num_layers=5), settings)
    assert runs.list_runs(settings) == []  # refused before anything was written
    assert runs.training_lock_holder(settings) is None


@pytest.mark.slow
def test_simultaneous_starts_one_wins(tiny_model: Path, settings: Settings, dataset: str) -> None:
    """Two starts racing (threads here, processes in real life): the flock guard lets one through."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = TrainConfig(model=str(tiny_model), dataset=dataset, iters=400, batch_size=2)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(runs.start_training, cfg, settings, name=f"race-{i}") for i in range(2)]
    outcomes = [f.exception() or f.result() for f in futures]
    started = [o for o in outcomes if isinstance(o, JobRecord)]
    refused = [o for o in outcomes if isinstance(o, TrainingBusyError)]
    assert len(started) == 1 and len(refused) == 1, outcomes
    assert started[0].id in str(refused[0])
    runs.cancel_training(started[0].id, settings)
    final = JobStore(Workspace(settings.workspace)).wait(started[0].id, timeout=60, poll=0.2)
    assert final.status == "cancelled"


@pytest.mark.slow
def test_answers_beyond_max_seq_length_fail_the_run_and_register_nothing(
    tiny_model: Path, settings: Settings, dataset: str
) -> None:
    """Prompts longer than max_seq_length under mask_prompt leave no trained token (mlx-lm would train on
    0/0 = NaN): the run must end failed, before training, with a reason that names the fix, never as a
    registered adapter; the lengths it read are recorded with what the trainer saw."""
    cfg = TrainConfig(
        model=str(tiny_model), dataset=dataset, iters=6, batch_size=2, mask_prompt=True,
        max_seq_length=24, steps_per_report=1, steps_per_eval=100, val_batches=1,
    )  # fmt: skip
    job = runs.start_training(cfg, settings, name="diverged")
    store = JobStore(Workspace(settings.workspace))
    done = _wait_for(lambda: (j := store.get(job.id)).done and j, timeout=180)
    run = runs.get_run(settings, job.id)
    assert done.status == "failed" and run.status == "failed"
    error = run.error or ""
    assert "answer beyond max_seq_length 24" in error and "--max-seq-length to" in error
    assert not _train_events(done)  # refused before the first step
    assert not run.registered and not (Workspace(settings.workspace).adapters / "diverged").exists()
    assert runs.training_lock_holder(settings) is None


def test_a_final_job_has_freed_the_lock_so_the_next_start_goes_through(
    tiny_model: Path, settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train; wait; train` must not meet "busy": the worker frees the lock before the job turns final.
    The worker's own ending runs here in-process (no spawn), and every job update is checked as made."""
    from tooltune.training import worker as worker_mod

    def no_spawn(settings: Settings, ws: Workspace, store: JobStore, run_dir: Path, job_id: str, **_: object):  # noqa: ANN202
        return store.get(job_id)

    monkeypatch.setattr(runs, "_spawn", no_spawn)
    job = runs.start_training(TrainConfig(model=str(tiny_model), dataset=dataset, iters=2), settings)
    assert runs.training_lock_holder(settings) is not None  # held by this process for the job
    assert job.run_dir is not None
    w = worker_mod.Worker(job.run_dir)
    seen: list[tuple[str | None, bool]] = []
    update = w.store.update

    def watching_update(job_id: str, **fields: object) -> JobRecord:
        seen.append((fields.get("status"), runs.training_lock_holder(settings) is not None))  # type: ignore[arg-type]
        return update(job_id, **fields)

    monkeypatch.setattr(w.store, "update", watching_update)
    w._finish("succeeded", result={})
    assert seen == [("succeeded", False)]  # the lock was already free when the job said succeeded
    assert runs.start_training(TrainConfig(model=str(tiny_model), dataset=dataset, iters=2), settings)


def test_a_live_process_of_a_final_job_does_not_hold_the_lock(settings: Settings) -> None:
    """Cancelled before its worker started, or a --hosts run whose first process died while the launcher
    lives on: the job is final though a process of it is alive, and the next start must not meet busy.
    A job not written yet is one being started, and holds it."""
    ws = Workspace(settings.workspace).ensure()
    store = JobStore(ws)
    runs._take_lock(ws, "train-being-started", "run-a")  # this (live) process, no job written yet
    with pytest.raises(TrainingBusyError, match="train-being-started"):
        runs._take_lock(ws, "train-next", "run-b")
    store.create("train", job_id="train-being-started")
    store.update("train-being-started", status="running")
    with pytest.raises(TrainingBusyError):
        runs._take_lock(ws, "train-next", "run-b")
    assert runs.training_lock_holder(settings) is not None
    store.update("train-being-started", status="cancelled")
    assert runs.training_lock_holder(settings) is None
    runs._take_lock(ws, "train-next", "run-b")  # goes through, and now holds it
    with pytest.raises(TrainingBusyError, match="train-next"):
        runs._take_lock(ws, "train-third", "run-c")
