"""Near-miss requests: a task next to what an offered tool does, which that tool must *not* serve.

BFCL's irrelevance category (and real agents) ask for the sunset when only ``calculate_sunrise`` is
offered, a derivative when the tool integrates, the vice president when it looks up presidents. A model
that only ever saw unrelated tools in its no-call examples learns "a tool about this topic is here, call
it". These examples swap one word of the tool's own task for its sibling ("sunrise" -> "sunset",
"read" -> "write") and answer in text, so the model learns to read what a tool does, not its topic.
"""

from __future__ import annotations

import random
import re

from tooltune.data.phrasing import TaskPhrase, task_phrase
from tooltune.toolspec import ToolSpec

# Each pair swaps both ways; the task it makes is a different job, not a rewording. Verbs are swapped
# only as the task's verb ("list files" -> "delete files"), nouns only in its object.
VERB_PAIRS = [
    ("read", "write"),
    ("list", "delete"),
    ("open", "close"),
    ("start", "stop"),
    ("upload", "download"),
    ("encrypt", "decrypt"),
    ("add", "remove"),
    ("create", "delete"),
    ("install", "uninstall"),
    ("book", "cancel"),
    ("deposit", "withdraw"),
    ("buy", "sell"),
    ("import", "export"),
    ("integrate", "differentiate"),
]
NOUN_PAIRS = [
    ("sunrise", "sunset"),
    ("boiling", "freezing"),
    ("highest", "lowest"),
    ("maximum", "minimum"),
    ("largest", "smallest"),
    ("longest", "shortest"),
    ("integral", "derivative"),
    ("area", "perimeter"),
    ("volume", "surface area"),
    ("president", "vice president"),
    ("birth", "death"),
    ("winner", "runner-up"),
    ("sine", "cosine"),
    ("mean", "median"),
    ("average", "median"),
    ("sum", "product"),
    ("greatest common divisor", "least common multiple"),
    ("gcd", "lcm"),
    ("factorial", "square root"),
    ("profit", "loss"),
    ("income", "expenses"),
    ("arrival", "departure"),
    ("weather", "local time"),
    ("temperature", "humidity"),
    ("forecast", "historical record"),
    ("price", "rating"),
    ("speed", "acceleration"),
    ("velocity", "acceleration"),
    ("density", "mass"),
    ("calories", "protein content"),
    ("author", "publisher"),
    ("director", "box office"),
    ("currency", "official language"),
    ("tax", "tip"),
    ("distance", "travel time"),
    ("prime factors", "divisors"),
    ("future value", "present value"),
    ("heads", "tails"),
]


def _both_ways(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a, b in pairs:
        out.setdefault(a, b)
        out.setdefault(b, a)
    return out


VERB_SIBLINGS = _both_ways(VERB_PAIRS)
NOUN_SIBLINGS = _both_ways(NOUN_PAIRS)
# Longest first, so "greatest common divisor" is swapped whole; "vice president" is not a "president".
_NOUNS = re.compile(
    r"(?<!vice )\b(" + "|".join(re.escape(w) for w in sorted(NOUN_SIBLINGS, key=len, reverse=True)) + r")\b",
    re.I,
)


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()) + " "


_GENERAL_PURPOSE = re.compile(r"\b(shell|commands?|execute|run)\b", re.I)


def tool_covers(tool: ToolSpec, phrase: str) -> bool:
    """Could ``tool`` do the job ``phrase`` names: its name or description mentions it, or it runs
    arbitrary commands (a shell can delete a file as well as list it)?"""
    text = f"{tool.name.replace('_', ' ')} {tool.description}"
    return _words(phrase) in _words(text) or bool(_GENERAL_PURPOSE.search(text))


def sibling_task(rng: random.Random, tool: ToolSpec) -> tuple[TaskPhrase, str] | None:
    """The tool's task with one word swapped for its sibling, and the new word; None when no word of it
    has one or when the tool's own text mentions the sibling (a weather tool that also reports humidity)."""
    tp = task_phrase(tool)
    options: list[tuple[TaskPhrase, str]] = []
    if tp.verb.lower() in VERB_SIBLINGS and not tp.obj.startswith("or "):  # "create or overwrite"
        new = VERB_SIBLINGS[tp.verb.lower()]
        options.append((TaskPhrase(verb=new, obj=tp.obj), new))
    for m in _NOUNS.finditer(tp.obj):
        new = NOUN_SIBLINGS[m.group(1).lower()]
        obj = tp.obj[: m.start()] + new + tp.obj[m.end() :]
        options.append((TaskPhrase(verb=tp.verb, obj=obj, question_ok=tp.question_ok), new))
    options = [(p, new) for p, new in options if not tool_covers(tool, new)]
    return rng.choice(options) if options else None


NEAR_MISS_ANSWERS = [
    "The only related tool here can {offered}, not {task}, so I can't do that with these tools.",
    "I can't {task} here: the available function can {offered}, which is a different thing.",
    "Sorry, there's no tool to {task}. The one I have can only {offered}.",
    "That needs a tool to {task}, and I only have one that can {offered}, so I won't guess with it.",
]
