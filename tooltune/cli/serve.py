"""`tooltune serve`: an interactive coding-agent session on the served adapter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from tooltune.cli import context
from tooltune.config import Settings
from tooltune.errors import TooltuneError


def serve(
    *,
    model: str | None = None,
    adapter: str | None = None,
    root: Path | None = None,
    allow_write: bool = False,
    allow_exec: bool = False,
    lenient_tools: bool = False,
    repeat_guard: bool = True,
    mcp: Annotated[list[str] | None, Parameter(consume_multiple=False)] = None,
    max_steps: int = 20,
    max_tokens: int | None = None,
) -> int:
    """Start the model server with an adapter and chat with the coding agent.

    Commands inside the session: /tools, /adapter NAME (or /adapter none), /history, /reset, /quit.
    The conversation is saved to WORKSPACE/sessions/ID.jsonl on exit.

    Parameters
    ----------
    model
        Base model reference (cache name, local MLX dir, GGUF file or hub id). Default: the workspace's
        active model, else the default model.
    adapter
        Registered adapter to serve; 'none' for the baseline. Default: the workspace's active adapter
        (when it belongs to this model), else the baseline.
    root
        Project folder the agent's file tools are confined to (default: the current folder).
    allow_write
        Let the agent write files (you are asked y/n before each write).
    allow_exec
        Let the agent run programs and tests (you are asked y/n before each one).
    lenient_tools
        Recover tool calls the model wrote as text (fenced/bare JSON, <tool_call> tags); each recovery
        is logged, since an adapter trained for native calls should not need it.
    repeat_guard
        Answer a built-in tool call that repeats an earlier one for the same prompt (same tool, same
        arguments, nothing changed since) by telling the model it was already made, instead of running
        it again; --no-repeat-guard runs every call as the model asks.
    mcp
        An MCP server command whose tools the agent may also use, e.g. --mcp "python my_server.py".
        Repeatable.
    max_steps
        Most model requests per turn.
    max_tokens
        Most tokens per model request (default: the server's, 512 for mlx_lm.server).
    """
    import anyio

    from tooltune.agent.agent import build_agent
    from tooltune.agent.session import AgentSession, console_approver, run_repl, served_info

    quiet_http_logs()
    settings = context.settings()
    console = context.console
    project = _project_root(root)
    server = make_server(settings, model=model, adapter=adapter)

    async def main() -> None:
        context.console_err.print(f"[dim]starting mlx_lm.server for {server.model_path.name}…[/]")
        async with server:
            info = served_info(server)
            console.print(f"[bold]serving[/] {info.render() if info else '?'}", markup=True)
            if info is not None and not info.verified:
                console.print("[yellow]warning: the served adapter could not be verified[/]")
            agent = build_agent(
                root=project,
                allow_write=allow_write,
                allow_exec=allow_exec,
                approve=console_approver(console, input),
                mcp_commands=mcp or (),
                repeat_guard=repeat_guard,
            )
            session = AgentSession(
                agent, server=server, lenient_tools=lenient_tools, max_steps=max_steps, max_tokens=max_tokens
            )
            console.print(
                f"[dim]project {project} · write {'on' if allow_write else 'off'} · "
                f"exec {'on' if allow_exec else 'off'} · lenient tools {'on' if lenient_tools else 'off'} · "
                f"repeat guard {'on' if repeat_guard else 'off'}[/]"
            )
            async with agent:
                await run_repl(session, console=console, sessions_dir=context.workspace().root / "sessions")

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        console.print()
    return 0


def quiet_http_logs() -> None:
    """One 'HTTP Request: POST …' line per model call would drown the conversation; keep them for -v."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _project_root(root: Path | None) -> Path:
    project = (root or Path.cwd()).expanduser().resolve()
    if not project.is_dir():
        raise TooltuneError(f"project root {project} is not a folder; pass an existing folder with --root")
    return project


def make_server(settings: Settings, *, model: str | None, adapter: str | None):  # -> ModelServer
    """A ModelServer for the named model/adapter, filling gaps from ``<workspace>/active.json``.

    The active adapter is only reused when it was served on the *same* base model: an adapter on
    another base would load and silently be wrong (the registry refuses it anyway).
    """
    from tooltune.adapters.active import read_active
    from tooltune.models.resolve import fingerprint_model, resolve_model
    from tooltune.serving.model_server import ModelServer
    from tooltune.workspace import Workspace

    active = read_active(Workspace(settings.workspace).ensure())
    ref = model or (active.model if active else settings.default_model)
    path = resolve_model(ref, settings, download=False).path
    if adapter is not None:
        chosen = None if adapter.lower() in ("none", "base", "baseline") else adapter
    elif active is not None and active.adapter and _same_model(active, path, fingerprint_model):
        chosen = active.adapter
    else:
        chosen = None
    return ModelServer(path, settings=settings, adapter=chosen)


def _same_model(active, path: Path, fingerprint) -> bool:  # noqa: ANN001 - small private helper
    try:
        if Path(active.model).expanduser().resolve() == path:
            return True
    except OSError:
        pass
    return bool(active.model_fingerprint) and active.model_fingerprint == fingerprint(path)
