"""A drafted tool entry read and checked: what a model wrote for one tool (the JSON object of its reply)
becomes the tool's part of a phrasebook, checked like a hand-written one, with what was dropped counted
(:class:`ToolDraft`). Several drafts of one tool merge into one entry (:func:`merged_entry`).

Models write the format loosely: items of an array parameter where whole values are due, ranges in
whole floats, dates that are no dates, "{d} minutes" after a slot whose form writes its own unit. What can
be read is read; what cannot is dropped and counted, so a careless draft costs entries, never bad data.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from tooltune.data.phrasebook import (
    SLOT,
    BookText,
    CheckedBook,
    Phrasebook,
    Range,
    ResultShape,
    ToolPhrases,
    ValueSpec,
    slots,
)
from tooltune.data.phrasebook_check import check_phrasebook
from tooltune.data.phrasebook_fill import drop_unfillable
from tooltune.data.spoken_forms import FORMS, forms_of, schema_form, units_after, without_unit
from tooltune.json_spans import json_spans
from tooltune.toolspec import ToolSpec, schema_types

_VALUE_SPEC: TypeAdapter[Any] = TypeAdapter(ValueSpec)


class ToolDraft(BaseModel):
    """What became of one tool's draft: entries kept, dropped (and the first reasons), tries used."""

    tool: str
    tries: int = 0
    unreadable: int = 0  # replies with no JSON object of the right shape
    failed: int = 0  # tries whose request failed (the endpoint's error or a timeout; in reasons)
    ran_on: int = 0  # replies that never closed their entry (ran on, or hit the token limit): requests read
    kept: dict[str, int] = Field(default_factory=dict)
    dropped: int = 0
    reasons: list[str] = Field(default_factory=list)


def reply_entry(reply: str) -> dict[str, Any] | None:
    """The reply's JSON object for the tool (the first with a "requests" list), read with its bare slots
    quoted (:func:`quoted_slots`) where it does not parse as written (checked on every streamed piece:
    the quoting is done only then)."""
    for value in _entries(reply):
        return value
    quoted = quoted_slots(reply)
    for value in _entries(quoted) if quoted != reply else ():
        return value
    return None


def _entries(text: str) -> Iterator[dict[str, Any]]:
    for _, _, value in json_spans(text):
        if isinstance(value, dict) and isinstance(value.get("requests"), list):
            yield value


def quoted_slots(text: str) -> str:
    """``text`` with each slot written as a bare JSON value quoted: models write a result shape's number
    or list as ``"duration_minutes": {duration_minutes}``, which no JSON reader takes, so the whole reply
    (or, cut off, everything after the slot) would be lost. Slots inside strings are left alone."""
    found = list(SLOT.finditer(text))
    if not found:
        return text
    outside = {i for i, _ in _outside_strings(text)}

    def neighbour(at: int, step: int) -> str:  # the nearest character that is not white space, or ""
        while 0 <= at < len(text) and text[at].isspace():
            at += step
        return text[at] if 0 <= at < len(text) else ""

    out, last = [], 0
    for m in found:
        a_value = m.start() in outside and neighbour(m.start() - 1, -1) in (":", "[", ",")
        after = neighbour(m.end(), 1)
        if a_value and after in (",", "]", "}", ""):  # "": the reply cut off there
            out += [text[last : m.start()], f'"{m.group(0)}"']
            last = m.end()
    return "".join(out) + text[last:]


_REQUESTS_KEY = re.compile(r'"requests"\s*:\s*(?=\[)')


def _outside_strings(text: str) -> Iterator[tuple[int, str]]:
    """Each character of ``text`` outside JSON strings, with its index (a string's opening quote is
    outside it; an escaped quote does not end one)."""
    in_string, escaped = False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        in_string = ch == '"'
        yield i, ch


