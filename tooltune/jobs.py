"""Long-running work (training, evals) as jobs whose state lives on disk, not in a process.

A job is one JSON file, ``<ws>/jobs/<id>.json``, written atomically. Whoever does the work (usually a
worker subprocess) updates it; whoever asks (CLI, MCP server, a restarted parent) reads it. Because the
state is on disk, a parent that restarts still sees every job, and because each record carries the
worker's pid, a worker that died without saying so (SIGKILL, OOM killer, power cut) is detected the next
time anyone looks and the job is marked ``failed`` instead of staying ``running`` forever.

Read-modify-write goes through an ``fcntl`` lock per job so the worker's progress updates and the
parent's cancel request can't overwrite each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tooltune.errors import TooltuneError
from tooltune.logs import get_logger
from tooltune.workspace import Workspace, atomic_write_json, validate_name

log = get_logger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
DEAD_WORKER_REASON = "worker exited without finishing (killed?)"


class JobNotFoundError(TooltuneError):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """Sortable by creation time (so `list` is chronological) and unique without coordination."""
    return f"{prefix}-{utcnow().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


class JobProgress(BaseModel):
    """What a progress bar needs: where we are, where we end, one line of text, and the latest numbers."""

    current: int = 0
    total: int | None = None
    message: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)


class JobRecord(BaseModel):
    id: str
    kind: str = Field(description='What the job does: "train", "eval", ...')
    status: JobStatus = "queued"
    created: datetime = Field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    pid: int | None = Field(default=None, description="Worker process id, used to detect a dead worker.")
    progress: JobProgress = Field(default_factory=JobProgress)
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    run_dir: Path | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="What the job was asked to do.")
    cancel_requested: bool = False

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


def _proc_state(pid: int) -> str | None:
    """Linux process state letter from /proc (``Z`` = zombie), None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name in parentheses may contain spaces: the state follows the last ')'
    return stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else None


def is_alive(pid: int | None) -> bool:
    """True while ``pid`` is a running process.

    Reaps the process if it is our own exited child (otherwise it would linger as a zombie and look
    alive to ``kill(pid, 0)``), and treats zombies that belong to someone else as dead too.
    """
    if not pid or pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        wpid, _ = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) != "Z"


class JobStore:
    """Create, read, update and cancel jobs of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.dir = ws.jobs
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, job_id: str) -> Path:
        return self.dir / f"{validate_name(job_id, 'job id')}.json"

    @contextlib.contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        lock = self.dir / f".{validate_name(job_id, 'job id')}.lock"
        with open(lock, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self, job_id: str) -> JobRecord:
        path = self._path(job_id)
        try:
            return JobRecord.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise JobNotFoundError(f"no job {job_id!r}; list jobs with `tooltune runs list`") from None

    def create(
        self,
        kind: str,
        *,
        job_id: str | None = None,
        run_dir: Path | None = None,
        params: dict[str, Any] | None = None,
        total: int | None = None,
    ) -> JobRecord:
        job = JobRecord(
            id=job_id or new_id(kind),
            kind=kind,
            run_dir=run_dir,
            params=params or {},
            progress=JobProgress(total=total, message="queued"),
        )
        if self._path(job.id).exists():
            raise TooltuneError(f"job {job.id!r} already exists; pick another id")
        atomic_write_json(self._path(job.id), job)
        return job

    def exists(self, job_id: str) -> bool:
        return self._path(job_id).exists()

    def get(self, job_id: str) -> JobRecord:
        """The job as it is now; a running job whose worker is gone becomes ``failed`` here."""
        job = self._read(job_id)
        if not job.done and job.pid is not None and not is_alive(job.pid):
            with self._locked(job_id):
                job = self._read(job_id)  # the worker may have finished between our two reads
                if not job.done:
                    job.status = "failed"
                    job.error = DEAD_WORKER_REASON
                    job.finished = utcnow()
                    atomic_write_json(self._path(job_id), job)
                    log.warning("job.dead_worker", job=job_id, pid=job.pid)
        return job

    def list(self, kind: str | None = None) -> list[JobRecord]:
        jobs = []
        for path in sorted(self.dir.glob("*.json")):
            with contextlib.suppress(JobNotFoundError, ValueError):
                job = self.get(path.stem)
                if kind is None or job.kind == kind:
                    jobs.append(job)
        return sorted(jobs, key=lambda j: j.created)

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        """Set fields atomically under the job's lock. ``progress`` may be a dict of changed keys.

        A job that already reached a final status keeps it: a late progress write from a dying worker
        must not resurrect a job the parent has already declared failed.
        """
        with self._locked(job_id):
            job = self._read(job_id)
            if job.done and fields.get("status", job.status) not in FINAL_STATUSES:
                return job
            if isinstance(fields.get("progress"), dict):
                fields["progress"] = job.progress.model_copy(update=fields["progress"])
            if fields.get("status") in FINAL_STATUSES and "finished" not in fields:
                fields["finished"] = utcnow()
            if fields.get("status") == "running" and job.started is None and "started" not in fields:
                fields["started"] = utcnow()
            job = JobRecord.model_validate({**job.model_dump(), **fields})
            atomic_write_json(self._path(job_id), job)
            return job

    def cancel(self, job_id: str) -> JobRecord:
        """Ask the worker to stop; it saves what it can and marks the job ``cancelled`` itself.

        The protocol every worker follows: install its SIGTERM handler, *then* set status ``running``
        (via :meth:`update`, which returns the record) and honour ``cancel_requested`` if already set.
        So a job still ``queued`` only gets the flag (a signal could kill a worker that has no handler
        yet), a ``running`` one also gets SIGTERM, and a job with no live worker is marked at once.
        """
        with self._locked(job_id):
            job = self._read(job_id)
            if job.done:
                return job
            job.cancel_requested = True
            worker_alive = job.pid is not None and is_alive(job.pid)
            if not worker_alive:
                job.status = "cancelled"
                job.error = "cancelled before the worker started"
                job.finished = utcnow()
            atomic_write_json(self._path(job_id), job)
        if worker_alive and job.status == "running":
            assert job.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGTERM)
        log.info("job.cancel_requested", job=job_id, pid=job.pid, status=job.status)
        return job

    def wait(self, job_id: str, *, timeout: float | None = None, poll: float = 0.5) -> JobRecord:
        """Block until the job is final (or ``timeout`` seconds pass); returns the last record seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.done or (deadline is not None and time.monotonic() >= deadline):
                return job
            time.sleep(poll)


def job_summary(job: JobRecord) -> dict[str, Any]:
    """A compact dict for tables and MCP answers."""
    return json.loads(
        job.model_dump_json(
            include={"id", "kind", "status", "created", "finished", "progress", "error", "result"}
        )
    )
