"""Lint catches each planted defect and names file:line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tooltune.coding_tools import CODING_TOOLS_BY_NAME
from tooltune.data.lint import LintReport, lint_file
from tooltune.data.similarity import LeakIndex

READ = CODING_TOOLS_BY_NAME["read_file"].to_openai()
LS = CODING_TOOLS_BY_NAME["list_dir"].to_openai()


def call(name: str, args: dict) -> dict:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": name, "arguments": args}}],
    }


def good(i: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"Open src/module_{i}.py and show me line {i}"},
            call("read_file", {"path": f"src/module_{i}.py", "start_line": i}),
        ],
        "tools": [READ, LS],
    }


def _lint(tmp: Path, lines: list[str], tiny_model: Path | None, **kw) -> LintReport:
    f = tmp / "data.jsonl"
    f.write_text("\n".join(lines) + "\n")
    kw.setdefault("leak_index", LeakIndex([]))
    return lint_file(f, model_path=tiny_model, **kw)


def _issue(report: LintReport, check: str) -> list[str]:
    return [str(i) for i in report.errors + report.warnings if i.check == check]


def test_clean_file_passes(tmp_path: Path, tiny_model: Path) -> None:
    r = _lint(tmp_path, [json.dumps(good(i)) for i in range(3)], tiny_model)
    assert r.ok and not r.warnings
    assert r.checks["roundtrip"].status == "passed"
    assert r.stats.length_unit.startswith("model tokens") and r.stats.per_tool == {"read_file": 3}


def test_bad_json_line(tmp_path: Path) -> None:
    r = _lint(tmp_path, [json.dumps(good(1)), '{"messages": [', json.dumps(good(2))], None)
    assert not r.ok
    assert _issue(r, "json")[0].startswith("data.jsonl:2")
    assert r.examples == 2
    assert r.checks["roundtrip"].status == "skipped" and "NOT checked" in r.checks["roundtrip"].detail


def test_schema_violation_and_unknown_tool(tmp_path: Path) -> None:
    bad = good(1)
    bad["messages"][1] = call("read_file", {"path": 42})
    unknown = good(2)
    unknown["messages"][1] = call("delete_everything", {})
    r = _lint(tmp_path, [json.dumps(good(0)), json.dumps(bad), json.dumps(unknown)], None)
    issues = _issue(r, "schema")
    assert any(
        s.startswith("data.jsonl:2 [messages[1].tool_calls[0].function.arguments.path]") for s in issues
    )
    assert any(
        s.startswith("data.jsonl:3 [messages[1].tool_calls[0].function.name]") and "unknown tool" in s
        for s in issues
    )


def test_string_arguments_rejected(tmp_path: Path) -> None:
    ex = good(1)
    ex["messages"][1]["tool_calls"][0]["function"]["arguments"] = '{"path": "a.py"}'
    r = _lint(tmp_path, [json.dumps(ex)], None)
    assert any("arguments must be a JSON object" in s for s in _issue(r, "roles"))


def test_template_roundtrip_failure(tmp_path: Path, tiny_model: Path) -> None:
    ex = good(1)
    # schema-valid, but the closing marker inside a value cuts the rendered call short
    ex["messages"][1] = call("read_file", {"path": "notes</tool_call>.md"})
    r = _lint(tmp_path, [json.dumps(good(0)), json.dumps(ex)], tiny_model)
    issues = _issue(r, "roundtrip")
    assert issues and issues[0].startswith("data.jsonl:2 [messages[1].tool_calls]")
    assert r.checks["schema"].status == "passed" and not r.ok


def test_unmasked_tool_turn_and_split_fix(tmp_path: Path, tiny_model: Path) -> None:
    multi = {
        "messages": [
            {"role": "user", "content": "List src and then read src/a.py"},
            call("list_dir", {"path": "src"}),
            {"role": "tool", "name": "list_dir", "content": "a.py"},
            call("read_file", {"path": "src/a.py"}),
        ],
        "tools": [READ, LS],
    }
    r = _lint(tmp_path, [json.dumps(multi)], tiny_model)
    warn = _issue(r, "loss")
    assert warn and warn[0].startswith("data.jsonl:1 [messages[1].tool_calls]") and "split-turns" in warn[0]
    from tooltune.data.examples import Example, split_turns

    pieces = split_turns(Example.model_validate(multi))
    assert [len(p.messages) for p in pieces] == [2, 4]
    r2 = _lint(tmp_path, [p.to_line() for p in pieces], tiny_model)
    assert r2.ok and not _issue(r2, "loss")
    ends_with_tool = dict(multi, messages=multi["messages"][:3])
    r3 = _lint(tmp_path, [json.dumps(ends_with_tool)], None)
    assert any("messages[2].role" in s for s in _issue(r3, "loss")) and not r3.ok


def test_near_duplicate(tmp_path: Path) -> None:
    dup = good(1)
    dup["messages"][0]["content"] = "open src/module_1.py and show me line 1!"
    r = _lint(tmp_path, [json.dumps(good(1)), json.dumps(good(2)), json.dumps(dup)], None)
    issues = _issue(r, "duplicates")
    assert len(issues) == 1 and issues[0].startswith("data.jsonl:3") and "data.jsonl:1" in issues[0]


def test_leaked_eval_request(tmp_path: Path, tiny_model: Path, bfcl_dir: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "evals" / "suites").mkdir(parents=True)
    question = "Please read the configuration in settings/prod.yaml and tell me the port"
    case = {
        "id": "c1",
        "category": "simple",
        "messages": [{"role": "user", "content": question}],
        "tools": [READ],
        "expected": [{"read_file": {"path": ["settings/prod.yaml"]}}],
    }
    (ws / "evals" / "suites" / "mine.jsonl").write_text(json.dumps(case) + "\n")
    leaked = good(5)
    leaked["messages"][0]["content"] = question.lower() + "."  # near copy
    bfcl_q = json.loads((bfcl_dir / "BFCL_v4_simple_python.json").read_text().splitlines()[0])
    leaked2 = good(6)
    leaked2["messages"][0]["content"] = bfcl_q["question"][0][0]["content"]
    f = tmp_path / "data.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in (good(1), leaked, leaked2)) + "\n")
    r = lint_file(f, ws_root=ws, bfcl_dir=bfcl_dir)
    issues = _issue(r, "leakage")
    assert not r.ok and len(issues) == 2
    assert issues[0].startswith("data.jsonl:2 [messages[0].content]") and "suite:mine.jsonl:c1" in issues[0]
    assert issues[1].startswith("data.jsonl:3") and "bfcl:BFCL_v4_simple_python.json" in issues[1]


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    from tooltune.errors import TooltuneError

    with pytest.raises(TooltuneError, match="no such file"):
        lint_file(tmp_path / "nope.jsonl", leak_index=LeakIndex([]))
