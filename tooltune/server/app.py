"""Build the tooltune MCP server: tools and resources over one workspace's services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server import MCPServer

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


def build_server(settings: Settings, *, state: ServerState | None = None) -> MCPServer[ServerState]:
    """One server per workspace; the state object outlives client connections (in-process clients
    enter the lifespan once per connection, HTTP once per process). Tests pass their own ``state`` to
    look inside it."""
    state = state or ServerState(settings)

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
    )
    register_tools(mcp, state)
    register_resources(mcp, state)
    return mcp
