"""MCP tool parameters from a config model's fields (see tooltune/options.py): one parameter per field,
with the field's type, default, description and bounds, so the JSON schema a client sees is the model's
own.

Bounds are published in the schema but checked by the model itself when the tool builds its config, so a
bad value gets the service's one-sentence error ("invalid training config: rank ...") rather than the
SDK's argument-validation dump.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

import annotated_types as at
from pydantic import BaseModel, Field

from tooltune.options import keyword, model_options, with_options

F = TypeVar("F", bound=Callable[..., Any])

_BOUNDS: dict[type, tuple[str, str]] = {
    at.Ge: ("ge", "minimum"),
    at.Gt: ("gt", "exclusiveMinimum"),
    at.Le: ("le", "maximum"),
    at.Lt: ("lt", "exclusiveMaximum"),
}


def schema_bounds(metadata: Iterable[Any]) -> dict[str, Any]:
    """JSON-schema bounds of a field's ``ge``/``gt``/``le``/``lt`` constraints."""
    out: dict[str, Any] = {}
    for m in metadata:
        for kind, (attr, key) in _BOUNDS.items():
            if isinstance(m, kind):
                out[key] = getattr(m, attr)
    return out


def mcp_options(model: type[BaseModel], *, exclude: Iterable[str] = ()) -> Callable[[F], F]:
    """Decorator: the tool function's ``**options`` become one parameter per field of ``model``."""

    def decorate(fn: F) -> F:
        params = []
        for o in model_options(model, exclude=exclude):
            info = Field(
                description=o.description or None, json_schema_extra=schema_bounds(o.field.metadata) or None
            )
            params.append(keyword(o.name, Annotated[o.annotation, info], o.default))
        return with_options(fn, params)

    return decorate
