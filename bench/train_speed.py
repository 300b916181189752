"""Trained tokens per second on the demo recipe: today's path against the answer-only LM head, side by side.

    python bench/train_speed.py [--model qwen2.5-coder-0.5b-instruct] [--iters 20] [--threads 1 2]
                                [--out bench/results/train_speed.json]

Each variant is one `tooltune train` run (the real worker) on the same generated dataset with the demo's
recipe (batch 1, rank 8 on the last 8 blocks, mask_prompt, max_seq_length 1024, one validation batch at
the end, seed 0, so the same examples in the same order): ``answer_only_head`` off (the LM head at every
position, as mlx-lm computes it) and on, at each OpenBLAS thread count. Per variant: seconds per step over
the steps after the first report (which holds compilation), the tokens the steps processed per second
(every prompt and answer token, padding excluded) and the loss tokens per second (mlx-lm's count), the
train losses (equal within float tolerance when only the head changes), and where the wall time went.

The matmul limit is measured in the same run: float32 2048 x 2048 products through the same preloaded
OpenBLAS at each thread count. ``fraction_of_limit`` is the estimated FLOP rate of a step over that limit,
with FLOPs counted as 2 x parameters per token through the forward pass (the head only at the positions
it runs at), and 2 x that again for the adapted blocks' backward pass (gradients of activations and of the
LoRA weights; the frozen blocks below the first adapted one need no backward).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tooltune.config import Settings  # noqa: E402
from tooltune.serving.blas import subprocess_env  # noqa: E402

from bench_common import machine_info, model_shape  # noqa: E402

MATMUL = """
import time, mlx.core as mx
n = 2048
a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
mx.eval(a @ b)
best = 0.0
for _ in range(5):
    t = time.perf_counter(); mx.eval(a @ b); dt = time.perf_counter() - t
    best = max(best, 2 * n**3 / dt / 1e9)
