"""Eval suites: JSONL files of cases ``{id, category, messages, tools, expected}``.

``expected`` is BFCL-style so BFCL data imports without translation: a list of calls, each
``{name: {param: [allowed values]}}`` (order-free when there are several; ``""`` among the allowed
values means the parameter may be left out; an object parameter's allowed value is a dict of
``{key: [allowed values]}``, an array of objects' a list of such dicts), or the string
``"no_call"``. Multi-turn cases carry the earlier turns (assistant ``tool_calls`` and ``role: tool``
results) in ``messages``; the case asks for the *next* assistant action.

A malformed suite is refused as a whole with ``file:line`` so the author can fix it; a half-loaded
suite would silently change what a score means.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from tooltune.errors import TooltuneError, first_error
from tooltune.toolspec import ToolSpec
from tooltune.workspace import Workspace, atomic_write_text, validate_name

NO_CALL = "no_call"
BUILTIN_SUITES = {
    "coding-tools": "coding_tools.jsonl",
    # tool sets unlike the agent's own, with requests written as people ask (docs/PHRASEBOOKS.md)
    "issue-tracker": "issue_tracker.jsonl",
    "notes-calendar": "notes_calendar.jsonl",
}
# the tools of the built-in suites that are not the agent's own (``builtin:issue-tracker`` as a source)
BUILTIN_TOOLSETS = {
    "issue-tracker": "issue_tracker.tools.json",
    "notes-calendar": "notes_calendar.tools.json",
}
NO_CALL_CATEGORIES = ("no_call", "irrelevance")


class SuiteError(TooltuneError):
    """A suite file that cannot be used; the message names ``file:line`` and what to fix."""


ExpectedCall = dict[str, dict[str, list[Any]]]
"""One expected call: ``{function_name: {param: [allowed values, "" = may be omitted]}}``."""


class EvalCase(BaseModel):
    """One prompt plus what a correct next assistant turn does."""

    id: str = Field(min_length=1)
    category: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    expected: list[ExpectedCall] | Literal["no_call"]

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_openai_form(cls, value: Any) -> Any:
        """Accept bare ``{name, description, parameters}`` too; store the OpenAI form the templates use."""
        if not isinstance(value, list):
            return value
        return [ToolSpec.from_openai(t).to_openai() if isinstance(t, dict) else t for t in value]

    @field_validator("messages")
    @classmethod
    def _messages_shape(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, m in enumerate(value):
            role = m.get("role")
            if role not in ("system", "user", "assistant", "tool"):
                raise ValueError(f"messages[{i}].role must be system/user/assistant/tool, got {role!r}")
        if value[-1]["role"] not in ("user", "tool"):
            raise ValueError(
                "the last message must be from the user or a tool result (the model answers next)"
            )
        return value

    @model_validator(mode="after")
    def _expected_matches_tools(self) -> EvalCase:
        if self.expected == NO_CALL:
            return self
        if not self.expected:
            raise ValueError('expected must list at least one call, or be "no_call"')
        specs = self.specs
        for call in self.expected:
            if len(call) != 1:
                raise ValueError(
                    f"each expected call is {{name: {{param: [values]}}}} with one name, got {call!r}"
                )
            name, params = next(iter(call.items()))
            if name not in specs:
                raise ValueError(f"expected call {name!r} is not among the case's tools {sorted(specs)}")
            if not isinstance(params, dict):
                raise ValueError(
                    f"expected params of {name!r} must be an object of param -> [allowed values]"
                )
            props = specs[name].properties
            for param, allowed in params.items():
                if param not in props:
                    raise ValueError(f"expected param {name}.{param} is not in the tool's schema")
                if not isinstance(allowed, list):
                    # an empty list is kept, as BFCL's checker keeps it: no answer passes that param
                    raise ValueError(f"allowed values of {name}.{param} must be a list")
                problem = _dict_answer_problem(allowed, props[param])
                if problem:
                    raise ValueError(f"allowed values of {name}.{param}: {problem}")
        return self

    @property
    def specs(self) -> dict[str, ToolSpec]:
        return {s.name: s for s in (ToolSpec.from_openai(t) for t in self.tools)}

    @property
    def expects_no_call(self) -> bool:
        return self.expected == NO_CALL


def _json_type(schema: Any) -> str | None:
    t = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    return t if isinstance(t, str) else None


def _dict_answer_problem(allowed: list[Any], schema: Any) -> str | None:
    """What is wrong with the dict answers the scorer reads key by key, or None.

    For an object parameter each allowed dict (for an array of objects, each dict in an allowed list)
    maps every key to *its* list of allowed values, as BFCL's ``dict_checker`` reads it. An empty list
    there is kept: no value passes and the key may not be left out, so that answer never passes, as in
    BFCL. A key whose allowed values are not a list cannot be scored (BFCL's checker fails on it, or
    reads a string as its characters).
    """
    kind = _json_type(schema)
    if kind == "object":
        answers = [a for a in allowed if isinstance(a, dict)]
    elif kind == "array" and _json_type(schema.get("items")) == "object":
        answers = [d for a in allowed if isinstance(a, list) for d in a if isinstance(d, dict)]
    else:
        return None  # compared whole, as a value
    for answer in answers:
        for key, values in answer.items():
            if not isinstance(values, list):
                return f"key {key!r} of a dict answer must map to a list of allowed values, got {values!r}"
    return None


class EvalSuite(BaseModel):
    """A named, content-hashed list of cases (the hash ties a report to the exact suite it ran)."""

    name: str
    source: str = ""
    hash: str = ""
    cases: list[EvalCase]

    @property
    def categories(self) -> dict[str, int]:
        return dict(Counter(c.category for c in self.cases))

    def to_jsonl(self) -> str:
        return "".join(c.model_dump_json(exclude_none=True) + "\n" for c in self.cases)

    def subset(self, limit: int | None) -> EvalSuite:
        """The first ``limit`` cases *per category*, so a short run still covers every category."""
        if not limit:
            return self
        seen: Counter[str] = Counter()
        keep = []
        for c in self.cases:
            if seen[c.category] < limit:
                seen[c.category] += 1
                keep.append(c)
        return self.model_copy(update={"cases": keep})


def suite_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def parse_suite(text: str, *, name: str, source: str = "<memory>") -> EvalSuite:
    """Parse JSONL text into a suite; any bad line raises :class:`SuiteError` naming ``source:line``."""
    cases: list[EvalCase] = []
    ids: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise SuiteError(
                f"{source}:{lineno}: not valid JSON ({e.msg} at column {e.colno}); fix that line"
            ) from e
        if not isinstance(data, dict):
            raise SuiteError(
                f"{source}:{lineno}: each line must be a JSON object with id, category, messages, "
                "tools, expected"
            )
        try:
            case = EvalCase.model_validate(data)
        except ValidationError as e:
            err = first_error(e, default="case")
            raise SuiteError(f"{source}:{lineno}: {err.where}: {err.msg}") from e
        if case.id in ids:
            raise SuiteError(
                f"{source}:{lineno}: duplicate case id {case.id!r} (first on line {ids[case.id]})"
            )
        ids[case.id] = lineno
        cases.append(case)
    if not cases:
        raise SuiteError(f"{source}: the suite has no cases; add JSONL lines")
    return EvalSuite(name=name, source=source, hash=suite_hash(text), cases=cases)


def builtin_toolset_text(name: str) -> str:
    return resources.files("tooltune.evals").joinpath(f"builtin/{BUILTIN_TOOLSETS[name]}").read_text("utf-8")


def builtin_suite_text(name: str) -> str:
    filename = BUILTIN_SUITES[name]
    return resources.files("tooltune.evals").joinpath(f"builtin/{filename}").read_text("utf-8")


def suite_path(ws: Workspace, name: str) -> Path:
    """Where a named suite lives in a workspace; the data room's leakage check reads this folder."""
    return ws.evals / "suites" / f"{validate_name(name, 'suite name')}.jsonl"


