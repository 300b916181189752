"""Trainable token rows: why they are needed, that only the chosen rows move, and that stock mlx-lm
loads and serves them.

The 0.5B model's ``<tool_call>`` row equals ~2,650 padding rows (tied embeddings), so no block-only
adapter can make it likelier than those. ``test_block_lora_cannot_separate_a_row_shared_with_padding``
rebuilds that situation on the tiny model and shows token rows are what lifts the ceiling.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm import load
from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear
from mlx_lm.tuner.utils import linear_to_lora_layers
from read_file_examples import PROMPTS, example

from tooltune.config import Settings
from tooltune.jobs import JobStore
from tooltune.training import runs
from tooltune.training.token_rows import (
    TokenRowsEmbedding,
    TokenRowsError,
    TokenRowsHead,
    apply_token_rows,
    default_tokens,
    inspect_token_rows,
    resolve_token_ids,
    token_rows_frozen,
    untrained_row_parameters,
)
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace


def _prompt_ids(tokenizer, i: int = 0) -> list[int]:  # noqa: ANN001
    ex = example(i)
    return tokenizer.apply_chat_template(ex["messages"][:1], tools=ex["tools"], add_generation_prompt=True)


def _p_first(model: nn.Module, prompt: list[int], token_id: int) -> float:
    logits = model(mx.array(prompt)[None])[0, -1]
    return float(mx.exp(logits[token_id] - mx.logsumexp(logits)).item())


def _train_in_process(model: nn.Module, tokenizer, steps: int, lr: float) -> None:  # noqa: ANN001
    """Loss on the answer tokens only, the way mlx-lm's mask_prompt does it."""
    seqs = []
    for i in range(len(PROMPTS)):
        ex = example(i)
        full = tokenizer.apply_chat_template(ex["messages"], tools=ex["tools"])
        seqs.append((full, len(_prompt_ids(tokenizer, i))))

    def loss_fn(m: nn.Module, tokens: mx.array, start: int) -> mx.array:
        logits = m(tokens[None, :-1])[0]
        targets = tokens[1:]
        ce = nn.losses.cross_entropy(logits, targets)
        return ce[start - 1 :].mean()

    opt = optim.Adam(learning_rate=lr)
    grad = nn.value_and_grad(model, loss_fn)
    for step in range(steps):
        full, start = seqs[step % len(seqs)]
        _, g = grad(model, mx.array(full), start)
        opt.update(model, g)
        mx.eval(model.parameters(), opt.state)


def test_default_tokens_are_the_tool_call_markers(tiny_model: Path) -> None:
    _, tokenizer = load(str(tiny_model))
    assert default_tokens(tokenizer) == ["<tool_call>", "</tool_call>"]
    ids = resolve_token_ids(tokenizer, ["<tool_call>"])
    assert list(ids) == ["<tool_call>"] and tokenizer.decode([ids["<tool_call>"]]) == "<tool_call>"
    with pytest.raises(TokenRowsError, match=r"'read_file plz' is \d+ tokens for this tokenizer, not one"):
        resolve_token_ids(tokenizer, ["read_file plz"])


