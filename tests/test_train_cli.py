"""`tooltune train` / `tooltune runs` through the real CLI parser (in process; the worker is real)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tooltune.config import Settings
from tooltune.jobs import JobStore
from tooltune.workspace import Workspace


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """Run the real CLI parser in process. The launcher's logging setup is skipped: it would bind
    structlog to pytest's per-test capture file, which is closed once this test ends."""
    from tooltune import cli as tooltune_cli

    if "train" not in tooltune_cli.app:  # main() registers the verbs; do it once per process
        tooltune_cli._register()
    monkeypatch.setattr(tooltune_cli, "configure_logging", lambda **_: None)

    def run(*argv: str) -> int:
        result = tooltune_cli.app.meta(list(argv), result_action="return_value")
        return result if isinstance(result, int) else 0

    return run


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    (d / "train.jsonl").write_text((json.dumps({"messages": msgs}) + "\n") * 8)
    return d


@pytest.mark.slow
def test_config_file_flags_detach_cancel_and_runs_list(
    tiny_model: Path,
    settings: Settings,
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    cli: Callable[..., int],
) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"model: {tiny_model}\ndataset: {data}\nlora_parameters: {{rank: 2, scale: 4.0}}\niters: 500\n"
    )
    flags = ["--rank", "6", "--alpha", "3", "--batch-size", "2", "--train-tokens", "<tool_call>", "--detach"]
    flags += ["--value-loss-weight", "0.5", "--decision-loss-weight", "3", "--anchor-loss-weight", "2"]
    assert cli("train", "--config", str(cfg), *flags) == 0
    started = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run_dir = Path(started["run_dir"])
    resolved = json.loads((run_dir / "config.json").read_text())
    got = (resolved["rank"], resolved["scale"], resolved["batch_size"], resolved["iters"])
    assert got == (6, 3.0, 2, 500)  # flags beat the file, the file beats defaults
    assert resolved["train_tokens"] == ["<tool_call>"]
    weights = ("value_loss_weight", "decision_loss_weight", "anchor_loss_weight")
    assert tuple(resolved[k] for k in weights) == (0.5, 3.0, 2.0)

    assert cli("train", "cancel", started["run_id"]) == 0
    job = JobStore(Workspace(settings.workspace)).wait(started["job_id"], timeout=240, poll=0.2)
    assert job.status == "cancelled", (job.status, job.error)

    capsys.readouterr()
    assert cli("runs", "list") == 0
    line = capsys.readouterr().out
    assert started["run_id"] in line and "cancelled" in line
    assert cli("runs", "show", started["run_id"], "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["status"] == "cancelled" and shown["config"]["rank"] == 6


def test_cli_errors_are_one_sentence_and_exit_2(
    tiny_model: Path,
    settings: Settings,
    data: Path,
    capsys: pytest.CaptureFixture[str],
    cli: Callable[..., int],
) -> None:
    assert cli("train", "--dataset", str(data), "--model", str(tiny_model), "--num-layers", "4") == 2
    err = " ".join(capsys.readouterr().err.split())  # rich folds long lines
    assert "num_layers=4" in err and "has only 2 layers" in err
    assert cli("train", "--resume", "run-nope") == 2
    assert "no training run or job 'run-nope'" in " ".join(capsys.readouterr().err.split())
