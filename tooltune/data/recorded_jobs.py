"""Whole jobs for the agent's own tools, recorded from the tools themselves.

A small Python project is written to a temporary folder, a plan of calls runs against it through the
agent's own tool implementations (:mod:`tooltune.agent.tools_impl`, the code ``tooltune serve`` runs),
and each result is what the model sees when it makes that call for real, rendered as pydantic-ai
renders it for the served model: a file's text, a search's hits (the test file's lines beside the
definition), a listing, a write's report, and for a path that is not there the tool's refusal as the
agent sends it (``{"error":"file 'convert.py' does not exist; use list_dir to see what is there"}``).
Made-up results drift from the real ones (the scripted jobs said "wrote app.py", the tool says
"updated app.py (...)"), and a job that meets an error and recovers is only worth learning with the
error as the model will see it, then the listing, then the right file. The call that fails is trained
too: it reads the file the request names, the right first move when the request names it by its base
name alone.

Two jobs are set in sessions that refuse a call, as ``tooltune serve`` does without ``--allow-write``
or ``--allow-exec``: the refusal is the agent's own (:meth:`Sandbox.check`, the check the agent makes
before a tool runs), and the job goes on without the call and says what was not done, never making it
again. No job here runs a command; the jobs that run the tests stay scripted
(:mod:`tooltune.data.coding_trajectories`), since a dataset should not have to run pytest. No function,
constant or module name of a project is one the coding-tasks projects have (a test checks), so
training never rehearses an eval task's answer. Results name paths relative to the project, so a seed
gives the same jobs on any machine (a test pins their digest: a change in a tool's wording changes
the data, and the generator's version with it).
"""

from __future__ import annotations

import random
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pydantic_ai.messages import ToolReturnPart

from tooltune.agent import tools_impl
from tooltune.agent.sandbox import NEEDS, Sandbox, ToolRefusal
from tooltune.data.coding_requests import _polish
from tooltune.data.coding_trajectories import EXEC_KINDS, Step, Trajectory
from tooltune.data.phrasebook_fill import and_join

Args = dict[str, Any]
Kind = Callable[[random.Random, "Project", "Recorder"], tuple[str, str]]
"""A job on files: makes its calls through the recorder, returns the request and the answer."""

# (name, parameter, body, what it does); none is defined in the coding-tasks projects
_FUNCS = [
    ("is_even", "n", "n % 2 == 0", "Whether n is even."),
    ("sum_squares", "xs", "sum(x * x for x in xs)", "The sum of the squares of xs."),
    ("initials", "name", "''.join(w[0] for w in name.split())", "The first letter of each word of name."),
    ("half_of", "n", "n / 2", "Half of n."),
    ("cube", "n", "n ** 3", "n to the third power."),
    ("unit_clip", "x", "max(0.0, min(1.0, x))", "x held between 0 and 1."),
    ("word_total", "text", "len(text.split())", "How many words text has."),
    ("to_fahrenheit", "celsius", "celsius * 9 / 5 + 32", "Degrees Celsius in Fahrenheit."),
    ("last_or_none", "xs", "xs[-1] if xs else None", "The last item of xs, or None when xs is empty."),
    ("shouted", "text", "text.upper() + '!'", "text in capitals, with an exclamation mark."),
]
# (name, value, a new value); none is in the coding-tasks projects
_CONSTS = [
    ("CACHE_TTL", 300, 900),
    ("BATCH_SIZE", 100, 250),
    ("POOL_SIZE", 5, 10),
    ("MAX_UPLOAD_MB", 10, 25),
    ("SESSION_DAYS", 7, 14),
    ("WORKER_COUNT", 2, 4),
    ("RETRY_LIMIT", 4, 6),
    ("FLUSH_SECONDS", 15, 45),
]
_PACKAGES = ["ledger", "mailer", "inventory", "beacon", "weatherly", "metrics", "courier", "atlas"]
_MODULES = ["tally", "mathutil", "convert", "core", "calc", "shaping"]


