"""bench/task_transcripts.py: how a task run went round in circles, counted from its saved transcripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench_import import bench_module

ROOT = Path(__file__).resolve().parents[1]
tt = bench_module("task_transcripts")


_ids = iter(range(10**6))


def _call(tool: str, args: dict[str, Any] | str) -> dict[str, Any]:
    """A call; the next ``_ret`` answers it (its tool_call_id)."""
    return {
        "part_kind": "tool-call",
        "tool_name": tool,
        "args": args if isinstance(args, str) else json.dumps(args),
        "tool_call_id": f"c{next(_ids)}",
    }


def _ret(tool: str, content: str, outcome: str | None = None) -> dict[str, Any]:
    refused = content.startswith(f"{tool} refused: ") or "does not exist" in content
    return {
        "part_kind": "tool-return",
        "tool_name": tool,
        "content": content,
        "outcome": outcome or ("failed" if refused else "success"),
    }


REFUSAL = "run_tests refused: running commands is disabled in this session (enable it with --allow-exec)"


def _write_run(folder: Path, tasks: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]) -> Path:
    (folder / "transcripts").mkdir(parents=True)
    rows = []
    for task_id, (row, parts) in tasks.items():
        rows.append({"task_id": task_id, **row})
        (folder / "transcripts" / f"{task_id}.jsonl").write_text(
            json.dumps({"kind": "request", "parts": [{"part_kind": "user-prompt", "content": "do it"}]})
            + "\n"
            + "".join(json.dumps(_message(p, parts[:i])) + "\n" for i, p in enumerate(parts))
        )
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _message(part: dict[str, Any], before: list[dict[str, Any]]) -> dict[str, Any]:
    """A call goes in a response of its own, a result in the request after it, answering the last call."""
    if part["part_kind"] != "tool-return":
        return {"kind": "response", "parts": [part]}
    call = next(p for p in reversed(before) if p["part_kind"] == "tool-call")
    return {"kind": "request", "parts": [{**part, "tool_call_id": call["tool_call_id"]}]}


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
        "refused": {}, "guard_would_answer": 0,
        "calls_to_refused_tool": 0, "write_file_calls": 1, "writes_without_content": 0,
    }  # fmt: skip
    # the guard would have told the second run_tests its refusal again; the git_status calls got no
    # result (a retry prompt or none), so they never reached a tool
    assert counts["per_task"]["loops"]["guard_would_answer"] == counts["guard_would_answer"] == 1
    assert counts["tasks_the_guard_would_answer_in"] == 1


def test_the_guard_replay_follows_changes_refusals_and_bad_calls(tmp_path: Path) -> None:
    missing = "file 'b.py' does not exist; use list_dir to see what is there"
    run = _write_run(tmp_path / "run", {
        "t": ({"success": False, "calls": 11, "error": None}, [
            _call("read_file", {"path": "a.py"}), _ret("read_file", "x = 1"),
            _call("read_file", {"path": "a.py"}), _ret("read_file", "x = 1"),  # answered: nothing changed
            _call("read_file", {"path": "b.py"}), _ret("read_file", missing),
            _call("read_file", {"path": "b.py"}), _ret("read_file", missing),  # answered: the same refusal
            _call("run_tests", {}), _ret("run_tests", REFUSAL),
            _call("write_file", {"path": "b.py", "content": "y"}), _ret("write_file", "updated b.py"),
            _call("read_file", {"path": "b.py"}), _ret("read_file", "y"),  # runs: the write changed things
            _call("read_file", {"path": "a.py"}), _ret("read_file", "x = 1"),  # runs too
            _call("run_tests", {}), _ret("run_tests", REFUSAL),  # answered: a permission refusal lasts
            # bad arguments are sent back before any tool (or the guard) sees them: never answered
            _call("git_status", {"path": "x"}), _ret("git_status", "unknown argument 'path'", "retried"),
            _call("git_status", {"path": "x"}), _ret("git_status", "unknown argument 'path'", "retried"),
        ]),
    })  # fmt: skip
    assert tt.run_counts(run)["guard_would_answer"] == 3


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
    # what the repeat guard, added after T2, would have answered in it (first order; docs/TASKS.md, T3g)
    assert (counts["guard_would_answer"], counts["tasks_the_guard_would_answer_in"]) == (108, 24)
    at_limit = [t for t in counts["per_task"].values() if t["ended_at_step_limit"]]
    assert (len(at_limit), sum(t["guard_would_answer"] > 0 for t in at_limit)) == (28, 22)
