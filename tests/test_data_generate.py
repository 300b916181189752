"""Generation: every kind is produced and valid (schema + template/parser round trip), values in the
request equal values in the call, seeds reproduce hashes, BFCL generation never sees its questions."""

from __future__ import annotations

import ast
import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tooltune.config import Settings
from tooltune.data.caller_examples import expand_caller_records
from tooltune.data.datasets import generate_dataset
from tooltune.data.examples import DataError
from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GENERATED_KINDS, GenerateConfig
from tooltune.data.lint import lint_items
from tooltune.data.phrasing import leaf_forms, leaf_strings
from tooltune.data.teacher import Teacher
from tooltune.data.tool_sources import load_tool_specs


@pytest.fixture(scope="session")
def bfcl_simple(bfcl_dir: Path) -> Path:
    return bfcl_dir / "BFCL_v4_simple_python.json"


@pytest.fixture(scope="module")
def tools(bfcl_simple: Path):
    return load_tool_specs(["builtin:coding", f"bfcl:{bfcl_simple}"])


def _write(tmp: Path, examples) -> Path:
    f = tmp / "ex.jsonl"
    f.write_text("".join(e.to_line() + "\n" for e in examples))
    return f


@pytest.mark.parametrize("kind", GENERATED_KINDS)
def test_each_kind_generated_and_valid(kind: str, tools, tiny_model: Path, tmp_path: Path) -> None:
    res = generate_examples(tools, GenerateConfig(n=12, seed=7, kinds=[kind]))
    assert res.counts.get(kind, 0) == len(res.examples) == 12
    report = lint_items([(_write(tmp_path, res.examples), "ex.jsonl")], model_path=tiny_model)
    assert report.ok, [str(e) for e in report.errors[:5]]
    assert report.checks["schema"].status == "passed"
    assert report.checks["loss"].status == "passed"  # split turns: every assistant turn is last once
    calls = [c for e in res.examples for c in e.calls()]
    if kind in ("no_call", "near_miss", "chitchat"):
        assert not calls
        assert all(not e.messages[-1].get("tool_calls") and e.messages[-1]["content"] for e in res.examples)
    else:
        assert calls
        assert report.checks["roundtrip"].status == "passed"
        assert "tool-call turns rendered and parsed back" in report.checks["roundtrip"].detail
    for ex in res.examples:
        names = ex.tool_names()
        assert len(names) == len(set(names))  # never two tools with one name
        if kind == "parallel" and ex.messages[-1].get("tool_calls"):
            assert len(ex.messages[-1]["tool_calls"]) >= 2
        if kind in ("multi_answer", "multi_chain") and len(ex.messages) > 2:
            assert any(m["role"] == "tool" for m in ex.messages)
        # every value in every call appears in the user request, verbatim or in one exact written form (a
        # trajectory's later calls take theirs from the tool results before them)
        text = " ".join(ex.user_texts())
        if kind == "trajectory":
            text += " ".join(m["content"] for m in ex.messages if m["role"] == "tool")
        for c in ex.calls():
            for k, v in c["arguments"].items():
                if kind == "trajectory" and (c["name"], k) == ("write_file", "content"):
                    _assert_an_edit_of_what_was_read(ex.messages, c["arguments"]["path"], v)
                    continue
                for forms in leaf_forms(v):
                    assert any(f in text for f in forms), (forms, text)


def _assert_an_edit_of_what_was_read(messages: list[dict], path: str, content: str) -> None:
    """A job's write is the file as its last read showed it with one line changed (the edit asked for)."""
    read = None
    for i, m in enumerate(messages):
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function", tc)
            if fn["name"] == "write_file" and fn["arguments"].get("content") == content:
                assert read is not None, f"{path} written before it was read"
                before, after = read.splitlines(), content.splitlines()
                assert len(before) == len(after), (read, content)
                assert sum(b != a for b, a in zip(before, after, strict=True)) == 1, (read, content)
                return
            if fn["name"] == "read_file" and fn["arguments"].get("path") == path:
                read = messages[i + 1]["content"]
    raise AssertionError(f"no write of {path} found")


