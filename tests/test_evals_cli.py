"""The `tooltune eval` CLI against a real HTTP endpoint (a small starlette app on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tooltune import cli as tooltune_cli
from tooltune.config import Settings
from tooltune.data.similarity import default_bfcl_dir
from tooltune.evals.runner import list_runs
from tooltune.workspace import Workspace


async def chat(request: Request) -> JSONResponse:
    """Answers every case with a fenced-JSON read_file call: right for some cases, wrong for most."""
    await request.json()
    text = '```json\n{"name": "read_file", "arguments": {"path": "src/main.py"}}\n```'
    return JSONResponse(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )


@pytest.fixture
def endpoint() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not server.started:  # the port was free a moment ago; another process may have taken it
        assert t.is_alive() and time.monotonic() < deadline, f"the test endpoint did not start on port {port}"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    t.join(5)


@pytest.fixture(autouse=True)
def _restore_log_stream() -> Iterator[None]:
    """The CLI reconfigures structlog onto the *current* sys.stderr, which is pytest's per-test capture
    file; point it back at the real stderr afterwards so later tests don't log into a closed file."""
    yield
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))


def cli(*args: str) -> int:
    if "eval" not in tooltune_cli.app:  # main() registers the verbs; do it once per process
        tooltune_cli._register()
    result = tooltune_cli.app.meta(list(args), result_action="return_value")
    return result if isinstance(result, int) else 0


def test_eval_cli_run_compare_import(endpoint: str, settings: Settings, capsys: pytest.CaptureFixture[str]):
    assert cli("eval", "--base-url", endpoint, "--limit", "2", "--run-id", "a", "--concurrency", "2") == 0
    assert cli("eval", "--base-url", endpoint, "--limit", "2", "--run-id", "b") == 0
    out = capsys.readouterr().out
    assert "native 2/12" in out and "lenient 1/12" in out  # no_call cases pass natively only
    ws = Workspace(settings.workspace)
    assert [m.run_id for m in list_runs(ws)] == ["a", "b"]
    report = json.loads((ws.reports / "a" / "report.json").read_text())
    # simple-001 asks for src/main.py: the fenced answer passes leniently, never natively
    first = next(r for r in report["results"] if r["case_id"] == "simple-001")
    assert first["lenient"]["passed"] and first["native"]["reason"] == "unparsed_format"
    assert cli("eval", "compare", "a", "b") == 0
    assert "McNemar exact (native): 0 fixed, 0 regressed, p = 1" in capsys.readouterr().out
    assert (ws.reports / "b" / "vs-a.html").exists()
    bfcl = (default_bfcl_dir() or Path("bfcl-missing")) / "BFCL_v4_irrelevance.json"
    if bfcl.exists():
        assert cli("eval", "import-bfcl", str(bfcl), "--name", "irr") == 0
        assert (ws.evals / "suites" / "irr.jsonl").exists()
    # a bad suite path is a one-line error, exit code 2
    assert cli("eval", "--base-url", endpoint, "--suite", "nope.jsonl") == 2
    capsys.readouterr()
    assert cli("eval", "suites") == 0
    listed = capsys.readouterr().out.split()
    assert {"coding-tools", "issue-tracker", "notes-calendar", "coding-tasks"} <= set(listed)


@pytest.mark.slow
def test_eval_cli_names_both_runs_it_serves_itself(tiny_model: Path, settings: Settings) -> None:
    """--run-id reaches the runs when tooltune starts mlx_lm.server (baseline and adapter get suffixes)."""
    from test_adapters_registry import make_lora_adapter, record_for

    from tooltune.adapters.registry import AdapterRegistry

    ws = Workspace(settings.workspace).ensure()
    src = make_lora_adapter(tiny_model, settings.workspace.parent / "src")
    AdapterRegistry(ws).register("tiny-a", src, record_for(tiny_model))
    args = ["eval", "--adapter", "tiny-a", "--baseline", "--limit", "1", "--max-tokens", "4"]
    assert cli(*args, "--run-id", "pair") == 0
    runs = {m.run_id: m for m in list_runs(ws)}
    assert set(runs) == {"pair-baseline", "pair-adapter"}
    assert runs["pair-adapter"].adapter == "tiny-a" and runs["pair-baseline"].adapter is None
    assert cli(*args, "--run-id", "pair") == 0  # finished runs are reused, not run again
    assert {m.run_id for m in list_runs(ws)} == {"pair-baseline", "pair-adapter"}


def test_eval_cli_shares_a_run_between_base_urls_and_imports_what_it_can(
    endpoint: str, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    second = endpoint.rstrip("/") + "/"  # the same server under a second URL: two endpoints to the runner
    assert cli("eval", "--base-url", endpoint, "--base-url", second, "--limit", "1", "--run-id", "s") == 0
    report = json.loads((Workspace(settings.workspace).reports / "s" / "report.json").read_text())
    assert report["meta"]["shard_urls"] == [endpoint, second] and len(report["results"]) == 6
    q = tmp_path / "BFCL_v4_irrelevance.json"
    row = {"id": "irrelevance_0", "question": [[{"role": "user", "content": "hi"}]], "function": []}
    q.write_text(json.dumps(row) + "\n{broken\n")
    capsys.readouterr()
    assert cli("eval", "import-bfcl", str(q), "--name", "irr2") == 0
    captured = capsys.readouterr()
    assert "irr2: 1 cases" in captured.out
    assert (
        "1 case(s) skipped" in captured.err and "BFCL_v4_irrelevance.json:2: not valid JSON" in captured.err
    )


def test_import_bfcl_prints_the_skipped_case_ids_and_the_answers_it_changed(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = {"type": "dict", "properties": {"a_start": {"type": "string"}, "out": {"type": "array"}}}
    fn = {"name": "log_run", "parameters": {"type": "dict", "properties": {"record": record}}}
    q = tmp_path / "BFCL_v4_odd.json"
    rows = [
        {"id": f"odd_{i}", "question": [[{"role": "user", "content": "q"}]], "function": [fn]}
        for i in range(3)
    ]
    q.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = {
        "odd_0": {"record": [{"a_start": [], "out": [["x"]]}]},  # kept: BFCL scores it (never passes)
        "odd_1": {"record": [{"a_start": 5, "out": [["x"]]}]},  # cannot be scored: skipped
        "odd_2": {"record": [{"out": [["x"]]}], "verbose": ["", True]},  # off-schema, optional: dropped
    }
    (tmp_path / "possible_answer").mkdir()
    (tmp_path / "possible_answer" / q.name).write_text(
        "".join(json.dumps({"id": k, "ground_truth": [{"log_run": v}]}) + "\n" for k, v in answers.items())
    )
    capsys.readouterr()
    assert cli("eval", "import-bfcl", str(q), "--name", "odd") == 0
    out, err = capsys.readouterr()
    assert "suite odd: 2 cases {'odd': 2}" in out
    assert "1 case(s) skipped:" in err and "BFCL_v4_odd.json:2 (odd_1): " in err and "'a_start'" in err
    assert (
        "1 answer(s) imported with a change" in err and "BFCL_v4_odd.json:3 (odd_2): answer parameter" in err
    )
    suite = (Workspace(settings.workspace).evals / "suites" / "odd.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in suite] == ["odd_0", "odd_2"]
