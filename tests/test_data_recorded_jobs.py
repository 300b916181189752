"""Jobs recorded from the agent's own tools: every result is the tool's real output on a generated project,
errors included, and the answers quote what the tools returned."""

from __future__ import annotations

import hashlib
import json
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tooltune.agent.agent import build_agent, server_model
from tooltune.data import recorded_jobs
from tooltune.data.generate_config import GENERATOR_VERSION
from tooltune.data.recorded_jobs import FILE_KINDS, Project, recorded_job, trajectory


def _served(seed: int, kind: recorded_jobs.Kind) -> list[str]:
    """The job's calls made again by the coding agent itself (a model that makes them one by one, on the
    same project), each result rendered as the served model reads it."""
    job = recorded_job(random.Random(seed), kind)
    project = Project(random.Random(seed))
    with tempfile.TemporaryDirectory() as tmp:
        project.write(Path(tmp))
        agent = build_agent(root=Path(tmp), **recorded_jobs.session(kind))

        def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            done = sum(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
            if done < len(job.steps):
                step = job.steps[done]
                return ModelResponse(parts=[ToolCallPart(step.name, step.args)])
            return ModelResponse(parts=[TextPart(job.answer)])

        result = anyio.run(lambda: agent.run(job.request, model=FunctionModel(model)))
    parts = [p for m in result.all_messages() for p in m.parts if isinstance(p, ToolReturnPart)]
    return [p.model_response_str() for p in parts]


def _on_the_wire(seed: int, kind: recorded_jobs.Kind) -> list[str]:
    """The tool messages the agent sends the model server (the OpenAI request body, captured at the HTTP
    layer) when a model makes the job's calls one by one on the same project."""
    job = recorded_job(random.Random(seed), kind)
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        done = sum(m["role"] == "tool" for m in bodies[-1]["messages"])
        if done < len(job.steps):
            step = job.steps[done]
            call = {"id": f"c{done}", "type": "function",
                    "function": {"name": step.name, "arguments": json.dumps(step.args)}}  # fmt: skip
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        else:
            message = {"role": "assistant", "content": job.answer}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        return httpx2.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                          "choices": [choice]})  # fmt: skip

    class Server:
        base_url = "http://127.0.0.1:9/v1"
        model_name = "/models/tiny"
        extra_body: dict[str, Any] = {}

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    with tempfile.TemporaryDirectory() as tmp:
        Project(random.Random(seed)).write(Path(tmp))
        agent = build_agent(root=Path(tmp), **recorded_jobs.session(kind))
        anyio.run(lambda: agent.run(job.request, model=server_model(Server(), http_client=client)))
    return [m["content"] for m in bodies[-1]["messages"] if m["role"] == "tool"]


@pytest.mark.parametrize("kind", FILE_KINDS, ids=lambda k: k.__name__)
def test_each_result_is_what_the_agent_sends_the_model_server(kind: recorded_jobs.Kind) -> None:
    for seed in range(6):  # seeds 0-5 reach every branch of every kind
        job = recorded_job(random.Random(seed), kind)
        assert [s.result for s in job.steps] == _on_the_wire(seed, kind)


@pytest.mark.parametrize("kind", FILE_KINDS, ids=lambda k: k.__name__)
def test_each_result_is_what_the_served_agent_gets_from_its_tools(kind: recorded_jobs.Kind) -> None:
    for seed in range(6):  # seeds 0-5 reach every branch of every kind
        job = recorded_job(random.Random(seed), kind)
        assert [s.result for s in job.steps] == _served(seed, kind)
        for step in job.steps:
            assert "tooltune-job-" not in step.result  # paths as the project's, never the folder's


