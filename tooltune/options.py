"""Options typed once: a service's pydantic config is the one source of its CLI flags and MCP parameters.

`tooltune train` and MCP ``train_adapter`` both take :class:`~tooltune.training.train_config.TrainConfig`;
`tooltune data generate` and ``generate_training_examples`` both take
:class:`~tooltune.data.generate_config.GenerateConfig`. Each front end declares only the parameters that
are its own (where the tools come from, a dataset name) plus ``**options``; :func:`with_options` replaces
``**options`` in the function's signature with one keyword parameter per model field, typed and described
by the field. The CLI (cyclopts) and the MCP SDK both read that signature, so a field's name, type,
default and description cannot drift between the three surfaces.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Option:
    """One model field seen as an option."""

    name: str
    annotation: Any
    default: Any
    description: str
    field: FieldInfo

    @property
    def required(self) -> bool:
        return self.field.is_required()

    @property
    def default_text(self) -> str:
        """The default as a person reads it in help text."""
        if self.required:
            return "required"
        return "none" if self.default is None else str(self.default)


def model_options(model: type[BaseModel], *, exclude: Iterable[str] = ()) -> list[Option]:
    """The model's fields in declaration order, less ``exclude``."""
    skip = set(exclude)
    out: list[Option] = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        default = (
            field.get_default(call_default_factory=True) if not field.is_required() else PydanticUndefined
        )
        out.append(Option(name, field.annotation, default, field.description or "", field))
    return out


def with_options(fn: F, params: list[inspect.Parameter]) -> F:
    """Put ``params`` where ``fn`` has ``**kwargs`` in its signature (the call still arrives in kwargs)."""
    sig = inspect.signature(fn, eval_str=True)  # the new signature is read as is: no strings left
    own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    if len(own) == len(sig.parameters):
        raise TypeError(f"{fn.__name__} takes no **options to replace")
    clash = {p.name for p in own} & {p.name for p in params}
    if clash:
        raise TypeError(f"{fn.__name__}: options {sorted(clash)} are also the function's own parameters")
    fn.__signature__ = sig.replace(parameters=[*own, *params])  # type: ignore[attr-defined]
    return fn


def keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
