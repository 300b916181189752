"""Conversations with the coding agent: one-shot :func:`ask` for scripts, :func:`run_repl` for people.

Both go through :class:`AgentSession`, which keeps the message history between turns, builds the
model for each turn from what the :class:`~tooltune.serving.model_server.ModelServer` serves *now* (so
``/adapter`` switches take effect on the next turn), and turns a pydantic-ai run into typed results —
the answer, every tool call with whether it succeeded, usage, and how many calls had to be recovered
from text. Errors a run can hit (step limit, a model that keeps sending bad calls, a dead server)
become ``TurnResult.error`` rather than tracebacks: a scripted ``ask`` should always get JSON back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pydantic_ai
from pydantic import BaseModel, Field
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import AgentRunError, ModelAPIError, UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.markup import escape

from tooltune.agent.agent import (
    CodingToolset,
    ServedEndpoint,
    build_agent,
    coding_toolset,
    server_model,
    server_settings,
)
from tooltune.agent.lenient import LenientToolCallModel
from tooltune.agent.sandbox import ApprovalFn
from tooltune.errors import TooltuneError
from tooltune.logs import get_logger

log = get_logger(__name__)

# We own the terminal (and ``ask --json`` owns stdout): pydantic-ai's first-run banner must not appear.
pydantic_ai.BANNER_ENABLED = False

DEFAULT_MAX_STEPS = 20
RESULT_PREVIEW_CHARS = 400


class ToolCallRecord(BaseModel):
    """One tool call the model made in a turn, and how it ended."""

    name: str
    args: dict[str, Any] | str
    ok: bool = Field(description="True when the tool ran and returned a result.")
    outcome: str = Field(
        description="success | failed (refused or tool error) | retried (bad call) | pending"
    )
    result: str = Field(default="", description="The start of what the model was sent back.")


class UsageInfo(BaseModel):
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0


class ServedInfo(BaseModel):
    """The line users see to know what answered them: model, adapter, and whether that was proven."""

    model: str
    adapter: str | None = None
    verified: bool = False

    def render(self) -> str:
        mark = "verified" if self.verified else "NOT verified"
        return f"model={self.model} adapter={self.adapter or 'none (baseline)'} {mark}"


class TurnResult(BaseModel):
    answer: str | None = None
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    usage: UsageInfo = Field(default_factory=UsageInfo)
    recovered_text_calls: int = Field(default=0, description="Calls recovered from text by --lenient-tools.")
    dropped_tool_calls: int = Field(
        default=0, description="Answers that ended on a tool call the server could not parse and dropped."
    )
    degenerate_cuts: int = Field(
        default=0, description="Answers cut off because they kept repeating the same line or phrase."
    )
    repeated_calls: int = Field(
        default=0,
        description="Tool calls that repeated an earlier call of the turn with nothing changed since, "
        "answered by the agent's guard instead of run again.",
    )
    error: str | None = None


class AskResult(TurnResult):
    """What ``tooltune ask --json`` prints."""

    prompt: str
    served: ServedInfo | None = None


def degenerate_note(cuts: int) -> str:
    """The one line `serve` and `ask` print when the loop guard cut answers off."""
    return f"{cuts} answer(s) cut off because the model kept repeating itself"


def repeat_note(repeats: int) -> str:
    """The one line `serve` and `ask` print when the agent answered repeated calls instead of running them."""
    return f"{repeats} repeated tool call(s) not run again (same tool, same arguments, nothing changed since)"


def served_info(server: Any) -> ServedInfo | None:
    """ServedInfo from a ModelServer's ``.served`` (duck-typed: model_path, adapter, verified)."""
    state = getattr(server, "served", None) if server is not None else None
    if state is None:
        return None
    model = getattr(state, "model_path", None) or getattr(server, "model_name", "?")
    return ServedInfo(
        model=Path(str(model)).name, adapter=getattr(state, "adapter", None), verified=bool(state.verified)
    )


def tool_call_records(messages: Sequence[ModelMessage]) -> list[ToolCallRecord]:
    """Pair each ToolCallPart with the return the model got for it (by tool_call_id)."""
    calls: dict[str, ToolCallRecord] = {}
    order: list[str] = []
    for msg in messages:
        if isinstance(msg, ModelResponse):
            for part in msg.parts:
                if isinstance(part, ToolCallPart):
                    try:
                        args: dict[str, Any] | str = part.args_as_dict()
                    except Exception:  # unparsable JSON args from a broken model: report them raw
                        args = part.args if isinstance(part.args, str) else str(part.args)
                    calls[part.tool_call_id] = ToolCallRecord(
                        name=part.tool_name, args=args, ok=False, outcome="pending"
                    )
                    order.append(part.tool_call_id)
        elif isinstance(msg, ModelRequest):
            for part in msg.parts:
                record = calls.get(getattr(part, "tool_call_id", "") or "")
                if record is None:
                    continue
                if isinstance(part, ToolReturnPart):
                    record.outcome = part.outcome
                    record.ok = part.outcome == "success"
                    record.result = part.model_response_str(wrap_if_error=False)[:RESULT_PREVIEW_CHARS]
                else:  # RetryPromptPart in older histories
                    record.outcome = "retried"
                    record.result = str(getattr(part, "content", ""))[:RESULT_PREVIEW_CHARS]
    return [calls[i] for i in order]


