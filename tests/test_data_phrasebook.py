"""Phrasebook files: the format, the checks against a tool set (file:line, one bad entry never sinks
the book), filling (grounded, valid calls; follow-ups reading a result), and generation with a book."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from tooltune.data.examples import DataError
from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.phrasebook import load_phrasebook, parse_phrasebook
from tooltune.data.phrasebook_check import check_phrasebook
from tooltune.data.phrasebook_fill import DataBook
from tooltune.data.spoken_forms import forms_of, number_forms
from tooltune.data.tool_sources import load_tool_specs
from tooltune.toolspec import ToolSpec

BOOK = """\
phrasebook: 1
name: tracker-test
values:
  ticket: {range: [2, 999]}
  found_title: ["Login button does nothing on Safari", "Crash when saving an empty draft"]
tools:
  get_issue:
    requests:
      - "what's in #{issue_id}?"
      - "open issue {issue_id} with the comments {include_comments}"
      - "show {issue_id} and mention {nobody}"
    values:
      issue_id: {range: [1, 999]}
    say:
      include_comments: {true: ["please"]}
    parallel: ["show me #{issue_id.1} and #{issue_id.2}"]
    near_misses: ["delete issue {issue_id}"]
    results:
      - result: {id: "{issue_id}", title: "{found_title}", state: open}
        answer: "#{issue_id} is open: {found_title}."
  update_issue:
    requests:
      - "bump #{issue_id} to {priority}"
      - "make it {priority}"
      - "set to {priority} where the issue is {issue_id}"
    values:
      issue_id: {range: [1, 999]}
      priority: [urgent, sky-high]
    say:
      priority: {urgent: ["P0", "urgent"]}
  no_such_tool:
    requests: ["do the thing"]
follow_ups:
  - - {ask: "any open bugs about {query}?", call: search_issues, result: "#{ticket} {found_title} (open)"}
    - {ask: "comment on that one: {body}", call: add_comment, args: {issue_id: "{ticket}"}}
  - - {ask: "hello", call: get_issue}
