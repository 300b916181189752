"""`tooltune ask`: one prompt through the coding agent, non-interactively (for scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from tooltune.cli import context


def ask(
    prompt: str,
    *,
    model: str | None = None,
    adapter: str | None = None,
    root: Path | None = None,
    json: bool = False,
    max_steps: int = 20,
    max_tokens: int | None = None,
    allow_write: bool = False,
    allow_exec: bool = False,
    lenient_tools: bool = False,
    repeat_guard: bool = True,
    mcp: Annotated[list[str] | None, Parameter(consume_multiple=False)] = None,
) -> int:
    """Run one prompt through the coding agent and print the answer on stdout (logs go to stderr).

    Exit code 0 on an answer, 1 when the run failed (the error is in the JSON with --json).

    Parameters
    ----------
    prompt
        What to ask.
    model
        Base model reference. Default: the workspace's active model, else the default model.
    adapter
        Registered adapter to use; 'none' for the baseline. Default: the workspace's active adapter.
    root
        Project folder the agent's file tools are confined to (default: the current folder).
    json
        Print a JSON object: answer, tool_calls (name, args, ok), served adapter, usage, error.
    max_steps
        Most model requests before giving up.
    max_tokens
        Most tokens per model request (default: the server's, 512 for mlx_lm.server).
    allow_write
        Let the agent write files (no confirmation: this is for scripts).
    allow_exec
        Let the agent run programs and tests (no confirmation).
    lenient_tools
        Recover tool calls the model wrote as text; each recovery is logged.
    repeat_guard
        Answer a built-in tool call that repeats an earlier one for the same prompt (same tool, same
        arguments, nothing changed since) by telling the model it was already made, instead of running
        it again; --no-repeat-guard runs every call as the model asks.
    mcp
        An MCP server command whose tools the agent may also use. Repeatable.
    """
    import anyio

    from tooltune.agent.session import AskResult, degenerate_note, repeat_note
    from tooltune.agent.session import ask as run_ask
    from tooltune.cli.serve import _project_root, make_server, quiet_http_logs

    quiet_http_logs()
    settings = context.settings()
    project = _project_root(root)
    server = make_server(settings, model=model, adapter=adapter)

    async def main() -> AskResult:
        async with server:
            return await run_ask(
                prompt,
                root=project,
                server=server,
                allow_write=allow_write,
                allow_exec=allow_exec,
                lenient_tools=lenient_tools,
                repeat_guard=repeat_guard,
                mcp_commands=mcp or (),
                max_steps=max_steps,
                max_tokens=max_tokens,
            )

    result = anyio.run(main)
    # plain print, not rich: scripts need the exact bytes (no wrapping, markup or emoji codes)
    if json:
        print(result.model_dump_json(indent=2), flush=True)
    else:
        if result.answer is not None:
            print(result.answer, flush=True)
        if result.error:
            context.console_err.print(f"[bold red]error:[/] {result.error}", markup=True)
    if result.degenerate_cuts:
        context.console_err.print(f"note: {degenerate_note(result.degenerate_cuts)}", markup=False)
    if result.repeated_calls:
        context.console_err.print(f"note: {repeat_note(result.repeated_calls)}", markup=False)
    return 0 if result.error is None else 1
