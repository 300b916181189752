"""How long does `ModelServer.switch_adapter` take with each strategy? Picks the default.

    python bench/switch.py [--repeats 5] [--models tiny,qwen2.5-coder-0.5b-instruct] \
        [--out bench/results/switch.json]

For each model (the tiny test model is built on the fly; cached models are used when present) it
registers a LoRA adapter with random non-zero ``lora_b`` (so the probe can tell it from the base),
starts a server at baseline, does one untimed warm-up round trip (computes the reference probes),
then times ``repeats`` switches each way. A timed switch is the full user-visible operation: load
(restart: new process + load; per_request: in-server reload) + ready check + verification probe.
The probe alone is timed separately (``verify_s``) so it can be subtracted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from tooltune.adapters.registry import AdapterRecord, AdapterRegistry
from tooltune.config import Settings
from tooltune.models.resolve import fingerprint_model, is_mlx_model_dir
from tooltune.serving.model_server import ModelServer, Strategy
from tooltune.workspace import Workspace

from bench_common import machine_info


def make_random_adapter(model_path: Path, out: Path, *, magnitude: float) -> Path:
    """An mlx-lm LoRA adapter (saved like ``mlx_lm.lora``) with non-zero ``lora_b``."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.lora import LoRALinear
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(model_path), lazy=True)
    model.freeze()
    n_layers = min(8, len(model.layers))
    params = {"rank": 8, "scale": 20.0, "dropout": 0.0}
    linear_to_lora_layers(model, n_layers, params)
    mx.random.seed(0)
    for _, module in model.named_modules():
        if isinstance(module, LoRALinear):
            module.lora_b = mx.random.normal(module.lora_b.shape) * magnitude
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters())))
    config = {"fine_tune_type": "lora", "num_layers": n_layers, "lora_parameters": params}
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


async def bench_strategy(model: Path, settings: Settings, strategy: Strategy, repeats: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    async with ModelServer(model, settings=settings, strategy=strategy, record_active=False) as server:
        start_s = time.perf_counter() - t0
        await server.switch_adapter("bench")  # warm-up: reference probes computed here, not timed
        await server.switch_adapter(None)
        to_adapter: list[float] = []
        to_base: list[float] = []
        verify: list[float] = []
        for _ in range(repeats):
            t = time.perf_counter()
            state = await server.switch_adapter("bench")
            to_adapter.append(time.perf_counter() - t)
            assert state.verified and state.adapter == "bench"
            t = time.perf_counter()
            await server.verify()
            verify.append(time.perf_counter() - t)
            t = time.perf_counter()
            state = await server.switch_adapter(None)
            to_base.append(time.perf_counter() - t)
            assert state.verified and state.adapter is None
    return {
        "strategy": strategy,
        "start_s": round(start_s, 3),
        "to_adapter_s": [round(x, 3) for x in to_adapter],
        "to_base_s": [round(x, 3) for x in to_base],
        "median_to_adapter_s": round(statistics.median(to_adapter), 3),
        "median_to_base_s": round(statistics.median(to_base), 3),
        "median_switch_s": round(statistics.median(to_adapter + to_base), 3),
        "median_verify_s": round(statistics.median(verify), 3),
    }


async def bench_model(label: str, model: Path, root: Path, repeats: int, magnitude: float) -> dict[str, Any]:
    settings = Settings.load(workspace=root / "ws", cache_dir=root / "cache")
    registry = AdapterRegistry(Workspace(settings.workspace).ensure())
    src = make_random_adapter(model, root / "adapter-src", magnitude=magnitude)
    record = AdapterRecord(
        name="bench",
        base_model=str(model),
        base_model_fingerprint=fingerprint_model(model),
        dataset_hash=None,
    )
    registry.register("bench", src, record)
    weights = sum(f.stat().st_size for f in model.glob("*.safetensors"))
    results = []
    for strategy in ("per_request", "restart"):
        print(f"[{label}] {strategy} ...", file=sys.stderr, flush=True)
        results.append(await bench_strategy(model, settings, strategy, repeats))  # type: ignore[arg-type]
    winner = min(results, key=lambda r: r["median_switch_s"])["strategy"]
    return {
        "model": label,
        "model_path": str(model),
        "weights_mb": round(weights / 2**20, 1),
        "adapter_mb": round((src / "adapters.safetensors").stat().st_size / 2**20, 2),
        "results": results,
        "faster": winner,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="tiny,qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "switch.json")
    args = parser.parse_args()

    from tooltune.testing.tiny_model import build

    settings = Settings.load()
    # results accumulate per model (a later run of one model replaces only that model's entry), and
    # are written after each model so an interrupted run keeps what it measured
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out.update(
        {
            "benchmark": "ModelServer.switch_adapter: restart vs per_request",
            "machine": {**machine_info(), "openblas": settings.use_openblas},  # the servers' BLAS
            "note": (
                "Absolute times depend on what else ran on the machine (see each run's load averages): "
                "compare the strategies, not the seconds. A switch = load + 1-token ready check + 8-token verification probe; "
                "median_verify_s is the probe alone; start_s of the first strategy also includes computing "
                "the base model's reference probe (first use)."
            ),
        }
    )
    runs: dict[str, Any] = {r["model"]: r for r in out.get("runs", [])}
    with tempfile.TemporaryDirectory(prefix="tooltune-bench-switch-") as tmp:
        for label in args.models.split(","):
            root = Path(tmp) / label
            if label == "tiny":
                model, magnitude = build(root / "model"), 0.5
            else:
                model, magnitude = settings.models_dir / label, 0.01
                if not is_mlx_model_dir(model):
                    print(f"skipping {label}: not in {settings.models_dir}", file=sys.stderr)
                    continue
            started, load_before = datetime.now(UTC), loadavg()
            run = anyio.run(bench_model, label, model, root, args.repeats, magnitude)
            run.update(
                {
                    "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]),
                    "date": started.isoformat(timespec="seconds"),
                    "repeats_each_way": args.repeats,
                    "load_average_before": load_before,
                    "load_average_after": loadavg(),
                }
            )
            runs[label] = run
            out["runs"] = list(runs.values())
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(out, indent=2) + "\n")
            print(json.dumps({label: {x["strategy"]: x["median_switch_s"] for x in run["results"]}}))


if __name__ == "__main__":
    main()
