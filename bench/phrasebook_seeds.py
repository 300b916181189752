"""Recipes compared over seeds: is one phrasebook recipe better than another beyond what a change of seed
does by itself?

One ``bench/phrasebook_suites.py`` run trains one adapter per suite from one seed (the seed draws the
data and orders training). On one GPU, four seeds of the same recipe ranged over 12 of 68 cases on
issue-tracker and 9 of 70 on notes-calendar (``phrasebook_seeds_h9.json``), so a recipe is a
distribution and one run is one draw from it. This script reads result files of several recipes, each
run with one or more seeds, and per suite and data source writes each recipe's passes per seed, their
mean, standard deviation and range, and each recipe against the first (the control): the difference of
the means and an exact two-sided permutation test over the seed totals. A comparison the seeds at hand
cannot decide (no split of them reaches p < 0.05: one seed against four, say) says so. With ``--answers
NAME DIR`` (the folder of a group's eval answers, ``<run_id>/cases.jsonl``, as
``bench/results/phrasebook_gpu_h9/``; per group, since runs of two generator versions can share a run id)
it also counts, per recipe, how many cases pass on every seed, on none, or on some.

Usage:
  python bench/phrasebook_seeds.py --group H9 bench/results/phrasebook_*_h9_*.json bench/results/phrasebook_*_h9s*.json \\
      --group H6b bench/results/phrasebook_*_h6b_*.json --answers H9 bench/results/phrasebook_gpu_h9 \\
      --out bench/results/phrasebook_seeds_h9.json

Every file of a group must hold the same recipe (model, generator and its settings, training settings,
steps, examples; only the seed may differ), and every file of one suite the same suite: a file that
does not is named and refused.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import statistics
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEED = re.compile(r"-s(\d+)-")
ALPHA = 0.05


class RecipeError(ValueError):
    """A result file that does not belong where it was put."""


def passes(fraction: float | None, cases: int) -> int:
    return round((fraction or 0.0) * cases)


def recipe_key(result: dict[str, Any], source: str) -> str:
    """What defines a recipe, the seed left out: two files with the same key differ only by seed."""
    entry = result["sources"][source]
    return json.dumps(
        {
            "model": result["model"],
            "generator": result.get("generator"),
            "generator_settings": result.get("generator_settings", {}),
            "train_settings": result.get("train_settings", {}),
            "max_seq_length": result.get("max_seq_length"),
            "data_per_suite": result.get("data_per_suite"),
            "iters": entry.get("iters"),
            # the seed and the suite (a per-suite dataset names its suite) left out
            "dataset": SEED.sub("-s*-", entry["dataset"], count=1).replace(result["suite"], "*"),
        },
        sort_keys=True,
    )


def seed_of(dataset: str) -> int:
    m = SEED.search(dataset)
    if not m:
        raise RecipeError(f"dataset {dataset!r} names no seed (-s<N>-)")
    return int(m.group(1))


def permutation_p(a: list[int], b: list[int]) -> float:
    """Exact two-sided permutation test of the difference of means of two groups of seed totals: the share
    of all splits of the pooled totals into groups of these sizes whose difference is at least as large."""
    pooled = a + b
    observed = abs(statistics.fmean(a) - statistics.fmean(b))
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        chosen = set(idx)
        x = [pooled[i] for i in idx]
        y = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        hits += abs(statistics.fmean(x) - statistics.fmean(y)) >= observed - 1e-9
    return hits / total


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p an exact permutation test of groups this size can give (distinct totals):
    the observed split alone, or with its mirror image when the groups are the same size."""
    return min(1.0, (2 if n_a == n_b else 1) / math.comb(n_a + n_b, n_a))


def spread(values: list[int]) -> dict[str, Any]:
    return {
        "mean": round(statistics.fmean(values), 2),
        "stdev": round(statistics.stdev(values), 2) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
    }


def load_group(name: str, files: list[Path], source: str) -> dict[str, list[dict[str, Any]]]:
    """A group's results per suite, each checked to hold the group's one recipe."""
    by_suite: dict[str, list[dict[str, Any]]] = {}
    key: str | None = None
    for f in files:
        try:
            result = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise RecipeError(f"{f}: not a result file ({e})") from e
        if source not in result.get("sources", {}):
            raise RecipeError(
                f"{f}: has no {source!r} adapter (sources: {sorted(result.get('sources', {}))})"
            )
        k = recipe_key(result, source)
        if key is None:
            key = k
        elif k != key:
            raise RecipeError(
                f"{f}: another recipe than the rest of group {name!r} (only the seed may differ)"
            )
        result["_file"] = str(f)
        by_suite.setdefault(result["suite"], []).append(result)
    return by_suite


def case_passes(answers: Path, run_id: str) -> dict[str, tuple[str, bool]]:
    """Each case's category and whether its native answer passed, from a run's saved answers."""
    path = answers / run_id / "cases.jsonl"
    if not path.is_file():
        raise RecipeError(f"{answers}: holds no answers of run {run_id!r} ({path.name} missing)")
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            out[row["case_id"]] = (row["category"], bool(row["native"]["passed"]))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise RecipeError(f"{path}:{n}: not an answer record ({e})") from e
    return out


def machine_words(machine: Any) -> str:
    if not isinstance(machine, dict):
        return str(machine)
    where = machine.get("gpu") or machine.get("copied_from") or machine.get("platform") or "unrecorded"
    return f"{where}, {machine['date'][:10]}" if machine.get("date") else str(where)


