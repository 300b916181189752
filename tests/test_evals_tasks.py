"""Agent task suites: the format (refused with file:line), every check kind, the runner with the real
agent and sandboxed tools (scripted models stand in for the served one), transcripts, the sandbox under
attack, comparison, and the built-in suite's own references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tooltune.errors import TooltuneError
from tooltune.evals.task_compare import compare_task_runs
from tooltune.evals.task_records import load_task_report, task_run_dir
from tooltune.evals.task_runner import run_task_suite
from tooltune.evals.tasks import (
    Check,
    TaskSuiteError,
    apply_reference,
    load_task_suite,
    parse_task_suite,
    run_checks,
    sandbox_copy,
    snapshot,
)
from tooltune.workspace import Workspace

SUITE = """\
tasks_format: 1
name: mini
tasks:
  - id: timeout-value
    category: find-read-answer
    project: app
    request: "what's the default timeout?"
    checks:
      - answer_contains: ["30"]
      - unchanged: true
  - id: bump-timeout
    category: edit
    project: app
    request: "bump the default timeout to 60"
    allow_write: true
    checks:
      - file_contains: {path: app/config.py, text: "TIMEOUT = 60"}
      - file_lacks: {path: app/config.py, text: "TIMEOUT = 30"}
"""


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    proj = tmp_path / "suite" / "projects" / "app" / "app"
    proj.mkdir(parents=True)
    (proj / "config.py").write_text("TIMEOUT = 30\nRETRIES = 3\n")
    path = tmp_path / "suite" / "mini.yaml"
    path.write_text(SUITE)
    return path


def test_a_malformed_suite_is_refused_with_file_and_line(suite_file: Path) -> None:
    projects = suite_file.parent / "projects"
    bad_kind = SUITE.replace("- unchanged: true", "- unchanged: true\n        answer_contains: [x]")
    with pytest.raises(TaskSuiteError, match=r"mini.yaml:4: tasks\[0\].checks.1.*exactly one kind"):
        parse_task_suite(bad_kind, source="mini.yaml", projects_dir=projects)
    with pytest.raises(TaskSuiteError, match=r"mini.yaml:11: task id 'timeout-value' appears twice"):
        parse_task_suite(
            SUITE.replace("id: bump-timeout", "id: timeout-value"), source="mini.yaml", projects_dir=projects
        )
    with pytest.raises(TaskSuiteError, match=r"mini.yaml:4: task 'timeout-value': no project folder"):
        moved = SUITE.replace("project: app\n    request: \"what's", "project: nope\n    request: \"what's")
        parse_task_suite(moved, source="mini.yaml", projects_dir=projects)
    suite = load_task_suite(suite_file)
    assert [t.id for t in suite.tasks] == ["timeout-value", "bump-timeout"] and suite.hash.startswith(
        "sha256:"
    )


def test_every_check_kind_passes_and_fails(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "a.txt").write_text("hello\n")
    before = snapshot(root)

    def ok(check: dict[str, Any], answer: str = "") -> bool:
        from tooltune.evals.tasks import run_check

        return run_check(Check.model_validate(check), root, answer, before).passed

    assert ok({"answer_contains": ["Hello"]}, "hello there") and not ok({"answer_contains": ["x"]}, "hello")
    assert ok({"answer_lacks": ["sorry"]}, "done") and not ok({"answer_lacks": ["sorry"]}, "Sorry!")
    assert ok({"answer_matches": r"line \d+"}, "at line 12") and not ok({"answer_matches": r"line \d+"}, "no")
    assert ok({"file_contains": {"path": "a.txt", "text": "hello"}})
    assert not ok({"file_contains": {"path": "missing.txt", "text": "x"}})
    assert ok({"file_lacks": {"path": "a.txt", "text": "bye"}}) and ok(
        {"file_equals": {"path": "a.txt", "text": "hello\n"}}
    )
    assert ok({"file_exists": "a.txt"}) and ok({"file_absent": "b.txt"})
    assert ok({"file_contains": {"path": "../p/a.txt", "text": "hello"}})  # still inside: fine
    assert not ok({"file_contains": {"path": "../../etc/passwd", "text": "root"}})  # outside: never read
    assert ok({"command": {"argv": ["python", "-c", "print('hi')"], "output_contains": "hi"}})
    assert not ok({"command": {"argv": ["python", "-c", "raise SystemExit(3)"]}})
    assert ok({"unchanged": True})
    (root / "b.txt").write_text("new")
    assert not ok({"unchanged": True}) and not ok({"file_absent": "b.txt"})


def _returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]


def _solver(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A model that does the job: reads the config, then answers or edits it."""
    asked = next(p.content for m in messages for p in getattr(m, "parts", []) if p.part_kind == "user-prompt")
    done = _returns(messages)
    if not done:
        return ModelResponse(parts=[ToolCallPart("read_file", {"path": "app/config.py"})])
    if "bump" in str(asked) and len(done) == 1:
        body = str(done[0].content).replace("TIMEOUT = 30", "TIMEOUT = 60")
        return ModelResponse(parts=[ToolCallPart("write_file", {"path": "app/config.py", "content": body})])
    return ModelResponse(
        parts=[TextPart("The default timeout is 30 seconds." if len(done) == 1 else "Done.")]
    )


