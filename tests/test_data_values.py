"""Argument values from the schema's own words: description examples, typed banks, wh-questions."""

from __future__ import annotations

import random

import pytest

from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.phrasing import mentions_all, request_text, task_phrase, wh_question
from tooltune.data.samplers import GENERIC_WORDS, MUSIC_KEYS, STOCK_INDEXES, sample_value
from tooltune.data.value_hints import description_examples
from tooltune.toolspec import ToolSpec


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("The root of the scale, e.g., 'C', 'F#', 'Ab'.", ["C", "F#", "Ab"]),
        ("Choices are 'trapezoid' or 'simpson'. Default is 'trapezoid'.", ["trapezoid", "simpson"]),
        ("The medium of the painting, such as oil, acrylic, etc.", ["oil", "acrylic"]),
        ("The musical scale to be used. E.g: C Major, A Minor, etc.", ["C Major", "A Minor"]),
        ("The city and state, e.g. Los Angeles, CA", ["Los Angeles, CA"]),
        ("The level of detail, either summary or full.", ["summary", "full"]),
        ("The platform, e.g. PC, Xbox, Playstation", ["PC", "Xbox", "Playstation"]),
        # an apostrophe is not a quote; a format is not a value; no marker, no examples
        ("The discovery for which the discoverer's information is needed.", []),
        ("Specific season in format 'YYYY-YYYY'.", []),
        ("The check-in date in the format YYYY-MM-DD.", []),
        ("Type of food like Sushi.", []),
        # where the value comes from is no example of one; a value that starts with a preposition still is
        ("Id of the note, e.g. from search_notes.", []),
        (
            "Status of the report, could be 'in progress', 'concluded' or 'draft'.",
            ["in progress", "concluded", "draft"],
        ),
        ("", []),
    ],
)
def test_description_examples(description: str, expected: list[str]) -> None:
    assert description_examples(description) == expected


def test_string_values_come_from_description_examples_and_banks() -> None:
    rng = random.Random(0)
    key = {"type": "string", "description": "The root of the scale, e.g., 'C', 'F#', 'Ab'."}
    keys = {sample_value(rng, "key", key) for _ in range(60)}
    assert keys <= {"C", "F#", "Ab", *MUSIC_KEYS} and {"F#", "Ab"} & keys
    bare_key = {"type": "string", "description": "The key of the melody."}
    assert {sample_value(rng, "key", bare_key) for _ in range(30)} <= set(MUSIC_KEYS)
    # before v4 these fell through to filler words ("cedar") for lack of a matching name word
    medium = {"type": "string", "description": "The medium of the painting, such as oil, acrylic, etc."}
    assert {sample_value(rng, "medium", medium) for _ in range(40)} & {"oil", "acrylic"}
    museum = sample_value(rng, "museum_name", {"type": "string", "description": "The name of the museum."})
    assert museum.endswith(" Museum")  # a museum's name, not a person's
    assert sample_value(rng, "player_name", {"type": "string"}).count(" ") >= 1
    season = {"type": "string", "description": "The season for which data should be fetched."}
    for _ in range(20):
        v = sample_value(rng, "season", season)
        assert v[:4].isdigit() and v not in GENERIC_WORDS


def test_array_items_are_singular_and_inherit_the_array_description() -> None:
    rng = random.Random(1)
    indexes = {"type": "array", "items": {"type": "string"}, "description": "Stock market indexes."}
    for _ in range(10):  # "indexes" -> "index"; the market context comes from the array's description
        assert set(sample_value(rng, "indexes", indexes)) <= set(STOCK_INDEXES)
    diets = {"type": "array", "items": {"type": "string"}, "description": "Diets, e.g. 'vegan', 'keto'."}
    seen = {d for _ in range(20) for d in sample_value(rng, "diets", diets)}
    assert seen & {"vegan", "keto"}


def _tool(description: str, **props: dict) -> ToolSpec:
    return ToolSpec(
        name="history.get_president",
        description=description,
        parameters={"type": "object", "properties": props, "required": list(props)},
    )


def test_wh_question_forms() -> None:
    rng = random.Random(0)
    assert wh_question(rng, "the name of the U.S. president in a year")[1] == "the U.S. president in a year"
    who = wh_question(rng, "the scientist's name who is credited for a discovery")
    assert who is not None and who[0].startswith("Who") and who[1] == "the scientist credited for a discovery"
    much = wh_question(rng, "the current price for a metal")
    assert much is not None and much[0].startswith("How much")
    assert wh_question(rng, "a list of the best sushi places") == ("Which are", "the best sushi places")
    assert wh_question(rng, "the criminal records of a person") is None  # the person is not the answer
    assert wh_question(rng, "the area of a triangle") is None


def test_wh_questions_reach_generated_calls_with_every_value_mentioned() -> None:
    tool = _tool(
        "Retrieve the name of the U.S. president in a given year.",
        year={"type": "integer", "description": "The year in question."},
    )
    assert task_phrase(tool).question_ok
    rng = random.Random(2)
    texts = [request_text(rng, tool, {"year": 1861}) for _ in range(80)]
    assert any(t.split(": ")[-1].split(", ")[-1].lower().startswith(("who", "who's")) for t in texts)
    assert all(mentions_all(t, {"year": 1861}) for t in texts)
    res = generate_examples([tool], GenerateConfig(n=60, seed=3, kinds=["single"]))
    who_calls = [e for e in res.examples if "who" in e.user_texts()[0].lower() and e.calls()]
    assert who_calls, "no generated wh-question was answered with a call"


def test_dates_and_times_take_the_shape_their_description_gives() -> None:
    import re

    rng = random.Random(0)

    def drawn(name: str, description: str) -> set[str]:
        return {sample_value(rng, name, {"type": "string", "description": description}) for _ in range(20)}

    # a bare date was drawn here before generator 12: a value set_reminder cannot take
    when = drawn("when", "Date and time, 'YYYY-MM-DD HH:MM' (24-hour).")
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", v) for v in when), when
    assert all(
        re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:00", v) for v in drawn("start", "(YYYY-MM-DD HH:MM:SS)")
    )
    assert all(
        re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", v) for v in drawn("at", "UTC, YYYY-MM-DDTHH:MM")
    )
    assert all(
        re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", v) for v in drawn("due", "The date and time it is due")
    )
    # a description that names the format makes a date whatever the name says (was a filler word)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in drawn("when", "Day, YYYY-MM-DD."))
    # the name decides first: a description that mentions a date does not make one of an address or zone
    assert all(
        "@" in v for v in drawn("email", "Address to notify; the report is sent on a YYYY-MM-DD schedule")
    )
    assert all("/" in v or v == "UTC" for v in drawn("timezone", "IANA timezone used for the date and time"))
    # a time the name asks for stays a time; a name saying "time" whose description shapes a date-time
    # gets one
    assert all(
        re.fullmatch(r"\d{2}:\d{2}", v) for v in drawn("time", "Time of day HH:MM on the date (YYYY-MM-DD)")
    )
    start = drawn("start_time", "Start time for the period (YYYY-MM-DD HH:MM:SS)")
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:00", v) for v in start)
    # a schema's own format keeps its ISO form
    iso = {"type": "string", "format": "date-time", "description": "date and time"}
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:00:00", sample_value(rng, "t", iso)) for _ in range(10))
