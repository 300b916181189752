"""`tooltune train` and `tooltune runs`: LoRA training runs in a worker subprocess.

The command only starts, follows and cancels the worker (tooltune.training.runs); the progress bar is
drawn from events.jsonl on stderr, and the final summary goes to stdout. Ctrl-C in the foreground asks
the worker to checkpoint and stop, so the run can be resumed with ``--resume``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Literal

import cyclopts
from cyclopts import Parameter

from tooltune.cli import context
from tooltune.errors import TooltuneError

app = cyclopts.App(name="train", help="Train a LoRA adapter on a dataset (worker subprocess, resumable).")
runs_app = cyclopts.App(name="runs", help="List and inspect training runs.")


@app.default
def train(
    *,
    dataset: str | None = None,
    model: str | None = None,
    config: Path | None = None,
    name: str | None = None,
    resume: str | None = None,
    detach: bool = False,
    fine_tune_type: Literal["lora", "dora", "full"] | None = None,
    num_layers: int | None = None,
    rank: int | None = None,
    scale: Annotated[float | None, Parameter(name=["--scale", "--alpha"])] = None,
    dropout: float | None = None,
    keys: Annotated[list[str] | None, Parameter(consume_multiple=True)] = None,
    train_tokens: Annotated[list[str] | None, Parameter(consume_multiple=True)] = None,
    optimizer: Literal["adam", "adamw", "sgd"] | None = None,
    learning_rate: Annotated[float | None, Parameter(name=["--learning-rate", "--lr"])] = None,
    lr_schedule: Literal["constant", "cosine"] | None = None,
    warmup: int | None = None,
    iters: int | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
    grad_accumulation_steps: int | None = None,
    max_seq_length: int | None = None,
    mask_prompt: bool | None = None,
    value_loss_weight: float | None = None,
    decision_loss_weight: float | None = None,
    anchor_loss_weight: float | None = None,
    grad_checkpoint: bool | None = None,
    seed: int | None = None,
    steps_per_report: int | None = None,
    steps_per_eval: int | None = None,
    save_every: int | None = None,
    val_batches: int | None = None,
) -> int:
    """Train an adapter: `tooltune train --dataset NAME [--config run.yaml] [--rank 16 ...]`.

    Flags override values from --config. The adapter is registered under --name (default: the run id)
    when the run succeeds.

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
    fine_tune_type
        lora, dora or full.
    num_layers
        Adapt the last N transformer blocks (-1 = all; default min(16, all)).
    rank
        LoRA rank.
    scale
        LoRA scale (mlx-lm's name for alpha; the update is scaled by this value).
    dropout
        LoRA dropout.
    keys
        Module paths inside a block to adapt (e.g. self_attn.q_proj self_attn.v_proj); default: all linear.
    train_tokens
        Tokens whose embedding rows the adapter trains too (default: <tool_call> </tool_call>, which are
        untrained in Qwen2.5-Coder-0.5B); --empty-train-tokens trains none.
    optimizer
        adam, adamw or sgd.
    learning_rate
        Peak learning rate.
    lr_schedule
        constant or cosine (decays to 0 over the run after warmup).
    warmup
        Linear warmup steps.
    iters
        Training steps (default 200).
    epochs
        Alternative to --iters: passes over train.jsonl.
    batch_size
        Examples per step.
    grad_accumulation_steps
        Steps whose gradients are summed before one optimizer update.
    max_seq_length
        Longer examples are truncated.
    mask_prompt
        Compute the loss on the last message only.
    value_loss_weight
        Loss weight of the argument values inside tool calls (default 1; below 1 teaches when and how to
        call more than what to fill in).
    decision_loss_weight
        Loss weight of each answer's first token, the decision to call or answer in text (default 1;
        above 1 teaches when to call more than how).
    anchor_loss_weight
        Weight of a KL term keeping the argument values' next-token distribution at the base model's
        (the adapter switched off; default 0 = off; one more forward pass per step).
    grad_checkpoint
        Trade compute for memory.
    seed
        Seed for LoRA init and data order.
    steps_per_report
        Steps between train-loss reports (progress events).
    steps_per_eval
        Steps between validation-loss evaluations.
    save_every
        Steps between checkpoints (adapter + optimizer state, for --resume).
    val_batches
        Validation batches per evaluation (-1 = all).
    """
    from tooltune.training.runs import resume_training, start_training
    from tooltune.training.train_config import TrainConfig

    settings = context.settings()
    if resume is not None:
        job = resume_training(resume, settings, iters=iters)
    else:
        overrides = {
            "model": model,
            "fine_tune_type": fine_tune_type,
            "num_layers": num_layers,
            "rank": rank,
            "scale": scale,
            "dropout": dropout,
            "keys": keys,
            "train_tokens": train_tokens,
            "optimizer": optimizer,
            "learning_rate": learning_rate,
            "lr_schedule": lr_schedule,
            "warmup": warmup,
            "iters": iters,
            "epochs": epochs,
            "batch_size": batch_size,
            "grad_accumulation_steps": grad_accumulation_steps,
            "max_seq_length": max_seq_length,
            "mask_prompt": mask_prompt,
            "value_loss_weight": value_loss_weight,
            "decision_loss_weight": decision_loss_weight,
            "anchor_loss_weight": anchor_loss_weight,
            "grad_checkpoint": grad_checkpoint,
            "seed": seed,
            "steps_per_report": steps_per_report,
            "steps_per_eval": steps_per_eval,
            "save_every": save_every,
            "val_batches": val_batches,
            "dataset": dataset,
        }
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
