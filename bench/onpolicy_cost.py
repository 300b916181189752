"""What learning from the model's own mistakes costs, stage by stage (issue 36): sampling the model's
answers to generated requests, picking pairs and own-answer data, and DPO steps on the pairs.

    python bench/onpolicy_cost.py [--model qwen2.5-coder-0.5b-instruct] [--adapter A] [--n 100]
        [--limit 24] [--k 4] [--temperature 0.8] [--iters 10] [--out bench/results/onpolicy_cost.json]

The requests are generated from BFCL simple_python's function schemas (never its questions), as the
headline's training data is. The result records, per stage, seconds and what they bought (answers,
pairs, steps), what the samples say about the model (right answers, reasons of the wrong ones), and
the machine; on a GPU machine with ``tooltune[cuda]`` it measures the GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import machine_info, restart_with_blas  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BFCL = REPO.parent / "shared" / "bench" / "bfcl"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="cache name or MLX folder (default: the default model)")
    ap.add_argument("--adapter", default=None, help="registered adapter to sample (in --workspace)")
    ap.add_argument("--workspace", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--bfcl", type=Path, default=DEFAULT_BFCL)
    ap.add_argument("--n", type=int, default=100, help="requests generated")
    ap.add_argument("--limit", type=int, default=24, help="train requests sampled")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10, help="DPO steps")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "onpolicy_cost.json")
    args = ap.parse_args()
    restart_with_blas()

    import anyio

    from tooltune.config import Settings
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.data.onpolicy import SampleConfig, pick_training_data, sample_dataset
    from tooltune.device import detect_device
    from tooltune.jobs import JobStore
    from tooltune.models.resolve import resolve_model
    from tooltune.serving.model_server import ModelServer
    from tooltune.training import runs
    from tooltune.training.train_config import TrainConfig
    from tooltune.workspace import Workspace

    tmp = tempfile.TemporaryDirectory() if args.workspace is None else None
    settings = Settings.load(workspace=args.workspace or Path(tmp.name))  # type: ignore[union-attr]
    ws = Workspace(settings.workspace).ensure()
    model_path = resolve_model(args.model or settings.default_model, settings).path
    stages: dict[str, Any] = {}

    t0 = time.perf_counter()
    info, res = generate_dataset(
        ws,
        "requests",
        [f"bfcl:{args.bfcl / 'BFCL_v4_simple_python.json'}"],
        GenerateConfig(n=args.n, seed=0, max_tools=2),
        model_path=model_path,
        bfcl_dir=args.bfcl,
    )
    stages["generate"] = {"seconds": round(time.perf_counter() - t0, 1), "examples": info.counts}

    cfg = SampleConfig(
        k=args.k,
        temperature=args.temperature,
        limit=args.limit,
        max_tokens=args.max_tokens,
        concurrency=args.concurrency,
    )

    async def sample() -> Any:
        async with ModelServer(model_path, settings=settings, record_active=False) as server:
            t = time.perf_counter()
            done = await sample_dataset(server, ws, "requests", "samples", cfg, adapter=args.adapter)
            return done, time.perf_counter() - t

    samples, seconds = anyio.run(sample)
    answers = samples.counts["samples"]
    stages["sample"] = {
        "seconds": round(seconds, 1),
        "answers": answers,
        "seconds_per_answer": round(seconds / max(answers, 1), 2),
        "config": cfg.model_dump(),
        "counts": samples.counts,
        "wrong_answer_reasons": samples.reasons,
        "per_kind": samples.per_kind,
    }
    t0 = time.perf_counter()
    pairs = pick_training_data(ws, "samples", "pairs", "pairs")
    own = pick_training_data(ws, "samples", "rejection", "own")
    stages["pick"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        "pairs": pairs.counts,
        "pairs_per_reason": pairs.picked,
        "rejection": own.counts,
        "rejection_from": own.picked,
    }
    train_cfg = TrainConfig(
        model=str(model_path),
        dataset="pairs",
        method="dpo",
        iters=args.iters,
        batch_size=1,
        steps_per_report=max(1, args.iters // 2),
        steps_per_eval=args.iters,
        val_batches=2,
        init_adapter=args.adapter,
    )
    t0 = time.perf_counter()
    job = runs.start_training(train_cfg, settings, name="dpo")
    job = JobStore(ws).wait(job.id, poll=1.0)
    wall = time.perf_counter() - t0
    run = runs.get_run(settings, job.id)
    metrics = (
        json.loads((ws.run_dir(run.id) / "metrics.json").read_text()) if job.status == "succeeded" else {}
    )
    stages["dpo"] = {
        "status": job.status,
        "error": job.error,
        "wall_s": round(wall, 1),
        "iters": args.iters,
        "reference_seconds": (run.applied.get("method") or {}).get("reference_seconds"),
        "time": metrics.get("time"),
        "s_per_step": metrics.get("s_per_iter"),
        "processed_tokens_per_second": metrics.get("processed_tokens_per_second"),
        "train_loss_first_last": [metrics.get("first_train_loss"), metrics.get("last_train_loss")],
        "metrics": metrics,
    }
    out = {
        "benchmark": "onpolicy_cost",
        "command": " ".join(["python", *sys.argv]),
        "machine": {**machine_info(), "tooltune_device": detect_device().reason},
        "model": model_path.name,
        "adapter": args.adapter,
        "stages": stages,
        "notes": "seconds per stage on this machine; the sampling answers are mlx_lm.server's at the given "
        "temperature through tooltune's eval runner, scored against each request's generated truth",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
