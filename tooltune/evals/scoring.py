"""Scoring that mirrors BFCL's AST checker (bfcl_eval/eval_checker/ast_eval/ast_checker.py).

Why mirror it instead of inventing rules: numbers on BFCL data are then comparable with the public
leaderboard, and the same strictness applies to our own suites. Rules (Python semantics of BFCL):
exact function name (names with dots are compared verbatim — we pass names through unchanged);
required params present; no params outside the schema or the expected answer; type check against
the schema (int accepted where a number/float is expected); strings compared after BFCL's
``standardize_string`` (lowercase, drop spaces and ``,./-_*^``); lists element-wise with the same
normalisation; dicts key by key (each key of a dict answer has its own allowed values; an empty list
there, as at the top, passes no value and may not be left out, so that answer never passes); an
expected param without ``""`` among its allowed values must be present; parallel calls matched in any
order.

Two differences, both checked against BFCL's checker (gorilla 6ea5797) on perturbed answers to every
local simple_python, multiple, parallel and parallel_multiple case: BFCL matches parallel calls
greedily; we search for a full matching, which only differs when a greedy choice would strand a later
call (possible where one call's allowed values cover another's, e.g. parallel_96 and parallel_178).
And BFCL's ``list_checker`` turns a ``""`` alternative into ``[]``, so there an empty list passes for
an optional array parameter (parallel_44, parallel_52); here it does not.

Each case is scored twice — **native** (the server's ``tool_calls``) and **lenient** (calls also parsed
from text) — and every failure gets one reason code so reports can say *why* a model fails.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from tooltune.evals.parse_calls import ParsedCall, ParseResult, parse_calls
from tooltune.evals.suite import EvalCase, ExpectedCall
from tooltune.toolspec import ToolSpec


class Reason(StrEnum):
    no_call_made = "no_call_made"
    wrong_tool = "wrong_tool"
    missing_param = "missing_param"
    extra_param = "extra_param"
    wrong_value = "wrong_value"
    wrong_type = "wrong_type"
    wrong_count = "wrong_count"
    bad_json = "bad_json"
    unparsed_format = "unparsed_format"
    called_when_irrelevant = "called_when_irrelevant"
    server_error = "server_error"


class Score(BaseModel):
    passed: bool
    reason: Reason | None = None
    detail: str = ""


OK = Score(passed=True)


def _fail(reason: Reason, detail: str) -> Score:
    return Score(passed=False, reason=reason, detail=detail)


class RawCall(BaseModel):
    """A native tool call as the server returned it; ``arguments`` may be an undecodable string."""

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class CaseScore(BaseModel):
    native: Score
    lenient: Score
    attempted: bool = Field(description="Any call attempt at all, native or in text (even malformed).")
    lenient_calls: list[ParsedCall] = Field(default_factory=list)
    parse_strategy: str | None = None


_PY_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}
_STANDARDIZE_RE = re.compile(r"[ \,\.\/\-\_\*\^]")


def standardize_string(s: str) -> str:
    """BFCL's normalisation: "April 1, 2024" == "april 1 2024"; single quotes become double."""
    return _STANDARDIZE_RE.sub("", s).lower().replace("'", '"')


def _std(v: Any) -> Any:
    return standardize_string(v) if isinstance(v, str) else v


def _answer_type(allowed: list[Any]) -> type | None:
    for a in allowed:
        if a != "":
            return type(a)
    return None


def _schema_type(schema: dict[str, Any]) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    return t if isinstance(t, str) else None


def _type_check(
    value: Any, allowed: list[Any], expected: type | None, nested: type | None
) -> tuple[bool, bool]:
    """BFCL's ``type_checker``: returns (valid, is_variable). A value whose type matches the *answer*
    type rather than the schema type is a "variable" and is compared as-is. Nested (array item)
    types are checked one level deep, against each list among the allowed answers, as BFCL does."""
    if expected is None:
        return True, False
    answer_type = _answer_type(allowed)
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if nested is None:
            return True, is_variable
        for item in allowed:
            if not isinstance(item, list):
                return True, is_variable
            if all(_type_check(v, item, nested, None)[0] for v in value):
                return True, is_variable
        return False, is_variable
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, is_variable