class Project:
    """A small Python project: a package with a config module and a module of functions, tests, a README."""

    def __init__(self, rng: random.Random) -> None:
        self.package = rng.choice(_PACKAGES)
        self.module = rng.choice(_MODULES)
        self.funcs = rng.sample(_FUNCS, 3)
        self.consts = rng.sample(_CONSTS, 3)
        self.source = f"{self.package}/{self.module}.py"
        self.config = f"{self.package}/config.py"

    def files(self) -> dict[str, str]:
        defs = "\n\n".join(
            f'def {name}({param}):\n    """{doc}"""\n    return {body}\n'
            for name, param, body, doc in self.funcs
        )
        consts = "\n".join(f"{name} = {value}" for name, value, _ in self.consts)
        imports = ", ".join(name for name, *_ in self.funcs)
        tests = "\n\n".join(f"def test_{name}():\n    assert {name} is not None\n" for name, *_ in self.funcs)
        return {
            "README.md": f"# {self.package}\n\nSmall helpers and settings for the {self.package} service.\n",
            f"{self.package}/__init__.py": f'"""The {self.package} package."""\n',
            self.config: f'"""Settings for {self.package}."""\n\n{consts}\n',
            self.source: f'"""Helpers for {self.package}."""\n\n\n{defs}',
            f"tests/test_{self.module}.py": f"from {self.package}.{self.module} import {imports}\n\n\n"
            + tests,
        }

    def write(self, root: Path) -> None:
        for rel, text in self.files().items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode())  # "\n" on every platform: the same bytes, the same results


class Recorder:
    """Runs calls against a project with the agent's own tools and keeps each call with its real result."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.steps: list[Step] = []
        self.checks: list[dict[str, Any]] = []

    def expect(self, **check: Any) -> None:
        """What a run of this job must leave behind to have done it (a task suite's check: the answer
        names a fact only the files hold, a file has the new text, nothing changed): the job as a
        practice task (:mod:`tooltune.data.practice_tasks`). Draws nothing, so the data stays the same."""
        self.checks.append(check)

    def call(self, name: str, args: Args) -> str:
        """Make the call; keep (and return) its result as the served model reads it."""
        impl: Callable[..., str] = getattr(tools_impl, name)
        try:
            if (need := NEEDS.get(name)) is not None:  # the session's permission first, as the agent checks
                self.sandbox.check(need, name)
            part = ToolReturnPart(tool_name=name, content=impl(self.sandbox, **args), tool_call_id="recorded")
        except ToolRefusal as e:  # the agent raises ToolFailed(str(e)): a failed tool return
            part = ToolReturnPart(tool_name=name, content=str(e), tool_call_id="recorded", outcome="failed")
        result = part.model_response_str()
        self.steps.append(Step(name, args, result))
        return result


# a refusal in the answer's words ("I can't change files…", "writing is disabled…")
_REFUSAL = (
    r"can[’']?t|cannot|can not|unable|not (allowed|permitted|able)|disabled|refused|read-only|allow-write"
)


def _number(value: int) -> str:
    """A regex for ``value`` as a number on its own (5 is not in 15, 2.5 or 5.5; a full stop after it
    ends the sentence)."""
    return rf"(?<!\d)(?<!\d\.){value}(?!\.?\d)"


def _read_it(body: str, doc: str) -> str:
    """A regex an answer matches only by quoting what the function's file says: its return expression
    (spacing free) or its docstring's sentence. Knowing where a function is, or its name, is not enough."""
    code = "".join(r"\s*" if c.isspace() else re.escape(c) for c in re.sub(r"\s+", " ", body))
    words = r"\s+".join(re.escape(w) for w in doc.rstrip(".").split())
    return f"{code}|{words}"


def _line_of(result: str, path: str, text: str) -> int:
    """The line a search result gives for ``text`` in ``path`` (``path:line: text``)."""
    for hit in result.splitlines():
        where, _, found = hit.partition(": ")
        if where.startswith(f"{path}:") and text in found:
            return int(where.rsplit(":", 1)[1])
    raise ValueError(f"{text!r} not found in {path} by the search")  # the plan and the project disagree


def _find_and_explain(rng: random.Random, p: Project, rec: Recorder) -> tuple[str, str]:
    name, _, body, doc = rng.choice(p.funcs)
    hits = rec.call("search_code", {"pattern": f"def {name}" if rng.random() < 0.5 else name})
    line = _line_of(hits, p.source, f"def {name}(")
    rec.call("read_file", {"path": p.source})
    ask = rng.choice(
        [
            f"where is {name} defined, and what does it do?",
            f"find {name} and show me how it works",
            f"what does {name} do?",
            f"look up {name} and explain it",
        ]
    )
    rec.expect(answer_matches=_read_it(body, doc))
    rec.expect(unchanged=True)
    return ask, f"{name} is defined in {p.source} (line {line}). {doc} It returns `{body}`."


def _list_and_read(rng: random.Random, p: Project, rec: Recorder) -> tuple[str, str]:
    listing = rec.call("list_dir", {"path": p.package})
    rec.call("read_file", {"path": p.config})
    names = ", ".join(e.rsplit("/", 1)[-1] for e in listing.splitlines())
    sets = ", ".join(f"{name} to {value}" for name, value, _ in p.consts)
    ask = rng.choice(
        [
            f"what's in {p.package}/? then open its config and tell me what it sets",
            f"list {p.package} and read the config module in it",
            f"which settings does the {p.package} package have?",
        ]
    )
    for name, value, _ in p.consts:  # each setting with its own value, on one line of the answer
        rec.expect(answer_matches=rf"\b{name}\b[^\n]{{0,40}}?{_number(value)}")
    rec.expect(unchanged=True)
    return ask, f"{p.package}/ has {names}; {p.config} sets {sets}."


