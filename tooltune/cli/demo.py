"""`tooltune demo`: the closed loop on the real default model."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tooltune.cli import context


def demo(
    *,
    quick: bool = False,
    model: str | None = None,
    n_examples: int | None = None,
    iters: int | None = None,
    rank: int | None = None,
    num_layers: int | None = None,
    eval_limit: int | None = None,
    concurrency: int | None = None,
    seed: int | None = None,
) -> int:
    """Import the default model, generate data, train an adapter, evaluate baseline vs adapter,
    switch the server to the adapter and ask the agent one question through it.

    Each stage is skipped when its result already exists, so re-running resumes.

    Parameters
    ----------
    quick
        A shorter run (about 9 minutes on a 2-core CPU): 400 examples, 40 iterations, 2 eval cases
        per category.
    model
        Base model instead of the embedded Qwen2.5-Coder-0.5B-Instruct.
    n_examples
        Training examples to generate.
    iters
        Training iterations.
    rank
        LoRA rank.
    num_layers
        Transformer blocks to adapt (from the top).
    eval_limit
        Eval cases per category (default: all with the full setting).
    concurrency
        Eval requests in flight at once.
    seed
        Seed for data generation and training.
    """
    import os

    from tooltune.demo import DemoConfig, default_blas_threads, run_demo

    threads = default_blas_threads(os.environ)  # before any MLX child process starts

    cfg = DemoConfig.preset(
        quick,
        model=model,
        n_examples=n_examples,
        iters=iters,
        rank=rank,
        num_layers=num_layers,
        eval_limit=eval_limit,
        concurrency=concurrency,
        seed=seed,
    )
    err = context.console_err
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:

        def on_stage(stage: str, message: str) -> None:
            bar.console.print(f"[bold cyan]{stage:>6}[/] {message}", highlight=False)

        on_stage("blas", f"{threads} OpenBLAS thread(s) per stage (set TOOLTUNE_BLAS_THREADS to change)")

        def on_step(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        try:
            result = run_demo(context.settings(), cfg, on_stage=on_stage, on_step=on_step)
        except KeyboardInterrupt:
            err.print("interrupted: finished stages are kept and a training run saves a checkpoint;")
            err.print("run the same `tooltune demo` again to resume")
            return 130

    table = Table(title=f"coding-tools suite: baseline vs {result.adapter}")
    table.add_column("category")
    table.add_column("n", justify="right")
    for col in ("base native", "adapter native", "base lenient", "adapter lenient"):
        table.add_column(col, justify="right")
    for row in result.rows:
        table.add_row(
            row.category,
            str(row.n),
            f"{row.baseline_native:.0%}",
            f"[bold]{row.adapter_native:.0%}[/]",
            f"{row.baseline_lenient:.0%}",
            f"{row.adapter_lenient:.0%}",
            style="bold" if row.category == "overall" else None,
        )
    out = context.console
    out.print(table)
    out.print(
        f"native: {result.fixes} cases fixed, {result.regressions} regressed "
        f"(McNemar exact p = {result.mcnemar_native_p:.3g})"
    )
    out.print(f"served: {result.served_adapter} ({'verified' if result.served_verified else 'NOT verified'})")
    if result.ask_error:
        out.print(f"ask failed: {result.ask_error}")
    else:
        calls = ", ".join(
            f"{c['name']}({', '.join(f'{k}={v!r}' for k, v in (c.get('args') or {}).items())})"
            for c in result.ask_tool_calls
        )
        out.print(f"ask: {cfg.prompt}")
        out.print(f"  tool calls: {calls or 'none'}")
        out.print(f"  answer: {result.ask_answer}")
    if result.tasks:
        tasks = Table(title="agent tasks (coding-tasks): did the agent finish the job?")
        for col in ("task", "category", "baseline", "adapter"):
            tasks.add_column(col)
        for t in result.tasks:
            tasks.add_row(
                t.task, t.category, "done" if t.baseline else "-", "[bold]done[/]" if t.adapter else "-"
            )
        base_n, tuned_n = sum(t.baseline for t in result.tasks), sum(t.adapter for t in result.tasks)
        tasks.add_row(
            "overall", "", f"{base_n}/{len(result.tasks)}", f"[bold]{tuned_n}/{len(result.tasks)}[/]"
        )
        out.print(tasks)
        out.print(f"task transcripts: {result.task_report_html}")
    out.print(f"report: {result.report_html}")
    out.print(f"stage seconds: {result.seconds}")
    return 0