def _top_level_keys(text: str) -> list[tuple[int, int]]:
    """For each ``"requests": [`` in ``text`` that is a key of a top-level object, where that object
    starts and where the list starts: one inside a string, a nested object or a list (a ``requests``
    parameter's values) is none."""
    list_at = {m.start(): m.end() for m in _REQUESTS_KEY.finditer(text)}
    found: list[tuple[int, int]] = []
    depth, opened = 0, 0
    for i, ch in _outside_strings(text):
        if depth == 1 and i in list_at and text[opened] == "{":
            found.append((opened, list_at[i]))
        if ch in "{[":
            opened = i if depth == 0 else opened
            depth += 1
        elif ch in "}]":
            depth = max(0, depth - 1)
    return found


_QUOTED = re.compile(
    r"""(?<![A-Za-z0-9])'([^'{}\n]{1,60})'(?![A-Za-z0-9])|"([^"{}\n]{1,60})"|‘([^’{}\n]{1,60})’|“([^”{}\n]{1,60})”"""
)


def slotted_request(request: str, tool: ToolSpec) -> tuple[str, str, str] | None:
    """A request that says one required text parameter's value in quotes instead of its slot ("search my
    notes for 'travel'", where ``{query}`` was asked), read as the template it meant and the value it
    gave: ``("search my notes for '{query}'", "query", "travel")``. Only where exactly one required
    parameter has no slot, it takes a string, and the request quotes exactly one thing (an apostrophe
    inside a word opens no quote). None otherwise, or when nothing is missing."""
    said = {name for name, index, _ in slots(request) if index is None}
    missing = [r for r in tool.required if r not in said]
    if len(missing) != 1:
        return None
    schema = (tool.parameters.get("properties") or {}).get(missing[0])
    if not isinstance(schema, dict) or "string" not in schema_types(schema) or schema.get("enum"):
        return None
    quoted = list(_QUOTED.finditer(request))
    if len(quoted) != 1:
        return None
    m = quoted[0]
    group = next(i for i in range(1, 5) if m.group(i) is not None)
    value = m.group(group)
    if not value.strip():
        return None
    template = request[: m.start(group)] + "{" + missing[0] + "}" + request[m.end(group) :]
    return template, missing[0], value


def doomed_reply(text: str, tool: ToolSpec) -> tuple[str, int] | None:
    """Why a reply can give ``tool`` no usable entry, known from its start, and how many requests it
    wrote: the ``requests`` list of its first object is complete and not one request has a slot for
    every required parameter (a request template is what an entry is used for, so the rest of the reply
    would be read in vain). None while that cannot be told (the list not yet closed, or not readable as
    JSON) or when one request could still pass."""
    required = list(tool.required)
    found = _top_level_keys(text)
    if not required or not found:
        return None
    try:
        requests, _ = json.JSONDecoder().raw_decode(text, found[0][1])
    except json.JSONDecodeError:
        return None
    texts = [r for r in requests if isinstance(r, str)]
    said = [{name for name, index, _ in slots(r) if index is None} for r in texts]
    if any(set(required) <= names for names in said) or any(slotted_request(r, tool) for r in texts):
        return None
    return (
        f"no request has a slot for every required parameter of {tool.name} "
        f"({', '.join('{' + r + '}' for r in required)}); the rest of the reply was not read",
        len(requests),
    )


MAX_DRAFT_REQUESTS = 16
"""A drafted ``requests`` list longer than this has run on (a draft asks for 10)."""
MAX_TEMPLATE_CHARS = 300
"""A drafted request longer than this has run on (people ask in a sentence or two)."""
MAX_DRAFT_CHARS = 4000
"""A draft reply longer than this has run on, whatever its shape, for a tool of up to 8 parameters (each
further parameter allows :data:`CHARS_PER_PARAMETER` more, for its values): the longest reply that
closed and parsed in the measured drafts was 2,049 characters, for a tool of 6 (docs/PHRASEBOOKS.md,
H16-H19)."""
CHARS_PER_PARAMETER = 500
MAX_LIST_ITEMS = 48
"""A list of a draft with more items than this has run on: a model can count up or down a list of dates
until the token limit, no loop and few characters (a digit is a token). Values are asked 8 a parameter;
the longest list of a reply that closed in the measured drafts had 31 items (``days`` written out one
by one); the lists that ran on reached 83 to 429 (docs/PHRASEBOOKS.md, H16-H19)."""
LOOP_CHARS = 80
"""A stretch of reply this long written a third time is a loop (no part of a draft repeats so much)."""


