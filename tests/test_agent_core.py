"""The pydantic-ai agent offline: exact tool schemas, tool round trips, retries, lenient recovery."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from structlog.testing import capture_logs

from tooltune.agent.agent import build_agent, dropped_connection_retries, server_model
from tooltune.agent.lenient import DROPPED_MESSAGE, RECOVERED_MESSAGE, parse_text_tool_calls
from tooltune.agent.session import AgentSession, ask
from tooltune.coding_tools import CODING_TOOLS, CODING_TOOLS_BY_NAME


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("def main():\n    return 42\n")
    return tmp_path


def _returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [
        p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)
    ]


def test_tool_definitions_the_model_sees_equal_coding_tools(project: Path) -> None:
    seen: list[AgentInfo] = []

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(info)
        return ModelResponse(parts=[TextPart("ok")])

    result = anyio.run(lambda: ask("hi", root=project, model=FunctionModel(fn)))
    assert result.answer == "ok"
    tools = seen[0].function_tools
    assert [t.name for t in tools] == [s.name for s in CODING_TOOLS]
    for t in tools:
        spec = CODING_TOOLS_BY_NAME[t.name]
        assert t.parameters_json_schema == spec.parameters
        assert t.description == spec.description
        assert not t.strict


def test_schemas_on_the_wire_are_exactly_coding_tools(project: Path) -> None:
    """What mlx_lm.server receives: the OpenAI request body, captured at the HTTP layer."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return httpx2.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hello"},
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            },
        )

    class FakeServer:
        base_url = "http://127.0.0.1:9/v1"
        model_name = "/models/tiny"
        extra_body = {"adapters": "/ws/adapters/a1"}

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    server = FakeServer()
    agent = build_agent(root=project)
    session = AgentSession(agent, model=server_model(server, http_client=client), server=server)
    turn = anyio.run(session.turn, "hi")
    assert turn.answer == "hello" and turn.error is None
    body = bodies[0]
    assert body["model"] == "/models/tiny"
    assert body["adapters"] == "/ws/adapters/a1"  # ModelServer.extra_body merged into the request
    assert body["tools"] == [s.to_openai() for s in CODING_TOOLS]
    assert "max_tokens" not in body and "max_completion_tokens" not in body  # the server's default

    # a token budget per request (the demo's ask uses the eval's) reaches the server; it reads either key
    capped = AgentSession(agent, model=server_model(server, http_client=client), server=server, max_tokens=64)
    anyio.run(capped.turn, "hi")
    assert bodies[1].get("max_completion_tokens", bodies[1].get("max_tokens")) == 64


def test_a_connection_the_server_dropped_is_sent_again(project: Path) -> None:
    """mlx_lm.server resets connections beyond its backlog of 5 when many tasks ask at once: the agent's
    request is sent again (three drops in a row here)."""
    tries: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        tries.append(1)
        if len(tries) <= 3:
            raise httpx2.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        message = {"role": "assistant", "content": "hello"}
        return httpx2.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        })  # fmt: skip

    class FakeServer:
        base_url = "http://127.0.0.1:9/v1"
        model_name = "/models/tiny"
        extra_body: dict[str, Any] = {}

    # the transport the agent's own client uses, here around a fake server
    client = httpx2.AsyncClient(transport=dropped_connection_retries(httpx2.MockTransport(handler)))
    server = FakeServer()
    session = AgentSession(
        build_agent(root=project), model=server_model(server, http_client=client), server=server
    )
    turn = anyio.run(session.turn, "hi")
    assert turn.error is None and turn.answer == "hello" and len(tries) == 4


def test_a_server_error_or_a_timeout_is_not_sent_again_by_the_drop_retries() -> None:
    """Only a connection dropped without an answer is retried: a slow generation queued again would
    only make the server do the work twice."""
    tries: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        tries.append(1)
        raise httpx2.ReadTimeout("slow", request=request)

    async def ask_once() -> None:
        transport = dropped_connection_retries(httpx2.MockTransport(handler))
        async with httpx2.AsyncClient(transport=transport) as c:
            await c.post("http://127.0.0.1:9/v1/chat/completions", json={})

    with pytest.raises(httpx2.ReadTimeout):
        anyio.run(ask_once)
    assert len(tries) == 1


def test_function_model_reads_a_file_through_the_tool(project: Path) -> None:
    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = _returns(messages)
        if not returns:
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": "src/main.py"})])
        return ModelResponse(parts=[TextPart(f"file says: {returns[-1].content}")])

    result = anyio.run(lambda: ask("what is in main.py?", root=project, model=FunctionModel(fn)))
    assert result.answer == "file says: def main():\n    return 42\n"
    assert [(c.name, c.args, c.ok) for c in result.tool_calls] == [
        ("read_file", {"path": "src/main.py"}, True)
    ]
    assert result.usage.requests == 2 and result.usage.tool_calls == 1


