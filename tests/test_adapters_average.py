"""Averaging LoRA adapters: the result is exactly the weighted mean of their changes, and loads in mlx-lm."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_adapters_cli import run_cli
from test_adapters_registry import make_lora_adapter, record_for

from tooltune.adapters.average import AdapterAverageError, average_adapters
from tooltune.adapters.registry import AdapterExistsError, AdapterMismatchError, AdapterRegistry
from tooltune.config import Settings
from tooltune.workspace import Workspace


@pytest.fixture(scope="module")
def sources(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("avg")
    one = make_lora_adapter(tiny_model, root / "one", seed=1)
    two = make_lora_adapter(tiny_model, root / "two", seed=2)
    config = json.loads((two / "adapter_config.json").read_text())
    config["lora_parameters"]["scale"] = 10.0  # a different scale must be folded in, not ignored
    (two / "adapter_config.json").write_text(json.dumps(config))
    return {"one": one, "two": two}


@pytest.fixture
def registry(settings: Settings, tiny_model: Path, sources: dict[str, Path]) -> AdapterRegistry:
    registry = AdapterRegistry(Workspace(settings.workspace).ensure())
    for name, src in sources.items():
        registry.register(name, src, record_for(tiny_model))
    registry.register("one-copy", sources["one"], record_for(tiny_model))
    return registry


def _changes(folder: Path) -> dict[str, object]:
    """Each adapted module's weight change, scale * a @ b (as mlx-lm applies it)."""
    import mlx.core as mx

    scale = json.loads((folder / "adapter_config.json").read_text())["lora_parameters"]["scale"]
    tensors = mx.load(str(folder / "adapters.safetensors"))
    prefixes = [k.removesuffix(".lora_a") for k in tensors if k.endswith(".lora_a")]
    return {p: scale * (tensors[f"{p}.lora_a"] @ tensors[f"{p}.lora_b"]) for p in prefixes}


def test_average_is_the_weighted_mean_of_the_changes(registry: AdapterRegistry) -> None:
    import mlx.core as mx

    record = average_adapters(registry, ["one", "two"], "soup", weights=[0.25, 0.75])
    folder = registry.path("soup")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["lora_parameters"]["rank"] == 8 and config["num_layers"] == 2
    assert [s["adapter"] for s in config["averaged_from"]] == ["one", "two"]
    assert record.train_config["weights"] == [0.25, 0.75] and record.base_model_fingerprint
    assert record.train_config["averaged_from"] == ["one", "two"]
    one, two, soup = (_changes(registry.path(n)) for n in ("one", "two", "soup"))
    assert set(soup) == set(one) == set(two) and len(soup) > 0
    for p, change in soup.items():
        expected = 0.25 * one[p] + 0.75 * two[p]
        assert mx.allclose(change, expected, atol=1e-5).item(), p
        assert not mx.allclose(change, one[p], atol=1e-3).item()  # both sources count


def test_strength_multiplies_the_change_and_scales_a_single_adapter(registry: AdapterRegistry) -> None:
    import mlx.core as mx

    record = average_adapters(registry, ["one", "two"], "soft", weights=[0.25, 0.75], strength=0.5)
    assert record.train_config["strength"] == 0.5 and record.train_config["weights"] == [0.25, 0.75]
    one, two, soft = (_changes(registry.path(n)) for n in ("one", "two", "soft"))
    for p, change in soft.items():
        assert mx.allclose(change, 0.5 * (0.25 * one[p] + 0.75 * two[p]), atol=1e-5).item(), p

    half = average_adapters(registry, ["one"], "half", strength=0.5)
    config = json.loads((registry.path("half") / "adapter_config.json").read_text())
    source = json.loads((registry.path("one") / "adapter_config.json").read_text())
    assert config["lora_parameters"]["rank"] == source["lora_parameters"]["rank"]  # a scaled copy
    assert config["strength"] == 0.5
    assert half.train_config["averaged_from"] == ["one"] and half.train_config["weights"] == [1.0]
    for p, change in _changes(registry.path("half")).items():
        assert mx.allclose(change, 0.5 * one[p], atol=1e-5).item(), p
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(AdapterAverageError, match="strength must be a positive number"):
            average_adapters(registry, ["one"], "x", strength=bad)
    with pytest.raises(AdapterAverageError, match="at least two adapters \\(or one with a strength"):
        average_adapters(registry, ["one"], "x", strength=1.0)
    assert "x" not in registry.names()


def test_average_of_an_adapter_with_itself_answers_like_it(
    tiny_model: Path, registry: AdapterRegistry
) -> None:
    """End to end through mlx-lm's own loader: the merged folder loads and gives the source's logits."""
    import mlx.core as mx
    from mlx_lm import load

    average_adapters(registry, ["one", "one-copy"], "same")
    tokens = mx.array([[1, 5, 9, 2, 7, 3]])
    base, _ = load(str(tiny_model))
    plain = base(tokens)
    adapted, _ = load(str(tiny_model), adapter_path=str(registry.path("one")))
    averaged, _ = load(str(tiny_model), adapter_path=str(registry.path("same")))
    want, got = adapted(tokens), averaged(tokens)
    assert not mx.allclose(want, plain, atol=1e-3).item()  # the adapter does change the answers
    assert mx.allclose(got, want, atol=1e-4).item()


