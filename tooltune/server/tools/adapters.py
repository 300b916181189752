"""MCP tools for adapters: switch_adapter, list_adapters, average_adapters."""

from __future__ import annotations

from typing import Annotated

from mcp.server import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from tooltune.adapters.active import read_active
from tooltune.adapters.average import average_adapters as average
from tooltune.errors import TooltuneError
from tooltune.logs import get_logger
from tooltune.server.errors import agent_errors
from tooltune.server.results import (
    AdapterList,
    AdapterSummary,
    AveragedAdapter,
    Served,
)
from tooltune.server.state import BusyError, ServerState
from tooltune.server.tools.base import (
    READ_ONLY,
    base_model_for,
    in_thread,
)

log = get_logger(__name__)


def register(mcp: MCPServer, state: ServerState) -> None:
    ws = state.ws

    @mcp.tool(
        description=(
            "Serve a registered adapter (or the base model with name=null) on the local OpenAI-compatible "
            "model server, starting it if needed; returns what is served now, proven by a behavioural probe "
            "(never a silent fallback to the base). Seconds for the tiny model, up to a minute for 0.5B. "
            "Refused while an eval is running. The choice is remembered for `tooltune serve`."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False
        ),
    )
    @agent_errors
    async def switch_adapter(
        name: Annotated[str | None, Field(description="Adapter name from list_adapters; null = base model.")],
        base_model: Annotated[
            str | None,
            Field(
                description="Base model to serve (default: the adapter's base, else the served or "
                "default model)."
            ),
        ] = None,
    ) -> Served:
        if state.running_evals():
            busy = state.running_evals()[0]
            raise BusyError(
                f"busy: eval job {busy} is using the model server; wait for it (get_job('{busy}')) or "
                f"cancel it (cancel_job('{busy}')), then switch"
            )
        model_path = await in_thread(base_model_for, state, name, base_model)
        ms = await state.model_server_for(model_path)
        served = await ms.switch_adapter(name, wait=False)
        return Served(
            adapter=served.adapter,
            model_path=served.model_path,
            verified=served.verified,
            distinguishable=served.distinguishable,
            probe_output=served.probe_output,
            base_url=ms.base_url,
            model_name=ms.model_name,
            next="point your OpenAI-compatible client at base_url with this model_name, or run "
            "`tooltune serve` / `tooltune ask` with this workspace",
        )

    @mcp.tool(
        description=(
            "List the trained adapters of this workspace (base model, dataset hash, train metrics, eval "
            "scores) and what the model server serves now. Instant. Next: switch_adapter or run_eval_suite."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def list_adapters() -> AdapterList:

        records = await in_thread(state.registry.list)
        ms = state.model_server
        served = None
        running = False
        if ms is not None:
            try:
                served = ms.served.adapter
                running = True
            except TooltuneError:
                running = False
        return AdapterList(
            adapters=[AdapterSummary.of(r) for r in records],
            served=served,
            server_running=running,
            active=read_active(ws),
            next="switch_adapter('<name>') to serve one"
            if records
            else "no adapters yet: generate_training_examples, then train_adapter",
        )

    @mcp.tool(
        description=(
            "Register a new adapter that is the weighted mean of two or more adapters' weight changes (LoRA "
            "adapters of one base model on the same layers; exact, its rank is the sum of theirs). Runs of "
            "one recipe with different seeds differ by several eval cases; their average keeps what they "
            "agree on. A strength below 1 turns the result down toward the base model (one adapter with a "
            "strength scales it). Seconds. Next: run_eval_suite(adapter=name) to measure it against its "
            "sources."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False
        ),
    )
    @agent_errors
    async def average_adapters(
        names: Annotated[
            list[str],
            Field(description="Two or more adapter names from list_adapters (one, with a strength)."),
        ],
        name: Annotated[str, Field(description="Name of the new adapter.")],
        weights: Annotated[
            list[float] | None,
            Field(description="One positive weight per adapter (default: equal weights summing to 1)."),
        ] = None,
        strength: Annotated[
            float,
            Field(
                gt=0, description="Multiplies the mean change; below 1 turns it down toward the base model."
            ),
        ] = 1.0,
    ) -> AveragedAdapter:

        record = await in_thread(average, state.registry, names, name, weights=weights, strength=strength)
        return AveragedAdapter(
            adapter=AdapterSummary.of(record),
            weights=record.train_config["weights"],
            strength=record.train_config["strength"],
            rank=record.train_config["rank"],
            next=f"run_eval_suite(adapter='{record.name}') and compare_runs against each source's eval run",
        )
