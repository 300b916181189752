"""Count, from a task eval's saved transcripts, the ways an agent run goes round in circles (issue 34).

    python bench/task_transcripts.py bench/results/agent_tasks_gpu_t2/<run_id> [--out FILE.json]

A task run's folder (``tooltune eval --tasks`` saves ``results.jsonl`` and ``transcripts/<task>.jsonl``)
says whether each task succeeded; this reads *how* it went, per task and in total:

- ``ended_at_step_limit``: tasks stopped by the step limit (their error names the request limit);
- ``exact_repeats``: tool calls that repeat an earlier call of the same task (same tool, same arguments),
  also by tool;
- ``refused``: calls the session refused (``<tool> refused: ...``, the sandbox's permission check), by tool,
  and the tasks that met a refusal;
- ``calls_to_refused_tool``: refused calls whose tool the task had already been refused once: the agent
  was told and asked again;
- ``writes_without_content``: ``write_file`` calls whose arguments hold no ``content``;
- ``guard_would_answer``: calls the agent's repeat guard (``tooltune/agent/repeats.py``, added after T2)
  would have answered instead of running, replaying the transcript's calls and results through it: the
  first-order count (once the guard answers, the model reads something else, so the calls after it would
  differ), and the tasks where it would have answered at least one call.

These are the numbers docs/TASKS.md compares between trainings (T2 against T3); the script reads the
committed transcripts, so the comparison can be made again from the repository alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

STEP_LIMIT_WORDS = "request_limit"
"""What a task's error says when the agent's step limit stopped it (pydantic-ai's usage-limit message)."""


def _args(part: dict[str, Any]) -> dict[str, Any] | str:
    """A tool call's arguments as the model sent them: a JSON object, or the raw text when it is not one."""
    args = part.get("args")
    if isinstance(args, str):
        if not args.strip():  # no arguments, sent as "" rather than {} or null: the same call
            return {}
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError:
            return args
        return parsed if isinstance(parsed, dict) else args
    return args if isinstance(args, dict) else {}


def _refused(part: dict[str, Any]) -> bool:
    content = part.get("content")
    return isinstance(content, str) and content.startswith(f"{part.get('tool_name')} refused: ")


def guard_replay(messages: list[dict[str, Any]]) -> int:
    """How many of the transcript's calls the repeat guard would have answered: each response's calls
    that reached a tool (a tool return, not a retry prompt for bad arguments) are checked in order, then
    their results recorded as the agent records them (a permission refusal lasts; a write or command
    that ran is a change)."""
    from tooltune.agent.repeats import RepeatGuard

    guard, run = RepeatGuard(), "replay"
    calls: list[dict[str, Any]] = []
    for message in messages:
        parts = message.get("parts", [])
        if message.get("kind") == "response":
            calls = [p for p in parts if p.get("part_kind") == "tool-call"]
            continue
        returns = {  # a call with bad arguments is sent back as "retried" before any tool or guard sees it
            p.get("tool_call_id"): p
            for p in parts
            if p.get("part_kind") == "tool-return" and p.get("outcome") != "retried"
        }
        ran = [(c, returns[c.get("tool_call_id")]) for c in calls if c.get("tool_call_id") in returns]
        checked = [
            (c, r, guard.check(run, str(c["tool_name"]), _args(c)))
            for c, r in ran
            if isinstance(_args(c), dict)
        ]
        for call, ret, answered in checked:
            if answered is not None:
                continue
            name, args = str(call["tool_name"]), _args(call)
            if ret.get("outcome") == "success":
                guard.ran(run, name)
                continue
            # refused by the session's permissions (lasting), a user's "no", or the tool itself (a missing
            # file, a path outside the project: refused before it changed anything), as the agent records
            # them (agent/agent.py)
            content = str(ret.get("content"))
            lasting = _refused(ret) and "the user declined" not in content
            guard.refused(run, name, args, content, lasting=lasting)  # type: ignore[arg-type]
        calls = []
    return guard.blocked


def task_counts(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One task's counts from its transcript (the agent's messages, in order)."""
    seen: set[str] = set()
    refused_tools: set[str] = set()
    calls = to_refused = writes = writes_without = 0
    refused: Counter[str] = Counter()
    repeats: Counter[str] = Counter()
    for message in messages:
        for part in message.get("parts", []):
            kind = part.get("part_kind")
            if kind == "tool-call":
                calls += 1
                args = _args(part)
                key = json.dumps([part.get("tool_name"), args], sort_keys=True)
                if key in seen:
                    repeats[str(part.get("tool_name"))] += 1
                seen.add(key)
                if part.get("tool_name") == "write_file":
                    writes += 1
                    writes_without += not (isinstance(args, dict) and "content" in args)
            elif kind == "tool-return" and _refused(part):
                tool = str(part["tool_name"])
                refused[tool] += 1
                to_refused += tool in refused_tools
                refused_tools.add(tool)
    return {
        "calls": calls,
        "exact_repeats": sum(repeats.values()),
        "repeats_by_tool": dict(sorted(repeats.items())),
        "refused": dict(refused),
        "calls_to_refused_tool": to_refused,
        "write_file_calls": writes,
        "writes_without_content": writes_without,
        "guard_would_answer": guard_replay(messages),
    }


def run_counts(run: Path) -> dict[str, Any]:
    """Every task's counts and the run's totals, from a task run's folder."""
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{run / 'results.jsonl'}: no task rows")
    tasks: dict[str, Any] = {}
    totals: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    repeats: Counter[str] = Counter()
    for row in rows:
        path = run / "transcripts" / f"{row['task_id']}.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path}: missing (task {row['task_id']!r} has no transcript)")
        messages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        counts = task_counts(messages)
        if counts["calls"] != row["calls"]:
            raise SystemExit(
                f"{path}: {counts['calls']} tool calls, but results.jsonl counts {row['calls']}: "
                "not this run's transcript"
            )
        at_limit = STEP_LIMIT_WORDS in str(row.get("error") or "")
        tasks[row["task_id"]] = {"success": bool(row["success"]), "ended_at_step_limit": at_limit, **counts}
        for key in (
            "calls",
            "exact_repeats",
            "calls_to_refused_tool",
            "write_file_calls",
            "writes_without_content",
            "guard_would_answer",
        ):
            totals[key] += counts[key]
        totals["tasks_the_guard_would_answer_in"] += bool(counts["guard_would_answer"])
        totals["succeeded"] += bool(row["success"])
        totals["ended_at_step_limit"] += at_limit
        totals["tasks_with_a_refusal"] += bool(counts["refused"])
        refused.update(counts["refused"])
        repeats.update(counts["repeats_by_tool"])
    return {
        "run": run.name,
        "tasks": len(rows),
        "succeeded": totals["succeeded"],
        "ended_at_step_limit": totals["ended_at_step_limit"],
        "calls": totals["calls"],
        "exact_repeats": totals["exact_repeats"],
        "repeats_by_tool": dict(sorted(repeats.items())),
        "refused": dict(sorted(refused.items())),
        "tasks_with_a_refusal": totals["tasks_with_a_refusal"],
        "calls_to_refused_tool": totals["calls_to_refused_tool"],
        "write_file_calls": totals["write_file_calls"],
        "writes_without_content": totals["writes_without_content"],
        "guard_would_answer": totals["guard_would_answer"],
        "tasks_the_guard_would_answer_in": totals["tasks_the_guard_would_answer_in"],
        "per_task": tasks,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a task run's folder (results.jsonl, transcripts/)")
    p.add_argument("--out", type=Path, help="write the counts here as JSON (default: stdout)")
    args = p.parse_args(argv)
    counts = run_counts(args.run)
    text = json.dumps(counts, indent=1) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    print(json.dumps({k: v for k, v in counts.items() if k != "per_task"}, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
