"""Train the embedding rows of a few tokens (the tool-call markers) inside a stock LoRA adapter.

Why: in Qwen2.5-Coder-0.5B-Instruct the rows of ``<tool_call>`` and ``</tool_call>`` were never trained.
They equal, to within 4e-4, the rows of about 2,650 padding and unused tokens, and the embedding is tied
to the LM head. So no change to the transformer blocks can make ``<tool_call>`` likelier than those
padding tokens: with block-only LoRA, p(``<tool_call>``) stalled near 1e-4 (≈ 1/2654) while the adapter
learned the easier refusals. This is measured in ``bench/results/bfcl_adapter_simple_python.json``.

How: a LoRA on the embedding whose ``lora_a`` is a fixed one-hot selector (column i = token i), so
``scale * lora_b[i]`` is a free delta on that token's row. With tied embeddings the same delta moves the
token's input embedding and its output logit. With an untied ``lm_head``, a LoRA on it has a fixed
one-hot ``lora_b`` and a free ``lora_a[:, i]``. Both are saved under mlx-lm's own names and shapes
(``lora_a``/``lora_b``, keys ``model.embed_tokens``/``lm_head``), so ``mlx_lm.load(adapter_path=...)``
and ``mlx_lm.server --adapter-path`` load them unchanged and compute the same function. The one-hot half
is wrapped in ``stop_gradient``: its gradient is exactly zero, so Adam never moves it.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear

from tooltune.errors import TooltuneError

# The markers Qwen's tool chat template writes around every call; ``None`` in TrainConfig means these.
TOOL_CALL_MARKERS = ("<tool_call>", "</tool_call>")
EMBED_KEY = "model.embed_tokens"
HEAD_KEY = "lm_head"


class TokenRowsError(TooltuneError):
    pass


def _held(x: mx.array, frozen: bool) -> mx.array:
    return mx.stop_gradient(x) if frozen else x


class TokenRowsEmbedding(LoRAEmbedding):
    """``LoRAEmbedding`` with a frozen one-hot ``lora_a``: only the chosen tokens' rows change.

    ``frozen`` (set by :func:`apply_token_rows`) holds the rows too: their gradient is exactly zero, so
    under Adam they keep the values they were loaded with (an ``init_adapter``'s) and stay in the adapter.
    """

    frozen = False

    def __call__(self, x: mx.array) -> mx.array:
        y = self.embedding(x)
        z = mx.stop_gradient(self.lora_a)[x] @ _held(self.lora_b, self.frozen)
        return y + (self.scale * z).astype(y.dtype)

    def as_linear(self, x: mx.array) -> mx.array:
        y = self.embedding.as_linear(x)
        z = (x @ _held(self.lora_b, self.frozen).T) @ mx.stop_gradient(self.lora_a).T
        return y + (self.scale * z).astype(x.dtype)


class TokenRowsHead(LoRALinear):
    """``LoRALinear`` on an untied LM head with a frozen one-hot ``lora_b``: only the chosen logits move
    (and with ``frozen``, none: the rows keep their loaded values)."""

    frozen = False

    def __call__(self, x: mx.array) -> mx.array:
        y = self.linear(x)
        z = (x @ _held(self.lora_a, self.frozen)) @ mx.stop_gradient(self.lora_b)
        return y + (self.scale * z).astype(x.dtype)


def resolve_token_ids(tokenizer: Any, tokens: list[str]) -> dict[str, int]:
    """Each token string must be exactly one token of this tokenizer."""
    ids: dict[str, int] = {}
    for token in tokens:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise TokenRowsError(
                f"train_tokens: {token!r} is {len(encoded)} tokens for this tokenizer, not one; "
                "only single tokens have their own embedding row"
            )
        ids[token] = int(encoded[0])
    return ids


def default_tokens(tokenizer: Any) -> list[str]:
    """The tool-call markers that are single tokens here (none for a tokenizer without them)."""
    return [t for t in TOOL_CALL_MARKERS if len(tokenizer.encode(t, add_special_tokens=False)) == 1]


def _one_hot(rows: int, cols: int, ids: list[int], *, transpose: bool = False) -> mx.array:
    a = mx.zeros((rows, cols)) if not transpose else mx.zeros((cols, rows))
    for i, token_id in enumerate(ids):
        if transpose:
            a[i, token_id] = 1.0
        else:
            a[token_id, i] = 1.0
    return a


def apply_token_rows(
    model: nn.Module, token_ids: list[int], *, rank: int, scale: float, frozen: bool = False
) -> list[str]:
    """Put trainable rows for ``token_ids`` on the model; returns the top-level LoRA keys it used.

    ``rank`` and ``scale`` must be the adapter's (mlx-lm loads every LoRA module with one rank/scale).
    ``frozen``: the rows are part of the adapter (saved, loaded) but get no gradient.
    """
    if not token_ids:
        return []
    if len(token_ids) > rank:
        raise TokenRowsError(
            f"train_tokens has {len(token_ids)} tokens but rank is {rank}: each token needs one rank "
            "column; raise rank or train fewer tokens"
        )
    inner = getattr(model, "model", None)
    embedding = getattr(inner, "embed_tokens", None)
    if not isinstance(embedding, nn.Embedding):
        raise TokenRowsError(
            f"train_tokens: {type(model).__name__} has no plain model.embed_tokens embedding to adapt"
        )
    vocab = embedding.weight.shape[0]
    if max(token_ids) >= vocab:
        raise TokenRowsError(
            f"train_tokens: token id {max(token_ids)} is outside the embedding ({vocab} rows)"
        )
    rows = TokenRowsEmbedding(num_embeddings=vocab, dims=embedding.weight.shape[1], r=rank, scale=scale)
    rows.embedding = embedding  # (from_base would build a plain LoRAEmbedding)
    rows.lora_a = _one_hot(vocab, rank, token_ids)
    rows.frozen = frozen
    inner.update_modules({"embed_tokens": rows})
    keys = [EMBED_KEY]
    head = getattr(model, "lm_head", None)
    if head is not None:  # untied: the output logits have their own matrix
        if not isinstance(head, nn.Linear):
            raise TokenRowsError(f"train_tokens: lm_head is a {type(head).__name__}, not a Linear")
        out_dims, in_dims = head.weight.shape
        lora_head = TokenRowsHead(in_dims, out_dims, r=rank, scale=scale)
        lora_head.linear = head
        lora_head.lora_a = mx.zeros((in_dims, rank))
        lora_head.lora_b = _one_hot(out_dims, rank, token_ids, transpose=True)
        lora_head.frozen = frozen
        model.update_modules({"lm_head": lora_head})
        keys.append(HEAD_KEY)
    return keys


def _applied_rows(model: nn.Module) -> tuple[TokenRowsEmbedding | None, TokenRowsHead | None]:
    """The token-row modules :func:`apply_token_rows` put on the live model (None where there is none)."""
    embedding = getattr(getattr(model, "model", None), "embed_tokens", None)
    head = getattr(model, "lm_head", None)
    return (
        embedding if isinstance(embedding, TokenRowsEmbedding) else None,
        head if isinstance(head, TokenRowsHead) else None,
    )


def token_rows_frozen(model: nn.Module) -> bool | None:
    """Whether the live model's token rows get no gradient (None when it has none)."""
    embedding, head = _applied_rows(model)
    if embedding is None:
        return None
    return embedding.frozen and (head is None or head.frozen)


def untrained_row_parameters(model: nn.Module) -> int:
    """How many of the model's trainable parameters the token rows hold that no step changes: the fixed
    one-hot selector (the embedding's ``lora_a``, an untied head's ``lora_b``) always, and the rows
    themselves when ``frozen`` holds them. They are saved with the adapter; they do not train."""
    embedding, head = _applied_rows(model)
    if embedding is None:
        return 0
    n = int(embedding.lora_a.size) + (int(embedding.lora_b.size) if embedding.frozen else 0)
    if head is not None:
        n += int(head.lora_b.size) + (int(head.lora_a.size) if head.frozen else 0)
    return n


def inspect_token_rows(model: nn.Module) -> dict[int, int]:
    """{token id: rank column} for the one-hot selector on the live model ({} if none is applied)."""
    embedding, _ = _applied_rows(model)
    if embedding is None:
        return {}
    rows, cols = np.nonzero(np.array(embedding.lora_a))
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}
