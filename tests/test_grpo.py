"""GRPO with the eval scorer as the reward (`tooltune train --method grpo`, issue 36): answers read as
mlx_lm.server reads them, rewards that follow the scorer's verdicts, a loss that moves the policy toward
the rewarded answer, and a whole run on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from read_file_examples import READ_FILE

from tooltune.config import Settings
from tooltune.data.examples import Example, call_message
from tooltune.data.onpolicy import example_case
from tooltune.jobs import JobStore
from tooltune.training import runs
from tooltune.training.train_config import TrainConfig, TrainConfigError
from tooltune.workspace import Workspace

pytest.importorskip("mlx_lm_lora")

TOOLS = [READ_FILE]
CALL = '<tool_call>\n{"name": "read_file", "arguments": {"path": "src/app.py"}}\n</tool_call>'


def example(i: int, *, no_call: bool = False) -> dict[str, Any]:
    path = f"src/mod{i}.py"
    if no_call:
        msgs = [
            {"role": "user", "content": "what is a closure?"},
            {"role": "assistant", "content": "A function."},
        ]
    else:
        msgs = [{"role": "user", "content": f"open {path}"}, call_message([("read_file", {"path": path})])]
    return {"messages": msgs, "tools": TOOLS}


def case_for(record: dict[str, Any]) -> Any:
    return example_case(Example.model_validate(record), "c")


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from mlx_lm.tokenizer_utils import load

    return load(tiny_model)


def test_answers_are_read_as_the_server_reads_them(tokenizer: Any) -> None:
    from tooltune.training.grpo import server_answer

    calls, content, dropped = server_answer("Sure.\n" + CALL, tokenizer, TOOLS)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("read_file", {"path": "src/app.py"})]
    assert content.strip() == "Sure." and not dropped
    broken = '<tool_call>\n{"name": "read_file", "arguments": {"path": \n</tool_call>'
    assert server_answer(broken, tokenizer, TOOLS)[0] == [] and server_answer(broken, tokenizer, TOOLS)[2]
    text = '```json\n{"name": "read_file", "arguments": {"path": "src/app.py"}}\n```'
    assert server_answer(text, tokenizer, TOOLS) == ([], text, False)
    unclosed = server_answer(CALL.removesuffix("</tool_call>"), tokenizer, TOOLS)  # cut at the end
    assert [c.name for c in unclosed[0]] == ["read_file"]
    assert server_answer("Fine.<tool_call>", tokenizer, TOOLS) == ([], "Fine.", False)  # nothing in it
    for not_a_call in ('{"name": "read_file"}', '{"arguments": {}}', "42", "null", '["x"]'):
        # JSON the server's formatter cannot use: dropped, never an exception that stops training
        assert server_answer(f"<tool_call>\n{not_a_call}\n</tool_call>", tokenizer, TOOLS) == ([], "", True)


def test_a_thinking_models_reasoning_is_not_read_as_its_answer(tokenizer: Any) -> None:
    """As the server returns a thinking model's reasoning apart from the content and never parses it
    for calls, a call drafted while thinking is not the answer, and the answer after it is."""
    from types import SimpleNamespace

    from tooltune.training.grpo import server_answer

    thinking = SimpleNamespace(
        has_thinking=True, think_start="<think>", think_end="</think>", has_tool_calling=True,
        tool_call_start="<tool_call>", tool_call_end="</tool_call>", tool_parser=tokenizer.tool_parser,
    )  # fmt: skip
    drafted = f"<think>maybe {CALL}? no, they asked a question</think>\nA closure keeps its scope."
    assert server_answer(drafted, thinking, TOOLS) == ([], "\nA closure keeps its scope.", False)
    calls, content, _ = server_answer(f"the template opened it</think>\n{CALL}", thinking, TOOLS)
    assert [c.name for c in calls] == ["read_file"] and content.strip() == ""
    assert server_answer("<think>still thinking when cut off", thinking, TOOLS) == ([], "", False)
    assert server_answer(drafted, tokenizer, TOOLS)[1].startswith("<think>")  # no thinking: text as it is


def test_the_reward_follows_the_scorers_verdict(tokenizer: Any) -> None:
    from tooltune.training.grpo import REWARDS, reward

    call_case = case_for(example(0) | {"messages": [
        {"role": "user", "content": "open src/app.py"}, call_message([("read_file", {"path": "src/app.py"})])
    ]})  # fmt: skip
    assert reward(call_case, CALL, tokenizer) == (1.0, "right")
    wrong = CALL.replace("src/app.py", "src/other.py")
    assert reward(call_case, wrong, tokenizer) == (REWARDS["wrong_value"], "wrong_value")
    as_text = '```json\n{"name": "read_file", "arguments": {"path": "src/app.py"}}\n```'
    assert reward(call_case, as_text, tokenizer) == (REWARDS["unparsed_format"], "unparsed_format")
    assert reward(call_case, "I cannot open files.", tokenizer) == (0.0, "no_call_made")
    no_call_case = case_for(example(0, no_call=True))
    assert reward(no_call_case, "A function that keeps its scope.", tokenizer) == (1.0, "right")
    assert reward(no_call_case, CALL, tokenizer) == (0.0, "called_when_irrelevant")
    assert reward(no_call_case, as_text, tokenizer)[1] == "called_when_irrelevant"  # an over-call in text
    assert REWARDS["right"] > REWARDS["wrong_value"] > REWARDS["wrong_tool"] > REWARDS["unparsed_format"] > 0


@pytest.mark.slow
def test_grpo_steps_raise_the_rewarded_answer_over_the_other(tiny_model: Path) -> None:
    """Two answers to one request, advantages +1 and -1: the loss starts at 0 (no KL to the reference it
    is), and steps on it raise the rewarded answer's log-probability over the other's."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from tooltune.training.grpo import grpo_loss_fn, rollout_batch, token_logps

    model, tok = load(str(tiny_model))
    model.freeze()
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    case = case_for(example(0))
    prompt = list(tok.apply_chat_template(case.messages, tools=TOOLS, add_generation_prompt=True))
    good = tok.encode(CALL.replace("src/app.py", "src/mod0.py"), add_special_tokens=False)
    bad = tok.encode("I cannot open files, sorry.", add_special_tokens=False)
    rows, lengths = [prompt + good, prompt + bad], [len(prompt)] * 2
    batch = rollout_batch(rows, lengths, [1.0, -1.0])
    reference = token_logps(model, batch[0], batch[1])
    batch = (*batch[:4], reference)

    def margin() -> float:
        lp = token_logps(model, batch[0], batch[1]) * batch[2]
        return float((lp[0].sum() - lp[1].sum()).item())

    loss = grpo_loss_fn(beta=0.1)
    value, ntoks = loss(model, *batch)
    assert abs(value.item()) < 1e-5 and int(ntoks.item()) == len(good) + len(bad)
    before = margin()
    opt = optim.Adam(learning_rate=2e-3)
    step = nn.value_and_grad(model, loss)
    for _ in range(6):
        (_value, _toks), grads = step(model, *batch)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
    assert margin() > before + 1.0


