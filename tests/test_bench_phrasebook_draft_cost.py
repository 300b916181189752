"""The committed drafting-cost results (bench/phrasebook_draft_cost.py) and the books they drafted: the
numbers add up per tool, and every drafted book still passes the checks it was kept by."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_import import bench_module

from tooltune.data.phrasebook import load_phrasebook
from tooltune.data.phrasebook_check import check_phrasebook
from tooltune.data.tool_sources import load_tool_specs

REPO = Path(__file__).resolve().parents[1]
RESULTS = sorted((REPO / "bench" / "results").glob("phrasebook_draft_cost_*.json"))


def test_book_names_are_the_ones_phrasebook_suites_reads() -> None:
    name = bench_module("phrasebook_draft_cost").book_name
    suites = bench_module("phrasebook_suites").SUITES
    assert [name(f"builtin:{s}") for s in suites] == list(suites.values())
    assert name("tools/my-tools.json") == "my_tools"


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_each_level_adds_up_and_its_book_passes_the_checks(path: Path) -> None:
    result = json.loads(path.read_text())
    assert result["levels"] and result["machine"]["date"] and " python bench/" in f" {result['command']}"
    assert result.get("draft_prompt_version", 2) in (1, 2, 3)  # recorded since prompt 3 was tried (H22)
    for level in result["levels"]:
        tools = level["per_tool"]
        assert len(tools) == level["tools"] and sum(t["tries"] for t in tools) == level["drafts_asked"]
        assert sum(t["kept"].get("requests", 0) for t in tools) == level["request_templates_kept"]
        assert sum(t["dropped"] for t in tools) == level["entries_dropped"]
        assert level["tools_with_entries"] == sum(bool(t["kept"]) for t in tools)
        assert level["completion_tokens_per_second"] == pytest.approx(
            level["completion_tokens"] / level["seconds"], rel=0.01
        )
    assert bool(result["book"]) == ("--book-dir" in result["command"])
    if result["book"]:
        assert not Path(result["book"]).is_absolute(), "a committed result names its book in the repository"
        specs = load_tool_specs([result["tools"]])
        checked = check_phrasebook(load_phrasebook(REPO / result["book"]), specs)
        assert not checked.errors, [i.message for i in checked.errors][:3]
        first = result["levels"][0]
        assert len(checked.book.tools) == first["tools_with_entries"]
        assert sum(len(p.requests) for p in checked.book.tools.values()) == first["request_templates_kept"]