def test_argument_coverage_and_typing(tools) -> None:
    res = generate_examples(tools, GenerateConfig(n=400, seed=3))
    from tooltune.toolspec import ToolSpec

    seen_types: set[str] = set()
    omitted_optional = present_optional = 0
    for ex in res.examples:
        offered = {t.name: t for t in map(ToolSpec.from_openai, ex.tools)}  # BFCL reuses some names
        for c in ex.calls():
            tool = offered[c["name"]]
            assert set(tool.required) <= set(c["arguments"])
            opt = set(tool.properties) - set(tool.required)
            present_optional += len(opt & set(c["arguments"]))
            omitted_optional += len(opt - set(c["arguments"]))
            for k, v in c["arguments"].items():
                typ = tool.properties[k].get("type")
                if typ == "integer":
                    assert isinstance(v, int) and not isinstance(v, bool)
                seen_types.add(type(v).__name__)
                if "enum" in tool.properties[k]:
                    assert v in tool.properties[k]["enum"]
    assert {"int", "float", "bool", "str", "list"} <= seen_types
    assert present_optional > 0 and omitted_optional > 0
    no_call = sum(1 for e in res.examples if not e.messages[-1].get("tool_calls") and not e.calls())
    assert 0.18 <= no_call / len(res.examples) <= 0.4
    coding = load_tool_specs(["builtin:coding"])
    edge = generate_examples(coding, GenerateConfig(n=60, seed=3, kinds=["edge_args"])).examples
    values = [s for e in edge for c in e.calls() for v in c["arguments"].values() for s in leaf_strings(v)]
    assert any(" " in s and "/" in s for s in values)  # paths with spaces
    assert any(
        f'"{s}"' in e.user_texts()[0] or f"'{s}'" in e.user_texts()[0]
        for e in edge
        for s in values
        if " " in s
    )  # quoted in the request


def test_tool_positions_vary(tools) -> None:
    res = generate_examples(tools, GenerateConfig(n=200, seed=5, kinds=["choose"]))
    positions = {e.tool_names().index(e.calls()[0]["name"]) for e in res.examples}
    assert len(positions) >= 3


def test_same_seed_same_hash_different_seed_differs(tmp_path: Path, tiny_model: Path) -> None:
    specs = ["builtin:coding"]
    a, _ = generate_dataset(tmp_path / "a", "d", specs, GenerateConfig(n=40, seed=1), model_path=tiny_model)
    b, _ = generate_dataset(tmp_path / "b", "d", specs, GenerateConfig(n=40, seed=1), model_path=tiny_model)
    c, _ = generate_dataset(tmp_path / "c", "d", specs, GenerateConfig(n=40, seed=2), model_path=tiny_model)
    assert a.hash == b.hash
    assert (a.path / "train.jsonl").read_bytes() == (b.path / "train.jsonl").read_bytes()
    assert a.hash != c.hash


