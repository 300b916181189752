"""bench/task_transcripts.py: how a task run went round in circles, counted from its saved transcripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench_import import bench_module

ROOT = Path(__file__).resolve().parents[1]
tt = bench_module("task_transcripts")


def _call(tool: str, args: dict[str, Any] | str) -> dict[str, Any]:
    return {
        "part_kind": "tool-call",
        "tool_name": tool,
        "args": args if isinstance(args, str) else json.dumps(args),
    }


def _ret(tool: str, content: str) -> dict[str, Any]:
    return {"part_kind": "tool-return", "tool_name": tool, "content": content}


REFUSAL = "run_tests refused: running commands is disabled in this session (enable it with --allow-exec)"


def _write_run(folder: Path, tasks: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]) -> Path:
    (folder / "transcripts").mkdir(parents=True)
    rows = []
    for task_id, (row, parts) in tasks.items():
        rows.append({"task_id": task_id, **row})
        (folder / "transcripts" / f"{task_id}.jsonl").write_text(
            json.dumps({"kind": "request", "parts": [{"part_kind": "user-prompt", "content": "do it"}]})
            + "\n"
            + "".join(json.dumps({"kind": "response", "parts": [p]}) + "\n" for p in parts)
        )
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_repeats_refusals_and_empty_writes_are_counted_per_task(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", {
        "loops": ({"success": False, "calls": 7, "error": "exceed the request_limit of 4"}, [
            _call("run_tests", {}), _ret("run_tests", REFUSAL),
            _call("run_tests", {}), _ret("run_tests", REFUSAL),  # a repeat, and asked again after a refusal
            _call("read_file", {"path": "a.py"}), _ret("read_file", "x = 1"),
            _call("read_file", {"path": "b.py"}), _ret("read_file", "y = 2"),  # other arguments: no repeat
            _call("write_file", {"path": "a.py"}),  # no content
            _call("git_status", ""), _call("git_status", {}),  # no arguments, sent two ways: a repeat
        ]),
        "fine": ({"success": True, "calls": 2, "error": None}, [
            _call("run_tests", {}), _ret("run_tests", "1 passed"),  # another task: no repeat of the first's
            _call("write_file", '{"path": "a.py", "content": "x = 2"}'), _ret("write_file", "updated a.py"),
        ]),
    })  # fmt: skip
    counts = tt.run_counts(run)
    assert (counts["tasks"], counts["succeeded"], counts["ended_at_step_limit"]) == (2, 1, 1)
    assert (counts["calls"], counts["exact_repeats"], counts["calls_to_refused_tool"]) == (9, 2, 1)
    assert counts["refused"] == {"run_tests": 2} and counts["tasks_with_a_refusal"] == 1
    assert counts["repeats_by_tool"] == {"git_status": 1, "run_tests": 1}
    assert (counts["write_file_calls"], counts["writes_without_content"]) == (2, 1)
    assert counts["per_task"]["fine"] == {
        "success": True, "ended_at_step_limit": False, "calls": 2, "exact_repeats": 0, "repeats_by_tool": {},
        "refused": {},
        "calls_to_refused_tool": 0, "write_file_calls": 1, "writes_without_content": 0,
    }  # fmt: skip


def test_a_transcript_that_is_not_the_runs_is_refused(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", {"t": ({"success": False, "calls": 3}, [_call("list_dir", {})])})
    with pytest.raises(SystemExit, match="1 tool calls, but results.jsonl counts 3"):
        tt.run_counts(run)


def test_t2s_committed_transcripts_give_the_counts_docs_tasks_quotes() -> None:
    """docs/TASKS.md reads T2's failure from these counts (and T3's hypothesis is written against them)."""
    [run] = [
        d
        for d in (ROOT / "bench" / "results" / "agent_tasks_gpu_t2").iterdir()
        if (d / "results.jsonl").is_file()
    ]
    counts = tt.run_counts(run)
    assert (counts["tasks"], counts["succeeded"], counts["ended_at_step_limit"]) == (43, 1, 28)
    assert (counts["calls"], counts["exact_repeats"], counts["calls_to_refused_tool"]) == (255, 128, 38)
    assert counts["refused"] == {"run_command": 4, "run_tests": 53, "write_file": 2}
    assert (counts["repeats_by_tool"]["run_tests"], counts["tasks_with_a_refusal"]) == (76, 19)
    assert (counts["write_file_calls"], counts["writes_without_content"]) == (23, 21)
