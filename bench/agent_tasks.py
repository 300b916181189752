"""Issue 34's measurement: does the served adapter finish real multi-step coding work?

The base model and an adapter each work every task of the built-in `coding-tasks` suite through the
real coding agent (native calls only), then again with calls written as text recovered (--lenient-tools),
on one mlx_lm.server (``--native-only`` skips the second pass). Each stage is skipped when its run
exists, so a re-run resumes.

The adapter is a registered one (``--adapter``), or trained here on the coding tools' generated data
with the trajectory kind mixed in (``--train``: the default recipe, ``--trajectory-share`` of the mix).

Usage:
  python bench/agent_tasks.py --model /path/to/qwen2.5-coder-0.5b-instruct --train [--limit N]
  python bench/agent_tasks.py --model M --adapter NAME

Writes bench/results/agent_tasks_<model>.json (``_native`` before ``.json`` with ``--native-only``, then
``_noguard`` with ``--no-repeat-guard``; the result records ``repeat_guard``):
``baseline`` and ``adapter`` objects holding ``success``
(a fraction) natively and ``lenient``, per category, the call counts, and the McNemar test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from tooltune.config import Settings
from tooltune.data.datasets import generate_dataset
from tooltune.data.generate_config import DEFAULT_MIX, GENERATOR_VERSION, GenerateConfig
from tooltune.evals.task_compare import compare_task_runs
from tooltune.evals.task_records import TaskReport, load_task_report, task_run_dir
from tooltune.evals.task_runner import evaluate_tasks_on_server
from tooltune.evals.tasks import load_task_suite
from tooltune.serving.model_server import ModelServer
from tooltune.training.runs import follow_events, get_run, start_training
from tooltune.training.train_config import TrainConfig
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import command_line, machine_info, restart_with_blas

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dataset_name(n: int, trajectory_share: float, seed: int, offer_all_tools: bool = False) -> str:
    """The training data's name, with the generator's version: a newer generator never reuses data an
    older one made (or the adapter trained on it); ``-all``: every example offers the agent's tools."""
    version = GENERATOR_VERSION.rsplit("/", 1)[-1]
    return f"agent-coding-n{n}-tj{trajectory_share:g}-s{seed}-g{version}" + (
        "-all" if offer_all_tools else ""
    )


def train(settings: Settings, ws: Workspace, model: Path, args: argparse.Namespace) -> str:
    """An adapter for the agent's own tools: the generator's coding data with trajectories mixed in."""
    share = args.trajectory_share
    dataset = dataset_name(args.n, share, args.seed, args.offer_all_tools)
    if not (ws.datasets / dataset).exists():
        mix = {**{k: v * (1 - share) for k, v in DEFAULT_MIX.items()}, "trajectory": share}
        cfg = GenerateConfig(
            n=args.n, seed=args.seed, mix=mix, system_prompt="agent", offer_all_tools=args.offer_all_tools
        )
        generate_dataset(ws, dataset, ["builtin:coding"], cfg, model_path=model)
    default_length = TrainConfig.model_fields["max_seq_length"].default
    length = args.max_seq_length or default_length
    adapter = f"{dataset}-i{args.iters}" + (f"-L{length}" if length != default_length else "")
    if not (ws.adapters / adapter).exists():
        log(f"train: {adapter}")
        train_registered(
            settings,
            TrainConfig(model=str(model), dataset=dataset, iters=args.iters, max_seq_length=length),
            adapter,
        )
    return adapter


def train_registered(settings: Settings, cfg: TrainConfig, name: str) -> None:
    """Train ``cfg`` as adapter ``name`` and wait; a run that fails or is not registered ends the bench."""
    job = start_training(cfg, settings, name=name)
    for _ in follow_events(settings, job.id, poll_interval=5.0):
        pass
    run = get_run(settings, job.id)
    if run.status != "succeeded" or not run.registered:
        raise SystemExit(f"training ended {run.status}: {run.error or run.registration_error}")


def result_path(model: Path, *, native_only: bool, repeat_guard: bool = True) -> Path:
    """Where the result goes; a native-only run never replaces a full one, nor a run without the agent's
    repeat guard one with it (``_noguard``). The plain name is the agent as users get it (with the guard;
    the files written before the guard existed record no ``repeat_guard`` and ran without it)."""
    tail = ("_native" if native_only else "") + ("" if repeat_guard else "_noguard")
    return REPO / "bench" / "results" / f"agent_tasks_{model.name}{tail}.json"


