"""The MCP tools: the tooltune loop (generate → validate → train → eval → compare → switch) for agents.

Each tool is a thin skin over a service: it turns arguments into the service's call, runs blocking work
in a thread (the event loop must keep answering other requests and relaying progress), and returns a
pydantic model. Descriptions are written for the calling model: what the tool does, how long it takes,
and what to call next. Tool names are the contract with agents (see DESIGN.md, "MCP surface").
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from tooltune.errors import TooltuneError
from tooltune.jobs import new_id
from tooltune.logs import get_logger
from tooltune.server.errors import agent_errors
from tooltune.server.progress import follow_job, progress_requested
from tooltune.server.results import (
    AdapterList,
    AdapterSummary,
    AveragedAdapter,
    ComparisonView,
    DatasetCheck,
    EvalStarted,
    GeneratedDataset,
    JobList,
    JobView,
    LintSummary,
    Served,
    TrainStarted,
)
from tooltune.server.state import BusyError, ServerState
from tooltune.workspace import atomic_write_text, validate_name

if TYPE_CHECKING:
    from tooltune.data.generate_config import GenerateResult
    from tooltune.data.store import DatasetInfo

log = get_logger(__name__)

DEFAULT_WAIT_SECONDS = 120
WaitSeconds = Annotated[
    int,
    Field(
        ge=0,
        le=3600,
        description="Only when your request carries a progress token: keep this call open for up to this "
        "many seconds, streaming progress, then return the job's state (the job keeps running either way). "
        "Without a progress token the call returns at once.",
    ),
]

READ_ONLY = ToolAnnotations(
    readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False
)
STARTS_WORK = ToolAnnotations(
    readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False
)


async def _in_thread(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def lint_model_path(state: ServerState, base_model: str | None) -> Path | None:
    """Model whose chat template the dataset check round-trips through: the one named, else the default
    model if it is already imported; None skips that check (the lint report says so)."""
    try:
        return state.resolve_model_path(base_model or state.settings.default_model)
    except TooltuneError:
        if base_model is not None:
            raise
        return None


def thread_progress(ctx: Context, message: str, every: float = 0.5) -> Any:
    """A ``progress(done, total)`` callback for service code running in a worker thread: relays to the
    client at most every ``every`` seconds (and at the end) through the event loop."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < every and done < total:
            return
        last[0] = now
        try:
            anyio.from_thread.run(ctx.report_progress, done, total, message)
        except Exception as exc:  # noqa: BLE001 — a lost client must not fail the generation
            log.info("mcp.progress_stopped", reason=repr(exc))

    return report


def base_model_for(state: ServerState, adapter: str | None, base_model: str | None) -> Path:
    """The model folder to serve: the one named; else the adapter's base (the running server's model when
    its weights are that base, so no restart); else the served, last active or default model."""
    if base_model is None and adapter is not None:
        record = state.registry.get(adapter)
        ms = state.model_server
        if ms is not None and ms.model_fingerprint == record.base_model_fingerprint:
            return Path(ms.model_path)
        base_model = record.base_model
    return state.resolve_model_path(base_model)


def find_job(state: ServerState, job_id: str) -> Any:
    """The job, or a ToolError pointing at list_jobs (the store's own message names a CLI command)."""
    from tooltune.jobs import JobNotFoundError

    try:
        return state.jobs.get(job_id)
    except JobNotFoundError as e:
        raise ToolError(f"no job {job_id!r} in this workspace; list_jobs() shows the existing ones") from e


