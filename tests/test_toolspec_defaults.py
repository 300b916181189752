"""stated_defaults: the default a parameter's schema states, in its ``default`` or in words, as its type.
The phrases are ones BFCL's function descriptions use."""

from __future__ import annotations

from typing import Any

import pytest

from tooltune.toolspec import stated_defaults


@pytest.mark.parametrize(
    ("kind", "description", "want"),
    [
        ("integer", "Number of events to return. Default is 5.", [5]),
        ("integer", "Number of players, default value is 10", [10]),
        ("integer", "Compounding per year. Default is 1 (annual compounding).", [1]),
        ("integer", "How many. Default: 3", [3]),
        ("number", "Permitivity of the space, default is 8.854e-12.", [8.854e-12]),
        ("number", "Optional, default to 0.00.", [0.0]),
        ("string", "Expected price range. Default is 'free'.", ["free"]),
        ("string", "Order of sorting the events. Default is chronological.", ["chronological"]),
        ("string", "The country. Default to United States", ["United States"]),
        ("string", "The location. Default is 'all' if not specified.", ["all"]),
        ("string", "The painting's period. Default ''", [""]),
        ("boolean", "Whether to include stats. Default is false.", [False]),
        ("boolean", "Round the result, defaults to True", [True]),
        ("boolean", "Include the known rate. Default false", [False]),
        ("string", "The unit, one of 'metric' or 'imperial'. Default is 'metric'.", ["metric"]),
        ("array", "List of traits to be retrieved, default is ['strengths'].", [["strengths"]]),
        ("integer", "Duration of the slot. Default is 60 minutes.", [60]),
        ("integer", "Tempo. Defaults to 120 beats per minute.", [120]),
        ("number", "Acceleration. Default is 9.8 m/s^2.", [9.8]),
        ("integer", "Face value of the bond, default is $1000.", [1000]),
        ("number", "Speed of light, default is 299792458 m/s", [299792458.0]),
        ("string", "The slot's length. Default is 60 minutes.", ["60 minutes"]),
        ("number", "Magnetic constant (default is 1.0 for free space, optional)", [1.0]),
        ("integer", "Initial speed in m/s. Default is 0 for an object at rest.", [0]),
    ],
)
def test_a_default_stated_in_words_is_read_as_the_parameters_type(
    kind: str, description: str, want: list[Any]
) -> None:
    assert stated_defaults({"type": kind, "description": description}) == want


@pytest.mark.parametrize(
    ("kind", "description"),
    [
        ("string", "The email address to blind carbon copy. Default is empty if not specified."),
        ("string", "Maker of the instrument. Default to not use if not specified."),
        ("string", "The season. Default is the current season."),
        ("integer", "Default is 2.5."),  # not an integer
        ("boolean", "Default is yes."),
        ("array", "The hotel's amenities. Default is empty array"),
        ("string", "The city to search in."),
        ("string", "The state. Default is 0 for an object at rest."),  # a number in words: no string
        ("number", "Speed of light. Default is 3 * 10^8 m/s"),
        ("number", "Permeability, default value is 4*pi*10^-7."),
        ("number", "Permittivity. Default is 8.854 x 10^-12 F/m"),
        ("integer", "Threads. Default is 2 times the number of CPU cores."),
        ("integer", "Quota. Default is 10 for free accounts and 50 for paid ones."),
        ("integer", "Start year. Default is 10 years before the end year."),
        ("integer", "Offset. Default is 1 less than the total count."),
        ("number", "Rate. Default is 5 percent."),
        ("integer", "Budget in dollars. Default is 1,000."),  # not 1
        ("string", "The currency; the default currency is used when left out."),
        ("string", "The unit system, metric by default if not specified."),
        ("string", "Output format. Defaults: see docs."),
    ],
)
def test_words_that_name_no_value_of_the_type_give_no_default(kind: str, description: str) -> None:
    assert stated_defaults({"type": kind, "description": description}) == []


def test_a_schema_default_wins_over_words_and_non_schemas_have_none() -> None:
    assert stated_defaults({"type": "string", "default": "km", "description": "Default is 'miles'."}) == [
        "km"
    ]
    assert stated_defaults({"type": "object", "default": {"a": 1}}) == [{"a": 1}]
    assert stated_defaults("not a schema") == []
