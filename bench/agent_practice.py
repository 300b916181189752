"""Issue 34, T5: does an adapter learn multi-step work from its own successful runs?

Trained on generated and recorded jobs, the 0.5B's adapters make a sensible first call and then do not
use what came back (docs/TASKS.md, T0-T4: 0-4 of 43 coding tasks). Here the starting adapter works
practice tasks itself (``tooltune.data.practice_tasks``: the recorded jobs' kinds as tasks on their own
small projects, with checks), ``--k`` times each at ``--temperature``; the runs a check passes with every
call native, valid and not repeated become a dataset (the model's own calls, the results they really
got, the answer that used them); the adapter trains on it from where it was (``init_adapter``); then the
starting adapter and the new one work every task of ``coding-tasks`` greedily with the repeat guard, paired.

Each stage is skipped when its output exists in ``--workspace``, so a re-run resumes. The starting
adapter is a registered one (``--adapter``), or trained here first with bench/agent_tasks.py's recipe
(``--train-start``, with ``--iters-start`` and that script's data options).

Usage:
  python bench/agent_practice.py --model M --adapter NAME [--n 200] [--k 4] [--temperature 0.7]
  python bench/agent_practice.py --model M --train-start --iters-start 600 --trajectory-share 0.4

Writes bench/results/agent_practice_<model>.json: the practice runs (tasks, successes per round, what was
kept and skipped), the dataset and adapter names, ``start`` and ``adapter`` objects holding ``success``
(a fraction) on coding-tasks, per category and with the call counts, the McNemar test, and each stage's
wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from agent_tasks import log, side, train_registered
from agent_tasks import train as train_start

from tooltune.config import Settings
from tooltune.data.generate_config import GENERATOR_VERSION
from tooltune.data.practice_tasks import kept_examples, save_practice_dataset, write_practice_suite
from tooltune.data.store import load_dataset
from tooltune.evals.task_compare import TaskComparison, compare_task_runs
from tooltune.evals.task_records import TaskReport, load_task_report, task_run_dir
from tooltune.evals.task_runner import evaluate_tasks_on_server, run_task_suite
from tooltune.evals.tasks import load_task_suite
from tooltune.serving.model_server import ModelServer
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import command_line, machine_info, restart_with_blas

REPO = Path(__file__).resolve().parents[1]


def practice_key(adapter: str, args: argparse.Namespace) -> str:
    """What the practice runs depend on, in a short name (workspace names are at most 100 characters and
    the eval's run ids add to it): the starting adapter, the suite (tasks, seed, step limit), the
    temperature and the answer length."""
    what = f"{adapter}|n{args.n}|s{args.seed}|m{args.max_steps}|t{args.temperature:g}|x{args.max_tokens}"
    return hashlib.sha256(what.encode()).hexdigest()[:10]


def suite_dir(ws: Workspace, args: argparse.Namespace) -> Path:
    return ws.root / "practice" / f"n{args.n}-s{args.seed}-m{args.max_steps}"


def practice_ids(adapter: str, args: argparse.Namespace) -> list[str]:
    return [f"practice-{practice_key(adapter, args)}-r{j}" for j in range(args.k)]


def done(ws: Workspace, run_id: str) -> bool:
    return (task_run_dir(ws, run_id) / "run.json").exists() and load_task_report(ws, run_id).complete


async def practise(
    settings: Settings, ws: Workspace, model: Path, adapter: str, args: argparse.Namespace
) -> list[TaskReport]:
    """The starting adapter works the practice suite ``k`` times at the temperature: the ``k`` runs at
    once on one server (it batches their requests), each working ``--concurrency`` tasks at once."""
    path = suite_dir(ws, args) / "practice.yaml"
    if not path.exists():
        write_practice_suite(path.parent, n=args.n, seed=args.seed, max_steps=args.max_steps)
    suite = load_task_suite(path)
    ids = practice_ids(adapter, args)
    todo = [i for i in ids if not done(ws, i)]
    if todo:
        async with ModelServer(model, settings=settings, adapter=adapter) as server:
            log(f"practice: {len(todo)} runs of {len(suite.tasks)} tasks at temperature {args.temperature:g}")
            async with anyio.create_task_group() as tg:
                for run_id in todo:
                    tg.start_soon(partial(
                        run_task_suite, suite, ws=ws, server=server, adapter=adapter, label=adapter,
                        run_id=run_id, model_name=model.name, temperature=args.temperature,
                        max_tokens=args.max_tokens, concurrency=args.concurrency,
                    ))  # fmt: skip
    return [load_task_report(ws, i) for i in ids]


def kept_dataset(
    ws: Workspace, model: Path, adapter: str, args: argparse.Namespace
) -> tuple[str, dict[str, Any]]:
    """The clean successes of the practice runs as a dataset: one example per assistant turn, each once,
    a task's pieces in one split (linted and leak-checked by the import)."""
    name = f"practice-{practice_key(adapter, args)}-k{args.k}"
    ids = practice_ids(adapter, args)
    conversations, stats = kept_examples(task_run_dir(ws, i) for i in ids)
    if conversations and not (ws.datasets / name).exists():
        sources = [f"practice:{i}" for i in ids]
        _, left_out = save_practice_dataset(ws, name, conversations, model_path=model, sources=sources)
        stats["left_out"] = left_out
    if (ws.datasets / name).exists():
        stats["examples"] = sum(load_dataset(ws, name).counts.values())
    return name, stats


def train(
    settings: Settings, ws: Workspace, model: Path, start: str, dataset: str, args: argparse.Namespace
) -> str:
    adapter = f"{dataset}-i{args.iters}-lr{args.learning_rate:g}"
    if not (ws.adapters / adapter).exists():
        cfg = TrainConfig(
            model=str(model), dataset=dataset, iters=args.iters, init_adapter=start,
            learning_rate=args.learning_rate, max_seq_length=args.max_seq_length,
        )  # fmt: skip
        log(f"train: {adapter} from {start}")
        train_registered(settings, cfg, adapter)
    return adapter


async def evaluate(
    settings: Settings, ws: Workspace, model: Path, start: str, new: str, args: argparse.Namespace
) -> tuple[list[TaskReport], TaskComparison]:
    """Both adapters on every coding task, greedy, with the repeat guard (bench/agent_tasks.py's run ids,
    so a run of the starting adapter made there is reused)."""
    suite = load_task_suite("coding-tasks")
    if args.limit:
        suite = suite.model_copy(update={"tasks": suite.tasks[: args.limit]})
    ids = [f"agent-native-{a}-n{len(suite.tasks)}-rg" for a in (start, new)]
    if not all(done(ws, i) for i in ids):
        async with ModelServer(model, settings=settings) as server:
            log(f"eval: coding-tasks ({len(suite.tasks)} tasks), {start} then {new}")
            await evaluate_tasks_on_server(
                server, suite, ws=ws, targets=[start, new], run_ids=ids, max_tokens=args.max_tokens,
                concurrency=args.concurrency,
            )  # fmt: skip
    reports = [load_task_report(ws, i) for i in ids]
    return reports, compare_task_runs(ws, ids[0], ids[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--adapter", help="the registered adapter that practises (or --train-start)")
    p.add_argument("--train-start", action="store_true", help="train the starting adapter as agent_tasks.py")
    p.add_argument("--iters-start", type=int, default=600)
    p.add_argument("--trajectory-share", type=float, default=0.4)
    p.add_argument("--offer-all-tools", action="store_true")
    p.add_argument("--n", type=int, default=200, help="practice tasks")
    p.add_argument("--k", type=int, default=4, help="attempts at each practice task")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-steps", type=int, default=8, help="model requests per practice task")
    p.add_argument("--iters", type=int, default=200, help="training steps on the kept runs")
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--max-seq-length", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N coding tasks (a quick read)")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument(
        "--concurrency", type=int, default=1,
        help="tasks worked at once in each run (each in its own sandbox): practice has k times this many in flight",
    )  # fmt: skip
    p.add_argument(
        "--workspace", type=Path, default=Path.home() / ".cache" / "tooltune" / "bench-agent-tasks"
    )
    p.add_argument(
        "--out", type=Path, help="the result file (default bench/results/agent_practice_<model>[_TAG].json)"
    )
    p.add_argument("--tag", default="", help="appended to the default result file's name")
    args = p.parse_args()
    if not (args.adapter or args.train_start):
        raise SystemExit("pass --adapter NAME or --train-start")
    restart_with_blas()
    settings = Settings.load(workspace=args.workspace)
    ws = Workspace(settings.workspace).ensure()
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    if args.adapter:
        start = args.adapter
    else:  # agent_tasks.train reads its own argument names
        start_args = argparse.Namespace(
            n=500, seed=args.seed, iters=args.iters_start, trajectory_share=args.trajectory_share,
            offer_all_tools=args.offer_all_tools,
            max_seq_length=args.max_seq_length if args.offer_all_tools else None,  # T3's 1024, T4's 2048
        )  # fmt: skip
        start = train_start(settings, ws, args.model, start_args)
    times["start"] = round(time.perf_counter() - t0, 1)
    t = time.perf_counter()
    rounds = anyio.run(practise, settings, ws, args.model, start, args)
    times["practice"] = round(time.perf_counter() - t, 1)
    dataset, stats = kept_dataset(ws, args.model, start, args)
    out: dict[str, Any] = {
        "suite": "coding-tasks",
        "model": args.model.name,
        "start_adapter": start,
        "practice": {
            "tasks": args.n,
            "rounds": args.k,
            "temperature": args.temperature,
            "max_steps": args.max_steps,
            "succeeded_per_round": [sum(r.success for r in rep.results) for rep in rounds],
            **stats,
        },
    }
    if not stats["kept"]:
        log("no practice run was a clean success: nothing to train on")
    else:
        t = time.perf_counter()
        new = train(settings, ws, args.model, start, dataset, args)
        times["train"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        reports, cmp = anyio.run(evaluate, settings, ws, args.model, start, new, args)
        times["eval"] = round(time.perf_counter() - t, 1)
        out |= {
            "dataset": dataset,
            "adapter_name": new,
            "training": {"iters": args.iters, "learning_rate": args.learning_rate, "init_adapter": start},
            "start": side(reports[0]),
            "adapter": side(reports[1]),
            "mcnemar": cmp.mcnemar.model_dump(),
        }
    out |= {
        "command": command_line(),
        "generator": GENERATOR_VERSION,
        "machine": machine_info(),
        "stage_s": times,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    tag = f"_{args.tag}" if args.tag else ""
    path = args.out or REPO / "bench" / "results" / f"agent_practice_{args.model.name}{tag}.json"
    atomic_write_json(path, out)
    log(f"wrote {path}")
    shown = {k: out.get(k) for k in ("practice", "start", "adapter", "mcnemar")}
    print(json.dumps(shown, indent=1, default=str))


if __name__ == "__main__":
    main()