@pytest.mark.slow
def test_a_decision_kl_term_holds_the_first_tokens_call_choice(tiny_model: Path) -> None:
    """Advantages that favour a text answer over a call pull the chance of opening with `<tool_call>`
    down; the same steps (plain SGD, so the term's weight is not normalised away) with a decision KL term
    (weight 200: the tiny model's chance of the marker is about 0.001, where the two-way KL is small) keep
    it near the reference's."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from tooltune.training.grpo import decision_kl, grpo_loss_fn, rollout_batch, token_logps, tool_call_token

    mx.random.seed(0)
    model, tok = load(str(tiny_model))
    model.freeze()
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    start = tree_flatten(model.trainable_parameters())
    marker = tool_call_token(tok)
    case = case_for(example(0))
    prompt = list(tok.apply_chat_template(case.messages, tools=TOOLS, add_generation_prompt=True))
    call = tok.encode(CALL, add_special_tokens=False)
    text = tok.encode("I cannot open files, sorry.", add_special_tokens=False)
    assert call[0] == marker
    batch = rollout_batch([prompt + call, prompt + text], [len(prompt)] * 2, [-1.0, 1.0])
    reference, *reference_first = token_logps(model, batch[0], batch[1], first_token=marker)
    start_pair = (reference_first[0], reference_first[1])
    assert float(mx.abs(decision_kl(start_pair, start_pair)).max().item()) < 1e-6  # none at the start
    # the two log-probabilities are of complementary events, exactly
    assert abs(float((mx.exp(reference_first[0]) + mx.exp(reference_first[1]))[0].item()) - 1.0) < 1e-5
    # a choice made near certain is still pulled back (no clipping): its gradient is not zero
    certain = (mx.array([-1e-9]), mx.array([-20.7]))  # the policy opens with the marker almost surely
    pull = mx.grad(lambda c: decision_kl((mx.array([-2.3]), mx.array([-0.105])), (c, certain[1])).sum())
    assert abs(float(pull(certain[0]).item()) + float(mx.exp(mx.array(-2.3)).item())) < 1e-4  # -r, not 0

    def call_chance_after(weight: float) -> float:
        model.load_weights(start, strict=False)
        loss = grpo_loss_fn(beta=0.0, decision=weight, decision_token=marker)
        step = nn.value_and_grad(model, loss)
        opt = optim.SGD(learning_rate=0.5)
        for _ in range(8):
            (_value, _toks), grads = step(model, *batch[:4], reference, *reference_first)
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
        _, first, _ = token_logps(model, batch[0], batch[1], first_token=marker)
        return float(mx.exp(first[0]).item())

    before = float(mx.exp(reference_first[0][0]).item())
    free, held = call_chance_after(0.0), call_chance_after(200.0)
    assert free < before * 0.5  # the advantages alone push the call's first token down
    assert held > free * 3 and abs(held - before) < 0.25 * abs(free - before)


def test_a_decision_kl_is_for_grpo_only() -> None:
    from types import SimpleNamespace

    from tooltune.training.grpo import tool_call_token

    with pytest.raises(ValueError, match="decision_kl holds GRPO"):
        TrainConfig(model="m", dataset="d", decision_kl=1.0)
    # a thinking model's first answer token is its reasoning, not the decision
    thinking = SimpleNamespace(has_thinking=True, tool_call_start="<tool_call>", encode=lambda t, **_: [7])
    with pytest.raises(ValueError, match="thinking model"):
        tool_call_token(thinking)
    several = SimpleNamespace(has_thinking=False, tool_call_start="[CALL]", encode=lambda t, **_: [5, 6])
    with pytest.raises(ValueError, match="one token"):
        tool_call_token(several)
    assert tool_call_token(SimpleNamespace(tool_call_start="<tool_call>", encode=lambda t, **_: [9])) == 9


def test_improve_with_grpo_needs_a_group_of_sampled_answers() -> None:
    from tooltune.training.improve import ImproveConfig

    for bad in ({"k": 1}, {"temperature": 0.0}):
        with pytest.raises(ValueError, match="needs k of at least 2 and a temperature above 0"):
            ImproveConfig(dataset="d", name="n", method="grpo", **bad)
    ImproveConfig(dataset="d", name="n", method="dpo", k=1, temperature=0.0)  # others may sample once


def test_an_improve_jobs_no_call_share_reaches_its_grpo_rounds_only() -> None:
    from tooltune.training.improve import ImproveConfig, grpo_fields

    cfg = ImproveConfig(
        dataset="d", name="n", method="grpo", no_call_share=0.5, max_tokens=64, decision_kl=2.0
    )
    fields = grpo_fields(cfg, 2)
    assert (fields["no_call_share"], fields["seed"], fields["max_completion_tokens"]) == (0.5, 2, 64)
    assert (TrainConfig(**fields).no_call_share, TrainConfig(**fields).decision_kl) == (0.5, 2.0)
    with pytest.raises(ValueError, match="no_call_share weighs GRPO's draws; method 'dpo'"):
        ImproveConfig(dataset="d", name="n", method="dpo", no_call_share=0.5)
    with pytest.raises(ValueError, match="decision_kl holds GRPO's sampled decision; method 'dpo'"):
        ImproveConfig(dataset="d", name="n", method="dpo", decision_kl=1.0)
    with pytest.raises(ValueError, match="less than or equal to 1"):
        ImproveConfig(dataset="d", name="n", method="grpo", no_call_share=1.5)
    for shared in ("no_call_share", "decision_kl", "freeze_token_rows"):  # one declaration: no drift
        assert repr(ImproveConfig.model_fields[shared]) == repr(TrainConfig.model_fields[shared])


def test_an_improve_jobs_balanced_pairs_reach_its_pick_and_need_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import anyio

    from tooltune.data.onpolicy import NothingToPairError
    from tooltune.training import improve

    with pytest.raises(ValueError, match="balanced_decision balances preference pairs: it needs method dpo"):
        improve.ImproveConfig(dataset="d", name="n", method="rejection", balanced_decision=True)
    cfg = improve.ImproveConfig(dataset="d", name="n", method="orpo", balanced_decision=True)
    seen: dict[str, Any] = {}

    async def sampled(*args: Any, **kwargs: Any) -> SimpleNamespace:
        return SimpleNamespace(name="s")

    def pick(*args: Any, **kwargs: Any) -> None:
        seen.update(args=args, **kwargs)
        raise NothingToPairError("every sample was right")

    monkeypatch.setattr(improve, "sample_dataset", sampled)
    monkeypatch.setattr(improve, "pick_training_data", pick)
    out = anyio.run(
        lambda: improve._sample_pick_train(
            None, None, None, None, cfg, None, None, 1, "n-r1", "n-r1-adapter", lambda _: None
        )  # type: ignore[arg-type]
    )
    assert out == ("", "", {}, "every sample was right")
    assert seen["balanced_decision"] is True and seen["args"][1:3] == ("s", "pairs")


def test_a_torn_rollouts_line_is_left_out(tmp_path: Path) -> None:
    from tooltune.training.grpo import read_rollouts, summarize_rollouts

    path = tmp_path / "rollouts.jsonl"
    row = {"iteration": 1, "reward_mean": 0.5, "outcomes": {"right": 1}, "generated_tokens": 9,
           "seconds": {"generate": 1.0, "reference": 0.5}}  # fmt: skip
    path.write_text(json.dumps(row) + "\n" + '{"iteration": 2, "rew')
    assert read_rollouts(path) == [row]
    summary = summarize_rollouts(path)
    assert summary["steps"] == 1  # a line written before the groups were counted counts none
    assert summary["learned_groups"] == summary["trained_groups"] == {"call_due": 0, "no_call_due": 0}
    assert summary["steps_without_group_counts"] == 1
    new = {
        **row,
        "iteration": 2,
        "groups": 3,
        "no_call_groups": 1,
        "learned": {"call_due": 1, "no_call_due": 1},
    }
    older = {**row, "iteration": 3, "groups": 2}  # groups, but written before no_call_groups existed
    path.write_text("".join(json.dumps(r) + "\n" for r in (row, new, older)))
    summary = summarize_rollouts(path)
    assert summary["trained_groups"] == {"call_due": 2, "no_call_due": 1}
    assert summary["learned_groups"] == {"call_due": 1, "no_call_due": 1}
    assert summary["steps_without_group_counts"] == 2


def test_grpo_takes_an_sft_dataset_and_its_own_loss_only(settings: Settings, tiny_model: Path) -> None:
    ws = Workspace(settings.workspace).ensure()
    d = ws.datasets / "ex"
    d.mkdir(parents=True)
    (d / "train.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(4)))
    TrainConfig(model=str(tiny_model), dataset="ex", method="grpo", beta=0).resolve(settings)
    with pytest.raises(ValueError, match="value_loss_weight weigh the SFT loss; method 'grpo'"):
        TrainConfig(model=str(tiny_model), dataset="ex", method="grpo", value_loss_weight=0.5)
    with pytest.raises(ValueError, match="method dpo needs beta above 0"):
        TrainConfig(model=str(tiny_model), dataset="ex", method="dpo", beta=0)
    from test_preference_training import write_pairs

    write_pairs(ws, "p")
    with pytest.raises(TrainConfigError, match="grpo samples the requests of an SFT dataset"):
        TrainConfig(model=str(tiny_model), dataset="p", method="grpo").resolve(settings)


@pytest.mark.slow
def test_a_grpo_run_samples_scores_and_trains(settings: Settings, tiny_model: Path) -> None:
    ws = Workspace(settings.workspace).ensure()
    d = ws.datasets / "ex"
    d.mkdir(parents=True)
    records = [example(i) for i in range(5)] + [example(9, no_call=True)]
    long = example(7)  # a prompt with no room for an answer within max_seq_length: left out, named
    long["messages"][0]["content"] = "open src/mod7.py " + "and then some " * 400
    records.append(long)
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = TrainConfig(
        model=str(tiny_model),
        dataset="ex",
        method="grpo",
        num_layers=2,
        rank=4,
        iters=3,
        batch_size=2,
        group_size=2,
        max_completion_tokens=12,
        max_seq_length=512,
        sample_temperature=1.0,
        steps_per_report=1,
        save_every=2,
        learning_rate=1e-3,
        lr_schedule="constant",
        decision_kl=0.5,
    )
    job = runs.start_training(cfg, settings, name="g")
    job = JobStore(ws).wait(job.id, timeout=600, poll=0.3)
    assert job.status == "succeeded", job.error
    run = runs.get_run(settings, job.id)
    method = run.applied["method"]
    assert method["name"] == "grpo" and method["requests"] == 6 and method["requests_left_out"] == 1
    assert method["group_size"] == 2 and method["reference"].startswith("the starting model")
    assert method["decision_kl"] == 0.5 and "first token's call/no-call choice" in method["loss"]
    assert (method["no_call_requests"], method["no_call_share"], method["no_call_share_set"]) == (
        1,
        round(1 / 6, 4),
        False,
    )
    assert run.applied["lm_head"] == "answer positions"
    rows = [json.loads(x) for x in (ws.run_dir(run.id) / "rollouts.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    # every draw's answers are counted (a step whose groups all earned one reward is drawn again)
    assert all(r["answers"] == 4 * r["draws"] == sum(r["outcomes"].values()) for r in rows)
    assert all(len(r["requests"]) == r["draws"] and all(len(q) == 2 for q in r["requests"]) for r in rows)
    assert all(0 < r["generated_tokens"] <= r["draws"] * 4 * 12 for r in rows)
    assert all(1 <= r["draws"] <= 4 and r["groups"] == 2 for r in rows)
    metrics = json.loads((ws.run_dir(run.id) / "metrics.json").read_text())
    assert metrics["rollouts"]["steps"] == 3 and metrics["iterations"] == 3
    assert sum(metrics["rollouts"]["trained_groups"].values()) == 3 * 2  # 3 steps of 2 requests
    assert (ws.adapters / "g" / "adapters.safetensors").is_file()
    # the answer check asked the dataset's own requests before and after (the tiny model writes text:
    # right only on the one where no call is due, so that group is too small to fail the run)
    check = method["answer_check"]
    assert (check["requests"], check["splits"]) == (6, {"train": 6})
    groups = check["groups"]
    assert (groups["call_due"]["requests"], groups["no_call_due"]["requests"]) == (5, 1)
    assert (groups["call_due"]["right_before"], groups["no_call_due"]["right_before"]) == (0, 1)
    assert not check["worse"] and not groups["no_call_due"]["can_fail"]


QUESTIONS = ["what is a closure?", "why is the sky blue?", "thanks!", "what does REST mean?", "hello",
             "is Python typed?", "what is a monad?", "who wrote Unix?", "what is TCP?"]  # fmt: skip


def no_call(i: int) -> dict[str, Any]:
    """An example where no call is due, the ``i``-th of nine different questions."""
    msgs = [{"role": "user", "content": QUESTIONS[i]}, {"role": "assistant", "content": "Sure."}]
    return {"messages": msgs, "tools": TOOLS}


def _sft_split(folder: Path, split: str, records: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_check_requests_read_an_sft_datasets_examples_validation_first(
    tiny_model: Path, tmp_path: Path
) -> None:
    """GRPO's dataset holds SFT examples, not pairs: each example's conversation before its last turn is
    the request, that turn the truth; the same request in both splits is asked once. With no always-right
    requests beside them, they give up to twice the limit (2 here: 4 requests)."""
    from mlx_lm.tokenizer_utils import load

    from tooltune.training.answer_check import check_requests

    tok = load(tiny_model)
    _sft_split(tmp_path, "valid", [example(0), no_call(0)])
    _sft_split(tmp_path, "train", [example(0), *(example(i) for i in range(2, 6)), no_call(1), no_call(0)])
    files = [tmp_path / "valid.jsonl", tmp_path / "train.jsonl"]
    reqs = check_requests(files, tok, limit=2, max_seq_length=4096, max_tokens=64, pairs=False)
    assert reqs.groups == ["call_due", "call_due", "no_call_due", "no_call_due"]
    assert reqs.splits == ["valid", "train", "valid", "train"]
    assert reqs.cases[0].messages == example(0)["messages"][:1]  # the request, its answer the truth
    everything = check_requests(files, tok, limit=32, max_seq_length=4096, max_tokens=64, pairs=False)
    assert len(everything) == 7 and len(set(everything.ids)) == 7  # mod0 asked once, from valid


@pytest.mark.slow
def test_a_grpo_run_whose_answers_got_worse_fails_unregistered(
    settings: Settings, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one H100, GRPO at 1e-5 called a tool on 185 of BFCL's 240 irrelevance questions (its start: 51)
    and was registered: GRPO had no answer check. Now it has DPO's. The tiny model cannot learn to call
    in a few steps, so its answers after training are made to call everywhere; the worker runs in this
    process to see them."""
    import signal

    from tooltune.adapters.registry import AdapterRegistry
    from tooltune.training import answer_check
    from tooltune.training.worker import Worker

    ws = Workspace(settings.workspace).ensure()
    _sft_split(ws.datasets / "ex", "valid", [no_call(i) for i in range(8)])
    _sft_split(ws.datasets / "ex", "train", [example(i) for i in range(4)])
    real_answer, calls, lora_b = answer_check.answer, [], []

    def answer(model: Any, tokenizer: Any, requests: Any, *, max_tokens: int) -> list[dict[str, Any]]:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        params = tree_flatten(model.trainable_parameters())
        lora_b.append(sum(float(mx.abs(v).sum()) for k, v in params if k.endswith("lora_b")))
        got = real_answer(model, tokenizer, requests, max_tokens=max_tokens)
        calls.append(got)
        if len(calls) == 1:
            return got
        return [{**a, "right": False, "outcome": "called_when_irrelevant", "text": CALL} for a in got]

    def inline(settings: Settings, ws: Workspace, store: JobStore, run_dir: Path, job_id: str, **_: Any):
        Worker(run_dir).main()
        return store.get(job_id)

    monkeypatch.setattr(answer_check, "answer", answer)
    monkeypatch.setattr(runs, "_spawn", inline)
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # the worker's own handlers stay out of pytest
    np_state = np.random.get_state()  # the worker seeds numpy's global generator: put it back after
    cfg = TrainConfig(
        model=str(tiny_model), dataset="ex", method="grpo", num_layers=2, rank=4, iters=2, batch_size=2,
        group_size=2, max_completion_tokens=12, max_seq_length=512, answer_check=16,
    )  # fmt: skip
    try:
        job = runs.start_training(cfg, settings, name="g-broken")
    finally:
        np.random.set_state(np_state)
    assert job.status == "failed" and len(calls) == 2
    assert lora_b[0] == 0.0  # the "before" answers are the starting model's (a fresh LoRA adds nothing)
    run = runs.get_run(settings, job.id)
    check = run.applied["method"]["answer_check"]
    assert check["worse_in"] == ["no_call_due"] and check["splits"] == {"valid": 8, "train": 4}
    lost = check["groups"]["no_call_due"]
    assert (lost["right_before"], lost["right_after"], lost["example_lost"]) == (8, 0, CALL)
    assert run.error is not None and run.error.startswith(
        "grpo made the model answer its own requests worse (answered greedily; 8 valid, 4 train requests "
        "checked): of 8 requests where no call is due, the starting model got 8 right"
    )
    assert not run.registered and "g-broken" not in [a.name for a in AdapterRegistry(ws).list()]


