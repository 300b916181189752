from __future__ import annotations

from pathlib import Path

import pytest

from tooltune.config import Settings


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2-shaped MLX model (random weights, BPE tokenizer, Qwen tool template)."""
    from tooltune.testing.tiny_model import build

    return build(tmp_path_factory.mktemp("models") / "tiny-qwen2")


# the BFCL files tests read (a subset of gorilla's BFCL v4 data; not shipped with the repo)
BFCL_TEST_FILES = ("BFCL_v4_simple_python.json", "BFCL_v4_irrelevance.json")


def find_bfcl_dir() -> Path | None:
    """Where the product looks for BFCL data (TOOLTUNE_BFCL_DIR, else bench/bfcl or ../shared/bench/bfcl
    next to the repo), if the files tests read are there; else None."""
    from tooltune.data.similarity import default_bfcl_dir

    found = default_bfcl_dir()
    if found is None or not all((found / name).is_file() for name in BFCL_TEST_FILES):
        return None
    return found


@pytest.fixture(scope="session")
def bfcl_dir() -> Path:
    """The BFCL data folder; tests that need it are skipped (with the reason) in a clone without it."""
    found = find_bfcl_dir()
    if found is None:
        pytest.skip(
            f"BFCL data not found: needs {' and '.join(BFCL_TEST_FILES)} in $TOOLTUNE_BFCL_DIR, "
            "bench/bfcl or ../shared/bench/bfcl next to the repo"
        )
    return found


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with the workspace and model cache inside the test's temp folder."""
    monkeypatch.setenv("TOOLTUNE_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("TOOLTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return Settings.load()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on the real 0.5B model are opt-in (`pytest -m realmodel` or TOOLTUNE_REAL_MODEL_TESTS=1):
    they take minutes, and whether a machine's cache happens to hold the model must not change what the
    default test command runs."""
    import os

    if "realmodel" in (config.getoption("-m") or "") or os.environ.get("TOOLTUNE_REAL_MODEL_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="real-model test: run with -m realmodel or TOOLTUNE_REAL_MODEL_TESTS=1")
    for item in items:
        if "realmodel" in item.keywords:
            item.add_marker(skip)