def _cli(*args: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOOLTUNE_HOME": str(settings.workspace), "TOOLTUNE_CACHE": str(settings.cache_dir)}
    return subprocess.run(
        [sys.executable, "-m", "tooltune", *args], capture_output=True, text=True, env=env, timeout=240
    )


def test_cli_generate_from_bfcl_uses_only_schemas(
    settings: Settings, tiny_model: Path, bfcl_simple: Path
) -> None:
    from tooltune.data.store import load_dataset
    from tooltune.workspace import Workspace

    r = _cli(
        "data",
        "generate",
        "--tools",
        f"bfcl:{bfcl_simple}",
        "--out",
        "X",
        "--n",
        "150",
        "--seed",
        "0",
        "--model",
        str(tiny_model),
        settings=settings,
    )
    assert r.returncode == 0, r.stderr
    info = load_dataset(Workspace(settings.workspace), "X")
    assert sum(info.counts.values()) == 150
    assert info.lint is not None and info.lint.ok
    assert info.lint.checks["leakage"].status == "passed"
    assert "0 leaked" in info.lint.checks["leakage"].detail
    assert info.lint.checks["roundtrip"].status == "passed"
    data = "".join((info.path / f"{s}.jsonl").read_text() for s in ("train", "valid", "test"))
    lines = bfcl_simple.read_text().splitlines()
    questions = [json.loads(line)["question"][0][0]["content"] for line in lines]
    assert not [q for q in questions if q in data]
    assert info.hash in r.stdout and "leaked" in r.stdout
    r = _cli("data", "lint", "X", "--model", str(tiny_model), settings=settings)
    assert r.returncode == 0, r.stderr
    assert "leakage: passed (0 leaked" in r.stdout
    r = _cli("data", "list", settings=settings)
    assert info.hash[:19] in r.stdout
    r = _cli("data", "stats", "X", settings=settings)
    assert "per kind" in r.stdout and r.returncode == 0
    r = _cli("data", "generate", "--tools", "builtin:coding", "--out", "X", "--n", "5", settings=settings)
    assert r.returncode != 0 and "already exists" in r.stderr


def test_caller_pairs_expanded_and_validated(tools) -> None:
    recs = [
        (
            "my.jsonl:1",
            {
                "request": "Show me src/app.py please",
                "calls": [{"name": "read_file", "arguments": {"path": "src/app.py"}}],
            },
        ),
        ("my.jsonl:2", {"request": "Tell me a joke", "calls": [], "answer": "Why did the chicken…"}),
    ]
    exs = expand_caller_records(recs, tools, seed=1)
    assert exs[0].calls() == [{"name": "read_file", "arguments": {"path": "src/app.py"}}]
    assert "read_file" in exs[0].tool_names() and len(exs[0].tool_names()) >= 2
    assert exs[1].messages[-1]["content"].startswith("Why")
    with pytest.raises(DataError, match=r"my\.jsonl:3: calls\[0\]\.arguments\.path"):
        expand_caller_records(
            [("my.jsonl:3", {"request": "x", "calls": [{"name": "read_file", "arguments": {"path": 5}}]})],
            tools,
        )
    with pytest.raises(DataError, match=r"my\.jsonl:4: calls\[0\]\.name: unknown tool 'nope'"):
        expand_caller_records(
            [("my.jsonl:4", {"request": "x", "calls": [{"name": "nope", "arguments": {}}]})], tools
        )


def test_examples_file_into_generate(tmp_path: Path, tiny_model: Path) -> None:
    f = tmp_path / "mine.jsonl"
    f.write_text(
        json.dumps(
            {
                "request": "Run the tests in tests/unit and stop at the first failure",
                "calls": [{"name": "run_tests", "arguments": {"path": "tests/unit", "fail_fast": True}}],
            }
        )
        + "\n"
    )
    info, res = generate_dataset(
        tmp_path / "ws",
        "d",
        ["builtin:coding"],
        GenerateConfig(n=20, seed=0),
        model_path=tiny_model,
        examples_file=f,
    )
    assert res.counts["caller"] == 1
    assert "examples:mine.jsonl" in info.sources
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"request": "x", "calls": [{"name": "run_tests", "arguments": {"fail_fast": "yes"}}]}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1: calls\[0\]\.arguments\.fail_fast"):
        generate_dataset(tmp_path / "ws", "d2", ["builtin:coding"], GenerateConfig(n=5), examples_file=bad)
    assert not (tmp_path / "ws" / "datasets" / "d2").exists()


