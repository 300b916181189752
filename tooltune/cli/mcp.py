"""`tooltune mcp`: the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import os
import secrets
import sys

from tooltune.cli import context
from tooltune.errors import TooltuneError
from tooltune.logs import get_logger

log = get_logger(__name__)

TOKEN_ENV = "TOOLTUNE_MCP_TOKEN"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MIN_TOKEN_CHARS = 16


def mcp(
    *,
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = 8765,
    allow_spawn: bool | None = None,
) -> int:
    """Run the tooltune MCP server: the whole loop (generate data, train, eval, switch adapters) as tools.

    Over stdio by default, which is how coding agents launch it
    (`claude mcp add tooltune -- tooltune mcp --workspace /path`). Logs go to stderr only: stdout is the
    protocol channel.

    Over --http every request must carry `Authorization: Bearer <token>` (else 401). The token is
    TOOLTUNE_MCP_TOKEN when set (at least 16 characters), else a fresh one printed to stderr at start.
    A --host other than 127.0.0.1, ::1 or localhost is refused unless TOOLTUNE_MCP_TOKEN is set.

    Parameters
    ----------
    http
        Serve streamable HTTP (at http://HOST:PORT/mcp) instead of stdio, behind a bearer token.
    host
        Address to bind with --http; non-loopback needs TOOLTUNE_MCP_TOKEN set.
    port
        Port to bind with --http.
    allow_spawn
        Let clients have the server start programs (generate_training_examples with mcp_server as a
        command line). Default: on over stdio (the client is your own agent), off over --http.
    """
    from tooltune.server import build_server

    spawn = (not http) if allow_spawn is None else allow_spawn
    token = _http_token(host) if http else None
    settings = context.settings()
    server = build_server(settings, allow_spawn=spawn, http_token=token)
    log.info(
        "mcp server starting",
        transport="http" if http else "stdio",
        workspace=str(settings.workspace),
        allow_spawn=spawn,
    )
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")
    return 0


def _http_token(host: str) -> str:
    """The bearer token for --http: TOOLTUNE_MCP_TOKEN, or a generated one shown on stderr (never
    stdout). Rule: binding beyond loopback needs the owner to have chosen the token (the env var) — a
    printed one is only good for clients on this machine."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    url_host = f"[{host}]" if ":" in host else host
    if token:
        if len(token) < MIN_TOKEN_CHARS:
            raise TooltuneError(
                f"{TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters; use a long random one, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe())'`"
            )
        print(
            f"tooltune mcp: HTTP clients must send the header `Authorization: Bearer <token>` with the "
            f"token from {TOKEN_ENV} (endpoint http://{url_host}:<port>/mcp)",
            file=sys.stderr,
            flush=True,
        )
        return token
    if host not in LOOPBACK_HOSTS:
        raise TooltuneError(
            f"--host {host} is not loopback (127.0.0.1, ::1, localhost): anyone who can reach it could drive "
            f"this server; set {TOKEN_ENV} to a long random token that you give your clients, or bind "
            "127.0.0.1"
        )
    token = secrets.token_urlsafe(32)
    print(
        f"tooltune mcp: HTTP clients must send the header `Authorization: Bearer {token}` "
        f"(set {TOKEN_ENV} to choose the token yourself)",
        file=sys.stderr,
        flush=True,
    )
    return token
