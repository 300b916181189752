"""Training runs: start a worker, follow it, cancel it, resume it — the API the CLI and MCP server share.

A run is a folder ``<ws>/runs/<run id>/`` (config.json, run.json, events.jsonl, metrics.json,
checkpoints/, adapter/, worker.log, loss.svg). Each start or resume of a run is a job in
:class:`tooltune.jobs.JobStore`; the worker is a detached subprocess (own session) so the caller
returns at once, a crash can't take the caller down, and the caller may exit and come back later.

Only one training job runs per workspace: two LoRA runs on two shared CPU cores would each take twice
as long and risk running out of memory, so the second start is refused with a message naming the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tooltune.config import Settings
from tooltune.errors import TooltuneError
from tooltune.jobs import (
    DEAD_WORKER_REASON,
    FINAL_STATUSES,
    JobNotFoundError,
    JobRecord,
    JobStore,
    is_alive,
    new_id,
    utcnow,
)
from tooltune.logs import get_logger
from tooltune.models.resolve import fingerprint_model
from tooltune.serving.blas import subprocess_env, usable_cores
from tooltune.subprocs import free_port, port_is_free
from tooltune.training.train_config import TrainConfig, check_host_file, dataset_hash, read_host_file
from tooltune.workspace import Workspace, atomic_write_json, validate_name

log = get_logger(__name__)

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
LOCK_FILE = ".training.lock"
GUARD_FILE = ".training.guard"


class TrainingBusyError(TooltuneError):
    pass


class RunNotFoundError(TooltuneError):
    pass


class ResumeError(TooltuneError):
    pass


class RunRecord(BaseModel):
    """run.json: what happened to one run, kept after it ends (including why it failed)."""

    id: str
    job_id: str | None = None
    status: RunStatus = "queued"
    created: datetime = Field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    adapter_name: str = Field(description="Name the adapter is registered under on success.")
    registered: bool = False
    registration_error: str | None = None
    dataset: str
    dataset_path: Path | None = None
    dataset_hash: str | None = None
    base_model: str | None = None
    base_model_path: Path | None = None
    base_model_fingerprint: str | None = None
    mlx_version: str | None = None
    mlx_lm_version: str | None = None
    blas: str | None = None
    device: str | None = Field(default=None, description="The MLX device the worker trained on.")
    processes: int = Field(default=1, description="Training processes (more than one with --hosts).")
    seed: int = 0
    host: str = Field(default_factory=socket.gethostname)
    pid: int | None = None
    error: str | None = None
    iters: int | None = None
    iteration: int = Field(default=0, description="Last completed optimizer step.")
    last_checkpoint: int | None = None
    train_seconds: float = Field(
        default=0.0, description="Training wall time summed over every job of the run."
    )
    resume_from: int | None = Field(
        default=None, description="Checkpoint iteration the current job starts at."
    )
    resumes: list[int] = Field(default_factory=list, description="Iterations this run was resumed from.")
    applied: dict[str, Any] = Field(
        default_factory=dict,
        description="What the worker found in the model after adapting it (rank, layers...).",
    )
    lint: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


class TrainEvent(BaseModel):
    """One line of events.jsonl: a train-loss report or a validation-loss report."""

    kind: Literal["train", "val"]
    iteration: int
    train_loss: float | None = None
    val_loss: float | None = None
    learning_rate: float | None = None
    iterations_per_second: float | None = None
    tokens_per_second: float | None = Field(
        default=None, description="Loss-carrying tokens per second (mlx-lm's count)."
    )
    processed_tokens: int | None = Field(
        default=None, description="Tokens the job's steps ran the model over so far, prompts included."
    )
    trained_tokens: int | None = None
    peak_memory_gb: float | None = Field(default=None, description="MLX allocator peak (GB).")
    peak_rss_gb: float | None = Field(default=None, description="Peak resident memory of the worker (GB).")
    val_time: float | None = None
    time: float = Field(description="Unix time of the report.")
    elapsed: float | None = Field(
        default=None, description="Seconds since this job's worker started training."
    )


# ---- run folders -------------------------------------------------------------------------------------


def run_paths(run_dir: Path) -> dict[str, Path]:
    return {
        "config": run_dir / "config.json",
        "run": run_dir / "run.json",
        "events": run_dir / "events.jsonl",
        "metrics": run_dir / "metrics.json",
        "checkpoints": run_dir / "checkpoints",
        "adapter": run_dir / "adapter",
        "log": run_dir / "worker.log",
        "plot": run_dir / "loss.svg",
    }


def read_run(run_dir: Path) -> RunRecord:
    try:
        return RunRecord.model_validate_json((run_dir / "run.json").read_text())
    except FileNotFoundError:
        raise RunNotFoundError(f"no run at {run_dir}; list runs with `tooltune runs list`") from None


def write_run(run_dir: Path, run: RunRecord) -> None:
    atomic_write_json(run_dir / "run.json", run)


def read_events(run_dir: Path) -> list[TrainEvent]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            events.append(TrainEvent.model_validate_json(line))
    return events


def checkpoints(run_dir: Path) -> list[int]:
    """Iterations with a complete checkpoint (adapter weights + state file), oldest first."""
    folder = run_dir / "checkpoints"
    its = []
    for state in folder.glob("*_state.json"):
        it = state.name.split("_", 1)[0]
        if it.isdigit() and (folder / f"{it}_adapters.safetensors").exists():
            its.append(int(it))
    return sorted(its)


def get_run(settings: Settings, ref: str) -> RunRecord:
    """A run by run id or job id; a run whose worker is gone is marked ``failed`` here."""
    ws = Workspace(settings.workspace)
    run_dir = _run_dir_for(ws, ref)
    return _reconcile(run_dir)


def list_runs(settings: Settings) -> list[RunRecord]:
    ws = Workspace(settings.workspace)
    runs = []
    for d in sorted(ws.runs.glob("*")):
        if (d / "run.json").is_file():
            with contextlib.suppress(ValueError, RunNotFoundError):
                runs.append(_reconcile(d))
    return sorted(runs, key=lambda r: r.created)


def _reconcile(run_dir: Path) -> RunRecord:
    run = read_run(run_dir)
    if not run.done and run.pid is not None and not is_alive(run.pid):
        run = read_run(run_dir)  # the worker may have finished between the two reads
        if not run.done:
            run.status = "failed"
            run.error = DEAD_WORKER_REASON
            run.finished = utcnow()
            write_run(run_dir, run)
    return run


def _run_dir_for(ws: Workspace, ref: str) -> Path:
    """Accept a run id, a job id (of any start/resume of the run) or a run folder path."""
    path = Path(ref)
    if (path / "run.json").is_file():
        return path
    with contextlib.suppress(TooltuneError):
        direct = ws.run_dir(ref)
        if (direct / "run.json").is_file():
            return direct
    store = JobStore(ws)
    with contextlib.suppress(JobNotFoundError, TooltuneError):
        job = store.get(ref)
        if job.run_dir is not None and (job.run_dir / "run.json").is_file():
            return job.run_dir
    raise RunNotFoundError(f"no training run or job {ref!r}; list runs with `tooltune runs list`")


# ---- the one-training-at-a-time lock ---------------------------------------------------------------


class _LockHolder(BaseModel):
    pid: int
    job_id: str
    run_id: str


@contextlib.contextmanager
def _guard(ws: Workspace) -> Iterator[None]:
    """Serialises check-and-take of the lock between processes (two CLIs started at once)."""
    ws.runs.mkdir(parents=True, exist_ok=True)
    with open(ws.runs / GUARD_FILE, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_lock(ws: Workspace) -> _LockHolder | None:
    try:
        return _LockHolder.model_validate_json((ws.runs / LOCK_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _holds(ws: Workspace, holder: _LockHolder | None) -> bool:
    """Does ``holder`` still hold the lock: its process alive and its job not final? A job can turn final
    while a process of it lives on (cancelled before its worker started; a ``--hosts`` run whose first
    process died while the launcher winds down), and a final job trains no more. A job not written yet is
    one being started: the lock is taken first."""
    if holder is None or not is_alive(holder.pid):
        return False
    store = JobStore(ws)
    return not (store.exists(holder.job_id) and store.get(holder.job_id).done)


def _take_lock(ws: Workspace, job_id: str, run_id: str) -> None:
    with _guard(ws):
        holder = _read_lock(ws)
        if holder is not None and _holds(ws, holder):
            raise TrainingBusyError(
                f"busy: training job {holder.job_id} (run {holder.run_id}) is running; "
                "wait for it or cancel it "
                f"with `tooltune train cancel {holder.job_id}`"
            )
        atomic_write_json(ws.runs / LOCK_FILE, _LockHolder(pid=os.getpid(), job_id=job_id, run_id=run_id))


def _hand_lock_to(ws: Workspace, job_id: str, pid: int) -> None:
    with _guard(ws):
        holder = _read_lock(ws)
        if holder is not None and holder.job_id == job_id:
            atomic_write_json(ws.runs / LOCK_FILE, holder.model_copy(update={"pid": pid}))


def release_lock(ws: Workspace, job_id: str) -> None:
    """Called by the worker on the way out (and by the parent if the spawn fails)."""
    with _guard(ws):
        holder = _read_lock(ws)
        if holder is not None and holder.job_id == job_id:
            (ws.runs / LOCK_FILE).unlink(missing_ok=True)


def training_lock_holder(settings: Settings) -> _LockHolder | None:
    """The job currently holding the workspace's training lock: its process alive, its job not final."""
    ws = Workspace(settings.workspace)
    holder = _read_lock(ws)
    return holder if _holds(ws, holder) else None


