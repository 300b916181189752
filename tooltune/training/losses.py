"""Training losses beyond mlx-lm's default: per-token weights, and an anchor to the base model.

``weighted_loss`` is mlx-lm's default loss (cross-entropy on the answer tokens, mean per token) with a
weight per token (see training/value_tokens.py for which tokens get which weight).

``anchored_loss(w)`` adds ``w`` × the mean KL divergence KL(base ‖ model) over the argument-value tokens,
where *base* is the same model with every LoRA switched off (scale 0), computed in the same step without
gradient. Why: the base model writes most argument values right when it answers in text (BFCL
simple_python 30/40 and 33/40), while the adapters, which must move the model far enough to write
``<tool_call>``, lose some of that skill (attempt 23: turning an adapter down gave back value cases and
lost calls). Lowering the values' weight (``value_loss_weight``) only stops teaching them; the anchor
pulls them toward the base model's own distribution while the format and the decision are learned.

Measured (BFCL attempt 29, weight 1): no gain inside the run-to-run spread (native 49/80 against 46/80,
irrelevance 59/80 against 60/80 over two question samples), and some calls came out unparseable. The
reference is the base model *inside the native frame*, which it never wrote (its ``<tool_call>`` row was
untrained): forced into it, it scores 24/40 with 11 unparseable calls against 30/40 in fenced JSON. So
this anchors to a skill the base model does not have there. Each step also costs about twice as much.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

# mlx-lm architectures whose ``Model.__call__`` is exactly ``head(self.model(inputs))`` with the head the
# tied embedding's ``as_linear`` or ``lm_head`` (read in their 0.32 sources); only these get the answer-only
# head below, any other model computes every position's logits as mlx-lm does
HEAD_SPLIT_MODULES = frozenset({"qwen2", "qwen3", "llama"})
POSITION_BUCKET = 16  # answer windows are padded to a multiple of this: few distinct shapes to compile


def _lora_modules(model: Any) -> list[Any]:
    """Every module with a LoRA (mlx-lm's LoRALinear/LoRAEmbedding/LoRASwitchLinear, our token rows)."""
    return [m for _, m in model.named_modules() if "lora_a" in m and "lora_b" in m and hasattr(m, "scale")]


@contextmanager
def adapter_off(model: Any) -> Iterator[None]:
    """The base model: every LoRA's scale at 0 inside the block, restored after (also on error)."""
    modules = _lora_modules(model)
    if not modules:
        raise ValueError("the model has no LoRA layers to switch off")
    scales = [m.scale for m in modules]
    try:
        for m in modules:
            m.scale = 0.0
        yield
    finally:
        for m, scale in zip(modules, scales, strict=True):
            m.scale = scale


def _answer_mask(targets: Any, lengths: Any) -> Any:
    import mlx.core as mx

    steps = mx.arange(1, targets.shape[1] + 1)
    return mx.logical_and(steps >= lengths[:, 0:1], steps <= lengths[:, 1:])


def _weighted_ce(logits: Any, targets: Any, mask: Any, weights: Any) -> Any:
    import mlx.core as mx
    import mlx.nn as nn

    w = mask * weights[:, 1:]
    return (nn.losses.cross_entropy(logits, targets) * w).astype(mx.float32).sum() / w.sum()


def weighted_loss(model: Any, batch: Any, lengths: Any, weights: Any) -> tuple[Any, Any]:
    """mlx-lm's default loss with a weight per token: the weighted mean, so value tokens at weight w
    count w times as much as the rest."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    mask = _answer_mask(targets, lengths)
    return _weighted_ce(model(inputs), targets, mask, weights), mask.sum()


def anchor_kl(logits: Any, base_logits: Any, anchored: Any) -> Any:
    """Mean KL(base ‖ model) over the positions where ``anchored`` is true (0 when there are none)."""
    import mlx.core as mx

    logp = logits.astype(mx.float32) - mx.logsumexp(logits.astype(mx.float32), axis=-1, keepdims=True)
    logq = base_logits.astype(mx.float32)
    logq = logq - mx.logsumexp(logq, axis=-1, keepdims=True)
    kl = (mx.exp(logq) * (logq - logp)).sum(axis=-1)
    a = anchored.astype(mx.float32)
    return (kl * a).sum() / mx.maximum(a.sum(), 1.0)


def anchored_loss(anchor_weight: float) -> Callable[..., tuple[Any, Any]]:
    """A loss for (batch, lengths, weights, anchored): the weighted cross-entropy plus ``anchor_weight``
    × the KL from the base model on the anchored (argument-value) answer tokens."""

    def loss(model: Any, batch: Any, lengths: Any, weights: Any, anchored: Any) -> tuple[Any, Any]:
        import mlx.core as mx

        inputs, targets = batch[:, :-1], batch[:, 1:]
        mask = _answer_mask(targets, lengths)
        logits = model(inputs)
        with adapter_off(model):
            base_logits = mx.stop_gradient(model(inputs))
        kl = anchor_kl(logits, base_logits, mx.logical_and(mask, anchored[:, 1:]))
        return _weighted_ce(logits, targets, mask, weights) + anchor_weight * kl, mask.sum()

    return loss


def head_split(model: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]] | None:
    """(body, head) with ``model(x) == head(body(x))``, for the architectures known to be built that way;
    None for any other. Looked up at each call: LoRA and token rows replace the modules after loading."""
    if type(model).__module__.rsplit(".", 1)[-1] not in HEAD_SPLIT_MODULES:
        return None
    inner, args = getattr(model, "model", None), getattr(model, "args", None)
    if inner is None or args is None:
        return None
    if getattr(args, "tie_word_embeddings", False):
        return inner, inner.embed_tokens.as_linear
    head = getattr(model, "lm_head", None)
    return (inner, head) if head is not None else None


def answer_positions(spans: np.ndarray, width: int, bucket: int = POSITION_BUCKET) -> tuple[Any, Any]:
    """The target positions that carry loss under ``mask_prompt`` (those of ``_answer_mask``: offset ≤
    i + 1 ≤ length), per row, as (positions, valid) arrays of shape (batch, K): K is the longest answer in
    the batch rounded up to ``bucket`` (capped at ``width``, the number of targets); a shorter row repeats
    its first position with ``valid`` false."""
    import mlx.core as mx

    starts = np.clip(spans[:, 0] - 1, 0, width)
    counts = np.maximum(np.clip(spans[:, 1], 0, width) - starts, 0)
    k = min(width, -(-max(1, int(counts.max(initial=0))) // bucket) * bucket)
    positions = np.zeros((len(spans), k), dtype=np.int32)
    valid = np.zeros((len(spans), k), dtype=bool)
    for j, (start, n) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
        # a row whose prompt fills the whole width (its answer cut off by max_seq_length) has no answer
        # position: pad with the last target, never one past it (MLX gathers do not check bounds)
        positions[j] = min(start, width - 1)
        positions[j, :n] = np.arange(start, start + n)
        valid[j, :n] = True
    return mx.array(positions), mx.array(valid)


def answer_only_loss(
    model: Any, batch: Any, lengths: Any, weights: Any, positions: Any, valid: Any
) -> tuple[Any, Any]:
    """``weighted_loss`` with the LM head applied at the answer positions only.

    Under ``mask_prompt`` only the answer's few dozen tokens carry loss, but the head (151,936 × 896 for
    Qwen2.5's 0.5B, over a quarter of its weights, tied to the embedding) would run at every position of
    a ~430-token example, forward and backward. Gathering the hidden states first gives the same loss and
    gradients (the other positions' logits have weight 0) for a fraction of the work: on this 2-core
    CPU, a 0.5B step went from 8.4 s to 4.7 s (bench/train_speed.py)."""
    import mlx.core as mx
    import mlx.nn as nn

    split = head_split(model)
    if split is None:
        raise ValueError(f"{type(model).__module__}: no known body/head split; use weighted_loss")
    body, head = split
    inputs, targets = batch[:, :-1], batch[:, 1:]
    hidden = mx.take_along_axis(body(inputs), positions[..., None], axis=1)
    logits = head(hidden)
    picked = mx.take_along_axis(targets, positions, axis=1)
    w = mx.take_along_axis(weights[:, 1:], positions, axis=1) * valid
    ce = nn.losses.cross_entropy(logits, picked)
    return (ce * w).astype(mx.float32).sum() / w.sum(), valid.sum()
