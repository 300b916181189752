"""bench/phrasebook_suites.py's variants: the settings that differ from the generator's defaults are
named in the dataset names (so two variants never share a dataset) and passed to the generator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from bench_import import bench_module

from tooltune.data.generate_config import GenerateConfig
from tooltune.workspace import Workspace


def _module() -> ModuleType:
    return bench_module("phrasebook_suites")


def _args(**kw: object) -> argparse.Namespace:
    defaults = {"max_tools": None, "phrasebook_share": None, "mix": None, "train": None, "tool_odds": None}
    return argparse.Namespace(**{**defaults, **kw})


def test_default_settings_keep_the_committed_dataset_names() -> None:
    assert _module().data_variant(_args()) == ({}, "")


def test_each_changed_setting_is_named_and_reaches_the_generator() -> None:
    mod = _module()
    mix = '{"single": 1, "no_call": 0}'
    changed, suffix = mod.data_variant(_args(max_tools=8, phrasebook_share=1.0, mix=mix))
    assert changed == {"max_tools": 8, "phrasebook_share": 1.0, "mix": {"single": 1, "no_call": 0}}
    assert suffix.startswith("-t8-pb1-mix") and len(suffix) == len("-t8-pb1-mix") + 6
    GenerateConfig(n=10, **changed)  # every name is a generator setting
    other = mod.data_variant(_args(max_tools=8, phrasebook_share=1.0, mix='{"single": 1, "no_call": 0.1}'))[1]
    assert other != suffix  # another mix, another dataset
    assert mod.data_variant(_args(tool_odds="even")) == ({}, "")  # the default names nothing
    odds = mod.data_variant(_args(max_tools=8, tool_odds="intents"))
    assert odds == ({"max_tools": 8, "tool_odds": "intents"}, "-t8-ointents")
    GenerateConfig(n=10, **odds[0])


def test_training_settings_are_checked_named_in_the_adapter_and_kept_apart() -> None:
    mod = _module()
    assert mod.train_variant(_args()) == ({}, "")
    changed, suffix = mod.train_variant(_args(train='{"num_layers": -1, "rank": 16}'))
    assert changed == {"num_layers": -1, "rank": 16}
    assert suffix.startswith("-r") and len(suffix) == 8
    assert mod.train_variant(_args(train='{"rank": 16, "num_layers": -1}'))[1] == suffix  # order-free
    assert mod.train_variant(_args(train='{"rank": 32}'))[1] != suffix
    # one recipe, one name: defaults name nothing, an alias is its field, 16 is 16.0
    assert mod.train_variant(_args(train="{}")) == ({}, "")
    assert mod.train_variant(_args(train='{"rank": 8}')) == ({}, "")
    alias = mod.train_variant(_args(train='{"alpha": 16}'))
    assert alias == mod.train_variant(_args(train='{"scale": 16.0}')) and alias[0] == {"scale": 16.0}
    dataset = "pb-hand-n500-s0-issue-tracker"
    assert mod.adapter_name(dataset, 600, 0, 3072, suffix) == f"{dataset}-i600-t0-L3072{suffix}"
    assert mod.adapter_name(dataset, 600, 0, 3072) == f"{dataset}-i600-t0-L3072"  # committed names kept
    with pytest.raises(SystemExit, match="rank"):
        mod.train_variant(_args(train='{"rank": 0}'))  # TrainConfig's own check
    with pytest.raises(SystemExit, match="ranks"):
        mod.train_variant(_args(train='{"ranks": 8}'))  # no such setting
    with pytest.raises(SystemExit, match="iters, seed"):
        mod.train_variant(_args(train='{"seed": 1, "iters": 9}'))  # options of their own
    with pytest.raises(SystemExit, match="model_layers"):
        mod.train_variant(_args(train='{"model_layers": 9}'))  # filled in when a run resolves
    with pytest.raises(SystemExit, match="settings of their own"):
        mod.train_variant(_args(train='{"lora_parameters": {"rank": 4, "iters": 9}}'))
    with pytest.raises(SystemExit, match="JSON object"):
        mod.train_variant(_args(train="[1]"))
    with pytest.raises(SystemExit, match="not JSON"):
        mod.train_variant(_args(train="{rank: 4}"))


def test_the_training_settings_reach_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _module()
    ws = Workspace(tmp_path).ensure()
    seen: list[Any] = []

    def start(config: Any, settings: Any, name: str) -> Any:  # what training leaves behind, at once
        seen.append(config)
        (ws.adapters / name).mkdir(parents=True)
        (ws.adapters / name / "tooltune.json").write_text(json.dumps({"run_id": "r1"}))
        ws.run_dir("r1").mkdir(parents=True, exist_ok=True)
        (ws.run_dir("r1") / "metrics.json").write_text(json.dumps({"time": {"steps_s": 1.0}}))
        return SimpleNamespace(id="r1")

    monkeypatch.setattr(mod, "start_training", start)
    monkeypatch.setattr(mod, "follow_events", lambda *a, **k: iter(()))
    monkeypatch.setattr(mod, "get_run", lambda *a: SimpleNamespace(status="succeeded", registered=True))
    train = mod.train_variant(_args(train='{"num_layers": -1, "rank": 16}'))
    got = mod.stage_train(None, ws, Path("/m"), "ds", 600, 0, 3072, train)
    assert got["adapter"] == "ds-i600-t0-L3072" + train[1]
    assert (seen[0].num_layers, seen[0].rank, seen[0].iters, seen[0].max_seq_length) == (-1, 16, 600, 3072)
    mod.stage_train(None, ws, Path("/m"), "ds", 600, 0, 3072)  # the default recipe: another adapter
    assert seen[1].rank == 8 and seen[1].num_layers is None


def test_a_suite_whose_eval_fails_leaves_the_other_suites_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A switch the server refuses (as a probe check did for a 1.5B adapter on an H100) loses that
    suite's results only: the next suite is still evaluated and the failure is named."""
    import anyio

    from tooltune.serving.model_server import ServedModelMismatchError

    mod = _module()
    ws = Workspace(tmp_path / "ws").ensure()
    served: list[tuple[str, str | None]] = []

    class Server:
        def __init__(self, *a: Any, **kw: Any) -> None: ...

        async def __aenter__(self) -> Server:
            return self

        async def __aexit__(self, *exc: object) -> None: ...

    async def run_suite_on_server(server: Any, suite: Any, *, adapter: str | None, **kw: Any) -> str:
        if adapter == "bad":
            raise ServedModelMismatchError("the probe answer resembles neither")
        served.append((suite.name, adapter))
        return f"report of {adapter}"

    monkeypatch.setattr(mod, "ModelServer", Server)
    monkeypatch.setattr(mod, "run_suite_on_server", run_suite_on_server)
    monkeypatch.setattr(mod, "load_suite", lambda name, ws: SimpleNamespace(name=name, cases=[1, 2]))
    failed: dict[str, str] = {}
    adapters = {"issue-tracker": {"hand": "bad"}, "notes-calendar": {"hand": "good"}}
    out = anyio.run(mod.stage_eval, None, ws, Path("/m"), adapters, 4, failed)
    assert list(out) == ["notes-calendar"] and out["notes-calendar"][1] == {
        "baseline": "report of None",
        "hand": "report of good",
    }
    assert list(failed) == ["issue-tracker"] and "resembles neither" in failed["issue-tracker"]
    assert served == [("issue-tracker", None), ("notes-calendar", None), ("notes-calendar", "good")]


