"""`tooltune mcp --http` behind a bearer token, as a real child process on 127.0.0.1: no token or a wrong
one gets 401, the right one gets the whole protocol; a token is generated (on stderr) when none is set;
binding beyond loopback needs a token chosen by the owner; starting programs is off by default."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import mcp
import pytest
from mcp import MCPError
from mcp.client.streamable_http import streamable_http_client
from test_mcp_tools import TOOLS

from tooltune.config import Settings
from tooltune.subprocs import free_port

pytestmark = pytest.mark.anyio

TOOLTUNE = str(Path(sys.executable).parent / "tooltune")
TOKEN = "test-token-" + "x" * 24
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _env(settings: Settings, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TOOLTUNE_MCP_TOKEN"}
    env.update(TOOLTUNE_CACHE=str(settings.cache_dir), HF_HUB_OFFLINE="1")
    if token is not None:
        env["TOOLTUNE_MCP_TOKEN"] = token
    return env


@contextmanager
def http_server(
    settings: Settings, tmp_path: Path, token: str | None, *extra: str
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """The server's URL, its stderr file and the process, once it listens."""
    port = free_port()
    err = tmp_path / f"stderr-{port}.txt"
    out = tmp_path / f"stdout-{port}.txt"
    with err.open("wb") as err_fh, out.open("wb") as out_fh:
        proc = subprocess.Popen(
            [TOOLTUNE, "mcp", "--workspace", str(tmp_path / "ws"), "--http", "--port", str(port), *extra],
            env=_env(settings, token),
            stdin=subprocess.DEVNULL,
            stdout=out_fh,
            stderr=err_fh,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "the HTTP server did not start listening"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", err, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert out.read_text() == ""  # the token (and anything else) never goes to stdout


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _leaves(e)
    else:
        yield exc


def client(url: str, token: str) -> mcp.Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return mcp.Client(streamable_http_client(url, http_client=http))


async def test_requests_without_the_right_token_get_401(settings: Settings, tmp_path: Path) -> None:
    with http_server(settings, tmp_path, TOKEN) as (url, err, _):
        async with httpx.AsyncClient(timeout=10) as h:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                            {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}):  # fmt: skip
                r = await h.post(url, json=INITIALIZE, headers={**ACCEPT, **headers})
                assert r.status_code == 401, (headers, r.status_code, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
            for method in ("GET", "DELETE"):
                r = await h.request(method, url, headers={**ACCEPT, "Authorization": "Bearer wrong"})
                assert r.status_code == 401, (method, r.status_code)
            ok = await h.post(url, json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200, ok.text

        with pytest.raises(Exception) as refused_info:  # noqa: PT011 — checked below
            with anyio.fail_after(30):
                async with client(url, "wrong-token") as c:
                    await c.list_tools()
        leaves = list(_leaves(refused_info.value))
        assert any(isinstance(e, MCPError) for e in leaves), leaves  # the 401, as the SDK reports it

        async with client(url, TOKEN) as c:
            tools = (await c.list_tools()).tools
            assert {t.name for t in tools} == TOOLS and all(t.output_schema for t in tools)
            jobs = await c.call_tool("list_jobs", {})
            assert not jobs.is_error and jobs.structured_content == {"jobs": []}
            missing = await c.call_tool("get_job", {"id": "eval-x"})
            assert missing.is_error and "list_jobs" in missing.content[0].text  # type: ignore[union-attr]

            # over HTTP, starting programs is off unless the owner said --allow-spawn
            pwned = tmp_path / "pwned"
            refused = await c.call_tool("generate_training_examples", {"mcp_server": f"touch {pwned}"})
            assert refused.is_error
            assert "tooltune mcp --http --allow-spawn" in refused.content[0].text  # type: ignore[union-attr]
            assert not pwned.exists()
        stderr = err.read_text()
        assert "Authorization: Bearer <token>" in stderr and "TOOLTUNE_MCP_TOKEN" in stderr
        assert TOKEN not in stderr  # a token the owner chose is not echoed


async def test_generated_token_is_printed_to_stderr(settings: Settings, tmp_path: Path) -> None:
    with http_server(settings, tmp_path, None) as (url, err, _):
        match = re.search(r"Authorization: Bearer (\S+?)`", err.read_text())
        assert match, err.read_text()
        token = match.group(1)
        assert len(token) >= 32
        async with client(url, token) as c:
            assert {t.name for t in (await c.list_tools()).tools} == TOOLS
        async with httpx.AsyncClient(timeout=10) as h:
            assert (await h.post(url, json=INITIALIZE, headers=ACCEPT)).status_code == 401


async def test_allow_spawn_over_http_is_the_owners_choice(settings: Settings, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    with http_server(settings, tmp_path, TOKEN, "--allow-spawn") as (url, _, _):
        async with client(url, TOKEN) as c:
            result = await c.call_tool("generate_training_examples", {"mcp_server": f"touch {ran}", "n": 5})
            assert result.is_error and "could not list tools" in result.content[0].text  # type: ignore[union-attr]
    assert ran.exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
def test_non_loopback_host_needs_an_explicit_token(settings: Settings, tmp_path: Path, host: str) -> None:
    """Refused before binding anything (so no address but 127.0.0.1 is ever touched here)."""
    proc = subprocess.run(
        [TOOLTUNE, "mcp", "--workspace", str(tmp_path / "ws"), "--http", "--host", host, "--port", "1"],
        env=_env(settings, None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "not loopback" in proc.stderr and "TOOLTUNE_MCP_TOKEN" in proc.stderr
    assert proc.stdout == ""


def test_token_rules(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tooltune.cli.mcp import _http_token
    from tooltune.errors import TooltuneError

    monkeypatch.delenv("TOOLTUNE_MCP_TOKEN", raising=False)
    for host in ("127.0.0.1", "::1", "localhost"):
        assert len(_http_token(host)) >= 32
    with pytest.raises(TooltuneError, match="not loopback"):
        _http_token("0.0.0.0")
    monkeypatch.setenv("TOOLTUNE_MCP_TOKEN", TOKEN)
    assert _http_token("0.0.0.0") == TOKEN  # an explicit token allows any host
    monkeypatch.setenv("TOOLTUNE_MCP_TOKEN", "short")
    with pytest.raises(TooltuneError, match="shorter than 16"):
        _http_token("127.0.0.1")
    assert capsys.readouterr().out == ""
