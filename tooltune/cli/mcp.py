"""`tooltune mcp`: the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

from tooltune.cli import context
from tooltune.logs import get_logger

log = get_logger(__name__)


def mcp(*, http: bool = False, host: str = "127.0.0.1", port: int = 8765) -> int:
    """Run the tooltune MCP server: the whole loop (generate data, train, eval, switch adapters) as tools.

    Over stdio by default, which is how coding agents launch it
    (`claude mcp add tooltune -- tooltune mcp --workspace /path`). Logs go to stderr only: stdout is the
    protocol channel.

    Parameters
    ----------
    http
        Serve streamable HTTP (at http://HOST:PORT/mcp) instead of stdio.
    host
        Address to bind with --http.
    port
        Port to bind with --http.
    """
    from tooltune.server import build_server

    settings = context.settings()
    server = build_server(settings)
    log.info("mcp server starting", transport="http" if http else "stdio", workspace=str(settings.workspace))
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")
    return 0
