"""What learning from the model's own mistakes costs, stage by stage (issue 36): sampling the model's
answers to generated requests, picking pairs and own-answer data, DPO and ORPO steps on the pairs
(DPO first scores every pair under the starting model, its reference; ORPO needs none), rejection-SFT
steps on the own-answer data, and GRPO steps (the model samples ``--k`` answers per request inside
training, the scorer rewards them).

    python bench/onpolicy_cost.py [--model qwen2.5-coder-0.5b-instruct] [--adapter A] [--n 100]
        [--limit 24] [--k 4] [--temperature 0.8] [--iters 10] [--grpo-iters 5]
        [--stages sample dpo orpo rejection grpo] [--out bench/results/onpolicy_cost.json]

The training stages measure the steps: their runs skip the answer check (``answer_check=0``), which
costs what greedy answers to its requests cost (the sample stage's seconds per answer, at temperature 0).

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

from bench_common import command_line, machine_info, restart_with_blas  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BFCL = REPO.parent / "shared" / "bench" / "bfcl"
STAGES = ("sample", "dpo", "orpo", "rejection", "grpo")
# training stage -> the dataset of the pick stage it trains on
PICKED_STAGES = {"dpo": "pairs", "orpo": "pairs", "rejection": "own"}


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
    ap.add_argument("--grpo-iters", type=int, default=5, help="GRPO steps (batch 1, --k answers each)")
    ap.add_argument(
        "--stages",
        nargs="+",
        default=["sample", "dpo", "grpo"],
        choices=list(STAGES),
        help="stages to run after generating the requests (dpo, orpo and rejection train on sample's picks)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "onpolicy_cost.json")
    args = ap.parse_args()
    restart_with_blas()

    import anyio

    from tooltune.config import Settings
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.data.onpolicy import SampleConfig, pick_training_data, sample_dataset
    from tooltune.models.resolve import resolve_model
    from tooltune.serving.model_server import ModelServer
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

    cfg = SampleConfig.like(args)

    if "grpo" in args.stages:
        stages["grpo"] = grpo_stage(settings, ws, model_path, args)
    if "sample" not in args.stages:
        return write(args, model_path, stages)

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
    for method in (m for m in STAGES if m in PICKED_STAGES and m in args.stages):
        stages[method] = training_stage(settings, ws, picked_config(model_path, method, args))
    return write(args, model_path, stages)


def picked_config(model_path: Path, method: str, args: Any) -> Any:
    """The run a training stage times: ``--iters`` steps of ``method`` on what the pick stage made."""
    from tooltune.training.train_config import TrainConfig

    return TrainConfig(
        model=str(model_path),
        dataset=PICKED_STAGES[method],
        method=method,
        iters=args.iters,
        batch_size=1,
        steps_per_report=max(1, args.iters // 2),
        steps_per_eval=args.iters,
        val_batches=2,
        init_adapter=args.adapter,
        answer_check=0,  # the steps' cost; the check costs greedy answers (see the sample stage)
    )


def training_stage(settings: Any, ws: Any, cfg: Any) -> dict[str, Any]:
    """Train ``cfg`` and say what its steps cost (and, for dpo, scoring the pairs under the reference)."""
    job, run, metrics, wall = train_and_wait(settings, ws, cfg, cfg.method)
    return {
        "status": job.status,
        "error": job.error,
        "wall_s": round(wall, 1),
        "iters": cfg.iters,
        "reference_seconds": (run.applied.get("method") or {}).get("reference_seconds"),
        "time": metrics.get("time"),
        "s_per_step": metrics.get("s_per_iter"),
        "processed_tokens_per_second": metrics.get("processed_tokens_per_second"),
        "train_loss_first_last": [metrics.get("first_train_loss"), metrics.get("last_train_loss")],
        "metrics": metrics,
    }


def train_and_wait(settings: Any, ws: Any, cfg: Any, name: str) -> tuple[Any, Any, dict[str, Any], float]:
    """Start a training run, wait for it; (job, run, metrics, wall seconds)."""
    from tooltune.jobs import JobStore
    from tooltune.training import runs

    t0 = time.perf_counter()
    job = runs.start_training(cfg, settings, name=name)
    job = JobStore(ws).wait(job.id, poll=1.0)
    wall = time.perf_counter() - t0
    run = runs.get_run(settings, job.id)
    metrics = (
        json.loads((ws.run_dir(run.id) / "metrics.json").read_text()) if job.status == "succeeded" else {}
    )
    return job, run, metrics, wall


def grpo_stage(settings: Any, ws: Any, model_path: Path, args: Any) -> dict[str, Any]:
    """GRPO steps on the generated requests: per step, --k answers sampled and scored, one update."""
    from tooltune.training.train_config import TrainConfig

    cfg = TrainConfig(
        model=str(model_path),
        dataset="requests",
        method="grpo",
        iters=args.grpo_iters,
        batch_size=1,
        group_size=args.k,
        sample_temperature=args.temperature,
        max_completion_tokens=args.max_tokens,
        steps_per_report=1,
        init_adapter=args.adapter,
        answer_check=0,  # the steps' cost, as the stored results measured it before GRPO had the check
    )
    job, run, metrics, wall = train_and_wait(settings, ws, cfg, "grpo")
    rollouts = [json.loads(x) for x in (ws.run_dir(run.id) / "rollouts.jsonl").read_text().splitlines()]
    return {
        "status": job.status,
        "error": job.error,
        "wall_s": round(wall, 1),
        "iters": args.grpo_iters,
        "config": {k: getattr(cfg, k) for k in ("batch_size", "group_size", "sample_temperature", "beta")},
        "time": metrics.get("time"),
        "s_per_step": round(metrics["time"]["steps_s"] / args.grpo_iters, 2) if metrics.get("time") else None,
        "processed_tokens_per_second": metrics.get("processed_tokens_per_second"),
        "rollouts": metrics.get("rollouts"),
        "per_step": rollouts,
    }


def write(args: Any, model_path: Path, stages: dict[str, Any]) -> int:
    out = {
        "benchmark": "onpolicy_cost",
        "command": command_line(),
        "machine": machine_info(),
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
