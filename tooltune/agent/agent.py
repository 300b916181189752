"""The coding agent: pydantic-ai over the model ``mlx_lm.server`` serves (base model + LoRA adapter).

The tool schemas the model sees are *exactly* the ones in :data:`CODING_TOOLS` — the same dicts the
training data and the eval suites use — because an adapter is trained on a rendering of those
schemas and any drift (a reordered ``required``, an added ``title``, strict-mode rewrites) changes the
prompt the adapter learned. That is why the tools are a small custom toolset over raw
``ToolDefinition``s instead of decorated Python functions whose schemas pydantic would regenerate.

Arguments are validated against the same JSON Schema; a failure raises ``ModelRetry`` with the
validator's message so pydantic-ai sends the model a retry prompt. Refusals from the sandbox (escape
attempts, disabled writes/commands, a user's "no") become ``ToolFailed`` — a failed tool result the
model reads, without burning its retry budget or ending the run. So does a call that repeats one of
the same run with nothing changed since: the repeat guard (:mod:`tooltune.agent.repeats`) answers it
instead of running it again.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx2
import jsonschema
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import ModelRetry, ToolFailed
from pydantic_ai.models import Model, create_async_httpx2_client
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.retries import AsyncHTTPX2TenacityTransport, RetryConfig
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from tenacity import retry_if_exception_type, stop_after_attempt, wait_exponential

from tooltune.agent import tools_impl
from tooltune.agent.lenient import LenientToolCallModel
from tooltune.agent.repeats import RepeatGuard
from tooltune.agent.sandbox import NEEDS, ApprovalFn, Sandbox, ToolRefusal
from tooltune.coding_tools import CODING_TOOLS, DEFAULT_INSTRUCTIONS
from tooltune.errors import TooltuneError
from tooltune.logs import get_logger
from tooltune.toolspec import ToolSpec

log = get_logger(__name__)


class ServedEndpoint(Protocol):
    """What the agent needs from :class:`tooltune.serving.model_server.ModelServer` (duck-typed)."""

    @property
    def base_url(self) -> str: ...

    @property
    def model_name(self) -> str: ...

    @property
    def extra_body(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RemoteEndpoint:
    """An OpenAI-compatible endpoint tooltune did not start (``eval --tasks --base-url``)."""

    base_url: str
    model_name: str = "default"
    extra_body: dict[str, Any] = field(default_factory=dict)


class JsonSchemaArgsValidator:
    """Validates a tool call's arguments against the tool's JSON Schema (the one the model was shown).

    Implements pydantic-ai's ``SchemaValidatorProt``. Errors become ``ModelRetry`` so the model gets a
    retry prompt naming the bad argument — pydantic-ai's retry path handles the rest.
    """

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec
        self._validator = jsonschema.Draft202012Validator(spec.parameters)
        self._known = set(spec.properties)

    def validate_json(self, input: str | bytes | bytearray, *, allow_partial: Any = False, **_: Any) -> Any:
        try:
            value = json.loads(input or "{}")
        except json.JSONDecodeError as e:
            if allow_partial not in (False, "off"):
                return {}
            raise ModelRetry(
                f"the arguments for {self.spec.name} are not valid JSON ({e.msg}); send a JSON object"
            ) from None
        return self.validate_python(value, allow_partial=allow_partial)

    def validate_python(self, input: Any, *, allow_partial: Any = False, **_: Any) -> Any:
        args = {} if input is None else input
        if not isinstance(args, dict):
            raise ModelRetry(
                f"the arguments for {self.spec.name} must be a JSON object, got {type(args).__name__}"
            )
        unknown = sorted(set(args) - self._known)
        problems = [f"unknown argument {k!r}" for k in unknown]
        for err in sorted(self._validator.iter_errors(args), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in err.path)
            problems.append(f"{where}: {err.message}" if where else err.message)
        if problems:
            expected = ", ".join(
                f"{k}{'' if k in self.spec.required else '?'}: {v.get('type', 'any')}"
                for k, v in self.spec.properties.items()
            )
            raise ModelRetry(
                f"invalid arguments for {self.spec.name}: {'; '.join(problems)}. "
                f"Expected {{{expected}}} (? = optional)."
            )
        return args


class CodingToolset(AbstractToolset[Any]):
    """The built-in coding tools, confined to one project root by a :class:`Sandbox`."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        specs: Sequence[ToolSpec] = CODING_TOOLS,
        max_retries: int = 2,
        toolset_id: str = "coding",
        repeat_guard: bool = True,
    ) -> None:
        self.sandbox = sandbox
        # a call that repeats an earlier one of the same run, with nothing changed since, is answered
        # by the guard instead of run again (agent/repeats.py); None: every call runs
        self.repeats = RepeatGuard() if repeat_guard else None
        self.specs = list(specs)
        self.max_retries = max_retries
        self._id = toolset_id
        self._validators = {s.name: JsonSchemaArgsValidator(s) for s in self.specs}
        self._impls: dict[str, Callable[..., str]] = {
            "read_file": tools_impl.read_file,
            "write_file": tools_impl.write_file,
            "list_dir": tools_impl.list_dir,
            "search_code": tools_impl.search_code,
            "run_command": tools_impl.run_command,
            "run_tests": tools_impl.run_tests,
            "git_status": tools_impl.git_status,
            "git_diff": tools_impl.git_diff,
        }
        missing = [s.name for s in self.specs if s.name not in self._impls]
        if missing:
            raise TooltuneError(f"no implementation for built-in tool(s) {missing}; update tools_impl.py")

    @property
    def id(self) -> str | None:
        return self._id

    def tool_definitions(self) -> list[ToolDefinition]:
        """The definitions sent to the model: name, description and a deep copy of the exact schema.

        ``strict=False`` keeps OpenAI-style strict mode (which rewrites schemas) off.
        """
        return [
            ToolDefinition(
                name=s.name,
                description=s.description,
                parameters_json_schema=copy.deepcopy(s.parameters),
                strict=False,
            )
            for s in self.specs
        ]

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        return {
            td.name: ToolsetTool(
                toolset=self,
                tool_def=td,
                max_retries=self.max_retries,
                args_validator=self._validators[td.name],
            )
            for td in self.tool_definitions()
        }

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> str:
        run = ctx.run_id
        guard = self.repeats if run is not None else None
        if guard is not None and (repeat := guard.check(run, name, tool_args)) is not None:  # type: ignore[arg-type]
            log.info("tool call repeated", tool=name)
            raise ToolFailed(repeat)
        need = NEEDS.get(name)
        lasting = need is not None  # a refusal by the session's permissions outlasts any change
        ran = False
        try:
            if need is not None:
                self.sandbox.check(need, name)
                lasting = False  # from here on: the user's answer, or the tool on the project as it is
                await self.sandbox.require(need, name, tool_args)
            result = await self._run(name, tool_args)
            ran = True
            return result
        except ToolRefusal as e:  # the tools refuse before they change anything (a missing file, a bad path)
            log.debug("tool refused", tool=name, reason=str(e))
            if guard is not None:
                guard.refused(run, name, tool_args, str(e), lasting=lasting)  # type: ignore[arg-type]
            raise ToolFailed(str(e)) from None
        except BaseException:
            ran = True  # failed in a way we cannot read: it may have changed something
            raise
        finally:
            if guard is not None and ran:
                guard.ran(run, name)  # type: ignore[arg-type]

    async def execute(self, name: str, args: dict[str, Any]) -> str:
        """Run one tool outside an agent run (policy first, then the implementation; no repeat guard)."""
        need = NEEDS.get(name)
        if need is not None:
            await self.sandbox.require(need, name, args)
        return await self._run(name, args)

    async def _run(self, name: str, args: dict[str, Any]) -> str:
        """The tool's implementation in a worker thread (the policy was checked by the caller)."""
        impl = self._impls[name]
        return await anyio.to_thread.run_sync(lambda: impl(self.sandbox, **args))


