"""Recipes compared over seeds: is one phrasebook recipe better than another beyond what a change of seed
does by itself?

One ``bench/phrasebook_suites.py`` run trains one adapter per suite from one seed (the seed draws the
data and orders training). On one GPU, four seeds of the same recipe spanned 12 cases on issue-tracker
(28–40 of 68) and 9 on notes-calendar (30–39 of 70; ``bench/results/phrasebook_seeds_h9.json``), so a
recipe is a distribution and one run is one draw from it. This script reads result files of several
recipes, each run with one or more seeds, and per suite and data source writes each recipe's passes per
seed, their mean, standard deviation and range, and each recipe against the first (the control): the
difference of the means and an exact two-sided permutation test over the seed totals. A comparison
these totals cannot decide (no split of them reaches p < 0.05: one seed against four, or four against
four with a tie between the best and the worst) says so. With ``--answers NAME DIR`` (the folder of a
group's eval answers, ``<run_id>/cases.jsonl``, as ``bench/results/phrasebook_gpu_h9/``; per group, since
runs of two generator versions can share a run id, and checked against each run's counts) it also
counts, per recipe, how many cases pass on every seed, on none, or on some, and which cases no recipe
passed on any seed.

Usage (the committed comparison's own command is in its ``command`` field):
  python bench/phrasebook_seeds.py --group H9 FILE... --group H6b FILE... \\
      [--answers H9 bench/results/phrasebook_gpu_h9] [--out bench/results/phrasebook_seeds_h9.json]

Every file of a group must hold the same recipe (model, generator and its settings, training settings,
steps, examples, and per suite the same books' digests where files record them; only the seed may
differ, each seed once), and every file of one suite the same suite: a file that does not is named and
refused. Files from before digests were recorded are taken on trust. ``--same-generator OLD NEW`` reads a
generator version that changed none of these recipes' data as the one before it (recorded).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# bench/phrasebook_suites.py's dataset names: pb-<source>-n<examples>-s<seed>[<variant>][-<suite>]
SEED = re.compile(r"^(pb-[^-]+-n\d+-s)(\d+)(?=-|$)")
ALPHA = 0.05


class RecipeError(ValueError):
    """A result file that does not belong where it was put."""


def passes(fraction: float | None, cases: int, where: str) -> int:
    """A fraction of a suite's cases as the count it was made from (files keep 4 decimals: 0.5882 of 68)."""
    if fraction is None:
        raise RecipeError(f"{where}: no native accuracy recorded")
    return round(fraction * cases)


def recipe_key(result: dict[str, Any], source: str, same: dict[str, str] | None = None) -> str:
    """What defines a recipe, the seed left out: two files with the same key differ only by seed. ``same``
    reads a generator version as another one (a version that changed no data these recipes draw)."""
    entry = result["sources"][source]
    generators = sorted({(same or {}).get(g, g) for g in generator_list(result)})
    return json.dumps(
        {
            "model": result["model"],
            "generator": generators,
            # older files wrote null where newer ones write {}: both mean the defaults
            "generator_settings": result.get("generator_settings") or {},
            "train_settings": result.get("train_settings") or {},
            "max_seq_length": result.get("max_seq_length"),
            "data_per_suite": result.get("data_per_suite"),
            "iters": entry.get("iters"),
            # the seed and the suite (a per-suite dataset names its suite) left out
            "dataset": SEED.sub(r"\1*", entry["dataset"], count=1).replace(result["suite"], "*"),
        },
        sort_keys=True,
    )


def generator_list(result: dict[str, Any]) -> list[str]:
    """The generator versions a result file records (older files wrote one version as a string)."""
    given = result.get("generator") or []
    return [given] if isinstance(given, str) else list(given)


def same_generators(pairs: list[list[str]]) -> dict[str, str]:
    """``--same-generator OLD NEW`` pairs as {NEW: OLD}: each NEW once, never read as itself."""
    out: dict[str, str] = {}
    for old, new in pairs:
        if old == new:
            raise RecipeError(f"--same-generator {old} {new}: a version is already itself")
        if new in out:
            raise RecipeError(f"--same-generator: {new} given twice")
        out[new] = old
    chained = sorted(set(out) & set(out.values()))
    if chained:  # one step only: 15 as 14 and 14 as 13 would not make 15 read as 13
        raise RecipeError(f"--same-generator: {chained[0]} is read as another and another is read as it")
    return out


def seed_of(dataset: str) -> int:
    m = SEED.search(dataset)
    if not m:
        raise RecipeError(f"dataset {dataset!r} names no seed (pb-<source>-n<N>-s<seed>...)")
    return int(m.group(2))


