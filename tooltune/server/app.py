"""Build the tooltune MCP server: tools and resources over one workspace's services."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server import MCPServer
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from tooltune import __version__
from tooltune.config import Settings
from tooltune.server.resources import register_resources
from tooltune.server.state import ServerState
from tooltune.server.tools import register_tools

INSTRUCTIONS = """\
tooltune makes a small local MLX model reliable at tool calling. The loop:
1. generate_training_examples (your tools + optionally your own examples) -> dataset name
2. train_adapter(dataset) -> job id; poll get_job until done -> adapter name
3. run_eval_suite(adapter=..., baseline=true, limit=...) -> job id; get_job -> scores + comparison
4. switch_adapter(name) to serve the winner (null = base model); list_adapters shows what exists.
Long work is a job on disk: ids survive reconnects (list_jobs). Errors say what to change.
Resources: tooltune://adapters/{name}, tooltune://datasets/{name}, tooltune://runs/{id}, tooltune://reports/{id}.
"""


def build_server(
    settings: Settings,
    *,
    state: ServerState | None = None,
    allow_spawn: bool = True,
    http_token: str | None = None,
) -> MCPServer[ServerState]:
    """One server per workspace; the state object outlives client connections (in-process clients
    enter the lifespan once per connection, HTTP once per process). Tests pass their own ``state`` to
    look inside it (its ``allow_spawn`` then wins over the argument).

    ``allow_spawn``: whether tools may start a program the client names (an ``mcp_server`` command
    line). ``http_token``: the bearer token every streamable-HTTP request must carry (None = no check;
    stdio and in-process clients are never asked for one)."""
    state = state or ServerState(settings, allow_spawn=allow_spawn)

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        async with state.running():
            yield state

    mcp: MCPServer[ServerState] = MCPServer(
        "tooltune",
        title="tooltune",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
        **_bearer_auth(http_token),
    )
    register_tools(mcp, state)
    register_resources(mcp, state)
    return mcp


class _StaticTokenVerifier:
    """The SDK's TokenVerifier for one shared secret: `tooltune mcp --http` has no OAuth server, only a
    token the owner hands to their clients. It plugs into the SDK's own auth hooks (token_verifier +
    AuthSettings), so the SDK's Starlette app itself answers 401 with WWW-Authenticate to any request on
    /mcp without this token; no middleware of ours sits around the protocol."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):  # constant time: no guessing by timing
            return AccessToken(token=token, client_id="tooltune-owner", scopes=[])
        return None


def _bearer_auth(token: str | None) -> dict[str, Any]:
    if token is None:
        return {}
    # issuer_url is required by AuthSettings but only used to publish OAuth metadata, which needs
    # resource_server_url (left unset) or an authorization-server provider (none): nothing advertises it.
    return {
        "token_verifier": _StaticTokenVerifier(token),
        "auth": AuthSettings(issuer_url="http://127.0.0.1", resource_server_url=None),
    }
