"""Path confinement and the write/exec policy of the coding agent's tools: zero escapes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from tooltune.agent import tools_impl
from tooltune.agent.agent import CodingToolset
from tooltune.agent.sandbox import Sandbox, ToolRefusal

SECRET = "TOP-SECRET-OUTSIDE-THE-ROOT"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A project root, a sibling 'outside' folder holding a secret, and escape hatches inside the root."""
    root = tmp_path / "project"
    outside = tmp_path / "outside"
    (root / "src").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (root / "src" / "main.py").write_text("print('hello')\n")
    (root / "README.md").write_text("# demo\n")
    os.symlink("/etc", root / "etc_link")
    os.symlink(outside, root / "outside_link")
    os.symlink(outside / "secret.txt", root / "secret_link.txt")
    (root / "src" / "deep").mkdir()
    os.symlink("../../../outside", root / "src" / "deep" / "up")
    return root, outside


ESCAPES = [
    "../outside/secret.txt",
    "../../etc/passwd",
    "src/../../outside/secret.txt",
    "/etc/passwd",
    "{outside}/secret.txt",
    "etc_link/passwd",
    "outside_link/secret.txt",
    "secret_link.txt",
    "src/deep/up/secret.txt",
    "%2e%2e%2foutside%2fsecret.txt",
    "..%2f..%2fetc%2fpasswd",
    "a/" * 600 + "x",
    "x" * 300,
    "src/main.py\x00../../outside/secret.txt",
    "~/.bashrc",
    "~root/.profile",
    "..\\outside\\secret.txt",
    "src\\..\\..\\outside\\secret.txt",
    "",
    "..",
    "../",
    "./../outside",
]


def _snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in folder.rglob("*")}


@pytest.mark.parametrize("raw", ESCAPES)
def test_path_escapes_are_refused_by_every_file_tool(layout: tuple[Path, Path], raw: str) -> None:
    root, outside = layout
    path = raw.replace("{outside}", str(outside))
    sb = Sandbox(root, allow_write=True, allow_exec=True)
    before = _snapshot(outside)
    calls = [
        lambda: tools_impl.read_file(sb, path),
        lambda: tools_impl.write_file(sb, path, "pwned"),
        lambda: tools_impl.search_code(sb, "SECRET", path=path),
    ]
    # list_dir/search on "" mean "the root" (allowed); everything else must be refused
    if path not in ("",):
        calls.append(lambda: tools_impl.list_dir(sb, path))
    outputs: list[str] = []
    for call in calls:
        try:
            outputs.append(call())
        except ToolRefusal as e:
            assert str(e), "a refusal must say why"
            continue
    # reads/searches of "" fall back to the root, which is fine; nothing may show the secret or write
    assert all(SECRET not in out for out in outputs), outputs
    assert not any("root:" in out for out in outputs), "read /etc/passwd"
    assert _snapshot(outside) == before, "something outside the root changed"
    assert not (Path("/etc") / "pwned").exists()
    if path not in ("",):
        for fn in (lambda: tools_impl.read_file(sb, path), lambda: tools_impl.write_file(sb, path, "x")):
            with pytest.raises(ToolRefusal):
                fn()


