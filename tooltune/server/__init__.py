"""The MCP server: the tooltune loop as tools and resources for coding agents (`tooltune mcp`)."""

from tooltune.server.app import build_server

__all__ = ["build_server"]