@dataclass
class NotesChanges(WrapperToolset[Any]):
    """Another toolset (an MCP server's) whose every call counts as a change for the built-in tools'
    repeat guard: the guard cannot know what such a call did to the project."""

    guard: RepeatGuard = field(default_factory=RepeatGuard)

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        try:
            return await super().call_tool(name, tool_args, ctx, tool)
        finally:
            if ctx.run_id is not None:
                self.guard.changed(ctx.run_id)


# mlx_lm.server listens with a backlog of 5 and resets connections of a burst beyond it (many tasks or
# sessions at once): a request that got no answer at all is sent again, up to this many times (0.5, 1,
# 2 s apart), as ModelServer.chat does; timeouts and error answers are not retried here
DROPPED_CONNECTION_RETRIES = 3
_NO_ANSWER = (httpx2.ConnectError, httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError)


def dropped_connection_retries(
    wrapped: httpx2.AsyncBaseTransport | None = None,
) -> AsyncHTTPX2TenacityTransport:
    """An HTTP transport (pydantic-ai's tenacity one) that sends a request again when the connection was
    dropped without an answer, and only then."""
    config = RetryConfig(
        retry=retry_if_exception_type(_NO_ANSWER),
        wait=wait_exponential(multiplier=0.5, max=4),
        stop=stop_after_attempt(DROPPED_CONNECTION_RETRIES + 1),
        reraise=True,
    )
    return AsyncHTTPX2TenacityTransport(config, wrapped=wrapped)


