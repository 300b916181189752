"""JSON values embedded in free text: what both text-call parsers (the agent's lenient recovery and the
eval's lenient scoring) scan model answers for."""

from __future__ import annotations

import json
from typing import Any


def json_spans(text: str) -> list[tuple[int, int, Any]]:
    """Every top-level JSON object or array in ``text``: ``(start, end, value)``, left to right. Text
    that only starts like JSON (``{not json}``) is skipped one character at a time."""
    decoder = json.JSONDecoder()
    spans: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            spans.append((i, end, value))
            i = end
        else:
            i += 1
    return spans
