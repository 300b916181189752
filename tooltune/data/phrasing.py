"""A grammar of user requests built from a tool's name, description and parameter descriptions.

The model being trained will be asked in natural language ("What's the area of a triangle with base 12
and height 7?") and must map the words to a call, so requests here read like a person asking, vary in
wording, order and verbosity, and mention every argument value so the call is fully determined by the
text: strings verbatim, numbers in their JSON form or in a form people write that maps back to exactly one
number ("$2,000,000" or "2 million" for 2000000, "5%" for a rate passed as 0.05) — see ``value_forms``.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from pydantic import BaseModel

from tooltune.data.polish import says_please
from tooltune.data.samplers import CITY_OF_FULL, CURRENCY_NAMES, asks_full_place, number_kind, words_of
from tooltune.data.units import unit_suffixes
from tooltune.toolspec import ToolSpec

VERBS = {
    "add",
    "analyze",
    "analyse",
    "apply",
    "book",
    "build",
    "calculate",
    "cancel",
    "change",
    "check",
    "clean",
    "compare",
    "compile",
    "compute",
    "convert",
    "count",
    "create",
    "decode",
    "delete",
    "deploy",
    "describe",
    "detect",
    "determine",
    "display",
    "download",
    "draw",
    "edit",
    "encode",
    "estimate",
    "evaluate",
    "execute",
    "extract",
    "fetch",
    "filter",
    "find",
    "forecast",
    "format",
    "generate",
    "get",
    "identify",
    "install",
    "list",
    "locate",
    "log",
    "look",
    "lookup",
    "make",
    "measure",
    "merge",
    "modify",
    "monitor",
    "move",
    "obtain",
    "open",
    "order",
    "parse",
    "perform",
    "play",
    "plot",
    "predict",
    "print",
    "provide",
    "query",
    "read",
    "recommend",
    "register",
    "remove",
    "rename",
    "reserve",
    "reset",
    "resolve",
    "restart",
    "retrieve",
    "return",
    "run",
    "save",
    "schedule",
    "search",
    "send",
    "set",
    "show",
    "simulate",
    "solve",
    "sort",
    "start",
    "stop",
    "submit",
    "summarize",
    "track",
    "translate",
    "update",
    "upload",
    "validate",
    "verify",
    "write",
    "compose",
    "plan",
    "suggest",
    "scan",
    "post",
    "buy",
    "sell",
    "transfer",
    "split",
    "round",
    "sum",
    "multiply",
    "divide",
    "integrate",
    "differentiate",
    "approximate",
    "fit",
    "test",
}
QUESTION_VERBS = {
    "calculate",
    "compute",
    "get",
    "retrieve",
    "fetch",
    "find",
    "determine",
    "return",
    "obtain",
    "estimate",
    "provide",
    "show",
    "check",
    "count",
    "predict",
    "look",
    "lookup",
    "identify",
    "measure",
    "evaluate",
    "forecast",
}
_PREFIXES = re.compile(
    r"^(this|the|a|an)?\s*(function|tool|api|endpoint|method|service|utility)\s*"
    r"(that|which|will|can|is used to|used to|to|is to|helps to|helps)?\s*",
    re.I,
)
_CUT = re.compile(
    r"(?<!\sa)(?<!\san)(?<!\sthe)\s+(given|based on|using the|using|with the given|by providing|"
    r"by using|for the given|"
    r"according to|from the given|provided)\b.*$",
    re.I,
)


class TaskPhrase(BaseModel):
    """What the tool does, as a verb and an object: "calculate" + "the area of a triangle"."""

    verb: str
    obj: str
    question_ok: bool = False

    def imperative(self) -> str:
        return f"{self.verb} {self.obj}".strip()


def _base_verb(word: str) -> str | None:
    w = word.lower()
    if w in VERBS:
        return w
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if w.endswith(suffix) and w[: -len(suffix)] + repl in VERBS:
            return w[: -len(suffix)] + repl
    return None


def task_phrase(tool: ToolSpec) -> TaskPhrase:
    """Turn the description's first sentence into verb + object, stripping boilerplate and the
    "given its X and Y" tail (the request mentions the values instead)."""
    desc = re.sub(r"\([^)]*\)", "", tool.description or "").strip()
    desc = re.split(r"(?<=[a-z0-9)])\.\s|\.$|\n", desc)[0].strip() if desc else ""
    desc = _PREFIXES.sub("", desc).strip()
    desc = re.sub(
        r"\b(a|an|the)\s+(given|specified|specific|certain|particular)\s+", r"\1 ", desc, flags=re.I
    )
    desc = re.sub(r"\ban ([^aeiouAEIOU])", r"a \1", desc)
    parts = desc.split()
    verb = _base_verb(parts[0]) if parts else None
    if verb is not None:
        obj = " ".join(parts[1:])
        if verb == "look" and obj.lower().startswith("up "):
            verb, obj = "look up", obj[3:]
        obj = _CUT.sub("", obj).strip(" ,;:")
        if len(obj.split()) > 10:
            obj = re.split(r",|;| - | which | that ", obj)[0].strip()
        obj = obj.rstrip(".")
        if not obj:
            obj = "the " + " ".join(words_of(tool.name))
        first = obj.split()[0].lower() if obj.split() else ""
        question_ok = verb in QUESTION_VERBS and first in ("the", "a", "an")
        return TaskPhrase(verb=verb, obj=_lower_first(obj), question_ok=question_ok)
    words = words_of(tool.name)
    if words and _base_verb(words[0]):
        return TaskPhrase(
            verb=_base_verb(words[0]) or "get", obj="the " + " ".join(words[1:]) if words[1:] else "it"
        )
    return TaskPhrase(verb="get", obj="the " + " ".join(words), question_ok=True)


def _lower_first(s: str) -> str:
    if len(s) > 1 and s[0].isupper() and not s[1].isupper():
        return s[0].lower() + s[1:]
    return s


def param_noun(rng: random.Random, name: str, schema: dict[str, Any]) -> str:
    """How a person would name the parameter: usually its name in words ("start line"), sometimes a
    short noun phrase from its description ("unit of measure")."""
    words = words_of(name)
    words = ["number of" if w == "num" else w for w in words]
    noun = " ".join(words)
    desc = re.sub(r"\([^)]*\)", "", str(schema.get("description", ""))).strip()
    desc = re.split(r"[.,;:]", desc)[0].strip()
    d_words = desc.split()
    if d_words and d_words[0].lower() in ("the", "a", "an"):
        d_words = d_words[1:]
    if 1 < len(d_words) <= 4 and not _base_verb(d_words[0]) and rng.random() < 0.3:
        noun = " ".join(d_words).lower()
    return noun


def number_words(n: int) -> str | None:
    """2000000 -> "2 million", 2500000 -> "2.5 million"; None below a million or if not round."""
    for unit, word in ((10**9, "billion"), (10**6, "million")):
        if abs(n) >= unit and n % (unit // 10) == 0:
            return f"{n / unit:g} {word}"
    return None


def percent_form(v: float) -> str:
    """A decimal rate as people say it: 0.05 -> "5%", 0.035 -> "3.5%"."""
    return f"{round(v * 100, 6):g}%"


def value_forms(value: int | float) -> list[str]:
    """Every surface form of a number that a request may use for it (one of them must appear)."""
    forms = [json.dumps(value)]
    if isinstance(value, int) and abs(value) >= 1000:
        forms.append(f"{value:,}")
        if (w := number_words(value)) is not None:
            forms.append(w)
    if isinstance(value, float) and 0 < value < 1:
        forms.append(percent_form(value))
    return forms


def format_number(rng: random.Random, value: int | float, name: str, schema: dict[str, Any]) -> str:
    """The number as a person writes it, by what it measures (``number_kind``)."""
    kind = number_kind(name, schema)
    if kind == "decimal_rate" and isinstance(value, float) and 0 < value < 1 and rng.random() < 0.6:
        return percent_form(value)
    if kind == "percent_rate" and rng.random() < 0.5:
        return f"{value:g}%"
    text = json.dumps(value)
    big = abs(value) >= 1000 if kind in ("money", "big_count") else abs(value) >= 10**5  # never a year
    if isinstance(value, int) and big:
        r = rng.random()
        if r < 0.35:
            text = f"{value:,}"
        elif r < 0.6 and (w := number_words(value)) is not None:
            text = w
    if kind == "money" and rng.random() < 0.5:
        text = "$" + text
    elif kind is None and (units := unit_suffixes(schema)) and rng.random() < 0.5:
        text += rng.choice(units)  # "300K", "2 kg", "5J/K": the call still gets the bare number
    return text


class Several(list[Any]):
    """Several values of one scalar parameter, one call each ("for 1, 5 and 10 years" is three calls):
    said as "a, b and c", never as a bracketed list, which would read as one array argument."""


def format_value(rng: random.Random, value: Any, schema: dict[str, Any], name: str = "") -> str:
    """The value as it appears in the request (one of its ``leaf_forms`` for every leaf)."""
    if isinstance(value, Several):
        parts = [format_value(rng, v, schema, name) for v in value]
        return ", ".join(parts[:-1]) + rng.choice([" and ", ", and "]) + parts[-1]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(rng, value, name, schema)
    if isinstance(value, str):
        if value in CURRENCY_NAMES and rng.random() < 0.4:
            return rng.choice(CURRENCY_NAMES[value])
        if value in CITY_OF_FULL and asks_full_place(name, schema) and rng.random() < 0.35:
            return CITY_OF_FULL[value]  # "in Boston" and the schema wants "City, ST": "Boston, MA"
        if " " in value and rng.random() < 0.5:
            q = rng.choice(['"', "'"]) if "'" not in value else '"'
            return f"{q}{value}{q}"
        if ("/" in value or "." in value) and rng.random() < 0.2:
            return f"`{value}`"
        return value
    if isinstance(value, list):
        item_schema = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        parts = [format_value(rng, v, item_schema, name) for v in value]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value) and rng.random() < 0.5:
            return "[" + ", ".join(json.dumps(v) for v in value) + "]"
        if len(parts) == 1:
            return parts[0]
        return ", ".join(parts[:-1]) + rng.choice([" and ", ", and ", ", "]) + parts[-1]
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        return ", ".join(
            f"{' '.join(words_of(k))} {format_value(rng, v, props.get(k, {}), k)}" for k, v in value.items()
        )
    return json.dumps(value)


def leaf_forms(value: Any) -> list[list[str]]:
    """For each leaf value of ``value``, the strings of which a request must contain one for the value
    to be recoverable from it (``[]`` for booleans, which are said in words)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value_forms(value)]
    if isinstance(value, str):
        city = [CITY_OF_FULL[value]] if value in CITY_OF_FULL else []
        return [[value, *CURRENCY_NAMES.get(value, ()), *city]]
    if isinstance(value, list):
        return [f for v in value for f in leaf_forms(v)]
    if isinstance(value, dict):
        return [f for v in value.values() for f in leaf_forms(v)]
    return []