"""


@pytest.fixture
def tracker() -> list[ToolSpec]:
    return load_tool_specs(["builtin:issue-tracker"])


@pytest.fixture
def book_file(tmp_path: Path) -> Path:
    path = tmp_path / "tracker.yaml"
    path.write_text(BOOK)
    return path


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_check_drops_bad_entries_with_file_and_line_and_keeps_the_rest(
    book_file: Path, tracker: list[ToolSpec]
) -> None:
    checked = check_phrasebook(load_phrasebook(book_file), tracker)
    errors = {i.where: i for i in checked.errors}
    # an unknown slot, a template without a required parameter, a value outside the enum, a tool not in the
    # set, a follow-up whose first step has no result and lacks the required issue_id
    assert "unknown" not in errors
    assert errors["tools.get_issue.requests[2]"].line == _line_of(BOOK, "mention {nobody}")
    assert "{nobody}" in errors["tools.get_issue.requests[2]"].message
    assert "issue_id" in errors["tools.update_issue.requests[1]"].message  # "make it {priority}"
    assert "sky-high" in errors["tools.update_issue.values.priority[1]"].message
    assert "no_such_tool" in errors["tools.no_such_tool"].message
    assert any(w.startswith("follow_ups[1]") for w in errors)
    assert str(errors["tools.get_issue.requests[2]"]).startswith(
        f"{book_file}:{_line_of(BOOK, 'mention {nobody}')}:"
    )
    # schema read-back is kept but flagged
    assert any("reads like a schema" in w.message for w in checked.warnings)
    kept = checked.book
    assert kept.tools["get_issue"].requests == [
        "what's in #{issue_id}?",
        "open issue {issue_id} with the comments {include_comments}",
    ]
    assert kept.tools["update_issue"].values["priority"] == ["urgent"]
    assert "no_such_tool" not in kept.tools
    assert len(kept.follow_ups) == 1


def test_structural_errors_name_the_line_and_drop_only_their_entry(tracker: list[ToolSpec]) -> None:
    text = (
        "phrasebook: 1\ntools:\n  get_issue:\n    requests: 5\n  update_issue:\n"
        "    requests: ['bump #{issue_id} to {priority}']\n    say: {state: [open]}\n"
        "  add_comment:\n    requests: ['note on #{issue_id}: {body}']\n"
        "values:\n  n: 5\nfollow_ups:\n  - [{ask: x, call: get_issue, extra: 1}]\n"
    )
    parsed = parse_phrasebook(text, source="b.yaml")
    assert set(parsed.book.tools) == {"add_comment"}  # the two malformed tools went, the good one stayed
    checked = check_phrasebook(parsed, tracker)
    found = {str(e).split(": ")[0] + ": " + e.where for e in checked.errors}
    assert {"b.yaml:4: tools.get_issue.requests", "b.yaml:7: tools.update_issue.say.state"} <= found, found
    assert any(e.where.startswith("values.n") for e in checked.errors)
    assert any(e.where.startswith("follow_ups[0]") for e in checked.errors)
    with pytest.raises(DataError, match="unknown key"):
        parse_phrasebook("tool: {}\n", source="b.yaml")
    with pytest.raises(DataError, match="format 2 is not supported"):
        parse_phrasebook("phrasebook: 2\ntools: {}\n", source="b.yaml")
    with pytest.raises(DataError, match="not valid YAML"):
        parse_phrasebook("tools: [\n", source="b.yaml")


def test_filled_requests_are_grounded_valid_and_use_declared_forms(
    book_file: Path, tracker: list[ToolSpec]
) -> None:
    book = DataBook(check_phrasebook(load_phrasebook(book_file), tracker), tracker)
    by_name = {t.name: t for t in tracker}
    rng = random.Random(3)
    said_p0 = False
    for _ in range(200):
        got = book.request(rng, "update_issue")
        assert got is not None
        text, args = got
        assert by_name["update_issue"].validator().is_valid(args)
        assert str(args["issue_id"]) in text
        assert args["priority"] == "urgent"  # the only valid value the book gives
        said_p0 |= "P0" in text
        assert "urgent" in text or "P0" in text
    assert said_p0
    for _ in range(50):
        got = book.request(rng, "get_issue")
        assert got is not None
        text, args = got
        assert str(args["issue_id"]) in text
        if "include_comments" in args:
            assert args["include_comments"] is True and "please" in text.lower()
    text, calls = book.pair(rng, "get_issue") or ("", [])
    assert len(calls) == 2 and all(f"#{c['issue_id']}" in text for c in calls)


def test_results_keep_types_and_follow_ups_read_the_previous_result(
    book_file: Path, tracker: list[ToolSpec]
) -> None:
    book = DataBook(check_phrasebook(load_phrasebook(book_file), tracker), tracker)
    rng = random.Random(0)
    result, answer = book.result(rng, "get_issue", {"issue_id": 41}) or ("", "")
    data = json.loads(result)
    assert data["id"] == 41 and data["state"] == "open"
    assert answer == f"#41 is open: {data['title']}."
    fu = book.follow_up(rng)
    assert fu is not None
    (first, first_args), (second, second_args) = fu.calls
    assert (first, second) == ("search_issues", "add_comment")
    ticket = second_args["issue_id"]
    assert isinstance(ticket, int) and f"#{ticket} " in fu.results[0]  # taken from the result, not guessed
    assert first_args["query"] in fu.asks[0] and second_args["body"] in fu.asks[1]
    text, answer = book.near_miss(rng, next(t for t in tracker if t.name == "get_issue")) or ("", "")
    assert "delete issue" in text.lower() and answer


def test_generation_with_a_book_asks_as_the_book_says(book_file: Path, tracker: list[ToolSpec]) -> None:
    checked = check_phrasebook(load_phrasebook(book_file), tracker)
    cfg = GenerateConfig(n=300, seed=1)
    with_book = generate_examples(tracker, cfg, books=[DataBook(checked, tracker)])
    without = generate_examples(tracker, cfg)

    def get_issue_requests(res: object) -> list[str]:
        out = []
        for ex in res.examples:  # type: ignore[attr-defined]
            msgs = ex.messages
            for i, m in enumerate(msgs[:-1]):
                nxt = msgs[i + 1]
                calls = nxt.get("tool_calls") or []
                if m["role"] == "user" and len(calls) == 1 and calls[0]["function"]["name"] == "get_issue":
                    out.append(m["content"])
        return out

    booked, schema = get_issue_requests(with_book), get_issue_requests(without)
    assert booked and schema
    from_book = [t for t in booked if "what's in #" in t.lower() or "open issue" in t.lower()]
    assert len(from_book) / len(booked) > 0.5  # phrasebook_share 0.8 of them, the rest from the schema
    assert not any("what's in #" in t.lower() for t in schema)
    kinds = with_book.counts
    assert kinds.get("near_miss", 0) > 0
    texts = [m["content"] for ex in with_book.examples for m in ex.messages if m["role"] == "user"]
    assert any("delete issue" in t.lower() for t in texts)  # the book's own near misses
    assert any("comment on that one" in t for t in texts)  # its follow-ups


def test_hand_written_books_fit_their_built_in_tool_sets() -> None:
    root = Path(__file__).resolve().parent.parent / "bench" / "phrasebooks"
    books = sorted(root.glob("*.hand.yaml"))
    assert books, "the hand-written phrasebooks of the built-in suites are missing"
    for path in books:
        toolset = "issue-tracker" if path.name.startswith("issue") else "notes-calendar"
        tools = load_tool_specs([f"builtin:{toolset}"])
        checked = check_phrasebook(load_phrasebook(path), tools)
        assert not checked.errors, [str(e) for e in checked.errors]
        assert set(checked.book.tools) == {t.name for t in tools}
        book = DataBook(checked, tools)
        rng = random.Random(0)
        for tool in tools:
            got = [book.request(rng, tool.name) for _ in range(20)]
            assert sum(g is not None for g in got) >= 15, (path.name, tool.name)


def test_the_numbers_book_is_the_hand_book_with_ids_said_as_numbers() -> None:
    """bench/phrasebooks/issue_tracker.numbers.yaml (issue 33's H15): the issue-tracker hand book with a
    number form on every id, digits after '#', and ids drawn from 1 to 1,999 (so words and "1,204"
    both occur); it checks clean and writes ids in words and with commas while the calls hold ints."""
    root = Path(__file__).resolve().parent.parent / "bench" / "phrasebooks"
    tools = load_tool_specs(["builtin:issue-tracker"])
    hand = check_phrasebook(load_phrasebook(root / "issue_tracker.hand.yaml"), tools)
    numbers = check_phrasebook(load_phrasebook(root / "issue_tracker.numbers.yaml"), tools)
    assert not numbers.errors and not [i for i in numbers.issues if i.severity == "warning"]
    with_ids = {t for t, ph in hand.book.tools.items() if "issue_id" in ph.values}
    assert with_ids == {t for t, ph in numbers.book.tools.items() if ph.forms.get("issue_id") == "number"}
    assert numbers.book.tools["link_issues"].forms == {"issue_id": "number", "other_id": "number"}
    for name, ph in hand.book.tools.items():  # the same requests, an id after '#' kept as digits
        mine = numbers.book.tools[name]
        for got, want in [
            (mine.request_templates(), ph.request_templates()),
            (mine.parallel_templates(), ph.parallel_templates()),
            (mine.near_misses, ph.near_misses),
        ]:
            assert [t.replace(":raw}", "}") for t in got] == want, name  # fmt: skip
    assert [str(j.ask).replace(":raw}", "}") for j in numbers.book.jobs] == [
        str(j.ask) for j in hand.book.jobs
    ]
    book, rng = DataBook(numbers, tools), random.Random(0)
    jobs = [run for _ in range(200) if (run := book.job(rng))]
    assert jobs and not [r for r in jobs if re.search(r"#[a-z]|#\d,\d", r.request)]
    said = [got for _ in range(400) if (got := book.request(rng, "add_comment"))]
    texts = " | ".join(text for text, _ in said)
    assert re.search(r"\b[1],\d{3}\b", texts) and re.search(r"\b\w+ hundred\b", texts)
    assert not re.search(r"#[a-z]", texts)  # never "#forty-two"
    assert all(isinstance(args["issue_id"], int) and 1 <= args["issue_id"] <= 1999 for _, args in said)


def test_a_template_may_fix_a_value_its_words_say(tracker: list[ToolSpec]) -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    book = {
        "tools": {
            "link_issues": {
                "requests": [
                    "#{issue_id} is a dupe of #{other_id}{relation=duplicates}",
                    "#{issue_id} blocks {other_id}{relation=sideways}",
                ]
            }
        }
    }
    checked = check_phrasebook(phrasebook_from_object(book), tracker)
    assert [e.where for e in checked.errors] == ["tools.link_issues.requests[1]"]
    text, args = DataBook(checked, tracker).request(random.Random(0), "link_issues", polish=False) or ("", {})
    assert (
        args["relation"] == "duplicates" and text == f"#{args['issue_id']} is a dupe of #{args['other_id']}"
    )


def test_the_documented_example_is_a_valid_book(tracker: list[ToolSpec]) -> None:
    from tooltune.data.phrasebook import parse_phrasebook

    doc = (Path(__file__).resolve().parent.parent / "docs" / "PHRASEBOOKS.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    checked = check_phrasebook(parse_phrasebook(block, source="docs/PHRASEBOOKS.md"), tracker)
    assert not checked.errors, [str(e) for e in checked.errors]
    book = DataBook(checked, tracker)
    rng = random.Random(0)
    said = [book.request(rng, "get_issue") for _ in range(40)]
    assert any(
        g is not None and g[1].get("include_comments") is True and "with the comments" in g[0] for g in said
    )
    assert book.follow_up(rng) is not None


def test_jobs_chain_calls_on_results_and_generate_as_trajectories(tracker: list[ToolSpec]) -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    book = {
        "values": {"ticket": {"range": [100, 999]}, "title": ["Login loops on Safari"]},
        "tools": {"search_issues": {"requests": ["any bugs about {query}?"]}},
        "jobs": [
            {
                "ask": "find the open bug about {query} and make it {priority}",
                "steps": [
                    {
                        "call": "search_issues",
                        "args": {"query": "{query}"},
                        "result": "#{ticket} {title} (open)",
                    },
                    {"call": "update_issue", "args": {"issue_id": "{ticket}", "priority": "{priority}"}},
                ],
                "answer": "Done: #{ticket} ({title}) is {priority} now.",
            },
            {
                "ask": "close it",
                "steps": [{"call": "update_issue", "args": {"state": "closed"}}],
                "answer": "ok",
            },
        ],
    }
    checked = check_phrasebook(phrasebook_from_object(book), tracker)
    assert [e.where for e in checked.errors] == ["jobs[1].steps[0]"]  # no issue_id: it cannot be a call
    data = DataBook(checked, tracker)
    run = data.job(random.Random(2))
    assert run is not None
    (n1, a1, r1), (n2, a2, _) = run.steps
    assert (n1, n2) == ("search_issues", "update_issue")
    assert a1["query"] in run.request and a2["priority"] in run.request
    assert isinstance(a2["issue_id"], int) and f"#{a2['issue_id']} " in r1  # read from the result
    assert str(a2["issue_id"]) in run.answer
    cfg = GenerateConfig(n=30, seed=0, kinds=["trajectory"], mix={"trajectory": 1.0}, split_turns=False)
    res = generate_examples(tracker, cfg, books=[data])
    assert res.counts == {"trajectory": 30}
    assert all(len([m for m in ex.messages if m.get("tool_calls")]) == 2 for ex in res.examples)


def test_review_cases_fill_only_what_the_words_show(tracker: list[ToolSpec]) -> None:
    """Each of these once made a call the request did not say, an empty or mis-typed message, or a crash."""
    from tooltune.data.phrasebook import phrasebook_from_object
    from tooltune.data.phrasebook_fill import drop_unfillable

    book = {
        "values": {"ticket": {"range": [1, 9]}, "title": ["Health"]},
        "tools": {
            "get_issue": {
                "requests": ["what's in #{issue_id}?", "{include_comments=true}", "show {{{issue_id}}}"],
                "values": {"issue_id": {"range": [1, 99]}},
                "near_misses": ["unmark #{issue_id} as a dupe{include_comments=true}"],
                "results": [
                    {"result": {"id": "{issue_id}", "state": "{state}"}, "answer": "{issue_id}"},
                    {"result": {"id": "{issue_id}"}, "answer": "{issue_id}"},
                ],
            },
            "search_issues": {
                "requests": ["anything about {query}?"],
                "values": {"query": {"range": [1, 5]}},
            },
            "add_labels": {
                "requests": ["tag #{issue_id} {labels}"],
                "parallel": ["tag #{issue_id.1} and #{issue_id.2} {labels}"],
                "values": {"issue_id": [5], "labels": [["bug"]]},
            },
        },
        "follow_ups": [
            [
                {"ask": "any bugs about {query}?", "call": "search_issues", "result": "found one, it's open"},
                {
                    "ask": "comment on #{issue_id}: {body}",
                    "call": "add_comment",
                    "args": {"issue_id": "{ticket}"},
                },
            ],
            [
                {"ask": "any bugs about {query}?", "call": "search_issues", "result": "found one, it's open"},
                {"ask": "comment on it: {body}", "call": "add_comment", "args": {"issue_id": "{ticket}"}},
            ],
        ],
    }
    text = phrasebook_from_object(book)
    checked = check_phrasebook(text, tracker)
    where = {e.where for e in checked.errors}
    assert "tools.get_issue.requests[1]" in where  # only a slot: it would be an empty message
    assert "tools.search_issues.values.query" in where  # numbers for a string: the schema refuses them
    assert "tools.get_issue.requests[2]" in where  # {{{issue_id}}} is literal braces: no issue_id slot
    assert "tools.get_issue.results[0]" in where  # {state} is no parameter of get_issue
    assert "follow_ups[0][1].args.issue_id" in where  # args would override what the ask says
    checked = drop_unfillable(checked, tracker, text=text)
    where = {e.where for e in checked.errors}
    assert "tools.add_labels.parallel[0]" in where  # one issue id only: the two calls are always the same
    data = DataBook(checked, tracker)
    rng = random.Random(0)
    get_issue = next(t for t in tracker if t.name == "get_issue")
    for _ in range(20):
        text_, answer = data.near_miss(rng, get_issue) or ("", "")
        assert "dupetrue" not in text_ and "dupe" in text_
        got = data.result(rng, "get_issue", {"issue_id": 7})
        assert got is not None and json.loads(got[0]) == {"id": 7} and got[1] == "7"  # the answer is text
    assert data.follow_up(rng) is None  # the ticket never appears in the result: it would be a guess


RECORDS_BOOK = """\
phrasebook: 1
name: records-test
tools:
  update_issue:
    requests:
      - "give #{issue_id} to {assignee} for {milestone}"
      - "move #{issue_id} to {milestone}"
    parallel: ["give #{issue_id.1} to {assignee.1} and #{issue_id.2} to {assignee.2}"]
    values:
      issue_id: {range: [1, 999]}
    records:               # who works on which milestone: the values go together
      - {assignee: maria, milestone: v2.0}
      - {assignee: jpark, milestone: v3.1}
      - {assignee: nobody_field: 1}
      - {assignee: lwright, milestone: 7}
      - {milestone: v4.0}
"""


def test_records_fill_values_that_belong_together(tracker: list[ToolSpec], tmp_path: Path) -> None:
    """A record fills every slot of its parameters in one call (a person and their milestone), each call
    of a parallel request draws its own, and a record that does not fit the tools is dropped with its
    line while the rest are used."""
    text = RECORDS_BOOK.replace("{assignee: nobody_field: 1}", "{assignee: kim, nobody_field: 1}")
    path = tmp_path / "records.yaml"
    path.write_text(text)
    checked = check_phrasebook(load_phrasebook(path), tracker)
    errors = {(i.line, i.message.split(":")[0]) for i in checked.errors}
    assert (_line_of(text, "nobody_field"), "update_issue has no parameter(s) nobody_field") in errors
    assert any(
        i.line == _line_of(text, "milestone: 7") and "does not fit" in i.message for i in checked.errors
    )
    kept = checked.book.tools["update_issue"].records
    assert kept == [
        {"assignee": "maria", "milestone": "v2.0"},
        {"assignee": "jpark", "milestone": "v3.1"},
        {"milestone": "v4.0"},
    ]
    book = DataBook(checked, tracker)
    rng = random.Random(0)
    pairs, milestones = set(), set()
    for _ in range(200):
        got = book.request(rng, "update_issue")
        assert got is not None
        _, args = got
        if "assignee" in args:
            pairs.add((args["assignee"], args["milestone"]))
        else:
            milestones.add(args["milestone"])
    assert pairs == {("maria", "v2.0"), ("jpark", "v3.1")}  # never a person with another's milestone
    assert milestones == {"v2.0", "v3.1", "v4.0"}
    seen = set()
    for _ in range(100):
        said, calls = book.pair(rng, "update_issue") or ("", [])
        assert len(calls) == 2 and all(c["assignee"] in said for c in calls)
        seen.add(tuple(sorted(c["assignee"] for c in calls)))
    assert ("jpark", "maria") in seen  # each call draws its own record


COMPOSED_BOOK = """\
phrasebook: 1
values:
  area: [login, checkout]
  symptom: [fails, hangs]
  topic: {compose: "{area} {symptom}"}
  loop_a: {compose: "{loop_b}!"}
  loop_b: {compose: "{loop_a}?"}
  ghost: {compose: "{nowhere} {area}"}
tools:
  search_issues:
    requests: ["any bugs about {query}?"]
    values:
      query:
        one_of:
          - {weight: 3, compose: "{area} {symptom}"}
          - {weight: 1, value: crash}
  create_issue:
    requests: ["file {title}: {title}"]
    values:
      title: {compose: "{topic} on mobile"}
  get_issue:
    requests: ["open #{issue_id}"]
    values:
      issue_id: {compose: "{area}"}
  add_comment:
    requests: ["say {body} on #{issue_id}"]
    values:
      body: {one_of: [{weight: 1, value: ok, values: [fine]}]}
"""


def test_values_composed_from_parts_and_weighted_choices_fill_requests(
    tracker: list[ToolSpec], tmp_path: Path
) -> None:
    """A value may be written from named values (``compose``, each part drawn afresh) or drawn from
    weighted branches (``one_of``): paths, titles, queries built the way people write them."""
    path = tmp_path / "composed.yaml"
    path.write_text(COMPOSED_BOOK)
    checked = check_phrasebook(load_phrasebook(path), tracker)
    book = DataBook(checked, tracker)
    rng = random.Random(0)
    queries = [(book.request(rng, "search_issues", polish=False) or ("", {}))[1]["query"] for _ in range(400)]
    composed = {f"{a} {s}" for a in ("login", "checkout") for s in ("fails", "hangs")}
    assert set(queries) == composed | {"crash"}
    assert 0.15 < queries.count("crash") / 400 < 0.35  # weight 1 of 4
    text, args = book.request(rng, "create_issue", polish=False) or ("", {})
    title = args["title"]
    assert title.endswith(" on mobile") and title.removesuffix(" on mobile") in composed
    assert text == f"file {title}: {title}"  # one value per slot name in one request


def test_compositions_that_cannot_fill_are_dropped_with_their_line(
    tracker: list[ToolSpec], tmp_path: Path
) -> None:
    path = tmp_path / "composed.yaml"
    path.write_text(COMPOSED_BOOK)
    checked = check_phrasebook(load_phrasebook(path), tracker)
    errors = {i.where: (i.line, i.message) for i in checked.errors}
    assert "composes itself" in errors["values.loop_a"][1] and "composes itself" in errors["values.loop_b"][1]
    assert errors["values.ghost"] == (
        _line_of(COMPOSED_BOOK, "ghost:"),
        "composes nowhere: not a named value (or one dropped)",
    )
    assert "does not fit the schema of get_issue.issue_id" in errors["tools.get_issue.values.issue_id"][1]
    branch = errors["tools.add_comment.values.body.one_of[0]"]  # the tool's entry is dropped
    assert "one of value, values, range, compose" in branch[1]
    assert set(checked.book.values) == {"area", "symptom", "topic"}
    assert set(checked.book.tools["search_issues"].values) == {"query"}


def test_composed_and_weighted_values_read_back_draw_afresh_and_check_exactly(
    tracker: list[ToolSpec],
) -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    chain = {f"c{i}": {"one_of": [{"weight": 1, "compose": f"{{c{i - 1}}}/"}]} for i in range(1, 7)}
    book = {
        "values": {
            "area": ["login", "checkout", "search", "billing"],
            "pair": {"compose": "{area} and {area}"},
            "c0": {"range": [1, 3]},
            **chain,
            "me": {"compose": "{me}!"},
            "note": {"one_of": [{"weight": 1, "values": ["fine", "ok"]}, {"weight": 1, "range": [7, 9]}]},
        },
        "tools": {
            "add_comment": {
                "requests": ["say {body} on #{issue_id}"],
                "values": {"body": {"compose": "{note}, about {pair}"}},  # a part may be composed too
            },
            "get_issue": {
                "requests": ["open #{issue_id}"],
                "values": {
                    "issue_id": {"one_of": [{"weight": 99, "range": [1, 9]}, {"weight": 1, "value": "forty"}]}
                },
            },
        },
    }
    parsed = phrasebook_from_object(book)
    again = parse_phrasebook(json.dumps(parsed.book.model_dump(mode="json")))  # a saved book reads back
    assert (
        again.book == parsed.book and again.book.digest() == parsed.book.digest() and not again.shape_issues
    )
    checked = check_phrasebook(parsed, tracker)
    errors = {e.where: e.message for e in checked.errors}
    assert errors["values.me"] == "composes {me}, itself"
    assert (
        errors["tools.get_issue.values.issue_id"]
        == "one_of[1]: 'forty' does not fit the schema of get_issue.issue_id"
    )
    assert "c6" in checked.book.values  # a chain of six compositions is no cycle
    data = DataBook(checked, tracker)
    rng = random.Random(0)
    bodies = [
        (data.request(rng, "add_comment", polish=False) or ("", {"body": ""}))[1]["body"] for _ in range(200)
    ]
    notes, pairs = zip(*(b.split(", about ") for b in bodies), strict=True)
    assert any(a != b for a, b in (p.split(" and ") for p in pairs))  # each part drawn afresh
    assert set(notes) == {"fine", "ok", "7", "8", "9"}  # both branches, each drawn as its kind


@pytest.mark.parametrize(
    "branch", [{"weight": float("inf"), "value": 1}, {"weight": 1, "value": None}, {"weight": 0, "value": 1}]
)
def test_a_branch_needs_a_finite_positive_weight_and_one_value_kind(branch: dict[str, object]) -> None:
    text = parse_phrasebook(json.dumps({"values": {"x": {"one_of": [branch]}}}), source="b.json")
    assert text.book.values == {} and [i.where for i in text.shape_issues] == [
        "values.x.one_of[0]" + (".weight" if branch["weight"] != 1 else "")
    ]


def test_a_raw_slot_writes_the_value_exactly(tracker: list[ToolSpec]) -> None:
    """``{p:raw}``: no quotes or backticks around a path or command line; the plain slot may add them."""
    from tooltune.data.phrasebook import phrasebook_from_object

    def texts(template: str, say: dict[str, list[str]] | None = None) -> set[str]:
        values = {"query": list(say or ["label:bug is:open"])}
        book = {
            "tools": {
                "search_issues": {"requests": [template], "values": values, "say": {"query": say or {}}}
            }
        }
        checked = check_phrasebook(phrasebook_from_object(book), tracker)
        assert not checked.errors, [str(e) for e in checked.errors]
        rng = random.Random(0)
        return {
            (DataBook(checked, tracker).request(rng, "search_issues", polish=False) or ("", {}))[0]
            for _ in range(60)
        }

    assert texts("look for {query:raw} please") == {"look for label:bug is:open please"}
    assert len(texts("look for {query} please")) > 1  # quoted or backticked now and then
    # a say form is the value written another way: the plain slot takes it, the raw slot never does
    said = {"open bugs": ["the open bugs"]}
    assert texts("look for {query:raw} please", said) == {"look for open bugs please"}
    assert texts("look for {query} please", said) == {"look for the open bugs please"}
    bad = check_phrasebook(
        phrasebook_from_object({"tools": {"search_issues": {"requests": ["find {query:loud}"]}}}), tracker
    )
    known = "known: and, argv, basename, bytes, count, dir, ext, lines, ordinal, raw, stem, words"
    assert any(known in e.message for e in bad.errors)


def test_follow_ups_and_jobs_may_be_asked_several_ways(tracker: list[ToolSpec]) -> None:
    """``ask`` may list several ways to say a step or a job (one drawn each time); an ask that cannot make
    the call is dropped with its place, and the others are used."""
    from tooltune.data.phrasebook import phrasebook_from_object

    book = {
        "values": {"ticket": {"range": [100, 999]}, "title": ["Login loops on Safari"]},
        "follow_ups": [
            [
                {
                    "ask": ["any bugs about {query}?", "search for {query}"],
                    "call": "search_issues",
                    "result": "#{ticket} {title}",
                },
                {
                    "ask": [
                        "comment on that one: {body}",
                        "reply {body} there",
                        "comment {body} on #{issue_id}",
                    ],
                    "call": "add_comment",
                    "args": {"issue_id": "{ticket}"},
                },
            ]
        ],
        "jobs": [
            {
                "ask": [
                    "mark the bug about {query} as closed",
                    "find {query} and set it to closed",
                    "close {nope}",
                ],
                "steps": [
                    {"call": "search_issues", "args": {"query": "{query}"}, "result": "#{ticket} {title}"},
                    {"call": "update_issue", "args": {"issue_id": "{ticket}", "state": "closed"}},
                ],
                "answer": "Closed #{ticket}.",
            }
        ],
    }
    checked = check_phrasebook(phrasebook_from_object(book), tracker)
    # the step's third ask sets issue_id as its args do; the job's third names a slot it does not have
    assert [e.where for e in checked.errors] == ["follow_ups[0][1].args.issue_id", "jobs[0].ask[2]"]
    assert checked.book.jobs[0].ask == [
        "mark the bug about {query} as closed",
        "find {query} and set it to closed",
    ]
    assert checked.book.follow_ups[0][1].ask == ["comment on that one: {body}", "reply {body} there"]
    data = DataBook(checked, tracker)
    rng = random.Random(0)

    def which(text: str, *starts: str) -> str:  # polish may add a greeting or change the case
        return next(w for w in starts if w in text.lower())

    firsts, seconds, jobs = set(), set(), set()
    for _ in range(60):
        if (up := data.follow_up(rng)) is not None:
            firsts.add(which(up.asks[0], "any bugs", "search for"))
            seconds.add(which(up.asks[1], "comment on that", "reply"))
        if (run := data.job(rng)) is not None:
            jobs.add(which(run.request, "mark the bug", "set it to"))
    assert firsts == {"any bugs", "search for"} and seconds == {"comment on that", "reply"}
    assert jobs == {"mark the bug", "set it to"}


def test_a_parallel_template_may_ask_for_three_calls(tracker: list[ToolSpec]) -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    book = {
        "tools": {
            "get_issue": {
                "requests": ["what's in #{issue_id}?"],
                "values": {"issue_id": {"range": [1, 999]}},
                "parallel": [
                    "show me #{issue_id.1}, #{issue_id.2} and #{issue_id.3}",
                    "show #{issue_id.1} and #{issue_id.3}",
                ],
            }
        }
    }
    checked = check_phrasebook(phrasebook_from_object(book), tracker)
    assert [e.where for e in checked.errors] == ["tools.get_issue.parallel[1]"]  # .3 without .2
    said, calls = DataBook(checked, tracker).pair(random.Random(0), "get_issue") or ("", [])
    assert len(calls) == 3 and all(f"#{c['issue_id']}" in said for c in calls)


def test_a_records_text_field_writes_a_command_line_and_brings_its_arguments() -> None:
    """A record's ``_line`` says its values the way people type them ("npm run build"); a ``{_line}`` slot
    writes it and puts the record's parameters in the call, split as the tool takes them."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = {
        "tools": {
            "run_command": {
                "requests": ["run `{_line}`", "kick off {_line} with a {timeout} s timeout", "run {_nope}"],
                "records": [
                    {"command": "npm", "args": ["run", "build"], "_line": "npm run build"},
                    {"command": "make", "args": ["lint"], "_line": "make lint"},
                    {"command": "git", "_line": ["not", "text"]},
                ],
                "values": {"timeout": [30, 120]},
                "near_misses": ["uninstall {_line}"],
            }
        }
    }
    checked = check_phrasebook(phrasebook_from_object(book), coding)
    assert {e.where for e in checked.errors} == {
        "tools.run_command.records[2]",  # a text field holds text
        "tools.run_command.requests[2]",  # no record has _nope
        "tools.run_command.near_misses[0]",  # text fields make calls: not in near misses
    }
    data = DataBook(checked, coding)
    rng = random.Random(0)
    seen = set()
    for _ in range(40):
        text, args = data.request(rng, "run_command", polish=False) or ("", {})
        line = " ".join([args["command"], *args["args"]])
        assert line in text and "_line" not in args  # the text shows the call; the field is no argument
        seen.add(line)
    assert seen == {"npm run build", "make lint"}


