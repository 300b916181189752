"""Tool sources: files, BFCL (function schemas only), built-ins and real MCP servers."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from tooltune.data.tool_sources import (
    ToolSourceError,
    clean_schema,
    list_mcp_tools,
    load_tool_specs,
    load_tools,
)

SERVER_SRC = textwrap.dedent(
    '''
    from mcp.server import MCPServer

    srv = MCPServer("demo")

    @srv.tool()
    def add_numbers(a: int, b: float = 1.5, tags: list[str] | None = None) -> float:
        """Add two numbers together."""
        return a + b

    @srv.tool()
    def open_ticket(title: str, priority: str = "low") -> str:
        """Open a support ticket."""
        return title

    if __name__ == "__main__":
        srv.run("stdio")
    '''
)


def test_json_and_yaml_files(tmp_path: Path) -> None:
    fn = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    (tmp_path / "t.json").write_text(json.dumps([fn]))
    (tmp_path / "t.yaml").write_text(
        "tools:\n  - name: ping\n    description: Ping a host.\n"
        "    parameters: {type: object, properties: {host: {type: string}}}\n"
    )
    tools = load_tool_specs([str(tmp_path / "t.json"), str(tmp_path / "t.yaml")])
    assert [t.name for t in tools] == ["get_weather", "ping"]
    assert tools[0].required == ["city"]
    assert tools[1].properties["host"] == {"type": "string"}


def test_malformed_file_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[\n {"name": "x",\n  "parameters": }\n]')
    with pytest.raises(ToolSourceError, match=r"bad\.json:3"):
        load_tools(str(bad))
    noname = tmp_path / "noname.json"
    noname.write_text('[{"description": "no name"}]')
    with pytest.raises(ToolSourceError, match=r"tools\[0\].*'name'"):
        load_tools(str(noname))
    with pytest.raises(ToolSourceError, match="does not exist"):
        load_tools(str(tmp_path / "missing.json"))


def test_bfcl_uses_only_function_schemas(bfcl_dir: Path) -> None:
    bfcl = bfcl_dir / "BFCL_v4_simple_python.json"
    tools = load_tools(f"bfcl:{bfcl}")
    first = json.loads(bfcl.read_text().splitlines()[0])
    assert tools[0].name == first["function"][0]["name"]
    assert tools[0].parameters["type"] == "object"  # BFCL "dict" normalised
    blob = json.dumps([t.to_openai() for t in tools])
    assert first["question"][0][0]["content"] not in blob
    assert '"type": "dict"' not in blob and '"type": "float"' not in blob


def test_any_bfcl_file_a_user_has_loads_whatever_its_name(tmp_path: Path) -> None:
    fn = {
        "name": "get_weather",
        "description": "Weather of a city.",
        "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}},
    }
    f = tmp_path / "BFCL_v4_live_simple.json"
    f.write_text(
        json.dumps(
            {"id": "live_simple_0", "question": [[{"role": "user", "content": "q"}]], "function": [fn]}
        )
        + "\n"
    )
    (tool,) = load_tools(f"bfcl:{f}")
    assert tool.name == "get_weather" and tool.parameters["type"] == "object"


def test_builtin_coding() -> None:
    names = [t.name for t in load_tools("builtin:coding")]
    assert "read_file" in names and "run_tests" in names
    with pytest.raises(ToolSourceError, match="builtin:coding"):
        load_tools("builtin:nope")


def test_clean_schema_inlines_refs_and_optional() -> None:
    s = {
        "type": "object",
        "title": "X",
        "$defs": {"P": {"type": "string", "enum": ["a", "b"], "title": "P"}},
        "properties": {
            "p": {"$ref": "#/$defs/P"},
            "q": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "Q"},
        },
    }
    out = clean_schema(s)
    assert out == {
        "type": "object",
        "properties": {"p": {"type": "string", "enum": ["a", "b"]}, "q": {"type": "integer"}},
    }


def test_mcp_in_memory_server() -> None:
    ns: dict = {}
    exec(SERVER_SRC, ns)  # noqa: S102 - our own test server source
    tools = anyio.run(list_mcp_tools, ns["srv"])
    by = {t.name: t for t in tools}
    assert set(by) == {"add_numbers", "open_ticket"}
    add = by["add_numbers"]
    assert add.description == "Add two numbers together."
    assert add.required == ["a"]
    assert add.properties["b"]["type"] == "number"
    assert add.properties["tags"] == {"type": "array", "items": {"type": "string"}}  # Optional collapsed
    assert "title" not in json.dumps(add.parameters)


def test_mcp_stdio_child(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SRC)
    tools = load_tools(f"mcp:{sys.executable} {script}")
    assert sorted(t.name for t in tools) == ["add_numbers", "open_ticket"]
    with pytest.raises(ToolSourceError, match="could not list tools|no tool list"):
        load_tools(f"mcp:{sys.executable} {tmp_path / 'nope.py'}")
