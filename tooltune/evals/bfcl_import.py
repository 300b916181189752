"""Import a BFCL data file (``BFCL_v4_<category>.json``) as an eval suite.

BFCL's question/answer layout maps one-to-one onto our case format; only the schemas need their
BFCL type names (dict, float, tuple, any) normalised so the same chat template and scorer serve
both. Answers are looked up in ``possible_answer/<same name>`` beside the file unless given; a file
without answers (irrelevance) means every case expects no call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tooltune.errors import first_error
from tooltune.evals.suite import EvalCase, EvalSuite, SuiteError, save_suite, suite_hash
from tooltune.logs import get_logger
from tooltune.toolspec import ToolSpec
from tooltune.workspace import Workspace, validate_name

log = get_logger(__name__)


def _read_jsonl(path: Path, skipped: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """The file's JSON objects with their line numbers; a line that is not one is listed in ``skipped``."""
    rows = []
    for lineno, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            skipped.append(f"{path.name}:{lineno}: not valid JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            skipped.append(f"{path.name}:{lineno}: not a JSON object")
            continue
        rows.append((lineno, row))
    return rows


def bfcl_category(path: Path) -> str:
    """``BFCL_v4_simple_python.json`` -> ``simple_python``."""
    return re.sub(r"^BFCL_v\d+_", "", path.stem)


@dataclass
class BfclImport:
    """The imported suite and the cases left out, each with the reason (file:line, id, why)."""

    suite: EvalSuite
    skipped: list[str] = field(default_factory=list)


def import_bfcl(
    file: Path | str,
    *,
    answers: Path | str | None = None,
    name: str | None = None,
    ws: Workspace | None = None,
) -> BfclImport:
    """Build a suite from a BFCL file; with ``ws`` it is saved as ``<ws>/evals/suites/<name>.jsonl``.

    A case that cannot be read (a malformed row, no answer for its id, an answer that does not fit its
    schema) is left out and listed with its reason: one bad line never sinks the rest of the file.
    Answers BFCL's checker accepts are kept as they are, e.g. a parameter whose allowed-values list is
    empty, which no answer passes there (and none passes here).
    """
    file = Path(file)
    if not file.is_file():
        raise SuiteError(f"{file} does not exist; pass a BFCL_v*_<category>.json file")
    category = bfcl_category(file)
    name = validate_name(name or f"bfcl-{category.replace('_', '-')}", "suite name")
    answer_path = Path(answers) if answers else file.parent / "possible_answer" / file.name
    truth: dict[str, Any] | None = None
    skipped: list[str] = []
    if answer_path.is_file():
        truth = {}
        for _, row in _read_jsonl(answer_path, skipped):
            if "id" in row and "ground_truth" in row:
                truth[row["id"]] = row["ground_truth"]
    elif answers:
        raise SuiteError(f"answers file {answer_path} does not exist")
    elif "irrelevance" not in category:
        raise SuiteError(
            f"no answers found at {answer_path}; pass --answers FILE "
            "(only irrelevance files may lack answers)"
        )

    cases: list[EvalCase] = []
    seen: set[str] = set()
    for lineno, row in _read_jsonl(file, skipped):
        where = f"{file.name}:{lineno}"
        try:
            case = _case(row, category, truth, answer_path)
        except SuiteError as e:
            skipped.append(f"{where}: {e}")
            continue
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            skipped.append(f"{where}: missing or malformed field {e}")
            continue
        except ValidationError as e:
            err = first_error(e, default="case")
            skipped.append(f"{where} ({row.get('id', '?')}): {err.where}: {err.msg}")
            continue
        if case.id in seen:
            skipped.append(f"{where}: duplicate case id {case.id!r}")
            continue
        seen.add(case.id)
        cases.append(case)
    if not cases:
        shown = "; ".join(skipped[:3])
        raise SuiteError(f"{file}: no case could be imported ({len(skipped)} skipped: {shown})")
    for reason in skipped:
        log.warning("bfcl.case_skipped", reason=reason)
    text = "".join(c.model_dump_json(exclude_none=True) + "\n" for c in cases)
    suite = EvalSuite(name=name, source=str(file), hash=suite_hash(text), cases=cases)
    if ws is not None:
        save_suite(ws, suite)
    return BfclImport(suite, skipped)


def _case(row: dict[str, Any], category: str, truth: dict[str, Any] | None, answer_path: Path) -> EvalCase:
    turns = row["question"]
    messages = [m for turn in turns for m in turn] if turns and isinstance(turns[0], list) else turns
    tools = [ToolSpec.from_openai(f).to_openai() for f in row["function"]]
    if truth is None:
        expected: Any = "no_call"
    elif row["id"] not in truth:
        raise SuiteError(f"no answer for case {row['id']!r} in {answer_path.name}")
    else:
        expected = truth[row["id"]]
    return EvalCase(id=row["id"], category=category, messages=messages, tools=tools, expected=expected)
