"""train_adapter through MCP on the tiny model, in memory: the job id comes back at once without a progress
token, a second request is told who is busy, a reconnected client (even a new server process on the same
workspace) finds and cancels the job, and a request with a progress token receives iteration/loss
progress while the worker trains."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from tooltune.config import Settings
from tooltune.server import build_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAST = {
    "steps_per_report": 1,
    "steps_per_eval": 2,
    "val_batches": 1,
    "save_every": 2,
    "max_seq_length": 4096,
}  # tiny-tokenizer examples are long; mask_prompt needs the whole turn


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def call(client: mcp.Client, tool: str, progress: Any = None, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args, progress_callback=progress)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


async def wait_done(client: mcp.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while not (job := await call(client, "get_job", id=job_id))["done"]:
            await anyio.sleep(0.5)
    return job


async def test_train_busy_reconnect_cancel_then_progress(settings: Settings, tiny_model: Path) -> None:
    base = {"dataset": "ds", "base_model": str(tiny_model), "batch_size": 2, "config": FAST}
    async with mcp.Client(build_server(settings)) as c:
        await call(
            c, "generate_training_examples", builtin="coding", n=24, name="ds", base_model=str(tiny_model)
        )

        # no progress token: the job id comes back at once, whatever wait_seconds says
        t0 = time.monotonic()
        first = await call(c, "train_adapter", **base, iters=500, name="long", wait_seconds=600)
        assert time.monotonic() - t0 < 60  # a 500-step run takes far longer: the call did not wait for it
        assert first["followed_seconds"] == 0 and first["job"]["status"] in ("queued", "running")
        job_id = first["job"]["id"]
        assert first["adapter"] == "long" and first["resource"] == f"tooltune://runs/{first['run_id']}"

        # one training per workspace: the second request names the running job
        busy = await c.call_tool("train_adapter", {**base, "iters": 2})
        assert busy.is_error
        assert "busy" in busy.content[0].text and job_id in busy.content[0].text  # type: ignore[union-attr]

    # the client went away; a new server on the same workspace still knows the job and can stop it
    async with mcp.Client(build_server(settings)) as c:
        assert job_id in [j["id"] for j in (await call(c, "list_jobs", kind="train"))["jobs"]]
        await call(c, "cancel_job", id=job_id)  # the worker may still be starting: it honours the flag
        stopped = await wait_done(c, job_id)
        assert stopped["status"] == "cancelled"

        # with a progress token the call stays open and relays the worker's progress
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            seen.append((done, total, message))

        out = await call(
            c, "train_adapter", progress=on_progress, **base, iters=4, name="quick", wait_seconds=240
        )
        job = out["job"]
        assert job["status"] == "succeeded", job["error"]
        assert out["followed_seconds"] > 0
        # the relay polls the job, so which "iter i/4 loss x" lines it catches depends on timing (a fast
        # run may show none); what it sends is in order and ends with the finished job
        iterations = [(d, t) for d, t, m in seen if m and m.startswith("iter ")]
        assert [d for d, _ in iterations] == sorted(d for d, _ in iterations)
        assert all(t == 4 and "loss" in m for d, t, m in seen if m and m.startswith("iter "))
        assert seen[-1][:2] == (4, 4)  # the last word is the finished job (the poll may skip "iter 4/4")
        metrics = job["result"]["metrics"]  # what the worker wrote to the job, every iteration
        assert metrics["iterations"] == 4 and metrics["last_train_loss"] > 0
        assert job["result"]["adapter"] == "quick"
        assert "run_eval_suite" in job["next"]

        adapters = await call(c, "list_adapters")
        assert [a["name"] for a in adapters["adapters"]] == ["quick"]
        assert adapters["adapters"][0]["base_model"] == str(tiny_model)
        record = json.loads((await c.read_resource("tooltune://adapters/quick")).contents[0].text)  # type: ignore[union-attr]
        assert record["train_config"]["iters"] == 4 and record["train_config"]["batch_size"] == 2
        run = json.loads((await c.read_resource(out["resource"])).contents[0].text)  # type: ignore[union-attr]
        assert run["run"]["status"] == "succeeded"
        assert [e["iteration"] for e in run["recent_events"] if e["kind"] == "train"] == [1, 2, 3, 4]
