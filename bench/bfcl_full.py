"""The headline on full BFCL categories: one row per (category, adapter), baseline and adapter native and
lenient as fractions with 95% intervals, and the spread over training seeds.

    python bench/bfcl_full.py bench/results/bfcl_full/*.json [--out bench/results/bfcl_full_0.5b.json]

Reads ``bench/bfcl_adapter.py`` results that evaluated every case (``--eval-n`` and ``--irrelevance-n``
at least the category's size); a result on a sample is refused, since this file is the full-scale one.
Each input holds its category and irrelevance for one adapter; irrelevance rows say which category's
schemas the adapter was trained on. For irrelevance, ``lenient`` counts a call written as text as a
call, so it is the stricter of the two.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from render_readme import wilson

from tooltune.training.train_config import TrainConfig

FULL_SIZE = {
    "simple_python": 400,
    "irrelevance": 240,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
}


def interval(passed: int, n: int) -> list[float]:
    """The 95% Wilson interval, as README's tables compute it, rounded for the result file."""
    if not n:
        return [0.0, 1.0]
    return [round(x, 4) for x in wilson(passed, n)]


def scores(summary: dict[str, Any]) -> dict[str, Any]:
    o = summary["overall"]
    n = o["n"]
    misses = summary.get("reasons_native") or {}
    return {
        "native": round(o["native_pass"] / n, 4),
        "lenient": round(o["lenient_pass"] / n, 4),
        "native_pass": o["native_pass"],
        "lenient_pass": o["lenient_pass"],
        "native_interval": interval(o["native_pass"], n),
        "lenient_interval": interval(o["lenient_pass"], n),
        "complete": summary.get("complete", True),
        # why the native answers failed, most frequent first (a wrong value, no call made, ...)
        **({"native_misses": dict(sorted(misses.items(), key=lambda kv: -kv[1]))} if misses else {}),
    }


def mcnemar_p(comparison: dict[str, Any], mode: str) -> float | None:
    """The paired test's p-value as ``compare_runs`` records it (``mcnemar_native`` / ``mcnemar_lenient``)."""
    return (comparison.get(f"mcnemar_{mode}") or {}).get("p_value")


CHECK_FIELDS = ("requests", "right_before", "right_after", "worse_in", "outcomes_before", "outcomes_after")


def _flag(command: str, flag: str, kind: Callable[[str], Any]) -> Any:
    """The value ``flag`` has in a recorded command line (None when it is not given)."""
    words = command.split()
    return kind(words[words.index(flag) + 1]) if flag in words[:-1] else None


def failed_training(path: Path) -> dict[str, Any] | None:
    """A ``bench/bfcl_onpolicy.py`` result whose training failed (the answer check refused the adapter):
    what was tried and why it failed, since it has no scores; None for a result with scores."""
    d = json.loads(path.read_text())
    train = d.get("train") or {}
    if "results" in d or not train.get("status"):
        return None
    method = (train.get("applied") or {}).get("method") or {}
    check = method.get("answer_check") or {}
    return {
        "result": path.name,
        "model": Path(d["model"]).name,
        "method": d["method"],
        **({"dpo_loss": method.get("loss_type", "sigmoid")} if d["method"] == "dpo" else {}),
        **({"balanced_decision": True} if d.get("balanced_decision") else {}),
        # results written before the failure recorded them: the values the command gave
        "learning_rate": train.get("learning_rate", _flag(d["command"], "--lr", float)),
        "iters": train.get("iters", _flag(d["command"], "--iters", int)),
        "sft_adapter": d["sft_adapter"],
        "pairs": method.get("pairs"),
        "status": train["status"],
        "error": train.get("error"),
        "answer_check": {
            **{k: check.get(k) for k in CHECK_FIELDS},
            # per half (where a call is due, where none is): a model that stops calling gains the second
            "groups": {
                g: {k: v.get(k) for k in ("requests", "right_before", "right_after", "p_value", "worse")}
                for g, v in (check.get("groups") or {}).items()
            },
        },
        **({"metrics": train["metrics"]} if train.get("metrics") else {}),
    }


