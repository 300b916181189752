"""Written forms of argument values: what a request may say for a number, and what the call must hold."""

from __future__ import annotations

import random

import pytest

from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.phrasing import (
    format_number,
    inline_values,
    leaf_forms,
    mentions_all,
    number_words,
    percent_form,
    request_text,
    roles_swapped,
    task_phrase,
    value_forms,
)
from tooltune.data.samplers import CITY_FULL, CITY_OF_FULL, CURRENCY_NAMES, number_kind, sample_value
from tooltune.data.units import unit_suffixes
from tooltune.toolspec import ToolSpec

DECIMAL_RATE = {"type": "number", "description": "The annual interest rate in decimal form. E.g. 5% is 0.05"}
PERCENT_RATE = {"type": "number", "description": "The interest rate for a year as a percentage."}
PAYOUT = {"type": "integer", "description": "The total dividend payout in USD."}
SHARES = {"type": "integer", "description": "The total number of outstanding shares."}
YEAR = {"type": "integer", "description": "The year of the season."}


def test_number_words_and_percent() -> None:
    assert number_words(2_000_000) == "2 million"
    assert number_words(2_500_000) == "2.5 million"
    assert number_words(3_000_000_000) == "3 billion"
    assert number_words(1_234_567) is None and number_words(15_000) is None
    assert percent_form(0.05) == "5%" and percent_form(0.035) == "3.5%" and percent_form(0.07) == "7%"
    assert value_forms(10_000_000) == ["10000000", "10,000,000", "10 million"]
    assert value_forms(0.05) == ["0.05", "5%"]
    assert value_forms(2012) == ["2012", "2,012"]  # accepted, but see the rendering test: never produced
    assert leaf_forms({"a": [1, "x"], "b": True}) == [["1"], ["x"]]


def test_mentions_all_accepts_written_forms_and_catches_copy_errors() -> None:
    assert mentions_all("equity of $10,000,000 and income 2 million", {"e": 10_000_000, "i": 2_000_000})
    assert mentions_all("an annual rate of 5%", {"rate": 0.05})
    # the 0.5B model's own mistake on BFCL: "$10,000,000" copied as 1000000 -- the check must tell them apart
    assert not mentions_all("equity of $1,000,000", {"e": 10_000_000})
    assert not mentions_all("a rate of 50%", {"rate": 0.05})


@pytest.mark.parametrize(
    ("name", "schema", "kind"),
    [
        ("interest_rate", DECIMAL_RATE, "decimal_rate"),
        ("annual_rate", PERCENT_RATE, "percent_rate"),
        ("total_payout", PAYOUT, "money"),
        ("outstanding_shares", SHARES, "big_count"),
        ("season_year", YEAR, None),
        ("growth_rate_count", {"type": "integer", "description": "number of rates"}, None),
    ],
)
def test_number_kind(name: str, schema: dict, kind: str | None) -> None:
    assert number_kind(name, schema) == kind


def test_rendered_numbers_map_back_to_exactly_the_value() -> None:
    rng = random.Random(0)
    seen: set[str] = set()
    for name, schema in [
        ("total_payout", PAYOUT),
        ("outstanding_shares", SHARES),
        ("interest_rate", DECIMAL_RATE),
    ]:
        for _ in range(300):
            v = sample_value(rng, name, schema)
            text = format_number(rng, v, name, schema)
            assert any(f in text for f in value_forms(v)), (v, text)
            seen.add(
                "$"
                if text.startswith("$")
                else ","
                if "," in text
                else "million"
                if "million" in text
                else "%"
                if text.endswith("%")
                else "plain"
            )
    assert seen == {"$", ",", "million", "%", "plain"}
    rates = [sample_value(rng, "interest_rate", DECIMAL_RATE) for _ in range(200)]
    assert all(0 < r <= 0.15 for r in rates)  # a decimal, as its description asks -- "5%" is 0.05
    for _ in range(200):  # years and small counts are never written with separators
        y = sample_value(rng, "season_year", YEAR)
        assert format_number(rng, y, "season_year", YEAR) == str(y)