# ---- start / resume / cancel -------------------------------------------------------------------------


def start_training(config: TrainConfig, settings: Settings, *, name: str | None = None) -> JobRecord:
    """Validate, take the workspace's training lock, spawn the worker; return its job at once.

    Problems found before launch (unknown model, missing dataset, num_layers too large, adapter name
    taken) raise a TooltuneError saying what to change before anything is written: a refused start
    leaves no run folder and no job behind. A worker that cannot be started leaves a ``failed`` run.
    """
    ws = Workspace(settings.workspace).ensure()
    store = JobStore(ws)
    run_id = new_id("run")
    job_id = new_id("train")
    adapter_name = validate_name(name or run_id, "adapter name")
    if (ws.adapters / adapter_name).exists():
        raise TooltuneError(f"an adapter named {adapter_name!r} already exists; pass another --name")
    resolved = config.resolve(settings)  # raises what to change (unknown model, missing dataset, ...)
    _take_lock(ws, job_id, run_id)  # raises TrainingBusyError before anything is written
    try:
        run_dir = ws.run_dir(run_id)
        run_dir.mkdir(parents=True)
        run = RunRecord(
            id=run_id, job_id=job_id, adapter_name=adapter_name, dataset=config.dataset, seed=config.seed
        )
        store.create(
            "train", job_id=job_id, run_dir=run_dir, params={"run_id": run_id, "adapter": adapter_name}
        )

        assert resolved.model_path is not None and resolved.dataset_path is not None
        run = run.model_copy(
            update={
                "dataset_path": resolved.dataset_path,
                "dataset_hash": dataset_hash(resolved.dataset_path),
                "base_model": resolved.model,
                "base_model_path": resolved.model_path,
                "base_model_fingerprint": fingerprint_model(resolved.model_path),
                "iters": resolved.iters,
            }
        )
        atomic_write_json(run_dir / "config.json", resolved)
        write_run(run_dir, run)
        store.update(job_id, progress={"total": resolved.iters, "message": "starting worker"})
        return _spawn(settings, ws, store, run_dir, job_id, hosts=resolved.hosts)
    except BaseException:
        release_lock(ws, job_id)
        raise


