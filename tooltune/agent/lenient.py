"""Recovering tool calls a model wrote as *text* instead of the native format.

Base small models usually know which call to make but write it as ```json fenced JSON, bare JSON or
a ``<tool_call>`` block the server's parser missed (the 0.5B Qwen does this nearly always, see
docs/PLATFORM.md), so ``mlx_lm.server`` reports no ``tool_calls`` and an agent sees only prose. With
``--lenient-tools`` the agent turns such text into real tool calls, and every time it does it logs a
warning saying so: the point of tooltune is an adapter that makes this unnecessary, and users should
see when they are leaning on the crutch. Without the flag the same detection only logs a hint.

:class:`LenientToolCallModel` is a pydantic-ai ``WrapperModel``: it post-processes each
``ModelResponse`` (and each streamed response) and leaves everything else to the wrapped model, so
unknown tools and bad arguments in a recovered call go through pydantic-ai's ordinary retry path.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_ai import RunContext
from pydantic_ai.messages import (
    FinalResultEvent,
    ModelMessage,
    ModelResponse,
    ModelResponsePart,
    ModelResponseStreamEvent,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

from tooltune.agent.repetition import degenerate_cut
from tooltune.dropped_calls import server_dropped_call
from tooltune.json_spans import json_spans
from tooltune.logs import get_logger

log = get_logger(__name__)

CallFormat = Literal["tool_call_tag", "fenced_json", "bare_json"]
DEGENERATE_MESSAGE = "answer cut off: it kept repeating itself"
RECOVERED_MESSAGE = "recovered text tool call; an adapter trained for native tool calls would avoid this"
DETECTED_MESSAGE = (
    "model wrote a tool call as text, which was not executed; use --lenient-tools to recover it, "
    "or serve an adapter trained for native tool calls"
)

DROPPED_MESSAGE = (
    "the server ended the answer on a tool call but returned none: mlx_lm.server drops a <tool_call> "
    "whose JSON it cannot parse (a unit written after a number, a call cut off by max_tokens), so the "
    "model's call was lost"
)

_TAG_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.S)
_FENCE_RE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_ARG_KEYS = ("arguments", "parameters", "args")
_SNIFF_MARKERS = ("```", "<tool_call>", "{", "[")


class TextToolCall(BaseModel):
    """One call found in model text."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    format: CallFormat


def _calls_from_json(obj: Any, fmt: CallFormat, *, need_args_key: bool) -> list[TextToolCall] | None:
    """Interpret a decoded JSON value as calls; None if it is not (entirely) a call.

    Accepted shapes: ``{"name", "arguments"|"parameters"|"args"}`` (arguments a dict or a JSON string),
    ``{"function": {...}}`` / ``{"type": "function", "function": {...}}`` (OpenAI), ``{"tool_calls": [...]}``
    and lists of these (parallel calls). Outside ``<tool_call>`` tags an arguments key is required, so a
    JSON answer that merely has a "name" field is not mistaken for a call.
    """
    if isinstance(obj, list):
        if not obj:
            return None
        out: list[TextToolCall] = []
        for item in obj:
            calls = _calls_from_json(item, fmt, need_args_key=need_args_key)
            if calls is None:
                return None
            out += calls
        return out
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("tool_calls"), list):
        return _calls_from_json(obj["tool_calls"], fmt, need_args_key=need_args_key)
    if isinstance(obj.get("function"), dict):
        return _calls_from_json(obj["function"], fmt, need_args_key=need_args_key)
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    key = next((k for k in _ARG_KEYS if k in obj), None)
    if key is None:
        if need_args_key:
            return None
        raw: Any = {}
    else:
        raw = obj[key]
    if raw is None:
        raw = {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, dict):
        return None
    return [TextToolCall(name=name.strip(), arguments=raw, format=fmt)]


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in sorted(spans):
        out.append(text[last:start])
        last = end
    out.append(text[last:])
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).strip()


