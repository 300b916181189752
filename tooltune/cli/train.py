"""`tooltune train` and `tooltune runs`: LoRA training runs in a worker subprocess.

The command only starts, follows and cancels the worker (tooltune.training.runs); the progress bar is
drawn from events.jsonl on stderr, and the final summary goes to stdout. Ctrl-C in the foreground asks
the worker to checkpoint and stop, so the run can be resumed with ``--resume``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import cyclopts
from cyclopts import Parameter

from tooltune.cli import context
from tooltune.cli.options import build_config, cli_options, given
from tooltune.errors import TooltuneError
from tooltune.training.improve import ImproveConfig
from tooltune.training.runs import resume_training, start_training
from tooltune.training.train_config import RESOLVED_FIELDS, TrainConfig

app = cyclopts.App(name="train", help="Train a LoRA adapter on a dataset (worker subprocess, resumable).")
runs_app = cyclopts.App(name="runs", help="List and inspect training runs.")


@app.default
@cli_options(
    TrainConfig,
    exclude=("model", "dataset", *RESOLVED_FIELDS),
    names={"learning_rate": ["--learning-rate", "--lr"], "scale": ["--scale", "--alpha"]},
)
def train(
    *,
    dataset: str | None = None,
    model: str | None = None,
    config: Path | None = None,
    name: str | None = None,
    resume: str | None = None,
    detach: bool = False,
    **options: Any,
) -> int:
    """Train an adapter: `tooltune train --dataset NAME [--config run.yaml] [--rank 16 ...]`.

    Flags override values from --config. The adapter is registered under --name (default: the run id)
    when the run succeeds. The defaults are the recipe behind the committed benchmarks.

    Parameters
    ----------
    dataset
        Workspace dataset name, or a folder with train.jsonl / valid.jsonl.
    model
        Base model (cache name, MLX folder, .gguf file, hub id). Default: the settings' default model.
    config
        YAML/TOML/JSON file with any of these options (mlx-lm's lora_parameters block is accepted).
    name
        Adapter name to register on success (default: the run id).
    resume
        Resume a cancelled or failed run (run or job id) from its last checkpoint; --iters may extend it.
    detach
        Start the worker and return at once (print job and run id); follow with `tooltune runs show`.
    """
    settings = context.settings()
    if resume is not None:
        job = resume_training(resume, settings, iters=options.get("iters"))
    else:
        overrides = {**given(options), "model": model, "dataset": dataset}
        if config is not None:
            cfg = TrainConfig.from_file(config, **overrides)
        elif dataset is None:
            raise TooltuneError(
                "name a dataset with --dataset NAME (or give a --config file that sets dataset)"
            )
        else:
            cfg = TrainConfig.from_dict({}, **overrides)
        job = start_training(cfg, settings, name=name)
    run_id = job.params.get("run_id")
    if detach:
        # machine-readable on stdout, unwrapped (rich would fold it at the terminal width)
        print(json.dumps({"job_id": job.id, "run_id": run_id, "run_dir": str(job.run_dir)}), flush=True)
        context.console_err.print(
            f"started job {job.id} (run {run_id}); follow with `tooltune runs show {run_id}`, "
            f"stop with `tooltune train cancel {job.id}`"
        )
        return 0
    return _follow(job.id)


def _follow(job_id: str) -> int:
    """Progress bar on stderr from events.jsonl until the job ends; Ctrl-C cancels (with a checkpoint)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tooltune.jobs import JobStore
    from tooltune.training.runs import EventTail, cancel_training

    settings = context.settings()
    store = JobStore(context.workspace())
    job = store.get(job_id)
    assert job.run_dir is not None
    tail = EventTail(job.run_dir / "events.jsonl", from_start=False)
    loss = val = rate = "-"
    progress = Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[rate]} it/s"),
        TextColumn("[dim]{task.fields[msg]}[/]"),
        TimeElapsedColumn(),
        console=context.console_err,
        transient=False,
    )
    cancelling = False
    with progress:
        task = progress.add_task(
            "train",
            total=job.progress.total,
            completed=job.progress.current,
            loss=loss,
            val=val,
            rate=rate,
            msg="",
        )
        while True:
            try:
                job = store.get(job_id)
                for e in tail.read_new():
                    if e.kind == "train":
                        loss = f"{e.train_loss:.3f}"
                        rate = f"{e.iterations_per_second:.2f}" if e.iterations_per_second else "-"
                        progress.update(task, completed=e.iteration)
                    else:
                        val = f"{e.val_loss:.3f}"
                msg = (
                    "cancelling…"
                    if cancelling
                    else ("" if job.progress.message.startswith("iter") else job.progress.message)
                )
                progress.update(task, total=job.progress.total, loss=loss, val=val, rate=rate, msg=msg)
                if job.done:
                    break
                time.sleep(0.5)
            except KeyboardInterrupt:
                if cancelling:
                    context.console_err.print(
                        f"left job {job_id} running; stop it with `tooltune train cancel {job_id}`"
                    )
                    return 130
                cancelling = True
                cancel_training(job_id, settings)
    return _print_result(job_id)