def _read_constant(rng: random.Random, p: Project, rec: Recorder) -> tuple[str, int, int, str, str]:
    """A constant to change: found by a search unless the request names its file, then its file read.
    Returns its name, old and new value, the request's "in <file>" ("" when it names none) and the file
    with the new value written in."""
    name, old, new = rng.choice(p.consts)
    named = rng.random() < 0.5  # the request names the file, or the job finds it first
    if not named:
        _line_of(rec.call("search_code", {"pattern": name}), p.config, f"{name} =")
    before = rec.call("read_file", {"path": p.config})
    where = f" in {p.config}" if named else ""
    return name, old, new, where, before.replace(f"{name} = {old}", f"{name} = {new}")


def _edit_constant(rng: random.Random, p: Project, rec: Recorder) -> tuple[str, str]:
    name, old, new, where, content = _read_constant(rng, p, rec)
    rec.call("write_file", {"path": p.config, "content": content})
    ask = rng.choice(
        [
            f"bump {name}{where} to {new}",
            f"set {name} to {new}{where}",
            f"change {name} from {old} to {new}{where}",
        ]
    )
    kept = [f"{other} = {value}\n" for other, value, _ in p.consts if other != name]
    rec.expect(file_contains={"path": p.config, "text": [f"{name} = {new}\n", *kept, '"""Settings for']})
    rec.expect(file_lacks={"path": p.config, "text": f"{name} = {old}\n"})
    return ask, f"Done: {name} is now {new} in {p.config} (it was {old})."


def _recover_from_a_wrong_path(rng: random.Random, p: Project, rec: Recorder) -> tuple[str, str]:
    """The request names the module, not where it is: the first read fails with the tool's own words,
    the listing shows the package, the right file is read."""
    name, _, body, doc = rng.choice(p.funcs)
    missing = rec.call("read_file", {"path": f"{p.module}.py"})
    if "does not exist" not in missing:
        raise ValueError(f"{p.module}.py was expected to be missing: {missing[:80]}")
    listing = rec.call("list_dir", {"path": ".", "recursive": True})
    if p.source not in listing.splitlines():
        raise ValueError(f"{p.source} not in the listing")
    rec.call("read_file", {"path": p.source})
    ask = rng.choice(
        [
            f"open {p.module}.py and tell me what {name} does",
            f"what does {name} in {p.module}.py do?",
            f"read {p.module}.py, I want to know what {name} returns",
        ]
    )
    rec.expect(answer_matches=_read_it(body, doc))
    rec.expect(unchanged=True)
    return ask, f"{p.module}.py is {p.source}. {name}: {doc} It returns `{body}`."


def _refused(result: str, name: str) -> None:
    """Check that the plan's call was refused by the session (the plan and the session agree)."""
    if f"{name} refused:" not in result:
        raise ValueError(f"{name} was expected to be refused: {result[:80]}")


def _edit_refused(rng: random.Random, p: Project, rec: Recorder) -> tuple[str, str]:
    """The session may not write (``tooltune serve`` without ``--allow-write``): the edit is refused in the
    agent's own words, and the answer says what the change would be instead of trying again."""
    name, old, new, where, content = _read_constant(rng, p, rec)
    _refused(rec.call("write_file", {"path": p.config, "content": content}), "write_file")
    ask = rng.choice(
        [f"set {name} to {new}{where}", f"bump {name}{where} to {new}", f"change {name}{where} to {new}"]
    )
    rec.expect(unchanged=True)
    rec.expect(answer_contains=[name])
    rec.expect(answer_matches=_number(old))  # only the file says what it is now
    rec.expect(answer_matches=_REFUSAL)
    return ask, (
        "I can't change files in this session: writing is disabled (start the session with --allow-write "
        "to make changes). "
        f"{p.config} has `{name} = {old}`; the change is to make it `{name} = {new}`."
    )


