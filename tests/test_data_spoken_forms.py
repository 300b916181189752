"""Dates, times and durations as people say them (a phrasebook's ``forms``): every form is exact, so the
call's value follows from the words alone; values not of the form are refused, not guessed."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest

from tooltune.data.spoken_forms import (
    FORMS,
    date_forms,
    forms_of,
    minutes_forms,
    number_forms,
    say,
    schema_form,
    time_forms,
    units_after,
    without_unit,
)

_MONTH = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                      "nov", "dec"], start=1)}  # fmt: skip
_HOUR_WORDS = [
    "twelve",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
]


def _read_date(text: str) -> str:
    """An independent reader of the written dates: month name, day and year wherever they stand."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return text
    month = next(n for m, n in _MONTH.items() if re.search(rf"\b{m}", text.lower()))
    day = int(re.search(r"\b(\d{1,2})(st|nd|rd|th)?\b(?!\d)", text)[1])
    year = int(re.search(r"\b(\d{4})\b", text)[1])
    return dt.date(year, month, day).isoformat()


def _read_time(text: str) -> str:
    t = text.lower()
    if re.fullmatch(r"\d{2}:\d{2}", t):
        return t
    if t in ("noon", "midday", "12 noon"):
        return "12:00"
    if t == "midnight":
        return "00:00"
    evening = any(w in t for w in ("pm", "afternoon", "evening", "night"))
    m = re.match(r"(quarter past|half past|quarter to) (\w+)", t)
    if m:
        hour = _HOUR_WORDS.index(m[2])
        minute = {"quarter past": 15, "half past": 30, "quarter to": 45}[m[1]]
        hour = hour - 1 if m[1] == "quarter to" else hour
    else:
        m = re.match(r"(\d{1,2})(?::(\d{2}))?", t)
        hour, minute = int(m[1]), int(m[2] or 0)
    hour = hour % 12 + (12 if evening else 0)
    if "night" in t and hour < 12:  # "at night" past midnight would not be said; kept for the check
        hour += 12
    return f"{hour % 24:02d}:{minute:02d}"


def test_every_date_form_reads_back_to_its_date() -> None:
    day = dt.date(2027, 1, 1)
    while day.year == 2027:
        for form in date_forms(day.isoformat()):
            assert _read_date(form) == day.isoformat(), form
        day += dt.timedelta(days=1)
    assert "Monday, January 4, 2027" in date_forms("2027-01-04")  # the weekday is the real one
    assert "the 22nd of March 2027" in date_forms("2027-03-22")


def test_every_time_form_reads_back_to_its_time_and_none_is_ambiguous() -> None:
    for hour in range(24):
        for minute in range(0, 60, 5):
            value = f"{hour:02d}:{minute:02d}"
            forms = time_forms(value)
            assert forms[0] == value
            for form in forms:
                assert _read_time(form) == value, (value, form)
                # a bare 12-hour clock ("7:15") could be morning or evening: never written
                assert not re.fullmatch(r"\d{1,2}:\d{2}", form) or form == value, form
    assert {"noon", "midday"} <= set(time_forms("12:00")) and "midnight" in time_forms("00:00")
    # "12 am" / "12 pm" are read both ways; "midnight" beside a date as the end of that day or the start
    assert not {"12 am", "12 pm", "12am", "12pm"} & set(time_forms("00:00") + time_forms("12:00"))
    assert not any("midnight" in f for f in forms_of("datetime", "2027-01-04 00:00"))
    assert time_forms("19:15:00")[1:] == time_forms("19:15")[1:]  # zero seconds, as samplers write
    assert "quarter to eight in the evening" in time_forms("19:45")


