"""Preference training (`tooltune train --method dpo`, issue 36): pairs datasets, the checks that keep a
run honest, and that DPO steps move the adapter toward the preferred answer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest

from tooltune.config import Settings
from tooltune.data.examples import call_message
from tooltune.data.onpolicy import (
    ALWAYS_RIGHT_FILE,
    PAIRS_FORMAT,
    AlwaysRightRequest,
    PreferencePair,
    SampleConfig,
    SamplesInfo,
    save_pairs_dataset,
)
from tooltune.errors import TooltuneError
from tooltune.jobs import JobStore
from tooltune.training import runs
from tooltune.training.train_config import TrainConfig, TrainConfigError, dataset_format
from tooltune.workspace import Workspace

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


def pair(i: int, *, no_call: bool = False) -> PreferencePair:
    """A read_file request, the call against the model's own refusal; with ``no_call``, a request where no
    call is due, which the starting (tiny) model already answers right (it writes text), the refusal
    against a call."""
    path = f"src/mod{i}.{'txt' if no_call else 'py'}"
    call = call_message([("read_file", {"path": path})])
    text = {
        "role": "assistant",
        "content": "I can only read files here." if no_call else "I cannot open files, sorry.",
    }
    return PreferencePair(
        id=f"{'n' if no_call else 'r'}{i}",
        kind="no_call" if no_call else "single",
        reason="called_when_irrelevant" if no_call else "no_call_made",
        messages=[{"role": "user", "content": f"open {path}"}],
        tools=TOOLS,
        chosen=text if no_call else call,
        rejected=call if no_call else text,
        chosen_is_own=no_call,
    )


def always_right(i: int, *, no_call: bool = True) -> AlwaysRightRequest:
    """A request the model got right every time it was sampled: by default one where no call is due,
    which the tiny model answers right (it writes text)."""
    p = pair(100 + i, no_call=no_call)
    return AlwaysRightRequest(id=f"ok{i}", kind=p.kind, messages=p.messages, tools=p.tools, answer=p.chosen)


def samples_info() -> SamplesInfo:
    return SamplesInfo(
        name="s",
        hash="sha256:test",
        dataset="d",
        dataset_hash="sha256:d",
        model="m",
        adapter=None,
        config=SampleConfig(),
        eval_run="samples-s",
        counts={},
        reasons={},
    )


def write_pairs(ws: Workspace, name: str, n: int = 12) -> Path:
    return save_pairs_dataset(ws, name, [pair(i) for i in range(n)], samples=samples_info(), counts={})


def test_a_pairs_dataset_is_a_dataset_folder_marked_as_pairs(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    d = write_pairs(ws, "p")
    assert dataset_format(d) == PAIRS_FORMAT
    meta = json.loads((d / "dataset.json").read_text())
    assert meta["counts"]["train"] + meta["counts"]["valid"] == 12 and meta["counts"]["valid"] >= 1
    lines = (d / "train.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["rejected"]["content"] == "I cannot open files, sorry."
    assert write_pairs(ws, "p") == d  # the same content again: the same dataset
    with pytest.raises(TooltuneError, match="different content"):
        write_pairs(ws, "p", n=5)
    # no always-right request: no file, and the hash is the one such a dataset always had (the texts of
    # the splits and the extra, nothing else)
    assert not (d / ALWAYS_RIGHT_FILE).exists() and "always_right" not in meta["extra"]
    texts = {s: (d / f"{s}.jsonl").read_text() for s in ("train", "valid", "test")}
    body = json.dumps({"texts": texts, "extra": meta["extra"]}, sort_keys=True).encode()
    assert meta["hash"] == "sha256:" + hashlib.sha256(body).hexdigest()
    kept = [always_right(0), always_right(1, no_call=False)]
    # the same pairs picked again now that always-right requests are kept: the dataset made before them
    # stands (same name, no error), as a resumed `train improve` round needs
    again = save_pairs_dataset(
        ws, "p", [pair(i) for i in range(12)], samples=samples_info(), counts={}, always_right=kept
    )
    assert again == d and json.loads((d / "dataset.json").read_text())["hash"] == meta["hash"]
    assert not (d / ALWAYS_RIGHT_FILE).exists()
    d2 = save_pairs_dataset(
        ws, "q", [pair(i) for i in range(12)], samples=samples_info(), counts={}, always_right=kept
    )
    meta2 = json.loads((d2 / "dataset.json").read_text())
    assert meta2["counts"] == meta["counts"] and meta2["extra"]["always_right"] == 2  # not a split
    assert meta2["hash"] != meta["hash"]
    assert [
        AlwaysRightRequest.model_validate_json(x) for x in (d2 / ALWAYS_RIGHT_FILE).read_text().splitlines()
    ] == kept


def test_method_and_dataset_must_agree_and_dpo_refuses_sft_loss_weights(
    settings: Settings, tiny_model: Path
) -> None:
    ws = Workspace(settings.workspace).ensure()
    write_pairs(ws, "p")
    sft = ws.datasets / "ex"
    sft.mkdir(parents=True)
    (sft / "train.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(TrainConfigError, match="holds preference pairs; train it with --method dpo"):
        TrainConfig(model=str(tiny_model), dataset="p").resolve(settings)
    with pytest.raises(TrainConfigError, match="method dpo trains on preference pairs"):
        TrainConfig(model=str(tiny_model), dataset="ex", method="dpo").resolve(settings)
    # rejection: SFT on a dataset picked from the model's own samples, and on nothing else
    with pytest.raises(TrainConfigError, match="was not picked from its samples; .*pick --method rejection"):
        TrainConfig(model=str(tiny_model), dataset="ex", method="rejection").resolve(settings)
    with pytest.raises(TrainConfigError, match="holds preference pairs"):
        TrainConfig(model=str(tiny_model), dataset="p", method="rejection").resolve(settings)
    (sft / "dataset.json").write_text(json.dumps({"extra": {"method": "rejection"}}))
    assert TrainConfig(model=str(tiny_model), dataset="ex", method="rejection").resolve(settings).is_resolved
    with pytest.raises(ValueError, match="value_loss_weight weigh the SFT loss"):
        TrainConfig(model=str(tiny_model), dataset="p", method="dpo", value_loss_weight=0.5)
    with pytest.raises(TooltuneError, match="not found|no adapter|unknown"):
        TrainConfig(model=str(tiny_model), dataset="p", method="dpo", init_adapter="nope").resolve(settings)


def _train(settings: Settings, name: str, *, expect: str = "succeeded", **over: Any) -> Any:
    cfg = TrainConfig(
        **{
            "dataset": "p",
            "method": "dpo",
            "num_layers": 2,
            "rank": 4,
            "iters": 8,
            "batch_size": 2,
            "steps_per_report": 2,
            "steps_per_eval": 4,
            "val_batches": 1,
            "learning_rate": 2e-3,
            "lr_schedule": "constant",
            **over,
        }
    )
    job = runs.start_training(cfg, settings, name=name)
    job = JobStore(Workspace(settings.workspace)).wait(job.id, timeout=600, poll=0.3)
    assert job.status == expect, job.error
    return runs.get_run(settings, job.id)


def _margin(model_path: Path, adapter: Path | None, pairs_file: Path) -> float:
    from mlx_lm import load

    from tooltune.training.preference import load_pairs, preference_margin

    model, tok = load(str(model_path), adapter_path=str(adapter) if adapter else None)
    return preference_margin(
        model, load_pairs(pairs_file, tok, 1024), loss_type="sigmoid", max_seq_length=1024
    )


@pytest.mark.slow
def test_dpo_steps_move_the_adapter_toward_the_preferred_answer(settings: Settings, tiny_model: Path) -> None:
    ws = Workspace(settings.workspace).ensure()
    d = write_pairs(ws, "p")
    run = _train(settings, "dpo-a", model=str(tiny_model), steps_per_report=1)
    method = run.applied["method"]
    assert (
        method["name"] == "dpo"
        and method["pairs"] >= 8
        and method["per_reason"] == {"no_call_made": method["pairs"]}
    )
    assert run.applied["lm_head"] == "every position"
    events = runs.read_events(ws.run_dir(run.id))
    losses = [e.train_loss for e in events if e.kind == "train"]
    assert losses[0] == pytest.approx(0.6931, abs=1e-3) and losses[-1] < losses[0]  # log 2 at the reference
    adapter = ws.adapters / "dpo-a"
    before = _margin(tiny_model, None, d / "train.jsonl")
    after = _margin(tiny_model, adapter, d / "train.jsonl")
    assert after > before + 1.0  # the correct call is now much likelier than the refusal, relative to it

    # stacking: a run from this adapter with a vanishing rate ends where the adapter was
    start = _train(
        settings, "dpo-b", model=str(tiny_model), init_adapter="dpo-a", learning_rate=1e-12, iters=2
    )
    assert (
        start.applied["init_adapter"]["name"] == "dpo-a"
        and "init_adapter" in start.applied["method"]["reference"]
    )
    assert _margin(tiny_model, ws.adapters / "dpo-b", d / "train.jsonl") == pytest.approx(after, rel=1e-3)
    # the same from dpo-a with the marker rows held: they end exactly as dpo-a had them, the blocks move
    held = _train(
        settings, "dpo-c", model=str(tiny_model), init_adapter="dpo-a", freeze_token_rows=True, iters=4
    )
    assert held.applied["token_rows"] == "frozen (no gradient)" and run.applied["token_rows"] == "trained"
    start_w, held_w = (mx.load(str(ws.adapters / n / "adapters.safetensors")) for n in ("dpo-a", "dpo-c"))
    # the held rows are in the adapter, but not counted as trained parameters
    rows = held_w["model.embed_tokens.lora_b"].size
    assert held.applied["trainable_parameters"] == run.applied["trainable_parameters"] - rows
    blocks_size = sum(held_w[k].size for k in held_w if k.startswith("model.layers."))
    assert held.applied["trainable_parameters"] == blocks_size  # the selector is not counted either
    assert np.array_equal(
        np.array(held_w["model.embed_tokens.lora_b"]), np.array(start_w["model.embed_tokens.lora_b"])
    )
    assert np.abs(np.array(start_w["model.embed_tokens.lora_b"])).max() > 0  # dpo-a did train them
    blocks = [k for k in held_w if k.startswith("model.layers.") and k.endswith("lora_b")]
    assert blocks and any(not np.array_equal(np.array(held_w[k]), np.array(start_w[k])) for k in blocks)
    with pytest.raises(TrainConfigError, match="rank 4 \\(this run: 8\\)"):
        TrainConfig(
            model=str(tiny_model), dataset="p", method="dpo", init_adapter="dpo-a", num_layers=2
        ).resolve(settings)


@pytest.mark.slow
@pytest.mark.anyio
async def test_improve_runs_a_round_judges_it_on_held_out_requests_and_resumes(
    settings: Settings, tiny_model: Path
) -> None:
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.evals.runner import load_report
    from tooltune.serving.model_server import ModelServer
    from tooltune.training.improve import ImproveConfig, improve

    ws = Workspace(settings.workspace).ensure()
    generate_dataset(ws, "d", ["builtin:coding"], GenerateConfig(n=40, seed=0), model_path=tiny_model)
    cfg = ImproveConfig(
        dataset="d", name="imp", model=str(tiny_model), rounds=2, k=2, limit=6, iters=3, max_tokens=24,
        learning_rate=1e-3,
    )  # fmt: skip
    said: list[str] = []
    async with ModelServer(tiny_model, settings=settings, record_active=False) as server:
        result = await improve(settings, server, cfg, on_progress=said.append)
        r = result.rounds[0]
        # the decision is the held-out eval runs' native rates, both runs on the same test requests
        base, cand = load_report(ws, "imp-heldout-base"), load_report(ws, "imp-heldout-imp-r1-adapter")
        assert (r.start_native, r.candidate_native) == (base.overall.native_rate, cand.overall.native_rate)
        assert r.held_out_cases == base.n_results == cand.n_results > 0
        assert r.kept == (r.candidate_native > r.start_native)
        assert result.best == ("imp-r1-adapter" if r.kept else None)
        assert len(result.rounds) == (2 if r.kept else 1)  # a dropped candidate ends the loop
        assert r.samples == "imp-r1-samples" and r.data == "imp-r1-data" and sum(r.picked.values()) > 0
        assert any(m.startswith("round 1: training on") for m in said)
        jobs_before = len(list((ws.root / "jobs").glob("*.json")))
        again = await improve(settings, server, cfg)  # everything exists: read back, nothing trained again
    assert again.rounds[0] == r
    assert len(list((ws.root / "jobs").glob("*.json"))) == jobs_before
    with pytest.raises(TooltuneError, match="ran before with other iters"):
        async with ModelServer(tiny_model, settings=settings, record_active=False) as server:
            await improve(settings, server, cfg.model_copy(update={"iters": 5}))


def test_scores_with_the_head_at_answer_positions_equal_mlx_lm_loras(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The fast path (LM head at the answer positions only) gives mlx-lm-lora's own scores, both loss
    forms, chosen and rejected sides of different lengths in one batch."""
    import mlx.core as mx
    from mlx_lm import load

    from tooltune.training.losses import head_split
    from tooltune.training.preference import load_pairs, pair_batch, sequence_scores

    model, tok = load(str(tiny_model))
    assert head_split(model) is not None  # the tiny model takes the fast path
    d = write_pairs(Workspace(tmp_path / "ws").ensure(), "p", n=6)
    pairs = load_pairs(d / "train.jsonl", tok, 1024)
    b = pair_batch(pairs.items[:4], 1024)
    for loss_type in ("sigmoid", "ipo"):
        for tokens, mask, pos, valid in ((b[0], b[2], b[6], b[7]), (b[1], b[3], b[8], b[9])):
            full = sequence_scores(model, tokens, mask, loss_type)
            fast = sequence_scores(model, tokens, mask, loss_type, pos, valid)
            assert mx.allclose(full, fast, rtol=1e-4, atol=1e-4).item(), (loss_type, full, fast)


