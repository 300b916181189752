"""Agent task suites: a small project, a request in a developer's words, and checks on the end state.

A single-turn suite asks "is the next call right?"; a task asks what a person running ``tooltune serve``
wants: did the agent finish the job? Each task names a project folder (copied into a fresh sandbox per
attempt), a request, and checks decided from the folder after the agent stopped and from its final
answer. The format (docs/TASKS.md)::

    tasks_format: 1
    name: coding-tasks
    tasks:
      - id: version-lookup
        category: find-read-answer
        project: pycli                  # a folder under projects/ beside the file
        request: "what version is this package at?"
        allow_write: false              # the agent's write_file / run_command switches for this task
        allow_exec: false
        max_steps: 10                   # model requests allowed
        checks:                         # all must pass
          - answer_contains: ["0.4.1"]
        reference: {answer: "0.4.1", files: {}}   # a correct solution (the suite's own tests use it)

Check kinds: ``answer_contains`` / ``answer_lacks`` (strings, case-insensitive), ``answer_matches``
(a regex), ``file_contains`` / ``file_lacks`` / ``file_equals`` (``{path, text}``), ``file_exists`` /
``file_absent`` (a path), ``command`` (``{argv, exit_code, output_contains}``, run in the folder after
the agent), ``unchanged`` (no file created, changed or deleted).

A malformed suite is refused as a whole with ``file:line``, as single-turn suites are: a half-loaded
suite would change what a success rate means.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tooltune.agent.sandbox import ToolRefusal
from tooltune.agent.tools_impl import run_argv
from tooltune.errors import TooltuneError, first_error

TASKS_FORMAT = 1
BUILTIN_TASK_SUITES = {"coding-tasks": "tasks/coding_tasks.yaml"}
COMMAND_TIMEOUT_S = 120


class TaskSuiteError(TooltuneError):
    """A task suite that cannot be used; the message names ``file:line`` and what to fix."""


class FileText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    text: str | list[str]

    @property
    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class CommandCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    argv: list[str] = Field(min_length=1)
    exit_code: int | None = 0
    output_contains: str | None = None


class Check(BaseModel):
    """Exactly one kind per check."""

    model_config = ConfigDict(extra="forbid")
    answer_contains: list[str] | None = None
    answer_lacks: list[str] | None = None
    answer_matches: str | None = None
    file_contains: FileText | None = None
    file_lacks: FileText | None = None
    file_equals: FileText | None = None
    file_exists: str | None = None
    file_absent: str | None = None
    command: CommandCheck | None = None
    unchanged: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [k for k, v in self.__dict__.items() if v is not None]
        if len(kinds) != 1:
            raise ValueError(f"a check has exactly one kind, got {kinds or 'none'}")
        if self.file_equals is not None and not isinstance(self.file_equals.text, str):
            raise ValueError("file_equals compares one text: give a string, not a list")
        if self.answer_matches is not None:
            try:
                re.compile(self.answer_matches)
            except re.error as e:
                raise ValueError(f"answer_matches is not a valid regex: {e}") from None
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self.__dict__.items() if v is not None)


class Reference(BaseModel):
    """A correct solution: the final answer and the files it writes (whole contents)."""

    model_config = ConfigDict(extra="forbid")
    answer: str = ""
    files: dict[str, str] = Field(default_factory=dict)


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    category: str = "task"
    project: str = Field(min_length=1)
    request: str = Field(min_length=1)
    allow_write: bool = False
    allow_exec: bool = False
    max_steps: int = Field(default=10, ge=1, le=50)
    timeout_s: float = Field(default=600.0, gt=0)
    checks: list[Check] = Field(min_length=1)
    reference: Reference | None = None

    @model_validator(mode="after")
    def _project_is_a_folder_name(self) -> Task:
        """A folder under ``projects/``, named plainly: never ``..``, an absolute path or a nested one."""
        if "/" in self.project or "\\" in self.project or self.project in (".", ".."):
            raise ValueError(f"project must be the name of a folder under projects/, got {self.project!r}")
        return self


class TaskSuite(BaseModel):
    name: str
    description: str = ""
    source: str
    hash: str
    projects_dir: Path
    tasks: list[Task]

    def project(self, task: Task) -> Path:
        return self.projects_dir / task.project


def _line_of(text: str, index: int) -> int | None:
    """The line where the ``index``-th task starts (YAML node marks)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for k, v in root.value:
        if getattr(k, "value", None) == "tasks" and isinstance(v, yaml.SequenceNode) and index < len(v.value):
            return int(v.value[index].start_mark.line) + 1
    return None


