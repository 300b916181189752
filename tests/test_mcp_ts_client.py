"""`tooltune mcp` over stdio, driven by the official TypeScript SDK (@modelcontextprotocol/sdk, the
version pinned in tests/ts_client/package-lock.json): initialize, list tools (whose output schemas the
SDK compiles with ajv), good calls (validated against those schemas) and bad calls (tool errors).

tests/ts_client/node_modules is used when present; otherwise `npm ci` installs the locked packages into a
cache folder (TOOLTUNE_TS_CLIENT_CACHE, default ~/.cache/tooltune-tests/ts_client-<lock hash>) once. No
node/npm, or no network for that install: skipped, saying so."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_mcp_tools import TOOLS

from tooltune.config import Settings

TS_DIR = Path(__file__).parent / "ts_client"
SDK = Path("node_modules/@modelcontextprotocol/sdk/package.json")
NETWORK_ERRORS = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|offline|proxy",
    re.IGNORECASE,
)


def _cache_root() -> Path:
    if env := os.environ.get("TOOLTUNE_TS_CLIENT_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tooltune-tests"


def _install(node: str) -> Path:
    """A folder with client.mjs and the locked node_modules: the repo's own, else an npm ci'd cache."""
    if (TS_DIR / SDK).is_file():
        return TS_DIR
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed, and tests/ts_client/node_modules is missing")
    manifest = (TS_DIR / "package.json").read_bytes() + (TS_DIR / "package-lock.json").read_bytes()
    target = _cache_root() / f"ts_client-{hashlib.sha256(manifest).hexdigest()[:16]}"
    if not (target / SDK).is_file():
        staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(TS_DIR / name, staging / name)
        try:
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip("npm ci of tests/ts_client timed out after 300 s (no network to the npm registry?)")
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = (proc.stderr or proc.stdout)[-2000:]
            if NETWORK_ERRORS.search(tail):
                pytest.skip(f"npm ci of tests/ts_client could not reach the npm registry: {tail.strip()}")
            pytest.fail(f"npm ci of tests/ts_client failed (exit {proc.returncode}):\n{tail}")
        try:
            staging.rename(target)
        except OSError:  # another test process installed it first
            shutil.rmtree(staging, ignore_errors=True)
    shutil.copy2(TS_DIR / "client.mjs", target / "client.mjs")  # always this checkout's script
    return target


@pytest.fixture(scope="module")
def ts_client() -> tuple[str, Path]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the TypeScript SDK test needs node >= 18 and npm)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    major = re.match(r"v(\d+)", version)
    if major is None or int(major.group(1)) < 18:
        pytest.skip(f"node {version or '?'} is too old for @modelcontextprotocol/sdk (needs >= 18)")
    return node, _install(node) / "client.mjs"


@pytest.mark.timeout(600)  # its fixture may spend up to 300 s in `npm ci` before it skips
def test_typescript_sdk_client_over_stdio(
    ts_client: tuple[str, Path], settings: Settings, tmp_path: Path
) -> None:
    node, script = ts_client
    env = {
        **os.environ,
        "TOOLTUNE_HOME": str(tmp_path / "ts-ws"),
        "TOOLTUNE_CACHE": str(settings.cache_dir),
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.run(
        [node, str(script), sys.executable, "-m", "tooltune", "mcp"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no summary from the TypeScript client (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(lines[-1])
    assert "fatal" not in summary, f"{summary['fatal']}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert summary["server"]["name"] == "tooltune"
    assert set(summary["tools"]) == TOOLS and len(summary["tools"]) == len(TOOLS)
    assert set(summary["withOutputSchema"]) == TOOLS

    # good input: results that passed the SDK's own validation against each tool's output schema
    adapters = summary["list_adapters"]
    assert not adapters["isError"], adapters["text"]
    assert adapters["structuredContent"]["adapters"] == [] and adapters["structuredContent"]["next"]
    jobs = summary["list_jobs"]
    assert not jobs["isError"] and jobs["structuredContent"] == {"jobs": []}

    # bad input: tool errors an agent can act on
    missing = summary["get_job_missing"]
    assert missing["isError"] and "train-nope" in missing["text"] and "list_jobs" in missing["text"]
    no_tools = summary["generate_no_tools"]
    assert no_tools["isError"] and "no tools given" in no_tools["text"] and "builtin" in no_tools["text"]

    # ajv prints "unknown format ... ignored in schema" for formats it does not know (e.g. "path")
    about_schemas = [w for w in summary["warnings"] if re.search(r"schema|format", w, re.IGNORECASE)]
    assert about_schemas == [], about_schemas
    assert (tmp_path / "ts-ws" / "jobs").is_dir()  # it really ran on the temp workspace
