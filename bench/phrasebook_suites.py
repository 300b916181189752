"""Issue 33's measurement: on tool sets the generator has never seen, does data from a phrasebook train a
better adapter than data read back from the schemas?

For each data source (``schema``: no phrasebook; ``hand``: bench/phrasebooks/<suite>.hand.yaml;
``drafted``: bench/phrasebooks/<suite>.drafted.yaml when present) one dataset covers both built-in
suites' tool sets (issue-tracker + notes-calendar, 16 tools), one adapter is trained on it with the
default recipe, and the base model and each adapter answer every case of both suites (never trained on:
the leak check drops generated requests near any suite case). With ``--per-suite`` each suite gets its
own dataset (its 8 tools only) and adapter instead, as a user with one tool set would. Generator and
training settings that differ from the defaults (``--max-tools``, ``--phrasebook-share``,
``--tool-odds``, ``--mix``, ``--max-seq-length``, ``--train``: TrainConfig settings as JSON) are named
in the dataset and adapter names and recorded in the results; ``--tag`` names the result files. Each
stage is skipped when its result exists, so a re-run resumes.
``--from-workspace MACHINE`` runs nothing: it writes the result files from a workspace whose training
runs and eval reports were copied from another machine (a GPU, say; datasets and adapters stay there),
recording MACHINE and the training runs' device instead of this machine.

Usage:
  python bench/phrasebook_suites.py --model /path/to/qwen2.5-coder-0.5b-instruct [--sources schema hand]

Writes bench/results/phrasebook_<suite><tag>.json per suite: the baseline's and each source's adapter's
native and lenient accuracy (overall, per category, and on single-call cases), each adapter's paired
test against the baseline and the hand/drafted adapters' against the schema adapter (McNemar).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from tooltune.config import Settings
from tooltune.data.datasets import generate_dataset
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.phrasebook import BookText, load_phrasebook
from tooltune.data.store import load_dataset
from tooltune.errors import TooltuneError
from tooltune.evals.compare import Comparison
from tooltune.evals.runner import load_report
from tooltune.evals.service import compare_runs, run_suite_on_server
from tooltune.evals.suite import load_suite
from tooltune.serving.model_server import ModelServer
from tooltune.training.runs import follow_events, get_run, start_training
from tooltune.training.train_config import RESOLVED_FIELDS, TrainConfig
from tooltune.workspace import Workspace, atomic_write_json

from bench_common import command_line, machine_info, restart_with_blas

REPO = Path(__file__).resolve().parents[1]
SUITES = {"issue-tracker": "issue_tracker", "notes-calendar": "notes_calendar"}
DEFAULT_LENGTH = TrainConfig.model_fields["max_seq_length"].default
SINGLE = ("simple", "choose_among_many", "argument_format")  # one call asked for


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def books(source: str, suites: list[str]) -> list[BookText]:
    """The source's book for each suite's tool set (none for ``schema``)."""
    if source == "schema":
        return []
    return [load_phrasebook(REPO / "bench" / "phrasebooks" / f"{SUITES[s]}.{source}.yaml") for s in suites]


def data_variant(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The generator settings that differ from the defaults, and the dataset-name suffix naming them."""
    changed: dict[str, Any] = {}
    suffix = ""
    if args.max_tools is not None:
        changed["max_tools"] = args.max_tools
        suffix += f"-t{args.max_tools}"
    if args.phrasebook_share is not None:
        changed["phrasebook_share"] = args.phrasebook_share
        suffix += f"-pb{args.phrasebook_share:g}"
    if args.tool_odds not in (None, "even"):
        changed["tool_odds"] = args.tool_odds
        suffix += f"-o{args.tool_odds}"
    if args.mix is not None:
        changed["mix"] = json.loads(args.mix)
        suffix += "-mix" + hashlib.sha256(json.dumps(changed["mix"], sort_keys=True).encode()).hexdigest()[:6]
    return changed, suffix


