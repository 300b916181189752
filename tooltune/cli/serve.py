"""`tooltune serve`: an interactive coding-agent session on the served adapter."""

from __future__ import annotations

from tooltune.errors import TooltuneError


def serve(*, model: str | None = None, adapter: str | None = None) -> int:
    """Start the model server with an adapter and chat with the coding agent (not built yet).

    Parameters
    ----------
    model
        Base model reference (cache name, local MLX dir, GGUF file or hub id).
    adapter
        Registered adapter to serve (default: the workspace's active adapter, else baseline).
    """
    raise TooltuneError("`tooltune serve` is not implemented yet (issue 8)")