def _dict_ok(value: dict[str, Any], allowed: list[Any]) -> bool:
    for answer in allowed:
        if answer == "" or not isinstance(answer, dict):
            continue
        ok = True
        for k, v in value.items():
            if k not in answer or _std(v) not in [_std(a) for a in answer[k]]:
                ok = False
                break
        if ok and all(k in value or "" in vals for k, vals in answer.items()):
            return True
    return False


def _list_dict_ok(value: list[Any], allowed: list[Any]) -> bool:
    for answer in allowed:
        if not isinstance(answer, list) or len(answer) != len(value):
            continue
        if all(isinstance(v, dict) and _dict_ok(v, [a]) for v, a in zip(value, answer, strict=True)):
            return True
    return False


def _list_ok(value: list[Any], allowed: list[Any]) -> bool:
    std_value = [_std(v) for v in value]
    return any(isinstance(a, list) and std_value == [_std(x) for x in a] for a in allowed)


def check_value(tool: str, param: str, schema: Any, value: Any, allowed: list[Any]) -> Score:
    """One argument against its allowed answers, as BFCL's checker reads it: typed by the parameter's
    schema (an int where a number is due counts as that number), strings standardised
    (:func:`standardize_string`), lists item by item, dicts key by key."""
    schema = schema if isinstance(schema, dict) else {}
    type_name = _schema_type(schema)
    py_type = _PY_TYPES.get(type_name) if type_name else None
    nested = None
    if type_name == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        item_type = _schema_type(items)
        nested = _PY_TYPES.get(item_type) if item_type else None
    if type_name == "number" and type(value) is int:
        value = float(value)
    valid, is_variable = _type_check(value, allowed, py_type, nested)
    if not valid:
        if py_type is list and type(value) is list:
            # BFCL checks array items one level deep and, unlike top-level values, does not
            # accept an int where a float item is expected
            item_type = _schema_type(schema.get("items") or {})
            detail = f"{tool}.{param}: items must be {item_type}, got {value!r}"
        else:
            detail = f"{tool}.{param}: expected {type_name}, got {type(value).__name__} {value!r}"
        return _fail(Reason.wrong_type, detail)
    if not is_variable:
        if py_type is dict:
            ok = _dict_ok(value, allowed)
        elif py_type is list and nested is dict:
            ok = _list_dict_ok(value, allowed)
        elif py_type is str or (py_type is None and isinstance(value, str)):
            ok = _std(value) in [_std(a) for a in allowed if isinstance(a, str)]
        elif py_type is list:
            ok = _list_ok(value, allowed)
        else:
            ok = value in allowed
    else:
        ok = value in allowed
    if not ok:
        shown = [a for a in allowed if a != ""]
        want = f"expected one of {shown!r}" if shown else "expected it to be left out"
        return _fail(Reason.wrong_value, f"{tool}.{param}: got {value!r}, {want}")
    return OK


def check_call(spec: ToolSpec, call: ParsedCall, expected: dict[str, list[Any]]) -> Score:
    """BFCL's ``simple_function_checker`` for one call against one expected call of ``spec``."""
    if call.name != spec.name:
        return _fail(Reason.wrong_tool, f"called {call.name!r}, expected {spec.name!r}")
    args = call.arguments
    props = spec.properties
    for param in spec.required:
        if param not in args:
            return _fail(Reason.missing_param, f"{spec.name}: missing required parameter {param!r}")
    for param, value in args.items():
        if param not in props or param not in expected:
            return _fail(Reason.extra_param, f"{spec.name}: unexpected parameter {param!r}")
        score = check_value(spec.name, param, props[param], value, expected[param])
        if not score.passed:
            return score
    for param, allowed in expected.items():
        if param not in args and "" not in allowed:
            return _fail(
                Reason.missing_param, f"{spec.name}: missing parameter {param!r} (not optional here)"
            )
    return OK


