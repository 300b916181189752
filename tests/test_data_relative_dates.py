"""Dates said against a today the system prompt states ("tomorrow", "on Tuesday", "tonight at 9"): every
phrase reads back to its date by an independent reader, a book opts in, a dated conversation opens with
a system line naming that today, and a book without it generates what it generated before."""

from __future__ import annotations

import datetime as dt
import json
import random
import re

import pytest

from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.phrasebook import phrasebook_from_object
from tooltune.data.phrasebook_check import check_phrasebook
from tooltune.data.phrasebook_fill import DataBook
from tooltune.data.relative_dates import date_phrases, fix_prepositions, phrases, say, says, system_line
from tooltune.data.tool_sources import load_tool_specs

_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUMBERS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}


def _read(text: str, today: dt.date, *, week_starts_sunday: bool = False) -> dt.date:
    """An independent reader: what a person takes the phrase to mean, given today."""
    t = text.lower()
    fixed = {"yesterday": -1, "today": 0, "tonight": 0, "this evening": 0, "tomorrow": 1}
    if t.startswith("the day after tomorrow"):
        return today + dt.timedelta(days=2)
    if m := re.match(r"in (\w+) days?", t):
        n = int(m[1]) if m[1].isdigit() else _NUMBERS[m[1]]
        return today + dt.timedelta(days=n)
    if t.startswith(("a week from", "in a week")):
        return today + dt.timedelta(days=7)
    if t.startswith(("two weeks from", "in two weeks")):
        return today + dt.timedelta(days=14)
    if m := re.match(r"(?:(\w+) next week|next week on (\w+))", t):
        day = _DAYS.index(m[1] or m[2])
        back = (today.weekday() + 1) % 7 if week_starts_sunday else today.weekday()
        start = today - dt.timedelta(days=back)
        next_start = start + dt.timedelta(days=7)
        return next_start + dt.timedelta(days=(day - next_start.weekday()) % 7)
    if m := re.match(
        r"(?:on |this coming |this |)(monday|tuesday|wednesday|thursday|friday|saturday|sunday)", t
    ):
        day = _DAYS.index(m[1])
        return today + dt.timedelta(days=(day - today.weekday()) % 7 or 7)
    for word, days in fixed.items():
        if t.startswith(word):
            return today + dt.timedelta(days=days)
    raise AssertionError(f"cannot read {text!r}")


def test_every_relative_phrase_reads_back_to_its_date_whichever_day_the_week_starts() -> None:
    start = dt.date(2027, 3, 1)
    seen: set[str] = set()
    for d in range(14):  # every weekday as today, twice
        today = start + dt.timedelta(days=d)
        for offset in range(-3, 22):
            day = today + dt.timedelta(days=offset)
            for phrase in date_phrases(day, today):
                seen.add(re.sub(r"\b(" + "|".join(_DAYS) + r")\b", "WD", phrase.lower()))
                assert _read(phrase, today) == day, (today, phrase)
                assert _read(phrase, today, week_starts_sunday=True) == day, (today, phrase)
    # the phrase kinds people use are all there; the ambiguous ones ("next Tuesday", a bare weekday
    # seven days ahead, "Sunday next week") never are
    assert {"today", "tomorrow", "the day after tomorrow", "on WD", "this coming WD", "WD next week",
            "in 3 days", "in three days", "a week from today", "in two weeks"} <= seen  # fmt: skip
    # never the past (an event or a reminder is for later), never "next WD" or "this WD" (read two ways)
    assert not any(p.startswith(("next WD", "this WD")) or p == "yesterday" for p in seen)
    days = [(start + dt.timedelta(d), start + dt.timedelta(d + o)) for d in range(14) for o in range(22)]
    assert "sunday next week" not in " ".join(p.lower() for t, day in days for p in date_phrases(day, t))
    # past the reach of any exact phrase: nothing
    assert date_phrases(dt.date(2027, 3, 31), dt.date(2027, 3, 1)) == []


