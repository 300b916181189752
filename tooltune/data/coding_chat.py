"""What a coding agent answers in text although its tools are offered.

The demo adapter trained mostly on refusals of a tool that was *not* offered learned "a message with
the coding tools offered means a call": it ran `run_tests` for "ok", `list_dir` for a translation and
`read_file` for a weather question (docs/TRANSCRIPTS.md, full demo on generator 6: no-call 22/22 ->
6/22). These messages come with the coding tools offered and are answered in text: code questions,
thanks and greetings, arithmetic, translations, code to paste inline, and asks no project tool can do.
Many are composed from parts, so the model sees the kind, not a few memorised lines; the leak index
drops any that land near an eval case.
"""

from __future__ import annotations

import random

Chat = tuple[str, str]

# Questions a coding agent answers from what it knows (no tool), and asks it has no tool for.
CODING_QA: list[tuple[str, str]] = [
    ("What does `git stash` do?", "It shelves your uncommitted changes so the working tree is clean; `git stash pop` brings them back."),
    ("When should I use a dataclass instead of a dict?", "When the keys are fixed and known: a dataclass gives you types, defaults and attribute access."),
    ("What is the difference between `==` and `is` in Python?", "`==` compares values; `is` checks that both names point to the same object."),
    ("Explain what a mutex is, in one sentence.", "A mutex is a lock that lets only one thread at a time run a critical section."),
    ("Why would I use a virtual environment?", "To keep each project's dependencies separate from the system and from other projects."),
    ("What's a good commit message for fixing a typo in the docs?", "\"docs: fix typo in the installation guide\" — short, with the area first."),
    ("Is recursion slower than a loop?", "Often a little, because of call overhead, and deep recursion can overflow the stack; a loop avoids both."),
    ("What does HTTP 404 mean?", "Not Found: the server has nothing at that URL."),
    ("How do I undo my last commit but keep the changes?", "`git reset --soft HEAD~1` moves the branch back one commit and keeps the changes staged."),
    ("What is dependency injection?", "Passing a component the objects it needs instead of having it create them, so they can be swapped in tests."),
    ("Should I catch a bare `except:` in Python?", "Rarely: it also catches KeyboardInterrupt and SystemExit. Catch the specific exceptions you expect."),
    ("what's the big difference between TCP and UDP?", "TCP gives an ordered, reliable stream; UDP sends independent datagrams with no delivery guarantee."),
    ("Name a good library for parsing command-line arguments in Python.", "argparse in the standard library; click or typer if you want decorators."),
    ("What does `async` do in JavaScript?", "It makes a function return a Promise and lets you use `await` inside it."),
    ("Can you explain what a closure is?", "A function that keeps access to variables from the scope it was defined in, even after that scope has returned."),
    ("How many bytes are in a kilobyte?", "1000 in SI units; 1024 if you mean a kibibyte (KiB)."),
    ("What's the time complexity of binary search?", "O(log n): each step halves the range."),
    ("Without running anything, what does `set -e` do in a bash script?", "It makes the script exit as soon as a command fails."),
    ("Just tell me, don't run it: what does `chmod +x` do?", "It marks a file as executable."),
    ("In a sentence, what is a memory leak?", "Memory a program keeps allocated after it no longer needs it, so usage grows over time."),
    ("Thanks, that's all for now", "You're welcome! Ping me when you need something else."),
    ("great, looks good", "Glad it works. Anything else?"),
    ("Cool, nothing else", "Alright — I'm here if you need me."),
    ("Buy me a coffee", "I can't do that: my tools work on this project's files, git and commands, not purchases."),
    ("Call my colleague and tell him the build is fixed", "I can't make calls or send messages; I can only work inside this project."),
    ("Post this on Slack: release is out", "I have no way to post to Slack; I only have tools for this project's files, git and commands."),
    ("Turn off the lights in the office", "That's outside what I can do — my tools only reach this project."),
    ("Reserve a table for two tonight", "I can't make reservations; I can only read, search, change and test this project."),
    ("Renew our SSL certificate on the production server", "I can't reach the production server from here; I can only work inside this project's folder."),
    ("What's the difference between `git merge` and `git rebase`?", "Merge joins two histories with a merge commit; rebase replays your commits on top of the other branch, so history stays linear."),
    ("What does `git cherry-pick` do?", "It copies one existing commit onto the current branch as a new commit."),
    ("How does `git bisect` work?", "It binary-searches the history: you mark commits good or bad until git finds the first bad one."),
    ("What is a deadlock?", "Two or more threads each waiting for a lock another one holds, so none can go on."),
    ("What does idempotent mean for an HTTP method?", "Sending the request twice has the same effect as sending it once, like PUT or DELETE."),
    ("How does semantic versioning work?", "MAJOR.MINOR.PATCH: breaking changes bump major, new features bump minor, fixes bump patch."),
    ("What's the difference between a Docker image and a container?", "An image is the read-only template; a container is a running (or stopped) instance of it."),
    ("What is CORS?", "A browser rule that blocks cross-origin requests unless the server allows the origin in its response headers."),
    ("How do I avoid SQL injection?", "Use parameterized queries (placeholders) instead of building SQL strings from user input."),
    ("What's a JWT?", "A JSON Web Token: a signed, base64-encoded JSON payload used to carry claims such as who the user is."),
    ("Stack or queue: which one is LIFO?", "A stack is LIFO (last in, first out); a queue is FIFO."),
    ("What is a generator in Python?", "A function that uses `yield` to produce values one at a time, lazily, instead of building a list."),
    ("What's the GIL?", "CPython's global interpreter lock: only one thread runs Python bytecode at a time."),
    ("`let` vs `const` in JavaScript?", "Both are block-scoped; a `const` binding can't be reassigned, a `let` can."),
    ("What is a pure function?", "One whose result depends only on its arguments and that has no side effects."),
    ("What does a segfault mean?", "The program touched memory it isn't allowed to, so the OS killed it."),
    ("What's the point of `__init__.py`?", "It marks a directory as a regular Python package and runs when the package is imported."),
    ("`npm ci` or `npm install` in CI?", "`npm ci`: it installs exactly what the lockfile says and fails if it is out of date."),
    ("What's a good variable name for the number of retries left?", "`retries_left` (or `remaining_retries`) says what it holds."),
    ("snake_case or camelCase for Python functions?", "snake_case, as PEP 8 recommends; camelCase is the JavaScript habit."),
    ("How is a process different from a thread?", "A process has its own memory; threads share the memory of the process they live in."),
    ("What does `sudo` do?", "It runs a command as another user, root by default."),
    ("Why are floating point sums sometimes off, like 0.1 + 0.2?", "Binary floats can't represent 0.1 or 0.2 exactly, so 0.1 + 0.2 gives 0.30000000000000004."),
    ("What does O(n log n) usually come from?", "Good comparison sorts such as merge sort, or doing a log n step for each of n items."),
    ("What's a flaky test?", "A test that sometimes passes and sometimes fails without any code change, usually from timing or shared state."),
    ("What is a monorepo?", "One repository that holds several projects or packages, versioned together."),
    ("What does `const` mean in C?", "The value can't be changed through that name after it is initialised."),
    ("Why use type hints in Python?", "They document intent and let tools like mypy catch mistakes before the code runs."),
    ("When is a linked list better than an array?", "When you insert or remove in the middle a lot and rarely index by position."),
    ("What is technical debt?", "The future cost of shortcuts taken now: code that works but will be harder to change."),
]  # fmt: skip


