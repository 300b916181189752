"""`tooltune data`: tool specs → generated examples → checked, immutable datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import cyclopts
from cyclopts import Parameter
from pydantic import ValidationError

from tooltune.cli import context
from tooltune.cli.options import build_config, cli_options, given
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.onpolicy import PickConfig, SampleConfig
from tooltune.errors import TooltuneError, first_error

app = cyclopts.App(name="data", help="Generate, lint and inspect training datasets (tool-calling examples).")

Multi = Parameter(consume_multiple=True)


def _model_path(model: str | None, *, required: bool = False) -> Path | None:
    """An MLX model folder for the template round trip: ``--model`` (folder or cache name), else the
    default model if it is already in the cache; None means the round trip is skipped (and reported)."""
    from tooltune.models.resolve import resolve_model

    settings = context.settings()
    if model is not None and Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    try:
        return resolve_model(model or settings.default_model, settings, download=False).path
    except TooltuneError:
        if model is not None or required:
            raise
        context.console_err.print(
            "[yellow]no model available: the chat-template round trip will be skipped (pass --model)[/]"
        )
        return None


def _print_report(report: object, *, as_json: bool, limit: int = 30) -> None:
    from tooltune.data.lint import LintReport

    assert isinstance(report, LintReport)
    if as_json:
        context.console.print_json(report.model_dump_json())
        return
    for issue in report.errors[:limit]:
        context.console.print(f"[red]error[/]   {issue}", markup=True, highlight=False)
    for issue in report.warnings[:limit]:
        context.console.print(f"[yellow]warning[/] {issue}", markup=True, highlight=False)
    hidden = max(0, len(report.errors) - limit) + max(0, len(report.warnings) - limit)
    if hidden:
        context.console.print(f"… {hidden} more (use --json for all)")
    context.console.print(report.summary(), highlight=False)
    st = report.stats
    context.console.print(
        f"  kinds: {st.per_kind}\n  no-call examples: {st.no_call_examples}/{st.examples}, tool-call turns: "
        f"{st.tool_call_turns}\n  length ({st.length_unit}): mean {st.length_mean}, max {st.length_max}, "
        f"histogram {st.length_histogram}",
        highlight=False,
    )


@app.command(name="list")
def list_() -> None:
    """List datasets in the workspace (name, hash, split sizes)."""
    from tooltune.data.store import list_datasets

    infos = list_datasets(context.workspace())
    if not infos:
        context.console.print("no datasets yet — create one with `tooltune data generate`")
    for d in infos:
        context.console.print(f"{d.name}\t{d.hash[:19]}\t{d.counts}\t{', '.join(d.sources)}", highlight=False)


@app.command
def show(name: str, *, as_json: Annotated[bool, Parameter(name="--json")] = False) -> None:
    """Show a dataset's metadata (hash, sources, seed, kinds, counts, lint summary).

    Parameters
    ----------
    name
        Dataset name in the workspace.
    """
    from tooltune.data.store import load_dataset

    info = load_dataset(context.workspace(), name)
    if as_json:
        context.console.print_json(info.model_dump_json(exclude={"lint"}))
        return
    context.console.print(
        f"{info.name}\n  hash: {info.hash}\n  path: {info.path}\n  counts: {info.counts}\n  sources: "
        f"{info.sources}\n  generator: {info.generator_version}  seed: {info.seed}\n  kinds: {info.kinds}\n"
        f"  created: {info.created}",
        highlight=False,
    )
    if info.lint is not None:
        context.console.print("  lint: " + info.lint.summary().replace("\n", "\n  "), highlight=False)


@app.command
def stats(name: str, *, as_json: Annotated[bool, Parameter(name="--json")] = False) -> None:
    """Stats of a dataset: examples per kind, per tool, per parameter, token lengths."""
    from tooltune.data.store import load_dataset

    info = load_dataset(context.workspace(), name)
    st = info.lint.stats if info.lint is not None else None
    data = {
        "name": info.name,
        "counts": info.counts,
        "generation": info.stats,
        "lint_stats": st.model_dump() if st else None,
    }
    if as_json:
        context.console.print_json(json.dumps(data))
        return
    context.console.print(f"{info.name}: {info.counts}", highlight=False)
    for k, v in info.stats.items():
        context.console.print(f"  {k}: {v}", highlight=False)
    if st is not None:
        context.console.print(
            f"  per kind: {st.per_kind}\n  length ({st.length_unit}): mean {st.length_mean}, "
            f"max {st.length_max}, {st.length_histogram}",
            highlight=False,
        )
        top = sorted(st.per_tool.items(), key=lambda kv: -kv[1])[:15]
        context.console.print(
            f"  top tools: {top}\n  tools called: {len(st.per_tool)}, params covered: {len(st.per_param)}",
            highlight=False,
        )


@app.command
def lint(
    target: str,
    *,
    model: str | None = None,
    mask_prompt: bool = True,
    bfcl_dir: Path | None = None,
    as_json: Annotated[bool, Parameter(name="--json")] = False,
) -> int:
    """Check a dataset (name) or a JSONL file: JSON, roles, schemas, template round trip, loss, dups, leakage.

    Parameters
    ----------
    target
        A dataset name in the workspace or a path to a JSONL file.
    model
        MLX model folder or cache name whose chat template and tool parser to check against.
    mask_prompt
        Check loss coverage under prompt masking (mlx-lm trains only the last message).
    bfcl_dir
        Folder of BFCL files for the leakage check (default: TOOLTUNE_BFCL_DIR or found near the repo).
    """
    from tooltune.data.lint import lint_dataset_dir, lint_file

    ws = context.workspace()
    mp = _model_path(model)
    path = Path(target).expanduser()
    if path.is_file():
        report = lint_file(path, model_path=mp, ws_root=ws.root, bfcl_dir=bfcl_dir, mask_prompt=mask_prompt)
    elif path.is_dir():
        report = lint_dataset_dir(path, mp, ws_root=ws.root, bfcl_dir=bfcl_dir, mask_prompt=mask_prompt)
    else:
        report = (
            lint_dataset_dir(
                ws.dataset_dir(target), mp, ws_root=ws.root, bfcl_dir=bfcl_dir, mask_prompt=mask_prompt
            )
            if (ws.datasets / target).is_dir()
            else None
        )
        if report is None:
            raise TooltuneError(f"{target!r} is neither a file nor a dataset in {ws.datasets}")
    _print_report(report, as_json=as_json)
    return 0 if report.ok else 1


@app.command
@cli_options(GenerateConfig, annotations={"mix": str})
def generate(
    *,
    tools: Annotated[list[str], Multi],
    out: str,
    teacher: str | None = None,
    teacher_model: str = "default",
    examples: Path | None = None,
    phrasebook: Annotated[list[Path] | None, Multi] = None,
    model: str | None = None,
    bfcl_dir: Path | None = None,
    **options: Any,
) -> None:
    """Generate a dataset of tool-calling examples from tool schemas.

    Parameters
    ----------
    tools
        Tool sources: file.json|file.yaml, mcp:"command args", mcp:http://host/mcp, bfcl:path/BFCL_x.json,
        builtin:coding, builtin:issue-tracker, builtin:notes-calendar.
    out
        Name of the new dataset (datasets are immutable).
    teacher
        Base URL of an OpenAI-compatible endpoint that paraphrases some requests (values must survive),
        or "self": the model (--model) itself, served while generating.
    teacher_model
        Model name to send to the teacher.
    examples
        JSONL of your own examples: full {"messages","tools"} lines or {"request","calls"} pairs.
    phrasebook
        YAML/JSON phrasebooks: how people ask for these tools (docs/PHRASEBOOKS.md), one per tool set;
        entries that do not fit the tools are skipped and listed.
    model
        MLX model folder or cache name for the chat-template round-trip check and token lengths.
    bfcl_dir
        Folder of BFCL files for the leakage check.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tooltune.data.datasets import generate_dataset
    from tooltune.data.teacher import SELF, open_teacher

    book = [_checked_book(p, tools) for p in phrasebook or []]
    chosen = given(options)
    if "mix" in chosen:
        chosen["mix"] = _parse_mix(chosen["mix"])
    try:
        cfg = GenerateConfig(**chosen)
    except ValidationError as e:
        err = first_error(e)
        option = "--" + err.where.split(".")[0].replace("_", "-")
        raise TooltuneError(f"{option}: {err.msg} (got {err.input!r})") from None
    mp = _model_path(model, required=teacher == SELF)
    with (
        open_teacher(teacher, model_path=mp, settings=context.settings(), model=teacher_model) as paraphraser,
        Progress(
            TextColumn("generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=context.console_err,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("gen", total=cfg.n)
        info, res = generate_dataset(
            context.workspace(),
            out,
            tools,
            cfg,
            model_path=mp,
            examples_file=examples,
            teacher=paraphraser,
            bfcl_dir=bfcl_dir,
            progress=lambda done, total: bar.update(task, completed=done),
            phrasebook=book,
        )
    rate = len(res.examples) / res.seconds if res.seconds else 0.0
    context.console.print(
        f"dataset {info.name}  {info.hash}\n  counts: {info.counts}\n  kinds: {res.counts}\n"
        f"  dropped: {res.dropped_duplicates} near-duplicates, {res.dropped_leaked} leaked eval requests, "
        f"{res.dropped_unverifiable} unverifiable\n  {len(res.examples)} examples in {res.seconds:.1f}s "
        f"({rate:.0f}/s)" + (f"\n  teacher: {res.teacher.model_dump()}" if res.teacher else ""),
        highlight=False,
    )
    if info.lint is not None:
        context.console.print("  lint: " + info.lint.summary().replace("\n", "\n  "), highlight=False)


@app.command(name="import")
def import_(
    file: Path,
    *,
    out: str,
    tools: Annotated[list[str] | None, Multi] = None,
    model: str | None = None,
    split_turns: bool = True,
    bfcl_dir: Path | None = None,
) -> None:
    """Import caller-written examples (JSONL) as a dataset, after lint.

    Parameters
    ----------
    file
        JSONL: full {"messages","tools"} examples or {"request","calls"} pairs (pairs need --tools).
    out
        Name of the new dataset.
    tools
        Tool sources to validate request/calls pairs against and draw distractors from.
    model
        MLX model folder or cache name for the chat-template round-trip check.
    split_turns
        One example per assistant turn so every turn gets loss under prompt masking.
    """
    from tooltune.data.datasets import import_dataset

    info = import_dataset(
        context.workspace(),
        out,
        file,
        specs=tools,
        model_path=_model_path(model),
        split=split_turns,
        bfcl_dir=bfcl_dir,
    )
    context.console.print(f"dataset {info.name}  {info.hash}\n  counts: {info.counts}", highlight=False)
    if info.lint is not None:
        context.console.print("  lint: " + info.lint.summary().replace("\n", "\n  "), highlight=False)


@app.command(name="split-turns")
def split_turns_cmd(file: Path, *, out: Path) -> None:
    """Write FILE with multi-turn examples split so each assistant turn is the last message once.

    Parameters
    ----------
    file
        Input JSONL of examples.
    out
        Output JSONL path (written atomically).
    """
    from tooltune.data.examples import split_turns
    from tooltune.data.store import read_examples
    from tooltune.workspace import atomic_write_text

    exs = read_examples(file)
    pieces = [p for ex in exs for p in split_turns(ex)]
    atomic_write_text(out, "".join(p.to_line() + "\n" for p in pieces))
    context.console.print(f"{len(exs)} examples -> {len(pieces)} in {out}", highlight=False)


def _parse_mix(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    try:
        mix = json.loads(text)
    except json.JSONDecodeError as e:
        raise TooltuneError(f"--mix: not JSON ({e.msg} at column {e.colno}): {text}") from None
    if not isinstance(mix, dict) or not all(isinstance(v, int | float) for v in mix.values()):
        raise TooltuneError(f'--mix: want an object of kind weights like {{"single": 0.5}}, got {text}')
    return {str(k): float(v) for k, v in mix.items()}


phrasebook_app = cyclopts.App(
    name="phrasebook", help="Phrasebooks: how people ask for a tool set's tools (docs/PHRASEBOOKS.md)."
)
app.command(phrasebook_app)


def _checked_book(path: Path, tools: list[str]) -> Any:
    """Load and fit a book to the tools, printing what was skipped (the rest is used)."""
    from tooltune.data.phrasebook import load_phrasebook
    from tooltune.data.phrasebook_check import check_phrasebook
    from tooltune.data.phrasebook_fill import drop_unfillable
    from tooltune.data.tool_sources import load_tool_specs

    specs = load_tool_specs(tools)
    text = load_phrasebook(path)
    checked = drop_unfillable(check_phrasebook(text, specs), specs, text=text)
    for issue in checked.errors:
        context.console_err.print(f"[yellow]skipped[/] {issue}", highlight=False)
    return checked


@phrasebook_app.command(name="lint")
def phrasebook_lint(
    file: Path,
    *,
    tools: Annotated[list[str], Multi],
    samples: int = 3,
    as_json: Annotated[bool, Parameter(name="--json")] = False,
) -> int:
    """Check a phrasebook against its tools: every slot a parameter or named value, every required
    parameter in every request, values that fit the schemas, requests that fill to grounded calls.

    Parameters
    ----------
    file
        The phrasebook (YAML or JSON).
    tools
        Tool sources, as for `data generate --tools`.
    samples
        Filled requests to print per tool (0: none).
    """
    import random

    from tooltune.data.phrasebook import load_phrasebook
    from tooltune.data.phrasebook_check import check_phrasebook
    from tooltune.data.phrasebook_fill import DataBook, drop_unfillable
    from tooltune.data.tool_sources import load_tool_specs

    specs = load_tool_specs(tools)
    text = load_phrasebook(file)
    checked = drop_unfillable(check_phrasebook(text, specs), specs, text=text)
    book = DataBook(checked, specs)
    rng = random.Random(0)
    shown = {
        t.name: [r for r in (book.request(rng, t.name) for _ in range(samples)) if r is not None]
        for t in specs
        if book.covers(t)
    }
    if as_json:
        out = {
            "ok": not checked.errors,
            "counts": checked.book.counts(),
            "issues": [i.model_dump() for i in checked.issues],
            "samples": {k: [{"request": t, "arguments": a} for t, a in v] for k, v in shown.items()},
        }
        context.console.print_json(json.dumps(out))
    else:
        for issue in checked.issues:
            colour = "red" if issue.severity == "error" else "yellow"
            context.console.print(f"[{colour}]{issue.severity:7}[/] {issue}", highlight=False)
        for name, rows in shown.items():
            for text, args in rows:
                context.console.print(f"  {name}: {text!r} -> {json.dumps(args)}", highlight=False)
        context.console.print(
            f"{file}: {len(checked.errors)} error(s) (entries skipped), {len(checked.warnings)} warning(s); "
            f"usable: {checked.book.counts()}",
            highlight=False,
        )
    return 1 if checked.errors else 0


@phrasebook_app.command(name="draft")
def phrasebook_draft(
    *,
    tools: Annotated[list[str], Multi],
    teacher: str,
    out: Path,
    teacher_model: str = "default",
    model: str | None = None,
    tries: int = 2,
    seed: int = 0,
    concurrency: int = 8,
    rounds: int = 1,
) -> None:
    """Have a model draft a phrasebook for the tools, one entry per tool; drafts that fail the checks
    are dropped and counted. Writes a YAML file to read, edit and pass to `data generate --phrasebook`.

    Parameters
    ----------
    tools
        Tool sources, as for `data generate --tools`.
    teacher
        Base URL of an OpenAI-compatible endpoint (mlx_lm.server, LM Studio, Ollama...), or "self":
        the model (--model) served while drafting.
    out
        The YAML file to write (refused if it exists).
    teacher_model
        Model name to send to the teacher.
    tries
        Drafts asked per tool until one gives a usable request template.
    seed
        Sampling seed of the first tool's first draft (each tool and try gets its own); used only with
        --concurrency 1, since mlx_lm.server batches only requests that carry no seed.
    concurrency
        Drafts asked at once (a tool's rounds are drafts of their own). A batching server
        (mlx_lm.server) writes several drafts in little more than the time of one, so the default asks
        for up to 8 together; 1 drafts one at a time, reproducibly from --seed.
    rounds
        Drafts per tool, merged into one entry (templates, values and near misses of each; a model
        writes about ten templates a draft).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tooltune.data.phrasebook_draft import (
        draft_with_teacher,
        draft_workers,
        drafted_header,
        phrasebook_yaml,
    )
    from tooltune.data.teacher import SELF, open_teacher
    from tooltune.data.tool_sources import load_tool_specs
    from tooltune.workspace import atomic_write_text

    if out.exists():
        raise TooltuneError(f"{out} exists; choose another --out (drafts never overwrite a book)")
    specs = load_tool_specs(tools)
    if rounds < 1 or tries < 1:
        raise TooltuneError(f"--rounds and --tries must be at least 1 (got {rounds} and {tries})")
    draft_workers(concurrency, len(specs) * rounds)  # a bad --concurrency is refused before a model is served
    mp = _model_path(model, required=teacher == SELF)
    with (
        open_teacher(teacher, model_path=mp, settings=context.settings(), model=teacher_model) as t,
        Progress(TextColumn("drafting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 console=context.console_err, transient=True) as bar,
    ):  # fmt: skip
        assert t is not None
        task = bar.add_task("draft", total=len(specs) * rounds)
        book, stats = draft_with_teacher(
            t,
            specs,
            name=out.stem,
            tries=tries,
            seed=seed,
            concurrency=concurrency,
            rounds=rounds,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    header = drafted_header(
        teacher if teacher != SELF else f"the model itself ({mp})",
        stats.seconds,
        draft_workers(concurrency, len(specs) * rounds),
        ", ".join(tools),
        f"{out} --tools ...",
        rounds,
    )
    atomic_write_text(out, phrasebook_yaml(book, header))
    for r in stats.tools:
        context.console.print(
            f"  {r.tool}: kept {r.kept or 'nothing'}, dropped {r.dropped}, tries {r.tries}"
            + (f", unreadable {r.unreadable}" if r.unreadable else "")
            + (f", ran on {r.ran_on}" if r.ran_on else "")
            + (f", failed {r.failed} ({r.reasons[-1]})" if r.failed else ""),
            highlight=False,
        )
    context.console.print(
        f"{out}: {stats.kept_requests} request templates for {len(book.tools)}/{len(specs)} tools, "
        f"{stats.dropped} drafted entries dropped, {stats.seconds:.0f} s",
        highlight=False,
    )


@app.command
@cli_options(SampleConfig)
def sample(
    dataset: str,
    *,
    out: str,
    adapter: str | None = None,
    model: str | None = None,
    **options: Any,
) -> None:
    """Sample the model's own answers to a dataset's requests, each judged against the request's truth.

    The answers (k per request, at a temperature) come from mlx_lm.server as an eval would get them, and
    are scored by the eval scorer; the samples set keeps every answer with its verdicts and reason codes,
    for `tooltune data pick` (rejection-sampled SFT data, preference pairs).

    Parameters
    ----------
    dataset
        Dataset whose requests are sampled.
    out
        Name of the new samples set (immutable, like datasets).
    adapter
        Adapter to sample (default: the base model).
    model
        Base model (default: the adapter's base, else the default model).
    """
    import anyio
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tooltune.data.onpolicy import sample_dataset
    from tooltune.serving.model_server import ModelServer

    cfg = build_config(SampleConfig, options)
    ws = context.workspace()
    settings = context.settings()
    path = context.served_model_path(model, adapter)

    async def main() -> Any:
        with Progress(
            TextColumn("sampling"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=context.console_err,
            transient=True,
        ) as bar:
            task = bar.add_task("sample", total=None)
            async with ModelServer(path, settings=settings, adapter=adapter, record_active=False) as server:
                return await sample_dataset(
                    server,
                    ws,
                    dataset,
                    out,
                    cfg,
                    adapter=adapter,
                    on_progress=lambda done, total, *_: bar.update(task, completed=done, total=total),
                )

    info = anyio.run(main)
    context.console.print(
        f"samples {info.name}  {info.hash}\n  counts: {info.counts}\n"
        f"  wrong answers by reason: {info.reasons}\n"
        f"  per kind: {info.per_kind}"
        + (f"\n  skipped: {len(info.skipped)} requests" if info.skipped else ""),
        highlight=False,
    )


@app.command
@cli_options(PickConfig)
def pick(samples: str, *, out: str, **options: Any) -> None:
    """Turn a samples set into training data: the model's own correct answers (``--method rejection``)
    or preference pairs (``--method pairs``), as a new dataset.

    Parameters
    ----------
    samples
        Samples set made by `tooltune data sample`.
    out
        Name of the new dataset (examples, or pairs).
    """
    from tooltune.data.onpolicy import pick_training_data

    cfg = build_config(PickConfig, options)
    done = pick_training_data(context.workspace(), samples, out=out, **cfg.model_dump())
    context.console.print(
        f"dataset {done.dataset} ({done.method})\n  counts: {done.counts}\n  picked: {done.picked}",
        highlight=False,
    )
    if done.method == "pairs":
        context.console.print(
            f"  always right: {done.always_right} requests, kept for the training run's answer check",
            highlight=False,
        )
    start = f" --init-adapter {done.samples_adapter}" if done.samples_adapter else ""
    method = "dpo" if done.method == "pairs" else "rejection"
    context.console.print(
        f"  train on them: tooltune train --dataset {done.dataset} --method {method}{start}"
    )