def test_a_write_is_reported_as_the_tool_reports_it_and_changes_only_the_constant() -> None:
    for seed in range(10):
        job = recorded_job(random.Random(seed), recorded_jobs._edit_constant)
        read, write = [s for s in job.steps if s.name == "read_file"][-1], job.steps[-1]
        assert write.name == "write_file" and re.fullmatch(
            r"updated \S+/config\.py \(\d+ bytes, \d+ lines\)", write.result
        )
        before, after = read.result.splitlines(), write.args["content"].splitlines()
        changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        assert len(changed) == 1, changed
        name, new = re.match(r"Done: (\w+) is now (\d+)", job.answer).groups()  # type: ignore[union-attr]
        assert changed[0][1] == f"{name} = {new}" and name in job.request and new in job.request


def test_a_wrong_path_fails_in_the_tools_words_and_the_job_recovers_from_the_listing() -> None:
    for seed in range(10):
        job = recorded_job(random.Random(seed), recorded_jobs._recover_from_a_wrong_path)
        first, listing, read = job.steps
        missing = first.args["path"]
        # the refusal as the agent sends it over the OpenAI API: pydantic-ai wraps a failed tool's message
        assert first.name == "read_file"
        assert (
            first.result
            == f'{{"error":"file \'{missing}\' does not exist; use list_dir to see what is there"}}'
        )
        assert listing.name == "list_dir" and listing.args == {"path": ".", "recursive": True}
        assert read.args["path"] in listing.result.splitlines()  # found, not guessed
        assert read.args["path"].endswith("/" + first.args["path"])
        name = re.search(r"\b(\w+): ", job.answer).group(1)  # type: ignore[union-attr]
        assert f"def {name}(" in read.result


def test_an_explanation_quotes_the_definition_the_search_and_the_file_show() -> None:
    for seed in range(10):
        job = recorded_job(random.Random(seed), recorded_jobs._find_and_explain)
        search, read = job.steps
        path, line = re.search(r"defined in (\S+) \(line (\d+)\)", job.answer).groups()  # type: ignore[union-attr]
        assert f"{path}:{line}: def " in search.result and read.args["path"] == path
        doc = job.answer.split(f"(line {line}). ")[1].split(" It returns")[0]
        assert doc in read.result
        assert read.result.splitlines()[int(line) - 1].startswith("def ")


def test_the_trajectory_jobs_are_what_generator_16_made() -> None:
    """A change in a tool's wording, a project or a scripted job changes the trajectory data: bump
    GENERATOR_VERSION and pin the new digest (bench/agent_tasks.py reuses datasets by the version)."""
    jobs = [trajectory(random.Random(s)) for s in range(40)]
    digest = hashlib.sha256(repr(jobs).encode()).hexdigest()[:12]
    assert (GENERATOR_VERSION, digest) == ("tooltune-data/16", "633eb47a2c9e")


def test_jobs_are_the_same_for_a_seed_and_cover_every_kind() -> None:
    a = [trajectory(random.Random(s)) for s in range(40)]
    b = [trajectory(random.Random(s)) for s in range(40)]
    assert a == b
    shapes = {tuple(step.name for step in job.steps) for job in a}
    assert ("search_code", "read_file") in shapes  # find and explain
    assert ("list_dir", "read_file") in shapes  # list and read
    assert ("read_file", "list_dir", "read_file") in shapes  # recover from a wrong path
    assert any(s[-1] == "write_file" for s in shapes)  # edit a constant
    assert ("run_tests",) in shapes  # the scripted test runs are still drawn
    refused = [job for job in a if any(" refused: " in step.result for step in job.steps)]
    assert {job.steps[-1].name for job in refused} >= {"write_file", "run_tests"}  # both refusal jobs


def test_a_refused_edit_is_the_sessions_refusal_and_the_answer_gives_the_change_instead() -> None:
    for seed in range(10):
        job = recorded_job(random.Random(seed), recorded_jobs._edit_refused)
        read, write = [s for s in job.steps if s.name == "read_file"][-1], job.steps[-1]
        assert write.name == "write_file" and write.result.startswith('{"error":"write_file refused: writing')
        assert "--allow-write" in write.result and "--allow-write" in job.answer
        name, old, new = re.search(
            r"has `(\w+) = (\d+)`; the change is to make it `\1 = (\d+)`", job.answer
        ).groups()  # type: ignore[union-attr]
        assert f"{name} = {old}" in read.result and name in job.request and new in job.request
        assert write.args["content"] == read.result.replace(f"{name} = {old}", f"{name} = {new}")
        assert recorded_jobs.session(recorded_jobs._edit_refused) == {
            "allow_write": False,
            "allow_exec": False,
        }


