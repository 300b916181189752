"""Agent tasks through the real path on the tiny model: a real mlx_lm.server child, the pydantic-ai agent
over HTTP, the sandboxed tools; from the CLI (`eval --tasks`) and from MCP (`run_eval_suite` with a task
suite). The tiny model's random weights cannot solve anything: these check the plumbing and the records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from tooltune.config import Settings
from tooltune.server import build_server
from tooltune.server.state import ServerState

pytestmark = pytest.mark.slow

SUITE = """\
tasks_format: 1
name: tiny-tasks
tasks:
  - id: timeout-value
    category: find-read-answer
    project: app
    request: "what's the default timeout?"
    max_steps: 3
    timeout_s: 120
    checks:
      - answer_contains: ["30"]
"""


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    proj = tmp_path / "suite" / "projects" / "app"
    proj.mkdir(parents=True)
    (proj / "config.py").write_text("TIMEOUT = 30\n")
    path = tmp_path / "suite" / "tiny.yaml"
    path.write_text(SUITE)
    return path


def test_cli_eval_tasks_runs_the_agent_on_a_served_model(
    settings: Settings, tiny_model: Path, suite_file: Path
) -> None:
    env = {**os.environ, "TOOLTUNE_HOME": str(settings.workspace), "TOOLTUNE_CACHE": str(settings.cache_dir)}
    r = subprocess.run(
        [sys.executable, "-m", "tooltune", "eval", "--tasks", str(suite_file), "--baseline", "--model",
         str(tiny_model), "--run-id", "tiny", "--max-tokens", "16", "--temperature", "0.8",
         "--concurrency", "3"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    said = " ".join(r.stdout.split())
    assert "baseline: 0/1 tasks (0%)" in said and "run tiny" in said
    d = settings.workspace / "task-runs" / "tiny"
    result = json.loads((d / "results.jsonl").read_text().splitlines()[0])
    assert result["task_id"] == "timeout-value" and result["steps"] >= 1 and not result["success"]
    assert (d / "transcripts" / "timeout-value.jsonl").read_text().count("default timeout") >= 1
    meta = json.loads((d / "run.json").read_text())
    assert meta["model"] == tiny_model.name and meta["finished"]
    assert meta["temperature"] == 0.8  # every request of the agent sampled at it (the server took it)
    assert meta["concurrency"] == 3


@pytest.mark.anyio
async def test_mcp_run_eval_suite_takes_a_task_suite(
    settings: Settings, tiny_model: Path, suite_file: Path
) -> None:
    state = ServerState(settings)
    async with mcp.Client(build_server(settings, state=state)) as c:
        result = await c.call_tool(
            "run_eval_suite",
            {"suite": str(suite_file), "baseline": True, "base_model": str(tiny_model), "wait_seconds": 300,
             "temperature": 0.8, "lenient_tools": True, "repeat_guard": False, "concurrency": 2},
        )  # fmt: skip
        assert not result.is_error, result.content
        out: dict[str, Any] = result.structured_content or {}
        assert out["suite"] == "tiny-tasks" and out["cases"] == 1 and out["runs"] == ["baseline"]
        with anyio.fail_after(240):
            while not (
                job := (await c.call_tool("get_job", {"id": out["job"]["id"]})).structured_content or {}
            )["done"]:
                await anyio.sleep(0.5)
        assert job["status"] == "succeeded", job["error"]
        score = job["result"]["scores"]["baseline"]
        # (sampled at 0.8, the random weights may even write the "30" the check wants: success not asserted)
        assert score["tasks"] == 1 and score["steps"] >= 1
    # the run went as asked, and says so
    meta = json.loads(
        (settings.workspace / "task-runs" / job["result"]["runs"]["baseline"] / "run.json").read_text()
    )
    assert (meta["temperature"], meta["lenient_tools"], meta["repeat_guard"]) == (0.8, True, False)
    assert meta["concurrency"] == 2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
