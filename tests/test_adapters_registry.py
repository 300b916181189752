"""Adapter registry: atomic register, name validation, base-model check, corrupt files, export."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tooltune.adapters.active import ActiveSelection, read_active, write_active
from tooltune.adapters.registry import (
    AdapterExistsError,
    AdapterInUseError,
    AdapterMismatchError,
    AdapterRecord,
    AdapterRegistry,
    CorruptAdapterError,
    UnknownAdapterError,
)
from tooltune.config import Settings
from tooltune.errors import WorkspaceError
from tooltune.models.resolve import fingerprint_model
from tooltune.workspace import Workspace


def make_lora_adapter(model_path: Path, out_dir: Path, *, seed: int = 1, magnitude: float = 0.5) -> Path:
    """Write an mlx-lm LoRA adapter (as ``mlx_lm.lora`` saves it) whose ``lora_b`` is non-zero.

    A freshly initialised LoRA has ``lora_b = 0`` and changes nothing; random ``lora_b`` makes the
    adapter visibly change the model's answers, which the serving probe must detect.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.lora import LoRALinear
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(model_path))
    model.freeze()
    lora_parameters = {"rank": 4, "scale": 20.0, "dropout": 0.0}
    linear_to_lora_layers(model, 2, lora_parameters)
    mx.random.seed(seed)
    for _, module in model.named_modules():
        if isinstance(module, LoRALinear):
            module.lora_b = mx.random.normal(module.lora_b.shape) * magnitude
    weights = dict(tree_flatten(model.trainable_parameters()))
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out_dir / "adapters.safetensors"), weights)
    config = {
        "model": str(model_path),
        "fine_tune_type": "lora",
        "num_layers": 2,
        "lora_parameters": lora_parameters,
        "iters": 0,
        "seed": seed,
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=4))
    return out_dir


def record_for(model_path: Path, **kw: object) -> AdapterRecord:
    return AdapterRecord(
        name="placeholder",
        base_model=str(model_path),
        base_model_fingerprint=fingerprint_model(model_path),
        dataset_hash="abc123",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def adapter_src(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora_adapter(tiny_model, tmp_path_factory.mktemp("adapter") / "a")


@pytest.fixture
def registry(settings: Settings) -> AdapterRegistry:
    return AdapterRegistry(Workspace(settings.workspace).ensure())


def test_register_get_list_roundtrip(registry: AdapterRegistry, adapter_src: Path, tiny_model: Path) -> None:
    rec = registry.register("tools-v1", adapter_src, record_for(tiny_model, train_metrics={"val_loss": 1.5}))
    assert rec.name == "tools-v1"
    assert len(rec.adapter_fingerprint) == 16
    got = registry.get("tools-v1")
    assert got.train_metrics == {"val_loss": 1.5}
    assert got.base_model_fingerprint == fingerprint_model(tiny_model)
    assert {"mlx", "mlx_lm", "tooltune"} <= set(got.versions)
    folder = registry.path("tools-v1")
    assert sorted(p.name for p in folder.iterdir()) == [
        "adapter_config.json",
        "adapters.safetensors",
        "tooltune.json",
    ]
    assert [r.name for r in registry.list()] == ["tools-v1"]


def test_register_refuses_existing_name_unless_overwrite(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path
) -> None:
    registry.register("a", adapter_src, record_for(tiny_model, run_id="r1"))
    with pytest.raises(AdapterExistsError, match="already exists"):
        registry.register("a", adapter_src, record_for(tiny_model, run_id="r2"))
    assert registry.get("a").run_id == "r1"
    registry.register("a", adapter_src, record_for(tiny_model, run_id="r2"), overwrite=True)
    assert registry.get("a").run_id == "r2"


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "/abs/path", "", ".hidden", "a\\b"])
def test_path_traversal_names_rejected(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path, bad: str
) -> None:
    with pytest.raises(WorkspaceError, match="invalid adapter name"):
        registry.register(bad, adapter_src, record_for(tiny_model))
    with pytest.raises(WorkspaceError):
        registry.get(bad)
    assert registry.names() == []
    assert not any(registry.root.parent.glob("x*"))


