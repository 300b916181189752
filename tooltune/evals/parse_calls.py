"""Lenient parsing: find tool calls a model wrote as *text* instead of the native format.

Small models often know which call to make but write it as ```json fenced JSON or bare JSON (the
0.5B Qwen does this ~always, see docs/PLATFORM.md). Scoring those calls separately from native
``tool_calls`` tells a format failure (fixable by teaching the template) from a knowledge failure.

Strategies are tried in order of how explicit they are — ``<tool_call>`` tags, fenced blocks, bare
JSON, Python-call syntax — and the first that yields any call wins, so one answer is never counted
twice by two strategies.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from pydantic import BaseModel, Field

from tooltune.json_spans import json_spans

_TAG_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n?(.*?)(?:```|$)", re.S)
_PYCALL_RE = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)\s*\(")


class ParsedCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ParseResult(BaseModel):
    """Calls found in a text, plus whether the text *tried* to call a tool (even unparseably)."""

    calls: list[ParsedCall] = Field(default_factory=list)
    bad_json: bool = False
    attempted: bool = False
    strategy: str | None = None


def _args_from(value: Any) -> tuple[dict[str, Any] | None, bool]:
    """Arguments as a dict; strings are decoded JSON (OpenAI sends them that way). Returns (args, bad)."""
    if value is None:
        return {}, False
    if isinstance(value, dict):
        return value, False
    if isinstance(value, str):
        if not value.strip():
            return {}, False
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return None, True
        return (decoded, False) if isinstance(decoded, dict) else (None, True)
    return None, True


def calls_from_json(obj: Any, tool_names: set[str] | None = None) -> tuple[list[ParsedCall], bool]:
    """Interpret a decoded JSON value as zero or more calls. Returns (calls, saw_bad_arguments).

    Shapes: ``{"name", "arguments"|"parameters"|"args"}``, ``{"function": {...}}`` (OpenAI),
    ``{"function": "name", "arguments": ...}``, ``{"tool_calls": [...]}``, lists of these, and — only
    when the name is one of the case's tools — BFCL's ``{"func_name": {param: value}}``.
    """
    calls: list[ParsedCall] = []
    bad = False
    if isinstance(obj, list):
        for item in obj:
            c, b = calls_from_json(item, tool_names)
            calls += c
            bad |= b
        return calls, bad
    if not isinstance(obj, dict):
        return calls, bad
    if isinstance(obj.get("tool_calls"), list):
        return calls_from_json(obj["tool_calls"], tool_names)
    fn = obj.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return calls_from_json(fn, tool_names)
    name = obj.get("name") if isinstance(obj.get("name"), str) else fn if isinstance(fn, str) else None
    if name is None and isinstance(obj.get("tool"), str):
        name = obj["tool"]
    if name:
        arg_key = next((k for k in ("arguments", "parameters", "args", "params", "input") if k in obj), None)
        if arg_key is None and (tool_names is None or name not in tool_names):
            return calls, bad  # {"name": "Bob", "age": 3} is data, not a call
        raw = obj[arg_key] if arg_key else None
        args, bad_args = _args_from(raw)
        if args is None:
            return calls, True
        return [ParsedCall(name=name, arguments=args)], bad_args
    if tool_names and len(obj) == 1:
        key, value = next(iter(obj.items()))
        if key in tool_names and isinstance(value, dict):
            return [ParsedCall(name=key, arguments=value)], False
    return calls, bad


def _decode_all(text: str) -> list[Any]:
    """Every top-level JSON object/array embedded in free text, left to right."""
    return [value for _, _, value in json_spans(text)]


def _literal(node: ast.AST) -> Any:
    return ast.literal_eval(node)


def _python_calls(text: str, tool_names: set[str] | None) -> list[ParsedCall]:
    """``read_file(path="a.py")`` style. Only names of the case's tools count, so prose like
    "call print(x)" is not mistaken for a tool call."""
    calls: list[ParsedCall] = []
    for m in _PYCALL_RE.finditer(text):
        name = m.group(1)
        if tool_names is None or name not in tool_names:
            continue
        # find the matching close paren by trying successively longer snippets
        start = m.start(1)
        depth = 0
        for j in range(m.end() - 1, len(text)):
            ch = text[j]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    snippet = text[start : j + 1]
                    try:
                        node = ast.parse(snippet, mode="eval").body
                    except SyntaxError:
                        break
                    if isinstance(node, ast.Call):
                        try:
                            args = {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
                        except (ValueError, SyntaxError):
                            break
                        if node.args and not args:
                            break
                        calls.append(ParsedCall(name=name, arguments=args))
                    break
    return calls


def parse_calls(text: str | None, tool_names: set[str] | None = None) -> ParseResult:
    """Find tool calls in model text. ``tool_names`` (the case's tools) enables the shapes that are
    only recognisable by name (BFCL dict form, Python calls) and marks attempts to call a tool."""
    if not text or not text.strip():
        return ParseResult()
    names = set(tool_names) if tool_names else None

    tag_bodies = _TAG_RE.findall(text)
    if tag_bodies:
        calls: list[ParsedCall] = []
        bad = False
        for body in tag_bodies:
            try:
                c, b = calls_from_json(json.loads(body), names)
            except json.JSONDecodeError:
                values = _decode_all(body)
                if not values:
                    bad = True
                    continue
                c, b = calls_from_json(values, names)
            calls += c
            bad |= b
        return ParseResult(calls=calls, bad_json=bad, attempted=True, strategy="tool_call_tag")

    fences = _FENCE_RE.findall(text)
    fence_calls: list[ParsedCall] = []
    fence_bad = False
    for _lang, body in fences:
        try:
            c, b = calls_from_json(json.loads(body), names)
        except json.JSONDecodeError:
            c, b = calls_from_json(_decode_all(body), names)
            if not c:
                c = _python_calls(body, names)
            if not c and _looks_like_call_attempt(body, names):
                b = True
        fence_calls += c
        fence_bad |= b
    if fence_calls:
        return ParseResult(calls=fence_calls, bad_json=fence_bad, attempted=True, strategy="fenced")

    bare_calls, bare_bad = calls_from_json(_decode_all(text), names)
    if bare_calls:
        return ParseResult(calls=bare_calls, bad_json=bare_bad, attempted=True, strategy="bare_json")

    py_calls = _python_calls(text, names)
    if py_calls:
        return ParseResult(calls=py_calls, attempted=True, strategy="python_call")

    bad = fence_bad or bare_bad or _looks_like_call_attempt(text, names)
    return ParseResult(bad_json=bad, attempted=bad)


def _looks_like_call_attempt(text: str, names: set[str] | None) -> bool:
    """JSON-ish text that names a tool or has a ``"name"``/``"arguments"`` key but did not parse."""
    if "{" not in text:
        return False
    if re.search(r'"(arguments|parameters|function)"\s*:', text):
        return True
    return bool(names) and any(f'"{n}"' in text for n in names or ())
