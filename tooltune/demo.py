"""The closed loop on one machine: import the default model, generate data for the coding agent's
tools, train an adapter, evaluate baseline vs adapter on the built-in suite, serve the adapter and
ask the agent one question through it.

Every stage has a fixed name derived from its settings and is skipped when its result already
exists, so an interrupted demo picks up where it stopped: a training run from its last checkpoint
(or followed, if its worker is still training) and an eval run half done from its missing cases.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, Field

from tooltune.adapters.registry import AdapterRegistry
from tooltune.agent.session import ask
from tooltune.config import Settings, default_dtype, default_quantize_bits
from tooltune.data import generate_config
from tooltune.data.datasets import generate_dataset
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.store import load_dataset
from tooltune.errors import TooltuneError
from tooltune.evals.runner import DEFAULT_CONCURRENCY, ProgressFn, run_dir
from tooltune.evals.service import evaluate_on_server
from tooltune.evals.suite import load_suite
from tooltune.evals.task_compare import compare_task_runs
from tooltune.evals.task_records import load_task_report, task_run_dir
from tooltune.evals.task_runner import evaluate_tasks_on_server
from tooltune.evals.tasks import TaskSuite, load_task_suite
from tooltune.jobs import JobStore
from tooltune.logs import get_logger
from tooltune.models.default import default_model_dir, import_default, is_valid_default
from tooltune.models.resolve import resolve_model
from tooltune.serving.blas import THREADS_ENV
from tooltune.serving.model_server import ModelServer
from tooltune.training.runs import (
    cancel_training,
    checkpoints,
    follow_events,
    get_run,
    list_runs,
    resume_training,
    start_training,
)
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace

log = get_logger(__name__)

DEMO_SUITE = "coding-tools"
DEMO_PROMPT = "What does src/greet.py do? Read it and tell me in one sentence."

StageFn = Callable[[str, str], None]  # (stage, message)
StepFn = Callable[[str, int, int], None]  # (stage, done, total)


# shaped like the coding-tools suite: 5 of 6 cases want calls (single, several, follow-ups)
DEMO_MIX: dict[str, float] = {
    "single": 0.16,
    "choose": 0.17,
    "edge_args": 0.05,
    # 0.12 left one calling turn in nine with a second call: the adapter made the first and stopped
    "parallel": 0.22,
    "multi_answer": 0.05,
    "multi_chain": 0.12,
    "no_call": 0.15,
    # near-miss siblings are read back from schemas ("write a text file ... and return its contents")
    "near_miss": 0.02,
    "chitchat": 0.06,
}

# 40 steps see 40 examples: with the full mix's 22% of multi-call turns a quick adapter strung six to
# eight calls together and called for all three no-call cases (measured on generator 8); the quick demo
# keeps generator 7's mix, with fewer multi-call turns (0.12) and more no-call ones
QUICK_MIX: dict[str, float] = {
    "single": 0.2,
    "choose": 0.2,
    "edge_args": 0.05,
    "parallel": 0.12,
    "multi_answer": 0.06,
    "multi_chain": 0.13,
    "no_call": 0.16,
    "near_miss": 0.02,
    "chitchat": 0.06,
}


class DemoConfig(BaseModel):
    """Settings of one demo run; ``quick`` takes about 9 minutes on a 2-core CPU (docs/PLATFORM.md)."""

    quick: bool = False
    model: str | None = Field(
        default=None, description="Base model; default: the embedded Qwen2.5-Coder-0.5B."
    )
    n_examples: int = 1200
    iters: int = 300
    rank: int = 8
    num_layers: int = 16
    learning_rate: float = 5e-5  # 2e-4 diverged on the 0.5B (mlx-lm LoRA scale 20)
    batch_size: int = 1
    max_seq_length: int = 1024
    max_tools: int = 6  # the agent serves all 8 tools; the suite offers 1 to 8
    mix: dict[str, float] = Field(default_factory=lambda: dict(DEMO_MIX))
    # a quarter of no-call examples refuse a tool that is not offered; the rest are answered in text with
    # the coding tools offered, as in a session (0.7, generator 6's split, left no-call at 6/22)
    absent_tool_share: float = 0.25
    eval_limit: int | None = Field(default=None, description="Cases per category (None = whole suite).")
    concurrency: int = DEFAULT_CONCURRENCY
    max_tokens: int = 160
    seed: int = 0
    prompt: str = DEMO_PROMPT
    # agent tasks (docs/TASKS.md) run by baseline and adapter after the single-turn suite: the first
    # ``tasks`` of coding-tasks in the order below (0 = none), each with at most ``task_steps`` requests
    tasks: int = 6
    task_steps: int = 6

    @classmethod
    def preset(cls, quick: bool, **overrides: Any) -> DemoConfig:
        base = (
            {
                "quick": True,
                "n_examples": 400,
                # measured on all 128 coding-tools cases (bench/results/quick_recipe.json): 40 steps at 5e-5
                # took native 28 -> 49/128; lr 2e-4 broke the call format (26/128), 70 steps over-called
                # (39/128, no_call 4/22), max_tools 6 was a wash (51/128, p = 0.87) at 14% more per step
                "iters": 40,
                "num_layers": 8,
                # 2 cases per category and one validation batch: on an AVX2-only 2-core CPU, 3 cases and
                # 3 batches took the quick demo to 18 min 41 s (evals are prompt-bound: ~560 tokens a case)
                "eval_limit": 2,
                "max_tools": 3,
                "mix": dict(QUICK_MIX),
                # a task step re-reads ~1,200 prompt tokens (eight tool schemas) at ~31 tok/s here
                "tasks": 2,
                "task_steps": 4,
            }
            if quick
            else {"quick": False}
        )
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def tag(self) -> str:
        # "-tr": the recipe trains the tool-call markers' rows (older demo adapters did not; never reuse them)
        return f"n{self.n_examples}-i{self.iters}-r{self.rank}-l{self.num_layers}-s{self.seed}-tr"


class CategoryRow(BaseModel):
    category: str
    n: int
    baseline_native: float
    baseline_lenient: float
    adapter_native: float
    adapter_lenient: float


class TaskRow(BaseModel):
    task: str
    category: str
    baseline: bool
    adapter: bool


# one task per kind of work, cheapest first: the quick demo takes the first two
DEMO_TASKS = ("config-dir-contents", "version-lookup", "pycli-tests-pass", "find-duration-parsing",
              "explain-middleware", "page-size-50")  # fmt: skip


def demo_tasks(cfg: DemoConfig) -> TaskSuite | None:
    """The demo's slice of coding-tasks (ids in DEMO_TASKS that exist, then others), steps capped."""
    if cfg.tasks <= 0:
        return None
    suite = load_task_suite("coding-tasks")
    by_id = {t.id: t for t in suite.tasks}
    order = [by_id[i] for i in DEMO_TASKS if i in by_id] + [t for t in suite.tasks if t.id not in DEMO_TASKS]
    chosen = [
        t.model_copy(update={"max_steps": min(t.max_steps, cfg.task_steps)}) for t in order[: cfg.tasks]
    ]
    return suite.model_copy(update={"tasks": chosen})