def parse_text_tool_calls(text: str) -> tuple[list[TextToolCall], str]:
    """Find tool calls written as text. Returns ``(calls, remaining_text)``.

    Formats are tried from the most explicit (``<tool_call>`` tags) to the least (bare JSON) and the
    first that yields calls wins, so one call is never recovered twice. ``remaining_text`` is the text
    with the recovered call blocks removed (any prose around them).
    """
    if not text or not text.strip():
        return [], text
    for fmt, regex in (("tool_call_tag", _TAG_RE), ("fenced_json", _FENCE_RE)):
        calls: list[TextToolCall] = []
        spans: list[tuple[int, int]] = []
        for m in regex.finditer(text):
            body = m.group(1).strip()
            found: list[TextToolCall] | None = None
            try:
                found = _calls_from_json(json.loads(body), fmt, need_args_key=fmt == "fenced_json")  # type: ignore[arg-type]
            except json.JSONDecodeError:
                inner = json_spans(body)
                if len(inner) == 1:
                    found = _calls_from_json(inner[0][2], fmt, need_args_key=fmt == "fenced_json")  # type: ignore[arg-type]
            if found:
                calls += found
                spans.append(m.span())
        if calls:
            return calls, _cut(text, spans)
    calls = []
    spans = []
    for start, end, value in json_spans(text):
        found = _calls_from_json(value, "bare_json", need_args_key=True)
        if found:
            calls += found
            spans.append((start, end))
    return calls, _cut(text, spans) if calls else text


def _sniff(text: str) -> bool | None:
    """Could this response start be a text tool call? None = can't tell yet (only whitespace / a prefix)."""
    s = text.lstrip()
    if not s:
        return None
    for marker in _SNIFF_MARKERS:
        if s.startswith(marker):
            return True
        if marker.startswith(s):
            return None
    return False


