"""`tooltune demo` end to end on the tiny model: every stage runs, then a re-run skips every stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tooltune.adapters.active import read_active
from tooltune.adapters.registry import AdapterRegistry
from tooltune.config import Settings
from tooltune.data import datasets, generate_config
from tooltune.demo import QUICK_MIX, DemoConfig, run_demo
from tooltune.workspace import Workspace


@pytest.mark.slow
def test_demo_closed_loop_then_idempotent(
    settings: Settings, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = DemoConfig.preset(
        True, model=str(tiny_model), n_examples=40, iters=4, num_layers=2, eval_limit=1, concurrency=2
    )
    cfg = cfg.model_copy(update={"max_tokens": 24, "max_seq_length": 4096})
    stages: list[tuple[str, str]] = []
    steps: set[str] = set()
    result = run_demo(
        settings, cfg, on_stage=lambda s, m: stages.append((s, m)), on_step=lambda s, d, t: steps.add(s)
    )
    assert [s for s, _ in stages] == ["data", "train", "eval", "eval", "serve", "ask", "tasks"]
    assert {"data", "train", "eval:baseline", "eval:adapter", "tasks:baseline", "tasks:adapter"} <= steps
    # the agent tasks ran for both, next to the single-turn table, with both transcripts in one page
    assert [t.task for t in result.tasks] == ["config-dir-contents", "version-lookup"]
    assert (
        result.task_report_html is not None and "config-dir-contents" in result.task_report_html.read_text()
    )
    # ...and the adapter is served again afterwards, as the ask left it
    # the adapter was registered, evaluated, and is what the server ended up serving (verified)
    assert (settings.workspace / "adapters" / result.adapter / "adapters.safetensors").exists()
    assert result.served_adapter == result.adapter and result.served_verified
    # ...and recorded as the workspace's active adapter: a later `tooltune ask`/`serve` starts with it
    active = read_active(Workspace(settings.workspace))
    assert active is not None and active.adapter == result.adapter
    cats = {r.category for r in result.rows}
    assert {"simple", "no_call", "parallel", "multi_turn", "overall"} <= cats
    overall = next(r for r in result.rows if r.category == "overall")
    assert overall.n == len(cats) - 1  # one case per category with eval_limit=1
    # `adapters list` shows what the demo measured the adapter at
    (scores,) = AdapterRegistry(Workspace(settings.workspace)).get(result.adapter).eval_scores.values()
    assert scores["run_id"] == result.adapter_run and scores["n"] == overall.n
    assert result.report_html.exists() and "<svg" in result.report_html.read_text()
    assert result.ask_error is None and result.ask_answer is not None
    # the agent's system prompt went into half the training conversations
    train = (settings.workspace / "datasets" / result.dataset / "train.jsonl").read_text()
    assert "You are a coding assistant" in train
    # the demo's no-call split reached the generator and is recorded with the data
    meta = settings.workspace / "datasets" / result.dataset / "dataset.json"
    stats = json.loads(meta.read_text())["stats"]
    assert stats["absent_tool_share"] == cfg.absent_tool_share == 0.25
    # quick: one validation batch, at the first and the last step only (the run's own config says so)
    run_cfg = json.loads(next((settings.workspace / "runs").glob("*/config.json")).read_text())
    assert (run_cfg["val_batches"], run_cfg["steps_per_eval"]) == (1, cfg.iters)

    cases = sorted((settings.workspace / "reports").glob("demo-*/cases.jsonl"))
    assert len(cases) == 2
    before = [(p.stat().st_mtime_ns, p.read_bytes()) for p in cases]
    again: list[tuple[str, str]] = []
    second = run_demo(settings, cfg, on_stage=lambda s, m: again.append((s, m)))
    # nothing was evaluated again: the recorded cases are untouched
    assert [(p.stat().st_mtime_ns, p.read_bytes()) for p in cases] == before
    reused = [m for s, m in again if s in ("data", "train", "eval", "tasks")]
    assert reused and all(m.startswith("using") for m in reused)
    assert second.adapter_run == result.adapter_run and second.rows == result.rows

    # a generator that changes the coding data makes new data, so a new adapter and a new adapter eval;
    # the baseline is reused
    # (the dataset records the version, as a real upgrade's would: that, not where the eval files the
    # leakage check read happen to be, is what changes its hash)
    monkeypatch.setattr(generate_config, "GENERATOR_VERSION", "tooltune-data/999")
    monkeypatch.setattr(generate_config, "CODING_DATA_VERSION", "tooltune-data/999")
    monkeypatch.setattr(datasets, "GENERATOR_VERSION", "tooltune-data/999")
    upgraded: list[tuple[str, str]] = []
    third = run_demo(settings, cfg, on_stage=lambda s, m: upgraded.append((s, m)))
    assert third.dataset.endswith("-d999") and third.dataset != result.dataset
    assert third.dataset_hash != result.dataset_hash
    assert third.adapter != result.adapter and third.adapter_run != result.adapter_run
    assert third.baseline_run == result.baseline_run
    fresh = [m.split()[0] for s, m in upgraded if s in ("data", "train", "eval")]
    assert fresh == ["generating", "training", "using", "evaluating"]

    # another recipe (more steps) trains and evaluates a new adapter against the same baseline
    longer: list[tuple[str, str]] = []
    fourth = run_demo(
        settings, cfg.model_copy(update={"iters": 5}), on_stage=lambda s, m: longer.append((s, m))
    )
    assert fourth.adapter != third.adapter and fourth.baseline_run == result.baseline_run
    assert [m.split()[0] for s, m in longer if s in ("data", "train", "eval")] == [
        "using",
        "training",
        "using",
        "evaluating",
    ]


def test_demo_gives_each_stage_every_core_unless_the_user_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from tooltune.demo import default_blas_threads
    from tooltune.serving.blas import THREADS_ENV, blas_env, find_openblas

    env: dict[str, str] = {}
    assert default_blas_threads(env) == (os.cpu_count() or 1) and env[THREADS_ENV] == str(os.cpu_count() or 1)
    chosen = {THREADS_ENV: "1"}
    assert default_blas_threads(chosen) == 1 and chosen[THREADS_ENV] == "1"
    # ...and the value is what MLX child processes get as OPENBLAS_NUM_THREADS (the environment is
    # restored after the test, and the shim goes to a temp cache, never the user's ~/.cache)
    monkeypatch.setenv(THREADS_ENV, "3")
    choice = blas_env(tmp_path / "cache", enabled=True, check=False)
    if sys.platform.startswith("linux") and find_openblas() is not None:
        assert choice.name == "openblas"
    if choice.name == "openblas":
        assert choice.env["OPENBLAS_NUM_THREADS"] == "3"


@pytest.mark.slow
def test_demo_resumes_or_follows_an_interrupted_training(settings: Settings, tiny_model: Path) -> None:
    """Ctrl-C during the demo's training cancels the job at a checkpoint; the next demo resumes that
    run (not a new one from step 0), and one whose worker is still training is followed, not refused
    as busy."""
    from tooltune.training import runs

    cfg = DemoConfig.preset(
        True, model=str(tiny_model), n_examples=40, iters=400, num_layers=2, eval_limit=1, concurrency=2
    )
    cfg = cfg.model_copy(update={"max_tokens": 24, "max_seq_length": 4096})

    def interrupt_after(step: int):
        def on_step(stage: str, done: int, total: int) -> None:
            if stage == "train" and done > step:
                raise KeyboardInterrupt

        return on_step

    with pytest.raises(KeyboardInterrupt):
        run_demo(settings, cfg, on_step=interrupt_after(5))
    [first] = runs.list_runs(settings)
    assert first.status == "cancelled" and not first.registered
    c1 = first.last_checkpoint
    assert c1 is not None and 5 < c1 < cfg.iters

    stages: list[tuple[str, str]] = []
    with pytest.raises(KeyboardInterrupt):
        run_demo(settings, cfg, on_stage=lambda s, m: stages.append((s, m)), on_step=interrupt_after(c1))
    assert (
        "train",
        f"resuming {first.adapter_name} from its checkpoint at iteration {c1} of 400 ({first.id})",
    ) in stages
    [second] = runs.list_runs(settings)
    assert second.id == first.id and second.status == "cancelled" and second.resumes == [c1]
    c2 = second.last_checkpoint
    assert c2 is not None and c2 > c1

    # a demo killed outright leaves its worker training: the next demo follows that job
    job = runs.resume_training(first.id, settings)
    stages.clear()
    result = run_demo(settings, cfg, on_stage=lambda s, m: stages.append((s, m)))
    assert (
        "train",
        f"following the training of {first.adapter_name} already under way ({first.id})",
    ) in stages
    [done] = runs.list_runs(settings)
    assert done.id == first.id and done.job_id == job.id and done.status == "succeeded" and done.registered
    assert done.resumes == [c1, c2] and done.iteration == cfg.iters
    assert result.adapter == first.adapter_name and result.served_adapter == result.adapter


def test_quick_demo_keeps_fewer_multi_call_turns_than_the_full_one() -> None:
    """40 steps on the full mix strung six to eight calls together; the quick preset has its own mix."""
    quick, full = DemoConfig.preset(True), DemoConfig.preset(False)
    assert quick.mix == QUICK_MIX and quick.mix["parallel"] < full.mix["parallel"]
    assert quick.mix["no_call"] > full.mix["no_call"]
    for mix in (quick.mix, full.mix):
        assert abs(sum(mix.values()) - 1) < 1e-9
    assert DemoConfig.preset(True, mix=full.mix).mix == full.mix  # an explicit mix still wins
