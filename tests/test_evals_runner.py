"""Runner against a fake OpenAI-compatible endpoint (httpx2.MockTransport): exact native vs lenient
scoring, request shape, fault handling, and resume without double counting."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import httpx2
import pytest

from tooltune.config import Settings
from tooltune.evals.runner import EvalInterrupted, load_results, rescore_run, resume_run, run_dir, run_suite
from tooltune.evals.suite import EvalCase, EvalSuite
from tooltune.workspace import Workspace

READ = {
    "name": "read_file",
    "description": "Read a file.",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}


def mk(
    cid: str, prompt: str, expected: Any, category: str = "simple", history: list | None = None
) -> EvalCase:
    msgs = (history or []) + [{"role": "user", "content": prompt}]
    return EvalCase(id=cid, category=category, messages=msgs, tools=[READ], expected=expected)


EXP = [{"read_file": {"path": ["a.py"]}}]
HISTORY = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "list"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "read_file", "arguments": {"path": "x"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_9", "name": "read_file", "content": "x contents"},
]
SUITE = EvalSuite(
    name="fake",
    hash="h",
    cases=[
        mk("native-ok", "p-native-ok", EXP),
        mk("fenced", "p-fenced", EXP),
        mk("wrong-arg", "p-wrong-arg", EXP),
        mk("bad-json", "p-bad-json", EXP),
        mk("irr-text-call", "p-irr-text-call", "no_call", "irrelevance"),
        mk("irr-ok", "p-irr-ok", "no_call", "irrelevance"),
        mk("rejected", "p-rejected", EXP),
        mk("multi", "p-multi", EXP, "multi_turn", HISTORY),
    ],
)


def completion(content: str | None = None, calls: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = [
            {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(calls)
        ]
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "fake",
        "choices": [{"index": 0, "finish_reason": "stop", "message": msg}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


ANSWERS = {
    "p-native-ok": completion(None, [("read_file", '{"path": "a.py"}')]),
    "p-fenced": completion('```json\n{"name": "read_file", "arguments": {"path": "a.py"}}\n```'),
    "p-wrong-arg": completion(None, [("read_file", '{"path": "b.py"}')]),
    "p-bad-json": completion(None, [("read_file", '{"path": "a.py"')]),
    "p-irr-text-call": completion('{"name": "read_file", "arguments": {"path": "a.py"}}'),
    "p-irr-ok": completion("I cannot help with that."),
    "p-multi": completion(None, [("read_file", '{"path": "a.py"}')]),
}


class FakeServer:
    """Records request bodies; can be told to refuse connections after N requests (a dying server)."""

    def __init__(self, die_after: int | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.die_after = die_after

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if self.die_after is not None and len(self.bodies) >= self.die_after:
            raise httpx2.ConnectError("connection refused", request=request)
        body = json.loads(request.content)
        self.bodies.append(body)
        prompt = body["messages"][-1]["content"]
        if prompt == "p-rejected":
            return httpx2.Response(400, json={"error": {"message": "bad tool schema"}})
        return httpx2.Response(200, json=ANSWERS[prompt])

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handler))


def run(ws: Workspace, fake: FakeServer, **kw: Any):
    async def go():
        return await run_suite(
            SUITE, ws=ws, base_url="http://fake/v1", model_name="fake-model", http_client=fake.client(), **kw
        )

    return anyio.run(go)


@pytest.fixture
def ws(settings: Settings) -> Workspace:
    return Workspace(settings.workspace).ensure()


def test_native_and_lenient_scored_exactly(ws: Workspace):
    fake = FakeServer()
    report = run(ws, fake, extra_body={"adapters": "/x/ad"}, concurrency=3, run_id="r1")
    by = {r.case_id: r for r in report.results}
    expect = {  # case: (native passed, native reason, lenient passed, lenient reason)
        "native-ok": (True, None, True, None),
        "fenced": (False, "unparsed_format", True, None),
        "wrong-arg": (False, "wrong_value", False, "wrong_value"),
        "bad-json": (False, "bad_json", False, "bad_json"),
        "irr-text-call": (True, None, False, "called_when_irrelevant"),
        "irr-ok": (True, None, True, None),
        "rejected": (False, "server_error", False, "server_error"),
        "multi": (True, None, True, None),
    }
    got = {
        cid: (
            r.native.passed,
            r.native.reason and str(r.native.reason),
            r.lenient.passed,
            r.lenient.reason and str(r.lenient.reason),
        )
        for cid, r in by.items()
    }
    assert got == expect
    assert by["rejected"].error_kind == "http_status" and "bad tool schema" in (by["rejected"].error or "")
    assert by["native-ok"].input_tokens == 11 and by["native-ok"].output_tokens == 7
    assert report.complete and report.n_results == 8
    assert report.overall.native_pass == 4 and report.overall.lenient_pass == 4
    irr = report.categories["irrelevance"]
    assert (irr.native_pass, irr.lenient_pass, irr.attempted, irr.no_call_category) == (2, 1, 1, True)
    assert report.reasons_native == {"unparsed_format": 1, "wrong_value": 1, "bad_json": 1, "server_error": 1}

    body = next(b for b in fake.bodies if b["messages"][-1]["content"] == "p-native-ok")
    assert body["model"] == "fake-model" and body["temperature"] == 0 and "seed" not in body
    assert body["adapters"] == "/x/ad" and body.get("max_completion_tokens", body.get("max_tokens")) == 256
    assert body["tools"][0]["function"]["parameters"] == READ["parameters"]  # verbatim, no strict mode
    multi = next(b for b in fake.bodies if b["messages"][-1]["content"] == "p-multi")
    roles = [m["role"] for m in multi["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert multi["messages"][2]["tool_calls"][0]["id"] == "call_9"
    assert multi["messages"][3]["tool_call_id"] == "call_9"

    d = run_dir(ws, "r1")
    assert len((d / "cases.jsonl").read_text().splitlines()) == 8
    saved = json.loads((d / "report.json").read_text())
    assert saved["overall"]["native_rate"] == 0.5
    assert "| irrelevance | 2 |" in (d / "report.md").read_text()


def test_a_tool_call_the_server_dropped_is_a_malformed_call_not_no_call(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
):
    """mlx_lm.server drops a <tool_call> it cannot parse (``"heat_capacity": 5J/K``, or one cut off by
    max_tokens) with its text: finish_reason "tool_calls" and no call, or "length" and nothing at all.
    The answer is a malformed call, also where no call is wanted; prose cut off by max_tokens is not."""

    def answer(content: str, finish: str) -> dict[str, Any]:
        out = completion(content)
        out["choices"][0]["finish_reason"] = finish
        return out

    for prompt, content, finish in [
        ("p-dropped", "", "tool_calls"),
        ("p-irr-dropped", "", "tool_calls"),
        ("p-cut", "", "length"),
        ("p-prose-cut", "Let me think about this at", "length"),
    ]:
        monkeypatch.setitem(ANSWERS, prompt, answer(content, finish))
    suite = EvalSuite(
        name="dropped",
        hash="d",
        cases=[
            mk("dropped", "p-dropped", EXP),
            mk("irr-dropped", "p-irr-dropped", "no_call", "irrelevance"),
            mk("cut", "p-cut", EXP),
            mk("prose-cut", "p-prose-cut", EXP),
        ],
    )
    fake = FakeServer()

    async def go():
        return await run_suite(
            suite, ws=ws, base_url="http://fake/v1", model_name="m", http_client=fake.client(), run_id="r-dr"
        )

    by = {r.case_id: r for r in anyio.run(go).results}
    assert [by[c].dropped_call for c in ("dropped", "irr-dropped", "cut", "prose-cut")] == [
        True,
        True,
        True,
        False,
    ]
    for cid in ("dropped", "cut"):
        assert (by[cid].native.reason, by[cid].lenient.reason) == ("bad_json", "bad_json")
        assert "could not parse" in by[cid].native.detail
        assert by[cid].attempted and "dropped" in by[cid].answer_text()
    assert by["prose-cut"].native.reason == "no_call_made"
    irr = by["irr-dropped"]
    assert irr.native.passed and (irr.lenient.passed, irr.lenient.reason) == (False, "called_when_irrelevant")
    # stored with the answer, so a rescore keeps the verdict
    rescored = {r.case_id: r for r in rescore_run(ws, "r-dr").results}
    assert rescored["dropped"].native.reason == "bad_json" and not rescored["irr-dropped"].lenient.passed


def test_seed_only_when_sampling(ws: Workspace):
    fake = FakeServer()
    run(ws, fake, temperature=0.7, seed=5, repeats=2, run_id="r-sample")
    seeds = Counter(b.get("seed") for b in fake.bodies)
    assert seeds == {5: 8, 6: 8} and all(b["temperature"] == 0.7 for b in fake.bodies)
    results = load_results(run_dir(ws, "r-sample") / "cases.jsonl")
    assert sorted(Counter(r.repeat for r in results).values()) == [8, 8]


def test_dying_server_then_resume_without_double_counting(ws: Workspace):
    dying = FakeServer(die_after=3)
    with pytest.raises(EvalInterrupted) as err:
        run(ws, dying, concurrency=1, run_id="r-die")
    assert "--resume r-die" in str(err.value)
    d = run_dir(ws, "r-die")
    partial = load_results(d / "cases.jsonl")
    finished = [r for r in partial if r.error_kind != "connection"]
    assert len(finished) == 3 and not err.value.report.complete
    # a kill mid-write leaves a torn line; resume must ignore it
    with (d / "cases.jsonl").open("a") as f:
        f.write('{"case_id": "fenced", "categ')

    healthy = FakeServer()

    async def go():
        return await resume_run(ws, "r-die", base_url="http://fake2/v1", http_client=healthy.client())

    report = anyio.run(go)
    assert report.complete and report.n_results == 8
    lines = (d / "cases.jsonl").read_text().splitlines()
    assert len(lines) == 8 and len({(json.loads(x)["case_id"], json.loads(x)["repeat"]) for x in lines}) == 8
    asked_before = {b["messages"][-1]["content"] for b in dying.bodies}
    asked_after = {b["messages"][-1]["content"] for b in healthy.bodies}
    assert not asked_before & asked_after and len(asked_before | asked_after) == 8
    assert json.loads((d / "run.json").read_text())["base_url"] == "http://fake2/v1"


def test_existing_run_id_refused(ws: Workspace):
    run(ws, FakeServer(), run_id="r-dup", limit=1)
    with pytest.raises(Exception, match="already exists"):
        run(ws, FakeServer(), run_id="r-dup")


def test_limit_is_per_category(ws: Workspace, tmp_path: Path):
    report = run(ws, FakeServer(), limit=1, run_id="r-lim")
    assert report.meta.n_cases == 3 and set(report.categories) == {"simple", "irrelevance", "multi_turn"}


def test_rescore_uses_recorded_answers(ws: Workspace):
    fake = FakeServer()
    first = run(ws, fake, run_id="r-rescore")
    # pretend an older scorer got the fenced case wrong: rescoring restores it without the model
    path = run_dir(ws, "r-rescore") / "cases.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    for row in rows:
        if row["case_id"] == "fenced":
            row["lenient"] = {"passed": False, "reason": "no_call_made", "detail": "old"}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n_requests = len(fake.bodies)
    again = rescore_run(ws, "r-rescore")
    assert len(fake.bodies) == n_requests
    assert again.overall.lenient_pass == first.overall.lenient_pass == 4
    assert again.overall.errors == 1  # the rejected case stays a server error


def test_runner_closes_the_client_it_made_and_leaves_a_given_one_open(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
):
    """An OpenAI client left open is closed later by openai's ``__del__`` on whatever event loop runs
    then, where its finished loop's transport raises "Event loop is closed" (seen in an MCP test)."""
    import socket

    from tooltune.evals import runner

    made: list[Any] = []
    real = runner.make_model

    def recording(*args: Any, **kwargs: Any) -> Any:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(runner, "make_model", recording)
    with socket.socket() as s:  # a port nobody listens on: every request is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def refused():
        return await run_suite(
            SUITE, ws=ws, base_url=f"http://127.0.0.1:{port}/v1", model_name="m", concurrency=1,
            max_consecutive_connection_errors=2, run_id="r-refused",
        )  # fmt: skip

    with pytest.raises(EvalInterrupted):
        anyio.run(refused)
    assert len(made) == 1 and made[0].client.is_closed()

    given = FakeServer().client()

    async def with_given():
        return await run_suite(
            SUITE, ws=ws, base_url="http://fake/v1", model_name="m", http_client=given, run_id="r-given"
        )

    assert anyio.run(with_given).complete
    assert not given.is_closed and not made[-1].client.is_closed()