def test_text_fields_stay_true_to_their_records() -> None:
    """Each call of a parallel template gets its own record; a text that does not show its record's
    values, a slot that would give the same parameter another value, and three equal calls are refused;
    a tool's own ``_id`` parameter is a parameter, not a text field."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = {
        "tools": {
            "run_command": {
                "requests": ["run {_line}{command=yarn}", "run {_line}"],
                "parallel": ["run {_line.1}, then {_line.2}"],
                "records": [
                    {"command": "npm", "args": ["run", "build"], "_line": "npm run build"},
                    {"command": "make", "args": ["lint"], "_line": "make lint"},
                    {"command": "make", "args": ["test"], "_line": "the tests"},
                ],
            }
        }
    }
    checked = check_phrasebook(phrasebook_from_object(book), coding)
    errors = {e.where: e.message for e in checked.errors}
    assert "would both give command" in errors["tools.run_command.requests[0]"]
    assert "does not show every value" in errors["tools.run_command.records[2]"]
    data = DataBook(checked, coding)
    rng = random.Random(0)
    pairs = [p for _ in range(20) if (p := data.pair(rng, "run_command")) is not None]
    assert pairs  # a draw of one record for both calls makes two equal calls and is refused
    for said, calls in pairs:
        assert len(calls) == 2 and calls[0] != calls[1]
        assert all(" ".join([c["command"], *c["args"]]) in said for c in calls)
    docs = [
        ToolSpec(
            name="get_doc",
            parameters={"type": "object", "properties": {"_id": {"type": "string"}}, "required": ["_id"]},
        )
    ]
    own = {"tools": {"get_doc": {"requests": ["get doc {_id}"], "records": [{"_id": "a1"}, {"_id": "b2"}]}}}
    checked = check_phrasebook(phrasebook_from_object(own), docs)
    assert not checked.errors, [str(e) for e in checked.errors]
    text, args = DataBook(checked, docs).request(random.Random(0), "get_doc", polish=False) or ("", {})
    assert args["_id"] in ("a1", "b2") and text == f"get doc {args['_id']}"


def test_a_three_call_parallel_never_repeats_a_call(tracker: list[ToolSpec]) -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    three = "show #{issue_id.1}, #{issue_id.2} and #{issue_id.3}"
    phrases = {"requests": ["what's in #{issue_id}?"], "values": {"issue_id": [1, 2, 3]}, "parallel": [three]}
    book = {"tools": {"get_issue": phrases}}
    data = DataBook(check_phrasebook(phrasebook_from_object(book), tracker), tracker)
    rng = random.Random(0)
    got = [data.pair(rng, "get_issue") for _ in range(60)]
    assert any(g is not None for g in got)
    assert all(len({c["issue_id"] for c in g[1]}) == 3 for g in got if g is not None)


def test_request_groups_are_drawn_at_their_weights(tracker: list[ToolSpec]) -> None:
    """``{weight: 3, ask: [...]}`` beside ``{weight: 1, ask: [...]}``: the first group's phrasings come
    three times as often, a template within its group uniformly, a plain template as a group of one at
    weight 1. A bad template leaves its group (a group left empty is left out, with a warning), each
    named by file:line; a book without groups draws as before."""
    from collections import Counter

    from tooltune.data.phrasebook import phrasebook_from_object

    text = """\
tools:
  get_issue:
    values: {issue_id: {range: [1, 999]}}
    requests:
      - weight: 6
        ask: ["open #{issue_id}", "show #{issue_id}", "fetch {nobody} now"]
      - {weight: 2, ask: ["what's in #{issue_id}?"]}
      - "read issue {issue_id} for me"
      - {weight: 5, ask: ["look at {nobody}"]}
"""
    book = parse_phrasebook(text, "groups.yaml")
    checked = check_phrasebook(book, tracker)
    assert [(e.where, e.line) for e in checked.errors] == [
        ("tools.get_issue.requests[0].ask[2]", 6),
        ("tools.get_issue.requests[3].ask[0]", 9),
    ]
    assert [(w.where, w.message) for w in checked.warnings if "group" in w.message] == [
        ("tools.get_issue.requests[3]", "no usable template in this group: it is left out")
    ]
    phrases = checked.book.tools["get_issue"]
    assert phrases.request_templates() == [
        "open #{issue_id}",
        "show #{issue_id}",
        "what's in #{issue_id}?",
        "read issue {issue_id} for me",
    ]
    assert phrases.request_weights() == [3.0, 3.0, 2.0, 1.0]
    assert checked.book.counts()["requests"] == 4
    data = DataBook(checked, tracker)
    rng = random.Random(0)
    said = Counter()
    for _ in range(900):
        text_, args = data.request(rng, "get_issue", polish=False) or ("", {})
        assert str(args["issue_id"]) in text_
        said[text_.split(" ")[0].split("#")[0]] += 1
    # expected 600 : 200 : 100 for the group of two, the group of one and the plain template
    assert 540 <= said["open"] + said["show"] <= 660 and 150 <= said["what's"] <= 250
    assert 60 <= said["read"] <= 140
    # no groups: the one uniform draw, as before (generation from existing books stays byte-identical)
    plain = check_phrasebook(
        phrasebook_from_object(
            {"tools": {"get_issue": {"requests": ["open #{issue_id}", "show #{issue_id}"]}}}
        ),
        tracker,
    )
    assert plain.book.tools["get_issue"].request_weights() is None
    for bad in (
        {"weight": 0, "ask": ["open #{issue_id}"]},
        {"weight": float("inf"), "ask": ["x {issue_id}"]},
    ):
        raw = {"tools": {"get_issue": {"requests": ["show #{issue_id}", bad]}}, "values": {"x": [1]}}
        text_ = parse_phrasebook(json.dumps(raw), source="w.json")  # the tool is left out, named
        assert text_.book.tools == {} and text_.book.values
        assert [(i.where, i.message) for i in text_.shape_issues] == [
            ("tools.get_issue.requests[1].weight", "Input should be greater than 0")
            if bad["weight"] == 0
            else ("tools.get_issue.requests[1].weight", "Input should be a finite number")
        ]


def test_a_template_dropped_after_others_were_is_named_by_its_own_line(tracker: list[ToolSpec]) -> None:
    """The checker drops entries, so the templates it keeps move up; a later finding (one that never
    fills) still names the template's place and line in the file, inside a group too."""
    from tooltune.data.phrasebook_fill import drop_unfillable

    text = """\
tools:
  add_labels:
    values: {issue_id: [5], labels: [[bug]]}
    requests:
      - "tag {nobody}"
      - weight: 2
        ask: ["label {nobody} too", "tag #{issue_id} {labels}"]
    parallel:
      - "tag #{issue_id} and more {labels}"
      - "tag #{issue_id.1} and #{issue_id.2} {labels}"
"""
    book = parse_phrasebook(text, "labels.yaml")
    checked = check_phrasebook(book, tracker)
    assert checked.origins == {
        "tools.add_labels.requests[0].ask[0]": "tools.add_labels.requests[1].ask[1]",
        "tools.add_labels.parallel[0]": "tools.add_labels.parallel[1]",
    }
    dropped = drop_unfillable(checked, tracker, text=book)
    [never] = [e for e in dropped.errors if "never fills" in e.message]  # one issue id: two equal calls
    assert (never.where, never.line) == ("tools.add_labels.parallel[1]", 10)
    assert dropped.origins == {"tools.add_labels.requests[0].ask[0]": "tools.add_labels.requests[1].ask[1]"}