class DemoResult(BaseModel):
    model_path: Path
    dataset: str
    dataset_hash: str
    adapter: str
    train_metrics: dict[str, Any] = Field(default_factory=dict)
    baseline_run: str
    adapter_run: str
    rows: list[CategoryRow]
    mcnemar_native_p: float
    regressions: int
    fixes: int
    report_html: Path
    report_md: Path
    served_adapter: str | None
    served_verified: bool
    ask_answer: str | None = None
    ask_tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    ask_error: str | None = None
    tasks: list[TaskRow] = Field(default_factory=list)
    task_runs: list[str] = Field(default_factory=list)
    task_report_html: Path | None = None
    seconds: dict[str, float] = Field(default_factory=dict)


def default_blas_threads(environ: MutableMapping[str, str]) -> int:
    """The demo runs its stages one at a time (import, train, one model server), so unless the user
    chose a BLAS thread count, each stage gets every core instead of the usual half (which is kept
    for when training and serving share the machine). Measured on the 0.5B here: 9.1 s/iter with 2
    threads vs about 11-12 s with 1 (bench/results/bfcl_adapter_simple_python_i200.json)."""
    if not environ.get(THREADS_ENV):
        environ[THREADS_ENV] = str(os.cpu_count() or 1)
    return int(environ[THREADS_ENV])


def noop_stage(stage: str, message: str) -> None:
    log.info("demo", stage=stage, message=message)


def noop_step(stage: str, done: int, total: int) -> None:
    pass