def _print_result(job_id: str) -> int:
    from tooltune.jobs import JobStore
    from tooltune.training.runs import get_run

    job = JobStore(context.workspace()).get(job_id)
    run = get_run(context.settings(), job_id)
    metrics = job.result.get("metrics", {})
    out = context.console
    color = {"succeeded": "green", "cancelled": "yellow"}.get(job.status, "red")
    out.print(f"run {run.id}: [{color}]{job.status}[/]", highlight=False)
    if job.error:
        out.print(f"  reason: {job.error}", highlight=False)
    if metrics.get("last_train_loss") is not None:
        out.print(
            f"  train loss {metrics['first_train_loss']:.3f} → {metrics['last_train_loss']:.3f}"
            + (
                f", val loss {metrics['first_val_loss']:.3f} → {metrics['last_val_loss']:.3f}"
                if metrics.get("last_val_loss") is not None
                else ""
            )
            + f", {metrics.get('iterations')} iters, {metrics.get('wall_time_s')} s",
            highlight=False,
        )
    if run.registered:
        out.print(f"  adapter: {run.adapter_name}", highlight=False)
    elif run.registration_error:
        out.print(f"  adapter not registered: {run.registration_error}", highlight=False)
    if job.status in ("cancelled", "failed") and run.last_checkpoint:
        out.print(
            f"  checkpoint at iteration {run.last_checkpoint}; "
            f"continue with `tooltune train --resume {run.id}`",
            highlight=False,
        )
    out.print(f"  run folder: {job.run_dir}", highlight=False)
    return 0 if job.status == "succeeded" else 1


@app.command
def cancel(ref: str) -> int:
    """Cancel a training job (job or run id): the worker checkpoints at the next step and stops.

    Parameters
    ----------
    ref
        Job id (train-…) or run id (run-…).
    """
    from tooltune.training.runs import cancel_training

    job = cancel_training(ref, context.settings())
    if job.done:
        context.console.print(f"job {job.id}: {job.status}", highlight=False)
    else:
        context.console.print(
            f"job {job.id}: cancel requested; the worker stops after the current step "
            f"(resume later with `tooltune train --resume {job.params.get('run_id')}`)",
            highlight=False,
        )
    return 0


@app.command
def status(ref: str, *, as_json: Annotated[bool, Parameter(name="--json")] = False) -> int:
    """Show a training job's status and progress.

    Parameters
    ----------
    ref
        Job id or run id.
    as_json
        Print the job record as JSON.
    """
    from tooltune.training.runs import training_status

    job, run = training_status(ref, context.settings())
    if as_json:
        context.console.print_json(job.model_dump_json())
        return 0
    p = job.progress
    total = f"/{p.total}" if p.total else ""
    context.console.print(
        f"job {job.id} (run {run.id}): {job.status}  {p.current}{total}  {p.message}"
        + (f"\n  reason: {job.error}" if job.error else ""),
        highlight=False,
    )
    return 0


@runs_app.command(name="list")
def list_runs(*, as_json: Annotated[bool, Parameter(name="--json")] = False) -> None:
    """List training runs (newest last).

    Parameters
    ----------
    as_json
        Print run records as JSON.
    """
    from tooltune.training.runs import list_runs as _list
    from tooltune.training.runs import read_events

    settings = context.settings()
    runs = _list(settings)
    if as_json:
        context.console.print_json(json.dumps([json.loads(r.model_dump_json()) for r in runs]))
        return
    if not runs:
        context.console.print("no runs yet — start one with `tooltune train --dataset NAME`")
        return
    for r in runs:
        events = read_events(settings.workspace / "runs" / r.id)
        tl = next((e.train_loss for e in reversed(events) if e.kind == "train"), None)
        vl = next((e.val_loss for e in reversed(events) if e.kind == "val"), None)
        context.console.print(
            f"{r.id}  {r.status:<9}  {r.iteration:>5}/{r.iters or '?':<5}  "
            f"train {f'{tl:.3f}' if tl is not None else '-':>6}  "
            f"val {f'{vl:.3f}' if vl is not None else '-':>6}  "
            f"{r.created:%Y-%m-%d %H:%M}  adapter {r.adapter_name if r.registered else '-'}",
            highlight=False,
            soft_wrap=True,
        )


