"""Units a parameter's description names, and how people write them after a number.

A schema that says "The heat capacity in J/K." or "Mass of the object in kilograms." gets requests like
"a heat capacity of 5J/K" or "a mass of 2 kg": the call's value is still the bare number (5, 2). Without such
requests in training, a model copies the unit into the JSON (``"heat_capacity": 5J/K``), which is not JSON
at all, and the server drops the call.
"""

from __future__ import annotations

import re
from typing import Any

# unit words in descriptions -> the symbol people glue to the number ("300K", "2kg")
UNIT_SYMBOLS = {
    "meters": "m",
    "metres": "m",
    "kilometers": "km",
    "centimeters": "cm",
    "millimeters": "mm",
    "kilograms": "kg",
    "grams": "g",
    "seconds": "s",
    "kelvin": "K",
    "celsius": "°C",
    "fahrenheit": "°F",
    "hertz": "Hz",
    "amperes": "A",
    "coulombs": "C",
    "joules": "J",
    "newtons": "N",
    "watts": "W",
    "volts": "V",
    "liters": "L",
    "litres": "L",
    "pascals": "Pa",
    "atmospheres": "atm",
    "radians": "rad",
    "feet": "ft",
    "pounds": "lbs",
    "miles": "mi",
}
# units people write out after the number ("over 5 years", "for 20 minutes"), with no common symbol
UNIT_WORDS = {"years", "months", "weeks", "days", "hours", "minutes", "inches", "degrees", "pixels", "bytes"}
# "in <unit>": a word, a symbol (J/K, m/s^2, kJ/kg/K), or "<word> per <word>" (beats per minute)
_IN_UNIT = re.compile(r"\bin (?:the )?([A-Za-z°][A-Za-z°/^0-9]*(?: per [a-z]+)?)(?=[.,;)]|\s*$)")
_SYMBOL = re.compile(r"[A-Za-z°]{1,4}(?:[/^][A-Za-z0-9°]+)*")
_NOT_UNITS = {"usd", "dollars", "percent", "percentage", "decimal", "euros"}


def unit_suffixes(schema: dict[str, Any]) -> list[str]:
    """What may follow a number for this parameter: ``["K", " K", " Kelvin"]`` for "...in Kelvin.",
    ``["J/K", " J/K"]`` for "...in J/K.", ``[" years"]`` for "...in years"; ``[]`` when the description
    names no unit (or names money or a percentage, which have their own forms)."""
    desc = str(schema.get("description", ""))
    m = _IN_UNIT.search(desc)
    if m is None:
        return []
    unit = m.group(1)
    low = unit.lower()
    if low in _NOT_UNITS:
        return []
    if low in UNIT_SYMBOLS:
        sym = UNIT_SYMBOLS[low]
        return [sym, f" {sym}", f" {unit}"]
    if low in UNIT_WORDS or " per " in low:
        return [f" {unit}"]
    is_symbol = _SYMBOL.fullmatch(unit) and ("/" in unit or "^" in unit or len(unit) <= 3 or unit.isupper())
    return [unit, f" {unit}"] if is_symbol else []
