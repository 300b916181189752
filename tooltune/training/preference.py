"""Preference training (DPO) inside mlx-lm's training loop, with mlx-lm-lora's loss.

A pairs dataset (``tooltune data pick --method pairs``) holds, per request, the conversation before the
answer, the tools, a correct answer (``chosen``) and the model's own wrong one (``rejected``). Each side
is rendered with the model's chat template *with the tools*, as ``mlx_lm.server`` renders the request,
so the policy is trained on the prompt the server sends (mlx-lm-lora's own DPO dataset renders a bare
user prompt without tools).

What comes from where: the DPO loss, the per-token scores and their sums are mlx-lm-lora's
(``dpo_loss``, ``get_token_scores``, ``compute_score``); the loop is mlx-lm's ``train`` as for SFT, so
checkpoints, resume, cancellation, validation and events work the same. Not mlx-lm-lora's ``train_dpo``:
it asks ``mx.device_info()`` for a key only Apple GPUs report (a KeyError on Linux) and keeps a second
model in memory as the reference. Here the reference is the starting policy (the base model, or the base
plus ``init_adapter``: a fresh LoRA adds nothing until trained), scored once per pair before the first
step and carried in the batch.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tooltune.data.onpolicy import PAIRS_FORMAT
from tooltune.errors import TooltuneError

__all__ = ["PAIRS_FORMAT", "PairSet", "load_pairs", "dpo_loss_fn", "score_reference", "preference_margin"]


class PairsError(TooltuneError):
    """A pairs file that cannot be trained on; the message names file:line."""


class PairSet:
    """Tokenized pairs: each item is ``{"chosen", "rejected"}`` token lists, the prompt length (shared by
    both: the same conversation and tools) and, once :func:`score_reference` ran, the reference scores."""

    def __init__(
        self, items: list[dict[str, Any]], reasons: Counter[str], skipped: list[str] | None = None
    ) -> None:
        self.items = items
        self.reasons = reasons
        self.skipped = skipped or []  # "file:line: why" of each record left out

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def _render(
    tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]], **kw: Any
) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=True, **kw)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def load_pairs(path: Path, tokenizer: Any, max_seq_length: int) -> PairSet:
    """Read and tokenize ``path`` (JSONL of pair records). A record that does not render (its answer does
    not follow the prompt's tokens, or no token is left for the answer) is skipped and named; an empty
    result is an error."""
    items: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    skipped: list[str] = []
    if not path.is_file():
        return PairSet([], reasons)
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            rec = json.loads(line)
            messages, tools = rec["messages"], rec.get("tools") or []
            prompt = _render(tokenizer, messages, tools, add_generation_prompt=True)
            chosen = _render(tokenizer, [*messages, rec["chosen"]], tools)
            rejected = _render(tokenizer, [*messages, rec["rejected"]], tools)
        except Exception as e:  # noqa: BLE001 — one bad record (even a template error) never sinks the rest
            skipped.append(f"{where}: {type(e).__name__}: {e}")
            continue
        p = len(prompt)
        if chosen[:p] != prompt or rejected[:p] != prompt:
            skipped.append(f"{where}: the answer's tokens do not follow the prompt's (chat template)")
            continue
        if p >= min(len(chosen), len(rejected), max_seq_length):
            skipped.append(f"{where}: no answer token within max_seq_length {max_seq_length}")
            continue
        items.append({"chosen": chosen, "rejected": rejected, "prompt_length": p})
        reasons[str(rec.get("reason", "?"))] += 1
    if skipped:
        from tooltune.logs import get_logger

        get_logger(__name__).warning("pairs.skipped", skipped=len(skipped), first=skipped[0])
    return PairSet(items, reasons, skipped)


def _pad(rows: list[list[int]], starts: list[int], max_seq_length: int) -> tuple[Any, Any]:
    """Token rows padded to the batch's longest (cut at max_seq_length) and masks of the answer tokens."""
    import mlx.core as mx
    import numpy as np

    longest = max(len(r) for r in rows)
    # widths in steps of 32, as mlx-lm pads: each new width re-traces the compiled step
    width = min(32 * -(-longest // 32), max_seq_length)
    tokens = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), np.float32)
    for j, (row, start) in enumerate(zip(rows, starts, strict=True)):
        n = min(len(row), width)
        tokens[j, :n] = row[:n]
        mask[j, min(start, n) : n] = 1.0
    return mx.array(tokens), mx.array(mask)


def _positions(rows: list[list[int]], starts: list[int], width: int) -> tuple[Any, Any]:
    """The target positions of each row's answer tokens (those ``_pad``'s mask marks), for the head to
    run at only (training/losses.py ``answer_positions``)."""
    import numpy as np

    from tooltune.training.losses import answer_positions

    ends = [min(len(r), width) for r in rows]
    spans = np.array([[min(p, n), n - 1] for p, n in zip(starts, ends, strict=True)])
    return answer_positions(spans, width - 1)


def pair_batch(items: list[dict[str, Any]], max_seq_length: int) -> tuple[Any, ...]:
    """(chosen, rejected, chosen_mask, rejected_mask, reference_chosen, reference_rejected,
    chosen_positions, chosen_valid, rejected_positions, rejected_valid)."""
    import mlx.core as mx

    starts = [it["prompt_length"] for it in items]
    chosen_rows, rejected_rows = [it["chosen"] for it in items], [it["rejected"] for it in items]
    chosen, cmask = _pad(chosen_rows, starts, max_seq_length)
    rejected, rmask = _pad(rejected_rows, starts, max_seq_length)
    ref_c = mx.array([it.get("ref_chosen", 0.0) for it in items], dtype=mx.float32)
    ref_r = mx.array([it.get("ref_rejected", 0.0) for it in items], dtype=mx.float32)
    cpos, cvalid = _positions(chosen_rows, starts, chosen.shape[1])
    rpos, rvalid = _positions(rejected_rows, starts, rejected.shape[1])
    return chosen, rejected, cmask, rmask, ref_c, ref_r, cpos, cvalid, rpos, rvalid


def sequence_scores(
    model: Any, tokens: Any, mask: Any, loss_type: str, positions: Any = None, valid: Any = None
) -> Any:
    """The score of each row's answer: the summed log-probability of its tokens (the mean for the ipo
    loss), as mlx-lm-lora's ``get_token_scores``/``compute_score`` give it. With ``positions`` and a
    model whose body/head split is known, the LM head runs at the answer positions only (the same
    scores; the head is over a quarter of the 0.5B's weights and would run at every prompt position)."""
    import mlx.core as mx
    import mlx.nn as nn

    from tooltune.training.losses import head_split

    split = head_split(model) if positions is not None else None
    if split is None:
        from mlx_lm_lora.trainer.dpo_trainer import compute_score, get_token_scores

        return compute_score(get_token_scores(model, tokens, mask), mask, loss_type)
    body, head = split
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    hidden = mx.take_along_axis(body(inputs), positions[..., None], axis=1)
    logits = head(hidden).astype(mx.float32)
    picked = mx.take_along_axis(targets, positions, axis=1)
    scores = (-nn.losses.cross_entropy(logits, picked) * valid).sum(-1)
    return scores / mx.maximum(valid.sum(-1), 1) if loss_type == "ipo" else scores


def score_reference(
    model: Any, pairs: PairSet, *, loss_type: str, max_seq_length: int, batch_size: int = 4
) -> None:
    """Score every pair under ``model`` as it is now (the reference) and store it in the items."""
    import mlx.core as mx

    model.eval()  # no LoRA dropout in the reference; mlx-lm's train() switches training back on
    for i in range(0, len(pairs), batch_size):
        chunk = pairs.items[i : i + batch_size]
        c, r = (
            mx.stop_gradient(x) for x in policy_scores(model, pair_batch(chunk, max_seq_length), loss_type)
        )
        mx.eval(c, r)
        for it, vc, vr in zip(chunk, c.tolist(), r.tolist(), strict=True):
            it["ref_chosen"], it["ref_rejected"] = vc, vr


def iterate_pair_batches(
    dataset: PairSet,
    batch_size: int,
    max_seq_length: int,
    *,
    loop: bool,
    rng: Any,
    rank: int = 0,
    size: int = 1,
    on_tokens: Any = None,
) -> Iterator[tuple[Any, ...]]:
    """Batches of pairs: in order for validation (``loop`` False, one pass), in a fresh random order per
    pass for training (``rng``: numpy's RandomState). Each of ``size`` processes takes its share.
    ``on_tokens(n)`` hears the tokens each batch runs through the model (prompt and answer, both sides)."""
    import numpy as np

    n = len(dataset)
    if n < batch_size:
        return
    while True:
        order = rng.permutation(n) if loop else np.arange(n)
        for b in range(0, n - batch_size + 1, batch_size):
            items = [dataset[int(i)] for i in order[b : b + batch_size][rank::size]]
            if on_tokens is not None:
                on_tokens(
                    sum(min(len(it[k]), max_seq_length) for it in items for k in ("chosen", "rejected"))
                )
            yield pair_batch(items, max_seq_length)
        if not loop:
            return


def policy_scores(model: Any, batch: tuple[Any, ...], loss_type: str) -> tuple[Any, Any]:
    """The chosen and the rejected answers' scores under ``model`` for a :func:`pair_batch` batch."""
    chosen, rejected, cmask, rmask, _, _, cpos, cvalid, rpos, rvalid = batch
    return (
        sequence_scores(model, chosen, cmask, loss_type, cpos, cvalid),
        sequence_scores(model, rejected, rmask, loss_type, rpos, rvalid),
    )


def dpo_loss_fn(beta: float, loss_type: str, delta: float = 50.0) -> Any:
    """The loss mlx-lm's ``train`` calls as ``loss(model, *batch)``: mlx-lm-lora's ``dpo_loss`` against
    the reference scores in the batch; returns (the batch's mean loss, its answer tokens). mlx-lm reports
    the training loss as the mean over steps and the validation loss weighted by those tokens, so pairs
    with long answers weigh more in the validation number."""
    from mlx_lm_lora.trainer.dpo_trainer import dpo_loss

    def loss(model: Any, *batch: Any) -> Any:
        chosen_score, rejected_score = policy_scores(model, batch, loss_type)
        _, _, cmask, rmask, ref_c, ref_r = batch[:6]
        value, _reward, ntoks, _metrics = dpo_loss(
            policy_chosen_score=chosen_score,
            policy_rejected_score=rejected_score,
            reference_chosen_score=ref_c,
            reference_rejected_score=ref_r,
            chosen_masks=cmask,
            rejected_masks=rmask,
            beta=beta,
            delta=delta,
            loss_type=loss_type,
        )
        return value, ntoks

    return loss


def orpo_loss_fn(beta: float) -> Any:
    """mlx-lm-lora's ``orpo_loss`` for mlx-lm's ``train``: the chosen answer's mean token NLL minus beta
    times the log-sigmoid of the odds ratio of chosen over rejected (mean log-probabilities per token, as
    its ``get_logps`` gives them); no reference model. Returns (the batch's mean loss, answer tokens)."""
    import mlx.core as mx
    from mlx_lm_lora.trainer.orpo_trainer import orpo_loss

    def loss(model: Any, *batch: Any) -> Any:
        # "ipo" scores are the mean log-probability per answer token, what orpo_loss takes
        chosen_logps, rejected_logps = (mx.clip(x, -1000.0, 0.0) for x in policy_scores(model, batch, "ipo"))
        cmask, rmask = batch[2], batch[3]
        value, _reward, ntoks, _metrics = orpo_loss(
            chosen_logps=chosen_logps,
            chosen_logits_mean=mx.array(0.0),
            rejected_logps=rejected_logps,
            rejected_logits_mean=mx.array(0.0),
            chosen_masks=cmask,
            rejected_masks=rmask,
            preference_scores=mx.ones_like(chosen_logps),
            beta=beta,
        )
        return value, ntoks

    return loss


def preference_margin(model: Any, pairs: PairSet, *, loss_type: str, max_seq_length: int) -> float:
    """Mean over pairs of score(chosen) - score(rejected) under ``model``: how much more the model
    prefers the correct answer (what DPO raises, relative to the reference)."""
    import mlx.core as mx

    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(pairs), 4):
        chosen_score, rejected_score = policy_scores(
            model, pair_batch(pairs.items[i : i + 4], max_seq_length), loss_type
        )
        d = chosen_score - rejected_score
        total += float(mx.sum(d).item())
        n += d.shape[0]
    return total / max(n, 1)
