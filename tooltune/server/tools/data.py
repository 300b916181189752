"""MCP tools for datasets: generate_training_examples, validate_dataset."""

from __future__ import annotations

import json
import shutil
import weakref
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve, Sample
from mcp.types import CreateMessageResult, SamplingMessage, TextContent
from pydantic import Field

from tooltune.data.datasets import generate_dataset
from tooltune.data.examples import DataError
from tooltune.data.generate_config import GenerateConfig, GenerateResult
from tooltune.data.lint import lint_dataset_dir
from tooltune.data.phrasebook import BookText, phrasebook_from_object
from tooltune.data.phrasebook_draft import DraftStats, book_from_reply, book_messages, phrasebook_yaml
from tooltune.data.store import DatasetInfo, load_dataset
from tooltune.data.teacher import open_teacher
from tooltune.data.tool_sources import load_tool_specs, spawns_program
from tooltune.jobs import new_id
from tooltune.logs import get_logger
from tooltune.server.errors import agent_errors
from tooltune.server.options import mcp_options
from tooltune.server.progress import progress_requested
from tooltune.server.results import (
    DatasetCheck,
    GeneratedDataset,
    LintSummary,
)
from tooltune.server.state import ServerState
from tooltune.server.tools.base import (
    READ_ONLY,
    STARTS_WORK,
    in_thread,
    lint_model_path,
    thread_progress,
)
from tooltune.toolspec import ToolSpec
from tooltune.workspace import atomic_write_text, validate_name

log = get_logger(__name__)


CLIENT = "client"
PHRASEBOOK_HELP = (
    "How people ask for these tools, so the training requests sound like real users (write one: you "
    'know how people talk). A mapping (or its YAML/JSON text): {"tools": {TOOL: {"requests": '
    "[10+ short requests as people type them, a {param} slot where each value goes, every required "
    'parameter in each, optional ones in some, never \'with X set to Y\'; a {"weight": 3, "ask": [...]} '
    'group of them is drawn at that weight, a plain one at 1; "when": {param: JSON Schema} keeps a group '
    'to calls whose values match], "values": {param: [realistic '
    'values, 8+; or {"range": [lo, hi]} for integers; or {"compose": "{dir}/{stem}.py"} written from '
    '"values" NAMEs; or {"one_of": [{"weight": 3, "compose": ...}, {"weight": 1, "value": v}]}; or '
    '{"sample": [a, b, c], "k": [1, 2]} for a list of distinct items; or {"add": other_param, "by": [5, 10]} '
    "for a number that follows another (an end line after the start line); or "
    '{"lookup": other_param, "table": {".py": [...], "Dockerfile": [...]}, "other": [...]} for a value '
    "chosen by another's basename or extension (a file body that fits its path)]}, "
    '"records": [{param: value, param2: value2}: values '
    'that belong together, one record fills all its slots in a call], "say": {param: {value: [other words '
    'for that exact value]}}, "forms": {param: "date"|"time"|"datetime"|"minutes"|"number": ISO dates, '
    '24-hour times, minutes and whole numbers said as people say them ("Jan 4, 2027", "7:15 pm", "an '
    'hour and a half", "1,204", "three hundred and six")}, '
    '"parallel": [requests for two or three calls at once (or weighted groups of them) with {param.1}, '
    "{param.2} (and {param.3})], "
    '"near_misses": [requests on the tool\'s topic that no offered tool can do], "results": '
    '[{"result": what the tool returns (object or text, slots allowed), "answer": a reply using '
    'it ({NAME:and} lists "a, b and c"), "when": {param or NAME: JSON Schema} for an answer that suits '
    'some values only (an empty search: {"maxItems": 0})}]}}, "values": {NAME: [values for {NAME} slots '
    'in results/follow-ups; {"sample": [...], "k": [0, 3]} may list none]}, "follow_ups": [[{"ask": '
    'request, "call": TOOL, "result": its result}, {"ask": "comment on that one: {body}", '
    '"call": TOOL2, "args": {param: "{NAME}"}}]], "jobs": [{"ask": one request needing several calls '
    "(or a list of ways to say it, as a follow-up step's ask may be), "
    '"steps": [{"call": TOOL, "args": {...}, "result": ...}, {"call": TOOL2, "args": {param: "{NAME}"}, '
    '"authored": [params the model writes itself, such as an edited file\'s new content]}], '
    '"answer": a reply using the results}], "polish": {"verbs": [your tools\' own verbs that may follow '
    '"please"], "shell_words": [words that open a typed command]}, "relative_dates": {"share": 0.3, '
    '"system": ["Today is {weekday}, {date}."]}: that share of conversations say dates "tomorrow", "on '
    "Tuesday\" against a today a system line states (for tools with a date form; your agent's own line in "
    '"system")}. Entries that do not fit the tools are '
    "skipped and "
    "counted. 'client' = the server asks your model to draft it, in one MCP sampling request (if your "
    "client supports sampling)."
)