def leaf_strings(value: Any) -> list[str]:
    """The canonical string of each leaf value (strings as-is, numbers as JSON)."""
    return [forms[0] for forms in leaf_forms(value)]


def forms_in(text: str, *arg_sets: dict[str, Any]) -> list[str]:
    """The value forms that ``text`` actually uses: what a paraphrase must keep."""
    out: list[str] = []
    for args in arg_sets:
        for v in args.values():
            for forms in leaf_forms(v):
                out.extend(f for f in forms if f in text)
    return out


# words of parameter names too common to say whose value follows
_NAME_STOP = set("a an the of to in for and is value number name type data".split())
# what may stand between a parameter's name and its value: "a base of 49", "end range set to 29.7"
_LINKS = set("of is to set as at equals was".split())


def roles_swapped(text: str, *arg_sets: dict[str, Any]) -> bool:
    """True when a value follows another parameter's name: "a base of 49 and a height of 43" for height
    49, base 43. Paraphrasing models keep the values but sometimes swap their roles, which would teach
    the model to guess. The name must come right before the value in its clause (linking words aside:
    "of", "set to", ":"); a value with no name before it, or shared by two parameters, is no evidence.
    Templates trip it on ~1.6% of BFCL requests ("a time of acceleration of 64"), so a rewrite is judged
    only when its template is not flagged."""
    for args in arg_sets:
        named = {n: {w for w in words_of(n) if len(w) > 1} - _NAME_STOP for n in args}
        scalars = {n: v for n, v in args.items() if isinstance(v, str | int | float)}
        scalars = {n: v for n, v in scalars.items() if not isinstance(v, bool)}
        for name, value in scalars.items():
            if sum(1 for v in scalars.values() if v == value) > 1:
                continue
            for form in leaf_forms(value)[0]:
                for m in re.finditer(rf"(?<![\w.]){re.escape(form)}(?!\w|\.\d)", text):
                    clause = re.split(r"[,;(]", text[: m.start()].lower())[-1]
                    words = re.findall(r"[a-z0-9]+", clause)[-5:]
                    while words and words[-1] in _LINKS:
                        words.pop()
                    if not words or not any(words[-1] in ws for ws in named.values()):
                        continue
                    # "end range" names end_range, not start_range: the most words of the last two
                    hits = {n: len(ws & set(words[-2:])) for n, ws in named.items()}
                    if hits[name] < max(hits.values()):
                        return True
    return False