def group_summary(results: list[dict[str, Any]], source: str, answers: Path | None) -> dict[str, Any]:
    cases = results[0]["cases"]
    hashes = {r["suite_hash"] for r in results}
    if len(hashes) > 1:
        raise RecipeError(
            f"{results[0]['suite']}: files from different versions of the suite ({sorted(hashes)})"
        )
    results = sorted(results, key=lambda r: seed_of(r["sources"][source]["dataset"]))
    totals = [passes(r["sources"][source]["adapter_native"], cases) for r in results]
    cats = sorted(results[0]["sources"][source]["categories"])
    out: dict[str, Any] = {
        "seeds": [seed_of(r["sources"][source]["dataset"]) for r in results],
        "passes": totals,
        "cases": cases,
        **spread(totals),
        "native_mean": round(statistics.fmean(totals) / cases, 4),
        "categories": {
            c: round(
                statistics.fmean(r["sources"][source]["categories"][c]["native"] or 0.0 for r in results), 4
            )
            for c in cats
        },
        "baseline_passes": passes(results[0]["baseline"]["native"], cases),
        "files": [r["_file"] for r in results],
        # where each run trained and answered, as its result file recorded it
        "machines": sorted({machine_words(r.get("machine")) for r in results}),
    }
    if answers is not None:
        per_case = [case_passes(answers, r["sources"][source]["run_id"]) for r in results]
        ids = sorted(set.intersection(*(set(p) for p in per_case)))
        k = {i: sum(p[i][1] for p in per_case) for i in ids}
        category = {i: per_case[0][i][0] for i in ids}
        # how many cases passed on 0, 1, ... of the seeds; those that passed on none, per category
        out["cases_by_seeds_passed"] = {str(j): c for j, c in sorted(Counter(k.values()).items())}
        out["never_passed"] = {
            cat: sorted(i for i in ids if k[i] == 0 and category[i] == cat)
            for cat in sorted(set(category.values()))
        }
    return out


def compare(control: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    a, b = control["passes"], other["passes"]
    floor = smallest_p(len(a), len(b))
    p = permutation_p(b, a)
    return {
        "diff_mean": round(statistics.fmean(b) - statistics.fmean(a), 2),
        "p_permutation": round(p, 4),
        "decidable": floor < ALPHA,
        "smallest_p": round(floor, 4),
        "verdict": (
            "too few seeds to decide" if floor >= ALPHA
            else ("beyond seed noise" if p < ALPHA else "within seed noise")
        ),
    }  # fmt: skip


def build(groups: list[tuple[str, list[Path]]], source: str, answers: dict[str, Path]) -> dict[str, Any]:
    loaded = [(name, load_group(name, files, source)) for name, files in groups]
    suites = sorted({s for _, by_suite in loaded for s in by_suite})
    out: dict[str, Any] = {"source": source, "control": loaded[0][0], "suites": {}}
    for suite in suites:
        summaries = {name: group_summary(by_suite[suite], source, answers.get(name))
                     for name, by_suite in loaded if suite in by_suite}  # fmt: skip
        hashes = {s_res["suite_hash"] for _, by_suite in loaded for s_res in by_suite.get(suite, [])}
        if len(hashes) > 1:
            raise RecipeError(f"{suite}: the groups' files come from different versions of the suite")
        row: dict[str, Any] = {"groups": summaries}
        control = summaries.get(loaded[0][0])
        if control is not None:
            row["vs_control"] = {
                name: compare(control, s) for name, s in summaries.items() if name != loaded[0][0]
            }
        out["suites"][suite] = row
    return out


def table(result: dict[str, Any]) -> str:
    lines = []
    for suite, row in result["suites"].items():
        lines.append(f"\n{suite} ({result['source']})")
        lines.append("| recipe | seeds | passes | mean ± sd | vs control |")
        lines.append("|---|---|---|---|---|")
        for name, s in row["groups"].items():
            cmp = row.get("vs_control", {}).get(name)
            vs = (
                f"{cmp['diff_mean']:+.2f}, p = {cmp['p_permutation']} ({cmp['verdict']})"
                if cmp
                else "control"
            )
            sd = f" ± {s['stdev']}" if s["stdev"] is not None else ""
            lines.append(
                f"| {name} | {s['seeds']} | {s['passes']} of {s['cases']} | {s['mean']}{sd} | {vs} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--group", nargs="+", action="append", required=True, metavar=("NAME", "FILE"),
        help="a recipe's name, then its result files (any seeds, any suites); the first group is the control",
    )  # fmt: skip
    p.add_argument("--source", default="hand", help="which data source's adapters to compare (default: hand)")
    p.add_argument(
        "--answers", nargs=2, action="append", default=[], metavar=("NAME", "DIR"),
        help="the folder of group NAME's eval answers (<run_id>/cases.jsonl); repeat per group",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="write the JSON here (default: print it)")
    args = p.parse_args()
    groups = []
    for g in args.group:
        if len(g) < 2:
            p.error(f"--group {g[0]}: name it, then give at least one result file")
        groups.append((g[0], [Path(f) for f in g[1:]]))
    names = [g[0] for g in groups]
    answers = {name: Path(folder) for name, folder in args.answers}
    for name in answers:
        if name not in names:
            p.error(f"--answers {name}: no such group (groups: {', '.join(names)})")
    try:
        result = build(groups, args.source, answers)
    except RecipeError as e:
        raise SystemExit(f"phrasebook_seeds: {e}") from None
    result = {
        "benchmark": "phrasebook_seeds",
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
    }
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    else:
        sys.stdout.write(text)
    print(table(result), file=sys.stderr)


if __name__ == "__main__":
    main()