@runs_app.command
def show(ref: str, *, as_json: Annotated[bool, Parameter(name="--json")] = False) -> None:
    """Show one run: status, reason, config, metrics, files.

    Parameters
    ----------
    ref
        Run id or job id.
    as_json
        Print run.json, config.json and metrics.json as one JSON object.
    """
    from tooltune.training.runs import checkpoints, get_run

    settings = context.settings()
    run = get_run(settings, ref)
    run_dir = settings.workspace / "runs" / run.id
    extra = {}
    for key in ("config", "metrics"):
        path = run_dir / f"{key}.json"
        if path.is_file():
            extra[key] = json.loads(path.read_text())
    if as_json:
        context.console.print_json(json.dumps({"run": json.loads(run.model_dump_json()), **extra}))
        return
    out = context.console
    out.print(f"run {run.id}: {run.status}" + (f" — {run.error}" if run.error else ""), highlight=False)
    out.print(
        f"  model {run.base_model} ({run.base_model_fingerprint}), dataset {run.dataset} ({run.dataset_hash})"
    )
    out.print(f"  iteration {run.iteration}/{run.iters}, checkpoints {checkpoints(run_dir)}", highlight=False)
    cfg = extra.get("config", {})
    if cfg:
        keys = (
            "fine_tune_type",
            "num_layers",
            "rank",
            "scale",
            "dropout",
            "learning_rate",
            "lr_schedule",
            "batch_size",
            "grad_accumulation_steps",
            "max_seq_length",
            "mask_prompt",
            "value_loss_weight",
            "decision_loss_weight",
            "anchor_loss_weight",
            "seed",
        )
        out.print("  config " + ", ".join(f"{k}={cfg.get(k)}" for k in keys), highlight=False)
    for k, v in extra.get("metrics", {}).items():
        if v is not None and k != "status":
            out.print(f"  {k}: {v}", highlight=False)
    out.print(f"  adapter: {run.adapter_name if run.registered else '(not registered)'}", highlight=False)
    for w in run.warnings:
        out.print(f"  [yellow]warning:[/] {w}", highlight=False)
    plot = run_dir / "loss.svg"
    out.print(f"  files: {run_dir}" + (f" (loss curve: {plot})" if plot.exists() else ""), highlight=False)


@app.command
@cli_options(ImproveConfig)
def improve(**options: Any) -> int:
    """Learn from the model's own mistakes, round by round: sample its answers to the dataset's requests,
    pick training data from them (dpo pairs or its own correct answers), train a candidate from the
    current adapter, and keep it only if it calls better on the dataset's held-out test requests.

    Prints each round's held-out native rates and decision; the JSON result goes to stdout.
    """
    import anyio

    from tooltune.serving.model_server import ModelServer
    from tooltune.training.improve import improve as run_improve

    cfg = build_config(ImproveConfig, options)
    settings = context.settings()
    path = context.served_model_path(cfg.model, cfg.adapter)

    async def main() -> Any:
        async with ModelServer(path, settings=settings, record_active=False) as server:
            return await run_improve(
                settings, server, cfg, on_progress=lambda m: context.console_err.print(m, highlight=False)
            )

    result = anyio.run(main)
    for r in result.rounds:
        if r.dropped is not None:
            line = f"round {r.round}: {r.start or 'base'} → {r.candidate}: {r.dropped}"
        else:
            line = (
                f"round {r.round}: {r.start or 'base'} {r.start_native:.0%} → {r.candidate} "
                f"{r.candidate_native:.0%} native on {r.held_out_cases} held-out cases "
                f"(p = {r.p_value:.3g}): " + ("kept" if r.kept else "dropped")
            )
        context.console_err.print(line, highlight=False)
    context.console_err.print(f"best: {result.best or 'the base model'} ({result.stopped})", highlight=False)
    context.console.print_json(result.model_dump_json())
    return 0