def _guesser(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A model that answers from the request alone (the failure the single-turn suites cannot see)."""
    return ModelResponse(parts=[TextPart("It's probably 10 seconds; I updated it.")])


def test_runner_scores_end_states_saves_transcripts_and_compares(suite_file: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    suite = load_task_suite(suite_file)
    good = anyio.run(
        lambda: run_task_suite(suite, ws=ws, model=FunctionModel(_solver), label="adapter", run_id="good")
    )
    bad = anyio.run(
        lambda: run_task_suite(suite, ws=ws, model=FunctionModel(_guesser), label="baseline", run_id="bad")
    )
    assert [r.success for r in good.results] == [True, True]
    assert [r.success for r in bad.results] == [False, False]
    edit = good.results[1]
    assert (edit.steps, edit.calls, edit.failed_calls) == (3, 2, 0)
    failed = bad.results[0]
    assert "answer lacks ['30']" in " ".join(o.detail for o in failed.checks)
    # the project itself is untouched: every attempt ran in its own copy
    assert (
        (suite_file.parent / "projects" / "app" / "app" / "config.py").read_text().startswith("TIMEOUT = 30")
    )
    transcript = (task_run_dir(ws, "good") / "transcripts" / "bump-timeout.jsonl").read_text()
    assert "write_file" in transcript and "TIMEOUT = 60" in transcript
    assert load_task_report(ws, "good").complete
    assert json.loads((task_run_dir(ws, "good") / "summary.json").read_text())["succeeded"] == 2
    cmp = compare_task_runs(ws, "bad", "good")
    assert (cmp.mcnemar.fixes, cmp.mcnemar.regressions, cmp.success_a, cmp.success_b) == (2, 0, 0.0, 1.0)
    page = (task_run_dir(ws, "good") / "vs-bad.html").read_text()
    assert "bump-timeout" in page and "call: write_file" in page and "probably 10 seconds" in page
    assert cmp.differs == [] and "differ besides" not in page
    # a pairing of runs made differently says how, in the result and on the page
    anyio.run(
        lambda: run_task_suite(
            suite,
            ws=ws,
            model=FunctionModel(_solver),
            label="hot",
            run_id="hot",
            temperature=0.5,
            lenient_tools=True,
        )
    )
    assert compare_task_runs(ws, "good", "hot").differs == [
        "temperature: None vs 0.5",
        "lenient_tools: False vs True",
    ]
    assert "temperature: None vs 0.5" in (task_run_dir(ws, "hot") / "vs-good.html").read_text()


@pytest.mark.parametrize("concurrency", [1, 2])
def test_tasks_run_at_once_up_to_the_concurrency_and_report_in_suite_order(
    suite_file: Path, tmp_path: Path, concurrency: int
) -> None:
    """Each task in its own sandbox, ``concurrency`` of them in flight: the same verdicts and records as
    one at a time, in the suite's order, every result and transcript written whole."""
    in_flight, peak = 0, 0

    async def slow_solver(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        asked = next(p.content for m in messages for p in m.parts if p.part_kind == "user-prompt")
        await anyio.sleep(0.3 if "default timeout?" in str(asked) else 0.02)  # the first task ends last
        in_flight -= 1
        return _solver(messages, info)

    ws = Workspace(tmp_path / "ws").ensure()
    suite = load_task_suite(suite_file)
    seen: list[tuple[int, int]] = []
    finished: list[str] = []

    def progress(done: int, total: int, result: Any) -> None:
        seen.append((done, total))
        finished.append(result.task_id)

    report = anyio.run(
        lambda: run_task_suite(
            suite,
            ws=ws,
            model=FunctionModel(slow_solver),
            run_id="r",
            concurrency=concurrency,
            on_progress=progress,
        )  # fmt: skip
    )
    assert peak == concurrency
    assert [r.task_id for r in report.results] == ["timeout-value", "bump-timeout"]
    assert [r.success for r in report.results] == [True, True] and seen == [(1, 2), (2, 2)]
    # two at once, the slow first task ends last; reported and recorded in the suite's order all the same
    assert finished == (["bump-timeout", "timeout-value"][:: 1 if concurrency == 2 else -1])
    lines = (task_run_dir(ws, "r") / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["task_id"] for x in lines] == ["timeout-value", "bump-timeout"]
    assert load_task_report(ws, "r").complete
    assert "TIMEOUT = 60" in (task_run_dir(ws, "r") / "transcripts" / "bump-timeout.jsonl").read_text()
    with pytest.raises(TooltuneError, match="concurrency must be at least 1"):
        anyio.run(lambda: run_task_suite(suite, ws=ws, model=FunctionModel(_solver), concurrency=0))


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_task_that_fails_ends_the_run_with_its_own_error(
    suite_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    """An error inside a task (the model server gone, say) comes out as itself, never wrapped in a
    group, so the CLI and MCP print its message; the run stays unfinished and resumable."""
    from tooltune.evals import task_runner

    async def broken(*_a: Any, **_k: Any) -> Any:
        raise TooltuneError("the model server is not running")

    monkeypatch.setattr(task_runner, "run_task", broken)
    ws = Workspace(tmp_path / "ws").ensure()
    suite = load_task_suite(suite_file)
    with pytest.raises(TooltuneError, match="the model server is not running"):
        anyio.run(
            lambda: run_task_suite(
                suite, ws=ws, model=FunctionModel(_solver), run_id="x", concurrency=concurrency
            )
        )
    assert not load_task_report(ws, "x").complete


def test_resuming_keeps_the_concurrency_and_a_finished_run_is_left_as_recorded(
    suite_file: Path, tmp_path: Path
) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    suite = load_task_suite(suite_file)

    def run(model: Any, **kw: Any) -> Any:
        return anyio.run(
            lambda: run_task_suite(suite, ws=ws, model=FunctionModel(model), run_id="half", **kw)
        )

    run(_solver, limit=1)
    # one task of two done, one at a time: finishing it four at a time would mix two ways of running
    with pytest.raises(TooltuneError, match=r"worked 1 task\(s\) at a time; resume it at concurrency 1"):
        run(_solver, concurrency=4)
    done = run(_solver)
    assert done.meta.concurrency == 1 and [r.success for r in done.results] == [True, True]
    recorded = (task_run_dir(ws, "half") / "run.json").read_bytes()
    # a finished run asked for again (at any concurrency) is returned as it was, its record untouched
    again = run(_guesser, concurrency=4)
    assert again.meta.concurrency == 1 and [r.success for r in again.results] == [True, True]
    assert (task_run_dir(ws, "half") / "run.json").read_bytes() == recorded
    first = run(_guesser, limit=1)  # and a shorter read of it counts only the tasks asked for
    assert first.complete and [r.task_id for r in first.results] == ["timeout-value"]


def test_differences_read_old_runs_as_they_ran() -> None:
    """A run from before the repeat guard (None) had none; temperature 0 is greedy (None)."""
    from tooltune.evals.task_compare import run_differences
    from tooltune.evals.task_records import TaskRunMeta

    old = TaskRunMeta(run_id="a", suite="s", suite_hash="h", repeat_guard=None, temperature=0.0)
    unguarded = TaskRunMeta(run_id="b", suite="s", suite_hash="h", repeat_guard=False)
    assert run_differences(old, unguarded) == []
    hot = TaskRunMeta(
        run_id="c", suite="s", suite_hash="h", repeat_guard=True, temperature=0.7, concurrency=4
    )
    assert run_differences(old, hot) == [
        "temperature: None vs 0.7",
        "repeat_guard: False vs True",
        "concurrency: 1 vs 4",
    ]


def test_no_task_leaves_its_sandbox(suite_file: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("do not read")
    ws = Workspace(tmp_path / "ws").ensure()
    suite = load_task_suite(suite_file)
    attempts = [
        ("read_file", {"path": str(outside)}),
        ("read_file", {"path": "../../../../secret.txt"}),
        ("write_file", {"path": "../../../../escape.txt", "content": "x"}),
        ("write_file", {"path": str(tmp_path / "escape2.txt"), "content": "x"}),
        ("list_dir", {"path": "/"}),
        ("run_command", {"command": "cat", "args": [str(outside)]}),
    ]

    def attacker(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        done = _returns(messages) + [
            p for m in messages for p in getattr(m, "parts", []) if p.part_kind == "retry-prompt"
        ]
        if len(done) < len(attempts):
            name, args = attempts[len(done)]
            return ModelResponse(parts=[ToolCallPart(name, args)])
        return ModelResponse(parts=[TextPart("done")])

    report = anyio.run(
        lambda: run_task_suite(suite, ws=ws, model=FunctionModel(attacker), run_id="attack", limit=2)
    )
    edit = report.results[1]  # allow_write: true, and still nothing lands outside the copy
    assert edit.calls == len(attempts) and edit.failed_calls == len(attempts)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "escape2.txt").exists()
    assert not list(tmp_path.rglob("escape*.txt"))
    transcript = (task_run_dir(ws, "attack") / "transcripts" / "bump-timeout.jsonl").read_text()
    assert "do not read" not in transcript


def test_a_looping_model_hits_the_step_limit_meets_the_repeat_guard_and_keeps_its_transcript(
    suite_file: Path, tmp_path: Path
) -> None:
    """The same call again and again: the run stops at the step limit with its transcript; the agent ran
    the call once and answered the rest (counted per task and in the summary); a run records whether the
    guard was on, and never resumes across that."""
    ws = Workspace(tmp_path / "ws").ensure()
    suite = load_task_suite(suite_file)

    def looper(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("read_file", {"path": "app/config.py"})])

    guarded = anyio.run(
        lambda: run_task_suite(suite, ws=ws, model=FunctionModel(looper), run_id="g", limit=1)
    )
    r = guarded.results[0]
    assert not r.success and r.error and "stopped after 10 model requests" in r.error
    assert "read_file" in (task_run_dir(ws, "g") / "transcripts" / "timeout-value.jsonl").read_text()
    assert r.calls >= 9 and r.repeated_calls == r.calls - 1 and r.failed_calls == r.repeated_calls
    assert guarded.meta.repeat_guard is True and guarded.summary()["repeated_calls"] == r.repeated_calls
    assert load_task_report(ws, "g").results[0].repeated_calls == r.repeated_calls
    raw = anyio.run(
        lambda: run_task_suite(
            suite, ws=ws, model=FunctionModel(looper), run_id="raw", limit=1, repeat_guard=False
        )
    )
    assert raw.meta.repeat_guard is False
    assert (raw.results[0].repeated_calls, raw.results[0].failed_calls) == (0, 0)
    with pytest.raises(Exception, match="repeat guard False, temperature None; choose another run id"):
        anyio.run(lambda: run_task_suite(suite, ws=ws, model=FunctionModel(looper), run_id="raw"))


def test_the_built_in_suite_is_solvable_and_not_solved_by_doing_nothing(tmp_path: Path) -> None:
    suite = load_task_suite("coding-tasks")
    assert len(suite.tasks) >= 40
    for task in suite.tasks:
        assert task.reference is not None, task.id
        with sandbox_copy(suite.project(task)) as root:
            before = snapshot(root)
            answer = apply_reference(task, root)
            failed = [o for o in run_checks(task, root, answer, before) if not o.passed]
            assert not failed, (task.id, failed)
        with sandbox_copy(suite.project(task)) as root:
            before = snapshot(root)
            assert not all(o.passed for o in run_checks(task, root, "", before)), task.id


def test_the_leak_check_keeps_task_requests_out_of_training() -> None:
    from tooltune.data.similarity import LeakIndex

    index = LeakIndex.for_workspace(None, bfcl_dir=None)
    task = load_task_suite("coding-tasks").tasks[0]
    hit = index.match(task.request)
    assert hit is not None and hit[0] == f"tasks:coding-tasks:{task.id}"


def test_trajectory_data_never_rehearses_a_task_edit() -> None:
    """The opt-in trajectory kind edits constants and fixes functions: none of them is one the tasks'
    projects have, so training cannot teach a task's answer (the recorded jobs' projects included)."""
    import random
    import re

    from tooltune.data.recorded_jobs import trajectory

    suite = load_task_suite("coding-tasks")
    names: set[str] = set()
    for p in suite.projects_dir.rglob("*"):
        if p.is_file() and p.suffix in (".py", ".ts", ".tsx", ".json", ".ini", ".md", ".toml"):
            text = p.read_text(errors="replace")
            names |= set(re.findall(r"\b[A-Z][A-Z0-9_]{3,}\b", text)) | set(re.findall(r"def (\w+)", text))
    rng = random.Random(0)
    for _ in range(2000):
        job = trajectory(rng)
        for step in job.steps:
            if step.name == "write_file":
                written = set(re.findall(r"\b[A-Z][A-Z0-9_]{3,}\b", step.args["content"]))
                written |= set(re.findall(r"def (\w+)", step.args["content"]))
                assert not (written & names), (written & names, step.args["content"])


def test_recorded_jobs_projects_share_no_name_with_the_task_projects() -> None:
    """The trajectory kind's generated projects (and the scripted test-run jobs' functions and modules): no
    function, constant, package or module of theirs is a name the coding-tasks projects or requests use,
    so a job never walks a task's own path."""
    import re

    from tooltune.data.coding_trajectories import FIX_STEMS, PY_FUNCS
    from tooltune.data.recorded_jobs import _CONSTS, _FUNCS, _MODULES, _PACKAGES

    suite = load_task_suite("coding-tasks")
    stems: set[str] = set()
    idents: set[str] = set()
    for p in suite.projects_dir.rglob("*"):
        stems.add(p.stem.lower())
        if p.is_file():  # every file, whatever its suffix
            idents |= set(re.findall(r"\b\w+\b", p.read_text(errors="replace")))
    idents |= {w for t in suite.tasks for w in re.findall(r"\b\w+\b", t.request)}
    ours = [f[0] for f in _FUNCS] + [c[0] for c in _CONSTS] + [f[0] for f in PY_FUNCS]
    assert not set(ours) & idents, set(ours) & idents
    modules = set(_PACKAGES) | set(_MODULES) | set(FIX_STEMS)
    # "config" is every project's settings file, ours included: a name, not a task's path
    assert not modules & (stems - {"config"}), modules & stems
    assert not modules & {w.lower() for w in idents}, modules & {w.lower() for w in idents}


def test_project_names_links_and_run_ids_cannot_reach_outside(suite_file: Path, tmp_path: Path) -> None:
    projects = suite_file.parent / "projects"
    for bad in ("..", "/etc", "app/../.."):
        with pytest.raises(TaskSuiteError, match="project must be the name of a folder"):
            moved = SUITE.replace(
                "project: app\n    request: \"what's", f"project: {bad}\n    request: \"what's"
            )
            parse_task_suite(moved, source="mini.yaml", projects_dir=projects)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    (projects / "app" / "leak.txt").symlink_to(secret)
    (projects / "app" / "dangling").symlink_to(tmp_path / "nowhere")
    suite = load_task_suite(suite_file)

    def reader(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not _returns(messages) and not any(
            p.part_kind == "retry-prompt" for m in messages for p in m.parts
        ):
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": "leak.txt"})])
        return ModelResponse(parts=[TextPart("done")])

    ws = Workspace(tmp_path / "ws").ensure()
    report = anyio.run(
        lambda: run_task_suite(suite, ws=ws, model=FunctionModel(reader), run_id="links", limit=1)
    )
    assert report.results[0].failed_calls == 1  # the link is copied as a link, and the sandbox refuses it
    assert "TOPSECRET" not in (task_run_dir(ws, "links") / "transcripts" / "timeout-value.jsonl").read_text()
    root = tmp_path / "p"
    root.mkdir()
    from tooltune.evals.tasks import run_check

    assert not run_check(Check.model_validate({"file_absent": "../../etc/passwd"}), root, "", {}).passed
    # the same run id again: the finished task is kept, not run again; another target is refused
    calls: list[int] = []

    def counting(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(1)
        return ModelResponse(parts=[TextPart("done")])

    again = anyio.run(lambda: run_task_suite(suite, ws=ws, model=FunctionModel(counting), run_id="links"))
    assert [r.task_id for r in again.results] == ["timeout-value", "bump-timeout"] and len(calls) == 1
    with pytest.raises(Exception, match="exists for suite"):
        anyio.run(
            lambda: run_task_suite(suite, ws=ws, model=FunctionModel(counting), run_id="links", adapter="x")
        )


@pytest.mark.parametrize(
    ("extra", "said_part"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1 (got 0)"),
        (["--temperature", "-1"], "--temperature must be 0 (greedy) or more"),
    ],
)
def test_eval_refuses_bad_numbers_before_starting_anything(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    said_part: str,
) -> None:
    from tooltune import cli

    if "eval" not in cli.app:
        cli._register()
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    rc = cli.app.meta(["eval", "--tasks", "coding-tasks", "--baseline", *extra], result_action="return_value")
    assert rc == 2 and said_part in " ".join(capsys.readouterr().err.split())
    assert not (settings.workspace / "task-runs").exists()


@pytest.mark.parametrize("extra", [["--repeats", "2"], ["--seed", "3"], ["--resume", "some-run"]])
def test_eval_tasks_refuses_the_options_it_would_ignore(
    settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    """--repeats, --seed and --resume belong to single-turn suites; with --tasks they would be dropped
    silently, so they are refused by name (exit 2, nothing run)."""
    from tooltune import cli

    if "eval" not in cli.app:
        cli._register()
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    rc = cli.app.meta(["eval", "--tasks", "coding-tasks", "--baseline", *extra], result_action="return_value")
    said = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and f"{extra[0]} do not apply to --tasks" in said
    assert not (settings.workspace / "task-runs").exists()
