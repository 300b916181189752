"""Issue 32's open question: why mlx_lm.server stopped answering at 32 concurrent requests.

    python bench/server_burst.py MODEL CONCURRENCY N [OUT_DIR] [BFCL_DIR]

mlx_lm.server alone (no tooltune in between; DEBUG log kept), the first N BFCL simple_python questions
with their tools, CONCURRENCY at once as soon as /health answers, 128 tokens each, temperature 0; every
request's outcome and time, and whether the server is alive at the end, in OUT_DIR/c<CONCURRENCY>.json.
It ran on the GPU kit of 2026-12-05 as c32.py with OUT_DIR /root/res (the same steps, written without
types then); bench/results/server_burst_h100.json holds its two runs (32 and 8 at once).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def openai_tools(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL's function docs as OpenAI tools (its "dict"/"float" types as JSON Schema's)."""
    out = []
    for f in functions:
        text = (
            json.dumps(f.get("parameters", {})).replace('"dict"', '"object"').replace('"float"', '"number"')
        )
        out.append({"type": "function", "function": {"name": f["name"], "description": f.get("description", ""),
                                                     "parameters": json.loads(text)}})  # fmt: skip
    return out


async def burst(
    port: int, rows: list[dict[str, Any]], concurrency: int
) -> tuple[list[dict[str, Any]], float]:
    t0 = time.time()
    async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=5)) as client:
        for _ in range(240):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
        print("up after", round(time.time() - t0, 1), flush=True)
        gate = asyncio.Semaphore(concurrency)
        results: list[dict[str, Any]] = []

        async def one(i: int, row: dict[str, Any]) -> None:
            async with gate:
                s = time.time()
                body = {"messages": row["question"][0], "tools": openai_tools(row["function"]),
                        "max_tokens": 128, "temperature": 0}  # fmt: skip
                try:
                    r = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
                    tokens = (
                        r.json().get("usage", {}).get("completion_tokens") if r.status_code == 200 else None
                    )
                    results.append({"i": i, "status": r.status_code, "s": round(time.time() - s, 2),
                                    "t": round(s - t0, 1), "tokens": tokens})  # fmt: skip
                except Exception as e:  # every failure is the measurement
                    results.append({"i": i, "error": f"{type(e).__name__}: {str(e)[:200]}",
                                    "s": round(time.time() - s, 2), "t": round(s - t0, 1)})  # fmt: skip

        t1 = time.time()
        await asyncio.gather(*[one(i, r) for i, r in enumerate(rows)])
        return results, time.time() - t1


def main() -> None:
    model, concurrency, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    res = Path(sys.argv[4] if len(sys.argv) > 4 else "/root/res")
    bfcl = Path(sys.argv[5] if len(sys.argv) > 5 else "/root/stage/A/bfcl")
    port = 8190 + concurrency % 10
    log_path = res / f"c{concurrency}_server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlx_lm.server", "--model", model, "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "DEBUG"],
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        lines = (bfcl / "BFCL_v4_simple_python.json").read_text().splitlines()
        rows = [json.loads(line) for line in lines][:n]
        results, wall = asyncio.run(burst(port, rows, concurrency))
        ok = sum(1 for r in results if r.get("status") == 200)
        out = {"concurrency": concurrency, "requests": n, "ok": ok, "failed": n - ok, "wall_s": round(wall, 1),
               "server_alive": proc.poll() is None, "results": sorted(results, key=lambda r: r["t"])}  # fmt: skip
        proc.terminate()
        proc.wait(30)
    out["server_log_tail"] = log_path.read_text().splitlines()[-60:]
    (res / f"c{concurrency}.json").write_text(json.dumps(out, indent=1))
    print("c", concurrency, "ok", ok, "of", n, "wall", round(wall, 1), "alive", out["server_alive"])


if __name__ == "__main__":
    main()