def split_differences(a: list[int], b: list[int]) -> list[float]:
    """|mean of one side - mean of the other| for every split of the pooled totals into groups of these sizes
    (the splits an exact permutation test weighs equally; fine up to about 10 seeds a side)."""
    pooled = a + b
    out = []
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        chosen = set(idx)
        x = [pooled[i] for i in idx]
        y = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        out.append(abs(statistics.fmean(x) - statistics.fmean(y)))
    return out


def permutation_p(a: list[int], b: list[int]) -> float:
    """Exact two-sided permutation test of the difference of means of two groups of seed totals: the share
    of all splits whose difference is at least the observed one."""
    return _share_at_least(split_differences(a, b), abs(statistics.fmean(a) - statistics.fmean(b)))


def smallest_p(a: list[int], b: list[int]) -> float:
    """The smallest p the test could give with these very totals, whichever seeds scored them: the share of
    splits as far apart as the farthest one. With distinct totals 1/C(n, k), or 2/C(n, k) for groups of one
    size (a split and its mirror); ties raise it (4 against 4 with one total shared: 4/70)."""
    diffs = split_differences(a, b)
    return _share_at_least(diffs, max(diffs))


def _share_at_least(diffs: list[float], x: float) -> float:
    return sum(d >= x - 1e-9 for d in diffs) / len(diffs)  # float means: ties within rounding count


def spread(values: list[int]) -> dict[str, Any]:
    return {
        "mean": round(statistics.fmean(values), 2),
        "stdev": round(statistics.stdev(values), 2) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
    }


