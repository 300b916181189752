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