@pytest.mark.slow
def test_an_empty_validation_split_trains_without_validation(settings: Settings, tiny_model: Path) -> None:
    """A small picked dataset can hash every row into train: an empty valid.jsonl is an empty split (mlx-lm's
    loader would fail on its first row), and the run says validation was skipped."""
    ws = Workspace(settings.workspace).ensure()
    d = ws.datasets / "small"
    d.mkdir(parents=True)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"open src/m{i}.py"},
                call_message([("read_file", {"path": f"src/m{i}.py"})]),
            ],
            "tools": TOOLS,
        }
        for i in range(4)
    ]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "valid.jsonl").write_text("")
    (d / "test.jsonl").write_text("")
    cfg = TrainConfig(
        model=str(tiny_model), dataset="small", num_layers=2, rank=4, iters=2, steps_per_report=1
    )
    job = runs.start_training(cfg, settings, name="small")
    job = JobStore(ws).wait(job.id, timeout=300, poll=0.3)
    assert job.status == "succeeded", job.error
    assert any("validation skipped" in w for w in runs.get_run(settings, job.id).warnings)


@pytest.mark.slow
def test_orpo_steps_move_the_adapter_toward_the_preferred_answer_without_a_reference(
    settings: Settings, tiny_model: Path
) -> None:
    ws = Workspace(settings.workspace).ensure()
    d = write_pairs(ws, "p")
    run = _train(settings, "orpo-a", model=str(tiny_model), method="orpo")
    method = run.applied["method"]
    assert method["name"] == "orpo" and "reference" not in method and "orpo_loss" in method["loss"]
    losses = [e.train_loss for e in runs.read_events(ws.run_dir(run.id)) if e.kind == "train"]
    assert losses[-1] < losses[0]
    before = _margin(tiny_model, None, d / "train.jsonl")
    after = _margin(tiny_model, ws.adapters / "orpo-a", d / "train.jsonl")
    assert after > before + 1.0


