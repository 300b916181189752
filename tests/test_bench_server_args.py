"""The bench scripts that start a bare mlx_lm.server pass the flags tooltune's own model server passes on
the same device (on a CPU: prompts one at a time), and record them beside their results."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from bench_import import bench_module

from tooltune.config import Settings
from tooltune.device import detect_device
from tooltune.serving.server_flags import default_server_args


class _Started(Exception):
    pass


def _capture(seen: dict[str, Any]):  # a stand-in for mlx_endpoint that stops the script once called
    @contextmanager
    def fake(model: Path, settings: Settings, **kw: Any) -> Iterator[None]:
        seen.update(kw)
        raise _Started
        yield

    return fake


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("eval_throughput", ["--levels", "1", "--per-category", "1"]),
        ("bfcl_baseline", ["--categories", ""]),
    ],
)
def test_bare_servers_get_tooltune_s_flags(
    script: str, argv: list[str], settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = bench_module(script)
    monkeypatch.setenv("TOOLTUNE_BLAS_THREADS", "1")  # main() sets it; keep it from later tests
    assert mod.default_server_args() == default_server_args()  # tooltune's own, on this device
    if detect_device().kind == "cpu":
        assert default_server_args() == ["--prompt-concurrency", "1"]
    seen: dict[str, Any] = {}
    monkeypatch.setattr(mod, "mlx_endpoint", _capture(seen))
    monkeypatch.setattr(mod, "default_server_args", lambda: ["--the-flags"])
    monkeypatch.setattr(
        sys, "argv", [script, "--model", str(tmp_path / "m"), "--out", str(tmp_path / "o.json")]
    )
    sys.argv += argv
    with pytest.raises(_Started):
        mod.main()
    assert seen["extra_args"] == ["--the-flags"]