class _PinnedServer:
    """What run_suite_on_server needs from a ModelServer: switch, pin, endpoint and adapter selection."""

    base_url, model_name = "http://fake/v1", "fake-model"

    def __init__(self) -> None:
        self.switched: list[str | None] = []

    @property
    def extra_body(self) -> dict[str, Any]:
        return {"adapters": "/ws/adapters/a1"}

    async def switch_adapter(self, name: str | None, record: bool = True) -> None:
        self.switched.append(name)

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[None]:
        yield


def test_run_suite_on_server_merges_extra_body_under_the_adapter_selection(ws: Workspace, monkeypatch):
    from tooltune.evals import service

    seen: dict[str, Any] = {}

    report = SimpleNamespace(complete=False)  # an incomplete run: nothing is recorded for "a1"

    async def fake_run_suite(suite: Any, **kw: Any) -> Any:
        seen.update(kw)
        return report

    monkeypatch.setattr(service, "run_suite", fake_run_suite)
    server = _PinnedServer()
    body = {"logit_bias": {"151657": 2.0}, "adapters": "/elsewhere"}  # a request field can't swap the adapter

    async def go() -> Any:
        return await service.run_suite_on_server(server, SUITE, ws=ws, adapter="a1", extra_body=body)

    assert anyio.run(go) is report
    assert server.switched == ["a1"]
    assert seen["extra_body"] == {"logit_bias": {"151657": 2.0}, "adapters": "/ws/adapters/a1"}
    seen.clear()
    anyio.run(lambda: service.run_suite_on_server(server, SUITE, ws=ws, adapter="a1"))
    assert seen["extra_body"] == {"adapters": "/ws/adapters/a1"}


