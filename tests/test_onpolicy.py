"""On-policy samples (issue 36): requests of a dataset as eval cases, the model's own answers sampled and
judged, and the training data picked from them (rejection-sampled SFT, preference pairs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tooltune.config import Settings
from tooltune.data.examples import DataError, Example, ExampleMeta, call_message
from tooltune.data.onpolicy import (
    PickConfig,
    PreferencePair,
    Sample,
    SampleConfig,
    SampledRequest,
    SamplesError,
    _summary,
    always_right_requests,
    decision_direction,
    example_case,
    load_samples,
    pick_training_data,
    preference_pairs,
    rejection_examples,
    request_split,
    requests_suite,
    save_samples,
)
from tooltune.data.store import DatasetMeta, save_dataset, split_of
from tooltune.errors import WorkspaceError
from tooltune.evals.scoring import RawCall, score_case
from tooltune.workspace import Workspace

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "start_line": {"type": "integer"},
                    "options": {"type": "object", "properties": {"encoding": {"type": "string"}}},
                },
                "required": ["path"],
            },
        },
    }
]


def call_example(kind: str = "single", **args: Any) -> Example:
    return Example(
        messages=[
            {"role": "user", "content": f"show me {args.get('path', 'a file')}"},
            call_message([("read_file", args)]),
        ],
        tools=TOOLS,
        meta=ExampleMeta(kind=kind, source="test"),
    )


def text_example() -> Example:
    return Example(
        messages=[
            {"role": "user", "content": "what is a monad?"},
            {"role": "assistant", "content": "A way to chain computations."},
        ],
        tools=TOOLS,
        meta=ExampleMeta(kind="no_call", source="test"),
    )


def test_a_call_example_becomes_a_case_that_its_own_answer_passes_and_others_fail() -> None:
    ex = call_example(path="src/app.py", start_line=3, options={"encoding": "utf-8"})
    case = example_case(ex, "c0")
    assert case.messages == ex.messages[:1] and case.category == "single"
    assert case.expected == [
        {"read_file": {"path": ["src/app.py"], "start_line": [3], "options": [{"encoding": ["utf-8"]}]}}
    ]
    right = [
        RawCall(
            name="read_file",
            arguments={"path": "src/app.py", "start_line": 3, "options": {"encoding": "utf-8"}},
        )
    ]
    assert score_case(case, right, "").native.passed
    wrong = [
        RawCall(
            name="read_file",
            arguments={"path": "src/app.py", "start_line": 4, "options": {"encoding": "utf-8"}},
        )
    ]
    assert score_case(case, wrong, "").native.reason == "wrong_value"
    assert score_case(case, [], "I can't do that.").native.reason == "no_call_made"


def test_an_optional_parameter_the_truth_leaves_out_passes_at_its_stated_default_only() -> None:
    """As BFCL's possible answers: an optional parameter the request did not ask for may be left out or set
    to the default its schema states. Judged wrong before (extra_param), which taught DPO and rejection
    SFT on the H100 to drop arguments (simple_python "missing parameter" 9 -> 45)."""
    tool = {
        "type": "function",
        "function": {
            "name": "get_events",
            "description": "Religious events of a century.",
            "parameters": {
                "type": "object",
                "properties": {
                    "century": {"type": "integer", "description": "The century."},
                    "count": {"type": "integer", "description": "Number of events to return. Default is 5."},
                    "sort_by": {
                        "type": "string",
                        "description": "Order of sorting.",
                        "default": "chronological",
                    },
                    "region": {"type": "string", "description": "Where the events happened."},
                },
                "required": ["century"],
            },
        },
    }
    ex = Example(
        messages=[
            {"role": "user", "content": "events of the 12th century"},
            call_message([("get_events", {"century": 12})]),
        ],
        tools=[tool],
        meta=ExampleMeta(kind="single", source="test"),
    )
    case = example_case(ex, "c0")

    def verdict(**args: Any) -> str | None:
        return score_case(case, [RawCall(name="get_events", arguments=args)], "").native.reason

    assert verdict(century=12) is None
    assert verdict(century=12, count=5, sort_by="chronological") is None
    assert verdict(century=12, count=7) == "wrong_value"  # not what was asked, not the default
    assert verdict(century=12, region="Europe") == "wrong_value"  # no stated default: leave it out
    assert verdict(count=5) == "missing_param"
    assert verdict(century=12, colour="red") == "extra_param"  # not in the schema at all


def test_left_out_parameters_follow_the_scorers_spec_and_bad_tools_stay_a_data_error() -> None:
    """Two tools of one name: the scorer judges by the last, so the defaults come from it too. A tool the
    scorer cannot read is a DataError (the request is skipped), not a crash of the whole sampling."""

    def tool(**props: Any) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object", "properties": props}},
        }

    twice = [tool(x={"type": "integer"}), tool(y={"type": "integer", "description": "Default is 3."})]
    ex = Example(messages=[{"role": "user", "content": "f"}, call_message([("f", {})])], tools=twice)
    assert example_case(ex, "c").expected == [{"f": {"y": ["", 3]}}]
    broken = Example(messages=ex.messages, tools=[{"name": "f", "parameters": "oops"}])
    with pytest.raises(DataError, match="parameters"):
        example_case(broken, "c")


def test_a_text_answer_expects_no_call_and_bad_examples_are_named_and_skipped() -> None:
    case = example_case(text_example(), "t0")
    assert case.expects_no_call
    assert score_case(case, [RawCall(name="read_file", arguments={"path": "x"})], "").native.reason == (
        "called_when_irrelevant"
    )
    no_answer = Example(messages=[{"role": "user", "content": "hi"}], tools=TOOLS)
    with pytest.raises(DataError, match="no assistant answer"):
        example_case(no_answer, "x")
    bad_args = call_example()
    bad_args.messages[1]["tool_calls"][0]["function"]["arguments"] = "{not json"
    with pytest.raises(DataError, match="not JSON"):
        example_case(bad_args, "x")
    suite, by_id, skipped = requests_suite(
        [call_example(path="a"), no_answer, text_example()], name="s", id_prefix="train"
    )
    assert [c.id for c in suite.cases] == ["train-0", "train-2"] and set(by_id) == {"train-0", "train-2"}
    assert [(s.index, "no assistant answer" in s.why) for s in skipped] == [(1, True)]


def _sample(
    native: bool, *, calls: list[dict[str, Any]] | None = None, text: str = "", reason: str | None = None
) -> Sample:
    return Sample(
        text=text, calls=calls or [], native=native, lenient=native, reason=reason, attempted=bool(calls)
    )


def _requests() -> list[SampledRequest]:
    right = {"name": "read_file", "arguments": '{"path": "src/app.py"}'}  # the server's JSON text
    wrong_value = {"name": "read_file", "arguments": {"path": "src/main.py"}}
    return [
        # sometimes right: own answer chosen; its wrong value and refusal make pairs
        SampledRequest(
            id="a",
            kind="single",
            example=call_example(path="src/app.py"),
            expects_no_call=False,
            samples=[
                _sample(True, calls=[right]),
                _sample(False, calls=[wrong_value], reason="wrong_value"),
                _sample(False, text="I cannot read files.", reason="no_call_made"),
            ],
        ),
        # never right: the truth is the chosen answer
        SampledRequest(
            id="b",
            kind="single",
            example=call_example(path="README.md"),
            expects_no_call=False,
            samples=[_sample(False, text="Sure!", reason="no_call_made")] * 2,
        ),
        # always right: no pair; over-call cases come from the no-call request
        SampledRequest(
            id="c",
            kind="no_call",
            example=text_example(),
            expects_no_call=True,
            samples=[
                _sample(True, text="A monad chains computations."),
                _sample(
                    False,
                    calls=[{"name": "read_file", "arguments": {"path": "monad.md"}}],
                    reason="called_when_irrelevant",
                ),
                _sample(False, calls=[{"name": "read_file", "arguments": "{broken"}], reason="bad_json"),
            ],
        ),
    ]


def test_rejection_keeps_own_correct_answers_and_the_truth_where_none_was_right() -> None:
    examples, where = rejection_examples(_requests())
    assert where == {"own": 2, "truth": 1}
    by_request = {e.messages[0]["content"]: e for e in examples}
    own = by_request["show me src/app.py"]
    # the sampled JSON text became an object, as the generator writes calls
    assert own.messages[-1]["tool_calls"][0]["function"] == {
        "name": "read_file",
        "arguments": {"path": "src/app.py"},
    }
    assert own.meta.source == "onpolicy:own"
    truths = [e for e in examples if e.meta.source == "onpolicy:truth"]
    assert len(truths) == 1 and truths[0].messages[-1]["tool_calls"][0]["function"]["arguments"] == {
        "path": "README.md"
    }
    assert by_request["what is a monad?"].messages[-1] == {
        "role": "assistant",
        "content": "A monad chains computations.",
    }
    none_kept, where = rejection_examples(_requests(), truth_where_none=False)
    assert where == {"own": 2, "dropped": 1} and len(none_kept) == 2


def test_pairs_put_a_correct_answer_against_the_models_own_wrong_one_per_reason() -> None:
    pairs, counts = preference_pairs(_requests(), per_request=2, max_share=1.0)
    assert counts == {
        "called_when_irrelevant": 1,
        "no_call_made": 2,
        "wrong_value": 1,
        "skipped_unrenderable": 1,
    }
    for p in pairs:
        assert p.chosen != p.rejected and p.messages[-1]["role"] == "user"
    refusal_b = next(p for p in pairs if p.id == "b")
    assert not refusal_b.chosen_is_own and refusal_b.chosen["tool_calls"][0]["function"]["arguments"] == {
        "path": "README.md"
    }
    assert refusal_b.rejected == {"role": "assistant", "content": "Sure!"}
    over_call = next(p for p in pairs if p.reason == "called_when_irrelevant")
    assert over_call.chosen_is_own and over_call.chosen["content"] == "A monad chains computations."
    assert over_call.rejected["tool_calls"][0]["function"]["name"] == "read_file"
    # no reason may fill more than max_share of the pairs while others have some
    capped, counts = preference_pairs(_requests(), per_request=2, max_share=0.25)
    assert max(v for k, v in counts.items() if k != "skipped_unrenderable") == 1 and len(capped) == 3


def _decision_requests(refusals: int, over_calls: int, values: int) -> list[SampledRequest]:
    """Requests whose wrong answers push the call decision: ``refusals`` call requests answered in text,
    ``over_calls`` no-call requests answered with a call, ``values`` call requests with a wrong value."""
    rs = [
        SampledRequest(
            id=f"refused{i}", kind="single", example=call_example(path=f"src/r{i}.py"), expects_no_call=False,
            samples=[_sample(False, text="I can't.", reason="no_call_made")],
        )
        for i in range(refusals)
    ]  # fmt: skip
    rs += [
        SampledRequest(
            id=f"over{i}", kind="no_call", example=text_example(), expects_no_call=True,
            samples=[_sample(False, calls=[{"name": "read_file", "arguments": {"path": f"m{i}.md"}}],
                             reason="called_when_irrelevant")],
        )
        for i in range(over_calls)
    ]  # fmt: skip
    rs += [
        SampledRequest(
            id=f"value{i}", kind="single", example=call_example(path=f"src/v{i}.py"), expects_no_call=False,
            samples=[_sample(False, calls=[{"name": "read_file", "arguments": {"path": "x.py"}}],
                             reason="wrong_value")],
        )
        for i in range(values)
    ]  # fmt: skip
    return rs


def test_balanced_pairs_push_the_call_decision_as_often_each_way() -> None:
    """The 1.5B's DPOP pairs preferred a call to its silence 43 times and silence to its call 28 times,
    and it came to call on 26 more irrelevance questions. Balanced, the larger side is cut to the smaller
    (a random subset); pairs where both sides call all stay."""
    requests = _decision_requests(refusals=6, over_calls=2, values=3)
    pairs, counts = preference_pairs(requests, max_share=1.0)
    assert [decision_direction(p) for p in pairs].count("to_call") == 6
    balanced, counts = preference_pairs(requests, max_share=1.0, balanced_decision=True)
    ways = [decision_direction(p) for p in balanced]
    assert (ways.count("to_call"), ways.count("to_text"), ways.count(None)) == (2, 2, 3)
    assert counts == {
        "called_when_irrelevant": 2,
        "no_call_made": 2,
        "wrong_value": 3,
        "dropped_to_balance": 4,
    }
    assert {p.id for p in balanced} >= {"over0", "over1", "value0", "value1", "value2"}
    # which refusals stay is the seed's choice
    kept = {
        frozenset(p.id for p in preference_pairs(requests, max_share=1.0, balanced_decision=True, seed=s)[0])
        for s in range(8)
    }
    assert len(kept) > 1
    # pairs that all push one way are all dropped: balanced, the pairs do not move the decision
    one_way, counts = preference_pairs(_decision_requests(4, 0, 1), max_share=1.0, balanced_decision=True)
    assert [p.id for p in one_way] == ["value0"] and counts["dropped_to_balance"] == 4
    # an over-call written as text (no native call) pushes toward text all the same
    as_text = SampledRequest(
        id="over-text", kind="no_call", example=text_example(), expects_no_call=True,
        samples=[_sample(False, text='read_file({"path": "m.md"})', reason="called_when_irrelevant")],
    )  # fmt: skip
    [pair], _ = preference_pairs([as_text])
    assert not pair.rejected.get("tool_calls") and decision_direction(pair) == "to_text"
    # already balanced: the same pairs as without it
    even = _decision_requests(2, 2, 1)
    assert preference_pairs(even, balanced_decision=True) == preference_pairs(even)


def test_a_balanced_pick_writes_balanced_pairs_and_refuses_rejection_data(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    _samples_set(ws, _decision_requests(refusals=4, over_calls=2, values=2))
    picked = pick_training_data(ws, "s", "pairs", "p", balanced_decision=True)
    assert picked.picked["dropped_to_balance"] == 2
    folder = ws.datasets / "p"
    rows = [
        json.loads(line)
        for f in ("train", "valid")
        for line in (folder / f"{f}.jsonl").read_text().splitlines()
    ]
    ways = [decision_direction(PreferencePair.model_validate(r)) for r in rows]
    assert ways.count("to_call") == ways.count("to_text") == 2
    assert json.loads((folder / "dataset.json").read_text())["extra"]["per_reason"]["dropped_to_balance"] == 2
    with pytest.raises(SamplesError, match="method 'pairs'"):
        pick_training_data(ws, "s", "rejection", "r", balanced_decision=True)
    one_way = Workspace(tmp_path / "one-way").ensure()
    _samples_set(one_way, _decision_requests(refusals=3, over_calls=0, values=0))
    with pytest.raises(SamplesError, match="its 3 pairs all push the call decision one way"):
        pick_training_data(one_way, "s", "pairs", "p", balanced_decision=True)
    # the CLI's `data pick --balanced-decision` is the same pick
    env = {**os.environ, "TOOLTUNE_HOME": str(ws.root), "TOOLTUNE_CACHE": str(tmp_path / "cache")}
    cli = [sys.executable, "-m", "tooltune", "data", "pick", "s", "--method", "pairs", "--out", "q"]
    done = subprocess.run([*cli, "--balanced-decision"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "'dropped_to_balance': 2" in done.stdout
    assert "train on them: tooltune train --dataset q --method dpo" in done.stdout
    assert (ws.datasets / "q" / "train.jsonl").read_text() == (folder / "train.jsonl").read_text()
    own = subprocess.run([*cli[:-4], "--method", "rejection", "--out", "r3"], capture_output=True, text=True,
                         env=env, timeout=120)  # fmt: skip
    assert "train on them: tooltune train --dataset r3 --method rejection" in own.stdout, own.stderr
    refused = subprocess.run(
        [*cli[:-4], "--method", "rejection", "--out", "r2", "--balanced-decision"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "balanced_decision balances preference pairs: it needs method 'pairs'" in refused.stderr
    assert "--value" not in refused.stderr  # the two options together, not one flag, are at fault


def test_the_pick_options_are_declared_once_for_the_cli_mcp_and_improve() -> None:
    from tooltune.training.improve import ImproveConfig

    assert repr(ImproveConfig.model_fields["balanced_decision"]) == repr(
        PickConfig.model_fields["balanced_decision"]
    )
    with pytest.raises(ValueError, match="it needs method 'pairs'"):
        PickConfig(method="rejection", balanced_decision=True)


def test_requests_every_sample_got_right_are_kept_with_their_truth() -> None:
    """No pair holds a request the model always got right, so the answer check asks these: only they can
    show a preference run breaking what the model already did right. Each keeps the truth its samples
    were judged against, so the check judges a greedy answer the same way."""
    right = {"name": "read_file", "arguments": '{"path": "src/ok.py"}'}
    always = [
        SampledRequest(
            id="call",
            kind="single",
            example=call_example(path="src/ok.py"),
            expects_no_call=False,
            samples=[_sample(True, calls=[right])] * 3,
        ),
        SampledRequest(
            id="text",
            kind="no_call",
            example=text_example(),
            expects_no_call=True,
            samples=[_sample(True, text="A monad chains computations.")] * 2,
        ),
        SampledRequest(  # never sampled: nothing says it was right
            id="unsampled", kind="single", example=call_example(path="x"), expects_no_call=False, samples=[]
        ),
    ]
    kept = always_right_requests(_requests() + always)  # _requests(): each got something wrong
    assert [(r.id, r.kind) for r in kept] == [("call", "single"), ("text", "no_call")]
    call, text = kept
    assert call.messages == [{"role": "user", "content": "show me src/ok.py"}] and call.tools == TOOLS
    assert call.answer == call_example(path="src/ok.py").messages[-1]
    assert text.answer == {"role": "assistant", "content": "A way to chain computations."}  # the truth
    case = example_case(Example(messages=[*call.messages, call.answer], tools=call.tools), "c")
    assert score_case(case, [RawCall(name="read_file", arguments={"path": "src/ok.py"})], "").native.passed


def test_a_samples_set_is_immutable_and_content_addressed(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    meta: dict[str, Any] = dict(
        dataset="d",
        dataset_hash="sha256:x",
        model="m",
        adapter=None,
        config=SampleConfig(k=3),
        eval_run="samples-s",
    )
    info = save_samples(ws, "s", _requests(), **meta)
    assert info.counts["requests"] == 3 and info.counts["requests_never_right"] == 1
    assert info.reasons["no_call_made"] == 3 and info.per_kind["single"]["never_right"] == 1
    assert save_samples(ws, "s", _requests(), **meta).hash == info.hash  # same content: the same set
    with pytest.raises(DataError, match="different content"):
        save_samples(ws, "s", _requests()[:2], **meta)
    loaded, requests = load_samples(ws, "s")
    assert loaded.hash == info.hash and [r.id for r in requests] == ["a", "b", "c"]
    with (loaded.path / "samples.jsonl").open("a") as f:  # type: ignore[operator]
        f.write("{not a request\n")
    assert len(load_samples(ws, "s")[1]) == 3  # the bad line is skipped, the rest kept
    with pytest.raises(DataError, match="not found"):
        load_samples(ws, "nope")


def _train_split_requests(n: int) -> list[SampledRequest]:
    """``n`` requests sampled from a dataset's train split: their examples' groups all hash to train."""
    right = {"name": "read_file", "arguments": {"path": "x"}}
    out: list[SampledRequest] = []
    i = 0
    while len(out) < n:
        ex = call_example(path="x")
        ex.meta.group = f"conversation-{i}"
        i += 1
        if split_of(ex) == "train":
            samples = [_sample(True, calls=[right]), _sample(False, text="no", reason="no_call_made")]
            rq = SampledRequest(
                id=f"train-{len(out)}", kind="single", example=ex, expects_no_call=False, samples=samples
            )
            out.append(rq)
    return out


def _samples_set(ws: Workspace, requests: list[SampledRequest]) -> str:
    meta: dict[str, Any] = dict(
        dataset="d", dataset_hash="sha256:x", model="m", adapter=None, config=SampleConfig(k=2), eval_run="e"
    )
    return save_samples(ws, "s", requests, **meta).hash


def test_rejection_data_from_one_split_gets_a_validation_split_of_its_own(tmp_path: Path) -> None:
    """Requests sampled from a dataset's train split all hash to train by their own split rule; the H100's
    rejection run got 299 train examples and 1 validation example so. Picked data is split by request."""
    ws = Workspace(tmp_path / "ws").ensure()
    requests = _train_split_requests(60)
    digest = _samples_set(ws, requests)
    picked = pick_training_data(ws, "s", "rejection", "r")
    groups = [rq.example.meta.group or "" for rq in requests]
    want_valid = {g for g in groups if request_split(digest, g) == "valid"}
    valid = [json.loads(line) for line in (ws.datasets / "r" / "valid.jsonl").read_text().splitlines()]
    assert {v["meta"]["group"] for v in valid} == want_valid and len(want_valid) >= 3
    assert picked.counts == {"train": 60 - len(want_valid), "valid": len(want_valid), "test": 0}


@pytest.mark.slow
def test_rejection_training_is_sft_on_the_picked_answers_with_the_answer_check(
    settings: Settings, tiny_model: Path
) -> None:
    """`tooltune train --method rejection`: supervised steps on a rejection pick, recorded as such, with the
    answer check the other methods that learn from the model's own answers have (rejection SFT lost 41
    irrelevance cases on the H100 with no check to stop it)."""
    from tooltune.jobs import JobStore
    from tooltune.training import runs
    from tooltune.training.train_config import TrainConfig

    ws = Workspace(settings.workspace).ensure()
    _samples_set(ws, _train_split_requests(24))
    picked = pick_training_data(ws, "s", "rejection", "r")
    cfg = TrainConfig(
        model=str(tiny_model), dataset="r", method="rejection", num_layers=2, rank=4, iters=4, batch_size=2,
        steps_per_report=2, val_batches=1, answer_check=4,
    )  # fmt: skip
    job = runs.start_training(cfg, settings, name="rej")
    job = JobStore(ws).wait(job.id, timeout=600, poll=0.3)
    assert job.status == "succeeded", job.error
    run = runs.get_run(settings, job.id)
    method = run.applied["method"]
    assert (method["name"], method["examples"], method["picked"]) == (
        "rejection",
        picked.counts["train"],
        picked.picked,
    )
    assert method["answer_check"]["requests"] > 0 and "worse" in method["answer_check"]
    assert run.registered


def test_a_samples_set_judged_by_an_older_rule_is_kept_with_a_warning(tmp_path: Path) -> None:
    """Asked again under its name (a resumed improve round or bench run), a set sampled before optional
    parameters at a stated default passed is returned as it is, and the log says it was judged so."""
    import anyio
    from structlog.testing import capture_logs

    from tooltune.data.onpolicy import SAMPLER_VERSION, sample_dataset

    ws = Workspace(tmp_path / "ws").ensure()
    info = save_dataset(ws, "d", [call_example(path=f"f{i}") for i in range(12)], DatasetMeta(sources=["t"]))
    cfg = SampleConfig(k=2)
    meta: dict[str, Any] = dict(
        dataset="d", dataset_hash=info.hash, model="m", adapter=None, config=cfg, eval_run="e"
    )
    save_samples(ws, "s", _requests(), **meta, sampler_version="tooltune-samples/1")
    with capture_logs() as logs:
        done = anyio.run(lambda: sample_dataset(None, ws, "d", "s", cfg))  # no server: nothing is asked
    assert done.sampler_version == "tooltune-samples/1" != SAMPLER_VERSION
    [warned] = [e for e in logs if e["event"] == "samples.older_judge"]
    assert (warned["made_by"], warned["now"]) == ("tooltune-samples/1", SAMPLER_VERSION)


def test_a_rejection_dataset_picked_with_the_old_split_stands_when_picked_again(tmp_path: Path) -> None:
    """A resumed `train improve` round picks its dataset again under the same name: one an older tooltune
    picked from the same samples with the same recipe is kept; another recipe under that name is refused."""
    ws = Workspace(tmp_path / "ws").ensure()
    requests = _train_split_requests(20)
    digest = _samples_set(ws, requests)
    examples, where = rejection_examples(requests)
    extra = {"samples_hash": digest, "method": "rejection", "per_request": 1, "from": where}
    meta = DatasetMeta(sources=["samples:s"], generator_version="x", seed=0, kinds=["single"], extra=extra)
    old = save_dataset(ws, "r", examples, meta)  # as before: by the examples' own groups
    assert old.counts["valid"] == 1
    again = pick_training_data(ws, "s", "rejection", "r")
    assert again.counts == old.counts and again.dataset == "r"
    with pytest.raises(WorkspaceError, match="already exists with different content"):
        pick_training_data(ws, "s", "rejection", "r", per_request=2)


@pytest.mark.slow
@pytest.mark.anyio
async def test_sampling_the_tiny_model_scores_every_answer_and_resumes(
    tiny_model: Path, settings: Settings
) -> None:
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.data.onpolicy import sample_dataset
    from tooltune.serving.model_server import ModelServer

    ws = Workspace(settings.workspace).ensure()
    generate_dataset(ws, "d", ["builtin:coding"], GenerateConfig(n=40, seed=0), model_path=tiny_model)
    cfg = SampleConfig(k=2, temperature=0.9, limit=5, max_tokens=24, concurrency=2)
    async with ModelServer(tiny_model, settings=settings, record_active=False) as server:
        info = await sample_dataset(server, ws, "d", "s", cfg)
        again = await sample_dataset(server, ws, "d", "s", cfg)
        faster = await sample_dataset(server, ws, "d", "s", cfg.model_copy(update={"concurrency": 8}))
        assert faster.hash == info.hash  # concurrency changes how fast, not what was sampled
        with pytest.raises(DataError, match="made with another config"):
            await sample_dataset(server, ws, "d", "s", cfg.model_copy(update={"k": 3}))
    assert again.hash == info.hash
    _, requests = load_samples(ws, "s")
    assert info.counts["requests"] == len(requests) == 5 - len(info.skipped)
    assert all(len(r.samples) == 2 for r in requests)
    # every verdict is the scorer's on that answer: a no-call request passes exactly when no call was made
    for r in requests:
        for s in r.samples:
            if r.expects_no_call:
                assert s.native == (not s.calls)
            elif not s.calls:
                assert not s.native and s.reason == "no_call_made"
    assert json.loads((ws.reports / "samples-s" / "run.json").read_text())["repeats"] == 2
    assert info.config.temperature == 0.9 and info.dataset == "d"


def test_a_no_call_request_counts_a_call_written_as_text_or_dropped_as_wrong() -> None:
    rq = SampledRequest(
        id="n",
        kind="no_call",
        example=text_example(),
        expects_no_call=True,
        samples=[
            # no native call, but a call written as text: native passes, lenient fails
            Sample(
                text='{"name": "read_file", "arguments": {"path": "m.md"}}',
                native=True,
                lenient=False,
                attempted=True,
            ),
            # the server dropped a malformed call: empty text that is not what the model wrote
            Sample(text="", native=True, lenient=True, attempted=True, dropped=True),
            Sample(text="A monad chains computations.", native=True, lenient=True),
        ],
    )
    assert [s.text[:1] for s in rq.correct] == ["A"] and len(rq.wrong) == 2
    assert _summary([rq])[1] == {"called_when_irrelevant": 2}  # both counted as over-calls
    pairs, counts = preference_pairs([rq], per_request=4)
    assert counts == {"called_when_irrelevant": 1, "skipped_unrenderable": 1}
    assert pairs[0].rejected["content"].startswith('{"name"') and pairs[0].chosen_is_own
    examples, where = rejection_examples([rq])
    assert where == {"own": 1} and examples[0].messages[-1]["content"] == "A monad chains computations."


def test_a_truth_the_scorer_cannot_express_is_skipped_and_nested_values_pass_their_own_check() -> None:
    nested = call_example(path="a.py", options={"encoding": "utf-8", "extra": {"deep": [1, 2]}})
    case = example_case(nested, "n0")
    right = RawCall(
        name="read_file",
        arguments={"path": "a.py", "options": {"encoding": "utf-8", "extra": {"deep": [1, 2]}}},
    )
    assert score_case(case, [right], "").native.passed
    untyped = call_example(path="a.py", options={"encoding": "utf-8"})
    del untyped.tools[0]["function"]["parameters"]["properties"]["options"]["type"]
    try:
        example_case(untyped, "u0")
    except DataError as e:  # skipped and named, never a truth that fails itself
        assert "cannot express" in str(e)
    else:  # or the scorer accepts it: then the truth passes its own check
        assert score_case(
            example_case(untyped, "u0"),
            [RawCall(name="read_file", arguments={"path": "a.py", "options": {"encoding": "utf-8"}})],
            "",
        ).native.passed
