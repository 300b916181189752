"""The bench scripts that start a bare mlx_lm.server pass the flags tooltune's own model server passes on
the same device (on a CPU: prompts one at a time, in 256-token chunks), and record them beside their
results."""

from __future__ import annotations

import os
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
        assert default_server_args() == ["--prompt-concurrency", "1", "--prefill-step-size", "256"]
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


def test_a_result_records_the_command_with_the_settings_it_ran_under(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads and home change what a speed bench measures: the recorded command must show them, so the
    run can be repeated as it was (the bench's own restart marker is not the user's, and a token is
    nobody's business)."""
    common = bench_module("bench_common")
    for key in [k for k in os.environ if k.startswith("TOOLTUNE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TOOLTUNE_BLAS_THREADS", "2")
    monkeypatch.setenv("TOOLTUNE_HOME", "/tmp/ws")
    monkeypatch.setenv("TOOLTUNE_BENCH_BLAS_SET", "1")
    monkeypatch.setenv("TOOLTUNE_MCP_TOKEN", "secret")  # a token never lands in a committed result
    monkeypatch.setattr(sys, "argv", ["bench/eval_throughput.py", "--levels", "4,8"])
    assert common.command_line() == (
        "TOOLTUNE_BLAS_THREADS=2 TOOLTUNE_HOME=/tmp/ws python bench/eval_throughput.py --levels 4,8"
    )


def test_eval_throughput_compares_prefill_steps_with_tooltunes_other_flags(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--prefill-steps`` starts each variant's server with tooltune's flags and that step size (a step
    size among tooltune's own flags is replaced, not given twice)."""
    mod = bench_module("eval_throughput")
    assert mod.with_prefill_step(["--a", "1", "--prefill-step-size", "256", "--b"], 2048) == [
        "--a", "1", "--b", "--prefill-step-size", "2048",
    ]  # fmt: skip
    monkeypatch.setenv("TOOLTUNE_BLAS_THREADS", "1")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(mod, "mlx_endpoint", _capture(seen))
    monkeypatch.setattr(mod, "default_server_args", lambda: ["--prompt-concurrency", "1"])
    argv = ["--model", str(tmp_path / "m"), "--out", str(tmp_path / "o.json"), "--per-category", "1"]
    monkeypatch.setattr(
        sys, "argv", ["eval_throughput", *argv, "--levels", "8", "--prefill-steps", "512,256"]
    )
    with pytest.raises(_Started):
        mod.main()
    assert seen["extra_args"] == ["--prompt-concurrency", "1", "--prefill-step-size", "512"]
