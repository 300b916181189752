"""Practice tasks (issue 34): recorded jobs as a task suite the agent works itself, and its clean
successes as training examples (scripted models stand in for the served one)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tooltune.coding_tools import CODING_TOOLS, DEFAULT_INSTRUCTIONS
from tooltune.data.practice_tasks import (
    example_from_messages,
    kept_examples,
    pieces,
    save_practice_dataset,
    write_practice_suite,
)
from tooltune.errors import TooltuneError
from tooltune.evals.task_records import load_task_report, task_run_dir
from tooltune.evals.task_runner import run_task_suite
from tooltune.evals.tasks import apply_reference, load_task_suite, run_checks, sandbox_copy, snapshot
from tooltune.workspace import Workspace

KINDS = ["find-and-explain", "list-and-read", "edit-constant", "recover-from-a-wrong-path", "edit-refused"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_practice_suite_is_a_task_suite_whose_references_pass_and_whose_empty_runs_fail(
    tmp_path: Path,
) -> None:
    suite = load_task_suite(write_practice_suite(tmp_path / "p", n=10, seed=3))
    assert len(suite.tasks) == 10
    assert Counter(t.category for t in suite.tasks) == dict.fromkeys(KINDS, 2)
    assert {t.category for t in suite.tasks if not t.allow_write} == {"edit-refused"}
    assert not any(t.allow_exec for t in suite.tasks)
    for task in suite.tasks:
        with sandbox_copy(suite.project(task)) as root:
            before = snapshot(root)
            answer = apply_reference(task, root)
            assert all(o.passed for o in run_checks(task, root, answer, before)), task.id
        with sandbox_copy(suite.project(task)) as root:
            before = snapshot(root)
            assert not all(o.passed for o in run_checks(task, root, "", before)), task.id


def test_the_same_seed_writes_the_same_suite(tmp_path: Path) -> None:
    write_practice_suite(tmp_path / "a", n=6, seed=1)
    write_practice_suite(tmp_path / "b", n=6, seed=1)
    write_practice_suite(tmp_path / "c", n=6, seed=2)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")
    with pytest.raises(ValueError, match="at least 1"):
        write_practice_suite(tmp_path / "d", n=0, seed=1)


def test_practice_requests_are_not_eval_tasks(tmp_path: Path) -> None:
    """The leak check that keeps the coding-tasks requests out of training finds none of them here."""
    from tooltune.data.similarity import LeakIndex

    index = LeakIndex.for_workspace(None, bfcl_dir=None)
    suite = load_task_suite(write_practice_suite(tmp_path / "p", n=40, seed=0))
    assert [t.request for t in suite.tasks if index.match(t.request) is not None] == []


def _returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]


class Reader:
    """A model that lists the project, reads the config module it finds, and answers with what it read
    (right for list-and-read, wrong for the rest); it records the settings of each request."""

    def __init__(self, *, repeat: bool = False) -> None:
        self.settings: list[dict[str, Any]] = []
        self.repeat = repeat

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.settings.append(dict(info.model_settings or {}))
        done = _returns(messages)
        if not done or (self.repeat and len(done) == 1):
            return ModelResponse(parts=[ToolCallPart("list_dir", {"path": ".", "recursive": True})])
        if len(done) == (2 if self.repeat else 1):
            config = next(e for e in str(done[0].content).splitlines() if e.endswith("/config.py"))
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": config})])
        return ModelResponse(parts=[TextPart("It sets these: " + str(done[-1].content))])


def _run(suite: Any, ws: Workspace, model: Reader, run_id: str, **kw: Any) -> Any:
    return anyio.run(lambda: run_task_suite(suite, ws=ws, model=FunctionModel(model), run_id=run_id, **kw))


def test_a_clean_success_becomes_a_training_example_and_imports_as_a_dataset(tmp_path: Path) -> None:
    suite = load_task_suite(
        write_practice_suite(tmp_path / "p", n=2, seed=0)
    )  # find-and-explain, list-and-read
    ws = Workspace(tmp_path / "ws").ensure()
    reader = Reader()
    report = _run(suite, ws, reader, "r1", temperature=0.7)
    assert [r.success for r in report.results] == [False, True]
    # every request of the run was sampled at the temperature asked for, and the run says so
    assert {s.get("temperature") for s in reader.settings} == {0.7}
    assert load_task_report(ws, "r1").meta.temperature == 0.7
    with pytest.raises(TooltuneError, match="temperature 0.7"):
        _run(suite, ws, Reader(), "r1")  # a run is never resumed at another temperature

    examples, stats = kept_examples([task_run_dir(ws, "r1")])
    assert {k: stats[k] for k in ("runs", "attempts", "succeeded", "clean", "kept")} == {
        "runs": 1, "attempts": 2, "succeeded": 1, "clean": 1, "kept": 1,
    }  # fmt: skip
    ex = examples[0]
    assert [m["role"] for m in ex.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert ex.messages[0]["content"] == DEFAULT_INSTRUCTIONS  # once, as the served model read it
    assert ex.messages[1]["content"] == suite.tasks[1].request
    first = ex.messages[2]["tool_calls"][0]["function"]
    assert first == {"name": "list_dir", "arguments": {"path": ".", "recursive": True}}
    config = ex.messages[4]["tool_calls"][0]["function"]["arguments"]["path"]
    assert config.endswith("/config.py") and config in ex.messages[3]["content"]  # the call used the result
    assert ex.messages[6]["content"].startswith("It sets these: ") and "= " in ex.messages[6]["content"]
    assert [t["function"]["name"] for t in ex.tools] == [t.name for t in CODING_TOOLS]
    assert ex.meta.kind == "trajectory" and ex.meta.group.startswith("practice-")

    # a second, identical run of the same task adds no piece: its turns are the same
    _run(suite, ws, Reader(), "r2", temperature=0.7)
    again, _ = kept_examples([task_run_dir(ws, "r1"), task_run_dir(ws, "r2")])
    assert len(again) == 1 and len(pieces(again)) == 3
    info, left_out = save_practice_dataset(ws, "practice-kept", again, model_path=None, sources=["test"])
    assert info is not None and left_out == []
    assert sum(info.counts.values()) == 3  # one example per assistant turn, all in one split
    assert sum(1 for v in info.counts.values() if v) == 1


def test_runs_with_repeats_or_failed_checks_are_not_kept_and_bad_records_are_skipped(tmp_path: Path) -> None:
    suite = load_task_suite(write_practice_suite(tmp_path / "p", n=2, seed=0))
    ws = Workspace(tmp_path / "ws").ensure()
    looped = _run(suite, ws, Reader(repeat=True), "looped")
    assert [r.success for r in looped.results] == [False, True] and looped.results[1].repeated_calls == 1
    clean = _run(suite, ws, Reader(), "clean")
    # a line that is not a result, and a transcript that went missing: skipped and named, the rest kept
    with open(task_run_dir(ws, "clean") / "results.jsonl", "a") as f:
        f.write('{"task_id": 3}\n')
    broken = task_run_dir(ws, "broken")
    broken.mkdir(parents=True)
    (broken / "transcripts").mkdir()
    (broken / "run.json").write_text((task_run_dir(ws, "clean") / "run.json").read_text())
    (broken / "results.jsonl").write_text(
        (task_run_dir(ws, "clean") / "results.jsonl").read_text().splitlines()[1] + "\n"
    )
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    dirs = [task_run_dir(ws, "looped"), task_run_dir(ws, "clean"), broken, empty]
    examples, stats = kept_examples(dirs)
    assert clean.results[1].success and len(examples) == 1
    assert (stats["runs"], stats["attempts"], stats["succeeded"], stats["clean"], stats["kept"]) == (
        3,
        5,
        3,
        2,
        1,
    )
    assert [Path(s["where"]).name for s in stats["skipped"]] == [
        "results.jsonl:3", "list-and-read-001.jsonl", "not-a-run",
    ]  # fmt: skip
    assert "not a task result" in stats["skipped"][0]["why"]
    assert json.loads(examples[0].to_line())["meta"]["source"] == "practice"


def test_the_practice_bench_samples_keeps_and_imports_and_resumes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path
) -> None:
    """bench/agent_practice.py's first stages, the served model replaced by the scripted reader: k runs
    of the practice suite at the temperature, the clean successes as a dataset; a second call finds the
    runs done and samples nothing."""
    import argparse
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from types import SimpleNamespace

    from bench_import import bench_module

    practice = bench_module("agent_practice")
    calls: list[dict[str, Any]] = []

    @asynccontextmanager
    async def fake_server(model: Path, settings: object, adapter: str) -> AsyncIterator[SimpleNamespace]:
        yield SimpleNamespace(adapter=adapter)

    real_run = run_task_suite

    async def scripted_run(suite: Any, *, server: Any, **kw: Any) -> Any:
        calls.append({"served": server.adapter, **kw})
        return await real_run(suite, model=FunctionModel(Reader()), **kw)

    monkeypatch.setattr(practice, "ModelServer", fake_server)
    monkeypatch.setattr(practice, "run_task_suite", scripted_run)
    ws = Workspace(tmp_path / "ws").ensure()
    args = argparse.Namespace(n=4, k=2, seed=0, temperature=0.5, max_steps=6, max_tokens=64, concurrency=2)
    reports = anyio.run(practice.practise, None, ws, tmp_path / "model", "start", args)
    assert sorted(c["run_id"] for c in calls) == practice.practice_ids("start", args)
    assert all(c["served"] == c["adapter"] == "start" and c["temperature"] == 0.5 for c in calls)
    assert all(c["concurrency"] == 2 for c in calls)  # each run works two tasks at once
    assert [sum(r.success for r in rep.results) for rep in reports] == [1, 1]  # the list-and-read task
    assert load_task_suite(ws.root / "practice" / "n4-s0-m6" / "practice.yaml").tasks[0].max_steps == 6
    name, stats = practice.kept_dataset(ws, tiny_model, "start", args)  # its tokenizer lints
    assert name == f"practice-{practice.practice_key('start', args)}-k2"
    assert (stats["clean"], stats["kept"], stats["examples"]) == (2, 1, 3)
    assert (ws.datasets / name).is_dir()
    calls.clear()
    again = anyio.run(practice.practise, None, ws, tmp_path / "model", "start", args)
    assert calls == [] and [len(r.results) for r in again] == [4, 4]


def test_the_bench_names_fit_the_workspace_with_a_real_start_adapter() -> None:
    """Names are at most 100 characters: the eval's run id of the trained adapter, the longest, fits with
    T4's start adapter; and every setting the runs depend on changes the key."""
    import argparse

    from bench_import import bench_module

    from tooltune.workspace import validate_name

    practice = bench_module("agent_practice")
    start = "agent-coding-n500-tj0.4-s0-g16-all-i600-L2048"
    args = argparse.Namespace(n=150, k=4, seed=0, temperature=0.7, max_steps=8, max_tokens=256, iters=200,
                              learning_rate=2e-5)  # fmt: skip
    dataset = f"practice-{practice.practice_key(start, args)}-k{args.k}"
    adapter = f"{dataset}-i{args.iters}-lr{args.learning_rate:g}"
    for name in [*practice.practice_ids(start, args), dataset, adapter, f"agent-native-{adapter}-n43-rg"]:
        validate_name(name)
    keys = {practice.practice_key(start, args)}
    for field, value in (
        ("n", 151),
        ("seed", 1),
        ("temperature", 0.8),
        ("max_steps", 9),
        ("max_tokens", 128),
    ):
        keys.add(practice.practice_key(start, argparse.Namespace(**{**vars(args), field: value})))
    keys.add(practice.practice_key("another-start", args))
    assert len(keys) == 7