def side(report: TaskReport) -> dict[str, Any]:
    s = report.summary()
    return {"success": s["success"], **{k: v for k, v in s.items() if k not in ("success",)}}


async def evaluate(
    settings: Settings, ws: Workspace, model: Path, adapter: str, args: argparse.Namespace
) -> dict[str, Any]:
    suite = load_task_suite("coding-tasks")
    if args.limit:
        suite = suite.model_copy(update={"tasks": suite.tasks[: args.limit]})
    out: dict[str, Any] = {}
    async with ModelServer(model, settings=settings) as server:
        for lenient in (False,) if args.native_only else (False, True):
            tag = "lenient" if lenient else "native"
            # runs from before the repeat guard (no "-rg") are not reused by runs with it
            guard = "-rg" if args.repeat_guard else ""
            ids = [f"agent-{tag}-{who}-n{len(suite.tasks)}{guard}" for who in (f"base-{model.name}", adapter)]
            done = [
                (task_run_dir(ws, i) / "run.json").exists() and load_task_report(ws, i).complete for i in ids
            ]
            if all(done):
                reports = [load_task_report(ws, i) for i in ids]
            else:
                log(f"eval: {tag} ({len(suite.tasks)} tasks, baseline then {adapter})")
                reports, _ = await evaluate_tasks_on_server(
                    server, suite, ws=ws, targets=[None, adapter], run_ids=list(ids), lenient_tools=lenient,
                    max_tokens=args.max_tokens, repeat_guard=args.repeat_guard, concurrency=args.concurrency,
                )  # fmt: skip
            cmp = compare_task_runs(ws, ids[0], ids[1])
            out[tag] = {
                "baseline": side(reports[0]),
                "adapter": side(reports[1]),
                "mcnemar": cmp.mcnemar.model_dump(),
            }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--adapter")
    p.add_argument("--train", action="store_true")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--trajectory-share", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument(
        "--concurrency", type=int, default=1, help="tasks worked at once (each in its own sandbox)"
    )
    p.add_argument(
        "--native-only",
        action="store_true",
        help="skip the lenient runs (the result's lenient is null): half the eval time, for a quick read",
    )
    p.add_argument(
        "--offer-all-tools",
        action="store_true",
        help="every training example offers the agent's eight tools in its order, as the agent does "
        "(GenerateConfig.offer_all_tools); the data is named with -all",
    )
    p.add_argument(
        "--max-seq-length",
        type=int,
        default=None,
        help="training's max_seq_length (default TrainConfig's, 1024; with --offer-all-tools the "
        "examples reach ~1,450 tokens: use 2048)",
    )
    p.add_argument(
        "--no-repeat-guard",
        dest="repeat_guard",
        action="store_false",
        help="run every call the model makes, repeats too (the agent before 2026-12-07; T0-T2 ran so)",
    )
    p.add_argument(
        "--workspace", type=Path, default=Path.home() / ".cache" / "tooltune" / "bench-agent-tasks"
    )
    args = p.parse_args()
    if not (args.adapter or args.train):
        raise SystemExit("pass --adapter NAME or --train")
    restart_with_blas()
    settings = Settings.load(workspace=args.workspace)
    ws = Workspace(settings.workspace).ensure()
    t0 = time.perf_counter()
    adapter = args.adapter or train(settings, ws, args.model, args)
    result = anyio.run(evaluate, settings, ws, args.model, adapter, args)
    native = result["native"]
    out = {
        "suite": "coding-tasks",
        "model": args.model.name,
        "adapter_name": adapter,
        "baseline": native["baseline"],
        "adapter": native["adapter"],
        "mcnemar": native["mcnemar"],
        "lenient": result.get("lenient"),  # None with --native-only
        "repeat_guard": args.repeat_guard,
        "command": command_line(),
        "generator": GENERATOR_VERSION,
        "machine": machine_info(),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    path = result_path(args.model, native_only=args.native_only, repeat_guard=args.repeat_guard)
    atomic_write_json(path, out)
    log(
        f"wrote {path}: baseline {native['baseline']['success']:.0%} -> adapter {native['adapter']['success']:.0%}"
    )
    print(json.dumps({k: out[k] for k in ("baseline", "adapter", "mcnemar")}, indent=1))


if __name__ == "__main__":
    main()