def test_average_refuses_what_it_cannot_average_and_writes_nothing(
    tiny_model: Path, registry: AdapterRegistry, sources: dict[str, Path], tmp_path: Path
) -> None:
    import mlx.core as mx

    with pytest.raises(AdapterAverageError, match="at least two"):
        average_adapters(registry, ["one"], "x")
    with pytest.raises(AdapterAverageError, match="repeat"):
        average_adapters(registry, ["one", "one"], "x")
    with pytest.raises(AdapterAverageError, match="2 weights for 3 adapters"):
        average_adapters(registry, ["one", "two", "one-copy"], "x", weights=[1, 1])
    with pytest.raises(AdapterAverageError, match="positive"):
        average_adapters(registry, ["one", "two"], "x", weights=[1, -1])
    with pytest.raises(AdapterExistsError, match="'two' already exists"):
        average_adapters(registry, ["one", "one-copy"], "two")

    other = record_for(tiny_model).model_copy(update={"base_model_fingerprint": "0123abcd"})
    registry.register("other-base", sources["one"], other)
    with pytest.raises(AdapterMismatchError, match="only adapters of one base model"):
        average_adapters(registry, ["one", "other-base"], "x")

    deeper = shutil.copytree(sources["one"], tmp_path / "deeper")
    config = json.loads((deeper / "adapter_config.json").read_text())
    config["num_layers"] = 4
    (deeper / "adapter_config.json").write_text(json.dumps(config))
    registry.register("deeper", deeper, record_for(tiny_model))
    with pytest.raises(AdapterAverageError, match="num_layers 4 but 'one' has 2"):
        average_adapters(registry, ["one", "deeper"], "x")
    config["num_layers"], config["fine_tune_type"] = 2, "dora"
    (deeper / "adapter_config.json").write_text(json.dumps(config))
    registry.register("dora", deeper, record_for(tiny_model))
    with pytest.raises(AdapterAverageError, match="'dora' is a dora adapter"):
        average_adapters(registry, ["one", "dora"], "x")

    fewer = shutil.copytree(sources["two"], tmp_path / "fewer")
    tensors = mx.load(str(fewer / "adapters.safetensors"))
    drop = next(k.removesuffix(".lora_a") for k in tensors if k.endswith(".lora_a"))
    kept = {k: v for k, v in tensors.items() if not k.startswith(f"{drop}.")}
    mx.save_safetensors(str(fewer / "adapters.safetensors"), kept)
    registry.register("fewer", fewer, record_for(tiny_model))
    with pytest.raises(AdapterAverageError, match="'fewer' and 'one' adapt different modules"):
        average_adapters(registry, ["one", "fewer"], "x")
    assert "x" not in registry.names()
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".average.")]


def test_adapters_average_cli(registry: AdapterRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "average", "one", "two", "--name", "soup", "--weights", "1", "1")
    assert code == 0 and "registered soup" in out and "weights 1, 1" in out and "rank 8" in out
    config = json.loads((registry.path("soup") / "adapter_config.json").read_text())
    assert config["lora_parameters"]["rank"] == 8
    code, _, err = run_cli(capsys, "average", "one", "--name", "soup2")
    assert code == 2 and "at least two" in err and "soup2" not in registry.names()
    code, out, _ = run_cli(capsys, "average", "one", "two", "--name", "soft", "--strength", "0.5")
    assert code == 0 and "strength 0.5" in out and registry.get("soft").train_config["strength"] == 0.5
    code, out, _ = run_cli(capsys, "scale", "one", "--strength", "0.7", "--name", "down")
    assert code == 0 and "registered down: one at strength 0.7 (rank 4)" in out
    assert registry.get("down").train_config["strength"] == 0.7
    code, _, err = run_cli(capsys, "scale", "one", "--strength", "0", "--name", "zero")
    assert code == 2 and "strength must be a positive number" in err and "zero" not in registry.names()


def test_average_adapters_mcp_tool(settings: Settings, registry: AdapterRegistry) -> None:
    import anyio
    import mcp

    from tooltune.server import build_server

    async def main() -> None:
        async with mcp.Client(build_server(settings)) as client:
            result = await client.call_tool("average_adapters", {"names": ["one", "two"], "name": "soup"})
            assert not result.is_error and result.structured_content is not None
            out = result.structured_content
            assert out["weights"] == [0.5, 0.5] and out["rank"] == 8 and "run_eval_suite" in out["next"]
            assert out["strength"] == 1.0
            summary = out["adapter"]
            assert summary["name"] == "soup" and summary["averaged_from"] == ["one", "two"]
            assert summary["resource"] == "tooltune://adapters/soup"
            listed = await client.call_tool("list_adapters", {})
            assert "soup" in [a["name"] for a in listed.structured_content["adapters"]]  # type: ignore[index]
            down = await client.call_tool(
                "average_adapters", {"names": ["one"], "name": "down", "strength": 0.7}
            )
            assert not down.is_error and down.structured_content["strength"] == 0.7  # type: ignore[index]
            bad = await client.call_tool("average_adapters", {"names": ["one", "ghost"], "name": "x"})
            assert bad.is_error and "no adapter named 'ghost'" in bad.content[0].text  # type: ignore[union-attr]

    anyio.run(main)
    assert registry.get("soup").train_config["weights"] == [0.5, 0.5]