def test_only_the_chosen_rows_move_and_stock_lora_computes_the_same(tiny_model: Path) -> None:
    model, tokenizer = load(str(tiny_model))
    model.freeze()
    ids = list(resolve_token_ids(tokenizer, ["<tool_call>", "</tool_call>"]).values())
    assert apply_token_rows(model, ids, rank=4, scale=6.0) == ["model.embed_tokens"]
    rows = model.model.embed_tokens
    assert isinstance(rows, TokenRowsEmbedding) and inspect_token_rows(model) == {ids[0]: 0, ids[1]: 1}
    trainable = dict(tree_flatten(model.trainable_parameters()))
    assert set(trainable) == {"model.embed_tokens.lora_a", "model.embed_tokens.lora_b"}
    lora_a_before = np.array(rows.lora_a)
    base_weight = np.array(rows.embedding.weight)

    _train_in_process(model, tokenizer, steps=12, lr=1e-2)

    # the selector never moves (its gradient is exactly zero), unused rank columns stay zero
    assert np.array_equal(np.array(rows.lora_a), lora_a_before)
    lora_b = np.array(rows.lora_b)
    assert np.abs(lora_b[:2]).max() > 1e-3 and not lora_b[2:].any()
    # effective embedding: exactly the two marker rows changed
    effective = np.array(rows(mx.arange(base_weight.shape[0])))
    changed = np.nonzero(np.abs(effective - base_weight).max(axis=1) > 0)[0].tolist()
    assert changed == sorted(ids)

    # mlx-lm's own LoRAEmbedding with the same weights computes the same inputs and logits
    stock = LoRAEmbedding.from_base(rows.embedding, r=4, scale=6.0)
    stock.lora_a, stock.lora_b = rows.lora_a, rows.lora_b
    x = mx.array(_prompt_ids(tokenizer))
    assert mx.allclose(stock(x), rows(x)).item()
    h = mx.random.normal((3, base_weight.shape[1]))
    assert mx.allclose(stock.as_linear(h), rows.as_linear(h), atol=1e-5).item()


def test_frozen_rows_keep_their_values_while_the_blocks_train(tiny_model: Path) -> None:
    """freeze_token_rows: the rows an init adapter brought get no gradient (Adam leaves them exactly as
    they were) while a block LoRA beside them trains; the untied head's free half is held the same way."""
    model, tokenizer = load(str(tiny_model))
    model.freeze()
    linear_to_lora_layers(model, 1, {"rank": 4, "scale": 6.0, "dropout": 0.0})
    ids = list(resolve_token_ids(tokenizer, ["<tool_call>", "</tool_call>"]).values())
    apply_token_rows(model, ids, rank=4, scale=6.0, frozen=True)
    assert token_rows_frozen(model) is True
    rows = model.model.embed_tokens
    rows.lora_b = mx.random.normal(rows.lora_b.shape) * 0.01  # as an SFT adapter left them
    start = np.array(rows.lora_b)
    block_start = {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters()) if "layers" in k}

    _train_in_process(model, tokenizer, steps=6, lr=1e-2)

    assert np.array_equal(np.array(rows.lora_b), start)
    block_after = dict(tree_flatten(model.trainable_parameters()))
    assert any(not np.array_equal(np.array(block_after[k]), v) for k, v in block_start.items())

    plain, _ = load(str(tiny_model))
    assert token_rows_frozen(plain) is None
    apply_token_rows(plain, ids, rank=4, scale=6.0)
    assert token_rows_frozen(plain) is False
    head = TokenRowsHead(8, 16, r=2, scale=1.0)
    head.linear, head.lora_a, head.lora_b = nn.Linear(8, 16), mx.ones((8, 2)), mx.ones((2, 16))
    for frozen in (False, True):
        head.frozen = frozen
        grads = nn.value_and_grad(head, lambda m, x: m(x).sum())(head, mx.ones((1, 8)))[1]
        assert np.array(grads["lora_a"]).any() != frozen  # the head's free half: held only when frozen


def test_the_rows_selector_and_held_rows_are_not_counted_as_trained(tiny_model: Path) -> None:
    """run.json's trainable_parameters counts what steps change: not the one-hot selector (no gradient,
    ever), nor the rows when they are held; an untied head's halves the same way."""
    model, tokenizer = load(str(tiny_model))
    assert untrained_row_parameters(model) == 0
    ids = list(resolve_token_ids(tokenizer, ["<tool_call>", "</tool_call>"]).values())
    apply_token_rows(model, ids, rank=4, scale=6.0)
    rows = model.model.embed_tokens
    vocab, dims = rows.embedding.weight.shape
    assert untrained_row_parameters(model) == rows.lora_a.size == vocab * 4
    rows.frozen = True
    assert untrained_row_parameters(model) == vocab * 4 + 4 * dims

    class Untied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nn.Module()
            self.model.embed_tokens = TokenRowsEmbedding(num_embeddings=16, dims=8, r=2, scale=1.0)
            self.lm_head = TokenRowsHead(8, 16, r=2, scale=1.0)

    untied = Untied()
    assert untrained_row_parameters(untied) == 16 * 2 + 2 * 16  # the selectors: embedding lora_a, head lora_b
    untied.model.embed_tokens.frozen = untied.lm_head.frozen = True
    assert untrained_row_parameters(untied) == 2 * (16 * 2) + 2 * (
        2 * 8
    )  # and both free halves (rank x dims)


