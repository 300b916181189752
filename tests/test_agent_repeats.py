"""The agent's repeat guard (agent/repeats.py): a built-in tool call that repeats one of the same run,
with nothing changed since, is answered instead of run again; a change to the project, a new prompt or
a different argument lets the call run; refusals by the session's permissions outlast changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
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

from tooltune.agent.agent import build_agent, coding_toolset
from tooltune.agent.repeats import RepeatGuard, call_key
from tooltune.agent.session import AgentSession, TurnResult

Call = tuple[str, dict[str, Any]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("LIMIT = 4\n")
    return tmp_path


def scripted(steps: list[list[Call]]) -> FunctionModel:
    """A model that makes each step's calls (one response each, in parallel when several), then answers;
    a new prompt starts the script again."""

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last_prompt = max(
            i
            for i, m in enumerate(messages)
            if isinstance(m, ModelRequest) and m.parts[0].part_kind == "user-prompt"
        )
        done = sum(isinstance(m, ModelResponse) for m in messages[last_prompt:])
        if done < len(steps):
            return ModelResponse(parts=[ToolCallPart(name, args) for name, args in steps[done]])
        return ModelResponse(parts=[TextPart("done")])

    return FunctionModel(fn)


class Session:
    """An agent session over ``project`` that counts what each built-in tool really ran."""

    def __init__(self, project: Path, steps: list[list[Call]], **agent_kw: Any) -> None:
        self.agent = build_agent(root=project, **agent_kw)
        self.ran: list[Call] = []
        toolset = coding_toolset(self.agent)
        for name, impl in list(toolset._impls.items()):
            toolset._impls[name] = self._counted(name, impl)
        self.session = AgentSession(self.agent, model=scripted(steps))

    def _counted(self, name: str, impl: Any) -> Any:
        def run(sandbox: Any, **args: Any) -> str:
            self.ran.append((name, args))
            return impl(sandbox, **args)

        return run

    def turn(self, prompt: str = "go") -> TurnResult:
        async def go() -> TurnResult:
            async with self.agent:
                return await self.session.turn(prompt)

        return anyio.run(go)

    def returns(self) -> list[ToolReturnPart]:
        return [
            p
            for m in self.session.history
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        ]


READ: Call = ("read_file", {"path": "src/main.py"})
WRITE: Call = ("write_file", {"path": "src/main.py", "content": "LIMIT = 6\n"})


def test_a_repeated_read_is_answered_not_run_and_counted(project: Path) -> None:
    s = Session(project, [[READ], [READ], [("read_file", {"path": "src/main.py", "start_line": 1})]])
    turn = s.turn()
    assert turn.answer == "done" and turn.repeated_calls == 1
    # the first and the third (other arguments) ran; the second got the guard's answer as a failed call
    assert s.ran == [READ, ("read_file", {"path": "src/main.py", "start_line": 1})]
    outcomes = [(c.name, c.outcome) for c in turn.tool_calls]
    assert outcomes == [("read_file", "success"), ("read_file", "failed"), ("read_file", "success")]
    repeat = turn.tool_calls[1].result
    assert "already called with these arguments" in repeat and "nothing has changed" in repeat


def test_a_change_to_the_project_lets_the_same_call_run_again(project: Path) -> None:
    s = Session(project, [[READ], [WRITE], [READ], [READ]], allow_write=True)
    turn = s.turn()
    assert s.ran == [READ, WRITE, READ] and turn.repeated_calls == 1
    assert "LIMIT = 6" in s.returns()[2].model_response_str()


def test_arguments_in_another_order_are_the_same_call() -> None:
    assert call_key("grep", {"a": 1, "b": [2]}) == call_key("grep", {"b": [2], "a": 1})
    assert call_key("grep", {"a": 1}) != call_key("grep", {"a": "1"})


def test_a_refused_call_repeated_is_told_the_refusal_again_even_after_a_change(project: Path) -> None:
    tests: Call = ("run_tests", {})
    s = Session(project, [[tests], [tests], [WRITE], [tests]], allow_write=True)
    turn = s.turn()
    assert turn.repeated_calls == 2
    assert [c for c in s.ran if c[0] == "run_tests"] == []  # never ran: running programs is off
    first, again = turn.tool_calls[0].result, turn.tool_calls[1].result
    assert "disabled" in first
    assert "refused" in again and "do not call it again" in again and "disabled" in again
    assert "refused" in turn.tool_calls[3].result and turn.tool_calls[3].outcome == "failed"


def test_a_missing_file_is_read_again_once_something_was_written(project: Path) -> None:
    new: Call = ("read_file", {"path": "src/new.py"})
    write_new: Call = ("write_file", {"path": "src/new.py", "content": "X = 1\n"})
    s = Session(project, [[new], [new], [write_new], [new]], allow_write=True)
    turn = s.turn()
    assert turn.repeated_calls == 1 and s.ran.count(new) == 2  # the second read waited for the write
    assert [c.outcome for c in turn.tool_calls] == ["failed", "failed", "success", "success"]


def test_a_new_prompt_may_ask_for_the_same_call(project: Path) -> None:
    s = Session(project, [[READ]])
    assert s.turn("read it").repeated_calls == 0
    assert s.turn("read it again").repeated_calls == 0
    assert s.ran == [READ, READ]


def test_two_identical_calls_in_one_response_run_once(project: Path) -> None:
    s = Session(project, [[READ, READ]])
    turn = s.turn()
    assert s.ran == [READ] and turn.repeated_calls == 1
    assert sorted(c.outcome for c in turn.tool_calls) == ["failed", "success"]


def test_without_the_guard_every_call_runs(project: Path) -> None:
    s = Session(project, [[READ], [READ]], repeat_guard=False)
    turn = s.turn()
    assert s.ran == [READ, READ] and turn.repeated_calls == 0
    assert coding_toolset(s.agent).repeats is None


def test_a_guard_forgets_the_oldest_runs_past_its_limit() -> None:
    guard = RepeatGuard()
    for i in range(20):
        assert guard.check(f"run{i}", "read_file", {"path": "a"}) is None
    assert guard.check("run19", "read_file", {"path": "a"}) is not None
    assert guard.check("run0", "read_file", {"path": "a"}) is None  # forgotten: a run long over
    assert guard.blocked == 1


def test_a_call_the_user_declined_is_asked_again_only_after_a_change(project: Path) -> None:
    """In `serve` the user answers each write or command; a declined call repeated is told the "no" without
    asking again, until something changed (then the user is asked again)."""
    asked: list[str] = []
    answers = iter([False, True, True])

    def approve(tool: str, args: dict[str, Any]) -> bool:
        asked.append(tool)
        return next(answers)

    tests: Call = ("run_tests", {})
    s = Session(
        project, [[tests], [tests], [WRITE], [tests]], allow_write=True, allow_exec=True, approve=approve
    )
    turn = s.turn()
    assert asked == ["run_tests", "write_file", "run_tests"]  # the second run_tests was not put to the user
    assert turn.repeated_calls == 1 and "declined" in turn.tool_calls[1].result
    assert (
        turn.tool_calls[3].outcome in ("success", "failed")
        and "already called" not in turn.tool_calls[3].result
    )


def test_a_refusal_that_raced_a_change_is_forgotten() -> None:
    """Calls of one response run at once: a read refused (no such file) while a write beside it created the
    file must not be told "refused" again afterwards."""
    guard = RepeatGuard()
    read, write = ("read_file", {"path": "b.py"}), ("write_file", {"path": "b.py", "content": "x"})
    assert guard.check("r", *read) is None and guard.check("r", *write) is None
    guard.ran("r", "write_file")  # the write finished first
    guard.refused("r", *read, "file 'b.py' does not exist", lasting=False)
    assert guard.check("r", *read) is None  # runs again: the file may be there now
    # the same refusal with no change in between is remembered
    guard.refused("r", *read, "file 'b.py' does not exist", lasting=False)
    assert "refused" in (guard.check("r", *read) or "")


def test_a_call_through_another_toolset_counts_as_a_change(project: Path) -> None:
    """An MCP server's tool may change the project behind the guard's back: after one, a repeat runs."""
    from pydantic_ai.toolsets import FunctionToolset

    touched: list[str] = []

    def touch(path: str) -> str:
        """Touch a file."""
        touched.append(path)
        return "ok"

    other: Call = ("touch", {"path": "src/main.py"})
    s = Session(project, [[READ], [other], [READ], [READ]], extra_toolsets=[FunctionToolset([touch])])
    turn = s.turn()
    assert touched == ["src/main.py"] and s.ran == [READ, READ] and turn.repeated_calls == 1


def test_a_write_the_tool_refused_changed_nothing(project: Path) -> None:
    """write_file refuses before it writes (a folder given as the path): the read after it is a repeat."""
    bad: Call = ("write_file", {"path": "src", "content": "x"})
    s = Session(project, [[READ], [bad], [READ]], allow_write=True)
    turn = s.turn()
    assert [c.outcome for c in turn.tool_calls] == ["success", "failed", "failed"]
    assert "directory" in turn.tool_calls[1].result and turn.repeated_calls == 1


@pytest.fixture
def cli(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real CLI app, its workspace in the test's temp folder and logging left as it is."""
    from tooltune import cli as tooltune_cli

    if "ask" not in tooltune_cli.app:
        tooltune_cli._register()
    monkeypatch.setattr(tooltune_cli, "configure_logging", lambda **_: None)
    return tooltune_cli.app