def save_suite(ws: Workspace, suite: EvalSuite) -> Path:
    path = suite_path(ws, suite.name)
    atomic_write_text(path, suite.to_jsonl())
    return path


def list_suites(ws: Workspace | None = None) -> list[str]:
    names = set(BUILTIN_SUITES)
    if ws is not None and (ws.evals / "suites").is_dir():
        names |= {p.stem for p in (ws.evals / "suites").glob("*.jsonl")}
    return sorted(names)


def load_suite(ref: str | Path, ws: Workspace | None = None) -> EvalSuite:
    """Load a suite by built-in name, workspace suite name, or file path.

    Built-in suites are also written to ``<ws>/evals/suites/<name>.jsonl`` when a workspace is given,
    so the dataset leakage check sees every suite that was ever used for scoring.
    """
    ref_s = str(ref)
    if ref_s in BUILTIN_SUITES:
        text = builtin_suite_text(ref_s)
        suite = parse_suite(text, name=ref_s, source=f"builtin:{BUILTIN_SUITES[ref_s]}")
        if ws is not None:
            path = suite_path(ws, ref_s)
            if not path.exists() or path.read_text("utf-8") != text:
                atomic_write_text(path, text)
        return suite
    if ws is not None and "/" not in ref_s and not ref_s.endswith(".jsonl"):
        path = suite_path(ws, ref_s)
        if path.exists():
            return parse_suite(path.read_text("utf-8"), name=ref_s, source=str(path))
    path = Path(ref_s).expanduser()
    if path.is_file():
        suite = parse_suite(path.read_text("utf-8"), name=path.stem, source=str(path))
        if ws is not None:
            try:
                validate_name(path.stem, "suite name")
                save_suite(ws, suite)
            except TooltuneError:
                pass
        return suite
    raise SuiteError(
        f"no suite {ref_s!r}: use a built-in name ({', '.join(BUILTIN_SUITES)}), a suite imported into the "
        "workspace, or a path to a .jsonl file"
    )
