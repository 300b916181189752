"""`tooltune adapters ...` end to end through the real CLI entry point (in process, no server)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from rich.console import Console
from test_adapters_registry import make_lora_adapter, record_for

from tooltune.adapters.active import ActiveSelection, write_active
from tooltune.adapters.registry import AdapterRegistry
from tooltune.cli import context
from tooltune.config import Settings
from tooltune.workspace import Workspace


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from tooltune import cli

    if "adapters" not in cli.app:  # main() registers the verbs; do it once per process
        cli._register()
    result = cli.app.meta(["adapters", *args], result_action="return_value")
    out, err = capsys.readouterr()
    return (result if isinstance(result, int) else 0), out, err


def test_adapters_cli_verbs(
    settings: Settings,
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = Workspace(settings.workspace).ensure()
    registry = AdapterRegistry(ws)
    src = make_lora_adapter(tiny_model, tmp_path / "src")
    registry.register("tools-v1", src, record_for(tiny_model, train_metrics={"best_val_loss": 1.234}))
    write_active(ws, ActiveSelection(model=str(tiny_model), adapter="tools-v1"))

    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "tools-v1 *" in out and "1.234" in out

    # a demo adapter's name and its recorded eval stay whole on one line of a pipe's 80 columns
    long = "demo-coding-n400-i40-r8-l8-s0-tr-a83448"
    scores = {"coding-tools": {"overall": {"native": 1 / 3, "lenient": 0.5}, "n": 12, "run_id": "r"}}
    registry.register(long, src, record_for(tiny_model, eval_scores=scores))
    code, out, _ = run_cli(capsys, "list")
    (row,) = [line for line in out.splitlines() if long in line]  # never cut, even where others fold
    assert max(len(line) for line in out.splitlines()) <= 80
    monkeypatch.setattr(context, "console", Console(width=140))  # a terminal's width
    code, out, _ = run_cli(capsys, "list")
    (row,) = [line for line in out.splitlines() if long in line]
    assert "tiny-qwen2" in row and "abc123" in row and "coding-tools 33%/50% n=12" in row
    code, out, _ = run_cli(capsys, "show", long)
    assert "coding-tools 33%/50% n=12" in out
    registry.delete(long)
    code, out, _ = run_cli(capsys, "list", "--json")
    assert [r["name"] for r in json.loads(out)] == ["tools-v1"]
    code, out, _ = run_cli(capsys, "show", "tools-v1", "--json")
    assert json.loads(out)["dataset_hash"] == "abc123"
    code, out, _ = run_cli(capsys, "active", "--json")
    assert json.loads(out)["adapter"] == "tools-v1"

    code, out, _ = run_cli(capsys, "export", "tools-v1", str(tmp_path / "t.tar.gz"))
    assert code == 0 and tarfile.is_tarfile(tmp_path / "t.tar.gz")
    code, out, _ = run_cli(capsys, "rename", "tools-v1", "tools-v2")
    assert code == 0 and registry.names() == ["tools-v2"]

    code, _, err = run_cli(capsys, "delete", "tools-v2")
    assert code == 2 and "active adapter" in err and registry.names() == ["tools-v2"]
    code, _, err = run_cli(capsys, "show", "../etc")
    assert code == 2 and "invalid adapter name" in err
    code, _, err = run_cli(capsys, "show", "missing")
    assert code == 2 and "known adapters: tools-v2" in err
    code, out, _ = run_cli(capsys, "delete", "tools-v2", "--force")
    assert code == 0 and registry.names() == []
