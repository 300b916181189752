"""Import a GGUF (llama.cpp) file as an MLX model folder that ``mlx_lm.load`` can open.

``mx.load`` reads only Q4_0/Q4_1/Q8_0 GGUFs, and real files mix K-quants (Q4_K, Q6_K) with Q5_0/Q8_0. So
every tensor is dequantized with the ``gguf`` package, renamed to mlx-lm's names, loaded into the mlx-lm
model class (which checks every name and shape) and saved as safetensors in the requested dtype, optionally
re-quantized with mlx-lm. The folder is built in a temp dir and renamed at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from tooltune.errors import GGUFImportError
from tooltune.logs import get_logger
from tooltune.models import gguf_tensors as gt
from tooltune.models.gguf_tokenizer import field_value, write_tokenizer
from tooltune.workspace import atomic_dir

log = get_logger(__name__)

ImportDtype = Literal["float32", "bfloat16", "float16"]
Progress = Callable[[int, int], None]
RECORD_FILE = "tooltune_model.json"
# output.weight closer than this (relative Frobenius error) to token_embd.weight is the same matrix
# quantized twice: Qwen2.5 ties them upstream. Unrelated matrices sit near sqrt(2).
TIE_TOLERANCE = 0.1
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2}


class GGUFImportRecord(BaseModel):
    """What was imported from where: written as ``tooltune_model.json`` in the model folder."""

    source: str
    source_sha256: str
    source_size: int
    name: str | None = None
    architecture: str
    dtype: str
    quantize_bits: int | None = None
    quant_types: dict[str, int]
    n_tensors: int
    n_parameters: int
    tie_word_embeddings: bool
    tie_relative_error: float | None = None
    tied_from: str | None = None  # which GGUF tensor became the shared embedding
    tokenizer_model: str | None = None
    pretokenizer: str | None = None
    created: str
    versions: dict[str, str]


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def open_gguf(src: Path) -> Any:
    """A GGUFReader, or a GGUFImportError saying what is wrong with the file."""
    from gguf import GGUFReader

    src = Path(src)
    if not src.is_file():
        raise GGUFImportError(f"GGUF file {src} does not exist")
    with open(src, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise GGUFImportError(f"{src} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        reader = GGUFReader(src, "r")
    except Exception as e:  # the reader raises ValueError/IndexError/struct errors on cut-off headers
        raise GGUFImportError(
            f"{src} is a truncated or corrupt GGUF file ({type(e).__name__} while reading its header); "
            "download it again"
        ) from e
    gt.check_tensor_data(reader, src.stat().st_size)
    return reader


def _arch_param(reader: Any, arch: str, key: str, default: Any = None, *, required: bool = True) -> Any:
    value = field_value(reader, f"{arch}.{key}", default)
    if value is None and required:
        raise GGUFImportError(
            f"the GGUF metadata lacks {arch}.{key}, which tooltune needs to write config.json"
        )
    return value


def _f32(value: Any) -> float:
    """GGUF stores float32: write the shortest decimal that round-trips (1e-06, not 9.99999997e-07)."""
    return float(str(np.float32(value)))


def build_config(reader: Any, arch: str, tensors: dict[str, Any]) -> dict[str, Any]:
    """config.json for mlx-lm, from GGUF metadata (rope_theta at top level: mlx-lm reads it there)."""
    hidden = int(_arch_param(reader, arch, "embedding_length"))
    n_head = int(_arch_param(reader, arch, "attention.head_count"))
    n_kv = int(_arch_param(reader, arch, "attention.head_count_kv", n_head))
    head_dim = int(_arch_param(reader, arch, "attention.key_length", hidden // n_head))
    rope_dims = int(_arch_param(reader, arch, "rope.dimension_count", head_dim))
    if rope_dims != head_dim:
        raise GGUFImportError(f"partial rotary embeddings ({rope_dims} of {head_dim} dims) are not supported")
    scaling = field_value(reader, f"{arch}.rope.scaling.type")
    if scaling not in (None, "none"):
        raise GGUFImportError(
            f"rope scaling {scaling!r} in the GGUF is not supported; use a model without it"
        )
    emb = tensors["token_embd.weight"]
    vocab = gt.numpy_shape(emb)[0]
    config: dict[str, Any] = {
        "model_type": arch,
        "architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": int(_arch_param(reader, arch, "block_count")),
        "intermediate_size": int(_arch_param(reader, arch, "feed_forward_length")),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "rms_norm_eps": _f32(_arch_param(reader, arch, "attention.layer_norm_rms_epsilon")),
        "rope_theta": _f32(_arch_param(reader, arch, "rope.freq_base", 10000.0)),
        "max_position_embeddings": int(_arch_param(reader, arch, "context_length", 4096)),
        "vocab_size": vocab,
    }
    if arch == "llama":
        config["head_dim"] = head_dim
        config["attention_bias"] = "blk.0.attn_q.bias" in tensors
        config["mlp_bias"] = "blk.0.ffn_up.bias" in tensors
    elif head_dim != hidden // n_head:
        raise GGUFImportError(f"qwen2 with head_dim {head_dim} != hidden/heads is not supported")
    return config


def _estimate_output_bytes(tensors: dict[str, Any], dtype: str, quantize: int | None) -> int:
    n = sum(int(np.prod(gt.numpy_shape(t))) for t in tensors.values())
    per_weight = (
        (quantize / 8 + 8 / 64) if quantize else _ITEMSIZE[dtype]
    )  # 4-bit: + scale/bias per group of 64
    return int(n * per_weight * 1.05) + (32 << 20)  # + tokenizer files and slack


def _check_disk(out_dir: Path, needed: int) -> None:
    probe = out_dir.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise GGUFImportError(
            f"not enough disk space: the imported model needs about {needed / 1e9:.1f} GB in {probe} "
            f"but only {free / 1e9:.1f} GB is free; free some space or choose another output folder"
        )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("tooltune", "mlx", "mlx-lm", "gguf", "tokenizers"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def inspect_gguf(src: Path) -> dict[str, Any]:
    """Validate a GGUF for import without converting it: architecture, quant types, tensors (or raise)."""
    reader = open_gguf(src)
    arch = field_value(reader, "general.architecture")
    if arch not in gt.SUPPORTED_ARCHITECTURES:
        raise GGUFImportError(
            f"GGUF architecture {arch!r} is not supported; supported: {', '.join(gt.SUPPORTED_ARCHITECTURES)}"
        )
    tensors = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in tensors:
        raise GGUFImportError("the GGUF has no token_embd.weight tensor; it is not a complete language model")
    seen: Counter[str] = Counter()
    checked: dict[int, bool] = {}
    from gguf import GGMLQuantizationType

    for t in reader.tensors:
        qtype = GGMLQuantizationType(t.tensor_type)
        if qtype not in checked:
            checked[qtype] = gt.can_dequantize(qtype)
        if not checked[qtype]:
            raise GGUFImportError(
                f"tensor {t.name!r} uses quant type {qtype.name}, which the gguf package cannot dequantize; "
                "re-quantize the model with a common type (Q4_K_M, Q8_0, F16)"
            )
        gt.hf_name(t.name)  # raises for tensors without an MLX equivalent
        seen[qtype.name] += 1
    return {"reader": reader, "arch": arch, "tensors": tensors, "quant_types": dict(seen)}


def _tie_decision(tensors: dict[str, Any]) -> tuple[bool, float | None, str | None, np.ndarray | None]:
    """Whether lm_head equals the embedding up to quant noise; if so, also the more precise of the two."""
    from gguf import GGMLQuantizationType

    emb_t = tensors["token_embd.weight"]
    out_t = tensors.get("output.weight")
    if out_t is None:
        return True, None, "token_embd.weight", None
    if gt.numpy_shape(out_t) != gt.numpy_shape(emb_t):
        return False, None, None, None
    emb = gt.dequantize(emb_t)
    out = gt.dequantize(out_t)
    rel = float(np.linalg.norm(out - emb) / max(float(np.linalg.norm(emb)), 1e-30))
    if rel > TIE_TOLERANCE:
        return False, rel, None, None

    def bpw(t: Any) -> float:
        q = GGMLQuantizationType(t.tensor_type)
        return {GGMLQuantizationType.F32: 32.0, GGMLQuantizationType.F16: 16.0}.get(q) or gt.bits_per_weight(
            q
        )

    if bpw(out_t) > bpw(emb_t):
        return True, rel, "output.weight", out
    return True, rel, "token_embd.weight", emb


def import_gguf(
    src: Path,
    out_dir: Path,
    *,
    dtype: ImportDtype = "float32",
    quantize: int | None = None,
    progress: Progress | None = None,
    sha256: str | None = None,
    source_label: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert ``src`` (a qwen2 or llama GGUF) into the MLX model folder ``out_dir`` and return it.

    ``sha256`` may be passed when the caller already hashed the file (saves a second read);
    ``source_label`` replaces the file path in the import record (e.g. for a temp file).
    """
    import mlx.core as mx

    src = Path(src)
    out_dir = Path(out_dir)
    if dtype not in _ITEMSIZE:
        raise GGUFImportError(f"dtype {dtype!r} is not supported; use one of {', '.join(_ITEMSIZE)}")
    if quantize is not None and quantize not in (2, 3, 4, 5, 6, 8):
        raise GGUFImportError(f"--quantize {quantize} is not supported; use 4 or 8 bits (or 2, 3, 5, 6)")
    if out_dir.exists() and not overwrite:
        raise GGUFImportError(f"{out_dir} already exists; choose another name or delete it first")
    info = inspect_gguf(src)
    reader, arch, tensors = info["reader"], info["arch"], info["tensors"]
    config = build_config(reader, arch, tensors)
    _check_disk(out_dir, _estimate_output_bytes(tensors, dtype, quantize))
    source_sha = sha256 or sha256_file(src)
    log.info(
        "gguf_import_start",
        src=str(src),
        arch=arch,
        tensors=len(tensors),
        quant_types=info["quant_types"],
        dtype=dtype,
        quantize=quantize,
    )

    total = len(tensors)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    tied, rel, tied_from, shared = _tie_decision(tensors)
    config["tie_word_embeddings"] = tied
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    mx_dtype = getattr(mx, dtype)
    weights: dict[str, Any] = {}
    n_params = 0
    for name, t in tensors.items():
        if tied and name in ("token_embd.weight", "output.weight"):
            tick()
            continue
        w = gt.dequantize(t)
        if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
            w = gt.unpermute_rope(w, n_head if ".attn_q." in name else n_kv)
        weights[gt.hf_name(name)] = mx.array(w).astype(mx_dtype)
        n_params += w.size
        del w
        tick()
    if tied:
        if shared is None:
            shared = gt.dequantize(tensors["token_embd.weight"])
        weights["model.embed_tokens.weight"] = mx.array(shared).astype(mx_dtype)
        n_params += shared.size
        del shared
    mx.eval(weights)

    module = importlib.import_module(f"mlx_lm.models.{arch}")
    model = module.Model(module.ModelArgs.from_dict(config))
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as e:
        raise GGUFImportError(
            f"the GGUF tensors do not match a {arch} model with its own metadata ({e})"
        ) from e
    del weights
    config["torch_dtype"] = dtype
    if quantize:
        from mlx_lm.utils import quantize_model

        with contextlib.redirect_stdout(sys.stderr):  # mlx-lm prints an [INFO] line
            model, config = quantize_model(model, config, group_size=64, bits=quantize)

    record = GGUFImportRecord(
        source=source_label or str(src.resolve()),
        source_sha256=source_sha,
        source_size=src.stat().st_size,
        name=field_value(reader, "general.name"),
        architecture=arch,
        dtype=dtype,
        quantize_bits=quantize,
        quant_types=info["quant_types"],
        n_tensors=total,
        n_parameters=int(n_params),
        tie_word_embeddings=tied,
        tie_relative_error=rel,
        tied_from=tied_from,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=_versions(),
    )
    from mlx_lm.utils import save_model

    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        save_model(tmp, model, donate_model=True)
        tok_facts = write_tokenizer(reader, arch, tmp, context_length=config["max_position_embeddings"])
        eos = tok_facts["eos_token_ids"]
        config["eos_token_id"] = eos[0] if len(eos) == 1 else eos
        config["bos_token_id"] = tok_facts["bos_token_id"]
        if tok_facts["n_tokens"] > config["vocab_size"]:
            raise GGUFImportError(
                f"the tokenizer has {tok_facts['n_tokens']} tokens but the embedding only "
                f"{config['vocab_size']} rows; the GGUF is inconsistent"
            )
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        record.tokenizer_model = tok_facts["tokenizer_model"]
        record.pretokenizer = tok_facts["pretokenizer"]
        (tmp / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
    log.info("gguf_import_done", out=str(out_dir), tied=tied, tie_relative_error=rel, params=n_params)
    return out_dir


def read_import_record(model_dir: Path) -> GGUFImportRecord | None:
    path = Path(model_dir) / RECORD_FILE
    if not path.exists():
        return None
    try:
        return GGUFImportRecord.model_validate_json(path.read_text())
    except ValueError:
        return None
