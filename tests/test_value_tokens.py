"""Loss weights for argument values and the call decision: the tokens, the loss, runs that use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from read_file_examples import READ_FILE, example

from tooltune.config import Settings
from tooltune.jobs import JobStore
from tooltune.training import runs
from tooltune.training.train_config import TrainConfig
from tooltune.training.value_tokens import argument_value_spans, value_token_mask, value_token_weights
from tooltune.workspace import Workspace


def _values(text: str) -> list[str]:
    return [text[a:b] for a, b in argument_value_spans(text)]


def test_value_spans_are_the_argument_values_without_string_quotes() -> None:
    text = (
        'Sure.\n<tool_call>\n{"name": "get_x", "arguments": {"event": "Civil War", "n": -5, '
        '"tags": ["a", "b"], "opt": {"k": 1}, "ok": true, "none": null}}\n</tool_call>\n'
        '<tool_call>\n{"name": "arguments", "arguments": {"path": "src/a \\"b\\".py"}}\n</tool_call>'
    )
    assert _values(text) == ["Civil War", "-5", "a", "b", "1", "true", "null", 'src/a \\"b\\".py']
    # lists and objects are walked: their brackets, commas and keys stay structure
    nested = (
        '<tool_call>{"name": "p", "arguments": {"area": {"width": 20, "h": [1.5, {"x": "y"}]}, "e": []}}'
        "</tool_call>"
    )
    assert _values(nested) == ["20", "1.5", "y"]
    # no call, an empty call, broken JSON, arguments that are not an object, an unclosed block
    assert _values("The answer is 4.") == []
    assert _values('<tool_call>{"name": "x", "arguments": {}}</tool_call>') == []
    assert _values("<tool_call>{not json}</tool_call>") == []
    assert _values('<tool_call>{"name": "x", "arguments": "{\\"a\\": 1}"}</tool_call>') == []
    assert _values('<tool_call>\n{"name": "x", "arguments": {"a": 1}}') == ["1"]


def _rendered(tiny_model: Path) -> tuple[object, list[int], int]:
    """An example as mlx-lm's chat dataset tokenizes it: the tokens and where the answer starts."""
    from mlx_lm import load

    _, tokenizer = load(str(tiny_model))
    ex = example(0)
    ex["messages"][1]["tool_calls"][0]["function"]["arguments"] = {"path": "src/main.py", "limit": 40}
    tokens = tokenizer.apply_chat_template(ex["messages"], tools=[READ_FILE])
    start = len(
        tokenizer.apply_chat_template(ex["messages"][:1], tools=[READ_FILE], add_generation_prompt=True)
    )
    return tokenizer, list(tokens), start


def test_value_tokens_are_found_in_the_answer_only(tiny_model: Path) -> None:
    tokenizer, tokens, start = _rendered(tiny_model)
    weights, n = value_token_weights(tokenizer, tokens, start, 0.25)
    marked = [k for k, w in enumerate(weights) if w == 0.25]
    assert n == len(marked) > 0 and min(marked) >= start
    assert all(w in (0.25, 1.0) for w in weights)
    # the marked tokens spell the values (BPE may glue a quote to them), nothing else
    text = "".join(tokenizer.decode([tokens[k]]) for k in marked)
    assert "src/main.py" in text and "40" in text
    for structure in ("read_file", "path", "limit", "arguments", "name"):
        assert structure not in text
    # the prompt mentions src/main.py too: never weighted
    assert "src/main.py" in tokenizer.decode(tokens[:start])
    # a weight of 1 changes nothing; an answer without a call has no value tokens
    assert (value_token_weights(tokenizer, tokens, start, 1.0)[0] == 1.0).all()
    plain = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]
    )
    assert value_token_weights(tokenizer, list(plain), 3, 0.0)[1] == 0


