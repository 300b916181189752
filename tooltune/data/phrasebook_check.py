"""Checking a phrasebook against a tool set: every entry that cannot make a valid, grounded call is
dropped with its place (``file:line``) and why; doubtful ones are kept with a warning; the rest is used.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tooltune.data.phrasebook import (
    DERIVED,
    MODIFIERS,
    Add,
    BookText,
    CheckedBook,
    Compose,
    FollowStep,
    Job,
    Lookup,
    OneOf,
    Phrasebook,
    PhrasebookIssue,
    Range,
    RequestGroup,
    Sample,
    ToolPhrases,
    ValueSpec,
    asks,
    draw_value,
    has_ref,
    is_text_field,
    literal_text,
    say_key_value,
    slots,
    templates_in,
)
from tooltune.data.phrasing import mentions_all
from tooltune.data.samplers import sample_value
from tooltune.data.spoken_forms import FORMS, INTEGER_FORMS, forms_of, units_after
from tooltune.toolspec import ToolSpec, schema_types

# schema read-back: the wording a phrasebook exists to replace
_READ_BACK = re.compile(r"\b(set to|with (the )?\w+ (of|as)|where the \w+ is)\b", re.I)


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
        self.kept_forms: dict[str, dict[str, str]] = {}  # per tool: its forms, once checked (for jobs)

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
        added: dict[str, Add] = {}
        looked: dict[str, Lookup] = {}
        for name, spec in specs.items():
            at = f"{where}.{name}"
            if isinstance(spec, Compose | OneOf):
                composed[name] = spec  # after the plain values: their parts may be among them
                continue
            if isinstance(spec, Add):
                added[name] = spec  # after the plain values: what they add to may be among them
                continue
            if isinstance(spec, Lookup):
                looked[name] = spec  # after the others: what they look up may be among them
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
        dependent = {**{n: "an add" for n in added}, **{n: "a lookup" for n in looked}}
        self._check_composed(where, composed, tool, kept, dependent)
        # lookups before adds: an add may add to a looked-up number, a lookup may not look up an add
        self._check_looked_up(where, looked, tool, kept, specs)
        self._check_added(where, added, tool, kept, set(specs))
        return kept

    def _check_looked_up(
        self,
        where: str,
        looked: dict[str, Lookup],
        tool: ToolSpec | None,
        kept: dict[str, ValueSpec],
        specs: dict[str, ValueSpec],
    ) -> None:
        """Add to ``kept`` the ``lookup`` values that look up a value drawn on its own (for a tool: one of
        its parameters or a named value; at the top level: a named value), keeping of each table entry
        (and of ``other``) the values that fit the parameter's schema; the others are dropped and named."""
        # the ones that follow another lookup last: their partner is checked (and its values kept) first
        for name, spec in sorted(looked.items(), key=lambda item: item[1].along is not None):
            at, base = f"{where}.{name}", spec.lookup
            own = tool is not None and base in tool.properties
            # the looked-up value's spec: the tool's own, else the top-level value that fills it
            base_spec = (
                specs.get(base) if tool is None or (own and base in specs) else self.named_specs.get(base)
            )
            problem = None
            if tool is not None and name not in tool.properties:
                problem = f"{tool.name} has no parameter {name!r}"
            elif base == name:
                problem = f"looks up {{{base}}}, itself"
            elif isinstance(base_spec, Add | Lookup):
                problem = f"looks up {{{base}}}, an add or lookup value: look up a value drawn on its own"
            elif not own and base not in (kept if tool is None else self.named_specs):
                problem = (
                    f"looks up {{{base}}}: neither a parameter of {tool.name} nor a named value"
                    if tool is not None
                    else f"looks up {{{base}}}: not a named value (or one dropped)"
                )
            elif spec.along is not None:
                problem = self._along_problem(name, spec, looked, kept)
            if problem:
                self.add("error", at, problem)
                continue
            if tool is None:
                kept[name] = spec
                continue
            table: dict[str, list[Any]] = {}
            for key, pool in spec.table.items():
                good = self._fitting(tool, name, pool, f"{at}.table.{key}")
                if good:
                    table[key] = good
            other = self._fitting(tool, name, spec.other, f"{at}.other") if spec.other else None
            if not table:
                self.add("error", at, "no usable values in its table")
                continue
            fitted = spec.model_copy(update={"table": table, "other": other or None})
            partner = kept.get(spec.along) if spec.along is not None else None
            if isinstance(partner, Lookup) and not fitted.same_shape(partner):
                self.add(
                    "error",
                    at,
                    f"with the values that fit, its table no longer pairs with {{{spec.along}}}'s",
                )
                continue
            kept[name] = fitted

    def _along_problem(
        self, name: str, spec: Lookup, looked: dict[str, Lookup], kept: dict[str, ValueSpec]
    ) -> str | None:
        """Why a lookup cannot follow its ``along`` partner (a lookup beside it, of the same base and
        table shape, that follows none itself), or None."""
        partner = spec.along
        if partner == name:
            return f"follows {{{partner}}}, itself"
        if partner not in looked:
            return f"follows {{{partner}}}, which is no lookup beside it"
        if looked[partner].along is not None:
            return f"follows {{{partner}}}, which follows another: follow that one"
        if partner not in kept:
            return f"follows {{{partner}}}, which was dropped"
        if not spec.same_shape(looked[partner]):
            return (
                f"follows {{{partner}}}: it must look up the same value by the same key parts, with the same "
                "keys and as many values in each entry (and in other)"
            )
        return None

    def _fitting(self, tool: ToolSpec, name: str, values: list[Any], at: str) -> list[Any]:
        """The values that fit ``tool.name``'s schema; each other one is named (an error)."""
        good = []
        for i, v in enumerate(values):
            if self.value_ok(tool, name, v):
                good.append(v)
            else:
                self.add("error", f"{at}[{i}]", f"{v!r} does not fit the schema of {tool.name}.{name}")
        return good

    def _check_added(
        self,
        where: str,
        added: dict[str, Add],
        tool: ToolSpec | None,
        kept: dict[str, ValueSpec],
        given: set[str],
    ) -> None:
        """Add to ``kept`` the ``add`` values whose base is known (for a tool: one of its parameters or a
        named value; at the top level: a named value, no chain coming back to itself) and holds numbers,
        and whose least and most sums fit the parameter's schema; the others are dropped and named."""
        # the adds a value may lead through: these, and (for a tool) the top-level ones that fill its
        # parameters where it gives none
        chain = {n: {a.add} for n, a in self.named_specs.items() if isinstance(a, Add) and tool is not None}
        chain.update({n: {a.add} for n, a in added.items()})
        for name, spec in added.items():
            at, base = f"{where}.{name}", spec.add
            own = tool is not None and base in tool.properties
            problem = self._add_problem(name, spec, tool, kept, set(added), chain)
            if problem is None:
                # the base's values: the tool's own (or the top-level ones that fill it), or a named value's
                local = tool is None or (own and base in given)
                problem = self._add_misfit(spec, (kept if local else self.named_specs).get(base), tool, name)
            if problem:
                self.add("error", at, problem)
            else:
                kept[name] = spec
        while tool is None:  # a top-level add whose base was dropped has nothing to add to
            orphans = [(n, v.add) for n, v in kept.items() if isinstance(v, Add) and v.add not in kept]
            if not orphans:
                break
            for n, base in orphans:
                self.add("error", f"{where}.{n}", f"adds to {{{base}}}, which was dropped")
                del kept[n]

    def _add_problem(
        self,
        name: str,
        spec: Add,
        tool: ToolSpec | None,
        kept: dict[str, ValueSpec],
        added: set[str],
        chain: dict[str, set[str]],
    ) -> str | None:
        """Why an ``add`` value cannot be drawn as written (its sums are checked apart), or None."""
        base = spec.add
        own = tool is not None and base in tool.properties
        if tool is not None and name not in tool.properties:
            return f"{tool.name} has no parameter {name!r}"
        if isinstance(spec.by, Range) and spec.by.range[0] > spec.by.range[1]:
            return f"by: range [{spec.by.range[0]}, {spec.by.range[1]}] is empty"
        if base == name:
            return f"adds to {{{base}}}, itself"
        if name in _reachable(base, chain):
            return f"adds to {{{base}}}, itself, through other add values"
        named = kept if tool is None else self.named_specs
        if not own and isinstance(named.get(base), Compose):
            return f"adds to {{{base}}}, a composed text: add to numbers"
        if own or base in kept or base in (added if tool is None else self.named_specs):
            return None
        if tool is not None:
            return f"adds to {{{base}}}: neither a parameter of {tool.name} nor a named value"
        return f"adds to {{{base}}}: not a named value (or one dropped)"

    def _add_misfit(self, spec: Add, base: ValueSpec | None, tool: ToolSpec | None, name: str) -> str | None:
        """What is wrong with adding ``spec``'s offsets to ``base``'s values (a list or a range; others are
        not known here, and a call that does not fit is left out when drawn)."""
        values = list(base.range) if isinstance(base, Range) else base if isinstance(base, list) else None
        if values is None:
            return None
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return f"adds to {{{spec.add}}}, whose values are not all numbers"
        least, most = spec.offsets()
        for total in (min(values) + least, max(values) + most):
            if tool is not None and not self.value_ok(tool, name, total):
                return f"{total!r} ({spec.add} plus its offset) does not fit the schema of {tool.name}.{name}"
        return None

    def _sample_problem(self, spec: Sample, tool: ToolSpec | None, name: str) -> str | None:
        """What is wrong with a sample: sizes out of order or beyond its pool, repeated items (they would
        not be distinct), or (for a parameter) a list of the least or most items the schema refuses."""
        lo, hi = spec.sizes()
        if not 0 <= lo <= hi <= len(spec.sample) or hi < 1:
            return (
                f"k {list(spec.sizes())} must be from 0 to the pool's {len(spec.sample)} items, least first, "
                "the most at least 1"
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
        dependent: dict[str, str],
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
                elif adds := sorted(
                    r for r in refs if r in dependent or isinstance(pool.get(r), Add | Lookup)
                ):
                    kind = dependent.get(adds[0]) or (
                        "a lookup" if isinstance(pool[adds[0]], Lookup) else "an add"
                    )
                    problem = f"composes {adds[0]}, {kind} value: compose from values drawn on their own"
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
        if not self._argv_on_lists(where, template, [tool]):
            return False
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
            if call and mod in DERIVED and name in tool.properties:
                self.add(
                    "error",
                    where,
                    f"{{{name}:{mod}}} writes a part of the value, so the request would not show the "
                    f"call's {name}: use the form for named values, results and answers",
                )
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
        numbers = {i for _, i, _ in found if i is not None}
        calls = max(numbers, default=0)
        # every call has a numbered slot, but the first of two may have none ("show the diff, and the
        # staged one too{staged.2=true}": a call from the shared slots alone, or without arguments)
        if indexed and numbers not in ({1, 2}, {1, 2, 3}, {2}):
            self.add(
                "error",
                where,
                "a parallel template needs numbered slots for each of its two or three calls ({p.1} and "
                "{p.2}, or {p.1}, {p.2} and {p.3}; only the first of two may have none of its own)",
            )
            return False
        if not literal_text(template):
            self.add("error", where, "the template has no words of its own, only slots")
            return False
        if call:
            # each call's own slots and the shared (unnumbered) ones; a call number with no slot of its
            # own makes a call from the shared slots alone (none: a call without arguments)
            for i in range(1, calls + 1) if indexed else [None]:
                said = {n for n, j, _ in found if j is None or j == i}
                if any(is_text_field(n, tool) for n in said):  # its records hold every required parameter
                    said |= set(tool.required)
                missing = [r for r in tool.required if r not in said]
                if missing:
                    whose = f"call {i}'s " if i is not None else ""
                    self.add(
                        "error",
                        where,
                        f"no slot for {whose}required parameter(s) {', '.join(missing)} of {tool.name}",
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
        self._check_fallbacks(tool, phrases, values, records)
        say: dict[str, dict[str, list[str]]] = {}
        for param, forms in phrases.say.items():
            if param not in tool.properties:
                self.add("error", f"{where}.say.{param}", f"{tool.name} has no parameter {param!r}")
                continue
            say[param] = self._distinct_words(
                f"{where}.say.{param}",
                {
                    v: [f for f in fs if f.strip()]
                    for v, fs in forms.items()
                    if self._say_ok(tool, param, v, where)
                },
            )
        forms = {
            param: form
            for param, form in phrases.forms.items()
            if self._form_ok(tool, param, form, f"{where}.forms.{param}", values.get(param), records)
        }
        kept = ToolPhrases(values=values, records=records, say=say, forms=forms)
        self._form_slot_warnings(where, phrases, forms)
        kept.requests = self._kept_entries(where, "requests", phrases.requests, tool)
        kept.parallel = self._kept_entries(where, "parallel", phrases.parallel, tool)
        seen: set[str] = set()
        for i, t in enumerate(phrases.near_misses):
            at = f"{where}.near_misses[{i}]"
            if self._new_template(at, t, seen) and self.template_ok(at, t, tool, call=False, indexed=False):
                self.origins[f"{where}.near_misses[{len(kept.near_misses)}]"] = at
                kept.near_misses.append(t)
        for i, shape in enumerate(phrases.results):
            at = f"{where}.results[{i}]"
            texts = templates_in(shape.result) + ([shape.answer] if shape.answer else [])
            if shape.when is not None and not self._when_ok(f"{at}.when", shape.when, tool, named=True):
                continue
            own = self._result_values(f"{at}.values", shape.values, tool)
            if all(self._slots_known(at, s, tool, set(own), has_own=bool(shape.values)) for s in texts):
                kept.results.append(shape.model_copy(update={"values": own}))
        if not kept.requests:
            self.add(
                "warning", where, "no usable request templates: this tool's requests come from its schema"
            )
        return kept

    def _kept_entries(
        self, where: str, field: str, entries: list[str | RequestGroup], tool: ToolSpec
    ) -> list[str | RequestGroup]:
        """A tool's ``requests`` or ``parallel``: each template, or weighted group of them, whose
        templates are new and make a valid call (a parallel one, per call); a group keeps the templates
        that do (none: it goes, with a warning), and a request group's ``when`` must be a schema per
        parameter (a parallel group may have none)."""
        indexed = field == "parallel"
        kept: list[str | RequestGroup] = []
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            at = f"{where}.{field}[{i}]"
            here = f"{where}.{field}[{len(kept)}]"  # its place among the kept ones
            if isinstance(entry, str):
                if self._new_template(at, entry, seen) and self.template_ok(
                    at, entry, tool, call=True, indexed=indexed
                ):
                    self.origins[here] = at
                    kept.append(entry)
                continue
            if indexed and entry.when:
                self.add("error", f"{at}.when", "a parallel group has no when: the group is left out")
                continue
            if not indexed and not self._when_ok(f"{at}.when", entry.when, tool):
                continue
            asks = [
                (j, t)
                for j, t in enumerate(entry.ask)
                if self._new_template(f"{at}.ask[{j}]", t, seen)
                and self.template_ok(f"{at}.ask[{j}]", t, tool, call=True, indexed=indexed)
            ]
            if asks:
                self.origins.update({f"{here}.ask[{n}]": f"{at}.ask[{j}]" for n, (j, _) in enumerate(asks)})
                kept.append(entry.model_copy(update={"ask": [t for _, t in asks]}))
            else:
                self.add("warning", at, "no usable template in this group: it is left out")
        return kept

    def _form_slot_warnings(self, where: str, phrases: ToolPhrases, forms: dict[str, str]) -> None:
        """A warning for each template that writes a unit after a minutes slot: the form says its own
        ("for an hour and a half minutes"); and for a '#' before a number slot ("#forty-two")."""
        fields = (("requests", phrases.request_templates()), ("parallel", phrases.parallel_templates()),
                  ("near_misses", phrases.near_misses))  # fmt: skip
        numbers = {p for p, form in forms.items() if form == "number"}
        for field, templates in fields:
            for t in templates:
                self._hash_before_number(f"{where}.{field}", t, numbers)
        for param in [p for p, form in forms.items() if form == "minutes"]:
            for field, templates in fields:
                for t in templates:
                    units = units_after(param, t)
                    if any(u.startswith("-") for u in units):
                        self.add(
                            "warning",
                            f"{where}.{field}",
                            f"{t!r} writes {param} as an adjective ('{{{param}}}-minute'), which a minutes "
                            f"form cannot say ('an hour and a half-minute'): rephrase it ('a slot of "
                            f"{{{param}}}') or drop the form",
                        )
                    elif units:
                        self.add(
                            "warning",
                            f"{where}.{field}",
                            f"{param}'s minutes form writes its own unit, and {t!r} adds {units[0]!r} "
                            "after it: the unit is said twice",
                        )

    def _hash_before_number(self, where: str, template: str, numbers: set[str]) -> None:
        """A warning for a '#' written right before a slot of a parameter with a number form: the form
        may say it in words ("#three hundred and six"); ``{p:raw}`` there keeps the digits."""
        for m in re.finditer(r"#\{([A-Za-z_][A-Za-z0-9_]*)(\.[1-3])?\}", template):
            if m[1] in numbers:
                self.add(
                    "warning",
                    where,
                    f"{template!r} writes '#' before {m[1]}, whose number form may say it in words "
                    f"('#three hundred and six'): write '#{{{m[1]}{m[2] or ''}:raw}}' there",
                )

    def _check_fallbacks(
        self,
        tool: ToolSpec,
        phrases: ToolPhrases,
        values: dict[str, ValueSpec],
        records: list[dict[str, Any]],
    ) -> None:
        """A top-level value named as one of ``tool``'s parameters fills it wherever the tool gives it no
        value of its own (no ``values`` entry, no record holding it): it is checked against that
        parameter as the tool's own values are. A misfit is a warning (the value may fit the other tools
        it serves); the calls that draw it do not fit, and are left out."""
        held = {k for r in records for k in r}
        templates = [*phrases.request_templates(), *phrases.parallel_templates(), *phrases.near_misses]
        filled = {n for t in templates for n, _, _ in slots(t)}  # a parameter no template fills: not drawn
        for param in tool.properties:
            if param in values or param in held or param not in self.named_specs or param not in filled:
                continue
            probe = _Checker(self.text, [tool])
            probe.named, probe.named_specs = self.named, self.named_specs
            spec = self.named_specs[param]
            checked = {param: spec}
            if isinstance(spec, Lookup) and spec.along in self.named_specs and spec.along in tool.properties:
                checked[spec.along] = self.named_specs[spec.along]
            probe.check_values("values", checked, tool)
            for issue in probe.issues:
                self.add(
                    "warning",
                    issue.where,
                    f"fills {tool.name}.{param}, which has no values of its own: {issue.message}; "
                    "its calls that draw such a value are left out",
                )

    def _when_ok(self, where: str, when: Any, tool: ToolSpec, *, named: bool = False) -> bool:
        """A group's (or, with ``named``, a result's) ``when``: each key a parameter of the tool (or a named
        value), each value a JSON Schema (an object or a boolean) that needs nothing outside itself; else
        the group (or result) is dropped (an error)."""
        what = "result" if named else "group"
        if not isinstance(when, dict):
            self.add(
                "error", where, f"when is a mapping of parameters to JSON Schemas: the {what} is left out"
            )
            return False
        for param, schema in when.items():
            if param not in tool.properties and not (named and param in self.named):
                known = f"{tool.name} has no parameter {param!r}" + (
                    " and no value is named so" if named else ""
                )
                self.add("error", f"{where}.{param}", known)
                return False
            problem = None
            if not isinstance(schema, dict | bool):
                problem = f"not a JSON Schema: {schema!r} (a schema is a mapping, such as {{type: integer}})"
            elif has_ref(schema):
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

    def _form_ok(
        self,
        tool: ToolSpec,
        param: str,
        form: str,
        where: str,
        values: ValueSpec | None,
        records: list[dict[str, Any]],
    ) -> bool:
        """A ``forms`` entry: a parameter of the tool, a known form, and a parameter that takes its kind of
        value (text for dates and times, whole numbers for minutes and numbers). Values that are not of
        the form are written as they are: a warning names them (listed, in records, top-level, the
        schema's enum, or drawn from the schema)."""
        if param not in tool.properties:
            self.add("error", where, f"{tool.name} has no parameter {param!r}")
            return False
        if form not in FORMS:
            self.add("error", where, f"unknown form {form!r} (known: {', '.join(FORMS)})")
            return False
        kind = "integer" if form in INTEGER_FORMS else "string"
        schema = tool.properties[param] if isinstance(tool.properties[param], dict) else {}
        takes = schema_types(schema)
        if None not in takes and kind not in takes and not (kind == "integer" and "number" in takes):
            self.add(
                "error", where, f"{form} values are {kind}s, and {tool.name}.{param} takes {schema['type']}"
            )
            return False
        drawn = self._drawn_values(tool, param, values, records)
        if drawn is not None:
            source, candidates = drawn
            odd = [v for v in candidates if not forms_of(form, v)]
            if odd:
                self.add(
                    "warning",
                    where,
                    f"{len(odd)} of the {len(candidates)} values {source} are not {form} values "
                    f"({odd[0]!r}): they are written as they are",
                )
        return True

    def _drawn_values(
        self, tool: ToolSpec, param: str, values: ValueSpec | None, records: list[dict[str, Any]]
    ) -> tuple[str, list[Any]] | None:
        """Where ``param``'s values come from when a request fills it, and some of them (None for ranges,
        compositions and other drawn kinds)."""
        held = [r[param] for r in records if param in r]
        if held:
            return f"its records give {param}", held
        if values is None and param in self.named_specs:
            values = self.named_specs[param]  # the top-level values fill it
            if isinstance(values, list):
                return f"of the top-level {param}", values
        if isinstance(values, list):
            return f"listed for {param}", values
        if values is not None:
            return None
        schema = tool.properties[param] if isinstance(tool.properties[param], dict) else {}
        if isinstance(schema.get("enum"), list):
            return f"of {param}'s enum", schema["enum"]
        rng = random.Random(0)
        return f"drawn for {param} from its schema", [sample_value(rng, param, schema) for _ in range(20)]

    def _distinct_words(self, where: str, forms: dict[str, list[str]]) -> dict[str, list[str]]:
        """A parameter's ``say`` words, each for one value only: a word listed for two values ("asap" for
        low, high and urgent priority, as a drafted book had it) would label different calls with the same
        request, so it is dropped from all of them, with a warning."""
        values_of: dict[str, list[str]] = {}
        for value, words in forms.items():
            for word in dict.fromkeys(w.lower() for w in words):
                values_of.setdefault(word, []).append(value)
        shared = {w: vs for w, vs in values_of.items() if len(vs) > 1}
        for word, vs in shared.items():
            self.add(
                "warning",
                where,
                f"{word!r} is said for {len(vs)} values ({', '.join(map(repr, vs))}): dropped",
            )
        kept = {v: [w for w in ws if w.lower() not in shared] for v, ws in forms.items()}
        return {v: ws for v, ws in kept.items() if ws}

    def _say_ok(self, tool: ToolSpec, param: str, value: str, where: str) -> bool:
        if not self.value_ok(tool, param, say_key_value(value, tool.properties[param])):
            self.add("error", f"{where}.say.{param}.{value}", f"{value!r} does not fit {tool.name}.{param}")
            return False
        return True

    def _forms_known(self, where: str, template: str) -> bool:
        """Every slot form ({p:words}, {p:basename}...) one the format has (a {p=value} gives a value)."""
        for name, _, mod in slots(template):
            if mod is not None and not mod.startswith("=") and mod not in MODIFIERS:
                known = ", ".join(sorted(MODIFIERS))
                self.add("error", where, f"unknown slot form ':{mod}' in {{{name}:{mod}}} (known: {known})")
                return False
        return True

    def _argv_on_lists(self, where: str, text: str, tools: list[ToolSpec]) -> bool:
        """Every ``{p:argv}`` slot of ``text`` on a parameter that takes a list (in each of ``tools`` that
        has it; a named value may be written so)."""
        for name, _, mod in slots(text):
            owner = next((t for t in tools if name in t.properties and not _takes(t, name, "array")), None)
            if mod == "argv" and owner is not None:
                why = f"{{{name}:argv}} writes a list as a command's words; {owner.name}.{name} takes no list"
                self.add("error", where, why)
                return False
        return True

    def _whole_values_shown(self, where: str, ask: str, params: set[str]) -> bool:
        """An ask writes each parameter's value whole: a derived form ({path:basename}) would leave its
        call holding a value the words do not show (named values may be written in part)."""
        for name, _, mod in slots(ask):
            if mod in DERIVED and name in params and name not in self.named:
                self.add(
                    "error",
                    where,
                    f"{{{name}:{mod}}} writes a part of the value, so the ask would not show the call's "
                    f"{name}: use the form for named values, results and answers",
                )
                return False
        return True

    def _own_composition_problem(
        self,
        where: str,
        name: str,
        spec: Compose,
        tool: ToolSpec,
        specs: dict[str, ValueSpec],
        kept: dict[str, ValueSpec],
    ) -> str | None:
        """Why a result's own composition cannot be written: each part must be a parameter of the call,
        one of the result's values kept so far (not another composition), or a named value drawn on its
        own; its slot forms must be known."""
        for part, _, _ in slots(spec.compose):
            if part == name:
                return f"composes {{{name}}}, itself"
            if part in tool.properties or part in kept:
                continue
            if part in specs:
                if isinstance(specs[part], Compose):
                    return (
                        f"composes {{{part}}}, another composition of this result: compose from values "
                        "drawn on their own"
                    )
                return f"composes {{{part}}}, a value of this result that was dropped"
            if part not in self.named_specs:
                return (
                    f"composes {{{part}}}: neither a parameter of {tool.name}, a named value nor a value "
                    "of this result"
                )
            if isinstance(self.named_specs[part], Add | Lookup):
                return f"composes {{{part}}}, an add or lookup value: compose from values drawn on their own"
        for part, _, mod in slots(spec.compose):
            if mod is not None and (mod.startswith("=") or mod not in MODIFIERS):
                return (
                    f"unknown slot form ':{mod}' in {{{part}:{mod}}} (known: {', '.join(sorted(MODIFIERS))})"
                )
        return None

    def _slots_known(
        self,
        where: str,
        template: str,
        tool: ToolSpec,
        own: frozenset[str] | set[str] = frozenset(),
        *,
        has_own: bool = False,
    ) -> bool:
        """Every slot a parameter of ``tool``, a named value, or one of ``own`` (a result's own values that
        were kept; ``has_own``: the result gave some, kept or not)."""
        for name, _, _ in slots(template):
            if name not in tool.properties and name not in self.named and name not in own:
                whose = " nor a usable value of this result" if has_own else ""
                self.add(
                    "error",
                    where,
                    f"slot {{{name}}} is neither a parameter of {tool.name} nor a named value{whose}",
                )
                return False
        return self._forms_known(where, template)

    def _result_values(self, where: str, specs: dict[str, ValueSpec], tool: ToolSpec) -> dict[str, ValueSpec]:
        """A result's own values that can be drawn: a list, a range, a sample, a lookup of a parameter of
        the call or a named value, or a composition (:meth:`_own_composition_problem`), each under a name
        that is neither; the others are dropped and named (a slot that uses one then drops its result)."""
        kept: dict[str, ValueSpec] = {}
        # compositions last: their parts may be the result's other values, once those are kept
        for name, spec in sorted(specs.items(), key=lambda item: isinstance(item[1], Compose)):
            problem: str | None = None
            if name in tool.properties or name in self.named:
                owner = f"{tool.name}'s parameter" if name in tool.properties else "a named value"
                problem = f"{name!r} is {owner}: a result's own value needs a name of its own"
            elif isinstance(spec, OneOf | Add):
                problem = (
                    "a result's own value is a list, a range, a sample, a composition or a lookup: name a "
                    "weighted choice or an add at the top level"
                )
            elif isinstance(spec, Compose):
                problem = self._own_composition_problem(f"{where}.{name}", name, spec, tool, specs, kept)
            elif isinstance(spec, Range) and spec.range[0] > spec.range[1]:
                problem = f"range {list(spec.range)} is empty"
            elif isinstance(spec, Sample):
                problem = self._sample_problem(spec, None, name)
            elif isinstance(spec, Lookup):
                if spec.along is not None:
                    problem = "a result's own lookup cannot follow another (along)"
                elif spec.lookup not in tool.properties and spec.lookup not in self.named_specs:
                    problem = (
                        f"looks up {{{spec.lookup}}}: neither a parameter of {tool.name} nor a named value"
                    )
            elif isinstance(spec, list) and not spec:
                problem = "no usable values"
            if problem:
                self.add("error", f"{where}.{name}", problem)
            else:
                kept[name] = spec
        return kept

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
            for s in templates_in(step.result) + [s for v in step.args.values() for s in templates_in(v)]:
                if not self._slots_known(at, s, tool):
                    return None
            kept.append(step)
        return kept

    def _ask_ok(self, where: str, ask: str, tool: ToolSpec, args: dict[str, Any], args_at: str) -> bool:
        """A follow-up step's ask: slots the tool or the book knows, none also set by ``args`` (reported
        at ``args_at``), and every required parameter said by one or the other."""
        found = {n for n, _, _ in slots(ask)}
        params = set(tool.properties)
        if not self._forms_known(where, ask) or not self._whole_values_shown(where, ask, params):
            return False
        if not self._argv_on_lists(where, ask, [tool]):
            return False
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
            if stray := [a for a in step.authored if a not in step.args]:
                self.add(
                    "error",
                    f"{where}.steps[{j}].authored",
                    f"authored names {stray[0]!r}, which is none of the step's args",
                )
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
            s for st in job.steps for s in templates_in(st.result) + templates_in(list(st.args.values()))
        ]
        if not all(self._whole_values_shown(where, a, params) for a in asks(job.ask)):
            return None
        if not all(self._argv_on_lists(where, a, tools) for a in asks(job.ask)):
            return None
        # a slot is said as the first of the job's tools that takes it says it (phrasebook_fill's jobs)
        first = {p: t.name for t in reversed(tools) for p in t.properties}
        numbers = {p for p, name in first.items() if self.kept_forms.get(name, {}).get(p) == "number"}
        for a in asks(job.ask):
            self._hash_before_number(f"{where}.ask", a, numbers)
        for text in texts:
            if not self._forms_known(where, text):
                return None
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
    c.kept_forms = {n: p.forms for n, p in kept_tools.items()}
    missing = sorted(set(c.by_name) - set(book.tools))
    if missing:
        c.add(
            "warning", "tools", f"no phrases for {', '.join(missing)}: their requests come from their schema"
        )
    follow = [s for i, steps in enumerate(book.follow_ups) if (s := c.check_follow_up(i, steps)) is not None]
    jobs = [j for i, job in enumerate(book.jobs) if (j := c.check_job(i, job)) is not None]
    dated = any(f in ("date", "datetime") for ph in kept_tools.values() for f in ph.forms.values())
    if book.relative_dates is not None and not dated:
        c.add(
            "warning",
            "relative_dates",
            "no tool has a date or datetime form (tools.<name>.forms): no date is said relative to today",
        )
    out = Phrasebook(
        phrasebook=book.phrasebook,
        name=book.name,
        values=named,
        tools=kept_tools,
        follow_ups=follow,
        jobs=jobs,
        polish=book.polish,
        relative_dates=book.relative_dates,
    )
    return CheckedBook(book=out, issues=c.issues, origins=c.origins)


def _takes(tool: ToolSpec, param: str, kind: str) -> bool:
    """Whether a parameter of ``tool`` may take a JSON value of ``kind`` (a schema naming no type may)."""
    takes = schema_types(tool.properties.get(param))
    return None in takes or kind in takes
