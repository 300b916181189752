"""Text helpers."""

import re

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text):
    """'Hello, World!' -> 'hello-world': lowercase, runs of other characters become one dash."""
    return _NON_ALNUM.sub("-", text.lower())


def truncate(text, width=72, suffix="..."):
    """Cut text to at most `width` characters, ending with `suffix` when it was cut."""
    if len(text) <= width:
        return text
    return text[: width - len(suffix)].rstrip() + suffix


def title_case(text, small_words=("a", "an", "and", "of", "the", "to")):
    words = text.split()
    out = []
    for i, word in enumerate(words):
        if i > 0 and word.lower() in small_words:
            out.append(word.lower())
        else:
            out.append(word[:1].upper() + word[1:].lower())
    return " ".join(out)
