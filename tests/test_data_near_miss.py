"""Near-miss no-call examples: the offered tool is about the topic but does a different job."""

from __future__ import annotations

import random

from tooltune.data.generate import generate_examples
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.near_miss import sibling_task, tool_covers
from tooltune.data.tool_sources import load_tool_specs
from tooltune.toolspec import ToolSpec

LOC = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}


def tool(name: str, description: str, parameters: dict | None = None) -> ToolSpec:
    return ToolSpec(name=name, description=description, parameters=parameters or LOC)


def swaps(t: ToolSpec) -> set[str]:
    rng = random.Random(0)
    out = set()
    for _ in range(40):
        got = sibling_task(rng, t)
        if got is not None:
            out.add(got[0].imperative())
    return out


def test_sibling_tasks() -> None:
    assert swaps(tool("calculate_sunrise", "Calculate the sunrise time for a location.")) == {
        "calculate the sunset time for a location"
    }
    assert swaps(tool("us_president", "Get the president of the United States in a given year.")) == {
        "get the vice president of the United States in a year"
    }
    assert swaps(tool("vp", "Get the vice president of a country.")) == set()  # not "vice vice president"
    assert swaps(tool("read_file", "Read a text file and return its contents.")) == {
        "write a text file and return its contents"
    }
    # a weather tool that reports humidity may answer a humidity question: no swap to it
    weather = tool("weather", "Get the temperature and humidity for a location.")
    assert swaps(weather) == set()
    # "create or overwrite": the verb is not the whole job, no verb swap
    assert swaps(tool("write_file", "Create or overwrite a text file.")) == set()
    assert swaps(tool("translate", "Translate a sentence into another language.")) == set()


def test_tool_covers() -> None:
    assert tool_covers(tool("get_local_time", "Current local time in a city."), "local time")
    assert not tool_covers(tool("get_weather", "Current weather in a city."), "local time")
    assert tool_covers(tool("run_command", "Run a shell command in the project."), "delete")  # a shell can


def test_near_miss_examples_offer_the_tool_and_nothing_that_does_the_job() -> None:
    specs = load_tool_specs(["builtin:coding"]) + [
        tool("calculate_sunrise", "Calculate the sunrise time for a location."),
        tool("calculate_sunset", "Calculate the sunset time for a location."),
        tool("get_president", "Get the president of a country."),
    ]
    res = generate_examples(specs, GenerateConfig(n=60, seed=1, kinds=["near_miss"], max_tools=4))
    assert len(res.examples) == 60
    by_name = {t.name for t in specs}
    seen_swaps = set()
    for ex in res.examples:
        assert not ex.calls() and ex.messages[-1]["role"] == "assistant" and ex.messages[-1]["content"]
        assert all(n in by_name for n in ex.tool_names())
        request = ex.user_texts()[0].lower()
        assert "run_command" not in ex.tool_names()  # could do any job
        if "sunset" in request:
            assert "calculate_sunset" not in ex.tool_names()
            assert "calculate_sunrise" in ex.tool_names()
            assert "sunrise" in ex.messages[-1]["content"]  # the answer says what the tool does instead
            seen_swaps.add("sunset")
        if "delete" in request:
            assert "list_dir" in ex.tool_names()
            seen_swaps.add("delete")
    assert {"sunset", "delete"} <= seen_swaps


def test_near_miss_keeps_its_share_when_few_tools_have_a_sibling() -> None:
    """Most real tools have no sibling word; the kind must look for one rather than give its draws away."""
    plain = [tool(f"lookup_{i}", f"Look up record number {i} of the archive.") for i in range(9)]
    pool = [*plain, tool("calculate_sunrise", "Calculate the sunrise time for a location.")]
    mix = {"single": 0.5, "near_miss": 0.5}
    res = generate_examples(pool, GenerateConfig(n=200, seed=0, mix=mix, kinds=["single", "near_miss"]))
    assert res.counts["near_miss"] >= 70  # ~100 expected; giving up on 9 of 10 tools would leave ~10


def test_teacher_rewrites_near_misses_but_never_back_into_the_tools_own_task() -> None:
    """Near misses go to the teacher too (else plain questions would mean "call" and stiff ones "don't");
    the sibling word must survive ("sunset") and a rewrite that says the tool's own task ("sunrise")
    is dropped as task_changed."""
    import json

    import httpx

    from tooltune.data.teacher import Teacher

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["messages"][-1]["content"].split("Request: ", 1)[1]
        asked.append(text)
        # odd calls also ask for the tool's own task; even ones keep the request, reworded
        out = f"{text} Or the sunrise?" if len(asked) % 2 else f"Quick one: {text}"
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": out}}]})

    sunrise = tool("calculate_sunrise", "Calculate the sunrise time for a location.")
    teacher = Teacher("http://t.test/v1", "t", client=httpx.Client(transport=httpx.MockTransport(handler)))
    cfg = GenerateConfig(n=30, seed=3, kinds=["near_miss"], max_tools=1, teacher_share=1.0, teacher_tries=1)
    res = generate_examples([sunrise], cfg, teacher=teacher)
    st = res.teacher
    assert st is not None and asked and all("sunset" in a for a in asked)
    assert st.dropped_task_changed > 0 and st.kept > 0
    texts = [e.user_texts()[0] for e in res.examples]
    assert sum(t.startswith("Quick one: ") for t in texts) == st.kept
    assert all("sunset" in t and "sunrise" not in t for t in texts)
