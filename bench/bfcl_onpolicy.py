"""Issue 36 on BFCL: train on an SFT adapter's own mistakes and measure it against that adapter.

Starts from an adapter that ``bench/bfcl_adapter.py`` trained (in the same ``--workspace``) and its
generated dataset (schemas only, never BFCL's questions), then:

  1. samples the adapter's answers to the dataset's training requests (``--k`` at ``--temperature``),
     each scored against the request's generated truth;
  2. picks preference pairs (``--method dpo``) or its own correct answers (``--method rejection``);
  3. trains a new adapter from the SFT adapter's weights (``init_adapter``); with ``--method grpo`` steps
     1-3 are one GRPO run on the dataset's requests (``--k`` answers per request sampled inside training,
     rewarded by the scorer);
  4. evaluates the base model, the SFT adapter and the new adapter on the same BFCL cases as
     ``bfcl_adapter.py`` (its run ids, so runs it made are reused), native and lenient, paired; with
     ``--also multiple parallel``, on those whole categories too;
  5. writes a result in ``bfcl_adapter.py``'s shape (``results.<suite>.baseline/adapter/comparison``,
     read by ``bench/bfcl_full.py``) plus ``sft`` and ``comparison_with_sft`` per suite.

    python bench/bfcl_onpolicy.py --category simple_python --sft-adapter ADAPTER --workspace WS \\
        --method dpo --k 4 --limit 300 --iters 150 --eval-n 400 --irrelevance-n 240 --out RESULT.json

The samples set is named by the SFT adapter and the sampling recipe, not the method: a rejection, DPO
and ORPO run from one adapter share it (sampled once).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bfcl_adapter import DEFAULT_BFCL, baseline_run_id, log, sample_cases, summarise  # noqa: E402

from tooltune.adapters.registry import AdapterRegistry  # noqa: E402
from tooltune.config import Settings  # noqa: E402
from tooltune.data.onpolicy import SAMPLER_VERSION, SampleConfig, pick_training_data, sample_dataset  # noqa: E402
from tooltune.evals.bfcl_import import import_bfcl  # noqa: E402
from tooltune.evals.service import compare_runs, run_suite_on_server  # noqa: E402
from tooltune.evals.suite import EvalSuite  # noqa: E402
from tooltune.jobs import JobStore  # noqa: E402
from tooltune.models.resolve import resolve_model  # noqa: E402
from tooltune.serving.model_server import ModelServer  # noqa: E402
from tooltune.training.runs import get_run, run_paths, start_training  # noqa: E402
from tooltune.training.train_config import TrainConfig, adapter_lora_shape  # noqa: E402
from tooltune.workspace import Workspace, atomic_write_json  # noqa: E402

from bench_common import command_line, machine_info  # noqa: E402

CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple"]


def eval_suites(args: argparse.Namespace, ws: Workspace) -> dict[str, EvalSuite]:
    """The suites every model is scored on: ``--category`` (``--eval-n`` sampled cases) and irrelevance
    (``--irrelevance-n``), as ``bfcl_adapter.py`` samples them, then each ``--also`` category whole."""

    def load(category: str) -> EvalSuite:
        return import_bfcl(args.bfcl / f"BFCL_v4_{category}.json", ws=ws).suite

    suites = {
        args.category: sample_cases(load(args.category), args.eval_n, args.seed),
        "irrelevance": sample_cases(load("irrelevance"), args.irrelevance_n, args.seed),
    }
    for category in args.also:
        if category not in suites:
            suites[category] = sample_cases(load(category), 0, args.seed)  # n 0: every case
    return suites


ANSWER_CHECK_DEFAULT: int = TrainConfig.model_fields["answer_check"].default


def run_names(args: argparse.Namespace, dataset: str) -> tuple[str, str]:
    """The run's tag (its picked dataset and adapter names start with it) and its samples set's name.
    Names stay short (run ids are cut at 100 characters): the recipe goes into a hash. The samples set is
    named by the SFT adapter, the sampling recipe and the judge (the sampler version) alone, so every
    method from one adapter shares it."""
    unseeded = ["unseeded"] if args.unseeded else []  # absent otherwise: earlier runs keep their names
    # answers judged by another rule are other samples (a workspace would keep the old set, with a warning)
    judge = [SAMPLER_VERSION] if SAMPLER_VERSION != "tooltune-samples/1" else []
    balanced = ["balanced_decision"] if args.balanced_decision else []  # absent otherwise, as unseeded
    digest = _digest(
        [args.k, args.temperature, args.limit, args.per_request, dataset] + unseeded + judge + balanced
    )
    sample_digest = _digest([args.k, args.temperature, args.limit, dataset] + unseeded + judge)
    return (
        f"{args.sft_adapter[:40]}-{args.method}-{digest}",
        f"{args.sft_adapter[:40]}-{sample_digest}-samples",
    )


def adapter_name(args: argparse.Namespace, tag: str) -> str:
    """The new adapter's name: the run's tag, its steps, and each training setting away from its default
    (runs that differ by one never share a name, so a rerun reuses only its own adapter)."""
    return (
        f"{tag}-i{args.iters}"
        + (f"-lr{args.lr:g}" if args.lr != 5e-5 else "")
        + (f"-b{args.beta:g}" if args.beta != 0.1 else "")
        + ("-fr" if args.freeze_token_rows else "")
        + (f"-{args.dpo_loss}" if args.method == "dpo" and args.dpo_loss != "sigmoid" else "")
        + (f"-nc{args.no_call_share:g}" if args.no_call_share is not None else "")
        + (f"-dk{args.decision_kl:g}" if args.decision_kl else "")
        + ("-bd" if args.balanced_decision else "")
        + (
            f"-ac{args.answer_check}"
            if args.method != "rejection" and args.answer_check != ANSWER_CHECK_DEFAULT
            else ""
        )
    )


def eval_run_id(name: str) -> str:
    """A run id of at most 100 characters that keeps ``name`` apart from its neighbours: a longer name is
    cut to 93 and ends with a hash of the whole (cut alone, ``...-lr5e-06-dpop`` and ``...-lr5e-06-fr``
    would share an id)."""
    if len(name) <= 100:
        return name
    return f"{name[:93]}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def _digest(value: Any) -> str:
    """Six hex digits of the SHA-256 of ``value`` as JSON."""
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:6]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--category", default="simple_python", choices=CATEGORIES)
    ap.add_argument(
        "--also",
        nargs="*",
        default=[],
        choices=CATEGORIES,
        help="more BFCL categories to score base, SFT adapter and new adapter on, every case of each",
    )
    ap.add_argument("--sft-adapter", required=True, help="adapter bfcl_adapter.py trained, in --workspace")
    ap.add_argument("--dataset", default=None, help="default: the dataset the SFT adapter was trained on")
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--bfcl", type=Path, default=DEFAULT_BFCL)
    ap.add_argument("--method", choices=["dpo", "orpo", "rejection", "grpo"], default="dpo")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--limit", type=int, default=None, help="training requests sampled (default: all)")
    ap.add_argument("--per-request", type=int, default=1)
    ap.add_argument(
        "--unseeded",
        action="store_true",
        help="sample without a seed: mlx_lm.server batches the requests (a seed makes it serve them one "
        "by one), faster but not reproducible",
    )
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument(
        "--dpo-loss",
        default="sigmoid",
        choices=list(get_args(TrainConfig.model_fields["dpo_loss"].annotation)),  # the config's own list
        help="dpo: the loss form (TrainConfig's dpo_loss)",
    )
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument(
        "--no-call-share",
        type=float,
        default=None,
        help="grpo: the share of each step's requests where no call is due (default: as the data holds)",
    )
    ap.add_argument(
        "--decision-kl",
        type=float,
        default=0.0,
        help="grpo: the weight of the KL term holding the first token's call/no-call choice at the SFT "
        "start's (TrainConfig's decision_kl; 0: none)",
    )
    ap.add_argument(
        "--balanced-decision",
        action="store_true",
        help="dpo/orpo: as many pairs preferring a call to the model's text answer as preferring a text "
        "answer to its call (pick_training_data's balanced_decision)",
    )
    ap.add_argument(
        "--answer-check",
        type=int,
        default=ANSWER_CHECK_DEFAULT,
        help="the run's answer check (TrainConfig's answer_check; grpo: up to twice this many of the SFT "
        "dataset's requests, half where a call is due)",
    )
    ap.add_argument(
        "--freeze-token-rows",
        action="store_true",
        help="hold the SFT adapter's tool-call token rows; only the LoRA blocks learn (TrainConfig's)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the eval sample (as bfcl_adapter.py's)")
    ap.add_argument("--eval-n", type=int, default=400)
    ap.add_argument("--irrelevance-n", type=int, default=240)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--notes", default="")
    args = ap.parse_args(argv)
    check = TrainConfig.model_fields["answer_check"].metadata  # its bounds, checked before any sampling
    least = next(m.ge for m in check if hasattr(m, "ge"))
    most = next(m.le for m in check if hasattr(m, "le"))
    if not least <= args.answer_check <= most:
        ap.error(f"--answer-check must be from {least} to {most} (got {args.answer_check})")
    if args.no_call_share is not None and args.method != "grpo":
        ap.error("--no-call-share weighs GRPO's draws; leave it out for --method " + args.method)
    if args.decision_kl and args.method != "grpo":
        ap.error("--decision-kl holds GRPO's sampled decision; leave it out for --method " + args.method)
    if args.balanced_decision and args.method not in ("dpo", "orpo"):
        ap.error("--balanced-decision balances preference pairs; leave it out for --method " + args.method)

    settings = Settings.load(workspace=args.workspace)
    ws = Workspace(settings.workspace).ensure()
    registry = AdapterRegistry(ws)
    sft = registry.get(args.sft_adapter)
    dataset = args.dataset or Path(str(sft.train_config.get("dataset"))).name
    model_path = resolve_model(sft.base_model, settings).path
    try:
        default_path = resolve_model(settings.default_model, settings).path
    except Exception:  # noqa: BLE001 — the default model is not imported: any model is "another"
        default_path = None
    model_tag = "" if model_path == default_path else f"-{model_path.name}"
    t_start = time.perf_counter()
    tag, samples_name = run_names(args, dataset)
    suites = eval_suites(args, ws)

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with ModelServer(model_path, settings=settings, record_active=False) as server:
            if args.method == "grpo":  # samples inside training: no samples set, no picking
                train_data, method_fields = (
                    dataset,
                    {
                        "group_size": args.k,
                        "sample_temperature": args.temperature,
                        "max_completion_tokens": args.max_tokens,
                        "no_call_share": args.no_call_share,
                        "decision_kl": args.decision_kl,
                    },
                )
            else:
                cfg = SampleConfig.like(args, seed=None if args.unseeded else 0)
                t0 = time.perf_counter()
                samples = await sample_dataset(
                    server, ws, dataset, samples_name, cfg, adapter=args.sft_adapter
                )
                out["samples"] = {
                    "name": samples.name,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "counts": samples.counts,
                    "reasons": samples.reasons,
                    "per_kind": samples.per_kind,
                }
                picked = pick_training_data(
                    ws, samples.name, "rejection" if args.method == "rejection" else "pairs", f"{tag}-data",
                    per_request=args.per_request, balanced_decision=args.balanced_decision,
                )  # fmt: skip
                out["picked"] = picked.model_dump()
                train_data, method_fields = picked.dataset, {}
            adapter = adapter_name(args, tag)
            if adapter not in registry.names():
                train_cfg = TrainConfig(
                    model=str(model_path),
                    dataset=train_data,
                    # rejection stays plain SFT here: the committed rejection runs had no answer check,
                    # and a rerun of their recipe must train as they did
                    method="sft" if args.method == "rejection" else args.method,
                    **method_fields,
                    init_adapter=args.sft_adapter,
                    iters=args.iters,
                    learning_rate=args.lr,
                    beta=args.beta,
                    **({"dpo_loss": args.dpo_loss} if args.method == "dpo" else {}),
                    batch_size=args.batch_size,
                    freeze_token_rows=args.freeze_token_rows,
                    answer_check=args.answer_check,
                    **adapter_lora_shape(registry, args.sft_adapter),
                )
                job = await anyio.to_thread.run_sync(
                    lambda: start_training(train_cfg, settings, name=adapter)
                )
                job = await anyio.to_thread.run_sync(lambda: JobStore(ws).wait(job.id, poll=1.0))
                run_rec = get_run(settings, job.id)
                out["train"] = {"adapter": adapter, "run": run_rec.id, "applied": run_rec.applied}
                if job.status != "succeeded":  # e.g. the answer check: say what failed, evaluate nothing
                    log(f"training {job.id} {job.status}: {job.error}")
                    metrics = run_paths(ws.run_dir(run_rec.id))["metrics"]  # the run's losses and times
                    out["train"].update(
                        status=job.status,
                        error=job.error,
                        learning_rate=args.lr,
                        iters=args.iters,
                        metrics=json.loads(metrics.read_text()) if metrics.is_file() else None,
                    )
                    return out
            else:
                out["train"] = {"adapter": adapter, "reused": True}
            out["train"]["metrics"] = registry.get(adapter).train_metrics
            out["train"]["config"] = registry.get(adapter).train_config
            results: dict[str, Any] = {}
            for key, suite in suites.items():
                reports = {}
                for label, which, run_id in (
                    ("baseline", None, baseline_run_id(suite.name, model_path, model_tag)),
                    ("sft", args.sft_adapter, f"{suite.name}-adapter-{args.sft_adapter}"),
                    ("adapter", adapter, eval_run_id(f"{suite.name}-adapter-{adapter}")),
                ):
                    log(f"eval: {suite.name} {label} ({len(suite.cases)} cases) as {run_id[:100]}")
                    reports[label] = await run_suite_on_server(
                        server, suite, ws=ws, adapter=which, label=label, run_id=run_id[:100],
                        concurrency=args.concurrency, max_tokens=args.max_tokens,
                    )  # fmt: skip
                ids = {k: r.meta.run_id for k, r in reports.items()}
                results[key] = {
                    "baseline": summarise(reports["baseline"]),
                    "sft": summarise(reports["sft"]),
                    "adapter": summarise(reports["adapter"]),
                    "comparison": json.loads(
                        compare_runs(ws, ids["baseline"], ids["adapter"]).model_dump_json()
                    ),
                    "comparison_with_sft": json.loads(
                        compare_runs(ws, ids["sft"], ids["adapter"]).model_dump_json()
                    ),
                }
            out["results"] = results
        return out

    body = anyio.run(run)

    doc = {
        "benchmark": "bfcl_onpolicy",
        "command": command_line(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "model": str(model_path),
        "category": args.category,
        "method": args.method,
        "sft_adapter": args.sft_adapter,
        "dataset": dataset,
        "train_seed": f"{args.sft_adapter}+{args.method}",
        "unseeded": args.unseeded,
        **({"balanced_decision": True} if args.balanced_decision else {}),
        "eval_sample": {
            "seed": args.seed,
            "n": args.eval_n,
            "irrelevance_n": args.irrelevance_n,
            "whole": [c for c in args.also if c not in (args.category, "irrelevance")],
        },
        **body,
        "invocation_wall_s": round(time.perf_counter() - t_start, 1),
        "notes": args.notes,
    }
    atomic_write_json(args.out, doc)
    log(f"wrote {args.out}")
    return 1 if body["train"].get("status") else 0  # a failed training run (recorded above) fails the bench


if __name__ == "__main__":
    sys.exit(main())