def write_split_pairs(ws: Workspace, name: str) -> Path:
    """Pairs whose training split pushes toward calling and whose validation split holds requests where
    no call is right: a run that learns too hard breaks what the model did right."""
    d = ws.dataset_dir(name)
    d.mkdir(parents=True)
    (d / "train.jsonl").write_text("".join(pair(i).model_dump_json() + "\n" for i in range(12)))
    (d / "valid.jsonl").write_text("".join(pair(i, no_call=True).model_dump_json() + "\n" for i in range(8)))
    (d / "test.jsonl").write_text("")
    meta = {"name": name, "hash": "sha256:split", "counts": {"train": 12, "valid": 8, "test": 0}}
    (d / "dataset.json").write_text(json.dumps({**meta, "extra": {"format": PAIRS_FORMAT}}))
    return d


@pytest.mark.slow
def test_a_preference_run_that_breaks_the_models_answers_fails_unregistered(
    settings: Settings, tiny_model: Path
) -> None:
    """DPO's loss can fall while the model's answers fall apart (the 0.5B on an H200: validation loss 0.69
    -> 0.27, then the same sentence over and over on every question). The run answers its own requests
    before and after and fails, unregistered, when the adapter gets significantly fewer right in either
    group (a call due, or none)."""
    from tooltune.adapters.registry import AdapterRegistry

    ws = Workspace(settings.workspace).ensure()
    write_split_pairs(ws, "p")
    kw: dict[str, Any] = {"model": str(tiny_model), "answer_check": 16}
    ok = _train(settings, "dpo-ok", iters=8, **kw)
    check = ok.applied["method"]["answer_check"]
    # half the requests where a call is due (the training split's: the validation split has none), half
    # where none is (the validation split's); the tiny model writes text, right only where no call is due
    assert (check["requests"], check["splits"]) == (16, {"valid": 8, "train": 8})
    groups = check["groups"]
    assert (groups["call_due"]["right_before"], groups["no_call_due"]["right_before"]) == (0, 8)
    assert check["right_after"] == check["right_before"] - check["regressions"] + check["fixes"]
    assert not check["worse"] and AdapterRegistry(ws).get("dpo-ok").run_id == ok.id
    # the tiny model gets no call right: that half cannot fail a run, and the run says so
    assert not groups["call_due"]["can_fail"] and groups["no_call_due"]["can_fail"]
    assert any("0 of its call due requests right" in w for w in ok.warnings)

    broken = _train(settings, "dpo-broken", expect="failed", learning_rate=0.1, iters=16, **kw)
    check = broken.applied["method"]["answer_check"]
    lost = check["groups"]["no_call_due"]
    assert check["worse_in"] == ["no_call_due"] and lost["right_after"] <= 1 and lost["p_value"] < 0.05
    assert broken.error is not None
    assert broken.error.startswith(
        "dpo made the model answer its own requests worse (answered greedily; 8 valid, 8 train requests "
        "checked): of 8 requests where no call is due, the starting model got 8 right"
    )
    assert "--learning-rate (this run: 0.1)" in broken.error
    assert not broken.registered and "dpo-broken" not in [a.name for a in AdapterRegistry(ws).list()]
    assert (ws.run_dir(broken.id) / "adapter" / "adapters.safetensors").is_file()  # its files stay

    off = _train(settings, "dpo-unchecked", learning_rate=0.1, iters=16, **{**kw, "answer_check": 0})
    assert "answer_check" not in off.applied["method"]


