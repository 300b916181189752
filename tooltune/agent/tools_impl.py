"""What the built-in coding tools actually do. Their schemas live in :mod:`tooltune.coding_tools`.

Each function takes the :class:`~tooltune.agent.sandbox.Sandbox` plus the arguments the model sent
(already validated against the tool's JSON Schema) and returns the text the model will read. Results
are plain text, sized for a small model's context: reads, listings, searches and command output are
capped and say so when cut. Refusals raise :class:`~tooltune.agent.sandbox.ToolRefusal`.

Programs run from an argv list (``subprocess`` without a shell): ``;``, ``&&`` or ``$(...)`` in an
argument are just characters, never interpreted.
"""

from __future__ import annotations

import fnmatch
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from tooltune.agent.sandbox import Sandbox, ToolRefusal

MAX_OUTPUT_BYTES = 32 * 1024
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 600.0
TEST_TIMEOUT = 300.0
MAX_LIST_ENTRIES = 500
MAX_SEARCH_RESULTS = 200
MAX_SEARCH_FILE_BYTES = 1024 * 1024
SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".tox",
    }
)


# -- files ------------------------------------------------------------------------------------------


def read_file(sb: Sandbox, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
    """Return the file's text (optionally a line range), at most ``sb.max_read_bytes`` of it."""
    fd, st, _ = sb.open_for_read(path)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(sb.max_read_bytes + 1)
    except OSError as e:
        raise ToolRefusal(f"cannot read {path!r}: {e.strerror}") from None
    truncated = len(data) > sb.max_read_bytes or st.st_size > sb.max_read_bytes
    data = data[: sb.max_read_bytes]
    if b"\x00" in data[:8192]:
        raise ToolRefusal(
            f"{path!r} looks like a binary file ({st.st_size} bytes); only text files can be read"
        )
    text = data.decode("utf-8", errors="replace")
    if start_line is not None or end_line is not None:
        lines = text.splitlines(keepends=True)
        start = max(1, start_line or 1)
        end = min(len(lines), end_line) if end_line is not None else len(lines)
        if start > len(lines) and lines:
            raise ToolRefusal(f"{path!r} has only {len(lines)} lines; start_line {start} is past the end")
        text = "".join(lines[start - 1 : end])
    if truncated:
        text += (
            f"\n[truncated: {path} is {st.st_size} bytes; only the first {sb.max_read_bytes} bytes "
            "were read; use start_line/end_line to read a part]"
        )
    return text


def write_file(sb: Sandbox, path: str, content: str) -> str:
    """Create or replace a file atomically (temp file + rename), creating parent folders inside the root."""
    data = content.encode("utf-8")
    if len(data) > sb.max_write_bytes:
        raise ToolRefusal(
            f"content is {len(data)} bytes; the limit for write_file is {sb.max_write_bytes} bytes"
        )
    real = sb.resolve(path)
    sb.check_writable(real)
    if real.is_dir():
        raise ToolRefusal(f"{path!r} is a directory; give a file path")
    parent = real.parent
    # mkdir only below a parent that resolved inside the root (resolve() checked the full path)
    parent.mkdir(parents=True, exist_ok=True)
    if not sb.contains(Path(os.path.realpath(parent))):
        raise ToolRefusal(f"parent folder of {path!r} resolves outside the project root")
    tmp = parent / f".{real.name}.tooltune-tmp-{os.getpid()}"
    existed = real.exists()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, real)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ToolRefusal(f"cannot write {path!r}: {e.strerror}") from None
    verb = "updated" if existed else "created"
    return f"{verb} {sb.relative(real)} ({len(data)} bytes, {len(content.splitlines())} lines)"


