"""Whole multi-step jobs for the agent's own tools: one request, then call → result → the next call chosen
from that result → ... → an answer grounded in what the tools returned.

Single-turn examples teach the first call; an agent must also keep going after a result instead of
stopping or guessing (the quick demo's adapter answered "what does src/greet.py do?" from the file name).
Each trajectory here is one user message and several assistant turns; split per turn, every step gets
loss: the second call's arguments come from the first result (a path a search found, the file a failing
test names), and the answer quotes the results.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from tooltune.data.coding_requests import _DIRS, _IDENTS, _STEMS, _TEST_DIRS, _polish

Args = dict[str, Any]


class Step(NamedTuple):
    name: str
    args: Args
    result: str


class Trajectory(NamedTuple):
    request: str
    steps: list[Step]
    answer: str


# functions the coding-tasks projects do not have (their failing tests are eval tasks, not lessons)
_PY_FUNCS = [
    ("is_even", "n", "n % 2 == 0", "n % 2 == 1", "is_even(4)"),
    ("sum_squares", "xs", "sum(x * x for x in xs)", "sum(x + x for x in xs)", "sum_squares([1, 2]) == 5"),
    (
        "initials",
        "name",
        "''.join(w[0] for w in name.split())",
        "name[0]",
        "initials('Ada Lovelace') == 'AL'",
    ),
    ("average", "xs", "sum(xs) / len(xs)", "sum(xs) / (len(xs) + 1)", "average([2, 4]) == 3"),
    ("cube", "n", "n ** 3", "n * 3", "cube(2) == 8"),
]
# none of these names is in the coding-tasks projects: training must not rehearse an eval task's edit
_CONSTS = [
    ("CACHE_TTL", 300, 900),
    ("BATCH_SIZE", 100, 250),
    ("POOL_SIZE", 5, 10),
    ("MAX_UPLOAD_MB", 10, 25),
    ("SESSION_DAYS", 7, 14),
    ("WORKER_COUNT", 2, 4),
]


def _py(rng: random.Random, folder: bool = True) -> str:
    d = rng.choice([d for d in _DIRS if "/" not in d or d.startswith("src")]) if folder else ""
    return f"{d}/{rng.choice(_STEMS)}.py" if d else f"{rng.choice(_STEMS)}.py"


def _find_and_read(rng: random.Random) -> Trajectory:
    ident = rng.choice([i for i in _IDENTS if i[0].islower()])
    path, line = _py(rng), rng.randint(3, 120)
    body = f"def {ident}(value):\n    return value\n"
    ask = rng.choice(
        [
            f"where is {ident} defined, and what does it do?",
            f"find {ident} and show me how it works",
            f"what does {ident} do?",
            f"look up {ident} for me and explain it",
        ]
    )
    return Trajectory(
        _polish(rng, ask),
        [
            Step("search_code", {"pattern": ident}, f"{path}:{line}: def {ident}(value):"),
            Step("read_file", {"path": path}, body),
        ],
        f"{ident} is defined in {path} (line {line}); it takes one value and returns it unchanged.",
    )


def _list_and_read(rng: random.Random) -> Trajectory:
    d = rng.choice(_DIRS)
    names = rng.sample(_STEMS, 3)
    target = rng.randrange(3)
    entries = [
        f"{d}/{n}{'.py' if i == target else rng.choice(['.md', '.json', '.txt'])}"
        for i, n in enumerate(names)
    ]
    const, value, _ = rng.choice(_CONSTS)
    body = f"{const} = {value}\n"
    ask = rng.choice(
        [
            f"what's in {d}? then open the python file there and tell me what it sets",
            f"list {d} and read the .py file in it",
            f"which python file is in {d}, and what's in it?",
        ]
    )
    return Trajectory(
        _polish(rng, ask),
        [
            Step("list_dir", {"path": d}, "\n".join(entries)),
            Step("read_file", {"path": entries[target]}, body),
        ],
        f"{d} has {', '.join(e.rsplit('/', 1)[-1] for e in entries)}; "
        f"{entries[target]} sets {const} to {value}.",
    )


def _edit_constant(rng: random.Random) -> Trajectory:
    const, old, new = rng.choice(_CONSTS)
    path = rng.choice(["config.py", "settings.py", f"{rng.choice(['src', 'app', 'core'])}/config.py"])
    before = f'"""Settings."""\n\n{const} = {old}\nVERBOSE_ERRORS = False\n'
    after = before.replace(f"{const} = {old}", f"{const} = {new}")
    ask = rng.choice(
        [
            f"bump {const} in {path} to {new}",
            f"set {const} to {new} in {path}",
            f"change {const} from {old} to {new} ({path})",
        ]
    )
    return Trajectory(
        _polish(rng, ask),
        [
            Step("read_file", {"path": path}, before),
            Step(
                "write_file",
                {"path": path, "content": after},
                f"wrote {path} ({len(after.encode())} bytes, {len(after.splitlines())} lines)",
            ),
        ],
        f"Done: {const} is now {new} in {path} (it was {old}).",
    )


def _fix_failing_test(rng: random.Random) -> Trajectory:
    fn, params, good, bad, assertion = rng.choice(_PY_FUNCS)
    stem = rng.choice(["utils", "helpers", "mathutil", "text", "core"])
    src = f"{rng.choice(['src', 'lib', 'app'])}/{stem}.py"
    test = f"{rng.choice(_TEST_DIRS)}/test_{stem}.py"
    head = "$ python -m pytest -q --color=no -p no:cacheprovider\n"
    n = rng.randint(4, 30)
    failing = (
        f"{head}exit code 1\nFAILED {test}::test_{fn} - assert {assertion}\n"
        f"1 failed, {n} passed in 0.{rng.randint(10, 99)}s"
    )
    broken = f"def {fn}({params}):\n    return {bad}\n"
    fixed = f"def {fn}({params}):\n    return {good}\n"
    passing = f"{head}exit code 0\n{'.' * min(n + 1, 40)}\n{n + 1} passed in 0.{rng.randint(10, 99)}s"
    ask = rng.choice(
        [
            "the tests are failing, can you fix it?",
            "tests are red, please fix",
            "something broke the tests. find it and fix it",
            "make the tests pass again",
        ]
    )
    return Trajectory(
        _polish(rng, ask),
        [
            Step("run_tests", {}, failing),
            Step("search_code", {"pattern": fn}, f"{src}:1: def {fn}({params}):"),
            Step("read_file", {"path": src}, broken),
            Step(
                "write_file",
                {"path": src, "content": fixed},
                f"wrote {src} ({len(fixed.encode())} bytes, 2 lines)",
            ),
            Step("run_tests", {}, passing),
        ],
        f"Fixed: {fn} in {src} returned `{bad}` instead of `{good}`. All {n + 1} tests pass now.",
    )


def _run_and_report(rng: random.Random) -> Trajectory:
    n = rng.randint(5, 60)
    head = "$ python -m pytest -q --color=no -p no:cacheprovider\n"
    if rng.random() < 0.5:
        out = f"{head}exit code 0\n{'.' * min(n, 40)}\n{n} passed in 1.{rng.randint(10, 99)}s"
        answer = f"Yes, all {n} tests pass."
    else:
        test = f"{rng.choice(_TEST_DIRS)}/test_{rng.choice(_STEMS)}.py::test_{rng.choice(_STEMS)}"
        tail = f"1 failed, {n} passed in 2.{rng.randint(10, 99)}s"
        out = f"{head}exit code 1\nFAILED {test} - AssertionError\n{tail}"
        answer = f"No: 1 test fails ({test}); the other {n} pass."
    ask = rng.choice(["do the tests pass?", "run the tests and tell me how it went", "are we green?"])
    return Trajectory(_polish(rng, ask), [Step("run_tests", {}, out)], answer)


KINDS = [_find_and_read, _list_and_read, _edit_constant, _fix_failing_test, _run_and_report]


def trajectory(rng: random.Random) -> Trajectory:
    return rng.choice(KINDS)(rng)
