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

import hashlib
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from tooltune.agent.session import load_session
from tooltune.coding_tools import CODING_TOOLS
from tooltune.data.datasets import _lint_in_memory
from tooltune.data.examples import DataError, Example, ExampleMeta, call_message, split_turns
from tooltune.data.generate_config import GENERATOR_VERSION
from tooltune.data.recorded_jobs import PRACTICE_KINDS, practice_job
from tooltune.data.similarity import LeakIndex
from tooltune.data.store import DatasetInfo, DatasetMeta, save_dataset
from tooltune.evals.task_records import TaskResult
from tooltune.logs import get_logger
from tooltune.workspace import Workspace, atomic_write_text

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


def read_transcript(path: Path) -> list[ModelMessage]:
    """The pydantic-ai messages of a saved transcript (the agent's session format, one message a line)."""
    try:
        return load_session(path)
    except ValueError as e:  # a line that is not JSON, or not a message; a file that is not UTF-8
        raise DataError(f"{path}: not a transcript of pydantic-ai messages ({str(e).splitlines()[0]})") from e


def example_from_messages(
    messages: Iterable[ModelMessage], *, tools: list[dict[str, Any]] | None = None, source: str = "practice"
) -> Example:
    """One training conversation in the chat format the generator writes, as the served model read it:
    one system message (system prompt parts, then the agent's instructions once, as pydantic-ai sends
    them: the last request's), the request, each response's calls (or text), each call's result, and the
    final answer. ``tools``: the schemas offered (default: the agent's own, in its order).

    A run with a turn that should not be learned is refused (``DataError``): a call sent back as invalid
    or a response sent back for a retry, an empty response, or an answer cut off at the token limit."""
    system: list[str] = []
    instructions: str | None = None
    out: list[dict[str, Any]] = []
    for msg in messages:
        if isinstance(msg, ModelRequest):
            instructions = msg.instructions or instructions
            for part in msg.parts:
                if isinstance(part, SystemPromptPart):
                    system.append(part.content)
                elif isinstance(part, UserPromptPart):
                    if not isinstance(part.content, str):
                        raise DataError("a practice run's request must be text")
                    out.append({"role": "user", "content": part.content})
                elif isinstance(part, ToolReturnPart):
                    if part.outcome == "retried":
                        raise DataError(f"a {part.tool_name} call was sent back as invalid")
                    out.append({"role": "tool", "name": part.tool_name, "content": part.model_response_str()})
                elif isinstance(part, RetryPromptPart | RetryFeedbackPart):
                    raise DataError("a response was sent back for a retry")
        elif isinstance(msg, ModelResponse):
            if msg.finish_reason == "length":
                raise DataError("a response was cut off at the token limit")
            text = "".join(p.content for p in msg.parts if isinstance(p, TextPart))
            calls = [(p.tool_name, p.args_as_dict()) for p in msg.parts if isinstance(p, ToolCallPart)]
            if not calls and not text.strip():
                raise DataError("an empty response (neither text nor a call)")
            out.append(call_message(calls, content=text) if calls else {"role": "assistant", "content": text})
    if instructions:
        system.append(instructions)
    if not out or out[-1]["role"] != "assistant" or out[-1].get("tool_calls"):
        raise DataError("a practice run must end with the agent's answer")
    head = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    offered = tools if tools is not None else [t.to_openai() for t in CODING_TOOLS]
    return Example(messages=head + out, tools=offered, meta=ExampleMeta(kind="trajectory", source=source))


def kept_examples(run_dirs: Iterable[Path]) -> tuple[list[Example], dict[str, Any]]:
    """The training conversations of every clean success (:func:`is_clean_success`) in the task runs'
    folders (``run.json``, ``results.jsonl``, ``transcripts/``), each conversation once, grouped by task
    (the runs of one task share their first turns: :func:`pieces` keeps them in one split), and what was
    read: runs, tasks tried, successes, clean ones, kept, and the records skipped (a run folder without
    its files, a line that is not a task result, a transcript that is missing, unreadable or holds a turn
    that should not be learned), each with where and why: one bad record never costs the rest."""
    kept: list[Example] = []
    seen: set[str] = set()
    stats: dict[str, Any] = {"runs": 0, "attempts": 0, "succeeded": 0, "clean": 0, "kept": 0, "skipped": []}
    for d in run_dirs:
        try:
            suite_hash = str(json.loads((d / "run.json").read_text("utf-8"))["suite_hash"])
            lines = (d / "results.jsonl").read_text("utf-8").splitlines()
        except (OSError, ValueError, KeyError, TypeError) as e:
            _skip(stats, str(d), f"not a task run folder ({e})")
            continue
        stats["runs"] += 1
        for i, line in enumerate(lines, start=1):
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
                example = example_from_messages(read_transcript(path))
            except (OSError, ValueError) as e:  # DataError included; a file that is not UTF-8 too
                _skip(stats, str(path), str(e))
                continue
            key = example.content_hash()
            if key not in seen:
                seen.add(key)
                digest = hashlib.sha256(suite_hash.encode()).hexdigest()[:12]
                example.meta.group = f"practice-{digest}-{result.task_id}"
                kept.append(example)
    stats["kept"] = len(kept)
    return kept, stats


def pieces(conversations: Iterable[Example]) -> list[Example]:
    """One example per assistant turn (mlx-lm trains the last message), each piece once: the sampled
    runs of a task often share their first calls, which would otherwise be trained once per run."""
    out: list[Example] = []
    seen: set[str] = set()
    for conv in conversations:
        for piece in split_turns(conv):
            key = piece.content_hash()
            if key not in seen:
                seen.add(key)
                out.append(piece)
    return out


def _skip(stats: dict[str, Any], where: str, why: str) -> None:
    log.warning("practice record skipped", where=where, why=why)
    stats["skipped"].append({"where": where, "why": why})


def save_practice_dataset(
    ws: Workspace,
    name: str,
    conversations: list[Example],
    *,
    model_path: Path | str | None,
    sources: list[str],
) -> tuple[DatasetInfo | None, list[dict[str, str]]]:
    """The kept conversations as dataset ``name``: their pieces (:func:`pieces`), linted with the model's
    tokenizer and the eval-leak check, each task's pieces in one split. A piece the lint finds wrong is
    left out and named (where, why); the rest are saved. Returns the dataset (None when nothing was left)
    and what was left out."""
    examples = pieces(conversations)
    leak = LeakIndex.for_workspace(ws.root, None)
    report = _lint_in_memory(examples, model_path=model_path, leak_index=leak)
    bad: dict[int, str] = {}
    for issue in report.errors:
        bad.setdefault(issue.line, f"{issue.message} ({issue.check})")
    dropped = [
        {"where": f"piece {i} ({examples[i - 1].meta.group})", "why": why} for i, why in sorted(bad.items())
    ]
    for d in dropped:
        log.warning("practice piece left out", **d)
    keep = [e for i, e in enumerate(examples, start=1) if i not in bad]
    if not keep:
        return None, dropped
    if bad:
        report = _lint_in_memory(keep, model_path=model_path, leak_index=leak)
    meta = DatasetMeta(
        sources=sources,
        generator_version=GENERATOR_VERSION,
        kinds=["trajectory"],
        stats={"split_turns": True, "pieces": len(keep), "left_out": len(dropped)},
        lint=report,
    )
    return save_dataset(ws, name, keep, meta), dropped
