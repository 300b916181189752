"""An agent task run's records: each task's result, the run's settings, the report over both, and where
they live (``<ws>/task-runs/<run_id>/``: ``run.json``, ``results.jsonl``, ``transcripts/<task>.jsonl``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tooltune.evals.tasks import CheckOutcome
from tooltune.workspace import Workspace, validate_name


class TaskResult(BaseModel):
    task_id: str
    category: str
    success: bool
    checks: list[CheckOutcome] = Field(default_factory=list)
    answer: str | None = None
    error: str | None = None
    steps: int = Field(0, description="Model requests the agent made.")
    calls: int = Field(0, description="Tool calls the model made.")
    failed_calls: int = Field(
        0, description="Calls refused by the sandbox, failing in the tool, or answered by the repeat guard."
    )
    invalid_calls: int = Field(0, description="Calls sent back to the model as invalid (retried).")
    dropped_calls: int = Field(0, description="Answers ending on a call the server could not parse.")
    recovered_text_calls: int = Field(0, description="Calls written as text, recovered by --lenient-tools.")
    degenerate_cuts: int = Field(0, description="Answers cut off for repeating themselves.")
    repeated_calls: int = Field(
        0,
        description="Calls that repeated one the task had made, with nothing changed since, answered by "
        "the agent's guard instead of run again (counted in failed_calls too).",
    )
    wall_s: float = Field(
        0.0, description="The task's own time (with other tasks at once, its waits for the server too)."
    )


class TaskRunMeta(BaseModel):
    run_id: str
    suite: str
    suite_hash: str
    label: str = ""
    adapter: str | None = None
    model: str = ""
    lenient_tools: bool = False
    repeat_guard: bool | None = Field(
        default=None,
        description="Whether the agent answered repeated calls instead of running them again; None: a run "
        "from before the guard existed (it had none).",
    )
    temperature: float | None = Field(
        default=None, description="Sampling temperature of every model request; None: the server's (greedy)."
    )
    concurrency: int = Field(1, description="Tasks worked at once (1 for runs from before it could be more).")
    tasks: int = 0
    started: str = ""
    finished: str | None = None


class TaskReport(BaseModel):
    meta: TaskRunMeta
    results: list[TaskResult]

    @property
    def complete(self) -> bool:
        return self.meta.finished is not None and len(self.results) == self.meta.tasks

    def success_rate(self) -> float:
        return sum(r.success for r in self.results) / len(self.results) if self.results else 0.0

    def summary(self) -> dict[str, Any]:
        """Overall and per-category success, and the call counts that explain failures."""
        cats: dict[str, list[TaskResult]] = {}
        for r in self.results:
            cats.setdefault(r.category, []).append(r)
        total = Counter[str]()
        for r in self.results:
            total.update(
                {
                    "steps": r.steps,
                    "calls": r.calls,
                    "failed_calls": r.failed_calls,
                    "invalid_calls": r.invalid_calls,
                    "dropped_calls": r.dropped_calls,
                    "recovered_text_calls": r.recovered_text_calls,
                    "degenerate_cuts": r.degenerate_cuts,
                    "repeated_calls": r.repeated_calls,
                }
            )
        return {
            "run_id": self.meta.run_id,
            "label": self.meta.label,
            "tasks": len(self.results),
            "success": round(self.success_rate(), 4),
            "succeeded": sum(r.success for r in self.results),
            "categories": {
                c: {"tasks": len(rs), "succeeded": sum(r.success for r in rs)}
                for c, rs in sorted(cats.items())
            },
            **dict(total),
            "wall_s": round(sum(r.wall_s for r in self.results), 1),
        }


def task_run_dir(ws: Workspace, run_id: str) -> Path:
    return ws.root / "task-runs" / validate_name(run_id, "run id")


def load_task_report(ws: Workspace, run_id: str) -> TaskReport:
    d = task_run_dir(ws, run_id)
    meta = TaskRunMeta.model_validate_json((d / "run.json").read_text("utf-8"))
    lines = (d / "results.jsonl").read_text("utf-8").splitlines() if (d / "results.jsonl").exists() else []
    return TaskReport(
        meta=meta, results=[TaskResult.model_validate_json(line) for line in lines if line.strip()]
    )
