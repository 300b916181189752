"""ToolSpec: one callable tool in OpenAI function format, shared by data generation, evals and the agent.

BFCL files use their own type names (dict, float, tuple, any); :func:`normalize_schema` turns them
into JSON Schema so one validator and one chat template serve every source.
"""

from __future__ import annotations

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