def test_generated_requests_use_written_forms() -> None:
    tools = [
        ToolSpec(
            name="finance.compound_interest",
            description="Calculate compound interest on an investment.",
            parameters={
                "type": "object",
                "properties": {
                    "principal": PAYOUT,
                    "interest_rate": DECIMAL_RATE,
                    "years": {"type": "integer"},
                },
                "required": ["principal", "interest_rate", "years"],
            },
        ),
        ToolSpec(
            name="get_weather",
            description="Get the current weather in a location.",
            parameters={
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. Boston, MA"}
                },
                "required": ["location"],
            },
        ),
    ]
    res = generate_examples(tools, GenerateConfig(n=200, seed=4, kinds=["single"]))
    texts = {e.calls()[0]["name"]: [] for e in res.examples}
    for e in res.examples:
        call = e.calls()[0]
        texts[call["name"]].append((e.user_texts()[0], call["arguments"]))
    interest = texts["finance.compound_interest"]
    assert any(percent_form(a["interest_rate"]) in t for t, a in interest)
    assert any("$" in t for t, a in interest)
    weather = texts["get_weather"]
    assert {a["location"] for _, a in weather} <= set(CITY_FULL.values())  # "city and state" asks for both


@pytest.mark.parametrize(
    ("description", "suffixes"),
    [
        ("The initial temperature in Kelvin.", ["K", " K", " Kelvin"]),
        ("Mass of the object in kilograms", ["kg", " kg", " kilograms"]),
        ("The heat capacity in J/K.", ["J/K", " J/K"]),
        ("Acceleration in m/s^2.", ["m/s^2", " m/s^2"]),
        ("The duration of the investment in years.", [" years"]),
        ("Heart rate in beats per minute.", [" beats per minute"]),
        # no unit: money and percentages have their own forms, and "in motion"/"in stock" are not units
        ("The principal amount in USD.", []),
        ("The rate in percentage.", []),
        ("Whether the body is in motion.", []),
        ("The number of items in stock.", []),
        ("The year in which it was built", []),
    ],
)
def test_unit_suffixes_come_from_the_description(description: str, suffixes: list[str]) -> None:
    assert unit_suffixes({"type": "integer", "description": description}) == suffixes


def test_numbers_with_units_still_map_back_to_the_bare_value() -> None:
    """ "300K" / "5 J/K" in the request, 300 / 5 in the call: the value form is still in the text."""
    rng = random.Random(1)
    for name, desc in [("initial_temp", "Temperature in Kelvin."), ("heat_capacity", "C in J/K.")]:
        schema = {"type": "integer", "description": desc}
        units = unit_suffixes(schema)
        texts = [format_number(rng, v, name, schema) for v in range(1, 200)]
        with_unit = [t for t in texts if any(t.endswith(u) for u in units)]
        assert 0.3 < len(with_unit) / len(texts) < 0.7, len(with_unit)
        for v, t in zip(range(1, 200), texts, strict=True):
            assert t == str(v) or any(t == f"{v}{u}" for u in units), t
            assert mentions_all(t, {name: v})


def test_currency_codes_may_be_named_and_the_call_keeps_the_code() -> None:
    convert = _tool(
        "currency.convert",
        "Convert an amount from one currency to another.",
        {
            "base_currency": {"type": "string", "description": "The currency to convert from."},
            "target_currency": {"type": "string", "description": "The currency to convert to."},
            "amount": {"type": "integer"},
        },
    )
    res = generate_examples([convert], GenerateConfig(n=120, seed=3, kinds=["single"]))
    named = 0
    for e in res.examples:
        text, args = e.user_texts()[0], e.calls()[0]["arguments"]
        for key in ("base_currency", "target_currency"):
            assert args[key] in CURRENCY_NAMES  # the call holds the ISO code, always
            names = CURRENCY_NAMES[args[key]]
            assert args[key] in text or any(n in text for n in names), (text, args)
            named += args[key] not in text
    assert named > 10  # "Canadian dollars" for CAD does occur
    assert mentions_all("500 Canadian dollars in euros", {"a": "CAD", "b": "EUR"})
    assert not mentions_all("500 Canadian dollars in euros", {"a": "AUD", "b": "EUR"})


def test_city_state_forms_follow_the_schema() -> None:
    """A schema that asks for "City, ST" gets it in the call even when the request names the city only; a
    plain place parameter keeps whatever the request gives, a full form whole and never shortened."""
    wants_full = _tool(
        "weather", "Get the weather.", {"location": {"type": "string", "description": "e.g. Boston, MA"}}
    )
    plain = _tool(
        "drive", "Plan a drive.", {"start_location": {"type": "string", "description": "Where to start."}}
    )
    short = full = 0
    for tool in (wants_full, plain):
        res = generate_examples([tool], GenerateConfig(n=150, seed=2, kinds=["single"]))
        for e in res.examples:
            text, args = e.user_texts()[0], e.calls()[0]["arguments"]
            value = next(iter(args.values()))
            if tool is wants_full:
                assert value in CITY_FULL.values()
                short += value not in text and CITY_OF_FULL[value] in text
            else:
                assert value in text, (text, value)  # never shortened without the schema asking
                full += value in CITY_FULL.values()
    assert short > 15 and 5 < full < 60, (short, full)