def test_books_per_suite() -> None:
    mod = _module()
    assert mod.books("schema", ["issue-tracker"]) == []
    assert len(mod.books("hand", ["issue-tracker"])) == 1 and len(mod.books("hand", list(mod.SUITES))) == 2


def test_results_from_a_copied_workspace_find_each_adapter_s_training_run(tmp_path: Path) -> None:
    # --from-workspace: runs trained on another machine are found by the adapter name this script gives
    mod = _module()
    ws = Workspace(tmp_path)
    dataset = mod.dataset_name("hand", 500, 0, ({"max_tools": 8}, "-t8"), "issue-tracker")
    adapter = mod.adapter_name(dataset, 600, 0, 3072)
    assert (dataset, adapter) == (
        "pb-hand-n500-s0-t8-issue-tracker",
        "pb-hand-n500-s0-t8-issue-tracker-i600-t0-L3072",
    )
    for rid, name, status, registered in [
        ("r1", adapter, "failed", False),
        ("r2", "other", "succeeded", True),
        ("r3", adapter, "succeeded", True),
        ("r4", adapter, "succeeded", False),  # a later run whose adapter was not registered
    ]:
        (ws.runs / rid).mkdir(parents=True)
        run = {
            "id": rid,
            "adapter_name": name,
            "status": status,
            "registered": registered,
            "finished": f"2026-12-05T15:0{rid[1]}:00Z",
            "device": "Device(gpu, 0)",
            "train_seconds": 9.5,
        }
        (ws.runs / rid / "run.json").write_text(json.dumps(run))
        (ws.runs / rid / "metrics.json").write_text(json.dumps({"time": {"steps_s": 8.0}}))
    got = mod.copied_training(ws, adapter, 600)
    assert got["run_id"] == "r3" and got["device"] == "Device(gpu, 0)" and got["time"] == {"steps_s": 8.0}
    with pytest.raises(SystemExit, match="no succeeded training run"):
        mod.copied_training(ws, "never-trained", 600)
    assert mod.eval_run_id("issue-tracker", None, Path("/m/qwen")) == "issue-tracker-baseline-qwen"
    # the generator that made the data, from the datasets' copied records
    for name, version in [("d1", "tooltune-data/12"), ("d2", "tooltune-data/12")]:
        ws.dataset_dir(name).mkdir(parents=True)
        (ws.dataset_dir(name) / "dataset.json").write_text(json.dumps({"generator_version": version}))
    assert mod.copied_generators(ws, ["d1", "d2"]) == ["tooltune-data/12"]
    assert mod.copied_generators(ws, ["d1", "not-copied"]) == ["tooltune-data/12", "unknown"]


