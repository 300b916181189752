"""Phrasebooks: how people ask for a tool set's tools, as a data file (YAML or JSON) anyone can write.

Requests read back from a schema ("search the repository for a regular expression with pattern set to
timeout") teach a small model words nobody types. A phrasebook holds, per tool, request templates with
``{param}`` slots, the values each slot takes and how a value may be said, requests for two calls at
once, near misses that must not call, and the shapes of the tool's results; plus follow-ups that take a
value from a result. The generator fills the slots with typed values, so every argument is grounded in
the request, and checks each filled example against the tool's schema.

The format, in short (docs/PHRASEBOOKS.md has the reference and a worked example, checked by a test)::

    phrasebook: 1
    values: {ticket: {range: [2, 999]}}            # named values any template may use: {ticket}
    tools:
      get_issue:
        requests: ["what's in #{issue_id}?"]        # a {param} slot where each value goes
        values: {issue_id: {range: [1, 999]}}      # per parameter; else the generator's typed sampler
        say: {include_comments: {true: ["with the comments"]}}   # other ways to say a value
        parallel: ["show me #{issue_id.1} and #{issue_id.2}"]     # .1 / .2: one call each
        near_misses: ["delete issue {issue_id}"]                  # answered in text
        results: [{result: {id: "{issue_id}", state: open}, answer: "#{issue_id} is open."}]
    follow_ups: [[{ask: ..., call: ..., result: ...}, {ask: ..., call: ..., args: {issue_id: "{ticket}"}}]]
    jobs: [{ask: ..., steps: [{call: ..., args: ..., result: ...}, ...], answer: ...}]

A slot names a parameter of the tool (or of the step's tool), or a named value. ``{p:words}`` writes a
small integer in words ("three"), ``{p:raw}`` the value exactly as drawn; ``{p=value}`` writes nothing
and gives ``p`` that value, for templates whose own words say it ("mark #{issue_id} as a dupe of
#{other_id}{relation=duplicates}"). A template without a required parameter's slot cannot make a valid
call and is refused. A slot that is a whole string in a structured result or in ``args`` keeps the
value's type (``"{issue_id}"`` stays an integer).

Loading never fails on one bad entry: ``phrasebook_check.check_phrasebook`` drops it and says where
(``file:line``) and why; the rest is used.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from tooltune.data.examples import DataError
from tooltune.toolspec import ToolSpec

FORMAT_VERSION = 1
SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([1-3]))?(?::([a-z]+)|(=[^{}]*))?\}")
# slot forms that write a part or a measure of the value ("{path:basename}", "{content:lines}"): they do
# not show the value itself, so a request's parameter slot cannot take one (its call would be a guess)
DERIVED = {"basename", "stem", "ext", "dir", "lines", "bytes", "count"}
MODIFIERS = {"words", "ordinal", "argv", "raw", "and"} | DERIVED


def derived_value(value: Any, modifier: str) -> Any:
    """What a :data:`DERIVED` slot form writes of ``value``: of a path, its last part ("app.py"), that
    without its extension ("app"), the extension (".py") or the folder ("src", "." for none); of a text,
    its lines or UTF-8 bytes; of a list, its items. ``ValueError`` when the value has no such part."""
    if modifier == "count":
        if not isinstance(value, list):
            raise ValueError(f"{{:count}} counts a list's items, got {value!r}")
        return len(value)
    if not isinstance(value, str):
        raise ValueError(f"{{:{modifier}}} takes text, got {value!r}")
    if modifier == "lines":
        return len(value.splitlines())
    if modifier == "bytes":
        return len(value.encode())
    path = value.rstrip("/")
    folder, _, base = path.rpartition("/")
    if modifier == "basename":
        return base
    if modifier == "dir":
        return folder or ("/" if path.startswith("/") else ".")
    stem, dot, ext = base.rpartition(".")
    if not stem:  # ".env", "Makefile": no extension
        stem, ext = base, ""
    return stem if modifier == "stem" else f".{ext}" if ext else ""


class Range(BaseModel):
    """Whole numbers from ``lo`` to ``hi``, both included: ``{range: [1, 20]}`` (written as numbers: not
    ``true``, ``"5"`` or ``2.0``, which a lenient reading would take for 1, 5 and 2)."""

    model_config = ConfigDict(extra="forbid")
    range: tuple[StrictInt, StrictInt]


class Compose(BaseModel):
    """A value written from named values, each part drawn afresh: ``{compose: "{dir}/{stem}{ext}"}``."""

    model_config = ConfigDict(extra="forbid")
    compose: str


class Sample(BaseModel):
    """A list of distinct items drawn from a pool: ``{sample: [bug, ui, backend, docs], k: [1, 3]}`` gives
    one to three different labels, in drawn order (``k`` one number, or the least and most; a least of 0
    may draw an empty list: a search that found nothing)."""

    model_config = ConfigDict(extra="forbid")
    sample: list[Any] = Field(min_length=1)
    k: int | tuple[int, int] = 1

    @field_validator("k", mode="before")
    @classmethod
    def _k_shape(cls, value: Any) -> Any:
        def count(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if count(value) or (isinstance(value, list | tuple) and len(value) == 2 and all(map(count, value))):
            return value
        raise ValueError(f"k is a number of items, or [least, most]; got {value!r}")

    def sizes(self) -> tuple[int, int]:
        return (self.k, self.k) if isinstance(self.k, int) else self.k


class Add(BaseModel):
    """A number another value of the same example plus an offset: ``{add: start_line, by: [5, 10, 20]}``
    (an end line a few lines after the call's start line) or ``by: {range: [5, 100]}``. ``add`` names a
    parameter of the tool (the same call's value) or a named value."""

    model_config = ConfigDict(extra="forbid")
    add: str
    by: Annotated[list[int | float], Field(min_length=1)] | Range

    @field_validator("by", mode="before")
    @classmethod
    def _by_shape(cls, value: Any) -> Any:
        def number(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

        if isinstance(value, list) and value and all(map(number, value)):
            return value
        if isinstance(value, Range):
            return value
        if isinstance(value, dict) and set(value) == {"range"}:
            ends = value["range"]
            if isinstance(ends, list | tuple) and len(ends) == 2 and all(type(v) is int for v in ends):
                return value
            raise ValueError(f"by: {{range: [lo, hi]}} takes two whole numbers; got {ends!r}")
        raise ValueError(f"by is a list of numbers or {{range: [lo, hi]}}; got {value!r}")

    def offset(self, rng: random.Random) -> int | float:
        if isinstance(self.by, Range):
            return rng.randint(*self.by.range)
        return rng.choice(self.by)

    def holds(self, base: Any, value: Any) -> bool:
        """``value`` is ``base`` plus one of this add's offsets."""
        numbers = [v for v in (base, value) if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) < 2:
            return False
        if isinstance(self.by, Range):
            return self.by.range[0] <= value - base <= self.by.range[1]
        return value - base in self.by

    def offsets(self) -> tuple[int | float, int | float]:
        """The least and the most offset."""
        values = list(self.by.range) if isinstance(self.by, Range) else self.by
        return min(values), max(values)


KeyPart = Literal["basename", "ext", "stem", "dir", "value"]


class Lookup(BaseModel):
    """A value chosen by another value of the same example: ``{lookup: path, table: {".py": [...],
    Dockerfile: [...]}, other: [...]}`` (a file body that fits the file's name). ``key`` names the parts of
    the looked-up value tried as the table's key, in order (default: its basename, then its extension; a
    part of :data:`DERIVED`, or ``value``, the value as written); the first part that is a key gives the
    pool one value is drawn from, else ``other`` (without it, a value no key fits leaves the call
    unused). ``lookup`` names a parameter of the tool (the same call's value) or a named value.
    ``along`` names another lookup of the same base and table shape whose draw this one follows: the
    value at the same place in its entry (a body's one-line summary drawn with the body)."""

    model_config = ConfigDict(extra="forbid")
    lookup: str
    table: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(min_length=1)
    key: list[KeyPart] = Field(default_factory=lambda: ["basename", "ext"], min_length=1)
    other: Annotated[list[Any], Field(min_length=1)] | None = None
    along: str | None = None

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("table", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:  # YAML reads `404:`, `true:` or `2027-01-04:` as no text
        return {_key_text(k): v for k, v in value.items()} if isinstance(value, dict) else value

    def pool(self, base: Any) -> list[Any] | None:
        """The values ``base`` chooses among: the table's entry for the first of its key parts that is a
        key, else ``other`` (None without it)."""
        for part in self.key:
            if part == "value":
                k: Any = _key_text(base)
            else:
                try:
                    k = derived_value(base, part)
                except ValueError:  # no such part (a number has no extension)
                    continue
            if isinstance(k, str) and k in self.table:
                return self.table[k]
        return self.other

    def places(self, base: Any, value: Any) -> set[int]:
        """Where ``value`` stands among the values ``base`` chooses among (none: it is not one of them)."""
        same = json.dumps(value, sort_keys=True, default=str)
        pool = self.pool(base) or []
        return {i for i, v in enumerate(pool) if json.dumps(v, sort_keys=True, default=str) == same}

    def holds(self, base: Any, value: Any) -> bool:
        """``value`` is one of the values ``base`` chooses among."""
        return bool(self.places(base, value))

    def same_shape(self, other: Lookup) -> bool:
        """Both tables pair place by place: the same base and key parts, the same keys, entries (and
        ``other``) of the same lengths."""
        return (
            (self.lookup, self.key) == (other.lookup, other.key)
            and {k: len(v) for k, v in self.table.items()} == {k: len(v) for k, v in other.table.items()}
            and len(self.other or []) == len(other.other or [])
        )


def _key_text(value: Any) -> str:
    """A lookup key, or a value looked up ``as written``, as text (a date YAML read unquoted too)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_key_text(v) for v in value)
    return json.dumps(value, default=str).strip('"')


class Choice(BaseModel):
    """One branch of a :class:`OneOf`: its weight and exactly one of a value, a list of values, a range
    or a composition."""

    model_config = ConfigDict(extra="forbid")
    weight: float = Field(gt=0, allow_inf_nan=False)
    value: Any = None
    values: list[Any] | None = Field(default=None, min_length=1)
    range: tuple[StrictInt, StrictInt] | None = None  # whole numbers, as Range's
    compose: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Choice:
        given = sorted(k for k in ("value", "values", "range", "compose") if getattr(self, k) is not None)
        if len(given) != 1:
            raise ValueError(f"a branch has a weight and one of value, values, range, compose; got {given}")
        return self

    @model_serializer
    def _as_written(self) -> dict[str, Any]:
        """Its weight and its one kind, as a book says it (so a saved book reads back the same)."""
        kind = next(k for k in ("value", "values", "range", "compose") if getattr(self, k) is not None)
        value = getattr(self, kind)
        return {"weight": self.weight, kind: list(value) if kind == "range" else value}

    def spec(self) -> ValueSpec:
        """The branch as a value spec of its own."""
        if self.values is not None:
            return self.values
        if self.range is not None:
            return Range(range=self.range)
        if self.compose is not None:
            return Compose(compose=self.compose)
        return [self.value]


class OneOf(BaseModel):
    """Branches drawn by weight: ``{one_of: [{weight: .2, value: x}, {weight: .8, compose: ...}]}``."""

    model_config = ConfigDict(extra="forbid")
    one_of: list[Choice] = Field(min_length=1)


def _value_kind(value: Any) -> str | None:
    """Which kind of value spec ``value`` is meant to be, so a mistake is reported against that kind."""
    if isinstance(value, list):
        return "list"
    kinds = {
        Range: "range", Compose: "compose", OneOf: "one_of", Sample: "sample", Add: "add", Lookup: "lookup"
    }  # fmt: skip
    if type(value) in kinds:  # already read (a book built in code, a copy)
        return kinds[type(value)]
    if isinstance(value, dict):
        return next(
            (k for k in ("range", "compose", "one_of", "sample", "add", "lookup") if k in value), None
        )
    return None


ValueSpec = Annotated[
    Annotated[list[Any], Tag("list")]
    | Annotated[Range, Tag("range")]
    | Annotated[Compose, Tag("compose")]
    | Annotated[OneOf, Tag("one_of")]
    | Annotated[Sample, Tag("sample")]
    | Annotated[Add, Tag("add")]
    | Annotated[Lookup, Tag("lookup")],
    Discriminator(
        _value_kind,
        custom_error_type="value_kind",
        custom_error_message=(
            "a list of values, or a mapping with range, compose, one_of, sample, add or lookup"
        ),
    ),
]


def is_text_field(name: str, tool: ToolSpec) -> bool:
    """``name`` (a record key or a slot) is a records' text field of ``tool``: it starts with ``_`` and is no
    parameter (a tool may have an ``_id`` parameter)."""
    return name.startswith("_") and name not in tool.properties


def draw_value(rng: random.Random, spec: ValueSpec, named: dict[str, ValueSpec]) -> Any:
    """One value of ``spec``; a composition's parts are the book's named values (``named``), each drawn
    afresh, so two paths in one example need not share a folder. A checked book composes no cycle."""
    if isinstance(spec, Range):
        lo, hi = spec.range
        return rng.randint(lo, hi)
    if isinstance(spec, Compose):
        return substitute(spec.compose, lambda n, _i, _m: value_text(draw_value(rng, named[n], named)))
    if isinstance(spec, OneOf):
        [branch] = rng.choices(spec.one_of, weights=[c.weight for c in spec.one_of])
        return draw_value(rng, branch.spec(), named)
    if isinstance(spec, Sample):
        lo, hi = spec.sizes()
        return rng.sample(spec.sample, rng.randint(lo, hi))
    if isinstance(spec, Add | Lookup):  # drawn where the example's other values are known (phrasebook_fill)
        raise TypeError("an add or lookup value is drawn beside the value it depends on")
    return rng.choice(spec)


def value_text(value: Any) -> str:
    """A value as a template writes it: text as is, a list as "a, b, c", anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(value_text(v) for v in value)
    return json.dumps(value)


class ResultShape(BaseModel):
    """A tool result (text, or a mapping/list sent as JSON) and an answer that uses it, kept by ``when``
    (per parameter of the call or named value, a JSON Schema its value must match) to the values it
    suits: "found nothing" for an empty list, "found {hits:and}" for the rest. ``values`` are the
    result's own, drawn once per result for its text and answer; a ``lookup`` or a ``compose`` among them
    may use the call's values (``body: {lookup: path, table: {.py: [...]}}``: the file the call read)."""

    model_config = ConfigDict(extra="forbid")
    result: str | dict[str, Any] | list[Any]
    answer: str | None = None
    when: dict[str, Any] | None = None
    values: dict[str, ValueSpec] = Field(default_factory=dict)


class RequestGroup(BaseModel):
    """Request templates drawn together at a weight: ``{weight: 70, ask: ["open {path}", ...]}`` beside
    ``{weight: 15, ask: [...]}`` makes the first group's phrasings 70/15 as likely as the second's (a
    template of a group is drawn uniformly within it; a plain template counts as a group of one at
    weight 1, and so does a group without ``weight``). ``when`` keeps the group's phrasings to calls whose
    values fit: per parameter, a JSON Schema its value must match (``{content: {not: {pattern:
    "\\n"}}}``: content without a line break); a call that does not fit is not written this way (a
    phrasing and values are drawn again)."""

    model_config = ConfigDict(extra="forbid")
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    ask: list[str] = Field(min_length=1)
    when: Any = Field(default_factory=dict)  # checked by the checker, so a bad one drops only its group


def has_ref(schema: Any) -> bool:
    """A schema that points elsewhere (``$ref``, ``$dynamicRef``): a ``when`` must be whole in itself."""
    if isinstance(schema, dict):
        return bool({"$ref", "$dynamicRef"} & set(schema)) or any(has_ref(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_ref(v) for v in schema)
    return False


def _template_text(value: Any) -> Any:
    if isinstance(value, dict):  # `- remind me: {text}` unquoted: YAML reads a mapping
        raise ValueError(
            "a mapping where a request template was expected: quote a template that holds ': ' (YAML "
            "reads `remind me: {text}` as a mapping), or write a group as {weight: 3, ask: [...]}"
        )
    return value


def _request_kind(value: Any) -> str:
    """A mapping with ``weight`` or ``ask`` is a group (its errors are its own); anything else a template."""
    return "group" if isinstance(value, dict) and {"weight", "ask"} & set(value) else "template"


# a request template, or a weighted group of them
RequestEntry = Annotated[
    Annotated[str, BeforeValidator(_template_text), Tag("template")] | Annotated[RequestGroup, Tag("group")],
    Discriminator(_request_kind),
]


def _templates(entries: list[str | RequestGroup]) -> list[str]:
    return [t for r in entries for t in ([r] if isinstance(r, str) else r.ask)]


def _weights(entries: list[str | RequestGroup]) -> list[float] | None:
    """Each template's chance weight (a group's weight shared by its templates); None without groups."""
    if all(isinstance(r, str) for r in entries):
        return None
    return [
        w for r in entries for w in ([1.0] if isinstance(r, str) else [r.weight / len(r.ask)] * len(r.ask))
    ]


class ToolPhrases(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: list[RequestEntry] = Field(default_factory=list)
    values: dict[str, ValueSpec] = Field(default_factory=dict)
    # values that belong together (a command and its arguments): one record fills every slot of its
    # parameters in one call
    records: list[dict[str, Any]] = Field(default_factory=list)
    say: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    # how a parameter's values are said when no ``say`` form is given: "date", "time", "datetime" or
    # "minutes" (tooltune.data.spoken_forms): "2027-01-04" written "Jan 4, 2027", 90 "an hour and a half"
    forms: dict[str, str] = Field(default_factory=dict)
    # two or three calls at once: templates, or weighted groups of them (as requests; no `when`)
    parallel: list[RequestEntry] = Field(default_factory=list)
    near_misses: list[str] = Field(default_factory=list)
    results: list[ResultShape] = Field(default_factory=list)

    def request_templates(self) -> list[str]:
        """Every request template, those of weighted groups included, in the book's order."""
        return _templates(self.requests)

    def parallel_templates(self) -> list[str]:
        """Every parallel template, those of weighted groups included, in the book's order."""
        return _templates(self.parallel)

    def parallel_weights(self) -> list[float] | None:
        """Each of :meth:`parallel_templates`' chance weight, as :meth:`request_weights`'."""
        return _weights(self.parallel)

    def request_conditions(self) -> dict[str, dict[str, Any]]:
        """Each template of a group with ``when``: its parameters' schemas (templates are distinct)."""
        return {
            t: r.when
            for r in self.requests
            if not isinstance(r, str) and isinstance(r.when, dict) and r.when
            for t in r.ask
        }

    def request_weights(self) -> list[float] | None:
        """Each of :meth:`request_templates`' chance weight (a group's weight shared by its templates);
        None when the book gives no group, and every template is as likely as another."""
        return _weights(self.requests)

    @field_validator("say", mode="before")
    @classmethod
    def _say_keys_as_text(cls, value: Any) -> Any:
        """YAML reads ``true:`` and ``90:`` as a boolean and a number: keys are the value's JSON text."""
        if not isinstance(value, dict):
            return value
        return {
            p: {k if isinstance(k, str) else json.dumps(k): v for k, v in forms.items()}
            if isinstance(forms, dict)
            else forms
            for p, forms in value.items()
        }


Ask = str | Annotated[list[str], Field(min_length=1)]  # one request, or several ways to say it (one drawn)


def asks(ask: Ask) -> list[str]:
    """The ways a step or job may be asked."""
    return [ask] if isinstance(ask, str) else list(ask)


class FollowStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ask: Ask
    call: str
    args: dict[str, Any] = Field(default_factory=dict)
    result: str | dict[str, Any] | list[Any] | None = None


class JobStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call: str
    args: dict[str, Any] = Field(default_factory=dict)
    result: str | dict[str, Any] | list[Any] | None = None
    authored: list[str] = Field(
        default_factory=list,
        description="Arguments the model writes itself (an edited file's new content): their values come "
        "from the book's slots but need not be shown by the request or a result before the step.",
    )


class Job(BaseModel):
    """One request that takes several calls, each using what the one before returned, then an answer."""

    model_config = ConfigDict(extra="forbid")
    ask: Ask
    steps: list[JobStep] = Field(min_length=1)
    answer: str


Word = Annotated[str, Field(pattern=r"^[^\s]+$")]


class PolishWords(BaseModel):
    """The book's own words for the casual surface the generator gives a request (``polish.py``):
    ``verbs`` may follow "please"/"can you" besides the common English verbs its templates start with
    ("can you bump #12 to P0?"); a request that opens with one of the ``shell_words`` is a typed command
    and gets no "please" or "hey," ("ok, pytest -x", never "please pytest -x")."""

    model_config = ConfigDict(extra="forbid")
    verbs: list[Word] = Field(default_factory=list)
    shell_words: list[Word] = Field(default_factory=list)


class RelativeDates(BaseModel):
    """Dates said against a today the system prompt states (:mod:`tooltune.data.relative_dates`): in
    ``share`` of the conversations, the ``date`` and ``datetime`` forms' values are said "tomorrow", "on
    Tuesday", "tonight at 9", and the conversation opens with a system line saying what today is, in
    one of ``system`` (``{date}`` the ISO date, ``{weekday}``, ``{spoken}`` "March 12, 2027"; default:
    a few common ones). Write your agent's own line there if its system prompt states the date."""

    model_config = ConfigDict(extra="forbid")
    share: float = Field(gt=0, le=1, allow_inf_nan=False)
    system: list[str] = Field(default_factory=list)

    @field_validator("system")
    @classmethod
    def _dated(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if "{date}" not in line and "{spoken}" not in line:
                raise ValueError(f"system line {line!r} does not say the date ({{date}} or {{spoken}})")
            try:
                line.format(date="", weekday="", spoken="")
            except (KeyError, IndexError, ValueError, AttributeError) as e:  # {date.year}: AttributeError
                why = f"system line {line!r}: only {{date}}, {{weekday}} and {{spoken}} ({e})"
                raise ValueError(why) from e
        return lines


class Phrasebook(BaseModel):
    """A phrasebook as written; ``phrasebook_check.check_phrasebook`` fits it to a tool set."""

    model_config = ConfigDict(extra="forbid")
    phrasebook: int = FORMAT_VERSION
    name: str = ""
    values: dict[str, ValueSpec] = Field(default_factory=dict)
    tools: dict[str, ToolPhrases] = Field(default_factory=dict)
    follow_ups: list[list[FollowStep]] = Field(default_factory=list)
    jobs: list[Job] = Field(default_factory=list)
    polish: PolishWords | None = None
    relative_dates: RelativeDates | None = None

    def digest(self) -> str:
        """Content hash (sha256 prefix) of the book as used: part of a dataset's recorded sources."""
        data = self.model_dump(mode="json")
        if data["relative_dates"] is None:  # books without relative dates keep their digest
            del data["relative_dates"]
        if not any((data["polish"] or {}).values()):  # books without `polish` words keep their digest
            del data["polish"]
        for phrases in data["tools"].values():  # books written before records keep their digest
            for added in ("records", "forms"):  # and books written before records or forms
                if not phrases[added]:
                    del phrases[added]
            for entry in phrases["requests"]:  # and groups written before `when`
                if isinstance(entry, dict) and not entry.get("when"):
                    entry.pop("when", None)
            for shape in phrases["results"]:  # and results written before `when` or their own values
                for added in ("when", "values"):
                    if not shape.get(added):
                        shape.pop(added, None)
        for job in data["jobs"]:  # and jobs written before `authored`
            for step in job["steps"]:
                if not step["authored"]:
                    del step["authored"]
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def counts(self) -> dict[str, int]:
        return {
            "tools": len(self.tools),
            "requests": sum(len(t.request_templates()) for t in self.tools.values()),
            "parallel": sum(len(t.parallel_templates()) for t in self.tools.values()),
            "near_misses": sum(len(t.near_misses) for t in self.tools.values()),
            "results": sum(len(t.results) for t in self.tools.values()),
            "follow_ups": len(self.follow_ups),
            "jobs": len(self.jobs),
        }


class PhrasebookIssue(BaseModel):
    """One finding: ``where`` is a path into the book (``tools.get_issue.requests[2]``), ``line`` its
    line in the file when read from one."""

    severity: str  # "error" (the entry is dropped) or "warning" (kept)
    where: str
    message: str
    line: int | None = None
    source: str = ""

    def __str__(self) -> str:
        at = f"{self.source}:{self.line}" if self.source and self.line else self.source or "phrasebook"
        return f"{at}: {self.where}: {self.message}"


class CheckedBook(BaseModel):
    """The usable part of a book for a tool set, and what was dropped or looks wrong."""

    book: Phrasebook
    issues: list[PhrasebookIssue] = Field(default_factory=list)
    # where a kept template sits in the file ("tools.x.requests[1]" kept -> "tools.x.requests[3]" written):
    # the checker drops entries, so a later finding about a kept one names the file's own place
    origins: dict[str, str] = Field(default_factory=dict)

    @property
    def errors(self) -> list[PhrasebookIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[PhrasebookIssue]:
        return [i for i in self.issues if i.severity == "warning"]


def template_parts(template: str) -> list[str]:
    """The template split at ``{{`` and ``}}`` (literal braces, kept as their own parts): slots are
    found in the other parts only, the same way when checking and when filling."""
    return re.split(r"(\{\{|\}\})", template)


def slots(template: str) -> list[tuple[str, int | None, str | None]]:
    """The ``(name, index, modifier)`` of each slot in ``template`` (``{{``/``}}`` are literal braces)."""
    return [
        (m[1], int(m[2]) if m[2] else None, m[3] or m[4])
        for part in template_parts(template)
        if part not in ("{{", "}}")
        for m in SLOT.finditer(part)
    ]


def substitute(template: str, value_for: Any) -> str:
    """Replace each slot with ``value_for(name, index, modifier)``; ``{{``/``}}`` are literal braces."""
    out: list[str] = []
    for part in template_parts(template):
        if part in ("{{", "}}"):
            out.append(part[0])
            continue
        out.append(SLOT.sub(lambda m: value_for(m[1], int(m[2]) if m[2] else None, m[3] or m[4]), part))
    return "".join(out)


def literal_text(template: str) -> str:
    """What a template says besides its slots."""
    return "".join(SLOT.sub("", p) for p in template_parts(template) if p not in ("{{", "}}")).strip()


def say_key_value(key: str, schema: Any) -> Any:
    """A ``say`` key as the value it names: JSON for non-string types (``"true"``, ``"90"``)."""
    if isinstance(schema, dict) and schema.get("type") not in (None, "string"):
        try:
            return json.loads(key)
        except ValueError:
            return key
    return key


def templates_in(obj: Any) -> list[str]:
    """Every string leaf of a structured result (where slots may stand)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in templates_in(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in templates_in(v)]
    return []


# --- reading ---------------------------------------------------------------------------------------
def _line_map(text: str) -> dict[tuple[str | int, ...], int]:
    """Path (keys and list indexes) -> 1-based line, from YAML's node marks (JSON is YAML too)."""
    out: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        out[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                out[(*path, key)] = k.start_mark.line + 1
                walk(v, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    if root is not None:
        walk(root, ())
    return out


class BookText(BaseModel):
    """A parsed book with where its entries sit in the file it came from, and the entries whose shape
    was wrong (dropped while reading; ``phrasebook_check.check_phrasebook`` reports them with the rest)."""

    book: Phrasebook
    source: str = ""
    lines: dict[str, int] = Field(default_factory=dict)
    shape_issues: list[PhrasebookIssue] = Field(default_factory=list)


def _path_key(path: tuple[str | int, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def parse_phrasebook(text: str, source: str = "") -> BookText:
    """Parse YAML or JSON text into a :class:`Phrasebook`; structural errors name ``source:line``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{source}:{mark.line + 1}" if mark is not None and source else source or "phrasebook"
        raise DataError(f"{at}: not valid YAML/JSON: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise DataError(f"{source or 'phrasebook'}: a phrasebook is a mapping with a 'tools' key")
    lines = {_path_key(p): n for p, n in _line_map(text).items()}
    book, issues = _validate(_dates_as_text(data), source, lines)
    return BookText(book=book, source=source, lines=lines, shape_issues=issues)


def _dates_as_text(node: Any) -> Any:
    """YAML reads an unquoted ``2027-01-04`` (or ``2027-01-04 19:15:00``) as a date: a book means the text
    it wrote, as a tool's string parameter takes it, so keys and values are that text again."""
    if isinstance(node, dict):
        return {_dates_as_text(k): _dates_as_text(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_dates_as_text(v) for v in node]
    return str(node) if isinstance(node, date | datetime) else node


_SECTIONS: dict[str, Any] = {"values": ValueSpec, "tools": ToolPhrases}
_LISTS: dict[str, Any] = {"follow_ups": list[FollowStep], "jobs": Job}


_TAGS = {"list", "range", "compose", "one_of", "sample", "add", "lookup"}
_ENTRY_TAGS = {"template", "group"}  # a request entry's kind, after its index


def _without_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """An error's location without the value-kind tag pydantic puts before the kind's own field
    (``values.x.range.range[1]`` is ``values.x.range[1]`` in the file)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        following = loc[i + 1] if i + 1 < len(loc) else None
        if part in _TAGS and (following == part or (part == "list" and isinstance(following, int))):
            continue
        if (part, following) in (  # a kind's other field
            ("sample", "k"), ("add", "by"),
            ("lookup", "table"), ("lookup", "key"), ("lookup", "other"), ("lookup", "along"),
        ):  # fmt: skip
            continue
        if (
            part in _ENTRY_TAGS
            and i >= 2
            and isinstance(loc[i - 1], int)
            and loc[i - 2] in ("requests", "parallel")
        ):
            continue
        out.append(part)
    return tuple(out)


def _validate(
    data: dict[str, Any], source: str, lines: dict[str, int]
) -> tuple[Phrasebook, list[PhrasebookIssue]]:
    """Each entry (a named value, a tool, a follow-up, a job) is read on its own: one with a wrong
    shape is dropped and reported (``file:line``), the rest is kept. Only an unusable top level (an
    unknown key, a section of the wrong type, another format version) refuses the book."""
    where = source or "phrasebook"
    version = data.get("phrasebook", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise DataError(
            f"{where}: phrasebook format {version!r} is not supported (this tooltune reads format "
            f"{FORMAT_VERSION})"
        )
    unknown = sorted(set(data) - {"phrasebook", "name", "polish", "relative_dates", *_SECTIONS, *_LISTS})
    if unknown:
        raise DataError(
            f"{where}: unknown key(s) {unknown}; a phrasebook has name, values, tools, follow_ups, jobs, "
            "polish, relative_dates"
        )
    issues: list[PhrasebookIssue] = []
    kept: dict[str, Any] = {"phrasebook": FORMAT_VERSION, "name": str(data.get("name") or "")}

    def bad(path: tuple[str | int, ...], e: ValidationError) -> None:
        err = e.errors()[0]
        full = _path_key((*path, *_without_tags(err["loc"])))
        line = lines.get(full) or lines.get(_path_key(path))
        issues.append(
            PhrasebookIssue(severity="error", where=full, message=str(err["msg"]), line=line, source=source)
        )

    for key, kind in _SECTIONS.items():
        section = data.get(key) or {}
        if not isinstance(section, dict):
            raise DataError(f"{where}: {key} must be a mapping, got {type(section).__name__}")
        kept[key] = {}
        for name, entry in section.items():
            try:
                kept[key][str(name)] = TypeAdapter(kind).validate_python(entry)
            except ValidationError as e:
                bad((key, str(name)), e)
    for key, kind in _LISTS.items():
        section = data.get(key) or []
        if not isinstance(section, list):
            raise DataError(f"{where}: {key} must be a list, got {type(section).__name__}")
        kept[key] = []
        for i, entry in enumerate(section):
            try:
                kept[key].append(TypeAdapter(kind).validate_python(entry))
            except ValidationError as e:
                bad((key, i), e)
    if data.get("polish") is not None:
        kept["polish"] = _polish_words(data["polish"], source, lines, issues)
    if data.get("relative_dates") is not None:
        try:  # a wrong one is left out (the book stands, with its dates said absolutely)
            kept["relative_dates"] = RelativeDates.model_validate(data["relative_dates"])
        except ValidationError as e:
            bad(("relative_dates",), e)
    return Phrasebook.model_validate(kept), issues


def _polish_words(
    raw: Any, source: str, lines: dict[str, int], issues: list[PhrasebookIssue]
) -> dict[str, list[str]]:
    """The ``polish`` section: each word that is one (no space) is kept; anything else is named with its
    line and left out, and the book stands."""

    def issue(path: str, message: str) -> None:
        line = lines.get(path) or lines.get("polish")
        issues.append(
            PhrasebookIssue(severity="error", where=path, message=message, line=line, source=source)
        )

    if not isinstance(raw, dict):
        issue("polish", "polish is a mapping with verbs and shell_words (lists of words); left out")
        return {}
    for key in sorted(set(raw) - {"verbs", "shell_words"}):
        issue(f"polish.{key}", f"unknown key {key!r} in polish (it has verbs and shell_words); left out")
    kept: dict[str, list[str]] = {}
    for key in ("verbs", "shell_words"):
        words = raw.get(key)
        if words is None:
            continue
        if not isinstance(words, list):
            issue(f"polish.{key}", f"{key} is a list of words; left out")
            continue
        kept[key] = []
        for i, word in enumerate(words):
            if isinstance(word, str) and word.strip() and not any(c.isspace() for c in word):
                kept[key].append(word)
            else:
                issue(f"polish.{key}[{i}]", f"{word!r} is not one word; left out")
    return kept


def load_phrasebook(path: Path) -> BookText:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read phrasebook {path}: {e.strerror or e}") from None
    return parse_phrasebook(text, source=str(path))


def phrasebook_from_object(obj: dict[str, Any] | str, source: str = "phrasebook") -> BookText:
    """A book handed over inline (MCP argument): a mapping, or YAML/JSON text."""
    if isinstance(obj, str):
        return parse_phrasebook(obj, source=source)
    if not isinstance(obj, dict):
        raise DataError(f"{source}: a phrasebook is a mapping with a 'tools' key")
    book, issues = _validate(obj, source, {})
    return BookText(book=book, source=source, shape_issues=issues)
