"""What the MCP tools return: pydantic models, so clients get an output schema and `structured_content`.

Each answer carries a ``next`` hint (one sentence: what to call next) because the caller is a model
deciding its next step; service models are reused where they already say what an agent needs.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from tooltune.adapters.active import ActiveSelection
from tooltune.adapters.registry import AdapterRecord
from tooltune.data.lint import CheckResult, DatasetStats, LintReport
from tooltune.data.teacher import TeacherStats
from tooltune.evals.compare import CategoryDelta, ChangedCase, Comparison, McNemar
from tooltune.jobs import JobProgress, JobRecord

MAX_ISSUES = 20

# A path published as a plain string: pydantic's Path gives the schema `"format": "path"`, which is no JSON
# Schema format, so strict validators in other clients (e.g. ajv in the TypeScript SDK) reject the schema.
PathStr = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, PurePath) else v)]


# ---- jobs --------------------------------------------------------------------------------------------


class JobView(BaseModel):
    """A job as the agent sees it: status, progress and, once done, its result."""

    id: str
    kind: str = Field(description='"train" or "eval".')
    status: str = Field(description="queued | running | succeeded | failed | cancelled")
    done: bool
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    progress: JobProgress
    params: dict[str, Any] = Field(default_factory=dict, description="What the job was asked to do.")
    result: dict[str, Any] = Field(default_factory=dict, description="Filled when the job ends.")
    error: str | None = None
    next: str = Field(description="What to call next.")

    @classmethod
    def of(cls, job: JobRecord) -> JobView:
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            done=job.done,
            created=job.created,
            started=job.started,
            finished=job.finished,
            progress=job.progress,
            params=job.params,
            result=job.result,
            error=job.error,
            next=next_step(job),
        )


def next_step(job: JobRecord) -> str:
    if not job.done:
        return f"poll get_job('{job.id}') until done (or cancel_job('{job.id}'))"
    if job.status == "succeeded" and job.kind == "train":
        adapter = job.result.get("adapter")
        if adapter:
            return (
                f"run_eval_suite(suite='coding-tools', adapter='{adapter}', baseline=true) to measure it, "
                f"then switch_adapter('{adapter}') to serve it"
            )
        return "the run finished but the adapter was not registered; read result.registration_error"
    if job.status == "succeeded" and job.kind == "eval":
        adapter = job.params.get("adapter")
        if adapter:
            return f"if the adapter wins, switch_adapter('{adapter}'); read the report resources for details"
        return "read the report resources, or compare_runs(a, b) against another run"
    if job.status == "failed":
        return "read error, fix what it names and start a new job"
    return "start a new job when ready"


class JobList(BaseModel):
    jobs: list[JobView]


# ---- data --------------------------------------------------------------------------------------------


class LintSummary(BaseModel):
    """A dataset check, trimmed for a model's context: counts, check statuses and the first issues."""

    ok: bool
    examples: int
    n_errors: int
    n_warnings: int
    errors: list[str] = Field(description=f"First {MAX_ISSUES} errors as file:line [field]: message (check).")
    warnings: list[str] = Field(description=f"First {MAX_ISSUES} warnings.")
    checks: dict[str, CheckResult]
    model: str | None = Field(default=None, description="Model whose chat template the round trip used.")

    @classmethod
    def of(cls, report: LintReport) -> LintSummary:
        return cls(
            ok=report.ok,
            examples=report.examples,
            n_errors=len(report.errors),
            n_warnings=len(report.warnings),
            errors=[str(i) for i in report.errors[:MAX_ISSUES]],
            warnings=[str(i) for i in report.warnings[:MAX_ISSUES]],
            checks=report.checks,
            model=report.model,
        )


class GeneratedDataset(BaseModel):
    dataset: str = Field(description="Name to pass to train_adapter and validate_dataset.")
    hash: str
    counts: dict[str, int] = Field(description="Examples per split (train/valid/test).")
    kinds: dict[str, int] = Field(description="Examples per kind (single, choose, parallel, no_call, ...).")
    tools: int = Field(description="Number of tool schemas the examples were generated from.")
    caller_examples: int = Field(description="Examples you supplied that were kept.")
    dropped_duplicates: int
    dropped_leaked: int = Field(description="Dropped because they resemble eval-suite cases.")
    teacher: TeacherStats | None = Field(
        default=None, description="Requests the teacher was asked to rewrite, kept, dropped (why)."
    )
    phrasebook: dict[str, int] | None = Field(
        default=None, description="The phrasebook's usable entries per section and how many were skipped."
    )
    phrasebook_skipped: list[str] = Field(
        default_factory=list, description="Phrasebook entries skipped, each with where and why (first 20)."
    )
    phrasebook_drafted: dict[str, Any] | None = Field(
        default=None, description="phrasebook='client': per tool, drafted entries kept and dropped."
    )
    lint: LintSummary
    resource: str
    next: str


class DatasetCheck(BaseModel):
    dataset: str
    lint: LintSummary
    stats: DatasetStats
    resource: str
    next: str


# ---- training ----------------------------------------------------------------------------------------