def test_the_decision_weight_lands_on_the_answers_first_token_only(tiny_model: Path) -> None:
    tokenizer, tokens, start = _rendered(tiny_model)
    weights, n = value_token_weights(tokenizer, tokens, start, 1.0, decision_weight=4.0)
    assert n == 0 and [k for k, w in enumerate(weights) if w != 1.0] == [start]
    assert weights[start] == 4.0 and tokenizer.decode([tokens[start]]).strip() == "<tool_call>"
    # with value weights too: the decision token is never a value
    both, n2 = value_token_weights(tokenizer, tokens, start, 0.5, decision_weight=4.0)
    assert both[start] == 4.0 and n2 == (value_token_weights(tokenizer, tokens, start, 0.5)[0] == 0.5).sum()
    assert set(both.tolist()) == {0.5, 1.0, 4.0}


def test_decision_weight_needs_the_prompt_masked() -> None:
    with pytest.raises(ValueError, match="decision_loss_weight needs mask_prompt"):
        TrainConfig(model="m", dataset="d", mask_prompt=False, decision_loss_weight=3.0)
    with pytest.raises(ValueError):
        TrainConfig(model="m", dataset="d", decision_loss_weight=-1.0)
    assert TrainConfig(model="m", dataset="d", mask_prompt=False).decision_loss_weight == 1.0


def test_weighted_loss_is_the_weighted_mean_of_the_default_loss(tiny_model: Path) -> None:
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss

    from tooltune.training.losses import weighted_loss

    model, _ = load(str(tiny_model))
    tokenizer, tokens, start = _rendered(tiny_model)
    batch, lengths = mx.array([tokens]), mx.array([[start, len(tokens)]])
    ones = mx.ones(batch.shape)
    plain, ntoks = default_loss(model, batch, lengths)
    same, ntoks2 = weighted_loss(model, batch, lengths, ones)
    assert mx.allclose(plain, same, atol=1e-5).item() and ntoks.item() == ntoks2.item()

    weights, n = value_token_weights(tokenizer, tokens, start, 0.0)
    got, _ = weighted_loss(model, batch, lengths, mx.array(weights[None, :]))
    # by hand: the per-token losses of the answer tokens that are not values, averaged
    import mlx.nn as nn

    ce = nn.losses.cross_entropy(model(batch[:, :-1]), batch[:, 1:])[0]
    kept = [k - 1 for k in range(start, len(tokens)) if weights[k] == 1.0]
    assert len(kept) == len(tokens) - start - n
    want = sum(ce[k].item() for k in kept) / len(kept)
    assert got.item() == pytest.approx(want, rel=1e-4) and got.item() != pytest.approx(plain.item(), rel=1e-3)

    # the decision token at weight 5: it counts five times in the weighted mean of the answer tokens
    weights, _ = value_token_weights(tokenizer, tokens, start, 1.0, decision_weight=5.0)
    got, _ = weighted_loss(model, batch, lengths, mx.array(weights[None, :]))
    answer = [ce[k - 1].item() for k in range(start, len(tokens))]
    want = (sum(answer) + 4 * answer[0]) / (len(answer) + 4)
    assert got.item() == pytest.approx(want, rel=1e-4)