def test_a_run_id_is_not_reused_for_another_model_or_adapter(ws: Workspace, monkeypatch):
    """bfcl_adapter.py's baseline id names the suite, not the model: asked for a 1.5B baseline in a
    workspace holding the 0.5B's, it must refuse instead of returning the 0.5B's answers."""
    from tooltune.errors import TooltuneError
    from tooltune.evals import service
    from tooltune.evals.results import RunMeta
    from tooltune.workspace import atomic_write_json

    resumed: list[str] = []

    async def fake_resume(ws: Workspace, run_id: str, **kw: Any) -> str:
        resumed.append(run_id)
        return "resumed"

    monkeypatch.setattr(service, "resume_run", fake_resume)
    d = run_dir(ws, "bfcl-s0-baseline-base")
    d.mkdir(parents=True)
    meta = RunMeta(
        run_id="bfcl-s0-baseline-base",
        suite="s",
        suite_hash="h",
        n_cases=1,
        model_name="/models/small",
        base_url="http://old/v1",
    )
    atomic_write_json(d / "run.json", meta)
    server = _PinnedServer()  # serves "fake-model"

    def go(adapter: str | None) -> Any:
        return anyio.run(
            lambda: service.run_suite_on_server(server, SUITE, ws=ws, adapter=adapter, run_id=meta.run_id)
        )

    with pytest.raises(TooltuneError, match="model /models/small and adapter none, not fake-model"):
        go(None)
    atomic_write_json(d / "run.json", meta.model_copy(update={"model_name": "fake-model"}))
    with pytest.raises(TooltuneError, match="adapter none, not fake-model with a1"):
        go("a1")
    assert resumed == [] and server.switched == []
    assert go(None) == "resumed" and resumed == [meta.run_id]  # same model and adapter: resumed