class WrittenRequests(NamedTuple):
    """A reply's ``requests`` list as far as it is written."""

    items: list[Any]  # the items written whole
    closed: bool
    open_chars: int  # how long the item being written is so far (0 when none is)


def requests_so_far(text: str) -> WrittenRequests | None:
    """The first top-level object's ``requests`` list as far as ``text`` has it; None before its key."""
    found = _top_level_keys(text)
    if not found:
        return None
    decoder, items, at = json.JSONDecoder(), [], found[0][1] + 1
    while True:
        while at < len(text) and text[at] in " \t\r\n,":
            at += 1
        if at >= len(text) or text[at] == "]":
            return WrittenRequests(items, at < len(text), 0)
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return WrittenRequests(items, False, len(text) - at)
        items.append(value)


def ran_on(text: str, tool: ToolSpec | None = None) -> str | None:
    """How a reply shows that the model is repeating itself rather than drafting (a small model may write
    one request forever, or the same one or the same values again and again, until the token limit):
    anywhere in the reply, a stretch of text written a third time (:func:`repeats_itself`), or more than
    :data:`MAX_DRAFT_CHARS` characters in all (more for a ``tool`` of many parameters), or a list still
    open with more than :data:`MAX_LIST_ITEMS` items; in its ``requests`` list, more than
    :data:`MAX_DRAFT_REQUESTS` requests, one longer than :data:`MAX_TEMPLATE_CHARS` characters, or one
    written three times. None while it looks like a draft."""
    if repeats_itself(text):
        return "the reply repeats itself"
    extra = max(0, len(tool.properties) - 8) if tool is not None else 0
    limit = MAX_DRAFT_CHARS + CHARS_PER_PARAMETER * extra
    if len(text) > limit:
        return f"the reply passed {limit} characters"
    if _open_list_items(text) > MAX_LIST_ITEMS:
        return f"a list of more than {MAX_LIST_ITEMS} items"
    written = requests_so_far(text)
    if written is None or written.closed:
        return None
    strings = [i for i in written.items if isinstance(i, str)]
    if len(written.items) > MAX_DRAFT_REQUESTS:
        return f"more than {MAX_DRAFT_REQUESTS} requests"
    if written.open_chars > MAX_TEMPLATE_CHARS or any(len(r) > MAX_TEMPLATE_CHARS for r in strings):
        return f"a request over {MAX_TEMPLATE_CHARS} characters"
    if strings and Counter(strings).most_common(1)[0][1] >= 3:
        return "one request written three times"
    return None


def repeats_itself(text: str) -> bool:
    """The reply ends going round a loop (one value list written over and over, say), which nothing in a
    draft's format asks for: its last :data:`LOOP_CHARS` characters were written twice before, at the
    same distance, with the same text between (three requests that only end alike are no loop)."""
    end = len(text) - LOOP_CHARS
    if end < 0:
        return False
    tail = text[end:]
    second = text.rfind(tail, 0, end)
    first = text.rfind(tail, 0, second) if second >= 0 else -1
    return first >= 0 and text[first:second] == text[second:end]


def _object_so_far(text: str) -> dict[str, Any]:
    """The keys of the object that holds the reply's ``requests`` whose values are written whole (and
    followed by more text, so a number is not one cut mid-stream), in order, up to the first that is
    not."""
    found = _top_level_keys(text)
    if not found:
        return {}
    decoder, out, at = json.JSONDecoder(), {}, found[0][0] + 1

    def skip(at: int, chars: str) -> int:
        while at < len(text) and text[at] in chars:
            at += 1
        return at

    while True:
        try:
            key, at = decoder.raw_decode(text, skip(at, " \t\r\n,"))
            at = skip(at, " \t\r\n")
            if not isinstance(key, str) or text[at : at + 1] != ":":
                return out
            value, at = decoder.raw_decode(text, skip(at + 1, " \t\r\n"))
        except json.JSONDecodeError:
            return out
        if skip(at, " \t\r\n") >= len(text):
            return out
        out[key] = value


