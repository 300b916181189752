"""Which answer tokens are argument *values* of a tool call, so their share of the loss can be lowered.

The base model already fills most arguments right when it writes a call as text (BFCL simple_python:
30/40 and 33/40 on two question samples); the adapters trained on generated requests score fewer
(28/40 and 25/40), and turning an adapter down (strength 0.7) gave back value cases while losing calls
to refusals. Generated requests mostly carry each value verbatim, which teaches copying the literal
span ("Los Angeles court", "British Pounds") and dropping a value the text does not spell out. With
``value_loss_weight`` below 1 the value tokens count less in the loss; the call's format, tool name,
parameter names and the decision to call keep their full weight.

A value's span is a scalar inside a ``<tool_call>`` block's ``"arguments"`` object (a string without its
quotes, a number, true/false/null; lists and objects are walked, their brackets, commas and keys stay
structure); a token is a value token when its characters overlap such a span.

The answer's *first* token is the decision: ``<tool_call>`` or the first word of a text answer. It is one
token in ~40 per answer, so refusing a question the offered tool answers (or calling a tool that does
not fit) costs the loss little; ``decision_loss_weight`` above 1 counts it more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from tooltune.training.token_rows import TOOL_CALL_MARKERS

CALL_OPEN, CALL_CLOSE = TOOL_CALL_MARKERS
_DECODER = json.JSONDecoder()


def argument_value_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of every argument value in the ``<tool_call>`` blocks of ``text`` (left to right).
    A block that is not a JSON object with an ``"arguments"`` object contributes nothing."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while (start := text.find(CALL_OPEN, pos)) != -1:
        end = text.find(CALL_CLOSE, start)
        end = len(text) if end == -1 else end
        spans += _call_value_spans(text, start + len(CALL_OPEN), end)
        pos = end + 1
    return spans


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _members(text: str, i: int) -> Iterator[tuple[Any, int, int, Any]]:
    """The members of the JSON object at ``text[i]``: (key, value start, value end, value)."""
    i = _skip_ws(text, i + 1)
    while i < len(text) and text[i] != "}":
        key, i = _DECODER.raw_decode(text, i)
        i = _skip_ws(text, _skip_ws(text, i) + 1)  # past the colon
        value, stop = _DECODER.raw_decode(text, i)
        yield key, i, stop, value
        i = _skip_ws(text, stop)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)


def _items(text: str, i: int) -> Iterator[tuple[int, int, Any]]:
    """The items of the JSON array at ``text[i]``: (start, end, value)."""
    i = _skip_ws(text, i + 1)
    while i < len(text) and text[i] != "]":
        value, stop = _DECODER.raw_decode(text, i)
        yield i, stop, value
        i = _skip_ws(text, stop)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)


def _leaf_spans(text: str, a: int, b: int, value: Any) -> list[tuple[int, int]]:
    """The scalar values inside the JSON value at ``text[a:b]``: a string without its quotes, a number,
    true/false/null. The brackets, commas and keys of lists and objects are structure, not values (an
    adapter trained with list syntax unweighted wrote lists the server could not parse)."""
    if isinstance(value, dict):
        return [span for _, x, y, v in _members(text, a) for span in _leaf_spans(text, x, y, v)]
    if isinstance(value, list):
        return [span for x, y, v in _items(text, a) for span in _leaf_spans(text, x, y, v)]
    return [(a + 1, b - 1)] if isinstance(value, str) else [(a, b)]


def _call_value_spans(text: str, i: int, end: int) -> list[tuple[int, int]]:
    """The value spans of one call's arguments object, read member by member so each value's place is
    known."""
    i = _skip_ws(text, i)
    if i >= end or text[i] != "{":
        return []
    try:
        call, stop = _DECODER.raw_decode(text, i)
        if stop > end or not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
            return []
        at = next(
            a for key, a, _, value in _members(text, i) if key == "arguments" and isinstance(value, dict)
        )
        return [span for _, a, b, value in _members(text, at) for span in _leaf_spans(text, a, b, value)]
    except (json.JSONDecodeError, StopIteration):
        return []


def token_char_ends(tokenizer: Any, tokens: list[int]) -> list[int]:
    """Where each token's text ends in ``tokenizer.decode(tokens)`` (by decoding growing prefixes, so
    merges across token boundaries are the tokenizer's own)."""
    return [len(tokenizer.decode(tokens[: k + 1])) for k in range(len(tokens))]


def value_token_mask(tokenizer: Any, tokens: list[int], start: int) -> np.ndarray:
    """True at the argument-value tokens at or after ``start`` (the answer's first token)."""
    out = np.zeros(len(tokens), dtype=bool)
    answer = tokens[start:]
    spans = argument_value_spans(tokenizer.decode(answer)) if answer else []
    if not spans:
        return out
    begin = 0
    for k, stop in enumerate(token_char_ends(tokenizer, answer)):
        out[start + k] = any(begin < b and a < stop for a, b in spans)
        begin = stop
    return out


def value_token_weights(
    tokenizer: Any,
    tokens: list[int],
    start: int,
    weight: float,
    decision_weight: float = 1.0,
    values: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Per-position loss weights for one sequence: ``weight`` on argument-value tokens at or after
    ``start`` (the answer's first token), ``decision_weight`` on the token at ``start``, 1 elsewhere.
    ``values`` is the sequence's ``value_token_mask`` when the caller already has it.
    Returns the weights and how many tokens got ``weight``."""
    out = np.ones(len(tokens), dtype=np.float32)
    if start < len(tokens):
        out[start] = decision_weight
    if weight == 1.0:
        return out, 0
    if values is None:
        values = value_token_mask(tokenizer, tokens, start)
    out[values] = weight
    return out, int(values.sum())
