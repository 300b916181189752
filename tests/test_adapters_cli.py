"""`tooltune adapters ...` end to end through the real CLI entry point (in process, no server)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from test_adapters_registry import make_lora_adapter, record_for

from tooltune.adapters.active import ActiveSelection, write_active
from tooltune.adapters.registry import AdapterRegistry
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
    settings: Settings, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace(settings.workspace).ensure()
    registry = AdapterRegistry(ws)
    src = make_lora_adapter(tiny_model, tmp_path / "src")
    registry.register("tools-v1", src, record_for(tiny_model, train_metrics={"best_val_loss": 1.234}))
    write_active(ws, ActiveSelection(model=str(tiny_model), adapter="tools-v1"))

    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "tools-v1" in out and "1.234" in out
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
