"""Datasets are immutable and content-addressed; splits are deterministic; failures write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tooltune.data.datasets import import_dataset
from tooltune.data.examples import DataError, Example, ExampleMeta
from tooltune.data.store import (
    DatasetMeta,
    dataset_examples,
    list_datasets,
    load_dataset,
    save_dataset,
    split_examples,
)
from tooltune.errors import WorkspaceError
from tooltune.workspace import Workspace


def ex(i: int) -> Example:
    return Example(
        messages=[
            {"role": "user", "content": f"question number {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ],
        meta=ExampleMeta(kind="chitchat", source="test", group=f"g{i}"),
    )


def test_save_load_list_and_immutability(tmp_path: Path) -> None:
    ws = Workspace(tmp_path).ensure()
    exs = [ex(i) for i in range(30)]
    info = save_dataset(ws, "d", exs, DatasetMeta(sources=["test"], seed=1))
    assert info.hash.startswith("sha256:") and sum(info.counts.values()) == 30
    assert info.counts["valid"] > 0
    loaded = load_dataset(ws, "d")
    assert (
        loaded.hash == info.hash
        and loaded.counts == info.counts
        and loaded.path == tmp_path / "datasets" / "d"
    )
    assert json.loads((loaded.path / "dataset.json").read_text())["hash"] == info.hash
    assert sorted(e.user_texts()[0] for e in dataset_examples(loaded)) == sorted(
        e.user_texts()[0] for e in exs
    )
    assert [d.name for d in list_datasets(ws)] == ["d"]
    assert save_dataset(ws, "d", exs, DatasetMeta(sources=["test"], seed=1)).hash == info.hash  # idempotent
    with pytest.raises(WorkspaceError, match="immutable"):
        save_dataset(ws, "d", exs[:-1], DatasetMeta(sources=["test"], seed=1))
    with pytest.raises(WorkspaceError, match="immutable"):
        save_dataset(ws, "d", exs, DatasetMeta(sources=["test"], seed=2))  # same data, other provenance
    assert load_dataset(ws, "d").hash == info.hash


def test_split_deterministic_and_valid_never_empty() -> None:
    exs = [ex(i) for i in range(200)]
    a, b = split_examples(exs), split_examples(list(reversed(exs)))
    assert {k: sorted(e.to_line() for e in v) for k, v in a.items()} == {
        k: sorted(e.to_line() for e in v) for k, v in b.items()
    }
    assert 120 <= len(a["train"]) <= 185
    for n in range(10, 16):
        parts = split_examples([ex(i) for i in range(n)])
        assert parts["valid"] and parts["train"]
    # pieces of one conversation stay in one split
    same = [Example(messages=e.messages, meta=ExampleMeta(group="one")) for e in exs[:5]]
    assert sum(1 for v in split_examples(same).values() if v) == 1
    # a few examples none of which lands in train all train (an on-policy pick of 3 requests, say)
    assert split_examples(exs[:3], split_by=lambda e: "valid") == {"train": exs[:3], "valid": [], "test": []}


def test_empty_and_bad_names_write_nothing(tmp_path: Path) -> None:
    ws = Workspace(tmp_path).ensure()
    with pytest.raises(DataError, match="empty"):
        save_dataset(ws, "e", [], DatasetMeta())
    with pytest.raises(WorkspaceError):
        save_dataset(ws, "../x", [ex(1)], DatasetMeta())
    assert list(ws.datasets.iterdir()) == []
    with pytest.raises(DataError, match="not found"):
        load_dataset(ws, "missing")


def test_import_lints_and_refuses_bad_file(tmp_path: Path, tiny_model: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    good = tmp_path / "good.jsonl"
    good.write_text(
        "\n".join(
            json.dumps(
                {
                    "request": f"Read src/file_{i}.py",
                    "calls": [{"name": "read_file", "arguments": {"path": f"src/file_{i}.py"}}],
                }
            )
            for i in range(12)
        )
        + "\n"
    )
    info = import_dataset(ws, "imp", good, specs=["builtin:coding"], model_path=tiny_model)
    assert sum(info.counts.values()) == 12 and info.lint is not None and info.lint.ok
    assert info.lint.checks["roundtrip"].status == "passed"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {"type": "function", "function": {"name": "read_file", "arguments": {"path": 1}}}
                        ],
                    },
                ],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "read_file",
                            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
                        },
                    }
                ],
            }
        )
        + "\n"
    )
    with pytest.raises(
        DataError, match=r"bad\.jsonl:1 \[messages\[1\]\.tool_calls\[0\]\.function\.arguments\.path\]"
    ):
        import_dataset(ws, "bad", bad, model_path=tiny_model)
    assert not (ws.datasets / "bad").exists()
    assert not [p for p in ws.datasets.iterdir() if p.name.startswith(".")]