def _tests_refused(rng: random.Random, p: Project, rec: Recorder) -> tuple[str, str]:
    """The session may not run commands: the test run is refused, and the job goes on without it (finds
    and reads what answers the rest of the request), then says what was not run instead of trying again."""
    test = f"tests/test_{p.module}.py"
    if rng.random() < 0.5:
        _refused(rec.call("run_tests", {}), "run_tests")
        listing = rec.call("list_dir", {"path": ".", "recursive": True}).splitlines()
        found = [e for e in listing if e.startswith("tests/test_") and e.endswith(".py")]
        if found != [test]:  # found, not guessed
            raise ValueError(f"{test} is not the one test file of the listing: {found}")
        names = re.findall(r"^def (test_\w+)\(", rec.call("read_file", {"path": test}), re.MULTILINE)
        ask = rng.choice(["do the tests pass?", "run the tests and tell me how it went", "are we green?"])
        return ask, (
            "I can't run the tests here: running commands is disabled in this session (start the session "
            f"with --allow-exec to run them). {test} has {len(names)} tests: {and_join(names)}."
        )
    name, _, body, doc = rng.choice(p.funcs)
    hits = rec.call("search_code", {"pattern": f"def {name}"})
    line = _line_of(hits, p.source, f"def {name}(")
    rec.call("read_file", {"path": p.source})
    named = rng.random() < 0.5  # the request names the test file, or means the tests as a whole
    _refused(rec.call("run_tests", {"path": test} if named else {}), "run_tests")
    asks = [f"check {name}: what it returns, and whether {test} passes", f"explain {name}, then run {test}"]
    if not named:
        asks = [f"what does {name} do? and do the tests pass?", f"explain {name}, then run the tests"]
    what = test if named else "the tests"
    return rng.choice(asks), (
        f"{name} is in {p.source} (line {line}). {doc} It returns `{body}`. I couldn't run {what}: "
        "running commands is disabled in this session (start the session with --allow-exec to run them)."
    )


FILE_KINDS: list[Kind] = [
    _find_and_explain,
    _list_and_read,
    _edit_constant,
    _recover_from_a_wrong_path,
    _edit_refused,
    _tests_refused,
]
_READ_ONLY: set[Kind] = {_edit_refused}  # jobs set in a session that may not write
# the jobs whose success a task check can decide (the refused test run's two branches answer differently)
PRACTICE_KINDS: list[Kind] = [k for k in FILE_KINDS if k is not _tests_refused]


def session(kind: Kind) -> dict[str, bool]:
    """What the session ``kind``'s job is set in may do (``Sandbox`` and ``build_agent`` keywords): write
    (as ``tooltune serve --allow-write``) unless the job is about a refused edit; never run commands, so
    a dataset never runs them."""
    return {"allow_write": kind not in _READ_ONLY, "allow_exec": False}


def _record(rng: random.Random, kind: Kind) -> tuple[Project, Recorder, str, str]:
    """A fresh project, and ``kind``'s job made on it with the agent's own tools under the permissions of
    the session the job is set in: the project, the recorder (calls, results, checks), request, answer."""
    project = Project(rng)
    with tempfile.TemporaryDirectory(prefix="tooltune-job-") as tmp:
        root = Path(tmp)
        project.write(root)
        rec = Recorder(Sandbox(root, **session(kind)))
        ask, answer = kind(rng, project, rec)
    return project, rec, _polish(rng, ask), answer


def recorded_job(rng: random.Random, kind: Kind) -> Trajectory:
    """One job of ``kind`` on a fresh project, every result from the agent's own tools under the
    permissions of the session the job is set in."""
    _, rec, ask, answer = _record(rng, kind)
    return Trajectory(ask, rec.steps, answer)


class PracticeJob(NamedTuple):
    """A job as a task for the agent to do itself: the project's files, the request, what a run must
    leave behind (task-suite checks), the session's permission to write, and the recorded answer."""

    kind: str
    files: dict[str, str]
    request: str
    checks: list[dict[str, Any]]
    allow_write: bool
    answer: str
    written: dict[str, str]  # what the recorded job wrote (path: content), the reference's files


def practice_job(rng: random.Random, kind: Kind) -> PracticeJob:
    """One job of ``kind`` (one of :data:`PRACTICE_KINDS`) as a practice task, drawn as
    :func:`recorded_job` draws it."""
    project, rec, ask, answer = _record(rng, kind)
    if not rec.checks:
        raise ValueError(f"{kind.__name__} sets no checks: it is not a practice kind")
    name = kind.__name__.strip("_").replace("_", "-")
    written = {
        str(args["path"]): str(args["content"])
        for tool, args, result in rec.steps
        if tool == "write_file" and "write_file refused:" not in result
    }
    return PracticeJob(name, project.files(), ask, rec.checks, session(kind)["allow_write"], answer, written)


def trajectory(rng: random.Random) -> Trajectory:
    """A job for the built-in coding tools: recorded from the tools for files, scripted for test runs."""
    i = rng.randrange(len(FILE_KINDS) + len(EXEC_KINDS))
    if i < len(FILE_KINDS):
        return recorded_job(rng, FILE_KINDS[i])
    return EXEC_KINDS[i - len(FILE_KINDS)](rng)