def test_freeze_token_rows_needs_rows_and_no_weight_decay() -> None:
    with pytest.raises(ValueError, match="freeze_token_rows holds the train_tokens rows"):
        TrainConfig(dataset="d", train_tokens=[], freeze_token_rows=True)
    with pytest.raises(ValueError, match="weight_decay"):
        TrainConfig(dataset="d", freeze_token_rows=True, optimizer="adamw", weight_decay=0.01)
    assert TrainConfig(dataset="d", freeze_token_rows=True, optimizer="adamw").freeze_token_rows


def test_rank_must_cover_every_token_and_config_refuses_other_fine_tune_types(tiny_model: Path) -> None:
    model, tokenizer = load(str(tiny_model))
    ids = list(resolve_token_ids(tokenizer, ["<tool_call>", "</tool_call>"]).values())
    with pytest.raises(TokenRowsError, match="has 2 tokens but rank is 1"):
        apply_token_rows(model, ids, rank=1, scale=1.0)
    with pytest.raises(ValueError, match="train_tokens works with fine_tune_type 'lora' only, not 'dora'"):
        TrainConfig(dataset="d", fine_tune_type="dora", train_tokens=["<tool_call>"])
    with pytest.raises(ValueError, match="train_tokens has 2 tokens but rank is 1"):
        TrainConfig(dataset="d", rank=1, train_tokens=["<tool_call>", "</tool_call>"])


def test_untied_head_gets_its_own_one_hot_lora() -> None:
    from mlx_lm.models import qwen2

    args = qwen2.ModelArgs(
        model_type="qwen2",
        hidden_size=16,
        num_hidden_layers=1,
        intermediate_size=32,
        num_attention_heads=2,
        num_key_value_heads=1,
        rms_norm_eps=1e-6,
        vocab_size=40,
        tie_word_embeddings=False,
    )
    model = qwen2.Model(args)
    model.freeze()
    assert apply_token_rows(model, [7, 9], rank=2, scale=2.0) == ["model.embed_tokens", "lm_head"]
    assert isinstance(model.lm_head, TokenRowsHead)
    x = mx.array([[1, 2, 3]])
    base_logits = model(x)

    def loss_fn(m: nn.Module) -> mx.array:
        return -m(x)[0, -1, 7]  # push token 7's logit up

    _, g = nn.value_and_grad(model, loss_fn)(model)
    optim.SGD(learning_rate=0.5).update(model, g)
    delta = np.array(model(x) - base_logits)[0, -1]
    assert delta[7] > 0.1 and np.abs(np.delete(delta, [7, 9])).max() < 1e-6  # only chosen logits move
    head = model.lm_head
    stock = LoRALinear.from_base(head.linear, r=2, scale=2.0)
    stock.lora_a, stock.lora_b = head.lora_a, head.lora_b
    h = mx.random.normal((2, 16))
    assert mx.allclose(stock(h), head(h), atol=1e-5).item()


