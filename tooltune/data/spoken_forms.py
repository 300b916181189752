"""Dates, times and durations as people say them: a phrasebook's ``forms`` (``{when: datetime}``) has a
parameter's value written "Jan 4, 2027 at 7:15 pm" where the call holds ``"2027-01-04 19:15"``.

Tools take dates and times in one machine form (ISO dates, 24-hour times, minutes); people write them
every other way. A model that only ever saw the machine form in requests learns to copy, not to convert.
Each form here is exact: the call's value follows from the words alone (no "tomorrow", which needs to
know today: :mod:`tooltune.data.relative_dates` says that where a book opts in and the conversation states
today; no "9 o'clock", which could be morning or evening).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import shlex

from tooltune.data.samplers import words_of
from tooltune.toolspec import schema_types

FORMS: dict[str, str] = {
    "date": 'an ISO date, "2027-01-04": said "January 4, 2027", "4 Jan 2027", "the 4th of January 2027"...',
    "time": 'a 24-hour time, "19:15" (or "19:15:00"): said "7:15 pm", "quarter past seven in the evening"...',
    "datetime": 'an ISO date and time, "2027-01-04 19:15" (or with a T): "Jan 4, 2027 at 7:15 pm"...',
    "minutes": 'a whole number of minutes, 90: said "an hour and a half", "1.5 hours", "90 mins"...',
    "number": 'a whole number, 1204 or 306: said "1,204", "three hundred and six", "forty-two"...',
}
"""The forms a phrasebook's ``forms`` may name, and what each takes and writes."""

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
# a time may carry zero seconds (as schema samplers and many APIs write it): said without them
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::00)?$")
DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::00)?)$")
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]  # not the locale's
_HOURS = ["twelve", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]
COUNTS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_VERBATIM = 0.2  # how often a value is written as the tool takes it: people do that too
# a number (an issue's id, a count) is typed as digits more often than in words
_VERBATIM_OF = {"number": 0.5}
INTEGER_FORMS = ("minutes", "number")
"""The forms whose values are whole numbers (the others' are text)."""
_TEENS = "eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def parse_iso_date(value: str) -> dt.date | None:
    m = _DATE.match(value)
    if m is None or m[1] < "1000":
        return None
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _time(value: str) -> tuple[int, int] | None:
    m = _TIME.match(value)
    return (int(m[1]), int(m[2])) if m else None


_ORDINAL_WORDS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()


def ordinal_forms(value: object) -> list[str]:
    """A whole number from 1 as an ordinal: 3 -> "3rd", "third" (words up to twentieth); [] for others."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return []
    return [_ordinal(value), *([_ORDINAL_WORDS[value - 1]] if value <= len(_ORDINAL_WORDS) else [])]


def argv_text(value: object) -> str | None:
    """A list of strings as a shell would take them ("run build", "-m 'fix the login'"), or None when the
    value is none: the words a person types for a command's arguments, read back to the same list."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        return None
    return shlex.join(value)


def _distinct(forms: list[str]) -> list[str]:
    return list(dict.fromkeys(forms))  # "May 1, 2027" is the long and the short month's form


def date_forms(value: str) -> list[str]:
    """Every way :func:`say` may write an ISO date (the value itself first); [] when it is none."""
    d = parse_iso_date(value)
    if d is None:
        return []
    month, short, day, year = MONTHS[d.month - 1], MONTHS[d.month - 1][:3], d.day, d.year
    return _distinct(
        [
            value,
            f"{month} {day}, {year}",
            f"{short} {day}, {year}",
            f"{short} {day} {year}",
            f"{month} {_ordinal(day)}, {year}",
            f"{day} {month} {year}",
            f"{day} {short} {year}",
            f"the {_ordinal(day)} of {month} {year}",
            f"{WEEKDAYS[d.weekday()]}, {month} {day}, {year}",
        ]
    )


def _part_of_day(hour: int) -> str:
    return (
        "in the morning"
        if hour < 12
        else "in the afternoon"
        if hour < 17
        else "in the evening"
        if hour < 21
        else "at night"
    )