def test_minutes_forms_are_exact() -> None:
    assert "an hour and a half" in minutes_forms(90) and "1.5 hours" in minutes_forms(90)
    assert "two and a half hours" in minutes_forms(150) and "2 hours" in minutes_forms(120)
    assert "half an hour" in minutes_forms(30) and "three quarters of an hour" in minutes_forms(45)
    assert "1 hour 20 minutes" in minutes_forms(80) and "1 hour 1 minute" in minutes_forms(61)
    assert minutes_forms(1)[0] == "1 minute"
    for n in range(1, 600):
        for form in minutes_forms(n):
            hours = re.search(r"([\d.]+) ?(hours?|h)(?![a-z])", form)
            mins = re.search(r"(\d+) ?(minutes?|mins?)\b|h(\d{2})$", form)
            words = {"an hour": 60, "one hour": 60, "half an hour": 30, "an hour and a half": 90,
                     "three quarters of an hour": 45, "one minute": 1, "a minute": 1}  # fmt: skip
            total = words.get(form)
            half = re.match(r"(\w+) and a half hours$", form)
            if total is None and half:
                counts = ["zero", *_HOUR_WORDS[1:11]]  # zero to ten
                total = counts.index(half[1]) * 60 + 30
            if total is None:
                total = float(hours[1]) * 60 if hours else 0
                total += int(mins[1] or mins[3]) if mins else 0
            assert total == n, (n, form)


_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split()
)
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}


def _read_number(text: str) -> int:
    """An independent reader of the written numbers: digits with or without commas, or English words."""
    if re.fullmatch(r"\d{1,3}(,\d{3})+|\d+", text):
        return int(text.replace(",", ""))
    total = 0
    for word in re.split(r"[ -]", text.replace(" and ", " ")):
        if word == "hundred":
            total = max(total, 1) * 100
        elif word == "a":
            total += 1
        else:
            total += _UNITS.index(word) if word in _UNITS else _TENS[word]
    return total


def test_number_forms_are_exact() -> None:
    assert number_forms(306) == ["306", "three hundred and six", "three hundred six"]
    assert number_forms(42) == ["42", "forty-two"] and number_forms(1204) == ["1204", "1,204"]
    assert number_forms(100) == ["100", "one hundred", "a hundred"] and number_forms(0) == ["0", "zero"]
    assert number_forms(1_000_000) == ["1000000", "1,000,000"]
    for n in [*range(0, 1200), 9999, 10_000, 123_456]:
        forms = number_forms(n)
        assert forms[0] == str(n) and len(set(forms)) == len(forms), n
        for form in forms:
            assert _read_number(form) == n, (n, form)


def test_datetimes_join_a_date_form_and_a_time_form() -> None:
    forms = forms_of("datetime", "2027-01-04 19:15")
    assert forms[0] == "2027-01-04 19:15"
    assert {"Jan 4, 2027 at 7:15 pm", "2027-01-04, quarter past seven in the evening"} <= set(forms)
    assert forms_of("datetime", "2027-01-04T19:15")[0] == "2027-01-04T19:15"
    # the date first: "remind me on {when}" never reads "on 7:15 pm on Jan 4"
    assert not any(f.startswith(("7", "quarter")) for f in forms)
    assert "May 18, 2023 at 10 pm" in forms_of("datetime", "2023-05-18T22:00:00")
    # the ISO date and time joined is the value itself, not another form; zero seconds go unsaid
    assert "2027-01-04 at 19:15" not in forms and "2027-01-04, 19:15" not in forms
    assert all(":00:00" not in f for f in forms_of("datetime", "2027-01-04T00:00:00")[1:])


@pytest.mark.parametrize(
    ("form", "value"),
    [("date", "2027-02-30"), ("date", "Jan 4"), ("time", "9:30"), ("time", "24:00"),
     ("datetime", "2027-01-04"), ("minutes", 0), ("minutes", True), ("minutes", "90"), ("date", 20270104),
     ("number", -3), ("number", True), ("number", 2.5), ("number", "42")],
)  # fmt: skip
def test_a_value_not_of_the_form_is_said_as_it_is(form: str, value: object) -> None:
    assert forms_of(form, value) == [] and say(random.Random(0), form, value) is None


