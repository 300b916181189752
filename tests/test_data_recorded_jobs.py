"""Jobs recorded from the agent's own tools: every result is the tool's real output on a generated project,
errors included, and the answers quote what the tools returned."""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

import pytest

from tooltune.agent import tools_impl
from tooltune.agent.sandbox import Sandbox
from tooltune.data import recorded_jobs
from tooltune.data.recorded_jobs import FILE_KINDS, Project, recorded_job, trajectory


def _replayed(seed: int, kind: recorded_jobs.Kind) -> list[str]:
    """The job's results computed again by hand: the same project, each call made on it in turn."""
    job = recorded_job(random.Random(seed), kind)
    project = Project(random.Random(seed))
    with tempfile.TemporaryDirectory() as tmp:
        project.write(Path(tmp))
        sb = Sandbox(Path(tmp), allow_write=True)
        out = []
        for step in job.steps:
            try:
                out.append(getattr(tools_impl, step.name)(sb, **step.args))
            except Exception as e:  # the refusal the recorder kept
                out.append(str(e))
    return out


@pytest.mark.parametrize("kind", FILE_KINDS, ids=lambda k: k.__name__)
def test_each_result_is_what_the_tool_returns_on_the_project(kind: recorded_jobs.Kind) -> None:
    for seed in range(5):
        job = recorded_job(random.Random(seed), kind)
        assert [s.result for s in job.steps] == _replayed(seed, kind)
        for step in job.steps:
            assert "tooltune-job-" not in step.result and "/tmp" not in step.result  # paths as the project's


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
        assert (
            first.name == "read_file" and "does not exist; use list_dir to see what is there" in first.result
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