def time_forms(value: str, *, with_date: bool = False) -> list[str]:
    """Every way :func:`say` may write a 24-hour time (the value itself first); [] when it is none.
    Each says the hour unambiguously: "7:15 pm", never "7:15" for 19:15; "noon", never "12 pm";
    "midnight" only on its own (beside a date, people read it as the end of that day or the start)."""
    t = _time(value)
    if t is None:
        return []
    hour, minute = t
    h12, half = hour % 12 or 12, "am" if hour < 12 else "pm"
    if minute == 0 and hour in (0, 12):  # "12 am" and "12 pm" are read both ways
        return [value, *(["noon", "midday", "12 noon"] if hour == 12 else [] if with_date else ["midnight"])]
    clock = f"{h12}:{minute:02d}"
    out = [value, f"{clock} {half}", f"{clock}{half}", f"{clock} {half.upper()}"]
    if minute == 0:
        out += [f"{h12}{half}", f"{h12} {half}", f"{h12} {half.upper()}"]
    word = {15: "quarter past", 30: "half past"}.get(minute)
    if word and hour != 0:
        out.append(f"{word} {_HOURS[hour % 12]} {_part_of_day(hour)}")
    if minute == 45 and hour not in (11, 23):
        nxt = hour + 1
        out.append(f"quarter to {_HOURS[nxt % 12]} {_part_of_day(nxt)}")
    return out