def test_datetimes_say_the_day_and_an_unambiguous_time() -> None:
    friday = dt.date(2027, 3, 12)
    evening = phrases("datetime", "2027-03-12 21:00", friday)
    assert "tonight at 9" in evening and "today at 9pm" in evening
    assert all(_read(p, friday) == friday for p in evening)
    # "tonight" only for evening hours, "tomorrow morning" only for the morning
    assert not any("tonight" in p for p in phrases("datetime", "2027-03-12 09:00", friday))
    assert "tomorrow morning at 8:30" in phrases("datetime", "2027-03-13T08:30", friday)
    assert not any("morning" in p for p in phrases("datetime", "2027-03-13 20:30", friday))
    # never the bare 24-hour time beside a relative day, never "in 3 days at ..."
    later = phrases("datetime", "2027-03-15 19:15", friday)
    assert later and not any("19:15" in p or p.startswith("in ") for p in later)
    # nothing before 6 am: "tomorrow at 1 am" is read as either night
    assert (
        phrases("datetime", "2027-03-13 01:00", friday)
        == phrases("datetime", "2027-03-12 05:30", friday)
        == []
    )
    assert phrases("datetime", "2027-03-12 soon", friday) == []
    assert phrases("date", "2027-02-30", friday) == []


def test_say_draws_a_today_that_a_phrase_reaches_then_keeps_it() -> None:
    rng = random.Random(4)
    for _ in range(200):
        got = say(rng, "date", "2027-06-02", None)
        assert got is not None
        phrase, today = got
        assert _read(phrase, today) == dt.date(2027, 6, 2)
    # with today fixed, a date no phrase reaches is not said relative
    assert say(rng, "date", "2027-09-01", dt.date(2027, 6, 1)) is None
    assert say(rng, "date", "June 2nd", None) is None


def test_the_system_line_states_today_and_stray_prepositions_go() -> None:
    friday = dt.date(2027, 3, 12)
    lines = {system_line(random.Random(s), friday) for s in range(40)}
    assert len(lines) > 2 and all("Friday" in line and ("2027-03-12" in line or "March 12, 2027" in line)
                                  for line in lines)  # fmt: skip
    own = system_line(random.Random(0), friday, ["Current date: {date}"])
    assert own == "Current date: 2027-03-12"
    assert fix_prepositions("am i busy on tomorrow? what's on tomorrow", ["tomorrow"]) == (
        "am i busy tomorrow? what's on tomorrow"
    )
    assert fix_prepositions("what do i have on on Tuesday?", ["on Tuesday"]) == "what do i have on Tuesday?"
    assert fix_prepositions("On tomorrow, list it", ["tomorrow"]) == "Tomorrow, list it"
    assert fix_prepositions("busy on next week on Thursday?", ["next week on Thursday"]) == (
        "busy next week on Thursday?"
    )
    # "on" that belongs to the question stays ("what's on ..."), before any phrase
    assert fix_prepositions("what's on the day after tomorrow?", ["the day after tomorrow"]) == (
        "what's on the day after tomorrow?"
    )
    assert fix_prepositions("anything on in 3 days?", ["in 3 days"]) == "anything on in 3 days?"
    # a weekday phrase's own "on" goes after the template's preposition
    assert fix_prepositions("check my agenda for on Tuesday", ["on Tuesday"]) == "check my agenda for Tuesday"
    assert fix_prepositions("3 days from on Monday", ["on Monday"]) == "3 days from Monday"
    assert (
        fix_prepositions("what’s on tomorrow?", ["tomorrow"]) == "what’s on tomorrow?"
    )  # a curly apostrophe
    # a whole phrase is said, or not: "today's" does not say "today"; "for Tuesday" says "on Tuesday"
    assert not says("catch up on today's news", "today") and says("Anything today?", "today")
    assert says("check my agenda for Tuesday", "on Tuesday") and not says("Tuesdays are slow", "on Tuesday")
    # only the whole phrase: a note's "catch up on today's news" is its own text
    assert fix_prepositions("catch up on today's news, am i busy on today?", ["today"]) == (
        "catch up on today's news, am i busy today?"
    )
    assert fix_prepositions("list all from in four days", ["in four days"]) == "list all in four days"
    assert fix_prepositions("list all from tomorrow", ["tomorrow"]) == "list all from tomorrow"