def resume_training(ref: str, settings: Settings, *, iters: int | None = None) -> JobRecord:
    """Continue a cancelled or failed run from its last checkpoint (new job, same run and events)."""
    ws = Workspace(settings.workspace).ensure()
    store = JobStore(ws)
    run_dir = _run_dir_for(ws, ref)
    run = _reconcile(run_dir)
    if not run.done:
        raise ResumeError(
            f"run {run.id} is still {run.status}; cancel it first with `tooltune train cancel {run.id}`"
        )
    if run.status == "succeeded":
        raise ResumeError(f"run {run.id} already finished; start a new run to train further")
    its = checkpoints(run_dir)
    if not its:
        raise ResumeError(f"run {run.id} has no checkpoint to resume from; start a new run instead")
    config = TrainConfig.model_validate_json((run_dir / "config.json").read_text())
    if not config.is_resolved:
        raise ResumeError(f"run {run.id} never started (its config was not valid); start a new run instead")
    if config.hosts is not None:  # the processes of the run's start, read again: the file may have changed
        check_host_file(config.hosts, config.batch_size)
    if iters is not None:
        if iters <= its[-1]:
            raise ResumeError(f"--iters {iters} is not beyond the checkpoint at iteration {its[-1]}")
        config = config.model_copy(update={"iters": iters})
        atomic_write_json(run_dir / "config.json", config)
    job_id = new_id("train")
    _take_lock(ws, job_id, run.id)
    try:
        store.create(
            "train", job_id=job_id, run_dir=run_dir, params={"run_id": run.id, "resume_from": its[-1]}
        )
    except BaseException:
        release_lock(ws, job_id)
        raise
    run = run.model_copy(
        update={
            "job_id": job_id,
            "status": "queued",
            "error": None,
            "finished": None,
            "pid": None,
            "resume_from": its[-1],
            "resumes": [*run.resumes, its[-1]],
            "iters": config.iters,
        }
    )
    write_run(run_dir, run)
    store.update(job_id, progress={"current": its[-1], "total": config.iters, "message": "resuming"})
    return _spawn(settings, ws, store, run_dir, job_id, hosts=config.hosts)


