"""Settings, workspace atomicity, model resolution errors, tiny model, CLI help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError, model_validator

from tooltune.config import Settings, default_dtype
from tooltune.errors import ModelNotFoundError, WorkspaceError, first_error
from tooltune.models.resolve import fingerprint_model, resolve_model
from tooltune.workspace import Workspace, atomic_dir, atomic_write_json, validate_name


def test_settings_default_workspace_is_cwd_dot_tooltune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOOLTUNE_HOME", raising=False)
    monkeypatch.delenv("TOOLTUNE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    s = Settings.load()
    assert s.workspace == (tmp_path / ".tooltune").resolve()
    assert s.models_dir == (tmp_path / "xdg" / "tooltune" / "models").resolve()
    # the model cache is shared across workspaces: never inside one
    assert s.workspace not in s.models_dir.parents


def test_settings_env_and_explicit_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLTUNE_HOME", str(tmp_path / "env-ws"))
    monkeypatch.setenv("TOOLTUNE_OPENBLAS", "0")
    assert Settings.load().workspace == (tmp_path / "env-ws").resolve()
    assert Settings.load().use_openblas is False
    assert Settings.load(workspace=tmp_path / "arg-ws").workspace == (tmp_path / "arg-ws").resolve()


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only: float32 is the fast format on a Linux CPU")
def test_default_dtype_is_float32_on_linux() -> None:
    assert default_dtype() == "float32"


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "/abs", "", ".hidden", "a\\b", "x" * 101, "a..b"])
def test_validate_name_rejects_path_tricks(bad: str) -> None:
    with pytest.raises(WorkspaceError, match="invalid"):
        validate_name(bad)


def test_atomic_dir_leaves_nothing_on_error(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_existing_and_renames(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (final / "a.txt").read_text() == "a"
    with pytest.raises(WorkspaceError, match="already exists"), atomic_dir(final):
        pass
    assert (final / "a.txt").read_text() == "a"


def test_atomic_write_json_keeps_old_file_when_serialisation_fails(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    atomic_write_json(p, {"a": 1})

    class Bad:
        def __str__(self) -> str:
            raise ValueError("cannot serialise")

    with pytest.raises(ValueError):
        atomic_write_json(p, {"a": Bad()})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]


def test_atomic_write_gives_the_mode_open_would_and_keeps_an_existing_one(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; a renamed temp file must not make every result private."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    fresh = tmp_path / "fresh.json"
    atomic_write_json(fresh, {"a": 1})
    assert fresh.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~mask
    fresh.chmod(0o640)
    atomic_write_json(fresh, {"a": 2})
    assert fresh.stat().st_mode & 0o777 == 0o640 and json.loads(fresh.read_text()) == {"a": 2}


def test_first_error_names_the_nested_field_or_the_default() -> None:
    class Inner(BaseModel):
        rank: int = Field(ge=1)

    class Outer(BaseModel):
        lora: Inner

        @model_validator(mode="after")
        def _whole(self) -> Outer:
            if self.lora.rank == 3:
                raise ValueError("rank 3 is cursed")
            return self

    with pytest.raises(ValidationError) as nested:
        Outer.model_validate({"lora": {"rank": 0}})
    err = first_error(nested.value)
    assert (err.where, err.type, err.input) == ("lora.rank", "greater_than_equal", 0)
    assert "greater than or equal to 1" in err.msg
    with pytest.raises(ValidationError) as whole:  # a model-level error has no location
        Outer.model_validate({"lora": {"rank": 3}})
    assert first_error(whole.value, default="config").where == "config"
    assert "rank 3 is cursed" in first_error(whole.value).msg


def test_workspace_layout(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    for sub in ("datasets", "runs", "adapters", "reports", "evals", "jobs"):
        assert (ws.root / sub).is_dir()
    with pytest.raises(WorkspaceError):
        ws.adapter_dir("../../etc")


def test_resolve_unknown_model_is_one_clear_sentence(settings: Settings) -> None:
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'nope'.*local MLX folder"):
        resolve_model("nope", settings)


def test_resolve_default_model_missing_says_how_to_import(settings: Settings) -> None:
    with pytest.raises(ModelNotFoundError, match="tooltune models import-default"):
        resolve_model(settings.default_model, settings)


def test_resolve_folder_that_is_not_a_model(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not an MLX model"):
        resolve_model(tmp_path / "empty", settings)


def test_resolve_missing_gguf(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(tmp_path / "missing.gguf", settings)


def test_resolve_hub_id_offline_is_clear(settings: Settings) -> None:
    with pytest.raises(ModelNotFoundError, match="Hugging Face hub"):
        resolve_model("no-such-org-tooltune/no-such-model", settings)


def test_resolve_local_and_cached(settings: Settings, tiny_model: Path) -> None:
    assert resolve_model(tiny_model, settings).source == "local"
    settings.models_dir.mkdir(parents=True)
    (settings.models_dir / "tiny").symlink_to(tiny_model)
    r = resolve_model("tiny", settings)
    assert r.source == "cache" and r.path == settings.models_dir / "tiny"


def test_tiny_model_loads_with_json_tools_parser(tiny_model: Path) -> None:
    from mlx_lm import load

    model, tok = load(str(tiny_model))
    assert tok.tool_parser.__module__ == "mlx_lm.tool_parsers.json_tools"
    assert tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tools=tools, add_generation_prompt=True, tokenize=False
    )
    assert "<tools>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    # the tool-call markers survive encode/decode, so the server's parser can find them
    ids = tok.encode(
        '<tool_call>\n{"name": "read_file", "arguments": {}}\n</tool_call>', add_special_tokens=False
    )
    assert tok.decode(ids).startswith("<tool_call>")
    assert len(fingerprint_model(tiny_model)) == 16


def test_tiny_model_builds_deterministically(tmp_path: Path) -> None:
    from tooltune.testing.tiny_model import build

    a = fingerprint_model(build(tmp_path / "a", seed=3))
    b = fingerprint_model(build(tmp_path / "b", seed=3))
    c = fingerprint_model(build(tmp_path / "c", seed=4))
    assert a == b != c


def _cli(*args: str, env_home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tooltune", *args],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TOOLTUNE_HOME": str(env_home)},
        timeout=120,
    )


def test_cli_help_lists_every_verb(tmp_path: Path) -> None:
    r = _cli("--help", env_home=tmp_path)
    assert r.returncode == 0, r.stderr
    for verb in ("models", "data", "train", "eval", "adapters", "serve", "ask", "mcp", "demo"):
        assert f" {verb} " in r.stdout
    assert "--workspace" in r.stdout and "--log-json" in r.stdout


@pytest.mark.parametrize(
    "verb", ["models", "data", "train", "eval", "adapters", "serve", "ask", "mcp", "demo"]
)
def test_cli_each_verb_has_help(tmp_path: Path, verb: str) -> None:
    r = _cli(verb, "--help", env_home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Usage:" in r.stdout and len(r.stdout) > 200


def test_cli_error_keeps_brackets(tmp_path: Path) -> None:
    """Errors are printed literally: rich markup must not eat `[demo]`-style text in messages."""
    r = _cli("models", "resolve", "no-such-model[demo]", env_home=tmp_path)
    assert r.returncode != 0
    assert "no-such-model[demo]" in r.stderr


def test_logs_follow_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """Logging goes to stderr (stdout is the MCP channel) — the stderr of the moment, not a stale one."""
    import io

    from tooltune.logs import configure_logging, get_logger

    old, tmp = sys.stderr, io.StringIO()
    sys.stderr = tmp
    try:
        configure_logging()  # e.g. an in-process CLI run under a captured stderr
    finally:
        sys.stderr = old
    tmp.close()  # a stream someone closed must not break later logging
    get_logger("t").info("hello-stderr", n=1)
    out, err = capsys.readouterr()
    assert "hello-stderr" in err and "hello-stderr" not in out
