"""Where a model's answer degenerates into repeating itself, so the agent can cut it off.

Small models at the edge of what they learned loop: in `tooltune serve` an adapter answered one
`list_dir` call by streaming the word `list_dir` 171 times on its own lines, minutes of CPU for nothing.
Two shapes are caught, both conservative enough that ordinary prose and code pass:

- the same non-blank line (with a letter or digit in it) ``MAX_SAME_LINES`` times in a row, blank lines
  between them ignored;
- the same run of one to ``MAX_PHRASE_WORDS`` words ``MAX_SAME_PHRASES`` times in a row at the end of the
  text (``the the the …``, ``I will read it. I will read it. …``).
"""

from __future__ import annotations

import re

MAX_SAME_LINES = 4
MAX_SAME_PHRASES = 8
MAX_PHRASE_WORDS = 6
_WORD = re.compile(r"\S+")
_HAS_ALNUM = re.compile(r"[0-9A-Za-z]")


def degenerate_cut(text: str) -> int | None:
    """The index to cut ``text`` at when it ends in a repetition loop (after its first occurrence),
    else None. Only the end of the text is examined, so calling it on every streamed piece is cheap."""
    return _repeated_lines(text) or _repeated_phrase(text)


def _repeated_lines(text: str) -> int | None:
    run: list[tuple[int, int]] = []  # (start, end) of each repeat of the current line, last first
    current: str | None = None
    pos = len(text)
    lines = text.splitlines(keepends=True)
    for line in reversed(lines):
        pos -= len(line)
        body = line.strip()
        if not body:
            continue
        if current is None:
            if not line.endswith("\n"):  # still being streamed: judge it once it is complete
                continue
            current = body
        if body != current:
            break
        run.append((pos, pos + len(line)))
    if current is None or len(run) < MAX_SAME_LINES or not _HAS_ALNUM.search(current):
        return None
    first = run[-1]
    return first[1]


def _repeated_phrase(text: str) -> int | None:
    tail = text[-4000:]
    offset = len(text) - len(tail)
    words = list(_WORD.finditer(tail))
    for n in range(1, MAX_PHRASE_WORDS + 1):
        need = n * MAX_SAME_PHRASES
        if len(words) < need:
            break
        last = [w.group() for w in words[-n:]]
        if not any(_HAS_ALNUM.search(w) for w in last):
            continue
        copies = 1
        while len(words) >= n * (copies + 1):
            start = len(words) - n * (copies + 1)
            if [w.group() for w in words[start : start + n]] != last:
                break
            copies += 1
        if copies >= MAX_SAME_PHRASES:
            first_copy_end = words[len(words) - n * copies + n - 1].end()
            return offset + first_copy_end
    return None
