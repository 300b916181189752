"""bench/phrasebook_seeds.py: recipes compared over seeds, each group's files checked to be one recipe and
each answer folder checked to hold its runs' answers."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bench_import import BENCH, bench_module

REPO = BENCH.parent
CASES = 68


def _module() -> ModuleType:
    return bench_module("phrasebook_seeds")


def _result(
    suite: str,
    seed: int,
    passed: int,
    *,
    cases: int = CASES,
    iters: int = 600,
    n: int = 500,
    variant: str = "-t8-pb1",
) -> dict[str, Any]:
    """A result file as bench/phrasebook_suites.py writes it: fractions kept to 4 decimals."""
    dataset = f"pb-hand-n{n}-s{seed}{variant}" + (f"-{suite}" if variant else "")
    return {
        "suite": suite,
        "suite_hash": f"hash-{suite}",
        "cases": cases,
        "model": "qwen2.5-coder-0.5b-instruct",
        "generator": ["tooltune-data/14"],
        "generator_settings": {"max_tools": 8},
        "train_settings": {},
        "max_seq_length": 3072,
        "data_per_suite": True,
        "baseline": {"native": round(16 / cases, 4)},
        "machine": {"gpu": "NVIDIA H100", "date": "2026-12-07T04:36:17+00:00"},
        "sources": {
            "hand": {
                "dataset": dataset,
                "iters": iters,
                "run_id": f"{suite}-{dataset}-i{iters}-t{seed}",
                "adapter_native": round(passed / cases, 4),
                "categories": {"simple": {"native": round(passed / cases, 4)}},
            }
        },
    }


def _write(folder: Path, name: str, result: dict[str, Any]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result))
    return path


def _group(folder: Path, name: str, totals: list[int], **kw: Any) -> list[Path]:
    files = [_write(folder, f"{name}{s}", _result("issue-tracker", s, p, **kw)) for s, p in enumerate(totals)]
    random.Random(0).shuffle(files)  # given in any order, summarised in seed order
    return files


def test_the_permutation_test_counts_every_split() -> None:
    mod = _module()
    # four against four, no overlap: only the observed split and its mirror are as extreme, 2 of 70
    assert mod.permutation_p([10, 11, 12, 13], [20, 21, 22, 23]) == pytest.approx(2 / 70)
    assert mod.permutation_p([5, 5], [5, 5]) == 1.0
    assert mod.smallest_p([10, 11, 12, 13], [20, 21, 22, 23]) == pytest.approx(2 / 70)
    # a tie between the groups: either 39 may go low, so the farthest split comes 4 ways of 70
    assert mod.smallest_p([30, 30, 32, 39], [39, 40, 41, 42]) == pytest.approx(4 / 70)
    # one run against four: |38 - 32.5| = 5.5 is reached by 38, 40 (8) and 28 (7) alone: 3 of 5
    assert mod.permutation_p([38], [40, 30, 28, 32]) == pytest.approx(0.6)
    assert mod.smallest_p([38], [40, 30, 28, 32]) == pytest.approx(0.2)


def test_groups_are_summarised_per_suite_and_compared_with_the_control(tmp_path: Path) -> None:
    mod = _module()
    control = _group(tmp_path, "c", [40, 30, 28, 32])
    better = _group(tmp_path, "b", [44, 45, 46, 47])
    overlapping = _group(tmp_path, "o", [29, 41, 33, 35])
    single = [_write(tmp_path, "one", _result("issue-tracker", 0, 38, n=1000, iters=1200))]
    groups = [("C", control), ("B", better), ("O", overlapping), ("One", single)]
    row = mod.build(groups, "hand", {})["suites"]["issue-tracker"]
    c = row["groups"]["C"]
    assert c["seeds"] == [0, 1, 2, 3] and c["passes"] == [40, 30, 28, 32]  # 0.5882 of 68 is 40, not 39
    assert (c["mean"], c["stdev"], c["min"], c["max"]) == (32.5, 5.26, 28, 40)
    assert c["baseline_passes"] == 16 and c["native_mean"] == 0.4779
    assert c["machines"] == ["NVIDIA H100, 2026-12-07"]
    b = row["vs_control"]["B"]
    assert b["diff_mean"] == 13.0 and b["p_permutation"] == pytest.approx(0.0286)
    assert b["verdict"] == "beyond seed noise"
    o = row["vs_control"]["O"]
    assert o["decidable"] and o["verdict"] == "within seed noise" and o["p_permutation"] > 0.05
    one = row["vs_control"]["One"]
    assert one["smallest_p"] == 0.2 and one["p_permutation"] == 0.6
    assert not one["decidable"] and one["verdict"] == "too few seeds to decide"


@pytest.mark.parametrize(
    "change",
    [
        {"iters": 1200},
        {"n": 1000},
        {"train_settings": {"batch_size": 4}},
        {"generator_settings": {"max_tools": 8, "tool_odds": "intents"}},
        {"generator": ["tooltune-data/12"]},
        {"model": "qwen2.5-coder-1.5b-instruct"},
    ],
)
def test_a_file_of_another_recipe_is_named_and_refused(tmp_path: Path, change: dict[str, Any]) -> None:
    mod = _module()
    a = _write(tmp_path, "a", _result("issue-tracker", 0, 30))
    kw = {k: v for k, v in change.items() if k in ("iters", "n")}
    other = _result("issue-tracker", 1, 30, **kw)
    other.update({k: v for k, v in change.items() if k not in kw})
    b = _write(tmp_path, "other", other)
    with pytest.raises(mod.RecipeError, match=r"other\.json: another recipe"):
        mod.build([("G", [a, b])], "hand", {})


def test_files_and_groups_that_cannot_be_counted_as_seeds_are_refused(tmp_path: Path) -> None:
    mod = _module()
    a = _write(tmp_path, "a", _result("issue-tracker", 0, 30))
    changed = _result("issue-tracker", 1, 30)
    changed["suite_hash"] = "changed"
    with pytest.raises(mod.RecipeError, match="different versions of the suite"):
        mod.build([("G", [a, _write(tmp_path, "b", changed)])], "hand", {})
    with pytest.raises(mod.RecipeError, match="has no 'drafted' adapter"):
        mod.build([("G", [a])], "drafted", {})
    rerun = _write(tmp_path, "rerun", _result("issue-tracker", 0, 33))
    with pytest.raises(mod.RecipeError, match="seed 0 given twice"):
        mod.build([("G", [a, rerun])], "hand", {})
    with pytest.raises(mod.RecipeError, match="group 'G' given twice"):
        mod.build([("G", [a]), ("G", [rerun])], "hand", {})
    # an edited book: files that name their books' digests must name the same ones
    first, edited = _result("issue-tracker", 2, 30), _result("issue-tracker", 3, 30)
    first["sources"]["hand"]["books"] = ["phrasebook:issue-tracker-hand@aaaa"]
    edited["sources"]["hand"]["books"] = ["phrasebook:issue-tracker-hand@bbbb"]
    older = [a, _write(tmp_path, "first", first)]  # a file from before digests were recorded is no conflict
    assert mod.build([("G", older)], "hand", {})["suites"]["issue-tracker"]["groups"]["G"]["seeds"] == [0, 2]
    with pytest.raises(mod.RecipeError, match=r"edited\.json: made from other phrasebooks"):
        mod.build([("G", [*older, _write(tmp_path, "edited", edited)])], "hand", {})
    # each suite's data comes from its own book: one group over both suites names two
    notes = _result("notes-calendar", 2, 30)
    notes["sources"]["hand"]["books"] = ["phrasebook:notes-calendar-hand@cccc"]
    both = mod.build([("G", [*older, _write(tmp_path, "notes", notes)])], "hand", {})
    assert set(both["suites"]) == {"issue-tracker", "notes-calendar"}


def test_a_generator_version_read_as_another_only_when_asked_and_recorded(tmp_path: Path) -> None:
    mod = _module()
    a = _write(tmp_path, "a", _result("issue-tracker", 0, 30))
    newer = _result("issue-tracker", 1, 31)
    newer["generator"] = ["tooltune-data/15"]
    b = _write(tmp_path, "newer", newer)
    with pytest.raises(mod.RecipeError, match="another recipe"):
        mod.build([("G", [a, b])], "hand", {})
    out = mod.build([("G", [a, b])], "hand", {}, {"tooltune-data/15": "tooltune-data/14"})
    assert out["suites"]["issue-tracker"]["groups"]["G"]["seeds"] == [0, 1]
    assert out["same_generator"] == {"tooltune-data/15": "tooltune-data/14"}
    # the command line names OLD then NEW
    assert mod.same_generators([["tooltune-data/14", "tooltune-data/15"]]) == {
        "tooltune-data/15": "tooltune-data/14"
    }
    with pytest.raises(mod.RecipeError, match="already itself"):
        mod.same_generators([["tooltune-data/14", "tooltune-data/14"]])
    with pytest.raises(mod.RecipeError, match="is read as another and another is read as it"):
        mod.same_generators(
            [["tooltune-data/14", "tooltune-data/15"], ["tooltune-data/13", "tooltune-data/14"]]
        )
    with pytest.raises(mod.RecipeError, match="given twice"):
        mod.same_generators(
            [["tooltune-data/13", "tooltune-data/15"], ["tooltune-data/14", "tooltune-data/15"]]
        )
    with pytest.raises(mod.RecipeError, match="no file was made by tooltune-data/16"):
        mod.build(
            [("G", [a, b])], "hand", {}, {"tooltune-data/15": "tooltune-data/14", "tooltune-data/16": "x"}
        )
    # older files wrote the version as a string; a dataset of two versions read as one is that one
    old_style = _result("issue-tracker", 2, 32)
    old_style["generator"] = "tooltune-data/15"
    both = _result("issue-tracker", 3, 33)
    both["generator"] = ["tooltune-data/14", "tooltune-data/15"]
    more = [a, b, _write(tmp_path, "old_style", old_style), _write(tmp_path, "both", both)]
    seeds = mod.build([("G", more)], "hand", {}, {"tooltune-data/15": "tooltune-data/14"})
    assert seeds["suites"]["issue-tracker"]["groups"]["G"]["seeds"] == [0, 1, 2, 3]


def test_what_is_no_part_of_a_recipe_does_not_split_a_group(tmp_path: Path) -> None:
    mod = _module()
    a = _write(tmp_path, "a", _result("issue-tracker", 0, 30))
    # the suite's name: one recipe over both suites is one group
    n = _write(tmp_path, "n", _result("notes-calendar", 0, 30))
    assert set(mod.build([("G", [a, n])], "hand", {})["suites"]) == {"issue-tracker", "notes-calendar"}
    # older files wrote null for default settings
    old = _result("issue-tracker", 1, 31)
    old["train_settings"] = None
    assert mod.build([("G", [a, _write(tmp_path, "old", old)])], "hand", {})["suites"]["issue-tracker"]
    # a dataset name that ends with its seed (no variant, one dataset over both suites)
    bare = [_write(tmp_path, f"bare{s}", _result("issue-tracker", s, 20 + s, variant="")) for s in (0, 1)]
    assert mod.build([("G", bare)], "hand", {})["suites"]["issue-tracker"]["groups"]["G"]["seeds"] == [0, 1]


def _answers(folder: Path, result: dict[str, Any], passed: dict[str, bool]) -> None:
    run = folder / result["sources"]["hand"]["run_id"]
    run.mkdir(parents=True)
    rows = [{"case_id": c, "category": c.split("-")[0], "native": {"passed": ok}} for c, ok in passed.items()]
    (run / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_answers_count_the_cases_each_recipe_passes_on_every_seed_on_some_or_on_none(tmp_path: Path) -> None:
    mod = _module()
    answers, other_answers = tmp_path / "answers", tmp_path / "other"
    runs = [{"simple-1": True, "simple-2": False, "parallel-1": False},
            {"simple-1": True, "simple-2": True, "parallel-1": False}]  # fmt: skip
    files = []
    for seed, passed in enumerate(runs):
        r = _result("issue-tracker", seed, sum(passed.values()), cases=3)
        _answers(answers, r, passed)
        # another run that shares the run id (another generator version): other answers, other counts
        _answers(other_answers, r, {c: not ok for c, ok in passed.items()})
        files.append(_write(tmp_path, f"s{seed}", r))
    out = mod.build([("G", files)], "hand", {"G": answers})["suites"]["issue-tracker"]
    g = out["groups"]["G"]
    assert g["cases_by_seeds_passed"] == {"0": 1, "1": 1, "2": 1}
    assert g["never_passed"] == {"parallel": ["parallel-1"], "simple": []}
    assert out["passed_by_no_group"] == {"parallel": ["parallel-1"], "simple": []}
    with pytest.raises(mod.RecipeError, match="not this run's answers"):
        mod.build([("G", files)], "hand", {"G": other_answers})
    missing = tmp_path / "elsewhere"
    missing.mkdir()
    with pytest.raises(mod.RecipeError, match="holds no answers of run"):
        mod.build([("G", files)], "hand", {"G": missing})
    first = answers / json.loads(files[0].read_text())["sources"]["hand"]["run_id"] / "cases.jsonl"
    first.write_text(first.read_text() + first.read_text().splitlines()[0] + "\n")
    with pytest.raises(mod.RecipeError, match=r"cases\.jsonl:4: case 'simple-1' answered twice"):
        mod.build([("G", files)], "hand", {"G": answers})


def test_the_command_writes_the_comparison_and_rejects_answers_of_no_group(tmp_path: Path) -> None:
    a = [_write(tmp_path, f"a{s}", _result("issue-tracker", s, 5 + s, cases=10)) for s in range(2)]
    out = tmp_path / "seeds.json"
    script = str(BENCH / "phrasebook_seeds.py")
    run = subprocess.run(
        [sys.executable, script, "--group", "A", *map(str, a), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    written = json.loads(out.read_text())
    assert written["benchmark"] == "phrasebook_seeds" and written["control"] == "A"
    assert written["suites"]["issue-tracker"]["groups"]["A"]["passes"] == [5, 6]
    assert "| A | [0, 1] | [5, 6] of 10 | 5.5 ± 0.71 | control |" in run.stderr
    bad = subprocess.run(
        [sys.executable, script, "--group", "A", str(a[0]), "--answers", "B", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert bad.returncode != 0 and "--answers B: no such group" in bad.stderr
    # --same-generator OLD NEW on the command line: a file of NEW joins one of OLD
    newer = _result("issue-tracker", 2, 7, cases=10)
    newer["generator"] = ["tooltune-data/15"]
    files = [*map(str, a), str(_write(tmp_path, "newer", newer))]
    joined = subprocess.run(
        [sys.executable, script, "--group", "A", *files,
         "--same-generator", "tooltune-data/14", "tooltune-data/15", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    assert json.loads(out.read_text())["same_generator"] == {"tooltune-data/15": "tooltune-data/14"}


def test_a_group_may_read_another_sources_adapters(tmp_path: Path) -> None:
    """A book under another source name (``dated``) is compared with the hand book's recipe: each group
    reads its own source's adapters, and the output says which."""
    mod = _module()
    control = _group(tmp_path, "c", [40, 30, 28, 32])
    dated = []
    for s, p in enumerate([31, 32, 33]):
        r = _result("issue-tracker", s, p)
        r["sources"] = {"dated": r["sources"].pop("hand")}
        r["sources"]["dated"]["dataset"] = r["sources"]["dated"]["dataset"].replace("pb-hand", "pb-dated")
        dated.append(_write(tmp_path, f"d{s}", r))
    with pytest.raises(mod.RecipeError, match="has no 'hand' adapter"):
        mod.build([("H9", control), ("H12", dated)], "hand", {})
    out = mod.build([("H9", control), ("H12", dated)], "hand", {}, None, {"H12": "dated"})
    assert out["group_sources"] == {"H9": "hand", "H12": "dated"}
    row = out["suites"]["issue-tracker"]
    assert row["groups"]["H12"]["passes"] == [31, 32, 33] and row["vs_control"]["H12"]["diff_mean"] == -0.5
    with pytest.raises(mod.RecipeError, match="--group-source H13: no such group"):
        mod.build([("H9", control)], "hand", {}, None, {"H13": "dated"})
