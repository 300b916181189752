"""TrainConfig: files + flags, aliases, mlx-lm's nested lora_parameters, resolution errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tooltune.config import Settings
from tooltune.errors import ModelNotFoundError
from tooltune.training.train_config import TrainConfig, TrainConfigError


def _dataset(root: Path, n_train: int = 8, n_valid: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    line = json.dumps({"messages": msgs})
    (root / "train.jsonl").write_text((line + "\n") * n_train)
    (root / "valid.jsonl").write_text((line + "\n") * n_valid)
    return root


def test_yaml_file_with_mlx_lora_parameters_and_flag_overrides(tmp_path: Path) -> None:
    f = tmp_path / "run.yaml"
    f.write_text(
        "dataset: d\nlearning_rate: 1e-4\nlora_parameters: {rank: 4, scale: 10.0, dropout: 0.1, "
        "keys: [self_attn.q_proj]}\niters: 50\n"
    )
    cfg = TrainConfig.from_file(f, rank=16, iters=None)
    assert cfg.rank == 16  # flag wins
    assert cfg.scale == 10.0 and cfg.dropout == 0.1 and cfg.keys == ["self_attn.q_proj"]
    assert cfg.learning_rate == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string; still a float here
    assert cfg.iters == 50  # a flag left at None does not erase the file's value


def test_toml_and_alpha_alias(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('dataset = "d"\nalpha = 32.0\nrank = 8\n')
    assert TrainConfig.from_file(f).scale == 32.0
    assert TrainConfig.from_file(f, scale=5.0).scale == 5.0


def test_unknown_option_and_bad_values_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="rnak: unknown option"):
        TrainConfig.from_dict({"dataset": "d", "rnak": 4})
    with pytest.raises(TrainConfigError, match="rank"):
        TrainConfig.from_dict({"dataset": "d", "rank": 0})
    with pytest.raises(TrainConfigError, match="either iters or epochs"):
        TrainConfig.from_dict({"dataset": "d", "iters": 3, "epochs": 1})


def test_resolve_defaults_and_num_layers_errors(tiny_model: Path, settings: Settings, tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data", n_train=10)
    cfg = TrainConfig(model=str(tiny_model), dataset=str(data), epochs=2, batch_size=4).resolve(settings)
    assert cfg.num_layers == 2  # min(8, the tiny model's 2 layers)
    assert cfg.iters == 5  # ceil(2 epochs * 10 examples / batch 4)
    assert cfg.model_path == tiny_model.resolve() and cfg.dataset_path == data.resolve()
    all_layers = TrainConfig(model=str(tiny_model), dataset=str(data), num_layers=-1).resolve(settings)
    assert all_layers.num_layers == 2
    with pytest.raises(TrainConfigError, match="num_layers=3 but model .* has only 2 layers"):
        TrainConfig(model=str(tiny_model), dataset=str(data), num_layers=3).resolve(settings)
    with pytest.raises(TrainConfigError, match="batch_size is 16"):
        TrainConfig(model=str(tiny_model), dataset=str(data), batch_size=16).resolve(settings)
    with pytest.raises(TrainConfigError, match="dataset 'nope' not found"):
        TrainConfig(model=str(tiny_model), dataset="nope").resolve(settings)
    with pytest.raises(ModelNotFoundError):
        TrainConfig(model="no-such-model", dataset=str(data)).resolve(settings)


def test_workspace_dataset_name_resolves(tiny_model: Path, settings: Settings) -> None:
    _dataset(settings.workspace / "datasets" / "calls")
    cfg = TrainConfig(model=str(tiny_model), dataset="calls", batch_size=2).resolve(settings)
    assert cfg.dataset_path == (settings.workspace / "datasets" / "calls").resolve()


def test_schedule_maps_to_mlx_build_schedule() -> None:
    from mlx_lm.tuner.utils import build_schedule

    cfg = TrainConfig(
        dataset="d", iters=20, learning_rate=1e-3, lr_schedule="cosine", warmup=4, min_learning_rate=1e-5
    )
    sched = build_schedule(cfg.mlx_lr_schedule())
    assert float(sched(0)) == pytest.approx(0.0)
    assert float(sched(4)) == pytest.approx(1e-3, rel=1e-4)
    assert float(sched(20)) == pytest.approx(1e-5, rel=1e-3)
    const = TrainConfig(dataset="d", iters=20, learning_rate=2e-4, lr_schedule="constant", warmup=2)
    s2 = build_schedule(const.mlx_lr_schedule())
    assert [round(float(s2(i)), 8) for i in (0, 1, 2, 10)] == [0.0, 1e-4, 2e-4, 2e-4]
    assert TrainConfig(dataset="d", iters=5, lr_schedule="constant").mlx_lr_schedule() is None


def test_short_run_recipe() -> None:
    """The demo and the benchmarks share one short-run recipe; explicit settings still win."""
    cfg = TrainConfig.short_run("m", "d", iters=100, rank=4)
    assert (cfg.lr_schedule, cfg.warmup, cfg.mask_prompt, cfg.iters, cfg.rank) == ("cosine", 5, True, 100, 4)
    assert TrainConfig.short_run("m", "d", iters=10, warmup=0).warmup == 0


def test_default_recipe_is_the_benchmarks_and_resolves_to_numbers(
    tiny_model: Path, settings: Settings, tmp_path: Path
) -> None:
    """The defaults a user gets are the recipe behind bench/results (batch 1, rank 8 on 8 blocks, lr 5e-5,
    cosine after a 5% warmup, 1024 tokens, 4 validation batches at the middle and the end, 150 steps)."""
    data = _dataset(tmp_path / "data", n_train=10)
    cfg = TrainConfig(model=str(tiny_model), dataset=str(data))
    got = (cfg.batch_size, cfg.rank, cfg.learning_rate, cfg.lr_schedule, cfg.max_seq_length, cfg.val_batches)
    assert got == (1, 8, 5e-5, "cosine", 1024, 4) and cfg.mask_prompt
    resolved = cfg.resolve(settings)
    assert (resolved.iters, resolved.warmup, resolved.steps_per_eval) == (150, 7, 75)
    # the same recipe as short_run, which the demo and the benchmarks call
    short = TrainConfig.short_run(str(tiny_model), str(data), iters=150).resolve(settings)
    assert short.model_dump(exclude={"warmup"}) == resolved.model_dump(exclude={"warmup"})
    assert short.warmup == resolved.warmup
    constant = TrainConfig(model=str(tiny_model), dataset=str(data), lr_schedule="constant").resolve(settings)
    assert constant.warmup == 0 and constant.mlx_lr_schedule() is None