BOOK = """\
phrasebook: 1
relative_dates: {share: 0.5}
tools:
  list_events:
    requests: ["what do i have on {date}?", "anything on {date}?", "show me {date}"]
    values: {date: ["2027-01-08", "2027-03-15", "2027-06-02", "2027-11-18"]}
    forms: {date: date}
  set_reminder:
    requests: ["remind me to {text} {when}"]
    values:
      when: ["2027-03-15 21:00", "2027-06-02 08:30", "2027-11-18 19:15"]
      text: ["call mom", "pay rent"]
    forms: {when: datetime}
"""


def _dated(res: object) -> tuple[int, int]:
    """(examples with a system line stating today, examples whose request says a date relative to it)."""
    lines = calls = 0
    for ex in res.examples:  # type: ignore[attr-defined]
        msgs = ex.messages
        system = msgs[0]["content"] if msgs[0]["role"] == "system" else ""
        m = re.search(r"(\d{4}-\d{2}-\d{2})|(\w+ \d{1,2}, \d{4})", system)
        if not m:
            continue
        lines += 1
        today = dt.date.fromisoformat(m[1]) if m[1] else dt.datetime.strptime(m[2], "%B %d, %Y").date()
        user = next(x["content"] for x in msgs if x["role"] == "user")
        call = next(x for x in msgs if x.get("tool_calls"))["tool_calls"][0]["function"]
        args = call["arguments"] if isinstance(call["arguments"], dict) else json.loads(call["arguments"])
        value = args.get("date") or args.get("when", "")[:10]
        full = phrases("date", value, today) + ["tonight", "this evening"]  # the last two: a datetime's
        bare = [p[3:] for p in full if p.startswith("on ")]  # "for on Tuesday" was written "for Tuesday"
        said = next(p for p in [*full, *bare] if p.lower() in user.lower())
        assert _read(said, today) == dt.date.fromisoformat(value), (user, system)
        calls += 1
    return lines, calls


def test_a_book_with_relative_dates_opens_dated_conversations_with_today() -> None:
    calendar = [
        t for t in load_tool_specs(["builtin:notes-calendar"]) if t.name in ("list_events", "set_reminder")
    ]
    checked = check_phrasebook(phrasebook_from_object(BOOK, source="b.yaml"), calendar)
    assert not checked.errors and checked.book.relative_dates is not None
    cfg = GenerateConfig(
        n=120, seed=2, kinds=["single"], system_prompt="You are my assistant.", system_share=1.0
    )
    res = generate_examples(calendar, cfg, books=[DataBook(checked, calendar)])
    lines, calls = _dated(res)
    # about half the conversations are dated; each one's call holds the date its words name
    assert 30 <= calls == lines <= 90
    # one system message: the configured prompt, then today
    firsts = [ex.messages[0] for ex in res.examples if ex.messages[0]["role"] == "system"]
    assert all(m["content"].startswith("You are my assistant.") for m in firsts)
    assert all(sum(x["role"] == "system" for x in ex.messages) <= 1 for ex in res.examples)
    texts = " | ".join(m["content"] for ex in res.examples for m in ex.messages if m["role"] == "user")
    assert "tomorrow" in texts and " on on " not in texts.lower() and "have on tomorrow" not in texts.lower()


