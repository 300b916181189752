"""One suite shared between several mlx_lm.server endpoints serving the same model: one run, the same
verdicts as one server at temperature 0, and a server that stops answering leaves its cases to the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tooltune.config import Settings
from tooltune.evals.runner import run_suite
from tooltune.evals.suite import load_suite
from tooltune.subprocs import free_port
from tooltune.workspace import Workspace

pytestmark = pytest.mark.slow


def _completions(log: Path) -> int:
    return log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')


def test_two_servers_share_a_run_and_a_dead_one_is_left_behind(tiny_model: Path, settings: Settings) -> None:
    from tooltune.testing.mlx_endpoint import mlx_endpoint

    ws = Workspace(settings.workspace).ensure()
    suite = load_suite("coding-tools", ws).subset(2)  # 12 cases, multi-turn ones too
    opts = dict(ws=ws, concurrency=1, max_tokens=16)  # one request per server at a time: no batching
    logs = [settings.cache_dir / "shard-a.log", settings.cache_dir / "shard-b.log"]
    with (
        mlx_endpoint(tiny_model, settings, log_path=logs[0], ready_timeout=180) as a,
        mlx_endpoint(tiny_model, settings, log_path=logs[1], ready_timeout=180) as b,
    ):
        before = [_completions(p) for p in logs]  # the readiness probes

        async def runs() -> tuple:
            one = await run_suite(suite, base_url=a.base_url, model_name=a.model_name, run_id="one", **opts)
            both = await run_suite(
                suite, base_url=[a.base_url, b.base_url], model_name=a.model_name, run_id="both", **opts
            )
            dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
            left = await run_suite(
                suite,
                base_url=[dead, b.base_url],
                model_name=a.model_name,
                run_id="left",
                max_consecutive_connection_errors=2,
                **opts,
            )
            return one, both, left

        one, both, left = anyio.run(runs)
        served_by_b = _completions(logs[1]) - before[1]

    assert both.meta.shard_urls == [a.base_url, b.base_url] and both.meta.base_url == a.base_url
    assert both.complete and both.n_results == one.n_results == 12
    # both servers answered part of the shared run (b also served all of "left")
    assert served_by_b > 12 and _completions(logs[0]) - before[0] > 12

    def verdicts(report) -> dict[str, tuple]:
        return {r.case_id: (r.native.passed, r.lenient.passed, r.raw_text) for r in report.results}

    assert verdicts(both) == verdicts(one)  # greedy decoding: which server answered changes nothing
    assert left.complete and left.n_results == 12 and all(r.error is None for r in left.results)
    assert verdicts(left) == verdicts(one)


@pytest.mark.anyio
async def test_mcp_run_eval_suite_shares_a_run_between_endpoints(
    tiny_model: Path, settings: Settings, tmp_path: Path
) -> None:
    import mcp

    from tooltune.evals.runner import load_report
    from tooltune.server import build_server
    from tooltune.server.state import ServerState
    from tooltune.testing.mlx_endpoint import mlx_endpoint

    state = ServerState(settings)
    with (
        mlx_endpoint(tiny_model, settings, log_path=tmp_path / "a.log", ready_timeout=180) as a,
        mlx_endpoint(tiny_model, settings, log_path=tmp_path / "b.log", ready_timeout=180) as b,
    ):
        async with mcp.Client(build_server(settings, state=state)) as c:
            both = await c.call_tool(
                "run_eval_suite", {"adapter": "x", "baseline": True, "base_urls": [a.base_url]}
            )
            assert both.is_error and "not both" in both.content[0].text  # type: ignore[union-attr]
            urls = [a.base_url, b.base_url]
            args = {"limit": 1, "base_urls": urls, "base_model": a.model_name, "concurrency": 1}
            started = await c.call_tool("run_eval_suite", args)
            assert not started.is_error, started.content[0].text  # type: ignore[union-attr]
            job_id = started.structured_content["job"]["id"]  # type: ignore[index]
            with anyio.fail_after(240):
                while not (job := (await c.call_tool("get_job", {"id": job_id})).structured_content)["done"]:  # type: ignore[index]
                    await anyio.sleep(0.5)
            # the same cases on one server, one at a time (no batching): greedy answers do not depend on
            # which endpoint gave them
            one = await run_suite(
                load_suite("coding-tools", state.ws), ws=state.ws, base_url=a.base_url,
                model_name=a.model_name, limit=1, concurrency=1, run_id="one-server",
            )  # fmt: skip
    assert job["status"] == "succeeded", job
    run_id = job["result"]["runs"]["baseline"]
    report = load_report(state.ws, run_id)
    assert report.complete and report.n_results == 6
    assert report.meta.shard_urls == urls and state.model_server is None
    assert report.meta.concurrency == 1

    def verdicts(r: Any) -> dict[str, tuple]:
        return {x.case_id: (x.native.passed, x.lenient.passed, x.raw_text) for x in r.results}

    assert verdicts(report) == verdicts(one)