def test_an_unquoted_template_read_as_a_mapping_says_to_quote_it(tracker: list[ToolSpec]) -> None:
    text = 'tools:\n  get_issue:\n    requests:\n      - "show #{issue_id}"\n      - remind me: {issue_id}\n'
    book = parse_phrasebook(text, "slip.yaml")
    [issue] = book.shape_issues
    assert (issue.where, issue.line) == ("tools.get_issue.requests[1]", 5)
    assert "quote a template that holds ': '" in issue.message


def test_a_group_with_when_phrases_only_the_calls_whose_values_fit(tracker: list[ToolSpec]) -> None:
    """Backticks only around one-line text: ``when: {body: {pattern: ...}}`` keeps the group's phrasing
    to calls whose body matches; a parameter the tool lacks or a schema that is none is named; a group
    whose condition no call meets never fills, and is dropped with its line."""
    from tooltune.data.phrasebook_fill import drop_unfillable

    text = r"""tools:
  add_comment:
    values:
      issue_id: [7]
      body: ["looks fine", "first line\nsecond line", "ends with a break\n"]
    requests:
      - "comment on #{issue_id}: {body:raw}"
      - weight: 3
        ask: ["on #{issue_id} write `{body:raw}`"]
        when: {body: {not: {pattern: "\\n"}}}
      - ask: ["note on #{issue_id}: {body:raw}"]
        when: {body: {pattern: "^zzz$"}}
      - ask: ["tell #{issue_id}: {body:raw}"]
        when: {author: {type: string}}
      - ask: ["say on #{issue_id}: {body:raw}"]
        when: {body: {type: 5}}
      - ask: ["add to #{issue_id}: {body:raw}"]
        when: {body: "string"}
      - ask: ["put on #{issue_id}: {body:raw}"]
        when: {body: {$ref: "#/x"}}
      - ask: ["place on #{issue_id}: {body:raw}"]
        when: [body]
"""
    book = parse_phrasebook(text, "when.yaml")
    checked = check_phrasebook(book, tracker)
    errors = {e.where: (e.line, e.message) for e in checked.errors}
    assert errors["tools.add_comment.requests[3].when.author"][1] == "add_comment has no parameter 'author'"
    assert errors["tools.add_comment.requests[4].when.body"][1].startswith("not a JSON Schema: ")
    assert errors["tools.add_comment.requests[3].when.author"][0] == 14
    assert errors["tools.add_comment.requests[5].when.body"][1].startswith("not a JSON Schema: 'string'")
    assert errors["tools.add_comment.requests[6].when.body"][1].startswith("a $ref cannot be used")
    assert errors["tools.add_comment.requests[7].when"][1].startswith("when is a mapping of parameters")
    assert "add_comment" in checked.book.tools  # a bad when drops its group, not the tool
    dropped = drop_unfillable(checked, tracker, text=book)
    [never] = [e for e in dropped.errors if "never fills" in e.message]
    assert (never.where, never.line) == ("tools.add_comment.requests[2].ask[0]", 11)
    assert never.message.endswith("and its group's `when` accepts")
    data = DataBook(dropped, tracker)
    rng = random.Random(0)
    ticked = plain = missed = 0
    for _ in range(200):
        said, args = data.request(rng, "add_comment", polish=False) or ("", {})
        missed += not said
        if "`" in said:
            ticked += 1
            assert "\n" not in args["body"] and said == f"on #7 write `{args['body']}`"
        elif said:
            plain += 1
    assert ticked > 60 and plain > 30  # both phrasings, the backticked one only for one-line bodies
    # a call the group does not fit draws a phrasing again, not a whole conversation: here a draw misfits
    # half the time (3/4 backticked x 2/3 bodies with a break), so a request gives up once in 256
    assert missed <= 3


def test_a_books_polish_words_shape_the_casual_surface(tracker: list[ToolSpec]) -> None:
    """``polish: {verbs, shell_words}``: the book's own verbs may follow "please"/"can you" ("can you
    bump #12 ...?"); a request opening with a shell word is a typed command and gets no "please" or
    "hey,". A word with a space is named with its line; a book without polish keeps its digest."""
    from tooltune.data.phrasebook import Phrasebook

    tools = """\
tools:
  update_issue:
    values: {issue_id: {range: [1, 99]}, priority: [urgent]}
    requests: ["bump #{issue_id} to {priority}"]
  search_issues:
    values: {query: [flaky, timeout]}
    requests: ["gh search {query}"]
"""

    def starts(book_text: str) -> tuple[set[str], set[str]]:
        checked = check_phrasebook(parse_phrasebook(book_text, "p.yaml"), tracker)
        data = DataBook(checked, tracker)
        rng = random.Random(0)
        bump = {data.request(rng, "update_issue")[0].lower().split(" bump")[0] for _ in range(300)}
        gh = {data.request(rng, "search_issues")[0].lower().split("gh ")[0] for _ in range(300)}
        return bump, gh

    bump, gh = starts(tools)
    assert not {"please", "can you"} & bump  # "bump" is no common English verb: no "please bump"
    assert {"please ", "hey, "} & gh  # "please gh search flaky" (read as a request)
    bump, gh = starts(tools + "polish: {verbs: [bump], shell_words: [gh]}\n")
    assert {"please", "can you"} <= bump
    assert gh <= {"", "ok, ", "now "}  # a typed command: at most "ok, " or "now " before it
    job = """jobs:
  - ask: "gh search {query} then open the first"
    steps:
      - {call: search_issues, args: {query: "{query}"}, result: "#12 Flaky login test (open)"}
      - {call: get_issue, args: {issue_id: 12}}
    answer: "#12 is the one."
"""
    checked = check_phrasebook(
        parse_phrasebook(tools + job + "polish: {shell_words: [gh]}\n", "j.yaml"), tracker
    )
    assert not checked.errors, [str(e) for e in checked.errors]
    rng = random.Random(0)
    asks = {
        run.request.split("gh ")[0] for run in (DataBook(checked, tracker).job(rng) for _ in range(60)) if run
    }
    assert asks and asks <= {"", "ok, ", "now "}  # a job's request is polished with the same words
    bad = parse_phrasebook(tools + "polish:\n  verbs: [bump, bump it, 3]\n  nouns: [x]\n", "bad.yaml")
    assert [(i.where, i.line) for i in bad.shape_issues] == [
        ("polish.nouns", 10),
        ("polish.verbs[1]", 9),
        ("polish.verbs[2]", 9),
    ]
    assert bad.book.polish is not None and bad.book.polish.verbs == ["bump"]  # the good word stays
    odd = parse_phrasebook(tools + "polish: [gh]\n", "odd.yaml")  # the book stands, polish left out
    assert [i.where for i in odd.shape_issues] == ["polish"] and odd.book.tools
    plain = parse_phrasebook(tools, "p.yaml").book
    assert plain.polish is None
    assert plain.digest() == Phrasebook.model_validate(plain.model_dump(exclude={"polish"})).digest()
    empty = parse_phrasebook(tools + "polish: {verbs: []}\n", "e.yaml").book
    assert empty.digest() == plain.digest()  # no words: the same data, the same digest


def test_a_sample_draws_distinct_items_for_a_list_parameter(tracker: list[ToolSpec]) -> None:
    """``{sample: [bug, ui, backend, docs], k: [1, 3]}``: one to three different labels per call, each
    shown in the request; sizes beyond the pool, a pool that repeats itself, and a list for a parameter
    that takes text are named with their line."""
    text = """\
tools:
  add_labels:
    values:
      issue_id: {range: [1, 99]}
      labels: {sample: [bug, ui, backend, docs], k: [1, 3]}
    requests: ["tag #{issue_id} with {labels}"]
  search_issues:
    values:
      query: {sample: [flaky, timeout]}
      limit: {sample: [1, 2], k: [1, 3]}
    requests: ["find {query}"]
  create_issue:
    values:
      labels: {sample: [bug, bug, ui], k: 2}
      title: ["Crash on save"]
    requests: ["file {title}"]
"""
    book = parse_phrasebook(text, "sample.yaml")
    checked = check_phrasebook(book, tracker)
    errors = {e.where: (e.line, e.message) for e in checked.errors}
    assert errors["tools.search_issues.values.query"] == (
        9,
        "a sample gives a list, and search_issues.query takes string: use a list of values",
    )
    assert errors["tools.search_issues.values.limit"][1].startswith("k [1, 3] must be from 0 to the pool's 2")
    assert (
        errors["tools.create_issue.values.labels"][1]
        == "the pool repeats an item: a sample's items are distinct"
    )
    data = DataBook(checked, tracker)
    rng = random.Random(0)
    sizes = set()
    for _ in range(120):
        said, args = data.request(rng, "add_labels", polish=False) or ("", {})
        labels = args["labels"]
        assert len(set(labels)) == len(labels) and set(labels) <= {"bug", "ui", "backend", "docs"}
        assert all(label in said for label in labels)
        sizes.add(len(labels))
    assert sizes == {1, 2, 3}
    assert [i.where for i in parse_phrasebook("values: {x: {sample: []}}", "e.yaml").shape_issues] == [
        "values.x.sample"
    ]
    bad_k = parse_phrasebook("values:\n  x:\n    sample: [a, b]\n    k: [1]\n", "k.yaml").shape_issues
    assert [(i.where, i.line) for i in bad_k] == [("values.x.k", 4)]
    assert "k is a number of items, or [least, most]" in bad_k[0].message
    # a named sample in a {name} slot reads as a list is said, not as Python writes one
    named = check_phrasebook(
        parse_phrasebook(
            "values: {tags: {sample: [ui, bug], k: 2}}\n"
            "tools:\n  get_issue:\n    requests: ['open #{issue_id}, about {tags}']\n",
            "n.yaml",
        ),
        tracker,
    )
    said, _ = DataBook(named, tracker).request(random.Random(0), "get_issue", polish=False) or ("", {})
    assert said.endswith(("about ui, bug", "about bug, ui")) and "[" not in said


def test_a_top_level_value_is_checked_against_each_parameter_it_fills(tracker: list[ToolSpec]) -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    book = """\
phrasebook: 1
values:
  state: [open, bogus]
tools:
  search_issues:
    requests: ["find {state} issues about {query}"]
  update_issue:
    values: {state: [closed]}
    requests: ["close #{issue_id}{state=closed}"]
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), tracker)
    misfits = [i for i in checked.issues if i.where.startswith("values.state")]
    # search_issues draws its state from the top level and 'bogus' is not in its enum; update_issue has
    # its own values, so the top-level ones never fill it
    assert [(i.severity, i.where, i.line) for i in misfits] == [("warning", "values.state[1]", 3)]
    assert "fills search_issues.state" in misfits[0].message and "'bogus'" in misfits[0].message
    assert checked.book.values["state"] == ["open", "bogus"]  # kept: it may fit another tool
    rng = random.Random(0)
    book_ = DataBook(checked, tracker)
    states = {got[1]["state"] for _ in range(60) if (got := book_.request(rng, "search_issues"))}
    assert states == {"open"}  # a call drawing 'bogus' does not fit, and is left out


def test_a_parallel_call_without_a_slot_of_its_own_is_made_from_the_shared_ones(
    tracker: list[ToolSpec],
) -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    book = """\
phrasebook: 1
tools:
  list_milestones:
    requests: ["which milestones are {state}?"]
    parallel:
      - "list the milestones, and the closed ones too{state.2=closed}"
  get_issue:
    requests: ["what's in #{issue_id}?"]
    parallel:
      - "show #{issue_id.2} and the one before it"
      - "show #{issue_id.1}"
  search_issues:
    requests: ["find {query}"]
    parallel:
      - "find {query} bugs tagged {label.2} and {label.3}"
      - "find {query} bugs tagged {label.1}, then {label.3}"
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), tracker)
    errors = {(e.where, e.line): e.message for e in checked.errors}
    # the highest number says how many calls; call 1 of the first get_issue template has no issue_id
    assert errors == {
        ("tools.get_issue.parallel[0]", 10): (
            "no slot for call 1's required parameter(s) issue_id of get_issue"
        ),
        **{
            (where, line): (
                "a parallel template needs numbered slots for each of its two or three calls ({p.1} and "
                "{p.2}, or {p.1}, {p.2} and {p.3}; only the first of two may have none of its own)"
            )
            # one call; a first call of three without a slot of its own; a gap
            for where, line in (
                ("tools.get_issue.parallel[1]", 11),
                ("tools.search_issues.parallel[0]", 15),
                ("tools.search_issues.parallel[1]", 16),
            )
        },
    }
    said, calls = DataBook(checked, tracker).pair(random.Random(0), "list_milestones") or ("", [])
    assert said.endswith("list the milestones, and the closed ones too")  # after any polish ("Ok, ")
    assert calls == [{}, {"state": "closed"}]


