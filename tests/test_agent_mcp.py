"""--mcp: an external MCP server's tools join the built-in ones and are callable by the model."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import anyio
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tooltune.agent.session import ask
from tooltune.coding_tools import CODING_TOOLS

SERVER = textwrap.dedent(
    """
    from mcp.server import MCPServer

    server = MCPServer("demo")

    @server.tool()
    def shout(text: str) -> str:
        \"\"\"Upper-case the text.\"\"\"
        return text.upper() + "!"

    server.run("stdio")
    """
)


def test_mcp_server_tools_are_offered_and_called(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    offered: list[list[str]] = []

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        offered.append([t.name for t in info.function_tools])
        returns = [
            p
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        ]
        if not returns:
            return ModelResponse(parts=[ToolCallPart("shout", {"text": "it works"})])
        return ModelResponse(parts=[TextPart(returns[-1].model_response_str())])

    result = anyio.run(
        lambda: ask("x", root=tmp_path, model=FunctionModel(fn), mcp_commands=[f"{sys.executable} {script}"])
    )
    assert result.error is None
    assert offered[0] == [s.name for s in CODING_TOOLS] + ["shout"]
    assert result.answer == "IT WORKS!"
    assert [(c.name, c.ok) for c in result.tool_calls] == [("shout", True)]
