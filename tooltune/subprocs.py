"""Helpers for the child processes tooltune starts (``mlx_lm.server``): free ports, no orphans, and
exit statuses said in words."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies (Linux), so a crashed
    tooltune or benchmark leaves no 2 GB server behind; None where the kernel has no such hook."""
    return _die_with_parent if sys.platform.startswith("linux") else None


# What a signal that killed an MLX child most likely means, for the person reading the error.
_SIGNAL_HINTS = {
    "SIGILL": "illegal instruction: a native library was built for CPU features this machine lacks",
    "SIGKILL": "killed from outside; on a full machine, the kernel's out-of-memory killer",
    "SIGSEGV": "a crash in native code",
    "SIGBUS": "a crash in native code (often a truncated file mapped into memory)",
}


def exit_status(code: int | None) -> str:
    """A child's ``returncode`` in words: "exited with code 1", "was killed by SIGILL (illegal
    instruction: ...)". Negative codes are signals (``subprocess``'s convention)."""
    if code is None:
        return "is still running"
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"was killed by signal {-code}"
    hint = _SIGNAL_HINTS.get(name)
    return f"was killed by {name}" + (f" ({hint})" if hint else "")
