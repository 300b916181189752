"""Does a preference run's answer check stop a real model that training broke? (issue 36)

On one H200, DPO at learning rate 5e-5 from the 0.5B's SFT adapter brought the validation loss from 0.69
to 0.27 and left an adapter that never called a tool (0/400 simple_python). This benchmark breaks the
same kind of adapter on purpose, on any machine, and records what the answer check
(``tooltune/training/answer_check.py``) made of it:

  1. pairs from the SFT adapter's own generated dataset, no sampling: for requests where a call is due,
     the truth against a refusal; for requests where none is, the truth against a call of the first
     tool (``--valid-each`` of each kind for validation, which the check answers first);
  2. DPO from the adapter at a learning rate far above what collapsed on the GPU (default 1e-3, 20
     steps, constant), with the answer check on;
  3. the result: the run's status, its error, and the check's before/after counts per half.

    python bench/answer_check_real.py --workspace WS --adapter SFT_ADAPTER --model MODEL_DIR \\
        --out bench/results/answer_check_cpu.json

``--from-run RUN_ID`` writes the result of a run made earlier in ``--workspace`` (nothing is trained).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from tooltune.adapters.registry import AdapterRegistry
from tooltune.config import Settings
from tooltune.data.examples import Example
from tooltune.data.onpolicy import PAIRS_FORMAT, PreferencePair
from tooltune.jobs import JobStore
from tooltune.training.runs import get_run, run_paths, start_training
from tooltune.training.train_config import TrainConfig, adapter_lora_shape
from tooltune.workspace import Workspace, atomic_write_json

REFUSAL = {"role": "assistant", "content": "I can't help with that using these tools."}


def build_pairs(
    source: Path, dest: Path, *, valid_each: int, train_calls: int, train_no_calls: int, seed: int = 0
) -> dict[str, int]:
    """Write a pairs dataset folder ``dest`` from the SFT dataset folder ``source`` (see the module
    docstring); returns its split counts."""
    calls: list[PreferencePair] = []
    no_calls: list[PreferencePair] = []
    for split in ("valid", "train"):
        path = source / f"{split}.jsonl"
        for n, line in enumerate(path.read_text("utf-8").splitlines() if path.is_file() else [], 1):
            if not line.strip():
                continue
            ex = Example.model_validate(json.loads(line))
            last = ex.messages[-1] if ex.messages else {}
            if last.get("role") != "assistant" or not ex.tools or len(ex.messages) < 2:
                continue  # a conversation that does not end in the answer: not one request
            common = {
                "id": f"{split}-{n}",
                "kind": ex.meta.kind,
                "messages": ex.messages[:-1],
                "tools": ex.tools,
            }
            if last.get("tool_calls"):
                calls.append(
                    PreferencePair(
                        **common, reason="no_call_made", chosen=last, rejected=REFUSAL, chosen_is_own=False
                    )
                )
            else:
                name = ex.tools[0]["function"]["name"]
                call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": {}}}]}  # fmt: skip
                no_calls.append(PreferencePair(**common, reason="called_when_irrelevant", chosen=last, rejected=call, chosen_is_own=False))  # fmt: skip
    random.Random(seed).shuffle(calls)
    random.Random(seed).shuffle(no_calls)
    valid = calls[:valid_each] + no_calls[:valid_each]
    train = calls[valid_each : valid_each + train_calls] + no_calls[valid_each : valid_each + train_no_calls]
    if not valid or not train:
        raise SystemExit(
            f"{source}: too few requests for the pairs ({len(calls)} calls, {len(no_calls)} no-calls)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for split, pairs in (("valid", valid), ("train", train), ("test", [])):
        (dest / f"{split}.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in pairs), "utf-8")
    counts = {"train": len(train), "valid": len(valid), "test": 0}
    meta = {"name": dest.name, "hash": f"sha256:answer-check-{source.name}-{seed}", "counts": counts}
    atomic_write_json(dest / "dataset.json", {**meta, "extra": {"format": PAIRS_FORMAT, "from": source.name}})
    return counts


def seconds_before(run_dir: Path) -> float | None:
    """The check's time before training: in run.json since it records it, else in the worker's log."""
    log_file = run_dir / "worker.log"
    for line in log_file.read_text("utf-8").splitlines() if log_file.is_file() else []:
        if '"answer_check.before"' in line:
            try:
                event = json.loads(line)  # runs before run.json kept it logged it as "seconds"
                return float(event.get("seconds_before", event.get("seconds")))
            except (ValueError, KeyError, TypeError):
                return None
    return None


def weight_change(start: Path, end: Path, scale: float) -> dict[str, Any] | None:
    """How far training moved the adapter from its start: each token row's change (``scale × Δlora_b``,
    the change to the effective embedding row) beside the start adapter's own row delta, and the blocks'
    ``lora_b`` change relative to their size. None when either file is missing."""
    import mlx.core as mx

    if not (start.is_file() and end.is_file()):
        return None
    a, b = mx.load(str(start)), mx.load(str(end))
    out: dict[str, Any] = {}
    key = "model.embed_tokens.lora_b"
    if key in a and key in b:
        rows = [i for i in range(a[key].shape[0]) if mx.abs(a[key][i]).max().item() > 0]

        def norms(x: mx.array) -> list[float]:
            return [round(v, 4) for v in mx.sqrt(((scale * x[mx.array(rows)]) ** 2).sum(-1)).tolist()]

        out["token_rows"] = {"start_delta_norm": norms(a[key]), "change_norm": norms(b[key] - a[key])}
    blocks = [k for k in a if k.startswith("model.layers.") and k.endswith("lora_b") and k in b]
    size = sum(float((a[k] ** 2).sum().item()) for k in blocks)
    moved = sum(float(((b[k] - a[k]) ** 2).sum().item()) for k in blocks)
    out["blocks_lora_b_relative_change"] = round((moved / size) ** 0.5, 4) if size else None
    return out


def losses_of(metrics: Path) -> dict[str, Any] | None:
    """The run's training and validation losses as its metrics.json has them (None before it exists)."""
    if not metrics.is_file():
        return None
    m = json.loads(metrics.read_text())
    keys = ("first_train_loss", "last_train_loss", "first_val_loss", "last_val_loss", "best_val_iteration")
    return {k: m.get(k) for k in keys}