def test_say_mostly_writes_another_form_than_the_tools() -> None:
    rng = random.Random(0)
    said = [say(rng, "date", "2027-01-04") for _ in range(400)]
    verbatim = said.count("2027-01-04") / len(said)
    assert 0.1 < verbatim < 0.3 and len(set(said)) == len(date_forms("2027-01-04"))
    # minutes: the number of minutes about as often (59 has no other form: always a number)
    numeric = [say(rng, "minutes", 90) for _ in range(400)]
    assert 0.1 < sum(w[0].isdigit() and "min" in w for w in numeric) / 400 < 0.3
    assert {say(rng, "minutes", 59) for _ in range(20)} <= {"59 minutes", "59 min", "59 mins"}
    # a number: as digits about one time in two (ids and counts are mostly typed so)
    ids = [say(rng, "number", 1204) for _ in range(400)]
    assert 0.4 < ids.count("1204") / 400 < 0.6 and set(ids) == {"1204", "1,204"}
    assert set(FORMS) == {"date", "time", "datetime", "minutes", "number"}


@pytest.mark.parametrize(
    ("name", "schema", "form"),
    [
        ("day", {"type": "string", "format": "date"}, "date"),
        ("at", {"type": "string", "format": "date-time"}, "datetime"),
        ("at", {"type": "string", "format": "time"}, "time"),
        ("date", {"type": "string", "description": "First day, YYYY-MM-DD."}, "date"),
        ("when", {"type": "string", "description": "Date and time, 'YYYY-MM-DD HH:MM'."}, "datetime"),
        ("start", {"type": "string", "description": "Start (YYYY-MM-DDTHH:MM:SS)"}, "datetime"),
        ("start_time", {"type": "string", "description": "Start time, 24-hour HH:MM."}, "time"),
        ("duration_minutes", {"type": "integer", "description": "Length."}, "minutes"),
        ("timeoutMins", {"type": "integer"}, "minutes"),
        ("prep_time", {"type": "integer", "description": "Time to prepare, in minutes."}, "minutes"),
        # not a date, time or duration: a format string, a clock face, a name, a count of something else
        ("format", {"type": "string", "description": "How to show it (default 'HH:MM:SS')."}, None),
        ("minutes", {"type": "integer", "description": "The minutes on the clock face."}, None),
        ("title", {"type": "string", "description": "Event name."}, None),
        ("days", {"type": "integer", "description": "How many days."}, None),
        ("duration_minutes", {"type": "string", "description": "Length."}, None),
        ("minutes", {"type": "integer", "description": "Minute of the hour, 0-59."}, None),
        ("utc_offset_minutes", {"type": "integer", "description": "Offset from UTC in minutes."}, None),
        ("timeout_minutes", {"type": "integer", "minimum": 0}, None),  # zero is no duration to say
        ("keep", {"type": "string", "description": "Length to keep, as HH:MM."}, None),
    ],
)
def test_the_form_a_schema_names(name: str, schema: dict[str, object], form: str | None) -> None:
    assert schema_form(name, schema) == form


def test_a_unit_after_a_minutes_slot_is_found_and_taken_out() -> None:
    assert units_after("d", "block {d} minutes for it") == ["minutes"]
    assert units_after("d", "{d.2} mins then {d.1}") == ["mins"]
    assert units_after("d", "{d}min free") == ["min"] and units_after("d", "a {d}-minute slot") == ["-minute"]
    # every slot's unit: an adjective after a later slot is not hidden by an earlier plain unit
    assert units_after("d", "{d} min on {date}, a {d}-minute block") == ["min", "-minute"]
    assert units_after("d", "for {d}, minutes later") == [] and units_after("d", "{dd} min") == []
    written = without_unit("d", "{d.1} min and {d.2} Minutes, not {e} minutes")
    assert written == "{d.1} and {d.2}, not {e} minutes"