def _checks_pass(task: Any, root: Path, answer: str, before: dict[str, str]) -> bool:
    return all(o.passed for o in run_checks(task, root, answer, before))


def test_wrong_but_plausible_runs_fail_their_checks(tmp_path: Path) -> None:
    """What a run that did not do the job says: the path without reading the function, a "done" where
    writing was refused, the names with wrong values, a write that dropped the other settings."""
    suite = load_task_suite(write_practice_suite(tmp_path / "p", n=5, seed=3))
    tasks = {t.category: t for t in suite.tasks}
    for kind in ("find-and-explain", "recover-from-a-wrong-path"):
        task = tasks[kind]
        with sandbox_copy(suite.project(task)) as root:
            before = snapshot(root)
            source = next(str(p.relative_to(root)) for p in root.rglob("*.py") if "def " in p.read_text()
                          and "test" not in p.name)  # fmt: skip
            assert not _checks_pass(task, root, f"It is defined in {source}.", before), kind
            assert _checks_pass(task, root, apply_reference(task, root), before), kind
            (root / "notes.txt").write_text("x")  # a read-only job that wrote a file
            assert not _checks_pass(task, root, apply_reference(task, root), before), kind
    task = tasks["edit-refused"]
    with sandbox_copy(suite.project(task)) as root:
        before = snapshot(root)
        name = next(c.answer_contains[0] for c in task.checks if c.answer_contains)
        new = task.request.rstrip(" .!?").split()[-1] if task.request.split()[-1][0].isdigit() else None
        claim = f"Done: {name} is now {new or 'updated'}."
        assert not _checks_pass(task, root, claim, before)
        assert _checks_pass(task, root, apply_reference(task, root), before)
    task = tasks["list-and-read"]
    with sandbox_copy(suite.project(task)) as root:
        before = snapshot(root)
        config = next(p for p in root.rglob("config.py"))
        lines = [line for line in config.read_text().splitlines() if " = " in line]
        right = "; ".join(lines)
        names = [line.split(" = ")[0] for line in lines]
        values = [line.split(" = ")[1] for line in lines]
        swapped = "; ".join(f"{n} = {v}" for n, v in zip(names, values[1:] + values[:1], strict=True))
        padded = "; ".join(f"{n} = {v}0" for n, v in zip(names, values, strict=True))
        assert _checks_pass(task, root, right, before)
        assert not _checks_pass(task, root, swapped, before) and not _checks_pass(task, root, padded, before)
    task = tasks["edit-constant"]
    with sandbox_copy(suite.project(task)) as root:
        before = snapshot(root)
        answer = apply_reference(task, root)
        config = next(p for p in root.rglob("config.py"))
        assert _checks_pass(task, root, answer, before)
        edited = next(
            line
            for line in config.read_text().splitlines()
            if line in task.reference.files[str(config.relative_to(root))]
            and " = " in line
            and line not in before[str(config.relative_to(root))]
        )
        config.write_text(edited + "\n")  # the new value alone: the other settings are gone
        assert not _checks_pass(task, root, answer, before)
        config.write_text(before[str(config.relative_to(root))].replace(edited.split(" = ")[0] + " = ",
                          edited.split(" = ")[0] + " = 1", 1))  # fmt: skip
        assert not _checks_pass(task, root, answer, before)


