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

Loading never fails on one bad entry: :func:`check_phrasebook` drops it and says where (``file:line``)
and why; the rest is used.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from tooltune.data.examples import DataError
from tooltune.data.phrasing import mentions_all
from tooltune.toolspec import ToolSpec

FORMAT_VERSION = 1
SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([1-3]))?(?::([a-z]+)|(=[^{}]*))?\}")
MODIFIERS = {"words", "raw"}
# schema read-back: the wording a phrasebook exists to replace
_READ_BACK = re.compile(r"\b(set to|with (the )?\w+ (of|as)|where the \w+ is)\b", re.I)


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    range: tuple[int, int]


class Compose(BaseModel):
    """A value written from named values, each part drawn afresh: ``{compose: "{dir}/{stem}{ext}"}``."""

    model_config = ConfigDict(extra="forbid")
    compose: str


class Sample(BaseModel):
    """A list of distinct items drawn from a pool: ``{sample: [bug, ui, backend, docs], k: [1, 3]}`` gives
    one to three different labels, in drawn order (``k`` one number, or the least and most)."""

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


class Choice(BaseModel):
    """One branch of a :class:`OneOf`: its weight and exactly one of a value, a list of values, a range
    or a composition."""

    model_config = ConfigDict(extra="forbid")
    weight: float = Field(gt=0, allow_inf_nan=False)
    value: Any = None
    values: list[Any] | None = Field(default=None, min_length=1)
    range: tuple[int, int] | None = None
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
    if isinstance(value, Range | Compose | OneOf | Sample):  # already read (a book built in code, a copy)
        return {Range: "range", Compose: "compose", OneOf: "one_of", Sample: "sample"}[type(value)]
    if isinstance(value, dict):
        return next((k for k in ("range", "compose", "one_of", "sample") if k in value), None)
    return None


ValueSpec = Annotated[
    Annotated[list[Any], Tag("list")]
    | Annotated[Range, Tag("range")]
    | Annotated[Compose, Tag("compose")]
    | Annotated[OneOf, Tag("one_of")]
    | Annotated[Sample, Tag("sample")],
    Discriminator(
        _value_kind,
        custom_error_type="value_kind",
        custom_error_message="a list of values, or a mapping with range, compose, one_of or sample",
    ),
]


def _composition_parts(spec: ValueSpec) -> tuple[set[str], list[str]]:
    """The named values a composition (or a weighted choice's compositions and ranges) draws on, and what
    is wrong with it."""
    branches = spec.one_of if isinstance(spec, OneOf) else []
    templates = [spec.compose] if isinstance(spec, Compose) else [c.compose for c in branches if c.compose]
    wrong = [
        f"range [{lo}, {hi}] is empty"
        for c in branches
        if c.range and (lo := c.range[0]) > (hi := c.range[1])
    ]
    refs: set[str] = set()
    for template in templates:
        for name, index, modifier in slots(template):
            refs.add(name)
            if index is not None or modifier is not None:
                wrong.append(f"{{{name}}} in a composition takes no index, modifier or value")
    return refs, wrong


def _text_field_problem(texts: dict[str, Any], params: dict[str, Any], tool: ToolSpec) -> str | None:
    """What is wrong with a record's text fields: each is text that shows every value of the record, and
    a record with one holds every required parameter (its ``{_field}`` slot makes the whole call)."""
    for key, text in texts.items():
        if not isinstance(text, str):
            return f"{key}: a text field holds text, got {text!r}"
        if not mentions_all(text, params):
            return f"{key}: {text!r} does not show every value of its record ({', '.join(params)})"
    missing = [r for r in tool.required if r not in params]
    if texts and missing:
        return (
            f"a record with a text field holds every required parameter; this one lacks {', '.join(missing)}"
        )
    return None