def test_a_run_id_is_not_reused_for_other_expected_answers(ws: Workspace, monkeypatch):
    """On-policy samples and `train improve`'s held-out runs reuse eval runs by a fixed id; when the judge
    of generated truth changed (optional parameters at a stated default pass since sampler version 2), the
    same id must not return answers scored by the old truth."""
    from tooltune.errors import TooltuneError
    from tooltune.evals import service
    from tooltune.evals.results import RunMeta
    from tooltune.workspace import atomic_write_json, atomic_write_text

    async def fake_resume(ws: Workspace, run_id: str, **kw: Any) -> str:
        return "resumed"

    monkeypatch.setattr(service, "resume_run", fake_resume)
    d = run_dir(ws, "heldout-base")
    d.mkdir(parents=True)
    meta = RunMeta(
        run_id="heldout-base", suite="fake", suite_hash="h", n_cases=8, model_name="fake-model", base_url="u"
    )
    atomic_write_json(d / "run.json", meta)
    atomic_write_text(d / "suite.jsonl", SUITE.to_jsonl())

    def go(suite: EvalSuite, limit: int | None = None) -> Any:
        return anyio.run(
            lambda: service.run_suite_on_server(
                _PinnedServer(), suite, ws=ws, run_id="heldout-base", limit=limit
            )
        )

    assert go(SUITE) == "resumed"  # the same cases: resumed
    wider = SUITE.cases[0].model_copy(update={"expected": [{"read_file": {"path": ["x"], "start": ["", 1]}}]})
    with pytest.raises(TooltuneError, match="other cases or expected answers of suite 'fake'"):
        go(SUITE.model_copy(update={"cases": [wider, *SUITE.cases[1:]]}))
    with pytest.raises(TooltuneError, match="other cases"):
        go(SUITE, limit=1)  # fewer cases than the run was made for


