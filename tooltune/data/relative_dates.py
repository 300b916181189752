"""Dates said against a today the conversation states: "tomorrow", "on Tuesday", "in 3 days", "tonight
at 9", where the call holds the ISO date (and time) the tool takes.

People rarely type "2027-03-13"; they say "tomorrow", and an assistant knows which day that is because its
system prompt says what today is ("Today is Friday, 2027-03-12."). :mod:`tooltune.data.spoken_forms`
keeps to forms whose value follows from the words alone; a phrasebook that opts in (``relative_dates``)
has some conversations open with such a system line and their ``date``/``datetime`` values said relative
to it. Each phrase here is exact given today: the coming weekday within six days ("on Tuesday", never
"next Tuesday", which people read two ways), "Tuesday next week" only from a Monday-to-Saturday today
(where Sunday- and Monday-started weeks agree), "tonight" only for evening hours.
"""

from __future__ import annotations

import datetime as dt
import random
import re

# the month and weekday names, counts and ISO shapes the absolute forms use
from tooltune.data.spoken_forms import COUNTS, DATETIME, MONTHS, WEEKDAYS, parse_iso_date, time_forms

SYSTEM_LINES = [
    "Today is {weekday}, {date}.",
    "Today's date: {date} ({weekday}).",
    "Current date: {weekday}, {spoken}.",
    "It is {weekday}, {spoken}.",
    "The date today is {weekday} {date}.",
]
"""How a system prompt states today, when the book gives no lines of its own: ``{date}`` the ISO date,
``{weekday}`` its day's name, ``{spoken}`` "March 12, 2027"."""

# offsets from today (in days) a conversation's first relative date is drawn at, with their odds: the
# near days people name most, a week and the next week's days less often; never the past (an event or a
# reminder is for today or later)
_OFFSETS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
_ODDS = [1.5, 3, 1.2, 1, 1, 1, 1, 0.8, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4]
LATER = 0.7
"""How often a conversation's later dates are said relative too (when a phrase reaches them)."""


def date_phrases(day: dt.date, today: dt.date) -> list[str]:
    """Every exact way to say ``day`` relative to ``today`` ([] when none reaches it)."""
    o = (day - today).days
    name = WEEKDAYS[day.weekday()]
    out = {0: ["today"], 1: ["tomorrow"]}.get(o, [])
    if o == 2:
        out += ["the day after tomorrow"]
    if 2 <= o <= 6:  # the coming weekday: exact within six days ("this Tuesday" is not: some read the
        out += [f"on {name}", f"this coming {name}"]  # past one, or the one of this calendar week)
    if 2 <= o <= 10:
        out += [f"in {o} days", *([f"in {COUNTS[o]} days"] if o < len(COUNTS) else [])]
    if o == 7:
        out += ["a week from today", "in a week", "a week from now"]
    if o == 14:
        out += ["two weeks from today", "in two weeks"]
    # the next calendar week: Sunday- and Monday-started weeks agree on it from a Monday-to-Saturday
    # today, for its Monday to Saturday
    next_monday = today + dt.timedelta(days=7 - today.weekday())
    if today.weekday() != 6 and day.weekday() != 6 and 0 <= (day - next_monday).days < 6:
        out += [f"{name} next week", f"next week on {name}"]
    return list(dict.fromkeys(out))


def _time_phrases(day_phrase: str, offset: int, hhmm: str) -> list[str]:
    """A relative day and a time: "tomorrow at 7:15 pm", "tonight at 9" (evening hours only). None before
    6 am: "tomorrow at 1 am" is read as the night after tomorrow as often as the night before."""
    hour, minute = int(hhmm[:2]), int(hhmm[3:5])
    if hour < 6:
        return []
    times = time_forms(hhmm, with_date=True)[1:]  # not "19:15" beside "tomorrow"
    out = [f"{day_phrase} at {t}" for t in times if not t.startswith(("quarter", "half"))]
    out += [f"{day_phrase}, {t}" for t in times if t.startswith(("quarter", "half"))]
    clock = f"{hour % 12}" if minute == 0 else f"{hour % 12}:{minute:02d}"
    if offset == 0 and 18 <= hour <= 23:
        out += [f"tonight at {clock}", f"this evening at {clock}"] if hour < 22 else [f"tonight at {clock}"]
    if offset == 1 and 6 <= hour <= 11:
        out += [f"tomorrow morning at {hour}" if minute == 0 else f"tomorrow morning at {hour}:{minute:02d}"]
    return out