def minutes_forms(value: int) -> list[str]:
    """Every way :func:`say` may write a number of minutes (the plain number with its unit first)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return []
    if value == 1:
        return ["1 minute", "one minute", "a minute"]
    out = [f"{value} minutes", f"{value} min", f"{value} mins"]
    hours, rest = divmod(value, 60)
    if value == 30:
        out.append("half an hour")
    if value == 45:
        out.append("three quarters of an hour")
    if rest == 0:
        out += ["an hour", "one hour", "1 hour", "1h"] if hours == 1 else [f"{hours} hours", f"{hours}h"]
    elif rest == 30 and hours:
        out += (
            [f"{hours}.5 hours", *([f"{COUNTS[hours]} and a half hours"] if hours < len(COUNTS) else [])]
            if hours > 1
            else ["an hour and a half", "1.5 hours"]
        )
        out.append(f"{hours}h30")
    elif hours:
        unit = "hour" if hours == 1 else "hours"
        out += [f"{hours} {unit} {rest} minute{'s' if rest > 1 else ''}", f"{hours}h{rest:02d}"]
    return out


def _words_below_100(n: int) -> str:
    if n <= 10:
        return COUNTS[n]
    if n < 20:
        return _TEENS[n - 11]
    tens, ones = divmod(n, 10)
    return _TENS[tens - 2] + (f"-{COUNTS[ones]}" if ones else "")


def number_forms(value: object) -> list[str]:
    """Every way :func:`say` may write a whole number (the digits first): with thousands separators from
    1,000 ("1,204"), in words below 1,000 ("forty-two", "three hundred and six", "three hundred six", "a
    hundred"); [] for anything else (a negative number, a bool, a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return []
    if value >= 1000:
        return [str(value), f"{value:,}"]
    hundreds, rest = divmod(value, 100)
    if not hundreds:
        return [str(value), _words_below_100(value)]
    head = f"{COUNTS[hundreds]} hundred"
    if not rest:
        return [str(value), head, *(["a hundred"] if hundreds == 1 else [])]
    return [str(value), f"{head} and {_words_below_100(rest)}", f"{head} {_words_below_100(rest)}"]


def datetime_forms(value: str) -> list[str]:
    """Every way :func:`say` may write an ISO date and time, "2027-01-04 19:15" or "2027-01-04T19:15"
    (the value itself first): a date form and a time form joined, the date first ("Jan 4, 2027 at 7:15
    pm", "2027-01-04, quarter past seven in the evening"); [] when it is none."""
    m = DATETIME.match(value)
    if m is None:
        return []
    dates, times = date_forms(m[1]), time_forms(m[2][:5], with_date=True)  # zero seconds go unsaid
    if not dates or not times:
        return []
    joined = [(d, t) for d in dates for t in times if (d, t) != (dates[0], times[0])]  # not the ISO pair
    return [value, *(f"{d}{j}{t}" for d, t in joined for j in (" at ", ", "))]


def forms_of(form: str, value: object) -> list[str]:
    """Every way ``value`` may be said in ``form`` (the value as the tool takes it first), or [] when the
    value is not of that form (it is then written as any other value)."""
    if form in INTEGER_FORMS:
        return (minutes_forms if form == "minutes" else number_forms)(value) if isinstance(value, int) else []
    if not isinstance(value, str):
        return []
    return {"date": date_forms, "time": time_forms, "datetime": datetime_forms}[form](value)


def say(rng: random.Random, form: str, value: object) -> str | None:
    """``value`` as a person writes it in ``form``: about one time in five as the tool takes it (for
    minutes: a number of minutes; a number: one time in two, as digits), else one of the other forms;
    None when the value is not of that form."""
    forms = forms_of(form, value)
    if not forms:
        return None
    plain = forms[:3] if form == "minutes" else forms[:1]  # "90 minutes", "90 min", "90 mins"
    spoken = forms[len(plain) :]
    if not spoken or rng.random() < _VERBATIM_OF.get(form, _VERBATIM):
        return rng.choice(plain)
    return rng.choice(spoken)


_DATETIME_SHAPE = re.compile(r"yyyy-mm-dd[ t]hh:mm")
# a unit right after a slot: " minutes", "min" run on, or "-minute" (an adjective: "a {d}-minute slot")
_UNIT_AFTER_SLOT = r"(\{%s(?:\.\d)?\})((?:\s*|-)(?:minutes?|mins?)\b)"
# words that make an HH:MM something other than a time of day, and minutes something other than a
# duration (a UTC offset, a minute of the hour, a clock face's minutes)
_NOT_A_TIME = {"duration", "length", "long", "offset", "elapsed"}
_NOT_A_DURATION = {"offset", "clock", "hour"}


def schema_form(name: str, schema: dict[str, object]) -> str | None:
    """The form a parameter's own schema names, or None: a string whose ``format`` is date, date-time or
    time, or whose description shows the shape ("YYYY-MM-DD HH:MM", "YYYY-MM-DD", "24-hour HH:MM"); a
    whole number of minutes by its name ("duration_minutes", "timeout_mins") or its description ("Length
    in minutes"). Not a format string ("format: 'HH:MM:SS'"), an HH:MM that is a length or an offset, a
    minute of the hour or a clock face's minutes, or minutes that may be zero or negative (a UTC offset):
    none of those is said as a time of day or a duration. A drafted phrasebook starts from these (a
    teacher rarely names forms itself)."""
    takes = schema_types(schema)
    text = str(schema.get("description", "")).lower()
    words = set(words_of(name))
    if words & {"format", "fmt", "pattern"}:
        return None
    said = words | set(re.findall(r"[a-z]+", text))
    if "string" in takes:
        fmt = schema.get("format")
        if fmt in ("date", "time"):
            return str(fmt)
        if fmt == "date-time" or _DATETIME_SHAPE.search(text):
            return "datetime"
        if "yyyy-mm-dd" in text:
            return "date"
        if "hh:mm" in text and not said & _NOT_A_TIME:
            return "time"
    low = schema.get("minimum")
    if (
        takes & {"integer", "number"}
        and (words & {"minutes", "mins"} or "in minutes" in text)
        and not said & _NOT_A_DURATION
        and not (isinstance(low, int | float) and low <= 0)
        and not re.search(r"\b0\s*(?:-|to)\s*59\b", text)
    ):
        return "minutes"
    return None


def units_after(param: str, template: str) -> list[str]:
    """The units a template writes right after its minutes slots ("for {d} minutes", "{d.2}min", "a
    {d}-minute slot"), each slot's: a minutes form writes its own unit, so it would be said twice ("for
    an hour and a half minutes")."""
    return [m[2].strip() for m in re.finditer(_UNIT_AFTER_SLOT % re.escape(param), template, re.IGNORECASE)]


def without_unit(param: str, template: str) -> str:
    """``template`` without the unit words after its ``param`` slots ("for {d} minutes" -> "for {d}"); a
    "-minute" adjective is not one to take out ("a {d} slot" would read "a an hour slot")."""
    return re.sub(_UNIT_AFTER_SLOT % re.escape(param), r"\1", template, flags=re.IGNORECASE)