class Slots(BaseModel):
    """Argument phrases: ``lead`` are prepositional ("in Paris", "in meters", "with recursive enabled"),
    ``core`` are noun phrases ("a base of 12"); ``style`` says how core phrases are introduced."""

    lead: list[str] = []
    core: list[str] = []
    style: str = "with"


def _slots(rng: random.Random, tool: ToolSpec, args: dict[str, Any]) -> Slots:
    names = list(args)
    rng.shuffle(names)
    out = Slots(style=rng.choice(["with", "with", "with", "where", "colon"]))
    # A bare "in Paris" is only unambiguous when one argument is a place (start/end would be lost).
    places = [
        n for n in names if set(words_of(n)) & {"city", "location", "place"} and isinstance(args[n], str)
    ]
    units = [n for n in names if set(words_of(n)) & {"unit", "units"} and isinstance(args[n], str)]
    for name in names:
        value, schema = args[name], tool.properties.get(name, {})
        noun = param_noun(rng, name, schema)
        if isinstance(value, bool):
            on = "enabled" if value else "disabled"
            out.lead.append(
                rng.choice(
                    [
                        f"with {noun} {on}",
                        f"with {noun} set to {str(value).lower()}",
                        f"with {noun} {'on' if value else 'off'}",
                    ]
                )
            )
            continue
        v = format_value(rng, value, schema, name)
        if len(units) == 1 and name in units and rng.random() < 0.7:
            out.lead.append(rng.choice([f"in {v}", f"using {v}"]))
        elif len(places) == 1 and name in places and len(words_of(name)) == 1 and rng.random() < 0.7:
            out.lead.append(rng.choice([f"in {v}", f"for {v}"]))
        elif out.style == "where":
            out.core.append(rng.choice([f"the {noun} is {v}", f"{noun} is {v}"]))
        elif out.style == "colon":
            out.core.append(rng.choice([f"{noun}: {v}", f"{noun} = {v}", f"{noun} {v}"]))
        else:
            art = (
                "the"
                if noun.endswith("s") or noun.startswith("number of")
                else ("an" if noun[:1] in "aeiou" else "a")
            )
            out.core.append(
                rng.choice(
                    [
                        f"{art} {noun} of {v}",
                        f"{noun} {v}",
                        f"the {noun} {v}",
                        f"{noun} set to {v}",
                        f"{v} as the {noun}",
                        f"{noun} of {v}",
                    ]
                )
            )
    return out


