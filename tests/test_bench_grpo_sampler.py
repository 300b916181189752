"""bench/grpo_sampler_check.py: GRPO's in-loop sampler against the server's recorded samples of the same
requests (issue 36); the committed summary is what its rows give, with the numbers
docs/BFCL_ATTEMPTS.md quotes."""

from __future__ import annotations

import json
from pathlib import Path

from bench_import import bench_module

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_sampler_check_is_what_its_rows_give() -> None:
    check = bench_module("grpo_sampler_check")
    committed = json.loads((ROOT / "bench" / "results" / "grpo_sampler_cpu.json").read_text())
    rows = committed["rows"]
    assert committed["summary"] == check.summarize(rows)
    assert sum(r["expects_no_call"] for r in rows) == sum(not r["expects_no_call"] for r in rows) == 24
    assert all(len(r["server"]) == len(r["sampler"]) == 4 for r in rows)
    server, sampler = committed["summary"]["server"], committed["summary"]["sampler"]
    assert (server["called_where_none_due"]["k"], sampler["called_where_none_due"]["k"]) == (44, 45)
    assert (server["no_call_where_due"]["k"], sampler["no_call_where_due"]["k"]) == (10, 16)
    # the hypothesis held: the intervals overlap, the sampler calls where none is due no more than the
    # server did, far from the 80% of the GRPO run's rollouts
    lo, hi = sampler["called_where_none_due"]["interval"]
    assert lo <= server["called_where_none_due"]["rate"] <= hi and hi < 0.8


def test_a_recorded_server_answer_reads_as_grpo_reads_it() -> None:
    check = bench_module("grpo_sampler_check")
    right = {"native": True, "lenient": True, "attempted": False, "reason": None}
    assert check.server_outcome(right, expects_no_call=True) == "right"
    called = {"native": True, "lenient": True, "attempted": True, "reason": None}
    assert check.server_outcome(called, expects_no_call=True) == "called_when_irrelevant"
    text_call = {**right, "lenient": False}  # a call written as text where none is due
    assert check.server_outcome(text_call, expects_no_call=True) == "called_when_irrelevant"
    failed = {**text_call, "native": False, "reason": "server_error"}
    assert check.server_outcome(failed, expects_no_call=True) == "server_error"
    assert check.server_outcome({**right, "native": False, "reason": "wrong_value"}, False) == "wrong_value"
    assert check.server_outcome({**right, "native": False}, False) == "no_call_made"
