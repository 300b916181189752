"""Children started with ``die_with_parent`` do not outlive the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tooltune.subprocs import die_with_parent, free_port, port_is_free

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")

# the parent starts a long sleeper with die_with_parent, prints its pid, then waits to be killed
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from tooltune.subprocs import die_with_parent
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = subprocess.Popen(sleeper, preexec_fn=die_with_parent())
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@linux_only
def test_child_gets_sigterm_when_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert _alive(child_pid)
    os.kill(parent.pid, signal.SIGKILL)  # no cleanup code runs: only the kernel hook can stop the child
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid)


def test_die_with_parent_hook_exists_only_where_the_kernel_has_one() -> None:
    hook = die_with_parent()
    if sys.platform.startswith("linux"):
        assert callable(hook)
    else:
        assert hook is None  # Popen(preexec_fn=None): no hook, and nothing that could fail in the child


def test_free_port_is_free() -> None:
    port = free_port()
    assert 0 < port < 65536 and port_is_free(port)


def test_exit_status_says_what_a_signal_means() -> None:
    import signal as sig
    import subprocess
    import sys

    from tooltune.subprocs import exit_status

    assert exit_status(None) == "is still running"
    assert exit_status(3) == "exited with code 3"
    assert exit_status(-sig.SIGKILL).startswith("was killed by SIGKILL (")
    # a real child that executes an illegal instruction, as an OpenBLAS built for another CPU does
    proc = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"])
    assert exit_status(proc.returncode) == (
        "was killed by SIGILL (illegal instruction: a native library was built for CPU features "
        "this machine lacks)"
    )