_NO_TOOLS = ["without running anything, ", "don't open any files, just tell me: ", "no need for tools: ",
             "just answer, don't run anything: ", "from memory: ", "quick question, no need to look at the code: "]  # fmt: skip

_ACKS: list[Chat] = [
    ("okay", "Alright. Tell me what's next."), ("ok thanks", "You're welcome!"), ("k", "👍 Anything else?"),
    ("got it", "Great. Let me know if you need more."), ("perfect, thanks!", "Glad it helped!"),
    ("nice", "Anything else you want me to look at?"), ("that worked, thank you", "Great to hear!"),
    ("awesome, all green now", "Nice — good luck with the rest."), ("cool, that's it for today", "Sounds good. See you next time!"),
    ("forget about it", "Sure, dropping it."), ("cancel that", "Cancelled — I won't do anything."),
    ("no, leave it as is", "OK, I'll leave it unchanged."), ("stop, don't do anything", "Stopped. I won't touch anything."),
    ("hold on", "Sure, take your time."), ("wait, not yet", "OK, I'll wait until you're ready."),
    ("sounds good", "Great."), ("lgtm", "Thanks! Tell me if you want anything else."), ("thx", "Anytime!"),
    ("makes sense now", "Good. Ask if anything else is unclear."), ("never mind, I found it", "Good, glad you found it."),
]  # fmt: skip
_GREETINGS: list[Chat] = [
    ("hey", "Hi! What would you like to work on?"), ("hello!", "Hello! What can I do for you in this project?"),
    ("good afternoon", "Good afternoon! What are we working on?"), ("hi there, how's it going?", "Going well, thanks! What do you need?"),
    ("morning!", "Morning! What's first today?"), ("what's up?", "Ready when you are. What should we look at?"),
    ("yo", "Hey! What can I help with?"), ("good evening", "Good evening! What do you need?"),
]  # fmt: skip
_PHRASES = {
    "thank you": {"Spanish": "gracias", "French": "merci", "German": "danke", "Italian": "grazie"},
    "good night": {"Spanish": "buenas noches", "French": "bonne nuit", "German": "gute Nacht", "Italian": "buona notte"},
    "see you tomorrow": {"Spanish": "hasta mañana", "French": "à demain", "German": "bis morgen", "Italian": "a domani"},
    "hello": {"Spanish": "hola", "French": "bonjour", "German": "hallo", "Italian": "ciao"},
    "good luck": {"Spanish": "buena suerte", "French": "bonne chance", "German": "viel Glück", "Italian": "buona fortuna"},
}  # fmt: skip
_INLINE_CODE: list[Chat] = [
    ("Give me a Python one-liner that reverses a string, just paste it here", "`s[::-1]` — for example `'abc'[::-1]` is `'cba'`."),
    ("write a regex for a 5-digit US zip code (inline, no file)", "`^\\d{5}$` — add `(-\\d{4})?` before the `$` to allow ZIP+4."),
    ("What's the SQL to count orders per customer? Just show me the query", "`SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id;`"),
    ("show me a bash loop over all .txt files, don't create anything", "`for f in *.txt; do echo \"$f\"; done`"),
    ("how do I sum an array in JavaScript? one line please", "`const total = xs.reduce((a, b) => a + b, 0);`"),
    ("list comprehension for the squares of 0 to 9?", "`[i * i for i in range(10)]`"),
    ("how do I format today's date as YYYY-MM-DD in Python?", "`datetime.date.today().isoformat()` (or `.strftime('%Y-%m-%d')`)."),
    ("a Python function that checks for a palindrome, in the chat please", "```python\ndef is_palindrome(s: str) -> bool:\n    return s == s[::-1]\n```"),
    ("what's the git command to create and switch to a new branch? don't run it", "`git switch -c <name>` (or the older `git checkout -b <name>`)."),
    ("How do I read a JSON file in Python? Just the snippet", "```python\nimport json\nwith open(path) as f:\n    data = json.load(f)\n```"),
]  # fmt: skip
_OUT_OF_REACH: list[tuple[list[str], str]] = [
    (["order {x}", "get me {x}", "can you order {x}?"], "place orders"),
    (["book {y}", "reserve {y} for me", "can you book {y}?"], "make bookings"),
    (["send {m} to {p}", "text {p}: {m}", "email {p} and say {m}", "ping {p} on Slack: {m}"], "send messages"),
    (["will it rain in {c} this weekend?", "how cold is it in {c} right now?", "forecast for {c}?"], "look up the weather"),
    (["remind me to {r} at {t}", "set a reminder: {r}, {t}"], "set reminders"),
    (["what's on my calendar today?", "schedule a call with the team for {t}", "move my 1:1 to {t}"], "reach your calendar"),
    (["what's the stock price of {s}?", "how is {s} stock doing today?"], "look up live prices"),
    (["play {song}", "put on some {song}"], "play music"),
    (["restart the production database", "ssh into the staging box and check the logs", "scale the web service up on Kubernetes"], "reach servers outside this project"),
    (["check my inbox", "any new emails?"], "read your email"),
]  # fmt: skip
_FILL = {
    "x": ["sushi for lunch", "a coffee", "new headphones", "a taxi to the airport", "more printer paper"],
    "y": ["a flight to Lisbon", "a hotel in Rome", "a desk for Friday", "a doctor's appointment"],
    "m": ["'the demo moved to 4pm'", "'I'm running late'", "'build is green'", "'lunch?'"],
    "p": ["Sam", "my team lead", "the QA channel", "Priya"],
    "c": ["Paris", "Tokyo", "Oslo", "Madrid", "Toronto"],
    "r": ["call the bank", "review the PR", "water the plants", "submit the timesheet"],
    "t": ["5pm", "Friday at 10", "noon", "tomorrow morning"],
    "s": ["Apple", "Nvidia", "Tesla"],
    "song": ["jazz", "lo-fi beats", "something by Daft Punk"],
}
_CANT = [
    "I can't {what} — my tools only work inside this project: files, code search, git, commands and tests.",
    "Sorry, I can't {what}. I can read, search, change and test this project, nothing outside it.",
    "That's outside what I can do: I can't {what}, only work on this project's files, git and commands.",
]


