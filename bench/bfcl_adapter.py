"""Headline benchmark: does a LoRA adapter trained on data generated from BFCL *function schemas only*
make Qwen2.5-Coder-0.5B call tools natively on BFCL's held-out questions, without over-calling?

Stages (each is skipped when its result already exists, so a re-run resumes):
  1. import the BFCL suites (category under test + irrelevance) into the bench workspace;
  2. generate training data from the category file's function schemas (never its questions; the
     leakage check runs against every BFCL file and drops anything near an eval request);
  3. train a LoRA adapter (tooltune's worker: mlx-lm tuner API, OpenBLAS, float32);
  4. evaluate baseline and adapter on the same seeded sample of cases through one ModelServer
     (native + lenient scoring, McNemar on the paired outcomes);
     with --train-seeds A B ...: stages 2-3 run once per seed and the adapter under test is their exact
     average (tooltune adapters average); each member is evaluated on the same questions too;
     --also-average RESULT adds an earlier result's runs to that average (e.g. another generator's);
     --strength S tests S times that average (or S times the one adapter; members evaluated alone too);
  5. write bench/results/bfcl_adapter_<category>.json (+ the HTML comparison report).

Usage:
  python bench/bfcl_adapter.py --category simple_python [--n-train 1200] [--iters 300] [--eval-n 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from tooltune.adapters.average import average_adapters
from tooltune.adapters.registry import AdapterRegistry
from tooltune.config import Settings
from tooltune.data.datasets import generate_dataset
from tooltune.data.generate_config import GENERATOR_VERSION, GenerateConfig
from tooltune.data.store import load_dataset
from tooltune.data.teacher import SELF, TEACHER_PROMPT_VERSION, open_teacher
from tooltune.errors import TooltuneError
from tooltune.evals.bfcl_import import import_bfcl
from tooltune.evals.service import compare_runs, run_suite_on_server
from tooltune.evals.suite import EvalSuite
from tooltune.models.resolve import resolve_model
from tooltune.serving.model_server import ModelServer
from tooltune.training.runs import RunNotFoundError, follow_events, get_run, start_training
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import command_line, machine_info

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BFCL = REPO.parent / "shared" / "bench" / "bfcl"


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sample_cases(suite: EvalSuite, n: int, seed: int) -> EvalSuite:
    """A seeded random sample (not the first N: BFCL files are loosely ordered by topic)."""
    cases = list(suite.cases)
    if n and n < len(cases):
        cases = random.Random(seed).sample(cases, n)
        cases.sort(key=lambda c: c.id)
    return suite.model_copy(update={"cases": cases, "name": f"{suite.name}-s{seed}-n{len(cases)}"})


def stage_data(
    settings: Settings, ws: Workspace, args: argparse.Namespace, model_path: Path
) -> dict[str, Any]:
    # the generator version is part of the recipe: a changed generator never reuses an old dataset
    # (version 1 is left out so the datasets of results measured with it keep their names)
    recipe_parts: list[Any] = [args.max_tools, args.mix]
    if GENERATOR_VERSION != "tooltune-data/1":
        recipe_parts.append(GENERATOR_VERSION)
    if args.contrast_share:  # named only when used, so earlier datasets keep their names
        recipe_parts.append({"contrast_share": args.contrast_share})
    if args.near_miss_contrast_share:
        recipe_parts.append({"near_miss_contrast_share": args.near_miss_contrast_share})
    if args.call_question_share is not None:
        recipe_parts.append({"call_question_share": args.call_question_share})
    taught = bool(args.teacher_share or args.teacher_no_call_share)
    if taught:
        recipe_parts.append(
            {
                "teacher": "self",
                "share": args.teacher_share,
                "prompt": TEACHER_PROMPT_VERSION,
                **({"tries": args.teacher_tries} if args.teacher_tries != 1 else {}),
                **(
                    {"no_call_share": args.teacher_no_call_share}
                    if args.teacher_no_call_share is not None
                    else {}
                ),
            }
        )
    recipe = hashlib.sha256(json.dumps(recipe_parts, sort_keys=True).encode()).hexdigest()[:6]
    name = f"bfcl-{args.category.replace('_', '-')}-gen-n{args.n_train}-s{args.train_seed}-{recipe}"
    specs = [f"bfcl:{args.bfcl / f'BFCL_v4_{cat}.json'}" for cat in args.train_schemas]
    recipe_record = {
        "sources": specs,
        "max_tools": args.max_tools,
        "mix": args.mix,
        "contrast_share": args.contrast_share,
        "near_miss_contrast_share": args.near_miss_contrast_share,
        **({"call_question_share": args.call_question_share} if args.call_question_share is not None else {}),
    }
    if (ws.datasets / name).exists():  # made earlier (e.g. by --data-only): the same record, from its stats
        info = load_dataset(ws, name)
        log(f"data: reusing dataset {name} ({info.hash})")
        return {
            "name": name,
            "hash": info.hash,
            "counts": info.counts,
            "generator": info.generator_version,
            **recipe_record,
            "teacher": info.stats.get("teacher"),
            "kinds": info.stats.get("counts", {}),
            "dropped_duplicates": info.stats.get("dropped_duplicates"),
            "dropped_leaked": info.stats.get("dropped_leaked"),
            "reused": True,
        }
    log(f"data: generating {args.n_train} examples from function schemas of {args.train_schemas}")
    t0 = time.perf_counter()
    # the model under test paraphrases a share of the requests (no other model is available offline)
    with open_teacher(SELF if taught else None, model_path=model_path, settings=settings) as teacher:
        info, result = generate_dataset(
            ws,
            name,
            specs,
            GenerateConfig(
                n=args.n_train,
                seed=args.train_seed,
                max_tools=args.max_tools,
                mix=args.mix,
                contrast_share=args.contrast_share,
                near_miss_contrast_share=args.near_miss_contrast_share,
                call_question_share=args.call_question_share,
                **(
                    {
                        "teacher_share": args.teacher_share,
                        "teacher_no_call_share": args.teacher_no_call_share,
                        "teacher_tries": args.teacher_tries,
                    }
                    if taught
                    else {}
                ),
            ),
            model_path=model_path,
            bfcl_dir=args.bfcl,
            teacher=teacher,
        )
    return {
        "name": name,
        "hash": info.hash,
        "counts": info.counts,
        "generator": GENERATOR_VERSION,
        **recipe_record,
        "teacher": info.stats.get("teacher"),
        "kinds": result.counts,
        "dropped_duplicates": result.dropped_duplicates,
        "dropped_leaked": result.dropped_leaked,
        "seconds": round(time.perf_counter() - t0, 1),
        "reused": False,
    }


_RESOLVED = {"model_path", "dataset_path"}  # machine paths, left out of the results like on a fresh run


def reused_run_applied(settings: Settings, run_id: str | None) -> dict[str, Any] | None:
    """What a reused adapter's training run applied, or None where its run record is not in this
    workspace (an adapter copied in from another machine travels without its run)."""
    if not run_id:
        return None
    try:
        return get_run(settings, run_id).applied
    except RunNotFoundError:
        log(f"train: run {run_id} is not in this workspace; its applied settings are not recorded")
        return None


def stage_train(settings: Settings, ws: Workspace, args: argparse.Namespace, dataset: str) -> dict[str, Any]:
    # lr and batch size are named only when they differ from the values every earlier result used, so
    # those adapters keep their names (and a changed value never reuses an adapter trained with another)
    extra = (
        (f"-lr{args.lr:g}" if args.lr != 5e-5 else "")
        + (f"-b{args.batch_size}" if args.batch_size != 1 else "")
        + (f"-vw{args.value_loss_weight:g}" if args.value_loss_weight != 1 else "")
        + (f"-dw{args.decision_loss_weight:g}" if args.decision_loss_weight != 1 else "")
        + (f"-aw{args.anchor_loss_weight:g}" if args.anchor_loss_weight else "")
    )
    adapter = args.adapter_name or (
        f"bfcl-{args.category.replace('_', '-')}-r{args.rank}-l{args.num_layers}-i{args.iters}-s{args.train_seed}"
        f"{extra}{'-blocks' if args.train_tokens == [] else '-tr'}-{dataset.rsplit('-', 1)[-1]}{args.model_tag}"
    )
    if (ws.adapters / adapter).exists():
        log(f"train: reusing adapter {adapter}")
        rec = json.loads((ws.adapters / adapter / "tooltune.json").read_text())
        return {
            "adapter": adapter,
            "run_id": rec.get("run_id"),
            "reused": True,
            "metrics": rec.get("train_metrics"),
            "config": {k: v for k, v in (rec.get("train_config") or {}).items() if k not in _RESOLVED},
            "applied": reused_run_applied(settings, rec.get("run_id")),
        }
    config = TrainConfig.short_run(
        str(args.model_path),
        dataset,
        iters=args.iters,
        rank=args.rank,
        scale=args.scale,
        num_layers=args.num_layers,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length,
        seed=args.train_seed,
        steps_per_report=10,
        steps_per_eval=max(50, args.iters // 2),
        save_every=40,
        val_batches=args.val_batches,
        train_tokens=args.train_tokens,
        value_loss_weight=args.value_loss_weight,
        decision_loss_weight=args.decision_loss_weight,
        anchor_loss_weight=args.anchor_loss_weight,
    )
    log(f"train: starting {adapter} ({args.iters} iters, rank {args.rank}, layers {args.num_layers})")
    job = start_training(config, settings, name=adapter)
    last = time.perf_counter()
    for ev in follow_events(settings, job.id, poll_interval=2.0):
        if time.perf_counter() - last > 60 or ev.kind == "val":
            log(f"train: {ev.model_dump(exclude_none=True)}")
            last = time.perf_counter()
    run = get_run(settings, job.id)
    if run.status != "succeeded" or not run.registered:
        raise SystemExit(f"training ended {run.status}: {run.error or run.registration_error}")
    metrics = json.loads((ws.run_dir(run.id) / "metrics.json").read_text())
    return {
        "adapter": adapter,
        "run_id": run.id,
        "reused": False,
        "metrics": metrics,
        "applied": run.applied,
        "config": config.model_dump(exclude_none=True, exclude=_RESOLVED, mode="json"),
    }


def borrowed_members(ws: Workspace, path: Path) -> list[dict[str, Any]]:
    """The trained runs of an earlier result (its members, or its one adapter), to join an average."""
    try:
        d = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"--also-average {path}: cannot read it as a result file ({e})") from e
    runs = d.get("members") or [{"train_seed": d.get("train_seed"), "data": d["data"], "train": d["train"]}]
    for m in runs:
        if not (ws.adapters / m["train"]["adapter"]).is_dir():
            raise SystemExit(
                f"--also-average {path}: adapter {m['train']['adapter']} is not in {ws.adapters}; "
                f"run that result's command first: {d.get('command', '?')}"
            )
    return [{**m, "from_result": path.name} for m in runs]


def stage_average(ws: Workspace, members: list[dict[str, Any]], strength: float = 1.0) -> dict[str, Any]:
    """The exact average of the members' adapters (equal weights) times ``strength``, registered once and
    then reused. One member at a strength other than 1 is that adapter scaled."""
    names = [m["train"]["adapter"] for m in members]
    seeds = [m["train_seed"] for m in members]
    adapter = names[0] if len(names) == 1 else f"{names[0]}-avg-s{'-'.join(map(str, seeds))}"
    adapter = (adapter if strength == 1 else f"{adapter}-x{strength:g}")[:100]
    reused = (ws.adapters / adapter).exists()
    if reused:
        log(f"average: reusing adapter {adapter}")
    else:
        log(f"average: {adapter} = {strength:g} × mean of {names}")
        average_adapters(AdapterRegistry(ws), names, adapter, strength=strength)
    walls = [(m["train"].get("metrics") or {}).get("wall_time_s") or 0 for m in members]
    return {
        "adapter": adapter,
        "averaged_from": names,
        "strength": strength,
        "reused": reused,
        # the members' recipe (rank, iterations, lr); the average's rank is their sum
        "config": {**(members[0]["train"].get("config") or {}), "seed": "+".join(map(str, seeds))},
        "metrics": {"wall_time_s": round(sum(walls), 1), "members_wall_time_s": walls},
    }


def baseline_run_id(suite: str, model_path: Path, model_tag: str) -> str:
    """The base model's run on a suite: the default model's keeps its old id; another model's is the id
    bench/bfcl_base_models.py gives it, so either script reuses the other's run."""
    return f"{suite}-{model_path.name}" if model_tag else f"{suite}-baseline-base"


