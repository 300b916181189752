"""Requests, results and follow-ups made from a phrasebook file (:mod:`tooltune.data.phrasebook`).

Slots are filled with typed values: the book's own values for a parameter, else the generator's
sampler for its schema. A value is written the way the book says it may be said (``say``, ``:words``)
or as the generator writes values (numbers with their units, lists as "a, b and c"), and a request is
kept only when every argument can be read back from it (the no-guessing rule the whole generator keeps).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator

from tooltune.data import relative_dates
from tooltune.data.coding_requests import FollowUp
from tooltune.data.phrasebook import (
    DERIVED,
    Add,
    BookText,
    CheckedBook,
    Compose,
    FollowStep,
    Lookup,
    PhrasebookIssue,
    RequestGroup,
    ResultShape,
    ValueSpec,
    derived_value,
    draw_value,
    is_text_field,
    say_key_value,
    slots,
    substitute,
    value_text,
)
from tooltune.data.phrasing import _base_verb, format_value, mentions_all
from tooltune.data.polish import join_requests, polish
from tooltune.data.samplers import sample_value
from tooltune.data.spoken_forms import argv_text, ordinal_forms
from tooltune.data.spoken_forms import say as say_in_form
from tooltune.toolspec import ToolSpec

Args = dict[str, Any]
_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
).split()
_WHOLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}$")
# a near miss's text answer: the request is on the tool's topic, and no tool does it
NEAR_MISS_ANSWERS = [
    "Sorry, none of my tools can do that.",
    "I can't do that here: the tools I have don't cover it.",
    "That's not something my tools can do, so I won't try it with {tool}.",
    "I don't have a tool for that. {tool} does something else, so I'd rather not guess with it.",
]


class _Missing(Exception):
    """A result, answer or ``args`` slot names a parameter the call does not have."""


class _Fill:
    """One example's slot values: a named value keeps its value across the example's templates."""

    def __init__(self, rng: random.Random, book: DataBook) -> None:
        self.rng = rng
        self.book = book
        self.named: dict[str, Any] = {}
        self.records: dict[tuple[str, int | None], dict[str, Any]] = {}  # one record per tool and call
        self.call_values: dict[tuple[str, int | None, str], Any] = {}  # a call's values, once drawn
        self._drawing: set[tuple[str, int | None, str]] = set()
        self.own_slots: set[tuple[str, int]] = set()  # the request's numbered slots: (name, call)
        self.places: dict[tuple[str, int | None, str], int] = {}  # where each lookup's value stood
        self.own: dict[str, ValueSpec] = {}  # a result's own values (its ``values``), drawn once each
        self.own_drawn: dict[str, Any] = {}
        self.own_params: set[str] = set()  # the result's tool's parameters: a lookup base the call left out

    def named_value(self, name: str) -> Any:
        if name not in self.named:
            spec = self.book.book.values[name]
            if isinstance(spec, Add):  # another named value plus an offset
                self.named[name] = self._added(spec, self.named_value(spec.add))
            elif isinstance(spec, Lookup):  # chosen by another named value
                place = None
                if spec.along is not None:  # drawn first: this one takes the same place in its table
                    self.named_value(spec.along)
                    place = self.places.get(("", None, spec.along))
                base = self.named_value(spec.lookup)
                self.named[name] = self._looked_up(spec, base, ("", None, name), place)
            else:
                self.named[name] = draw_value(self.rng, spec, self.book.book.values)
        return self.named[name]

    def call_value(self, tool: ToolSpec, name: str, index: int | None = None) -> Any:
        """Parameter ``name``'s value in call ``index`` of ``tool``: drawn once, then kept (an ``add``
        value and the request's slot see the same start line). A value whose drawing needs itself (adds
        in a circle) leaves the example unused."""
        key = (tool.name, index, name)
        if key not in self.call_values:
            if key in self._drawing:
                raise _Missing(name)
            self._drawing.add(key)
            try:
                self.call_values[key] = self.param_value(tool, name, index)
            finally:
                self._drawing.discard(key)
        return self.call_values[key]

    def new_call(self) -> None:
        """The next step of a follow-up calls afresh: no value carries over from the last call."""
        self.call_values.clear()
        self.places = {k: v for k, v in self.places.items() if k[0] == ""}  # named values' places stay

    def _adds_hold(self, tool: ToolSpec, args: Args) -> bool:
        """Every ``add`` parameter of the call is its base in the same call plus one of its offsets, and
        every ``lookup`` parameter one of the values its base in the same call chooses among."""
        phrases = self.book.book.tools.get(tool.name)
        own = phrases.values if phrases is not None else {}
        for name, value in args.items():
            spec = own.get(name, self.book.book.values.get(name))
            if isinstance(spec, Add) and spec.add in args and not spec.holds(args[spec.add], value):
                return False
            if isinstance(spec, Lookup):
                # the call's value of the looked-up parameter, else the example's named value
                if spec.lookup in args:
                    base = args[spec.lookup]
                elif spec.lookup in self.book.book.values and spec.lookup not in tool.properties:
                    base = self.named_value(spec.lookup)
                else:
                    continue
                places = spec.places(base, value)
                partner = own.get(spec.along, self.book.book.values.get(spec.along)) if spec.along else None
                if isinstance(partner, Lookup) and spec.along in args:  # both at one place of their tables
                    places &= partner.places(base, args[spec.along])
                if not places:
                    return False
        return True

    def _looked_up(
        self, spec: Lookup, base: Any, key: tuple[str, int | None, str], place: int | None = None
    ) -> Any:
        """One of the values ``base`` chooses among: at ``place`` (the place its ``along`` partner's value
        stood), else drawn; where it stood is kept under ``key`` for lookups that follow it."""
        pool = spec.pool(base)
        if pool is None or (place is not None and place >= len(pool)):
            raise _Missing(spec.lookup)  # no key fits and no other values: the example is not used
        i = place if place is not None else self.rng.randrange(len(pool))
        self.places[key] = i
        return pool[i]

    def _added(self, spec: Add, base: Any) -> Any:
        if isinstance(base, bool) or not isinstance(base, int | float):
            raise _Missing(spec.add)  # nothing to add to: the example is not used
        return base + spec.offset(self.rng)

    def param_value(self, tool: ToolSpec, name: str, index: int | None = None) -> Any:
        phrases = self.book.book.tools.get(tool.name)
        record = self._record(tool, name, index)
        if record is not None:
            return record[name]
        spec = phrases.values.get(name) if phrases is not None else None
        if spec is None:
            spec = self.book.book.values.get(name)
        if isinstance(spec, Add):  # the same call's value of another parameter (or a named value), plus
            if spec.add not in tool.properties:
                return self._added(spec, self.named_value(spec.add))
            # a call's own numbered base, else the value its template shares across the calls
            at = index if index is not None and (spec.add, index) in self.own_slots else None
            return self._added(spec, self.call_value(tool, spec.add, at))
        if isinstance(spec, Lookup):  # chosen by the same call's value of another parameter (or a named one)
            place = None
            if spec.along is not None:  # the partner in the same call, drawn first: the same place
                at = index if index is not None and (spec.along, index) in self.own_slots else None
                self.call_value(tool, spec.along, at)
                place = self.places.get((tool.name, at, spec.along))
            key = (tool.name, index, name)
            if spec.lookup not in tool.properties:
                return self._looked_up(spec, self.named_value(spec.lookup), key, place)
            at = index if index is not None and (spec.lookup, index) in self.own_slots else None
            return self._looked_up(spec, self.call_value(tool, spec.lookup, at), key, place)
        if spec is not None:
            return draw_value(self.rng, spec, self.book.book.values)
        said = phrases.say.get(name) if phrases is not None else None
        if said:  # the values the book says how to write ("with the comments" for true)
            return say_key_value(self.rng.choice(sorted(said)), tool.properties.get(name))
        schema = tool.properties.get(name)
        return sample_value(self.rng, name, schema if isinstance(schema, dict) else {})

    def _record(self, tool: ToolSpec, name: str, index: int | None) -> dict[str, Any] | None:
        """The record that fills ``name`` in call ``index``: drawn at the call's first slot a record
        names, then kept for its other slots (a record without ``name`` leaves it to the other sources)."""
        phrases = self.book.book.tools.get(tool.name)
        if phrases is None or not phrases.records:
            return None
        key = (tool.name, index)
        if key not in self.records:
            having = [r for r in phrases.records if name in r]
            if not having:
                return None
            self.records[key] = self.rng.choice(having)
        record = self.records[key]
        return record if name in record else None

    def say(self, tool: ToolSpec, name: str, value: Any, modifier: str | None) -> tuple[str, bool]:
        """The value as written in the request, and whether the writing itself grounds it (a declared
        form) rather than the value's own text. An empty list shows nothing a request could ask with:
        the request (near miss, job) is not used."""
        nonempty(value, name)
        phrases = self.book.book.tools.get(tool.name)
        forms = phrases.say.get(name, {}) if phrases is not None else {}
        key = value if isinstance(value, str) else json.dumps(value)
        form = phrases.forms.get(name) if phrases is not None else None
        # in a dated conversation, a date form's value is said against its today first ("tomorrow"):
        # exact, so it grounds the value; a say word is the book's way when it is not
        relative = self.book.relative(self.rng, form, value) if form and modifier is None else None
        if relative is not None:
            return relative, True
        # a say form is another way to write the whole value: not for a slot that asks for the value
        # exactly as drawn ({glob:raw} writes "*.py" where {glob} may write "Python") or for one of its parts
        if forms.get(key) and modifier != "raw" and modifier not in DERIVED:
            return self.rng.choice(forms[key]), True
        if (
            modifier == "words"
            and isinstance(value, int)
            and not isinstance(value, bool)
            and 0 <= value < len(_WORDS)
        ):
            return _WORDS[value], True
        if modifier == "ordinal" and (ordinals := ordinal_forms(value)):  # 3: "3rd" or "third", exact
            return self.rng.choice(ordinals), True
        if modifier == "argv" and (words := argv_text(value)) is not None:  # [run, build]: "run build"
            return words, True
        if modifier == "and" and isinstance(value, list):  # "a, b and c": each item shown as drawn
            return and_join(value), False
        if modifier == "raw":  # exactly as drawn: no quotes, backticks or units the generator may add
            return value_text(value), False
        if modifier in DERIVED:  # a part of the value: the value itself must be shown elsewhere
            return written(value, modifier), False
        if form is not None and modifier is None:
            spoken = say_in_form(self.rng, form, value)
            if spoken is not None:  # an exact form ("Jan 4, 2027"): its words ground the value
                return spoken, spoken != value_text(value)
        schema = tool.properties.get(name)
        return format_value(self.rng, value, schema if isinstance(schema, dict) else {}, name), False

    def request(self, tool: ToolSpec, template: str) -> tuple[str, list[Args]] | None:
        """Fill a request template: one argument set, or one per call of a parallel one (``{p.1}``, ``{p.2}``
        and maybe ``{p.3}``; a call without a slot of its own gets the shared slots' values alone)."""
        per_call: dict[int | None, Args] = {}
        grounded: dict[int | None, set[str]] = {}
        text_values: dict[tuple[str, int | None] | tuple[str, int | None, str], str] = {}
        unfilled: list[str] = []

        def value_for(name: str, index: int | None, modifier: str | None) -> str:
            if modifier in DERIVED:  # a part of a value the template may also write whole: its own text
                if name in tool.properties:  # a call's value the words would not show (the checker says so)
                    raise _Missing(name)
                if (name, index, modifier) not in text_values:
                    v = nonempty(self.named_value(name), name)
                    text_values[(name, index, modifier)] = written(v, modifier)
                return text_values[(name, index, modifier)]
            # a value's text is kept for the template's other slots of it; another form writes its own
            key = (name, index) if modifier is None or modifier.startswith("=") else (name, index, modifier)
            if key in text_values:
                return text_values[key]
            if is_text_field(name, tool):  # a record's text field: the call's record says it, or none can
                record = self._record(tool, name, index)
                if record is None:
                    unfilled.append(name)
                    return ""
                text_values[(name, index)] = value_text(record[name])
                # the text says the record's parameters: they go into the call (a slot's own value stays)
                call = per_call.setdefault(index, {})
                for k, v in record.items():
                    if not is_text_field(k, tool):
                        call.setdefault(k, v)
                return text_values[(name, index)]
            if modifier is not None and modifier.startswith("="):  # a value the template's words give
                given = say_key_value(modifier[1:], tool.properties.get(name))
                per_call.setdefault(index, {})[name] = given
                self.call_values.setdefault((tool.name, index, name), given)  # what an add adds to
                grounded.setdefault(index, set()).add(name)
                text_values[(name, index)] = ""
                return ""
            if name in tool.properties:
                v = self.call_value(tool, name, index)
                if modifier == "ordinal" and not ordinal_forms(v):  # "the 0th page": not this request
                    raise _Missing(name)
                if modifier == "argv" and argv_text(v) is None:  # no list of words: not this request
                    raise _Missing(name)
                per_call.setdefault(index, {})[name] = v
                said, declared = self.say(tool, name, v, modifier)
                if declared:
                    grounded.setdefault(index, set()).add(name)
            else:
                v = nonempty(self.named_value(name), name)
                said = written(v, modifier) if modifier in SPOKEN else _named_text(v)
            text_values[key] = said
            return said

        self.own_slots = {(n, i) for n, i, _ in slots(template) if i is not None}
        try:
            text = substitute(template, value_for)
        except _Missing:  # a slot form the drawn value has no part for ({n:basename} of a number)
            return None
        if unfilled:  # the call's record (drawn at an earlier slot) has no such text field
            return None
        shared = per_call.pop(None, {})
        # calls 1 to the highest number a slot has; the first of two may have no slot of its own (the
        # checker allows no other gap): it takes the shared slots alone
        count = max((i for _, i, _ in slots(template) if i is not None), default=0)
        indexes = list(range(1, count + 1))
        calls = [{**shared, **per_call.get(i, {})} for i in indexes] if indexes else [shared]
        if len({json.dumps(a, sort_keys=True, default=str) for a in calls}) < len(calls):
            return None  # two of the calls are the same
        if not all(self._adds_hold(tool, args) for args in calls):
            return None  # an add value and its base came apart (a base the words gave another way)
        for i, args in zip(indexes or [None], calls, strict=True):
            exempt = grounded.get(None, set()) | grounded.get(i, set())
            if not mentions_all(text, {k: v for k, v in args.items() if k not in exempt}):
                return None
        return text, calls

    def structured(self, obj: Any, args: Args) -> Any:
        """A result or ``args`` template filled: a string that is one whole slot keeps the value's type."""
        return fill_structured(obj, lambda name: self._lookup(name, args))

    def _lookup(self, name: str, args: Args) -> Any:
        if name in args:
            return args[name]
        if name in self.own:
            return self._own_value(name, args)
        if name in self.book.book.values:
            return self.named_value(name)
        raise _Missing(name)  # a parameter this call left out: the example would say nothing there

    def _own_value(self, name: str, args: Args) -> Any:
        """A result's own value: a lookup reads the call's value of its base (or a named value); a base
        the call left out leaves the result unused."""
        if name not in self.own_drawn:
            spec = self.own[name]
            if isinstance(spec, Lookup):
                if spec.lookup in self.own_params and spec.lookup not in args:
                    raise _Missing(spec.lookup)  # the call left its base out: not a named value instead
                base = self._lookup(spec.lookup, args)  # the call's value, or a named one (checked)
                self.own_drawn[name] = self._looked_up(spec, base, ("result", None, name))
            elif isinstance(spec, Compose):  # the call's values, the result's own, named ones afresh
                self.own_drawn[name] = substitute(
                    spec.compose, lambda n, i, m: written(list_item(self._part(n, args), i, n), m)
                )
            else:
                self.own_drawn[name] = draw_value(self.rng, spec, self.book.book.values)
        return self.own_drawn[name]

    def _part(self, name: str, args: Args) -> Any:
        """A part of a result's own composition: the call's value of a parameter (none: the result is
        not used), the result's own value, else a named value drawn afresh, as any composition's part."""
        if name in self.own_params:
            if name not in args:
                raise _Missing(name)
            return args[name]
        if name in self.own:
            return self._own_value(name, args)
        return draw_value(self.rng, self.book.book.values[name], self.book.book.values)

    def result_text(self, shape: str | dict[str, Any] | list[Any], args: Args) -> str:
        filled = self.structured(shape, args)
        return filled if isinstance(filled, str) else json.dumps(filled)


def _named_text(value: Any) -> str:
    """A named value in a request's words: a list (a sample) as "a, b and c" would read, "a, b"; anything
    else as it always was written."""
    return value_text(value) if isinstance(value, list) else str(value)


def fill_structured(obj: Any, lookup: Any) -> Any:
    """``obj`` with every slot replaced by ``lookup(name)``; a string that is one whole slot keeps the
    value's type (``"{issue_id}"`` stays an integer)."""
    if isinstance(obj, dict):
        return {k: fill_structured(v, lookup) for k, v in obj.items()}
    if isinstance(obj, list):
        return [fill_structured(v, lookup) for v in obj]
    if isinstance(obj, str):
        m = _WHOLE.match(obj)
        if m and (m[2] is None or m[2] in DERIVED):
            return lookup(m[1]) if m[2] is None else _derived(lookup(m[1]), m[2])
        return substitute(obj, lambda n, i, mod: written(list_item(lookup(n), i, n), mod))
    return obj


def list_item(value: Any, index: int | None, name: str) -> Any:
    """``{hits.2}`` in a result or answer: the second item of a list value (the value itself without an
    index); a value with no such item leaves the result unused."""
    if index is None:
        return value
    if isinstance(value, list) and 1 <= index <= len(value):
        return value[index - 1]
    raise _Missing(name)


def _derived(value: Any, modifier: str) -> Any:
    try:
        return derived_value(value, modifier)
    except ValueError:  # no such part of this value: the result or answer is not used
        raise _Missing(modifier) from None


SPOKEN = {"words", "ordinal", "argv", "and"}
"""Slot forms that say a value another way ("three", "3rd", "run build")."""


def and_join(value: Any) -> str:
    """A list as people list things: "a", "a and b", "a, b and c" ("" for none); other values as they
    are written."""
    if not isinstance(value, list):
        return value_text(value)
    items = [value_text(v) for v in value]
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


def nonempty(value: Any, name: str) -> Any:
    """``value``, where text will show it: an empty list shows nothing (a request, a near miss, a job's
    ask or answer would read "look in " or "found "), so that text is not used (``_Missing``)."""
    if value == []:
        raise _Missing(name)
    return value


def written(value: Any, modifier: str | None) -> str:
    """A value in a result's or an answer's words: as drawn, or the part or measure its slot form asks,
    or a whole number in words ("three") or as an ordinal ("3rd") where its form says so and it has one,
    or a list joined as people list things (``:and``)."""
    if modifier == "and":
        return and_join(value)
    if modifier == "ordinal" and (ordinals := ordinal_forms(value)):
        return ordinals[0]
    if modifier == "argv" and (words := argv_text(value)) is not None:
        return words
    if (
        modifier == "words"
        and isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value < len(_WORDS)
    ):
        return _WORDS[value]
    return value_text(_derived(value, modifier) if modifier in DERIVED else value)


WHEN_TRIES = 8
"""Draws of a phrasing (and its values) a request makes before it gives up, when the book's groups have
``when`` conditions a drawn call may not fit."""


class DataBook:
    """A checked phrasebook for one tool set, used by the example builders like the built-in one."""

    def __init__(self, checked: CheckedBook, tools: list[ToolSpec]) -> None:
        self.book = checked.book
        self.by_name = {t.name: t for t in tools}
        self.validators = {t.name: t.validator() for t in tools}
        # "please"/"can you" go only before a verb ("can you new note ..." is not how anyone writes)
        starts = [t.split(" ", 1)[0].lower() for p in self.book.tools.values() for t in p.request_templates()]
        self.verbs = {w for w in starts if _base_verb(w) == w}
        words = self.book.polish
        self.verbs |= {w.lower() for w in words.verbs} if words is not None else set()
        self.shell_words = set(words.shell_words) if words is not None else set()
        self._when_validators: dict[str, Draft202012Validator] = {}
        # relative dates: whether this conversation says them, the today they count from, what was said
        self.relative_now = False
        self.today: dt.date | None = None
        self.said: list[str] = []
        self._line: str | None = None

    def new_conversation(self, rng: random.Random) -> None:
        """A conversation starts: with the book's ``relative_dates``, it says its dates relative to a
        today (drawn at its first date) in ``share`` of conversations; without, nothing is drawn."""
        self.today, self.said, self._line = None, [], None
        spec = self.book.relative_dates
        self.relative_now = spec is not None and rng.random() < spec.share

    def relative(self, rng: random.Random, form: str, value: Any) -> str | None:
        """``value`` said relative to the conversation's today ("tomorrow"), or None: not a dated
        conversation, not a date form, no phrase reaches it, or (after its first) the draw says
        absolute."""
        if not self.relative_now or form not in ("date", "datetime") or not isinstance(value, str):
            return None
        if self.today is not None and rng.random() >= relative_dates.LATER:
            return None
        got = relative_dates.say(rng, form, value, self.today)
        if got is None:
            return None
        self.today = got[1]
        self.said.append(got[0])
        return got[0]

    def finish(self, rng: random.Random, msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A dated conversation's messages: the requests' prepositions set right ("busy on tomorrow" ->
        "busy tomorrow") and a system line stating today first (the same line for the conversation's
        twin); others unchanged."""
        users = [m["content"] for m in msgs if m.get("role") == "user" and isinstance(m.get("content"), str)]
        if self.today is None or not any(relative_dates.says(u, p) for p in self.said for u in users):
            return msgs  # not dated, or its relative words were in a draw that was not kept
        out = [
            {**m, "content": relative_dates.fix_prepositions(m["content"], self.said)}
            if m.get("role") == "user" and isinstance(m.get("content"), str)
            else m
            for m in msgs
        ]
        if self._line is None:
            spec = self.book.relative_dates
            self._line = relative_dates.system_line(rng, self.today, spec.system if spec else None)
        line = self._line
        if out and out[0].get("role") == "system":
            return [{**out[0], "content": f"{out[0]['content']}\n{line}"}, *out[1:]]
        return [{"role": "system", "content": line}, *out]

    def covers(self, tool: ToolSpec) -> bool:
        return bool(
            self.by_name.get(tool.name) == tool
            and tool.name in self.book.tools
            and self.book.tools[tool.name].requests
        )

    def intents(self, name: str) -> int | None:
        """How many different things the book's requests ask of tool ``name``: the distinct sets of its
        parameters that its request templates fill (at least 1)."""
        params = set(self.by_name[name].properties)
        sets = {frozenset(slot_names(t) & params) for t in self.book.tools[name].request_templates()}
        return max(1, len(sets))

    def _polish(self, rng: random.Random, text: str, template: str = "") -> str:
        return polish(
            rng, text, verbs=self.verbs, shell_words=self.shell_words, keep_case=template.startswith("{")
        )

    def _fits(self, args: Args, when: dict[str, Any]) -> bool:
        """Every parameter ``when`` names is in the call, with a value its schema accepts; ``false`` (a
        schema no value fits) asks for the parameter left out."""
        for param, schema in when.items():
            key = json.dumps(schema, sort_keys=True)
            if key not in self._when_validators:
                self._when_validators[key] = Draft202012Validator(schema)
            if param not in args:
                if schema is False:
                    continue
                return False
            try:
                if not self._when_validators[key].is_valid(args[param]):
                    return False
            except Exception:  # noqa: BLE001 — a schema that cannot be applied fits no value
                return False
        return True

    def _valid(self, name: str, calls: list[Args]) -> bool:
        return all(self.validators[name].is_valid(a) for a in calls)

    def request(self, rng: random.Random, name: str, *, polish: bool = True) -> tuple[str, Args] | None:
        tool = self.by_name[name]
        phrases = self.book.tools[name]
        templates, weights = phrases.request_templates(), phrases.request_weights()
        conditions = phrases.request_conditions()
        for _ in range(WHEN_TRIES if conditions else 1):
            # a book without weighted groups draws as it always did (the same stream, the same data)
            template = rng.choice(templates) if weights is None else rng.choices(templates, weights)[0]
            got = _Fill(rng, self).request(tool, template)
            if got is None or len(got[1]) != 1 or not self._valid(name, got[1]):
                return None
            text, (args,) = got
            when = conditions.get(template)
            if when and not self._fits(args, when):
                continue  # the group's phrasing is for other values: a phrasing (and values) again
            return (self._polish(rng, text, template) if polish else text), args
        return None

    def pair(self, rng: random.Random, name: str) -> tuple[str, list[Args]] | None:
        phrases = self.book.tools[name]
        templates, weights = phrases.parallel_templates(), phrases.parallel_weights()
        if not templates:
            return None
        # a book without weighted groups draws as it always did (the same stream, the same data)
        template = rng.choice(templates) if weights is None else rng.choices(templates, weights)[0]
        got = _Fill(rng, self).request(self.by_name[name], template)
        if got is None or len(got[1]) < 2 or not self._valid(name, got[1]):
            return None
        return self._polish(rng, got[0], template), got[1]

    def join(self, rng: random.Random, texts: list[str]) -> str | None:
        # a request may open with a value ("Health: buy soil" is a note's title): its case stays
        return join_requests(rng, texts, verbs=self.verbs, shell_words=self.shell_words, keep_case=True)

    def result(self, rng: random.Random, name: str, args: Args) -> tuple[str, str] | None:
        """A result in the shape the book gives for the tool and an answer that uses it; None when the
        book gives none with an answer (the builder falls back to its generic result)."""
        shapes = [s for s in self.book.tools[name].results if s.answer] if name in self.book.tools else []
        if not shapes:
            return None
        tool = self.by_name[name]
        # a condition on the call's parameters is known now: only shapes it fits are drawn; one on a named
        # value is tried as drawn (again, up to WHEN_TRIES times)
        shapes = [
            s
            for s in shapes
            if self._fits(args, {k: v for k, v in (s.when or {}).items() if k in tool.properties})
        ]
        for _ in range(WHEN_TRIES if shapes else 0):
            shape: ResultShape = rng.choice(shapes)
            fill = _Fill(rng, self)
            fill.own, fill.own_params = shape.values, set(tool.properties)
            assert shape.answer is not None
            try:
                named = {k: v for k, v in (shape.when or {}).items() if k not in tool.properties}
                if named and not self._fits({k: fill.named_value(k) for k in named}, named):
                    continue
                answer = substitute(
                    shape.answer,
                    lambda n, i, m, f=fill: written(nonempty(list_item(f._lookup(n, args), i, n), n), m),
                )
                result = fill.result_text(shape.result, args)
            except _Missing:  # an empty list the answer would write, or a part a value has not: again
                continue
            if result.strip():  # an empty tool message ("{hits:and}" of none) teaches nothing
                return result, answer
        return None

    def near_miss(self, rng: random.Random, tool: ToolSpec) -> tuple[str, str] | None:
        """A request next to ``tool``'s job that it must not serve, and a text answer."""
        templates = self.book.tools.get(tool.name)
        if templates is None or not templates.near_misses:
            return None
        fill = _Fill(rng, self)

        def value_for(name: str, index: int | None, modifier: str | None) -> str:
            if modifier is not None and modifier.startswith("="):
                return ""
            if name in tool.properties:
                return fill.say(tool, name, fill.call_value(tool, name), modifier)[0]
            v = nonempty(fill.named_value(name), name)
            return written(v, modifier) if modifier in DERIVED | SPOKEN else _named_text(v)

        try:
            text = self._polish(rng, substitute(rng.choice(templates.near_misses), value_for))
        except _Missing:
            return None
        return text, rng.choice(NEAR_MISS_ANSWERS).format(tool=tool.name)

    def job(self, rng: random.Random) -> JobRun | None:
        """One request worked through several calls (the book's ``jobs``), or None without any."""
        return _job(self, rng) if self.book.jobs else None

    def follow_up(self, rng: random.Random) -> FollowUp | None:
        """A chain from the book: each step's ask, its call, and the result the next step reads."""
        if not self.book.follow_ups:
            return None
        steps: list[FollowStep] = rng.choice(self.book.follow_ups)
        fill = _Fill(rng, self)
        calls: list[tuple[str, Args]] = []
        results: list[str] = []
        said: list[str] = []
        shown = ""  # the results so far; with the asks, where a step's ``args`` must find their values
        for i, step in enumerate(steps):
            tool = self.by_name[step.call]
            fill.new_call()
            ask = step.ask if isinstance(step.ask, str) else rng.choice(step.ask)  # one: nothing drawn
            got = fill.request(tool, ask)
            if got is None:
                return None
            text, (args,) = got
            try:
                given = {k: fill.structured(v, args) for k, v in step.args.items()}
            except _Missing:
                return None
            args = {**args, **given}
            # the ask's own values were checked as it was filled; the ``args`` the step gives must be in
            # the conversation so far, a result or a user's words, this ask's included (a value it never
            # showed would be a guess). Generator 13 looked in the results alone, so a first step with
            # ``args`` never drew, nor a step repeating the user's words: three in four draws failed there.
            heard = "\n".join([shown, *said, text])
            if not self.validators[tool.name].is_valid(args) or not mentions_all(heard, given):
                return None
            if not fill._adds_hold(tool, args):  # an add or lookup value and the base ``args`` replaced
                return None
            said.append(self._polish(rng, text, ask) if i == 0 else text)
            calls.append((tool.name, args))
            if i < len(steps) - 1:
                assert step.result is not None
                try:
                    res = fill.result_text(step.result, args)
                except _Missing:
                    return None
                results.append(res)
                shown += "\n" + res
        return FollowUp(calls, results, said)


class JobRun(NamedTuple):
    """A filled job: the request, each call with the result it got, the answer."""

    request: str
    steps: list[tuple[str, Args, str]]
    answer: str


def _job(book: DataBook, rng: random.Random) -> JobRun | None:
    """A job from the book, every argument read from the request or from a result before it."""
    job = rng.choice(book.book.jobs)
    fill = _Fill(rng, book)
    tool_of: dict[str, ToolSpec] = {}
    for st in job.steps:
        for p in book.by_name[st.call].properties:
            tool_of.setdefault(p, book.by_name[st.call])
    values: dict[str, Any] = {}
    declared: set[str] = set()
    having = {p: [book.by_name[st.call].name for st in job.steps if p in book.by_name[st.call].properties]
              for p in tool_of}  # fmt: skip

    def share(name: str, v: Any) -> Any:
        """One value per parameter name in a job: the calls' own draws (an add's or a lookup's base) see
        it too."""
        values[name] = v
        for t in having.get(name, []):
            fill.call_values[(t, None, name)] = v
        return v

    def value(name: str) -> Any:
        if name not in values:
            if name in book.book.values:
                return share(name, fill.named_value(name))
            # drawn already as another value's base (a lookup's path): the job's value is that one
            drawn = [fill.call_values[k] for t in having[name] if (k := (t, None, name)) in fill.call_values]
            share(name, drawn[0] if drawn else fill.call_value(tool_of[name], name))
        return values[name]

    def said(name: str, index: int | None, modifier: str | None) -> str:
        if modifier is not None and modifier.startswith("="):
            share(name, say_key_value(modifier[1:], tool_of[name].properties.get(name)))
            declared.add(name)
            return ""
        v = nonempty(value(name), name)
        if name in book.book.values:
            return written(v, modifier)
        text, by_form = fill.say(tool_of[name], name, v, modifier)
        if by_form:
            declared.add(name)
        return text

    ask = job.ask if isinstance(job.ask, str) else rng.choice(job.ask)  # one: nothing drawn
    try:
        request = substitute(ask, said)
    except _Missing:
        return None
    seen = request
    steps: list[tuple[str, Args, str]] = []
    for st in job.steps:
        try:  # a slot form the value has no part for ({n:basename} of a number): the job is not used
            args = {k: fill_structured(v, value) for k, v in st.args.items()}
            # a value the request wrote in a declared form ("P0" for urgent) is read from that form
            # (and what the step says the model writes itself is its own: no earlier text shows it)
            shown = {
                k: v
                for k, v in args.items()
                if _whole_slot(st.args[k]) not in declared and k not in st.authored
            }
            if not book.validators[st.call].is_valid(args) or not mentions_all(seen, shown):
                return None  # a value neither the request nor a result showed would be a guess
            if not fill._adds_hold(book.by_name[st.call], args):
                return None  # an add or lookup value drawn for another base than the one the words gave
            result = _result(fill_structured(st.result, value)) if st.result is not None else _OK
        except _Missing:
            return None
        steps.append((st.call, args, result))
        seen += "\n" + result
    try:
        answer = substitute(job.answer, lambda n, _i, m: written(nonempty(value(n), n), m))
    except _Missing:
        return None
    return JobRun(book._polish(rng, request, ask), steps, answer)


_OK = '{"status": "ok"}'  # a job step's result when the book gives none


def _whole_slot(template: Any) -> str | None:
    """The name a template that is one plain slot fills ("{p}"; not "{p:dir}", which is a part of p)."""
    m = _WHOLE.match(template) if isinstance(template, str) else None
    return m[1] if m and m[2] is None else None


def _result(filled: Any) -> str:
    return filled if isinstance(filled, str) else json.dumps(filled)


def slot_names(template: str) -> set[str]:
    return {n for n, _, _ in slots(template)}


def drop_unfillable(
    checked: CheckedBook,
    tools: list[ToolSpec],
    *,
    text: BookText | None = None,
    tries: int = 6,
    seed: int = 0,
) -> CheckedBook:
    """``checked`` without the request and parallel templates that never fill to a valid call whose values
    the text shows (a value the words cannot carry, a range outside the schema...), each reported."""
    book = checked.book.model_copy(deep=True)
    issues = list(checked.issues)

    def fills(name: str, field: str, template: str, kept_at: str, group: RequestGroup | None = None) -> bool:
        one = book.model_copy(deep=True)
        setattr(
            one.tools[name],
            field,
            [template if group is None else group.model_copy(update={"ask": [template]})],
        )
        if field == "parallel":
            one.tools[name].requests = one.tools[name].requests or [template]
        probe = DataBook(CheckedBook(book=one), tools)
        rng = random.Random(seed)
        make = probe.pair if field == "parallel" else probe.request
        if any(make(rng, name) is not None for _ in range(tries)):
            return True
        where = checked.origins.get(kept_at, kept_at)  # the template's place in the file
        issues.append(
            PhrasebookIssue(
                severity="error",
                where=where,
                message=f"{template!r} never fills to a valid call whose values the words show"
                + (" and its group's `when` accepts" if group is not None and group.when else ""),
                line=text.lines.get(where) if text is not None else None,
                source=text.source if text is not None else "",
            )
        )
        return False

    origins: dict[str, str] = {}  # the kept templates' new places -> their places in the file

    def keep(kept_at: str, now_at: str) -> None:
        origins[now_at] = checked.origins.get(kept_at, kept_at)

    def kept_entries(name: str, field: str) -> list[str | RequestGroup]:
        """The tool's ``field`` (requests or parallel) without the templates that never fill; a group keeps
        the templates that do (none: the group goes)."""
        out: list[str | RequestGroup] = []
        for i, entry in enumerate(getattr(book.tools[name], field)):
            at, now = f"tools.{name}.{field}[{i}]", f"tools.{name}.{field}[{len(out)}]"
            if isinstance(entry, str):
                if fills(name, field, entry, at):
                    keep(at, now)
                    out.append(entry)
                continue
            asks = [(j, t) for j, t in enumerate(entry.ask) if fills(name, field, t, f"{at}.ask[{j}]", entry)]
            for n, (j, _) in enumerate(asks):
                keep(f"{at}.ask[{j}]", f"{now}.ask[{n}]")
            out += [entry.model_copy(update={"ask": [t for _, t in asks]})] if asks else []
        return out

    for name, phrases in book.tools.items():
        phrases.requests = kept_entries(name, "requests")
        phrases.parallel = kept_entries(name, "parallel")
    return CheckedBook(book=book, issues=issues, origins=origins)