def test_a_complete_adapter_run_is_recorded_in_its_registry_entry(
    ws: Workspace, tiny_model: Path, tmp_path: Path, monkeypatch
):
    """Whichever skin runs it (CLI eval, demo, MCP run_eval), `adapters list` shows the adapter's latest
    complete score per suite; baselines, unknown adapters and incomplete runs leave the registry alone."""
    from test_adapters_registry import make_lora_adapter, record_for

    from tooltune.adapters.registry import AdapterRegistry
    from tooltune.evals import service

    registry = AdapterRegistry(ws)
    registry.register("a1", make_lora_adapter(tiny_model, tmp_path / "src"), record_for(tiny_model))
    fake = FakeServer()

    async def through_fake(suite: Any, **kw: Any) -> Any:
        return await run_suite(suite, http_client=fake.client(), **kw)

    monkeypatch.setattr(service, "run_suite", through_fake)
    server = _PinnedServer()

    def go(adapter: str | None, run_id: str, **kw: Any) -> Any:
        return anyio.run(
            lambda: service.run_suite_on_server(server, SUITE, ws=ws, adapter=adapter, run_id=run_id, **kw)
        )

    go(None, "base")
    go("not-registered", "other")
    assert registry.get("a1").eval_scores == {}
    report = go("a1", "tuned")
    assert report.complete and report.overall.n == 8
    assert registry.get("a1").eval_scores == {
        "fake": {
            "overall": {"native": report.overall.native_rate, "lenient": report.overall.lenient_rate},
            "n": 8,
            "limit": None,
            "run_id": "tuned",
        }
    }
    assert report.overall.native_pass == 4  # the scores are the run's, not zeros
    go("a1", "tuned-lim", limit=1)  # the latest complete run of the suite wins
    assert registry.get("a1").eval_scores["fake"]["run_id"] == "tuned-lim"
    assert registry.get("a1").eval_scores["fake"]["limit"] == 1
    registry.update_eval_scores("a1", {})  # merging nothing keeps it
    go("a1", "tuned")  # reused as it is, and recorded again
    assert registry.get("a1").eval_scores["fake"]["run_id"] == "tuned"
    go("a1", "sampled", temperature=0.8, seed=1)  # answers sampled to train on: not a score of the adapter
    assert registry.get("a1").eval_scores["fake"]["run_id"] == "tuned"


