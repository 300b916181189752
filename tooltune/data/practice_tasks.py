"""Practice for the agent: jobs it does itself, kept as training data when a check says it did them.

Generated and recorded jobs (:mod:`tooltune.data.recorded_jobs`) show the agent a plan carried out
without a slip; trained on them, the 0.5B makes a sensible first call and then does not use what came
back (docs/TASKS.md, T0-T4). Practice turns the same jobs into task-suite tasks, each on its own small
project with the checks the job says a run must pass (the answer names the file a search found, the
config has the new value, nothing changed where writing was refused). The agent then works them itself,
sampled at a temperature, and the runs a check passes become training examples: the model's own calls,
the results those calls really got, and an answer that used them (rejection sampling over whole agent
runs, issue 36's method applied to issue 34's tasks).

The suite is an ordinary task-suite file (``tooltune eval --tasks FILE`` runs it). Its projects and
requests share no function, constant or module name with the built-in ``coding-tasks`` suite (the
recorded jobs' own guarantee, tested there), so practice never rehearses an eval task.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from tooltune.coding_tools import CODING_TOOLS
from tooltune.data.examples import DataError, Example, ExampleMeta, call_message
from tooltune.data.recorded_jobs import PRACTICE_KINDS, practice_job
from tooltune.evals.task_runner import TaskResult
from tooltune.logs import get_logger
from tooltune.workspace import atomic_write_text

DEFAULT_MAX_STEPS = 8
log = get_logger(__name__)


def write_practice_suite(
    out: Path, *, n: int, seed: int, name: str = "practice", max_steps: int = DEFAULT_MAX_STEPS
) -> Path:
    """``n`` practice tasks (the practice kinds in turn, each on a fresh project drawn from ``seed``) as
    a task suite: ``out/<name>.yaml`` with its projects in ``out/projects/``. The same ``n`` and ``seed``
    give the same bytes. Returns the suite file."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = random.Random(seed)
    projects = out / "projects"
    tasks: list[dict[str, Any]] = []
    for i in range(n):
        job = practice_job(rng, PRACTICE_KINDS[i % len(PRACTICE_KINDS)])
        task_id = f"{job.kind}-{i:03d}"
        for rel, text in job.files.items():
            path = projects / task_id / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode())
        tasks.append(
            {
                "id": task_id,
                "category": job.kind,
                "project": task_id,
                "request": job.request,
                "allow_write": job.allow_write,
                "allow_exec": False,
                "max_steps": max_steps,
                "checks": job.checks,
                "reference": {"answer": job.answer, "files": job.written},
            }
        )
    suite = {
        "tasks_format": 1,
        "name": name,
        "description": f"practice tasks for the coding agent (n={n}, seed={seed})",
        "tasks": tasks,
    }
    path = out / f"{name}.yaml"
    atomic_write_text(path, yaml.safe_dump(suite, sort_keys=False, allow_unicode=True, width=1000))
    return path


def is_clean_success(result: TaskResult) -> bool:
    """A run worth learning from: its checks passed, every call was native and valid, and none repeated
    an earlier one (a failed call that the run then got past, such as a path that was not there, stays:
    the recorded jobs teach that recovery too)."""
    return (
        result.success
        and result.invalid_calls == 0
        and result.dropped_calls == 0
        and result.recovered_text_calls == 0
        and result.repeated_calls == 0
        and result.degenerate_cuts == 0
        and result.error is None
    )


def read_transcript(text: str, *, where: str = "transcript") -> list[ModelMessage]:
    """The pydantic-ai messages of a saved transcript (one JSON message a line)."""
    try:
        return ModelMessagesTypeAdapter.validate_python(
            [json.loads(line) for line in text.splitlines() if line]
        )
    except ValueError as e:
        raise DataError(
            f"{where}: not a transcript of pydantic-ai messages ({str(e).splitlines()[0]})"
        ) from e