@pytest.mark.parametrize("suite", ["issue_tracker", "notes_calendar"])
@pytest.mark.parametrize("tag", ["_h6a_ps_t8_i600", "_h6c_ps_t8_i600_all_r16"])
def test_the_committed_h6_results_are_their_runs_answers(suite: str, tag: str) -> None:
    """H6's result files (one GPU) and the per-case answers brought back with them agree: each rate is
    the passes among the committed answers of the run it names."""
    root = Path(__file__).resolve().parents[1] / "bench" / "results"
    doc = json.loads((root / f"phrasebook_{suite}{tag}.json").read_text())
    for label, entry in [("baseline", doc["baseline"]), ("hand", doc["sources"]["hand"])]:
        rows = (root / "phrasebook_gpu_h6" / entry["run_id"] / "cases.jsonl").read_text().splitlines()
        passed = [json.loads(r)["native"]["passed"] for r in rows]
        assert len(passed) == doc["cases"], label
        rate = entry["native"] if label == "baseline" else entry["adapter_native"]
        assert rate == round(sum(passed) / len(passed), 4), label
    if tag != "_h6a_ps_t8_i600":
        assert doc["train_settings"] == {"num_layers": -1, "rank": 16}
        assert doc["sources"]["hand"]["adapter"].endswith(
            _module().train_variant(_args(train='{"rank": 16, "num_layers": -1}'))[1]
        )


