"""Load tool specs from wherever tools are described: files, MCP servers, BFCL files, built-ins.

One spec string per source, as on the command line:

- ``tools.json`` / ``tools.yaml`` — a list (or ``{"tools": [...]}``) of OpenAI-format functions;
- ``mcp:"command args"`` — launch a stdio MCP server and ``list_tools``; ``mcp:http://host/mcp`` — connect
  over streamable HTTP;
- ``bfcl:path/BFCL_x.json`` — only the ``function`` schemas of that file (its questions are eval data and
  are never read into memory as text to learn from);
- ``builtin:coding`` — the agent's own coding tools; ``builtin:issue-tracker`` and
  ``builtin:notes-calendar`` — the tools of the built-in suites of those names.

Every source ends as :class:`ToolSpec` with plain JSON Schema parameters, so one validator and one chat
template serve them all.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from tooltune.coding_tools import CODING_TOOLS
from tooltune.errors import TooltuneError
from tooltune.evals.suite import BUILTIN_TOOLSETS, builtin_toolset_text
from tooltune.logs import get_logger
from tooltune.toolspec import ToolSpec, normalize_schema

log = get_logger(__name__)


class ToolSourceError(TooltuneError):
    """A tool spec could not be loaded; the message names the source (and line/field when known)."""


def load_tool_specs(specs: list[str], *, base_dir: Path | None = None) -> list[ToolSpec]:
    """Load every spec string and concatenate; exact duplicates (same name and schema) are dropped.

    Two different tools with one name (BFCL has a few) are both kept: examples validate calls against
    the tools listed in the example itself, and the generator never offers both in one example.
    """
    out: list[ToolSpec] = []
    seen: set[str] = set()
    for spec in specs:
        for tool in load_tools(spec, base_dir=base_dir):
            key = json.dumps(tool.to_openai(), sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(tool)
    if not out:
        raise ToolSourceError(f"no tools found in {specs}; pass at least one source that lists tools")
    return out


def is_mcp_url(target: str) -> bool:
    """Whether an ``mcp:`` target is a streamable-HTTP URL (anything else is a command line to start)."""
    return target.strip().startswith(("http://", "https://"))


def spawns_program(spec: str) -> bool:
    """Whether loading ``spec`` starts a program: ``mcp:<command line>`` does (any command the caller
    names); ``mcp:http(s)://...``, files, ``bfcl:`` and ``builtin:`` only read or connect.

    The one place that decides it: a caller that must not start programs for someone else (the MCP
    server over HTTP) asks this before loading anything."""
    spec = spec.strip()
    return spec.startswith("mcp:") and not is_mcp_url(spec[4:])


def load_tools(spec: str, *, base_dir: Path | None = None) -> list[ToolSpec]:
    """Load one spec string (see module docstring)."""
    spec = spec.strip()
    if spec.startswith("builtin:"):
        which = spec.split(":", 1)[1]
        if which == "coding":
            return [t.model_copy(deep=True) for t in CODING_TOOLS]
        if which in BUILTIN_TOOLSETS:
            return _tools_from_text(f"builtin:{BUILTIN_TOOLSETS[which]}", builtin_toolset_text(which))
        names = ", ".join(f"builtin:{n}" for n in ["coding", *BUILTIN_TOOLSETS])
        raise ToolSourceError(f"unknown built-in tool set {which!r}; choose one of {names}")
    if spec.startswith("mcp:"):
        return tools_from_mcp(spec[4:].strip())
    if spec.startswith("bfcl:"):
        return tools_from_bfcl(_resolve(spec[5:], base_dir))
    return tools_from_file(_resolve(spec, base_dir))


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    if not p.exists():
        raise ToolSourceError(
            f"tool source {path!r} does not exist; pass a JSON/YAML file, bfcl:FILE, mcp:... "
            "or builtin:coding"
        )
    return p


def tools_from_file(path: Path) -> list[ToolSpec]:
    """A JSON or YAML document: a list of functions, ``{"tools": [...]}``, or one function; JSONL too."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data: Any = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except json.JSONDecodeError as e:
        if path.suffix.lower() == ".jsonl" or e.msg == "Extra data":
            return _tools_from_jsonl(path, text)
        raise ToolSourceError(f"{path}:{e.lineno}: invalid JSON ({e.msg}); fix the tool file") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = (mark.line + 1) if mark is not None else 0
        raise ToolSourceError(f"{path}:{line}: invalid YAML ({e}); fix the tool file") from e
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ToolSourceError(f"{path}: expected a list of OpenAI function specs, got {type(data).__name__}")
    return [_tool_from_dict(item, f"{path}: tools[{i}]") for i, item in enumerate(data)]


def _tools_from_text(where: str, text: str) -> list[ToolSpec]:
    """A packaged JSON list of functions (the built-in tool sets)."""
    return [_tool_from_dict(item, f"{where}: tools[{i}]") for i, item in enumerate(json.loads(text))]


def _tools_from_jsonl(path: Path, text: str) -> list[ToolSpec]:
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise ToolSourceError(f"{path}:{i}: invalid JSON ({e.msg}); fix that line") from e
        out.append(_tool_from_dict(item, f"{path}:{i}"))
    return out