def _tool(name: str, description: str, properties: dict) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        parameters={"type": "object", "properties": properties, "required": list(properties)},
    )


CONVERT = _tool(
    "units.convert",
    "Convert a quantity from a source unit to a target unit.",
    {
        "quantity": {"type": "number"},
        "source_unit": {"type": "string"},
        "target_unit": {"type": "string"},
    },
)
LEADER = _tool(
    "leader_during_event",
    "Returns the national leader during a specified historical event.",
    {"event": {"type": "string", "description": "The historical event."}},
)
CIRCLE = _tool(
    "geometry.circumference",
    "Calculate the circumference of a circle with a radius.",
    {"radius": {"type": "integer"}},
)


@pytest.mark.parametrize(
    ("tool", "args", "expected", "used"),
    [
        (
            CONVERT,
            {"quantity": 12, "source_unit": "miles", "target_unit": "kilometers"},
            "12 from miles to kilometers",
            {"quantity", "source_unit", "target_unit"},
        ),
        (LEADER, {"event": "the Gold Rush"}, "the national leader during the Gold Rush", {"event"}),
        # a number keeps its noun: "a circle with 7" would not say what 7 is
        (CIRCLE, {"radius": 7}, "the circumference of a circle with a radius of 7", {"radius"}),
    ],
)
def test_inline_values_puts_values_where_the_phrase_names_them(
    tool: ToolSpec, args: dict, expected: str, used: set[str]
) -> None:
    obj, names = inline_values(random.Random(0), task_phrase(tool).obj, tool, args)
    assert obj == expected
    assert names == used


@pytest.mark.parametrize(
    ("description", "properties", "args"),
    [
        # "measure" follows "and": replacing "a metal and measure" would drop the metal
        (
            "Retrieve the current price for a metal and measure.",
            {"metal": {"type": "string"}, "measure": {"type": "string"}},
            {"measure": "ounce"},
        ),
        # "population" is not the end of "the population density"
        (
            "Get the population density of a region.",
            {"population": {"type": "integer"}},
            {"population": 5000},
        ),
        # a one-letter parameter is not its article's noun ("the roots of a quadratic equation")
        ("Find the roots of a quadratic equation.", {"a": {"type": "integer"}}, {"a": 3}),
        # a number cannot stand in for "a range of rounds"
        ("Get scores for a team within a range of rounds.", {"rounds": {"type": "integer"}}, {"rounds": 4}),
        # the phrase is the whole object: "Get Alice" would lose the task
        ("Get the author.", {"author": {"type": "string"}}, {"author": "Alice"}),
    ],
)
def test_inline_values_leaves_phrases_it_would_break(description: str, properties: dict, args: dict) -> None:
    tool = _tool("t", description, properties)
    obj = task_phrase(tool).obj
    assert inline_values(random.Random(0), obj, tool, args) == (obj, set())


def test_requests_inline_values_in_some_and_still_mention_every_value() -> None:
    args = {"quantity": 12, "source_unit": "miles", "target_unit": "kilometers"}
    texts = [request_text(random.Random(seed), CONVERT, args) for seed in range(60)]
    inlined = [t for t in texts if "12 from miles to kilometers" in t]
    assert 10 < len(inlined) < 50  # about half
    assert all(mentions_all(t, args) for t in texts)
    assert not any("source unit" in t for t in inlined)  # an inlined value is not repeated as a slot
    leader = [request_text(random.Random(seed), LEADER, {"event": "the Gold Rush"}) for seed in range(40)]
    assert any(t.startswith(("Who was", "Who is", "Who's")) and "during the Gold Rush?" in t for t in leader)


TRIANGLE = {"base": 43, "height": 49, "unit": "cm"}
MOTION = {"initial_velocity": 10, "acceleration": 3, "time": 5}
RANGE = {"start_range": 3.3, "end_range": 29.7}


