"""The agent's loop guard: an answer that keeps repeating the same line or phrase is cut off, counted in
the turn and reported; ordinary prose and code pass untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from structlog.testing import capture_logs

from tooltune.agent.agent import build_agent
from tooltune.agent.lenient import DEGENERATE_MESSAGE
from tooltune.agent.repetition import MAX_SAME_LINES, degenerate_cut
from tooltune.agent.session import AgentSession, ask, degenerate_note

LOOP = "I will list the folder first.\n" + "list_dir\n" * 171  # what a 40-step adapter streamed in `serve`


def test_a_repeated_line_is_cut_after_its_first_occurrence() -> None:
    at = degenerate_cut(LOOP)
    assert at is not None and LOOP[:at] == "I will list the folder first.\nlist_dir\n"
    assert degenerate_cut("x\n" + "list_dir\n\n" * MAX_SAME_LINES) == len("x\nlist_dir\n")  # blank lines too
    assert degenerate_cut("list_dir\n" * (MAX_SAME_LINES - 1)) is None


def test_a_repeated_phrase_is_cut() -> None:
    text = "Sure. " + "I will read it. " * 9
    at = degenerate_cut(text)
    assert at is not None and text[:at] == "Sure. I will read it."
    assert degenerate_cut("the " * 12) == len("the")


@pytest.mark.parametrize(
    "text",
    [
        "def f():\n    return 1\n\n\ndef g():\n    return 2\n",
        "| a | b |\n|---|---|\n|---|---|\n|---|---|\n|---|---|\n",  # no letters: not a loop we cut
        "Yes, yes, yes: it reads the file, then it reads the file again to check it.",
        "}\n}\n}\n",
        "list_dir\nlist_dir\nlist_dir\nlist_di",  # the fourth line is still streaming
    ],
)
def test_ordinary_text_passes(text: str) -> None:
    assert degenerate_cut(text) is None


def _looping_model() -> FunctionModel:
    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart(LOOP)])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        sent.append(0)
        for i in range(0, len(LOOP), 9):
            sent[-1] += 1
            yield LOOP[i : i + 9]

    sent: list[int] = []
    model = FunctionModel(fn, stream_function=stream)
    model.sent = sent  # type: ignore[attr-defined]
    return model


def test_ask_cuts_a_looping_answer_and_counts_it(tmp_path: Path) -> None:
    with capture_logs() as logs:
        result = anyio.run(lambda: ask("what is in src?", root=tmp_path, model=_looping_model()))
    assert result.answer == "I will list the folder first.\nlist_dir\n" and result.degenerate_cuts == 1
    assert any(e["event"] == DEGENERATE_MESSAGE and e["log_level"] == "warning" for e in logs)
    assert degenerate_note(1) == "1 answer(s) cut off because the model kept repeating itself"


def test_a_streamed_loop_stops_being_read(tmp_path: Path) -> None:
    """`serve` streams: the guard stops reading the stream (closing the request) once it sees the loop."""
    model = _looping_model()
    session = AgentSession(build_agent(root=tmp_path), model=model)

    async def printer(_ctx, events) -> None:  # noqa: ANN001 — the stream must be consumed, as serve does
        async for _ in events:
            pass

    turn = anyio.run(lambda: session.turn("what is in src?", event_handler=printer))
    chunks = len(range(0, len(LOOP), 9))
    assert turn.degenerate_cuts == 1 and turn.answer is not None
    assert turn.answer.count("list_dir") <= MAX_SAME_LINES + 1  # not 171
    assert model.sent[0] < chunks // 4  # type: ignore[attr-defined]