@pytest.mark.slow
@pytest.mark.anyio
async def test_an_improve_round_can_be_a_grpo_run(settings: Settings, tiny_model: Path) -> None:
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.evals.runner import load_report
    from tooltune.serving.model_server import ModelServer
    from tooltune.training.improve import ImproveConfig, improve

    ws = Workspace(settings.workspace).ensure()
    generate_dataset(ws, "d", ["builtin:coding"], GenerateConfig(n=40, seed=0), model_path=tiny_model)
    cfg = ImproveConfig(
        dataset="d", name="g", model=str(tiny_model), method="grpo", rounds=1, k=2, iters=2, max_tokens=16,
        learning_rate=1e-3, answer_check=0,  # the round, not its check (tested above), is what is tested
    )  # fmt: skip
    said: list[str] = []
    async with ModelServer(tiny_model, settings=settings, record_active=False) as server:
        result = await improve(settings, server, cfg, on_progress=said.append)
    r = result.rounds[0]
    from tooltune.adapters.registry import AdapterRegistry

    record = AdapterRegistry(ws).get(r.candidate)
    assert r.samples == "" and r.data == "d" and r.picked == record.train_metrics["rollouts"]["outcomes"]
    assert sum(r.picked.values()) >= 2 * 2  # 2 steps x 2 answers, more where a step was drawn again
    run = runs.get_run(settings, record.run_id)
    assert run.applied["method"]["name"] == "grpo" and run.applied["method"]["group_size"] == 2
    assert load_report(ws, "g-heldout-g-r1-adapter").n_results == r.held_out_cases > 0
    assert any(m.startswith("round 1: GRPO from the base model") for m in said)