def register_tools(mcp: MCPServer, state: ServerState) -> None:
    settings = state.settings
    ws = state.ws

    # ---- data ----------------------------------------------------------------------------------------

    @mcp.tool(
        description=(
            "Create a training dataset of tool-calling examples for the small local model. Give the tools "
            "the model must learn to call — inline OpenAI-format `tools`, an `mcp_server` (URL or stdio "
            "command line) whose tools are listed, a BFCL `bfcl_file`, or builtin='coding' (the agent's own "
            "coding tools) — and optionally your own `examples` (you write better requests than templates "
            "do): full lines {messages, tools} in mlx-lm chat format, or pairs {request, calls: [{name, "
            "arguments}]} (calls: [] plus optional answer = a no-call example). Templates fill up to `n` "
            "examples of the chosen `kinds`; near-duplicates and anything resembling eval cases are dropped; "
            "the result is linted (schema, chat-template round trip, loss coverage) and stored immutably. "
            "teacher='self' has the model itself reword a share of the requests as people ask. Takes "
            "seconds (a few hundred examples) to a minute (with a teacher: minutes). Errors in your examples "
            "name examples.jsonl:N = your examples[N-1]. Next: train_adapter(dataset=<name>)."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    async def generate_training_examples(
        ctx: Context,
        tools: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description='OpenAI function specs: {"type":"function","function":{name, description, '
                "parameters}} or bare {name, description, parameters}."
            ),
        ] = None,
        mcp_server: Annotated[
            str | None,
            Field(description='An MCP server to take tools from: "http://host/mcp" or a command line.'),
        ] = None,
        bfcl_file: Annotated[
            str | None, Field(description="Path to a BFCL data file; only its function schemas are read.")
        ] = None,
        builtin: Annotated[
            Literal["coding"] | None, Field(description="'coding' = read_file, write_file, run_command, ...")
        ] = None,
        n: Annotated[int, Field(ge=1, le=20000, description="Examples to produce.")] = 300,
        kinds: Annotated[
            list[str] | None,
            Field(
                description="Subset of: single, choose, parallel, edge_args, multi_answer, multi_chain, "
                "no_call, near_miss, chitchat (default: all, mixed so ~25% make no call)."
            ),
        ] = None,
        seed: int = 0,
        examples: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description="Your own examples, kept first: {messages, tools} lines or {request, calls, "
                "answer?} pairs."
            ),
        ] = None,
        name: Annotated[
            str | None,
            Field(description="Dataset name (letters, digits, . _ -); default: a new unique name."),
        ] = None,
        base_model: Annotated[
            str | None,
            Field(description="Model whose chat template to check against (default: the default model)."),
        ] = None,
        system_prompt: Annotated[
            str | None,
            Field(
                description="System message the model will be served with (your agent's instructions), put "
                "in front of half the conversations so training matches inference; 'agent' = tooltune's own "
                "coding agent's instructions."
            ),
        ] = None,
        mix: Annotated[
            dict[str, float] | None,
            Field(
                description='Relative weight per kind, e.g. {"single": 0.35, "choose": 0.25, "no_call": '
                '0.12, "near_miss": 0.12}. Single-turn targets want few text answers (~25%), or a small '
                "model learns to refuse. Default: a mix for multi-turn agents."
            ),
        ] = None,
        max_tools: Annotated[
            int, Field(ge=1, le=16, description="Most tools offered in one example (each costs tokens).")
        ] = 4,
        contrast_share: Annotated[
            float,
            Field(
                ge=0,
                le=1,
                description="Share of refusals (request for a tool that is not offered) that also get a "
                "twin: the same request with the tool offered, answered with its call.",
            ),
        ] = 0.0,
        near_miss_contrast_share: Annotated[
            float,
            Field(
                ge=0,
                le=1,
                description="Share of near misses (a request for the task next to an offered tool's, "
                "answered in text) that also get a twin: the same words asking for the tool's own task, "
                "answered with its call.",
            ),
        ] = 0.0,
        phrasebook_share: Annotated[
            float,
            Field(
                ge=0,
                le=1,
                description="Share of requests for the built-in coding tools written the way developers "
                "ask ('open src/app.py', 'run `make lint`', follow-ups into a result); the rest are phrased "
                "from the schema.",
            ),
        ] = 0.8,
        absent_tool_share: Annotated[
            float | None,
            Field(
                ge=0,
                le=1,
                description="Share of no_call examples that refuse a request for a tool that is not "
                "offered; the rest are questions and asks no tool serves, answered in text with tools "
                "offered. An agent that always has its tools never meets the first kind. Default 0.7.",
            ),
        ] = None,
        call_question_share: Annotated[
            float | None,
            Field(
                ge=0,
                le=1,
                description="Share of requests answered with a call that are asked as a question ('Who "
                "was the U.S. president during ...?') when the tool's task reads as one; the rest are "
                "commands. Default 0.5, as for the requests answered in text.",
            ),
        ] = None,
        teacher: Annotated[
            str | None,
            Field(
                description="A model that rewrites a share of the requests as a person would ask (every "
                "value must survive): 'self' = base_model itself, served while generating (adds minutes: "
                "~4 s per request on a 2-core CPU), or the base URL of an OpenAI-compatible endpoint."
            ),
        ] = None,
        teacher_share: Annotated[
            float, Field(ge=0, le=1, description="Share of requests sent to the teacher.")
        ] = 0.3,
        teacher_no_call_share: Annotated[
            float | None,
            Field(
                ge=0,
                le=1,
                description="Share of the requests answered in text (near misses, a request for a tool "
                "that is not offered) sent to the teacher; default: teacher_share.",
            ),
        ] = None,
        teacher_tries: Annotated[
            int,
            Field(ge=1, le=5, description="Samples asked per request until one keeps every value."),
        ] = 2,
    ) -> GeneratedDataset:
        from tooltune.data.datasets import generate_dataset
        from tooltune.data.generate_config import GenerateConfig
        from tooltune.data.teacher import open_teacher

        name = validate_name(name or new_id("ds"), "dataset name")
        if (ws.datasets / name).exists():
            raise ToolError(f"dataset {name!r} already exists and datasets are immutable; pass another name")
        specs: list[str] = []
        inputs = (
            ws.root / "inputs" / name
        )  # caller-supplied material, kept so the dataset's sources stay real
        if tools:
            atomic_write_text(inputs / "tools.json", json.dumps(tools, indent=2))
            specs.append(str(inputs / "tools.json"))
        if mcp_server:
            specs.append(f"mcp:{mcp_server}")
        if bfcl_file:
            specs.append(f"bfcl:{bfcl_file}")
        if builtin:
            specs.append(f"builtin:{builtin}")
        if not specs:
            raise ToolError(
                "no tools given: pass tools=[...], mcp_server=..., bfcl_file=... or builtin='coding'"
            )
        examples_file = None
        if examples:
            examples_file = inputs / "examples.jsonl"
            atomic_write_text(examples_file, "".join(json.dumps(e) + "\n" for e in examples))
        cfg_kwargs: dict[str, Any] = {
            "n": n,
            "seed": seed,
            "system_prompt": system_prompt,
            "mix": mix,
            "max_tools": max_tools,
            "contrast_share": contrast_share,
            "near_miss_contrast_share": near_miss_contrast_share,
            "phrasebook_share": phrasebook_share,
            "absent_tool_share": absent_tool_share,
            "call_question_share": call_question_share,
            "teacher_share": teacher_share,
            "teacher_no_call_share": teacher_no_call_share,
            "teacher_tries": teacher_tries,
        }
        if kinds:
            cfg_kwargs["kinds"] = kinds
        config = GenerateConfig(**cfg_kwargs)
        try:
            model_path = await _in_thread(lint_model_path, state, base_model)
            progress = thread_progress(ctx, "generating examples") if progress_requested(ctx) else None

            def generate() -> tuple[DatasetInfo, GenerateResult]:
                with open_teacher(teacher, model_path=model_path, settings=state.settings) as paraphraser:
                    return generate_dataset(
                        ws,
                        name,
                        specs,
                        config,
                        model_path=model_path,
                        examples_file=examples_file,
                        teacher=paraphraser,
                        progress=progress,
                    )

            info, result = await _in_thread(generate)
        except BaseException:
            shutil.rmtree(inputs, ignore_errors=True)  # nothing was written: keep no orphaned inputs either
            raise
        assert info.lint is not None
        return GeneratedDataset(
            dataset=info.name,
            hash=info.hash,
            counts=info.counts,
            kinds=result.counts,
            tools=int(info.stats.get("tools", 0)),
            caller_examples=result.counts.get("caller", 0),
            dropped_duplicates=result.dropped_duplicates,
            dropped_leaked=result.dropped_leaked,
            teacher=result.teacher,
            lint=LintSummary.of(info.lint),
            resource=f"tooltune://datasets/{info.name}",
            next=f"train_adapter(dataset='{info.name}'), with base_model=... unless the default is meant",
        )

    @mcp.tool(
        description=(
            "Check a stored dataset before training: JSON and roles, every tool call valid against "
            "its tool's schema, round trip through the model's chat template and tool parser, which "
            "turns receive loss, duplicates, leakage of eval cases; plus stats (kinds, tools, lengths). "
            "Takes seconds. Returns the first issues as file:line messages. Next: train_adapter if ok, "
            "else generate a new dataset."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def validate_dataset(
        name: Annotated[str, Field(description="Dataset name (from generate_training_examples).")],
        base_model: Annotated[
            str | None,
            Field(description="Model whose chat template to check against (default: the default model)."),
        ] = None,
    ) -> DatasetCheck:
        from tooltune.data.lint import lint_dataset_dir
        from tooltune.data.store import load_dataset

        info = await _in_thread(load_dataset, ws, name)
        model_path = await _in_thread(lint_model_path, state, base_model)
        report = await _in_thread(lint_dataset_dir, info.path, model_path, ws_root=ws.root)
        return DatasetCheck(
            dataset=info.name,
            lint=LintSummary.of(report),
            stats=report.stats,
            resource=f"tooltune://datasets/{info.name}",
            next=f"train_adapter(dataset='{info.name}')"
            if report.ok
            else "fix the errors listed (or generate a new dataset), then validate again",
        )

    # ---- training ------------------------------------------------------------------------------------

    @mcp.tool(
        description=(
            "Train a LoRA adapter on a dataset, in a background worker. Returns a job id at once; if your "
            "request carries a progress token, progress (iteration/iters, loss) streams for up to "
            "`wait_seconds` before the call returns. A run takes minutes (tiny settings) to hours (0.5B "
            "model, CPU, ~3.5 s/iteration). Only one training runs per workspace: a second request gets a "
            "busy answer naming the running job. On success the adapter is registered under `name`. Next: "
            "get_job(id) until done, then run_eval_suite(adapter=<name>, baseline=true)."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    async def train_adapter(
        ctx: Context,
        dataset: Annotated[str, Field(description="Dataset name from generate_training_examples.")],
        base_model: Annotated[
            str | None,
            Field(description="Base model: cache name, MLX folder or .gguf (default: the default model)."),
        ] = None,
        name: Annotated[
            str | None, Field(description="Adapter name to register on success (default: the run id).")
        ] = None,
        rank: Annotated[int | None, Field(description="LoRA rank (default 8).")] = None,
        iters: Annotated[int | None, Field(description="Optimizer steps (default 200).")] = None,
        learning_rate: Annotated[float | None, Field(description="Default 1e-4.")] = None,
        num_layers: Annotated[
            int | None,
            Field(description="Last N transformer blocks to adapt; -1 = all (default min(16, all))."),
        ] = None,
        batch_size: Annotated[int | None, Field(description="Default 4.")] = None,
        config: Annotated[
            dict[str, Any] | None,
            Field(
                description="Any other TrainConfig field: scale, dropout, max_seq_length, mask_prompt, "
                "lr_schedule, warmup, epochs, steps_per_report, save_every, seed, value_loss_weight, "
                "decision_loss_weight, anchor_loss_weight, ..."
            ),
        ] = None,
        wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
    ) -> TrainStarted:
        from tooltune.training.runs import TrainingBusyError, start_training, training_lock_holder
        from tooltune.training.train_config import TrainConfig

        cfg = TrainConfig.from_dict(
            {**(config or {}), "dataset": dataset},
            model=base_model,
            rank=rank,
            iters=iters,
            learning_rate=learning_rate,
            num_layers=num_layers,
            batch_size=batch_size,
        )
        try:
            job = await _in_thread(start_training, cfg, settings, name=name)
        except TrainingBusyError as e:
            holder = training_lock_holder(settings)
            if holder is None:
                raise
            raise ToolError(
                f"busy: training job {holder.job_id} (run {holder.run_id}) is running; follow it with "
                f"get_job('{holder.job_id}') or stop it with cancel_job('{holder.job_id}'), then train again"
            ) from e
        followed = 0.0
        if wait_seconds and progress_requested(ctx):
            t0 = time.monotonic()
            job = await follow_job(ctx, state.jobs, job.id, max_seconds=wait_seconds)
            followed = round(time.monotonic() - t0, 1)
        run_id = job.params.get("run_id")
        view = JobView.of(job)
        return TrainStarted(
            job=view,
            run_id=run_id,
            adapter=job.params.get("adapter"),
            followed_seconds=followed,
            resource=f"tooltune://runs/{run_id}" if run_id else None,
            next=view.next,
        )

    # ---- evals ---------------------------------------------------------------------------------------

    @mcp.tool(
        description=(
            "Measure tool calling on an eval suite ('coding-tools' is built in; BFCL suites can be "
            "imported): the baseline (base model, no adapter) and/or an adapter, scored natively (the "
            "server's parsed tool_calls) and leniently (calls found in the text too), then paired case "
            "by case when both run. Starts the local model server if needed. Returns a job id at once "
            "(progress streams if your request has a progress token). Takes ~1-10 s per case on CPU: "
            "use `limit` (cases per category) for a quick look. The result holds scores per category, "
            "the comparison and report URIs. Afterwards the model server serves what it served before. "
            "Next: get_job(id), then switch_adapter."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    async def run_eval_suite(
        ctx: Context,
        suite: Annotated[str, Field(description="Suite name ('coding-tools') or path to a suite .jsonl.")] = (
            "coding-tools"
        ),
        adapter: Annotated[
            str | None, Field(description="Registered adapter to evaluate (list_adapters).")
        ] = None,
        baseline: Annotated[
            bool, Field(description="Also run the base model without adapter, first.")
        ] = True,
        limit: Annotated[
            int | None, Field(ge=1, description="First N cases per category (default: the whole suite).")
        ] = None,
        base_model: Annotated[
            str | None,
            Field(
                description="Base model for a baseline-only run (default: the adapter's base, else the "
                "served or default model)."
            ),
        ] = None,
        wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
    ) -> EvalStarted:
        from tooltune.evals.suite import load_suite

        if adapter is None and not baseline:
            raise ToolError("nothing to evaluate: pass adapter='<name>' and/or baseline=true")
        if state.running_evals():
            busy = state.running_evals()[0]
            raise ToolError(
                f"busy: eval job {busy} is running; follow it with get_job('{busy}') or "
                f"cancel_job('{busy}') first"
            )
        loaded = await _in_thread(load_suite, suite, ws)
        n_cases = len(loaded.subset(limit).cases)
        model_path = await _in_thread(base_model_for, state, adapter, base_model)
        targets: list[str | None] = ([None] if baseline else []) + ([adapter] if adapter else [])
        labels = [t or "baseline" for t in targets]
        work = functools.partial(_eval_job, state, loaded, targets, model_path, limit, n_cases)
        job = state.start_background_job(
            "eval",
            work,
            params={
                "suite": loaded.name,
                "adapter": adapter,
                "baseline": baseline,
                "limit": limit,
                "model": str(model_path),
            },
            total=n_cases * len(targets),
        )
        followed = 0.0
        if wait_seconds and progress_requested(ctx):
            t0 = time.monotonic()
            job = await follow_job(ctx, state.jobs, job.id, max_seconds=wait_seconds)
            followed = round(time.monotonic() - t0, 1)
        view = JobView.of(job)
        return EvalStarted(
            job=view,
            suite=loaded.name,
            cases=n_cases,
            runs=labels,
            model=str(model_path),
            followed_seconds=followed,
            next=view.next,
        )

    @mcp.tool(
        description=(
            "Compare two finished eval runs case by case (typically baseline vs adapter on the same suite): "
            "per-category rates, McNemar's exact test (native and lenient) and the cases that regressed or "
            "got fixed. Instant. Run ids are in run_eval_suite's job result (result.runs). Writes a Markdown "
            "report "
            "(resource URI in `report`)."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def compare_runs(
        a: Annotated[str, Field(description="Reference run id (usually the baseline).")],
        b: Annotated[str, Field(description="Candidate run id (usually the adapter).")],
    ) -> ComparisonView:
        from tooltune.evals.service import compare_runs as compare

        cmp = await _in_thread(compare, ws, a, b)
        native = cmp.mcnemar_native
        verdict = (
            "the candidate is significantly better natively (p<0.05)"
            if native.fixes > native.regressions and native.p_value < 0.05
            else "no significant native difference — more cases (no limit) or more training may be needed"
        )
        return ComparisonView.of(cmp, report=f"tooltune://reports/{b}/vs/{a}", next=verdict)

    # ---- adapters ------------------------------------------------------------------------------------

    @mcp.tool(
        description=(
            "Serve a registered adapter (or the base model with name=null) on the local OpenAI-compatible "
            "model server, starting it if needed; returns what is served now, proven by a behavioural probe "
            "(never a silent fallback to the base). Seconds for the tiny model, up to a minute for 0.5B. "
            "Refused while an eval is running. The choice is remembered for `tooltune serve`."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False
        ),
    )
    @agent_errors
    async def switch_adapter(
        name: Annotated[str | None, Field(description="Adapter name from list_adapters; null = base model.")],
        base_model: Annotated[
            str | None,
            Field(
                description="Base model to serve (default: the adapter's base, else the served or "
                "default model)."
            ),
        ] = None,
    ) -> Served:
        if state.running_evals():
            busy = state.running_evals()[0]
            raise BusyError(
                f"busy: eval job {busy} is using the model server; wait for it (get_job('{busy}')) or "
                f"cancel it (cancel_job('{busy}')), then switch"
            )
        model_path = await _in_thread(base_model_for, state, name, base_model)
        ms = await state.model_server_for(model_path)
        served = await ms.switch_adapter(name, wait=False)
        return Served(
            adapter=served.adapter,
            model_path=served.model_path,
            verified=served.verified,
            distinguishable=served.distinguishable,
            probe_output=served.probe_output,
            base_url=ms.base_url,
            model_name=ms.model_name,
            next="point your OpenAI-compatible client at base_url with this model_name, or run "
            "`tooltune serve` / `tooltune ask` with this workspace",
        )

    @mcp.tool(
        description=(
            "List the trained adapters of this workspace (base model, dataset hash, train metrics, eval "
            "scores) and what the model server serves now. Instant. Next: switch_adapter or run_eval_suite."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def list_adapters() -> AdapterList:
        from tooltune.adapters.active import read_active

        records = await _in_thread(state.registry.list)
        ms = state.model_server
        served = None
        running = False
        if ms is not None:
            try:
                served = ms.served.adapter
                running = True
            except TooltuneError:
                running = False
        return AdapterList(
            adapters=[AdapterSummary.of(r) for r in records],
            served=served,
            server_running=running,
            active=read_active(ws),
            next="switch_adapter('<name>') to serve one"
            if records
            else "no adapters yet: generate_training_examples, then train_adapter",
        )

    @mcp.tool(
        description=(
            "Register a new adapter that is the weighted mean of two or more adapters' weight changes (LoRA "
            "adapters of one base model on the same layers; exact, its rank is the sum of theirs). Runs of "
            "one recipe with different seeds differ by several eval cases; their average keeps what they "
            "agree on. A strength below 1 turns the result down toward the base model (one adapter with a "
            "strength scales it). Seconds. Next: run_eval_suite(adapter=name) to measure it against its "
            "sources."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False
        ),
    )
    @agent_errors
    async def average_adapters(
        names: Annotated[
            list[str],
            Field(description="Two or more adapter names from list_adapters (one, with a strength)."),
        ],
        name: Annotated[str, Field(description="Name of the new adapter.")],
        weights: Annotated[
            list[float] | None,
            Field(description="One positive weight per adapter (default: equal weights summing to 1)."),
        ] = None,
        strength: Annotated[
            float,
            Field(
                gt=0, description="Multiplies the mean change; below 1 turns it down toward the base model."
            ),
        ] = 1.0,
    ) -> AveragedAdapter:
        from tooltune.adapters.average import average_adapters as average

        record = await _in_thread(average, state.registry, names, name, weights=weights, strength=strength)
        return AveragedAdapter(
            adapter=AdapterSummary.of(record),
            weights=record.train_config["weights"],
            strength=record.train_config["strength"],
            rank=record.train_config["rank"],
            next=f"run_eval_suite(adapter='{record.name}') and compare_runs against each source's eval run",
        )

    # ---- jobs ----------------------------------------------------------------------------------------

    @mcp.tool(
        description=(
            "Status of a training or eval job: progress (current/total, message, latest loss), and once done "
            "its result (adapter name and metrics; eval scores, comparison and report URIs) or error. Jobs "
            "live on disk, so ids stay valid across reconnects. Instant; poll every 10-60 s while it runs."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def get_job(
        id: Annotated[str, Field(description="Job id from train_adapter or run_eval_suite.")],
    ) -> JobView:
        return JobView.of(await _in_thread(find_job, state, id))

    @mcp.tool(
        description=(
            "Stop a running job. Training stops at the next step boundary, keeps its last checkpoint and "
            "ends 'cancelled'; an eval stops at once (finished cases are kept). Returns the job; poll "
            "get_job to see it end. Cancelling a finished job changes nothing."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False
        ),
    )
    @agent_errors
    async def cancel_job(id: Annotated[str, Field(description="Job id to cancel.")]) -> JobView:
        from tooltune.training.runs import cancel_training

        job = await _in_thread(find_job, state, id)
        if job.kind == "train":
            job = await _in_thread(cancel_training, id, settings)
        else:
            job = state.cancel_job(id)
        return JobView.of(job)

    @mcp.tool(
        description=(
            "List jobs of this workspace, oldest first (training and eval; optionally one kind or status). "
            "Instant. Use it to find a job again after reconnecting."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def list_jobs(
        kind: Annotated[Literal["train", "eval"] | None, Field(description="Only this kind.")] = None,
        status: Annotated[
            Literal["queued", "running", "succeeded", "failed", "cancelled"] | None,
            Field(description="Only this status."),
        ] = None,
        last: Annotated[int, Field(ge=1, le=500, description="At most this many (the most recent).")] = 50,
    ) -> JobList:
        jobs = await _in_thread(state.jobs.list, kind)
        if status is not None:
            jobs = [j for j in jobs if j.status == status]
        return JobList(jobs=[JobView.of(j) for j in jobs[-last:]])


async def _restore(ms: Any, previous: str | None) -> None:
    """Serve again what was served before the eval; a failure here must not hide the eval's own outcome."""
    try:
        if ms.served.adapter != previous:
            await ms.switch_adapter(previous, record=False)
    except TooltuneError as e:
        log.warning("mcp.eval_restore_failed", adapter=previous, error=str(e))


async def _eval_job(
    state: ServerState,
    suite: Any,
    targets: list[str | None],
    model_path: Path,
    limit: int | None,
    n_cases: int,
    job: Any,
) -> dict[str, Any]:
    """The eval job's work: each target in turn on the shared model server, then the paired comparison.

    The adapter served before the eval is served again afterwards, so an eval never changes what the
    agent's client talks to.
    """
    from tooltune.evals.service import compare_runs, run_suite_on_server

    ms = await state.model_server_for(model_path)
    previous = ms.served.adapter
    total = n_cases * len(targets)
    reports = []
    try:
        for i, target in enumerate(targets):
            label = target or "baseline"
            offset = i * n_cases

            def on_progress(
                done: int, run_total: int, _result: Any, label: str = label, offset: int = offset
            ) -> None:
                state.jobs.update(
                    job.id,
                    progress={
                        "current": offset + done,
                        "total": total,
                        "message": f"{label}: case {done}/{run_total}",
                    },
                )

            state.jobs.update(job.id, progress={"current": offset, "message": f"{label}: loading"})
            reports.append(
                await run_suite_on_server(
                    ms, suite, ws=state.ws, adapter=target, limit=limit, on_progress=on_progress
                )
            )
    finally:
        with anyio.CancelScope(shield=True):
            await _restore(ms, previous)
    result: dict[str, Any] = {
        "suite": suite.name,
        "model": str(model_path),
        "runs": {r.meta.label: r.meta.run_id for r in reports},
        "scores": {r.meta.label: r.rates() for r in reports},
        "complete": all(r.complete for r in reports),
        "reports": {r.meta.label: f"tooltune://reports/{r.meta.run_id}" for r in reports},
    }
    # run_suite_on_server recorded the adapter's scores in its registry entry
    if len(reports) == 2:
        a, b = reports[0].meta.run_id, reports[1].meta.run_id
        cmp = await anyio.to_thread.run_sync(compare_runs, state.ws, a, b)
        result["comparison"] = {
            "run_a": a,
            "run_b": b,
            "n_paired": cmp.n_paired,
            "native": {
                "a": reports[0].overall.native_rate,
                "b": reports[1].overall.native_rate,
                **cmp.mcnemar_native.model_dump(),
            },
            "lenient": {
                "a": reports[0].overall.lenient_rate,
                "b": reports[1].overall.lenient_rate,
                **cmp.mcnemar_lenient.model_dump(),
            },
            "regressions": [c.case_id for c in cmp.regressions[:20]],
            "fixes": [c.case_id for c in cmp.fixes[:20]],
            "report": f"tooltune://reports/{b}/vs/{a}",
        }
    return result
