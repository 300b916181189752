"""Scorer rules (mirroring BFCL's AST checker), every reason code, and the lenient parser's formats."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tooltune.evals.parse_calls import parse_calls
from tooltune.evals.scoring import RawCall, Reason, score_case, standardize_string
from tooltune.evals.suite import EvalCase

CALC = {
    "name": "calc_area",
    "description": "area",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "integer"},
            "height": {"type": "float"},
            "unit": {"type": "string"},
            "dims": {"type": "array", "items": {"type": "integer"}},
            "opts": {"type": "dict", "properties": {"a": {"type": "string"}}},
            "pts": {"type": "array", "items": {"type": "dict"}},
            "tags": {"type": "tuple", "items": {"type": "string"}},
            "anything": {"type": "any"},
        },
        "required": ["base", "height"],
    },
}
OTHER = {"name": "math.factorial", "parameters": {"type": "dict", "properties": {"n": {"type": "integer"}}}}


def case(expected: Any, category: str = "simple") -> EvalCase:
    return EvalCase(
        id="c1",
        category=category,
        messages=[{"role": "user", "content": "q"}],
        tools=[CALC, OTHER],
        expected=expected,
    )


BASIC = [{"calc_area": {"base": [10], "height": [5.0], "unit": ["units", ""]}}]


def native(name: str, args: Any) -> RawCall:
    return RawCall(name=name, arguments=args if isinstance(args, str) else json.dumps(args))


def check(expected: Any, args: dict[str, Any], name: str = "calc_area"):
    return score_case(case(expected), [native(name, args)], "").native


def test_exact_match_and_optional_param_with_empty_string():
    assert check(BASIC, {"base": 10, "height": 5.0}).passed
    assert check(BASIC, {"base": 10, "height": 5.0, "unit": "Units"}).passed


def test_int_accepted_where_float_expected_but_not_float_for_int():
    assert check(BASIC, {"base": 10, "height": 5}).passed
    s = check(BASIC, {"base": 10.0, "height": 5})
    assert not s.passed and s.reason == Reason.wrong_type


def test_bool_is_not_an_integer():
    s = check(BASIC, {"base": True, "height": 5})
    assert s.reason == Reason.wrong_type


def test_string_normalisation_like_bfcl():
    assert standardize_string("April 1, 2024") == standardize_string("april 1 2024")
    exp = [{"calc_area": {"base": [1], "height": [1.0], "unit": ["square meters"]}}]
    assert check(exp, {"base": 1, "height": 1.0, "unit": "Square-Meters."}).passed
    s = check(exp, {"base": 1, "height": 1.0, "unit": "feet"})
    assert s.reason == Reason.wrong_value


def test_missing_required_extra_and_non_optional_missing():
    assert check(BASIC, {"base": 10}).reason == Reason.missing_param
    assert check(BASIC, {"base": 10, "height": 5, "color": "red"}).reason == Reason.extra_param
    # in the schema but not in the expected answer: BFCL calls it unexpected too
    assert check(BASIC, {"base": 10, "height": 5, "dims": [1]}).reason == Reason.extra_param
    exp = [{"calc_area": {"base": [10], "height": [5.0], "unit": ["cm"]}}]
    assert check(exp, {"base": 10, "height": 5}).reason == Reason.missing_param


def test_wrong_tool_and_dotted_names_verbatim():
    s = check(BASIC, {"n": 5}, name="math.factorial")
    assert s.reason == Reason.wrong_tool
    exp = [{"math.factorial": {"n": [5]}}]
    assert check(exp, {"n": 5}, name="math.factorial").passed
    assert check(exp, {"n": 5}, name="math_factorial").reason == Reason.wrong_tool


def test_lists_elementwise_with_normalisation_and_nested_types():
    exp = [
        {"calc_area": {"base": [1], "height": [1.0], "dims": [[1, 2], [2, 1]], "tags": [["Big Room", "b"]]}}
    ]
    assert check(exp, {"base": 1, "height": 1, "dims": [2, 1], "tags": ["big room", "B"]}).passed
    assert check(exp, {"base": 1, "height": 1, "dims": [1, 3], "tags": ["big room", "b"]}).reason == (
        Reason.wrong_value
    )
    # list items of the wrong type fail the nested type check
    s = check(exp, {"base": 1, "height": 1, "dims": ["1", "2"], "tags": ["big room", "b"]})
    assert s.reason == Reason.wrong_type and "items must be integer" in s.detail


def test_dicts_and_lists_of_dicts():
    exp = [
        {
            "calc_area": {
                "base": [1],
                "height": [1.0],
                "opts": [{"a": ["X y"]}],
                "pts": [[{"x": [1]}, {"x": [2]}]],
            }
        }
    ]
    ok = {"base": 1, "height": 1, "opts": {"a": "x-y"}, "pts": [{"x": 1}, {"x": 2}]}
    assert check(exp, ok).passed
    assert check(exp, {**ok, "opts": {"a": "x-y", "b": 1}}).reason == Reason.wrong_value
    assert check(exp, {**ok, "pts": [{"x": 2}, {"x": 1}]}).reason == Reason.wrong_value
    assert check(exp, {**ok, "pts": [{"x": 1}]}).reason == Reason.wrong_value


def test_variable_style_answer_type_is_accepted():
    # BFCL: when the answer is a string for an integer param, a string value is a "variable"
    exp = [{"calc_area": {"base": ["n"], "height": [1.0]}}]
    assert check(exp, {"base": "n", "height": 1}).passed


def test_untyped_any_param_compares_values():
    exp = [{"calc_area": {"base": [1], "height": [1.0], "anything": ["Hello World", 3]}}]
    assert check(exp, {"base": 1, "height": 1, "anything": "hello world"}).passed
    assert check(exp, {"base": 1, "height": 1, "anything": 3}).passed
    assert check(exp, {"base": 1, "height": 1, "anything": 4}).reason == Reason.wrong_value


def test_parallel_any_order_and_wrong_count():
    exp = [{"math.factorial": {"n": [5]}}, {"math.factorial": {"n": [7]}}]
    calls = [native("math.factorial", {"n": 7}), native("math.factorial", {"n": 5})]
    assert score_case(case(exp, "parallel"), calls, "").native.passed
    one = score_case(case(exp, "parallel"), calls[:1], "").native
    assert one.reason == Reason.wrong_count
    bad = [native("math.factorial", {"n": 7}), native("math.factorial", {"n": 8})]
    assert score_case(case(exp, "parallel"), bad, "").native.reason == Reason.wrong_value


def test_parallel_full_matching_where_greedy_would_fail():
    exp = [{"math.factorial": {"n": [5, 7]}}, {"math.factorial": {"n": [5]}}]
    calls = [native("math.factorial", {"n": 5}), native("math.factorial", {"n": 7})]
    assert score_case(case(exp, "parallel"), calls, "").native.passed


def test_no_call_cases_native_and_any_attempt():
    c = case("no_call", "irrelevance")
    s = score_case(c, [], "I can't help with that.")
    assert s.native.passed and s.lenient.passed and not s.attempted
    s = score_case(c, [native("calc_area", {"base": 1})], "")
    assert s.native.reason == Reason.called_when_irrelevant and not s.lenient.passed
    # a text-formatted call passes natively but fails "any call attempt"
    s = score_case(c, [], '```json\n{"name": "calc_area", "arguments": {"base": 1}}\n```')
    assert s.native.passed and s.lenient.reason == Reason.called_when_irrelevant and s.attempted
    s = score_case(c, [], '<tool_call>{"name": "calc_area", "arguments": {base: 1}</tool_call>')
    assert s.native.passed and not s.lenient.passed and s.attempted


def test_native_vs_lenient_reasons():
    c = case(BASIC)
    text = '```json\n{"name": "calc_area", "arguments": {"base": 10, "height": 5}}\n```'
    s = score_case(c, [], text)
    assert s.native.reason == Reason.unparsed_format and s.lenient.passed
    s = score_case(c, [], "The area is 25.")
    assert s.native.reason == Reason.no_call_made and s.lenient.reason == Reason.no_call_made
    s = score_case(c, [native("calc_area", '{"base": 10, "height": ')], "")
    assert s.native.reason == Reason.bad_json and s.lenient.reason == Reason.bad_json
    s = score_case(c, [], '{"name": "calc_area", "arguments": {"base": 10, height: 5}}')
    assert s.native.reason == Reason.bad_json and s.lenient.reason == Reason.bad_json


@pytest.mark.parametrize(
    ("text", "strategy"),
    [
        ('<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>', "tool_call_tag"),
        ('<tool_call>{"name": "read_file", "arguments": {"path": "a.py"}}', "tool_call_tag"),
        ('Sure!\n```json\n{"name": "read_file", "arguments": {"path": "a.py"}}\n```', "fenced"),
        ('```\n{"name": "read_file", "parameters": {"path": "a.py"}}\n```', "fenced"),
        ('I will call {"name": "read_file", "arguments": {"path": "a.py"}} now', "bare_json"),
        ('{"function": {"name": "read_file", "arguments": "{\\"path\\": \\"a.py\\"}"}}', "bare_json"),
        (
            '{"type": "function", "function": {"name": "read_file", "arguments": {"path": "a.py"}}}',
            "bare_json",
        ),
        ('{"function": "read_file", "arguments": {"path": "a.py"}}', "bare_json"),
        ('{"read_file": {"path": "a.py"}}', "bare_json"),
        ('[{"name": "read_file", "arguments": {"path": "a.py"}}]', "bare_json"),
        ('{"tool_calls": [{"function": {"name": "read_file", "arguments": {"path": "a.py"}}}]}', "bare_json"),
        ('read_file(path="a.py")', "python_call"),
        ('```python\nread_file(path="a.py")\n```', "fenced"),
    ],
)
def test_lenient_formats(text: str, strategy: str):
    r = parse_calls(text, {"read_file", "list_dir"})
    assert r.strategy == strategy
    assert [(c.name, c.arguments) for c in r.calls] == [("read_file", {"path": "a.py"})]


def test_lenient_multiple_calls_and_no_false_positives():
    text = (
        '```json\n[{"name": "read_file", "arguments": {"path": "a"}}, '
        '{"name": "list_dir", "arguments": {}}]\n```'
    )
    assert [c.name for c in parse_calls(text, {"read_file", "list_dir"}).calls] == ["read_file", "list_dir"]
    two_tags = (
        '<tool_call>{"name": "read_file", "arguments": {"path": "a"}}</tool_call>\n'
        '<tool_call>{"name": "read_file", "arguments": {"path": "b"}}</tool_call>'
    )
    assert [c.arguments["path"] for c in parse_calls(two_tags).calls] == ["a", "b"]
    plain = 'Use print(x) and the dict {"a": 1} for that.'
    r = parse_calls(plain, {"read_file"})
    assert r.calls == [] and not r.attempted
    assert parse_calls("", None).calls == []
    data = 'Example record: {"name": "Bob", "age": 3}'
    assert parse_calls(data, {"read_file"}).calls == [] and not parse_calls(data, {"read_file"}).attempted
    assert [c.name for c in parse_calls('{"name": "git_status"}', {"git_status"}).calls] == ["git_status"]


def test_int_items_in_float_array_fail_like_bfcl():
    """BFCL simple_python_13: interval [1, 3] for items of type float, answer [[1.0, 3.0]] — BFCL's
    nested type check rejects int items (its int->float leniency is top-level only); we mirror it."""
    tool = {
        "name": "area",
        "parameters": {
            "type": "dict",
            "properties": {"interval": {"type": "array", "items": {"type": "float"}}},
            "required": ["interval"],
        },
    }
    c = EvalCase(
        id="x",
        category="simple",
        messages=[{"role": "user", "content": "q"}],
        tools=[tool],
        expected=[{"area": {"interval": [[1.0, 3.0]]}}],
    )
    bad = score_case(c, [native("area", {"interval": [1, 3]})], "").native
    assert bad.reason == Reason.wrong_type and "items must be number" in bad.detail
    assert score_case(c, [native("area", {"interval": [1.0, 3.0]})], "").native.passed


# Verdicts of BFCL's own checker (ast_checker.py at gorilla 6ea5797: dict_checker, list_dict_checker) on
# dict answers holding an empty allowed-values list: a key whose list is empty can be neither given (no
# value is among none) nor left out ("" is not among none), so that answer never passes; others may.
EMPTY_LIST_DICT_VERDICTS: list[tuple[str, list[Any], Any, bool]] = [
    ("opts", [{"a": [], "b": ["x"]}], {"a": "x", "b": "x"}, False),
    ("opts", [{"a": [], "b": ["x"]}], {"b": "x"}, False),
    ("opts", [{"a": [], "b": ["x"]}], {"a": "", "b": "x"}, False),
    ("opts", [{"a": [], "b": ["x"]}, {"a": ["", "y"], "b": ["x"]}], {"b": "x"}, True),
    ("opts", [{"a": [], "b": ["x"]}, {"a": ["", "y"], "b": ["x"]}], {"a": "Y", "b": "x"}, True),
    ("opts", [{"a": [], "b": ["x"]}, {"a": ["", "y"], "b": ["x"]}], {"a": "z", "b": "x"}, False),
    ("opts", [{"a": []}, ""], None, True),  # None: the parameter is left out
    ("opts", [{"a": []}, ""], {}, False),
    ("pts", [[{"x": [], "y": [1]}]], [{"y": 1}], False),
    ("pts", [[{"x": [], "y": [1]}]], [{"x": 1, "y": 1}], False),
    ("pts", [[{"x": ["", 2], "y": [1]}]], [{"y": 1}], True),
    ("pts", [[{"x": ["", 2], "y": [1]}]], [{"x": 2, "y": 1}], True),
    ("pts", [[{"x": ["", 2], "y": [1]}]], [{"x": 3, "y": 1}], False),
]


@pytest.mark.parametrize(("param", "allowed", "value", "passes"), EMPTY_LIST_DICT_VERDICTS)
def test_dict_answers_with_an_empty_allowed_list_score_as_bfcl(
    param: str, allowed: list[Any], value: Any, passes: bool
) -> None:
    exp = [{"calc_area": {"base": [1], "height": [1.0], param: allowed}}]
    args: dict[str, Any] = {"base": 1, "height": 1} | ({} if value is None else {param: value})
    score = check(exp, args)
    assert score.passed is passes, score
    if not passes:
        assert score.reason in (Reason.wrong_value, Reason.missing_param), score


def test_a_dict_answer_key_without_a_list_of_values_is_refused() -> None:
    """BFCL's dict_checker cannot score {"a": 5} (it iterates the allowed values); the case is refused
    with what to fix instead of failing mid-run in the scorer. As a whole value ("any") it is fine."""
    with pytest.raises(ValueError, match=r"calc_area.opts: key 'a' of a dict answer must map to a list"):
        case([{"calc_area": {"base": [1], "height": [1.0], "opts": [{"a": 5}]}}])
    with pytest.raises(ValueError, match=r"calc_area.pts: key 'x' of a dict answer must map to a list"):
        case([{"calc_area": {"base": [1], "height": [1.0], "pts": [[{"x": [1]}, {"x": "2"}]]}}])
    whole = [{"calc_area": {"base": [1], "height": [1.0], "anything": [{"a": 5}]}}]
    assert check(whole, {"base": 1, "height": 1, "anything": {"a": 5}}).passed