def _open_list_items(text: str) -> int:
    """How many items the innermost container still open at the end of ``text`` holds so far, when it is
    a list (0 when it is an object, or nothing is open)."""
    stack: list[list[Any]] = []  # [opening character, commas seen at its own level]
    for _, ch in _outside_strings(text):
        if ch in "{[":
            stack.append([ch, 0])
        elif ch in "}]" and stack:
            stack.pop()
        elif ch == "," and stack:
            stack[-1][1] += 1
    return stack[-1][1] + 1 if stack and stack[-1][0] == "[" else 0


def salvaged_entry(text: str) -> dict[str, Any] | None:
    """What a reply that never closed its entry (it ran on, or hit the token limit) gives: the keys of
    its object written whole (values, say, parallel, ...; what comes from the schema otherwise), and its
    distinct requests written whole, up to :data:`MAX_TEMPLATE_CHARS` characters each and the first
    :data:`MAX_DRAFT_REQUESTS` of them. None without a request."""
    written = requests_so_far(text)
    if written is None:
        return None
    kept = [r for r in _strings(written.items) if len(r) <= MAX_TEMPLATE_CHARS]
    distinct = list(dict.fromkeys(kept))[:MAX_DRAFT_REQUESTS]
    if not distinct:
        return None
    whole = _object_so_far(quoted_slots(text))
    return {**{k: v for k, v in whole.items() if k != "requests"}, "requests": distinct}