def load_group(
    name: str, files: list[Path], source: str, same: dict[str, str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """A group's results per suite, each checked to hold the group's one recipe."""
    by_suite: dict[str, list[dict[str, Any]]] = {}
    key: str | None = None
    books: dict[str, list[str]] = {}  # per suite: a per-suite dataset is made from its own suite's book
    for f in files:
        try:
            result = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise RecipeError(f"{f}: not a result file ({e})") from e
        if source not in result.get("sources", {}):
            raise RecipeError(
                f"{f}: has no {source!r} adapter (sources: {sorted(result.get('sources', {}))})"
            )
        k = recipe_key(result, source, same)
        if key is None:
            key = k
        elif k != key:
            raise RecipeError(
                f"{f}: another recipe than the rest of group {name!r} (only the seed may differ)"
            )
        # the books' digests, where the file records them (older files do not, and are taken on trust):
        # an edited book is another recipe
        digests = result["sources"][source].get("books")
        if digests is not None:
            known = books.setdefault(result["suite"], digests)
            if digests != known:
                raise RecipeError(f"{f}: made from other phrasebooks than the rest of group {name!r}")
        result["_file"] = str(f)
        by_suite.setdefault(result["suite"], []).append(result)
    return by_suite


def case_passes(answers: Path, result: dict[str, Any], source: str) -> dict[str, tuple[str, bool]]:
    """Each case's category and whether its native answer passed, from a run's saved answers, checked to be
    that run's: every case of the suite once, as many passed as the result file counts (two runs of
    different generator versions can share a run id, so a folder of the other one's answers is refused)."""
    entry = result["sources"][source]
    path = answers / entry["run_id"] / "cases.jsonl"
    if not path.is_file():
        raise RecipeError(f"{answers}: holds no answers of run {entry['run_id']!r} ({path.name} missing)")
    out: dict[str, tuple[str, bool]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            case, category, passed = row["case_id"], row["category"], bool(row["native"]["passed"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise RecipeError(f"{path}:{n}: not an answer record ({e})") from e
        if case in out:
            raise RecipeError(f"{path}:{n}: case {case!r} answered twice (repeats are not seeds)")
        out[case] = (category, passed)
    want = passes(entry["adapter_native"], result["cases"], result["_file"])
    got = sum(p for _, p in out.values())
    if len(out) != result["cases"] or got != want:
        raise RecipeError(
            f"{path}: {len(out)} answers, {got} passed, but {result['_file']} counts {result['cases']} cases, "
            f"{want} passed: not this run's answers"
        )
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
    seeds = [seed_of(r["sources"][source]["dataset"]) for r in results]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise RecipeError(
            f"{results[0]['suite']}: seed {twice[0]} given twice in one group (a rerun is not a seed)"
        )
    totals = [passes(r["sources"][source]["adapter_native"], cases, r["_file"]) for r in results]
    cats = sorted(results[0]["sources"][source]["categories"])
    out: dict[str, Any] = {
        "seeds": seeds,
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
        "baseline_passes": passes(results[0]["baseline"]["native"], cases, results[0]["_file"]),
        "files": [r["_file"] for r in results],
        # where each run trained and answered, as its result file recorded it
        "machines": sorted({machine_words(r.get("machine")) for r in results}),
    }
    if answers is not None:
        per_case = [case_passes(answers, r, source) for r in results]
        ids = sorted(per_case[0])
        if any(set(p) != set(ids) for p in per_case):
            raise RecipeError(f"{answers}: the runs of one suite answered different cases")
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
    floor = smallest_p(a, b)
    p = permutation_p(b, a)
    return {
        "diff_mean": round(statistics.fmean(b) - statistics.fmean(a), 2),
        "p_permutation": round(p, 4),
        "decidable": floor < ALPHA,
        "smallest_p": round(floor, 4),
        "verdict": (
            "too few seeds to decide" if floor >= ALPHA  # no split of these totals reaches p < 0.05
            else ("beyond seed noise" if p < ALPHA else "within seed noise")
        ),
    }  # fmt: skip


def build(
    groups: list[tuple[str, list[Path]]],
    source: str,
    answers: dict[str, Path],
    same: dict[str, str] | None = None,
    group_sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Each group's summary per suite, and each against the first (the control). A group reads its
    adapters from ``source``, or from its own in ``group_sources`` (a book under another source name, such
    as ``dated``, against the hand book's recipe)."""
    names = [name for name, _ in groups]
    if len(set(names)) < len(names):
        raise RecipeError(
            f"group {next(n for n in names if names.count(n) > 1)!r} given twice: name each once"
        )
    src = {name: (group_sources or {}).get(name, source) for name in names}
    unknown = sorted(set(group_sources or {}) - set(names))
    if unknown:
        raise RecipeError(f"--group-source {unknown[0]}: no such group (groups: {', '.join(names)})")
    loaded = [(name, load_group(name, files, src[name], same)) for name, files in groups]
    suites = sorted({s for _, by_suite in loaded for s in by_suite})
    out: dict[str, Any] = {"source": source, "control": loaded[0][0], "suites": {}}
    if group_sources:
        out["group_sources"] = {name: src[name] for name in names}
    if same:
        used = {
            g for _, by_suite in loaded for rs in by_suite.values() for r in rs for g in generator_list(r)
        }
        unused = sorted(set(same) - used)
        if unused:
            raise RecipeError(
                f"--same-generator: no file was made by {unused[0]} (nothing to read as another)"
            )
        out["same_generator"] = dict(same)
    for suite in suites:
        summaries = {name: group_summary(by_suite[suite], src[name], answers.get(name))
                     for name, by_suite in loaded if suite in by_suite}  # fmt: skip
        hashes = {s_res["suite_hash"] for _, by_suite in loaded for s_res in by_suite.get(suite, [])}
        if len(hashes) > 1:
            raise RecipeError(f"{suite}: the groups' files come from different versions of the suite")
        row: dict[str, Any] = {"groups": summaries}
        if all("never_passed" in g for g in summaries.values()):
            # cases that no seed of any recipe passed: what none of these recipes teaches
            row["passed_by_no_group"] = {
                cat: sorted(
                    set.intersection(*(set(g["never_passed"].get(cat, [])) for g in summaries.values()))
                )
                for cat in sorted({c for g in summaries.values() for c in g["never_passed"]})
            }
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
            own = result.get("group_sources", {}).get(name, result["source"])
            label = name if own == result["source"] else f"{name} ({own})"
            lines.append(
                f"| {label} | {s['seeds']} | {s['passes']} of {s['cases']} | {s['mean']}{sd} | {vs} |"
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
        "--group-source", nargs=2, action="append", default=[], metavar=("NAME", "SOURCE"),
        help="group NAME's adapters come from SOURCE instead (a book of another name, such as dated)",
    )  # fmt: skip
    p.add_argument(
        "--answers", nargs=2, action="append", default=[], metavar=("NAME", "DIR"),
        help="the folder of group NAME's eval answers (<run_id>/cases.jsonl); repeat per group",
    )  # fmt: skip
    p.add_argument(
        "--same-generator", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
        help="read generator version NEW as OLD (say so only when NEW changed no data these recipes draw: "
        "tooltune-data/15 changed the trajectory kind alone); recorded in the output",
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
        result = build(
            groups, args.source, answers, same_generators(args.same_generator), dict(args.group_source)
        )
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
