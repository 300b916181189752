"""bench/train_speed.py and bench/eval_speed.py run end to end on the tiny model: the side-by-side
variants, the same losses / the same answers, and a ``speedup`` key, as the committed results have."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(args: list[str], tmp_path: Path) -> dict:
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if k != "TOOLTUNE_BLAS_THREADS"}
    env["TOOLTUNE_CACHE"] = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, *args, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_train_speed_compares_the_two_heads_with_the_same_losses(tiny_model: Path, tmp_path: Path) -> None:
    doc = _bench(
        ["bench/train_speed.py", "--model", str(tiny_model), "--iters", "4", "--threads", "1"], tmp_path
    )
    heads = {v["answer_only_head"]: v for v in doc["variants"]}
    assert heads[True]["lm_head"] == "answer positions" and heads[False]["lm_head"] == "every position"
    assert doc["same_losses"] is True and heads[True]["train_losses"] == heads[False]["train_losses"]
    assert set(doc["speedup"]) == {"threads1_every_position", "threads1_answer_only"}
    assert doc["matmul_limit_gflops"]["1"] > 0 and 0 < heads[True]["fraction_of_limit"] < 1


@pytest.mark.slow
def test_eval_speed_runs_both_layouts_on_the_same_cases(tiny_model: Path, tmp_path: Path) -> None:
    args = ["bench/eval_speed.py", "--model", str(tiny_model), "--bfcl-n", "2", "--coding-per-category", "1"]
    doc = _bench([*args, "--old-threads", "1", "--new-threads", "2"], tmp_path)
    for name, same in doc["same_answers"].items():
        assert same["cases"] > 0 and doc["layouts"]["old"][name]["cases"] == same["cases"]
        assert doc["speedup"][name] > 0
    assert doc["layouts"]["old"]["blas_threads"] == 1 and doc["layouts"]["new"]["blas_threads"] == 2
    assert set(doc["limits"]) == {"1", "2"} and doc["limits"]["1"]["prompt_tps"] > 0


@pytest.mark.slow
def test_eval_speed_pairs_alternates_the_two_server_layouts(tiny_model: Path, tmp_path: Path) -> None:
    args = [
        "bench/eval_speed_pairs.py",
        "--model",
        str(tiny_model),
        "--pairs",
        "2",
        "--coding-per-category",
        "1",
    ]
    doc = _bench([*args, "--threads", "1"], tmp_path)
    order = [(r["pair"], r["layout"]) for r in doc["runs"]]
    assert order == [(0, "new"), (0, "new_prompt_1"), (1, "new_prompt_1"), (1, "new")]  # flipped each pair
    assert [r["server_args"] for r in doc["runs"][:2]] == [[], ["--prompt-concurrency", "1"]]
    assert all(r["cases"] == doc["runs"][0]["cases"] > 0 and r["wall_s"] > 0 for r in doc["runs"])
    assert all(r["same_answers_as_first"] == r["cases"] for r in doc["runs"])  # temperature 0, one model
    assert doc["ratio_of_means"] > 0 and set(doc["wall_s"]) == {"new", "new_prompt_1"}


def test_the_agent_task_bench_names_its_data_by_the_generator_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bench/agent_tasks.py reused any dataset of the same size, share and seed, whichever generator made
    it: the name now carries the generator's version, so a newer one makes (and trains on) its own."""
    from bench_import import bench_module

    agent_tasks = bench_module("agent_tasks")
    name = agent_tasks.dataset_name(600, 0.4, 0)
    assert name.startswith("agent-coding-n600-tj0.4-s0-g") and name.endswith(
        agent_tasks.GENERATOR_VERSION.rsplit("/", 1)[-1]
    )
    monkeypatch.setattr(agent_tasks, "GENERATOR_VERSION", "tooltune-data/999")
    assert agent_tasks.dataset_name(600, 0.4, 0) == "agent-coding-n600-tj0.4-s0-g999"


