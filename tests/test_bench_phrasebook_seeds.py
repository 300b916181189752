"""bench/phrasebook_seeds.py: recipes compared over seeds, each group's files checked to be one recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bench_import import BENCH, bench_module

REPO = BENCH.parent


def _module() -> ModuleType:
    return bench_module("phrasebook_seeds")


def _result(
    suite: str, seed: int, passed: int, *, cases: int = 10, iters: int = 600, tag: str = ""
) -> dict[str, Any]:
    dataset = f"pb-hand-n500-s{seed}-t8-pb1-mixf78ed1-{suite}"
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
        "baseline": {"native": 0.2},
        "machine": {"gpu": "NVIDIA H100", "date": "2026-12-07T04:36:17+00:00"},
        "sources": {
            "hand": {
                "dataset": dataset,
                "iters": iters,
                "run_id": f"{suite}-{dataset}-i{iters}-t{seed}{tag}",
                "adapter_native": passed / cases,
                "categories": {"simple": {"native": passed / cases}},
            }
        },
    }


def _write(folder: Path, name: str, result: dict[str, Any]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result))
    return path


def test_the_permutation_test_counts_every_split() -> None:
    mod = _module()
    # four against four, no overlap: only the observed split and its mirror are as extreme, 2 of 70
    assert mod.permutation_p([10, 11, 12, 13], [20, 21, 22, 23]) == pytest.approx(2 / 70)
    assert mod.permutation_p([5, 5], [5, 5]) == 1.0
    assert mod.smallest_p(4, 4) == pytest.approx(2 / 70)
    assert mod.smallest_p(1, 4) == pytest.approx(0.2)  # one seed against four can never decide
    assert mod.permutation_p([30], [10, 11, 12, 13]) == pytest.approx(0.2)


def test_groups_are_summarised_per_suite_and_compared_with_the_control(tmp_path: Path) -> None:
    mod = _module()
    control = [_write(tmp_path, f"c{s}", _result("issue-tracker", s, p)) for s, p in enumerate([4, 5, 6, 5])]
    better = [_write(tmp_path, f"b{s}", _result("issue-tracker", s, p)) for s, p in enumerate([9, 9, 8, 10])]
    single = [_write(tmp_path, "one", _result("issue-tracker", 0, 9, iters=1200))]
    out = mod.build([("C", control), ("B", better), ("One", single)], "hand", {})
    row = out["suites"]["issue-tracker"]
    c = row["groups"]["C"]
    assert c["seeds"] == [0, 1, 2, 3] and c["passes"] == [4, 5, 6, 5]
    assert c["mean"] == 5.0 and c["min"] == 4 and c["max"] == 6 and c["stdev"] == pytest.approx(0.82)
    assert c["baseline_passes"] == 2 and c["native_mean"] == 0.5
    assert c["machines"] == ["NVIDIA H100, 2026-12-07"]
    b = row["vs_control"]["B"]
    assert (
        b["diff_mean"] == 4.0
        and b["p_permutation"] == pytest.approx(0.0286)
        and b["verdict"] == "beyond seed noise"
    )
    one = row["vs_control"]["One"]
    assert not one["decidable"] and one["verdict"] == "too few seeds to decide"


def test_a_file_of_another_recipe_or_suite_version_is_named_and_refused(tmp_path: Path) -> None:
    mod = _module()
    a = _write(tmp_path, "a", _result("issue-tracker", 0, 5))
    longer = _write(tmp_path, "longer", _result("issue-tracker", 1, 5, iters=1200))
    with pytest.raises(mod.RecipeError, match=r"longer\.json: another recipe"):
        mod.build([("G", [a, longer])], "hand", {})
    other_version = _result("issue-tracker", 1, 5)
    other_version["suite_hash"] = "changed"
    b = _write(tmp_path, "b", other_version)
    with pytest.raises(mod.RecipeError, match="different versions of the suite"):
        mod.build([("G", [a, b])], "hand", {})
    with pytest.raises(mod.RecipeError, match="has no 'drafted' adapter"):
        mod.build([("G", [a])], "drafted", {})
    # the suites' names are no part of the recipe: one recipe over both suites is one group
    n = _write(tmp_path, "n", _result("notes-calendar", 0, 5))
    assert set(mod.build([("G", [a, n])], "hand", {})["suites"]) == {"issue-tracker", "notes-calendar"}


def _answers(folder: Path, run_id: str, passed: dict[str, bool]) -> None:
    (folder / run_id).mkdir(parents=True)
    rows = [{"case_id": c, "category": c.split("-")[0], "native": {"passed": ok}} for c, ok in passed.items()]
    (folder / run_id / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_answers_count_the_cases_each_recipe_passes_on_every_seed_on_some_or_on_none(tmp_path: Path) -> None:
    mod = _module()
    answers = tmp_path / "answers"
    files = []
    for seed, passed in enumerate([{"simple-1": True, "simple-2": False, "parallel-1": False},
                                   {"simple-1": True, "simple-2": True, "parallel-1": False}]):  # fmt: skip
        r = _result("issue-tracker", seed, sum(passed.values()), cases=3)
        _answers(answers, r["sources"]["hand"]["run_id"], passed)
        files.append(_write(tmp_path, f"s{seed}", r))
    g = mod.build([("G", files)], "hand", {"G": answers})["suites"]["issue-tracker"]["groups"]["G"]
    assert g["cases_by_seeds_passed"] == {"0": 1, "1": 1, "2": 1}
    assert g["never_passed"] == {"parallel": ["parallel-1"], "simple": []}
    missing = tmp_path / "elsewhere"
    missing.mkdir()
    with pytest.raises(mod.RecipeError, match="holds no answers of run"):
        mod.build([("G", files)], "hand", {"G": missing})


def test_the_command_writes_the_comparison_and_rejects_answers_of_no_group(tmp_path: Path) -> None:
    a = [_write(tmp_path, f"a{s}", _result("issue-tracker", s, 5 + s)) for s in range(2)]
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
