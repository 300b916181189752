"""ToolSpec: one callable tool in OpenAI function format, shared by data generation, evals and the agent.

BFCL files use their own type names (dict, float, tuple, any); :func:`normalize_schema` turns them
into JSON Schema so one validator and one chat template serve every source.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

BFCL_TYPE_MAP = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "list": "array",
    "int": "integer",
    "bool": "boolean",
    "str": "string",
}


class ToolSpec(BaseModel):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        """The `{"type": "function", "function": {...}}` form used in chat templates and requests."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> ToolSpec:
        """Accept `{"type": "function", "function": {...}}` or a bare `{name, description, parameters}`."""
        fn = data.get("function", data) if isinstance(data, dict) else data
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        return cls(
            name=fn["name"], description=fn.get("description", ""), parameters=normalize_schema(params)
        )

    def validator(self) -> Draft202012Validator:
        """A JSON Schema validator for this tool's arguments."""
        return Draft202012Validator(self.parameters)

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.parameters.get("properties", {}))


def normalize_schema(schema: Any) -> Any:
    """Recursively map BFCL type names to JSON Schema; ``any`` drops the type constraint."""
    if isinstance(schema, list):
        return [normalize_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            if value == "any":
                continue
            out[key] = BFCL_TYPE_MAP.get(value, value)
        elif key in ("properties",) and isinstance(value, dict):
            out[key] = {k: normalize_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            out[key] = normalize_schema(value)
        else:
            out[key] = value
    return out


# "Default is 5.", "defaults to 'USD'", "default value is 10", "(default: true)", "Default 1": the value
# after the word (quoted, a number, a bracketed list, or up to three bare words), then a stop: . , ; a
# bracket, "if ..." or the end.
_DEFAULT_RE = re.compile(
    r"\bdefaults?(?:\s+value)?(?:\s*(?:is|to be|to|of|=|:))?\s+"
    r"(?P<v>'[^']*'|\"[^\"]*\"|\[[^\]]*\]|[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w$%])(?!\.\d)"
    r"|[A-Za-z]\w*(?: \w+){0,2}?)"
    r"(?=\s*(?:[.,;()]|$)|\s+if\b)",
    re.IGNORECASE,
)

# Bare words after "default" that say there is none rather than name one.
_NOT_A_VALUE = {
    "empty",
    "none",
    "null",
    "nothing",
    "not",
    "no",
    "unset",
    "unspecified",
    "blank",
    "the",
    "a",
    "an",
}


def stated_defaults(schema: Any) -> list[Any]:
    """The default a parameter's schema states: its ``default``, else one its description names in words
    ("Default is 'metric'.", "defaults to 10"), as the parameter's type; [] when it states none or the
    words do not read as that type. BFCL's possible answers accept an optional parameter at such a default
    or left out, and a judge of generated truth that omits the parameter should too."""
    if not isinstance(schema, dict):
        return []
    if "default" in schema:
        return [schema["default"]]
    m = _DEFAULT_RE.search(str(schema.get("description", "")))
    if m is None:
        return []
    raw = m.group("v")
    if raw.split(" ", 1)[0].lower() in _NOT_A_VALUE:  # "Default is empty", "Default to not use"
        return []
    quoted = raw[:1] in "'\"" and len(raw) >= 2
    text = raw[1:-1] if quoted else raw
    kind = schema.get("type")
    if raw.startswith("["):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return []
        return [value] if kind in (None, "array") and isinstance(value, list) else []
    if kind in ("integer", "number"):
        try:
            value = float(text)
        except ValueError:
            return []
        if kind == "integer":
            return [int(value)] if value.is_integer() else []
        return [value]
    if kind == "boolean":
        return [text.lower() == "true"] if text.lower() in ("true", "false") else []
    if kind in (None, "string"):
        return [text]
    return []