@dataclass(init=False)
class LenientToolCallModel(WrapperModel):
    """Turns text-formatted tool calls into real ``ToolCallPart``s (``recover=True``) or only reports them.

    Responses that already carry native tool calls are left alone. ``recovered`` counts recovered
    calls over the model's lifetime (sessions reset it per turn) so callers can report it.
    """

    recover: bool
    recovered: int
    detected: int
    dropped: int
    degenerate: int
    on_recovered: Callable[[list[TextToolCall]], None] | None

    def __init__(
        self,
        wrapped: Model,
        *,
        recover: bool = True,
        on_recovered: Callable[[list[TextToolCall]], None] | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.recover = recover
        self.recovered = 0
        self.detected = 0
        self.dropped = 0
        self.degenerate = 0  # answers cut off because they looped (agent/repetition.py)
        self.on_recovered = on_recovered

    def recover_parts(self, parts: list[ModelResponsePart]) -> list[ModelResponsePart] | None:
        """The parts with text calls made ToolCallParts; None when nothing was (or may be) recovered."""
        if any(isinstance(p, ToolCallPart) for p in parts):
            return None
        new_parts: list[ModelResponsePart] = []
        found: list[TextToolCall] = []
        for part in parts:
            if isinstance(part, TextPart):
                calls, rest = parse_text_tool_calls(part.content)
                if calls:
                    found += calls
                    if rest.strip():
                        new_parts.append(TextPart(content=rest))
                    new_parts += [ToolCallPart(tool_name=c.name, args=c.arguments) for c in calls]
                    continue
            new_parts.append(part)
        if not found:
            return None
        summary = [{"name": c.name, "format": c.format} for c in found]
        if not self.recover:
            self.detected += len(found)
            log.warning(DETECTED_MESSAGE, calls=summary)
            return None
        self.recovered += len(found)
        log.warning(RECOVERED_MESSAGE, calls=summary)
        if self.on_recovered is not None:
            self.on_recovered(found)
        return new_parts

    def note_dropped(self, finish_reason: str | None, parts: list[ModelResponsePart]) -> None:
        """Count and log a response that ended on a tool call the server did not return."""
        has_calls = any(isinstance(p, ToolCallPart) for p in parts)
        text = "".join(p.content for p in parts if isinstance(p, TextPart))
        if server_dropped_call(finish_reason, has_calls=has_calls, text=text):
            self.dropped += 1
            log.warning(DROPPED_MESSAGE)

    def note_degenerate(self, cut_at: int, text: str) -> None:
        self.degenerate += 1
        log.warning(
            DEGENERATE_MESSAGE, kept_chars=cut_at, seen_chars=len(text), repeated=_summary(text[cut_at:])
        )

    def cut_degenerate(self, response: ModelResponse) -> ModelResponse:
        """A whole (non-streamed) answer that loops, cut after the first occurrence of what repeats."""
        parts: list[ModelResponsePart] = []
        cut_any = False
        for part in response.parts:
            if isinstance(part, TextPart) and (at := degenerate_cut(part.content)) is not None:
                self.note_degenerate(at, part.content)
                part = TextPart(content=part.content[:at])
                cut_any = True
            parts.append(part)
        return replace(response, parts=parts) if cut_any else response

    def recover_response(self, response: ModelResponse) -> ModelResponse:
        response = self.cut_degenerate(response)
        self.note_dropped(response.finish_reason, list(response.parts))
        parts = self.recover_parts(list(response.parts))
        if parts is None:
            return response
        return replace(response, parts=parts, finish_reason="tool_call")

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        return self.recover_response(response)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        async with self.wrapped.request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as inner:
            yield LenientStreamedResponse(
                model_request_parameters=model_request_parameters, inner=inner, owner=self
            )


@dataclass
class LenientStreamedResponse(StreamedResponse):
    """Streams text through as it arrives unless it starts like a tool call.

    Text that opens with ```` ``` ````, ``{``, ``[`` or ``<tool_call>`` is held back until the response
    ends; if it parses as calls they are emitted as ToolCallParts (so the user never sees the raw JSON
    streamed and then "executed"), otherwise the held text is released. Ordinary prose streams with no
    delay. A call that appears after streamed prose is still recovered, appended after the text.
    """

    inner: StreamedResponse = field(kw_only=True)
    owner: LenientToolCallModel = field(kw_only=True)

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        held: list[PartStartEvent | PartDeltaEvent] = []
        holding: bool | None = None
        text = ""
        streamed = ""  # every text piece, held or not: what the loop guard watches
        async for event in self.inner:
            if isinstance(event, PartEndEvent | FinalResultEvent):
                continue  # our own __aiter__ regenerates these from the parts we emit
            if not isinstance(event, PartStartEvent | PartDeltaEvent):
                continue
            piece = _text_of(event)
            if piece is not None:
                streamed += piece
                if (at := degenerate_cut(streamed)) is not None:
                    # stop reading: leaving the stream closes the request, and the server stops generating
                    self.owner.note_degenerate(at, streamed)
                    break
            if holding is False or (holding is None and piece is None and not held):
                yield self._emit(event)
                continue
            held.append(event)
            if piece is not None:
                text += piece
            if holding is None:
                holding = _sniff(text)
                if holding is False:
                    for ev in held:
                        yield self._emit(ev)
                    held.clear()
        self.provider_response_id = self.inner.provider_response_id
        self.provider_details = self.inner.provider_details
        self.finish_reason = self.inner.finish_reason
        self.owner.note_dropped(self.finish_reason, list(self.inner.get().parts))
        recovered = self.owner.recover_parts(list(self.inner.get().parts))
        if recovered is None:
            for ev in held:
                yield self._emit(ev)
            return
        self.finish_reason = "tool_call"
        new_parts = recovered if held else [p for p in recovered if isinstance(p, ToolCallPart)]
        for part in new_parts:
            yield self._parts_manager.handle_part(vendor_part_id=None, part=part)

    def _emit(self, event: PartStartEvent | PartDeltaEvent) -> PartStartEvent | PartDeltaEvent:
        self._parts_manager.apply_event(event)
        return event

    async def close_stream(self) -> None:
        await self.inner.close_stream()

    @property
    def usage(self) -> RequestUsage:  # type: ignore[override]
        return self.inner.usage

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def provider_name(self) -> str | None:
        return self.inner.provider_name

    @property
    def provider_url(self) -> str | None:
        return self.inner.provider_url

    @property
    def timestamp(self) -> datetime:
        return self.inner.timestamp


def _summary(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _text_of(event: PartStartEvent | PartDeltaEvent) -> str | None:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return None