def demo_project(ws: Workspace) -> Path:
    """A tiny project the agent can look at (read-only) for the final ``ask``."""
    root = ws.root / "demo-project"
    (root / "src").mkdir(parents=True, exist_ok=True)
    files = {
        "README.md": "# greet\n\nA tiny example project for the tooltune demo.\n",
        "src/greet.py": (
            'def greet(name: str) -> str:\n    """Return a friendly greeting for name."""\n'
            '    return f"Hello, {name}!"\n\n\nif __name__ == "__main__":\n    print(greet("world"))\n'
        ),
        "tests/test_greet.py": (
            'from src.greet import greet\n\n\ndef test_greet():\n    assert greet("Ada") == "Hello, Ada!"\n'
        ),
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists():
            p.write_text(text, encoding="utf-8")
    return root


def demo_model(settings: Settings, cfg: DemoConfig, stage: StageFn, step: StepFn) -> Path:

    if cfg.model:
        return resolve_model(cfg.model, settings).path

    target = default_model_dir(settings)
    if is_valid_default(target, dtype=default_dtype(), quantize=default_quantize_bits()):
        stage("model", f"using {target}")
        return target
    stage("model", "importing the embedded Qwen2.5-Coder-0.5B-Instruct (once)")
    return import_default(settings, progress=lambda phase, done, total: step(f"model:{phase}", done, total))


def demo_dataset_name(cfg: DemoConfig) -> str:
    """The demo's dataset name: its size, tools, seed, mix and the version of the generator that last
    changed the coding tools' data (an upgraded tooltune never reuses data an older one made otherwise)."""
    version = generate_config.CODING_DATA_VERSION.rsplit("/", 1)[-1]
    shape = {"mix": cfg.mix, "absent_tool_share": cfg.absent_tool_share}
    mix = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:4]
    return f"demo-coding-n{cfg.n_examples}-t{cfg.max_tools}-s{cfg.seed}-m{mix}-d{version}"


def demo_generate_config(cfg: DemoConfig, n: int | None = None) -> GenerateConfig:
    """What the demo asks the generator for (``n`` examples, default the preset's)."""
    return GenerateConfig(
        n=cfg.n_examples if n is None else n,
        seed=cfg.seed,
        max_tools=cfg.max_tools,
        # half the conversations carry the agent's own system prompt: what `serve`/`ask` send
        system_prompt="agent",
        system_share=0.5,
        mix=cfg.mix,
        absent_tool_share=cfg.absent_tool_share,
    )


def demo_dataset(
    ws: Workspace, cfg: DemoConfig, model_path: Path, stage: StageFn, step: StepFn
) -> tuple[str, str]:

    name = demo_dataset_name(cfg)
    if (ws.datasets / name / "dataset.json").exists():
        info = load_dataset(ws, name)
        stage("data", f"using dataset {name}")
        return name, info.hash
    stage("data", f"generating {cfg.n_examples} examples for the coding agent's tools")
    info, _ = generate_dataset(
        ws,
        name,
        ["builtin:coding"],
        demo_generate_config(cfg),
        model_path=model_path,
        progress=lambda done, total: step("data", done, total),
    )
    return name, info.hash