def is_text_field(name: str, tool: ToolSpec) -> bool:
    """``name`` (a record key or a slot) is a records' text field of ``tool``: it starts with ``_`` and is no
    parameter (a tool may have an ``_id`` parameter)."""
    return name.startswith("_") and name not in tool.properties


def _reachable(start: str, refs: dict[str, set[str]]) -> set[str]:
    """The names reachable from ``start`` through ``refs`` (not ``start`` itself unless by a cycle)."""
    seen: set[str] = set()
    todo = list(refs.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(refs.get(name, ()))
    return seen


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
    return rng.choice(spec)


def value_text(value: Any) -> str:
    """A value as a template writes it: text as is, a list as "a, b, c", anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(value_text(v) for v in value)
    return json.dumps(value)


class ResultShape(BaseModel):
    """A tool result (text, or a mapping/list sent as JSON) and an answer that uses it."""

    model_config = ConfigDict(extra="forbid")
    result: str | dict[str, Any] | list[Any]
    answer: str | None = None


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


def _has_ref(schema: Any) -> bool:
    """A schema that points elsewhere (``$ref``, ``$dynamicRef``): a ``when`` must be whole in itself."""
    if isinstance(schema, dict):
        return bool({"$ref", "$dynamicRef"} & set(schema)) or any(_has_ref(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_ref(v) for v in schema)
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


class ToolPhrases(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: list[RequestEntry] = Field(default_factory=list)
    values: dict[str, ValueSpec] = Field(default_factory=dict)
    # values that belong together (a command and its arguments): one record fills every slot of its
    # parameters in one call
    records: list[dict[str, Any]] = Field(default_factory=list)
    say: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    parallel: list[str] = Field(default_factory=list)
    near_misses: list[str] = Field(default_factory=list)
    results: list[ResultShape] = Field(default_factory=list)

    def request_templates(self) -> list[str]:
        """Every request template, those of weighted groups included, in the book's order."""
        return [t for r in self.requests for t in ([r] if isinstance(r, str) else r.ask)]

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
        if all(isinstance(r, str) for r in self.requests):
            return None
        return [
            w
            for r in self.requests
            for w in ([1.0] if isinstance(r, str) else [r.weight / len(r.ask)] * len(r.ask))
        ]

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


class Phrasebook(BaseModel):
    """A phrasebook as written; :func:`check_phrasebook` fits it to a tool set."""

    model_config = ConfigDict(extra="forbid")
    phrasebook: int = FORMAT_VERSION
    name: str = ""
    values: dict[str, ValueSpec] = Field(default_factory=dict)
    tools: dict[str, ToolPhrases] = Field(default_factory=dict)
    follow_ups: list[list[FollowStep]] = Field(default_factory=list)
    jobs: list[Job] = Field(default_factory=list)
    polish: PolishWords | None = None

    def digest(self) -> str:
        """Content hash (sha256 prefix) of the book as used: part of a dataset's recorded sources."""
        data = self.model_dump(mode="json")
        if not any((data["polish"] or {}).values()):  # books without `polish` words keep their digest
            del data["polish"]
        for phrases in data["tools"].values():  # books written before records keep their digest
            if not phrases["records"]:
                del phrases["records"]
            for entry in phrases["requests"]:  # and groups written before `when`
                if isinstance(entry, dict) and not entry.get("when"):
                    entry.pop("when", None)
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def counts(self) -> dict[str, int]:
        return {
            "tools": len(self.tools),
            "requests": sum(len(t.request_templates()) for t in self.tools.values()),
            "parallel": sum(len(t.parallel) for t in self.tools.values()),
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


def _templates_in(obj: Any) -> list[str]:
    """Every string leaf of a structured result (where slots may stand)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _templates_in(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _templates_in(v)]
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
    was wrong (dropped while reading; :func:`check_phrasebook` reports them with the rest)."""

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
    book, issues = _validate(data, source, lines)
    return BookText(book=book, source=source, lines=lines, shape_issues=issues)


_SECTIONS: dict[str, Any] = {"values": ValueSpec, "tools": ToolPhrases}
_LISTS: dict[str, Any] = {"follow_ups": list[FollowStep], "jobs": Job}


_TAGS = {"list", "range", "compose", "one_of", "sample"}
_ENTRY_TAGS = {"template", "group"}  # a request entry's kind, after its index


def _without_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """An error's location without the value-kind tag pydantic puts before the kind's own field
    (``values.x.range.range[1]`` is ``values.x.range[1]`` in the file)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        following = loc[i + 1] if i + 1 < len(loc) else None
        if part in _TAGS and (following == part or (part == "list" and isinstance(following, int))):
            continue
        if part == "sample" and following == "k":  # the sample kind's other field
            continue
        if part in _ENTRY_TAGS and i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] == "requests":
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
    unknown = sorted(set(data) - {"phrasebook", "name", "polish", *_SECTIONS, *_LISTS})
    if unknown:
        raise DataError(
            f"{where}: unknown key(s) {unknown}; a phrasebook has name, values, tools, follow_ups, jobs, "
            "polish"
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


# --- checking against a tool set -------------------------------------------------------------------
class _Checker:
    def __init__(self, text: BookText, tools: list[ToolSpec]) -> None:
        self.text = text
        self.by_name = {t.name: t for t in tools}
        self.issues: list[PhrasebookIssue] = []
        self.named = set(text.book.values)
        self.named_specs: dict[str, ValueSpec] = {}  # the top-level values kept, once checked
        self.text_fields: dict[str, set[str]] = {}  # per tool: its records' text fields ("_line")
        self.kept_records: dict[str, list[dict[str, Any]]] = {}
        self.origins: dict[str, str] = {}

    def add(self, severity: str, where: str, message: str) -> None:
        line = self.text.lines.get(where)
        self.issues.append(
            PhrasebookIssue(
                severity=severity, where=where, message=message, line=line, source=self.text.source
            )
        )

    def value_ok(self, tool: ToolSpec, param: str, value: Any) -> bool:
        schema = tool.properties.get(param)
        if not isinstance(schema, dict):
            return False
        return Draft202012Validator(schema).is_valid(value)

    def check_values(
        self, where: str, specs: dict[str, ValueSpec], tool: ToolSpec | None
    ) -> dict[str, ValueSpec]:
        kept: dict[str, ValueSpec] = {}
        composed: dict[str, Compose | OneOf] = {}
        for name, spec in specs.items():
            at = f"{where}.{name}"
            if isinstance(spec, Compose | OneOf):
                composed[name] = spec  # after the plain values: their parts may be among them
                continue
            if isinstance(spec, Range):
                lo, hi = spec.range
                if lo > hi:
                    self.add("error", at, f"range [{lo}, {hi}] is empty")
                    continue
                if tool is not None and not (self.value_ok(tool, name, lo) and self.value_ok(tool, name, hi)):
                    self.add("error", at, f"range [{lo}, {hi}] does not fit the schema of {tool.name}.{name}")
                    continue
                kept[name] = spec
                continue
            if isinstance(spec, Sample):
                if (problem := self._sample_problem(spec, tool, name)) is not None:
                    self.add("error", at, problem)
                    continue
                kept[name] = spec
                continue
            if tool is None:
                good = list(spec)
            else:
                if name not in tool.properties:
                    self.add("error", at, f"{tool.name} has no parameter {name!r}")
                    continue
                good = []
                for i, v in enumerate(spec):
                    if self.value_ok(tool, name, v):
                        good.append(v)
                    else:
                        self.add(
                            "error", f"{at}[{i}]", f"{v!r} does not fit the schema of {tool.name}.{name}"
                        )
            if not good:
                self.add("error", at, "no usable values")
                continue
            kept[name] = good
        self._check_composed(where, composed, tool, kept)
        return kept

    def _sample_problem(self, spec: Sample, tool: ToolSpec | None, name: str) -> str | None:
        """What is wrong with a sample: sizes out of order or beyond its pool, repeated items (they would
        not be distinct), or (for a parameter) a list of the least or most items the schema refuses."""
        lo, hi = spec.sizes()
        if not 1 <= lo <= hi <= len(spec.sample):
            return (
                f"k {list(spec.sizes())} must be from 1 to the pool's {len(spec.sample)} items, least first"
            )
        if len({json.dumps(v, sort_keys=True) for v in spec.sample}) < len(spec.sample):
            return "the pool repeats an item: a sample's items are distinct"
        if tool is None:
            return None
        if name not in tool.properties:
            return f"{tool.name} has no parameter {name!r}"
        kind = tool.properties[name].get("type") if isinstance(tool.properties[name], dict) else None
        if kind is not None and kind != "array" and "array" not in (kind if isinstance(kind, list) else []):
            return f"a sample gives a list, and {tool.name}.{name} takes {kind}: use a list of values"
        for size in (lo, hi):
            for start in range(len(spec.sample) - size + 1):
                if not self.value_ok(tool, name, spec.sample[start : start + size]):
                    return (
                        f"{spec.sample[start : start + size]!r} does not fit the schema of {tool.name}.{name}"
                    )
        return None

    def _check_composed(
        self,
        where: str,
        composed: dict[str, Compose | OneOf],
        tool: ToolSpec | None,
        kept: dict[str, ValueSpec],
    ) -> None:
        """Add to ``kept`` the compositions and weighted choices whose parts are named values that were
        kept (at the top level, kept compositions may be parts of others) and whose values fit the
        parameter's schema; the others are dropped and named."""
        pool = kept if tool is None else self.named_specs
        parts = {name: _composition_parts(spec) for name, spec in composed.items()}
        pending = dict(composed)
        while pending:
            progress = False
            for name, spec in list(pending.items()):
                refs, wrong = parts[name]
                waiting = refs & set(pending) - {name} if tool is None else set()
                missing = sorted(refs - set(pool) - waiting)
                if waiting and not (wrong or missing or name in refs):
                    continue  # its parts are still being checked
                del pending[name]
                progress = True
                if wrong:
                    problem: str | None = wrong[0]
                elif name in refs:
                    problem = f"composes {{{name}}}, itself"
                elif missing:
                    problem = f"composes {', '.join(missing)}: not a named value (or one dropped)"
                else:
                    problem = self._misfit(spec, pool, tool, name)
                if problem:
                    self.add("error", f"{where}.{name}", problem)
                else:
                    kept[name] = spec
            if not progress:  # what is left waits on itself, through other named values
                for name in pending:
                    cycle = name in _reachable(name, {n: parts[n][0] for n in pending})
                    why = "itself, through other named values" if cycle else "values that compose themselves"
                    self.add("error", f"{where}.{name}", f"composes {why}")
                return

    def _misfit(
        self, spec: ValueSpec, pool: dict[str, ValueSpec], tool: ToolSpec | None, name: str
    ) -> str | None:
        """What does not fit ``tool``'s parameter ``name`` (no tool: nothing to fit), or None: a branch's
        value, values and range are checked one by one, a composition by 30 draws."""
        if tool is None:
            return None
        if name not in tool.properties:
            return f"{tool.name} has no parameter {name!r}"
        branches = spec.one_of if isinstance(spec, OneOf) else [None]
        rng = random.Random(0)
        for i, branch in enumerate(branches):
            at = f"one_of[{i}]: " if branch is not None else ""
            part = branch.spec() if branch is not None else spec
            if isinstance(part, Range):
                values = list(part.range)
            elif isinstance(part, Compose):
                values = [draw_value(rng, part, pool) for _ in range(30)]
            else:
                values = list(part) if isinstance(part, list) else []
            for value in values:
                if not self.value_ok(tool, name, value):
                    return f"{at}{value!r} does not fit the schema of {tool.name}.{name}"
        return None

    def check_records(
        self, where: str, records: list[dict[str, Any]], tool: ToolSpec
    ) -> list[dict[str, Any]]:
        """Records whose every key is a parameter of ``tool`` and every value fits its schema; any other is
        dropped and named (the rest are used)."""
        kept: list[dict[str, Any]] = []
        for i, record in enumerate(records):
            at = f"{where}[{i}]"
            texts = {k: v for k, v in record.items() if is_text_field(k, tool)}  # "_line": what it says
            params = {k: v for k, v in record.items() if k not in texts}
            unknown = sorted(k for k in params if k not in tool.properties)
            if unknown or not params:
                what = (
                    f"{tool.name} has no parameter(s) {', '.join(unknown)}"
                    if unknown
                    else "a record with no parameter"
                )
                self.add("error", at, what)
                continue
            bad = sorted(k for k, v in params.items() if not self.value_ok(tool, k, v))
            if bad:
                self.add(
                    "error", at, f"{', '.join(f'{k}={record[k]!r}' for k in bad)} does not fit the schema"
                )
                continue
            if problem := _text_field_problem(texts, params, tool):
                self.add("error", at, problem)
                continue
            kept.append(record)
        return kept

    def template_ok(
        self, where: str, template: str, tool: ToolSpec, *, call: bool, indexed: bool = False
    ) -> bool:
        """A request template: every slot known, every required parameter present when it makes a
        call (indexed: each of .1 and .2, or .1, .2 and .3, present)."""
        found = slots(template)
        for name, index, mod in found:
            if mod is not None and mod.startswith("="):  # {relation=duplicates}: the words say it
                if name not in tool.properties or not self.value_ok(
                    tool, name, say_key_value(mod[1:], tool.properties[name])
                ):
                    self.add(
                        "error", where, f"{{{name}{mod}}}: not a valid value of a parameter of {tool.name}"
                    )
                    return False
                continue
            if is_text_field(name, tool):  # a record's text field: it writes what the record's values say
                problem = (
                    f"slot {{{name}}} is no text field of {tool.name}'s records"
                    if name not in self.text_fields.get(tool.name, set())
                    else "text fields belong in requests and parallel templates"
                    if not call
                    else f"slot {{{name}.{index}}}: numbered slots belong in parallel templates"
                    if index is not None and not indexed
                    else f"slot {{{name}:{mod}}}: a text field takes no form but :raw"
                    if mod not in (None, "raw")
                    else None
                )
                if problem is None:  # the words and the call must not disagree
                    gives = {k for r in self.kept_records.get(tool.name, []) if name in r for k in r}
                    clash = sorted({n for n, _, _ in found if n in tool.properties} & gives)
                    if clash:
                        problem = f"{{{name}}} and a {{{clash[0]}}} slot would both give {clash[0]}"
                if problem:
                    self.add("error", where, problem)
                    return False
                continue
            if mod is not None and mod not in MODIFIERS:
                known = ", ".join(sorted(MODIFIERS))
                self.add("error", where, f"unknown slot form ':{mod}' in {{{name}:{mod}}} (known: {known})")
                return False
            if name not in tool.properties and name not in self.named:
                self.add(
                    "error",
                    where,
                    f"slot {{{name}}} is neither a parameter of {tool.name} "
                    f"({', '.join(tool.properties) or 'none'}) nor a named value",
                )
                return False
            if index is not None and not indexed:
                self.add(
                    "error", where, f"slot {{{name}.{index}}}: numbered slots belong in parallel templates"
                )
                return False
        if indexed and {i for _, i, _ in found if i is not None} not in ({1, 2}, {1, 2, 3}):
            self.add(
                "error",
                where,
                "a parallel template needs numbered slots for each of its two or three calls ({p.1} and "
                "{p.2}, or {p.1}, {p.2} and {p.3})",
            )
            return False
        if not literal_text(template):
            self.add("error", where, "the template has no words of its own, only slots")
            return False
        if call:
            said = {n for n, _, _ in found}
            if any(is_text_field(n, tool) for n in said):  # its records hold every required parameter
                said |= set(tool.required)
            missing = [r for r in tool.required if r not in said]
            if missing:
                self.add(
                    "error", where, f"no slot for required parameter(s) {', '.join(missing)} of {tool.name}"
                )
                return False
        if _READ_BACK.search(template):
            self.add(
                "warning", where, "reads like a schema ('set to', 'with the x of'): write it as people ask"
            )
        return True

    def check_tool(self, name: str, phrases: ToolPhrases) -> ToolPhrases | None:
        where = f"tools.{name}"
        tool = self.by_name.get(name)
        if tool is None:
            self.add("error", where, f"no tool {name!r} in the tool set ({', '.join(sorted(self.by_name))})")
            return None
        values = self.check_values(f"{where}.values", phrases.values, tool)
        records = self.check_records(f"{where}.records", phrases.records, tool)
        self.text_fields[name] = {k for r in records for k in r if is_text_field(k, tool)}
        self.kept_records[name] = records
        say: dict[str, dict[str, list[str]]] = {}
        for param, forms in phrases.say.items():
            if param not in tool.properties:
                self.add("error", f"{where}.say.{param}", f"{tool.name} has no parameter {param!r}")
                continue
            say[param] = {
                v: [f for f in fs if f.strip()]
                for v, fs in forms.items()
                if self._say_ok(tool, param, v, where)
            }
        kept = ToolPhrases(values=values, records=records, say=say)
        seen: set[str] = set()
        for i, entry in enumerate(phrases.requests):  # a template, or a weighted group of them
            at = f"{where}.requests[{i}]"
            here = f"{where}.requests[{len(kept.requests)}]"  # its place among the kept ones
            if isinstance(entry, str):
                if self._new_template(at, entry, seen) and self.template_ok(at, entry, tool, call=True):
                    self.origins[here] = at
                    kept.requests.append(entry)
                continue
            if not self._when_ok(f"{at}.when", entry.when, tool):
                continue
            asks = [
                (j, t)
                for j, t in enumerate(entry.ask)
                if self._new_template(f"{at}.ask[{j}]", t, seen)
                and self.template_ok(f"{at}.ask[{j}]", t, tool, call=True)
            ]
            if asks:
                self.origins.update({f"{here}.ask[{n}]": f"{at}.ask[{j}]" for n, (j, _) in enumerate(asks)})
                kept.requests.append(entry.model_copy(update={"ask": [t for _, t in asks]}))
            else:
                self.add("warning", at, "no usable template in this group: it is left out")
        for field, call, indexed in (("parallel", True, True), ("near_misses", False, False)):
            seen = set()
            for i, t in enumerate(getattr(phrases, field)):
                at = f"{where}.{field}[{i}]"
                if self._new_template(at, t, seen) and self.template_ok(
                    at, t, tool, call=call, indexed=indexed
                ):
                    self.origins[f"{where}.{field}[{len(getattr(kept, field))}]"] = at
                    getattr(kept, field).append(t)
        for i, shape in enumerate(phrases.results):
            at = f"{where}.results[{i}]"
            texts = _templates_in(shape.result) + ([shape.answer] if shape.answer else [])
            if all(self._slots_known(at, s, tool) for s in texts):
                kept.results.append(shape)
        if not kept.requests:
            self.add(
                "warning", where, "no usable request templates: this tool's requests come from its schema"
            )
        return kept

    def _when_ok(self, where: str, when: Any, tool: ToolSpec) -> bool:
        """A group's ``when``: each key a parameter of the tool, each value a JSON Schema (an object or a
        boolean) that needs nothing outside itself; else the group is dropped (an error)."""
        if not isinstance(when, dict):
            self.add("error", where, "when is a mapping of parameters to JSON Schemas: the group is left out")
            return False
        for param, schema in when.items():
            if param not in tool.properties:
                self.add("error", f"{where}.{param}", f"{tool.name} has no parameter {param!r}")
                return False
            problem = None
            if not isinstance(schema, dict | bool):
                problem = f"not a JSON Schema: {schema!r} (a schema is a mapping, such as {{type: integer}})"
            elif _has_ref(schema):
                problem = "a $ref cannot be used in when: write the schema out"
            else:
                try:
                    Draft202012Validator.check_schema(schema)
                except SchemaError as e:
                    problem = f"not a JSON Schema: {e.message}"
            if problem:
                self.add("error", f"{where}.{param}", problem)
                return False
        return True

    def _new_template(self, where: str, template: str, seen: set[str]) -> bool:
        """False (with a warning) for a template already in ``seen``; else it is added."""
        if template in seen:
            self.add("warning", where, "the same template twice")
            return False
        seen.add(template)
        return True

    def _say_ok(self, tool: ToolSpec, param: str, value: str, where: str) -> bool:
        if not self.value_ok(tool, param, say_key_value(value, tool.properties[param])):
            self.add("error", f"{where}.say.{param}.{value}", f"{value!r} does not fit {tool.name}.{param}")
            return False
        return True

    def _slots_known(self, where: str, template: str, tool: ToolSpec) -> bool:
        for name, _, _ in slots(template):
            if name not in tool.properties and name not in self.named:
                self.add(
                    "error", where, f"slot {{{name}}} is neither a parameter of {tool.name} nor a named value"
                )
                return False
        return True

    def check_follow_up(self, i: int, steps: list[FollowStep]) -> list[FollowStep] | None:
        where = f"follow_ups[{i}]"
        if len(steps) < 2:
            self.add(
                "error", where, "a follow-up has at least two steps (the second uses the first's result)"
            )
            return None
        kept: list[FollowStep] = []
        for j, step in enumerate(steps):
            at = f"{where}[{j}]"
            tool = self.by_name.get(step.call)
            if tool is None:
                self.add("error", f"{at}.call", f"no tool {step.call!r} in the tool set")
                return None
            unknown = [p for p in step.args if p not in tool.properties]
            if unknown:
                self.add("error", f"{at}.args.{unknown[0]}", f"{tool.name} has no parameter {unknown[0]!r}")
                return None
            many = not isinstance(step.ask, str)
            good = [
                a
                for k, a in enumerate(asks(step.ask))
                if self._ask_ok(f"{at}.ask[{k}]" if many else f"{at}.ask", a, tool, step.args, f"{at}.args")
            ]
            if not good:
                if many:
                    self.add("error", f"{at}.ask", "none of its asks can make the call")
                return None
            step = step.model_copy(update={"ask": good if many else good[0]})
            if j < len(steps) - 1 and step.result is None:
                self.add(
                    "error", f"{at}.result", "every step but the last needs the result the next one reads"
                )
                return None
            for s in _templates_in(step.result) + [s for v in step.args.values() for s in _templates_in(v)]:
                if not self._slots_known(at, s, tool):
                    return None
            kept.append(step)
        return kept

    def _ask_ok(self, where: str, ask: str, tool: ToolSpec, args: dict[str, Any], args_at: str) -> bool:
        """A follow-up step's ask: slots the tool or the book knows, none also set by ``args`` (reported
        at ``args_at``), and every required parameter said by one or the other."""
        found = {n for n, _, _ in slots(ask)}
        for name, index, _ in slots(ask):
            if index is not None or (name not in tool.properties and name not in self.named):
                self.add(
                    "error", where, f"slot {{{name}}} is neither a parameter of {tool.name} nor a named value"
                )
                return False
        both = sorted(found & set(args))
        if both:
            why = f"{both[0]} is both a slot of the ask and in args: the call would not match the words"
            self.add("error", f"{args_at}.{both[0]}", why)
            return False
        missing = [r for r in tool.required if r not in found | set(args)]
        if missing:
            self.add(
                "error", where, f"no value for required parameter(s) {', '.join(missing)} of {tool.name}"
            )
            return False
        return True

    def check_job(self, i: int, job: Job) -> Job | None:
        """Every call known, every required parameter given, every result there but maybe the last's;
        a slot of the request names a named value or a parameter of one of the job's tools."""
        where = f"jobs[{i}]"
        tools = []
        for j, step in enumerate(job.steps):
            tool = self.by_name.get(step.call)
            if tool is None:
                self.add("error", f"{where}.steps[{j}].call", f"no tool {step.call!r} in the tool set")
                return None
            tools.append(tool)
            unknown = [p for p in step.args if p not in tool.properties]
            missing = [r for r in tool.required if r not in step.args]
            if unknown or missing:
                what = (
                    f"{tool.name} has no parameter {unknown[0]!r}"
                    if unknown
                    else (f"no value for required parameter(s) {', '.join(missing)} of {tool.name}")
                )
                self.add("error", f"{where}.steps[{j}]", what)
                return None
            if j < len(job.steps) - 1 and step.result is None:
                self.add("error", f"{where}.steps[{j}].result", "every step but the last needs its result")
                return None
        params = {p for t in tools for p in t.properties}

        def unknown(text: str) -> list[str]:
            return [
                n for n, i, _ in slots(text) if i is not None or (n not in params and n not in self.named)
            ]

        if not isinstance(job.ask, str):  # several ways to ask: one that names an unknown slot is dropped
            for k, a in enumerate(job.ask):
                if bad := unknown(a):
                    why = f"slot {{{bad[0]}}} is neither a named value nor a parameter of its tools"
                    self.add("error", f"{where}.ask[{k}]", why)
            good = [a for a in job.ask if not unknown(a)]
            if not good:
                self.add("error", f"{where}.ask", "none of its asks can be filled")
                return None
            job = job.model_copy(update={"ask": good})
        texts = [*asks(job.ask), job.answer] + [
            s for st in job.steps for s in _templates_in(st.result) + _templates_in(list(st.args.values()))
        ]
        for text in texts:
            for name, index, _ in slots(text):
                if index is not None or (name not in params and name not in self.named):
                    self.add(
                        "error",
                        where,
                        f"slot {{{name}}} is neither a named value nor a parameter of its tools",
                    )
                    return None
        return job


def check_phrasebook(text: BookText, tools: list[ToolSpec]) -> CheckedBook:
    """Fit a book to ``tools``: entries that cannot make a valid, grounded call are dropped (errors),
    doubtful ones kept (warnings)."""
    c = _Checker(text, tools)
    c.issues.extend(text.shape_issues)
    book = text.book
    named = c.check_values("values", book.values, None)
    c.named = set(named)
    c.named_specs = named
    kept_tools = {n: p for n, ph in book.tools.items() if (p := c.check_tool(n, ph)) is not None}
    missing = sorted(set(c.by_name) - set(book.tools))
    if missing:
        c.add(
            "warning", "tools", f"no phrases for {', '.join(missing)}: their requests come from their schema"
        )
    follow = [s for i, steps in enumerate(book.follow_ups) if (s := c.check_follow_up(i, steps)) is not None]
    jobs = [j for i, job in enumerate(book.jobs) if (j := c.check_job(i, job)) is not None]
    out = Phrasebook(
        phrasebook=book.phrasebook,
        name=book.name,
        values=named,
        tools=kept_tools,
        follow_ups=follow,
        jobs=jobs,
        polish=book.polish,
    )
    return CheckedBook(book=out, issues=c.issues, origins=c.origins)