def test_turns_that_should_not_be_learned_are_refused() -> None:
    """A conversation with a call sent back as invalid, a response sent back for a retry, an empty
    response or an answer cut off at the token limit is not a training example."""
    from pydantic_ai.messages import ModelRequest, RetryFeedbackPart, RetryInfo, UserPromptPart

    from tooltune.data.examples import DataError

    ask = ModelRequest(parts=[UserPromptPart("what's in config?")], instructions="Be brief.")
    call = ModelResponse(parts=[ToolCallPart("list_dir", {"path": "config"}, tool_call_id="c1")])
    back = ModelRequest(
        parts=[ToolReturnPart("list_dir", "config/a.ini", tool_call_id="c1")], instructions="Be brief."
    )
    answer = ModelResponse(parts=[TextPart("config/a.ini")])
    ok = example_from_messages([ask, call, back, answer])
    assert ok.messages[0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in ok.messages] == ["system", "user", "assistant", "tool", "assistant"]
    retried = ModelRequest(
        parts=[ToolReturnPart("list_dir", "bad args", tool_call_id="c1", outcome="retried")]
    )
    retry = ModelRequest(
        parts=[RetryFeedbackPart("Please return text or call a tool.", retry=RetryInfo("no_output"))]
    )
    cases = {
        "sent back as invalid": [ask, call, retried, answer],
        "retry": [ask, call, retry, answer],
        "empty response": [ask, ModelResponse(parts=[TextPart("")]), answer],
        "cut off": [ask, call, back, ModelResponse(parts=[TextPart("config/a")], finish_reason="length")],
        "must end with the agent's answer": [ask, call, back],
    }
    for why, messages in cases.items():
        with pytest.raises(DataError, match=why):
            example_from_messages(messages)
