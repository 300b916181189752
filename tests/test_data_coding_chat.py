"""Generator 7 for the agent's own tools: messages answered in text *with* the coding tools offered,
"what does this file do?" answered from the file, more pairs, and file bodies that fit their names."""

from __future__ import annotations

import random
import re

import pytest

from tooltune.coding_tools import CODING_TOOLS
from tooltune.data import coding_chat, coding_requests
from tooltune.data.canned_text import GENERAL_QA
from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.similarity import LeakIndex

CODING = {t.name for t in CODING_TOOLS}


def _gen(kinds: list[str], n: int = 200, **kw) -> list:
    cfg = GenerateConfig(n=n, seed=7, kinds=kinds, phrasebook_share=1.0, max_tools=6, split_turns=False, **kw)
    return generate_examples(list(CODING_TOOLS), cfg, leak_index=LeakIndex.for_workspace(None)).examples


@pytest.fixture(scope="module")
def chats() -> list:
    return _gen(["no_call"], absent_tool_share=0.0)


def test_no_calls_are_answered_in_text_with_the_coding_tools_offered(chats) -> None:
    assert len(chats) > 100
    for ex in chats:
        assert {t["function"]["name"] for t in ex.tools} & CODING, ex.tools
        assert ex.messages[-1]["role"] == "assistant" and not ex.messages[-1].get("tool_calls")
    firsts = [ex.messages[0]["content"] for ex in chats]
    general = {q for q, _ in GENERAL_QA}
    # mostly the coding agent's own kind of message, and many different ones (composed, not a few lines)
    assert sum(q not in general for q in firsts) > 0.7 * len(firsts)
    assert len(set(firsts)) > 0.6 * len(firsts)


def test_some_come_after_a_finished_tool_exchange(chats) -> None:
    after = [ex for ex in chats if len(ex.messages) == 6]
    assert len(after) > 10
    for ex in after:
        roles = [m["role"] for m in ex.messages]
        assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]
        assert ex.messages[1]["tool_calls"] and not ex.messages[5].get("tool_calls")


def test_arithmetic_and_translations_are_right() -> None:
    rng = random.Random(0)
    for _ in range(200):
        q, a = coding_chat._arithmetic(rng)
        x, sym, y, val = re.fullmatch(r"(\d+) (.) (\d+) = (-?\d+)\.", a).groups()
        assert x in q and y in q
        assert int(val) == {"×": int(x) * int(y), "+": int(x) + int(y), "−": int(x) - int(y)}[sym]
        q, a = coding_chat._translation(rng)
        (phrase,) = [p for p in coding_chat._PHRASES if f"'{p}'" in q or f'"{p}"' in q]
        lang = next(lang for lang in ("Spanish", "French", "German", "Italian") if lang in q)
        assert a.endswith(f'"{coding_chat._PHRASES[phrase][lang]}".')


def test_what_does_a_file_do_is_answered_from_the_file() -> None:
    examples = _gen(["multi_answer"], n=160)
    explained = 0
    for ex in examples:
        msgs = ex.messages
        if (
            msgs[-1]["content"].startswith("Here is")
            or msgs[1]["tool_calls"][0]["function"]["name"] != "read_file"
        ):
            continue
        body = msgs[2]["content"]
        path = msgs[1]["tool_calls"][0]["function"]["arguments"]["path"]
        (does,) = [d for b, d in coding_requests._BODIES[coding_requests._body_kind(path)] if b == body]
        assert does in msgs[-1]["content"] and body.strip() not in msgs[-1]["content"]
        explained += 1
    assert explained > 20


def test_file_bodies_fit_the_file_name() -> None:
    rng = random.Random(1)
    for _ in range(400):
        _, args = coding_requests.request(rng, "write_file")
        bodies = [
            b.rstrip("\n") for b, _ in coding_requests._BODIES[coding_requests._body_kind(args["path"])]
        ]
        assert args["content"] in bodies, args
        if args["path"].endswith(".py"):  # and it is really that language, not one body for all
            assert "func " not in args["content"] and "const " not in args["content"]


def test_pairs_cover_more_tools_and_three_files() -> None:
    examples = _gen(["parallel"], n=200)
    twice: set[str] = set()
    three = 0
    for ex in examples:
        calls = [c["function"]["name"] for c in ex.messages[1]["tool_calls"]]
        three += len(calls) == 3
        twice |= {n for n in calls if calls.count(n) > 1}
    assert {"read_file", "write_file", "run_tests", "git_diff", "list_dir", "search_code"} <= twice
    assert three >= 2


def test_three_calls_at_once_and_in_the_order_asked() -> None:
    """A parallel turn asks two *or three* things (one tool thrice, or three tools); a file's content,
    which join() puts at the message's end, is also the last call."""
    three_tools, thrice = set(), set()
    for ex in _gen(["parallel"], n=300):
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in ex.messages[1]["tool_calls"]]
        names = [n for n, _ in calls]
        if len(set(names)) == 3:
            three_tools.add(tuple(names))
        if len(names) == 3 and len(set(names)) == 1:
            thrice.add(names[0])
        multi = [i for i, (n, a) in enumerate(calls) if n == "write_file" and "\n" in a["content"]]
        if multi and len(set(names)) > 1:
            assert multi == [len(calls) - 1], (ex.messages[0]["content"], calls)
    assert len(three_tools) >= 10  # many different triples, not one fixed combination
    assert {"read_file", "list_dir", "search_code", "run_tests"} <= thrice


def test_no_polite_lead_before_a_path() -> None:
    rng = random.Random(2)
    for _ in range(2000):
        text, args = coding_requests.request(rng, "read_file")
        assert not re.match(r"(?i)(can you|please) [\w./-]+\.\w+", text), text
        assert args["path"] in text  # and a path that opens the message keeps its case