# set by options of their own, by the script itself, or when a run resolves its configuration
OWN_TRAIN_FIELDS = (
    "model",
    "dataset",
    "iters",
    "seed",
    "max_seq_length",
    "epochs",
    "init_adapter",
    *RESOLVED_FIELDS,
)


def train_variant(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """``--train``'s TrainConfig settings that differ from its defaults, by their field names (an alias or
    a default value names no other recipe), and the adapter-name suffix naming them: ``-r`` and six hex
    digits of their hash, "" when none differ."""
    if not args.train:
        return {}, ""
    try:
        given = json.loads(args.train)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--train: not JSON ({e})") from e
    if not isinstance(given, dict):
        raise SystemExit("--train: a JSON object of TrainConfig settings, e.g. '{\"num_layers\": -1}'")
    if "lora_parameters" in given:
        raise SystemExit("--train: give rank, scale, dropout and keys as settings of their own")
    own = sorted(set(given) & set(OWN_TRAIN_FIELDS))
    if own:
        raise SystemExit(f"--train: {', '.join(own)} set by the script or an option of its own")
    try:
        config = TrainConfig(dataset="check", **given).model_dump()
    except ValidationError as e:
        raise SystemExit(f"--train: {e}") from e
    default = TrainConfig(dataset="check").model_dump()
    changed = {k: v for k, v in config.items() if v != default[k]}
    if not changed:
        return {}, ""
    return changed, "-r" + hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:6]


def dataset_name(
    source: str, n: int, seed: int, variant: tuple[dict[str, Any], str], suite: str | None
) -> str:
    return f"pb-{source}-n{n}-s{seed}{variant[1]}" + (f"-{suite}" if suite else "")


def adapter_name(dataset: str, iters: int, seed: int, max_seq_length: int, train_suffix: str = "") -> str:
    length = f"-L{max_seq_length}" if max_seq_length != DEFAULT_LENGTH else ""
    return f"{dataset}-i{iters}-t{seed}{length}{train_suffix}"


def eval_run_id(suite_name: str, adapter: str | None, model: Path) -> str:
    return f"{suite_name}-{adapter or 'baseline-' + model.name}"[:100]


def copied_training(ws: Workspace, adapter: str, iters: int) -> dict[str, Any]:
    """What :func:`stage_train` returns, read from a training run copied from another machine (its
    adapter stayed there): the run whose ``adapter_name`` is ``adapter``."""
    runs = [json.loads(p.read_text()) for p in ws.runs.glob("*/run.json")]
    runs = [r for r in runs if r.get("adapter_name") == adapter and r.get("status") == "succeeded"]
    if not runs:
        raise SystemExit(f"no succeeded training run for {adapter} in {ws.runs}")
    # the registered one (the adapter's), the latest if several
    run = max(runs, key=lambda r: (bool(r.get("registered")), str(r.get("finished") or "")))
    metrics = json.loads((ws.run_dir(run["id"]) / "metrics.json").read_text())
    return {"adapter": adapter, "run_id": run["id"], "time": metrics.get("time"), "iters": iters,
            "device": run.get("device"), "train_seconds": run.get("train_seconds")}  # fmt: skip


def copied_generators(ws: Workspace, datasets: Iterable[str]) -> list[str]:
    """The generator versions that made the datasets, from their copied ``dataset.json`` (the data itself
    stayed on the other machine); "unknown" for a dataset whose record was not copied."""
    found = set()
    for name in datasets:
        meta = ws.dataset_dir(name) / "dataset.json"
        found.add(json.loads(meta.read_text())["generator_version"] if meta.is_file() else "unknown")
    return sorted(found)


def dataset_books(ws: Workspace, name: str) -> list[str] | None:
    """The phrasebooks a dataset was made from, each with its digest (``phrasebook:<name>@<digest>``, from
    its record; an edited book is another recipe), or None when the record is not here."""
    meta = ws.dataset_dir(name) / "dataset.json"
    if not meta.is_file():
        return None
    return [s for s in json.loads(meta.read_text()).get("sources", []) if s.startswith("phrasebook:")]


