"""The MCP tools: the tooltune loop (generate → validate → train → eval → compare → switch) for agents.

Each tool is a thin skin over a service: it turns arguments into the service's call, runs blocking work
in a thread (the event loop must keep answering other requests and relaying progress), and returns a
pydantic model. Descriptions are written for the calling model: what the tool does, how long it takes,
and what to call next. Tool names are the contract with agents (docs/DESIGN.md, "MCP surface"). One
module per tool group.
"""

from __future__ import annotations

from mcp.server import MCPServer

from tooltune.server.state import ServerState
from tooltune.server.tools import adapters, data, evals, jobs, samples, training


def register_tools(mcp: MCPServer, state: ServerState) -> None:
    for group in (data, samples, training, evals, adapters, jobs):
        group.register(mcp, state)
    samples.register_improve(mcp, state)
