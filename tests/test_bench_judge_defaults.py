"""bench/judge_defaults.py: the committed re-judging of the SFT adapter's recorded answers is what its
inputs give under today's judge, with the numbers docs/BFCL_ATTEMPTS.md quotes."""

from __future__ import annotations

import json
from pathlib import Path

from bench_import import bench_module

from tooltune.data.examples import example_from_record
from tooltune.evals.results import CaseResult

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "bench" / "results" / "judge_defaults_cpu"


def test_the_committed_rejudging_is_what_its_inputs_give() -> None:
    judge = bench_module("judge_defaults")
    lines = (FOLDER / "examples.jsonl").read_text().splitlines()
    examples = [
        example_from_record(json.loads(line), f"examples.jsonl:{i}") for i, line in enumerate(lines, 1)
    ]
    results = [
        CaseResult.model_validate_json(line) for line in (FOLDER / "cases.jsonl").read_text().splitlines()
    ]
    committed = json.loads((ROOT / "bench" / "results" / "judge_defaults_cpu.json").read_text())
    assert {k: committed[k] for k in judge.rejudge(examples, results)} == judge.rejudge(examples, results)
    assert (committed["recorded"]["right"], committed["now"]["right"]) == (76, 84)
    assert committed["recorded_extra_param"] == {
        "at_stated_default": 10,
        "no_stated_default": 5,
        "other_value": 1,
    }
    # two of the ten at a default had another argument wrong
    assert committed["recorded_extra_param_now"]["at_stated_default: wrong_value"] == 2


def test_bfcl_agreement_sorts_each_optional_answer_by_the_default_read(tmp_path: Path) -> None:
    judge = bench_module("judge_defaults")
    props = {
        "n": {"type": "integer", "description": "How many. Default is 5."},
        "unit": {"type": "string", "description": "Unit. Default is 'm'."},
        "city": {"type": "string", "description": "Where."},
        "q": {"type": "string", "description": "What."},
    }
    fn = {
        "name": "f",
        "description": "",
        "parameters": {"type": "dict", "properties": props, "required": ["q"]},
    }
    (tmp_path / "possible_answer").mkdir()
    (tmp_path / "BFCL_v4_simple_python.json").write_text(
        json.dumps({"id": "a", "question": [], "function": [fn]})
    )
    answer = {"f": {"q": ["x"], "n": [5, ""], "unit": ["cm", ""], "city": ["Rome", ""]}}
    (tmp_path / "possible_answer" / "BFCL_v4_simple_python.json").write_text(
        json.dumps({"id": "a", "ground_truth": [answer]})
    )
    got = judge.bfcl_agreement(tmp_path, ("simple_python",))
    assert (got["agree"], got["differ"], got["missed"]) == (1, 1, 1)  # n, unit, city; q is required
    assert got["differ_examples"] == [{"parameter": "f.unit", "read": ["m"], "answer": ["cm"]}]