def test_write_results_rebuilds_a_committed_result_from_its_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """H6c's issue-tracker file written again from its committed answers and training record: every
    number, the generator's and the trainer's settings come out as committed (what the machine and the
    command were is the run's own, not rebuilt)."""
    mod = _module()
    root = Path(__file__).resolve().parents[1] / "bench" / "results"
    committed = json.loads((root / "phrasebook_issue_tracker_h6c_ps_t8_i600_all_r16.json").read_text())
    ws = Workspace(tmp_path / "ws")
    for entry in (committed["baseline"], committed["sources"]["hand"]):
        src, dst = root / "phrasebook_gpu_h6" / entry["run_id"], ws.reports / entry["run_id"]
        dst.mkdir(parents=True)
        for name in ("cases.jsonl", "run.json"):
            (dst / name).write_bytes((src / name).read_bytes())
    mix = json.dumps(committed["generator_settings"]["mix"])
    args = _args(max_tools=8, phrasebook_share=1.0, mix=mix, train='{"num_layers": -1, "rank": 16}')
    args.model, args.sources, args.per_suite = Path("/m/qwen2.5-coder-0.5b-instruct"), ["hand"], True
    args.max_seq_length, args.tag = 3072, "_rebuilt"
    variant = mod.data_variant(args)
    hand = committed["sources"]["hand"]
    key = ("hand", "issue-tracker")
    trained = {key: {k: hand[k] for k in ("adapter", "run_id", "time", "iters")}}
    evals = mod.copied_evals(ws, args.model, {"issue-tracker": {"hand": hand["adapter"]}})
    (tmp_path / "bench" / "results").mkdir(parents=True)
    monkeypatch.setattr(mod, "REPO", tmp_path)
    mod.write_results(args, variant, ws, {key: hand["dataset"]}, trained, evals, {"here": True},
                      generators=committed["generator"], wall_s=1.0)  # fmt: skip
    rebuilt = json.loads(
        (tmp_path / "bench" / "results" / "phrasebook_issue_tracker_rebuilt.json").read_text()
    )
    own = ("command", "machine", "wall_s")
    assert {k: v for k, v in rebuilt.items() if k not in own} == {
        k: v for k, v in committed.items() if k not in own
    }
    assert rebuilt["train_settings"] == {"num_layers": -1, "rank": 16} and rebuilt["machine"] == {
        "here": True
    }
    # where the dataset's record is at hand, the books it was made from are named with their digests
    record = ws.dataset_dir(hand["dataset"])
    record.mkdir(parents=True)
    book = "phrasebook:issue-tracker-hand@bcc36e10b4850f8d"
    (record / "dataset.json").write_text(json.dumps({"sources": ["builtin:issue-tracker", book]}))
    mod.write_results(args, variant, ws, {key: hand["dataset"]}, trained, evals, {"here": True},
                      generators=committed["generator"], wall_s=1.0)  # fmt: skip
    again = json.loads((tmp_path / "bench" / "results" / "phrasebook_issue_tracker_rebuilt.json").read_text())
    assert again["sources"]["hand"]["books"] == [book]


_SEED_RUNS = [
    *[
        (f"phrasebook_notes_calendar_{tag}_ps_t8_i600_s{s}.json", source, f"phrasebook_gpu_{tag[:3]}")
        for tag, source in (("h12_dated", "dated"), ("h13_dated1", "dated1"))
        for s in (0, 1, 2)
    ],
    *[
        (f"phrasebook_{suite}_h6b_ps_t8_n1000_i1200{tail}.json", "hand", "phrasebook_gpu_h10")
        for suite in ("issue_tracker", "notes_calendar")
        for tail in ("", "_s1", "_s2", "_s3")
    ],
]


@pytest.mark.parametrize(("name", "source", "answers"), _SEED_RUNS)
def test_the_committed_seed_runs_are_their_answers(name: str, source: str, answers: str) -> None:
    """Each seed run of H10, H12 and H13 (one GPU) and the answers brought back with it agree: the
    adapter's native rate, overall and per category, is what the committed answers of the run it names
    give, case for case."""
    root = Path(__file__).resolve().parents[1] / "bench" / "results"
    doc = json.loads((root / name).read_text())
    entry = doc["sources"][source]
    lines = (root / answers / entry["run_id"] / "cases.jsonl").read_text().splitlines()
    rows = [json.loads(r) for r in lines]
    assert len(rows) == doc["cases"]
    assert entry["adapter_native"] == round(sum(r["native"]["passed"] for r in rows) / len(rows), 4)
    for category, rates in entry["categories"].items():
        mine = [r["native"]["passed"] for r in rows if r["category"] == category]
        assert rates["native"] == round(sum(mine) / len(mine), 4), category
