"""Agent task suites at several task concurrencies: wall time and whether the runs end alike.

Usage: python bench/task_concurrency.py [--model M] [--adapter A --workspace WS] [--limit 12]
           [--levels 1,4] [--repeats 1] [--out FILE]

Each level works the first ``--limit`` tasks of ``coding-tasks`` (greedy, native calls, the repeat guard
on, as ``tooltune eval --tasks``) with ``--concurrency`` set to the level, on a freshly started
mlx_lm.server (no level profits from prompt-cache entries another left), warmed first by as many
short requests at once as the level runs tasks (a GPU compiles its kernels for each batch size on first
use: seconds that would otherwise be timed as the level's). ``--repeats N`` runs every level N times,
each on a fresh server, levels interleaved (1, 4, 8, 1, 4, 8, ...) so a drift of the machine reaches all
of them. Per level: the median wall time and every repeat's, tasks per minute and the speedup over the
first level (from the medians), and of its first repeat the tasks done, the model requests and calls,
and how many tasks ended exactly as at the first level (same verdict, steps, calls and answer): batched
greedy decoding can flip a near-tie, and this says how often it did.

Writes bench/results/task_concurrency_<model>.json (the command, the machine and the date first).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from tooltune.config import Settings
from tooltune.evals.task_records import TaskReport, TaskResult
from tooltune.evals.task_runner import run_task_suite
from tooltune.evals.tasks import load_task_suite
from tooltune.models.resolve import resolve_model
from tooltune.serving.model_server import ModelServer
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import restart_with_blas, result_head

REPO = Path(__file__).resolve().parents[1]


def ending(r: TaskResult) -> tuple[Any, ...]:
    """What a task run came to: the verdict, how many requests and calls it took, the answer."""
    return (r.success, r.steps, r.calls, r.failed_calls, r.answer)


def level_record(
    report: TaskReport, wall_s: float, first: dict[str, tuple[Any, ...]] | None
) -> dict[str, Any]:
    s = report.summary()
    out: dict[str, Any] = {
        "concurrency": report.meta.concurrency,
        "wall_s": round(wall_s, 1),
        "tasks_per_min": round(60 * len(report.results) / wall_s, 2) if wall_s else None,
        "tasks": s["tasks"],
        "succeeded": s["succeeded"],
        "steps": s["steps"],
        "calls": s["calls"],
        "run_id": report.meta.run_id,
    }
    if first is not None:
        out["same_ending_as_first"] = sum(first.get(r.task_id) == ending(r) for r in report.results)
    return out


async def run_level(
    model: Path, settings: Settings, ws: Workspace, adapter: str | None, limit: int, level: int, tag: str
) -> tuple[TaskReport, float]:
    suite = load_task_suite("coding-tasks")
    async with ModelServer(model, settings=settings, adapter=adapter) as server:
        async with anyio.create_task_group() as tg:  # started and warm at this batch size: not timed
            for i in range(level):
                tg.start_soon(lambda i=i: server.chat([{"role": "user", "content": f"Count to {i + 3}."}],
                                                      max_tokens=8))  # fmt: skip
        t0 = time.perf_counter()
        report = await run_task_suite(
            suite, ws=ws, server=server, adapter=adapter, model_name=model.name, limit=limit,
            concurrency=level, run_id=f"tc-{tag}-c{level}",
        )  # fmt: skip
        return report, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="cache name or MLX folder (default: the default model)")
    p.add_argument("--adapter", default=None, help="a registered adapter in --workspace (default: base)")
    p.add_argument("--workspace", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--limit", type=int, default=12, help="the first N coding tasks")
    p.add_argument("--levels", default="1,4", help="task concurrencies, the first is the reference")
    p.add_argument("--repeats", type=int, default=1, help="runs of every level, each on a fresh server")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1 (got {args.repeats})")
    try:
        levels = [int(x) for x in args.levels.split(",")]
    except ValueError:
        levels = []
    if not levels or len(set(levels)) != len(levels) or min(levels) < 1:
        p.error(f"--levels must be distinct task concurrencies of at least 1, as 1,4,8 (got {args.levels})")
    restart_with_blas()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="task-concurrency-"))
    settings = Settings.load(workspace=root)
    ws = Workspace(settings.workspace).ensure()
    model = resolve_model(args.model or settings.default_model, settings).path
    tag = time.strftime("%Y%m%d-%H%M%S")
    path = args.out or REPO / "bench" / "results" / f"task_concurrency_{model.name}.json"
    records: dict[int, dict[str, Any]] = {}  # per level: its first repeat's record, every repeat's wall
    first: dict[str, tuple[Any, ...]] | None = None
    for repeat in range(args.repeats):
        for level in levels:
            run_tag = f"{tag}-r{repeat}" if args.repeats > 1 else tag
            report, wall = anyio.run(run_level, model, settings, ws, args.adapter, args.limit, level, run_tag)
            if level not in records:
                records[level] = {**level_record(report, wall, first), "walls": []}
            records[level]["walls"].append(round(wall, 1))
            if first is None:
                first = {r.task_id: ending(r) for r in report.results}
            print({"repeat": repeat, "concurrency": level, "wall_s": round(wall, 1)}, flush=True)
            # written after every run: on lent GPU time, a late failure keeps the runs made
            atomic_write_json(path, result(model, args, levels, records))
    print(f"wrote {path}")


def result(
    model: Path, args: argparse.Namespace, levels: list[int], records: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """The result so far: per level the median of its repeats' walls, the spread of those walls
    ((max - min) / median: a speedup is worth reading only where the spread is small) and the speedup over
    the first level; ``repeats_done`` says how many repeats every level has finished."""
    for r in records.values():
        r["wall_s"] = round(statistics.median(r["walls"]), 1)
        r["spread"] = round((max(r["walls"]) - min(r["walls"])) / r["wall_s"], 2) if r["wall_s"] else None
        r["tasks_per_min"] = round(60 * r["tasks"] / r["wall_s"], 2) if r["wall_s"] else None
    base = records[levels[0]]["wall_s"]
    for r in records.values():
        r["speedup"] = round(base / r["wall_s"], 2) if r["wall_s"] else None
    return {
        **result_head("task_concurrency", model),
        "suite": "coding-tasks",
        "limit": args.limit,
        "adapter": args.adapter,
        "repeats": args.repeats,
        "repeats_done": min(len(r["walls"]) for r in records.values()) if len(records) == len(levels) else 0,
        "levels": list(records.values()),
    }


if __name__ == "__main__":
    main()