def test_teacher_paraphrases_and_drops_lost_values(tools) -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        text = body["messages"][-1]["content"].split("Request: ", 1)[1]
        # every other answer loses the values (a bad paraphrase the generator must reject)
        out = f"Hey there — {text}" if len(seen) % 2 else "Do the thing with some values."
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": out}}]})

    teacher = Teacher(
        "http://teacher.test/v1", "t", client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    cfg = GenerateConfig(n=30, seed=2, kinds=["single"], teacher_share=1.0, teacher_tries=1)
    res = generate_examples(tools, cfg, teacher=teacher)
    assert seen and seen[0]["model"] == "t"
    assert len(seen) == res.teacher.asked  # one try each
    assert res.teacher is not None and res.teacher.kept > 0 and res.teacher.dropped_values_lost > 0
    assert sum("Hey there" in e.user_texts()[0] for e in res.examples) == res.teacher.kept
    assert not any("Do the thing" in e.user_texts()[0] for e in res.examples)


@pytest.mark.parametrize(("share", "no_call_share"), [(0.0, 1.0), (1.0, 0.0)])
def test_teacher_no_call_share_is_the_share_of_text_answers_rewritten(
    tools, share: float, no_call_share: float
) -> None:
    """teacher_no_call_share reaches the requests answered in text (near misses, a tool that is not
    offered) and only them; teacher_share reaches the calls' requests."""

    def handler(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["messages"][-1]["content"].split("Request: ", 1)[1]
        out = f"Plainly: {text}"
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": out}}]})

    teacher = Teacher("http://t.test/v1", "t", client=httpx.Client(transport=httpx.MockTransport(handler)))
    kinds = ["single", "no_call", "near_miss"]
    cfg = GenerateConfig(
        n=60, seed=1, kinds=kinds, teacher_share=share, teacher_no_call_share=no_call_share, teacher_tries=1
    )
    res = generate_examples(tools, cfg, teacher=teacher)
    rewritten = [e for e in res.examples if e.user_texts()[0].startswith("Plainly: ")]
    # the examples say which of their requests the teacher rewrote
    assert [e for e in res.examples if e.meta.teacher] == rewritten
    answered = {e.meta.kind for e in rewritten}
    assert rewritten and res.teacher is not None and res.teacher.kept == len(rewritten)
    if no_call_share:
        assert answered == {"no_call", "near_miss"} and not any(e.calls() for e in rewritten)
    else:
        assert answered == {"single"} and all(e.calls() for e in rewritten)
    # every request of that side went to the teacher (general-knowledge questions are not templates)
    side = ["near_miss"] if no_call_share else ["single"]
    assert res.teacher.asked >= sum(e.meta.kind in side for e in res.examples)


def test_teacher_retries_a_rewrite_that_lost_a_value_with_the_next_seed(tools) -> None:
    """With teacher_tries=2 a lost value is asked again (seed + 1) and the retry's rewrite is kept; a
    request whose every try fails is dropped once, under its last reason."""
    seeds: list[int] = []
    tries: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seeds.append(body["seed"])
        text = body["messages"][-1]["content"].split("Request: ", 1)[1]
        tries[text] = tries.get(text, 0) + 1
        # first tries lose the values; second tries keep them, except for every third request
        keeps = tries[text] == 2 and len(tries) % 3 != 0
        out = f"Retry: {text}" if keeps else "Do the thing with some values."
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": out}}]})

    teacher = Teacher("http://t.test/v1", "t", client=httpx.Client(transport=httpx.MockTransport(handler)))
    cfg = GenerateConfig(n=30, seed=4, kinds=["single"], teacher_share=1.0, teacher_tries=2)
    res = generate_examples(tools, cfg, teacher=teacher)
    st = res.teacher
    assert st is not None and st.kept > 0 and st.dropped_values_lost > 0
    assert st.kept_on_retry == st.kept and st.retries == st.asked == len(seeds) / 2
    assert st.asked == st.kept + st.dropped_values_lost + st.dropped_not_a_request + st.failed
    assert seeds[1::2] == [s + 1 for s in seeds[0::2]]
    assert sum(e.user_texts()[0].startswith("Retry: ") for e in res.examples) == st.kept


def test_teacher_that_keeps_failing_stops_generation_with_a_clear_error(tools) -> None:
    from tooltune.data.teacher import TeacherError

    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404, json={"error": "no such model"})

    teacher = Teacher("http://t.test/v1", "t", client=httpx.Client(transport=httpx.MockTransport(handler)))
    cfg = GenerateConfig(n=30, seed=4, kinds=["single"], teacher_share=1.0, teacher_tries=3)
    with pytest.raises(TeacherError, match=r"teacher at http://t\.test/v1 keeps failing .*404"):
        generate_examples(tools, cfg, teacher=teacher)
    assert len(calls) == 5  # a failed request is not retried; the fifth failure stops


def test_teacher_prompt_shows_worked_examples_then_the_request() -> None:
    from tooltune.data.teacher import SHOTS, SYSTEM, prompt

    msgs = prompt("Find the author of a book with title Dune.", ["Dune"])
    assert msgs[0] == {"role": "system", "content": SYSTEM}
    assert [m["role"] for m in msgs[1:-1]] == ["user", "assistant"] * len(SHOTS)
    assert msgs[2]["content"] == SHOTS[0][2]
    assert msgs[-1] == {
        "role": "user",
        "content": "Values: 'Dune'\nRequest: Find the author of a book with title Dune.",
    }


def test_teacher_keeps_only_paraphrases_that_read_as_requests(tools) -> None:
    """Outputs that keep every value but are code, a URL, several lines, the model's own answer or a
    request saying please twice are dropped and counted; plain questions and requests are kept."""
    replies = iter(
        [
            "```json\n{v}\n```",
            "GET https://api.example.com/?q={v}",
            "Sure!\nHere: {v}",
            "The answer for {v} is 42.",
            "Please look up {v} for me, please.",
            "What do I get for {v}?",
            "Look it up for {v}, please.",
        ]
        * 20
    )

    def handler(request: httpx.Request) -> httpx.Response:
        values = json.loads(request.content)["messages"][-1]["content"].split("\n")[0]
        v = " ".join(
            ast.literal_eval(x) for x in values.removeprefix("Values: ").split("; ") if x != "(none)"
        )
        out = next(replies).format(v=v)
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": out}}]})

    teacher = Teacher("http://t.test/v1", "t", client=httpx.Client(transport=httpx.MockTransport(handler)))
    res = generate_examples(
        tools,
        GenerateConfig(n=24, seed=5, kinds=["single"], teacher_share=1.0, teacher_tries=1),
        teacher=teacher,
    )
    stats = res.teacher
    assert stats is not None and stats.kept > 0 and stats.dropped_values_lost == 0
    good = sum(i % 7 >= 5 for i in range(stats.asked))  # the replies cycle: five bad, then two good
    assert (stats.kept, stats.dropped_not_a_request) == (good, stats.asked - good)
    texts = [e.user_texts()[0] for e in res.examples]
    assert sum(t.startswith(("What do I get for", "Look it up for")) for t in texts) == stats.kept
    assert not any(
        bad in t for t in texts for bad in ("```", "https://", "Here:", "The answer for", "Please look")
    )


def test_open_teacher_names_none_an_endpoint_or_the_model_itself(settings: Settings) -> None:
    from tooltune.data.teacher import TeacherError, open_teacher

    with open_teacher(None, model_path=None, settings=settings) as none:
        assert none is None
    with open_teacher("http://t.test/v1/", model_path=None, settings=settings, model="m") as url:
        assert url is not None and (url.base_url, url.model) == ("http://t.test/v1", "m")
    with pytest.raises(TeacherError, match="--teacher self needs a model"):
        with open_teacher("self", model_path=None, settings=settings):
            pass


@pytest.mark.slow
def test_cli_teacher_self_serves_the_model_while_generating(settings: Settings, tiny_model: Path) -> None:
    """--teacher self starts mlx_lm.server on --model, sends it the requests to rewrite and stops it;
    the dataset records who taught, the shares and the prompt version. (The tiny model's random words
    are all dropped by the value check, which is what must happen to them.)"""
    from tooltune.data.store import load_dataset
    from tooltune.data.teacher import TEACHER_PROMPT_VERSION
    from tooltune.workspace import Workspace

    args = ["data", "generate", "--tools", "builtin:coding", "--n", "8", "--kinds", "single", "--out", "T"]
    teach = ["--teacher", "self", "--teacher-share", "0.5", "--teacher-tries", "3"]
    teach += ["--teacher-no-call-share", "0.75"]
    r = _cli(*args, *teach, "--model", str(tiny_model), settings=settings)
    assert r.returncode == 0, r.stderr
    assert "self teacher started" in r.stderr and "mlx_server_stopped" in r.stderr
    taught = load_dataset(Workspace(settings.workspace), "T").stats["teacher"]
    assert taught["asked"] > 0 and taught["failed"] == 0
    dropped = ("dropped_values_lost", "dropped_not_a_request", "dropped_roles_swapped")
    assert taught["asked"] == taught["kept"] + sum(taught[d] for d in dropped)
    assert (taught["model"], taught["share"], taught["no_call_share"], taught["tries"], taught["prompt"]) == (
        str(tiny_model.resolve()),
        0.5,
        0.75,
        3,
        TEACHER_PROMPT_VERSION,
    )
    # the tiny model's rewrites all lose their values, so each request was asked 3 times
    assert taught["kept"] == 0 and taught["retries"] == 2 * taught["asked"]


def test_system_prompt_share_matches_serving(tools) -> None:
    """A share of conversations carries the serving system prompt (the agent's), so training sees what
    inference sends; the rest carry none, for clients that send no system prompt."""
    from tooltune.coding_tools import DEFAULT_INSTRUCTIONS

    res = generate_examples(tools, GenerateConfig(n=200, seed=5, system_prompt="agent", system_share=0.5))
    firsts = [ex.messages[0] for ex in res.examples]
    with_system = [m for m in firsts if m["role"] == "system"]
    assert all(m["content"] == DEFAULT_INSTRUCTIONS for m in with_system)
    assert 0.3 < len(with_system) / len(firsts) < 0.7
    # split pieces of one conversation keep its system message
    for ex in res.examples:
        assert sum(m["role"] == "system" for m in ex.messages) <= 1
    plain = generate_examples(tools, GenerateConfig(n=50, seed=5))
    assert not any(ex.messages[0]["role"] == "system" for ex in plain.examples)


def test_mix_weights_shape_the_kinds(tools) -> None:
    """A custom mix changes the share of each kind (e.g. few text answers for single-turn targets)."""
    from collections import Counter

    mix = {"single": 0.6, "choose": 0.3, "no_call": 0.1}
    res = generate_examples(tools, GenerateConfig(n=200, seed=2, split_turns=False, mix=mix))
    kinds = Counter(ex.meta.kind for ex in res.examples)
    assert set(kinds) <= set(mix)
    assert kinds["single"] > kinds["choose"] > kinds["no_call"] > 0
    with pytest.raises(DataError, match="unknown kind"):
        generate_examples(tools, GenerateConfig(n=5, mix={"bogus": 1.0}))


def test_split_pieces_of_one_conversation_are_not_deduplicated_against_each_other(
    tools, tmp_path: Path
) -> None:
    """A chain that calls the same tool twice alike: its pieces share the request and near-identical
    targets. Dropping the middle piece as a "duplicate" would leave its turn inside the last piece with
    no loss under mask_prompt; a piece that duplicates *another* conversation ends that conversation."""
    from tooltune.data.examples import Example, call_message

    def chain(request: str, n_calls: int) -> Example:
        msgs: list[dict] = [{"role": "user", "content": request}]
        for _ in range(n_calls):
            msgs += [call_message([("read_file", {"path": "src/main.py"})]), {"role": "tool", "content": "x"}]
        msgs.append({"role": "assistant", "content": "Done."})
        return Example(messages=msgs, tools=[tools[0].to_openai()])

    twice = chain("Read src/main.py twice to check it is stable.", 2)
    res = generate_examples(tools, GenerateConfig(n=3, seed=0), caller=[twice])
    assert [len(e.messages) for e in res.examples] == [2, 4, 6]
    assert res.dropped_duplicates == 0

    ask = "Read src/main.py and tell me what it does."
    first, again = chain(ask, 1), chain(ask, 2)
    res = generate_examples(tools, GenerateConfig(n=8, seed=0, kinds=["chitchat"]), caller=[first, again])
    kept = [len(e.messages) for e in res.examples if e.meta.kind == "caller"]
    assert kept == [2, 4]  # `again` is dropped from its first (duplicate) piece on, not just that piece
    assert res.dropped_duplicates == 1
    report = lint_items([(_write(tmp_path, res.examples), "ex.jsonl")], model_path=None)
    assert report.checks["loss"].status == "passed"


def test_parallel_fan_out_is_a_call_per_combination() -> None:
    """ "the ranking of the Lakers and the Bulls in 2019 and 2020" is four calls, said without brackets."""
    from tooltune.toolspec import ToolSpec

    ranking = ToolSpec(
        name="team_ranking",
        description="Get the ranking of a team in a season.",
        parameters={
            "type": "object",
            "properties": {
                "team": {"type": "string", "description": "The team name."},
                "season": {"type": "integer", "description": "The season year."},
                "metric": {"type": "string", "enum": ["points", "wins"]},
            },
            "required": ["team", "season"],
        },
    )
    res = generate_examples([ranking], GenerateConfig(n=200, seed=3, kinds=["parallel"]))
    fanned = 0
    for ex in res.examples:
        calls = [c["arguments"] for c in ex.calls()]
        text = ex.user_texts()[0]
        assert len(calls) >= 2 and "[" not in text
        varying = {k for k in calls[0] if len({json.dumps(c.get(k)) for c in calls}) > 1}
        if len(varying) == 2 and len(calls) == 4:  # the cross product of two values of two parameters
            fanned += 1
            assert len({json.dumps(c, sort_keys=True) for c in calls}) == 4
            assert set(calls[0]) == set(calls[1]) == set(calls[2]) == set(calls[3])
        for c in calls:
            for v in c.values():
                for forms in leaf_forms(v):
                    assert any(f in text for f in forms), (forms, text)
    assert fanned >= 5


def test_contrast_twins_repeat_a_refused_request_with_its_tool_offered(tools) -> None:
    """contrast_share=1: every refusal of a request whose tool is not offered is followed by its twin,
    the same words with that tool offered, answered with the call; the pair differs only in the tools."""
    cfg = GenerateConfig(
        n=80, seed=4, kinds=["no_call"], max_tools=3, system_prompt="Be brief.", contrast_share=1.0
    )
    res = generate_examples(tools, cfg)
    twins = [ex for ex in res.examples if ex.meta.kind == "contrast"]
    assert twins and res.counts["contrast"] == len(twins)
    refusals = {ex.user_texts()[-1]: ex for ex in res.examples if ex.meta.kind == "no_call"}
    for twin in twins:
        (call,) = twin.calls()
        name = call["name"]
        refusal = refusals[twin.user_texts()[-1]]  # the same words were refused ...
        assert name not in refusal.tool_names()  # ... when the tool was not offered
        assert name in twin.tool_names() and len(twin.tool_names()) <= 3
        assert set(refusal.tool_names()) - set(twin.tool_names()) <= {refusal.tool_names()[-1]}
        assert twin.messages[0] == refusal.messages[0]  # the system message goes with the pair
    # each twin comes right after its refusal (split pieces and twins share the dedup exemption)
    for i, ex in enumerate(res.examples):
        if ex.meta.kind == "contrast":
            assert res.examples[i - 1].user_texts() == ex.user_texts()
    assert "contrast" not in generate_examples(tools, cfg.model_copy(update={"contrast_share": 0.0})).counts


def test_near_miss_twins_ask_for_the_offered_tools_own_task_with_the_same_words(tools) -> None:
    """near_miss_contrast_share=1: a near miss ("delete the file ..." when the tool reads files) is
    followed by its twin asking for the tool's own task in the same words, the same tools offered,
    answered with that tool's call: the pair differs in the task words only."""
    cfg = GenerateConfig(
        n=60, seed=2, kinds=["near_miss"], max_tools=3, system_prompt="Be brief.", near_miss_contrast_share=1
    )
    res = generate_examples(tools, cfg)
    assert res.counts.get("contrast", 0) >= 10
    with_system = minimal = 0
    for i, twin in enumerate(res.examples):
        if twin.meta.kind != "contrast":
            continue
        near = res.examples[i - 1]
        assert near.meta.kind == "near_miss" and near.calls() == []
        (call,) = twin.calls()
        assert near.tool_names() == twin.tool_names() and call["name"] in near.tool_names()
        system = [m for m in near.messages if m["role"] == "system"]
        assert system == [m for m in twin.messages if m["role"] == "system"]  # it goes with the pair
        with_system += bool(system)
        said, asked = near.user_texts()[-1].split(), twin.user_texts()[-1].split()
        same = sum(b.size for b in difflib.SequenceMatcher(a=said, b=asked).get_matching_blocks())
        changed = len(said) + len(asked) - 2 * same  # words only one of them has
        assert changed >= 1
        minimal += changed <= 4  # the same wording choices are replayed; a wh-question can differ
        for v in call["arguments"].values():
            if isinstance(v, str):
                assert v in twin.user_texts()[-1]
    assert 0 < with_system < res.counts["contrast"]
    assert minimal >= 0.8 * res.counts["contrast"]
    assert (
        "contrast"
        not in generate_examples(tools, cfg.model_copy(update={"near_miss_contrast_share": 0})).counts
    )


def test_cli_contrast_share_and_mix_reach_the_generator(settings: Settings) -> None:
    from tooltune.data.store import load_dataset
    from tooltune.workspace import Workspace

    args = ["data", "generate", "--tools", "builtin:coding", "--n", "40", "--seed", "1", "--kinds", "no_call"]
    r = _cli(*args, "single", "--out", "C", "--contrast-share", "1", settings=settings)
    assert r.returncode == 0, r.stderr
    info = load_dataset(Workspace(settings.workspace), "C")
    assert info.stats["contrast_share"] == 1.0
    assert info.stats["counts"].get("contrast", 0) > 0
    r = _cli(*args[:-1], "near_miss", "--out", "N", "--near-miss-contrast-share", "1", settings=settings)
    assert r.returncode == 0, r.stderr
    paired = load_dataset(Workspace(settings.workspace), "N").stats
    assert paired["near_miss_contrast_share"] == 1.0 and paired["counts"].get("contrast", 0) > 0
    r = _cli(*args, "single", "--out", "P", settings=settings)
    assert r.returncode == 0, r.stderr
    plain = load_dataset(Workspace(settings.workspace), "P")
    assert plain.stats["phrasebook_share"] == 0.8  # the default, recorded: the tools have a phrasebook
    r = _cli(*args, "single", "--out", "W", "--phrasebook-share", "0.25", settings=settings)
    assert r.returncode == 0, r.stderr
    assert load_dataset(Workspace(settings.workspace), "W").stats["phrasebook_share"] == 0.25
    r = _cli(*args, "--out", "A", "--absent-tool-share", "0.1", settings=settings)
    assert r.returncode == 0, r.stderr
    assert load_dataset(Workspace(settings.workspace), "A").stats["absent_tool_share"] == 0.1
    assert "absent_tool_share" not in plain.stats
    r = _cli(*args, "--out", "Q", "--call-question-share", "0.9", settings=settings)
    assert r.returncode == 0, r.stderr
    assert load_dataset(Workspace(settings.workspace), "Q").stats["call_question_share"] == 0.9
    assert "call_question_share" not in plain.stats
    assert "contrast" not in plain.stats["counts"]
    assert "contrast_share" not in plain.stats and "near_miss_contrast_share" not in plain.stats
    r = _cli(*args, "single", "--out", "M", "--mix", '{"single": 1}', settings=settings)
    assert r.returncode == 0, r.stderr
    assert set(load_dataset(Workspace(settings.workspace), "M").stats["counts"]) == {"single"}
    r = _cli(*args, "--out", "B", "--mix", "{single: 1}", settings=settings)
    assert r.returncode != 0 and "--mix: not JSON" in r.stderr
    r = _cli(*args, "--out", "B", "--contrast-share", "2", settings=settings)
    assert r.returncode == 2 and "--contrast-share: Input should be less than or equal to 1" in r.stderr
    assert "Traceback" not in r.stderr


def test_call_question_share_asks_the_calls_as_questions(tools) -> None:
    """call_question_share=1: every call whose task reads as a question is asked as one (bar the "Given
    ..." openings); 0: none is; unset keeps the old datasets byte for byte (0.5, like text answers)."""
    base = GenerateConfig(n=150, seed=3, kinds=["single", "no_call"], max_tools=3)

    def asked(cfg: GenerateConfig, *, call: bool) -> tuple[int, int]:
        res = generate_examples(tools, cfg)
        texts = [e.user_texts()[-1] for e in res.examples if bool(e.calls()) == call]
        return sum(t.rstrip().endswith("?") for t in texts), len(texts)

    default = generate_examples(tools, base)
    same = generate_examples(tools, base.model_copy(update={"call_question_share": 0.5}))
    assert [e.messages for e in default.examples] == [e.messages for e in same.examples]
    hi_q, hi_n = asked(base.model_copy(update={"call_question_share": 1.0}), call=True)
    lo_q, lo_n = asked(base.model_copy(update={"call_question_share": 0.0}), call=True)
    mid_q, mid_n = asked(base, call=True)
    assert hi_n > 60 and lo_n > 60
    # "Can you ...?" commands end with "?" too, and not every task reads as a question: 21% -> 41% here
    assert hi_q / hi_n > mid_q / mid_n > lo_q / lo_n and hi_q / hi_n > lo_q / lo_n + 0.15
    # the text answers' requests are not asked differently
    text_q, text_n = asked(base.model_copy(update={"call_question_share": 1.0}), call=False)
    assert text_n > 10 and text_q < text_n


def test_the_coding_data_is_what_its_version_says() -> None:
    """The demo names its data by CODING_DATA_VERSION, so its measured data is reused under a newer
    generator. A change to the coding tools' data must bump that version (and this digest with it)."""
    import hashlib

    from tooltune.data.generate import generate_examples
    from tooltune.data.generate_config import CODING_DATA_VERSION, GenerateConfig
    from tooltune.data.tool_sources import load_tool_specs

    specs = load_tool_specs(["builtin:coding"])
    digests = {}
    for seed in (0, 1):
        res = generate_examples(specs, GenerateConfig(n=300, seed=seed))
        exs = res.examples if hasattr(res, "examples") else res
        digests[seed] = hashlib.sha256("".join(e.to_line() for e in exs).encode()).hexdigest()[:12]
    # and the quick demo's own settings (its mix, the agent's prompt, fewer tools), at a tenth of its size
    from tooltune.demo import DemoConfig, demo_generate_config

    quick = DemoConfig.preset(True)
    res = generate_examples(specs, demo_generate_config(quick, n=quick.n_examples // 10))
    exs = res.examples if hasattr(res, "examples") else res
    digests["quick"] = hashlib.sha256("".join(e.to_line() for e in exs).encode()).hexdigest()[:12]
    assert (CODING_DATA_VERSION, digests) == (
        "tooltune-data/13",
        {0: "19e931a75442", 1: "434ce8d0e05b", "quick": "5d5e9f926add"},
    )


def test_a_rewrite_may_not_say_please_more_than_a_request_does() -> None:
    from tooltune.data.teacher import says_please_more

    assert says_please_more("Please look up 5 for me, please.", "Look up 5.", ["5"])
    assert not says_please_more("Please look up 5.", "Look up 5.", ["5"])  # once is how people ask
    body = "Deployed, please verify."  # the value's own please is the user's text
    assert not says_please_more(f"Please comment on 306: {body}", f"comment on 306: {body}", ["306", body])
    assert says_please_more(f"Please, please comment on 306: {body}", f"comment on 306: {body}", [body])
