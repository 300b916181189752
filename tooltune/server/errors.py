"""Turn service failures into answers an agent can act on.

A `TooltuneError` already says, in one sentence, what to change (bad dataset name, unknown adapter,
invalid config value): it becomes a `ToolError` with that sentence. Anything else is our bug, not the
caller's: the traceback goes to stderr under a short id and the agent gets a generic message naming
that id, so nothing internal (paths, stack frames) leaks into the model's context, and a human can
still find the log line.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import ValidationError

from tooltune.errors import TooltuneError, first_error
from tooltune.logs import get_logger

log = get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def internal_error_id() -> str:
    return uuid.uuid4().hex[:8]


def as_tool_error(exc: BaseException, *, where: str) -> ToolError:
    """Map one exception to the `ToolError` the client will read."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, TooltuneError):
        return ToolError(str(exc))
    if isinstance(exc, ValidationError):
        # A service model rejected a value the caller passed through (e.g. a config override).
        first = first_error(exc)
        return ToolError(f"invalid {first.where}: {first.msg}; change it and call {where} again")
    error_id = internal_error_id()
    log.error("mcp internal error", tool=where, error_id=error_id, exc_info=exc)
    return ToolError(
        f"internal error {error_id} in {where}; this is a tooltune bug, not your input — the server log "
        f"on stderr has the details under that id"
    )


def agent_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorator for tool functions: every failure leaves as a `ToolError` (see module docstring)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except Exception as exc:
            raise as_tool_error(exc, where=fn.__name__) from exc

    return wrapper


def resource_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """The same mapping for resource readers, which report through `ResourceError` instead."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ResourceError:
            raise
        except Exception as exc:
            raise ResourceError(str(as_tool_error(exc, where=fn.__name__))) from exc

    return wrapper
