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


# every local BFCL file imports whole; parallel_multiple_12 and _26 carry an answer parameter their tool's
# schema lacks, which may be left out: imported with it dropped since it was added (198 -> 200 before)
BFCL_CASES = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
}
BFCL_ADJUSTED = {"parallel_multiple": ["parallel_multiple_12", "parallel_multiple_26"]}


def test_every_local_bfcl_file_imports_whole_with_its_answers_as_bfcl_wrote_them(bfcl_dir: Path) -> None:
    from tooltune.evals.scoring import RawCall, Reason, score_case

    present = [c for c in BFCL_CASES if (bfcl_dir / f"BFCL_v4_{c}.json").is_file()]
    assert {"simple_python", "irrelevance"} <= set(present)
    for category in present:
        file = bfcl_dir / f"BFCL_v4_{category}.json"
        imported = import_bfcl(file)
        cases = imported.suite.cases
        assert imported.skipped == [] and imported.skipped_ids == [], imported.skipped
        assert len(cases) == BFCL_CASES[category], category
        adjusted = [c.id for c in cases if any(f"({c.id}):" in note for note in imported.adjusted)]
        assert adjusted == BFCL_ADJUSTED.get(category, []), imported.adjusted
        if category == "irrelevance":
            continue
        raw = {}
        for line in (file.parent / "possible_answer" / file.name).read_text().splitlines():
            row = json.loads(line)
            raw[row["id"]] = row["ground_truth"]
        for case in cases:
            if case.id not in adjusted:  # the answer scored is the one BFCL wrote, untouched
                assert case.expected == raw[case.id], case.id
            match_calls(case, [first_allowed_answer(e) for e in case.expected])  # scores without error
    if "parallel_multiple" in present:
        case = next(
            c
            for c in import_bfcl(bfcl_dir / "BFCL_v4_parallel_multiple.json").suite.cases
            if c.id == "parallel_multiple_12"
        )
        calls = [
            RawCall(name="calculate_magnetic_field", arguments={"current": 4.0, "distance": 2.0}),
            RawCall(name="calculate_voltage_difference", arguments={"electric_field": 5, "distance": 3}),
        ]
        assert score_case(case, calls, "").native.passed  # BFCL: "permeability" may be left out ...
        calls[1].arguments = {"electric_field": 5, "distance": 3, "permeability": 0.1}
        assert score_case(case, calls, "").native.reason == Reason.extra_param  # ... and may not be given


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
    """One bad line never sinks the file: malformed rows, rows without an answer and answers that cannot
    be scored are skipped as file:line (id): why; answers BFCL's checker scores are imported and scored
    as it scores them: an empty allowed-values list (top level or a key of a dict answer) never passes,
    an answer parameter outside the schema that may be left out must be left out."""
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
                _bfcl_row("odd_5", plain),  # answer names a param the schema lacks, not optional
                _bfcl_row("odd_6", {"tag": {"type": "string"}}),  # top-level empty allowed list
                _bfcl_row("odd_7", props),  # the shape: a dict where the allowed list should be
                _bfcl_row("odd_8", props),  # a dict answer's key without a list of values
                _bfcl_row("odd_9", plain),  # a param the schema lacks, optional: dropped
                _bfcl_row("odd_0", plain),  # duplicate id
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
        "odd_7": [{"log_record": {"record": {"a_start": [], "out": [["x"]]}}}],
        "odd_8": [{"log_record": {"record": [{"a_start": 5, "out": [["x"]]}]}}],
        "odd_9": [{"log_record": {"name": ["ada"], "verbose": ["", True]}}],
    }
    a.write_text("".join(json.dumps({"id": k, "ground_truth": v}) + "\n" for k, v in answers.items()))
    imported = import_bfcl(q, answers=a, ws=Workspace(settings.workspace).ensure())
    assert [c.id for c in imported.suite.cases] == ["odd_0", "odd_2", "odd_6", "odd_9"]
    assert imported.skipped_ids == ["odd_3", "odd_4", "odd_5", "odd_7", "odd_8", "odd_0"]
    reasons = imported.skipped
    assert len(reasons) == 7
    assert reasons[0].startswith("BFCL_v4_odd.json:2: not valid JSON")
    assert reasons[1].startswith("BFCL_v4_odd.json:4 (odd_3): no answer for case 'odd_3'")
    assert reasons[2].startswith("BFCL_v4_odd.json:5 (odd_4): missing or malformed field")
    assert reasons[3].startswith("BFCL_v4_odd.json:6 (odd_5): answer parameter log_record.nope is not in")
    assert "may not be left out" in reasons[3]
    assert reasons[4].startswith("BFCL_v4_odd.json:8 (odd_7):") and "log_record.record" in reasons[4]
    assert "valid list" in reasons[4]
    assert reasons[5].startswith("BFCL_v4_odd.json:9 (odd_8):")
    assert "key 'a_start' of a dict answer must map to a list of allowed values, got 5" in reasons[5]
    assert reasons[6] == "BFCL_v4_odd.json:11 (odd_0): duplicate case id 'odd_0'"
    assert len(imported.adjusted) == 1
    assert imported.adjusted[0].startswith("BFCL_v4_odd.json:10 (odd_9): answer parameter log_record.verbose")

    by_id = {c.id: c for c in imported.suite.cases}
    assert by_id["odd_9"].expected == [{"log_record": {"name": ["ada"]}}]
    tries = {
        "odd_2": [
            ({"record": {"a_start": "x", "out": ["x"]}}, False),
            ({"record": {"out": ["x"]}}, False),
            ({}, False),
        ],
        "odd_6": [({"tag": "anything"}, False), ({}, False)],
        "odd_9": [({"name": "Ada"}, True), ({"name": "Ada", "verbose": True}, False)],
        "odd_0": [({"name": "Ada"}, True)],
    }
    for cid, answers_tried in tries.items():
        for args, passes in answers_tried:
            score = score_case(by_id[cid], [RawCall(name="log_record", arguments=args)], "")
            assert score.native.passed is passes, (cid, args, score.native)