def _join(rng: random.Random, parts: list[str]) -> str:
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + rng.choice([" and ", ", and ", " and "]) + parts[-1]


def _core_text(rng: random.Random, sl: Slots) -> str:
    if not sl.core:
        return ""
    if sl.style == "where":
        return "where " + _join(rng, sl.core)
    if sl.style == "colon":
        return "(" + ", ".join(sl.core) + ")" if rng.random() < 0.5 else "— " + ", ".join(sl.core)
    return "with " + _join(rng, sl.core)


def slots_text(rng: random.Random, tool: ToolSpec, args: dict[str, Any]) -> str:
    """The argument part of a request: "in Paris with a base of 12 and height 7", random order/style."""
    sl = _slots(rng, tool, args)
    return " ".join(p for p in [*sl.lead, _core_text(rng, sl)] if p)


def clause(rng: random.Random, tool: ToolSpec, args: dict[str, Any]) -> str:
    """A bare imperative clause (no opener, no punctuation): "calculate the area of a triangle with …"."""
    tp = task_phrase(tool)
    slots = slots_text(rng, tool, args)
    return f"{tp.imperative()} {slots}".strip()


_OPENERS = [
    "",
    "",
    "Can you ",
    "Could you ",
    "Please ",
    "I need to ",
    "I'd like to ",
    "Help me ",
    "I want you to ",
    "Would you ",
    "Go ahead and ",
    "Quickly ",
]
_PREAMBLES = ["", "", "", "", "Hey, ", "Hi! ", "Quick question: ", "OK, ", "So, "]
# Questions that still want the tool: a question is not a reason to answer from memory.
_QUESTIONS = [
    "What's",
    "What is",
    "What would be",
    "Tell me",
    "I need",
    "Give me",
    "Can you tell me",
    "Do you know",
    "I'd like to know",
    "Could you find out",
]
_TAILS = ["", "", "", "", " please", " for me", " thanks", " asap"]
# Wh-questions that want the tool ("Who was the U.S. president during …?"): general-knowledge questions
# answered in text start the same way, so the model must learn that the offered tool decides.
_PERSON_NOUNS = {
    "president",
    "monarch",
    "scientist",
    "inventor",
    "discoverer",
    "winner",
    "player",
    "person",
    "author",
    "composer",
    "founder",
    "leader",
    "artist",
    "director",
    "ceo",
    "pope",
}
_MONEY_NOUNS = {"price", "cost", "value", "worth", "fee", "salary", "rent"}
_LIST_OBJ = re.compile(r"^(a list of (the )?|the (best|top|nearest|closest|tallest) )")


