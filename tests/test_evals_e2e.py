"""End to end on a real ``mlx_lm.server`` child serving the tiny random model.

The tiny model's output is garbage; what is asserted is that the pipeline records and scores every
case, and that killing the server mid-run loses nothing: resume finishes without double counting.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from tooltune.config import Settings
from tooltune.evals.results import CaseResult
from tooltune.evals.runner import EvalInterrupted, load_results, resume_run, run_dir, run_suite
from tooltune.evals.suite import load_suite
from tooltune.workspace import Workspace

pytestmark = pytest.mark.slow


def test_tiny_model_run_kill_and_resume(tiny_model: Path, settings: Settings):
    from tooltune.testing.mlx_endpoint import mlx_endpoint

    ws = Workspace(settings.workspace).ensure()
    suite = load_suite("coding-tools", ws).subset(1)  # one case per category, incl. multi-turn
    assert len(suite.cases) == 6
    seen: list[CaseResult] = []

    with mlx_endpoint(tiny_model, settings, ready_timeout=180) as ep:

        def kill_after_two(done: int, total: int, r: CaseResult) -> None:
            seen.append(r)
            if len(seen) == 2:
                ep.proc.kill()
                ep.proc.wait()

        async def first():
            return await run_suite(
                suite,
                ws=ws,
                base_url=ep.base_url,
                model_name=ep.model_name,
                run_id="tiny",
                concurrency=1,
                max_tokens=24,
                on_progress=kill_after_two,
                max_consecutive_connection_errors=2,
            )

        with pytest.raises(EvalInterrupted):
            anyio.run(first)

    finished = [r for r in seen[:2]]
    assert all(r.error is None for r in finished), [r.error for r in finished]
    assert all(r.raw_text or r.native_calls for r in finished)
    assert all(r.output_tokens > 0 and r.input_tokens > 0 for r in finished)

    with mlx_endpoint(tiny_model, settings, ready_timeout=180) as ep2:

        async def again():
            return await resume_run(ws, "tiny", base_url=ep2.base_url, model_name=ep2.model_name)

        report = anyio.run(again)

    assert report.complete and report.n_results == 6
    lines = (run_dir(ws, "tiny") / "cases.jsonl").read_text().splitlines()
    keys = [(json.loads(x)["case_id"], json.loads(x)["repeat"]) for x in lines]
    assert len(keys) == len(set(keys)) == 6
    results = load_results(run_dir(ws, "tiny") / "cases.jsonl")
    assert {r.case_id for r in finished} <= {r.case_id for r in results}
    for r in results:
        assert r.error is None
        # every answer is scored both ways with a reason when it fails
        for s in (r.native, r.lenient):
            assert s.passed or s.reason is not None
    assert (run_dir(ws, "tiny") / "report.html").read_text().startswith("<!DOCTYPE html>")