def _out_of_reach(rng: random.Random) -> Chat:
    templates, what = rng.choice(_OUT_OF_REACH)
    text = rng.choice(templates)
    text = text.format(**{k: rng.choice(v) for k, v in _FILL.items()})
    return text[0].upper() + text[1:], rng.choice(_CANT).format(what=what)


def _arithmetic(rng: random.Random) -> Chat:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op, sym, val = rng.choice([("times", "×", a * b), ("plus", "+", a + b), ("minus", "−", a - b)])
    sign = {"times": "*", "plus": "+", "minus": "-"}[op]
    q = rng.choice([f"what's {a} {sign} {b}?", f"how much is {a} {op} {b}?", f"quick math: {a} {op} {b}",
                    f"{a} {sign} {b} = ?"])  # fmt: skip
    return q, f"{a} {sym} {b} = {val}."


def _translation(rng: random.Random) -> Chat:
    phrase, langs = rng.choice(list(_PHRASES.items()))
    lang, said = rng.choice(list(langs.items()))
    q = rng.choice([f"how do you say '{phrase}' in {lang}?", f"translate \"{phrase}\" to {lang}",
                    f"what's '{phrase}' in {lang}?"])  # fmt: skip
    return q, f'In {lang}, "{phrase}" is "{said}".'


def _question(rng: random.Random) -> Chat:
    q, a = rng.choice(CODING_QA)
    if q.endswith("?") and rng.random() < 0.3:  # told outright not to use the tools
        q = rng.choice(_NO_TOOLS) + q[0].lower() + q[1:]
    return q, a


def text_answer(rng: random.Random) -> Chat:
    """One message a coding agent answers in text with its tools offered, and the answer."""
    kind = rng.choices(
        [_question, _out_of_reach, _arithmetic, _translation, "ack", "greet", "code"],
        weights=[0.34, 0.2, 0.07, 0.06, 0.15, 0.08, 0.1],
    )[0]
    if kind == "ack":
        return rng.choice(_ACKS)
    if kind == "greet":
        return rng.choice(_GREETINGS)
    if kind == "code":
        return rng.choice(_INLINE_CODE)
    return kind(rng)


def after_exchange(rng: random.Random) -> Chat:
    """What a developer says once a tool's answer is in: thanks, an ack, or a question about code."""
    return rng.choice(_ACKS) if rng.random() < 0.6 else _question(rng)