def test_test_model_calls_every_tool_without_crashing(project: Path) -> None:
    """TestModel fills each schema with generated args: every tool must answer (result or refusal)."""
    result = anyio.run(lambda: ask("go", root=project, model=TestModel()))
    assert result.error is None
    assert {c.name for c in result.tool_calls} == {s.name for s in CODING_TOOLS}
    refused = {c.name for c in result.tool_calls if not c.ok}
    assert {"write_file", "run_command", "run_tests"} <= refused  # flags are off by default


def test_malformed_calls_get_a_retry_with_the_validation_error(project: Path) -> None:
    sent_back: list[str] = []

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = _returns(messages)
        sent_back[:] = [r.model_response_str() for r in returns]
        if len(returns) == 0:
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": 3, "colour": "red"})])
        if len(returns) == 1:
            return ModelResponse(parts=[ToolCallPart("delete_everything", {"path": "/"})])
        if len(returns) == 2:
            return ModelResponse(parts=[ToolCallPart("read_file", '{"path": "src/main.py"')])  # broken JSON
        if len(returns) == 3:
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": "src/main.py"})])
        return ModelResponse(parts=[TextPart("done")])

    result = anyio.run(lambda: ask("x", root=project, model=FunctionModel(fn)))
    assert result.answer == "done"
    outcomes = [(c.name, c.outcome) for c in result.tool_calls]
    assert outcomes == [
        ("read_file", "retried"),
        ("delete_everything", "retried"),
        ("read_file", "retried"),
        ("read_file", "success"),
    ]
    assert "path: 3 is not of type 'string'" in sent_back[0]
    assert "unknown argument 'colour'" in sent_back[0]
    assert "Unknown tool name: 'delete_everything'" in sent_back[1]
    assert "read_file" in sent_back[1]  # the retry lists the tools that do exist
    assert "not valid JSON" in sent_back[2] or "Invalid JSON" in sent_back[2]


def test_refusals_reach_the_model_as_failed_results(project: Path) -> None:
    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = _returns(messages)
        if not returns:
            return ModelResponse(
                parts=[
                    ToolCallPart("write_file", {"path": "a.txt", "content": "x"}),
                    ToolCallPart("read_file", {"path": "../../etc/passwd"}),
                ]
            )
        return ModelResponse(parts=[TextPart(" | ".join(r.model_response_str() for r in returns))])

    result = anyio.run(lambda: ask("x", root=project, model=FunctionModel(fn)))
    assert result.error is None
    assert [c.ok for c in result.tool_calls] == [False, False]
    assert "--allow-write" in result.answer and "outside the project root" in result.answer
    assert not (project / "a.txt").exists()


def test_approval_callback_consulted_by_the_agent(project: Path) -> None:
    asked: list[str] = []

    def approve(tool: str, args: dict[str, Any]) -> bool:
        asked.append(f"{tool}:{args['path']}")
        return args["path"] == "yes.txt"

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not _returns(messages):
            return ModelResponse(
                parts=[
                    ToolCallPart("write_file", {"path": "no.txt", "content": "n"}),
                    ToolCallPart("write_file", {"path": "yes.txt", "content": "y"}),
                ]
            )
        return ModelResponse(parts=[TextPart("done")])

    agent = build_agent(root=project, allow_write=True, approve=approve)
    turn = anyio.run(AgentSession(agent, model=FunctionModel(fn)).turn, "write")
    assert sorted(asked) == ["write_file:no.txt", "write_file:yes.txt"]
    assert [(c.args["path"], c.ok) for c in turn.tool_calls] == [("no.txt", False), ("yes.txt", True)]
    assert (project / "yes.txt").read_text() == "y" and not (project / "no.txt").exists()


# -- lenient recovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt", "rest"),
    [
        (
            '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>',
            "tool_call_tag",
            "",
        ),
        ('<tool_call>{"name": "git_status"}', "tool_call_tag", ""),
        ('Sure:\n```json\n{"name": "read_file", "arguments": {"path": "a.py"}}\n```', "fenced_json", "Sure:"),
        ('```\n{"name": "read_file", "parameters": {"path": "a.py"}}\n```', "fenced_json", ""),
        ('{"name": "read_file", "arguments": "{\\"path\\": \\"a.py\\"}"}', "bare_json", ""),
        (
            '{"type": "function", "function": {"name": "read_file", "arguments": {"path": "a.py"}}}',
            "bare_json",
            "",
        ),
    ],
)
def test_parse_text_tool_calls_formats(text: str, fmt: str, rest: str) -> None:
    calls, remaining = parse_text_tool_calls(text)
    assert len(calls) == 1 and calls[0].format == fmt
    assert calls[0].name in ("read_file", "git_status")
    if calls[0].name == "read_file":
        assert calls[0].arguments == {"path": "a.py"}
    assert remaining == rest


def test_parse_parallel_and_non_calls() -> None:
    calls, _ = parse_text_tool_calls(
        '[{"name": "read_file", "arguments": {"path": "a"}}, '
        '{"name": "list_dir", "arguments": {"path": "."}}]'
    )
    assert [c.name for c in calls] == ["read_file", "list_dir"]
    for text in (
        "The answer is 42.",
        '{"name": "Alice", "age": 3}',
        "```python\nprint({'name': 1})\n```",
        "",
    ):
        assert parse_text_tool_calls(text)[0] == []


