"""run_eval_suite, compare_runs and switch_adapter in memory on the tiny model (a real mlx_lm.server child),
with a two-case suite so it stays quick; the adapter path runs in test_mcp_stdio.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from tooltune.config import Settings
from tooltune.evals.runner import DEFAULT_CONCURRENCY, load_report
from tooltune.evals.suite import load_suite
from tooltune.server import build_server
from tooltune.server.state import ServerState

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def call(client: mcp.Client, tool: str, progress: Any = None, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args, progress_callback=progress)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


def two_case_suite(path: Path) -> Path:
    suite = load_suite("coding-tools")
    cases = [next(c for c in suite.cases if c.category == cat) for cat in ("simple", "no_call")]
    path.write_text(suite.model_copy(update={"cases": cases}).to_jsonl())
    return path


async def test_baseline_evals_compare_and_switch(
    settings: Settings, tiny_model: Path, tmp_path: Path
) -> None:
    suite = two_case_suite(tmp_path / "mini.jsonl")
    state = ServerState(settings)
    # what the eval writes to its job (the relay polls it every POLL_SECONDS and only sends what it saw,
    # so a run faster than one poll reaches the client as "starting" then "done": timing, not a bug)
    written: list[str] = []
    update = state.jobs.update

    def spy(job_id: str, **fields: Any) -> Any:
        written.append(str((fields.get("progress") or {}).get("message", "")))
        return update(job_id, **fields)

    state.jobs.update = spy  # type: ignore[method-assign]
    async with mcp.Client(build_server(settings, state=state)) as c:
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            seen.append((done, total, message))

        first = await call(
            c,
            "run_eval_suite",
            on_progress,
            suite=str(suite),
            baseline=True,
            base_model=str(tiny_model),
            wait_seconds=300,
        )
        job = first["job"]
        assert job["status"] == "succeeded", job["error"]
        assert first["runs"] == ["baseline"] and first["cases"] == 2 and first["followed_seconds"] > 0
        assert {"baseline: case 1/2", "baseline: case 2/2"} <= set(written), written
        # relayed: changes only, ending at the last case; what lies between depends on the poll's timing
        assert seen[-1][:2] == (2, 2) and all(t == 2 for _, t, _ in seen)
        assert len(set(seen)) == len(seen) and [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
        result = job["result"]
        assert set(result["scores"]["baseline"]) == {"simple", "no_call", "overall"}
        assert "comparison" not in result  # one run: nothing to pair

        # no progress token: the job id at once, then poll
        second = await call(
            c, "run_eval_suite", suite=str(suite), baseline=True, base_model=str(tiny_model), concurrency=1
        )
        assert second["followed_seconds"] == 0
        job_id = second["job"]["id"]
        with anyio.fail_after(120):
            while not (again := await call(c, "get_job", id=job_id))["done"]:
                await anyio.sleep(0.2)
        assert again["status"] == "succeeded", again["error"]

        a, b = result["runs"]["baseline"], again["result"]["runs"]["baseline"]
        # `concurrency` reaches the run (as `tooltune eval --concurrency`), the default otherwise
        assert load_report(state.ws, a).meta.concurrency == DEFAULT_CONCURRENCY
        assert load_report(state.ws, b).meta.concurrency == 1
        cmp = await call(c, "compare_runs", a=a, b=b)
        # the same model at temperature 0 on the same cases: identical outcomes, nothing discordant
        assert cmp["n_paired"] == 2 and cmp["same_suite"] is True
        # made at two concurrencies: the comparison says so, and so does its advice
        assert (
            cmp["differs"] == [f"concurrency: {DEFAULT_CONCURRENCY} vs 1"] and "differ besides" in cmp["next"]
        )
        assert cmp["n_regressions"] == cmp["n_fixes"] == 0 and cmp["mcnemar_native"]["p_value"] == 1.0
        md = (await c.read_resource(cmp["report"])).contents[0].text  # type: ignore[union-attr]
        assert a in md and b in md
        listing = json.loads((await c.read_resource("tooltune://reports")).contents[0].text)  # type: ignore[union-attr]
        assert {r["run_id"] for r in listing} == {a, b}

        # the eval left the model server running on the base model; switching to it is verified
        served = await call(c, "switch_adapter", name=None)
        assert served["adapter"] is None and served["verified"] is True
        assert served["model_path"] == str(tiny_model.resolve())
        adapters = await call(c, "list_adapters")
        assert adapters["server_running"] is True and adapters["served"] is None
    assert state.model_server is None  # stopped with the connection's lifespan