def test_a_rerun_with_the_same_run_id_asks_the_cases_the_server_did_not_answer(
    ws: Workspace, monkeypatch
) -> None:
    """A run whose every case has a result is complete, but a case that timed out was never answered:
    run_suite_on_server with the same run id (resumable pipelines) asks it again instead of reusing it."""
    from tooltune.evals import runner, service

    asked: Counter[str] = Counter()

    def handler(request: httpx2.Request) -> httpx2.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        asked[prompt] += 1
        if prompt == "p-wrong-arg" and asked[prompt] == 1:
            raise httpx2.ReadTimeout("no answer in time", request=request)
        return FakeServer().handler(request)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    real_run, real_resume = runner.run_suite, runner.resume_run
    monkeypatch.setattr(service, "run_suite", lambda suite, **kw: real_run(suite, http_client=client, **kw))
    monkeypatch.setattr(service, "resume_run", lambda *a, **kw: real_resume(*a, http_client=client, **kw))

    def go() -> Any:
        return anyio.run(lambda: service.run_suite_on_server(_PinnedServer(), SUITE, ws=ws, run_id="flaky"))

    first = go()
    assert (
        first.complete and next(r for r in first.results if r.case_id == "wrong-arg").error_kind == "timeout"
    )
    second = go()
    assert asked["p-wrong-arg"] == 2 and sum(asked.values()) == len(SUITE.cases) + 1  # only that case again
    assert next(r for r in second.results if r.case_id == "wrong-arg").error is None
    third = go()  # every case answered: reused as it is
    assert sum(asked.values()) == len(SUITE.cases) + 1 and third.n_results == second.n_results


def test_shared_run_tries_a_failing_case_once_per_endpoint_and_finishes(ws: Workspace):
    """A case every endpoint times out on is recorded after one try on each (as one server records it),
    not passed back and forth until both healthy endpoints count as stopped."""
    asked: Counter[tuple[str, str]] = Counter()

    def handler(request: httpx2.Request) -> httpx2.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        asked[request.url.host, prompt] += 1
        if prompt == "p-wrong-arg":
            raise httpx2.ReadTimeout("no answer in time", request=request)
        return FakeServer().handler(request)

    async def go():
        return await run_suite(
            SUITE, ws=ws, base_url=["http://a/v1", "http://b/v1"], model_name="m", concurrency=1,
            max_consecutive_connection_errors=2, run_id="r-slow-case",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        )  # fmt: skip

    report = anyio.run(go)
    assert report.complete and report.n_results == len(SUITE.cases)
    slow = next(r for r in report.results if r.case_id == "wrong-arg")
    assert slow.error_kind == "timeout"
    assert asked["a", "p-wrong-arg"] == asked["b", "p-wrong-arg"] == 1
    assert all(r.error is None for r in report.results if r.case_id not in ("wrong-arg", "rejected"))
    # one request per case, plus the slow case's second try; both endpoints answered part of the run
    assert sum(asked.values()) == len(SUITE.cases) + 1 and {host for host, _ in asked} == {"a", "b"}
    d = run_dir(ws, "r-slow-case")  # the reports name the endpoints the run was shared between
    assert "shared between 2 endpoints: http://a/v1, http://b/v1" in (d / "report.md").read_text()
    assert "<code>http://b/v1</code>" in (d / "report.html").read_text()

    def refused(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    async def dead():
        return await run_suite(
            SUITE, ws=ws, base_url=["http://c/v1", "http://d/v1"], model_name="m", concurrency=1,
            max_consecutive_connection_errors=2, run_id="r-all-dead",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(refused)),
        )  # fmt: skip

    with pytest.raises(EvalInterrupted, match="http://c/v1 and http://d/v1 stopped answering") as err:
        anyio.run(dead)
    assert 0 < err.value.report.n_results < len(SUITE.cases)  # the rest is left for --resume
    assert all(r.error_kind == "connection" for r in err.value.report.results)