def test_forms_say_dates_times_and_durations_as_people_do() -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    calendar = load_tool_specs(["builtin:notes-calendar"])
    book = """\
phrasebook: 1
tools:
  create_event:
    requests: ["put {title} on {date} at {start_time}, {duration_minutes}"]
    values:
      title: [Lunch, Sprint retro]
      date: ["2027-01-04", "2027-03-22", "next week"]
      start_time: ["09:30", "19:15"]
      duration_minutes: [45, 90]
    forms: {date: date, start_time: time, duration_minutes: minutes, title: fortnight}
  set_reminder:
    requests: ["remind me to {text} on {when}"]
    forms: {when: minutes, nobody: date}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), calendar)
    issues = {(i.severity, i.where, i.line): i.message for i in checked.issues if "forms" in i.where}
    assert issues == {
        ("warning", "tools.create_event.forms.date", 10): (
            "1 of the 3 values listed for date are not date values ('next week'): they are written as "
            "they are"
        ),
        ("error", "tools.create_event.forms.title", 10): (
            "unknown form 'fortnight' (known: date, time, datetime, minutes, number)"
        ),
        ("error", "tools.set_reminder.forms.when", 13): (
            "minutes values are integers, and set_reminder.when takes string"
        ),
        ("error", "tools.set_reminder.forms.nobody", 13): "set_reminder has no parameter 'nobody'",
    }
    assert checked.book.tools["create_event"].forms == {
        "date": "date",
        "start_time": "time",
        "duration_minutes": "minutes",
    }
    data = DataBook(checked, calendar)
    rng = random.Random(0)
    filled = [got for _ in range(300) if (got := data.request(rng, "create_event"))]
    assert len(filled) > 250
    said = {(args["date"], args["start_time"], args["duration_minutes"]): text for text, args in filled}
    # each value is said in one of its exact forms, mostly not the tool's own
    for (date, start, minutes), text in said.items():
        assert any(f in text for f in forms_of("date", date) or [date])
        assert any(f in text for f in forms_of("time", start)) and any(
            f in text for f in forms_of("minutes", minutes)
        )
    texts = " | ".join(t for t, _ in filled)
    assert "an hour and a half" in texts and "quarter past seven in the evening" in texts
    assert sum("2027-01-04" in t or "2027-03-22" in t for t, _ in filled) < len(filled) / 3


def test_a_number_form_says_ids_with_commas_or_in_words_and_the_call_holds_the_number() -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    tracker = load_tool_specs(["builtin:issue-tracker"])
    book = """\
phrasebook: 1
tools:
  get_issue:
    requests: ["show me issue {issue_id}"]
    values:
      issue_id: [42, 306, 1204]
    forms: {issue_id: number}
  create_issue:
    requests: ["file {title}"]
    forms: {title: number}
  add_comment:
    requests: ["comment on #{issue_id}: {body}", "comment on #{issue_id:raw}: {body}"]
    forms: {issue_id: number}
  link_issues:
    requests: ["#{issue_id:raw} {relation} #{other_id:raw}"]
    parallel: ["#{issue_id:raw} {relation} #{other_id.1} and #{other_id.2:raw}"]
    forms: {issue_id: number, other_id: number}
jobs:
  - ask: "tell #{issue_id} which milestone is open"
    steps:
      - {call: list_milestones, args: {state: open}, result: [{name: v2}]}
      - {call: add_comment, args: {issue_id: "{issue_id}", body: "v2 is open"}}
    answer: "Told them."
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), tracker)
    errors = {i.where: i.message for i in checked.issues if i.severity == "error"}
    assert errors == {
        "tools.create_issue.forms.title": "number values are integers, and create_issue.title takes string"
    }
    # "#forty-two" is no way to write an id: the raw slot is the fix the warning names
    warned = {(i.where, i.message) for i in checked.issues if "'#' before" in i.message}
    assert warned == {
        ("tools.add_comment.requests", "'comment on #{issue_id}: {body}' writes '#' before issue_id, whose "
         "number form may say it in words ('#three hundred and six'): write '#{issue_id:raw}' there"),
        ("tools.link_issues.parallel", "'#{issue_id:raw} {relation} #{other_id.1} and #{other_id.2:raw}' "
         "writes '#' before other_id, whose number form may say it in words ('#three hundred and six'): "
         "write '#{other_id.1:raw}' there"),
        # a job's slot is said as its first tool that takes it says it: add_comment's number form
        ("jobs[0].ask", "'tell #{issue_id} which milestone is open' writes '#' before issue_id, whose "
         "number form may say it in words ('#three hundred and six'): write '#{issue_id:raw}' there"),
    }  # fmt: skip
    data = DataBook(checked, tracker)
    rng = random.Random(0)
    filled = [got for _ in range(300) if (got := data.request(rng, "get_issue"))]
    said: dict[int, set[str]] = {}
    for text, args in filled:
        number = args["issue_id"]
        assert isinstance(number, int) and number in (42, 306, 1204)
        # exactly one of the number's own forms is in the request (polish may add words around it)
        [form] = [f for f in number_forms(number) if re.search(rf"issue {re.escape(f)}\b(?![ ,]\d)", text)]
        said.setdefault(number, set()).add(form)
    assert said == {n: set(number_forms(n)) for n in (42, 306, 1204)}


def test_a_books_digest_survives_format_additions_it_does_not_use() -> None:
    """A dataset records its book's digest: a book that uses none of a later addition keeps it (these
    were the committed hand books' digests before `forms`, and before the checker moved)."""
    books = Path(__file__).resolve().parent.parent / "bench" / "phrasebooks"
    digests = {
        name: load_phrasebook(books / name).book.digest()
        for name in ("issue_tracker.hand.yaml", "notes_calendar.hand.yaml")
    }
    assert digests == {
        "issue_tracker.hand.yaml": "bcc36e10b4850f8d",
        "notes_calendar.hand.yaml": "f3dee8014b16a0e9",
    }


def test_forms_name_the_values_that_will_not_be_said_in_them() -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    calendar = load_tool_specs(["builtin:notes-calendar"])
    book = """\
phrasebook: 1
values:
  duration_minutes: [15.5]
tools:
  set_reminder:
    requests: ["remind me to {text} on {when}, {repeat}"]
    forms: {when: datetime, repeat: date, text: time}
  list_events:
    requests: ["what's on {date}?"]
    forms: {date: date}
  create_event:
    requests: ["put {title} on {date} at {start_time}"]
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), calendar)
    warned = {i.where: i.message for i in checked.issues if i.severity == "warning" and i.where != "tools"}
    # the schema's sampler draws sentences for `text`; `repeat` is an enum of words; `when` and
    # list_events' dates are drawn in their form (no warning); no template of create_event fills
    # duration_minutes, so the top-level 15.5 that would not fit it is not drawn there (no warning)
    assert warned == {
        "tools.set_reminder.forms.text": (
            "20 of the 20 values drawn for text from its schema are not time values ('Deploy at 5 pm "
            "sharp'): they are written as they are"
        ),
        "tools.set_reminder.forms.repeat": (
            "4 of the 4 values of repeat's enum are not date values ('none'): they are written as they are"
        ),
    }


@pytest.mark.parametrize(
    ("value", "modifier", "expected"),
    [
        ("src/app.py", "basename", "app.py"), ("src/app.py", "stem", "app"), ("src/app.py", "ext", ".py"),
        ("src/app.py", "dir", "src"), ("app.py", "dir", "."), ("a/b/", "basename", "b"),
        (".env", "stem", ".env"), (".env", "ext", ""), ("Makefile", "ext", ""),
        ("archive.tar.gz", "stem", "archive.tar"), ("one\ntwo\n", "lines", 2), ("héllo", "bytes", 6),
        (["a", "b", "c"], "count", 3),
    ],
)  # fmt: skip
def test_derived_slot_forms(value: object, modifier: str, expected: object) -> None:
    from tooltune.data.phrasebook import derived_value

    assert derived_value(value, modifier) == expected


def test_derived_forms_write_parts_in_results_and_answers_but_never_hide_a_requests_value(
    tracker: list[ToolSpec],
) -> None:
    from tooltune.data.phrasebook import derived_value, phrasebook_from_object

    with pytest.raises(ValueError, match="takes text"):
        derived_value(12, "basename")
    book = """\
phrasebook: 1
values:
  report: [docs/reports/q3-summary.md]
tools:
  create_issue:
    requests:
      - "file a bug: {title}, details: {body}"
      - "file {title:stem} please"
      - "file the bug {report:basename} describes: {title}"
    values:
      title: ["Crash on save"]
      body: ["Steps:\\n1. open\\n2. save"]
    results:
      - result: {id: 12, title: "{title}", body_lines: "{body:lines}"}
        answer: "Filed #12, '{title}' ({body:bytes} bytes, {body:lines} lines)."
  get_issue:
    results:
      - result: {id: "{issue_id}"}
        answer: "#{issue_id} is {issue_id:loud}."
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), tracker)
    errors = {(e.where, e.line): e.message for e in checked.errors}
    assert errors == {
        ("tools.create_issue.requests[1]", 8): (
            "{title:stem} writes a part of the value, so the request would not show the call's title: use "
            "the form for named values, results and answers"
        ),
        ("tools.get_issue.results[0]", 18): (
            "unknown slot form ':loud' in {issue_id:loud} (known: and, argv, basename, bytes, count, dir, "
            "ext, lines, ordinal, raw, stem, words)"
        ),
    }
    data = DataBook(checked, tracker)
    rng = random.Random(0)
    args = {"title": "Crash on save", "body": "Steps:\n1. open\n2. save"}
    result, answer = data.result(rng, "create_issue", args) or ("", "")
    assert json.loads(result) == {
        "id": 12,
        "title": "Crash on save",
        "body_lines": 3,
    }  # a whole slot: a number
    assert answer == "Filed #12, 'Crash on save' (22 bytes, 3 lines)."
    said = {
        t for _ in range(40) if (got := data.request(rng, "create_issue", polish=False)) for t in [got[0]]
    }
    assert any("q3-summary.md describes" in t and "docs/" not in t for t in said)  # a named value's part


def test_derived_forms_keep_follow_ups_and_jobs_grounded(tracker: list[ToolSpec]) -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    book = """\
phrasebook: 1
values:
  report: [docs/reports/q3-summary.md]
  ticket: [41]
tools:
  create_issue:
    requests: ["file the bug {report:basename} describes ({report}): {title:raw}"]
    values: {title: ["Crash on save"]}
follow_ups:
  - - {ask: "file {title:stem}", call: create_issue, result: "#{ticket} filed"}
    - {ask: "comment on it: {body}", call: add_comment, args: {issue_id: "{ticket}"}}
jobs:
  - ask: "file {title:stem} and comment"
    steps:
      - {call: create_issue, args: {title: "{title}"}, result: "#{ticket}"}
      - {call: add_comment, args: {issue_id: "{ticket}", body: "see"}}
    answer: "Filed #{ticket}."
  - ask: "file {title}"
    steps:
      - {call: create_issue, args: {title: "{title}"}, result: {id: "{ticket}", file: "{ticket:basename}"}}
    answer: "Filed #{ticket}."
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), tracker)
    refusal = (
        "{title:stem} writes a part of the value, so the ask would not show the call's title: use the "
        "form for named values, results and answers"
    )
    assert {(e.where, e.line): e.message for e in checked.errors} == {
        ("follow_ups[0][0].ask", 10): refusal,
        ("jobs[0]", 13): refusal,
    }
    data = DataBook(checked, tracker)
    rng = random.Random(0)
    # the job left asks a part of a number in its result: it is left out, never a crash
    assert [data.job(rng) for _ in range(5)] == [None] * 5
    # a part and the whole of one named value in one request: each written in its own form
    text, _ = data.request(rng, "create_issue", polish=False) or ("", {})
    assert text == "file the bug q3-summary.md describes (docs/reports/q3-summary.md): Crash on save"


def test_an_add_value_is_another_value_of_the_example_plus_an_offset() -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  low: {range: [10, 20]}
  high: {add: low, by: [5]}
  loop1: {add: loop2, by: [1]}
  loop2: {add: loop1, by: [1]}
  word: [a, b]
  bad: {add: word, by: [1]}
  part: {compose: "{high}x"}
  odd: {add: low, by: oops}
tools:
  read_file:
    requests:
      - "show lines {start_line} to {end_line} of {path}"
      - "{path} from line {start_line} on, between {low} and {high}"
    values:
      path: [src/app.py]
      start_line: {range: [1, 400]}
      end_line: {add: start_line, by: {range: [5, 40]}}
  search_code:
    requests: ["grep {pattern}, at most {max_results} hits"]
    values:
      max_results: {add: nothing, by: [1]}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert {(e.where, e.line): e.message for e in checked.errors} == {
        ("values.loop1", 5): "adds to {loop2}, itself, through other add values",
        ("values.loop2", 6): "adds to {loop1}, itself, through other add values",
        ("values.bad", 8): "adds to {word}, whose values are not all numbers",
        ("values.part", 9): "composes high, an add value: compose from values drawn on their own",
        ("values.odd.by", 10): "Value error, by is a list of numbers or {range: [lo, hi]}; got 'oops'",
        ("tools.search_code.values.max_results", 23): (
            "adds to {nothing}: neither a parameter of search_code nor a named value"
        ),
    }
    data = DataBook(checked, coding)
    rng = random.Random(0)
    calls = [got for _ in range(80) if (got := data.request(rng, "read_file", polish=False))]
    spans = [a for _, a in calls if "end_line" in a]
    # the end line is the same call's start line plus 5 to 40, and the text shows both
    assert spans and all(5 <= a["end_line"] - a["start_line"] <= 40 for a in spans)
    assert all(f"{a['start_line']} to {a['end_line']}" in t for t, a in calls if "end_line" in a)
    # named values: high is the example's own low plus 5
    for text, _ in calls:
        if "between" in text:
            low, high = (int(w) for w in text.rsplit("between ", 1)[1].split(" and "))
            assert high == low + 5


def test_an_add_value_whose_sums_leave_the_schema_is_dropped() -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    pages = ToolSpec(
        name="print_pages",
        description="Print a page range.",
        parameters={
            "type": "object",
            "properties": {
                "first": {"type": "integer", "minimum": 1},
                "last": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            "required": ["first", "last"],
        },
    )
    book = """\
