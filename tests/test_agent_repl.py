"""The interactive session driven through a pseudo-terminal, plus live runs on the tiny model.

The offline REPL test runs ``run_repl`` with a FunctionModel in a child process attached to a pty,
so input, approval prompts, streaming output and saving on exit are exercised as a user sees them.
The slow tests start a real ``mlx_lm.server`` (via ModelServer) on the tiny random model: its answers
are garbage, so they check the plumbing — requests happen, answers come back, adapters switch and
are verified — not quality.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tooltune.config import Settings

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class PtyProcess:
    """A child on a pseudo-terminal with expect/send, stdlib only."""

    def __init__(
        self, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.buffer = ""
        self.seen = ""

    def expect(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buffer)
            if m:
                self.buffer = self.buffer[m.end() :]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {pattern!r}; output so far:\n{self.seen[-3000:]}"
                )
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536).decode("utf-8", errors="replace")
                except OSError:  # child closed the pty
                    chunk = ""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"child exited while waiting for {pattern!r}:\n{self.seen[-3000:]}")
                clean = ANSI.sub("", chunk)
                self.buffer += clean
                self.seen += clean

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)


REPL_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    import anyio
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel
    from rich.console import Console

    from tooltune.agent.agent import build_agent
    from tooltune.agent.session import AgentSession, console_approver, run_repl
    from tooltune.errors import TooltuneError

    root, sessions = Path(sys.argv[1]), Path(sys.argv[2])

    class FakeServer:
        base_url, model_name, extra_body = "http://unused/v1", "tiny", {}

        def __init__(self):
            self.adapter = None

        @property
        def served(self):
            return SimpleNamespace(model_path="/models/tiny", adapter=self.adapter, verified=True)

        async def switch_adapter(self, name):
            if name == "missing":
                raise TooltuneError("unknown adapter 'missing'; registered: a1")
            self.adapter = name

    def reply(messages, info):
        prompt = [p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts
                  if type(p).__name__ == "UserPromptPart"][-1]
        returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)] if messages else []
        if returns:
            return ModelResponse(parts=[TextPart("tool said: " + returns[-1].model_response_str()[:40])])
        if "read" in prompt:
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": "hello.txt"})])
        if "write" in prompt:
            args = {"path": "out.txt", "content": "written"}
            return ModelResponse(parts=[ToolCallPart("write_file", args)])
        if "loop" in prompt:
            return ModelResponse(parts=[TextPart("Listing it.\\n" + "list_dir\\n" * 171)])
        return ModelResponse(parts=[TextPart("plain answer")])

    async def stream(messages, info):
        for part in reply(messages, info).parts:
            if isinstance(part, TextPart):
                for i in range(0, len(part.content), 5):
                    yield part.content[i : i + 5]
            else:
                yield {0: __import__("pydantic_ai.models.function", fromlist=["x"]).DeltaToolCall(
                    name=part.tool_name, json_args=part.args_as_json_str())}

    console = Console(width=120)
    agent = build_agent(root=root, allow_write=True, approve=console_approver(console, input))
    session = AgentSession(agent, server=FakeServer(), model=FunctionModel(reply, stream_function=stream))
    anyio.run(lambda: run_repl(session, console=console, sessions_dir=sessions))
    """
)


