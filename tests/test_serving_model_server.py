"""ModelServer against a real mlx_lm.server child on the tiny model: start, crash, switch, verify."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from test_adapters_registry import make_lora_adapter, record_for

from tooltune.adapters.active import read_active
from tooltune.adapters.registry import AdapterMismatchError, AdapterRegistry, CorruptAdapterError
from tooltune.config import Settings
from tooltune.errors import ModelNotFoundError
from tooltune.serving.model_server import (
    ModelServer,
    ModelServerCrashedError,
    ModelServerError,
    ModelServerPair,
    ServedModelMismatchError,
    ServerBusyError,
)
from tooltune.workspace import Workspace

pytestmark = pytest.mark.anyio
NO_EOS = {"0": -100.0, "2": -100.0}  # keep the random tiny model generating until max_tokens


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def shared(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One workspace for the module: adapters registered once, probes computed once (they're cached)."""
    root = tmp_path_factory.mktemp("ms")
    settings = Settings.load(workspace=root / "ws", cache_dir=root / "cache")
    registry = AdapterRegistry(Workspace(settings.workspace).ensure())
    registry.register("a1", make_lora_adapter(tiny_model, root / "src-a1", seed=1), record_for(tiny_model))
    registry.register("a2", make_lora_adapter(tiny_model, root / "src-a2", seed=2), record_for(tiny_model))
    foreign = record_for(tiny_model).model_copy(
        update={"base_model": "some-7b", "base_model_fingerprint": "0" * 16}
    )
    registry.register("foreign", root / "src-a1", foreign)
    return settings


def registry_of(settings: Settings) -> AdapterRegistry:
    return AdapterRegistry(Workspace(settings.workspace))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


@pytest.mark.slow
async def test_start_ready_stop(tiny_model: Path, shared: Settings) -> None:
    server = ModelServer(tiny_model, settings=shared, adapter=None)
    state = await server.start()
    pid = server.pid
    assert pid is not None and alive(pid)
    assert state.verified and state.adapter is None and state.port == server.port
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.model_name == str(tiny_model.resolve()) and server.extra_body == {}
    async with httpx.AsyncClient() as client:  # crashes unless $HF_HOME/hub exists
        models = await client.get(f"{server.base_url}/models")
    assert models.status_code == 200
    reply = await server.chat([{"role": "user", "content": "hi"}], max_tokens=3, temperature=0.0)
    assert reply["usage"]["completion_tokens"] >= 1
    await server.stop()
    assert not alive(pid)
    await server.stop()  # idempotent


@pytest.mark.slow
async def test_sigkill_mid_request_restarts_and_retries(tiny_model: Path, shared: Settings) -> None:
    async with ModelServer(tiny_model, settings=shared, adapter="a1") as server:
        first_pid = server.pid
        assert first_pid is not None
        result: dict = {}

        async def long_request() -> None:
            # 4000 tokens take ~5 s on this CPU: the kill below lands within a poll of their start
            result.update(
                await server.chat([{"role": "user", "content": "hi"}], max_tokens=4000, logit_bias=NO_EOS)
            )

        child = server._child
        assert child is not None
        child.tail.clear()
        async with anyio.create_task_group() as tg:
            tg.start_soon(long_request)
            # not a fixed sleep (a fast box once finished before it, a slow one may not have started):
            # mlx_lm.server logs the request's 200 when the prompt is processed and generation begins,
            # and writes the body only when all 4000 tokens are done, so kill once that line shows
            with anyio.fail_after(60):
                while not any('"POST /v1/chat/completions' in line for line in list(child.tail)):
                    await anyio.sleep(0.01)
            assert not result, "the request finished before the kill: give it more tokens"
            os.kill(first_pid, signal.SIGKILL)
        assert result["usage"]["completion_tokens"] == 4000
        assert server.restart_count == 1
        assert server.pid != first_pid and not alive(first_pid)
        assert server.served.adapter == "a1" and server.served.verified