def _strings(value: Any) -> list[str]:
    return [v.strip() for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


def _array_params(tool: ToolSpec) -> dict[str, bool]:
    """The tool's array parameters, each with whether its items are arrays too (a matrix, a list of pairs)."""
    props = tool.parameters.get("properties", {})
    return {
        k: isinstance(p.get("items"), dict) and p["items"].get("type") == "array"
        for k, p in props.items()
        if isinstance(p, dict) and p.get("type") == "array"
    }


def _one_value(x: Any, nested: bool) -> Any:
    """A drafted entry of an array parameter's value list as a whole value: an item alone (``"bug"``, or
    ``[1, 2]`` where the items are arrays) becomes a one-item value; a whole value stays as written."""
    whole = isinstance(x, list) and (not nested or (bool(x) and all(isinstance(e, list) for e in x)))
    return x if whole else [x]


def _phrases(entry: dict[str, Any], tool: ToolSpec) -> tuple[ToolPhrases, int]:
    """A lenient reading of a drafted entry: well-formed parts kept, the rest counted as dropped (a value
    spec of a shape the format has no place for costs its parameter's values, not the entry's).
    For an array parameter, models list the items a value is made of (``"labels": ["bug", "ui"]``, for
    "8 realistic values"; ``"matrix": [[1, 2], [3, 4]]`` where items are arrays); each such item becomes a
    one-item value (``["bug"]``, ``[[1, 2]]``), as the schema asks. A range written with whole floats
    (``[15.0, 90.0]``, as JSON from some models) is read as whole numbers."""
    dropped = 0
    values: dict[str, Any] = {}
    raw_values = entry.get("values")
    for k, v in raw_values.items() if isinstance(raw_values, dict) else []:
        if isinstance(v, list):  # a slot is no value ("{body}", written bare or quoted): never one to send
            kept_values = [x for x in v if not (isinstance(x, str) and SLOT.fullmatch(x.strip()))]
            dropped += len(v) - len(kept_values)
            v = kept_values
        spec = _value_spec(tool, str(k), v)
        if spec is None:
            dropped += 1
        else:
            values[str(k)] = spec
    say: dict[str, dict[str, list[str]]] = {}
    raw_say = entry.get("say")
    for param, forms in raw_say.items() if isinstance(raw_say, dict) else []:
        if isinstance(forms, dict):
            say[str(param)] = {str(k): _strings(v) for k, v in forms.items() if _strings(v)}
        else:
            dropped += 1
    results: list[ResultShape] = []
    raw_results = entry.get("results")
    for r in raw_results if isinstance(raw_results, list) else []:
        if (
            isinstance(r, dict)
            and isinstance(r.get("result"), str | dict | list)
            and isinstance(r.get("answer"), str)
        ):
            results.append(ResultShape(result=r["result"], answer=r["answer"]))
        else:
            dropped += 1
    forms, misfits = _forms(tool, values, entry.get("forms"))
    requests = []
    for request in _strings(entry.get("requests")):
        slotted = slotted_request(request, tool)
        if slotted is not None:  # its quoted words become the slot's, and one of its values
            request, param, value = slotted
            had = values.get(param)
            if had is None or (isinstance(had, list) and value not in had):
                values[param] = [*(had or []), value]
        requests.append(request)
    phrases = ToolPhrases(
        requests=requests,
        values=values,
        say=say,
        forms=forms,
        parallel=_strings(entry.get("parallel")),
        near_misses=_strings(entry.get("near_misses")),
        results=results,
    )
    return phrases, dropped + misfits


def _value_spec(tool: ToolSpec, param: str, drafted: Any) -> Any | None:
    """A drafted parameter's values as the format takes them (a list, items of an array parameter made
    one-item values; or a range, whole floats read as whole numbers), or None when they are no value spec
    the format has a place for."""
    spec: Any = None
    arrays = _array_params(tool)
    if isinstance(drafted, list) and drafted:
        spec = [_one_value(x, arrays[param]) for x in drafted] if param in arrays else drafted
    elif isinstance(drafted, dict) and isinstance(drafted.get("range"), list):
        spec = {"range": [int(x) if isinstance(x, float) and x.is_integer() else x for x in drafted["range"]]}
    try:
        return _VALUE_SPEC.validate_python(spec)
    except ValidationError:
        return None


def _forms(tool: ToolSpec, values: dict[str, Any], written: Any) -> tuple[dict[str, str], int]:
    """A drafted entry's ``forms``: those the model wrote (a known form of a parameter the tool has),
    else the one each parameter's schema names (:func:`tooltune.data.spoken_forms.schema_form`,
    "YYYY-MM-DD" -> date), so drafted requests say "Jan 4, 2027" where the call holds "2027-01-04", as
    hand-written ones do. A parameter keeps its form where some of its listed values are of it; those
    that are not ("2023-04-35") are taken out of ``values``. Returns the forms and how many entries were
    dropped: misfit values, and model-written forms unknown, of no parameter, or with no value of theirs.
    A minutes form is settled after the check (:func:`_settle_minutes`)."""
    pairs = list(written.items()) if isinstance(written, dict) else []
    forms = {k: v for k, v in pairs if isinstance(v, str) and v in FORMS and k in tool.properties}
    dropped = len(pairs) - len(forms) + int(written is not None and not isinstance(written, dict))
    own = set(forms)
    for param, schema in tool.properties.items():
        form = schema_form(param, schema) if isinstance(schema, dict) and param not in forms else None
        if form is not None:
            forms[param] = form
    for param, form in list(forms.items()):
        listed = values.get(param)
        if not isinstance(listed, list):
            continue
        fit = [v for v in listed if forms_of(form, v)]
        if not fit:  # the model wrote values of another shape: they are kept, written as they are
            del forms[param]
            dropped += param in own
            continue
        dropped += len(listed) - len(fit)
        values[param] = fit
    return forms, dropped


def _settle_minutes(phrases: ToolPhrases, tool: ToolSpec, values: dict[str, Any]) -> ToolPhrases:
    """A drafted entry's minutes forms, settled on ``values`` (the entry's values the check keeps): kept
    where the form says every value the entry fills in (listed whole minutes, or a range from 1), the
    parameter has no ``say`` words and takes whole numbers, and no template writes a "{d}-minute"
    adjective; then the unit after its slots is taken out of the templates (the form writes its own: "for
    {d} minutes" would say "for an hour and a half minutes"). Otherwise the form goes and the templates
    stay as drafted."""
    templates = [*phrases.request_templates(), *phrases.parallel_templates(), *phrases.near_misses]
    forms = dict(phrases.forms)
    for param in [p for p, form in forms.items() if form == "minutes"]:
        spec = values.get(param)
        said = (
            bool(spec) and all(forms_of("minutes", v) for v in spec)
            if isinstance(spec, list)
            else isinstance(spec, Range) and 1 <= spec.range[0] <= spec.range[1]
        )
        whole = bool(schema_types(tool.properties.get(param)) & {None, "integer", "number"})
        adjective = any(u.startswith("-") for t in templates for u in units_after(param, t))
        if not (said and whole and param not in phrases.say and not adjective):
            del forms[param]
    strip = [p for p, form in forms.items() if form == "minutes"]

    def plain(t: str) -> str:
        for param in strip:
            t = without_unit(param, t)
        return t

    requests = [plain(r) if isinstance(r, str) else r.model_copy(update={"ask": [plain(a) for a in r.ask]})
                for r in phrases.requests]  # fmt: skip
    return phrases.model_copy(update={"forms": forms, "requests": requests,
                                      "parallel": [plain(t) for t in phrases.parallel_templates()],
                                      "near_misses": [plain(t) for t in phrases.near_misses]})  # fmt: skip


def take_entry(
    entry: dict[str, Any], tool: ToolSpec, tools: list[ToolSpec], report: ToolDraft, seed: int
) -> ToolPhrases | None:
    """Check one drafted entry like a hand-written one; what fails is dropped and counted in ``report``."""
    phrases, bad_shapes = _phrases(entry, tool)

    def check(p: ToolPhrases) -> CheckedBook:
        return check_phrasebook(
            BookText(book=Phrasebook(tools={tool.name: p}), source=f"draft:{tool.name}"), tools
        )

    if "minutes" in phrases.forms.values():  # settled on the values the check keeps, then checked as written
        probe = check(phrases).book.tools.get(tool.name)
        phrases = _settle_minutes(phrases, tool, probe.values if probe is not None else {})
    checked = drop_unfillable(check(phrases), tools, seed=seed)
    errors = checked.errors
    kept = checked.book.tools.get(tool.name)
    report.dropped += bad_shapes + len(errors)
    report.reasons += [i.message for i in errors][:6]
    if kept is None or not kept.requests:
        return None
    report.kept = {
        "requests": len(kept.request_templates()),
        "parallel": len(kept.parallel_templates()),
        "near_misses": len(kept.near_misses),
        "results": len(kept.results),
    }
    return kept


def merged_entry(entries: list[dict[str, Any]], tool: ToolSpec) -> tuple[dict[str, Any], int]:
    """Drafted entries of one tool as one (the first's order first), and how many of their parts had no
    place in it: templates, near misses and results each once; a parameter's values from the first entry
    that gives usable ones (:func:`_value_spec`), listed ones joined with later lists; ``say`` words
    joined per value (a word said for two values is dropped by the check); the first ``forms`` entry of
    a parameter. Value specs and ``say`` entries of no usable shape are counted, not kept."""
    if len(entries) == 1:
        return entries[0], 0
    out: dict[str, Any] = {"requests": [], "parallel": [], "near_misses": [], "results": [],
                           "values": {}, "say": {}, "forms": {}}  # fmt: skip
    skipped = 0
    for entry in entries:
        for key in ("requests", "parallel", "near_misses", "results"):
            items = entry.get(key)
            out[key] += [x for x in items if x not in out[key]] if isinstance(items, list) else []
        values = entry.get("values")
        for param, spec in values.items() if isinstance(values, dict) else []:
            have = out["values"].get(param)
            if _value_spec(tool, str(param), spec) is None:
                skipped += 1
            elif have is None:
                out["values"][param] = list(spec) if isinstance(spec, list) else spec
            elif isinstance(have, list) and isinstance(spec, list):
                have += [v for v in spec if v not in have]
        say = entry.get("say")
        for param, words in say.items() if isinstance(say, dict) else []:
            if not isinstance(words, dict):
                skipped += 1
                continue
            have_say = out["say"].setdefault(param, {})
            for value, said in words.items():
                listed = have_say.setdefault(value, [])
                listed += [w for w in said if w not in listed] if isinstance(said, list) else []
        forms = entry.get("forms")
        for param, form in forms.items() if isinstance(forms, dict) else []:
            out["forms"].setdefault(param, form)
    return out, skipped