def match_calls(case: EvalCase, calls: list[ParsedCall]) -> Score:
    """All expected calls matched one-to-one by actual calls, in any order."""
    assert case.expected != "no_call"
    expected: list[ExpectedCall] = case.expected
    specs = case.specs
    if len(calls) != len(expected):
        names = [c.name for c in calls]
        return _fail(Reason.wrong_count, f"{len(calls)} call(s) {names}, expected {len(expected)}")
    pairs: list[list[Score]] = []
    for exp in expected:
        name, params = next(iter(exp.items()))
        pairs.append([check_call(specs[name], c, params) for c in calls])

    def search(i: int, used: frozenset[int]) -> bool:
        if i == len(expected):
            return True
        return any(
            j not in used and pairs[i][j].passed and search(i + 1, used | {j}) for j in range(len(calls))
        )

    if search(0, frozenset()):
        return OK
    # explain the first expected call that no actual call satisfies, preferring same-name diagnoses
    for i, exp in enumerate(expected):
        if any(s.passed for s in pairs[i]):
            continue
        name = next(iter(exp))
        same = [s for s, c in zip(pairs[i], calls, strict=True) if c.name == name]
        return (
            same[0]
            if same
            else _fail(Reason.wrong_tool, f"no call to {name!r}; got {[c.name for c in calls]}")
        )
    return _fail(Reason.wrong_value, "calls match individually but not one-to-one")


def decode_native(calls: list[RawCall]) -> tuple[list[ParsedCall], bool]:
    out: list[ParsedCall] = []
    bad = False
    for c in calls:
        args: Any = c.arguments
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                bad = True
                continue
        if not isinstance(args, dict):
            bad = True
            continue
        out.append(ParsedCall(name=c.name, arguments=args))
    return out, bad


_DROPPED = "wrote a tool call the server could not parse (invalid JSON or cut off), so the server dropped it"


def score_case(
    case: EvalCase, native_calls: list[RawCall], text: str | None, *, dropped_call: bool = False
) -> CaseScore:
    """Score one model answer both ways.

    For cases that expect no call, *lenient* means "no call attempt of any kind": a model that writes
    calls as text is still calling a tool where it should not, so it must not look good there just
    because the server failed to parse its format. ``dropped_call``: the server ended the answer on a
    tool call it could not parse and dropped (a call attempt in invalid JSON, not "no call").
    """
    tool_names = set(case.specs)
    decoded, native_bad = decode_native(native_calls)
    parsed: ParseResult = parse_calls(text, tool_names)
    attempted = bool(native_calls) or parsed.attempted or dropped_call
    lenient_calls = decoded if (decoded or native_bad) else parsed.calls

    if case.expects_no_call:
        native = (
            _fail(Reason.called_when_irrelevant, f"called {[c.name for c in native_calls]}")
            if native_calls
            else OK
        )
        if native_calls:
            lenient = native
        elif parsed.attempted:
            what = [c.name for c in parsed.calls] or "a malformed call"
            lenient = _fail(Reason.called_when_irrelevant, f"wrote a call in text: {what}")
        elif dropped_call:
            lenient = _fail(Reason.called_when_irrelevant, _DROPPED)
        else:
            lenient = OK
        return CaseScore(
            native=native,
            lenient=lenient,
            attempted=attempted,
            lenient_calls=lenient_calls,
            parse_strategy=parsed.strategy,
        )

    if native_bad:
        native = _fail(Reason.bad_json, "native tool call arguments are not a JSON object")
    elif decoded:
        native = match_calls(case, decoded)
    elif dropped_call:
        native = _fail(Reason.bad_json, _DROPPED)
    elif parsed.calls:
        native = _fail(Reason.unparsed_format, f"call written as {parsed.strategy}, not in the native format")
    elif parsed.bad_json:
        native = _fail(Reason.bad_json, "a call attempt in text that is not valid JSON")
    else:
        native = _fail(Reason.no_call_made, "answered without calling a tool")

    if native_bad:
        lenient = native
    elif lenient_calls:
        lenient = match_calls(case, lenient_calls)
    elif parsed.bad_json:
        lenient = _fail(Reason.bad_json, "a call attempt in text that is not valid JSON")
    elif dropped_call:
        lenient = _fail(Reason.bad_json, _DROPPED)
    else:
        lenient = _fail(Reason.no_call_made, "answered without calling a tool")
    return CaseScore(
        native=native,
        lenient=lenient,
        attempted=attempted,
        lenient_calls=lenient_calls,
        parse_strategy=parsed.strategy if not decoded else "native",
    )