def phrases(form: str, value: str, today: dt.date) -> list[str]:
    """Every exact way to say ``value`` (a ``date`` or ``datetime`` form's value) relative to ``today``."""
    if form == "date":
        day = parse_iso_date(value)
        return date_phrases(day, today) if day is not None else []
    m = DATETIME.match(value) if form == "datetime" else None
    day = parse_iso_date(m[1]) if m else None
    if m is None or day is None:
        return []
    offset = (day - today).days
    days = [p for p in date_phrases(day, today) if not p.startswith("in ")]  # "in 3 days at 9am" reads badly
    return [p for d in days for p in _time_phrases(d, offset, m[2])]


def say(rng: random.Random, form: str, value: str, today: dt.date | None) -> tuple[str, dt.date] | None:
    """``value`` said relative to ``today``, and that today; with no today yet (a conversation's first
    date), a today is drawn so that some phrase reaches the value. None when no phrase fits."""
    day = parse_iso_date(value) if form == "date" else None
    if form == "datetime" and (m := DATETIME.match(value)):
        day = parse_iso_date(m[1])
    if day is None:
        return None
    if today is None:
        for _ in range(8):
            offset = rng.choices(_OFFSETS, weights=_ODDS)[0]
            drawn = day - dt.timedelta(days=offset)
            if said := phrases(form, value, drawn):
                return rng.choice(said), drawn
        return None
    said = phrases(form, value, today)
    return (rng.choice(said), today) if said else None


def system_line(rng: random.Random, today: dt.date, lines: list[str] | None = None) -> str:
    """A system prompt's statement of ``today`` in one of ``lines`` (default :data:`SYSTEM_LINES`)."""
    spoken = f"{MONTHS[today.month - 1]} {today.day}, {today.year}"
    line = rng.choice(lines or SYSTEM_LINES)
    return line.format(date=today.isoformat(), weekday=WEEKDAYS[today.weekday()], spoken=spoken)


# "on" before a phrase that carries its own preposition reads wrong ("busy on tomorrow"), except where
# it belongs to the verb ("what's on tomorrow", "anything on in 3 days")
_KEEP_ON = re.compile(r"(?:what['’]s|whats|what is|anything|nothing|something)\s*$", re.IGNORECASE)
_END = r"(?![\w'’])"  # the whole phrase: "today" but not "today's"


def says(text: str, phrase: str) -> bool:
    """Whether ``text`` says ``phrase`` as a whole ("today", not "today's"; a weekday phrase's "on" may
    have gone to the template's own preposition)."""
    bare = phrase[3:] if phrase.startswith("on ") else phrase
    return re.search(rf"\b{re.escape(bare)}{_END}", text, re.IGNORECASE) is not None


def _drop_before(text: str, phrase: str) -> str:
    def drop(m: re.Match[str]) -> str:
        if m[1].lower() == "on" and _KEEP_ON.search(text[: m.start()]):
            return m[0]
        return m[2][:1].upper() + m[2][1:] if m[1][0].isupper() else m[2]  # "On tomorrow, ..." -> "Tomorrow"

    # "in 3 days" takes no "from" or "for" either ("list everything from in 3 days")
    before = "on|from|for" if phrase.startswith("in ") else "on"
    return re.sub(rf"\b({before}) ({re.escape(phrase)}){_END}", drop, text, flags=re.IGNORECASE)


def fix_prepositions(text: str, said: list[str]) -> str:
    """``text`` with a stray "on" before each relative phrase in ``said`` taken out ("am i busy on
    tomorrow" -> "am i busy tomorrow"), and "from"/"for" before "in 3 days"; a weekday phrase's own "on"
    goes after a preposition of the template ("for on Tuesday" -> "for Tuesday", "on on Tuesday" ->
    "on Tuesday")."""
    for phrase in dict.fromkeys(said):
        if phrase.startswith("on "):
            text = re.sub(
                rf"\b(on|for|from|by|until|starting) {re.escape(phrase)}{_END}",
                lambda m, rest=phrase[3:]: f"{m[1]} {rest}",
                text,
                flags=re.IGNORECASE,
            )
        else:
            text = _drop_before(text, phrase)
    return text
