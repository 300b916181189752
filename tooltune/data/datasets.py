"""Datasets made two ways: generated from tool specs, or imported from the caller's file. Either way the
exact lines to be written are linted first, and nothing is stored when lint finds errors."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from tooltune.data import coding_requests
from tooltune.data.caller_examples import expand_caller_records
from tooltune.data.examples import DataError, Example, read_jsonl, split_turns
from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GENERATOR_VERSION, GenerateConfig, GenerateResult
from tooltune.data.lint import LintReport, lint_items
from tooltune.data.phrasebook import BookText, CheckedBook
from tooltune.data.phrasebook_check import check_phrasebook
from tooltune.data.phrasebook_fill import DataBook, drop_unfillable
from tooltune.data.similarity import LeakIndex
from tooltune.data.store import DatasetInfo, DatasetMeta, save_dataset
from tooltune.data.teacher import TEACHER_PROMPT_VERSION, Teacher
from tooltune.data.tool_sources import load_tool_specs
from tooltune.errors import WorkspaceError
from tooltune.workspace import Workspace, validate_name


def _book_stats(checked: list[CheckedBook]) -> dict[str, int]:
    """The usable entries of the books per section, summed, and how many were skipped."""
    out: dict[str, int] = {}
    for c in checked:
        for k, v in c.book.counts().items():
            out[k] = out.get(k, 0) + v
    return {**out, "dropped_entries": sum(len(c.errors) for c in checked)}


def _lint_failure(name: str, report: LintReport) -> DataError:
    first = "; ".join(str(i) for i in report.errors[:3])
    return DataError(
        f"dataset {name!r} failed lint with {len(report.errors)} error(s), nothing was written: {first}"
    )


def generate_dataset(
    ws: Workspace | Path,
    name: str,
    specs: list[str],
    config: GenerateConfig | None = None,
    *,
    model_path: Path | str | None = None,
    examples_file: Path | None = None,
    teacher: Teacher | None = None,
    bfcl_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    phrasebook: BookText | CheckedBook | list[BookText | CheckedBook] | None = None,
) -> tuple[DatasetInfo, GenerateResult]:
    """Tool specs -> examples -> lint (with the model's template when given) -> immutable dataset.

    ``phrasebook``: how people ask for these tools, one book or several (one per tool set; a tool takes
    the first that phrases it); a file's entries that do not fit the tools are
    dropped and counted in the dataset's stats). Returns ``(DatasetInfo, GenerateResult)``; nothing is
    written when lint finds errors.
    """
    cfg = config or GenerateConfig()
    ws = ws if isinstance(ws, Workspace) else Workspace(Path(ws))
    validate_name(name, "dataset name")
    if (ws.datasets / name).exists():
        raise WorkspaceError(
            f"dataset {name!r} already exists; datasets are immutable — choose another --out"
        )
    tools = load_tool_specs(specs)
    caller: list[Example] = []
    if examples_file is not None:
        recs = [(f"{examples_file}:{i}", obj) for i, obj in read_jsonl(Path(examples_file))]
        caller = expand_caller_records(recs, tools, seed=cfg.seed)
    given = phrasebook if isinstance(phrasebook, list) else [] if phrasebook is None else [phrasebook]
    checked = [
        drop_unfillable(check_phrasebook(b, tools), tools, text=b) if isinstance(b, BookText) else b
        for b in given
    ]
    books = [DataBook(c, tools) for c in checked]
    leak = LeakIndex.for_workspace(ws.root, bfcl_dir)
    result = generate_examples(
        tools, cfg, caller=caller, leak_index=leak, teacher=teacher, progress=progress, books=books
    )
    result.phrasebook_skipped = [str(i) for c in checked for i in c.errors]
    report = _lint_in_memory(result.examples, model_path=model_path, leak_index=leak)
    if not report.ok:
        raise _lint_failure(name, report)
    meta = DatasetMeta(
        sources=list(specs)
        + ([f"examples:{Path(examples_file).name}"] if examples_file else [])
        + [f"phrasebook:{c.book.name or 'unnamed'}@{c.book.digest()}" for c in checked],
        generator_version=GENERATOR_VERSION,
        seed=cfg.seed,
        kinds=list(cfg.kinds),
        stats={
            "counts": result.counts,
            "conversations": result.conversations,
            "dropped_duplicates": result.dropped_duplicates,
            "dropped_leaked": result.dropped_leaked,
            "dropped_unverifiable": result.dropped_unverifiable,
            "tools": len(tools),
            "teacher": (
                {
                    **result.teacher.model_dump(),
                    "model": teacher.model,
                    "share": cfg.teacher_share,
                    "no_call_share": (
                        cfg.teacher_share if cfg.teacher_no_call_share is None else cfg.teacher_no_call_share
                    ),
                    "tries": cfg.teacher_tries,
                    "prompt": TEACHER_PROMPT_VERSION,
                }
                if result.teacher and teacher
                else None
            ),
            "split_turns": cfg.split_turns,
            **(
                {"phrasebook_share": cfg.phrasebook_share}
                if checked or any(map(coding_requests.covers, tools))
                else {}
            ),
            # recorded only when used, so datasets made without a phrasebook file keep their hashes
            **({"phrasebook": _book_stats(checked)} if checked else {}),
            # recorded only when used, so datasets made without twins keep their hashes
            **({"absent_tool_share": cfg.absent_tool_share} if cfg.absent_tool_share is not None else {}),
            **({"contrast_share": cfg.contrast_share} if cfg.contrast_share else {}),
            **({"tool_odds": cfg.tool_odds} if cfg.tool_odds != "even" else {}),
            **({"offer_all_tools": True} if cfg.offer_all_tools else {}),
            **(
                {"call_question_share": cfg.call_question_share}
                if cfg.call_question_share is not None
                else {}
            ),
            **(
                {"near_miss_contrast_share": cfg.near_miss_contrast_share}
                if cfg.near_miss_contrast_share
                else {}
            ),
        },
        lint=report,
    )
    return save_dataset(ws, name, result.examples, meta), result


def _lint_in_memory(
    examples: list[Example], *, model_path: Path | str | None, leak_index: LeakIndex | None
) -> LintReport:
    """Lint exactly the lines that will be written (one temp file), so the stored report is real."""
    with tempfile.TemporaryDirectory(prefix="tooltune-lint-") as tmp:
        f = Path(tmp) / "examples.jsonl"
        f.write_text("".join(ex.to_line() + "\n" for ex in examples), encoding="utf-8")
        report = lint_items([(f, "examples.jsonl")], model_path=model_path, leak_index=leak_index)
    if model_path is not None:
        report.model = Path(model_path).name
    return report


def import_dataset(
    ws: Workspace | Path,
    name: str,
    file: Path,
    *,
    specs: list[str] | None = None,
    model_path: Path | str | None = None,
    split: bool = True,
    bfcl_dir: Path | None = None,
    seed: int = 0,
) -> DatasetInfo:
    """Caller-written examples (full lines or request/calls pairs; pairs need ``specs``) -> lint -> dataset.
    Leaked or invalid examples are errors here: the caller should fix their file, not have it edited."""
    ws = ws if isinstance(ws, Workspace) else Workspace(Path(ws))
    tools = load_tool_specs(specs) if specs else []
    recs = [(f"{file}:{i}", obj) for i, obj in read_jsonl(Path(file))]
    if not recs:
        raise DataError(f"{file}: no examples in the file")
    if any("messages" not in obj for _, obj in recs) and not tools:
        raise DataError(f"{file}: request/calls pairs need tools; pass --tools")
    examples = expand_caller_records(recs, tools, seed=seed)
    # First lint the caller's lines where they stand, so errors name *their* file:line.

    with tempfile.TemporaryDirectory(prefix="tooltune-import-") as tmp:
        src = Path(tmp) / Path(file).name
        lines = [""] * max(int(w.rsplit(":", 1)[1]) for w, _ in recs)
        for (w, _), ex in zip(recs, examples, strict=True):
            lines[int(w.rsplit(":", 1)[1]) - 1] = ex.to_line()
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        first = lint_items([(src, Path(file).name)], model_path=model_path, leak_index=None)
    if not first.ok:
        raise _lint_failure(name, first)
    if split:
        examples = [p for ex in examples for p in split_turns(ex)]
    leak = LeakIndex.for_workspace(ws.root, bfcl_dir)
    report = _lint_in_memory(examples, model_path=model_path, leak_index=leak)
    if not report.ok:
        raise _lint_failure(name, report)
    meta = DatasetMeta(
        sources=[f"import:{Path(file).name}", *(specs or [])],
        generator_version=GENERATOR_VERSION,
        seed=seed,
        kinds=["caller"],
        stats={"split_turns": split},
        lint=report,
    )
    return save_dataset(ws, name, examples, meta)
