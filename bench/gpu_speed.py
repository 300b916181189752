"""LoRA training throughput per dtype and batch size: tooltune's training worker against a bare mlx-lm loop
on the same model, data and settings, in one run.

    python bench/gpu_speed.py [--shape 0.5b|tiny] [--dtypes float32 bfloat16] [--batches 1 4 16]
                              [--iters 30] [--out bench/results/gpu_speed.json]

The model has Qwen2.5-Coder-0.5B's shape (24 blocks of 896, 14/2 heads, MLP 4864, a 151,936-row tied LM
head) with random weights and the tiny test tokenizer, so nothing is downloaded; the data is a dataset
tooltune generates for its built-in coding tools. Both sides train rank 8 on the last 8 blocks, no token
rows, loss on every token (mask_prompt off), so mlx-lm's token count is every non-padding token a step
processes on both sides. The bare loop is mlx-lm's own ``train`` with its default loss and batches: what
MLX reaches without tooltune's worker (events, checkpoints, cancel checks, run records).

Runs on any MLX backend: on a Linux CPU it measures the CPU; with ``pip install "tooltune[cuda]"`` on an
NVIDIA machine, the GPU (the result records the device MLX used).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SHAPES: dict[str, dict[str, int]] = {
    "0.5b": dict(hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2, intermediate_size=4864),
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128),
}
HEAD_ROWS = {"0.5b": 151_936, "tiny": None}


def log(msg: str) -> None:
    print(f"[gpu_speed] {msg}", file=sys.stderr, flush=True)


def make_dataset(ws_root: Path, model: Path) -> str:
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig

    info, _ = generate_dataset(
        ws_root, "speed", ["builtin:coding"], GenerateConfig(n=400, seed=0), model_path=model
    )
    return info.name


def tooltune_run(
    settings: Any, model: Path, dataset: str, batch: int, iters: int, layers: int
) -> dict[str, Any]:
    from tooltune.jobs import JobStore
    from tooltune.training.runs import get_run, read_events, start_training
    from tooltune.training.train_config import TrainConfig
    from tooltune.workspace import Workspace

    cfg = TrainConfig(
        model=str(model),
        dataset=dataset,
        batch_size=batch,
        iters=iters,
        num_layers=layers,
        rank=8,
        train_tokens=[],
        mask_prompt=False,
        max_seq_length=1024,
        steps_per_report=max(1, iters // 3),
        steps_per_eval=iters,
        val_batches=1,
        save_every=iters,
        lr_schedule="constant",
    )
    t0 = time.perf_counter()
    job = start_training(cfg, settings, name=f"speed-b{batch}-{int(time.time() * 1000) % 10**8}")
    job = JobStore(Workspace(settings.workspace)).wait(job.id, timeout=3600, poll=0.5)
    wall = time.perf_counter() - t0
    if job.status != "succeeded":
        raise RuntimeError(f"tooltune run failed: {job.error}")
    run = get_run(settings, job.id)
    train = [e for e in read_events(job.run_dir) if e.kind == "train"]
    steady = train[1:] or train  # the first report holds compilation and warm-up
    return {
        "tokens_per_s": round(sum(e.tokens_per_second or 0 for e in steady) / len(steady), 1),
        "wall_s": round(wall, 1),
        "device": run.device,
    }


def bare_child(
    settings: Any, model: Path, dataset_path: Path, batch: int, iters: int, layers: int
) -> dict[str, Any]:
    """The bare loop in a child with the environment tooltune gives every MLX child (the OpenBLAS preload
    on a Linux CPU, nothing on a GPU), so the two sides differ only by what tooltune's worker adds."""
    from tooltune.serving.blas import subprocess_env

    cmd = [
        sys.executable,
        __file__,
        "--bare",
        str(model),
        str(dataset_path),
        str(batch),
        str(iters),
        str(layers),
    ]
    env = subprocess_env(settings.cache_dir, enabled=settings.use_openblas)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"bare loop failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bare_run(model_path: Path, dataset_path: Path, batch: int, iters: int, layers: int) -> dict[str, Any]:
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.datasets import CacheDataset, load_local_dataset
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    from tooltune.device import detect_device, keep_mlx_on

    keep_mlx_on(detect_device(), mx)  # on the device tooltune's worker uses (TOOLTUNE_DEVICE)
    model, tokenizer = load(str(model_path))
    train_set, _, _ = load_local_dataset(dataset_path, tokenizer, types.SimpleNamespace(mask_prompt=False))
    mx.random.seed(0)
    model.freeze()
    linear_to_lora_layers(model, layers, {"rank": 8, "scale": 20.0, "dropout": 0.0})
    reports: list[float] = []

    class Speed(TrainingCallback):
        def on_train_loss_report(self, info: dict[str, Any]) -> None:
            reports.append(float(info["tokens_per_second"]))

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArgs(
            batch_size=batch,
            iters=iters,
            val_batches=1,
            steps_per_report=max(1, iters // 3),
            steps_per_eval=iters + 1,
            steps_per_save=iters + 1,
            adapter_file=str(Path(tmp) / "a.safetensors"),
            max_seq_length=1024,
        )
        train(
            model=model,
            optimizer=optim.Adam(learning_rate=5e-5),
            train_dataset=CacheDataset(train_set),
            val_dataset=None,
            args=args,
            training_callback=Speed(),
        )
    steady = reports[1:] or reports
    return {"tokens_per_s": round(sum(steady) / len(steady), 1)}


def main() -> int:
    if sys.argv[1:2] == ["--bare"]:
        model, data, batch, iters, layers = sys.argv[2:7]
        print(json.dumps(bare_run(Path(model), Path(data), int(batch), int(iters), int(layers))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="0.5b")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/results/gpu_speed.json"))
    args = ap.parse_args()

    from tooltune.config import Settings
    from tooltune.data.store import load_dataset
    from tooltune.testing.tiny_model import build

    root = args.workdir or Path(tempfile.mkdtemp(prefix="tooltune-gpu-speed-"))
    settings = Settings.load(workspace=root / "ws", cache_dir=root / "cache")
    results: list[dict[str, Any]] = []
    dataset = None
    layers = min(8, SHAPES[args.shape]["num_layers"])
    for dtype in args.dtypes:
        model = build(
            root / f"model-{args.shape}-{dtype}",
            **SHAPES[args.shape],
            model_vocab_size=HEAD_ROWS[args.shape],
            dtype=dtype,
        )
        if dataset is None:
            dataset = make_dataset(settings.workspace, model)
        dataset_path = load_dataset(settings.workspace, dataset).path
        for batch in args.batches:
            log(f"{dtype} batch {batch}: tooltune worker")
            ours = tooltune_run(settings, model, dataset, batch, args.iters, layers)
            log(f"{dtype} batch {batch}: bare mlx-lm loop")
            bare = bare_child(settings, model, dataset_path, batch, args.iters, layers)
            row = {
                "dtype": dtype,
                "batch": batch,
                "tooltune_tokens_per_s": ours["tokens_per_s"],
                "bare_tokens_per_s": bare["tokens_per_s"],
                "fraction_of_bare": round(ours["tokens_per_s"] / bare["tokens_per_s"], 3)
                if bare["tokens_per_s"]
                else None,
                "tooltune_wall_s": ours["wall_s"],
                "worker_device": ours["device"],
            }
            log(json.dumps(row))
            results.append(row)
    import bench_common  # imports tooltune: only once the measurements are done

    doc = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": bench_common.machine_info(),
        "shape": {"name": args.shape, **SHAPES[args.shape], "lm_head_rows": HEAD_ROWS[args.shape]},
        "settings": {
            "iters": args.iters,
            "rank": 8,
            "num_layers": 8,
            "max_seq_length": 1024,
            "mask_prompt": False,
        },
        "training": results,
        "notes": "tokens/s: mlx-lm's count of non-padding tokens per second (mask_prompt off), averaged over the "
        "loss reports after the first (which holds compilation); random weights in the model's shape, the "
        "tiny test tokenizer, a dataset of the built-in coding tools.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