def test_a_refused_test_run_is_not_retried_and_the_answer_says_what_was_not_run() -> None:
    shapes = set()
    for seed in range(20):
        job = recorded_job(random.Random(seed), recorded_jobs._tests_refused)
        runs = [s for s in job.steps if s.name == "run_tests"]
        assert len(runs) == 1 and runs[0].result.startswith('{"error":"run_tests refused: running commands')
        assert "--allow-exec" in job.answer and ("can't run" in job.answer or "couldn't run" in job.answer)
        shapes.add(tuple(s.name for s in job.steps))
        read = [s for s in job.steps if s.name == "read_file"][-1]
        assert read.result and not read.result.startswith('{"error"')  # what the answer stands on was read
        if runs[0].args:  # a test file is run only when the request names it
            assert runs[0].args == {"path": f"tests/test_{read.args['path'].rsplit('/', 1)[1][:-3]}.py"}
            assert runs[0].args["path"] in job.request and runs[0].args["path"] in job.answer
        if read.args["path"].startswith("tests/"):  # asked whether the tests pass: the file's tests, all
            listing = [s for s in job.steps if s.name == "list_dir"][0].result.splitlines()
            assert read.args["path"] in listing  # found, not guessed
            named = re.findall(r"\btest_\w+\b(?!\.py)", job.answer.split(" has ")[1])
            assert named == re.findall(r"^def (test_\w+)\(", read.result, re.MULTILINE)
            project = Project(random.Random(seed))
            assert named == [f"test_{fn}" for fn, *_ in project.funcs]  # the project's own tests, all
            assert f"has {len(named)} tests" in job.answer
        else:  # asked about a function too: its explanation is what the file says
            fn = job.answer.split(" is in ")[0]
            assert f"def {fn}(" in read.result
    assert shapes == {("run_tests", "list_dir", "read_file"), ("search_code", "read_file", "run_tests")}


def test_the_seeds_the_agent_tests_use_reach_every_branch_of_the_refusal_jobs() -> None:
    """Seeds 0-5 (the agent and wire tests above) draw both refusal jobs' every branch: the edit with the
    file named and found, the test run asked alone, for a named file and for the tests as a whole."""
    tests_seen = {
        (tuple(s.name for s in job.steps), bool(next(s for s in job.steps if s.name == "run_tests").args))
        for job in (recorded_job(random.Random(seed), recorded_jobs._tests_refused) for seed in range(6))
    }
    assert tests_seen == {
        (("run_tests", "list_dir", "read_file"), False),
        (("search_code", "read_file", "run_tests"), False),
        (("search_code", "read_file", "run_tests"), True),
    }
    edits = {
        recorded_job(random.Random(seed), recorded_jobs._edit_refused).steps[0].name for seed in range(6)
    }
    assert edits == {"search_code", "read_file"}


def test_no_job_repeats_a_call_that_failed() -> None:
    """After an error the job does something else (the same call never comes twice), and after a refusal
    it never calls the refused tool again, with any arguments."""
    refusals = 0
    for s in range(200):
        job = trajectory(random.Random(s))
        calls = [(st.name, json.dumps(st.args, sort_keys=True)) for st in job.steps]
        for i, st in enumerate(job.steps):
            if st.result.startswith('{"error"'):
                assert calls.count(calls[i]) == 1, (job.request, calls[i])
            if f"{st.name} refused: " in st.result:
                refusals += 1
                assert st.name not in [later.name for later in job.steps[i + 1 :]], job.request
    assert 35 <= refusals <= 65  # a quarter of the jobs meet one (two of eight kinds)
