"""GGUF tensors → HF/mlx-lm tensors: names, layout (shape order, llama's rope permutation), dequantization.

llama.cpp stores shapes fastest-axis first, so a GGUF tensor's ``shape`` is the numpy shape reversed. Its
llama converter also permutes the rows of Q and K so that llama.cpp can apply rope to interleaved pairs;
mlx-lm (like HF) rotates halves, so those rows must be put back. Qwen2 files use llama.cpp's NEOX rope
(rotate-half) and are stored unpermuted.
"""

from __future__ import annotations

import re

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, ReaderTensor, quants

from tooltune.errors import GGUFImportError

SUPPORTED_ARCHITECTURES = ("qwen2", "llama")

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")


def hf_name(gguf_name: str) -> str:
    """The mlx-lm parameter name for a llama.cpp tensor name, or a clear error if there is none."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    m = _BLOCK_RE.match(gguf_name)
    if m and m.group(2) in _BLOCK_NAMES:
        return f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"
    if gguf_name == "rope_freqs.weight":
        raise GGUFImportError(
            "this GGUF carries llama3-style rope frequency factors (rope_freqs.weight), which tooltune "
            "cannot convert yet; use a model without rope scaling or convert it from the original safetensors"
        )
    raise GGUFImportError(
        f"tensor {gguf_name!r} has no known MLX equivalent; this GGUF variant is not supported"
    )


def quant_type_name(tensor: ReaderTensor) -> str:
    return GGMLQuantizationType(tensor.tensor_type).name


def can_dequantize(qtype: GGMLQuantizationType) -> bool:
    """True if the gguf package can dequantize this type (probed on one block of zeros)."""
    if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return True
    sizes = quants.GGML_QUANT_SIZES.get(qtype)
    if sizes is None:
        return False
    _, type_size = sizes
    try:
        quants.dequantize(np.zeros((1, type_size), dtype=np.uint8), qtype)
    except (NotImplementedError, KeyError, ValueError, TypeError):
        return False
    return True


def bits_per_weight(qtype: GGMLQuantizationType) -> float:
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    return 8.0 * type_size / block_size


def numpy_shape(tensor: ReaderTensor) -> tuple[int, ...]:
    """GGUF lists dimensions fastest-first; numpy (and HF) list them slowest-first."""
    return tuple(int(d) for d in reversed(tensor.shape.tolist()))


def dequantize(tensor: ReaderTensor) -> np.ndarray:
    """The tensor as float32 in HF layout (before any rope un-permutation)."""
    qtype = GGMLQuantizationType(tensor.tensor_type)
    try:
        data = quants.dequantize(tensor.data, qtype)
    except NotImplementedError as e:
        raise GGUFImportError(
            f"tensor {tensor.name!r} uses quant type {qtype.name}, which the gguf package cannot dequantize"
        ) from e
    return np.ascontiguousarray(data, dtype=np.float32).reshape(numpy_shape(tensor))


def unpermute_rope(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's ``permute`` of Q/K rows (interleaved pairs → rotate-half halves) for one projection.

    llama.cpp: ``w.reshape(n_head, 2, dim // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)``.
    """
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, rows // n_head // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def permute_rope(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's own permutation (HF layout → GGUF layout); used by tests to build llama-style files."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def check_tensor_data(reader: GGUFReader, file_size: int) -> None:
    """A truncated download shows up as tensor data reaching past the end of the file."""
    for t in reader.tensors:
        end = int(t.data_offset) + int(t.n_bytes)
        if end > file_size:
            raise GGUFImportError(
                f"the GGUF file is truncated: tensor {t.name!r} needs bytes up to {end} but the file has "
                f"{file_size}; download it again"
            )
