"""ToolSpec: one callable tool in OpenAI function format, shared by data generation, evals and the agent.

BFCL files use their own type names (dict, float, tuple, any); :func:`normalize_schema` turns them
into JSON Schema so one validator and one chat template serve every source.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, UnknownType
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


# "Default is 5.", "defaults to 'USD'", "default value is 10", "(default: true)", "Default 1", "Default is
# 60 minutes": the value after the word, then a stop (. , ; a bracket, "if ..." or the end). A quoted
# value, a number (its unit or other words may follow), a boolean or a bracketed list may follow the word
# directly; bare words only after "is", "to" or a colon, so "the default currency is used" names none.
_DEFAULT_RE = re.compile(
    r"\bdefaults?(?:\s+value)?(?P<verb>\s*(?:is|to be|to|of|=|:))?\s+"
    r"(?P<v>'[^']*'|\"[^\"]*\"|\[[^\]]*\]"
    r"|\$?(?P<num>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w$%])(?!\.\d)(?!,\d)"
    r"(?P<unit>\s*[^\s.,;()][^.,;()]*?)?"
    r"|[A-Za-z]\w*(?: \w+){0,2}?)"
    r"(?=\s*(?:[.,;()]|$)|\s+if\b)",
    re.IGNORECASE,
)

# Bare words after "default" that say there is none rather than name one.
_NOT_A_VALUE = frozenset("empty none null nothing not no unset unspecified blank the a an see".split())


# After a default's number: arithmetic, or words that make it something other than the value itself.
_ARITHMETIC = re.compile(r"^(?:[*×^/+]|x\s*\d|x\s)")
_NOT_THE_NUMBER = frozenset("times less more before after ago or and percent plus minus than".split())


def schema_types(schema: Any) -> set[Any]:
    """The JSON Schema types a parameter's schema names (``type: [string, "null"]`` gives both), or
    ``{None}`` when it names none (it then takes any)."""
    types = schema.get("type") if isinstance(schema, dict) else None
    return set(types) if isinstance(types, list) else {types}


def _as_type(value: Any, kind: Any) -> list[Any]:
    """``value`` (a schema default, or words read from a description) as a value of JSON-schema type
    ``kind``: [value] or [] when it does not read as one ("5 years" is no integer)."""
    if kind in ("integer", "number") and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return []
        if kind == "number":
            return [number]
        return [int(number)] if number.is_integer() else []
    if kind == "boolean":
        if isinstance(value, bool):
            return [value]
        text = str(value).lower()
        return [text == "true"] if text in ("true", "false") else []
    if kind == "array" and isinstance(value, str) and value.startswith("["):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return []
    return [value]


def stated_defaults(schema: Any) -> list[Any]:
    """The default a parameter's schema states: its ``default``, else one its description names in words
    ("Default is 'metric'.", "defaults to 10"), as the parameter's type; [] when it states none or the
    value does not fit the schema (its type, its enum). BFCL's possible answers accept an optional
    parameter at such a default or left out, and a judge of generated truth that omits the parameter
    should too."""
    if not isinstance(schema, dict):
        return []
    if "default" in schema:
        found = _as_type(schema["default"], schema.get("type"))
    else:
        m = _DEFAULT_RE.search(str(schema.get("description", "")))
        if m is None:
            return []
        raw = m.group("v")
        bare = raw[:1].isalpha()
        first = raw.split(" ", 1)[0].lower()
        if bare and (first in _NOT_A_VALUE or not m.group("verb") and first not in ("true", "false")):
            return []  # "the default currency is used", "Default is empty", "Default to not use"
        quoted = raw[:1] in "'\"" and len(raw) >= 2
        text = raw[1:-1] if quoted else raw
        if m.group("num") is not None:
            words = (m.group("unit") or "").strip()
            if _ARITHMETIC.match(words) or _NOT_THE_NUMBER & set(words.lower().split()):
                return []  # "3 * 10^8", "2 times the cores", "10 for free accounts and 50 for paid"
            if schema.get("type") in ("integer", "number"):
                text = m.group("num")  # "60 minutes", "$1000", "1.0 for free space": the number
            elif len((m.group("unit") or "").split()) > 1:
                return []  # "0 for an object at rest" is no string default
        if raw.startswith("["):
            try:
                text = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                return []
        found = _as_type(text, schema.get("type"))
    try:
        fits = Draft202012Validator(schema)
        return [v for v in found if fits.is_valid(v)]
    except (SchemaError, UnknownType):  # a schema the validator cannot read: keep what the type allowed
        return found
