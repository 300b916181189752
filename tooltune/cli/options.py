"""CLI flags from a config model's fields (see tooltune/options.py): one flag per field, ``None`` when
not given, so a value from ``--config`` stands unless the flag is typed."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

from cyclopts import Parameter
from pydantic import BaseModel

from tooltune.options import keyword, model_options, with_options

F = TypeVar("F", bound=Callable[..., Any])


def _optional(annotation: Any) -> Any:
    if annotation is type(None) or (
        typing.get_origin(annotation) in (typing.Union, types.UnionType)
        and type(None) in typing.get_args(annotation)
    ):
        return annotation
    return annotation | None


def _is_list(annotation: Any) -> bool:
    return any(typing.get_origin(a) is list for a in (annotation, *typing.get_args(annotation)))


def cli_options(
    model: type[BaseModel],
    *,
    exclude: Iterable[str] = (),
    names: dict[str, list[str]] | None = None,
    annotations: dict[str, Any] | None = None,
) -> Callable[[F], F]:
    """Decorator: the function's ``**options`` become ``--field-name`` flags with the field's help and
    default. ``names`` adds aliases (``{"learning_rate": ["--learning-rate", "--lr"]}``); ``annotations``
    types a flag differently from its field (e.g. a dict given as JSON text)."""
    names = names or {}
    annotations = annotations or {}

    def decorate(fn: F) -> F:
        params = []
        for o in model_options(model, exclude=exclude):
            ann = annotations.get(o.name, o.annotation)
            # a None default means what the description says ("default: the run's half", ...)
            help_text = o.description if o.default is None else f"{o.description} [default: {o.default_text}]"
            extra: dict[str, Any] = {"consume_multiple": True} if _is_list(ann) else {}
            if o.name in names:
                extra["name"] = names[o.name]
            param = Parameter(help=help_text, show_default=False, **extra)
            params.append(keyword(o.name, Annotated[_optional(ann), param], None))
        return with_options(fn, params)

    return decorate


def given(options: dict[str, Any]) -> dict[str, Any]:
    """The flags that were typed."""
    return {k: v for k, v in options.items() if v is not None}


M = TypeVar("M", bound=BaseModel)


def build_config(model: type[M], options: dict[str, Any]) -> M:
    """The config the typed flags make; an invalid value is a TooltuneError naming its flag."""
    from pydantic import ValidationError

    from tooltune.errors import TooltuneError, first_error

    try:
        return model(**given(options))
    except ValidationError as e:
        err = first_error(e, default="")
        if not err.where:  # the options together (a model validator): its message names them
            raise TooltuneError(err.msg.removeprefix("Value error, ")) from None
        raise TooltuneError(f"--{err.where.replace('_', '-')}: {err.msg} (got {err.input!r})") from None