@pytest.mark.slow
async def test_a_connection_a_live_server_dropped_is_sent_again(
    tiny_model: Path, shared: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # on one H100, 32 requests at once against mlx_lm.server (listen backlog 5) lost 20 to ReadError
    # at the start while the server lived on; a live server's dropped connection is now retried
    async with ModelServer(tiny_model, settings=shared, adapter=None) as server:
        real_post = server._post
        failures = [httpx.ReadError("reset"), httpx.ConnectError("refused")]
        calls = 0

        async def flaky_post(child: Any, body: dict, timeout: float | None = None) -> dict:
            nonlocal calls
            calls += 1
            if failures:
                raise failures.pop(0)
            return await real_post(child, body, timeout)

        monkeypatch.setattr(server, "_post", flaky_post)
        reply = await server.chat([{"role": "user", "content": "hi"}], max_tokens=2, temperature=0.0)
        assert reply["usage"]["completion_tokens"] >= 1 and calls == 3 and server.restart_count == 0
        failures[:] = [httpx.ReadError("reset")] * 4  # one more than the retries: the error names it
        with pytest.raises(ModelServerError, match="ReadError: reset"):
            await server.chat([{"role": "user", "content": "hi"}], max_tokens=2)
        failures[:] = [httpx.ReadTimeout("slow")]  # a timeout is not a dropped connection: no retry
        with pytest.raises(ModelServerError, match="ReadTimeout"):
            await server.chat([{"role": "user", "content": "hi"}], max_tokens=2)
        assert not failures


@pytest.mark.slow
async def test_crash_loop_gives_up_with_last_output(tiny_model: Path, shared: Settings) -> None:
    async with ModelServer(tiny_model, settings=shared, max_restarts=1) as server:
        for _ in range(2):
            pid = server.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await anyio.sleep(0.3)
            if _ == 0:
                await server.chat([{"role": "user", "content": "hi"}], max_tokens=1)
        with pytest.raises(ModelServerCrashedError, match="giving up"):
            await server.chat([{"role": "user", "content": "hi"}], max_tokens=1)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["per_request", "restart"])
async def test_switch_changes_fingerprint_and_back(tiny_model: Path, shared: Settings, strategy: str) -> None:
    probe = [{"role": "user", "content": "Read the file src/main.py"}]
    async with ModelServer(tiny_model, settings=shared, strategy=strategy) as server:  # type: ignore[arg-type]

        async def answer() -> list[int]:
            reply = await server.chat(probe, max_tokens=6, temperature=0.0, top_logprobs=3, logit_bias=NO_EOS)
            return [
                max(e["top_logprobs"], key=lambda t: t["logprob"])["id"]
                for e in reply["choices"][0]["logprobs"]["content"]
            ]

        base = await answer()
        state = await server.switch_adapter("a1")
        assert state.verified and state.adapter == "a1" and state.distinguishable
        assert state.adapter_fingerprint == registry_of(shared).get("a1").adapter_fingerprint
        assert server.extra_body == {"adapters": str(registry_of(shared).path("a1").resolve())}
        with_adapter = await answer()
        assert with_adapter != base
        active = read_active(Workspace(shared.workspace))
        assert active is not None and active.adapter == "a1"
        assert registry_of(shared).get("a1").probe is not None  # recorded after the verified switch

        if strategy == "per_request":  # a second adapter: different again (restart: keep the test short)
            state = await server.switch_adapter("a2")
            assert state.adapter == "a2" and await answer() not in (base, with_adapter)

        back = await server.switch_adapter(None)
        assert back.verified and back.adapter is None and server.extra_body == {}
        assert await answer() == base
        active = read_active(Workspace(shared.workspace))
        assert active is not None and active.adapter is None

        # a temporary switch (an eval's) serves and verifies the adapter but leaves active.json alone
        temp = await server.switch_adapter("a1", record=False)
        assert temp.verified and temp.adapter == "a1" and await answer() == with_adapter
        assert read_active(Workspace(shared.workspace)) == active
        # ...and a recorded switch to the adapter a temporary one left serving still records it (the demo
        # evaluates the adapter, then switches to it for good)
        kept = await server.switch_adapter("a1")
        assert kept.adapter == "a1"
        recorded = read_active(Workspace(shared.workspace))
        assert recorded is not None and recorded.adapter == "a1"
        assert recorded.adapter_fingerprint == registry_of(shared).get("a1").adapter_fingerprint
        await server.switch_adapter(None, record=False)