@pytest.mark.slow
def test_the_always_right_requests_catch_a_run_the_pairs_requests_cannot(
    settings: Settings, tiny_model: Path
) -> None:
    """The H100 case: every pair's request where no call is due was one the starting model got wrong, so
    that half could not fail, and DPO then called where no call was due on 150 of 240 BFCL questions.
    Here the pairs hold no such request at all; the requests the model always got right hold them, and
    the run that breaks them fails."""
    ws = Workspace(settings.workspace).ensure()
    kept = [always_right(i) for i in range(8)]
    save_pairs_dataset(
        ws, "p", [pair(i) for i in range(12)], samples=samples_info(), counts={}, always_right=kept
    )
    broken = _train(
        settings,
        "dpo-broken",
        expect="failed",
        model=str(tiny_model),
        answer_check=16,
        learning_rate=0.1,
        iters=16,
    )
    check = broken.applied["method"]["answer_check"]
    assert check["splits"]["always_right"] == 8 and sum(check["splits"].values()) == 20  # 12 pairs' requests
    lost = check["groups"]["no_call_due"]
    assert check["worse_in"] == ["no_call_due"] and (lost["requests"], lost["right_before"]) == (8, 8)
    assert lost["p_value"] < 0.05 and not broken.registered
    assert (
        broken.error is not None
        and " 8 always-right requests checked): of 8 requests where no call" in broken.error
    )


