"""Import a BFCL data file (``BFCL_v4_<category>.json``) as an eval suite.

BFCL's question/answer layout maps one-to-one onto our case format; only the schemas need their
BFCL type names (dict, float, tuple, any) normalised so the same chat template and scorer serve
both. Answers are looked up in ``possible_answer/<same name>`` beside the file unless given; a file
without answers (irrelevance) means every case expects no call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tooltune.errors import first_error
from tooltune.evals.suite import EvalCase, EvalSuite, SuiteError, save_suite, suite_hash
from tooltune.toolspec import ToolSpec
from tooltune.workspace import Workspace, validate_name


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for lineno, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            raise SuiteError(f"{path}:{lineno}: not valid JSON ({e.msg}); is this a BFCL data file?") from e
    return rows


def bfcl_category(path: Path) -> str:
    """``BFCL_v4_simple_python.json`` -> ``simple_python``."""
    return re.sub(r"^BFCL_v\d+_", "", path.stem)


def import_bfcl(
    file: Path | str,
    *,
    answers: Path | str | None = None,
    name: str | None = None,
    ws: Workspace | None = None,
) -> EvalSuite:
    """Build a suite from a BFCL file; with ``ws`` it is saved as ``<ws>/evals/suites/<name>.jsonl``."""
    file = Path(file)
    if not file.is_file():
        raise SuiteError(f"{file} does not exist; pass a BFCL_v*_<category>.json file")
    category = bfcl_category(file)
    name = validate_name(name or f"bfcl-{category.replace('_', '-')}", "suite name")
    answer_path = Path(answers) if answers else file.parent / "possible_answer" / file.name
    truth: dict[str, Any] | None = None
    if answer_path.is_file():
        truth = {row["id"]: row["ground_truth"] for _, row in _read_jsonl(answer_path)}
    elif answers:
        raise SuiteError(f"answers file {answer_path} does not exist")
    elif "irrelevance" not in category:
        raise SuiteError(
            f"no answers found at {answer_path}; pass --answers FILE "
            "(only irrelevance files may lack answers)"
        )

    cases: list[EvalCase] = []
    for lineno, row in _read_jsonl(file):
        try:
            turns = row["question"]
            messages = [m for turn in turns for m in turn] if turns and isinstance(turns[0], list) else turns
            tools = [ToolSpec.from_openai(f).to_openai() for f in row["function"]]
            if truth is None:
                expected: Any = "no_call"
            elif row["id"] not in truth:
                raise SuiteError(f"{file}:{lineno}: no answer for case {row['id']!r} in {answer_path}")
            else:
                expected = truth[row["id"]]
            cases.append(
                EvalCase(id=row["id"], category=category, messages=messages, tools=tools, expected=expected)
            )
        except SuiteError:
            raise
        except (KeyError, TypeError) as e:
            raise SuiteError(
                f"{file}:{lineno}: missing or malformed field {e}; is this a BFCL data file?"
            ) from e
        except ValidationError as e:
            err = first_error(e, default="case")
            raise SuiteError(f"{file}:{lineno}: {err.where}: {err.msg}") from e
    text = "".join(c.model_dump_json(exclude_none=True) + "\n" for c in cases)
    suite = EvalSuite(name=name, source=str(file), hash=suite_hash(text), cases=cases)
    if ws is not None:
        save_suite(ws, suite)
    return suite