def _tool_from_dict(item: Any, where: str) -> ToolSpec:
    if not isinstance(item, dict):
        raise ToolSourceError(f"{where}: expected an object with 'name' and 'parameters'")
    fn = item.get("function", item)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn.get("name"):
        raise ToolSourceError(f"{where}: field 'name' is missing or not a string")
    params = fn.get("parameters", fn.get("input_schema", fn.get("inputSchema")))
    if params is not None and not isinstance(params, dict):
        raise ToolSourceError(f"{where}: field 'parameters' of {fn['name']!r} must be a JSON Schema object")
    spec = ToolSpec(
        name=fn["name"],
        description=str(fn.get("description") or ""),
        parameters=clean_schema(normalize_schema(params or {"type": "object", "properties": {}})),
    )
    _check_schema(spec, where)
    return spec


def _check_schema(spec: ToolSpec, where: str) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(spec.parameters)
    except SchemaError as e:
        field = "/".join(str(p) for p in e.path) or "parameters"
        raise ToolSourceError(
            f"{where}: invalid JSON Schema for {spec.name!r} at {field}: {e.message}"
        ) from e
    if spec.parameters.get("type", "object") != "object":
        raise ToolSourceError(f"{where}: parameters of {spec.name!r} must be an object schema")


def tools_from_bfcl(path: Path) -> list[ToolSpec]:
    """Only the ``function`` field of each BFCL line; ``question`` is discarded unread. Any BFCL file
    a user has is theirs to train from; which files a benchmark keeps out of training is the benchmark's
    discipline, not this loader's."""
    out: list[ToolSpec] = []
    with Path(path).open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ToolSourceError(f"{path}:{i}: invalid JSON ({e.msg}); is this a BFCL file?") from e
            fns = obj.get("function") if isinstance(obj, dict) else None
            if not isinstance(fns, list):
                raise ToolSourceError(f"{path}:{i}: field 'function' missing; is this a BFCL file?")
            for j, fn in enumerate(fns):
                out.append(_tool_from_dict(fn, f"{path}:{i}: function[{j}]"))
    return out


def clean_schema(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """Make a schema template- and model-friendly: inline ``$ref``s, drop ``title``s (pydantic noise that
    costs tokens), and collapse ``anyOf[X, null]`` (Optional) to ``X`` — the model should simply omit an
    optional argument rather than learn to send null."""
    if isinstance(schema, list):
        return [clean_schema(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if defs is None:
        defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
        target = defs.get(ref.rsplit("/", 1)[1])
        if target is not None:
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return clean_schema(merged, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "$defs", "definitions"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: clean_schema(v, defs) for k, v in value.items()}
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            non_null = [v for v in value if not (isinstance(v, dict) and v.get("type") == "null")]
            if len(non_null) == 1 and len(non_null) < len(value):
                for k, v in clean_schema(non_null[0], defs).items():
                    out.setdefault(k, v)
            else:
                out[key] = clean_schema(value, defs)
        elif key in ("items", "additionalProperties", "allOf", "not"):
            out[key] = clean_schema(value, defs)
        else:
            out[key] = value
    if out.get("default", 0) is None:
        del out["default"]
    return out


def tools_from_mcp(target: str, *, timeout: float = 30.0) -> list[ToolSpec]:
    """``list_tools`` of an MCP server: a URL (streamable HTTP) or a stdio command line."""
    import anyio

    return anyio.run(_list_mcp_tools, target, timeout)


async def list_mcp_tools(server: Any, *, timeout: float = 30.0) -> list[ToolSpec]:
    """Async form; ``server`` is anything ``mcp.Client`` accepts (URL, StdioServerParameters, an
    in-process ``MCPServer``) or a command-line string."""
    return await _list_mcp_tools(server, timeout)


async def _list_mcp_tools(target: Any, timeout: float) -> list[ToolSpec]:
    import anyio
    from mcp import Client, StdioServerParameters

    server: Any = target
    label = str(target)
    if isinstance(target, str):
        if is_mcp_url(target):  # the same test as spawns_program: what is not a URL gets started
            server = target.strip()
        else:
            argv = shlex.split(target)
            if not argv:
                raise ToolSourceError('mcp: needs a command or URL, e.g. mcp:"python -m my_server"')
            server = StdioServerParameters(command=argv[0], args=argv[1:])
    tools: list[ToolSpec] = []
    try:
        with anyio.fail_after(timeout):
            async with Client(server) as client:
                cursor: str | None = None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    for t in page.tools:
                        tools.append(
                            _tool_from_dict(
                                {
                                    "name": t.name,
                                    "description": t.description or "",
                                    "parameters": t.input_schema,
                                },
                                f"mcp:{label}: tool {t.name!r}",
                            )
                        )
                    cursor = page.next_cursor
                    if not cursor:
                        break
    except ToolSourceError:
        raise
    except TimeoutError as e:
        raise ToolSourceError(
            f"mcp:{label}: no tool list within {timeout:.0f}s; check the server starts"
        ) from e
    except Exception as e:  # connection refused, child died, protocol error: all the same to the user
        raise ToolSourceError(
            f"mcp:{label}: could not list tools ({type(e).__name__}: {e}); check the command or URL"
        ) from e
    log.info("mcp tools listed", source=label, count=len(tools))
    return tools