def test_check_requests_take_both_groups_validation_first_once_each(tiny_model: Path, tmp_path: Path) -> None:
    from mlx_lm.utils import load_tokenizer

    from tooltune.training.answer_check import check_requests

    tok = load_tokenizer(tiny_model)
    (tmp_path / "valid.jsonl").write_text(
        "".join(p.model_dump_json() + "\n" for p in [pair(0), pair(0, no_call=True), pair(0)])  # r0 twice
    )
    (tmp_path / "train.jsonl").write_text(
        "not json\n"
        + "".join(
            p.model_dump_json() + "\n" for p in [pair(0), *map(pair, range(1, 9)), pair(1, no_call=True)]
        )
    )
    files = [tmp_path / "valid.jsonl", tmp_path / "train.jsonl"]
    reqs = check_requests(files, tok, limit=6, max_seq_length=4096, max_tokens=64, seed=0)
    # 3 a group, but only 2 requests where no call is due: a fourth call fills in; each request once; the
    # validation split's requests come first in their group
    assert (reqs.groups.count("call_due"), reqs.groups.count("no_call_due")) == (4, 2)
    assert len(set(reqs.ids)) == len(reqs.ids) == 6
    assert reqs.ids[0] == "r0" and reqs.splits[0] == "valid" and {"n0", "n1"} <= set(reqs.ids)
    more = check_requests(files, tok, limit=8, max_seq_length=4096, max_tokens=64, seed=0)
    assert (more.groups.count("call_due"), more.groups.count("no_call_due")) == (6, 2)
    assert check_requests(files, tok, limit=8, max_seq_length=4096, max_tokens=64, seed=1).ids != more.ids
    # a prompt that leaves no room for the answer is passed over
    assert not len(check_requests(files, tok, limit=8, max_seq_length=64, max_tokens=64))


def test_check_requests_add_as_many_always_right_requests_after_the_pairs(
    tiny_model: Path, tmp_path: Path
) -> None:
    from mlx_lm.utils import load_tokenizer

    from tooltune.training.answer_check import check_requests

    tok = load_tokenizer(tiny_model)
    (tmp_path / "train.jsonl").write_text("".join(pair(i).model_dump_json() + "\n" for i in range(6)))
    kept = tmp_path / ALWAYS_RIGHT_FILE
    kept.write_text(
        "{broken\n"
        + "".join(always_right(i).model_dump_json() + "\n" for i in range(5))
        + "".join(always_right(i, no_call=False).model_dump_json() + "\n" for i in range(5, 7))
    )
    files = [tmp_path / "valid.jsonl", tmp_path / "train.jsonl"]  # no validation split: passed over
    reqs = check_requests(files, tok, limit=4, max_seq_length=4096, max_tokens=64, always_right=kept)
    # the pairs' 4 first (all where a call is due: the other group has none), then 4 always-right ones, half
    # a group
    assert reqs.splits == ["train"] * 4 + [ALWAYS_RIGHT_FILE.removesuffix(".jsonl")] * 4
    assert reqs.groups == ["call_due"] * 6 + ["no_call_due"] * 2
    assert set(reqs.ids[4:6]) <= {"ok5", "ok6"} and set(reqs.ids[6:]) <= {f"ok{i}" for i in range(5)}
    # the pairs' part is what it was without them (the same seed draws the same requests)
    alone = check_requests(files, tok, limit=4, max_seq_length=4096, max_tokens=64)
    assert alone.ids == reqs.ids[:4]
    # a short group fills from the other, as for the pairs
    more = check_requests(files, tok, limit=8, max_seq_length=4096, max_tokens=64, always_right=kept)
    assert more.groups[6:].count("call_due") == 2 and more.groups[6:].count("no_call_due") == 5
    assert len(set(more.ids)) == len(more.ids) == 13
    # a request in both files is asked once, where it came first
    with kept.open("a") as f:
        f.write(
            AlwaysRightRequest(
                id="r0",
                kind="single",
                **pair(0).model_dump(include={"messages", "tools"}),
                answer=pair(0).chosen,
            ).model_dump_json()
            + "\n"
        )
    once = check_requests(files, tok, limit=8, max_seq_length=4096, max_tokens=64, always_right=kept)
    assert once.ids.count("r0") == 1 and once.splits[once.ids.index("r0")] == "train"


