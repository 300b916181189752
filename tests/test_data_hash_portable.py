"""A dataset's hash depends on its examples and the settings that made them, never on where the clone, the
workspace, the BFCL data or the model folder sit on this machine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tooltune.data.datasets import generate_dataset
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.store import DatasetInfo

FUNCTION = {
    "name": "convert_temperature",
    "description": "Convert a temperature between Celsius and Fahrenheit.",
    "parameters": {
        "type": "dict",
        "properties": {
            "value": {"type": "float", "description": "The temperature to convert."},
            "unit": {"type": "string", "enum": ["C", "F"], "description": "The unit to convert to."},
        },
        "required": ["value", "unit"],
    },
}


def _bfcl_dir(where: Path, *, extra_eval_file: bool = False) -> Path:
    """A BFCL-shaped folder: one file whose functions we generate for (and whose question the leakage
    check reads), and optionally a second eval file, which only changes what the leakage check found."""
    where.mkdir(parents=True)
    case = {
        "id": "simple_python_0",
        "question": [[{"role": "user", "content": "Which river flows through the middle of Vienna?"}]],
        "function": [FUNCTION],
    }
    (where / "BFCL_v4_simple_python.json").write_text(json.dumps(case) + "\n")
    if extra_eval_file:
        other = {**case, "id": "irrelevance_0"}
        other["question"] = [[{"role": "user", "content": "Who painted the ceiling of the Sistine Chapel?"}]]
        (where / "BFCL_v4_irrelevance.json").write_text(json.dumps(other) + "\n")
    return where


def _generate(root: Path, tiny_model: Path, *, seed: int = 3, extra_eval_file: bool = False) -> DatasetInfo:
    bfcl = _bfcl_dir(root / "somewhere" / "bench" / "bfcl", extra_eval_file=extra_eval_file)
    model = root / "models" / tiny_model.name
    shutil.copytree(tiny_model, model)
    info, _ = generate_dataset(
        root / "clone" / ".tooltune",
        "d",
        ["builtin:coding", f"bfcl:{bfcl / 'BFCL_v4_simple_python.json'}"],
        GenerateConfig(n=40, seed=seed),
        model_path=model,
        bfcl_dir=bfcl,
    )
    return info


def test_same_generation_elsewhere_has_the_same_hash(tmp_path: Path, tiny_model: Path) -> None:
    a = _generate(tmp_path / "a", tiny_model)
    b = _generate(tmp_path / "elsewhere" / "deeper" / "b", tiny_model)
    # the record keeps where the files were found (provenance)...
    assert a.sources != b.sources and str(tmp_path / "a") in a.sources[1]
    # ...but the same examples made the same way are the same dataset
    assert [(a.path / f"{s}.jsonl").read_text() for s in ("train", "valid", "test")] == [
        (b.path / f"{s}.jsonl").read_text() for s in ("train", "valid", "test")
    ]
    assert a.hash == b.hash

    # another BFCL file next to it changes what the leakage check ran against, not the data or its hash
    c = _generate(tmp_path / "c", tiny_model, extra_eval_file=True)
    assert a.lint is not None and c.lint is not None
    assert a.lint.checks["leakage"].context != c.lint.checks["leakage"].context
    assert "BFCL_v4_irrelevance.json" in c.lint.checks["leakage"].context
    assert a.lint.checks["leakage"].detail == c.lint.checks["leakage"].detail == "0 leaked"
    assert c.hash == a.hash

    # the settings still count
    assert _generate(tmp_path / "d", tiny_model, seed=4).hash != a.hash
