"""The agent's guard against calling a tool again with the same arguments when nothing has changed.

Small models that do not know the next step fall back on one they know: on the 0.5B's agent tasks
(docs/TASKS.md, T2) half of all calls repeated, argument for argument, a call the same task had already
made — `run_tests` again and again, or a tool the session had refused, called again after the refusal.
Running such a call again gives the model the same result it already has, so the loop goes on until
the step limit. The guard answers the repeat instead, as a failed call that says what happened ("you
already have this result; use it or make another call"), which is new input the model can act on.

A call repeats when the same tool got the same arguments earlier in the same agent run (one user
prompt to its answer) and no call that may change the project (a file written, a command run, any call
of another toolset such as an MCP server's) ran in between. Tests that run again after an edit, a file
read again after a write, and a second user prompt asking for the same thing are never repeats. A call
the session's permissions refused (writing or running programs is off) is told its refusal again
whatever changed; a call the user declined is asked again after a change.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

CHANGES_PROJECT = frozenset({"write_file", "run_command"})
"""Built-in tools whose call may change what every other call would see (a call through any other
toolset, such as an MCP server's, counts as a change too: the guard cannot know what it did)."""

_RUNS_KEPT = 8  # runs remembered at once (a session runs one at a time; this bounds a long-lived agent)


@dataclass
class _Earlier:
    changes: int  # the run's change count when the call was made
    refused: str | None = None  # the refusal the model got, or None when the call ran
    lasting: bool = False  # refused by the session's permissions: a change does not lift it


@dataclass
class _Run:
    calls: dict[str, _Earlier] = field(default_factory=dict)  # key -> the call made since the last change
    changes: int = 0  # calls that may have changed the project so far


def call_key(name: str, args: dict[str, Any]) -> str:
    """The same tool with the same arguments, whatever their order."""
    return name + "\x00" + json.dumps(args, sort_keys=True, ensure_ascii=False, default=str)


class RepeatGuard:
    """Remembers, per agent run, the calls made since the project last changed."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self.blocked = 0  # repeats answered by the guard (a session reads the difference per turn)

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run()
            while len(self._runs) > _RUNS_KEPT:
                self._runs.popitem(last=False)
        return run

    def check(self, run_id: str, name: str, args: dict[str, Any]) -> str | None:
        """The message that answers this call if it repeats an earlier one, else None (the call is
        remembered: a second identical call in the same batch is the repeat)."""
        run = self._run(run_id)
        key = call_key(name, args)
        earlier = run.calls.get(key)
        if earlier is None:
            run.calls[key] = _Earlier(changes=run.changes)
            return None
        self.blocked += 1
        if earlier.refused is not None:
            return (
                f"{name} was already called with these arguments earlier in this request and refused: "
                f"{earlier.refused.rstrip('.')}. It would be refused again; do not call it again. "
                "Continue with the other tools, or answer the user and say what you would have done."
            )
        return (
            f"{name} was already called with these arguments earlier in this request and nothing has "
            "changed since, so its result would be the same as the one above. Use that result: answer "
            "the user if it is enough, or make a different call."
        )

    def refused(self, run_id: str, name: str, args: dict[str, Any], reason: str, *, lasting: bool) -> None:
        """The call was refused: a repeat is told the refusal again, without asking the tool. ``lasting``:
        the session's permissions refused it, not the project's state (a missing file) nor the user's
        answer to one call, so a change to the project does not lift it. A refusal that is not lasting
        is forgotten if the project may have changed while the call ran (calls of one response run at
        once: a read of a file that a write beside it creates)."""
        run = self._run(run_id)
        key = call_key(name, args)
        earlier = run.calls.get(key)
        if lasting:
            run.calls[key] = _Earlier(changes=run.changes, refused=reason, lasting=True)
        elif earlier is not None and earlier.changes == run.changes:
            earlier.refused = reason

    def changed(self, run_id: str) -> None:
        """Something may have changed the project: every earlier call is worth making again, except
        those the permissions refused."""
        run = self._run(run_id)
        run.changes += 1
        run.calls = {k: e for k, e in run.calls.items() if e.lasting}

    def ran(self, run_id: str, name: str) -> None:
        """A built-in call ran (or was tried); one that may change the project is a change."""
        if name in CHANGES_PROJECT:
            self.changed(run_id)
