from __future__ import annotations

from pathlib import Path

import pytest

from tooltune.config import Settings


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2-shaped MLX model (random weights, BPE tokenizer, Qwen tool template)."""
    from tooltune.models.tiny import build

    return build(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with the workspace and model cache inside the test's temp folder."""
    monkeypatch.setenv("TOOLTUNE_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("TOOLTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return Settings.load()
