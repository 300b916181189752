"""Whole multi-step jobs for the agent's own tools: one request, then call → result → the next call chosen
from that result → ... → an answer grounded in what the tools returned. The jobs that run the tests are
scripted here (their pytest output written, not run); the jobs on files are recorded from the tools
themselves (:mod:`tooltune.data.recorded_jobs`, which draws from both).

Single-turn examples teach the first call; an agent must also keep going after a result instead of
stopping or guessing (the quick demo's adapter answered "what does src/greet.py do?" from the file name).
Each trajectory here is one user message and several assistant turns; split per turn, every step gets
loss: the second call's arguments come from the first result (a path a search found, the file a failing
test names), and the answer quotes the results.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from tooltune.data.coding_requests import _STEMS, _TEST_DIRS, _polish

Args = dict[str, Any]


class Step(NamedTuple):
    name: str
    args: Args
    result: str


class Trajectory(NamedTuple):
    request: str
    steps: list[Step]
    answer: str


# modules the fixed functions live in: none is a coding-tasks project's (a test checks)
FIX_STEMS = ["tally", "mathutil", "calc", "core", "shaping"]
# functions the coding-tasks projects do not have (their failing tests are eval tasks, not lessons)
PY_FUNCS = [
    ("is_even", "n", "n % 2 == 0", "n % 2 == 1", "is_even(4)"),
    ("sum_squares", "xs", "sum(x * x for x in xs)", "sum(x + x for x in xs)", "sum_squares([1, 2]) == 5"),
    (
        "initials",
        "name",
        "''.join(w[0] for w in name.split())",
        "name[0]",
        "initials('Ada Lovelace') == 'AL'",
    ),
    ("midrange", "xs", "(min(xs) + max(xs)) / 2", "(min(xs) + max(xs)) / 3", "midrange([2, 4]) == 3"),
    ("cube", "n", "n ** 3", "n * 3", "cube(2) == 8"),
]


def _fix_failing_test(rng: random.Random) -> Trajectory:
    fn, params, good, bad, assertion = rng.choice(PY_FUNCS)
    stem = rng.choice(FIX_STEMS)
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
                f"updated {src} ({len(fixed.encode())} bytes, 2 lines)",  # as write_file reports it
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


# the jobs that run the tests (the file jobs are recorded from the tools: recorded_jobs)
EXEC_KINDS = [_fix_failing_test, _run_and_report]
