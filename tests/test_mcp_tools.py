"""MCP tools in memory (`mcp.Client(server)`): schemas, happy paths that need no model server or training
worker, and every error an agent can act on. The slow paths (training, evals, stdio) are in
test_mcp_train.py and test_mcp_stdio.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from tooltune.config import Settings
from tooltune.jobs import JobRecord
from tooltune.server import build_server
from tooltune.server.state import SERVER_STOPPED, ServerState

pytestmark = pytest.mark.anyio

TOOLS = {
    "generate_training_examples",
    "validate_dataset",
    "train_adapter",
    "run_eval_suite",
    "compare_runs",
    "switch_adapter",
    "list_adapters",
    "average_adapters",
    "get_job",
    "cancel_job",
    "list_jobs",
    "sample_model_answers",
    "pick_training_data",
    "improve_adapter",
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name."},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def state(settings: Settings) -> ServerState:
    return ServerState(settings)


@pytest.fixture
async def client(settings: Settings, state: ServerState) -> AsyncIterator[mcp.Client]:
    async with mcp.Client(build_server(settings, state=state)) as c:
        yield c


async def call(client: mcp.Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: mcp.Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    return result.content[0].text  # type: ignore[union-attr]


async def make_dataset(
    client: mcp.Client, tiny_model: Path, name: str = "ds-a", **extra: Any
) -> dict[str, Any]:
    return await call(
        client,
        "generate_training_examples",
        builtin="coding",
        n=30,
        name=name,
        base_model=str(tiny_model),
        **extra,
    )


# ---- the surface -------------------------------------------------------------------------------------


async def test_every_tool_has_input_and_output_schema_and_an_agent_description(client: mcp.Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for name, tool in tools.items():
        assert tool.input_schema["type"] == "object", name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object", name
        assert tool.output_schema.get("properties"), name
        assert tool.description and len(tool.description) > 100, name
    # arguments the contract names are there
    assert {"tools", "mcp_server", "bfcl_file", "builtin", "n", "kinds", "seed", "examples", "name"} <= set(
        tools["generate_training_examples"].input_schema["properties"]
    )
    assert {
        "dataset",
        "base_model",
        "rank",
        "iters",
        "learning_rate",
        "num_layers",
        "batch_size",
        "name",
    } <= set(tools["train_adapter"].input_schema["properties"])
    assert {"suite", "adapter", "baseline", "limit"} <= set(
        tools["run_eval_suite"].input_schema["properties"]
    )
    assert tools["train_adapter"].input_schema["required"] == ["dataset"]


async def test_resources_are_listed(client: mcp.Client) -> None:
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert {
        "tooltune://adapters/{name}",
        "tooltune://datasets/{name}",
        "tooltune://runs/{id}",
        "tooltune://reports/{id}",
    } <= templates
    static = {str(r.uri) for r in (await client.list_resources()).resources}
    assert static == {"tooltune://adapters", "tooltune://datasets", "tooltune://runs", "tooltune://reports"}


# ---- data --------------------------------------------------------------------------------------------


async def test_generate_with_caller_examples_then_validate_and_read_resource(
    client: mcp.Client, tiny_model: Path, settings: Settings
) -> None:
    examples = [
        {
            "request": "Show me what is in src/app/settings.py please",
            "calls": [{"name": "read_file", "arguments": {"path": "src/app/settings.py"}}],
        },
        {"request": "Thanks, that is all for today!", "calls": [], "answer": "You're welcome."},
    ]
    out = await make_dataset(client, tiny_model, examples=examples, seed=3)
    assert out["dataset"] == "ds-a"
    assert out["lint"]["ok"] is True and out["lint"]["n_errors"] == 0
    assert sum(out["counts"].values()) == out["lint"]["examples"] == 30
    assert out["caller_examples"] == 2 and out["kinds"]["caller"] == 2
    assert out["tools"] == 8  # the built-in coding tools
    assert out["lint"]["model"] == tiny_model.name  # the template round trip ran on the named model
    # what the caller wrote is kept beside the workspace so the dataset's sources stay real
    kept = settings.workspace / "inputs" / "ds-a" / "examples.jsonl"
    assert [json.loads(line) for line in kept.read_text().splitlines()] == examples

    check = await call(client, "validate_dataset", name="ds-a", base_model=str(tiny_model))
    assert check["lint"]["ok"] is True and check["stats"]["examples"] == 30
    assert check["lint"]["checks"]["roundtrip"]["status"] == "passed"
    assert "train_adapter" in check["next"]

    resource = await client.read_resource(out["resource"])
    data = json.loads(resource.contents[0].text)  # type: ignore[union-attr]
    assert data["hash"] == out["hash"] and data["counts"] == out["counts"]
    listing = json.loads((await client.read_resource("tooltune://datasets")).contents[0].text)  # type: ignore[union-attr]
    assert [d["name"] for d in listing] == ["ds-a"]


async def test_generate_mix_max_tools_and_contrast_share_reach_the_generator(
    client: mcp.Client, settings: Settings, tiny_model: Path
) -> None:
    from tooltune.data.store import load_dataset
    from tooltune.workspace import Workspace

    mix = {"single": 0.5, "no_call": 0.5}
    out = await make_dataset(
        client,
        tiny_model,
        name="mixed",
        mix=mix,
        max_tools=2,
        contrast_share=1.0,
        phrasebook_share=0.25,
        absent_tool_share=0.2,
        call_question_share=0.7,
    )
    assert set(out["kinds"]) <= {"single", "no_call", "contrast"} and out["kinds"].get("contrast", 0) > 0
    info = load_dataset(Workspace(settings.workspace), "mixed")
    lines = [
        json.loads(line) for s in ("train", "valid", "test") for line in (info.path / f"{s}.jsonl").open()
    ]
    assert lines and max(len(line["tools"]) for line in lines) <= 2
    assert info.stats["contrast_share"] == 1.0 and info.stats["phrasebook_share"] == 0.25
    assert info.stats["absent_tool_share"] == 0.2 and info.stats["call_question_share"] == 0.7
    text = await call_error(client, "generate_training_examples", builtin="coding", n=5, mix={"bogus": 1.0})
    assert "bogus" in text and "single" in text  # names the bad kind and the good ones


async def test_generate_near_miss_contrast_share_reaches_the_generator(
    client: mcp.Client, settings: Settings, tiny_model: Path
) -> None:
    from tooltune.data.store import load_dataset
    from tooltune.workspace import Workspace

    out = await make_dataset(
        client, tiny_model, name="pairs", mix={"near_miss": 1.0}, near_miss_contrast_share=1.0
    )
    assert set(out["kinds"]) == {"near_miss", "contrast"}
    assert load_dataset(Workspace(settings.workspace), "pairs").stats["near_miss_contrast_share"] == 1.0


async def test_generate_teacher_share_and_tries_reach_the_teacher(
    client: mcp.Client, settings: Settings, tiny_model: Path
) -> None:
    """teacher=URL: the requests go to that endpoint (a first try loses the values, the retry keeps
    them), and the share and tries given to the tool are the ones the dataset records."""
    import http.server
    import threading

    from tooltune.data.store import load_dataset
    from tooltune.workspace import Workspace

    seeds: list[int] = []

    class Teacher(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = body["messages"][-1]["content"].split("Request: ", 1)[1]
            retry = body["seed"] - 1 in seeds  # a retry is sampled with the next seed
            seeds.append(body["seed"])
            out = f"Quick one: {text}" if retry else "No values here."
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": out}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Teacher)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        out = await make_dataset(
            client,
            tiny_model,
            name="taught",
            kinds=["single"],
            teacher=url,
            teacher_share=0.5,
            teacher_no_call_share=0.25,
            teacher_tries=3,
            phrasebook_share=0.0,  # requests in a developer's words are not sent to the teacher
        )
        stats = load_dataset(Workspace(settings.workspace), "taught").stats["teacher"]
        assert (stats["share"], stats["no_call_share"], stats["tries"]) == (0.5, 0.25, 3)
        assert out["teacher"]["kept"] == stats["kept"] == stats["asked"] > 0
        # every request with values was retried once and kept (a request without values has none to lose)
        assert stats["retries"] == stats["kept_on_retry"] > 0
        assert len(seeds) == stats["asked"] + stats["retries"]
        # roughly half the requests, not all of them: the share reached the generator
        assert 0.2 < stats["asked"] / out["lint"]["examples"] < 0.8
        # an endpoint that is not there is a clear error, and no dataset is left behind
        httpd.shutdown()
        httpd.server_close()
        gone = {"builtin": "coding", "n": 30, "name": "gone", "teacher": url, "teacher_share": 1}
        text = await call_error(client, "generate_training_examples", **gone)
        assert "keeps failing" in text and url in text
        assert not (settings.workspace / "datasets" / "gone").exists()
    finally:
        httpd.server_close()


async def test_generate_from_inline_tools(client: mcp.Client, tiny_model: Path) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    result = await client.call_tool(
        "generate_training_examples",
        {
            "tools": [WEATHER],
            "n": 20,
            "kinds": ["single", "no_call"],
            "name": "weather",
            "base_model": str(tiny_model),
        },
        progress_callback=on_progress,
    )
    assert not result.is_error and result.structured_content is not None
    out = result.structured_content
    assert seen and seen[-1] == (20, 20, "generating examples")  # the last example is always reported
    assert out["tools"] == 1
    assert set(out["kinds"]) <= {"single", "no_call"}
    assert sum(out["kinds"].values()) == 20


async def test_generate_with_the_agents_system_prompt(
    client: mcp.Client, tiny_model: Path, settings: Settings
) -> None:
    from tooltune.coding_tools import DEFAULT_INSTRUCTIONS

    await make_dataset(client, tiny_model, name="sys", system_prompt="agent")
    lines = []
    for split in ("train", "valid", "test"):
        lines += (settings.workspace / "datasets" / "sys" / f"{split}.jsonl").read_text().splitlines()
    firsts = [json.loads(line)["messages"][0] for line in lines]
    with_system = [m for m in firsts if m["role"] == "system"]
    assert with_system and all(m["content"] == DEFAULT_INSTRUCTIONS for m in with_system)
    assert len(with_system) < len(firsts)  # a share of conversations, not all


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"n": 10}, "no tools given"),
        ({"builtin": "coding", "kinds": ["bogus"]}, "unknown kind"),
        ({"builtin": "coding", "name": "../escape"}, "invalid dataset name"),
        (
            {"builtin": "coding", "examples": [{"request": "weather in Oslo", "calls": [{"name": "nope"}]}]},
            "unknown tool 'nope'",
        ),
        (
            {
                "builtin": "coding",
                "examples": [
                    {"request": "read it", "calls": [{"name": "read_file", "arguments": {"path": 7}}]}
                ],
            },
            "arguments.path",
        ),
        ({"bfcl_file": "/does/not/exist.json"}, "does not exist"),
        ({"builtin": "coding", "n": 0}, "greater than or equal to 1"),
    ],
)
async def test_generate_errors_say_what_to_change(
    client: mcp.Client, tiny_model: Path, settings: Settings, args: dict[str, Any], expected: str
) -> None:
    text = await call_error(client, "generate_training_examples", base_model=str(tiny_model), **args)
    assert expected in text
    inputs = settings.workspace / "inputs"
    assert not inputs.exists() or not any(inputs.iterdir())  # a refused request leaves nothing behind


async def test_datasets_are_immutable(client: mcp.Client, tiny_model: Path) -> None:
    await make_dataset(client, tiny_model, name="once")
    text = await call_error(client, "generate_training_examples", builtin="coding", n=5, name="once")
    assert "already exists" in text and "pass another name" in text


async def test_validate_unknown_dataset(client: mcp.Client) -> None:
    assert "dataset 'missing' not found" in await call_error(client, "validate_dataset", name="missing")


# ---- training errors (no worker is started) ----------------------------------------------------------


async def test_train_adapter_errors(client: mcp.Client, tiny_model: Path) -> None:
    await make_dataset(client, tiny_model)
    base = {"dataset": "ds-a", "base_model": str(tiny_model)}
    assert "dataset" in await call_error(client, "train_adapter", dataset="nope", base_model=str(tiny_model))
    assert "invalid training config: rank" in await call_error(client, "train_adapter", **base, rank=0)
    assert "has only 2 layers" in await call_error(client, "train_adapter", **base, num_layers=5)
    assert "invalid training config" in await call_error(client, "train_adapter", **base, config={"bogus": 1})
    unanchored = {"anchor_loss_weight": 1.0, "mask_prompt": False}  # the loss fields reach TrainConfig too
    assert "anchor_loss_weight needs mask_prompt" in await call_error(
        client, "train_adapter", **base, config=unanchored
    )
    assert "batch_size is 64" in await call_error(client, "train_adapter", **base, batch_size=64)
    missing = await call_error(client, "train_adapter", dataset="ds-a", base_model="/no/such/model")
    assert "/no/such/model" in missing
    # refused before launch: no job is left running
    jobs = (await call(client, "list_jobs"))["jobs"]
    assert all(j["done"] for j in jobs)


# ---- jobs --------------------------------------------------------------------------------------------


async def test_unknown_job(client: mcp.Client) -> None:
    for tool in ("get_job", "cancel_job"):
        text = await call_error(client, tool, id="train-nope")
        assert "no job 'train-nope'" in text and "list_jobs" in text


async def test_in_process_job_result_survives_reconnect(settings: Settings, state: ServerState) -> None:
    server = build_server(settings, state=state)

    async def work(job: JobRecord) -> dict[str, Any]:
        state.jobs.update(job.id, progress={"current": 1, "message": "half way"})
        return {"answer": 42}

    async with mcp.Client(server) as c:
        job = state.start_background_job("eval", work, params={"suite": "x"}, total=2)
        with anyio.fail_after(10):
            while not (await call(c, "get_job", id=job.id))["done"]:
                await anyio.sleep(0.05)
    # a new connection (and a new server object on the same workspace) finds the job and its result
    async with mcp.Client(build_server(settings)) as c:
        view = await call(c, "get_job", id=job.id)
        assert view["status"] == "succeeded" and view["result"] == {"answer": 42}
        assert [j["id"] for j in (await call(c, "list_jobs", kind="eval"))["jobs"]] == [job.id]
        assert (await call(c, "list_jobs", kind="train"))["jobs"] == []


async def test_cancel_in_process_job_and_busy_eval(client: mcp.Client, state: ServerState) -> None:
    started = anyio.Event()

    async def work(job: JobRecord) -> dict[str, Any]:
        started.set()
        await anyio.sleep(60)
        return {}

    job = state.start_background_job("eval", work, params={}, total=None)
    await started.wait()
    running = await call(client, "get_job", id=job.id)
    assert running["status"] == "running" and not running["done"] and job.id in running["next"]
    # a second eval, or a switch, while this one holds the model server: busy, naming it
    busy = await call_error(client, "run_eval_suite", baseline=True)
    assert "busy" in busy and job.id in busy
    assert job.id in await call_error(client, "switch_adapter", name=None)
    # sampling and improve rounds use the same model server: refused the same way
    for tool, args in (
        ("sample_model_answers", {"dataset": "d", "out": "s"}),
        ("improve_adapter", {"dataset": "d", "name": "n"}),
    ):
        refused = await call_error(client, tool, **args)
        assert "busy" in refused and job.id in refused

    await call(client, "cancel_job", id=job.id)
    with anyio.fail_after(5):
        while not (view := await call(client, "get_job", id=job.id))["done"]:
            await anyio.sleep(0.05)
    assert view["status"] == "cancelled"
    # cancelling again changes nothing
    assert (await call(client, "cancel_job", id=job.id))["status"] == "cancelled"


async def test_never_signals_another_servers_in_process_job(client: mcp.Client, state: ServerState) -> None:
    """An eval job's pid is the MCP server that runs it; cancelling from elsewhere must not SIGTERM it."""
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job = state.jobs.create("eval", params={})
        state.jobs.update(job.id, status="running", pid=other.pid)
        text = await call_error(client, "cancel_job", id=job.id)
        assert "another tooltune MCP server" in text and str(other.pid) in text
        assert other.poll() is None  # still alive: no signal was sent
        assert state.jobs.get(job.id).status == "running"
    finally:
        other.kill()
        other.wait()