async def stage_eval(
    settings: Settings,
    ws: Workspace,
    args: argparse.Namespace,
    adapter: str,
    suites: dict[str, EvalSuite],
    members: tuple[str, ...] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with ModelServer(args.model_path, settings=settings, record_active=False) as server:
        for key, suite in suites.items():
            reports = {}
            targets = [("baseline", None), ("adapter", adapter), *((f"member:{m}", m) for m in members)]
            for label, which in targets:
                # a member's run id is the one a single-seed run of it gets, so either reuses the other
                run_id = (
                    f"{suite.name}-adapter-{which}"
                    if which
                    else baseline_run_id(suite.name, args.model_path, args.model_tag)
                )
                biased = label == "adapter" and args.call_bias_body
                run_id = run_id[: 100 - 8] + f"-cb{args.call_bias:g}" if biased else run_id[:100]
                log(f"eval: {suite.name} {label} ({len(suite.cases)} cases) as {run_id}")
                t0 = time.perf_counter()
                reports[label] = await run_suite_on_server(
                    server,
                    suite,
                    ws=ws,
                    adapter=which,
                    label=label,
                    run_id=run_id,
                    concurrency=args.concurrency,
                    max_tokens=args.max_tokens,
                    extra_body=args.call_bias_body if biased else None,
                )
                log(f"eval: {run_id} done in {time.perf_counter() - t0:.0f}s")
            cmp = compare_runs(ws, reports["baseline"].meta.run_id, reports["adapter"].meta.run_id)
            out[key] = {"baseline": reports["baseline"], "adapter": reports["adapter"], "comparison": cmp}
            out[key]["members"] = [
                {
                    "adapter": reports[f"member:{m}"],
                    # member first: "fixed" = cases the average passes that this member fails
                    "comparison_with_average": compare_runs(
                        ws, reports[f"member:{m}"].meta.run_id, reports["adapter"].meta.run_id
                    ),
                }
                for m in members
            ]
    return out


GOALS = {"category_native": 0.90, "irrelevance_any_call_counted": 0.85}  # issue 9


def call_bias_body(model_path: Path, bias: float) -> dict[str, Any]:
    """The request field that adds ``bias`` to the tool-call start token's logit at every position."""
    from mlx_lm.tokenizer_utils import load

    tok = load(model_path)
    return {"logit_bias": {str(tok.convert_tokens_to_ids(tok.tool_call_start)): bias}}


def check_goals(category: str, results: dict[str, Any]) -> dict[str, Any]:
    """The issue's two goals, checked on the adapter's numbers; says by how much a missed one is missed.

    Irrelevance uses the *lenient* score: there any call attempt, native or written as text, is a fail.
    """
    measured = {
        "category_native": results[category]["adapter"]["overall"]["native_rate"],
        "irrelevance_any_call_counted": results["irrelevance"]["adapter"]["overall"]["lenient_rate"],
    }
    goals = {
        name: {
            "goal": goal,
            "measured": round(measured[name], 4),
            "met": measured[name] >= goal,
            **({} if measured[name] >= goal else {"missed_by": round(goal - measured[name], 4)}),
        }
        for name, goal in GOALS.items()
    }
    return {"all_met": all(g["met"] for g in goals.values()), **goals}


def summarise(report: Any) -> dict[str, Any]:
    """Rates and counts only; the per-case detail stays in the workspace report it names."""
    d = json.loads(report.model_dump_json(exclude={"results"}))
    return {
        "run_id": report.meta.run_id,
        "adapter": report.meta.adapter,
        "complete": d["complete"],
        "overall": d["overall"],
        "categories": d["categories"],
        "reasons_native": d["reasons_native"],
        "reasons_lenient": d["reasons_lenient"],
        "wall_s": d["wall_s"],
        "cases_per_min": d["cases_per_min"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--category",
        default="simple_python",
        choices=["simple_python", "multiple", "parallel", "parallel_multiple"],
    )
    ap.add_argument(
        "--train-schemas", nargs="*", default=None, help="BFCL categories whose schemas feed training"
    )
    ap.add_argument("--bfcl", type=Path, default=DEFAULT_BFCL)
    ap.add_argument("--model", default=None, help="default: the demo model in the cache")
    ap.add_argument("--workspace", type=Path, default=Path.home() / ".cache" / "tooltune" / "bench-ws")
    ap.add_argument("--n-train", type=int, default=1200)
    ap.add_argument("--max-tools", type=int, default=2)
    ap.add_argument(
        "--mix", type=json.loads, default=None, help="kind weights as JSON, e.g. '{\"single\": 0.5}'"
    )
    ap.add_argument(
        "--contrast-share",
        type=float,
        default=0.0,
        help="share of absent-tool refusals that also get their call twin (GenerateConfig.contrast_share)",
    )
    ap.add_argument(
        "--near-miss-contrast-share",
        type=float,
        default=0.0,
        help="share of near misses that also get their exact-task call twin "
        "(GenerateConfig.near_miss_contrast_share)",
    )
    ap.add_argument(
        "--call-question-share",
        type=float,
        default=None,
        help="share of the call requests asked as a question when the tool's task reads as one "
        "(GenerateConfig.call_question_share; default 0.5, as for the requests answered in text)",
    )
    ap.add_argument(
        "--teacher-share",
        type=float,
        default=0.0,
        help="share of requests the model itself rewrites as a person would ask (data generate --teacher self)",
    )
    ap.add_argument(
        "--teacher-no-call-share",
        type=float,
        default=None,
        help="share of the requests answered in text (near misses, a tool not offered) the teacher "
        "rewrites (data generate --teacher-no-call-share; default: --teacher-share)",
    )
    ap.add_argument(
        "--teacher-tries",
        type=int,
        default=2,
        help="samples asked of the teacher per request until one keeps every value (data generate "
        "--teacher-tries; attempt 17 used 1)",
    )
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--num-layers", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-seq-length", type=int, default=1024)
    ap.add_argument("--val-batches", type=int, default=4, help="validation batches per evaluation")
    ap.add_argument("--eval-n", type=int, default=100, help="cases per suite (seeded sample)")
    ap.add_argument("--irrelevance-n", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument(
        "--seed", type=int, default=0, help="seed of the eval sample (and of training by default)"
    )
    ap.add_argument(
        "--train-seed",
        type=int,
        default=None,
        help="seed of the generated data and of training (default: --seed); another value with the same "
        "--seed measures run-to-run spread on the same eval questions",
    )
    ap.add_argument(
        "--train-seeds",
        type=int,
        nargs="+",
        default=None,
        help="train one adapter per seed (its own data and training order) and test their exact average; "
        "each member is evaluated on the same questions too",
    )
    ap.add_argument(
        "--also-average",
        type=Path,
        nargs="+",
        default=[],
        metavar="RESULT",
        help="earlier results (bench/results/*.json) whose adapters join the average, e.g. another "
        "generator's runs; their adapters must be in the workspace (run their commands first)",
    )
    ap.add_argument(
        "--value-loss-weight",
        type=float,
        default=1.0,
        help="loss weight of the argument values in the calls (tooltune train --value-loss-weight); below 1 "
        "the adapter learns when and how to call more than what to fill in",
    )
    ap.add_argument(
        "--decision-loss-weight",
        type=float,
        default=1.0,
        help="loss weight of each answer's first token, the call-or-text decision (tooltune train "
        "--decision-loss-weight); above 1 the adapter learns when to call more than how",
    )
    ap.add_argument(
        "--anchor-loss-weight",
        type=float,
        default=0.0,
        help="weight of the KL from the base model on the argument values (tooltune train "
        "--anchor-loss-weight); keeps the base model's values while the format is learned",
    )
    ap.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="test this multiple of the (averaged) adapter's weight change (tooltune adapters average "
        "--strength); below 1 turns it down toward the base model; the full-strength runs are evaluated too",
    )
    ap.add_argument(
        "--train-tokens",
        type=json.loads,
        default=None,
        help='JSON list of tokens whose embedding rows are trained; default: the tool-call markers; "[]" = none',
    )
    ap.add_argument(
        "--call-bias",
        type=float,
        default=None,
        help="added to the tool-call start token's logit in the adapter's eval requests (logit_bias; "
        "the baseline and the members are evaluated without it); its runs get the suffix -cb<bias>",
    )
    ap.add_argument("--adapter-name", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--notes", default="", help="what was tried, for the results file")
    ap.add_argument(
        "--data-only",
        action="store_true",
        help="generate (or find) the dataset and stop; the same command without it reuses the dataset",
    )
    args = ap.parse_args()
    args.train_schemas = args.train_schemas or [args.category]
    if args.train_seed is None:
        args.train_seed = args.seed
    if not args.strength > 0:
        ap.error(f"--strength must be a positive number; got {args.strength:g}")
    if args.train_seeds and len(args.train_seeds) > 1 and args.adapter_name:
        ap.error("--adapter-name names one adapter; leave it out with several --train-seeds")

    settings = Settings.load(workspace=args.workspace)
    ws = Workspace(settings.workspace).ensure()
    args.model_path = resolve_model(args.model or settings.default_model, settings).path
    # another base model gets its own adapter names and baseline runs (the default's keep their names)
    try:
        default_path: Path | None = resolve_model(settings.default_model, settings).path
    except TooltuneError:  # the default is not imported: any model given is "another"
        default_path = None
    args.model_tag = "" if args.model_path == default_path else f"-{args.model_path.name}"
    args.call_bias_body = call_bias_body(args.model_path, args.call_bias) if args.call_bias else None
    t_start = time.perf_counter()

    members: list[dict[str, Any]] = []
    for seed in args.train_seeds or [args.train_seed]:
        args.train_seed = seed
        data = stage_data(settings, ws, args, args.model_path)
        if args.data_only:
            log(f"data only: {json.dumps(data, default=str)}")
            continue
        members.append(
            {"train_seed": seed, "data": data, "train": stage_train(settings, ws, args, data["name"])}
        )
    if args.data_only:
        return
    members += [m for path in args.also_average for m in borrowed_members(ws, path)]
    # the tested adapter is built from the trained runs (their average, scaled), which are evaluated too
    combined = len(members) > 1 or args.strength != 1
    data = members[0]["data"]
    train = stage_average(ws, members, args.strength) if combined else members[0]["train"]

    suites = {
        args.category: sample_cases(
            import_bfcl(args.bfcl / f"BFCL_v4_{args.category}.json", ws=ws).suite, args.eval_n, args.seed
        ),
        "irrelevance": sample_cases(
            import_bfcl(args.bfcl / "BFCL_v4_irrelevance.json", ws=ws).suite, args.irrelevance_n, args.seed
        ),
    }
    member_names = tuple(m["train"]["adapter"] for m in members) if combined else ()
    evals = anyio.run(stage_eval, settings, ws, args, train["adapter"], suites, member_names)

    results: dict[str, Any] = {}
    for key, ev in evals.items():
        cmp = ev["comparison"]
        results[key] = {
            "baseline": summarise(ev["baseline"]),
            "adapter": summarise(ev["adapter"]),
            "comparison": json.loads(cmp.model_dump_json()),
        }
        if combined:
            results[key]["members"] = [
                {
                    "adapter": summarise(m["adapter"]),
                    "comparison_with_average": json.loads(m["comparison_with_average"].model_dump_json()),
                }
                for m in ev["members"]
            ]
    out = {
        "benchmark": "bfcl_adapter",
        "command": command_line(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "model": str(args.model_path),
        "category": args.category,
        "train_schemas_from": args.train_schemas,
        "eval_sample": {"seed": args.seed, "n": args.eval_n, "irrelevance_n": args.irrelevance_n},
        **({"call_bias": {"bias": args.call_bias, "request": args.call_bias_body}} if args.call_bias else {}),
        "train_seed": "+".join(str(m["train_seed"]) for m in members) if combined else args.train_seed,
        "data": data,
        "train": train,
        **({"members": members} if combined else {}),
        "results": results,
        # stages reused from an earlier invocation count with the time they took then
        "total_wall_s": round(
            sum(m["data"].get("seconds") or 0 for m in members)
            + ((train.get("metrics") or {}).get("wall_time_s") or 0)
            + sum(r[label]["wall_s"] or 0 for r in results.values() for label in ("baseline", "adapter"))
            + sum(x["adapter"]["wall_s"] or 0 for r in results.values() for x in r.get("members", [])),
            1,
        ),
        "invocation_wall_s": round(time.perf_counter() - t_start, 1),
        "goals": check_goals(args.category, results),
        "notes": args.notes,
    }
    dest = args.out or REPO / "bench" / "results" / f"bfcl_adapter_{args.category}.json"
    atomic_write_json(dest, out)
    for key, ev in evals.items():
        html = ws.reports / ev["adapter"].meta.run_id / f"vs-{ev['baseline'].meta.run_id}.html"
        if html.exists():
            shutil.copy(html, dest.with_name(f"{dest.stem}_{key}.html"))
    log(f"wrote {dest}")


if __name__ == "__main__":
    main()
