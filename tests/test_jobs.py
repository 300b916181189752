"""JobStore: on-disk job records, dead-worker detection, cancel, concurrent updates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tooltune.jobs import DEAD_WORKER_REASON, JobNotFoundError, JobStore, is_alive
from tooltune.workspace import Workspace


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(Workspace(tmp_path / "ws").ensure())


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)


def test_create_get_list_roundtrip(store: JobStore) -> None:
    a = store.create("train", params={"x": 1}, total=10)
    b = store.create("eval")
    assert store.get(a.id).params == {"x": 1}
    assert store.get(a.id).progress.total == 10
    assert [j.id for j in store.list()] == [a.id, b.id]
    assert [j.id for j in store.list(kind="eval")] == [b.id]
    assert (store.dir / f"{a.id}.json").is_file()
    with pytest.raises(JobNotFoundError):
        store.get("nope")


def test_update_merges_progress_and_sets_timestamps(store: JobStore) -> None:
    job = store.create("train", total=100)
    job = store.update(job.id, status="running", pid=os.getpid(), progress={"current": 5, "message": "i5"})
    assert job.started is not None and job.progress.total == 100 and job.progress.current == 5
    job = store.update(job.id, status="succeeded", result={"adapter": "a"})
    assert job.finished is not None and job.done
    # a late progress write must not resurrect a finished job
    job = store.update(job.id, status="running")
    assert job.status == "succeeded"


def test_dead_worker_is_reported_failed_on_next_read(store: JobStore) -> None:
    proc = _sleeper()
    job = store.create("train")
    store.update(job.id, status="running", pid=proc.pid)
    assert store.get(job.id).status == "running"
    proc.kill()
    proc.wait()
    # a fresh store (as after a parent restart) reads the same state from disk
    fresh = JobStore(Workspace(store.ws.root))
    got = fresh.get(job.id)
    assert got.status == "failed" and got.error == DEAD_WORKER_REASON and got.finished is not None


def test_is_alive_sees_through_unreaped_zombies() -> None:
    proc = _sleeper()
    assert is_alive(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    # not waited for: the child is a zombie until reaped; is_alive must still say dead
    import time

    deadline = time.monotonic() + 5
    while is_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(proc.pid)
    assert not is_alive(None) and not is_alive(0)


def test_cancel_signals_live_worker_and_marks_unstarted_job(store: JobStore) -> None:
    queued = store.create("eval")
    assert store.cancel(queued.id).status == "cancelled"

    proc = _sleeper()
    job = store.create("train")
    store.update(job.id, status="running", pid=proc.pid)
    after = store.cancel(job.id)
    assert after.cancel_requested and after.status == "running"  # the worker decides when it has stopped
    assert proc.wait(timeout=10) == -signal.SIGTERM


def test_concurrent_updates_do_not_lose_writes(store: JobStore) -> None:
    """Threads updating different parts of one job at once: update() reads the record under the lock,
    so every thread's last write survives (a read outside the lock would write back a stale copy and
    drop what another thread had just written), and the file is never corrupted."""
    job = store.create("train")
    n = 20
    start = threading.Barrier(3)

    def bump_current() -> None:  # progress.current, merged into the progress read under the lock
        start.wait()
        for i in range(n):
            store.update(job.id, progress={"current": i})

    def bump_message() -> None:  # progress.message, the same record's other progress field
        start.wait()
        for i in range(n):
            store.update(job.id, progress={"message": f"m{i}"})

    def grow_result() -> None:  # result, a top-level field: a stale write-back would reset progress
        start.wait()
        result: dict[str, int] = {}
        for i in range(n):
            result[f"r{i}"] = i
            store.update(job.id, result=dict(result))

    threads = [threading.Thread(target=f) for f in (bump_current, bump_message, grow_result)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get(job.id)
    assert final.id == job.id and len(final.result) >= 20
    assert final.result == {f"r{i}": i for i in range(n)}
    assert final.progress.current == n - 1
    assert final.progress.message == f"m{n - 1}"
