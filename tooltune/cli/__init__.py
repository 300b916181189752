"""The `tooltune` command line: a thin skin over the services. One module per verb.

Verb modules import the services they call inside the command function, not at the top: every verb is
registered at start, and importing every service costs about as much again (measured here: 1.3 s CPU for
`tooltune --help`, 2.4 s with every service imported), which `--help` and the quick verbs should not pay.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import cyclopts
from cyclopts import Parameter
from rich.markup import escape

from tooltune import __version__
from tooltune.cli import context
from tooltune.errors import TooltuneError
from tooltune.logs import configure_logging

app = cyclopts.App(
    name="tooltune",
    help="Make small local MLX models reliable at tool calling: generate data, train LoRA adapters, "
    "evaluate them against the baseline, and serve the one that wins.",
    version=__version__,
)


def _register() -> None:
    from tooltune.cli import adapters, ask, data, demo, evals, mcp, models, serve, train

    app.command(models.app)
    app.command(data.app)
    app.command(train.app)
    app.command(evals.app)
    app.command(adapters.app)
    app.command(serve.serve, name="serve")
    app.command(ask.ask, name="ask")
    app.command(mcp.mcp, name="mcp")
    app.command(demo.demo, name="demo")
    if hasattr(train, "runs_app"):
        app.command(train.runs_app)


@app.meta.default
def _launcher(
    *tokens: Annotated[str, Parameter(show=False, allow_leading_hyphen=True)],
    workspace: Annotated[Path | None, Parameter(env_var="TOOLTUNE_HOME")] = None,
    log_json: bool = False,
    verbose: bool = False,
) -> int | None:
    """Global options.

    Parameters
    ----------
    workspace
        Folder for datasets, runs, adapters and reports (default: ./.tooltune).
    log_json
        Log to stderr as JSON lines (for machines) instead of console text.
    verbose
        Log debug details.
    """
    configure_logging(json=log_json, level="DEBUG" if verbose else "INFO")
    context.init(workspace=workspace)
    try:
        return app(tokens)
    except TooltuneError as e:
        context.console_err.print(f"[bold red]error:[/] {escape(str(e))}")
        return 2


def main(argv: list[str] | None = None) -> None:
    _register()
    result = app.meta(argv if argv is not None else sys.argv[1:], result_action="return_value")
    sys.exit(result if isinstance(result, int) else 0)