def _tree_hash(text: str, projects: Path) -> str:
    h = hashlib.sha256(text.encode())
    if projects.is_dir():
        for p in sorted(projects.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(p.relative_to(projects).as_posix().encode() + b"\0" + p.read_bytes())
    return "sha256:" + h.hexdigest()


def parse_task_suite(text: str, *, source: str, projects_dir: Path) -> TaskSuite:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise TaskSuiteError(f"{source}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise TaskSuiteError(f"{source}: a task suite is a mapping with a 'tasks' list")
    if data.get("tasks_format", TASKS_FORMAT) != TASKS_FORMAT:
        raise TaskSuiteError(f"{source}: tasks_format {data.get('tasks_format')!r} is not supported")
    tasks: list[Task] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["tasks"]):
        at = f"{source}:{_line_of(text, i) or '?'}"
        try:
            task = Task.model_validate(raw)
        except ValidationError as e:
            err = first_error(e)
            raise TaskSuiteError(f"{at}: tasks[{i}].{err.where}: {err.msg}") from None
        if task.id in seen:
            raise TaskSuiteError(f"{at}: task id {task.id!r} appears twice")
        if not (projects_dir / task.project).is_dir():
            raise TaskSuiteError(f"{at}: task {task.id!r}: no project folder {projects_dir / task.project}")
        seen.add(task.id)
        tasks.append(task)
    if not tasks:
        raise TaskSuiteError(f"{source}: the suite has no tasks")
    return TaskSuite(
        name=str(data.get("name") or Path(source).stem),
        description=str(data.get("description") or ""),
        source=source,
        hash=_tree_hash(text, projects_dir),
        projects_dir=projects_dir,
        tasks=tasks,
    )


def load_task_suite(ref: str | Path) -> TaskSuite:
    """A built-in suite by name (``coding-tasks``) or a YAML file whose projects sit in ``projects/``
    beside it."""
    name = str(ref)
    if name in BUILTIN_TASK_SUITES:
        root = Path(str(resources.files("tooltune.evals").joinpath("builtin")))
        path = root / BUILTIN_TASK_SUITES[name]
        return parse_task_suite(
            path.read_text("utf-8"), source=f"builtin:{name}", projects_dir=path.parent / "projects"
        )
    path = Path(ref).expanduser()
    if not path.is_file():
        names = ", ".join(BUILTIN_TASK_SUITES)
        raise TaskSuiteError(f"no task suite {name!r}: use a built-in name ({names}) or a YAML file")
    return parse_task_suite(path.read_text("utf-8"), source=str(path), projects_dir=path.parent / "projects")


def is_task_suite(ref: str | Path) -> bool:
    """Whether ``ref`` names a task suite (built-in name or a YAML file with a ``tasks`` list)."""
    if str(ref) in BUILTIN_TASK_SUITES:
        return True
    path = Path(ref).expanduser()
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return False
    with contextlib.suppress(yaml.YAMLError, OSError):
        data = yaml.safe_load(path.read_text("utf-8"))
        return isinstance(data, dict) and isinstance(data.get("tasks"), list)
    return False


# --- sandboxes and checks --------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under ``root`` (what ``unchanged`` compares)."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not ({"__pycache__", ".pytest_cache"} & set(p.parts)):
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@contextlib.contextmanager
def sandbox_copy(project: Path) -> Iterator[Path]:
    """A fresh copy of ``project`` in a new temporary folder (outside any git checkout the user works
    in, so the agent's git tools see only the copy), removed afterwards. Symbolic links stay links:
    the agent's sandbox refuses any that lead outside the copy."""
    parent = Path(tempfile.mkdtemp(prefix="tooltune-task-"))
    root = parent / project.name
    try:
        shutil.copytree(
            project, root, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache")
        )
        yield root
    finally:
        shutil.rmtree(parent, ignore_errors=True)


class CheckOutcome(BaseModel):
    kind: str
    passed: bool
    detail: str = ""


def _inside(root: Path, rel: str) -> Path | None:
    p = (root / rel).resolve()
    return p if p.is_relative_to(root.resolve()) else None


def _read(root: Path, rel: str) -> str | None:
    p = _inside(root, rel)
    if p is None or not p.is_file():
        return None
    return p.read_text("utf-8", errors="replace")


def run_check(check: Check, root: Path, answer: str, before: dict[str, str]) -> CheckOutcome:
    """One check against the folder after the agent and its final answer."""
    low = answer.lower()
    kind = check.kind
    if check.answer_contains is not None:
        missing = [s for s in check.answer_contains if s.lower() not in low]
        return CheckOutcome(
            kind=kind, passed=not missing, detail=f"answer lacks {missing}" if missing else ""
        )
    if check.answer_lacks is not None:
        found = [s for s in check.answer_lacks if s.lower() in low]
        return CheckOutcome(kind=kind, passed=not found, detail=f"answer says {found}" if found else "")
    if check.answer_matches is not None:
        ok = re.search(check.answer_matches, answer, re.I) is not None
        return CheckOutcome(
            kind=kind, passed=ok, detail="" if ok else f"answer does not match /{check.answer_matches}/"
        )
    for spec, want in ((check.file_contains, True), (check.file_lacks, False)):
        if spec is not None:
            body = _read(root, spec.path)
            if body is None:
                return CheckOutcome(kind=kind, passed=not want, detail=f"{spec.path} does not exist")
            bad = [t for t in spec.texts if (t in body) != want]
            what = "lacks" if want else "still has"
            return CheckOutcome(kind=kind, passed=not bad, detail=f"{spec.path} {what} {bad}" if bad else "")
    if check.file_equals is not None:
        body = _read(root, check.file_equals.path)
        ok = body is not None and body == check.file_equals.texts[0]
        return CheckOutcome(kind=kind, passed=ok, detail="" if ok else f"{check.file_equals.path} differs")
    if check.file_exists is not None:
        ok = _read(root, check.file_exists) is not None
        return CheckOutcome(kind=kind, passed=ok, detail="" if ok else f"{check.file_exists} does not exist")
    if check.file_absent is not None:
        inside = _inside(root, check.file_absent)
        ok = inside is not None and not inside.exists()
        return CheckOutcome(kind=kind, passed=ok, detail="" if ok else f"{check.file_absent} exists")
    if check.unchanged is not None:
        after = snapshot(root)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        ok = (not changed) == check.unchanged
        return CheckOutcome(kind=kind, passed=ok, detail=f"changed: {changed[:5]}" if changed else "")
    assert check.command is not None
    return _command(check.command, root)


def _command(cmd: CommandCheck, root: Path) -> CheckOutcome:
    """Run in the copy after the agent: it executes the project's code, the agent's edits included, so
    it runs like the agent's own commands (no shell, stdin closed, output capped, the whole process
    group killed on timeout) with a minimal environment."""
    argv = [sys.executable if a == "python" and i == 0 else a for i, a in enumerate(cmd.argv)]
    env = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    }
    try:
        proc = run_argv(argv, root, timeout=COMMAND_TIMEOUT_S, env={**env, "PYTHONDONTWRITEBYTECODE": "1"})
    except ToolRefusal as e:
        return CheckOutcome(kind="command", passed=False, detail=f"{' '.join(cmd.argv)}: {e}")
    out = proc.output
    bad = []
    if proc.timed_out:
        bad.append(f"timed out after {COMMAND_TIMEOUT_S} s")
    elif cmd.exit_code is not None and proc.exit_code != cmd.exit_code:
        bad.append(f"exit code {proc.exit_code}, wanted {cmd.exit_code}")
    if cmd.output_contains is not None and cmd.output_contains not in out:
        bad.append(f"output lacks {cmd.output_contains!r}")
    return CheckOutcome(
        kind="command", passed=not bad, detail="; ".join(bad) + (f": {out[-300:]}" if bad else "")
    )


def run_checks(task: Task, root: Path, answer: str, before: dict[str, str]) -> list[CheckOutcome]:
    return [run_check(c, root, answer, before) for c in task.checks]


def apply_reference(task: Task, root: Path) -> str:
    """Write the reference solution's files into ``root``; returns its answer."""
    assert task.reference is not None
    for rel, content in task.reference.files.items():
        p = _inside(root, rel)
        if p is None:
            raise TaskSuiteError(f"task {task.id!r}: reference file {rel!r} is outside the project")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content, "utf-8")
    return task.reference.answer


def task_request_texts(suite: TaskSuite) -> list[tuple[str, str]]:
    """``(where, text)`` of every request and project file: what the leak check keeps out of training."""
    out = [(f"{suite.source}:{t.id}", t.request) for t in suite.tasks]
    return out


def task_dict(task: Task) -> dict[str, Any]:
    return task.model_dump(mode="json", exclude_none=True)
