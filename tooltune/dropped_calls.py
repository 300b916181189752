"""Telling a tool call that mlx_lm.server dropped from an answer without one.

mlx_lm.server moves the text between ``<tool_call>`` tags out of the answer and parses it; when the JSON
does not parse (``"heat_capacity": 5J/K``, or a call cut off by ``max_tokens``) it logs a warning and
returns neither the call nor its text. The answer then looks empty, but its finish reason still says
what happened: ``tool_calls`` (pydantic-ai: ``tool_call``) with no call, or ``length`` with no text at all.
"""

from __future__ import annotations


def server_dropped_call(finish_reason: str | None, *, has_calls: bool, text: str) -> bool:
    """True when the server ended the answer on a tool call it did not return."""
    if has_calls:
        return False
    return finish_reason == "tool_call" or (finish_reason == "length" and not text.strip())