def test_repl_in_a_pty(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the file\n")
    script = tmp_path / "repl.py"
    script.write_text(REPL_SCRIPT)
    sessions = tmp_path / "sessions"
    child = PtyProcess(
        [sys.executable, str(script), str(root), str(sessions)], env=dict(os.environ, COLUMNS="120")
    )
    try:
        child.expect(r"you> ", timeout=60)
        child.send("/tools")
        listing = child.expect(r"you> ").string
        for name in ("read_file", "write_file", "git_diff"):
            assert name in listing
        child.send("please read hello.txt")
        child.expect(r"→ read_file")
        child.expect(r"✓ hello from the file")
        child.expect(r"tool said: hello from the file")
        child.expect(r"you> ")
        child.send("now write something")
        child.expect(r"allow write_file .*out\.txt.*\[y/N\]")
        child.send("y")
        child.expect(r"✓ created out\.txt")
        child.expect(r"you> ")
        assert (root / "out.txt").read_text() == "written"
        child.send("write again")
        child.expect(r"\[y/N\]")
        child.send("n")
        child.expect(r"✗ write_file refused: the user declined")
        child.expect(r"you> ")
        child.send("please loop")
        child.expect(r"note: 1 answer\(s\) cut off because the model kept repeating itself")
        child.expect(r"you> ")
        child.send("/adapter a1")
        child.expect(r"serving model=tiny adapter=a1 verified")
        child.send("/adapter missing")
        child.expect(r"switch failed: unknown adapter 'missing'")
        child.send("/adapter none")
        child.expect(r"adapter=none \(baseline\) verified")
        child.send("/history")
        child.expect(r"you: please read hello\.txt")
        child.expect(r"→ read_file")
        child.send("/quit")
        saved = child.expect(r"session saved to (\S+\.jsonl)").group(1)
        assert child.close() == 0
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
    lines = Path(saved).read_text().splitlines()
    assert Path(saved).parent == sessions
    assert len(lines) >= 9  # three turns with tool calls: request/response pairs
    assert any("hello from the file" in line for line in lines)


# -- live: real mlx_lm.server on the tiny model -------------------------------------------------------


def _make_adapter(model_path: Path, out_dir: Path) -> Path:
    """An mlx-lm LoRA adapter with random non-zero lora_b, so it visibly changes the model's output."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.lora import LoRALinear
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(model_path))
    model.freeze()
    params = {"rank": 4, "scale": 20.0, "dropout": 0.0}
    linear_to_lora_layers(model, 2, params)
    mx.random.seed(7)
    for _, module in model.named_modules():
        if isinstance(module, LoRALinear):
            module.lora_b = mx.random.normal(module.lora_b.shape) * 0.5
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(
        str(out_dir / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters()))
    )
    config = {"model": str(model_path), "fine_tune_type": "lora", "num_layers": 2, "lora_parameters": params}
    (out_dir / "adapter_config.json").write_text(json.dumps(config))
    return out_dir


def _cli_env(settings: Settings) -> dict[str, str]:
    return dict(
        os.environ,
        TOOLTUNE_HOME=str(settings.workspace),
        TOOLTUNE_CACHE=str(settings.cache_dir),
        HF_HUB_OFFLINE="1",
        COLUMNS="160",
    )


@pytest.mark.slow
def test_ask_cli_live_on_tiny_model(tiny_model: Path, settings: Settings, tmp_path: Path) -> None:
    pytest.importorskip("tooltune.serving.model_server")
    root = tmp_path / "project"
    root.mkdir()
    (root / "main.py").write_text("print('hi')\n")
    tooltune = Path(sys.executable).parent / "tooltune"
    proc = subprocess.run(
        [str(tooltune), "ask", "Read main.py", "--model", str(tiny_model), "--root", str(root)]
        + ["--json", "--max-steps", "2", "--lenient-tools"],
        capture_output=True,
        text=True,
        env=_cli_env(settings),
        timeout=240,
    )
    result = json.loads(proc.stdout)  # stdout is only the JSON: logs went to stderr
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert result["prompt"] == "Read main.py"
    assert result["served"] == {"model": tiny_model.name, "adapter": None, "verified": True}
    assert result["usage"]["requests"] >= 1
    if proc.returncode == 0:
        assert isinstance(result["answer"], str)
    else:  # random weights may loop on garbage tool calls until --max-steps: that must be reported
        assert result["error"]
    assert "mlx_server_started" in proc.stderr


@pytest.mark.slow
def test_serve_repl_live_with_adapter_switch(tiny_model: Path, settings: Settings, tmp_path: Path) -> None:
    pytest.importorskip("tooltune.serving.model_server")
    from tooltune.adapters.registry import AdapterRecord, AdapterRegistry
    from tooltune.models.resolve import fingerprint_model
    from tooltune.workspace import Workspace

    src = _make_adapter(tiny_model, tmp_path / "adapter-src")
    AdapterRegistry(Workspace(settings.workspace).ensure()).register(
        "a1",
        src,
        AdapterRecord(
            name="a1", base_model=str(tiny_model), base_model_fingerprint=fingerprint_model(tiny_model)
        ),
    )
    root = tmp_path / "project"
    root.mkdir()
    tooltune = Path(sys.executable).parent / "tooltune"
    child = PtyProcess(
        [str(tooltune), "serve", "--model", str(tiny_model), "--root", str(root), "--max-steps", "2"],
        env=_cli_env(settings),
    )
    try:
        child.expect(r"serving model=\S+ adapter=none \(baseline\) verified", timeout=180)
        child.expect(r"you> ")
        child.send("/tools")
        assert "run_tests" in child.expect(r"you> ").string
        child.send("/adapter a1")
        child.expect(r"serving model=\S+ adapter=a1 verified", timeout=180)
        child.expect(r"you> ")
        child.send("hello")
        child.expect(r"agent> ")
        child.expect(r"you> ", timeout=180)  # the garbage answer streamed and the turn ended
        child.send("/adapter none")
        child.expect(r"adapter=none \(baseline\) verified", timeout=180)
        child.send("/quit")
        saved = child.expect(r"session saved to (\S+\.jsonl)").group(1)
        assert child.close(timeout=60) == 0
    finally:
        if child.proc.poll() is None:
            child.proc.terminate()
            child.proc.wait(timeout=30)
    assert Path(saved).parent == settings.workspace / "sessions"
    assert Path(saved).read_text().count("\n") >= 2