def wh_question(rng: random.Random, obj: str) -> tuple[str, str] | None:
    """("Who was", "the U.S. president during a event") for an object naming a person, "How much is"
    for a price, "Which are" for a list; None when no wh-word fits the object."""
    who = re.sub(r"^the name of (the |a |an )?", "the ", obj)
    if set(who.lower().replace("'s", "").split()[:4]) & _PERSON_NOUNS:
        who = re.sub(r"'s name who (is|was)\b", "", who)
        return rng.choice(["Who is", "Who was", "Who's"]), who
    if set(obj.lower().split()[:4]) & _MONEY_NOUNS:
        return rng.choice(["How much is", "How much would be"]), obj
    if _LIST_OBJ.match(obj):
        return "Which are", re.sub(r"^a list of (the )?", "the ", obj)
    return None


# "a/an/the [up to two words] <parameter name>" ending the noun phrase (a preposition or the end follows).
_ARTICLE_NOUN = (
    r"\b(?:a|an|the)\s+(?:(?!and\b|or\b)[a-z][\w.-]*\s+){{0,2}}?{noun}"
    r"(?=$|\s+(?:of|in|for|at|from|to|with|within|between|on|by|during|over|after|under|into)\b|[,;])"
)
# Numbers that read right on their own ("the factorial of 5"); others keep their noun ("a radius of 5").
_BARE_NUMBER_NOUNS = {"number", "integer", "amount", "value", "count", "quantity", "n", "year"}
# A number cannot stand in for "a range of rounds" or "the next N years".
_NOT_A_NUMBER_SLOT = re.compile(r"\b(range|list|series|set|next)\b|\b[A-Z]\b")


def inline_values(rng: random.Random, obj: str, tool: ToolSpec, args: dict[str, Any]) -> tuple[str, set[str]]:
    """Put argument values where the task phrase names them, as people ask: "convert an amount from a
    base currency to a target currency" -> "convert 500 from USD to CAD", "the U.S. president during a
    historical event" -> "... during the Civil War", "a circle with a radius" -> "... a radius of 5".
    Returns the new object and the names it used. A parameter is inlined only when its full name
    ("base currency", not just "currency") ends a noun phrase after an article, exactly once, and the
    phrase is not the whole object."""
    used: set[str] = set()
    for name, value in args.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            continue
        words = words_of(name)
        noun = " ".join(words)
        if len(noun) < 3:
            continue
        pattern = re.compile(_ARTICLE_NOUN.format(noun=r"\s+".join(map(re.escape, words))), re.I)
        matches = list(pattern.finditer(obj))
        if len(matches) != 1 or (matches[0].start() == 0 and matches[0].end() == len(obj)):
            continue
        m = matches[0]
        v = format_value(rng, value, tool.properties.get(name, {}), name)
        if not isinstance(value, str):
            if _NOT_A_NUMBER_SLOT.search(m.group(0)):
                continue
            if (count := re.match(r"(?:a|the) number of (\w+)$", m.group(0))) is not None:
                v = f"{v} {count.group(1)}"  # "over a number of days" -> "over 7 days"
            elif words[-1] not in _BARE_NUMBER_NOUNS:
                v = f"{m.group(0)} of {v}"
        obj = obj[: m.start()] + v + obj[m.end() :]
        used.add(name)
    return obj, used