def list_dir(sb: Sandbox, path: str | None = ".", recursive: bool = False) -> str:
    """One entry per line, folders with a trailing '/', symlinks with '@' (not followed)."""
    real = sb.resolve(path, default=".")
    if not real.exists():
        raise ToolRefusal(f"{path!r} does not exist; use list_dir('.') to see the project root")
    if not real.is_dir():
        raise ToolRefusal(f"{path!r} is a file, not a directory; use read_file to read it")
    entries: list[str] = []
    truncated = False

    def describe(p: Path) -> str:
        rel = sb.relative(p)
        if p.is_symlink():
            return rel + "@"
        return rel + "/" if p.is_dir() else rel

    if recursive:
        for dirpath, dirnames, filenames in os.walk(real, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            here = Path(dirpath)
            for name in dirnames + sorted(filenames):
                entries.append(describe(here / name))
                if len(entries) >= MAX_LIST_ENTRIES:
                    truncated = True
                    break
            if truncated:
                break
    else:
        for child in sorted(real.iterdir(), key=lambda p: p.name):
            entries.append(describe(child))
            if len(entries) >= MAX_LIST_ENTRIES:
                truncated = True
                break
    if not entries:
        return f"{sb.relative(real)}/ is empty"
    out = "\n".join(entries)
    if truncated:
        out += f"\n[truncated after {MAX_LIST_ENTRIES} entries; list a subdirectory to see more]"
    return out


def search_code(
    sb: Sandbox,
    pattern: str,
    path: str | None = None,
    file_glob: str | None = None,
    max_results: int | None = None,
) -> str:
    """``path:line: text`` for each match of a regex (or, if it does not compile, the literal text)."""
    if not pattern:
        raise ToolRefusal("pattern is empty; give the text or regular expression to look for")
    try:
        rx = re.compile(pattern)
    except re.error:
        rx = re.compile(re.escape(pattern))
    limit = max(1, min(max_results or 50, MAX_SEARCH_RESULTS))
    base = sb.resolve(path, default=".")
    if not base.exists():
        raise ToolRefusal(f"{path!r} does not exist")
    files: list[Path]
    if base.is_file():
        files = [base]
    else:
        files = []
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            files.extend(Path(dirpath) / f for f in sorted(filenames))
    hits: list[str] = []
    for f in files:
        if file_glob and not (
            fnmatch.fnmatch(f.name, file_glob) or fnmatch.fnmatch(sb.relative(f), file_glob)
        ):
            continue
        if f.is_symlink() or not f.is_file():
            continue
        try:
            if f.stat().st_size > MAX_SEARCH_FILE_BYTES:
                continue
            data = f.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:8192]:
            continue
        for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if rx.search(line):
                hits.append(f"{sb.relative(f)}:{lineno}: {line.strip()[:200]}")
                if len(hits) >= limit:
                    return "\n".join(hits) + f"\n[stopped at {limit} matches; narrow the pattern or path]"
    return "\n".join(hits) if hits else f"no matches for {pattern!r}"


# -- programs ---------------------------------------------------------------------------------------


class CommandResult(BaseModel):
    """What a finished (or stopped) program produced; ``output`` is stdout+stderr, capped."""

    argv: list[str]
    exit_code: int | None
    output: str
    timed_out: bool = False
    truncated: bool = False
    seconds: float

    def render(self) -> str:
        """The text the model reads: status line first, then the output."""
        if self.timed_out:
            status = f"timed out after {self.seconds:.0f}s and was stopped"
        else:
            status = f"exit code {self.exit_code}"
        body = self.output if self.output.strip() else "(no output)"
        cut = f"\n[output truncated to {MAX_OUTPUT_BYTES} bytes]" if self.truncated else ""
        return f"$ {' '.join(self.argv)}\n{status}\n{body}{cut}"


