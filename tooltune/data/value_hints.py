"""Example values a schema's author wrote into a parameter description.

"The root of the scale, e.g., 'C', 'F#', 'Ab'" says more about what a ``key`` looks like than any word
list: a request that says "the key signature of F#" teaches the model to copy "F#" whole, where a
made-up word ("cedar") teaches nothing about the domain. Quoted values come first; otherwise the list
after "e.g." / "such as" / "options:" / "either … or …".
"""

from __future__ import annotations

import re

# a quoted value: the quote opens after a space/bracket/punctuation and closes before one, so the
# apostrophe of "discoverer's" never opens a value
_QUOTED = re.compile(r"""(?:^|(?<=[\s(\[,:=]))(['"])([^'"\n]{1,40}?)\1(?=[\s),.;:\]]|$)""")
_LIST_START = re.compile(
    r"\b(?:e\.\s?g\.?[,:]?|eg\.?|such as|for instance,?|for example,?|options(?: include| are)?:?|"
    r"choices are:?|valid values(?: include| are)?:?|can be:?|either|like)\s+",
    re.I,
)
_LIST_END = re.compile(r",?\s*\betc\b|\.(?:\s|$)|[);]|\s-\s|$")
_PLACEHOLDER = re.compile(r"^[YMDHhms/\-: .]+$|yyyy|\bmm\b|\bdd\b|\bxxx", re.I)
_SKIP = {"default", "none", "null", "all", "true", "false", "etc", "and", "or", "other", "others"}
_SKIP |= {"city", "state", "country", "name", "value", "string"}  # format words, not values
# where a value comes from, not a value: "Id of the note, e.g. from search_notes."
_PROVENANCE = re.compile(r"^(?:from|via|returned by|see)\b", re.I)


def description_examples(description: str) -> list[str]:
    """The example values a description names, in order, without duplicates or format placeholders
    ("YYYY-MM-DD"). Empty when it names none."""
    text = description or ""
    found = [m.group(2).strip() for m in _QUOTED.finditer(text)]
    if not found:
        for m in _LIST_START.finditer(text):
            rest = text[m.end() :]
            end = _LIST_END.search(rest)
            chunk = rest[: end.start() if end else len(rest)]
            # "New York, NY" is one value: no split before a two-letter state code
            parts = re.split(r",(?!\s*[A-Z]{2}\b)\s*|\s+or\s+|\s+and\s+", chunk)
            items = [s.strip(" '\"") for s in parts]
            items = [s for s in items if s and len(s.split()) <= 4]
            if m.group(0).strip().lower() == "like" and len(items) < 2:
                continue  # "like" alone is too common a word to mark a list
            found += items
    out: list[str] = []
    for v in found:
        if (
            v
            and len(v) <= 30
            and v.lower() not in _SKIP
            and not _PLACEHOLDER.search(v)
            and not v.lower().startswith("default")
            and not v.startswith(("the ", "a ", "an "))  # a sentence; "A Minor" is a value
            and not _PROVENANCE.match(v)
            and v not in out
        ):
            out.append(v)
    return out