def openai_model(base_url: str, model_name: str, *, http_client: Any = None) -> OpenAIChatModel:
    """An OpenAI-compatible chat model at a local server (mlx_lm.server speaks /v1/chat/completions);
    without an ``http_client``, one whose dropped connections are retried."""
    client = http_client or create_async_httpx2_client(transport=dropped_connection_retries())
    provider = OpenAIProvider(base_url=base_url, api_key="local", http_client=client)
    return OpenAIChatModel(model_name, provider=provider)


def server_model(server: ServedEndpoint, *, lenient_tools: bool = False, http_client: Any = None) -> Model:
    """The model for the adapter the server is serving *now*, wrapped for text-call recovery/detection.

    Built per turn (it is cheap) so a ``switch_adapter`` that changes the model name takes effect.
    """
    inner = openai_model(server.base_url, server.model_name, http_client=http_client)
    return LenientToolCallModel(inner, recover=lenient_tools)


def server_settings(server: ServedEndpoint | None, base: ModelSettings | None = None) -> ModelSettings:
    """Settings for one run: the server's ``extra_body`` (the adapter selection) and its request timeout."""
    settings: ModelSettings = dict(base or {})  # type: ignore[assignment]
    if server is not None:
        # a CPU-bound local model can take minutes per request; the OpenAI client's default (600 s, then
        # a retry that queues a duplicate generation) is wrong here, so follow the server's own limit
        settings.setdefault("timeout", float(getattr(server, "request_timeout", None) or 1800.0))
    extra = dict(getattr(server, "extra_body", None) or {}) if server is not None else {}
    if extra:
        merged = dict(settings.get("extra_body") or {})  # type: ignore[arg-type]
        merged.update(extra)
        settings["extra_body"] = merged
    return settings


def mcp_toolset(
    command: str, *, cwd: Path | None = None, toolset_id: str | None = None
) -> AbstractToolset[Any]:
    """An external MCP server's tools, started as a stdio child from ``"program arg …"`` (shlex-split).

    The adapter may have been trained on that server's tool list (``tooltune data`` reads it the same
    way), so serving it with the same tools closes the loop. Tool errors come back as failed results.
    """
    from fastmcp.client.transports import StdioTransport
    from pydantic_ai.mcp import MCPToolset

    argv = shlex.split(command)
    if not argv:
        raise TooltuneError("--mcp needs a command, e.g. --mcp 'python my_server.py'")
    transport = StdioTransport(command=argv[0], args=argv[1:], cwd=str(cwd) if cwd else None)
    return MCPToolset(transport, id=toolset_id or f"mcp-{Path(argv[0]).name}", tool_error_behavior="failed")


def build_agent(
    *,
    root: Path,
    model: Model | None = None,
    allow_write: bool = False,
    allow_exec: bool = False,
    approve: ApprovalFn | None = None,
    mcp_commands: Sequence[str] = (),
    extra_toolsets: Sequence[AbstractToolset[Any]] = (),
    instructions: str | None = DEFAULT_INSTRUCTIONS,
    max_retries: int = 2,
    repeat_guard: bool = True,
) -> Agent[None, str]:
    """The coding agent over a project root.

    ``model`` may be omitted and passed per run (``agent.run(..., model=server_model(server))``), which
    is how sessions follow adapter switches. ``approve`` is consulted before each write/command that
    the flags allow (the REPL asks y/n; scripts pass None). ``repeat_guard`` answers a built-in tool
    call that repeats an earlier one of the same run, with nothing changed since, instead of running it
    again (agent/repeats.py).
    """
    sandbox = Sandbox(Path(root), allow_write=allow_write, allow_exec=allow_exec, approve=approve)
    coding = CodingToolset(sandbox, max_retries=max_retries, repeat_guard=repeat_guard)
    others: list[AbstractToolset[Any]] = [
        mcp_toolset(cmd, cwd=sandbox.root, toolset_id=f"mcp{i}") for i, cmd in enumerate(mcp_commands)
    ]
    others += list(extra_toolsets)
    guard = coding.repeats
    toolsets: list[AbstractToolset[Any]] = [
        coding,
        *(others if guard is None else [NotesChanges(ts, guard=guard) for ts in others]),
    ]
    return Agent(
        model,
        output_type=str,
        instructions=instructions,
        toolsets=toolsets,
        retries=max_retries,
    )


def coding_toolset(agent: Agent[Any, Any]) -> CodingToolset:
    """The agent's built-in toolset (for its sandbox and tool list)."""
    found: list[CodingToolset] = []
    for ts in agent.toolsets:
        ts.apply(lambda t: found.append(t) if isinstance(t, CodingToolset) else None)
    if found:
        return found[0]
    raise TooltuneError("this agent has no built-in coding toolset; build it with build_agent()")
