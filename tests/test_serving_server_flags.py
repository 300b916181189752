"""The flags tooltune adds to each mlx_lm.server: on a CPU, prompts are processed one at a time and in
chunks of 256 tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tooltune.config import Settings
from tooltune.device import DEVICE_ENV, Device, is_apple_silicon
from tooltune.serving import model_server
from tooltune.serving.server_flags import CPU_SERVER_ARGS, PROMPT_ONE_AT_A_TIME, default_server_args


@pytest.mark.parametrize(("kind", "expected"), [("cpu", CPU_SERVER_ARGS), ("cuda", []), ("metal", [])])
def test_only_a_cpu_server_processes_prompts_one_at_a_time_in_chunks(kind: Any, expected: list[str]) -> None:
    assert default_server_args(Device(kind=kind, reason="test")) == expected
    if kind == "cpu":  # the measured values (docs/PLATFORM.md): one prompt at a time, 256 tokens a chunk
        assert expected == ["--prompt-concurrency", "1", "--prefill-step-size", "256"]


@pytest.mark.skipif(
    is_apple_silicon(), reason="on Apple silicon MLX runs on Metal whatever TOOLTUNE_DEVICE says"
)
def test_the_device_mlx_runs_on_here_decides_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert default_server_args() == CPU_SERVER_ARGS
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    assert default_server_args() == []


def test_the_model_server_starts_mlx_lm_server_with_them_and_a_callers_flag_wins(
    tiny_model: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line carries the defaults before the caller's ``extra_args``: argparse keeps the last
    value of a flag, so ``--prompt-concurrency 8`` from a caller turns the default off."""
    started: list[list[str]] = []

    class Stop(Exception):
        pass

    def fake_child(cmd: list[str], env: dict[str, str], port: int) -> None:
        started.append(cmd)
        raise Stop

    monkeypatch.setattr(model_server, "_Child", fake_child)
    monkeypatch.setattr(model_server, "default_server_args", lambda: list(CPU_SERVER_ARGS))
    extra = ["--prompt-concurrency", "8", "--prefill-step-size", "2048"]
    server = model_server.ModelServer(tiny_model, settings=settings, extra_args=extra)
    with pytest.raises(Stop):
        server._spawn(model_server._Target(name=None), 12345)
    cmd = started[0]
    first = cmd.index("--prompt-concurrency")
    assert cmd[first : first + 2] == PROMPT_ONE_AT_A_TIME
    assert cmd[cmd.index("--prompt-concurrency", first + 1) :][:2] == ["--prompt-concurrency", "8"]
    step = cmd.index("--prefill-step-size")
    assert cmd[step : step + 2] == ["--prefill-step-size", "256"]
    assert cmd[cmd.index("--prefill-step-size", step + 1) :][:2] == ["--prefill-step-size", "2048"]
