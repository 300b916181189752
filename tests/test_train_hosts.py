"""Data-parallel LoRA through MLX's own launcher (`tooltune train --hosts FILE`): two local processes,
each half of every batch, train like one process with the whole batch; the first process alone writes
the run, and a refused host file names what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tooltune.config import Settings
from tooltune.jobs import JobStore
from tooltune.training import runs
from tooltune.training.train_config import TrainConfig, TrainConfigError
from tooltune.workspace import Workspace

LOCAL = {"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}  # mlx.launch runs 127.0.0.1 entries here, no ssh


def _same_length_dataset(settings: Settings, model: Path) -> str:
    """Different examples of one length (prompt and answer alike): each process's mean loss then
    weighs its tokens as the whole batch's mean does, so the gradients mlx-lm averages over processes
    add up to the one-process gradient exactly, while each process's own gradient differs from it."""
    import types
    from collections import defaultdict

    from mlx_lm.tuner.datasets import CacheDataset, load_local_dataset
    from mlx_lm.utils import load

    candidates = [
        [
            {"role": "user", "content": f"Open the file number {i} please."},
            {"role": "assistant", "content": f"Opening file {(i * 7) % 100} now."},
        ]
        for i in range(300)
    ]
    probe = settings.cache_dir / "length-probe"
    probe.mkdir(parents=True)
    (probe / "train.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in candidates))
    _, tok = load(str(model))  # lengths exactly as mlx-lm's chat dataset makes them (offset, length)
    rows = CacheDataset(load_local_dataset(probe, tok, types.SimpleNamespace(mask_prompt=True))[0])
    by_shape: dict[tuple[int, int], list[list[dict[str, str]]]] = defaultdict(list)
    for i, msgs in enumerate(candidates):
        tokens, offset = rows[i]
        by_shape[offset, len(tokens)].append(msgs)
    group = max(by_shape.values(), key=len)
    assert len(group) >= 20 and len({m[0]["content"] for m in group}) >= 20
    d = Workspace(settings.workspace).ensure().datasets / "even"
    d.mkdir(parents=True)
    lines = [json.dumps({"messages": m}) + "\n" for m in group[:20]]
    (d / "train.jsonl").write_text("".join(lines[:16]))
    (d / "valid.jsonl").write_text("".join(lines[16:]))
    return "even"


def _losses(settings: Settings, job_id: str) -> tuple[list[float], Path]:
    job = JobStore(Workspace(settings.workspace)).wait(job_id, timeout=240, poll=0.2)
    assert job.status == "succeeded", job.error
    assert job.run_dir is not None
    return [e.train_loss for e in runs.read_events(job.run_dir) if e.kind == "train"], job.run_dir


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_whole_batch(
    tiny_model: Path, settings: Settings, tmp_path: Path
) -> None:
    dataset = _same_length_dataset(settings, tiny_model)
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([LOCAL, LOCAL]))
    common = dict(
        model=str(tiny_model), dataset=dataset, iters=6, batch_size=4, rank=4, num_layers=2,
        learning_rate=1e-3, steps_per_report=1, val_batches=1, train_tokens=[], save_every=3,
    )  # fmt: skip
    one = runs.start_training(TrainConfig(**common), settings, name="one")
    one_losses, _ = _losses(settings, one.id)
    two = runs.start_training(TrainConfig(**common, hosts=hosts), settings, name="two")
    two_losses, run_dir = _losses(settings, two.id)

    assert len(one_losses) == len(two_losses) == 6
    assert two_losses == pytest.approx(one_losses, rel=1e-4, abs=1e-5)
    assert one_losses[-1] < one_losses[0]  # it learned: the comparison is not of two flat lines
    resolved = json.loads((run_dir / "config.json").read_text())
    assert resolved["hosts"] == str(hosts.resolve())
    # one writer: each step's report once, the checkpoints of rank 0, a registered adapter
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in events if e["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert runs.checkpoints(run_dir) == [3, 6]
    assert (Workspace(settings.workspace).adapters / "two" / "adapters.safetensors").exists()
    assert runs.read_run(run_dir).processes == 2
    started = [
        json.loads(x) for x in (run_dir / "worker.log").read_text().splitlines() if '"train.device"' in x
    ]
    assert sorted((e["rank"], e["processes"]) for e in started) == [(0, 2), (1, 2)]  # two trainers ran
    assert "exited with code" not in (run_dir / "worker.log").read_text()


def test_a_host_file_is_checked_before_anything_starts(
    tiny_model: Path, settings: Settings, tmp_path: Path
) -> None:
    dataset = _same_length_dataset(settings, tiny_model)
    three = tmp_path / "three.json"
    three.write_text(json.dumps([LOCAL, LOCAL, LOCAL]))
    with pytest.raises(TrainConfigError, match="batch_size 4 does not split over the 3 processes"):
        runs.start_training(
            TrainConfig(model=str(tiny_model), dataset=dataset, batch_size=4, hosts=three), settings
        )
    one = tmp_path / "one.json"
    one.write_text(json.dumps([LOCAL]))
    with pytest.raises(TrainConfigError, match="names one process"):
        runs.start_training(TrainConfig(model=str(tiny_model), dataset=dataset, hosts=one), settings)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hosts": "127.0.0.1"}')
    with pytest.raises(TrainConfigError, match="expected a list like"):
        runs.start_training(TrainConfig(model=str(tiny_model), dataset=dataset, hosts=bad), settings)
    with pytest.raises(TrainConfigError, match="cannot read the host file"):
        runs.start_training(
            TrainConfig(model=str(tiny_model), dataset=dataset, hosts=tmp_path / "none.json"), settings
        )
    assert runs.list_runs(settings) == []


def test_the_worker_command_goes_through_mlx_launch(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.json"
    cmd = runs.worker_command(tmp_path / "run", hosts)
    assert Path(cmd[0]).name == "mlx.launch"
    assert cmd[1:7] == ["--hostfile", str(hosts), "--backend", "ring", "--cwd", str(tmp_path / "run")]
    assert cmd[-3:] == ["-m", "tooltune.training.worker", str(tmp_path / "run")]
    assert runs.worker_command(tmp_path / "run")[1:] == [
        "-m",
        "tooltune.training.worker",
        str(tmp_path / "run"),
    ]
