"""Read-only MCP resources: the workspace's adapters, datasets, training runs and eval reports.

Tools answer with summaries trimmed for a model's context; resources hold the full records for a
client (or a curious agent) that wants them. Reports are Markdown, the rest JSON — each the service's
own record, so there is one source of truth.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from tooltune.data.store import list_datasets, load_dataset
from tooltune.errors import TooltuneError
from tooltune.evals.report_md import render_markdown
from tooltune.evals.runner import list_runs as list_eval_runs
from tooltune.evals.runner import load_report
from tooltune.evals.runner import run_dir as eval_run_dir
from tooltune.evals.service import comparison_paths
from tooltune.server.errors import resource_errors
from tooltune.server.state import ServerState
from tooltune.training.runs import get_run, read_events
from tooltune.training.runs import list_runs as list_training_runs

JSON = "application/json"
MARKDOWN = "text/markdown"
RECENT_EVENTS = 20


def _dump(data: Any) -> str:
    if hasattr(data, "model_dump_json"):
        return data.model_dump_json(indent=2)
    return json.dumps(data, indent=2, default=str)


def register_resources(mcp: MCPServer, state: ServerState) -> None:
    ws = state.ws
    settings = state.settings

    def not_found(what: str, exc: TooltuneError) -> ResourceNotFoundError:
        return ResourceNotFoundError(f"{what}: {exc}")

    # ---- adapters ------------------------------------------------------------------------------------

    @mcp.resource(
        "tooltune://adapters",
        name="adapters",
        mime_type=JSON,
        description="All registered adapters (full tooltune.json records).",
    )
    @resource_errors
    def adapters() -> str:
        return _dump([json.loads(r.model_dump_json()) for r in state.registry.list()])

    @mcp.resource(
        "tooltune://adapters/{name}",
        name="adapter",
        mime_type=JSON,
        description="One adapter's record: base model and fingerprint, dataset hash, train config "
        "and metrics, eval scores, versions.",
    )
    @resource_errors
    def adapter(name: str) -> str:
        try:
            return _dump(state.registry.get(name))
        except TooltuneError as e:
            raise not_found("adapter", e) from e

    # ---- datasets ------------------------------------------------------------------------------------

    @mcp.resource(
        "tooltune://datasets",
        name="datasets",
        mime_type=JSON,
        description="All datasets: name, hash, split counts, sources.",
    )
    @resource_errors
    def datasets() -> str:

        return _dump(
            [
                {
                    "name": d.name,
                    "hash": d.hash,
                    "counts": d.counts,
                    "sources": d.sources,
                    "created": d.created,
                }
                for d in list_datasets(ws)
            ]
        )

    @mcp.resource(
        "tooltune://datasets/{name}",
        name="dataset",
        mime_type=JSON,
        description="One dataset's metadata: sources, seed, kinds, counts, generation stats, lint report.",
    )
    @resource_errors
    def dataset(name: str) -> str:

        try:
            return _dump(load_dataset(ws, name))
        except TooltuneError as e:
            raise not_found("dataset", e) from e

    # ---- training runs -------------------------------------------------------------------------------

    @mcp.resource("tooltune://runs", name="runs", mime_type=JSON, description="All training runs (run.json).")
    @resource_errors
    def runs() -> str:
        return _dump([json.loads(r.model_dump_json()) for r in list_training_runs(settings)])

    @mcp.resource(
        "tooltune://runs/{id}",
        name="run",
        mime_type=JSON,
        description="One training run: run.json, its resolved config, metrics and the latest loss events.",
    )
    @resource_errors
    def run(id: str) -> str:

        try:
            record = get_run(settings, id)
        except TooltuneError as e:
            raise not_found("run", e) from e
        run_dir = ws.run_dir(record.id)
        out: dict[str, Any] = {"run": json.loads(record.model_dump_json())}
        for key in ("config", "metrics"):
            path = run_dir / f"{key}.json"
            if path.is_file():
                out[key] = json.loads(path.read_text("utf-8"))
        out["recent_events"] = [
            e.model_dump(exclude_none=True) for e in read_events(run_dir)[-RECENT_EVENTS:]
        ]
        return _dump(out)

    # ---- eval reports --------------------------------------------------------------------------------

    @mcp.resource(
        "tooltune://reports",
        name="reports",
        mime_type=JSON,
        description="All eval runs: run id, suite, adapter, label, when.",
    )
    @resource_errors
    def reports() -> str:

        return _dump(
            [
                {
                    "run_id": m.run_id,
                    "suite": m.suite,
                    "adapter": m.adapter,
                    "label": m.label,
                    "n_cases": m.n_cases,
                    "created": m.created,
                }
                for m in list_eval_runs(ws)
            ]
        )

    @mcp.resource(
        "tooltune://reports/{id}",
        name="report",
        mime_type=MARKDOWN,
        description="One eval run's report (Markdown): rates per category, failure reasons, failing cases.",
    )
    @resource_errors
    def report(id: str) -> str:

        path = eval_run_dir(ws, id) / "report.md"
        if path.is_file():
            return path.read_text("utf-8")
        try:
            return render_markdown(load_report(ws, id))
        except TooltuneError as e:
            raise not_found("report", e) from e

    @mcp.resource(
        "tooltune://reports/{id}/vs/{other}",
        name="comparison",
        mime_type=MARKDOWN,
        description="Comparison of eval run `id` against run `other` (Markdown), written by compare_runs "
        "or run_eval_suite.",
    )
    @resource_errors
    def comparison(id: str, other: str) -> str:

        path = comparison_paths(ws, other, id)["md"]
        if not path.is_file():
            raise ResourceNotFoundError(
                f"no comparison of {id} against {other}; call compare_runs('{other}', '{id}')"
            )
        return path.read_text("utf-8")
