"""Suite format, the built-in coding-tools suite, and BFCL import."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tooltune.coding_tools import CODING_TOOLS_BY_NAME
from tooltune.config import Settings
from tooltune.evals.bfcl_import import import_bfcl
from tooltune.evals.parse_calls import ParsedCall
from tooltune.evals.scoring import match_calls
from tooltune.evals.suite import SuiteError, load_suite, parse_suite, suite_path
from tooltune.workspace import Workspace


def first_allowed_answer(expected: dict) -> ParsedCall:
    name, params = next(iter(expected.items()))
    return ParsedCall(name=name, arguments={k: v[0] for k, v in params.items() if v[0] != ""})


def test_builtin_suite_shape_and_written_to_workspace(settings: Settings):
    ws = Workspace(settings.workspace).ensure()
    suite = load_suite("coding-tools", ws)
    cats = Counter(c.category for c in suite.cases)
    assert len(suite.cases) >= 120
    assert set(cats) == {
        "simple",
        "choose_among_many",
        "parallel",
        "no_call",
        "multi_turn",
        "argument_format",
    }
    assert min(cats.values()) >= 15
    assert (
        suite_path(ws, "coding-tools").read_text() == suite.to_jsonl()
        or suite_path(ws, "coding-tools").exists()
    )
    for case in suite.cases:
        for tool in case.tools:
            fn = tool["function"]
            assert CODING_TOOLS_BY_NAME[fn["name"]].parameters == fn["parameters"], case.id
        ids = {tc["id"] for m in case.messages for tc in m.get("tool_calls", [])}
        assert {m["tool_call_id"] for m in case.messages if m["role"] == "tool"} <= ids, case.id
        if case.category == "multi_turn":
            assert any(m["role"] == "tool" for m in case.messages), case.id


def test_builtin_suite_answers_are_self_consistent():
    """The first allowed value of every expected param, as a call, must pass the scorer (catches typos
    in hand-written cases: unknown params, wrong types)."""
    suite = load_suite("coding-tools")
    for case in suite.cases:
        if case.expects_no_call:
            continue
        calls = [first_allowed_answer(e) for e in case.expected]
        score = match_calls(case, list(reversed(calls)))
        assert score.passed, (case.id, score)


def test_builtin_suite_tool_sets_vary():
    suite = load_suite("coding-tools")
    tool_sets = {tuple(t["function"]["name"] for t in c.tools) for c in suite.cases}
    assert len(tool_sets) > 60


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"id": "a", "category": "x", "messages": [], "tools": [], "expected": "no_call"}', "messages"),
        (
            '{"id": "a", "category": "x", "messages": [{"role": "user", "content": "q"}], "tools": [], '
            '"expected": [{"nope": {}}]}',
            "not among the case's tools",
        ),
        (
            '{"id": "a", "category": "x", "messages": [{"role": "bot", "content": "q"}], '
            '"expected": "no_call"}',
            "role",
        ),
        ("[1, 2]", "JSON object"),
    ],
)
def test_malformed_suite_names_file_and_line(tmp_path: Path, line: str, message: str):
    good = json.dumps(
        {
            "id": "ok",
            "category": "c",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [],
            "expected": "no_call",
        }
    )
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert f"{path}:3:" in str(err.value) and message in str(err.value)


def test_duplicate_ids_rejected():
    line = json.dumps(
        {"id": "x", "category": "c", "messages": [{"role": "user", "content": "hi"}], "expected": "no_call"}
    )
    with pytest.raises(SuiteError, match="duplicate case id 'x'"):
        parse_suite(line + "\n" + line, name="d", source="d.jsonl")


def test_import_bfcl_simple_and_irrelevance(settings: Settings, bfcl_dir: Path):
    ws = Workspace(settings.workspace).ensure()
    imported = import_bfcl(bfcl_dir / "BFCL_v4_simple_python.json", ws=ws, name="bfcl-simple")
    suite = imported.suite
    assert imported.skipped == []
    assert len(suite.cases) == 400 and suite.cases[0].category == "simple_python"
    c0 = suite.cases[0]
    assert c0.tools[0]["function"]["parameters"]["type"] == "object"
    assert c0.expected[0]["calculate_triangle_area"]["unit"] == ["units", ""]
    assert suite_path(ws, "bfcl-simple").exists()
    assert load_suite("bfcl-simple", ws).hash == suite.hash
    irr = import_bfcl(bfcl_dir / "BFCL_v4_irrelevance.json", ws=ws).suite
    assert irr.name == "bfcl-irrelevance" and all(c.expects_no_call for c in irr.cases)
    assert {c.category for c in irr.cases} == {"irrelevance"}
    # every expected answer in the imported data is consistent with its schema
    for case in suite.cases:
        match_calls(case, [first_allowed_answer(e) for e in case.expected])


def test_import_bfcl_answers_mismatch(tmp_path: Path):
    q = tmp_path / "BFCL_v4_x.json"
    q.write_text(
        json.dumps(
            {
                "id": "x_0",
                "question": [[{"role": "user", "content": "q"}]],
                "function": [{"name": "f", "parameters": {"type": "dict", "properties": {}}}],
            }
        )
        + "\n"
    )
    a = tmp_path / "answers.json"
    a.write_text(json.dumps({"id": "x_1", "ground_truth": [{"f": {}}]}) + "\n")
    with pytest.raises(SuiteError, match="no answer for case 'x_0'"):
        import_bfcl(q, answers=a)


def _bfcl_row(cid: str, params: dict, question: str = "q") -> str:
    fn = {
        "name": "log_record",
        "description": "Store a record.",
        "parameters": {"type": "dict", "properties": params},
    }
    return json.dumps({"id": cid, "question": [[{"role": "user", "content": question}]], "function": [fn]})


def test_import_bfcl_keeps_every_good_case_and_lists_the_rest(tmp_path: Path, settings: Settings) -> None:
    """One bad line never sinks the file: malformed rows, rows without an answer and answers that do not
    fit their schema are skipped with file:line and why; an empty allowed-values list, which BFCL's
    checker keeps, is imported and can never pass (as there)."""
    from tooltune.evals.scoring import RawCall, score_case

    props = {
        "record": {"type": "dict", "properties": {"a_start": {"type": "string"}, "out": {"type": "array"}}}
    }
    plain = {"name": {"type": "string"}}
    q = tmp_path / "BFCL_v4_odd.json"
    q.write_text(
        "\n".join(
            [
                _bfcl_row("odd_0", plain),
                "{not json",
                _bfcl_row("odd_2", props),  # nested dict answer with an empty list
                _bfcl_row("odd_3", plain),  # no answer for it
                json.dumps({"id": "odd_4", "question": "x"}),  # no functions
                _bfcl_row("odd_5", plain),  # answer names a param the schema lacks
                _bfcl_row("odd_6", {"tag": {"type": "string"}}),  # top-level empty allowed list
            ]
        )
        + "\n"
    )
    a = tmp_path / "answers.json"
    answers = {
        "odd_0": [{"log_record": {"name": ["ada"]}}],
        "odd_2": [{"log_record": {"record": [{"a_start": [], "out": [["x"]]}]}}],
        "odd_5": [{"log_record": {"nope": ["x"]}}],
        "odd_6": [{"log_record": {"tag": []}}],
    }
    a.write_text("".join(json.dumps({"id": k, "ground_truth": v}) + "\n" for k, v in answers.items()))
    imported = import_bfcl(q, answers=a, ws=Workspace(settings.workspace).ensure())
    assert [c.id for c in imported.suite.cases] == ["odd_0", "odd_2", "odd_6"]
    reasons = imported.skipped
    assert len(reasons) == 4
    assert reasons[0].startswith("BFCL_v4_odd.json:2: not valid JSON")
    assert reasons[1].startswith("BFCL_v4_odd.json:4: no answer for case 'odd_3'")
    assert reasons[2].startswith("BFCL_v4_odd.json:5: missing or malformed field")
    assert reasons[3].startswith("BFCL_v4_odd.json:6 (odd_5):") and "nope" in reasons[3]

    by_id = {c.id: c for c in imported.suite.cases}
    tries = {
        "odd_2": [{"record": {"a_start": "x", "out": ["x"]}}, {"record": {"out": ["x"]}}],
        "odd_6": [{"tag": "anything"}, {}],
    }
    for cid, answers_tried in tries.items():
        for args in answers_tried:
            score = score_case(by_id[cid], [RawCall(name="log_record", arguments=args)], "")
            assert not score.native.passed, (cid, args)
    good = score_case(by_id["odd_0"], [RawCall(name="log_record", arguments={"name": "Ada"})], "")
    assert good.native.passed


def test_import_bfcl_of_nothing_usable_says_why(tmp_path: Path) -> None:
    q = tmp_path / "BFCL_v4_bad.json"
    q.write_text("{oops\n[1, 2]\n")
    a = tmp_path / "answers.json"
    a.write_text(json.dumps({"id": "bad_0", "ground_truth": []}) + "\n")
    with pytest.raises(
        SuiteError, match=r"no case could be imported \(2 skipped: BFCL_v4_bad.json:1: not valid"
    ):
        import_bfcl(q, answers=a)