def test_only_a_significant_loss_of_right_answers_in_a_group_counts_as_worse() -> None:
    from tooltune.training.answer_check import compare_answers, worse_error

    def answers(
        rights: list[bool], group: str = "call_due", outcome: str = "wrong_value"
    ) -> list[dict[str, Any]]:
        return [
            {"right": r, "outcome": "right" if r else outcome, "text": f"a{i}", "group": group}
            for i, r in enumerate(rights)
        ]

    # 3 of 3 lost is p = 0.25: too few requests to call it worse
    assert not compare_answers(answers([True] * 3), answers([False] * 3))["worse"]
    # 6 lost, 0 gained: p = 0.031
    s = compare_answers(answers([True] * 6 + [False] * 2), answers([False] * 8))
    assert s["worse"] and (s["regressions"], s["fixes"], s["right_before"], s["right_after"]) == (6, 0, 6, 0)
    assert s["example_lost"] == "a0" and s["outcomes_after"] == {"wrong_value": 8}
    # as many gained as lost: not worse, however many
    assert not compare_answers(answers([True] * 8 + [False] * 8), answers([False] * 8 + [True] * 8))["worse"]
    # the H200 collapse: a model that stops calling gains every refusal it got wrong and loses every call;
    # over both groups that is 8 lost, 8 gained (p = 1), in the call group 8 lost (p = 0.008)
    before = answers([True] * 8 + [False] * 8) + answers([False] * 8, "no_call_due", "called_when_irrelevant")
    after = answers([False] * 16, outcome="no_call_made") + answers([True] * 8, "no_call_due")
    s = compare_answers(before, after)
    assert (s["regressions"], s["fixes"], s["p_value"]) == (8, 8, 1.0)
    assert s["worse"] and s["worse_in"] == ["call_due"] and s["groups"]["call_due"]["p_value"] < 0.01
    # the message quotes what the failing half writes now, not another half's loss
    before = answers([True] * 2) + answers([True] * 6, "no_call_due")
    after = [{**a, "text": "call text"} for a in answers([False] * 2)] + answers([False] * 6, "no_call_due")
    s = compare_answers(before, after)
    assert s["worse_in"] == ["no_call_due"] and s["groups"]["call_due"]["example_lost"] == "call text"
    message = str(worse_error(s, method="orpo", learning_rate=5e-5, splits={"valid": 3, "train": 5}))
    assert (
        "(answered greedily; 3 valid, 5 train requests checked): of 6 requests where no call is due"
        in message
    )
    assert "'a0'" in message and "call text" not in message and "(this run: 5e-05)" in message