def run_argv(
    argv: Sequence[str],
    cwd: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_output: int = MAX_OUTPUT_BYTES,
    env: dict[str, str] | None = None,
) -> CommandResult:
    """Run a program (no shell) with a timeout and an output cap, killing its whole process group on timeout.

    Output is read incrementally so a program that prints gigabytes cannot exhaust memory: the first
    ``max_output`` bytes are kept, the rest is read and dropped so the program never blocks on a pipe.
    """
    argv = [str(a) for a in argv]
    if not argv or not argv[0]:
        raise ToolRefusal("command is empty; give a program name such as 'python'")
    if any("\x00" in a for a in argv):
        raise ToolRefusal("command or arguments contain a NUL byte")
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            shell=False,
            start_new_session=True,
            env=env,
        )
    except FileNotFoundError:
        raise ToolRefusal(f"program {argv[0]!r} was not found; check the name or give its path") from None
    except PermissionError:
        raise ToolRefusal(f"program {argv[0]!r} is not executable") from None
    except OSError as e:
        raise ToolRefusal(f"could not start {argv[0]!r}: {e.strerror}") from None
    kept = bytearray()
    truncated = False

    def drain() -> None:
        nonlocal truncated
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536):
            room = max_output - len(kept)
            if room > 0:
                kept.extend(chunk[:room])
            if len(chunk) > room:
                truncated = True

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    reader.join(timeout=5)
    return CommandResult(
        argv=argv,
        exit_code=None if timed_out else proc.returncode,
        output=bytes(kept).decode("utf-8", errors="replace"),
        timed_out=timed_out,
        truncated=truncated,
        seconds=round(time.monotonic() - start, 2),
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the program's process group, then SIGKILL what is left a moment later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=2)
            return
        except subprocess.TimeoutExpired:
            continue


def _clamp_timeout(timeout: float | None, default: float) -> float:
    if timeout is None:
        return default
    if timeout <= 0:
        raise ToolRefusal("timeout must be a positive number of seconds")
    return min(float(timeout), MAX_TIMEOUT)


def run_command(
    sb: Sandbox, command: str, args: list[str] | None = None, timeout: float | None = None
) -> str:
    """Run ``command`` with ``args`` in the project root. The caller has already checked --allow-exec."""
    result = run_argv([command, *(args or [])], sb.root, timeout=_clamp_timeout(timeout, DEFAULT_TIMEOUT))
    return result.render()


def project_python(root: Path) -> str:
    """The project's own interpreter if it has a venv (its deps are there), else tooltune's."""
    for candidate in (root / ".venv" / "bin" / "python", root / "venv" / "bin" / "python"):
        if candidate.exists():
            return str(candidate)
    return sys.executable


def run_tests(
    sb: Sandbox, path: str | None = None, keyword: str | None = None, fail_fast: bool = False
) -> str:
    """Run pytest (quietly, no colour) and return the tail-weighted output with the exit code."""
    argv = [project_python(sb.root), "-m", "pytest", "-q", "--color=no", "-p", "no:cacheprovider"]
    if fail_fast:
        argv.append("-x")
    if keyword:
        argv += ["-k", keyword]
    if path:
        real = sb.resolve(path)
        if not real.exists():
            raise ToolRefusal(f"test path {path!r} does not exist")
        argv.append(sb.relative(real))
    result = run_argv(argv, sb.root, timeout=TEST_TIMEOUT, max_output=MAX_OUTPUT_BYTES * 4)
    if len(result.output) > MAX_OUTPUT_BYTES:
        # pytest puts the summary at the end: keep the tail, which is what the model needs
        result.output = "[... earlier output omitted ...]\n" + result.output[-MAX_OUTPUT_BYTES:]
        result.truncated = True
    return result.render()


def _git(sb: Sandbox, args: list[str]) -> str:
    """git with repo-config escape hatches closed: no fsmonitor, hooks, external diff, textconv or pager."""
    argv = ["git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "--no-pager", *args]
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat", GIT_OPTIONAL_LOCKS="0")
    result = run_argv(argv, sb.root, timeout=30, env=env)
    if result.exit_code not in (0, None) and "not a git repository" in result.output:
        raise ToolRefusal("the project root is not a git repository; git_status and git_diff need one")
    if result.exit_code != 0:
        return result.render()
    text = result.output if result.output.strip() else "(no output)"
    if result.truncated:
        text += f"\n[output truncated to {MAX_OUTPUT_BYTES} bytes; give a path to narrow it]"
    return text


def git_status(sb: Sandbox) -> str:
    """``git status --short --branch``: compact, and what a model can parse."""
    return _git(sb, ["status", "--short", "--branch"])


def git_diff(sb: Sandbox, path: str | None = None, staged: bool = False) -> str:
    """Unified diff of uncommitted (or staged) changes, optionally limited to one path inside the root."""
    args = ["diff", "--no-ext-diff", "--no-textconv"]
    if staged:
        args.append("--staged")
    if path:
        args += ["--", sb.relative(sb.resolve(path))]
    out = _git(sb, args)
    return out if out != "(no output)" else "no changes" + (" staged" if staged else "")