def result_of(run: Any, config: TrainConfig, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    method = run.applied.get("method") or {}
    check = method.get("answer_check") or {}
    started, finished = run.started, run.finished
    return {
        "benchmark": "answer_check_real",
        "command": "python " + " ".join(sys.argv),
        "date": (started or datetime.now(UTC)).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "device": run.device, "mlx": run.mlx_version},
        "model": Path(run.base_model or "").name,
        "start_adapter": config.init_adapter,
        "notes": args.notes,
        "dataset": run.dataset,
        "pairs": {
            "train": method.get("pairs"),
            "valid": method.get("valid_pairs"),
            "per_reason": method.get("per_reason"),
        },
        "train": {
            "run": run.id,
            "status": run.status,
            "registered": run.registered,
            "learning_rate": config.learning_rate,
            "lr_schedule": config.lr_schedule,
            "dpo_loss": config.dpo_loss,
            "iters": run.iters,
            "init_adapter": config.init_adapter,
            "error": run.error,
            "warnings": run.warnings,
        },
        "answer_check": method.get("answer_check"),
        "losses": losses_of(run_paths(run_dir)["metrics"]),
        "token_rows": run.applied.get("token_rows"),
        "weight_change": weight_change(
            Path(config.init_adapter_path or "") / "adapters.safetensors",
            run_paths(run_dir)["adapter"] / "adapters.safetensors",
            config.scale,
        )
        if config.init_adapter_path
        else None,
        "seconds": {
            "run": round((finished - started).total_seconds(), 1) if started and finished else None,
            "reference_scoring": method.get("reference_seconds"),
            "answer_check_before": check.get("seconds_before") or seconds_before(run_dir),
            "answer_check_after": check.get("seconds"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--adapter", help="the registered SFT adapter to break (not with --from-run)")
    ap.add_argument("--model", default=None, help="its base model (default: the adapter's)")
    ap.add_argument("--valid-each", type=int, default=16)
    ap.add_argument("--train-calls", type=int, default=40)
    ap.add_argument("--train-no-calls", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument(
        "--freeze-token-rows",
        action="store_true",
        help="hold the adapter's tool-call token rows (TrainConfig's)",
    )
    ap.add_argument(
        "--dpo-loss",
        default="sigmoid",
        choices=list(get_args(TrainConfig.model_fields["dpo_loss"].annotation)),  # the config's own list
        help="the DPO loss form (TrainConfig's dpo_loss)",
    )
    ap.add_argument("--from-run", default=None, help="write the result of this run instead of training")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--notes", default="")
    args = ap.parse_args(argv)
    settings = Settings.load(workspace=args.workspace)
    if args.from_run is None:
        if not args.adapter:
            ap.error("--adapter is needed unless --from-run names a run")
        registry = AdapterRegistry(Workspace(args.workspace))
        record = registry.get(args.adapter)
        source = Workspace(args.workspace).dataset_dir(record.train_config["dataset"])
        name = f"answer-check-{args.adapter}"[:100]
        build_pairs(
            source, Workspace(args.workspace).dataset_dir(name), valid_each=args.valid_each,
            train_calls=args.train_calls, train_no_calls=args.train_no_calls,
        )  # fmt: skip
        cfg = TrainConfig(
            model=args.model or record.base_model,
            dataset=name,
            method="dpo",
            init_adapter=args.adapter,
            iters=args.iters,
            learning_rate=args.lr,
            lr_schedule="constant",
            batch_size=1,
            max_seq_length=1024,
            val_batches=2,
            steps_per_eval=args.iters,
            steps_per_report=5,
            freeze_token_rows=args.freeze_token_rows,
            dpo_loss=args.dpo_loss,
            **adapter_lora_shape(registry, args.adapter),
        )
        tag = (  # kept whole: runs differ by it
            f"-lr{args.lr:g}"
            + ("-fr" if args.freeze_token_rows else "")
            + (f"-{args.dpo_loss}" if args.dpo_loss != "sigmoid" else "")
        )
        job = start_training(cfg, settings, name=name[: 100 - len(tag)] + tag)
        job = JobStore(Workspace(args.workspace)).wait(job.id, poll=2.0)
        run = get_run(settings, job.id)
    else:
        run = get_run(settings, args.from_run)
    run_dir = Workspace(args.workspace).run_dir(run.id)
    config = TrainConfig.model_validate_json((run_dir / "config.json").read_text())
    out = result_of(run, config, run_dir, args)
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}: {run.status}; {json.dumps((out['answer_check'] or {}).get('groups'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