class TrainStarted(BaseModel):
    job: JobView
    run_id: str | None = None
    adapter: str | None = Field(description="Name the adapter will be registered under on success.")
    followed_seconds: float = Field(
        description="How long this call relayed progress (0 when the request carried no progress token)."
    )
    resource: str | None = None
    next: str


# ---- evals -------------------------------------------------------------------------------------------


class EvalStarted(BaseModel):
    job: JobView
    suite: str
    cases: int = Field(description="Cases per run after `limit`.")
    runs: list[str] = Field(description='What will be evaluated, in order: "baseline" and/or the adapter.')
    model: str = Field(description="Base model folder the runs use.")
    followed_seconds: float
    next: str


class ComparisonView(BaseModel):
    """Baseline-vs-adapter (or any two runs), paired case by case with McNemar's exact test."""

    run_a: str
    run_b: str
    label_a: str
    label_b: str
    suite: str
    same_suite: bool
    n_paired: int
    categories: dict[str, CategoryDelta]
    mcnemar_native: McNemar
    mcnemar_lenient: McNemar
    regressions: list[ChangedCase] = Field(description=f"First {MAX_ISSUES} cases that got worse.")
    fixes: list[ChangedCase] = Field(description=f"First {MAX_ISSUES} cases that got better.")
    n_regressions: int
    n_fixes: int
    differs: list[str] = Field(
        default_factory=list,
        description="Settings the two runs did not share besides the target (model, temperature, seed, "
        "repeats, max_tokens, concurrency): reasons the pairing measures more than the adapter.",
    )
    report: str = Field(description="Resource URI of the Markdown comparison.")
    next: str

    @classmethod
    def of(cls, cmp: Comparison, report: str, next: str) -> ComparisonView:
        return cls(
            **cmp.model_dump(exclude={"regressions", "fixes", "only_in_a", "only_in_b"}),
            regressions=cmp.regressions[:MAX_ISSUES],
            fixes=cmp.fixes[:MAX_ISSUES],
            n_regressions=len(cmp.regressions),
            n_fixes=len(cmp.fixes),
            report=report,
            next=next,
        )


# ---- adapters ----------------------------------------------------------------------------------------


class AdapterSummary(BaseModel):
    name: str
    base_model: str
    dataset_hash: str | None = None
    run_id: str | None = None
    created: datetime
    train_metrics: dict[str, Any] = Field(default_factory=dict)
    eval_scores: dict[str, Any] = Field(default_factory=dict)
    averaged_from: list[str] | None = Field(
        default=None, description="For an average of adapters: their names (weights in the resource)."
    )
    resource: str

    @classmethod
    def of(cls, rec: AdapterRecord) -> AdapterSummary:
        return cls(
            name=rec.name,
            base_model=rec.base_model,
            dataset_hash=rec.dataset_hash,
            run_id=rec.run_id,
            created=rec.created,
            train_metrics=rec.train_metrics,
            eval_scores=rec.eval_scores,
            averaged_from=rec.train_config.get("averaged_from"),
            resource=f"tooltune://adapters/{rec.name}",
        )


class AveragedAdapter(BaseModel):
    adapter: AdapterSummary
    weights: list[float] = Field(description="The weight of each source adapter, in the order given.")
    strength: float = Field(description="Factor applied to the weighted mean of the changes.")
    rank: int = Field(description="Rank of the new LoRA: the sum of the sources' ranks.")
    next: str


class AdapterList(BaseModel):
    adapters: list[AdapterSummary]
    served: str | None = Field(
        description="Adapter the running model server serves now (None = baseline or no server running)."
    )
    server_running: bool
    active: ActiveSelection | None = Field(
        description="Last verified selection of this workspace (what `tooltune serve` starts with)."
    )
    next: str


class Served(BaseModel):
    """What the model server serves now, as proven by the behavioural probe."""

    adapter: str | None = Field(description="None = the base model without adapter.")
    model_path: PathStr = Field(description="Base model folder the server runs.")
    verified: bool
    distinguishable: bool | None = Field(
        default=None, description="Whether the probe can tell this adapter from the base model."
    )
    probe_output: str = ""
    base_url: str = Field(description="OpenAI-compatible endpoint serving it.")
    model_name: str = Field(description='The "model" field requests must send.')
    next: str


# ---- on-policy samples ------------------------------------------------------------------------------


class SamplingStarted(BaseModel):
    job: JobView
    dataset: str
    samples: str = Field(description="Name of the samples set the job writes.")
    requests: int = Field(description="Requests that will be sampled (before any that cannot be scored).")
    model: str
    followed_seconds: float
    next: str


class PickResult(BaseModel):
    dataset: str = Field(description="The new dataset: examples (rejection) or preference pairs (pairs).")
    method: str
    counts: dict[str, int] = Field(description="Rows per split.")
    picked: dict[str, int] = Field(
        description="rejection: answers taken from the model itself (own) or the generated truth; "
        "pairs: pairs per reason code of the wrong answer."
    )
    always_right: int = Field(
        default=0,
        description="pairs: requests every sample got right, kept beside the pairs (not trained on); the "
        "training run's answer check asks them to see whether it broke what already worked.",
    )
    next: str
