"""Average several LoRA adapters of one base model into one adapter (a weight-space "soup").

Two runs of the same recipe with different seeds differ by several eval cases on this project's
benchmarks; averaging their weight changes is the standard way to keep what they agree on and damp
what each learned by chance. A LoRA layer changes a weight by ``scale * a @ b`` (``a``: inputs × r,
``b``: r × outputs, as mlx-lm stores them), so the weighted mean of n such changes is exactly one LoRA
of rank r1 + … + rn: the ``a`` matrices side by side and the ``b`` matrices stacked, each ``b`` scaled
by its weight and its adapter's scale over the new one. No approximation, and the result is an ordinary
mlx-lm adapter folder (``mlx_lm.generate --adapter-path`` loads it).

A strength multiplies the result: 0.7 keeps 70% of the mean change (one adapter at strength 0.7 is that
adapter turned down).

DoRA and full fine-tunes are refused: their changes are not a product of two matrices.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from tooltune.adapters.registry import (
    AdapterExistsError,
    AdapterMismatchError,
    AdapterRecord,
    AdapterRegistry,
    validate_adapter_files,
)
from tooltune.errors import TooltuneError
from tooltune.logs import get_logger
from tooltune.workspace import validate_name

log = get_logger(__name__)


class AdapterAverageError(TooltuneError):
    pass


def _weights(names: list[str], weights: list[float] | None) -> list[float]:
    if weights is None:
        return [1.0 / len(names)] * len(names)
    if len(weights) != len(names):
        raise AdapterAverageError(
            f"got {len(weights)} weights for {len(names)} adapters; give one per adapter"
        )
    bad = [w for w in weights if not math.isfinite(w) or w <= 0]
    if bad:
        raise AdapterAverageError(f"weights must be positive numbers; got {bad[0]!r}")
    return list(weights)


def _strength(strength: float) -> float:
    if not math.isfinite(strength) or strength <= 0:
        raise AdapterAverageError(f"strength must be a positive number; got {strength!r}")
    return strength


def _check_configs(names: list[str], configs: list[dict[str, Any]]) -> None:
    for name, config in zip(names, configs, strict=True):
        kind = config.get("fine_tune_type", "lora")
        if kind != "lora":
            raise AdapterAverageError(
                f"adapter {name!r} is a {kind} adapter; only LoRA adapters can be averaged exactly"
            )
    first = configs[0]
    for name, config in zip(names[1:], configs[1:], strict=True):
        for field, a, b in (
            ("num_layers", first["num_layers"], config["num_layers"]),
            ("lora keys", first["lora_parameters"].get("keys"), config["lora_parameters"].get("keys")),
        ):
            if a != b:
                raise AdapterAverageError(
                    f"adapter {name!r} has {field} {b!r} but {names[0]!r} has {a!r}; "
                    "only adapters on the same layers can be averaged"
                )


def _pairs(name: str, tensors: dict[str, Any], rank: int) -> list[str]:
    """The module paths that carry a ``lora_a``/``lora_b`` pair; anything else is refused."""
    prefixes = sorted(k.removesuffix(".lora_a") for k in tensors if k.endswith(".lora_a"))
    expected = {f"{p}.lora_a" for p in prefixes} | {f"{p}.lora_b" for p in prefixes}
    stray = sorted(set(tensors) - expected) or sorted(expected - set(tensors))
    if stray:
        raise AdapterAverageError(
            f"adapter {name!r} has tensor {stray[0]!r} that is not half of a lora_a/lora_b pair; "
            "only plain LoRA adapters can be averaged"
        )
    for p in prefixes:
        a, b = tensors[f"{p}.lora_a"], tensors[f"{p}.lora_b"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != rank or b.shape[0] != rank:
            raise AdapterAverageError(
                f"adapter {name!r}: {p} has lora_a {tuple(a.shape)} and lora_b {tuple(b.shape)}; "
                f"expected (inputs, {rank}) and ({rank}, outputs) for its rank {rank}"
            )
    return prefixes


def average_adapters(
    registry: AdapterRegistry,
    names: list[str],
    new_name: str,
    *,
    weights: list[float] | None = None,
    strength: float = 1.0,
    overwrite: bool = False,
) -> AdapterRecord:
    """Register ``new_name``: ``strength`` times the weighted mean (default: equal weights) of the named
    adapters' changes.

    All adapters must belong to the same base weights (by fingerprint) and adapt the same layers and
    modules; ranks and scales may differ. Weights are used as given (they need not sum to 1: 1 and 1
    adds the two changes). One adapter is accepted with a strength other than 1 (it is then scaled).
    """
    import mlx.core as mx

    validate_name(new_name, "adapter name")
    strength = _strength(strength)
    if not names or (len(names) == 1 and strength == 1.0):
        raise AdapterAverageError(
            "averaging needs at least two adapters (or one with a strength other than 1 to scale it)"
        )
    if len(set(names)) != len(names):
        raise AdapterAverageError(f"adapter names repeat in {names}; give each adapter once (use weights)")
    w = _weights(names, weights)
    records = [registry.get(n) for n in names]
    if not overwrite and registry.ws.adapter_dir(new_name).exists():
        raise AdapterExistsError(
            f"an adapter named {new_name!r} already exists; choose another name, delete it, or overwrite"
        )
    base = records[0].base_model_fingerprint
    for record in records[1:]:
        if record.base_model_fingerprint != base:
            raise AdapterMismatchError(
                f"adapter {record.name!r} was trained on {record.base_model} "
                f"({record.base_model_fingerprint}) but {records[0].name!r} on {records[0].base_model} "
                f"({base}); only adapters of one base model can be averaged"
            )
    folders = [registry.path(n) for n in names]
    configs = [validate_adapter_files(f) for f in folders]
    _check_configs(names, configs)
    ranks = [int(c["lora_parameters"]["rank"]) for c in configs]
    tensors = [mx.load(str(f / "adapters.safetensors")) for f in folders]
    prefixes = [_pairs(n, t, r) for n, t, r in zip(names, tensors, ranks, strict=True)]
    for name, p in zip(names[1:], prefixes[1:], strict=True):
        if p != prefixes[0]:
            missing = sorted(set(prefixes[0]) ^ set(p))
            raise AdapterAverageError(
                f"adapter {name!r} and {names[0]!r} adapt different modules (e.g. {missing[0]}); "
                "only adapters on the same modules can be averaged"
            )
    scales = [float(c["lora_parameters"]["scale"]) for c in configs]
    scale = scales[0]
    out: dict[str, Any] = {}
    for p in prefixes[0]:
        out[f"{p}.lora_a"] = mx.concatenate([t[f"{p}.lora_a"] for t in tensors], axis=1)
        out[f"{p}.lora_b"] = mx.concatenate(
            [
                t[f"{p}.lora_b"] * (strength * wi * si / scale)
                for t, wi, si in zip(tensors, w, scales, strict=True)
            ],
            axis=0,
        )
    rank = sum(ranks)
    config = {k: v for k, v in configs[0].items() if k not in ("adapter_path", "resume_adapter_file")}
    config["lora_parameters"] = {**configs[0]["lora_parameters"], "rank": rank, "scale": scale}
    config["averaged_from"] = [{"adapter": n, "weight": wi} for n, wi in zip(names, w, strict=True)]
    config["strength"] = strength
    record = AdapterRecord(
        name=new_name,
        base_model=records[0].base_model,
        base_model_fingerprint=base,
        train_config={
            "averaged_from": list(names),
            "weights": w,
            "strength": strength,
            "rank": rank,
            "num_layers": configs[0]["num_layers"],
        },
    )
    registry.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".average.", dir=registry.root) as tmp:
        mx.save_safetensors(str(Path(tmp) / "adapters.safetensors"), out)
        (Path(tmp) / "adapter_config.json").write_text(json.dumps(config, indent=4), "utf-8")
        stored = registry.register(new_name, Path(tmp), record, overwrite=overwrite)
    log.info("adapters_averaged", adapter=new_name, sources=names, weights=w, strength=strength, rank=rank)
    return stored