def test_block_lora_cannot_separate_a_row_shared_with_padding(tiny_model: Path) -> None:
    """The 0.5B situation in miniature: ``<tool_call>``'s row equals 60 unused rows (tied embeddings).

    Block-only LoRA can at best spread the probability over all 61 identical rows; token rows escape it.
    """
    results = {}
    for label, with_rows in (("blocks", False), ("rows", True)):
        model, tokenizer = load(str(tiny_model))
        tc = resolve_token_ids(tokenizer, ["<tool_call>"])["<tool_call>"]
        weight = model.model.embed_tokens.weight  # (a new array: the loaded one may be memory-mapped)
        twins = (mx.arange(weight.shape[0]) >= weight.shape[0] - 60)[:, None]  # unused tail of the vocab
        model.model.embed_tokens.weight = mx.where(twins, weight[tc][None], weight)
        model.freeze()
        linear_to_lora_layers(model, 2, {"rank": 8, "scale": 10.0, "dropout": 0.0})
        if with_rows:
            apply_token_rows(model, [tc], rank=8, scale=10.0)
        _train_in_process(model, tokenizer, steps=60, lr=1e-3)
        results[label] = _p_first(model, _prompt_ids(tokenizer), tc)
    assert results["blocks"] <= 1 / 61 + 1e-4, results  # the ceiling of a shared row
    assert results["rows"] > 0.5, results


@pytest.mark.slow
def test_training_run_trains_marker_rows_and_mlx_lm_loads_them(tiny_model: Path, settings: Settings) -> None:
    d = Workspace(settings.workspace).ensure().datasets / "rows"
    d.mkdir(parents=True)
    (d / "train.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(16)))
    (d / "valid.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(16, 20)))
    cfg = TrainConfig(
        model=str(tiny_model), dataset="rows", num_layers=1, rank=4, learning_rate=1e-3, iters=24,
        batch_size=2, steps_per_eval=100, save_every=100, val_batches=1,
    )  # fmt: skip
    job = runs.start_training(cfg, settings, name="rows")
    job = JobStore(Workspace(settings.workspace)).wait(job.id, timeout=240, poll=0.2)
    assert job.status == "succeeded", (job.status, job.error)
    run = runs.get_run(settings, job.id)
    _, tokenizer = load(str(tiny_model))
    ids = resolve_token_ids(tokenizer, ["<tool_call>", "</tool_call>"])
    assert run.applied["train_tokens"] == ids and run.applied["top_level_keys"] == ["model.embed_tokens"]

    adir = Workspace(settings.workspace).adapter_dir("rows")
    keys = json.loads((adir / "adapter_config.json").read_text())["lora_parameters"]["keys"]
    assert "model.embed_tokens" in keys and set(keys) - {"model.embed_tokens"} == set(run.applied["keys"])
    weights = mx.load(str(adir / "adapters.safetensors"))
    a = np.array(weights["model.embed_tokens.lora_a"])
    assert sorted(zip(*np.nonzero(a), strict=True)) == [(ids["<tool_call>"], 0), (ids["</tool_call>"], 1)]

    # stock mlx-lm (what mlx_lm.server --adapter-path runs) rebuilds the embedding LoRA and uses it
    base, _ = load(str(tiny_model))
    tuned, _ = load(str(tiny_model), adapter_path=str(adir))
    assert isinstance(tuned.model.embed_tokens, LoRAEmbedding)
    all_ids = mx.arange(base.model.embed_tokens.weight.shape[0])
    diff = np.abs(np.array(tuned.model.embed_tokens(all_ids) - base.model.embed_tokens(all_ids))).max(axis=1)
    assert sorted(np.nonzero(diff)[0].tolist()) == sorted(ids.values())
    prompt = _prompt_ids(tokenizer)
    tc = ids["<tool_call>"]
    assert _p_first(tuned, prompt, tc) > 10 * _p_first(base, prompt, tc)


def test_holding_rows_a_tokenizer_does_not_have_is_refused() -> None:
    """A tokenizer without single-token markers gets no rows by default: freeze_token_rows must say so
    instead of holding nothing."""
    from types import SimpleNamespace

    from tooltune.training.worker import ConfigNotAppliedError, Worker

    class SplitMarkers:  # every marker is two tokens here
        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [1, 2]

    cfg = TrainConfig(dataset="d", freeze_token_rows=True)
    with pytest.raises(ConfigNotAppliedError, match="no token rows to hold"):
        Worker._apply_token_rows(SimpleNamespace(config=cfg), object(), SplitMarkers())
    assert (
        Worker._apply_token_rows(SimpleNamespace(config=TrainConfig(dataset="d")), object(), SplitMarkers())
        == {}
    )
