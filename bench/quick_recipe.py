"""Which training recipe should `tooltune demo --quick` use? Each recipe's adapter on the whole suite.

The quick demo shows its result on 2 cases per category (12), far too few to choose a recipe by. This
script runs the demo's own stages (its dataset and its training, ``DemoConfig.preset(quick=True)`` with
the recipe's overrides) and evaluates every adapter, and the base model once, on all 128 cases of
`coding-tools` with the demo's generation limit. Each recipe gets its own workspace under ``--workdir``,
so a rerun reuses what exists (the dataset, the adapter, a finished eval run).

    python bench/quick_recipe.py --workdir /tmp/qd \
        --recipe A='{}' --recipe B='{"learning_rate": 2e-4}' --out bench/results/quick_recipe.json

Each recipe records its training time and losses, native and lenient rates per category, and paired
McNemar tests against the base model and against the first recipe (the control).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tooltune.adapters.registry import AdapterRegistry
from tooltune.config import Settings
from tooltune.demo import DEMO_SUITE, DemoConfig, demo_adapter, demo_dataset, demo_model, noop_step
from tooltune.evals.compare import compare_reports
from tooltune.evals.runner import load_report
from tooltune.evals.suite import load_suite
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import machine_info, restart_with_blas

BASELINE_RUN = "base-full"


def _stage(stage: str, message: str) -> None:
    print(f"[{stage}] {message}", file=sys.stderr, flush=True)


def _eval(
    ws_dir: Path, run_id: str, cfg: DemoConfig, *, adapter: str | None, model: Path, limit: int | None
) -> None:
    """`tooltune eval` as a user runs it (a finished run with the id is reused)."""
    cmd = [sys.executable, "-m", "tooltune", "eval", "--workspace", str(ws_dir), "--suite", DEMO_SUITE,
           "--max-tokens", str(cfg.max_tokens), "--concurrency", str(cfg.concurrency), "--run-id", run_id]  # fmt: skip
    cmd += ["--adapter", adapter] if adapter else ["--baseline", "--model", str(model)]
    cmd += ["--limit", str(limit)] if limit else []
    subprocess.run(cmd, check=True)


def _demo_cases(cfg: DemoConfig) -> set[str]:
    """The cases the quick demo itself shows: the first ``eval_limit`` of each category."""
    return {c.id for c in load_suite(DEMO_SUITE).subset(cfg.eval_limit).cases}


def _summary(
    ws: Workspace, run_id: str, shown: set[str], cfg: DemoConfig, limit: int | None
) -> dict[str, Any]:
    report = load_report(ws, run_id)
    meta = report.meta
    if (meta.limit, meta.max_tokens, meta.concurrency) != (limit, cfg.max_tokens, cfg.concurrency):
        raise SystemExit(
            f"{ws.root}: run {run_id} was made with limit {meta.limit}, max_tokens {meta.max_tokens}, "
            f"concurrency {meta.concurrency}, not this run's {limit}, {cfg.max_tokens}, {cfg.concurrency}: "
            "use another --workdir"
        )
    on_shown = [r.native.passed for r in report.results if r.case_id in shown]
    cats = {
        name: {"n": m.n, "native": round(m.native_rate, 4), "lenient": round(m.lenient_rate, 4)}
        for name, m in sorted(report.categories.items())
    }
    o = report.overall
    return {
        "run_id": run_id,
        "cases": o.n,
        "native": round(o.native_rate, 4),
        "lenient": round(o.lenient_rate, 4),
        "native_pass": o.native_pass,
        "categories": cats,
        # what the quick demo's own table shows (its 12 cases), from the same answers
        "demo_cases": {"n": len(on_shown), "native_pass": sum(on_shown)},
        "reasons_native": dict(sorted(report.reasons_native.items())),
        "wall_s": report.wall_s,
    }


def _paired(ws_a: Workspace, run_a: str, ws_b: Workspace, run_b: str) -> dict[str, Any]:
    cmp = compare_reports(load_report(ws_a, run_a), load_report(ws_b, run_b))
    m = cmp.mcnemar_native
    return {"fixed": m.fixes, "lost": m.regressions, "p": float(f"{m.p_value:.3g}")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="one workspace per recipe under it")
    ap.add_argument("--recipe", action="append", required=True, metavar="TAG=JSON",
                    help="DemoConfig overrides on the quick preset; the first is the control")  # fmt: skip
    ap.add_argument("--model", default=None, help="base model (default: the demo's)")
    ap.add_argument(
        "--eval-limit", type=int, default=None, help="cases per category (default: all; for tests)"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--notes", default="")
    args = ap.parse_args()
    restart_with_blas()
    machine = machine_info()

    recipes: list[tuple[str, dict[str, Any]]] = []
    for spec in args.recipe:
        tag, _, text = spec.partition("=")
        recipes.append((tag, {**json.loads(text or "{}"), **({"model": args.model} if args.model else {})}))

    base_dir = args.workdir / "ws"
    base_settings = Settings.load(workspace=base_dir)
    base_ws = Workspace(base_settings.workspace).ensure()
    control = DemoConfig.preset(True, **recipes[0][1])
    model_path = demo_model(base_settings, control, _stage, noop_step)
    _eval(base_dir, BASELINE_RUN, control, adapter=None, model=model_path, limit=args.eval_limit)
    out: dict[str, Any] = {
        "benchmark": "quick_recipe",
        "command": "python " + " ".join(sys.argv),
        "date": machine["date"],
        "machine": machine,
        "model": str(model_path),
        "suite": DEMO_SUITE,
        "eval_limit": args.eval_limit,
        "baseline": _summary(base_ws, BASELINE_RUN, _demo_cases(control), control, args.eval_limit),
        "recipes": {},
        "notes": args.notes,
    }
    first: tuple[Workspace, str] | None = None
    for tag, overrides in recipes:
        cfg = DemoConfig.preset(True, **overrides)
        ws_dir = args.workdir / f"ws_{tag}"
        settings = Settings.load(workspace=ws_dir)
        ws = Workspace(settings.workspace).ensure()
        dataset, digest = demo_dataset(ws, cfg, model_path, _stage, noop_step)
        adapter, metrics = demo_adapter(
            settings, ws, cfg, model_path, dataset, digest.removeprefix("sha256:")[:6], _stage, noop_step
        )
        trained = AdapterRegistry(ws).get(adapter).train_config
        if trained.get("learning_rate") != cfg.learning_rate or trained.get("iters") != cfg.iters:
            raise SystemExit(
                f"{ws_dir}: adapter {adapter} was trained with other settings; use another --workdir"
            )
        run_id = f"q_{tag}"
        _eval(ws_dir, run_id, cfg, adapter=adapter, model=model_path, limit=args.eval_limit)
        row = {
            "workspace": str(ws_dir),
            "overrides": overrides,
            "recipe": cfg.model_dump(exclude={"model"}),
            "dataset": dataset,
            "adapter": adapter,
            "train": {
                k: metrics.get(k) for k in ("wall_time_s", "s_per_iter", "first_val_loss", "last_val_loss")
            },
            "adapter_eval": _summary(ws, run_id, _demo_cases(cfg), cfg, args.eval_limit),
            "vs_baseline": _paired(base_ws, BASELINE_RUN, ws, run_id),
        }
        if first is not None:
            row["vs_control"] = _paired(first[0], first[1], ws, run_id)
        else:
            first = (ws, run_id)
        out["recipes"][tag] = row
        atomic_write_json(args.out, out)  # what is done so far survives a stop
        _stage("recipe", f"{tag}: native {row['adapter_eval']['native']:.3f} ({row['vs_baseline']})")
    print(json.dumps({t: r["adapter_eval"]["native"] for t, r in out["recipes"].items()}, indent=1))


if __name__ == "__main__":
    main()