@pytest.mark.slow
def test_a_step_whose_groups_all_earn_one_reward_is_drawn_again(
    tiny_model: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zero advantage everywhere teaches nothing: such a draw is sampled again with the next requests, up
    to MAX_DRAWS, the last trained on as it is; a resumed run replays each step's draws."""
    import numpy as np
    from mlx_lm import load

    from tooltune.training import grpo

    model, _ = load(str(tiny_model))
    prompts = grpo.GrpoPrompts()
    for i in range(6):
        case = case_for(example(i))
        prompts.cases.append(case)
        prompts.tokens.append(
            list(tokenizer.apply_chat_template(case.messages, tools=TOOLS, add_generation_prompt=True))
        )

    def sampler(**kw: Any) -> grpo.Sampler:
        return grpo.Sampler(
            model, tokenizer, prompts, batch_size=1, group_size=2, temperature=1.0, max_tokens=4, beta=0.0,
            reference_weights=None, rng=np.random.RandomState(0), **kw,
        )  # fmt: skip

    monkeypatch.setattr(grpo, "reward", lambda case, text, tok: (0.0, "no_call_made"))
    flat = sampler()()
    assert flat.draws == grpo.MAX_DRAWS and flat.flat_groups == flat.groups == 1 and flat.batch
    assert flat.generated_tokens > 4  # every draw's answers are counted
    assert flat.learned == {"call_due": 0, "no_call_due": 0}  # trained on, but it teaches nothing
    answers = iter([0.0, 1.0] * 10)
    monkeypatch.setattr(grpo, "reward", lambda case, text, tok: (next(answers), "x"))
    varied = sampler()()
    assert varied.draws == 1 and varied.flat_groups == 0 and float(abs(varied.batch[3]).sum()) > 0
    assert (varied.learned, varied.no_call_groups) == ({"call_due": 1, "no_call_due": 0}, 0)
    # where no call is due: counted apart, so a run shows where its signal about the call decision came from
    prompts.cases.append(case_for(no_call(0)))
    prompts.tokens.append(prompts.tokens[0])
    answers = iter([0.0, 1.0] * 10)
    only_no_call = sampler(no_call_share=1.0)()
    assert (only_no_call.learned, only_no_call.no_call_groups) == ({"call_due": 0, "no_call_due": 1}, 1)
    record = grpo.rollout_record(1, only_no_call)
    assert (record["no_call_groups"], record["learned"]["no_call_due"]) == (1, 1)

    def order(s: grpo.Sampler, steps: int) -> list[int]:
        return [s._draw()[0] for _ in range(steps)]

    fresh, replayed = sampler(), sampler(replay_draws=[3, 1])
    expected = order(fresh, 6)
    replayed.skip()
    replayed.skip()
    assert order(replayed, 2) == expected[4:6]


def test_a_no_call_share_draws_that_share_of_requests_where_no_call_is_due(tokenizer: Any) -> None:
    """GRPO at 1e-5 on the 0.5B, drawing requests as the dataset holds them (28% where no call is due),
    learned to call everywhere. A share draws each step's requests from the two groups at that rate,
    each group in its own shuffled order (every request before any again); a resumed run replays it."""
    import numpy as np

    from tooltune.errors import TooltuneError
    from tooltune.training import grpo

    def prompts_of(records: list[dict[str, Any]]) -> grpo.GrpoPrompts:
        p = grpo.GrpoPrompts()
        for r in records:
            p.cases.append(case_for(r))
            p.tokens.append([1, 2, 3])
        return p

    mixed = prompts_of([example(i) for i in range(6)] + [no_call(0), no_call(1)])

    def sampler(prompts: grpo.GrpoPrompts, **kw: Any) -> grpo.Sampler:
        return grpo.Sampler(
            None, tokenizer, prompts, batch_size=1, group_size=2, temperature=1.0, max_tokens=4, beta=0.0,
            reference_weights=None, rng=np.random.RandomState(0), **kw,
        )  # fmt: skip

    def draws(s: grpo.Sampler, steps: int) -> list[int]:
        return [s._draw()[0] for _ in range(steps)]

    as_held = draws(sampler(mixed), 80)  # ten passes over the eight requests
    assert sum(i >= 6 for i in as_held) == 20
    half = draws(sampler(mixed, no_call_share=0.5), 400)
    assert 160 <= sum(i >= 6 for i in half) <= 240
    assert set(half[:40]) == set(range(8))
    assert not any(i >= 6 for i in draws(sampler(mixed, no_call_share=0.0), 50))
    assert all(i >= 6 for i in draws(sampler(mixed, no_call_share=1.0), 50))
    fresh = sampler(mixed, no_call_share=0.5)
    replayed = sampler(mixed, no_call_share=0.5, replay_draws=[2, 1])
    expected = draws(fresh, 6)
    replayed.skip()
    replayed.skip()
    assert draws(replayed, 3) == expected[3:6]
    with pytest.raises(TooltuneError, match="no_call_share 0.5 draws requests where no call is due"):
        sampler(prompts_of([example(i) for i in range(3)]), no_call_share=0.5)
    with pytest.raises(ValueError, match="no_call_share weighs GRPO's draws; method 'sft'"):
        TrainConfig(dataset="d", no_call_share=0.5)


@pytest.mark.slow
def test_a_cancelled_grpo_run_resumes_where_its_checkpoint_is(settings: Settings, tiny_model: Path) -> None:
    """rollouts.jsonl keeps the steps the checkpoint holds (later ones ran again; a torn line is left
    out) and the resumed run draws the requests an uninterrupted run would have drawn next."""
    import time

    import numpy as np

    ws = Workspace(settings.workspace).ensure()
    d = ws.datasets / "ex"
    d.mkdir(parents=True)
    records = [example(i) for i in range(7)] + [example(9, no_call=True)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = TrainConfig(
        model=str(tiny_model), dataset="ex", method="grpo", num_layers=2, rank=4, iters=400, batch_size=1,
        group_size=2, max_completion_tokens=8, sample_temperature=1.0, save_every=2, learning_rate=1e-3,
        lr_schedule="constant", seed=3, answer_check=0,  # resuming is tested, not the check
    )  # fmt: skip
    store = JobStore(ws)
    first = runs.start_training(cfg, settings, name="g")
    assert first.run_dir is not None
    path = first.run_dir / "rollouts.jsonl"
    deadline = time.monotonic() + 240
    while not (path.is_file() and len(path.read_text().splitlines()) >= 5):
        assert time.monotonic() < deadline, "no 5 rollout rows in 240 s; worker.log: " + (
            (first.run_dir / "worker.log").read_text()[-2000:]
            if (first.run_dir / "worker.log").is_file()
            else "-"
        )
        time.sleep(0.2)
    runs.cancel_training(first.id, settings)
    assert store.wait(first.id, timeout=60, poll=0.2).status == "cancelled"
    stopped_at = runs.get_run(settings, first.id).last_checkpoint
    assert stopped_at is not None and stopped_at >= 4
    with path.open("a") as fh:
        fh.write('{"iteration": 9999, "reward_me')  # torn by a kill mid-write
    resumed = runs.resume_training(first.run_dir.name, settings, iters=stopped_at + 3)
    assert store.wait(resumed.id, timeout=120, poll=0.2).status == "succeeded"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, stopped_at + 4))
    drawn = [i for r in rows for draw in r["requests"] for i in draw]
    rng, order, expected = np.random.RandomState(3), [], []
    while len(expected) < len(drawn):
        order = order or [int(i) for i in rng.permutation(len(records))]
        expected.append(order.pop())
    assert drawn == expected