phrasebook: 1
tools:
  print_pages:
    requests: ["print pages {first} to {last}"]
    values:
      first: {range: [1, 90]}
      last: {add: first, by: [1, 20]}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), [pages])
    assert [(e.where, e.message) for e in checked.errors] == [
        (
            "tools.print_pages.values.last",
            "110 (first plus its offset) does not fit the schema of print_pages.last",
        )
    ]


def test_add_values_agree_with_their_base_in_parallels_given_words_and_near_misses() -> None:
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
tools:
  read_file:
    requests:
      - "{path} from the top{start_line=1} to line {end_line}"
    parallel:
      - "{path}: lines {start_line} to {end_line.1}, and again to {end_line.2}"
      - "{path.1} and {path.2}, each from line {start_line.1} to {end_line}"
    near_misses: ["summarize lines {start_line} to {end_line} of {path}"]
    values:
      path: [src/a.py, src/b.py]
      start_line: {range: [100, 400]}
      end_line: {add: start_line, by: {range: [5, 9]}}
  search_code:
    requests: ["grep {pattern}, {max_results} hits"]
    values:
      max_results: {add: context, by: {range: [5, 1]}}
  write_file:
    requests: ["write {content} to {path}"]
    values:
      path: {add: content, by: [1]}
      content: {add: path, by: [1]}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    errors = {(e.where, e.message) for e in checked.errors}
    assert ("tools.search_code.values.max_results", "by: range [5, 1] is empty") in errors
    assert ("tools.write_file.values.path", "adds to {content}, itself, through other add values") in errors
    data = DataBook(checked, coding)
    rng = random.Random(0)
    given = [got for _ in range(30) if (got := data.request(rng, "read_file", polish=False))]
    # the words give the start line: the end line follows it
    assert given and all(a["start_line"] == 1 and 6 <= a["end_line"] <= 10 for _, a in given)
    pairs = [got for _ in range(60) if (got := data.pair(rng, "read_file"))]
    # a shared start line and an end line per call: each end follows the shared start; the second
    # template's one end line cannot follow two start lines, so it never makes a pair
    assert pairs and all(5 <= c["end_line"] - c["start_line"] <= 9 for _, calls in pairs for c in calls)
    assert all("each from line" not in text for text, _ in pairs)
    for _ in range(20):
        said, _answer = data.near_miss(rng, coding[[t.name for t in coding].index("read_file")]) or ("", "")
        first, last = (int(w) for w in said.split("lines ")[1].split(" of ")[0].split(" to "))
        assert 5 <= last - first <= 9


def test_a_range_takes_whole_numbers_written_as_numbers() -> None:
    """``{range: [true, 5]}`` or ``["2", 5]`` was read as [1, 5] and [2, 5]: each is now an error naming
    its line, and the book's other values stay."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
values:
  lax: {range: ["2", 5]}
  flag: {range: [true, 5]}
  fine: {range: [2, 5]}
  later: {add: fine, by: {range: [1.0, 3]}}
  branch: {one_of: [{weight: 1, range: ["2", 5]}, {weight: 1, value: 3}]}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert {(e.where, e.line) for e in checked.errors} == {
        ("values.lax.range[0]", 2),
        ("values.flag.range[0]", 3),
        ("values.later.by", 5),
        ("values.branch.one_of[0].range[0]", 6),
    }
    messages = sorted(e.message for e in checked.errors)
    assert messages[-1] == "Value error, by: {range: [lo, hi]} takes two whole numbers; got [1.0, 3]"
    assert messages[:3] == ["Input should be a valid integer"] * 3
    assert set(checked.book.values) == {"fine"}


def test_a_say_word_for_two_values_is_dropped_from_both() -> None:
    """A drafted book said "asap" for low, medium, high and urgent priority: such a word would label
    different calls with the same request, so it goes from every value that lists it."""
    from tooltune.data.phrasebook import phrasebook_from_object

    tracker = load_tool_specs(["builtin:issue-tracker"])
    book = {"tools": {"create_issue": {
        "requests": ["new {priority} bug: {title}"],
        "say": {"priority": {"low": ["asap", "whenever"], "high": ["ASAP", "top priority"]}},
    }}}  # fmt: skip
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), tracker)
    assert checked.book.tools["create_issue"].say == {
        "priority": {"low": ["whenever"], "high": ["top priority"]}
    }
    [warning] = [i for i in checked.warnings if "said for" in i.message]
    assert warning.where == "tools.create_issue.say.priority" and "'low', 'high'" in warning.message


def test_an_ordinal_slot_says_a_whole_number_as_people_count() -> None:
    """``{p:ordinal}``: 3 written "3rd" or "third" (words up to twentieth), and the words ground the call's
    value; a value with no ordinal (0) is written as it is."""
    from tooltune.data.phrasebook import phrasebook_from_object

    notes = load_tool_specs(["builtin:notes-calendar"])
    book = {"tools": {"search_notes": {
        "requests": ["show me the {limit:ordinal} page of notes about {query}"],
        "values": {"limit": [1, 2, 3, 12, 22], "query": ["taxes"]},
    }}}  # fmt: skip
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), notes)
    assert not checked.errors
    data = DataBook(checked, notes)
    rng = random.Random(0)
    drawn = [data.request(rng, "search_notes", polish=False) for _ in range(80)]
    said = {(text, args["limit"]) for text, args in filter(None, drawn)}
    expected = {1: {"1st", "first"}, 2: {"2nd", "second"}, 3: {"3rd", "third"}, 12: {"12th", "twelfth"},
                22: {"22nd"}}  # fmt: skip
    seen: dict[int, set[str]] = {}
    for text, limit in said:
        word = text.split("the ", 1)[1].split(" page", 1)[0]
        assert word in expected[limit], (text, limit)
        seen.setdefault(limit, set()).add(word)
    assert seen == expected  # every value, in each of its forms
    # beside the plain slot of the same value each writes its own form; a value with no ordinal (0)
    # leaves the request unused; named values, results and answers take the form too ("3rd")
    book = {"values": {"nth": [2]}, "tools": {"search_notes": {
        "requests": ["show the {limit:ordinal} page ({limit} per page) of {query}",
                     "the {nth:ordinal} one about {query}, {limit} of them"],
        "values": {"limit": [0, 3], "query": ["taxes"]},
        "results": [{"result": {"page": "{limit:ordinal}", "n": "{limit}"},
                     "answer": "That's the {limit:ordinal}."}],
    }}}  # fmt: skip
    data = DataBook(check_phrasebook(phrasebook_from_object(book, source="b.yaml"), notes), notes)
    drawn = [data.request(rng, "search_notes", polish=False) for _ in range(40)]
    texts = {text: args["limit"] for text, args in filter(None, drawn)}
    assert set(texts) >= {
        "show the 3rd page (3 per page) of taxes",
        "show the third page (3 per page) of taxes",
        "the 2nd one about taxes, 0 of them",
    }
    assert not any(t.startswith("show the") and limit == 0 for t, limit in texts.items())
    assert data.result(rng, "search_notes", {"query": "taxes", "limit": 3}) == (
        '{"page": "3rd", "n": 3}',
        "That's the 3rd.",
    )


def test_ordinal_forms() -> None:
    from tooltune.data.spoken_forms import ordinal_forms

    assert ordinal_forms(1) == ["1st", "first"] and ordinal_forms(11) == ["11th", "eleventh"]
    assert ordinal_forms(20) == ["20th", "twentieth"] and ordinal_forms(23) == ["23rd"]
    assert ordinal_forms(112) == ["112th"]
    assert ordinal_forms(0) == ordinal_forms(True) == ordinal_forms("3") == ordinal_forms(2.0) == []


def test_an_argv_slot_writes_a_list_as_a_commands_words() -> None:
    """``{args:argv}``: ``[commit, -m, "fix the login"]`` written ``commit -m 'fix the login'``, as a person
    types it and a shell reads it back; a parameter that takes no list is refused on its line."""
    import shlex

    from tooltune.data.phrasebook import phrasebook_from_object
    from tooltune.data.spoken_forms import argv_text

    assert argv_text(["run", "build"]) == "run build" and argv_text(["-m", "a b"]) == "-m 'a b'"
    assert argv_text([]) is None and argv_text("run build") is None and argv_text(["x", 3]) is None
    coding = load_tool_specs(["builtin:coding"])
    book = {"tools": {"run_command": {
        "requests": ["run {command} {args:argv}", "please do `{command} {args:argv}`", "run {command:argv}"],
        "records": [{"command": "npm", "args": ["run", "build"]},
                    {"command": "git", "args": ["commit", "-m", "it's done"]}],
        "results": [{"result": "$ {command} {args:argv}: exit code 0",
                     "answer": "`{command} {args:argv}` worked."}],
    }}, "follow_ups": [[{"ask": "run {command:argv}", "call": "run_command", "result": "ok"},
                        {"ask": "and again", "call": "run_command", "args": {"command": "make"}}]],
        "jobs": [{"ask": "run make {text:argv}", "answer": "done",
                  "steps": [{"call": "run_command", "args": {"command": "make"}, "result": "ok"}]}],
        "values": {"text": [["a", "b"]]}}  # fmt: skip
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    errors = {e.where: e.message for e in checked.errors}
    # refused on a parameter that takes no list, in requests and follow-up asks; a named value may be a list
    assert set(errors) == {"tools.run_command.requests[2]", "follow_ups[0][0].ask"}
    assert all("takes no list" in m for m in errors.values()) and len(checked.book.jobs) == 1
    data = DataBook(checked, coding)
    rng = random.Random(0)
    drawn = list(filter(None, (data.request(rng, "run_command", polish=False) for _ in range(20))))
    # "it's done" is written 'it'"'"'s done', which no plain text check finds: the form grounds it
    assert {tuple(args["args"]) for _, args in drawn} == {("run", "build"), ("commit", "-m", "it's done")}
    for text, args in drawn:  # the words read back, as a shell reads them, to the call's command and args
        line = text.split("`")[1] if "`" in text else text.removeprefix("run ")
        assert shlex.split(line) == [args["command"], *args["args"]]
    result, answer = data.result(rng, "run_command", {"command": "npm", "args": ["run", "build"]}) or ("", "")
    assert (result, answer) == ("$ npm run build: exit code 0", "`npm run build` worked.")


def test_a_lookup_value_is_chosen_by_another_value_of_the_example() -> None:
    """A file body that fits the file's name (the coding book's bodies by extension): the call's path
    chooses the pool its content is drawn from, by its basename first, then its extension; a path no key
    fits takes ``other``, or without it leaves the call unused."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  doc: [notes.md, setup.md, Makefile]
  summary: {lookup: doc, table: {.md: ["a notes page"], Makefile: ["the build's targets"]}}
  self: {lookup: self, table: {a: [1]}}
  chained: {lookup: summary, table: {a: [1]}}
  nowhere: {lookup: missing, table: {a: [1]}}
  bad_key: {lookup: doc, key: [suffix], table: {a: [1]}}
  part: {compose: "{summary}!"}
tools:
  write_file:
    requests:
      - "put {content} in {path}"
      - "write {content} to {path}"
      - "reset the {path=Dockerfile} to {content}"
    parallel: ["write {content.1} to {path.1} and {content.2} to {path.2}"]
    values:
      path: [app.py, src/util.py, README.md, Dockerfile, data.csv]
      content:
        lookup: path
        table:
          .py: ["print('hi')", "x = 1"]
          .md: ["# Notes"]
          Dockerfile: ["FROM python:3.12-slim"]
          .txt: [7]
  read_file:
    requests: ["show {path} from line {start_line}"]
    values:
      path: [a.py, b.md]
      start_line: {lookup: path, key: ext, table: {.py: [1, 2], .md: [10]}, other: [5]}
  list_dir:
    requests: ["list {path}"]
    values:
      recursive: {lookup: nothing, table: {a: [true]}}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert {(e.where, e.line): e.message for e in checked.errors} == {
        ("values.self", 5): "looks up {self}, itself",
        ("values.chained", 6): "looks up {summary}, an add or lookup value: look up a value drawn on its own",
        ("values.nowhere", 7): "looks up {missing}: not a named value (or one dropped)",
        ("values.bad_key.key[0]", 8): "Input should be 'basename', 'ext', 'stem', 'dir' or 'value'",
        ("values.part", 9): "composes summary, a lookup value: compose from values drawn on their own",
        (
            "tools.write_file.values.content.table..txt[0]",
            25,
        ): "7 does not fit the schema of write_file.content",
        ("tools.list_dir.values.recursive", 34): (
            "looks up {nothing}: neither a parameter of list_dir nor a named value"
        ),
    }
    data = DataBook(checked, coding)
    rng = random.Random(0)
    pools = {"app.py": {"print('hi')", "x = 1"}, "src/util.py": {"print('hi')", "x = 1"},
             "README.md": {"# Notes"}, "Dockerfile": {"FROM python:3.12-slim"}}  # fmt: skip
    writes = [got[1] for _ in range(120) if (got := data.request(rng, "write_file", polish=False))]
    # the content always fits the path; a path no key fits (data.csv, no other) is never written
    assert {a["path"] for a in writes} == set(pools)
    assert all(a["content"] in pools[a["path"]] for a in writes)
    assert {a["content"] for a in writes if a["path"] == "app.py"} == pools["app.py"]
    # a path the words give: only a content drawn for that path is kept
    assert any(a["path"] == "Dockerfile" for a in writes)
    # two calls at once: each content fits its own call's path
    pairs = [got[1] for _ in range(60) if (got := data.pair(rng, "write_file"))]
    assert pairs and all(a["content"] in pools[a["path"]] for calls in pairs for a in calls)
    reads = [got[1] for _ in range(60) if (got := data.request(rng, "read_file", polish=False))]
    assert {(a["path"], a["start_line"]) for a in reads} == {("a.py", 1), ("a.py", 2), ("b.md", 10)}
    # key: ext alone, and other for what no key fits
    checked_named = check_phrasebook(
        phrasebook_from_object(
            "phrasebook: 1\nvalues:\n  f: [x.rs]\n  n: {lookup: f, key: ext, table: {.py: [1]}, other: [9]}\n"
            'tools:\n  read_file:\n    requests: ["show {path} from line {start_line} ({n}, {f})"]\n'
            "    values:\n      path: [a.py]\n      start_line: {lookup: path, key: ext, table: {.md: [1]}, "
            "other: [5]}\n",
            source="c.yaml",
        ),
        coding,
    )
    assert not checked_named.errors
    text, args = DataBook(checked_named, coding).request(random.Random(1), "read_file", polish=False) or (
        "",
        [],
    )
    assert args == {"path": "a.py", "start_line": 5} and "(9, x.rs)" in text


