"""The owner's permission to start programs (mcp_server as a command line), and output schemas that any
client's JSON Schema validator accepts. In memory (`mcp.Client(server)`), no model needed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp
import pytest
from test_mcp_tools import TOOLS, WEATHER

from tooltune.config import Settings
from tooltune.data.tool_sources import spawns_program
from tooltune.server import build_server
from tooltune.server.state import ServerState

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("spec", "spawns"),
    [
        ("mcp:touch /tmp/x", True),
        ('mcp:"python -m my_server"', True),
        ("  mcp: node server.js ", True),
        ("mcp:HTTP://host/mcp", True),  # not a URL to the loader either: it would be started as a command
        ("mcp:http://127.0.0.1:8765/mcp", False),
        ("mcp: https://example.com/mcp", False),
        ("builtin:coding", False),
        ("bfcl:BFCL_v3_simple.json", False),
        ("tools.json", False),
    ],
)
def test_spawns_program_says_which_specs_start_a_program(spec: str, spawns: bool) -> None:
    assert spawns_program(spec) is spawns


async def test_command_line_mcp_server_refused_without_permission(settings: Settings, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    state = ServerState(settings, allow_spawn=False)
    async with mcp.Client(build_server(settings, state=state)) as c:
        for args in (
            {"mcp_server": f"touch {pwned}", "name": "evil"},
            {"mcp_server": f"touch {pwned}", "tools": [WEATHER], "examples": [{"request": "x", "calls": []}]},
            {"mcp_server": f"  HTTP://x; touch {pwned}"},
        ):
            result = await c.call_tool("generate_training_examples", args)
            assert result.is_error, result.structured_content
            text = result.content[0].text  # type: ignore[union-attr]
            assert "starting programs is off" in text and "tooltune mcp --http --allow-spawn" in text
        # a URL is no program: it gets past the check (and fails later, connecting to nothing)
        result = await c.call_tool("generate_training_examples", {"mcp_server": "http://127.0.0.1:9/mcp"})
        assert result.is_error and "allow-spawn" not in result.content[0].text  # type: ignore[union-attr]
    assert not pwned.exists()
    ws = settings.workspace
    assert not (ws / "inputs").exists() or not any((ws / "inputs").iterdir())  # nothing written either
    assert not any(ws.joinpath("datasets").iterdir())


async def test_command_line_mcp_server_runs_with_permission(settings: Settings, tmp_path: Path) -> None:
    """Default for build_server (and `tooltune mcp` over stdio): the command is started. `touch` is no MCP
    server, so listing its tools fails, but the file proves it ran (test_mcp_stdio covers a real one)."""
    ran = tmp_path / "ran"
    async with mcp.Client(build_server(settings)) as c:
        result = await c.call_tool("generate_training_examples", {"mcp_server": f"touch {ran}", "n": 5})
    assert result.is_error and "could not list tools" in result.content[0].text  # type: ignore[union-attr]
    assert ran.exists()


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{path}/{k}", k, v
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}/{i}")


async def test_no_schema_uses_the_nonstandard_path_format(settings: Settings) -> None:
    async with mcp.Client(build_server(settings)) as c:
        tools = (await c.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for t in tools:
        for schema in (t.output_schema, t.input_schema):
            bad = [p for p, k, v in _walk(schema) if k == "format" and v == "path"]
            assert not bad, (t.name, bad)
            assert '"format": "path"' not in json.dumps(schema)