async def test_server_shutdown_marks_running_in_process_jobs_failed(
    settings: Settings, state: ServerState
) -> None:
    async def work(job: JobRecord) -> dict[str, Any]:
        await anyio.sleep(60)
        return {}

    async with mcp.Client(build_server(settings, state=state)):
        job = state.start_background_job("eval", work, params={}, total=None)
        await anyio.sleep(0.05)
    record = state.jobs.get(job.id)
    assert record.status == "failed" and record.error == SERVER_STOPPED


# ---- evals and adapters: errors ----------------------------------------------------------------------


async def test_eval_and_adapter_errors(client: mcp.Client) -> None:
    assert "nothing to evaluate" in await call_error(client, "run_eval_suite", baseline=False)
    assert "no suite 'nope'" in await call_error(client, "run_eval_suite", suite="nope")
    for task_only in ({"temperature": 0.7}, {"lenient_tools": True}, {"repeat_guard": False}):
        said = await call_error(client, "run_eval_suite", suite="coding-tools", **task_only)
        assert f"{next(iter(task_only))} apply to task suites only" in said, said
    assert "no adapter named 'ghost'" in await call_error(client, "run_eval_suite", adapter="ghost")
    assert "no adapter named 'ghost'" in await call_error(client, "switch_adapter", name="ghost")
    assert "no eval run 'a1'" in await call_error(client, "compare_runs", a="a1", b="b1")
    listed = await call(client, "list_adapters")
    assert listed["adapters"] == [] and listed["served"] is None and listed["server_running"] is False
    assert "train_adapter" in listed["next"]