@pytest.mark.slow
def test_a_run_with_value_loss_weight_trains_on_weighted_tokens(tiny_model: Path, settings: Settings) -> None:
    """The weight reaches mlx-lm's training loop: run.json counts the weighted tokens and the reported
    loss differs from the same run at weight 1 (same seed, same batches)."""
    d = Workspace(settings.workspace).ensure().datasets / "read"
    d.mkdir(parents=True)
    (d / "train.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(8)))
    (d / "valid.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(8, 10)))
    losses = {}
    for weight, decision, anchor in ((1.0, 1.0, 0.0), (0.0, 1.0, 0.0), (1.0, 5.0, 0.0), (1.0, 1.0, 5.0)):
        cfg = TrainConfig(
            model=str(tiny_model),
            dataset="read",
            num_layers=1,
            rank=4,
            iters=4,
            batch_size=2,
            steps_per_report=1,
            steps_per_eval=100,
            val_batches=1,
            value_loss_weight=weight,
            decision_loss_weight=decision,
            anchor_loss_weight=anchor,
            learning_rate=1e-3,
            lr_schedule="constant",  # full steps from step 1: the anchor must show from step 2
        )
        job = runs.start_training(cfg, settings, name=f"read-w{weight:g}-d{decision:g}-a{anchor:g}")
        events = list(runs.follow_events(settings, job.id, poll_interval=0.2))
        job = JobStore(Workspace(settings.workspace)).get(job.id)
        assert job.status == "succeeded", job.error
        run = runs.get_run(settings, job.id)
        losses[weight, decision, anchor] = [e.train_loss for e in events if e.kind == "train"]
        if anchor:
            a = run.applied["anchor"]
            assert a["weight"] == 5.0 and "base model" in a["reference"]
            assert 0 < a["value_tokens"] < a["answer_tokens"] and a["examples_with_values"] == 8
        else:
            assert "anchor" not in run.applied
        if decision != 1.0:
            # every example answers with a call: 8 weighted decisions, all <tool_call>
            assert run.applied["decision_tokens"] == {"weight": 5.0, "calls": 8, "text": 0}
        else:
            assert "decision_tokens" not in run.applied
        if weight == 1.0:
            assert "value_tokens" not in run.applied
        else:
            vt = run.applied["value_tokens"]
            assert vt["weight"] == 0.0 and vt["examples_with_values"] == vt["examples"] == 8
            assert 0 < vt["value_tokens"] < vt["answer_tokens"]
            record = json.loads(
                (Workspace(settings.workspace).adapter_dir("read-w0-d1-a0") / "tooltune.json").read_text()
            )
            assert record["train_config"]["value_loss_weight"] == 0.0
    plain = losses[1.0, 1.0, 0.0]
    assert len(plain) == len(losses[0.0, 1.0, 0.0]) == len(losses[1.0, 5.0, 0.0]) == 4
    assert plain[0] != pytest.approx(losses[0.0, 1.0, 0.0][0], rel=1e-3)
    assert plain[0] != pytest.approx(losses[1.0, 5.0, 0.0][0], rel=1e-3)
    # the anchor is 0 while the adapter is still the base model (step 1), then it adds to the loss
    anchored = losses[1.0, 1.0, 5.0]
    assert anchored[0] == pytest.approx(plain[0], rel=1e-4)
    assert all(a > p for a, p in zip(anchored[1:], plain[1:], strict=True))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "value"), [("value_loss_weight", 0.5), ("anchor_loss_weight", 1.0)], ids=["weight", "anchor"]
)
def test_value_settings_without_calls_in_the_data_stop_the_run(
    tiny_model: Path, settings: Settings, setting: str, value: float
) -> None:
    d = Workspace(settings.workspace).ensure().datasets / "chat"
    d.mkdir(parents=True)
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello there!"}]}
    (d / "train.jsonl").write_text((json.dumps(row) + "\n") * 4)
    cfg = TrainConfig(
        model=str(tiny_model),
        dataset="chat",
        num_layers=1,
        rank=4,
        iters=2,
        batch_size=2,
        **{setting: value},
    )
    job = runs.start_training(cfg, settings, name="chat-w")
    list(runs.follow_events(settings, job.id, poll_interval=0.2))
    job = JobStore(Workspace(settings.workspace)).get(job.id)
    assert (
        job.status == "failed"
        and "no answer in" in (job.error or "")
        and f"{setting} is {value}" in job.error
    )
    assert "chat-w" not in [p.name for p in Workspace(settings.workspace).adapters.glob("*")]


def test_the_value_mask_marks_the_tokens_the_value_weight_lands_on(tiny_model: Path) -> None:
    tokenizer, tokens, start = _rendered(tiny_model)
    mask = value_token_mask(tokenizer, tokens, start)
    weights, n = value_token_weights(tokenizer, tokens, start, 0.5)
    assert mask.sum() == n > 0 and ((weights == 0.5) == mask).all()
    assert not value_token_mask(tokenizer, tokens, len(tokens)).any()  # no answer, no values


