"""Where the coding agent may look and what it may do: path confinement and the write/exec policy.

A small model driving tools will sooner or later emit ``../../etc/passwd``, an absolute path, or a
path through a symlink — by accident far more often than by malice, but the result is the same. Every
file tool therefore goes through :meth:`Sandbox.resolve`, which works on *real* paths (symlinks
resolved) and refuses anything that does not land inside the project root. Writing files and running
programs are off unless the user opted in (``--allow-write`` / ``--allow-exec``), and an interactive
session can additionally ask before each one.

Refusals are :class:`ToolRefusal` exceptions whose message is one sentence the model (and the user
reading the transcript) can act on; the agent turns them into failed tool results, never crashes.
"""

from __future__ import annotations

import inspect
import os
import re
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_PATH_CHARS = 1024
MAX_COMPONENT_CHARS = 255
PROTECTED_DIRS = frozenset({".git"})
"""Folders the agent must never write into: ``.git/config`` and hooks can make later git commands run
arbitrary programs (``core.fsmonitor``, hooks), which would turn ``write_file`` into code execution."""

ApprovalFn = Callable[[str, dict[str, Any]], bool | Awaitable[bool]]
"""Asked before each write or command: ``(tool_name, args) -> approved``. May be sync or async."""

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class ToolRefusal(Exception):
    """A tool call the policy refused (escape attempt, disabled capability, user said no).

    The message says what was refused and why, in one sentence, because the model reads it.
    """


NEEDS: dict[str, Literal["write", "exec"]] = {
    "write_file": "write",
    "run_command": "exec",
    "run_tests": "exec",
}
"""The coding tools that need a session permission, and which one (the rest only read)."""


@dataclass
class Sandbox:
    """The project root plus the user's permissions for this session."""

    root: Path
    allow_write: bool = False
    allow_exec: bool = False
    approve: ApprovalFn | None = None
    max_read_bytes: int = MAX_READ_BYTES
    max_write_bytes: int = MAX_WRITE_BYTES
    _real_root: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise ToolRefusal(f"project root {root} is not a directory; pass an existing folder with --root")
        self._real_root = Path(os.path.realpath(root))
        self.root = self._real_root

    # -- paths -------------------------------------------------------------------------------------

    def resolve(self, path: str | None, *, default: str | None = None) -> Path:
        """Map a model-supplied path to a real path inside the root, or raise :class:`ToolRefusal`.

        Relative paths are taken from the project root. Absolute paths are accepted only when they
        resolve inside it (models often echo an absolute path they were shown). Nothing is decoded:
        ``%2e%2e%2f`` and ``~`` are refused rather than interpreted, because a model writing them is
        asking for something other than a plain project path.
        """
        if path is None or (isinstance(path, str) and path.strip() == ""):
            if default is None:
                raise ToolRefusal("a path is required; give a path relative to the project root")
            path = default
        if not isinstance(path, str):
            raise ToolRefusal(f"path must be a string, got {type(path).__name__}")
        if "\x00" in path:
            raise ToolRefusal("path contains a NUL byte; give a plain relative path")
        if len(path) > MAX_PATH_CHARS or any(len(part) > MAX_COMPONENT_CHARS for part in path.split("/")):
            raise ToolRefusal(
                f"path is too long (limit {MAX_PATH_CHARS} characters, {MAX_COMPONENT_CHARS} per component)"
            )
        if "\\" in path:
            raise ToolRefusal("path contains a backslash; use forward slashes relative to the project root")
        if path.startswith("~"):
            raise ToolRefusal(
                "home-relative paths ('~') are outside the project; give a path relative to its root"
            )
        if _PERCENT_ESCAPE.search(path) and unquote(path) != path:
            decoded = unquote(path)
            if ".." in decoded or "/" in decoded or "\\" in decoded:
                raise ToolRefusal(
                    "percent-encoded paths are not decoded; give a plain path relative to the project root"
                )
        candidate = Path(path) if os.path.isabs(path) else self._real_root / path
        real = Path(os.path.realpath(candidate))
        if not self.contains(real):
            raise ToolRefusal(
                f"path {path!r} resolves outside the project root ({self._real_root}); "
                "only files inside the project can be used"
            )
        return real

    def contains(self, real_path: Path) -> bool:
        """True if ``real_path`` (already resolved) is the root or below it."""
        return real_path == self._real_root or real_path.is_relative_to(self._real_root)

    def relative(self, real_path: Path) -> str:
        """How a path is shown to the model: relative to the root, '.' for the root itself."""
        rel = os.path.relpath(real_path, self._real_root)
        return "." if rel == "." else rel

    def open_for_read(self, path: str) -> tuple[int, os.stat_result, Path]:
        """Open a regular file inside the root without following a last-moment symlink.

        ``O_NOFOLLOW`` closes the window between :meth:`resolve` and ``open`` for the final component;
        ``O_NONBLOCK`` keeps a FIFO from hanging the agent. Returns ``(fd, stat, real_path)``.
        """
        real = self.resolve(path)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(real, flags)
        except FileNotFoundError:
            raise ToolRefusal(f"file {path!r} does not exist; use list_dir to see what is there") from None
        except IsADirectoryError:
            raise ToolRefusal(f"{path!r} is a directory; use list_dir to list it") from None
        except OSError as e:
            raise ToolRefusal(f"cannot open {path!r}: {e.strerror}") from None
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            raise ToolRefusal(f"{path!r} is a directory; use list_dir to list it")
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise ToolRefusal(f"{path!r} is not a regular file (device, socket or pipe); refusing to read it")
        return fd, st, real

    def check_writable(self, real_path: Path) -> None:
        """Refuse writes into protected folders (``.git``) and onto the root itself."""
        if real_path == self._real_root:
            raise ToolRefusal("cannot write to the project root itself; give a file path")
        parts = Path(self.relative(real_path)).parts
        if any(p in PROTECTED_DIRS for p in parts):
            raise ToolRefusal(
                "writing inside .git is not allowed: it could make later git commands run programs"
            )

    # -- permissions -------------------------------------------------------------------------------

    def check(self, capability: str, tool_name: str) -> None:
        """Refuse ``tool_name`` when the session flag for ``capability`` ("write" | "exec") is off, in the
        words the model reads (the same refusal whether the agent or a recorded training job meets it)."""
        allowed = self.allow_write if capability == "write" else self.allow_exec
        if not allowed:
            flag = "--allow-write" if capability == "write" else "--allow-exec"
            what = "writing files" if capability == "write" else "running commands"
            raise ToolRefusal(
                f"{tool_name} refused: {what} is disabled in this session "
                f"(the user can enable it with {flag}); "
                "continue without it or tell the user what you would have done"
            )

    async def require(self, capability: str, tool_name: str, args: dict[str, Any]) -> None:
        """Check the session flag for ``capability`` ("write" | "exec"), then ask the approver."""
        self.check(capability, tool_name)
        if self.approve is not None:
            answer = self.approve(tool_name, args)
            if inspect.isawaitable(answer):
                answer = await answer
            if not answer:
                raise ToolRefusal(
                    f"{tool_name} refused: the user declined this call; ask them or try something else"
                )