@pytest.mark.anyio
async def test_an_improve_round_whose_answer_check_failed_ends_the_loop_instead_of_the_job(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train improve` keeps a round only if it is better: a candidate its own answer check dropped is a
    round that was not better (the loop ends with the best adapter so far), while any other failed
    training still fails the job."""
    from types import SimpleNamespace

    from tooltune.training import improve

    applied: dict[str, Any] = {}
    job = SimpleNamespace(
        id="train-x", done=True, status="failed", error="dpo made the model answer ... worse"
    )
    monkeypatch.setattr(improve, "start_training", lambda cfg, s, name: job)
    monkeypatch.setattr(improve.JobStore, "get", lambda self, job_id: job)
    monkeypatch.setattr(improve, "get_run", lambda s, ref: SimpleNamespace(applied=applied))
    cfg = TrainConfig(dataset="p", method="dpo")
    applied["method"] = {"answer_check": {"worse": True}}
    with pytest.raises(improve.CandidateDroppedError, match="dropped before the held-out eval: dpo made"):
        await improve._train_candidate(settings, cfg, "c")
    applied["method"] = {"name": "grpo", "collapsed_at": 14}  # a GRPO round that collapsed is dropped too
    with pytest.raises(improve.CandidateDroppedError):
        await improve._train_candidate(settings, cfg, "c")
    applied["method"] = {"answer_check": {"worse": False}}
    with pytest.raises(TooltuneError, match="training train-x failed") as err:
        await improve._train_candidate(settings, cfg, "c")
    assert not isinstance(err.value, improve.CandidateDroppedError)

    # in a round, the dropped candidate is the reason the loop stops (the samples and data stay named)
    async def sampled(*a: Any, **k: Any) -> Any:
        return SimpleNamespace(name="r1-samples")

    async def dropped(*a: Any, **k: Any) -> None:
        raise improve.CandidateDroppedError("the candidate was dropped before the held-out eval: worse")

    monkeypatch.setattr(improve, "sample_dataset", sampled)
    picked = SimpleNamespace(dataset="r1-data", counts={"train": 4}, picked={"no_call_made": 4})
    monkeypatch.setattr(improve, "pick_training_data", lambda *a, **k: picked)
    # a round's training takes the job's answer_check and freeze_token_rows
    job_cfg = improve.ImproveConfig(dataset="d", name="imp", model="m", answer_check=5)
    round_cfg = improve._round_config(job_cfg, None, "m", None, dataset="d", method="dpo")
    assert round_cfg.answer_check == 5 and not round_cfg.freeze_token_rows
    held = job_cfg.model_copy(update={"freeze_token_rows": True})
    assert improve._round_config(held, None, "m", None, dataset="d", method="dpo").freeze_token_rows
    monkeypatch.setattr(improve, "_round_config", lambda *a, **k: cfg)
    monkeypatch.setattr(improve, "_train_round", dropped)
    said: list[str] = []
    ws = Workspace(settings.workspace)
    out = await improve._sample_pick_train(
        settings, None, ws, None, job_cfg, "m", None, 1, "imp-r1", "imp-r1-adapter", said.append,
    )  # fmt: skip
    assert out == (
        "r1-samples",
        "r1-data",
        {"no_call_made": 4},
        "the candidate was dropped before the held-out eval: worse",  # the caller names the round
    )
    # a rejection round picks the model's own answers and trains them as method rejection (its check on)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(improve, "_round_config", lambda *a, **k: seen.update(k) or cfg)
    picks: list[str] = []
    monkeypatch.setattr(
        improve, "pick_training_data", lambda w, s, method, *a, **k: picks.append(method) or picked
    )
    rejection = job_cfg.model_copy(update={"method": "rejection"})
    await improve._sample_pick_train(
        settings, None, ws, None, rejection, "m", None, 1, "imp-r1", "imp-r1-adapter", said.append,
    )  # fmt: skip
    assert (picks, seen["method"], seen["dataset"]) == (["rejection"], "rejection", "r1-data")


def test_an_improve_job_saved_before_a_setting_existed_still_resumes(settings: Settings) -> None:
    """improve/<name>.json of a job that ran before answer_check existed lacks it: it ran as the default."""
    from tooltune.training import improve

    ws = Workspace(settings.workspace).ensure()
    cfg = improve.ImproveConfig(dataset="d", name="old", model="m")
    improve._check_same_job(ws, cfg)
    path = ws.root / "improve" / "old.json"
    saved = json.loads(path.read_text())
    del saved["answer_check"]
    path.write_text(json.dumps(saved))
    improve._check_same_job(ws, cfg)  # the default: the same job
    with pytest.raises(TooltuneError, match="ran before with other answer_check"):
        improve._check_same_job(ws, cfg.model_copy(update={"answer_check": 5}))


def test_an_improve_job_judged_by_an_older_rule_is_not_resumed(settings: Settings) -> None:
    """Its rounds' held-out scores were judged against the generated truth by another rule (before
    optional parameters at a stated default passed): a resumed job would compare them with new ones."""
    from tooltune.training import improve

    ws = Workspace(settings.workspace).ensure()
    cfg = improve.ImproveConfig(dataset="d", name="old", model="m")
    improve._check_same_job(ws, cfg)
    path = ws.root / "improve" / "old.json"
    saved = json.loads(path.read_text())
    assert saved["judge"] == improve.SAMPLER_VERSION
    del saved["judge"]  # as a job saved before the judge was recorded
    path.write_text(json.dumps(saved))
    with pytest.raises(TooltuneError, match="other judge .an older tooltune judged its answers"):
        improve._check_same_job(ws, cfg)


@pytest.mark.anyio
async def test_a_grpo_round_that_collapsed_ends_the_loop_with_the_start(
    settings: Settings, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train improve --method grpo`: a round whose training collapsed (the run records collapsed_at, so
    _train_candidate raises CandidateDroppedError) ends the loop; the start stays the best. Run again,
    the job reads the drop back instead of training the round a second time."""
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.training import improve

    ws = Workspace(settings.workspace).ensure()
    generate_dataset(ws, "d", ["builtin:coding"], GenerateConfig(n=40, seed=0), model_path=tiny_model)
    trained: list[TrainConfig] = []

    async def collapsed(settings: Settings, cfg: TrainConfig, name: str) -> None:
        trained.append(cfg)
        raise improve.CandidateDroppedError(
            "the candidate was dropped before the held-out eval: GRPO collapsed"
        )

    monkeypatch.setattr(improve, "_train_candidate", collapsed)
    cfg = improve.ImproveConfig(dataset="d", name="g", model=str(tiny_model), method="grpo", k=2, rounds=2)
    result = await improve.improve(settings, None, cfg)
    assert [c.method for c in trained] == ["grpo"]  # one round trained, none judged
    assert result.best is None
    assert result.stopped == "round 1: the candidate was dropped before the held-out eval: GRPO collapsed"
    [r] = result.rounds  # the dropped round is listed with why, never judged
    assert (r.round, r.candidate, r.kept, r.candidate_native) == (1, "g-r1-adapter", False, None)
    assert r.dropped == "the candidate was dropped before the held-out eval: GRPO collapsed"
    again = await improve.improve(settings, None, cfg)
    assert len(trained) == 1 and again.best is None  # read back, not trained again
    assert again.rounds[0].dropped == r.dropped + " (as recorded by an earlier run of this job)"


@pytest.mark.anyio
async def test_a_dropped_candidate_is_not_trained_again_when_the_job_reruns(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun of an improve job ends where the first run ended: the drop is kept in the job's file
    (improve/<name>.json), so the same candidate from the same start is not trained a second time; a
    round whose start adapter was trained anew (other files) trains again, and another job's candidate
    is its own."""
    from types import SimpleNamespace

    from tooltune.training import improve

    ws = Workspace(settings.workspace).ensure()
    improve._check_same_job(ws, improve.ImproveConfig(dataset="d", name="imp", model="m"))
    calls: list[str] = []

    async def worse(settings: Settings, cfg: TrainConfig, name: str) -> None:
        calls.append(name)
        raise improve.CandidateDroppedError("the candidate was dropped before the held-out eval: worse")

    monkeypatch.setattr(improve, "_train_candidate", worse)
    files = {"imp-r1-adapter": "aaaa"}  # the start adapter's files, by fingerprint
    registry = SimpleNamespace(
        names=lambda: set(files), get=lambda name: SimpleNamespace(adapter_fingerprint=files[name])
    )
    cfg = TrainConfig(dataset="p", method="dpo", init_adapter="imp-r1-adapter")
    with pytest.raises(improve.CandidateDroppedError, match="held-out eval: worse$"):
        await improve._train_round(settings, registry, cfg, "imp-r2-adapter", "imp")
    with pytest.raises(improve.CandidateDroppedError, match="worse .as recorded by an earlier run"):
        await improve._train_round(settings, registry, cfg, "imp-r2-adapter", "imp")
    assert calls == ["imp-r2-adapter"]  # trained once; the rerun read the drop back
    saved = json.loads((ws.root / "improve" / "imp.json").read_text())
    assert (
        saved["dataset"] == "d"
        and saved["dropped_rounds"]["imp-r2-adapter"]["start"] == "imp-r1-adapter:aaaa"
    )
    improve._check_same_job(ws, improve.ImproveConfig(dataset="d", name="imp", model="m"))  # still the job
    files["imp-r1-adapter"] = "bbbb"  # round 1 trained anew: round 2 starts elsewhere and trains again
    with pytest.raises(improve.CandidateDroppedError):
        await improve._train_round(settings, registry, cfg, "imp-r2-adapter", "imp")
    assert calls == ["imp-r2-adapter"] * 2
    with pytest.raises(improve.CandidateDroppedError, match="worse$"):  # another job: nothing on record
        await improve._train_round(settings, registry, cfg, "other-r2-adapter", "other")
    assert calls[-1] == "other-r2-adapter"


@pytest.mark.anyio
async def test_a_sampled_round_lists_its_dropped_candidate_but_not_a_round_with_nothing_to_learn(
    settings: Settings, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dpo/rejection rounds: a candidate that training dropped is listed (samples and data named, why);
    a round that found nothing to pair trained nothing and is not a round."""
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.generate_config import GenerateConfig
    from tooltune.training import improve

    ws = Workspace(settings.workspace).ensure()
    generate_dataset(ws, "d", ["builtin:coding"], GenerateConfig(n=40, seed=0), model_path=tiny_model)
    outcome: tuple[str, str, dict[str, int], str] = ("", "", {}, "")

    async def round_(*a: Any, **k: Any) -> tuple[str, str, dict[str, int], str]:
        return outcome

    monkeypatch.setattr(improve, "_sample_pick_train", round_)
    cfg = improve.ImproveConfig(dataset="d", name="s", model=str(tiny_model), method="dpo", rounds=2)
    outcome = ("s-r1-samples", "s-r1-data", {"no_call_made": 3}, "the candidate was dropped: worse")
    result = await improve.improve(settings, None, cfg)
    [r] = result.rounds
    assert (r.samples, r.data, r.picked, r.candidate) == (
        "s-r1-samples", "s-r1-data", {"no_call_made": 3}, "s-r1-adapter"
    )  # fmt: skip
    assert (r.kept, r.dropped, result.best) == (False, "the candidate was dropped: worse", None)
    outcome = ("", "", {}, "nothing to pair")  # the round is named by the loop, not by the round
    result = await improve.improve(settings, None, cfg)
    assert (result.rounds, result.stopped) == ([], "round 1: nothing to pair")