async def test_resource_not_found(client: mcp.Client) -> None:
    assert json.loads((await client.read_resource("tooltune://adapters")).contents[0].text) == []  # type: ignore[union-attr]
    for uri in (
        "tooltune://adapters/ghost",
        "tooltune://datasets/ghost",
        "tooltune://runs/run-x",
        "tooltune://reports/r-x",
        "tooltune://reports/r-x/vs/r-y",
    ):
        with pytest.raises(mcp.MCPError, match="ghost|run-x|r-x"):
            await client.read_resource(uri)


# ---- internal failures -------------------------------------------------------------------------------


async def test_internal_error_is_generic_and_logged_with_an_id(
    client: mcp.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import capture_logs

    import tooltune.server.tools.data as store  # where validate_dataset looks the dataset up

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret detail at /home/someone")

    monkeypatch.setattr(store, "load_dataset", broken)
    with capture_logs() as logs:
        text = await call_error(client, "validate_dataset", name="anything")
    match = re.search(r"internal error ([0-9a-f]{8}) in validate_dataset", text)
    assert match, text
    assert "secret" not in text
    # the details are logged (structlog -> stderr) under the same id
    logged = [e for e in logs if e.get("error_id") == match.group(1)]
    assert len(logged) == 1 and logged[0]["log_level"] == "error"
    assert "secret detail" in repr(logged[0]["exc_info"])


async def test_a_value_a_service_model_rejects_names_its_field(
    client: mcp.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a value the SDK's schema let through but a service's pydantic model refused (e.g. an override)
    import tooltune.server.tools.data as store  # where validate_dataset looks the dataset up
    from tooltune.data.generate_config import GenerateConfig

    def rejects(*_: Any, **__: Any) -> Any:
        return GenerateConfig(contrast_share=2)

    monkeypatch.setattr(store, "load_dataset", rejects)
    text = await call_error(client, "validate_dataset", name="anything")
    assert "invalid contrast_share: Input should be less than or equal to 1" in text
    assert "call validate_dataset again" in text and "internal error" not in text
