"""A training start refused before launch (missing dataset, unknown model, too many layers, adapter name
taken) writes nothing: no run folder, no job record, no lock — directly and through train_adapter."""

from __future__ import annotations

import json
from pathlib import Path

import mcp
import pytest
from read_file_examples import example

from tooltune.config import Settings
from tooltune.errors import TooltuneError
from tooltune.jobs import JobStore
from tooltune.server import build_server
from tooltune.training import runs
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _assert_nothing_written(settings: Settings) -> None:
    ws = Workspace(settings.workspace)
    assert list(ws.runs.iterdir()) == []  # not even the lock files
    assert list(ws.jobs.iterdir()) == []
    assert JobStore(ws).list() == []
    assert runs.list_runs(settings) == []
    assert runs.training_lock_holder(settings) is None


def _dataset(settings: Settings) -> str:
    d = Workspace(settings.workspace).ensure().datasets / "small"
    d.mkdir(parents=True)
    (d / "train.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(4)))
    (d / "valid.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in range(4, 6)))
    return "small"


def test_refused_starts_leave_no_run_or_job(settings: Settings, tiny_model: Path) -> None:
    with pytest.raises(TooltuneError, match="dataset 'missing' not found"):
        runs.start_training(TrainConfig(model=str(tiny_model), dataset="missing"), settings)
    _assert_nothing_written(settings)

    dataset = _dataset(settings)
    with pytest.raises(TooltuneError, match="no-such-model"):
        runs.start_training(TrainConfig(model="no-such-model", dataset=dataset), settings)
    _assert_nothing_written(settings)

    with pytest.raises(TooltuneError, match="num_layers=5 but model .* has only 2 layers"):
        runs.start_training(TrainConfig(model=str(tiny_model), dataset=dataset, num_layers=5), settings)
    _assert_nothing_written(settings)

    (Workspace(settings.workspace).adapters / "taken").mkdir(parents=True)
    with pytest.raises(TooltuneError, match="adapter named 'taken' already exists"):
        runs.start_training(TrainConfig(model=str(tiny_model), dataset=dataset), settings, name="taken")
    _assert_nothing_written(settings)


@pytest.mark.anyio
async def test_train_adapter_refused_leaves_no_run_or_job(settings: Settings, tiny_model: Path) -> None:
    async with mcp.Client(build_server(settings)) as c:
        for args in (
            {"dataset": "missing", "base_model": str(tiny_model)},
            {"dataset": _dataset(settings), "base_model": "no-such-model"},
        ):
            result = await c.call_tool("train_adapter", args)
            assert result.is_error, result.structured_content
        jobs = await c.call_tool("list_jobs", {})
        assert jobs.structured_content == {"jobs": []}
    _assert_nothing_written(settings)
