"""What is in the model cache: one :class:`ModelEntry` per MLX model folder, for ``tooltune models list``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from tooltune.config import Settings, default_dtype, default_quantize_bits
from tooltune.device import detect_device
from tooltune.models.gguf_import import read_import_record
from tooltune.models.resolve import is_mlx_model_dir
from tooltune.models.weights import float_weights_dtype


class ModelEntry(BaseModel):
    name: str
    path: Path
    size_bytes: int
    dtype: str  # "float32", "bfloat16", "4-bit (float32 scales)", ...
    architecture: str
    tool_parser: str | None
    is_default: bool = False
    source: str | None = None  # the GGUF it was imported from, if tooltune imported it


def platform_default_format() -> str:
    """The fast format on this machine, in words (why: see docs/PLATFORM.md's measurements)."""
    kind = detect_device().kind
    if kind == "metal":
        return f"{default_quantize_bits()}-bit (Apple silicon: quantized matmuls run on Metal)"
    if kind == "cuda":
        return f"{default_dtype()} (NVIDIA GPU: MLX's CUDA backend)"
    return (
        f"{default_dtype()} + OpenBLAS (Linux CPU: only float32 matmuls use BLAS; 4-bit and bf16 are slower)"
    )


def model_dtype(model_dir: Path, config: dict[str, Any]) -> str:
    # the weights first, as the probe tolerance reads them (a conversion can leave config's dtype behind)
    try:
        float_dtype = float_weights_dtype(model_dir)
    except (OSError, ValueError):  # a broken weights file is listed, not fatal to the listing
        float_dtype = None
    float_dtype = float_dtype or config.get("torch_dtype") or config.get("dtype") or "unknown"
    quant = config.get("quantization") or config.get("quantization_config")
    if isinstance(quant, dict) and quant.get("bits"):
        return f"{quant['bits']}-bit ({float_dtype} scales)"
    return str(float_dtype)


def _chat_template(model_dir: Path, tokenizer_config: dict[str, Any]) -> str | None:
    template = tokenizer_config.get("chat_template")
    jinja = model_dir / "chat_template.jinja"
    if template is None and jinja.exists():
        template = jinja.read_text(encoding="utf-8")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        template = "\n".join(t.get("template", "") for t in template if isinstance(t, dict))
    return template if isinstance(template, str) else None


def tool_parser(model_dir: Path) -> str | None:
    """The tool parser mlx-lm will use: ``tool_parser_type`` from tokenizer_config.json, else inferred from
    the chat template exactly as mlx-lm does (without loading the tokenizer)."""
    path = model_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(path.read_text()) if path.exists() else {}
    if tokenizer_config.get("tool_parser_type"):
        return str(tokenizer_config["tool_parser_type"])
    template = _chat_template(model_dir, tokenizer_config)
    try:
        from mlx_lm.tokenizer_utils import _infer_tool_parser

        return _infer_tool_parser(SimpleNamespace(chat_template=template, get_vocab=dict))
    except (ImportError, AttributeError, TypeError):  # private API moved: the rule that matters for Qwen
        if template and "<tool_call>" in template and "tool_call.name" in template:
            return "json_tools"
        return None


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def describe_model(path: Path, *, default_name: str | None = None) -> ModelEntry:
    config = json.loads((path / "config.json").read_text())
    record = read_import_record(path)
    return ModelEntry(
        name=path.name,
        path=path,
        size_bytes=_dir_size(path),
        dtype=model_dtype(path, config),
        architecture=str(config.get("model_type", "unknown")),
        tool_parser=tool_parser(path),
        is_default=path.name == default_name,
        source=record.source if record else None,
    )


def list_models(settings: Settings) -> list[ModelEntry]:
    """Every MLX model folder in the cache, sorted by name (hidden temp folders are skipped)."""
    root = settings.models_dir
    if not root.is_dir():
        return []
    return [
        describe_model(p, default_name=settings.default_model)
        for p in sorted(root.iterdir())
        if not p.name.startswith(".") and is_mlx_model_dir(p)
    ]