def test_anchor_loss_weight_needs_the_prompt_masked_and_lora() -> None:
    with pytest.raises(ValueError, match="anchor_loss_weight needs mask_prompt"):
        TrainConfig(model="m", dataset="d", mask_prompt=False, anchor_loss_weight=1.0)
    with pytest.raises(ValueError, match="anchor_loss_weight works with fine_tune_type 'lora' only"):
        TrainConfig(model="m", dataset="d", fine_tune_type="dora", anchor_loss_weight=1.0)
    with pytest.raises(ValueError):
        TrainConfig(model="m", dataset="d", anchor_loss_weight=-0.5)
    assert TrainConfig(model="m", dataset="d", fine_tune_type="dora").anchor_loss_weight == 0.0


def _lora_model(tiny_model: Path) -> object:
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(tiny_model))
    model.freeze()
    linear_to_lora_layers(model, 1, {"rank": 4, "scale": 20.0, "dropout": 0.0})
    return model


def test_the_anchor_adds_the_kl_from_the_base_model_on_value_tokens(tiny_model: Path) -> None:
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np

    from tooltune.training.losses import adapter_off, anchored_loss, weighted_loss

    model = _lora_model(tiny_model)
    tokenizer, tokens, start = _rendered(tiny_model)
    batch, lengths = mx.array([tokens]), mx.array([[start, len(tokens)]])
    weights = mx.ones(batch.shape)
    anchored = mx.array(value_token_mask(tokenizer, tokens, start)[None, :])
    loss = anchored_loss(2.0)
    # a fresh LoRA (lora_b = 0) is the base model: no divergence, the plain loss
    fresh, ntoks = loss(model, batch, lengths, weights, anchored)
    plain, ntoks2 = weighted_loss(model, batch, lengths, weights)
    assert fresh.item() == pytest.approx(plain.item(), rel=1e-5) and ntoks.item() == ntoks2.item()

    # move the adapter: the loss grows by 2 × the mean KL(base ‖ model) over the value tokens, by hand
    for _, m in model.named_modules():
        if "lora_b" in m:
            m.lora_b = mx.random.normal(m.lora_b.shape, key=mx.random.key(0)) * 0.05
    logits = model(batch[:, :-1])
    with adapter_off(model):
        base_logits = model(batch[:, :-1])
    # scales are restored: the model is the adapted one again
    assert mx.allclose(model(batch[:, :-1]), logits).item() and not mx.allclose(logits, base_logits).item()
    p, q = np.array(nn.log_softmax(logits[0])), np.array(nn.log_softmax(base_logits[0]))
    kl = (np.exp(q) * (q - p)).sum(-1)
    positions = [k - 1 for k in range(start, len(tokens)) if np.array(anchored)[0, k]]
    want_kl = float(np.mean(kl[positions]))
    got, _ = loss(model, batch, lengths, weights, anchored)
    now_plain, _ = weighted_loss(model, batch, lengths, weights)
    assert want_kl > 1e-4
    assert got.item() == pytest.approx(now_plain.item() + 2.0 * want_kl, rel=1e-4)

    # the anchor's gradient reaches the adapter: at weight 0 the gradients differ from weight 2
    def grads(w: float) -> list[mx.array]:
        g = nn.value_and_grad(model, anchored_loss(w))(model, batch, lengths, weights, anchored)[1]
        from mlx.utils import tree_flatten

        return [v for _, v in tree_flatten(g)]

    assert any(not mx.allclose(a, b).item() for a, b in zip(grads(0.0), grads(2.0), strict=True))


def test_adapter_off_needs_lora_layers(tiny_model: Path) -> None:
    from mlx_lm import load

    from tooltune.training.losses import adapter_off

    model, _ = load(str(tiny_model))
    with pytest.raises(ValueError, match="no LoRA layers"), adapter_off(model):
        pass
