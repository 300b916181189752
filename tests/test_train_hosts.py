"""Data-parallel LoRA through MLX's own launcher (`tooltune train --hosts FILE`): two local processes,
each half of every batch, train like one process with the whole batch; the first process alone writes
the run, and a refused host file names what is wrong."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tooltune.config import Settings
from tooltune.jobs import JobStore, is_alive
from tooltune.subprocs import port_is_free
from tooltune.training import runs
from tooltune.training.train_config import TrainConfig, TrainConfigError, check_host_file
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


def _pids_of_the_ranks(run_dir: Path) -> list[int]:
    log = (run_dir / "worker.log").read_text()
    return [json.loads(x)["pid"] for x in log.splitlines() if '"train.device"' in x]


@pytest.mark.slow
def test_a_cancel_stops_both_processes_at_one_step_and_the_run_resumes_on_them(
    tiny_model: Path, settings: Settings, tmp_path: Path
) -> None:
    dataset = _same_length_dataset(settings, tiny_model)
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([LOCAL, LOCAL]))
    config = TrainConfig(
        model=str(tiny_model), dataset=dataset, iters=5000, batch_size=4, rank=4, num_layers=2,
        steps_per_report=1, val_batches=1, train_tokens=[], save_every=1000, hosts=hosts,
    )  # fmt: skip
    job = runs.start_training(config, settings, name="stopped")
    assert job.run_dir is not None
    run_dir, launcher = job.run_dir, job.pid
    deadline = time.monotonic() + 120
    while not any(e.kind == "train" for e in runs.read_events(run_dir)):  # both processes are training
        assert time.monotonic() < deadline, (run_dir / "worker.log").read_text()[-2000:]
        time.sleep(0.1)
    runs.cancel_training(job.id, settings)
    stopped = JobStore(Workspace(settings.workspace)).wait(job.id, timeout=60, poll=0.2)
    assert stopped.status == "cancelled", stopped.error
    at = stopped.result["cancelled_at"]
    assert 1 <= at < 5000 and runs.checkpoints(run_dir) == [at]  # one checkpoint, written once by rank 0
    pids = [launcher, *_pids_of_the_ranks(run_dir)]
    assert len(pids) == 3
    deadline = time.monotonic() + 30
    while any(is_alive(p) for p in pids):  # mlx.launch and both ranks ended, not left waiting on a sum
        assert time.monotonic() < deadline
        time.sleep(0.1)
    log = (run_dir / "worker.log").read_text()
    assert "exited with code" not in log and "was killed" not in log  # each stopped of its own accord

    resumed = runs.resume_training(run_dir.name, settings, iters=at + 2)
    finished, _ = _losses(settings, resumed.id)
    assert [e.iteration for e in runs.read_events(run_dir) if e.kind == "train"][-2:] == [at + 1, at + 2]
    assert len(finished) >= 2 and runs.read_run(run_dir).processes == 2
    assert len(_pids_of_the_ranks(run_dir)) == 4  # the resume ran on two processes again
    assert (Workspace(settings.workspace).adapters / "stopped" / "adapters.safetensors").exists()


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


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("[{'ssh': '127.0.0.1'}]", r"hosts\.json: not JSON \(Expecting property name"),
        ("[]", r"hosts\.json lists no hosts"),
        ('[{"ips": ["127.0.0.1"]}, {"ssh": "b", "ips": ["10.0.0.2"]}]', r'host 1 of 2 has no "ssh"'),
        (
            '[{"ssh": "127.0.0.1"}, {"ssh": "b", "ips": ["10.0.0.2"]}]',
            r'host 1 of 2 \(127\.0\.0\.1\) has no "ips"',
        ),
        (
            '[{"ssh": "a", "ips": ["10.0.0.1"]}, {"ssh": "b", "ips": ["b.lan"]}]',
            r"host 2 of 2 \(b\): 'b\.lan'",
        ),
        ('{"backend": "nccl", "hosts": []}', r"'nccl' backend; tooltune trains over the ring backend only"),
        ('{"envs": ["OMP"], "hosts": []}', r'"envs" must be a list of "NAME=value" strings'),
    ],
)
def test_a_bad_host_file_is_named_with_what_is_wrong(tmp_path: Path, content: str, error: str) -> None:
    hosts = tmp_path / "hosts.json"
    hosts.write_text(content)
    with pytest.raises(TrainConfigError, match=error):
        check_host_file(hosts, 4)


def test_the_host_file_mlx_distributed_config_writes_is_read_too(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.json"
    remote = {"ssh": "gpu2", "ips": ["192.168.1.2"], "rdma": []}
    hosts.write_text(json.dumps({"backend": "ring", "envs": ["A=1"], "hosts": [LOCAL, remote]}))
    ring = check_host_file(hosts, 4)
    assert [(h.ssh, h.ips, h.local) for h in ring] == [
        ("127.0.0.1", ["127.0.0.1"], True),
        ("gpu2", ["192.168.1.2"], False),
    ]


def test_the_worker_command_goes_through_mlx_launch(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([LOCAL, LOCAL]))
    cmd = runs.worker_command(tmp_path / "run", hosts)
    assert Path(cmd[0]).name == "mlx.launch"
    assert cmd[1:7] == ["--hostfile", str(hosts), "--backend", "ring", "--cwd", str(tmp_path / "run")]
    # every process here: ports free here, not mlx.launch's fixed 32323 (two runs at once would clash)
    assert cmd[7] == "--starting-port" and all(port_is_free(int(cmd[8]) + i) for i in range(2))
    assert cmd[9:] == ["--", sys.executable, "-m", "tooltune.training.worker", str(tmp_path / "run")]
    hosts.write_text(json.dumps([LOCAL, {"ssh": "gpu2", "ips": ["192.168.1.2"]}]))
    assert "--starting-port" not in runs.worker_command(tmp_path / "run", hosts)  # firewalls know 32323
    assert runs.worker_command(tmp_path / "run")[1:] == [
        "-m",
        "tooltune.training.worker",
        str(tmp_path / "run"),
    ]


def test_a_ring_failure_is_told_in_words_a_user_can_act_on() -> None:
    from tooltune.training.worker import describe_failure

    lost = describe_failure(RuntimeError("[ring] connection to a peer was lost"))
    assert lost.startswith("another process of this --hosts run stopped") and "worker.log" in lost
    taken = describe_failure(RuntimeError("[ring] Couldn't bind socket (error: 98)"))
    assert "could not listen on its port" in taken