def test_a_job_step_may_author_an_argument_no_earlier_text_shows() -> None:
    """An edit's new content is the model's own writing, not read from the request or a result: a step
    lists it in ``authored``, and the job is used; without it such a job never fills. ``authored`` must
    name the step's own arguments."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  file: [src/config.py, settings.py]
  new_body: ["TIMEOUT = 60\\n"]
jobs:
  - ask: ["set the timeout in {file} to 60"]
    steps:
      - {call: read_file, args: {path: "{file}"}, result: "TIMEOUT = 30\\n"}
      - call: write_file
        args: {path: "{file}", content: "{new_body}"}
        authored: [content]
        result: "wrote {file}"
    answer: "Done: {file} sets the timeout to 60."
  - ask: ["rewrite {file}"]
    steps:
      - {call: write_file, args: {path: "{file}", content: "{new_body}"}, result: "ok"}
    answer: "Rewrote {file}."
  - ask: ["touch {file}"]
    steps:
      - {call: write_file, args: {path: "{file}", content: "{new_body}"}, authored: [mode]}
    answer: "ok"
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert [(e.where, e.line, e.message) for e in checked.errors] == [
        ("jobs[2].steps[0].authored", 20, "authored names 'mode', which is none of the step's args")
    ]
    data = DataBook(checked, coding)
    rng = random.Random(0)
    runs = [run for _ in range(40) if (run := data.job(rng)) is not None]
    # the authored edit is used; the job whose content nothing shows and nothing authors never is
    assert runs and all(len(run.steps) == 2 and "rewrite" not in run.request.lower() for run in runs)
    assert all(run.steps[1][1]["content"] == "TIMEOUT = 60\n" for run in runs)
    assert {run.steps[1][1]["path"] for run in runs} == {"src/config.py", "settings.py"}


def test_lookups_hold_in_jobs_follow_ups_dates_and_adds() -> None:
    """A job's or a follow-up's path the words give, or an earlier result gives, still chooses the
    content; an unquoted date is a key like any other; an add may add to a looked-up number; a bad part
    of a lookup is named at its own line."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  day: [2027-01-04, 2027-01-05]
  what: {lookup: day, key: value, table: {2027-01-04: [standup]}, other: [retro]}
  start: {lookup: day, key: value, table: {2027-01-04: [9]}, other: [14]}
  end: {add: start, by: [1]}
  bad:
    lookup: day
    key: [value,
          suffix]
    table: {a: [1]}
tools:
  write_file:
    requests: ["put {content} in {path}"]
    values:
      path: [app.py, README.md]
      content: {lookup: path, table: {.py: ["x = 1"], .md: ["# Notes"]}}
jobs:
  - ask: ["show me {path} and then put {content} in it"]
    steps:
      - {call: read_file, args: {path: "{path}"}, result: "old"}
      - {call: write_file, args: {path: "{path}", content: "{content}"}}
    answer: "Done."
  - ask: ["reset {content} into the {path=README.md}"]
    steps:
      - {call: write_file, args: {path: "{path}", content: "{content}"}}
    answer: "Done: {what} from {start} to {end} on {day}."
follow_ups:
  - - {ask: "what's in the repo? list {path=.}", call: list_dir, result: "README.md"}
    - {ask: "put {content} in that one", call: write_file, args: {path: "README.md"}}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert [(e.where, e.line, e.message) for e in checked.errors] == [
        ("values.bad.key[1]", 10, "Input should be 'basename', 'ext', 'stem', 'dir' or 'value'")
    ]
    data = DataBook(checked, coding)
    rng = random.Random(0)
    runs = [run for _ in range(80) if (run := data.job(rng)) is not None]
    writes = [args for run in runs for name, args, _ in run.steps if name == "write_file"]
    # the job's path (read_file's, drawn from its schema where the book gives none) chose each content
    by_ext = {".py": "x = 1", ".md": "# Notes"}
    assert "README.md" in {a["path"] for a in writes}  # the path the words gave
    # the content's lookup saw the job's own path, so the two-step job fills whenever a path has a body
    assert sum(len(run.steps) == 2 for run in runs) >= 20
    assert all(a["content"] == by_ext[a["path"][a["path"].rindex(".") :]] for a in writes)
    answers = {run.answer for run in runs if run.answer != "Done."}
    assert answers == {
        "Done: standup from 9 to 10 on 2027-01-04.",
        "Done: retro from 14 to 15 on 2027-01-05.",
    }
    follow = [f for _ in range(40) if (f := data.follow_up(rng)) is not None]
    assert follow and all(f.calls[1][1] == {"path": "README.md", "content": "# Notes"} for f in follow)


def test_results_may_list_none_or_several_entries_each_with_its_own_answer() -> None:
    """A search that found nothing is answered so, one that found some lists them as people do: a named
    value ``{sample: [...], k: [0, 3]}`` may be empty, a result's ``when`` keeps its answer to the values
    it suits, and ``{hits:and}`` writes "a, b and c". An empty list never fills a request."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  hits: {sample: [src/app.py, src/db.py, lib/util.py], k: [0, 3]}
tools:
  search_code:
    requests: ["grep for {pattern}", "find {pattern} near {hits}"]
    values:
      pattern: [TODO, retry]
    results:
      - result: {matches: "{hits}"}
        answer: "No match for {pattern}."
        when: {hits: {maxItems: 0}}
      - result: {matches: "{hits}"}
        answer: "{pattern} is in {hits:and} ({hits:count} files)."
        when: {hits: {minItems: 1}}
      - result: "nothing"
        answer: "odd"
        when: {nowhere: {type: string}}
      - result: "nothing"
        answer: "odd"
        when: {pattern: 5}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert [(e.where, e.line, e.message) for e in checked.errors] == [
        ("tools.search_code.results[2].when.nowhere", 18,
         "search_code has no parameter 'nowhere' and no value is named so"),
        ("tools.search_code.results[3].when.pattern", 21,
         "not a JSON Schema: 5 (a schema is a mapping, such as {type: integer})"),
    ]  # fmt: skip
    data = DataBook(checked, coding)
    rng = random.Random(0)
    said = [data.result(rng, "search_code", {"pattern": "TODO"}) for _ in range(80)]
    answers = {a for _, a in filter(None, said)}
    assert "No match for TODO." in answers
    listed = {a for a in answers if a.startswith("TODO is in")}
    assert "TODO is in src/app.py, src/db.py and lib/util.py (3 files)." in listed
    assert any(" and " in a and "," not in a.split(" (")[0] for a in listed)  # two: "a and b"
    for result, answer in filter(None, said):
        matches = json.loads(result)["matches"]
        assert (answer == "No match for TODO.") == (matches == [])
        assert answer.endswith(f"({len(matches)} files).") or not matches
    # a request never names an empty list
    texts = [got[0] for _ in range(80) if (got := data.request(rng, "search_code", polish=False))]
    assert texts and not any(t.rstrip().endswith("near") or "near ." in t for t in texts)
    assert any("near" in t for t in texts)


def test_an_empty_list_never_reaches_text_that_would_show_it() -> None:
    """A sample that may be empty fills no near miss, job ask or answer with nothing ("run pytest ",
    "found "); whole generation never crashes on one. ``{args:and}`` in a request lists a parameter's
    items as people do; a result's condition on a parameter picks among the shapes that fit the call."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  hits: {sample: [a.py, b.py], k: [0, 2]}
tools:
  run_command:
    values: {command: [pytest], args: {sample: [-x, -q, -v], k: [0, 3]}}
    requests: ["run {command} with {args:and}"]
    near_misses: ["explain what {command} {args} does", "why are {hits} slow"]
    results:
      - {result: "ran {command}", answer: "Ran {command} alone.", when: {args: {maxItems: 0}}}
      - {result: "ran {command}", answer: "Ran {command} with {args:and}.", when: {args: {minItems: 1}}}
jobs:
  - ask: "run {command} {args}"
    steps: [{call: run_command, args: {command: "{command}", args: "{args}"}}]
    answer: "ran it; look at {hits:and}"
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert not checked.errors, [str(e) for e in checked.errors]
    data = DataBook(checked, coding)
    rng = random.Random(0)
    run = data.by_name["run_command"]
    misses = [m[0] for _ in range(60) if (m := data.near_miss(rng, run))]
    jobs = [j for _ in range(60) if (j := data.job(rng))]
    asks = [r for _ in range(60) if (r := data.request(rng, "run_command", polish=False))]
    assert misses and jobs and asks
    texts = misses + [j.request for j in jobs] + [j.answer for j in jobs] + [t for t, _ in asks]
    assert not any("[]" in t or t.rstrip(" .").endswith(("with", "pytest", "at", "are")) for t in texts)
    assert all(j.steps[0][1]["args"] for j in jobs)
    assert any("-x, -q and -v" in t or "-x and -q" in t for t, a in asks)
    # the answer that fits the call's args: none of the "alone" answers for a call with args
    for _, args in asks:
        answer = (data.result(rng, "run_command", args) or ("", ""))[1]
        assert answer.startswith("Ran pytest with") and all(a in answer for a in args["args"])
    assert data.result(rng, "run_command", {"command": "pytest", "args": []}) == (
        "ran pytest",
        "Ran pytest alone.",
    )
    result = generate_examples(coding, GenerateConfig(n=120, seed=3), books=[data])
    assert result.examples


def test_a_lookup_may_follow_another_to_the_same_place_of_its_table() -> None:
    """A file body's one-line summary drawn with the body (the coding book's explain answers): ``along``
    takes the value at the place its partner's value stood, in a job's answer and in one call's
    parameters; partners must pair place by place."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  file: [app.py, notes.md, util.py]
  body: {lookup: file, table: {.py: ["x = 1", "def f(): pass"], .md: ["# Notes"]}}
  does: {lookup: file, table: {.py: ["sets x to 1", "defines f"], .md: ["is a notes page"]}, along: body}
  self: {lookup: file, table: {.py: [a, b], .md: [c]}, along: self}
  short: {lookup: file, table: {.py: [a], .md: [c]}, along: body}
  chain: {lookup: file, table: {.py: [a, b], .md: [c]}, along: does}
  plain: {lookup: file, table: {.py: [a, b], .md: [c]}, along: file}
tools:
  read_file:
    requests: ["show {path} from line {start_line} to {end_line}"]
    values:
      path: [a.py, b.md]
      start_line: {lookup: path, table: {.py: [1, 10], .md: [3]}}
      end_line: {lookup: path, table: {.py: [5, 20], .md: ["7"]}, along: start_line}
jobs:
  - ask: "what does {file} do?"
    steps: [{call: read_file, args: {path: "{file}"}, result: "{body}"}]
    answer: "{file} {does}."
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert {(e.where, e.line): e.message for e in checked.errors} == {
        ("values.self", 6): "follows {self}, itself",
        ("values.short", 7): (
            "follows {body}: it must look up the same value by the same key parts, with the same keys and "
            "as many values in each entry (and in other)"
        ),
        ("values.chain", 8): "follows {does}, which follows another: follow that one",
        ("values.plain", 9): "follows {file}, which is no lookup beside it",
        (
            "tools.read_file.values.end_line.table..md[0]",
            16,
        ): "'7' does not fit the schema of read_file.end_line",
        ("tools.read_file.values.end_line", 16): (
            "with the values that fit, its table no longer pairs with {start_line}'s"
        ),
    }
    data = DataBook(checked, coding)
    rng = random.Random(0)
    runs = [run for _ in range(60) if (run := data.job(rng)) is not None]
    pairs = {(run.steps[0][2], run.answer.split(" ", 1)[1]) for run in runs}
    assert pairs == {
        ("x = 1", "sets x to 1."),
        ("def f(): pass", "defines f."),
        ("# Notes", "is a notes page."),
    }
    fixed = check_phrasebook(
        phrasebook_from_object(book.replace('.md: ["7"]', ".md: [7]"), source="b.yaml"), coding
    )
    spans = {
        (a["path"], a["start_line"], a["end_line"])
        for _ in range(60)
        if (got := DataBook(fixed, coding).request(rng, "read_file", polish=False))
        for a in [got[1]]
    }
    assert spans == {("a.py", 1, 5), ("a.py", 10, 20), ("b.md", 3, 7)}
    # a named base, a start the words give, and two calls at once: still one place for both
    named_base = """\