print(best)
"""


def log(msg: str) -> None:
    print(f"[train_speed {datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def matmul_gflops(settings: Settings, threads: int) -> float:
    env = subprocess_env(settings.cache_dir, enabled=settings.use_openblas)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    done = subprocess.run(
        [sys.executable, "-c", MATMUL], env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return round(float(done.stdout.strip().splitlines()[-1]), 1)


def flops_per_step(shape: dict[str, int], tokens: float, head_positions: float, adapted: int) -> float:
    forward = 2 * shape["block_params"] * shape["layers"] * tokens + 2 * shape["head_params"] * head_positions
    backward = (
        2 * 2 * shape["block_params"] * adapted * tokens + 2 * 2 * shape["head_params"] * head_positions
    )
    return forward + backward


def run_variant(
    settings: Settings, model: Path, dataset: str, iters: int, answer_only: bool, threads: int, layers: int
) -> dict[str, Any]:
    from tooltune.jobs import JobStore
    from tooltune.training.runs import get_run, read_events, start_training
    from tooltune.training.train_config import TrainConfig
    from tooltune.workspace import Workspace

    cfg = TrainConfig(
        model=str(model),
        dataset=dataset,
        batch_size=1,
        iters=iters,
        num_layers=min(8, layers),
        rank=8,
        max_seq_length=1024,
        steps_per_report=max(1, iters // 4),
        steps_per_eval=iters,
        val_batches=1,
        save_every=iters,
        seed=0,
        answer_only_head=answer_only,
    )
    os.environ["TOOLTUNE_BLAS_THREADS"] = str(threads)
    t0 = time.perf_counter()
    job = start_training(
        cfg, settings, name=f"speed-{'ans' if answer_only else 'all'}-t{threads}-{time.time_ns()}"
    )
    job = JobStore(Workspace(settings.workspace)).wait(job.id, timeout=6 * 3600, poll=1.0)
    wall = time.perf_counter() - t0
    if job.status != "succeeded":
        raise RuntimeError(f"run failed: {job.error}")
    run = get_run(settings, job.id)
    train = [e for e in read_events(job.run_dir) if e.kind == "train"]
    first, last = train[0], train[-1]
    steps = last.iteration - first.iteration
    steady = train[1:]  # the first report holds compilation and warm-up
    s_per_step = sum(1 / e.iterations_per_second for e in steady if e.iterations_per_second) / len(steady)
    tokens = (last.processed_tokens - first.processed_tokens) / steps if last.processed_tokens else None
    loss_tokens = (last.trained_tokens - first.trained_tokens) / steps if last.trained_tokens else None
    metrics_file = job.run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return {
        "answer_only_head": answer_only,
        "lm_head": (run.applied or {}).get("lm_head"),
        "blas_threads": threads,
        "steps_timed": steps,
        "s_per_step": round(s_per_step, 3),
        "tokens_per_step": round(tokens, 1) if tokens else None,
        "loss_tokens_per_step": round(loss_tokens, 1) if loss_tokens else None,
        "processed_tokens_per_s": round(tokens / s_per_step, 1) if tokens else None,
        "loss_tokens_per_s": round(loss_tokens / s_per_step, 2) if loss_tokens else None,
        "train_losses": [round(e.train_loss, 5) for e in train],
        "time": metrics.get("time"),
        "wall_s": round(wall, 1),
        "run_id": job.id,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_speed.json")
    args = ap.parse_args()

    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.models.resolve import resolve_model
    from tooltune.workspace import atomic_write_json

    root = args.workdir or Path(tempfile.mkdtemp(prefix="tooltune-train-speed-"))
    settings = Settings.load(workspace=root / "ws")
    model = resolve_model(args.model, settings).path
    info, _ = generate_dataset(
        settings.workspace, "speed", ["builtin:coding"], GenerateConfig(n=200, seed=0), model_path=model
    )
    limits = {str(t): matmul_gflops(settings, t) for t in args.threads}
    log(f"matmul limit (GFLOPS, 2048^2 float32): {limits}")
    shape = model_shape(model)
    rows = []
    for threads in args.threads:
        for answer_only in (False, True):
            log(f"threads {threads}, answer_only_head {answer_only}")
            row = run_variant(settings, model, info.name, args.iters, answer_only, threads, shape["layers"])
            if row["tokens_per_step"] and row["loss_tokens_per_step"]:
                tokens, answer = row["tokens_per_step"], row["loss_tokens_per_step"]
                head = answer if row["lm_head"] == "answer positions" else tokens
                gflops = (
                    flops_per_step(shape, tokens, head, min(8, shape["layers"])) / row["s_per_step"] / 1e9
                )
                row["estimated_gflops"] = round(gflops, 1)
                row["fraction_of_limit"] = round(gflops / limits[str(threads)], 3)
            log(json.dumps({k: v for k, v in row.items() if k != "train_losses"}))
            rows.append(row)
    by = {(r["blas_threads"], r["answer_only_head"]): r for r in rows}
    base_threads = min(args.threads)
    base = by[(base_threads, False)]
    speedup = {
        f"threads{t}_{'answer_only' if a else 'every_position'}": round(
            base["s_per_step"] / r["s_per_step"], 2
        )
        for (t, a), r in by.items()
        if r["s_per_step"] and base["s_per_step"]
    }
    doc = {
        "benchmark": "train_speed",
        "command": "python " + " ".join(["bench/train_speed.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "model": str(model),
        "dataset": info.name,
        "recipe": "demo: batch 1, rank 8, 8 blocks, mask_prompt, max_seq_length 1024, seed 0",
        "matmul_limit_gflops": limits,
        "variants": rows,
        "speedup": speedup,
        "speedup_reference": f"threads {base_threads}, LM head at every position (mlx-lm's loss)",
        "same_losses": all(
            abs(a - b) <= 1e-3 * max(1.0, abs(a))
            for t in args.threads
            for a, b in zip(by[(t, False)]["train_losses"], by[(t, True)]["train_losses"], strict=True)
        ),
    }
    atomic_write_json(args.out, doc)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
