"""`tooltune ask`: one prompt through the coding agent, non-interactively."""

from __future__ import annotations

from tooltune.errors import TooltuneError


def ask(prompt: str, *, model: str | None = None, adapter: str | None = None, json: bool = False) -> int:
    """Run one prompt through the coding agent and print the answer (not built yet).

    Parameters
    ----------
    prompt
        What to ask.
    model
        Base model reference.
    adapter
        Registered adapter to use.
    json
        Print the answer and the tool calls made as JSON.
    """
    raise TooltuneError("`tooltune ask` is not implemented yet (issue 8)")