def test_a_collapsed_policy_stops_the_run() -> None:
    # the rollouts of a GRPO run on one H100 (the 0.5B, learning rate 5e-5, from an SFT adapter): good
    # calls for 13 steps, then from step 14 every answer cut off at max_completion_tokens, reward 0
    from tooltune.training.grpo import PolicyCollapsedError, check_not_collapsed, read_rollouts

    rows = read_rollouts(Path(__file__).parent / "data" / "grpo_collapse_h100.rollouts.jsonl")
    assert [r["iteration"] for r in rows] == list(range(1, 28))
    for n in range(1, 18):  # up to step 17 only 4 collapsed steps in a row
        check_not_collapsed(rows[:n], 5e-5)
    with pytest.raises(
        PolicyCollapsedError, match="collapsed at iteration 14.*lower --learning-rate.*5e-05"
    ) as e:
        check_not_collapsed(rows[:18], 5e-5)
    assert e.value.iteration == 14  # what the run records for `train improve` (applied.method.collapsed_at)
    # a run that never earned a reward has not collapsed (a task too hard for the model), and one step
    # that wrote a short answer breaks the streak
    never = [{**r, "reward_mean": 0.0, "cut_off": r["answers"]} for r in rows[:20]]
    check_not_collapsed(never, 5e-5)
    # a model whose answers always run to the limit (the tiny test model) earns now and then: not a collapse
    always_long = [{**r, "cut_off": r["answers"]} for r in rows[:13]] + rows[13:20]
    check_not_collapsed(always_long, 5e-5)
    mixed = rows[:16] + [{**rows[16], "cut_off": 3}] + rows[17:20]
    check_not_collapsed(mixed, 5e-5)