def _text_call_model(call_text: str) -> FunctionModel:
    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = _returns(messages)
        if not returns:
            return ModelResponse(parts=[TextPart(call_text)])
        return ModelResponse(parts=[TextPart(f"got {len(returns[-1].model_response_str())} chars")])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        text = fn(messages, info).parts[0].content  # type: ignore[union-attr]
        for i in range(0, len(text), 7):
            yield text[i : i + 7]

    return FunctionModel(fn, stream_function=stream)


CALL_TEXT = '```json\n{"name": "read_file", "arguments": {"path": "src/main.py"}}\n```'


def test_lenient_on_recovers_and_logs(project: Path) -> None:
    with capture_logs() as logs:
        result = anyio.run(
            lambda: ask("x", root=project, model=_text_call_model(CALL_TEXT), lenient_tools=True)
        )
    assert result.recovered_text_calls == 1
    assert [(c.name, c.ok) for c in result.tool_calls] == [("read_file", True)]
    assert result.answer == f"got {len((project / 'src' / 'main.py').read_text())} chars"
    assert any(e["event"] == RECOVERED_MESSAGE and e["log_level"] == "warning" for e in logs)


@pytest.mark.parametrize("drops", [1, 5])
def test_a_tool_call_the_server_dropped_is_reported(project: Path, drops: int) -> None:
    """mlx_lm.server drops a <tool_call> it cannot parse and still ends with finish_reason "tool_calls":
    the turn says so (pydantic-ai asks the model once more), instead of a bare "invalid tool calls"."""
    answers = iter(
        [ModelResponse(parts=[], finish_reason="tool_call")] * drops + [ModelResponse([TextPart("ok")])]
    )

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return next(answers)

    with capture_logs() as logs:
        result = anyio.run(lambda: ask("x", root=project, model=FunctionModel(fn)))
    assert any(e["event"] == DROPPED_MESSAGE and e["log_level"] == "warning" for e in logs)
    if drops == 1:  # the second request answered
        assert (result.answer, result.error, result.dropped_tool_calls) == ("ok", None, 1)
    else:  # pydantic-ai gives up after the agent's retries (one request each)
        assert result.answer is None and 2 <= result.dropped_tool_calls < drops
        assert f"({result.dropped_tool_calls} dropped by the server as unparseable JSON)" in (
            result.error or ""
        )


def test_lenient_off_leaves_text_and_hints(project: Path) -> None:
    with capture_logs() as logs:
        result = anyio.run(lambda: ask("x", root=project, model=_text_call_model(CALL_TEXT)))
    assert result.tool_calls == [] and result.recovered_text_calls == 0
    assert result.answer == CALL_TEXT
    assert any("not executed" in e["event"] for e in logs)


def test_lenient_recovery_while_streaming(project: Path) -> None:
    """The REPL streams: held-back call text becomes a tool call, prose streams through untouched."""
    from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPartDelta

    streamed: list[str] = []

    async def handler(ctx: Any, events: Any) -> None:
        async for ev in events:
            if isinstance(ev, PartStartEvent) and isinstance(ev.part, TextPart):
                streamed.append(ev.part.content)
            elif isinstance(ev, PartDeltaEvent) and isinstance(ev.delta, TextPartDelta):
                streamed.append(ev.delta.content_delta)

    agent = build_agent(root=project)
    session = AgentSession(agent, model=_text_call_model(CALL_TEXT), lenient_tools=True)
    turn = anyio.run(lambda: session.turn("x", event_handler=handler))
    assert turn.error is None and turn.recovered_text_calls == 1
    assert [c.name for c in turn.tool_calls] == ["read_file"]
    assert (
        "".join(streamed) == f"got {len((project / 'src' / 'main.py').read_text())} chars"
    )  # the raw JSON was never shown as an answer
    assert len(streamed) > 1  # and the prose really streamed in pieces
    assert len(session.history) == 4

    bad = AgentSession(
        build_agent(root=project),
        model=_text_call_model('{"name": "nope", "arguments": {}}'),
        lenient_tools=True,
    )
    turn = anyio.run(lambda: bad.turn("x", event_handler=handler))
    assert [(c.name, c.outcome) for c in turn.tool_calls] == [("nope", "retried")]


def test_history_is_kept_between_turns_and_saved(project: Path, tmp_path: Path) -> None:
    from tooltune.agent.session import load_session

    seen_lengths: list[int] = []

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen_lengths.append(len(messages))
        return ModelResponse(parts=[TextPart(f"turn {len(seen_lengths)}")])

    session = AgentSession(build_agent(root=project), model=FunctionModel(fn))
    anyio.run(session.turn, "one")
    anyio.run(session.turn, "two")
    assert seen_lengths == [1, 3]
    path = session.save(tmp_path / "sessions")
    assert path is not None and path.name == f"{session.id}.jsonl"
    assert len(path.read_text().splitlines()) == 4
    assert load_session(path) == session.history
    session.reset()
    assert session.save(tmp_path / "other") is None