EventHandler = Callable[[RunContext[Any], AsyncIterable[AgentStreamEvent]], Any]


class AgentSession:
    """A conversation: the agent, where its model comes from, and the history so far.

    Give either ``server`` (a ModelServer: the model is rebuilt each turn from its current endpoint and
    ``extra_body``) or ``model`` (any pydantic-ai model — tests use FunctionModel/TestModel).
    """

    def __init__(
        self,
        agent: Agent[None, str],
        *,
        server: ServedEndpoint | None = None,
        model: Model | None = None,
        lenient_tools: bool = False,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_tokens: int | None = None,
        session_id: str | None = None,
        temperature: float | None = None,
    ) -> None:
        if server is None and model is None:
            raise TooltuneError("an agent session needs a model server or a model")
        self.agent = agent
        self.server = server
        self.lenient_tools = lenient_tools
        self.max_steps = max_steps
        self.max_tokens = max_tokens  # per model request; None: the server's default (mlx_lm.server: 512)
        self.temperature = temperature  # None: the server's default (mlx_lm.server: greedy)
        self._fixed_model = LenientToolCallModel(model, recover=lenient_tools) if model is not None else None
        self.history: list[ModelMessage] = []
        self.id = session_id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]

    @property
    def toolset(self) -> CodingToolset:
        return coding_toolset(self.agent)

    def model_for_turn(self) -> LenientToolCallModel:
        if self._fixed_model is not None:
            return self._fixed_model
        assert self.server is not None
        model = server_model(self.server, lenient_tools=self.lenient_tools)
        assert isinstance(model, LenientToolCallModel)
        return model

    def _request_settings(self) -> ModelSettings:
        settings: ModelSettings = {}
        if self.max_tokens is not None:
            settings["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            settings["temperature"] = self.temperature
        return settings

    async def turn(self, prompt: str, *, event_handler: EventHandler | None = None) -> TurnResult:
        """Run one user prompt to a final answer (tools in between), appending to the history."""
        model = self.model_for_turn()
        before, dropped_before, cuts_before = model.recovered, model.dropped, model.degenerate
        repeats_before = self._repeats_blocked()
        try:
            result = await self.agent.run(
                prompt,
                model=model,
                message_history=self.history,
                model_settings=server_settings(self.server, self._request_settings()),
                usage_limits=UsageLimits(request_limit=self.max_steps),
                event_stream_handler=event_handler,
            )
        except UsageLimitExceeded as e:
            return TurnResult(
                error=f"stopped after {self.max_steps} model requests ({e}); raise --max-steps",
                **_counts(model, before, dropped_before, cuts_before),
                repeated_calls=self._repeats_blocked() - repeats_before,
            )
        except UnexpectedModelBehavior as e:
            dropped = model.dropped - dropped_before
            why = f" ({dropped} dropped by the server as unparseable JSON)" if dropped else ""
            return TurnResult(
                error=f"the model kept making invalid tool calls{why}: {e}",
                **_counts(model, before, dropped_before, cuts_before),
                repeated_calls=self._repeats_blocked() - repeats_before,
            )
        except (ModelAPIError, AgentRunError) as e:
            return TurnResult(
                error=f"model request failed: {e}",
                **_counts(model, before, dropped_before, cuts_before),
                repeated_calls=self._repeats_blocked() - repeats_before,
            )
        new = result.new_messages()
        self.history = list(result.all_messages())
        usage = result.usage
        return TurnResult(
            answer=result.output,
            tool_calls=tool_call_records(new),
            usage=UsageInfo(
                requests=usage.requests,
                input_tokens=usage.input_tokens or 0,
                output_tokens=usage.output_tokens or 0,
                tool_calls=usage.tool_calls,
            ),
            recovered_text_calls=model.recovered - before,
            dropped_tool_calls=model.dropped - dropped_before,
            degenerate_cuts=model.degenerate - cuts_before,
            repeated_calls=self._repeats_blocked() - repeats_before,
        )

    def _repeats_blocked(self) -> int:
        """Repeated calls the built-in toolset's guard has answered so far (0 without the guard)."""
        guard = self.toolset.repeats
        return guard.blocked if guard is not None else 0

    def reset(self) -> None:
        self.history = []

    def save(self, sessions_dir: Path) -> Path | None:
        """Write the history to ``<sessions_dir>/<id>.jsonl`` (one message per line); None if empty.

        Reload with ``ModelMessagesTypeAdapter.validate_python([json.loads(l) for l in lines])``.
        """
        if not self.history:
            return None
        sessions_dir.mkdir(parents=True, exist_ok=True)
        path = sessions_dir / f"{self.id}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for msg in self.history:
                f.write(json.dumps(to_jsonable_python(msg)) + "\n")
        tmp.replace(path)
        return path


def _counts(model: LenientToolCallModel, recovered: int, dropped: int, cuts: int) -> dict[str, int]:
    """What a turn that ended in an error still did: calls recovered, dropped, answers cut off."""
    return {
        "recovered_text_calls": model.recovered - recovered,
        "dropped_tool_calls": model.dropped - dropped,
        "degenerate_cuts": model.degenerate - cuts,
    }


def load_session(path: Path) -> list[ModelMessage]:
    """The messages of a saved session (for resuming or inspecting one)."""
    lines = [json.loads(line) for line in Path(path).read_text("utf-8").splitlines() if line.strip()]
    return ModelMessagesTypeAdapter.validate_python(lines)


async def ask(
    prompt: str,
    *,
    root: Path,
    server: ServedEndpoint | None = None,
    model: Model | None = None,
    allow_write: bool = False,
    allow_exec: bool = False,
    lenient_tools: bool = False,
    mcp_commands: Sequence[str] = (),
    max_steps: int = DEFAULT_MAX_STEPS,
    max_tokens: int | None = None,
    instructions: str | None = None,
    repeat_guard: bool = True,
) -> AskResult:
    """One prompt, no questions asked (writes/commands run only if the flags allow them)."""
    kwargs: dict[str, Any] = {} if instructions is None else {"instructions": instructions}
    agent = build_agent(
        root=root,
        allow_write=allow_write,
        allow_exec=allow_exec,
        mcp_commands=mcp_commands,
        repeat_guard=repeat_guard,
        **kwargs,
    )
    session = AgentSession(
        agent,
        server=server,
        model=model,
        lenient_tools=lenient_tools,
        max_steps=max_steps,
        max_tokens=max_tokens,
    )
    async with agent:
        turn = await session.turn(prompt)
    return AskResult(prompt=prompt, served=served_info(server), **turn.model_dump())


# -- the interactive session ------------------------------------------------------------------------

HELP = (
    "/tools              list the tools the model can call\n"
    "/adapter NAME|none  switch the served adapter (none = baseline)\n"
    "/history            show this conversation's turns\n"
    "/reset              forget the conversation\n"
    "/quit               save the session and leave (also Ctrl-D)"
)

InputFn = Callable[[str], str]


def console_approver(console: Console, input_fn: InputFn) -> ApprovalFn:
    """An approval callback that asks y/n on the terminal before each write or command."""

    async def approve(tool: str, args: dict[str, Any]) -> bool:
        shown = json.dumps(args, ensure_ascii=False)
        if len(shown) > 300:
            shown = shown[:300] + "…"
        console.print(f"[bold yellow]allow {tool} {escape(shown)}?[/] \\[y/N] ", end="")
        try:
            answer = await anyio.to_thread.run_sync(input_fn, "")
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")

    return approve


def _summary(text: str, limit: int = 160) -> str:
    first = " ".join(text.split())
    return first if len(first) <= limit else first[:limit] + "…"


def stream_printer(console: Console) -> EventHandler:
    """Prints text deltas as they arrive and each tool call / result as it happens."""

    async def handler(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
        async for ev in events:
            if isinstance(ev, PartStartEvent) and isinstance(ev.part, TextPart):
                console.print(ev.part.content, end="", markup=False, highlight=False, soft_wrap=True)
            elif isinstance(ev, PartDeltaEvent) and isinstance(ev.delta, TextPartDelta):
                console.print(ev.delta.content_delta, end="", markup=False, highlight=False, soft_wrap=True)
            elif isinstance(ev, FunctionToolCallEvent):
                args = ev.part.args if isinstance(ev.part.args, str) else json.dumps(ev.part.args)
                console.print(
                    f"\n[cyan]→ {escape(ev.part.tool_name)}[/] [dim]{escape(_summary(args or '{}'))}[/]"
                )
            elif isinstance(ev, FunctionToolResultEvent):
                part = ev.part
                ok = getattr(part, "outcome", "success") == "success"
                style, mark = ("green", "✓") if ok else ("red", "✗")
                text = (
                    part.model_response_str(wrap_if_error=False)
                    if isinstance(part, ToolReturnPart)
                    else str(part.content)
                )
                console.print(f"[{style}]{mark} {escape(_summary(text))}[/]")

    return handler


async def _list_tools(session: AgentSession) -> list[tuple[str, str]]:
    tools = [(td.name, td.description or "") for td in session.toolset.tool_definitions()]
    for ts in session.agent.toolsets:
        ts = getattr(ts, "wrapped", ts)  # an MCP server's toolset behind the repeat guard's NotesChanges
        list_tools = getattr(ts, "list_tools", None)
        if list_tools is not None and not isinstance(ts, CodingToolset):
            try:
                tools += [(t.name, t.description or "") for t in await list_tools()]
            except Exception as e:  # an MCP server that died should not end the session
                tools.append((f"({getattr(ts, 'id', 'mcp')} unavailable)", str(e)))
    return tools


def _render_history(console: Console, history: Sequence[ModelMessage]) -> None:
    if not history:
        console.print("[dim](empty)[/]")
        return
    for msg in history:
        for part in msg.parts:
            if isinstance(part, UserPromptPart):
                console.print(f"[bold]you:[/] {escape(_summary(str(part.content)))}")
            elif isinstance(part, ToolCallPart):
                console.print(f"  [cyan]→ {part.tool_name}[/] {escape(_summary(part.args_as_json_str()))}")
            elif isinstance(part, ToolReturnPart):
                text = _summary(part.model_response_str(wrap_if_error=False), 100)
                console.print(f"  [dim]← {part.outcome}: {escape(text)}[/]")
            elif isinstance(part, TextPart) and part.content.strip():
                console.print(f"[bold]agent:[/] {escape(_summary(part.content))}")


async def run_repl(
    session: AgentSession,
    *,
    console: Console,
    sessions_dir: Path,
    input_fn: InputFn = input,
) -> Path | None:
    """The interactive loop; returns where the session was saved (None if nothing was said)."""
    console.print(f"[dim]session {session.id} — /help for commands[/]")
    printer = stream_printer(console)
    try:
        while True:
            try:
                line = await anyio.to_thread.run_sync(input_fn, "you> ")
            except EOFError:
                console.print()
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                cmd, _, arg = line.partition(" ")
                arg = arg.strip()
                if cmd in ("/quit", "/exit", "/q"):
                    break
                if cmd == "/help":
                    console.print(HELP, markup=False)
                elif cmd == "/tools":
                    for name, desc in await _list_tools(session):
                        console.print(f"[cyan]{escape(name)}[/]  {escape(desc)}")
                elif cmd == "/history":
                    _render_history(console, session.history)
                elif cmd == "/reset":
                    session.reset()
                    console.print("[dim]history cleared[/]")
                elif cmd == "/adapter":
                    await _switch(session, arg, console)
                else:
                    console.print(f"unknown command {escape(cmd)}\n{HELP}", markup=False)
                continue
            console.print("[bold]agent>[/] ", end="")
            result = await session.turn(line, event_handler=printer)
            console.print()
            if result.error:
                console.print(f"[red]error:[/] {escape(result.error)}")
            if result.recovered_text_calls:
                console.print(
                    f"[yellow]note: {result.recovered_text_calls} tool call(s) were recovered from text "
                    "(--lenient-tools); an adapter trained for native tool calls would avoid this[/]"
                )
            if result.degenerate_cuts:
                console.print(f"[yellow]note: {degenerate_note(result.degenerate_cuts)}[/]")
            if result.repeated_calls:
                console.print(f"[yellow]note: {repeat_note(result.repeated_calls)}[/]")
            if result.dropped_tool_calls and not result.error:
                console.print(
                    f"[yellow]note: the server dropped {result.dropped_tool_calls} tool call(s) it could not "
                    "parse; the model was asked again[/]"
                )
    finally:
        saved = session.save(sessions_dir)
        if saved is not None:
            console.print(f"[dim]session saved to {saved}[/]")
    return saved


async def _switch(session: AgentSession, arg: str, console: Console) -> None:
    server = session.server
    if not arg:
        console.print("usage: /adapter NAME  (or /adapter none for the baseline)")
        return
    if server is None or not hasattr(server, "switch_adapter"):
        console.print("[red]this session has no model server to switch[/]")
        return
    name = None if arg.lower() in ("none", "base", "baseline") else arg
    console.print(f"[dim]switching to {name or 'baseline'}…[/]")
    try:
        await server.switch_adapter(name)  # type: ignore[attr-defined]
    except TooltuneError as e:
        console.print(f"[red]switch failed:[/] {escape(str(e))}")
    info = served_info(server)
    if info is not None:
        console.print(f"[bold]serving[/] {escape(info.render())}")