def test_import_bfcl_names_the_answers_file_apart_from_the_questions(tmp_path: Path) -> None:
    """Both files are called BFCL_v4_<category>.json: a bad answer line says possible_answer/…:line."""
    q = tmp_path / "BFCL_v4_pair.json"
    q.write_text(_bfcl_row("pair_0", {"name": {"type": "string"}}) + "\n" + _bfcl_row("pair_1", {}) + "\n")
    answers = tmp_path / "possible_answer" / q.name
    answers.parent.mkdir()
    good = json.dumps({"id": "pair_0", "ground_truth": [{"log_record": {"name": ["ada"]}}]})
    answers.write_text(good + '\n{"id": "pair_1", "ground_truth": [\n{"ground_truth": []}\n')
    imported = import_bfcl(q)
    assert [c.id for c in imported.suite.cases] == ["pair_0"]
    assert imported.skipped_ids == ["pair_1"]
    assert imported.skipped[0].startswith("possible_answer/BFCL_v4_pair.json:2: not valid JSON")
    assert imported.skipped[1].startswith("possible_answer/BFCL_v4_pair.json:3: not an answer")
    assert imported.skipped[2].startswith("BFCL_v4_pair.json:2 (pair_1): no answer for case 'pair_1'")


def test_import_bfcl_of_nothing_usable_says_why(tmp_path: Path) -> None:
    q = tmp_path / "BFCL_v4_bad.json"
    q.write_text("{oops\n[1, 2]\n")
    a = tmp_path / "answers.json"
    a.write_text(json.dumps({"id": "bad_0", "ground_truth": []}) + "\n")
    with pytest.raises(
        SuiteError, match=r"no case could be imported \(2 skipped: BFCL_v4_bad.json:1: not valid"
    ):
        import_bfcl(q, answers=a)
