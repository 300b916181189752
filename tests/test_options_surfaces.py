"""One source per option: the CLI flags and the MCP parameters of training and data generation are the
config models' fields. With no option given, each surface hands its service exactly the model's defaults;
the MCP schema publishes the model's defaults, descriptions and bounds; and the CLI help states them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from tooltune.config import Settings
from tooltune.data.generate_config import GenerateConfig
from tooltune.options import model_options
from tooltune.server import build_server
from tooltune.server.state import ServerState
from tooltune.training.train_config import RESOLVED_FIELDS, TrainConfig

TRAIN_OPTIONS = model_options(TrainConfig, exclude=("model", "dataset", *RESOLVED_FIELDS))
MCP_TRAIN_OPTIONS = [o for o in TRAIN_OPTIONS if o.name != "hosts"]  # no processes on other hosts over MCP
GENERATE_OPTIONS = model_options(GenerateConfig)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    from tooltune import cli as tooltune_cli

    if "train" not in tooltune_cli.app:
        tooltune_cli._register()
    monkeypatch.setattr(tooltune_cli, "configure_logging", lambda **_: None)

    def run(*argv: str) -> Any:
        return tooltune_cli.app.meta(list(argv), result_action="return_value")

    return run


def _tool_schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    async def main() -> dict[str, dict[str, Any]]:
        async with mcp.Client(build_server(settings, state=ServerState(settings))) as c:
            return {t.name: t.input_schema for t in (await c.list_tools()).tools}

    return anyio.run(main)


class _Stop(Exception):
    """Raised by a fake service once it has seen the config it was given."""


def test_mcp_schema_publishes_each_field_default_description_and_bounds(settings: Settings) -> None:
    schemas = _tool_schemas(settings)
    for tool, options in (
        ("train_adapter", MCP_TRAIN_OPTIONS),
        ("generate_training_examples", GENERATE_OPTIONS),
    ):
        props = schemas[tool]["properties"]
        for o in options:
            assert o.name in props, f"{tool} lacks {o.name}"
            assert props[o.name].get("default") == json.loads(json.dumps(o.default)), (tool, o.name)
            assert props[o.name].get("description", "") == o.description, (tool, o.name)
    assert "hosts" not in schemas["train_adapter"]["properties"]
    rank = schemas["train_adapter"]["properties"]["rank"]
    assert (rank["minimum"], rank["maximum"]) == (1, 1024)
    assert schemas["generate_training_examples"]["properties"]["contrast_share"]["maximum"] == 1
    # the drift this replaces: MCP said lr 1e-4 and batch 4 while TrainConfig said 5e-5 and (then) 4
    assert schemas["train_adapter"]["properties"]["learning_rate"]["default"] == 5e-5
    assert schemas["train_adapter"]["properties"]["batch_size"]["default"] == 1


def test_cli_help_states_each_field_default(
    cli: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from tooltune.cli import train as train_cli

    flags = train_cli.train.__signature__.parameters  # type: ignore[attr-defined]
    for o in TRAIN_OPTIONS:
        assert o.name in flags, o.name
        help_text = flags[o.name].annotation.__metadata__[0].help
        assert help_text.startswith(o.description)
        if o.default is not None:
            assert help_text.endswith(f"[default: {o.default}]"), (o.name, help_text)


def test_no_option_given_means_the_model_defaults_on_every_surface(
    cli: Callable[..., Any], settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tooltune.cli import train as train_cli
    from tooltune.data import datasets
    from tooltune.server.tools import data as data_tools
    from tooltune.server.tools import training as training_tools

    seen: dict[str, Any] = {}

    def fake_start(cfg: TrainConfig, *_: Any, **__: Any) -> Any:
        seen.setdefault("train", []).append(cfg)
        raise _Stop

    def fake_generate(_ws: Any, _name: str, _specs: Any, cfg: GenerateConfig, **__: Any) -> Any:
        seen.setdefault("generate", []).append(cfg)
        raise _Stop

    monkeypatch.setattr(train_cli, "start_training", fake_start)
    monkeypatch.setattr(training_tools, "start_training", fake_start)
    monkeypatch.setattr(datasets, "generate_dataset", fake_generate)  # the CLI imports it when it runs
    monkeypatch.setattr(data_tools, "generate_dataset", fake_generate)

    with pytest.raises(_Stop):
        cli("train", "--dataset", "d")
    with pytest.raises(_Stop):
        cli("data", "generate", "--tools", "builtin:coding", "--out", "x")

    async def via_mcp() -> None:
        async with mcp.Client(build_server(settings, state=ServerState(settings))) as c:
            await c.call_tool("train_adapter", {"dataset": "d"})
            await c.call_tool("generate_training_examples", {"builtin": "coding", "name": "y"})

    anyio.run(via_mcp)
    want_train = TrainConfig(dataset="d")
    assert [c.model_dump() for c in seen["train"]] == [want_train.model_dump()] * 2
    assert [c.model_dump() for c in seen["generate"]] == [GenerateConfig().model_dump()] * 2


def test_a_given_option_reaches_the_service_on_both_surfaces(
    cli: Callable[..., Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tooltune.cli import train as train_cli
    from tooltune.server.tools import training as training_tools

    seen: list[TrainConfig] = []

    def fake_start(cfg: TrainConfig, *_: Any, **__: Any) -> Any:
        seen.append(cfg)
        raise _Stop

    monkeypatch.setattr(train_cli, "start_training", fake_start)
    monkeypatch.setattr(training_tools, "start_training", fake_start)
    with pytest.raises(_Stop):
        cli("train", "--dataset", "d", "--lr", "1e-4", "--batch-size", "2", "--no-mask-prompt")

    async def via_mcp() -> None:
        async with mcp.Client(build_server(settings, state=ServerState(settings))) as c:
            args = {"dataset": "d", "learning_rate": 1e-4, "batch_size": 2, "mask_prompt": False}
            await c.call_tool("train_adapter", args)

    anyio.run(via_mcp)
    assert len(seen) == 2 and seen[0].model_dump() == seen[1].model_dump()
    assert (seen[0].learning_rate, seen[0].batch_size, seen[0].mask_prompt) == (1e-4, 2, False)


def test_build_config_names_the_flag_of_a_bad_value_and_keeps_the_defaults() -> None:
    import pytest

    from tooltune.cli.options import build_config
    from tooltune.data.onpolicy import SampleConfig
    from tooltune.errors import TooltuneError

    assert build_config(SampleConfig, {"k": 3, "temperature": None}) == SampleConfig(k=3)
    with pytest.raises(TooltuneError, match=r"--max-tokens: .* \(got 2\)"):
        build_config(SampleConfig, {"max_tokens": 2})
