"""Where a phrasebook comes from: a file (`data phrasebook lint`, `data generate --phrasebook`), a teacher
endpoint (`data phrasebook draft`, checked and counted), and the MCP client (a mapping argument, or
``phrasebook="client"`` over MCP sampling)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import mcp
import pytest
from mcp import types

from tooltune.config import Settings
from tooltune.data.phrasebook import load_phrasebook, phrasebook_from_object
from tooltune.data.phrasebook_check import check_phrasebook
from tooltune.data.phrasebook_draft import draft_messages, draft_phrasebook
from tooltune.data.store import load_dataset
from tooltune.data.tool_sources import load_tool_specs
from tooltune.errors import TooltuneError
from tooltune.server import build_server
from tooltune.server.state import ServerState
from tooltune.workspace import Workspace

# what a drafting model writes for get_issue: usable templates, one with an unknown slot, one without the
# required issue_id, a value outside the schema; for every other tool it answers in prose (unreadable)
GET_ISSUE_DRAFT = {
    "requests": [
        "what's in #{issue_id}?",
        "pull up issue {issue_id}",
        "show me {ticket_number}",
        "show me the latest issue",
    ],
    "values": {"issue_id": [12, 407, 3310, "forty"]},
    "parallel": ["open #{issue_id.1} and #{issue_id.2}"],
    "near_misses": ["delete issue {issue_id}"],
    "results": [{"result": {"id": "{issue_id}", "state": "open"}, "answer": "#{issue_id} is open."}],
}


def fake_reply(messages: list[dict[str, str]]) -> str:
    last = messages[-1]["content"]
    if "Write the JSON for get_issue." in last:
        return "Sure! Here it is:\n" + json.dumps(GET_ISSUE_DRAFT)
    return "I think people would ask for this tool in many ways."


def test_draft_keeps_grounded_entries_and_counts_the_rest() -> None:
    tools = load_tool_specs(["builtin:issue-tracker"])
    asked: list[str] = []

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        asked.append(messages[-1]["content"].rsplit(" ", 1)[-1])
        return fake_reply(messages)

    book, stats = draft_phrasebook(tools, complete, tries=2)
    assert set(book.tools) == {"get_issue"}
    assert book.tools["get_issue"].requests == ["what's in #{issue_id}?", "pull up issue {issue_id}"]
    assert book.tools["get_issue"].values["issue_id"] == [12, 407, 3310]
    report = {r.tool: r for r in stats.tools}
    # the unknown slot, the template without issue_id and the bad value were dropped and counted
    assert report["get_issue"].dropped == 3 and report["get_issue"].tries == 1
    assert report["create_issue"].unreadable == 2 and report["create_issue"].tries == 2
    assert len(asked) == 1 + 2 * 7  # one try for get_issue, two for each other tool


def test_concurrent_drafts_overlap_warm_the_shared_prefix_and_keep_the_tools_order() -> None:
    tools = load_tool_specs(["builtin:issue-tracker"])
    together = threading.Barrier(4, timeout=60)  # the first 4 drafts must be in flight at once
    calls: list[int] = []
    lock = threading.Lock()

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        with lock:
            calls.append(seed)
            first_four = len(calls) <= 4
        if first_four:
            together.wait()
        return fake_reply(messages)

    warmed: list[list[dict[str, str]]] = []
    book, stats = draft_phrasebook(tools, complete, tries=2, concurrency=4, warm=warmed.append)
    alone, alone_stats = draft_phrasebook(tools, lambda m, s, _: fake_reply(m), tries=2)
    assert book == alone and [r.tool for r in stats.tools] == [t.name for t in tools]
    assert [r.model_dump() for r in stats.tools] == [r.model_dump() for r in alone_stats.tools]
    # each tool's tries keep their own seeds, whichever thread ran them
    assert sorted(calls) == [100 * i + k for i, r in enumerate(alone_stats.tools) for k in range(r.tries)]
    # one warm-up, the prompt every draft starts with, so the server's prompt cache holds it
    (prefix,) = warmed
    for tool in tools:
        asked = draft_messages(tool, tools)
        assert asked[:3] == prefix[:3] and asked[3]["content"].startswith(prefix[3]["content"])
    assert len(prefix[3]["content"]) < len(draft_messages(tools[0], tools)[3]["content"])


def test_each_tools_ask_names_the_slots_every_request_needs() -> None:
    tools = load_tool_specs(["builtin:notes-calendar"])
    by_name = {t.name: t for t in tools}
    ask = draft_messages(by_name["append_to_note"], tools)[-1]["content"]
    assert "Every request must contain {note_id}, {text}." in ask
    # the worked example is asked the same way, and its answer does what the line says
    shot_ask, shot_answer = draft_messages(by_name["append_to_note"], tools)[1:3]
    assert "Every request must contain {city}." in shot_ask["content"]
    assert all("{city}" in r for r in json.loads(shot_answer["content"])["requests"])
    bare = by_name["append_to_note"].model_copy(update={"parameters": {"type": "object", "properties": {}}})
    assert "Every request must contain" not in draft_messages(bare, tools)[-1]["content"]


def test_a_request_that_quotes_a_required_value_instead_of_its_slot_is_read_as_the_template_it_meant() -> (
    None
):
    """The 1.5B often writes "search my notes for 'travel'" where {query} was asked: one quoted value, one
    required text parameter without a slot. It is read as that slot, the quoted words a value of it,
    and such a reply is not stopped as one that can give no entry."""
    from tooltune.data.drafted_entries import doomed_reply, slotted_request

    tools = load_tool_specs(["builtin:notes-calendar"])
    by = {t.name: t for t in tools}
    search, append, remind = by["search_notes"], by["append_to_note"], by["set_reminder"]
    read = [
        (
            search,
            "find notes that mention 'travel'",
            ("find notes that mention '{query}'", "query", "travel"),
        ),
        (search, 'look up "tax forms" in my notes', ('look up "{query}" in my notes', "query", "tax forms")),
        (append, "append 'buy milk' to {note_id}", ("append '{text}' to {note_id}", "text", "buy milk")),
        (search, "let's find 'work' stuff", ("let's find '{query}' stuff", "query", "work")),
    ]
    for tool, request, meant in read:
        assert slotted_request(request, tool) == meant, request
    # not read: two quotes, two required slots missing, nothing quoted, nothing missing, a slot in quotes
    assert slotted_request("notes with 'sunset' and 'london'", search) is None
    assert slotted_request("add 'I love coding' to my note", append) is None
    assert slotted_request("remind me at {when} to call my mom", remind) is None
    assert slotted_request("search for '{query}'", search) is None
    assert slotted_request("what's in note {note_id}? it's '{text}'", append) is None
    quoted = """{"requests": ["find notes that mention 'travel'", "notes with 'sunset' and 'london'"], """
    assert doomed_reply(quoted, search) is None
    assert doomed_reply('{"requests": ["find my notes", "notes please"], ', search) is not None

    # drafted, the request becomes a template and the quoted words a value of its slot
    reply = (
        '{"requests": ["find notes that mention \'travel\'", "search my notes for {query}"], '
        '"values": {"query": ["taxes"]}}'
    )

    def complete(messages: list[dict[str, str]], seed: int, enough: Any) -> str:
        return reply if "Write the JSON for search_notes." in messages[-1]["content"] else "no."

    book, stats = draft_phrasebook(tools, complete, tries=1)
    entry = book.tools["search_notes"]
    assert entry.request_templates() == ["find notes that mention '{query}'", "search my notes for {query}"]
    assert entry.values["query"] == ["taxes", "travel"]


def test_a_reply_whose_requests_lack_a_required_slot_is_stopped_once_they_are_written() -> None:
    from tooltune.data.drafted_entries import doomed_reply

    tools = load_tool_specs(["builtin:issue-tracker"])
    get_issue = next(t for t in tools if t.name == "get_issue")
    bad = '{"requests": ["show me the latest issue", "what is {ticket}?", "open #{issue_id.1}"]'
    reason, written = doomed_reply(bad, get_issue) or ("", 0)
    assert "{issue_id}" in reason and written == 3
    assert doomed_reply(bad[:40], get_issue) is None  # the list is not written yet
    good = '{"requests": ["show me the latest issue", "pull up {issue_id:raw} please"], "values": {'
    assert doomed_reply(good, get_issue) is None  # one request can still pass
    # only the first object's own key counts: a nested "requests" (a parameter's values) is not it
    nested = '{"values": {"requests": ["x"]}, "requests": ["pull up {issue_id}"]'
    assert doomed_reply(nested, get_issue) is None
    assert doomed_reply('{"values": {"requests": ["pull up {issue_id}"]}, "requests": ["hi"]', get_issue)
    open_ended = next(t for t in tools if not t.required)
    assert doomed_reply('{"requests": ["hi there"]', open_ended) is None

    # a streaming teacher stops there and the next try starts: the doomed try's requests are counted
    # as dropped, with the reason, and never read as an unreadable reply
    rest = ', "values": {"issue_id": [1, 2]}, "near_misses": ["x"]}'
    streamed: list[int] = []

    def complete(messages: list[dict[str, str]], seed: int, enough: Any) -> str:
        if "Write the JSON for get_issue." not in messages[-1]["content"]:
            return "no."
        text = bad + rest if seed % 100 == 0 else json.dumps(GET_ISSUE_DRAFT)
        out = ""
        for ch in text:  # one character a piece, stopped where the caller has enough
            out += ch
            if ch in "]}" and enough(out):
                break
        streamed.append(len(out))
        return out

    book, stats = draft_phrasebook(tools, complete, tries=2)
    report = next(r for r in stats.tools if r.tool == "get_issue")
    assert streamed[0] == len(bad)  # nothing after the requests list was written
    assert report.tries == 2 and report.unreadable == 0 and "get_issue" in book.tools
    assert report.reasons[0].startswith("try 1: no request has a slot") and report.dropped >= 3


def test_a_slot_written_as_a_bare_json_value_is_read_as_a_whole_slot_string() -> None:
    from tooltune.data.drafted_entries import quoted_slots, reply_entry, salvaged_entry

    # models write a result's number as {issue_id}, not "{issue_id}": the reply would not parse at all
    reply = (
        '{"requests": ["pull up {issue_id}", "what is in #{issue_id}, {issue_id} I mean?"], '
        '"results": [{"result": {"id": {issue_id}, "links": [{issue_id.1}, {other_id} ]}, '
        '"answer": "Issue {issue_id} is open."}]}'
    )
    assert _no_entry_as_written(reply)
    assert quoted_slots(reply).count('"{issue_id}"') == 1  # slots inside strings are left alone
    entry = reply_entry(reply)
    assert entry is not None and entry["requests"][1] == "what is in #{issue_id}, {issue_id} I mean?"
    assert entry["results"][0]["result"] == {"id": "{issue_id}", "links": ["{issue_id.1}", "{other_id}"]}
    # slots with a form or a derived part are slots too; a slot in a values list is no value at all
    counted = '{"requests": ["pull up {issue_id}"], "results": [{"result": {"n": {hits:count}}}]}'
    assert reply_entry(counted) == {
        "requests": ["pull up {issue_id}"],
        "results": [{"result": {"n": "{hits:count}"}}],
    }
    from tooltune.data.drafted_entries import _phrases

    add_comment = next(t for t in load_tool_specs(["builtin:issue-tracker"]) if t.name == "add_comment")
    valued = reply_entry(
        '{"requests": ["note on {issue_id}: {body}"], "values": {"body": [{body}, "LGTM", "{body}"]}}'
    )
    assert valued is not None
    phrases, dropped = _phrases(valued, add_comment)
    assert phrases.values["body"] == ["LGTM"] and dropped == 2
    # cut off, the keys written whole are still read past a bare slot
    cut = '{"requests": ["pull up {issue_id}"], "results": [{"result": {"id": {issue_id}}}], "near_m'
    assert salvaged_entry(cut) == {
        "results": [{"result": {"id": "{issue_id}"}}],
        "requests": ["pull up {issue_id}"],
    }

    # drafted, the result shape is kept, and a string that is one whole slot keeps the value's type
    tools = load_tool_specs(["builtin:issue-tracker"])

    drafted = reply.replace('"links": [{issue_id.1}, {other_id} ]', '"state": "open"')

    def complete(messages: list[dict[str, str]], seed: int, enough: Any) -> str:
        return drafted if "Write the JSON for get_issue." in messages[-1]["content"] else "no."

    book, stats = draft_phrasebook(tools, complete, tries=1)
    report = next(r for r in stats.tools if r.tool == "get_issue")
    assert report.unreadable == 0 and report.kept.get("results") == 1, report
    assert book.tools["get_issue"].results[0].result == {"id": "{issue_id}", "state": "open"}


def _no_entry_as_written(text: str) -> bool:
    """No JSON object with a requests list is in ``text`` as written."""
    from tooltune.json_spans import json_spans

    return not any(isinstance(v, dict) and "requests" in v for _, _, v in json_spans(text))


def test_a_reply_that_runs_on_is_stopped_and_its_distinct_requests_are_read() -> None:
    from tooltune.data.drafted_entries import MAX_DRAFT_REQUESTS, ran_on, requests_so_far, salvaged_entry

    start = '{"requests": ["pull up {issue_id}", "what is in #{issue_id}?", '
    assert ran_on(start) is None and requests_so_far(start) == (
        ["pull up {issue_id}", "what is in #{issue_id}?"],
        False,
        0,
    )
    again = start + '"show {issue_id}", ' * 3
    assert ran_on(again) == "one request written three times"
    many = start + "".join(f'"issue {{issue_id}} number {i}", ' for i in range(MAX_DRAFT_REQUESTS))
    assert ran_on(many) == f"more than {MAX_DRAFT_REQUESTS} requests"
    endless = start + '"add it to {issue_id} ' + " ".join(f"and word{i}" for i in range(40))  # no loop
    assert ran_on(endless) == "a request over 300 characters"
    assert ran_on(again + '"x"], "values": {}}') is None  # a list that closed is the check's to judge
    assert salvaged_entry(again) == {
        "requests": ["pull up {issue_id}", "what is in #{issue_id}?", "show {issue_id}"]
    }
    assert salvaged_entry(endless) == {"requests": ["pull up {issue_id}", "what is in #{issue_id}?"]}
    assert salvaged_entry('{"requests": [') is None and salvaged_entry("no JSON here") is None
    # a loop anywhere (here a value list going round) stops the reply; the keys written whole are read
    values = '{"requests": ["pull up {issue_id}"], "say": {}, "values": {"issue_id": [1, 2, '
    looping = values + "".join(f"{n}, " for n in range(300, 340)) * 3
    assert ran_on(looping) == "the reply repeats itself" and ran_on(values + "3, 4, 5, ") is None
    assert salvaged_entry(looping) == {"say": {}, "requests": ["pull up {issue_id}"]}
    alike = '{"requests": [' + " ".join(
        f'"{w} pull up issue {{issue_id}} and show me all that is in it, with every comment on it please",'
        for w in ("hey", "can you", "now")
    )
    assert ran_on(alike) is None  # three requests that only end alike are no loop
    counting = values + "".join(f"{n}, " for n in range(1000, 2000))  # no loop, but no draft is so long
    assert ran_on(counting) == "the reply passed 4000 characters"
    assert salvaged_entry(counting) == {"say": {}, "requests": ["pull up {issue_id}"]}
    dates = values[: values.index('"values"')] + '"values": {"date": [' + '"2016-10-01", ' * 2
    counting_down = dates + "".join(f'"20{y:02d}-01-01", ' for y in range(26, 0, -1))
    assert ran_on(counting_down) is None  # 28 items: a range of days written out has 31
    counting_down += "".join(f'"19{y:02d}-01-01", ' for y in range(99, 78, -1))
    assert ran_on(counting_down) == "a list of more than 48 items" and len(counting_down) < 900
    from tooltune.data.drafted_entries import MAX_LIST_ITEMS, _open_list_items

    # only the innermost open list's own items count: commas inside strings or nested lists do not
    assert _open_list_items('{"a": [["x, y", 1], ["z", 2], ') == 3
    assert _open_list_items('{"a": [1, 2, 3], "b": {"c": 1, ') == 0  # an object is innermost
    assert _open_list_items("[" + "1, " * (MAX_LIST_ITEMS - 1)) == MAX_LIST_ITEMS
    # a long reply with few items in any list has run on too; a tool of many parameters is allowed more
    words = '{"requests": ["pull up {issue_id}"], "near_misses": ["' + " ".join(f"w{i}" for i in range(900))
    assert 4000 < len(words) < 6000 and ran_on(words) == "the reply passed 4000 characters"
    get_issue = next(t for t in load_tool_specs(["builtin:issue-tracker"]) if t.name == "get_issue")
    props = {f"p{i}": {"type": "string"} for i in range(12)}
    wide = get_issue.model_copy(update={"parameters": {"type": "object", "properties": props}})
    more = words + " " + " ".join(f"v{i}" for i in range(600))
    assert ran_on(words, wide) is None and ran_on(more, wide) == "the reply passed 6000 characters"
    # the object that holds the requests is the one read, and a value at the very end may be cut short
    cut = '{"values": {"issue_id": [666]}} so: {"requests": ["pull up {issue_id}"], "say": {}, "limit": 12'
    assert salvaged_entry(cut) == {"say": {}, "requests": ["pull up {issue_id}"]}
    assert salvaged_entry(again + '"x"], "values": {"issue_id": [7]}, "near_misses": ["de') == {
        "values": {"issue_id": [7]},
        "requests": ["pull up {issue_id}", "what is in #{issue_id}?", "show {issue_id}", "x"],
    }

    # streamed, the reply is stopped where it ran on, and its distinct requests make the tool's entry
    tools = load_tool_specs(["builtin:issue-tracker"])
    streamed: list[str] = []

    def complete(messages: list[dict[str, str]], seed: int, enough: Any) -> str:
        if "Write the JSON for get_issue." not in messages[-1]["content"]:
            return "no."
        out = ""
        for ch in start + '"show {issue_id}", ' * 200:
            out += ch
            if ch in '}]"' and enough(out):
                break
        streamed.append(out)
        return out

    book, stats = draft_phrasebook(tools, complete, tries=2)
    report = next(r for r in stats.tools if r.tool == "get_issue")
    assert len(streamed) == 1 and streamed[0].count("show {issue_id}") == 3  # stopped at the third
    assert report.ran_on == 1 and report.tries == 1 and report.unreadable == 0
    assert "written three times" in report.reasons[0]
    assert book.tools["get_issue"].requests == [
        "pull up {issue_id}",
        "what is in #{issue_id}?",
        "show {issue_id}",
    ]


def test_a_failed_request_costs_its_tool_one_try_and_only_total_failure_raises() -> None:
    from tooltune.data.teacher import TeacherError

    tools = load_tool_specs(["builtin:issue-tracker"])

    def flaky(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        if seed % 100 == 0:  # every tool's first try fails
            raise TeacherError("teacher at http://t.test/v1 failed (timed out)")
        return fake_reply(messages)

    book, stats = draft_phrasebook(tools, flaky, tries=2, concurrency=3)
    assert set(book.tools) == {"get_issue"}  # its second try still made the entry
    assert all(t.failed == 1 and "timed out" in t.reasons[0] for t in stats.tools)

    def down(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        raise TeacherError("teacher at http://t.test/v1 failed (connection refused)")

    with pytest.raises(TeacherError, match="every draft request failed.*connection refused"):
        draft_phrasebook(tools, down, tries=2, concurrency=8)
    with pytest.raises(TooltuneError, match="concurrency must be at least 1") as bad:
        draft_phrasebook(tools, flaky, concurrency=0)
    assert not isinstance(bad.value, TeacherError)  # a setting refused, not a teacher that failed


def test_a_stream_that_breaks_off_is_an_error_not_a_reply() -> None:
    from tooltune.data.teacher import Teacher, TeacherError

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_sse('{"requests": ["open'))  # no [DONE], no finish_reason

    t = Teacher("http://t.test/v1", client=httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(TeacherError, match="stopped mid-reply"):
        t.chat([{"role": "user", "content": "x"}], until=lambda text: False)


def test_teacher_sends_a_seed_only_when_given_one_and_counts_tokens() -> None:
    # mlx_lm.server batches concurrent requests only when they carry no seed
    from tooltune.data.teacher import Teacher

    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append({**json.loads(request.content), "read_timeout": request.extensions["timeout"]["read"]})
        return httpx.Response(
            200, json={"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 3}}
        )

    t = Teacher("http://t.test/v1", client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert t.chat([{"role": "user", "content": "hi"}], seed=7) == "ok"
    t.chat([{"role": "user", "content": "hi"}], seed=None, max_tokens=1, timeout=3600.0)
    assert bodies[0]["seed"] == 7 and "seed" not in bodies[1] and bodies[1]["max_tokens"] == 1
    assert bodies[0]["read_timeout"] == t.client.timeout.read and bodies[1]["read_timeout"] == 3600.0
    assert t.completion_tokens == 6  # what the endpoint says it wrote, for the cost of a draft


def _sse(text: str) -> bytes:
    return f"data: {json.dumps({'choices': [{'delta': {'content': text}}]})}\n\n".encode()


def test_a_streamed_reply_is_cut_off_once_it_holds_what_is_wanted() -> None:
    entry = json.dumps(GET_ISSUE_DRAFT)
    pieces = ["Sure:\n", *[entry[i : i + 9] for i in range(0, len(entry), 9)], "\nAnd another: {", '"a": 1}']

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        return httpx.Response(200, content=b"".join(map(_sse, pieces)) + b"data: [DONE]\n\n")

    from tooltune.data.teacher import Teacher

    t = Teacher("http://t.test/v1", client=httpx.Client(transport=httpx.MockTransport(handler)))
    got = t.chat([{"role": "user", "content": "x"}], until=lambda text: "}" in text and entry in text)
    assert got == "Sure:\n" + entry  # nothing after the entry was read
    assert t.completion_tokens == 1 + -(-len(entry) // 9)
    # without a stop the whole stream is the reply
    assert t.chat([{"role": "user", "content": "x"}], until=lambda text: False) == "".join(pieces)


def test_a_streamed_reply_is_also_checked_when_a_list_closes() -> None:
    from tooltune.data.teacher import Teacher

    pieces = ['{"requests": ["a", "b"', "]", ', "values": {}', "}"]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"".join(map(_sse, pieces)) + b"data: [DONE]\n\n")

    t = Teacher("http://t.test/v1", client=httpx.Client(transport=httpx.MockTransport(handler)))
    got = t.chat([{"role": "user", "content": "x"}], until=lambda text: text.endswith("]"))
    assert got == '{"requests": ["a", "b"]' and t.completion_tokens == 2
    # and when a string closes (a request written a third time is seen at its closing quote)
    pieces[:2] = ['{"requests": ["a', '"', ', "b"', "]"]
    got = t.chat([{"role": "user", "content": "x"}], until=lambda text: text.endswith('"a"'))
    assert got == '{"requests": ["a"'
    # and every UNTIL_EVERY pieces, whatever they hold (a request growing clause by clause in one string)
    from tooltune.data.teacher import UNTIL_EVERY

    pieces[:] = ['{"requests": ["find issues'] + [" and more"] * (3 * UNTIL_EVERY)
    got = t.chat([{"role": "user", "content": "x"}], until=lambda text: len(text) > 100)
    assert got.count(" and more") == UNTIL_EVERY * -(-10 // UNTIL_EVERY) - 1


# create_issue's draft, as the streaming teacher endpoint writes it: no request has its required {title}
DOOMED_CREATE_ISSUE = '{"requests": ["file a new bug", "open a ticket for me"], "values": {}}'


# add_comment's draft: a usable request, then a value list counting on with no quote, bracket or brace
COUNTING_ADD_COMMENT = '{"requests": ["put {body} on #{issue_id}"], "values": {"issue_id": [' + ", ".join(
    str(n) for n in range(100, 200)
)


def teacher_reply(messages: list[dict[str, str]]) -> str:
    if "Write the JSON for create_issue." in messages[-1]["content"]:
        return DOOMED_CREATE_ISSUE
    if "Write the JSON for add_comment." in messages[-1]["content"]:
        return COUNTING_ADD_COMMENT
    return fake_reply(messages)


SEEN: list[dict[str, Any]] = []  # request bodies the fake teacher endpoint received
STREAM_ENDS: list[str] = []  # how each streamed reply ended


class _Teacher(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 — http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append(body)
        if body.get("stream"):  # the reply, then 400 pieces a model might ramble on with
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            text = teacher_reply(body["messages"])
            # after an entry, ramble on until the client hangs up (or 60 s); after prose, stop soon
            until = time.monotonic() + (60 if "{" in text else 0)
            try:
                for piece in [text[i : i + 7] for i in range(0, len(text), 7)]:
                    self.wfile.write(_sse(piece))
                while True:
                    self.wfile.write(_sse("\nHope that helps."))
                    self.wfile.flush()
                    if time.monotonic() > until:
                        break
                    time.sleep(0.01)
                self.wfile.write(b"data: [DONE]\n\n")
                STREAM_ENDS.append("all written")
            except (BrokenPipeError, ConnectionResetError):
                STREAM_ENDS.append("closed by the client")
            return
        reply = {"choices": [{"message": {"role": "assistant", "content": fake_reply(body["messages"])}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def teacher_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Teacher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _cli(*args: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOOLTUNE_HOME": str(settings.workspace), "TOOLTUNE_CACHE": str(settings.cache_dir)}
    return subprocess.run(
        [sys.executable, "-m", "tooltune", *args], capture_output=True, text=True, env=env, timeout=240
    )


def test_cli_draft_lint_and_generate_with_a_book(
    teacher_url: str, tmp_path: Path, settings: Settings, tiny_model: Path
) -> None:
    out = tmp_path / "tracker.yaml"
    SEEN.clear()
    STREAM_ENDS.clear()
    r = _cli("data", "phrasebook", "draft", "--tools", "builtin:issue-tracker", "--teacher", teacher_url,
             "--out", str(out), settings=settings)  # fmt: skip
    assert r.returncode == 0, r.stderr
    # by default the drafts go together (no seed, so a server can batch them), after a 1-token warm-up
    assert SEEN[0]["max_tokens"] == 1 and len(SEEN) == 1 + 1 + 1 + 2 * 6
    assert not any("seed" in body for body in SEEN)
    # the one reply with an entry was cut off after it, create_issue's two once their requests showed
    # they could give none, and add_comment's once its list ran on (seen by the check every 16 pieces);
    # the prose replies were read to their end
    assert sorted(STREAM_ENDS) == ["all written"] * 10 + ["closed by the client"] * 4
    said = " ".join(r.stdout.split())  # rich wraps lines at the terminal width
    assert "3 request templates for 2/8 tools" in said and "get_issue: kept" in said
    assert "add_comment: kept {'requests': 1" in said and "ran on 1" in said
    assert out.read_text().startswith("# Drafted by http://127.0.0.1")
    r = _cli("data", "phrasebook", "draft", "--tools", "builtin:issue-tracker", "--teacher", teacher_url,
             "--out", str(out), settings=settings)  # fmt: skip
    assert r.returncode != 0 and "exists" in r.stderr  # a draft never overwrites a book
    r = _cli("data", "phrasebook", "lint", str(out), "--tools", "builtin:issue-tracker", settings=settings)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "get_issue: " in r.stdout and "0 error(s)" in " ".join(r.stdout.split())
    # two rounds, one tool at a time: each tool asked once a round (twice where a try is unreadable)
    SEEN.clear()
    merged = tmp_path / "merged.yaml"
    r = _cli("data", "phrasebook", "draft", "--tools", "builtin:issue-tracker", "--teacher", teacher_url,
             "--out", str(merged), "--rounds", "2", "--concurrency", "1", settings=settings)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        len(SEEN) == 2 * (1 + 1 + 2 * 6) and "2 drafts merged per tool" in merged.read_text().splitlines()[0]
    )
    r = _cli("data", "phrasebook", "draft", "--tools", "builtin:issue-tracker", "--teacher", teacher_url,
             "--out", str(tmp_path / "none.yaml"), "--rounds", "0", settings=settings)  # fmt: skip
    assert r.returncode != 0 and "--rounds and --tries must be at least 1 (got 0 and 2)" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("tools:\n  get_issue:\n    requests:\n      - 'open {nope}'\n      - 'open {issue_id}'\n")
    r = _cli("data", "phrasebook", "lint", str(bad), "--tools", "builtin:issue-tracker", settings=settings)
    assert r.returncode == 1
    assert f"{bad}:4: tools.get_issue.requests[0]" in " ".join(r.stdout.split())
    r = _cli("data", "generate", "--tools", "builtin:issue-tracker", "--phrasebook", str(bad), "--out", "T",
             "--n", "60", "--model", str(tiny_model), settings=settings)  # fmt: skip
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert "skipped" in said and "{nope}" in said  # said which entry and why; the rest was used
    info = load_dataset(Workspace(settings.workspace), "T")
    assert any(s.startswith("phrasebook:unnamed@") for s in info.sources)
    assert info.stats["phrasebook"]["requests"] == 1 and info.stats["phrasebook"]["dropped_entries"] == 1


# ---- MCP ----------------------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    assert params.system_prompt and "JSON" in params.system_prompt
    asked = params.messages[-1].content.text  # type: ignore[union-attr]
    assert "Write the JSON for all 8 tools." in asked and "create_issue" in asked  # one request, every tool
    reply = json.dumps({"tools": {"get_issue": GET_ISSUE_DRAFT, "create_issue": {"requests": "people ask"}}})
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=reply), model="client-model"
    )


@pytest.mark.anyio
async def test_mcp_phrasebook_mapping_and_client_sampling(settings: Settings, tiny_model: Path) -> None:
    state = ServerState(settings)
    book = {
        "values": {"area": ["login", "search"], "symptom": ["fails", "hangs"]},
        "tools": {
            "get_issue": {"requests": ["what's in #{issue_id}?", "open {nope}"]},
            "search_issues": {  # a weighted, composed value, as a client may write one
                "requests": ["any bugs about {query}?"],
                "values": {
                    "query": {
                        "one_of": [
                            {"weight": 3, "compose": "{area} {symptom}"},
                            {"weight": 1, "value": "crash"},
                        ]
                    }
                },
            },
        },
    }
    async with mcp.Client(build_server(settings, state=state)) as c:
        result = await c.call_tool(
            "generate_training_examples",
            {
                "builtin": "issue-tracker",
                "phrasebook": book,
                "n": 40,
                "name": "m",
                "base_model": str(tiny_model),
            },
        )
        assert not result.is_error, result.content
        out = result.structured_content or {}
        assert out["phrasebook"]["requests"] == 2 and out["phrasebook"]["dropped_entries"] == 1
        assert "{nope}" in out["phrasebook_skipped"][0]
        kept = load_phrasebook(
            settings.workspace / "inputs" / "m" / "phrasebook.json"
        )  # as the client wrote it
        assert (
            kept.book.tools["search_issues"].values
            == phrasebook_from_object(book).book.tools["search_issues"].values
        )
        refused = await c.call_tool(
            "generate_training_examples", {"builtin": "issue-tracker", "phrasebook": "client"}
        )
        assert refused.is_error and "sampling" in refused.content[0].text  # type: ignore[union-attr]
    async with mcp.Client(build_server(settings, state=state), sampling_callback=_sampling) as c:
        result = await c.call_tool(
            "generate_training_examples",
            {
                "builtin": "issue-tracker",
                "phrasebook": "client",
                "n": 40,
                "name": "s",
                "base_model": str(tiny_model),
            },
        )
        assert not result.is_error, result.content
        out = result.structured_content or {}
        drafted = {t["tool"]: t for t in out["phrasebook_drafted"]["tools"]}
        assert drafted["get_issue"]["kept"]["requests"] == 2 and drafted["get_issue"]["dropped"] == 3
        assert out["phrasebook"]["requests"] == 2
    saved = settings.workspace / "inputs" / "s" / "phrasebook.yaml"
    tools = load_tool_specs(["builtin:issue-tracker"])
    assert not check_phrasebook(load_phrasebook(saved), tools).errors  # kept beside the dataset, usable again


@pytest.mark.anyio
async def test_mcp_refuses_a_malformed_book_and_writes_nothing(settings: Settings) -> None:
    state = ServerState(settings)
    async with mcp.Client(build_server(settings, state=state)) as c:
        result = await c.call_tool(
            "generate_training_examples",
            {"tools": [{"name": "f", "parameters": {"type": "object", "properties": {}}}], "name": "bad",
             "phrasebook": {"tools": {}, "sections": 1}},
        )  # fmt: skip
        assert result.is_error and "unknown key" in result.content[0].text  # type: ignore[union-attr]
    assert not (settings.workspace / "inputs" / "bad").exists()


def test_a_url_teacher_waits_as_long_as_a_served_model() -> None:
    # a local teacher on a CPU takes minutes for one 1,500-token draft; a minute's timeout failed them
    from tooltune.data.teacher import Teacher
    from tooltune.serving.model_server import ModelServer

    served = inspect.signature(ModelServer.__init__).parameters["request_timeout"].default
    assert Teacher("http://127.0.0.1:1/v1").client.timeout.read == served >= 600


def test_drafted_items_of_an_array_parameter_become_one_item_values() -> None:
    # the 1.5B drafted "labels": ["bug", "ui", ...] for create_issue (an array of strings): every value
    # was dropped as not fitting the schema; each item is now a one-item value, whole arrays stay as written
    tools = load_tool_specs(["builtin:issue-tracker"])
    entry = {
        "requests": ["open an issue {title} tagged {labels}", "new bug: {title}, labels {labels}"],
        "values": {"title": ["Login fails", "Slow search"], "labels": ["bug", "ui", ["bug", "backend"], 7]},
    }

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        return json.dumps(entry) if "Write the JSON for create_issue." in messages[-1]["content"] else "no"

    book, stats = draft_phrasebook(tools, complete, tries=1)
    labels = book.tools["create_issue"].values["labels"]
    assert labels == [["bug"], ["ui"], ["bug", "backend"]]  # [7] does not fit: dropped and counted
    report = {r.tool: r for r in stats.tools}["create_issue"]
    assert report.kept["requests"] == 2 and report.dropped == 1


def test_drafted_rows_of_an_array_of_arrays_parameter_become_one_row_values() -> None:
    """Where an array's items are arrays (a matrix), a drafted row is an item: it becomes a one-row value,
    while a drafted whole matrix stays as written."""
    from tooltune.toolspec import ToolSpec

    matrix = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
    tool = ToolSpec(
        name="transpose",
        description="Transpose a matrix.",
        parameters={"type": "object", "properties": {"matrix": matrix}, "required": ["matrix"]},
    )
    entry = {"requests": ["transpose {matrix}"], "values": {"matrix": [[1, 2], [[1, 2], [3, 4]], 5]}}
    book, stats = draft_phrasebook([tool], lambda messages, seed, _: json.dumps(entry), tries=1)
    # the row and the whole matrix fit the schema; the bare 5 becomes [5], a row that is no array: dropped
    assert book.tools["transpose"].values["matrix"] == [[[1, 2]], [[1, 2], [3, 4]]]
    assert stats.tools[0].dropped == 1


def test_a_drafted_entry_says_dates_times_and_durations_in_the_forms_its_schema_names() -> None:
    """The 1.5B's draft for create_event (notes-calendar) listed ISO dates, one of them no date at all,
    and wrote "for {duration_minutes} minutes": the entry takes the forms the schema names, drops the
    non-date, and takes the unit out of the template (the minutes form writes its own)."""
    import random

    from tooltune.data.phrasebook import BookText
    from tooltune.data.phrasebook_fill import DataBook

    tools = load_tool_specs(["builtin:notes-calendar"])
    entry = {
        "requests": ["schedule {title} on {date} at {start_time} for {duration_minutes} minutes"],
        "values": {"title": ["Lunch with Sam"], "date": ["2027-04-15", "2027-04-35", "2027-05-20"],
                   "start_time": ["10:00", "14:30"], "duration_minutes": [30, 90]},
        "parallel": ["add {title} on {date.1} and {date.2} at {start_time}, {duration_minutes} mins each"],
    }  # fmt: skip

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        return json.dumps(entry) if "Write the JSON for create_event." in messages[-1]["content"] else "no"

    book, stats = draft_phrasebook(tools, complete, tries=1)
    phrases = book.tools["create_event"]
    assert phrases.forms == {"date": "date", "start_time": "time", "duration_minutes": "minutes"}
    assert phrases.values["date"] == ["2027-04-15", "2027-05-20"]
    assert {r.tool: r for r in stats.tools}["create_event"].dropped == 1
    assert phrases.requests == ["schedule {title} on {date} at {start_time} for {duration_minutes}"]
    assert phrases.parallel == [
        "add {title} on {date.1} and {date.2} at {start_time}, {duration_minutes} each"
    ]
    data = DataBook(check_phrasebook(BookText(book=book, source="draft"), tools), tools)
    rng = random.Random(0)
    said = [data.request(rng, "create_event", polish=False) for _ in range(40)]
    texts = [text for text, _ in filter(None, said)]
    assert len(texts) > 30 and not any("minutes minutes" in t or "hours minutes" in t for t in texts)
    assert sum("2027-" not in t for t in texts) > len(texts) / 2  # most dates said as people say them
    # a value of another shape ("next Friday") keeps its parameter's values as written, without a form
    entry["values"]["date"] = ["next Friday", "tomorrow"]
    book, _ = draft_phrasebook(tools, complete, tries=1)
    assert "date" not in book.tools["create_event"].forms
    assert book.tools["create_event"].values["date"] == ["next Friday", "tomorrow"]


def test_a_template_that_says_a_minutes_forms_unit_again_is_named() -> None:
    tools = load_tool_specs(["builtin:notes-calendar"])
    text = phrasebook_from_object(
        {"tools": {"find_free_slot": {"requests": ["find {duration_minutes} minutes free on {date}",
                                                   "a {duration_minutes} slot on {date}?",
                                                   "a {duration_minutes}-minute slot on {date}"],
                                      "forms": {"duration_minutes": "minutes", "date": "date"}}}},
        source="book.yaml",
    )  # fmt: skip
    checked = check_phrasebook(text, tools)
    said_twice = [i for i in checked.issues if "said twice" in i.message]
    assert [(i.severity, i.where) for i in said_twice] == [("warning", "tools.find_free_slot.requests")]
    assert "'minutes'" in said_twice[0].message
    # the adjective gets its own advice: taking the unit out would read "a an hour slot"
    [adjective] = [i for i in checked.issues if "adjective" in i.message]
    assert adjective.severity == "warning" and "rephrase it" in adjective.message


@pytest.mark.parametrize(
    ("change", "kept_form"),
    [
        ({"requests": ["book a {duration_minutes}-minute slot on {date}"]}, False),  # "a an hour slot"
        ({"values": {"date": ["2027-04-15"], "duration_minutes": {"range": [0, 90]}}}, False),  # 0 said as is
        ({"values": {"date": ["2027-04-15"], "duration_minutes": {"range": [15, 90]}}}, True),
        ({"values": {"date": ["2027-04-15"]}}, False),  # schema draws: not known to be whole minutes
        ({"say": {"duration_minutes": {"90": ["ninety"]}}}, False),  # its own words come first
        # an adjective after a later slot, not hidden by the first slot's plain unit
        ({"requests": ["find {duration_minutes} min on {date}, a {duration_minutes}-minute block"]}, False),
        # an empty range: the check drops it, so the values would come from the schema
        ({"values": {"date": ["2027-04-15"], "duration_minutes": {"range": [90, 15]}}}, False),
        # whole floats, as some models write JSON numbers: read as whole numbers
        ({"values": {"date": ["2027-04-15"], "duration_minutes": {"range": [15.0, 90.0]}}}, True),
    ],
)
def test_a_drafted_minutes_form_is_kept_only_where_it_says_every_value(
    change: dict[str, Any], kept_form: bool
) -> None:
    """A minutes form takes the unit out of its templates, so it is kept only where every value it fills
    is said in the form; else the templates stay as drafted ("find 90 minutes free")."""
    tools = load_tool_specs(["builtin:notes-calendar"])
    entry = {
        "requests": ["find {duration_minutes} minutes free on {date}"],
        "values": {"date": ["2027-04-15"], "duration_minutes": [30, 90]},
        **change,
    }

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        return json.dumps(entry) if "Write the JSON for find_free_slot." in messages[-1]["content"] else "no"

    book, _ = draft_phrasebook(tools, complete, tries=1)
    phrases = book.tools["find_free_slot"]
    assert ("duration_minutes" in phrases.forms) is kept_form
    assert phrases.forms["date"] == "date"
    assert (phrases.requests == entry["requests"]) is not kept_form


def test_a_model_written_form_is_checked_and_its_values_filtered() -> None:
    tools = load_tool_specs(["builtin:notes-calendar"])
    entry = {
        "requests": ["what's on {date}?", "{days} days from {date}"],
        "values": {"date": ["2027-04-15", "2027-04-35"], "days": [2, 3]},
        "forms": {"date": "date", "days": "fortnights", "nope": "date", "when": 3},
    }
    book, stats = draft_phrasebook(tools, lambda m, s, _: json.dumps(entry), tries=1)
    phrases = book.tools["list_events"]
    assert phrases.forms == {"date": "date"} and phrases.values["date"] == ["2027-04-15"]
    # the bad date, and the three form entries that name no form or no parameter, dropped and counted
    assert {r.tool: r for r in stats.tools}["list_events"].dropped == 4
    # a form the model wrote for values of another shape goes, counted; a bad value spec costs its own
    # parameter's values only
    entry.update(values={"date": ["next Friday"], "days": {"range": [1, "lots"]}}, forms={"date": "date"})
    book, stats = draft_phrasebook(tools, lambda m, s, _: json.dumps(entry), tries=1)
    phrases = book.tools["list_events"]
    assert phrases.forms == {} and phrases.values == {"date": ["next Friday"]}
    assert {r.tool: r for r in stats.tools}["list_events"].dropped == 2


def test_drafts_of_several_rounds_are_merged_into_one_entry() -> None:
    """A model writes about ten templates a draft: with rounds, each tool is drafted again and the
    usable drafts are joined (templates, values, near misses once each), then checked as one entry."""
    tools = load_tool_specs(["builtin:issue-tracker"])
    rounds_of = {
        0: {"requests": ["what's in #{issue_id}?", "pull up issue {issue_id}"],
            "values": {"issue_id": [12, 407]}, "near_misses": ["delete issue {issue_id}"]},
        10: "no JSON this time",  # round 2's first try is unreadable; its second try is used
        11: {"requests": ["pull up issue {issue_id}", "show me #{issue_id}"],
             "values": {"issue_id": [407, 3310]},
             "near_misses": ["delete issue {issue_id}", "lock #{issue_id}"]},
        20: {"requests": ["open {nope}"]},  # round 3: no usable template, twice
        21: {"requests": ["open {nope}"]},
    }  # fmt: skip

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        if "Write the JSON for get_issue." not in messages[-1]["content"]:
            return "prose"
        reply = rounds_of[seed % 100]  # each tool's seeds start 100 apart
        return reply if isinstance(reply, str) else json.dumps(reply)

    book, stats = draft_phrasebook(tools, complete, tries=2, rounds=3)
    phrases = book.tools["get_issue"]
    assert phrases.requests == ["what's in #{issue_id}?", "pull up issue {issue_id}", "show me #{issue_id}"]
    assert phrases.values["issue_id"] == [12, 407, 3310]
    assert phrases.near_misses == ["delete issue {issue_id}", "lock #{issue_id}"]
    report = {r.tool: r for r in stats.tools}["get_issue"]
    assert (report.tries, report.unreadable, report.dropped) == (5, 1, 2)  # round 3's {nope} twice
    assert report.kept["requests"] == 3 and stats.rounds == 3
    assert {r.tool: r for r in stats.tools}["create_issue"].tries == 6  # 2 tries x 3 rounds, all prose
    with pytest.raises(TooltuneError, match="rounds and tries must be at least 1"):
        draft_phrasebook(tools, complete, rounds=0)
    with pytest.raises(TooltuneError, match=r"got 1 and 0"):
        draft_phrasebook(tools, complete, tries=0)


def test_a_drafted_template_that_a_unit_strip_makes_a_duplicate_or_bare_is_checked() -> None:
    """The unit is taken out before the check, so a template that becomes another's twin, or slots
    alone, is dropped as in a hand-written book."""
    tools = load_tool_specs(["builtin:notes-calendar"])
    entry = {
        "requests": ["find {duration_minutes} minutes free on {date}",
                     "find {duration_minutes} free on {date}", "{date} {duration_minutes} min"],
        "values": {"date": ["2027-04-15"], "duration_minutes": [30, 90]},
    }  # fmt: skip

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        return json.dumps(entry) if "Write the JSON for find_free_slot." in messages[-1]["content"] else "no"

    book, stats = draft_phrasebook(tools, complete, tries=1)
    assert book.tools["find_free_slot"].requests == ["find {duration_minutes} free on {date}"]
    report = {r.tool: r for r in stats.tools}["find_free_slot"]
    assert report.dropped == 1 and "no words of its own" in report.reasons[0]  # the twin is a warning


def test_a_later_rounds_values_stand_in_for_an_unusable_first() -> None:
    tools = load_tool_specs(["builtin:notes-calendar"])
    drafts = {
        0: {"requests": ["{days} days from {date}"],
            "values": {"date": ["2027-04-15"], "days": {"range": [1, "x"]}}},
        10: {"requests": ["what's on {date}?"], "values": {"days": [2, 3]}, "say": {"days": "nope"}},
    }  # fmt: skip

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        asked = "Write the JSON for list_events." in messages[-1]["content"]
        return json.dumps(drafts[seed % 100]) if asked else "no"

    book, stats = draft_phrasebook(tools, complete, tries=1, rounds=2)
    assert book.tools["list_events"].values["days"] == [2, 3]
    # the unusable range and the say entry of no usable shape, each counted
    assert {r.tool: r for r in stats.tools}["list_events"].dropped == 2


def test_a_tools_rounds_are_drafted_at_once_and_merge_as_one_at_a_time() -> None:
    """Rounds are drafts like any other: with room for every draft, a tool's two rounds are in flight
    together (a batching server writes them in about the time of one: here they must meet at a barrier,
    or the draft fails), and the book is the one drafted one at a time, merged in round order."""
    tools = load_tool_specs(["builtin:issue-tracker"])
    meet: list[threading.Barrier | None] = [threading.Barrier(2, timeout=20)]

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        if "Write the JSON for get_issue." not in messages[-1]["content"]:
            return "prose"
        if meet[0] is not None:
            meet[0].wait()  # get_issue's two rounds at the same time
        entry = dict(GET_ISSUE_DRAFT)
        if seed % 100 == 10:  # round 2 words it otherwise
            entry = {**entry, "requests": ["show me issue {issue_id}", "what's in #{issue_id}?"]}
        return json.dumps(entry)

    book, stats = draft_phrasebook(tools, complete, tries=1, rounds=2, concurrency=16)
    meet[0] = None  # one at a time: nothing to meet
    alone, alone_stats = draft_phrasebook(tools, complete, tries=1, rounds=2, concurrency=1)
    assert book == alone
    assert [t.model_dump() for t in stats.tools] == [t.model_dump() for t in alone_stats.tools]
    assert book.tools["get_issue"].requests == ["what's in #{issue_id}?", "pull up issue {issue_id}",
                                                "show me issue {issue_id}"]  # fmt: skip


def test_a_failed_try_names_its_round() -> None:
    from tooltune.data.teacher import TeacherError

    tools = load_tool_specs(["builtin:issue-tracker"])

    def complete(messages: list[dict[str, str]], seed: int, enough: object = None) -> str:
        if "Write the JSON for get_issue." not in messages[-1]["content"]:
            return "prose"
        if seed % 100 == 10:
            raise TeacherError("connection reset")
        return json.dumps(GET_ISSUE_DRAFT)

    _, stats = draft_phrasebook(tools, complete, tries=1, rounds=2)
    report = {r.tool: r for r in stats.tools}["get_issue"]
    assert report.failed == 1 and "round 2 try 1: connection reset" in report.reasons