def copied_evals(ws: Workspace, model: Path, adapters: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What :func:`stage_eval` returns, from eval reports copied from another machine."""
    out: dict[str, Any] = {}
    for suite_name, by_source in adapters.items():
        labels = [("baseline", None), *by_source.items()]
        reports = {label: load_report(ws, eval_run_id(suite_name, a, model)) for label, a in labels}
        if not all(r.complete for r in reports.values()):
            raise SystemExit(f"{suite_name}: an eval report is incomplete")
        out[suite_name] = (load_suite(suite_name, ws), reports)
    return out


def stage_data(
    ws: Workspace,
    model: Path,
    source: str,
    n: int,
    seed: int,
    variant: tuple[dict[str, Any], str],
    suite: str | None,
) -> str:
    """One dataset over both suites' tool sets (``suite`` None), or over one suite's tools alone."""
    name = dataset_name(source, n, seed, variant, suite)
    if (ws.datasets / name).exists():
        log(f"data: reusing {name}")
        return name
    suites = [suite] if suite else list(SUITES)
    info, res = generate_dataset(
        ws,
        name,
        [f"builtin:{s}" for s in suites],
        GenerateConfig(n=n, seed=seed, **variant[0]),
        model_path=model,
        phrasebook=books(source, suites),
    )
    log(f"data: {name} {info.counts} leaked={res.dropped_leaked} skipped={len(res.phrasebook_skipped)}")
    return name


def stage_train(
    settings: Settings,
    ws: Workspace,
    model: Path,
    dataset: str,
    iters: int,
    seed: int,
    max_seq_length: int,
    train: tuple[dict[str, Any], str] = ({}, ""),
) -> dict[str, Any]:
    adapter = adapter_name(dataset, iters, seed, max_seq_length, train[1])
    if not (ws.adapters / adapter).exists():
        config = TrainConfig(
            model=str(model),
            dataset=dataset,
            iters=iters,
            seed=seed,
            max_seq_length=max_seq_length,
            **train[0],
        )
        log(f"train: {adapter} ({iters} iters, {train[0] or 'the default recipe'} otherwise)")
        job = start_training(config, settings, name=adapter)
        last = time.perf_counter()
        for ev in follow_events(settings, job.id, poll_interval=5.0):
            if time.perf_counter() - last > 120:
                log(f"train: {ev.model_dump(exclude_none=True)}")
                last = time.perf_counter()
        run = get_run(settings, job.id)
        if run.status != "succeeded" or not run.registered:
            raise SystemExit(f"training ended {run.status}: {run.error or run.registration_error}")
    rec = json.loads((ws.adapters / adapter / "tooltune.json").read_text())
    metrics = json.loads((ws.run_dir(rec["run_id"]) / "metrics.json").read_text())
    return {"adapter": adapter, "run_id": rec["run_id"], "time": metrics.get("time"), "iters": iters}


def rates(report: Any, categories: tuple[str, ...] | None = None) -> dict[str, Any]:
    rows = [r for r in report.results if categories is None or r.category in categories]
    n = len(rows)
    return {
        "cases": n,
        "native": round(sum(r.native.passed for r in rows) / n, 4) if n else None,
        "lenient": round(sum(r.lenient.passed for r in rows) / n, 4) if n else None,
    }


def mcnemar(cmp: Comparison) -> dict[str, Any]:
    m = cmp.mcnemar_native
    return {"fixes": m.fixes, "regressions": m.regressions, "p_value": round(m.p_value, 5)}


async def stage_eval(
    settings: Settings,
    ws: Workspace,
    model: Path,
    adapters: dict[str, dict[str, str]],
    concurrency: int,
    failed: dict[str, str],
) -> dict[str, Any]:
    """``adapters``: per suite, the adapter of each data source. A suite whose eval fails (an adapter the
    server refused, say) is left out of what is returned and named in ``failed``, and the other suites
    are still evaluated: on a lent GPU, one refused switch must not cost the rest of the chain."""
    out: dict[str, Any] = {}
    async with ModelServer(model, settings=settings, record_active=False) as server:
        for suite_name, by_source in adapters.items():
            suite = load_suite(suite_name, ws)
            reports = {}
            try:
                for label, adapter in [("baseline", None), *by_source.items()]:
                    run_id = eval_run_id(suite_name, adapter, model)
                    log(f"eval: {suite_name} {label} ({len(suite.cases)} cases) as {run_id}")
                    reports[label] = await run_suite_on_server(
                        server, suite, ws=ws, adapter=adapter, label=label, run_id=run_id,
                        concurrency=concurrency,
                    )  # fmt: skip
            except TooltuneError as e:
                log(f"eval: {suite_name} failed, its results are not written: {e}")
                failed[suite_name] = str(e)
                continue
            out[suite_name] = (suite, reports)
    return out


def from_workspace(args: argparse.Namespace, variant: tuple[dict[str, Any], str]) -> None:
    ws = Workspace(args.workspace)
    train = train_variant(args)
    trained: dict[tuple[str, str | None], dict[str, Any]] = {}
    datasets: dict[tuple[str, str | None], str] = {}
    for source in args.sources:
        for suite in args.suites if args.per_suite else [None]:
            datasets[(source, suite)] = name = dataset_name(source, args.n, args.seed, variant, suite)
            adapter = adapter_name(name, args.iters, args.seed, args.max_seq_length, train[1])
            trained[(source, suite)] = copied_training(ws, adapter, args.iters)
    adapters = {
        st: {src: trained[(src, st if args.per_suite else None)]["adapter"] for src in args.sources}
        for st in args.suites
    }
    machine = {"copied_from": args.from_workspace,
               "training_devices": sorted({str(t["device"]) for t in trained.values()})}  # fmt: skip
    write_results(args, variant, ws, datasets, trained, copied_evals(ws, args.model, adapters), machine,
                  generators=copied_generators(ws, datasets.values()), wall_s=None)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--sources", nargs="+", default=["schema", "hand"])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument(
        "--suites", nargs="+", default=list(SUITES), choices=list(SUITES), help="suites to evaluate"
    )
    p.add_argument(
        "--workspace", type=Path, default=Path.home() / ".cache" / "tooltune" / "bench-phrasebooks"
    )
    p.add_argument("--max-tools", type=int, help="the generator's max_tools (default: its own)")
    p.add_argument("--phrasebook-share", type=float, help="the generator's phrasebook_share")
    p.add_argument("--mix", help="the generator's kind weights, as JSON")
    p.add_argument("--tool-odds", choices=["even", "intents"], help="the generator's tool_odds")
    p.add_argument("--max-seq-length", type=int, default=DEFAULT_LENGTH, help="training's max_seq_length")
    p.add_argument(
        "--train",
        help='TrainConfig settings for every adapter, as JSON (e.g. \'{"num_layers": -1, "rank": 16}\'); '
        "named in the adapter names and recorded in the results",
    )
    p.add_argument("--tag", default="", help="suffix of the result files (phrasebook_<suite><tag>.json)")
    p.add_argument(
        "--per-suite",
        action="store_true",
        help="one dataset and adapter per suite, on its own tool set (a user with one tool set); "
        "default: one over both suites' tools",
    )
    p.add_argument(
        "--from-workspace",
        metavar="MACHINE",
        help="run nothing: write the result files from the training runs and eval reports in --workspace, "
        "copied from the machine MACHINE describes (its datasets and adapters stayed there)",
    )
    args = p.parse_args()
    variant = data_variant(args)
    train = train_variant(args)
    if args.from_workspace:
        return from_workspace(args, variant)
    restart_with_blas()
    settings = Settings.load(workspace=args.workspace)
    ws = Workspace(settings.workspace).ensure()
    t0 = time.perf_counter()
    # (source, suite) -> dataset and training; suite None: one over both suites' tools
    trained: dict[tuple[str, str | None], dict[str, Any]] = {}
    datasets: dict[tuple[str, str | None], str] = {}
    for source in args.sources:
        for suite in args.suites if args.per_suite else [None]:
            k = (source, suite)
            datasets[k] = stage_data(ws, args.model, source, args.n, args.seed, variant, suite)
            trained[k] = stage_train(
                settings, ws, args.model, datasets[k], args.iters, args.seed, args.max_seq_length, train
            )

    adapters = {
        st: {src: trained[(src, st if args.per_suite else None)]["adapter"] for src in args.sources}
        for st in args.suites
    }
    failed: dict[str, str] = {}
    evals = anyio.run(stage_eval, settings, ws, args.model, adapters, args.concurrency, failed)
    generators = sorted({load_dataset(ws, d).generator_version for d in datasets.values()})
    write_results(args, variant, ws, datasets, trained, evals, machine_info(), generators=generators,
                  wall_s=round(time.perf_counter() - t0, 1))  # fmt: skip
    if failed:
        sys.exit(f"not evaluated: {', '.join(failed)} (the reason is logged above; a re-run resumes)")


def write_results(
    args: argparse.Namespace,
    variant: tuple[dict[str, Any], str],
    ws: Workspace,
    datasets: dict[tuple[str, str | None], str],
    trained: dict[tuple[str, str | None], dict[str, Any]],
    evals: dict[str, Any],
    machine: dict[str, Any],
    *,
    generators: list[str],
    wall_s: float | None,
) -> None:
    """bench/results/phrasebook_<suite><tag>.json for each evaluated suite."""

    def key(source: str, suite: str) -> tuple[str, str | None]:
        return (source, suite if args.per_suite else None)

    for suite_name, (suite, reports) in evals.items():
        base = reports["baseline"]
        result: dict[str, Any] = {
            "suite": suite_name,
            "suite_hash": suite.hash,
            "category": "all",
            "cases": len(suite.cases),
            "model": args.model.name,
            "baseline": {**rates(base), "single_call": rates(base, SINGLE), "run_id": base.meta.run_id},
            "sources": {},
            "command": command_line(),
            # the version that made the datasets (reused by name, they may predate this tooltune)
            "generator": generators,
            "data_per_suite": args.per_suite,
            "machine": machine,
            "wall_s": wall_s,
        }
        cats = sorted({c.category for c in suite.cases})
        result["baseline"]["categories"] = {c: rates(base, (c,)) for c in cats}
        for source in args.sources:
            rep = reports[source]
            vs_base = compare_runs(ws, base.meta.run_id, rep.meta.run_id)
            entry = {
                "dataset": datasets[key(source, suite_name)],
                **trained[key(source, suite_name)],
                "adapter_native": rates(rep)["native"],
                "adapter_lenient": rates(rep)["lenient"],
                "single_call": rates(rep, SINGLE),
                "no_call": rates(rep, ("no_call", "near_miss")),
                "categories": {c: rates(rep, (c,)) for c in cats},
                "vs_baseline": mcnemar(vs_base),
                "run_id": rep.meta.run_id,
            }
            book_digests = dataset_books(ws, entry["dataset"])
            if book_digests is not None:
                entry["books"] = book_digests
            if source != "schema" and "schema" in reports:
                entry["vs_schema"] = mcnemar(compare_runs(ws, reports["schema"].meta.run_id, rep.meta.run_id))
            result["sources"][source] = entry
        result["generator_settings"] = variant[0]  # those that differ from GenerateConfig's defaults
        result["max_seq_length"] = args.max_seq_length
        result["train_settings"] = train_variant(args)[0]  # those that differ from TrainConfig's defaults
        out = REPO / "bench" / "results" / f"phrasebook_{SUITES[suite_name]}{args.tag}.json"
        atomic_write_json(out, result)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
