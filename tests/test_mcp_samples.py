"""sample_model_answers and pick_training_data in memory on the tiny model (a real mlx_lm.server child):
the loop an MCP client runs to learn from the model's own mistakes (issue 36)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from tooltune.config import Settings
from tooltune.data.datasets import generate_dataset
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.onpolicy import PreferencePair, decision_direction
from tooltune.server import build_server
from tooltune.server.state import ServerState
from tooltune.training.train_config import dataset_format
from tooltune.workspace import Workspace

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def call(client: mcp.Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args, progress_callback=None)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


async def test_sample_then_pick_pairs_and_rejection_data(settings: Settings, tiny_model: Path) -> None:
    ws = Workspace(settings.workspace).ensure()
    generate_dataset(ws, "d", ["builtin:coding"], GenerateConfig(n=40, seed=0), model_path=tiny_model)
    state = ServerState(settings)
    async with mcp.Client(build_server(settings, state=state)) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert {"k", "temperature", "limit"} <= set(tools["sample_model_answers"].input_schema["properties"])
        started = await call(
            c,
            "sample_model_answers",
            dataset="d",
            out="s",
            base_model=str(tiny_model),
            k=2,
            limit=6,
            max_tokens=24,
        )
        with anyio.fail_after(300):  # no progress token: the job id at once, then poll
            while not (job := await call(c, "get_job", id=started["job"]["id"]))["done"]:
                await anyio.sleep(0.3)
        assert job["status"] == "succeeded", job["error"]
        assert started["requests"] == 6 and job["result"]["samples"] == "s"
        counts = job["result"]["counts"]
        assert counts["samples"] == 2 * counts["requests"] and counts["requests"] >= 5
        assert sum(job["result"]["reasons"].values()) == counts["samples"] - counts["correct_samples"]

        pairs = await call(c, "pick_training_data", samples="s", method="pairs", out="p")
        assert (
            pairs["method"] == "pairs"
            and sum(v for k, v in pairs["picked"].items() if k != "skipped_unrenderable") > 0
        )
        assert "method='dpo'" in pairs["next"] and "init_adapter" not in pairs["next"]  # the base was sampled
        assert dataset_format(ws.datasets / "p") == "preference_pairs"
        # the requests every sample got right, kept beside the pairs for the answer check
        kept = (ws.datasets / "p" / "always_right.jsonl").read_text().splitlines()
        assert pairs["always_right"] == len(kept) == counts["requests_always_right"] > 0

        assert "balanced_decision" in tools["pick_training_data"].input_schema["properties"]
        # balanced, as many pairs as prefer a call to the model's text must prefer text to its call: what
        # is kept follows from the unbalanced pairs' directions (the seeded tiny model's pairs may all
        # push one way, and then nothing is left to pick)
        ways = Counter(decision_direction(p) for p in _pairs(ws.datasets / "p"))
        keep = 2 * min(ways["to_call"], ways["to_text"]) + ways[None]
        dropped = sum(ways.values()) - keep
        args = {"samples": "s", "method": "pairs", "out": "pb", "balanced_decision": True}
        if keep:
            bal = await call(c, "pick_training_data", **args)
            kept = Counter(decision_direction(p) for p in _pairs(ws.datasets / "pb"))
            assert kept["to_call"] == kept["to_text"] and sum(kept.values()) == keep
            assert bal["picked"].get("dropped_to_balance", 0) == dropped
        else:
            assert f"its {dropped} pairs all push the call decision one way" in await client_error(
                c, "pick_training_data", **args
            )
        refused = await client_error(
            c, "pick_training_data", samples="s", method="rejection", out="rb", balanced_decision=True
        )
        assert "method 'pairs'" in refused

        rej = await call(c, "pick_training_data", samples="s", method="rejection", out="r")
        assert sum(rej["counts"].values()) == counts["requests"]  # one answer per request: own or truth
        assert rej["next"] == "train_adapter(dataset='r', method='rejection')"  # the base was sampled
        first = json.loads((ws.datasets / "r" / "train.jsonl").read_text().splitlines()[0])
        assert first["meta"]["source"] in ("onpolicy:own", "onpolicy:truth")

        again = await client_error(c, "pick_training_data", samples="nope", method="pairs", out="x")
        assert "not found" in again

        # the whole loop as one job: a round sampled, trained and judged on held-out requests
        started = await call(
            c, "improve_adapter", dataset="d", name="imp", model=str(tiny_model), rounds=1, k=2, limit=6,
            iters=3, max_tokens=24,
        )  # fmt: skip
        assert started["kind"] == "improve"
        with anyio.fail_after(300):
            while not (job := await call(c, "get_job", id=started["id"]))["done"]:
                await anyio.sleep(0.3)
        assert job["status"] == "succeeded", job["error"]
        (r,) = job["result"]["rounds"]
        assert r["candidate"] == "imp-r1-adapter" and r["kept"] == (r["candidate_native"] > r["start_native"])
        assert job["result"]["best"] == ("imp-r1-adapter" if r["kept"] else None)
        assert job["progress"]["message"] == "done"
    assert state.model_server is None


def _pairs(folder: Path) -> list[PreferencePair]:
    return [
        PreferencePair.model_validate_json(line)
        for split in ("train", "valid", "test")
        for line in (folder / f"{split}.jsonl").read_text().splitlines()
    ]


async def client_error(client: mcp.Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error
    return result.content[0].text  # type: ignore[union-attr]