@pytest.mark.slow
def test_eval_throughput_records_each_level_s_answers(tiny_model: Path, tmp_path: Path) -> None:
    """A claim of "the same answers" at another concurrency must be readable from the result file."""
    out = tmp_path / "throughput.json"
    env = {k: v for k, v in os.environ.items() if k != "TOOLTUNE_BLAS_THREADS"}
    env |= {"TOOLTUNE_CACHE": str(tmp_path / "cache"), "TOOLTUNE_HOME": str(tmp_path / "ws")}
    args = ["--model", str(tiny_model), "--levels", "1,2", "--per-category", "1", "--max-tokens", "8"]
    done = subprocess.run(
        [sys.executable, "bench/eval_throughput.py", *args, "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    one, two = doc["levels"]["1"], doc["levels"]["2"]
    assert len(one["answers"]) == doc["cases"] > 0 and set(two["answers"]) == set(one["answers"])
    assert one["same_answers_as_first"] == doc["cases"]
    same = sum(one["answers"][k] == two["answers"][k] for k in one["answers"])
    assert two["same_answers_as_first"] == same


def test_agent_tasks_native_only_skips_the_lenient_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--native-only runs the native pair alone (half the eval time on a short device lease)."""
    import argparse
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from types import SimpleNamespace

    import anyio
    from bench_import import bench_module

    from tooltune.evals.tasks import load_task_suite
    from tooltune.workspace import Workspace

    agent_tasks = bench_module("agent_tasks")
    passes: list[bool] = []
    guards: list[tuple[object, tuple[str, ...]]] = []
    concurrencies: list[object] = []

    @asynccontextmanager
    async def fake_server(model: Path, settings: object) -> AsyncIterator[SimpleNamespace]:
        yield SimpleNamespace()

    async def fake_eval(server: object, suite: object, **kw: object) -> tuple[list[object], None]:
        passes.append(bool(kw["lenient_tools"]))
        guards.append((kw["repeat_guard"], tuple(kw["run_ids"])))  # type: ignore[arg-type]
        concurrencies.append(kw["concurrency"])
        report = SimpleNamespace(summary=lambda: {"success": 0.5, "tasks": 2})
        return [report, report], None

    mcnemar = SimpleNamespace(model_dump=lambda: {"p_value": 1.0})
    monkeypatch.setattr(agent_tasks, "ModelServer", fake_server)
    monkeypatch.setattr(agent_tasks, "evaluate_tasks_on_server", fake_eval)
    monkeypatch.setattr(agent_tasks, "compare_task_runs", lambda ws, a, b: SimpleNamespace(mcnemar=mcnemar))
    ws = Workspace(tmp_path / "ws").ensure()
    assert load_task_suite("coding-tasks").tasks
    for native_only, want in ((True, [False]), (False, [False, True])):
        passes.clear()
        args = argparse.Namespace(
            limit=2, max_tokens=8, native_only=native_only, repeat_guard=True, concurrency=3
        )
        out = anyio.run(agent_tasks.evaluate, None, ws, tmp_path / "model", "some-adapter", args)
        assert passes == want and set(out) == ({"native"} if native_only else {"native", "lenient"})
    # and its result file is its own: a quick read never replaces a full result
    model = tmp_path / "qwen-x"
    assert agent_tasks.result_path(model, native_only=True).name == "agent_tasks_qwen-x_native.json"
    assert agent_tasks.result_path(model, native_only=False).name == "agent_tasks_qwen-x.json"
    assert (
        agent_tasks.result_path(model, native_only=True, repeat_guard=False).name
        == "agent_tasks_qwen-x_native_noguard.json"
    )
    # the agent's repeat guard reaches the runs, and runs with and without it never share an id
    assert all(g is True and all(i.endswith("-rg") for i in ids) for g, ids in guards)
    guards.clear()
    args = argparse.Namespace(limit=2, max_tokens=8, native_only=True, repeat_guard=False, concurrency=1)
    anyio.run(agent_tasks.evaluate, None, ws, tmp_path / "model", "some-adapter", args)
    assert guards == [(False, ("agent-native-base-model-n2", "agent-native-some-adapter-n2"))]
    assert concurrencies == [3, 3, 3, 1]  # --concurrency reaches every run


def test_agent_tasks_trains_on_data_offering_every_tool_when_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--offer-all-tools reaches the generator (and the data's name), --max-seq-length the training run
    (and the adapter's name); without them, the names and settings are those of the earlier runs."""
    import argparse
    from types import SimpleNamespace

    from bench_import import bench_module

    from tooltune.workspace import Workspace

    agent_tasks = bench_module("agent_tasks")
    seen: dict[str, list[object]] = {"gen": [], "train": []}
    monkeypatch.setattr(
        agent_tasks,
        "generate_dataset",
        lambda ws, name, specs, cfg, model_path: seen["gen"].append((name, cfg)),
    )
    monkeypatch.setattr(
        agent_tasks,
        "start_training",
        lambda cfg, settings, name: seen["train"].append((name, cfg)) or SimpleNamespace(id="j"),
    )
    monkeypatch.setattr(agent_tasks, "follow_events", lambda settings, job_id, poll_interval: iter(()))
    monkeypatch.setattr(
        agent_tasks, "get_run", lambda settings, job_id: SimpleNamespace(status="succeeded", registered=True)
    )
    ws = Workspace(tmp_path / "ws").ensure()
    base = dict(n=500, trajectory_share=0.4, seed=0, iters=600)
    plain = agent_tasks.train(None, ws, tmp_path / "m", argparse.Namespace(
        **base, offer_all_tools=False, max_seq_length=None
    ))  # fmt: skip
    every = agent_tasks.train(None, ws, tmp_path / "m", argparse.Namespace(
        **base, offer_all_tools=True, max_seq_length=2048
    ))  # fmt: skip
    (plain_data, plain_cfg), (every_data, every_cfg) = seen["gen"]
    assert not plain_cfg.offer_all_tools and every_cfg.offer_all_tools and every_data == plain_data + "-all"
    assert plain == f"{plain_data}-i600" and every == f"{every_data}-i600-L2048"
    assert [cfg.max_seq_length for _, cfg in seen["train"]] == [1024, 2048]


@pytest.mark.slow
def test_agent_data_cost_times_both_sides_and_records_the_ratio(tiny_model: Path, tmp_path: Path) -> None:
    """bench/agent_data_cost.py on the tiny model: both sides train, every tool is offered on one, the
    ratio is the sides' seconds a step (the tiny tokenizer's examples are longer: room for them)."""
    out = tmp_path / "cost.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "agent_data_cost.py"), "--model", str(tiny_model),
         "--iters", "2", "--lengths", "4096", "4096", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    drawn, every = doc["sides"]["drawn"], doc["sides"]["all"]
    assert drawn["status"] == every["status"] == "succeeded"
    assert (drawn["offer_all_tools"], every["offer_all_tools"]) == (False, True)
    assert every["example_tokens"]["median"] > drawn["example_tokens"]["median"]
    assert every["example_tokens"]["over_max_seq_length"] == 0
    assert doc["step_cost_ratio_all_to_drawn"] == round(every["s_per_step"] / drawn["s_per_step"], 2)
    assert doc["machine"]["date"] and "agent_data_cost.py" in doc["command"]


@pytest.mark.slow
def test_task_concurrency_runs_each_level_and_compares_the_endings(tiny_model: Path, tmp_path: Path) -> None:
    """bench/task_concurrency.py on the tiny model: each level's run works the same tasks at its
    concurrency (recorded by the run itself), the first level is the reference for speed and endings."""
    out = tmp_path / "tc.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "task_concurrency.py"), "--model", str(tiny_model),
         "--limit", "2", "--levels", "1,2", "--repeats", "2", "--workspace", str(tmp_path / "ws"),
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    one, two = doc["levels"]
    assert (one["concurrency"], two["concurrency"]) == (1, 2) and one["tasks"] == two["tasks"] == 2
    # every level ran twice, each on its own server (its own run); the median of the two is its time
    assert doc["repeats"] == doc["repeats_done"] == 2 and len(one["walls"]) == len(two["walls"]) == 2
    assert one["wall_s"] == round(statistics.median(one["walls"]), 1)
    assert two["spread"] == round((max(two["walls"]) - min(two["walls"])) / two["wall_s"], 2)
    assert one["speedup"] == 1.0 and two["speedup"] == round(one["wall_s"] / two["wall_s"], 2)
    assert len([d for d in (tmp_path / "ws" / "task-runs").iterdir() if d.name.startswith("tc-")]) == 4
    for levels in ("1,1", "1,,4", "0,2"):
        bad = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "task_concurrency.py"), "--levels", levels],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert bad.returncode == 2 and "--levels must be distinct" in bad.stderr, bad.stderr[-500:]
    assert "same_ending_as_first" not in one and 0 <= two["same_ending_as_first"] <= 2
    runs = tmp_path / "ws" / "task-runs"
    assert json.loads((runs / two["run_id"] / "run.json").read_text())["concurrency"] == 2
    assert doc["machine"]["date"] and "task_concurrency.py" in doc["command"] and doc["limit"] == 2
