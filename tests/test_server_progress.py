"""follow_job relays a job's progress as MCP progress notifications: each change once, in order, until
the job ends or the time runs out; a client that went away stops the relay, not the job."""

from __future__ import annotations

import pytest

from tooltune.jobs import JobProgress, JobRecord
from tooltune.server import progress

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def record(current: int, message: str, status: str = "running") -> JobRecord:
    return JobRecord(
        id="j1", kind="eval", status=status, progress=JobProgress(current=current, total=2, message=message)
    )


class Store:
    """Hands out the records one per poll, then keeps giving the last."""

    def __init__(self, records: list[JobRecord]) -> None:
        self.records = records
        self.polls = 0

    def get(self, job_id: str) -> JobRecord:
        assert job_id == "j1"
        self.polls += 1
        return self.records[min(self.polls, len(self.records)) - 1]


class Ctx:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[float, float | None, str | None]] = []
        self.fail_after = fail_after

    async def report_progress(self, done: float, total: float | None, message: str | None) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionError("client gone")
        self.sent.append((done, total, message))


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "POLL_SECONDS", 0)


async def test_changes_are_relayed_once_each_in_order_until_the_job_ends() -> None:
    records = [
        record(0, "baseline: loading"),
        record(0, "baseline: loading"),  # unchanged: not sent again
        record(1, "baseline: case 1/2"),
        record(2, "baseline: case 2/2"),
        record(2, "baseline: case 2/2", status="succeeded"),
        record(2, "never read"),
    ]
    store, ctx = Store(records), Ctx()
    job = await progress.follow_job(ctx, store, "j1", max_seconds=60)  # type: ignore[arg-type]
    assert job.status == "succeeded" and store.polls == 5
    assert ctx.sent == [
        (0, 2, "baseline: loading"),
        (1, 2, "baseline: case 1/2"),
        (2, 2, "baseline: case 2/2"),
    ]


async def test_an_empty_message_is_sent_as_the_status() -> None:
    ctx = Ctx()
    await progress.follow_job(ctx, Store([record(0, "", status="succeeded")]), "j1", max_seconds=60)  # type: ignore[arg-type]
    assert ctx.sent == [(0, 2, "succeeded")]


async def test_the_relay_stops_at_its_deadline_with_the_job_still_running() -> None:
    store, ctx = Store([record(0, "training")]), Ctx()
    job = await progress.follow_job(ctx, store, "j1", max_seconds=0)  # type: ignore[arg-type]
    assert not job.done and store.polls == 1 and ctx.sent == [(0, 2, "training")]


async def test_a_client_that_went_away_ends_the_relay_not_the_job() -> None:
    store, ctx = (
        Store([record(0, "a"), record(1, "b"), record(2, "c", status="succeeded")]),
        Ctx(fail_after=1),
    )
    job = await progress.follow_job(ctx, store, "j1", max_seconds=60)  # type: ignore[arg-type]
    assert ctx.sent == [(0, 2, "a")] and job.progress.message == "b" and not job.done
