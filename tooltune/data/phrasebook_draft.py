"""A phrasebook drafted by a model: a teacher endpoint (`tooltune data phrasebook draft`) or the MCP
client's own model (``phrasebook="client"``, over MCP sampling).

The model is asked for one tool at a time, in the book's own format (JSON for one tool's entry), with a
worked example for a tool unlike any real one. What it writes is checked like a hand-written book
(:mod:`tooltune.data.drafted_entries`): templates with unknown slots or without a required
parameter, values that do not fit the schema, and request templates that never yield a grounded, valid
call when filled are dropped and counted, so a careless draft costs entries, never bad data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import yaml
from pydantic import BaseModel, Field

from tooltune.data.drafted_entries import (
    ToolDraft,
    doomed_reply,
    merged_entry,
    ran_on,
    reply_entry,
    salvaged_entry,
    take_entry,
)
from tooltune.data.phrasebook import (
    FORMAT_VERSION,
    Phrasebook,
    ToolPhrases,
)
from tooltune.data.teacher import Teacher, TeacherError
from tooltune.errors import TooltuneError
from tooltune.json_spans import json_spans
from tooltune.logs import get_logger
from tooltune.toolspec import ToolSpec

log = get_logger(__name__)

DRAFT_PROMPT_VERSION = 2  # 2: each tool's ask names the slots every request needs
DRAFT_TIMEOUT_S = 3600.0  # silence allowed per draft (a read timeout): a slow teacher is slow, not broken
Complete = Callable[[list[dict[str, str]], int, Callable[[str], bool]], str]
"""``(messages, seed, enough) -> reply text``: one chat completion (system message first). ``enough(reply
so far)`` says when the rest of the reply would not be read (the tool's entry is whole, or the reply can
no longer give a usable one): a streaming endpoint may stop there."""

SYSTEM = (
    "You write how real people ask an assistant to use a tool, as templates with {param} slots. "
    "Reply with one JSON object and nothing else, with these keys:\n"
    '- "requests": 10 short requests as people really type them (commands and questions, casual, some '
    "lower case). Put a {param} slot where each value goes; every required parameter needs a slot; use "
    "optional ones in some. Never write 'with X set to Y' or name the parameter.\n"
    '- "values": for each parameter, 8 realistic values (they must fit its type and enum).\n'
    '- "say": other words people use for enum values, e.g. {"priority": {"urgent": ["urgent", "asap"]}} '
    "(only exact synonyms).\n"
    '- "parallel": 2 requests asking for two calls at once, with numbered slots {param.1} and {param.2}.\n'
    '- "near_misses": 3 requests on the same topic that none of the listed tools can do.\n'
    '- "results": 1 or 2 objects {"result": what the tool returns (an object), "answer": a one-sentence '
    "reply that uses it}; slots may appear in both."
)
# a worked example for a tool unlike any real one: the format, not the wording, is what carries over
_SHOT_TOOL = ToolSpec(
    name="get_forecast",
    description="Weather forecast for a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 10},
            "units": {"type": "string", "enum": ["metric", "imperial"]},
        },
        "required": ["city"],
    },
)
_SHOT_ANSWER = {
    "requests": [
        "weather in {city}?", "what's it going to be like in {city} the next {days} days",
        "forecast for {city} please", "do I need an umbrella in {city}?",
        "{city} weather, {days} days, in {units}", "how hot will it get in {city}?",
        "check the forecast for {city}", "is it going to snow in {city} this week",
        "give me {days} days of weather for {city}", "what's the weather doing in {city} in {units}",
    ],
    "values": {
        "city": ["Lisbon", "Osaka", "Denver", "Nairobi", "Oslo", "Austin", "Lyon", "Perth"],
        "days": [1, 2, 3, 5, 7, 10, 4, 6],
        "units": ["metric", "imperial"],
    },
    "say": {"units": {"metric": ["celsius", "metric"], "imperial": ["fahrenheit", "imperial"]}},
    "parallel": ["weather in {city.1} and {city.2}?", "compare the forecast for {city.1} and {city.2}"],
    "near_misses": [
        "what was the weather in {city} last March?", "warn me when it starts raining in {city}",
        "what's the air quality in {city}?",
    ],
    "results": [
        {"result": {"city": "{city}", "high_c": 21, "summary": "sunny"},
         "answer": "It'll be sunny in {city} with a high of 21°C."},
    ],
}  # fmt: skip


def draft_messages(tool: ToolSpec, tools: list[ToolSpec]) -> list[dict[str, str]]:
    """The chat sent for one tool: the instructions, the worked example, then the tool."""

    def ask(t: ToolSpec, others: list[ToolSpec]) -> str:
        listed = "; ".join(f"{o.name}: {o.description[:80]}" for o in others) or "(none)"
        needed = ", ".join("{" + r + "}" for r in t.required)
        return (
            f"Tool:\n{json.dumps(t.to_openai()['function'], indent=1)}\n"
            f"All the tools the assistant has: {listed}\n"
            + (f"Every request must contain {needed}.\n" if needed else "")
            + f"Write the JSON for {t.name}."
        )

    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": ask(_SHOT_TOOL, [_SHOT_TOOL])},
        {"role": "assistant", "content": json.dumps(_SHOT_ANSWER)},
        {"role": "user", "content": ask(tool, tools)},
    ]


class DraftStats(BaseModel):
    prompt_version: int = DRAFT_PROMPT_VERSION
    rounds: int = 1  # drafts merged per tool
    tools: list[ToolDraft] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def dropped(self) -> int:
        return sum(t.dropped for t in self.tools)

    @property
    def kept_requests(self) -> int:
        return sum(t.kept.get("requests", 0) for t in self.tools)


Round = tuple[tuple[dict[str, Any], int] | None, ToolDraft]
"""One round of a tool's draft: its usable entry and the seed it was asked with (or None), and what it
cost (tries, failures, unreadable replies, the drops of unusable entries)."""


def draft_tool(
    tool: ToolSpec,
    tools: list[ToolSpec],
    complete: Complete,
    *,
    tries: int = 2,
    seed: int = 0,
    rounds: int = 1,
) -> tuple[ToolPhrases | None, ToolDraft]:
    """One tool's entry, asked up to ``tries`` times until one yields a grounded request template. With
    ``rounds`` above 1 that is done once a round (each round's seeds 10 apart) and the usable drafts are
    merged into one entry (:func:`merged_entry`), checked as one: a model writes about ten templates a
    draft, where a person writes thirty. (:func:`draft_phrasebook` asks the rounds at once.)"""
    drafts = [
        _draft_round(tool, tools, complete, tries=tries, seed=seed + 10 * r, label=_round_label(r, rounds))
        for r in range(rounds)
    ]
    return _finish_tool(tool, tools, drafts)


def _round_label(r: int, rounds: int) -> str:
    """How a failed try's reason names its round ("round 2 "), where there are several."""
    return f"round {r + 1} " if rounds > 1 else ""


def _draft_round(
    tool: ToolSpec, tools: list[ToolSpec], complete: Complete, *, tries: int, seed: int, label: str = ""
) -> Round:
    report = ToolDraft(tool=tool.name)
    return _usable_entry(tool, tools, complete, report, tries=tries, seed=seed, label=label), report


def _finish_tool(
    tool: ToolSpec, tools: list[ToolSpec], drafts: list[Round]
) -> tuple[ToolPhrases | None, ToolDraft]:
    """A tool's entry from its rounds, in round order: the usable drafts merged and checked as one, and
    the rounds' costs summed in one report."""
    report = ToolDraft(tool=tool.name)
    for _, part in drafts:
        report.tries += part.tries
        report.unreadable += part.unreadable
        report.failed += part.failed
        report.ran_on += part.ran_on
        report.dropped += part.dropped
        report.reasons += part.reasons
    taken = [got for got, _ in drafts if got is not None]
    if not taken:
        return None, report
    entry, skipped = merged_entry([e for e, _ in taken], tool)
    report.dropped += skipped
    return take_entry(entry, tool, tools, report, taken[0][1]), report


def _usable_entry(
    tool: ToolSpec,
    tools: list[ToolSpec],
    complete: Complete,
    report: ToolDraft,
    *,
    tries: int,
    seed: int,
    label: str = "",
) -> tuple[dict[str, Any], int] | None:
    """A drafted entry (and the seed it was asked with) that yields a grounded request template, asked up
    to ``tries`` times; the tries, failures, unreadable replies and the drops of unusable entries go into
    ``report`` (the usable entry's drops are counted where it is taken)."""

    def enough(text: str) -> bool:
        """The rest of the reply would not be read: the entry is whole, cannot be usable, or ran on."""
        done = reply_entry(text) is not None
        return done or doomed_reply(text, tool) is not None or ran_on(text, tool) is not None

    for k in range(tries):
        report.tries += 1
        try:
            reply = complete(draft_messages(tool, tools), seed + k, enough)
        except TeacherError as e:  # one tool's failed request costs that try, not the other tools' drafts
            report.failed += 1
            report.reasons.append(f"{label}try {k + 1}: {e}")
            continue
        entry = reply_entry(reply)
        if entry is None:
            doomed = doomed_reply(reply, tool)
            if doomed is not None:  # its requests are dropped for what they lack, as the check would
                report.dropped += doomed[1]
                report.reasons.append(f"{label}try {k + 1}: {doomed[0]}")
                continue
            entry = salvaged_entry(reply)
            if entry is None:
                report.unreadable += 1
                continue
            report.ran_on += 1  # stopped while repeating itself, or cut at the token limit: read what came
            why = ran_on(reply, tool) or "its JSON never closed"
            report.reasons.append(
                f"{label}try {k + 1}: the reply never closed its entry ({why}); "
                f"its first {len(entry['requests'])} distinct requests were read"
            )
        probe = ToolDraft(tool=tool.name)
        if take_entry(entry, tool, tools, probe, seed + k) is not None:
            return entry, seed + k
        report.dropped += probe.dropped
        report.reasons += probe.reasons
    return None


def book_messages(tools: list[ToolSpec]) -> list[dict[str, str]]:
    """One request for the whole tool set (the MCP client's model): the per-tool instructions, the worked
    example, then every tool, answered as {"tools": {name: entry}}."""
    listed = "\n".join(json.dumps(t.to_openai()["function"]) for t in tools)
    return [
        {
            "role": "system",
            "content": SYSTEM + '\nFor several tools, reply {"tools": {TOOL_NAME: {...}, ...}}.',
        },
        {
            "role": "user",
            "content": f"Tool:\n{json.dumps(_SHOT_TOOL.to_openai()['function'])}\nWrite the JSON.",
        },
        {"role": "assistant", "content": json.dumps({"tools": {_SHOT_TOOL.name: _SHOT_ANSWER}})},
        {"role": "user", "content": f"Tools:\n{listed}\nWrite the JSON for all {len(tools)} tools."},
    ]


def book_from_reply(
    reply: str, tools: list[ToolSpec], *, name: str = "drafted", seed: int = 0
) -> tuple[Phrasebook, DraftStats]:
    """The book in a reply to :func:`book_messages`, each tool's entry checked and counted."""
    t0 = time.perf_counter()
    stats = DraftStats()
    found: dict[str, Any] = {}
    for _, _, value in json_spans(reply):
        if isinstance(value, dict) and isinstance(value.get("tools"), dict):
            found = value["tools"]
            break
    entries: dict[str, ToolPhrases] = {}
    for i, tool in enumerate(tools):
        report = ToolDraft(tool=tool.name, tries=1)
        entry = found.get(tool.name)
        if not isinstance(entry, dict) or not isinstance(entry.get("requests"), list):
            report.unreadable = 1
        elif (phrases := take_entry(entry, tool, tools, report, seed + 100 * i)) is not None:
            entries[tool.name] = phrases
        stats.tools.append(report)
    stats.seconds = round(time.perf_counter() - t0, 2)
    return Phrasebook(phrasebook=FORMAT_VERSION, name=name, tools=entries), stats


def shared_prefix_messages() -> list[dict[str, str]]:
    """The part of every tool's :func:`draft_messages` that does not depend on the tool, ending where the
    tool's JSON begins: asked once (one token) before concurrent drafts, it puts the shared prompt in
    mlx_lm.server's prompt cache, so each draft's prompt processing starts after it."""
    return [*draft_messages(_SHOT_TOOL, [_SHOT_TOOL])[:3], {"role": "user", "content": "Tool:\n"}]


def draft_workers(concurrency: int, drafts: int) -> int:
    """How many drafts go at once: ``concurrency``, at most one per draft (a tool's rounds are drafts of
    their own)."""
    if concurrency < 1:  # a setting, not the teacher's failure
        raise TooltuneError(f"concurrency must be at least 1 (got {concurrency})")
    return max(1, min(concurrency, drafts))


def draft_phrasebook(
    tools: list[ToolSpec],
    complete: Complete,
    *,
    name: str = "drafted",
    tries: int = 2,
    seed: int = 0,
    concurrency: int = 1,
    rounds: int = 1,
    warm: Callable[[list[dict[str, str]]], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Phrasebook, DraftStats]:
    """A book for ``tools``, ``concurrency`` drafts at a time (their requests in flight together, which a
    batching server answers in about the time of one); a tool whose drafts all fail is left out (its
    requests then come from its schema) and reported. Each tool is drafted ``rounds`` times, the rounds
    asked like other tools' drafts, and its usable drafts merged in round order (:func:`draft_tool`).
    ``warm``, when given and drafts run concurrently, is called once with :func:`shared_prefix_messages`
    first. The book and stats keep the tools' order. A failed request (:class:`TeacherError`) costs its
    tool that try; TeacherError is raised only when every request failed (a wrong URL, say)."""
    if rounds < 1 or tries < 1:  # settings, not the teacher's failure
        raise TooltuneError(f"rounds and tries must be at least 1 (got {rounds} and {tries})")
    t0 = time.perf_counter()
    stats = DraftStats(rounds=rounds)
    entries: dict[str, ToolPhrases] = {}
    workers = draft_workers(concurrency, len(tools) * rounds)
    if warm is not None and workers > 1:
        warm(shared_prefix_messages())
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {
            pool.submit(
                _draft_round,
                tool,
                tools,
                complete,
                tries=tries,
                seed=seed + 100 * i + 10 * r,
                label=_round_label(r, rounds),
            ): (i, r)
            for r in range(rounds)  # every tool's first round before any second one
            for i, tool in enumerate(tools)
        }
        for done, future in enumerate(as_completed(futures), start=1):
            got, report = future.result()
            log.info(
                "phrasebook drafted", tool=report.tool, round=futures[future][1] + 1, usable=got is not None
            )
            if progress is not None:
                progress(done, len(futures))
    except BaseException:  # an unexpected error or Ctrl-C: queued drafts are not started
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    drafts: dict[int, list[Round]] = {}
    for future, (i, _) in sorted(futures.items(), key=lambda item: item[1]):
        drafts.setdefault(i, []).append(future.result())
    for i, tool in enumerate(tools):
        phrases, report = _finish_tool(tool, tools, drafts[i])
        log.info("phrasebook entry", tool=tool.name, kept=report.kept, dropped=report.dropped)
        stats.tools.append(report)
        if phrases is not None:
            entries[tool.name] = phrases
    stats.seconds = round(time.perf_counter() - t0, 2)
    if stats.tools and all(t.failed == t.tries for t in stats.tools):
        raise TeacherError(f"every draft request failed; the first: {stats.tools[0].reasons[0]}")
    return Phrasebook(phrasebook=FORMAT_VERSION, name=name, tools=entries), stats


def drafted_header(by: str, seconds: float, at_once: int, tools: str, lint: str, rounds: int = 1) -> str:
    """The comment a drafted book's file starts with: who drafted it, how long it took, how to check it
    (``lint``: the file and tool arguments for `tooltune data phrasebook lint`)."""
    merged = f", {rounds} drafts merged per tool" if rounds > 1 else ""
    return (
        f"Drafted by {by} in {seconds:.0f} s ({at_once} at a time{merged}) for {tools}.\n"
        f"Edit freely; check with: tooltune data phrasebook lint {lint}"
    )


def phrasebook_yaml(book: Phrasebook, header: str = "") -> str:
    """The book as a YAML file a person can read and edit (``header`` becomes comment lines)."""
    data = book.model_dump(mode="json", exclude_defaults=False)
    data = {k: v for k, v in data.items() if v or k == "tools"}
    for phrases in data["tools"].values():
        for key in [k for k, v in phrases.items() if not v]:
            del phrases[key]
        for shape in phrases.get("results", []):  # a result's unused `when` and own values
            for key in [k for k, v in shape.items() if k in ("when", "values") and not v]:
                del shape[key]
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def draft_with_teacher(
    teacher: Teacher,
    tools: list[ToolSpec],
    *,
    name: str = "drafted",
    tries: int = 2,
    seed: int = 0,
    concurrency: int = 8,
    rounds: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Phrasebook, DraftStats]:
    """:func:`draft_phrasebook` asked of a teacher endpoint: when drafts go together the requests carry
    no seed (mlx_lm.server batches only unseeded requests) and a 1-token request puts their shared
    prompt in the server's cache first; one at a time they are seeded from ``seed``, so reproducible.
    Each reply is streamed and cut off once it holds a tool entry (the first complete JSON object with
    a "requests" list, which is all :func:`reply_entry` reads of it), or once its requests are all
    written and none has a slot for every required parameter (:func:`doomed_reply`: the try is lost
    either way, and the next starts at once), or once it runs on (:func:`ran_on`: it is read as far as
    it got, :func:`salvaged_entry`). Waits of up to :data:`DRAFT_TIMEOUT_S`
    with nothing streamed are allowed (an endpoint that queues requests sends nothing until it starts
    one); a 1.5B on 2 CPU cores writes ~1.9 tokens/s alone and ~1.4 each of 8 at once. An endpoint
    that answers one request at a time gains nothing from ``concurrency`` above 1."""
    one_at_a_time = draft_workers(concurrency, len(tools) * rounds) == 1
    return draft_phrasebook(
        tools,
        lambda messages, s, enough: teacher.chat(
            messages,
            seed=s if one_at_a_time else None,
            timeout=DRAFT_TIMEOUT_S,
            until=enough,  # what follows the entry is never read, nor what follows a doomed start
        ),
        name=name,
        tries=tries,
        seed=seed,
        concurrency=concurrency,
        rounds=rounds,
        warm=lambda messages: teacher.chat(messages, max_tokens=1, seed=None),
        progress=progress,
    )
