"""The casual surface of a request as people type it: a lead-in or tail, case, several asks joined.

Shared by the built-in coding phrasebook and phrasebook files; ``verbs`` are the words a request may
start with after "please"/"can you" ("can you src/app.py, lines 3-8?" is not how anyone writes), and
``shell_words`` those that make it a typed command ("please pytest -x" reads wrong).
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection


def polish(
    rng: random.Random,
    text: str,
    *,
    verbs: Collection[str],
    shell_words: Collection[str] = (),
    keep_case: bool = False,
) -> str:
    """Casual variation: a lead-in or tail, sometimes all lower case (people type fast). ``keep_case``:
    the text opens with a value ("Health: ..." is a note's title), whose case is not ours to change."""
    if text.startswith("$ "):
        return text
    opening = text
    if text.split(" ", 1)[0] in shell_words:
        return rng.choice(["", "", "", "ok, ", "now "]) + text
    if text.endswith("?"):
        text = rng.choice(["", "", "", "hey, ", "quick one: ", "ok, "]) + text
    else:
        lead = rng.choice(["", "", "", "hey, ", "please ", "quick one: ", "ok, ", "can you "])
        tail = rng.choice(["", "", "", " please", " for me", " thanks"])
        if lead in ("please ", "can you ") and text.split(" ", 1)[0].lower() not in verbs:
            lead = ""
        if "\n" in text:  # a file's content ends the message: nothing goes after it
            tail = ""
            lead = "" if lead == "can you " else lead
        if lead == "can you ":
            tail = (tail if tail != " thanks" else "") + "?"
        if says_please(text):  # "please run pip list" takes no second please
            lead = "" if lead == "please " else lead
            tail = tail.replace(" please", "")
        elif lead == "please ":
            tail = tail.replace(" please", "")
        text = lead + text + tail
    upper = rng.random() < 0.6
    first = text.split(" ", 1)[0].rstrip(",:?").replace("'", "")
    if keep_case and text.startswith(opening):
        return text
    if "\n" in text or not first.isalpha():  # opens with a path or a file's content: keep its case
        return text
    return text[0].upper() + text[1:] if upper else text[0].lower() + text[1:]


_PLEASE = re.compile(r"\bplease\b", re.IGNORECASE)


def says_please(text: str) -> bool:
    """Does ``text`` say "please" (as a word, any case) already?"""
    return _PLEASE.search(text) is not None


def pleases(text: str) -> int:
    """How many times ``text`` says "please" (as a word, any case)."""
    return len(_PLEASE.findall(text))


def join_requests(
    rng: random.Random,
    texts: list[str],
    *,
    verbs: Collection[str],
    shell_words: Collection[str] = (),
    keep_case: bool = False,
) -> str | None:
    """Several unpolished requests in one message, to be done at once; a multi-line one (file content)
    must come last, where its end is the message's end."""
    multi = [t for t in texts if "\n" in t]
    if len(multi) > 1:
        return None
    parts = [t for t in texts if "\n" not in t] + multi
    out = parts[0]
    for part in parts[1:]:
        if says_please(out) and part.lower().startswith("please "):
            part = part[len("please ") :]  # "run ls and please run pwd" asked once is enough
        if out.endswith("?"):
            out += rng.choice([" Also, ", " And "]) + part
        else:
            out += rng.choice([" and ", ", and also ", ". Also, ", "; also "]) + part
    return polish(rng, out, verbs=verbs, shell_words=shell_words, keep_case=keep_case)
