"""The coding tools' phrasebook: the agent's own tools are asked for the way developers ask, with
coherent values, follow-ups into a tool result, results in the real tools' text form, and nothing
close to a `coding-tools` eval case."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from tooltune.agent.sandbox import Sandbox
from tooltune.agent.tools_impl import list_dir
from tooltune.coding_tools import CODING_TOOLS
from tooltune.data import coding_chat, coding_requests
from tooltune.data.canned_text import REFUSALS
from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.similarity import LeakIndex
from tooltune.data.tool_sources import load_tool_specs
from tooltune.toolspec import ToolSpec

KINDS = ["single", "choose", "parallel", "multi_answer", "multi_chain", "no_call"]


def _calls(msg: dict) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls") or []]


@pytest.fixture(scope="module")
def natural():
    cfg = GenerateConfig(n=400, seed=2, kinds=KINDS, phrasebook_share=1.0, max_tools=6, split_turns=False)
    return generate_examples(list(CODING_TOOLS), cfg, leak_index=LeakIndex.for_workspace(None))


def test_requests_are_a_developers_words_not_the_schema_read_back(natural) -> None:
    schema = generate_examples(
        list(CODING_TOOLS), GenerateConfig(n=200, seed=2, kinds=["single"], phrasebook_share=0.0)
    )

    def project_share(examples) -> float:
        firsts = [e.messages[0]["content"] for e in examples if e.messages[0]["role"] == "user"]
        return sum("project" in t.lower() for t in firsts) / len(firsts)

    # every built-in tool's description says "project"; people say "open src/app.py"
    assert project_share(schema.examples) > 0.9
    singles = [e for e in natural.examples if e.meta.kind == "single"]
    assert len(singles) > 20 and project_share(singles) < 0.1


def test_every_call_is_valid_and_its_values_are_in_the_request(natural) -> None:
    from jsonschema import Draft202012Validator

    validators = {t.name: Draft202012Validator(t.parameters) for t in CODING_TOOLS}
    seen: set[str] = set()
    for ex in natural.examples:
        asked = ""
        results = ""
        for m in ex.messages:
            if m["role"] == "user":
                asked += " " + m["content"]
            if m["role"] == "tool":
                results += " " + m["content"]
            for name, args in _calls(m):
                seen.add(name)
                assert validators[name].is_valid(args), (name, args)
                said = asked + results  # a follow-up takes its value from the tool's result
                for key, value in args.items():
                    if isinstance(value, str) and value != ".":  # "." (the root) goes without saying
                        langs = [lang for lang, glob in coding_requests.GLOBS.items() if glob == value]
                        assert value in said or any(lang in said for lang in langs), (key, value, said)
                if name == "run_command":
                    # a command line is split the way the tool takes it: program, then its arguments
                    assert " " not in args["command"]
                    line = " ".join([args["command"], *args.get("args", [])])
                    assert line in asked, (line, asked)
    assert seen == {t.name for t in CODING_TOOLS}


def test_follow_ups_take_their_value_from_the_tool_result(natural) -> None:
    follow_ups = 0
    for ex in natural.examples:
        msgs = ex.messages
        for i, m in enumerate(msgs):
            if m["role"] == "user" and i >= 3 and msgs[i - 1]["role"] == "tool":
                (name, args), *_ = _calls(msgs[i + 1])
                value = args.get("path") or args.get("keyword")
                assert value and value in msgs[i - 1]["content"], (msgs[i - 1], msgs[i + 1])
                assert value not in m["content"] or value.rsplit("/", 1)[-1] in m["content"]
                follow_ups += 1
    assert follow_ups >= 10


def test_results_have_the_real_tools_text_form(natural, tmp_path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("x = 1\n")
    real = list_dir(Sandbox(tmp_path), "src")
    assert real == "src/app.py"  # one path per line, relative to the project root
    forms = {
        "list_dir": re.compile(r"^[\w./-]+(\n[\w./-]+)*$"),
        "run_tests": re.compile(r"^\$ python -m pytest -q .*\nexit code [01]\n", re.S),
        "search_code": re.compile(r"^([\w./-]+:\d+: .+\n?)+$|^no matches for "),
        "git_status": re.compile(r"^## main"),
        "run_command": re.compile(r"^\$ .+\nexit code \d+\n"),
    }
    checked = 0
    for ex in natural.examples:
        for i, m in enumerate(ex.messages):
            if m["role"] == "tool" and m["name"] in forms:
                assert forms[m["name"]].search(m["content"]), (m["name"], m["content"])
                json_like = m["content"].lstrip().startswith("{")
                assert not json_like
                checked += 1
                if m["name"] == "list_dir":
                    (_, args), *_ = _calls(ex.messages[i - 1])
                    folder = "" if args["path"] == "." else args["path"].rstrip("/") + "/"
                    assert all(line.startswith(folder) for line in m["content"].splitlines())
    assert checked >= 20


def coding_requests_suite_lines() -> list[str]:
    from tooltune.evals.suite import builtin_suite_text

    return [line for line in builtin_suite_text("coding-tools").splitlines() if line.strip()]


def test_no_request_is_near_a_coding_tools_eval_case(natural) -> None:
    index = LeakIndex.for_workspace(None)
    assert "builtin:coding_tools.jsonl" in index.sources
    suite = [json.loads(line) for line in coding_requests_suite_lines()]
    hit = index.match(suite[0]["messages"][0]["content"])
    assert hit is not None and hit[0].startswith("builtin:coding_tools.jsonl:")
    for ex in natural.examples:
        for m in ex.messages:
            if m["role"] == "user":
                assert index.match(m["content"]) is None, m["content"]
    # the phrasebook does write some requests that close (short, common ones): they were dropped
    assert natural.dropped_leaked > 0
    # near the coding-tools suite, or the coding-tasks suite's requests ("do the tests pass?")
    prefixes = ("builtin:coding_tools.jsonl:", "tasks:coding-tasks:")
    assert all(s.startswith(prefixes) for s in natural.leaked_sources), natural.leaked_sources


def test_code_questions_and_out_of_reach_asks_are_answered_in_text(natural) -> None:
    book = {q for q, _ in coding_chat.CODING_QA}
    answered = [e for e in natural.examples if e.messages[0]["content"] in book]
    assert answered
    assert all(
        e.messages[-1]["role"] == "assistant" and not e.messages[-1].get("tool_calls") for e in answered
    )


def test_other_tools_are_untouched_by_the_phrasebook(bfcl_dir: Path) -> None:
    tools = load_tool_specs([f"bfcl:{bfcl_dir / 'BFCL_v4_simple_python.json'}"])[:30]
    # a user's own `read_file` with other parameters is not the built-in one
    own = ToolSpec(
        name="read_file", description="Read a note.", parameters={"type": "object", "properties": {}}
    )
    assert not coding_requests.covers(own) and coding_requests.covers(CODING_TOOLS[0])
    runs = [
        generate_examples([*tools, own], GenerateConfig(n=60, seed=4, phrasebook_share=share))
        for share in (0.0, 1.0)
    ]
    # no random draw is spent on tools without a phrasebook: the same data either way
    assert [e.to_line() for e in runs[0].examples] == [e.to_line() for e in runs[1].examples]


def test_polish_keeps_typed_commands_plain() -> None:
    rng = random.Random(0)
    for _ in range(300):
        text, _ = coding_requests.request(rng, "run_tests")
        assert not re.match(r"(?i)(can you|please) pytest", text), text


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_absent_tool_share_splits_refusals_from_questions_answered_with_tools_offered(share: float) -> None:
    """absent_tool_share reaches no_call: 0 = only questions and asks no tool serves (the tools offered),
    1 = only refusals of a request for a tool that is not offered."""
    cfg = GenerateConfig(n=60, seed=5, kinds=["no_call"], absent_tool_share=share, split_turns=False)
    examples = generate_examples(list(CODING_TOOLS), cfg).examples
    refusal = re.compile("|".join(re.escape(r).replace(re.escape("{task}"), ".+") for r in REFUSALS))
    refused = [bool(refusal.fullmatch(e.messages[-1]["content"])) for e in examples]
    assert len(examples) > 20
    assert not any(refused) if share == 0 else all(refused)


def test_absent_tool_share_default_is_the_old_split() -> None:
    runs = [
        generate_examples(list(CODING_TOOLS), GenerateConfig(n=40, seed=5, kinds=["no_call"], **kw)).examples
        for kw in ({}, {"absent_tool_share": 0.7})
    ]
    assert [e.to_line() for e in runs[0]] == [e.to_line() for e in runs[1]]


def test_trajectories_chain_calls_on_results_and_answer_from_them() -> None:
    """Opt-in kind: one request, each call's arguments found in an earlier result, an answer from them;
    split per turn, every assistant step is an example (the agent learns to keep going)."""
    from tooltune.data.generate import generate_examples
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.data.tool_sources import load_tool_specs

    tools = load_tool_specs(["builtin:coding"])
    cfg = GenerateConfig(n=120, seed=3, kinds=["trajectory"], mix={"trajectory": 1.0}, split_turns=False)
    res = generate_examples(tools, cfg)
    assert res.counts == {"trajectory": 120}
    steps_seen = set()
    for ex in res.examples:
        msgs = ex.messages
        assert msgs[0]["role"] == "user" and [m["role"] for m in msgs].count("user") == 1
        assert msgs[-1]["role"] == "assistant" and msgs[-1]["content"]
        calls = [m for m in msgs if m.get("tool_calls")]
        results = [m["content"] for m in msgs if m["role"] == "tool"]
        steps_seen.add(len(calls))
        for i, call in enumerate(calls[1:], start=1):
            args = call["tool_calls"][0]["function"]["arguments"]
            path = args.get("path")
            if path and call["tool_calls"][0]["function"]["name"] == "read_file":
                assert any(path in r for r in results[:i]), (path, results[:i])  # found, not guessed
    assert {1, 2, 5} <= steps_seen
    split = generate_examples(tools, cfg.model_copy(update={"split_turns": True, "n": 60}))
    assert any(len([m for m in ex.messages if m.get("tool_calls")]) >= 2 for ex in split.examples)