def test_failing_register_leaves_nothing(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tooltune.adapters.registry as reg

    def boom(path: Path, data: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(reg, "atomic_write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        registry.register("half", adapter_src, record_for(tiny_model))
    assert list(registry.root.iterdir()) == []


def test_failing_overwrite_keeps_the_old_entry(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path, tmp_path: Path
) -> None:
    registry.register("keep", adapter_src, record_for(tiny_model, run_id="old"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapters.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    (broken / "adapter_config.json").write_text((adapter_src / "adapter_config.json").read_text())
    with pytest.raises(CorruptAdapterError, match="not a valid safetensors"):
        registry.register("keep", broken, record_for(tiny_model, run_id="new"), overwrite=True)
    assert registry.get("keep").run_id == "old"
    assert registry.names() == ["keep"]


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing_config", "has no adapter_config.json"),
        ("bad_json", "not valid JSON"),
        ("no_rank", "lacks rank"),
        ("truncated", "truncated"),
        ("not_safetensors", "not a valid safetensors"),
    ],
)
def test_corrupt_adapter_refused_at_register(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path, tmp_path: Path, damage: str, message: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    weights = (adapter_src / "adapters.safetensors").read_bytes()
    config = json.loads((adapter_src / "adapter_config.json").read_text())
    (src / "adapters.safetensors").write_bytes(weights)
    (src / "adapter_config.json").write_text(json.dumps(config))
    if damage == "missing_config":
        (src / "adapter_config.json").unlink()
    elif damage == "bad_json":
        (src / "adapter_config.json").write_text("{not json")
    elif damage == "no_rank":
        config["lora_parameters"].pop("rank")
        (src / "adapter_config.json").write_text(json.dumps(config))
    elif damage == "truncated":
        (src / "adapters.safetensors").write_bytes(weights[: len(weights) // 2])
    elif damage == "not_safetensors":
        (src / "adapters.safetensors").write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    with pytest.raises(CorruptAdapterError, match=message):
        registry.register("x", src, record_for(tiny_model))
    assert registry.names() == []


def test_unknown_adapter_lists_known_names(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path
) -> None:
    registry.register("alpha", adapter_src, record_for(tiny_model))
    with pytest.raises(UnknownAdapterError, match="known adapters: alpha"):
        registry.get("beta")


def test_other_base_model_refused(registry: AdapterRegistry, adapter_src: Path, tiny_model: Path) -> None:
    rec = record_for(tiny_model).model_copy(
        update={"base_model": "other-model", "base_model_fingerprint": "f" * 16}
    )
    registry.register("foreign", adapter_src, rec)
    with pytest.raises(AdapterMismatchError, match="other-model") as e:
        registry.check_base("foreign", fingerprint_model(tiny_model), "tiny")
    assert "f" * 16 in str(e.value) and fingerprint_model(tiny_model) in str(e.value)
    assert registry.check_base("foreign", "f" * 16).name == "foreign"


def test_rename_delete_and_active_follow(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path
) -> None:
    registry.register("old", adapter_src, record_for(tiny_model))
    write_active(registry.ws, ActiveSelection(model=str(tiny_model), adapter="old"))
    rec = registry.rename("old", "new")
    assert rec.name == "new" and registry.names() == ["new"]
    assert json.loads((registry.path("new") / "tooltune.json").read_text())["name"] == "new"
    active = read_active(registry.ws)
    assert active is not None and active.adapter == "new"
    with pytest.raises(AdapterInUseError):
        registry.delete("new")
    write_active(registry.ws, ActiveSelection(model=str(tiny_model), adapter=None))
    registry.delete("new")
    assert registry.names() == [] and list(registry.root.iterdir()) == []


def test_update_eval_scores_merges_atomically(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path
) -> None:
    registry.register("s", adapter_src, record_for(tiny_model, eval_scores={"bfcl": 0.5}))
    registry.update_eval_scores("s", {"coding-tools": 0.9})
    assert registry.get("s").eval_scores == {"bfcl": 0.5, "coding-tools": 0.9}
    assert [p.name for p in registry.path("s").iterdir() if p.name.startswith(".")] == []


def test_export_folder_and_tarball_load_with_mlx_lm(
    registry: AdapterRegistry, adapter_src: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from mlx_lm import load

    registry.register("exp", adapter_src, record_for(tiny_model))
    folder = registry.export("exp", tmp_path / "out")
    load(str(tiny_model), adapter_path=str(folder))  # raises if mlx-lm can't use it
    tarball = registry.export("exp", tmp_path / "exp.tar.gz")
    with tarfile.open(tarball) as tar:
        names = sorted(tar.getnames())
    assert names == ["exp/adapter_config.json", "exp/adapters.safetensors", "exp/tooltune.json"]
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert tarball.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's 0600
    assert (folder / "tooltune.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    with pytest.raises(AdapterExistsError):
        registry.export("exp", tmp_path / "out")
