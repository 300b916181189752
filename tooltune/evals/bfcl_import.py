"""Import a BFCL data file (``BFCL_v4_<category>.json``) as an eval suite.

BFCL's question/answer layout maps one-to-one onto our case format; only the schemas need their
BFCL type names (dict, float, tuple, any) normalised so the same chat template and scorer serve
both. Answers are looked up in ``possible_answer/<same name>`` beside the file unless given; a file
without answers (irrelevance) means every case expects no call.

Answers are kept as BFCL's checker (``ast_checker.py``) reads them, odd ones included: an empty
allowed-values list, at the top or for a key of a dict answer, is kept and no call passes it there
(as in BFCL). One kind is rewritten without changing any verdict: an answer parameter the tool's
schema lacks, with ``""`` among its values, is dropped (BFCL fails every call that passes it and
accepts leaving it out; our scorer does the same with it gone), and listed in ``adjusted``. A case
that cannot be scored (a malformed row, no answer, an answer that does not fit its schema) is left
out and listed in ``skipped`` as ``file:line (id): why``; the rest of the file is imported.
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


def _read_jsonl(path: Path, label: str, skipped: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """The file's JSON objects with their line numbers; a line that is not one is listed in ``skipped``
    as ``<label>:<line>``."""
    rows = []
    for lineno, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            skipped.append(f"{label}:{lineno}: not valid JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            skipped.append(f"{label}:{lineno}: not a JSON object")
            continue
        rows.append((lineno, row))
    return rows


def _answer_label(answer_path: Path, file: Path) -> str:
    """How skip reasons name the answers file: ``possible_answer/BFCL_v4_x.json`` (it shares its name
    with the question file)."""
    return (
        f"{answer_path.parent.name}/{answer_path.name}" if answer_path.name == file.name else answer_path.name
    )


def bfcl_category(path: Path) -> str:
    """``BFCL_v4_simple_python.json`` -> ``simple_python``."""
    return re.sub(r"^BFCL_v\d+_", "", path.stem)


@dataclass
class BfclImport:
    """The imported suite, the cases left out and the answers rewritten, each ``file:line (id): why``.

    ``skipped`` holds the cases that were not imported and lines of either file that could not be read
    (a bad line of the answers file is named ``possible_answer/<file>:<line>``); ``adjusted`` the
    imported cases whose answer was rewritten without changing any verdict.
    """

    suite: EvalSuite
    skipped: list[str] = field(default_factory=list)
    adjusted: list[str] = field(default_factory=list)
    skipped_ids: list[str] = field(default_factory=list)
    """The ids of the skipped cases whose row named one, in file order."""


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
    Answers BFCL's checker accepts are kept as they are, e.g. a parameter (or a key of a dict answer)
    whose allowed-values list is empty, which no answer passes there (and none passes here); an answer
    parameter outside the schema that may be left out is dropped (see the module docstring).
    """
    file = Path(file)
    if not file.is_file():
        raise SuiteError(f"{file} does not exist; pass a BFCL_v*_<category>.json file")
    category = bfcl_category(file)
    name = validate_name(name or f"bfcl-{category.replace('_', '-')}", "suite name")
    answer_path = Path(answers) if answers else file.parent / "possible_answer" / file.name
    truth: dict[str, Any] | None = None
    skipped: list[str] = []
    adjusted: list[str] = []
    skipped_ids: list[str] = []
    if answer_path.is_file():
        truth = {}
        label = _answer_label(answer_path, file)
        for lineno, row in _read_jsonl(answer_path, label, skipped):
            if "ground_truth" not in row or not isinstance(row.get("id"), str):
                skipped.append(f"{label}:{lineno}: not an answer (needs a string 'id' and 'ground_truth')")
                continue
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
    for lineno, row in _read_jsonl(file, file.name, skipped):
        case_id = row.get("id")
        where = f"{file.name}:{lineno}" + (f" ({case_id})" if case_id is not None else "")
        notes: list[str] = []
        why = None
        try:
            case = _case(row, category, truth, answer_path, notes)
        except SuiteError as e:
            why = str(e)
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            why = f"missing or malformed field {e}"
        except ValidationError as e:
            err = first_error(e, default="case")
            why = f"{err.where}: {err.msg}"
        else:
            if case.id in seen:
                why = f"duplicate case id {case.id!r}"
        if why is not None:
            skipped.append(f"{where}: {why}")
            if case_id is not None:
                skipped_ids.append(str(case_id))
            continue
        seen.add(case.id)
        cases.append(case)
        adjusted += [f"{where}: {note}" for note in notes]
    if not cases:
        shown = "; ".join(skipped[:3])
        raise SuiteError(f"{file}: no case could be imported ({len(skipped)} skipped: {shown})")
    for reason in skipped:
        log.warning("bfcl.case_skipped", reason=reason)
    for note in adjusted:
        log.info("bfcl.answer_adjusted", note=note)
    text = "".join(c.model_dump_json(exclude_none=True) + "\n" for c in cases)
    suite = EvalSuite(name=name, source=str(file), hash=suite_hash(text), cases=cases)
    if ws is not None:
        save_suite(ws, suite)
    return BfclImport(suite, skipped, adjusted, skipped_ids)


def _case(
    row: dict[str, Any],
    category: str,
    truth: dict[str, Any] | None,
    answer_path: Path,
    notes: list[str],
) -> EvalCase:
    turns = row["question"]
    messages = [m for turn in turns for m in turn] if turns and isinstance(turns[0], list) else turns
    tools = [ToolSpec.from_openai(f).to_openai() for f in row["function"]]
    if truth is None:
        expected: Any = "no_call"
    elif row["id"] not in truth:
        raise SuiteError(f"no answer for case {row['id']!r} in {answer_path.name}")
    else:
        expected = _without_unscored_params(truth[row["id"]], tools, notes)
    return EvalCase(id=row["id"], category=category, messages=messages, tools=tools, expected=expected)


def _without_unscored_params(expected: Any, tools: list[dict[str, Any]], notes: list[str]) -> Any:
    """The answer less the parameters outside their tool's schema that may be left out.

    BFCL's ``simple_function_checker`` fails a call that passes a parameter its schema lacks
    ("Unexpected parameter") and accepts leaving it out when ``""`` is among its allowed values, so
    such an answer parameter only ever means "leave it out", which is what our scorer does once it is
    gone; each one dropped is described in ``notes``. One without ``""`` fails every call there, so the
    case cannot be scored: :class:`SuiteError`. Anything else that is not a well-formed answer is
    returned unchanged for validation to name.
    """
    if not isinstance(expected, list):
        return expected
    props = {spec.name: spec.properties for spec in (ToolSpec.from_openai(t) for t in tools)}
    out: list[Any] = []
    for call in expected:
        if not (isinstance(call, dict) and len(call) == 1):
            out.append(call)
            continue
        name, params = next(iter(call.items()))
        if name not in props or not isinstance(params, dict):
            out.append(call)
            continue
        outside = [p for p in params if p not in props[name] and isinstance(params[p], list)]
        for p in outside:
            if "" not in params[p]:
                raise SuiteError(
                    f"answer parameter {name}.{p} is not in the tool's schema and may not be left out: "
                    "no call can pass (BFCL's checker fails every answer to this case)"
                )
            notes.append(
                f"answer parameter {name}.{p} (allowed {params[p]!r}) is not in the tool's schema and may be "
                "left out: dropped (BFCL's checker fails any call that passes it, as ours does)"
            )
        out.append({name: {p: v for p, v in params.items() if p not in outside}})
    return out
