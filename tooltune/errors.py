"""Errors a user (or an agent) can act on: each message is one sentence saying what to change."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import ValidationError


class TooltuneError(Exception):
    """Base class for errors whose message is meant for the user as-is."""


class ModelNotFoundError(TooltuneError):
    pass


class GGUFImportError(TooltuneError):
    pass


class WorkspaceError(TooltuneError):
    pass


class FirstError(NamedTuple):
    """The first problem pydantic found, in the parts every error message here is built from."""

    where: str  # dotted location ("lora.rank"), or the caller's default when the model itself failed
    msg: str
    type: str
    input: Any


def first_error(e: ValidationError, *, default: str = "value") -> FirstError:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or default
    return FirstError(where, err["msg"], err["type"], err.get("input"))