def cancel_training(ref: str, settings: Settings) -> JobRecord:
    """Ask a job's worker to stop; it checkpoints at the next step boundary and ends ``cancelled``."""
    ws = Workspace(settings.workspace)
    store = JobStore(ws)
    job_id = ref
    if not store.exists(ref):
        run = read_run(_run_dir_for(ws, ref))
        if run.job_id is None:
            raise RunNotFoundError(f"run {ref} has no job to cancel")
        job_id = run.job_id
    job = store.cancel(job_id)
    if job.status == "cancelled" and job.run_dir is not None:
        run = read_run(job.run_dir)
        if not run.done:  # never reached the worker: record it on the run too
            write_run(job.run_dir, run.model_copy(update={"status": "cancelled", "finished": utcnow()}))
    return job


def training_status(ref: str, settings: Settings) -> tuple[JobRecord, RunRecord]:
    """The job (status, progress) and its run (paths, metrics, error) for a job or run id."""
    ws = Workspace(settings.workspace)
    store = JobStore(ws)
    run = get_run(settings, ref)
    job_id = ref if store.exists(ref) else run.job_id
    if job_id is None:
        raise RunNotFoundError(f"run {ref} has no job")
    return store.get(job_id), run


def worker_command(run_dir: Path, hosts: Path | None = None) -> list[str]:
    """The worker's command line: one process, or one per host of an mlx.launch host file (MLX's own
    launcher; its ring backend sums the gradients over TCP).

    When every process runs here, the ring gets ports free on this machine: mlx.launch's fixed default
    (32323 and up) would make two such runs (two workspaces, two test sessions) fail to bind. Across
    machines the default stays, since firewalls are opened for known ports."""
    worker = [sys.executable, "-m", "tooltune.training.worker", str(run_dir)]
    if hosts is None:
        return worker
    launcher = shutil.which("mlx.launch", path=str(Path(sys.executable).parent)) or shutil.which("mlx.launch")
    if launcher is None:
        raise TooltuneError("--hosts needs mlx.launch (it comes with mlx); it is not on PATH")
    ring = read_host_file(hosts)
    command = [launcher, "--hostfile", str(hosts), "--backend", "ring", "--cwd", str(run_dir)]
    if all(h.local for h in ring):
        command += ["--starting-port", str(_free_port_run(sum(len(h.ips) for h in ring)))]
    return [*command, "--", *worker]