def request_text(
    rng: random.Random,
    tool: ToolSpec,
    args: dict[str, Any],
    phrase: TaskPhrase | None = None,
    *,
    question: float = 0.5,
) -> str:
    """A complete natural request for one call of ``tool`` with ``args`` (asking for ``phrase`` instead
    of the tool's own task when given: a near miss). Half the time, values the task phrase names are
    put in its place ("convert 500 from USD to CAD") and only the rest follow as slots. A task that
    reads as a question is asked as one with probability ``question`` (when the values read "with ...",
    the first fifth of that opens "Given ..." instead); the draws are the same for any value."""
    tp = phrase or task_phrase(tool)
    if rng.random() < 0.5:
        obj, used = inline_values(rng, tp.obj, tool, args)
        if used:
            tp = tp.model_copy(update={"obj": obj})
            args = {k: v for k, v in args.items() if k not in used}
    sl = _slots(rng, tool, args)
    form = rng.random()
    pre = rng.choice(_PREAMBLES)
    if sl.core and sl.style == "with" and form < 0.2:
        # "Given a base of 12 and a height of 7, calculate the area of a triangle in meters."
        given = rng.choice(["Given", "For", "With", "Using"])
        tail = " ".join([tp.imperative(), *sl.lead])
        return _with_pre(pre, f"{given} {_join(rng, sl.core)}, {tail}") + rng.choice([".", ".", ""])
    slots = " ".join(p for p in [*sl.lead, _core_text(rng, sl)] if p)
    if tp.question_ok and form < question:
        wh = wh_question(rng, tp.obj) if rng.random() < 0.8 else None
        if wh is not None:
            return _with_pre(pre, f"{wh[0]} {wh[1]} {slots}".strip()) + "?"
        q = rng.choice(_QUESTIONS)
        end = "?" if q.startswith(("What", "Can", "Do ", "Could")) else rng.choice([".", "", "!"])
        return _with_pre(pre, f"{q} {tp.obj} {slots}".strip()) + end
    opener = rng.choice(_OPENERS)
    text = f"{opener}{tp.imperative()} {slots}".strip()
    tail = rng.choice(_TAILS)
    if tail == " please" and says_please(pre + text):
        tail = ""  # "Please open the file please" says it twice
    end = "?" if opener.strip() in ("Can you", "Could you", "Would you") else rng.choice([".", ".", "", "!"])
    return _with_pre(pre, _upper_first(text)) + tail + end


def _with_pre(pre: str, text: str) -> str:
    """Join a preamble ("Hey, ") and a sentence, lower-casing the sentence start after a comma."""
    text = _upper_first(text)
    if pre.endswith((", ", ": ")) and not re.match(r"^(I\b|I'|[A-Z]{2})", text):
        text = text[0].lower() + text[1:]
    return pre + text


def _proper(text: str) -> bool:
    return len(text) > 1 and text[1].isupper()


def _upper_first(s: str) -> str:
    return s[0].upper() + s[1:] if s else s


def multi_request(rng: random.Random, clauses: list[str], *, sequential: bool = False) -> str:
    """Several tasks in one message: parallel ("… and also …") or sequential ("First …, then …")."""
    if sequential:
        a, b = clauses[0], clauses[1]
        return rng.choice(
            [
                f"First {a}, then {b}.",
                f"{_upper_first(a)}. After that, {b}.",
                f"Please {a} and then {b}.",
                f"Step one: {a}. Step two: {b}.",
            ]
        )
    if len(clauses) == 2 and rng.random() < 0.5:
        a, b = clauses
        return rng.choice(
            [
                f"{_upper_first(a)}, and also {b}.",
                f"Can you {a} and {b}?",
                f"{_upper_first(a)}. Also, {b}.",
                f"I need two things: {a}; and {b}.",
            ]
        )
    return (
        rng.choice(["Please do these: ", "Do the following: ", "I need all of these: ", ""])
        + "; ".join(f"{i + 1}) {c}" for i, c in enumerate(clauses))
        + "."
    )


def mentions_all(text: str, args: dict[str, Any]) -> bool:
    """True when every leaf value of ``args`` appears in ``text`` in one of its forms (the no-guessing
    rule)."""
    return all(any(f in text for f in forms) for v in args.values() for forms in leaf_forms(v))
