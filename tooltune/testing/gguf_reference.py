"""An independent numpy forward pass of a Qwen2/llama decoder, straight from a GGUF's dequantized tensors.

It exists to check imports: it reads the GGUF the way llama.cpp does (its own names, its own layout, and
for llama the *interleaved* rope that goes with llama.cpp's permuted Q/K rows), shares no code with mlx-lm,
and so catches mistakes in renaming, transposing, un-permuting, tying and config writing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tooltune.models import gguf_tensors as gt
from tooltune.models.gguf_tokenizer import field_value


class ReferenceDecoder:
    """Float64 reference; ``lm_head`` may name the tensor to use for the output projection."""

    def __init__(
        self, src: Path, *, lm_head: str | None = None, embedding: str = "token_embd.weight"
    ) -> None:
        from gguf import GGUFReader

        reader = GGUFReader(src, "r")
        self.arch: str = field_value(reader, "general.architecture")
        a = self.arch
        self.n_layers = int(field_value(reader, f"{a}.block_count"))
        self.n_head = int(field_value(reader, f"{a}.attention.head_count"))
        self.n_kv = int(field_value(reader, f"{a}.attention.head_count_kv", self.n_head))
        self.eps = float(field_value(reader, f"{a}.attention.layer_norm_rms_epsilon"))
        self.theta = float(field_value(reader, f"{a}.rope.freq_base", 10000.0))
        self.t: dict[str, Any] = {t.name: t for t in reader.tensors}
        self._cache: dict[str, np.ndarray] = {}
        self.embedding = embedding
        self.lm_head = lm_head or ("output.weight" if "output.weight" in self.t else embedding)
        # llama.cpp's rope: NORM (interleaved pairs) for llama, NEOX (halves) for qwen2
        self.interleaved_rope = self.arch == "llama"

    def w(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = gt.dequantize(self.t[name]).astype(np.float64)
        return self._cache[name]

    def has(self, name: str) -> bool:
        return name in self.t

    def _rms(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def _rope(self, x: np.ndarray) -> np.ndarray:
        """x: (heads, seq, head_dim)."""
        _, seq, d = x.shape
        inv = self.theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        ang = np.arange(seq, dtype=np.float64)[:, None] * inv[None, :]  # (seq, d/2)
        cos, sin = np.cos(ang), np.sin(ang)
        if self.interleaved_rope:
            x1, x2 = x[..., 0::2], x[..., 1::2]
            out = np.empty_like(x)
            out[..., 0::2] = x1 * cos - x2 * sin
            out[..., 1::2] = x1 * sin + x2 * cos
            return out
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)

    def _linear(self, x: np.ndarray, prefix: str) -> np.ndarray:
        y = x @ self.w(f"{prefix}.weight").T
        if self.has(f"{prefix}.bias"):
            y = y + self.w(f"{prefix}.bias")
        return y

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits for every position of ``ids``: (seq, vocab)."""
        x = self.w(self.embedding)[np.asarray(ids)]
        seq = len(ids)
        mask = np.triu(np.full((seq, seq), -np.inf), k=1)
        for i in range(self.n_layers):
            p = f"blk.{i}"
            h = self._rms(x, self.w(f"{p}.attn_norm.weight"))
            q = self._linear(h, f"{p}.attn_q")
            k = self._linear(h, f"{p}.attn_k")
            v = self._linear(h, f"{p}.attn_v")
            hd = q.shape[-1] // self.n_head
            q = self._rope(q.reshape(seq, self.n_head, hd).transpose(1, 0, 2))
            k = self._rope(k.reshape(seq, self.n_kv, hd).transpose(1, 0, 2))
            v = v.reshape(seq, self.n_kv, hd).transpose(1, 0, 2)
            rep = self.n_head // self.n_kv
            k, v = np.repeat(k, rep, axis=0), np.repeat(v, rep, axis=0)
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            att = (scores / scores.sum(-1, keepdims=True)) @ v  # (heads, seq, hd)
            x = x + self._linear(att.transpose(1, 0, 2).reshape(seq, -1), f"{p}.attn_output")
            h = self._rms(x, self.w(f"{p}.ffn_norm.weight"))
            gate = self._linear(h, f"{p}.ffn_gate")
            x = x + self._linear(gate / (1 + np.exp(-gate)) * self._linear(h, f"{p}.ffn_up"), f"{p}.ffn_down")
        x = self._rms(x, self.w("output_norm.weight"))
        return x @ self.w(self.lm_head).T