def _free_port_run(n: int, tries: int = 20) -> int:
    """A port free here with the ``n - 1`` after it free too: the ring backend listens on one port per
    process and IP, counting up from the first."""
    for _ in range(tries):
        first = free_port()
        if first + n <= 65536 and all(port_is_free(first + i) for i in range(1, n)):
            return first
    raise TooltuneError(f"no {n} free consecutive ports on this machine for mlx.launch's ring backend")


def _spawn(
    settings: Settings,
    ws: Workspace,
    store: JobStore,
    run_dir: Path,
    job_id: str,
    *,
    hosts: Path | None = None,
) -> JobRecord:
    """Launch the worker detached (own session: a Ctrl-C in the terminal or the parent exiting won't
    kill it) with the OpenBLAS environment every MLX child needs for fast float32."""

    # every core: a training step is matmul-bound and usually runs alone (bench/results/train_speed.json:
    # 2 OpenBLAS threads made a 0.5B step 1.4x faster than 1 on this 2-core CPU); TOOLTUNE_BLAS_THREADS
    # still decides when set, e.g. to leave cores to a model server running beside the training. Several
    # --hosts processes on one machine keep the default (half the cores) rather than each taking all.
    threads = None if hosts else usable_cores()
    env = subprocess_env(settings.cache_dir, enabled=settings.use_openblas, threads=threads)
    env["PYTHONUNBUFFERED"] = "1"
    env["TOOLTUNE_HOME"] = str(ws.root)
    env["TOOLTUNE_CACHE"] = str(settings.cache_dir)
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, *filter(None, [env.get("PYTHONPATH")])])
    try:
        command = worker_command(run_dir, hosts)
        with open(run_dir / "worker.log", "ab") as log_fh:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(run_dir),
                start_new_session=True,
            )
    except (OSError, TooltuneError) as e:  # a host file changed or removed since the run's start, say
        run = read_run(run_dir)
        reason = f"could not start the training worker: {e}"
        write_run(run_dir, run.model_copy(update={"status": "failed", "error": reason, "finished": utcnow()}))
        release_lock(ws, job_id)  # before the job turns final, as the worker does
        store.update(job_id, status="failed", error=reason)
        raise TooltuneError(reason) from e
    _hand_lock_to(ws, job_id, proc.pid)
    # the worker writes its own pid too; writing it here closes the window before it gets that far
    run = read_run(run_dir)
    write_run(run_dir, run.model_copy(update={"pid": proc.pid}))
    log.info("train.started", job=job_id, run=run.id, pid=proc.pid)
    return store.update(job_id, pid=proc.pid)


# ---- progress ------------------------------------------------------------------------------------------


def _event_source(settings: Settings, ref: str, *, from_start: bool) -> tuple[JobStore, str, EventTail]:
    """The job store, job id and event tail that :func:`follow_events` polls."""
    ws = Workspace(settings.workspace)
    store = JobStore(ws)
    run_dir = _run_dir_for(ws, ref)
    job_id = ref if store.exists(ref) else read_run(run_dir).job_id
    if job_id is None:
        raise TooltuneError(f"training run {ref!r} has no job to follow (it was not started by a worker)")
    return store, job_id, EventTail(run_dir / "events.jsonl", from_start=from_start)


def follow_events(
    settings: Settings, ref: str, *, poll_interval: float = 0.5, from_start: bool = True
) -> Iterator[TrainEvent]:
    """Yield events as the worker appends them, until the job is final (then drain what is left)."""
    store, job_id, tail = _event_source(settings, ref, from_start=from_start)
    while True:
        done = store.get(job_id).done
        yield from tail.read_new()
        if done:
            return
        time.sleep(poll_interval)


class EventTail:
    """Reads only complete new lines of a growing JSONL file (a half-written line waits for its newline)."""

    def __init__(self, path: Path, *, from_start: bool = True) -> None:
        self.path = path
        self.offset = 0 if from_start or not path.exists() else path.stat().st_size

    def read_new(self) -> list[TrainEvent]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for line in data[: end + 1].splitlines():
            with contextlib.suppress(ValueError):
                events.append(TrainEvent.model_validate(json.loads(line)))
        return events