phrasebook: 1
values:
  file: [a.py]
tools:
  read_file:
    requests: ["show {path} from line {start_line=10} to {end_line}"]
    parallel: ["from {path.1} to {end_line.1} and {path.2} to {end_line.2}, both from line {start_line}"]
    values:
      path: [x.py, y.py]
      start_line: {lookup: file, table: {.py: [1, 10]}}
      end_line: {lookup: file, table: {.py: [5, 20]}, along: start_line}
"""
    paired = check_phrasebook(phrasebook_from_object(named_base, source="n.yaml"), coding)
    assert not paired.errors, [str(e) for e in paired.errors]
    data = DataBook(paired, coding)
    given = {
        (a["start_line"], a["end_line"])
        for _ in range(40)
        if (got := data.request(rng, "read_file"))
        for a in [got[1]]
    }
    assert given == {(10, 20)}
    both = [got[1] for _ in range(40) if (got := data.pair(rng, "read_file"))]
    assert len(both) >= 15 and all(
        (c["start_line"], c["end_line"]) in {(1, 5), (10, 20)} for cs in both for c in cs
    )


def test_parallel_templates_may_come_in_weighted_groups() -> None:
    """Two calls far more often than three (the coding book has them 3 to 1): parallel templates take the
    requests' ``{weight, ask}`` groups; a parallel group has no ``when``."""
    from tooltune.data.phrasebook import phrasebook_from_object

    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
tools:
  list_dir:
    requests: ["ls {path}"]
    values: {path: [src, lib, docs, tests, app, api, web, cmd, pkg, core, tools, config]}
    parallel:
      - {weight: 9, ask: ["ls {path.1} and {path.2}", "list {path.1} and {path.2}"]}
      - {weight: 1, ask: ["ls {path.1}, {path.2} and {path.3}"]}
      - {weight: 2, ask: ["list {path.1} and {path.2} too"], when: {path: {type: string}}}
"""
    checked = check_phrasebook(phrasebook_from_object(book, source="b.yaml"), coding)
    assert [(e.where, e.line, e.message) for e in checked.errors] == [
        ("tools.list_dir.parallel[2].when", 9, "a parallel group has no when: the group is left out")
    ]
    data = DataBook(checked, coding)
    rng = random.Random(0)
    made = [got for _ in range(800) if (got := data.pair(rng, "list_dir"))]
    three = sum(len(calls) == 3 for _, calls in made) / len(made)
    # a tenth, less the three-call draws that repeat a folder (~0.08; drawn uniformly it would be ~0.28)
    assert 0.04 < three < 0.13
    assert {t.split(" ", 1)[0].lower() for t, _ in made} >= {"ls", "list"}
    # a bad group or an unquoted template is named at its own place and line, as in requests (either
    # drops the tool's entry, as a request entry of the wrong shape does)
    head = 'phrasebook: 1\ntools:\n  list_dir:\n    requests: ["ls {path}"]\n    parallel:\n'
    for entry, where in (
        (
            '      - "ls {path.1}"\n      - {weight: 0, ask: ["ls {path.1} and {path.2}"]}\n',
            "parallel[1].weight",
        ),
        ('      - "ls {path.1}"\n      - ls {path.1}: {path.2}\n', "parallel[1]"),
    ):
        [issue] = phrasebook_from_object(head + entry, source="p.yaml").shape_issues
        assert (issue.where, issue.line) == (f"tools.list_dir.{where}", 7)


RESULT_VALUES_BOOK = """\
phrasebook: 1
values:
  greeting: [hello]
tools:
  read_file:
    requests: ["open {path}"]
    values:
      path: [src/app.py, README.md, notes.txt]
    results:
      - result: "{body}"
        answer: "{path:basename} holds {body:lines} lines:\\n{body}"
        values:
          body:
            lookup: path
            table:
              .py: ["x = 1\\n", "def f():\\n    return 2\\n"]
              README.md: ["# Read me\\n"]
      - result: "{status}"
        answer: "{status} ({greeting})"
        when: {path: {pattern: "^notes"}}
        values:
          status: {sample: [empty, locked, binary], k: 1}
"""


def test_a_results_own_values_look_up_the_calls_parameter() -> None:
    """Issue 33: a result may hold values of its own, drawn once for its text and answer; a lookup among
    them reads the call's value (a file's body chosen by the path the call read). A call whose value no
    key fits (and no ``other``) gets no such result: the builder's generic one stands in."""
    coding = load_tool_specs(["builtin:coding"])
    checked = check_phrasebook(parse_phrasebook(RESULT_VALUES_BOOK, source="b.yaml"), coding)
    assert not checked.errors, [str(e) for e in checked.errors]
    book = DataBook(checked, coding)
    rng = random.Random(0)
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in ("src/app.py", "README.md", "notes.txt", "other.go"):
        seen[path] = {r for _ in range(40) if (r := book.result(rng, "read_file", {"path": path}))}
    bodies = {"x = 1\n", "def f():\n    return 2\n"}
    assert {result for result, _ in seen["src/app.py"]} == bodies  # both, each drawn by the path
    for result, answer in seen["src/app.py"] | seen["README.md"]:
        assert answer.endswith(f"lines:\n{result}")  # the one value drawn serves the text and the answer
        assert f"holds {len(result.splitlines())} lines" in answer
    assert {r for r, _ in seen["README.md"]} == {"# Read me\n"}
    # notes.txt: no key fits the body's lookup, so only the status result (its `when` admits the path)
    assert seen["notes.txt"] and {a for _, a in seen["notes.txt"]} <= {
        "empty (hello)", "locked (hello)", "binary (hello)"
    }  # fmt: skip
    assert seen["other.go"] == set()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("{path: [a.py]}", "'path' is read_file's parameter: a result's own value needs a name of its own"),
        ("{greeting: [hi]}", "'greeting' is a named value: a result's own value needs a name of its own"),
        ("{body: {one_of: [{weight: 1, value: x}]}}", "name a weighted choice or an add at the top level"),
        ('{body: {compose: "{nowhere}!"}}', "composes {nowhere}: neither a parameter of read_file"),
        ('{body: {compose: "{body}!"}}', "composes {body}, itself"),
        ('{body: {compose: "{path:loud}"}}', "unknown slot form ':loud'"),
        (
            "{body: {lookup: nowhere, table: {.py: [x]}}}",
            "looks up {nowhere}: neither a parameter of read_file",
        ),
        ("{body: {lookup: path, table: {.py: [x]}, along: other}}", "cannot follow another (along)"),
        ("{body: {range: [5, 1]}}", "range [5, 1] is empty"),
    ],
)
def test_a_results_own_value_that_cannot_be_drawn_is_named_with_its_line(values: str, message: str) -> None:
    coding = load_tool_specs(["builtin:coding"])
    book = (
        'phrasebook: 1\nvalues:\n  greeting: [hello]\ntools:\n  read_file:\n    requests: ["open {path}"]\n'
        '    results:\n      - result: "{body}"\n        answer: "here: {body}"\n'
        f"        values: {values}\n"
    )
    checked = check_phrasebook(parse_phrasebook(book, source="b.yaml"), coding)
    errors = [e for e in checked.errors if e.where.startswith("tools.read_file.results[0].values")]
    assert len(errors) == 1 and message in errors[0].message and errors[0].line == 10, [
        str(e) for e in checked.errors
    ]
    # the slot {body} then names no value: the result goes too
    assert not checked.book.tools["read_file"].results


def test_a_lookup_of_a_parameter_the_call_left_out_gives_no_such_result() -> None:
    """A result's own lookup of a parameter reads the call's value only: where the call left it out, a
    top-level value of the same name (which fills the parameter in requests) does not stand in."""
    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  start_line: [7]
tools:
  read_file:
    requests: ["open {path} from line {start_line}"]
    results:
      - result: "{text}"
        answer: "from line {start_line}: {text}"
        values:
          text: {lookup: start_line, key: value, table: {"7": [seven], "9": [nine]}}
"""
    checked = check_phrasebook(parse_phrasebook(book, source="b.yaml"), coding)
    assert not checked.errors, [str(e) for e in checked.errors]
    data = DataBook(checked, coding)
    rng = random.Random(0)
    assert data.result(rng, "read_file", {"path": "a.py", "start_line": 9}) == ("nine", "from line 9: nine")
    assert data.result(rng, "read_file", {"path": "a.py"}) is None


def test_a_drafted_book_file_leaves_out_a_results_unused_fields() -> None:
    from tooltune.data.phrasebook import Phrasebook, ResultShape, ToolPhrases
    from tooltune.data.phrasebook_draft import phrasebook_yaml

    shapes = [
        ResultShape(result="ok", answer="Done."),
        ResultShape(result="{x}", answer="got {x}", values={"x": [1, 2]}),
    ]
    text = phrasebook_yaml(Phrasebook(tools={"get_issue": ToolPhrases(requests=["a"], results=shapes)}))
    assert "when" not in text and "values: {}" not in text and "x:\n" in text
    assert parse_phrasebook(text, source="b.yaml").book.tools["get_issue"].results == shapes


def test_a_results_own_composition_writes_the_calls_values_and_list_items() -> None:
    """A result's own composition writes the call's value where it names a parameter, the result's own
    value where it names one, and draws a named value afresh, as any composition; ``{names.2}`` in a
    result or answer is the second item of a list value (a list without it leaves the result unused)."""
    coding = load_tool_specs(["builtin:coding"])
    book = """\
phrasebook: 1
values:
  stem: [app, util, main, cli]
tools:
  list_dir:
    requests: ["ls {path}"]
    results:
      - result: "{first}\\n{second}\\n{names.3}"
        answer: "{path} has {names:count} entries: {first}, {second}; the next is {names.3}."
        values:
          names: {sample: [a, b, c], k: [2, 3]}
          ext: [.py]
          first: {compose: "{path}/{names.1}{ext}"}
          second: {compose: "{path:basename}/{names.2}{ext} ({stem})"}
      - result: "{late}"
        answer: "{late}"
        values:
          late: {compose: "{recursive}"}
      - result: "{x}"
        answer: "{x}"
        values:
          x: {compose: "{y}"}
          y: {compose: "{path}"}
"""
    checked = check_phrasebook(parse_phrasebook(book, source="b.yaml"), coding)
    assert [(e.where, e.line) for e in checked.errors][:1] == [
        ("tools.list_dir.results[2].values.x", 22)
    ] and ("another composition of this result" in checked.errors[0].message), [
        str(e) for e in checked.errors
    ]
    data = DataBook(checked, coding)
    rng = random.Random(0)
    # the second result needs a parameter this call left out and the third was dropped: only the first
    # is ever written (a draw finds none in its tries now and then, as a `when` would make it)
    got = {r for _ in range(60) if (r := data.result(rng, "list_dir", {"path": "src/web"}))}
    assert len(got) > 5 and all("\n" in r for r, _ in got)
    for result, answer in got:
        first, second, third = result.split("\n")  # an item in the result's text too
        names = {first.rsplit("/", 1)[1], second.split(" (")[0].rsplit("/", 1)[1]}
        assert third in {"a", "b", "c"} and f"{third}.py" not in names and len(names) == 2
        assert first.startswith("src/web/") and first.endswith(".py")
        assert second.startswith("web/") and second.split(" (")[1].rstrip(")") in {
            "app",
            "util",
            "main",
            "cli",
        }
        assert answer == f"src/web has 3 entries: {first}, {second}; the next is {third}."
    assert len({r.split("\n")[0] for r, _ in got}) > 1
    with_recursive = {data.result(rng, "list_dir", {"path": ".", "recursive": True}) for _ in range(40)}
    assert ("true", "true") in with_recursive


@pytest.mark.parametrize("suite", ["issue-tracker", "notes-calendar"])
def test_follow_ups_may_give_the_users_own_values_and_chains_come_from_them(suite: str) -> None:
    """A follow-up step's ``args`` may repeat a value of a result or of the user's own words (generator 13
    looked in the results alone, so three in four of the hand books' follow-ups never drew, and a
    book's two-call chains fell back to requests read back from the schemas: 67 of 74 in H6a's data)."""
    from tooltune.data.phrasebook_fill import drop_unfillable
    from tooltune.data.phrasing import mentions_all

    tools = load_tool_specs([f"builtin:{suite}"])
    books = Path(__file__).resolve().parent.parent / "bench" / "phrasebooks"
    text = load_phrasebook(books / f"{suite.replace('-', '_')}.hand.yaml")
    book = DataBook(drop_unfillable(check_phrasebook(text, tools), tools, text=text), tools)
    rng = random.Random(0)
    drawn = [book.follow_up(rng) for _ in range(80)]
    assert all(d is not None for d in drawn)
    firsts = {d.asks[0].split()[-1] for d in drawn if d is not None}
    assert len(firsts) > 8  # many follow-ups and values, not one that happens to fill
    for d in drawn:
        assert d is not None
        for i, (_, args) in enumerate(d.calls):  # every value the conversation showed before the call
            assert mentions_all("\n".join([*d.asks[: i + 1], *d.results[:i]]), args), (d.asks, args)
    cfg = GenerateConfig(n=40, seed=0, kinds=["multi_chain"], phrasebook_share=1.0, max_tools=8)
    res = generate_examples(tools, cfg, books=[book])
    asked = [t for e in res.examples for t in e.user_texts()]
    assert res.examples and asked
    schema_words = {t.description.split(".")[0].split(";")[0].lower() for t in tools}
    assert not [t for t in asked if any(w in t.lower() for w in schema_words)]  # no read-back chains