def _rollout(reward: float, cut_off: int) -> Any:
    """A GRPO step's rollout of 4 answers: all right (reward 1, ended) or all cut-off junk (reward 0)."""
    from collections import Counter

    from tooltune.training.grpo import Rollout

    return Rollout(
        batch=(), rewards=[reward] * 4, outcomes=Counter({"right" if reward else "bad_json": 4}),
        generated_tokens=40, processed_tokens=100, seconds={"sample": 0.1}, cut_off=cut_off, groups=1,
    )  # fmt: skip


def _collapsing_worker(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, draws: list[Any], start_iter: int = 0
) -> tuple[Any, list[Any], list[int]]:
    """A training worker at GRPO's rollout loop, no model: its sampler hands out ``draws`` in order, a
    resumed run (``start_iter``) replays that many steps first; returns the worker, every run.json it
    saved, and the replayed step count (a list to read after the loop)."""
    from pydantic import BaseModel

    from tooltune.training import worker as worker_mod
    from tooltune.training.train_config import TrainConfig

    script, replayed = iter(draws), [0]

    class Sampler:
        def __call__(self) -> Any:
            return next(script)

        def skip(self) -> None:
            replayed[0] += 1

    class Run(BaseModel):
        applied: dict[str, Any] = {}

    saved: list[Run] = []
    monkeypatch.setattr(worker_mod, "write_run", lambda run_dir, run: saved.append(run))
    w = worker_mod.Worker.__new__(worker_mod.Worker)
    w.run_dir, w.rank, w.world_size, w.start_iter, w.processed_tokens = run_dir, 0, 1, start_iter, 0
    w.config = TrainConfig(dataset="d", method="grpo", learning_rate=5e-5)
    w.run = Run(applied={"method": {"name": "grpo"}})
    w._sampler = Sampler()
    monkeypatch.setattr(w, "_after_step", lambda it: None, raising=False)
    return w, saved, replayed