_STATES: weakref.WeakKeyDictionary[MCPServer, ServerState] = weakref.WeakKeyDictionary()


def _client_tool_specs(
    state: ServerState | None,
    tools: list[dict[str, Any]] | None,
    mcp_server: str | None,
    bfcl_file: str | None,
    builtin: str | None,
) -> list[ToolSpec]:
    out = [ToolSpec.from_openai(t) for t in tools or []]
    specs = [f"bfcl:{bfcl_file}"] if bfcl_file else []
    specs += [f"builtin:{builtin}"] if builtin else []
    if mcp_server:
        if spawns_program(f"mcp:{mcp_server}") and not (state is not None and state.allow_spawn):
            raise ToolError("mcp_server is a command line, and starting programs is off on this server")
        specs.append(f"mcp:{mcp_server}")
    return out + (load_tool_specs(specs) if specs else [])


async def client_draft_request(
    ctx: Context,
    phrasebook: dict[str, Any] | str | None = None,
    tools: list[dict[str, Any]] | None = None,
    mcp_server: str | None = None,
    bfcl_file: str | None = None,
    builtin: str | None = None,
) -> Sample | None:
    """phrasebook='client': one sampling request to the client's model for the whole tool set (the
    2026-07-28 protocol carries it in the call's input-required round, older ones mid-call)."""
    if phrasebook != CLIENT:
        return None
    caps = ctx.client_capabilities
    if caps is None or caps.sampling is None:
        raise ToolError(
            "phrasebook='client' needs a client that supports MCP sampling, and this one does not declare "
            "it; write the phrasebook yourself and pass it as a mapping (see the parameter's description)"
        )
    state = _STATES.get(ctx.mcp_server)
    specs = await in_thread(_client_tool_specs, state, tools, mcp_server, bfcl_file, builtin)
    if not specs:
        raise ToolError("no tools given: pass tools=[...], mcp_server=..., bfcl_file=... or builtin=...")
    messages = book_messages(specs)
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    chat = [
        SamplingMessage(role=m["role"], content=TextContent(type="text", text=m["content"]))  # type: ignore[arg-type]
        for m in messages
        if m["role"] != "system"
    ]
    return Sample(chat, max_tokens=8000, system_prompt=system, temperature=0.7)


def client_book(
    draft: CreateMessageResult, tools: list[ToolSpec], inputs: Path
) -> tuple[BookText, DraftStats]:
    """The book in the client's reply, each tool's entry checked; kept beside the dataset's inputs."""
    content = draft.content
    parts = content if isinstance(content, list) else [content]
    text = "".join(str(getattr(c, "text", "") or "") for c in parts)
    book, stats = book_from_reply(text, tools, name="client-drafted")
    if not book.tools:
        raise ToolError(
            "the client's draft gave no usable request template for any tool (each entry is checked against "
            "the schemas: slots must be parameters, every required parameter needs a slot); pass a "
            "phrasebook mapping instead"
        )
    atomic_write_text(inputs / "phrasebook.yaml", phrasebook_yaml(book, "Drafted by the MCP client's model."))
    return BookText(book=book, source="client"), stats