def demo_adapter(
    settings: Settings,
    ws: Workspace,
    cfg: DemoConfig,
    model_path: Path,
    dataset: str,
    data_tag: str,
    stage: StageFn,
    step: StepFn,
) -> tuple[str, dict[str, Any]]:

    name = f"demo-coding-{cfg.tag}-{data_tag}"  # new data, new adapter
    registry = AdapterRegistry(ws)
    if (ws.adapters / name).exists():
        stage("train", f"using adapter {name}")
        return name, registry.get(name).train_metrics
    job_id = _earlier_training(settings, name, stage)
    if job_id is None:
        config = TrainConfig.short_run(
            str(model_path),
            dataset,
            iters=cfg.iters,
            rank=cfg.rank,
            num_layers=cfg.num_layers,
            learning_rate=cfg.learning_rate,
            batch_size=cfg.batch_size,
            max_seq_length=cfg.max_seq_length,
            seed=cfg.seed,
            steps_per_report=5 if cfg.quick else 10,
            steps_per_eval=cfg.iters if cfg.quick else max(20, cfg.iters // 3),  # quick: first and last only
            save_every=max(20, cfg.iters // 4),
            val_batches=1 if cfg.quick else 10,
        )
        stage("train", f"training {name}: {cfg.iters} iterations, rank {cfg.rank}, {cfg.num_layers} layers")
        job_id = start_training(config, settings, name=name).id
    _follow_training(settings, job_id, cfg.iters, step)
    run = get_run(settings, job_id)
    if run.status != "succeeded" or not run.registered:
        raise TooltuneError(
            f"demo training run {run.id} ended {run.status}: {run.error or run.registration_error}; "
            f"see `tooltune runs show {run.id}`"
            + ("; run the demo again to resume from its last checkpoint" if run.last_checkpoint else "")
        )
    return name, registry.get(name).train_metrics


def _earlier_training(settings: Settings, name: str, stage: StageFn) -> str | None:
    """The job to follow for an earlier demo's run of this adapter (same name = same data and
    recipe): still running (a demo that was stopped leaves its worker running or checkpointing), or
    stopped with a checkpoint and resumed from it. None: start a new run."""

    earlier = [r for r in list_runs(settings) if r.adapter_name == name and r.status != "succeeded"]
    if not earlier:
        return None
    run = earlier[-1]
    if not run.done and run.job_id is not None:
        stage("train", f"following the training of {name} already under way ({run.id})")
        return run.job_id
    run_dir = Workspace(settings.workspace).run_dir(run.id)
    its = checkpoints(run_dir)
    if not its or run.iters is None or its[-1] >= run.iters:
        return None
    stage("train", f"resuming {name} from its checkpoint at iteration {its[-1]} of {run.iters} ({run.id})")
    return resume_training(run.id, settings).id


def _follow_training(settings: Settings, job_id: str, total: int, step: StepFn) -> None:
    """Report progress until the job ends. An interrupt (Ctrl-C) cancels it, so the worker saves a
    checkpoint and stops instead of training on unseen; the next demo resumes from it."""

    try:
        for event in follow_events(settings, job_id, poll_interval=1.0):
            if event.kind == "train" and event.iteration is not None:
                step("train", event.iteration, total)
    except KeyboardInterrupt:
        cancel_training(job_id, settings)
        with contextlib.suppress(TooltuneError, KeyboardInterrupt):  # a second Ctrl-C stops waiting
            JobStore(Workspace(settings.workspace)).wait(job_id, timeout=120, poll=0.5)
        raise


def _model_key(model_path: Path) -> str:
    return hashlib.sha256(str(Path(model_path).resolve()).encode()).hexdigest()[:8]


async def _evaluate_and_ask(
    settings: Settings,
    ws: Workspace,
    cfg: DemoConfig,
    model_path: Path,
    adapter: str,
    data_tag: str,
    stage: StageFn,
    step: StepFn,
) -> dict[str, Any]:

    labels = ["baseline", "adapter"]
    # the baseline depends on the model, the suite's cases and the eval settings only: every demo recipe
    # reuses it, and a changed suite gets new runs (an eval run id is never reused for other cases)
    suite = load_suite(DEMO_SUITE, ws)
    keys = [f"{_model_key(model_path)}-t{cfg.max_tokens}", f"{cfg.tag}-{data_tag}"]
    limit = cfg.eval_limit or "all"
    run_ids = [
        f"demo-{label}-{key}-{suite.hash[:6]}-lim{limit}" for label, key in zip(labels, keys, strict=True)
    ]

    def on_target(i: int, label: str) -> ProgressFn:
        done = (run_dir(ws, run_ids[i]) / "report.json").exists()
        stage(
            "eval",
            f"using eval run {run_ids[i]}" if done else f"evaluating {label} on the {DEMO_SUITE} suite",
        )
        return lambda n, total, _r: step(f"eval:{label}", n, total)

    out: dict[str, Any] = {}
    async with ModelServer(model_path, settings=settings) as server:
        evaluation = await evaluate_on_server(
            server,
            suite,
            ws=ws,
            targets=[None, adapter],
            run_ids=run_ids,
            labels=labels,
            on_target=on_target,
            limit=cfg.eval_limit,
            max_tokens=cfg.max_tokens,
            concurrency=cfg.concurrency,
        )
        out["baseline"], out["adapter"] = evaluation.reports
        out["comparison"] = evaluation.comparison
        stage("serve", f"switching the server to {adapter}")
        served = await server.switch_adapter(adapter)
        out["served"] = served
        stage("ask", f"asking the agent through {adapter}: {cfg.prompt!r}")
        try:
            # the eval's token budget per request: an adapter that rambles (a 40-step one can) costs
            # minutes per 512-token step on this CPU, and one sentence needs far fewer
            out["ask"] = await ask(
                cfg.prompt, root=demo_project(ws), server=server, max_steps=4, max_tokens=cfg.max_tokens
            )
        except TooltuneError as e:  # the loop's numbers are in; report the ask failure, don't lose them
            out["ask_error"] = str(e)
        tasks = demo_tasks(cfg)
        if tasks is not None:
            n = len(tasks.tasks)
            ids = [  # "-rg": the agent answers repeated calls (runs from before it are not reused)
                f"demo-tasks-{label}-{key}-n{n}s{cfg.task_steps}-rg"
                for label, key in zip(labels, keys, strict=True)
            ]
            done = [
                load_task_report(ws, i) if (task_run_dir(ws, i) / "run.json").exists() else None for i in ids
            ]
            if all(d is not None and d.complete for d in done):
                stage("tasks", f"using task runs {ids[0]}, {ids[1]}")
                out["tasks"] = (done, compare_task_runs(ws, ids[0], ids[1]))
            else:
                stage("tasks", f"baseline and adapter work {n} agent tasks of coding-tasks")
                out["tasks"] = await evaluate_tasks_on_server(
                    server, tasks, ws=ws, targets=[None, adapter], run_ids=list(ids), labels=labels,
                    on_target=lambda i, label: lambda k, total, _r: step(f"tasks:{label}", k, total),
                    max_tokens=cfg.max_tokens, restore=True,
                )  # fmt: skip
    return out


def run_demo(
    settings: Settings, cfg: DemoConfig, *, on_stage: StageFn | None = None, on_step: StepFn | None = None
) -> DemoResult:
    stage, step = on_stage or noop_stage, on_step or noop_step
    ws = Workspace(settings.workspace).ensure()
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    model_path = demo_model(settings, cfg, stage, step)
    seconds["model"] = time.perf_counter() - t

    t = time.perf_counter()
    dataset, dataset_hash = demo_dataset(ws, cfg, model_path, stage, step)
    seconds["data"] = time.perf_counter() - t

    t = time.perf_counter()
    data_tag = dataset_hash.removeprefix("sha256:")[:6]
    adapter, metrics = demo_adapter(settings, ws, cfg, model_path, dataset, data_tag, stage, step)
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    out = anyio.run(_evaluate_and_ask, settings, ws, cfg, model_path, adapter, data_tag, stage, step)
    seconds["eval_serve_ask"] = time.perf_counter() - t

    base, tuned, cmp = out["baseline"], out["adapter"], out["comparison"]
    rows = [
        CategoryRow(
            category=cat,
            n=m.n,
            baseline_native=base.categories[cat].native_rate if cat in base.categories else 0.0,
            baseline_lenient=base.categories[cat].lenient_rate if cat in base.categories else 0.0,
            adapter_native=m.native_rate,
            adapter_lenient=m.lenient_rate,
        )
        for cat, m in sorted(tuned.categories.items())
    ]
    rows.append(
        CategoryRow(
            category="overall",
            n=tuned.overall.n,
            baseline_native=base.overall.native_rate,
            baseline_lenient=base.overall.lenient_rate,
            adapter_native=tuned.overall.native_rate,
            adapter_lenient=tuned.overall.lenient_rate,
        )
    )
    report_dir = ws.reports / tuned.meta.run_id
    asked = out.get("ask")
    task_rows: list[TaskRow] = []
    task_runs: list[str] = []
    task_html = None
    if "tasks" in out:
        (t_base, t_tuned), _ = out["tasks"]
        by_id = {r.task_id: r for r in t_base.results}
        task_rows = [
            TaskRow(task=r.task_id, category=r.category, baseline=by_id[r.task_id].success, adapter=r.success)
            for r in t_tuned.results
            if r.task_id in by_id
        ]
        task_runs = [t_base.meta.run_id, t_tuned.meta.run_id]
        task_html = task_run_dir(ws, t_tuned.meta.run_id) / f"vs-{t_base.meta.run_id}.html"
    return DemoResult(
        model_path=model_path,
        dataset=dataset,
        dataset_hash=dataset_hash,
        adapter=adapter,
        train_metrics=metrics or {},
        baseline_run=base.meta.run_id,
        adapter_run=tuned.meta.run_id,
        rows=rows,
        mcnemar_native_p=cmp.mcnemar_native.p_value,
        regressions=cmp.mcnemar_native.regressions,
        fixes=cmp.mcnemar_native.fixes,
        report_html=report_dir / f"vs-{base.meta.run_id}.html",
        report_md=report_dir / f"vs-{base.meta.run_id}.md",
        served_adapter=out["served"].adapter,
        served_verified=out["served"].verified,
        ask_answer=asked.answer if asked else None,
        ask_tool_calls=[c.model_dump(mode="json") for c in asked.tool_calls] if asked else [],
        ask_error=out.get("ask_error") or (asked.error if asked else None),
        tasks=task_rows,
        task_runs=task_runs,
        task_report_html=task_html,
        seconds={k: round(v, 1) for k, v in seconds.items()},
    )