def example_from_messages(
    messages: Iterable[ModelMessage], *, tools: list[dict[str, Any]] | None = None, source: str = "practice"
) -> Example:
    """One training conversation in the chat format the generator writes: the agent's system prompt, the
    request, each response's calls (or text) and each call's result as the served model read it, and the
    final answer. ``tools``: the schemas offered (default: the agent's own, in its order)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if isinstance(msg, ModelRequest):
            if msg.instructions:
                out.append({"role": "system", "content": msg.instructions})
            for part in msg.parts:
                if isinstance(part, SystemPromptPart):
                    out.append({"role": "system", "content": part.content})
                elif isinstance(part, UserPromptPart):
                    if not isinstance(part.content, str):
                        raise DataError("a practice run's request must be text")
                    out.append({"role": "user", "content": part.content})
                elif isinstance(part, ToolReturnPart):
                    out.append({"role": "tool", "name": part.tool_name, "content": part.model_response_str()})
                elif isinstance(part, RetryPromptPart) and part.tool_name:
                    out.append({"role": "tool", "name": part.tool_name, "content": part.model_response()})
        elif isinstance(msg, ModelResponse):
            text = "".join(p.content for p in msg.parts if isinstance(p, TextPart))
            calls = [(p.tool_name, p.args_as_dict()) for p in msg.parts if isinstance(p, ToolCallPart)]
            out.append(call_message(calls, content=text) if calls else {"role": "assistant", "content": text})
    out = _one_system_message(out)
    if not out or out[-1]["role"] != "assistant" or out[-1].get("tool_calls"):
        raise DataError("a practice run must end with the agent's answer")
    offered = tools if tools is not None else [t.to_openai() for t in CODING_TOOLS]
    return Example(messages=out, tools=offered, meta=ExampleMeta(kind="trajectory", source=source))


def _one_system_message(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat templates take one system message, first: join the system parts (prompt, then instructions)."""
    system = [m["content"] for m in msgs if m["role"] == "system"]
    rest = [m for m in msgs if m["role"] != "system"]
    return ([{"role": "system", "content": "\n\n".join(system)}] if system else []) + rest


def kept_examples(run_dirs: Iterable[Path]) -> tuple[list[Example], dict[str, Any]]:
    """The training examples of every clean success (:func:`is_clean_success`) in the task runs' folders
    (``results.jsonl`` and ``transcripts/``), each conversation once, and what was read: runs, tasks
    tried, successes, clean ones, kept (after dropping repeats of the same conversation), and the
    records skipped (a line that is not a task result, a transcript that is missing or unreadable), each
    with where and why: one bad record never costs the rest."""
    kept: list[Example] = []
    seen: set[str] = set()
    stats: dict[str, Any] = {"runs": 0, "attempts": 0, "succeeded": 0, "clean": 0, "kept": 0, "skipped": []}
    for d in run_dirs:
        stats["runs"] += 1
        for i, line in enumerate((d / "results.jsonl").read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                result = TaskResult.model_validate_json(line)
            except ValueError as e:
                _skip(stats, f"{d / 'results.jsonl'}:{i}", f"not a task result ({str(e).splitlines()[0]})")
                continue
            stats["attempts"] += 1
            stats["succeeded"] += result.success
            if not is_clean_success(result):
                continue
            stats["clean"] += 1
            path = d / "transcripts" / f"{result.task_id}.jsonl"
            try:
                example = example_from_messages(read_transcript(path.read_text("utf-8"), where=str(path)))
            except (OSError, DataError) as e:
                _skip(stats, str(path), str(e))
                continue
            key = example.content_hash()
            if key not in seen:
                seen.add(key)
                example.meta.group = f"practice-{key[:16]}"  # its per-turn pieces share one split
                kept.append(example)
    stats["kept"] = len(kept)
    return kept, stats


def _skip(stats: dict[str, Any], where: str, why: str) -> None:
    log.warning("practice record skipped", where=where, why=why)
    stats["skipped"].append({"where": where, "why": why})
