"""Resolve a model reference to a local MLX model folder.

A reference is one of: a local MLX folder (has config.json), a name in the model cache
(``~/.cache/tooltune/models/<name>``), a ``.gguf`` file (imported into the cache on first use), or a
Hugging Face hub id (``org/name``, downloaded by mlx-lm; needs network).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pydantic import BaseModel

from tooltune.config import Settings, default_dtype, default_quantize_bits
from tooltune.errors import ModelNotFoundError
from tooltune.models.gguf_import import import_gguf

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ResolvedModel(BaseModel):
    reference: str
    path: Path
    source: str  # "local" | "cache" | "gguf" | "hub"


def is_mlx_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").exists() and any(path.glob("*.safetensors"))


def resolve_model(reference: str | Path, settings: Settings, *, download: bool = True) -> ResolvedModel:
    ref = str(reference)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not is_mlx_model_dir(path):
            raise ModelNotFoundError(
                f"{path} is a folder but not an MLX model (needs config.json and *.safetensors); "
                "convert it with `mlx_lm.convert` or `tooltune models import-gguf`"
            )
        return ResolvedModel(reference=ref, path=path.resolve(), source="local")
    if path.suffix == ".gguf":
        if not path.exists():
            raise ModelNotFoundError(f"GGUF file {path} does not exist")

        name = path.stem.lower()
        target = settings.models_dir / name
        if not is_mlx_model_dir(target):
            import_gguf(path, target, dtype=default_dtype(), quantize=default_quantize_bits(), overwrite=True)
        return ResolvedModel(reference=ref, path=target, source="gguf")
    cached = settings.models_dir / ref
    if "/" not in ref and is_mlx_model_dir(cached):
        return ResolvedModel(reference=ref, path=cached, source="cache")
    if HUB_ID_RE.match(ref) and not path.exists():
        if not download:
            raise ModelNotFoundError(f"{ref} looks like a hub id but downloading was not allowed")
        return ResolvedModel(reference=ref, path=_download_from_hub(ref), source="hub")
    known = ", ".join(sorted(p.name for p in settings.models_dir.glob("*") if is_mlx_model_dir(p))) or "none"
    hint = (
        "run `tooltune models import-default` for the demo model"
        if ref == settings.default_model
        else "give a local MLX folder, a .gguf file, a cached model name or a Hugging Face id (org/name)"
    )
    raise ModelNotFoundError(f"unknown model {ref!r} (cached models: {known}); {hint}")


def _download_from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id,
                allow_patterns=[
                    "*.json",
                    "*.safetensors",
                    "*.py",
                    "tokenizer.model",
                    "*.tiktoken",
                    "*.txt",
                    "*.jinja",
                ],
            )
        )
    except Exception as e:  # offline, 404, auth: one sentence the user can act on
        raise ModelNotFoundError(
            f"could not download {repo_id!r} from the Hugging Face hub ({type(e).__name__}); check the id "
            "and your network, or pass a local MLX folder / .gguf file instead"
        ) from e


def fingerprint_model(path: Path) -> str:
    """A short stable id for a model's weights: hash of config.json + sizes and first bytes of weights."""
    h = hashlib.sha256()
    h.update((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")):
        st = f.stat()
        h.update(f.name.encode())
        h.update(str(st.st_size).encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def read_config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())
