"""`tooltune mcp`: the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

from tooltune.errors import TooltuneError


def mcp(*, http: bool = False, host: str = "127.0.0.1", port: int = 8765) -> int:
    """Run the tooltune MCP server (not built yet).

    Parameters
    ----------
    http
        Serve streamable HTTP instead of stdio.
    host
        Address to bind with --http.
    port
        Port to bind with --http.
    """
    raise TooltuneError("`tooltune mcp` is not implemented yet (issue 7)")