@pytest.mark.slow
async def test_server_ignoring_the_adapter_is_caught(
    tiny_model: Path, shared: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlx_lm.server drops a request's adapter when "model" is its default: the probe must notice."""
    async with ModelServer(tiny_model, settings=shared, strategy="per_request") as server:
        before = read_active(Workspace(shared.workspace))
        monkeypatch.setattr(ModelServer, "model_name", property(lambda self: "default_model"))
        with pytest.raises(ServedModelMismatchError, match="resembles the base model") as err:
            await server.switch_adapter("a1")
        # the message says how strict the check was and how far the answers agree, to tell noise from a
        # wrong model
        assert re.search(
            r"tolerance 0\.05 for float32 weights; its first \d+ of \d+ greedy tokens", str(err.value)
        )
        assert server.served.adapter is None and server.extra_body == {}
        assert read_active(Workspace(shared.workspace)) == before


@pytest.mark.slow
async def test_bad_switches_keep_serving_the_old_adapter(
    tiny_model: Path, shared: Settings, tmp_path: Path
) -> None:
    async with ModelServer(tiny_model, settings=shared, adapter="a2") as server:
        with pytest.raises(AdapterMismatchError, match="some-7b"):
            await server.switch_adapter("foreign")
        # an adapter corrupted after registration
        registry = registry_of(shared)
        src = make_lora_adapter(tiny_model, tmp_path / "c", seed=3)
        registry.register("corrupt", src, record_for(tiny_model))
        weights = registry.path("corrupt") / "adapters.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
        with pytest.raises(CorruptAdapterError, match="adapters.safetensors"):
            await server.switch_adapter("corrupt")
        state = await server.verify()
        assert state.adapter == "a2" and state.verified
        registry.delete("corrupt")


@pytest.mark.slow
@pytest.mark.parametrize("side_by_side", [True, False])
async def test_restart_switch_failure_keeps_or_restores_the_old_child(
    tiny_model: Path, shared: Settings, monkeypatch: pytest.MonkeyPatch, side_by_side: bool
) -> None:
    """A new child that dies while loading: side by side the old one never stopped; in place it is
    started again (rolled back) before the error reaches the caller."""
    import tooltune.serving.model_server as ms

    real_wait_ready = ModelServer._wait_ready

    async def crash_on_a1(self: ModelServer, child: object, target: object) -> None:
        if getattr(target, "name", None) == "a1":
            raise ModelServerCrashedError("simulated: the new child died while loading the adapter")
        await real_wait_ready(self, child, target)  # type: ignore[arg-type]

    async with ModelServer(tiny_model, settings=shared, strategy="restart") as server:
        before = read_active(Workspace(shared.workspace))
        monkeypatch.setattr(ms, "fits_in_memory", lambda *a, **k: side_by_side)
        monkeypatch.setattr(ModelServer, "_wait_ready", crash_on_a1)
        with pytest.raises(ModelServerCrashedError, match="simulated"):
            await server.switch_adapter("a1")
        monkeypatch.undo()
        assert server.pid is not None and alive(server.pid)
        state = await server.verify()
        assert state.adapter is None and state.verified and server.extra_body == {}
        assert read_active(Workspace(shared.workspace)) == before


@pytest.mark.slow
async def test_pinned_server_refuses_or_waits(tiny_model: Path, shared: Settings) -> None:
    async with ModelServer(tiny_model, settings=shared) as server:
        order: list[str] = []
        async with anyio.create_task_group() as tg:
            async with server.pinned() as state:
                assert state.adapter is None
                with pytest.raises(ServerBusyError, match="pinned"):
                    await server.switch_adapter("a1", wait=False)

                async def switch() -> None:
                    await server.switch_adapter("a1")
                    order.append("switched")

                tg.start_soon(switch)
                await anyio.sleep(0.5)
                order.append("released")
        assert order == ["released", "switched"]
        assert server.served.adapter == "a1"


@pytest.mark.slow
async def test_start_failures_are_clear(tiny_model: Path, shared: Settings, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        ModelServer(tmp_path / "nope", settings=shared)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ModelServerError, match=f"port {port} .* in use"):
            await ModelServer(tiny_model, settings=shared, port=port).start()
    crashing = ModelServer(tiny_model, settings=shared, extra_args=["--no-such-flag"])
    with pytest.raises(ModelServerCrashedError, match="no-such-flag"):
        await crashing.start()
    assert crashing.pid is None


@pytest.mark.slow
async def test_pair_serves_baseline_and_adapter_side_by_side(tiny_model: Path, shared: Settings) -> None:
    before = read_active(Workspace(shared.workspace))
    async with ModelServerPair(tiny_model, settings=shared, adapter="a1") as pair:
        assert pair.baseline.port != pair.adapter.port
        assert pair.baseline.served.adapter is None and pair.adapter.served.adapter == "a1"
        assert pair.baseline.served.probe_output != pair.adapter.served.probe_output
    assert read_active(Workspace(shared.workspace)) == before


async def test_from_active_serves_the_recorded_selection(tiny_model: Path, shared: Settings) -> None:
    from tooltune.adapters.active import ActiveSelection, write_active

    ws = Workspace(shared.workspace)
    write_active(ws, ActiveSelection(model=str(tiny_model), adapter="a1"))
    server = ModelServer.from_active(shared)
    assert server.model_path == tiny_model.resolve()
    assert server._initial_adapter == "a1"


@pytest.mark.slow
async def test_a_started_server_records_what_from_active_serves_next(
    tiny_model: Path, shared: Settings
) -> None:
    """active.json as the server writes it (after verifying what it serves), not as a test wrote it."""
    ws = Workspace(shared.workspace)
    (ws.root / "active.json").unlink(missing_ok=True)
    async with ModelServer(tiny_model, settings=shared, adapter="a1") as server:
        model_fingerprint = server.model_fingerprint
    written = json.loads((ws.root / "active.json").read_text())
    assert written["adapter"] == "a1" and written["model"] == str(tiny_model.resolve())
    assert written["model_fingerprint"] == model_fingerprint
    assert written["adapter_fingerprint"] == registry_of(shared).get("a1").adapter_fingerprint
    again = ModelServer.from_active(shared)
    assert again.model_path == tiny_model.resolve() and again._initial_adapter == "a1"