def register(mcp: MCPServer, state: ServerState) -> None:
    ws = state.ws
    _STATES[mcp] = state

    @mcp.tool(
        description=(
            "Create a training dataset of tool-calling examples for the small local model. Give the tools "
            "the model must learn to call — inline OpenAI-format `tools`, an `mcp_server` (URL or stdio "
            "command line) whose tools are listed, a BFCL `bfcl_file`, or builtin='coding' (the agent's own "
            "coding tools) — and optionally your own `examples` (you write better requests than templates "
            "do): full lines {messages, tools} in mlx-lm chat format, or pairs {request, calls: [{name, "
            "arguments}]} (calls: [] plus optional answer = a no-call example). Templates fill up to `n` "
            "examples of the chosen `kinds`; near-duplicates and anything resembling eval cases are dropped; "
            "the result is linted (schema, chat-template round trip, loss coverage) and stored immutably. "
            "For tools other than the built-in ones, pass a `phrasebook` (how people ask for each tool; "
            "see its parameter): without one, requests are read back from the schemas, which small "
            "models learn badly. teacher='self' has the model itself reword a share of the requests. Takes "
            "seconds (a few hundred examples) to a minute (with a teacher: minutes). Errors in your examples "
            "name examples.jsonl:N = your examples[N-1]. Next: train_adapter(dataset=<name>)."
        ),
        annotations=STARTS_WORK,
    )
    @agent_errors
    @mcp_options(GenerateConfig)
    async def generate_training_examples(
        ctx: Context,
        tools: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description='OpenAI function specs: {"type":"function","function":{name, description, '
                "parameters}} or bare {name, description, parameters}."
            ),
        ] = None,
        mcp_server: Annotated[
            str | None,
            Field(description='An MCP server to take tools from: "http://host/mcp" or a command line.'),
        ] = None,
        bfcl_file: Annotated[
            str | None, Field(description="Path to a BFCL data file; only its function schemas are read.")
        ] = None,
        builtin: Annotated[
            Literal["coding", "issue-tracker", "notes-calendar"] | None,
            Field(
                description="'coding' = the agent's own tools (read_file, write_file, run_command, ...); "
                "'issue-tracker' / 'notes-calendar' = the tools of the built-in suites of those names."
            ),
        ] = None,
        phrasebook: Annotated[
            dict[str, Any] | str | None,
            Field(description=PHRASEBOOK_HELP),
        ] = None,
        client_draft: Annotated[CreateMessageResult | None, Resolve(client_draft_request)] = None,
        examples: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description="Your own examples, kept first: {messages, tools} lines or {request, calls, "
                "answer?} pairs."
            ),
        ] = None,
        name: Annotated[
            str | None,
            Field(description="Dataset name (letters, digits, . _ -); default: a new unique name."),
        ] = None,
        base_model: Annotated[
            str | None,
            Field(description="Model whose chat template to check against (default: the default model)."),
        ] = None,
        teacher: Annotated[
            str | None,
            Field(
                description="A model that rewrites a share of the requests as a person would ask (every "
                "value must survive): 'self' = base_model itself, served while generating (adds minutes: "
                "~4 s per request on a 2-core CPU), or the base URL of an OpenAI-compatible endpoint."
            ),
        ] = None,
        **options: Any,
    ) -> GeneratedDataset:
        mcp_spec = f"mcp:{mcp_server}" if mcp_server else None
        if mcp_spec is not None and spawns_program(mcp_spec) and not state.allow_spawn:
            # refused before anything is written or started: the client may not be the owner (HTTP)
            raise ToolError(
                "mcp_server is a command line, and starting programs is off on this server (the default "
                "over HTTP); pass the server's http(s):// URL instead, or have the owner restart it with "
                "`tooltune mcp --http --allow-spawn`"
            )
        name = validate_name(name or new_id("ds"), "dataset name")
        if (ws.datasets / name).exists():
            raise ToolError(f"dataset {name!r} already exists and datasets are immutable; pass another name")
        book_text = None
        if isinstance(phrasebook, dict) or (phrasebook is not None and phrasebook != CLIENT):
            try:  # a malformed book refuses the call before anything is written
                book_text = phrasebook_from_object(phrasebook, source="phrasebook")
            except DataError as e:
                raise ToolError(str(e)) from None
        specs: list[str] = []
        inputs = (
            ws.root / "inputs" / name
        )  # caller-supplied material, kept so the dataset's sources stay real
        if tools:
            atomic_write_text(inputs / "tools.json", json.dumps(tools, indent=2))
            specs.append(str(inputs / "tools.json"))
        if mcp_spec is not None:
            specs.append(mcp_spec)
        if bfcl_file:
            specs.append(f"bfcl:{bfcl_file}")
        if builtin:
            specs.append(f"builtin:{builtin}")
        if not specs:
            raise ToolError(
                "no tools given: pass tools=[...], mcp_server=..., bfcl_file=... or builtin='coding'"
            )
        examples_file = None
        if examples:
            examples_file = inputs / "examples.jsonl"
            atomic_write_text(examples_file, "".join(json.dumps(e) + "\n" for e in examples))
        config = GenerateConfig(**options)
        try:
            if book_text is not None:
                atomic_write_text(
                    inputs / "phrasebook.json", json.dumps(book_text.book.model_dump(mode="json"), indent=1)
                )
            drafted: DraftStats | None = None
            if phrasebook == CLIENT and client_draft is not None:
                tool_specs = await in_thread(load_tool_specs, specs)
                book_text, drafted = await in_thread(client_book, client_draft, tool_specs, inputs)
            model_path = await in_thread(lint_model_path, state, base_model)
            progress = thread_progress(ctx, "generating examples") if progress_requested(ctx) else None

            def generate() -> tuple[DatasetInfo, GenerateResult]:
                with open_teacher(teacher, model_path=model_path, settings=state.settings) as paraphraser:
                    return generate_dataset(
                        ws,
                        name,
                        specs,
                        config,
                        model_path=model_path,
                        examples_file=examples_file,
                        teacher=paraphraser,
                        progress=progress,
                        phrasebook=book_text,
                    )

            info, result = await in_thread(generate)
        except BaseException:
            shutil.rmtree(inputs, ignore_errors=True)  # nothing was written: keep no orphaned inputs either
            raise
        assert info.lint is not None
        return GeneratedDataset(
            dataset=info.name,
            hash=info.hash,
            counts=info.counts,
            kinds=result.counts,
            tools=int(info.stats.get("tools", 0)),
            caller_examples=result.counts.get("caller", 0),
            dropped_duplicates=result.dropped_duplicates,
            dropped_leaked=result.dropped_leaked,
            teacher=result.teacher,
            phrasebook=info.stats.get("phrasebook"),
            phrasebook_skipped=result.phrasebook_skipped[:20],
            phrasebook_drafted=drafted.model_dump() if drafted is not None else None,
            lint=LintSummary.of(info.lint),
            resource=f"tooltune://datasets/{info.name}",
            next=f"train_adapter(dataset='{info.name}'), with base_model=... unless the default is meant",
        )

    @mcp.tool(
        description=(
            "Check a stored dataset before training: JSON and roles, every tool call valid against "
            "its tool's schema, round trip through the model's chat template and tool parser, which "
            "turns receive loss, duplicates, leakage of eval cases; plus stats (kinds, tools, lengths). "
            "Takes seconds. Returns the first issues as file:line messages. Next: train_adapter if ok, "
            "else generate a new dataset."
        ),
        annotations=READ_ONLY,
    )
    @agent_errors
    async def validate_dataset(
        name: Annotated[str, Field(description="Dataset name (from generate_training_examples).")],
        base_model: Annotated[
            str | None,
            Field(description="Model whose chat template to check against (default: the default model)."),
        ] = None,
    ) -> DatasetCheck:

        info = await in_thread(load_dataset, ws, name)
        model_path = await in_thread(lint_model_path, state, base_model)
        report = await in_thread(lint_dataset_dir, info.path, model_path, ws_root=ws.root)
        return DatasetCheck(
            dataset=info.name,
            lint=LintSummary.of(report),
            stats=report.stats,
            resource=f"tooltune://datasets/{info.name}",
            next=f"train_adapter(dataset='{info.name}')"
            if report.ok
            else "fix the errors listed (or generate a new dataset), then validate again",
        )