def rows_of(path: Path) -> list[dict[str, Any]]:
    d = json.loads(path.read_text())
    trained_on = d["category"]
    rows = []
    if failed_training(path) is not None:
        return rows  # no scores: main() lists it under "failed_training"
    for key, res in d["results"].items():
        n = res["baseline"]["overall"]["n"]
        if n < FULL_SIZE.get(key, 0):
            raise SystemExit(f"{path}: {key} has {n} cases, not the full {FULL_SIZE[key]}")
        rows.append(
            {
                "category": key,
                "cases": n,
                "model": Path(d["model"]).name,
                "trained_on": trained_on,
                "train_seed": d["train_seed"],
                "adapter_name": d["train"]["adapter"],
                "baseline": scores(res["baseline"]),
                "adapter": scores(res["adapter"]),
                "mcnemar_p_native": mcnemar_p(res["comparison"], "native"),
                "mcnemar_p_lenient": mcnemar_p(res["comparison"], "lenient"),
                "result": path.name,
                **(on_policy_fields(d, res) if "sft" in res else {}),
            }
        )
    return rows


CHECK_DEFAULT = TrainConfig.model_fields["answer_check"].default  # rejection SFT runs no check


def on_policy_fields(d: dict[str, Any], res: dict[str, Any]) -> dict[str, Any]:
    """What a ``bench/bfcl_onpolicy.py`` result adds to its row: the method, its learning rate and steps,
    the SFT adapter it started from with that adapter's scores, and the paired test against it."""
    vs = res["comparison_with_sft"]
    config = d["train"].get("config") or {}
    return {
        "method": d["method"],
        **({"dpo_loss": config.get("dpo_loss", "sigmoid")} if d["method"] == "dpo" else {}),
        **({"freeze_token_rows": True} if config.get("freeze_token_rows") else {}),
        **({"unseeded": True} if d.get("unseeded") else {}),
        **({"no_call_share": config["no_call_share"]} if config.get("no_call_share") is not None else {}),
        **({"decision_kl": config["decision_kl"]} if config.get("decision_kl") else {}),
        **({"balanced_decision": True} if d.get("balanced_decision") else {}),
        # a run's answer check size, where it is not the default (a bigger check may refuse a run)
        **(
            {"answer_check": config["answer_check"]}
            if d["method"] != "rejection" and config.get("answer_check", CHECK_DEFAULT) != CHECK_DEFAULT
            else {}
        ),
        "learning_rate": config.get("learning_rate"),
        "iters": config.get("iters"),
        "sft_adapter": d["sft_adapter"],
        "sft": scores(res["sft"]),
        "vs_sft": {
            mode: {k: (vs.get(f"mcnemar_{mode}") or {}).get(k) for k in ("fixes", "regressions", "p_value")}
            for mode in ("native", "lenient")
        },
    }


def spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:  # an on-policy method's rows are not seeds of the SFT recipe: a group of their own,
        # and one per learning rate, DPO loss, held rows, unseeded sampling and GRPO's no-call share (runs
        # that differ in them are not seeds of one recipe)
        keys = ("learning_rate", "dpo_loss", "freeze_token_rows", "unseeded", "no_call_share", "decision_kl",
                "balanced_decision", "answer_check")  # fmt: skip
        variant = json.dumps({k: r[k] for k in keys if k in r}, sort_keys=True)
        groups[(r["model"], r["trained_on"], r.get("method", ""), variant, r["category"])].append(r)
    out = []
    for (model, trained_on, method, variant, category), rs in sorted(groups.items()):
        entry: dict[str, Any] = {
            "model": model,
            "trained_on": trained_on,
            **({"method": method} if method else {}),
            **json.loads(variant),
            "category": category,
            "seeds": [r["train_seed"] for r in rs],
        }
        for mode in ("native", "lenient"):
            vals = [r["adapter"][mode] for r in rs]
            entry[mode] = {
                "values": vals,
                "mean": round(statistics.fmean(vals), 4),
                "min": min(vals),
                "max": max(vals),
                "stdev": round(statistics.stdev(vals), 4) if len(vals) > 1 else None,
            }
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--machine", default="", help="where the results were made, in words")
    ap.add_argument("--out", type=Path, default=Path("bench/results/bfcl_full_0.5b.json"))
    args = ap.parse_args(argv)
    rows = [r for p in sorted(args.results) for r in rows_of(p)]
    machines = {p.name: json.loads(p.read_text()).get("machine", {}) for p in sorted(args.results)}
    failed = [f for p in sorted(args.results) if (f := failed_training(p))]
    doc = {
        "benchmark": "bfcl_full",
        "command": "python "
        + " ".join(["bench/bfcl_full.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": args.machine,
        "machines": machines,
        "rows": rows,
        "seed_spread": spread(rows),
        **({"failed_training": failed} if failed else {}),
        "notes": "native: a native tool call that matches BFCL's answer (irrelevance: no native call); "
        "lenient: calls written as text also parsed (irrelevance: any call attempt, native or text, fails). "
        "Intervals: 95% Wilson.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}: {len(rows)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