@pytest.mark.parametrize(
    ("text", "args", "swapped"),
    [
        ("the area of a triangle with a height of 49 and base of 43", TRIANGLE, False),
        ("the area of the triangle with a base of 49 cm and a height of 43 cm?", TRIANGLE, True),
        # value first, or no name before it: no evidence either way
        ("a height of the triangle of 49 and 43 as the base of the triangle", TRIANGLE, False),
        ("height 49 and 43 base", TRIANGLE, False),
        ("What is the random number between 73 and 23?", {"mu": 73, "sigma": 23}, False),
        # linking words and written forms: "set to", ":", "$5 million"
        ("compound interest: time 24, principal: $5 million", {"principal": 5000000, "time": 24}, False),
        ("compound interest: time $5 million, principal: 24", {"principal": 5000000, "time": 24}, True),
        ("initial velocity 10 and acceleration 3 for 5 seconds", MOTION, False),
        ("an initial velocity of 214 and the time 55", {"initial_velocity": 55, "time": 214}, True),
        # the name's most words decide: "end range" is end_range, though both names say "range"
        ("a sine wave with end range set to 3.3 and start range 29.7", RANGE, True),
        ("a sine wave with start range set to 3.3 and end range 29.7", RANGE, False),
        ("Who was the U.S. president during the Civil War?", {"event": "Civil War"}, False),
    ],
)
def test_roles_swapped_catches_a_value_after_another_parameters_name(
    text: str, args: dict, swapped: bool
) -> None:
    assert roles_swapped(text, args) is swapped


def test_teacher_rewrite_that_swaps_roles_is_dropped() -> None:
    """The generator hands the role check to the teacher: a rewrite that keeps both numbers but swaps
    them ("a base of 49" for height 49) is retried, then dropped and counted."""
    import json as _json

    import httpx

    from tooltune.data.generate import generate_examples
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.data.teacher import Teacher
    from tooltune.toolspec import ToolSpec

    tool = ToolSpec(
        name="triangle_area",
        description="Calculate the area of a triangle.",
        parameters={
            "type": "object",
            "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
            "required": ["base", "height"],
        },
    )

    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        values = _json.loads(request.content)["messages"][-1]["content"].split("\n")[0]
        a, b = [v.strip("'") for v in values.removeprefix("Values: ").split("; ")]
        if len(calls) % 3:  # two calls in three put the two values the other way round
            a, b = b, a
        calls.append(1)
        out = f"What is the area of a triangle with a base of {a} and a height of {b}?"
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": out}}]})

    teacher = Teacher("http://t.test/v1", "t", client=httpx.Client(transport=httpx.MockTransport(handler)))
    cfg = GenerateConfig(n=40, seed=1, kinds=["single"], teacher_share=1.0, teacher_tries=2)
    res = generate_examples([tool], cfg, teacher=teacher)
    st = res.teacher
    assert st is not None and st.dropped_roles_swapped > 0 and st.kept > 0
    assert st.asked == st.kept + st.dropped_values_lost + st.dropped_not_a_request + st.dropped_roles_swapped
    for ex in res.examples:  # every kept rewrite says the right numbers after the right names
        call = ex.messages[-1]["tool_calls"][0]["function"]["arguments"]
        args = _json.loads(call) if isinstance(call, str) else call
        text = ex.user_texts()[0]
        if text.startswith("What is the area"):
            assert f"base of {args['base']} " in text and f"height of {args['height']}?" in text


def test_no_request_says_please_twice() -> None:
    """A lead-in, a template and a tail each may say "please"; a request says it once at most (generator
    12 wrote "Ok, please run pip list please" in about 1% of coding requests, and read-back requests such
    as "Please change fields of an existing issue with issue id of 49 please")."""
    import re

    from tooltune.data.polish import join_requests, polish
    from tooltune.data.tool_sources import load_tool_specs

    rng = random.Random(0)
    said = [polish(rng, t, verbs={"run", "open"}) for t in ["please run pip list", "run pip list"] * 400]
    assert all(len(re.findall(r"\bplease\b", s, re.I)) <= 1 for s in said)
    assert sum("please" in s.lower() for s in said) > 400  # the template's own please is kept
    assert any(s.lower().startswith("please run") for s in said[1::2])  # a lead-in please still comes
    asks = ["please run ls", "please run pwd"]
    joined = [join_requests(rng, asks, verbs={"run"}) or "" for _ in range(200)]
    assert all(len(re.findall(r"\bplease\b", s, re.I)) == 1 for s in joined)
    assert all("run pwd" in s for s in joined)
    for spec in ("builtin:coding", "builtin:issue-tracker"):
        res = generate_examples(load_tool_specs([spec]), GenerateConfig(n=400, seed=3))
        asks = [m["content"] for e in res.examples for m in e.messages if m["role"] == "user"]
        asks = [a for a in asks if a]
        assert len(asks) > 300
        assert [a for a in asks if len(re.findall(r"\bplease\b", a, re.I)) > 1] == []
        assert sum(bool(re.search(r"\bplease\b", a, re.I)) for a in asks) > 10
