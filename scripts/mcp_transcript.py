"""Record a real MCP session with `tooltune mcp` (stdio) as Markdown: generate → train → eval → switch.

Spawns `tooltune mcp --workspace WS` exactly as a coding agent would, drives the whole loop, and prints
each tool call, the progress notifications it received and the structured result (long lists trimmed).
docs/MCP.md's transcript comes from this script. Without --base-model it builds the tiny test model (random
weights: the numbers show the plumbing, not learning).

    python scripts/mcp_transcript.py --out /tmp/transcript.md [--base-model PATH] [--iters 6] [--limit 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp
from mcp import StdioServerParameters

MAX_LIST = 4
MAX_STR = 160
MAX_DEPTH = 4
DROP = {
    "checks",
    "created",
    "started",
    "finished",
    "run_dir",
    "adapter_path",
    "params",
    "hash",
    "resumed_from",
}


def trim(value: Any, depth: int = 0) -> Any:
    """Keep a transcript readable: bookkeeping keys dropped, long lists and strings cut, deep objects
    written on one line, floats rounded. Everything shown is what the server returned."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return json.dumps(trim(value, 0), separators=(", ", ": "))
        return {k: trim(v, depth + 1) for k, v in value.items() if k not in DROP}
    if isinstance(value, list):
        head = [trim(v, depth + 1) for v in value[:MAX_LIST]]
        return head + ([f"… {len(value) - MAX_LIST} more"] if len(value) > MAX_LIST else [])
    if isinstance(value, str) and len(value) > MAX_STR:
        return value[:MAX_STR] + "…"
    if isinstance(value, float):
        return round(value, 3)
    return value


class Recorder:
    def __init__(self, client: mcp.Client) -> None:
        self.client = client
        self.lines: list[str] = []

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        progress: list[str] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(
                f"{done:g}/{total:g} {message or ''}".strip() if total else f"{done:g} {message or ''}"
            )

        t0 = time.monotonic()
        result = await self.client.call_tool(tool, args, progress_callback=on_progress)
        seconds = time.monotonic() - t0
        self.lines.append(f"### `{tool}` ({seconds:.1f} s)\n")
        self.lines.append("```json\n" + json.dumps(args, indent=2) + "\n```\n")
        if progress:
            shown = progress if len(progress) <= 12 else progress[:6] + ["…"] + progress[-5:]
            self.lines.append("progress notifications:\n\n```\n" + "\n".join(shown) + "\n```\n")
        if result.is_error:
            text = result.content[0].text  # type: ignore[union-attr]
            self.lines.append(f"error: `{text}`\n")
            raise SystemExit(f"{tool} failed: {text}")
        data = result.structured_content or {}
        self.lines.append("result:\n\n```json\n" + json.dumps(trim(data), indent=2, default=str) + "\n```\n")
        return data


async def session(ws: Path, base_model: str, iters: int, limit: int, env: dict[str, str]) -> str:
    tooltune = str(Path(sys.executable).parent / "tooltune")
    params = StdioServerParameters(command=tooltune, args=["mcp", "--workspace", str(ws)], env=env)
    async with mcp.Client(params) as client:
        rec = Recorder(client)
        tools = (await client.list_tools()).tools
        rec.lines.append(
            f"`list_tools` → {len(tools)} tools: " + ", ".join(f"`{t.name}`" for t in tools) + "\n"
        )
        examples = [
            {
                "request": "Open the settings module in src/app/settings.py",
                "calls": [{"name": "read_file", "arguments": {"path": "src/app/settings.py"}}],
            },
            {"request": "Thanks, that's everything for now.", "calls": [], "answer": "You're welcome!"},
        ]
        data = await rec.call(
            "generate_training_examples",
            builtin="coding",
            n=60,
            seed=1,
            examples=examples,
            name="coding-v1",
            base_model=base_model,
        )
        await rec.call(
            "train_adapter",
            dataset=data["dataset"],
            base_model=base_model,
            name="coding-lora",
            iters=iters,
            batch_size=2,
            config={"steps_per_report": 1, "max_seq_length": 2048},
            wait_seconds=600,
        )
        started = await rec.call(
            "run_eval_suite", adapter="coding-lora", baseline=True, limit=limit, wait_seconds=0
        )
        job_id = started["job"]["id"]
        with anyio.fail_after(3600):  # polls are not recorded: only the answer that says done
            while not ((await client.call_tool("get_job", {"id": job_id})).structured_content or {}).get(
                "done"
            ):
                await anyio.sleep(2)
        result = await rec.call("get_job", id=job_id)
        runs = result["result"]["runs"]
        await rec.call("compare_runs", a=runs["baseline"], b=runs["coding-lora"])
        await rec.call("switch_adapter", name="coding-lora")
        await rec.call("list_adapters")
        return "\n".join(rec.lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: stdout)")
    parser.add_argument("--workspace", type=Path, help="workspace for the session (default: a temp folder)")
    parser.add_argument(
        "--base-model", help="model folder or cache name (default: build the tiny test model)"
    )
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--limit", type=int, default=1, help="eval cases per category")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tooltune-transcript-"))
    ws = args.workspace or tmp / "ws"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    base_model = args.base_model
    if base_model is None:
        from tooltune.testing.tiny_model import build

        base_model = str(build(tmp / "tiny-qwen2"))
    text = anyio.run(session, ws, base_model, args.iters, args.limit, env)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
