"""GenerateConfig.tool_odds: "even" draws the asked-for tool as every dataset before it was drawn;
"intents" gives a phrasebook tool odds by the square root of the parameter sets its requests fill."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from tooltune.data.builders import ExampleBuilder
from tooltune.data.generate import GenerateResult, generate_examples
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.phrasebook import parse_phrasebook
from tooltune.data.phrasebook_check import check_phrasebook
from tooltune.data.phrasebook_fill import DataBook
from tooltune.data.tool_sources import load_tool_specs

BOOK = """\
phrasebook: 1
name: odds-test
values:
  who: [maria, jpark]
tools:
  update_issue:
    requests:
      - "bump #{issue_id} to {priority}"
      - "set {issue_id} to {priority:raw}, {{state}} as it was"
      - "give {issue_id} to {assignee}"
      - "put #{issue_id} in {milestone}"
      - "close {issue_id} and give it to {assignee}, {who} says"
    values:
      issue_id: {range: [1, 999]}
      priority: [urgent, high]
      assignee: [sam, ana]
      milestone: [v3.2, v4.0]
      state: [closed]
    say:
      priority: {urgent: ["P0"]}
  get_issue:
    requests:
      - "show me #{issue_id}"
      - "what's in {issue_id}?"
    values:
      issue_id: {range: [1, 999]}
"""


def _calls(res: GenerateResult) -> Counter[str]:
    return Counter(
        c["function"]["name"] for e in res.examples for c in (e.messages[-1].get("tool_calls") or [])
    )


def test_intents_are_the_parameter_sets_a_tool_s_requests_fill() -> None:
    tools = load_tool_specs(["builtin:issue-tracker"])
    book = DataBook(check_phrasebook(parse_phrasebook(BOOK, source="odds.yaml"), tools), tools)
    # {issue_id, priority} twice (a form is the same slot; {{state}} is literal text), {issue_id,
    # assignee}, {issue_id, milestone}; the named value {who} is no parameter, so the last template asks
    # {issue_id, assignee} again
    assert len(book.book.tools["update_issue"].request_templates()) == 5  # the :raw one kept
    assert book.intents("update_issue") == 3
    assert book.intents("get_issue") == 1


def test_even_odds_keep_the_data_and_intents_favour_a_tool_asked_many_ways() -> None:
    tools = load_tool_specs(["builtin:issue-tracker"])
    offered = [t for t in tools if t.name in ("update_issue", "get_issue")]
    book = DataBook(check_phrasebook(parse_phrasebook(BOOK, source="odds.yaml"), offered), offered)
    cfg = GenerateConfig(n=400, seed=2, phrasebook_share=1.0, mix={"single": 1.0})
    default = generate_examples(offered, cfg, books=[book])
    even = generate_examples(offered, cfg.model_copy(update={"tool_odds": "even"}), books=[book])
    assert [e.to_line() for e in even.examples] == [e.to_line() for e in default.examples]
    by_intents = _calls(
        generate_examples(offered, cfg.model_copy(update={"tool_odds": "intents"}), books=[book])
    )
    evenly = _calls(even)
    assert 0.8 < evenly["update_issue"] / evenly["get_issue"] < 1.25
    assert 1.4 < by_intents["update_issue"] / by_intents["get_issue"] < 2.2  # sqrt(3) = 1.73


def test_tools_without_a_book_get_the_books_average() -> None:
    tools = load_tool_specs(["builtin:issue-tracker"])
    offered = [t for t in tools if t.name in ("update_issue", "get_issue", "list_milestones")]
    book = DataBook(check_phrasebook(parse_phrasebook(BOOK, source="odds.yaml"), offered), offered)
    builder = ExampleBuilder(offered, GenerateConfig(n=10, tool_odds="intents"), None, books=[book])
    weights = dict(zip([t.name for t in offered], builder._intent_weights(), strict=True))
    assert weights["update_issue"] == pytest.approx(math.sqrt(3)) and weights["get_issue"] == 1.0
    assert weights["list_milestones"] == pytest.approx((math.sqrt(3) + 1) / 2)  # no book: the average
    # the coding tools' book is code, with no templates to count: every tool the same odds
    coding = load_tool_specs(["builtin:coding"])
    flat = ExampleBuilder(coding, GenerateConfig(n=10, tool_odds="intents"), None)._intent_weights()
    assert set(flat) == {1.0}


def test_intents_without_a_book_file_draw_as_even_and_a_dataset_records_its_odds(
    tmp_path: Path, tiny_model: Path
) -> None:
    from tooltune.data.datasets import generate_dataset

    coding = load_tool_specs(["builtin:coding"])
    cfg = GenerateConfig(n=60, seed=4)
    even = generate_examples(coding, cfg).examples
    odds = generate_examples(coding, cfg.model_copy(update={"tool_odds": "intents"})).examples
    assert [e.to_line() for e in odds] == [e.to_line() for e in even]  # the same odds, the same draws
    book = parse_phrasebook(BOOK, source="odds.yaml")
    made = {}
    for name, how in [("e", "even"), ("i", "intents")]:
        info, _ = generate_dataset(
            tmp_path / "ws",
            name,
            ["builtin:issue-tracker"],
            GenerateConfig(n=30, seed=0, tool_odds=how),  # type: ignore[arg-type]
            model_path=tiny_model,
            phrasebook=book,
        )
        made[how] = info.stats
    assert "tool_odds" not in made["even"] and made["intents"]["tool_odds"] == "intents"