def test_a_book_without_relative_dates_draws_nothing_new() -> None:
    """The same book without the key: no system line, the same digest as a book never given it, and the
    generator's draws unchanged (the examples a book made before this option existed)."""
    calendar = load_tool_specs(["builtin:notes-calendar"])
    plain_text = BOOK.replace("relative_dates: {share: 0.5}\n", "")
    plain = check_phrasebook(phrasebook_from_object(plain_text, source="b.yaml"), calendar)
    dated = check_phrasebook(phrasebook_from_object(BOOK, source="b.yaml"), calendar)
    assert plain.book.digest() != dated.book.digest()
    assert "relative_dates" not in json.dumps(plain.book.model_dump(mode="json", exclude_none=True))
    cfg = GenerateConfig(n=60, seed=5, kinds=["single"])
    res = generate_examples(calendar, cfg, books=[DataBook(plain, calendar)])
    assert _dated(res) == (0, 0)
    assert all(ex.messages[0]["role"] == "user" for ex in res.examples)
    # pinned: what this book generated before relative dates existed (seed 5, the first 3 requests)
    firsts = [next(m["content"] for m in ex.messages if m["role"] == "user") for ex in res.examples[:3]]
    assert firsts == PINNED_PLAIN


PINNED_PLAIN = [
    "I'd like to cancel a calendar event with an event id of ORD-62030.",
    "Remind me to call mom 2027-03-15 21:00",
    "I'd like to list calendar events starting on 2020-03-10 please.",
]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("relative_dates: {share: 0}", "greater than 0"),
        ("relative_dates: {share: 0.3, system: ['Today is {weekday}.']}", "does not say the date"),
        ("relative_dates: {share: 0.3, system: ['Today is {when}, {date}.']}", "only {date}, {weekday}"),
        ("relative_dates: {share: 0.3, system: ['Today is {date} ({date.year})']}", "only {date}, {weekday}"),
        ("relative_dates: {share: 0.3, often: 2}", "Extra inputs"),
    ],
)
def test_a_wrong_relative_dates_is_named_with_its_line_and_the_book_stands(block: str, message: str) -> None:
    calendar = load_tool_specs(["builtin:notes-calendar"])
    text = BOOK.replace("relative_dates: {share: 0.5}", block)
    checked = check_phrasebook(phrasebook_from_object(text, source="b.yaml"), calendar)
    issue = next(i for i in checked.errors if i.where.startswith("relative_dates"))
    assert message in issue.message and issue.line == 2
    assert checked.book.relative_dates is None and set(checked.book.tools) == {"list_events", "set_reminder"}


def test_relative_dates_without_a_date_form_is_warned() -> None:
    calendar = load_tool_specs(["builtin:notes-calendar"])
    text = BOOK.replace("    forms: {date: date}\n", "").replace("    forms: {when: datetime}\n", "")
    checked = check_phrasebook(phrasebook_from_object(text, source="b.yaml"), calendar)
    assert any(i.where == "relative_dates" and "no date is said" in i.message for i in checked.warnings)


def test_the_mcp_description_names_every_section_a_calling_model_may_write() -> None:
    """generate_training_examples' phrasebook argument is described to a calling model: every section
    of the format (relative_dates too) is named there, so a model that reads it can write each one."""
    from tooltune.data.phrasebook import FollowStep, Job, Phrasebook, ResultShape, ToolPhrases
    from tooltune.server.tools.data import PHRASEBOOK_HELP

    unnamed = {
        m.__name__: [f for f in m.model_fields if f'"{f}"' not in PHRASEBOOK_HELP]
        for m in (Phrasebook, ToolPhrases, Job, FollowStep, ResultShape)
    }
    # the format version and the book's name are optional and need no explaining
    assert unnamed == {"Phrasebook": ["phrasebook", "name"], "ToolPhrases": [], "Job": [], "FollowStep": [],
                       "ResultShape": []}  # fmt: skip
    assert '"relative_dates": {"share"' in PHRASEBOOK_HELP
