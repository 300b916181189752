"""`tooltune mcp` as a real child process: the whole loop over stdio on the tiny model, a streamable-HTTP
smoke test, and proof that nothing but protocol messages ever reaches stdout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import pytest
from mcp import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from test_mcp_tools import TOOLS

from tooltune.config import Settings
from tooltune.subprocs import free_port

pytestmark = pytest.mark.anyio

TOOLTUNE = str(Path(sys.executable).parent / "tooltune")
FAST = {
    "steps_per_report": 1,
    "steps_per_eval": 3,
    "val_batches": 1,
    "save_every": 3,
    "max_seq_length": 4096,
}  # tiny-tokenizer examples are long; mask_prompt needs the whole turn


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def child_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "TOOLTUNE_CACHE": str(settings.cache_dir), "HF_HUB_OFFLINE": "1"}


def short_suite(path: Path) -> Path:
    from tooltune.evals.suite import load_suite

    suite = load_suite("coding-tools")
    keep = [c for c in suite.subset(1).cases if c.category in ("simple", "choose_among_many", "no_call")]
    path.write_text(suite.model_copy(update={"cases": keep}).to_jsonl())
    return path


async def call(client: mcp.Client, tool: str, progress: Any = None, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args, progress_callback=progress)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


@pytest.mark.slow
async def test_full_loop_over_stdio(settings: Settings, tiny_model: Path, tmp_path: Path) -> None:
    ws = tmp_path / "stdio-ws"
    params = StdioServerParameters(
        command=TOOLTUNE, args=["mcp", "--workspace", str(ws)], env=child_env(settings), cwd=str(tmp_path)
    )
    tiny = str(tiny_model)
    async with mcp.Client(params) as c:
        assert len((await c.list_tools()).tools) == len(TOOLS)

        data = await call(
            c, "generate_training_examples", builtin="coding", n=40, name="coding-v1", base_model=tiny
        )
        assert data["lint"]["ok"] and data["dataset"] == "coding-v1"
        assert (await call(c, "validate_dataset", name="coding-v1", base_model=tiny))["lint"]["ok"]

        # progress over JSON-RPC: the client's progress token reaches the tool through _meta
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            seen.append((done, total, message))

        train = await call(
            c,
            "train_adapter",
            on_progress,
            dataset="coding-v1",
            base_model=tiny,
            name="coding-lora",
            iters=6,
            batch_size=2,
            config=FAST,
            wait_seconds=240,
        )
        assert train["job"]["status"] == "succeeded", train["job"]["error"]
        # relayed in order, ending with the finished job (which "iter i/6 loss x" lines arrive is timing)
        assert seen and seen[-1][:2] == (6, 6) and [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
        assert all("loss" in m for _, _, m in seen if m and m.startswith("iter ")), seen
        job = await call(c, "get_job", id=train["job"]["id"])
        assert job["result"]["adapter"] == "coding-lora" and job["result"]["metrics"]["iterations"] == 6
        assert job["result"]["metrics"]["last_train_loss"] > 0

        # one case per category of three categories of the built-in suite, as a suite file (any path works)
        short = str(short_suite(tmp_path / "short.jsonl"))
        started = await call(
            c, "run_eval_suite", suite=short, adapter="coding-lora", baseline=True, wait_seconds=0
        )
        assert started["runs"] == ["baseline", "coding-lora"] and started["cases"] == 3
        with anyio.fail_after(240):
            while not (ev := await call(c, "get_job", id=started["job"]["id"]))["done"]:
                await anyio.sleep(1)
        assert ev["status"] == "succeeded", ev["error"]
        result = ev["result"]
        assert set(result["scores"]) == {"baseline", "coding-lora"}
        assert set(result["scores"]["baseline"]) == {"overall", "simple", "choose_among_many", "no_call"}
        assert result["comparison"]["n_paired"] == 3

        runs = result["runs"]
        cmp = await call(c, "compare_runs", a=runs["baseline"], b=runs["coding-lora"])
        assert cmp["n_paired"] == 3 and cmp["label_a"] == "baseline" and cmp["label_b"] == "coding-lora"
        md = (await c.read_resource(cmp["report"])).contents[0].text  # type: ignore[union-attr]
        assert "baseline" in md and "coding-lora" in md
        report = (await c.read_resource(result["reports"]["coding-lora"])).contents[0].text  # type: ignore[union-attr]
        assert report.startswith("#") and "short" in report

        # the eval served coding-lora for a while, but only as a temporary switch: not recorded
        before = await call(c, "list_adapters")
        assert before["active"] is None or before["active"]["adapter"] is None

        served = await call(c, "switch_adapter", name="coding-lora")
        assert served["adapter"] == "coding-lora" and served["verified"] is True
        assert served["base_url"].startswith("http://127.0.0.1:")
        adapters = await call(c, "list_adapters")
        assert adapters["served"] == "coding-lora" and adapters["server_running"]
        assert adapters["active"]["adapter"] == "coding-lora"
        (entry,) = adapters["adapters"]
        assert entry["eval_scores"]["short"]["run_id"] == runs["coding-lora"]

        base = await call(c, "switch_adapter", name=None)
        assert base["adapter"] is None and base["verified"] is True


async def test_streamable_http_smoke(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    token = "smoke-test-token-0123456789"  # HTTP mode needs a bearer token (test_mcp_http_auth.py)
    proc = subprocess.Popen(
        [
            TOOLTUNE,
            "mcp",
            "--workspace",
            str(tmp_path / "http-ws"),
            "--http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**child_env(settings), "TOOLTUNE_MCP_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the HTTP server did not start listening"
            await anyio.sleep(0.2)
        auth = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with mcp.Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=auth)) as c:
            tools = (await c.list_tools()).tools
            assert {t.name for t in tools} == TOOLS and all(t.output_schema for t in tools)
            assert (await call(c, "list_jobs"))["jobs"] == []
            missing = await c.call_tool("get_job", {"id": "eval-x"})
            assert missing.is_error and "list_jobs" in missing.content[0].text  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_stdout_carries_only_protocol_messages(settings: Settings, tmp_path: Path) -> None:
    """Raw JSON-RPC over the child's pipes: every stdout line must parse, logs go to stderr."""
    msgs = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "validate_dataset", "arguments": {"name": "nope"}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "list_adapters", "arguments": {}},
        },
    ]
    proc = subprocess.Popen(
        [TOOLTUNE, "mcp", "--workspace", str(tmp_path / "raw-ws")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(settings),
    )
    assert proc.stdin is not None and proc.stdout is not None
    replies = []
    try:
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in msgs))
        proc.stdin.flush()
        while len(replies) < 4:  # stdin stays open until every answer is in (EOF would end the server)
            line = proc.stdout.readline()
            assert line, "the server closed stdout early"
            replies.append(json.loads(line))  # any stray print would fail here
        proc.stdin.close()
        proc.wait(timeout=60)
        rest, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.kill()
    assert rest.strip() == ""
    assert sorted(r["id"] for r in replies) == [1, 2, 3, 4]
    by_id = {r["id"]: r for r in replies}
    assert by_id[3]["result"]["isError"] is True
    assert "not found" in by_id[3]["result"]["content"][0]["text"]
    assert by_id[4]["result"]["structuredContent"]["adapters"] == []
    assert "mcp server starting" in err  # logs exist, on stderr


async def test_generate_from_another_mcp_servers_tools(
    settings: Settings, tiny_model: Path, tmp_path: Path
) -> None:
    """mcp_server= takes the tool list of any MCP server; here: tooltune's own, over stdio."""
    from tooltune.server import build_server

    # (the SDK starts stdio servers with a minimal environment; listing tools needs nothing more)
    command = f"{TOOLTUNE} mcp --workspace {tmp_path / 'other-ws'}"
    async with mcp.Client(build_server(settings)) as c:
        out = await call(
            c,
            "generate_training_examples",
            mcp_server=command,
            n=30,
            kinds=["single", "choose"],
            name="from-mcp",
            base_model=str(tiny_model),
        )
    assert out["tools"] == len(TOOLS) and out["lint"]["ok"]
    dataset = json.loads((settings.workspace / "datasets" / "from-mcp" / "dataset.json").read_text())
    assert dataset["sources"] == [f"mcp:{command}"]
    called = set(dataset["lint"]["stats"]["per_tool"])
    assert called and called <= TOOLS