class NoServer:
    """Stands in for the model server in the CLI tests below: nothing is served."""

    model_path = Path("no-model")

    async def __aenter__(self) -> NoServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("guard", [True, False])
def test_ask_passes_the_guard_setting_to_its_agent(project: Path, guard: bool) -> None:
    from tooltune.agent.session import ask

    result = anyio.run(lambda: ask("go", root=project, model=scripted([[READ], [READ]]), repeat_guard=guard))
    assert result.answer == "done"
    assert result.repeated_calls == (1 if guard else 0)
    assert [c.outcome for c in result.tool_calls] == ["success", "failed" if guard else "success"]


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--no-repeat-guard"], False)])
def test_the_ask_command_hands_its_repeat_guard_flag_on(
    cli: Any,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: list[str],
    expected: bool,
) -> None:
    from tooltune.agent import session
    from tooltune.cli import serve as serve_cli

    seen: dict[str, Any] = {}

    async def fake_ask(prompt: str, **kw: Any) -> session.AskResult:
        seen.update(kw)
        return session.AskResult(prompt=prompt, answer="ok", served=None)

    monkeypatch.setattr(serve_cli, "make_server", lambda settings, **kw: NoServer())
    monkeypatch.setattr(session, "ask", fake_ask)
    rc = cli.meta(["ask", "hello", "--root", str(project), *flag], result_action="return_value")
    assert rc == 0 and capsys.readouterr().out.strip() == "ok"
    assert seen["repeat_guard"] is expected


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--no-repeat-guard"], False)])
def test_the_serve_command_builds_its_agent_with_the_flag(
    cli: Any, project: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: bool
) -> None:
    from tooltune.agent import agent as agent_mod
    from tooltune.cli import serve as serve_cli

    class Built(Exception):
        pass

    def fake_build_agent(**kw: Any) -> None:
        raise Built(kw["repeat_guard"])

    monkeypatch.setattr(serve_cli, "make_server", lambda settings, **kw: NoServer())
    monkeypatch.setattr(agent_mod, "build_agent", fake_build_agent)
    with pytest.raises(Built) as built:
        cli.meta(["serve", "--root", str(project), *flag], result_action="return_value")
    assert built.value.args == (expected,)
