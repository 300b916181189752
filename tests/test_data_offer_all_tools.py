"""``offer_all_tools``: examples offer the tools the way an agent that always sends all of them does
(``tooltune serve`` sends its eight, in one order): the whole set, in the set's order, wherever the
answer allows it; a refusal of a tool that is not offered and a near miss keep out the tools that would
serve the request."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tooltune.coding_tools import CODING_TOOLS
from tooltune.data.builders import ExampleBuilder, related_tools
from tooltune.data.datasets import generate_dataset
from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import DEFAULT_MIX, GenerateConfig
from tooltune.data.tool_sources import load_tool_specs
from tooltune.workspace import Workspace

ORDER = [t.name for t in CODING_TOOLS]
MIX = {**{k: v * 0.6 for k, v in DEFAULT_MIX.items()}, "trajectory": 0.4}


def test_coding_examples_offer_the_agents_eight_tools_in_its_order() -> None:
    tools = load_tool_specs(["builtin:coding"])
    assert [t.name for t in tools] == ORDER
    cfg = GenerateConfig(n=400, seed=0, mix=MIX, system_prompt="agent", offer_all_tools=True)
    res = generate_examples(tools, cfg)
    offered: Counter[str] = Counter()
    refusals = 0
    for ex in res.examples:
        names = [t["function"]["name"] for t in ex.tools]
        assert names == [n for n in ORDER if n in names], names  # the agent's order, never shuffled
        called = {c["function"]["name"] for m in ex.messages for c in m.get("tool_calls") or []}
        assert called <= set(names)
        offered["all" if names == ORDER else ex.meta.kind] += 1
        if ex.meta.kind in ("no_call", "near_miss") and not called and names != ORDER:
            refusals += 1  # a refusal or a near miss: never with a shell that could do the job
            assert "run_command" not in names, (ex.messages, names)
    # every example that calls, and most that answer in text, offer all eight; the rest are refusals of a
    # tool that is not offered and near misses, which keep out what would serve them
    assert offered["all"] >= 0.8 * len(res.examples) and refusals >= 5
    assert set(offered) - {"all"} <= {"no_call", "near_miss"}

    # the same config without it: a drawn few, shuffled (the generator's default, unchanged)
    drawn = generate_examples(tools, cfg.model_copy(update={"offer_all_tools": False}))
    assert max(len(ex.tools) for ex in drawn.examples) <= 6
    assert sum(len(ex.tools) == len(ORDER) for ex in drawn.examples) == 0


def test_a_refusal_or_near_miss_never_offers_what_would_serve_it() -> None:
    """The builder's choice, drawn by hand: ``offer`` keeps the allowed tools (and the drawn ones) in the
    set's order; with the option off it returns what was drawn."""
    tools = load_tool_specs(["builtin:coding"])
    on = ExampleBuilder(tools, GenerateConfig(offer_all_tools=True), None)
    off = ExampleBuilder(tools, GenerateConfig(), None)
    target = next(t for t in tools if t.name == "read_file")
    unrelated = [t for t in tools if not related_tools(t, target)]
    assert target not in unrelated and len(unrelated) < len(tools)
    drawn = [unrelated[-1], unrelated[0]]
    assert [t.name for t in on.offer(drawn, allowed=unrelated)] == [t.name for t in unrelated]
    assert off.offer(drawn, allowed=unrelated) == drawn
    assert [t.name for t in on.offer(drawn)] == ORDER


def test_the_option_is_recorded_only_when_on(tmp_path: Path, tiny_model: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    cfg = GenerateConfig(n=20, seed=1, kinds=["single"])
    plain, _ = generate_dataset(ws, "plain", ["builtin:coding"], cfg, model_path=tiny_model)
    every, _ = generate_dataset(
        ws,
        "every",
        ["builtin:coding"],
        cfg.model_copy(update={"offer_all_tools": True}),
        model_path=tiny_model,
    )
    assert "offer_all_tools" not in plain.stats and every.stats["offer_all_tools"] is True
    assert plain.hash != every.hash


def test_two_specs_of_one_name_are_offered_once() -> None:
    """A tool file may hold two versions of one tool: the example offers the one its call was drawn with."""
    tools = load_tool_specs(["builtin:coding"])
    other = tools[0].model_copy(update={"description": "Another read_file."})
    builder = ExampleBuilder([*tools, other], GenerateConfig(offer_all_tools=True), None)
    names = [t.name for t in builder.offer([other])]
    assert names == ORDER and builder.offer([other])[0].description == "Another read_file."