def test_inside_paths_still_work(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    sb = Sandbox(root, allow_write=True)
    assert tools_impl.read_file(sb, "src/main.py") == "print('hello')\n"
    assert tools_impl.read_file(sb, "src/../README.md") == "# demo\n"
    assert tools_impl.read_file(sb, str(root / "README.md")) == "# demo\n"  # absolute but inside
    out = tools_impl.write_file(sb, "new/dir/file.txt", "a\nb\n")
    assert out.startswith("created new/dir/file.txt")
    assert (root / "new" / "dir" / "file.txt").read_text() == "a\nb\n"
    listing = tools_impl.list_dir(sb, ".").splitlines()
    assert "src/" in listing and "README.md" in listing and "etc_link@" in listing
    assert "src/main.py:1: print('hello')" in tools_impl.search_code(sb, "hello")


def test_symlinks_are_not_followed_by_listings_and_searches(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    sb = Sandbox(root)
    listing = tools_impl.list_dir(sb, ".", recursive=True)
    assert "passwd" not in listing and "secret.txt" not in listing
    assert SECRET not in tools_impl.search_code(sb, "SECRET")
    assert "no matches" in tools_impl.search_code(sb, "root:x:0")


def test_writes_into_git_are_refused(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    (root / ".git").mkdir()
    sb = Sandbox(root, allow_write=True)
    with pytest.raises(ToolRefusal, match=".git"):
        tools_impl.write_file(sb, ".git/config", "[core]\n\tfsmonitor = touch pwned\n")
    assert not (root / ".git" / "config").exists()


def test_read_limit_truncates_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 1000 + "\n")
    sb = Sandbox(tmp_path, max_read_bytes=100)
    out = tools_impl.read_file(sb, "big.txt")
    assert out.startswith("x" * 100) and "x" * 101 not in out
    assert "[truncated: big.txt is 1001 bytes" in out


def test_read_line_range_and_binary_and_fifo(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("1\n2\n3\n4\n")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01\x02")
    os.mkfifo(tmp_path / "pipe")
    sb = Sandbox(tmp_path)
    assert tools_impl.read_file(sb, "l.txt", start_line=2, end_line=3) == "2\n3\n"
    with pytest.raises(ToolRefusal, match="binary"):
        tools_impl.read_file(sb, "b.bin")
    with pytest.raises(ToolRefusal, match="not a regular file"):
        tools_impl.read_file(sb, "pipe")  # must not hang
    with pytest.raises(ToolRefusal, match="does not exist"):
        tools_impl.read_file(sb, "nope.txt")


# -- policy (through the toolset, as the agent calls it) ---------------------------------------------


def _call(ts: CodingToolset, name: str, args: dict) -> str:
    return anyio.run(ts.execute, name, args)


def test_write_and_exec_refused_without_flags(tmp_path: Path) -> None:
    ts = CodingToolset(Sandbox(tmp_path))
    with pytest.raises(ToolRefusal, match="--allow-write"):
        _call(ts, "write_file", {"path": "a.txt", "content": "x"})
    with pytest.raises(ToolRefusal, match="--allow-exec"):
        _call(ts, "run_command", {"command": "touch", "args": ["ran"]})
    with pytest.raises(ToolRefusal, match="--allow-exec"):
        _call(ts, "run_tests", {})
    assert list(tmp_path.iterdir()) == []


def test_approval_callback_is_asked_with_the_args(tmp_path: Path) -> None:
    asked: list[tuple[str, dict]] = []
    answers = iter([False, True])

    async def approve(tool: str, args: dict) -> bool:
        asked.append((tool, args))
        return next(answers)

    ts = CodingToolset(Sandbox(tmp_path, allow_write=True, approve=approve))
    with pytest.raises(ToolRefusal, match="declined"):
        _call(ts, "write_file", {"path": "a.txt", "content": "one"})
    assert not (tmp_path / "a.txt").exists()
    _call(ts, "write_file", {"path": "a.txt", "content": "two"})
    assert (tmp_path / "a.txt").read_text() == "two"
    assert asked == [
        ("write_file", {"path": "a.txt", "content": "one"}),
        ("write_file", {"path": "a.txt", "content": "two"}),
    ]


def test_run_command_is_argv_not_shell(tmp_path: Path) -> None:
    ts = CodingToolset(Sandbox(tmp_path, allow_exec=True))
    tricky = ["a; touch pwned1", "&&", "touch", "pwned2", "$(touch pwned3)", "`touch pwned4`", "|", "cat"]
    out = _call(ts, "run_command", {"command": "printf", "args": ["%s\\n", *tricky]})
    assert "exit code 0" in out
    for arg in tricky:
        assert arg in out
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # a whole shell line as the command is one (nonexistent) program name, not a shell script
    with pytest.raises(ToolRefusal, match="not found"):
        _call(ts, "run_command", {"command": "echo hi; touch pwned5"})
    assert not (tmp_path / "pwned5").exists()


def test_run_command_timeout_kills_the_process_group(tmp_path: Path) -> None:
    ts = CodingToolset(Sandbox(tmp_path, allow_exec=True))
    script = (
        "import subprocess,sys,time; "
        "subprocess.Popen([sys.executable,'-c','import time; time.sleep(30)']); time.sleep(30)"
    )
    t0 = time.monotonic()
    out = _call(ts, "run_command", {"command": sys.executable, "args": ["-c", script], "timeout": 1})
    assert time.monotonic() - t0 < 10
    assert "timed out" in out
    leftover = subprocess.run(
        ["pgrep", "-f", "time.sleep\\(30\\)"], capture_output=True, text=True
    ).stdout.split()
    mine = [
        p
        for p in leftover
        if Path(f"/proc/{p}/cwd").exists() and os.readlink(f"/proc/{p}/cwd") == str(tmp_path)
    ]
    assert mine == [], "the child's own child survived the timeout"


def test_run_command_output_is_capped(tmp_path: Path) -> None:
    ts = CodingToolset(Sandbox(tmp_path, allow_exec=True))
    out = _call(
        ts,
        "run_command",
        {"command": sys.executable, "args": ["-c", "print('y' * 2_000_000)"], "timeout": 30},
    )
    assert "exit code 0" in out
    assert f"[output truncated to {tools_impl.MAX_OUTPUT_BYTES} bytes]" in out
    assert len(out) < tools_impl.MAX_OUTPUT_BYTES + 500


def test_run_tests_and_git_tools(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        "def test_ok():\n    assert True\n\ndef test_bad():\n    assert 1 == 2\n"
    )
    ts = CodingToolset(Sandbox(tmp_path, allow_exec=True))
    out = _call(ts, "run_tests", {"keyword": "ok"})
    assert "1 passed" in out and "exit code 0" in out
    out = _call(ts, "run_tests", {"path": "test_x.py", "fail_fast": True})
    assert "1 failed" in out
    with pytest.raises(ToolRefusal, match="not a git repository"):
        _call(ts, "git_status", {})
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=env)
    (tmp_path / "test_x.py").write_text("changed\n")
    assert "M test_x.py" in _call(ts, "git_status", {})
    assert "+changed" in _call(ts, "git_diff", {"path": "test_x.py"})
    assert _call(ts, "git_diff", {"staged": True}) == "no changes staged"
    with pytest.raises(ToolRefusal):
        _call(ts, "git_diff", {"path": "../.."})
