"""What the example builders ask of a phrasebook, and the built-in coding one in that shape.

Two kinds serve it: the agent's own coding tools' phrasebook (code, :mod:`tooltune.data.coding_requests`,
with coherent values a file cannot express yet: a command split the way `run_command` takes it, a file
body that fits its extension) and phrasebook files (:mod:`tooltune.data.phrasebook_fill`).
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from tooltune.data import coding_requests, recorded_jobs
from tooltune.data.coding_requests import FollowUp
from tooltune.data.phrasebook_fill import JobRun
from tooltune.toolspec import ToolSpec

Args = dict[str, Any]


class Book(Protocol):
    def covers(self, tool: ToolSpec) -> bool: ...

    def request(self, rng: random.Random, name: str, *, polish: bool = True) -> tuple[str, Args] | None: ...

    def pair(self, rng: random.Random, name: str) -> tuple[str, list[Args]] | None: ...

    def join(self, rng: random.Random, texts: list[str]) -> str | None: ...

    def result(self, rng: random.Random, name: str, args: Args) -> tuple[str, str] | None: ...

    def near_miss(self, rng: random.Random, tool: ToolSpec) -> tuple[str, str] | None: ...

    def follow_up(self, rng: random.Random) -> FollowUp | None: ...

    def job(self, rng: random.Random) -> JobRun | None: ...

    def intents(self, name: str) -> int | None: ...

    def new_conversation(self, rng: random.Random) -> None: ...

    def finish(self, rng: random.Random, msgs: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


class CodingBook:
    """The built-in coding tools' phrasebook behind the :class:`Book` calls (draws unchanged, so its
    datasets stay byte-identical)."""

    def covers(self, tool: ToolSpec) -> bool:
        return coding_requests.covers(tool)

    def request(self, rng: random.Random, name: str, *, polish: bool = True) -> tuple[str, Args] | None:
        return coding_requests.request(rng, name, polish=polish)

    def pair(self, rng: random.Random, name: str) -> tuple[str, list[Args]] | None:
        return coding_requests.pair(rng, name)

    def join(self, rng: random.Random, texts: list[str]) -> str | None:
        return coding_requests.join(rng, texts)

    def result(self, rng: random.Random, name: str, args: Args) -> tuple[str, str] | None:
        return coding_requests.result(rng, name, args)

    def near_miss(self, rng: random.Random, tool: ToolSpec) -> tuple[str, str] | None:
        return None  # the coding tools' near misses come from the sibling-task rules

    def follow_up(self, rng: random.Random) -> FollowUp | None:
        return coding_requests.follow_up(rng)

    def job(self, rng: random.Random) -> JobRun | None:
        t = recorded_jobs.trajectory(rng)
        return JobRun(t.request, [(st.name, st.args, st.result) for st in t.steps], t.answer)

    def intents(self, name: str) -> int | None:
        return None  # its requests are code: no templates to count (tool_odds gives it the average)

    def new_conversation(self, rng: random.Random) -> None:
        return None  # its dates (none) are said as they are: nothing drawn, its datasets stay

    def finish(self, rng: random.Random, msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return msgs


CODING_BOOK = CodingBook()