def test_the_worker_records_where_grpo_collapsed_in_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.json's applied.method.collapsed_at is what `train improve` reads to end its loop at a collapsed
    GRPO round: the worker writes it, with every step's rollouts, before the run fails."""
    from tooltune.training.grpo import PolicyCollapsedError, read_rollouts

    draws = [_rollout(1.0, 0)] * 3 + [_rollout(0.0, 4)] * 6  # good calls, then only cut-off junk
    w, saved, _ = _collapsing_worker(tmp_path, monkeypatch, draws)
    with pytest.raises(PolicyCollapsedError, match="collapsed at iteration 4"):
        for _ in w._iterate_rollouts(None, 1, 1024, loop=True):
            pass
    assert saved[-1].applied["method"] == {"name": "grpo", "collapsed_at": 4}
    assert [r["iteration"] for r in read_rollouts(tmp_path / "rollouts.jsonl")] == list(range(1, 9))


def test_a_grpo_run_resumed_mid_collapse_counts_the_steps_before_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resumed from a checkpoint at step 6, after 3 good steps and 3 of junk: the steps on record count,
    so two more junk steps stop the run (at the collapse's first step, 4), not five; the record's later
    steps (rerun after the resume) do not count."""
    from tooltune.training.grpo import PolicyCollapsedError, rollout_record

    # steps 1-6 before the checkpoint; step 7 ran once before the run stopped, with no checkpoint after it
    on_record = [_rollout(1.0, 0)] * 3 + [_rollout(0.0, 4)] * 3 + [_rollout(1.0, 0)]
    lines = [rollout_record(i, r) for i, r in enumerate(on_record, 1)]
    (tmp_path / "rollouts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    w, saved, replayed = _collapsing_worker(tmp_path, monkeypatch, [_rollout(0.0, 4)] * 5, start_iter=6)
    drawn = 0
    with pytest.raises(PolicyCollapsedError, match="collapsed at iteration 4"):
        for _ in w._iterate_rollouts(None, 1, 1024, loop=True):
            drawn += 1
    assert (replayed[0], drawn) == (6, 1)  # step 7 trained; step 8's draw completed the 5 junk steps
    assert saved[-1].applied["method"]["collapsed_at"] == 4
