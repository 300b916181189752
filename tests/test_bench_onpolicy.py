"""bench/bfcl_onpolicy.py (issue 36): what it scores every model on, and the samples set it shares."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from bench_import import bench_module

from tooltune.workspace import Workspace


def test_the_suites_are_the_sampled_category_irrelevance_and_each_also_category_whole(
    bfcl_dir: Path, tmp_path: Path
) -> None:
    """Issue 36 asks for every method on the whole of simple_python, irrelevance, multiple and parallel:
    ``--also`` adds whole categories beside the sampled ``--category`` and irrelevance, each once."""
    onpolicy = bench_module("bfcl_onpolicy")
    ws = Workspace(tmp_path / "ws").ensure()
    args = argparse.Namespace(
        bfcl=bfcl_dir, category="simple_python", eval_n=5, irrelevance_n=3, seed=0, also=["simple_python"]
    )
    suites = onpolicy.eval_suites(args, ws)
    # --also naming the sampled category changes nothing: it stays sampled, as bfcl_adapter.py samples it
    assert {k: len(s.cases) for k, s in suites.items()} == {"simple_python": 5, "irrelevance": 3}
    assert suites["simple_python"].name.endswith("-s0-n5")
    if not (bfcl_dir / "BFCL_v4_parallel.json").is_file():
        pytest.skip("BFCL_v4_parallel.json is not in this BFCL folder")
    whole = onpolicy.eval_suites(argparse.Namespace(**{**vars(args), "also": ["parallel"]}), ws)
    full = bench_module("bfcl_full").FULL_SIZE["parallel"]
    assert (
        list(whole) == ["simple_python", "irrelevance", "parallel"] and len(whole["parallel"].cases) == full
    )


def test_the_samples_set_is_named_by_adapter_and_sampling_recipe_not_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rejection and a DPO run from one SFT adapter with one sampling recipe share a samples set (the
    GPU time of sampling is spent once); their picked data and adapters keep names of their own."""
    onpolicy = bench_module("bfcl_onpolicy")
    base = {
        "sft_adapter": "sft-a",
        "k": 4,
        "temperature": 0.8,
        "limit": 300,
        "per_request": 1,
        "unseeded": False,
        "balanced_decision": False,
    }
    dpo = onpolicy.run_names(argparse.Namespace(**base, method="dpo"), "d")
    rejection = onpolicy.run_names(argparse.Namespace(**base, method="rejection"), "d")
    assert dpo[1] == rejection[1] and dpo[1].startswith("sft-a-") and dpo[0] != rejection[0]
    # picking two answers per request samples the same answers: same set; sampling otherwise does not
    assert (
        onpolicy.run_names(argparse.Namespace(**{**base, "per_request": 2}, method="dpo"), "d")[1] == dpo[1]
    )
    for other in (
        {"k": 8},
        {"temperature": 1.0},
        {"limit": 100},
        {"sft_adapter": "sft-b"},
        {"unseeded": True},
    ):
        assert onpolicy.run_names(argparse.Namespace(**{**base, **other}, method="dpo"), "d")[1] != dpo[1]
    assert onpolicy.run_names(argparse.Namespace(**base, method="dpo"), "other-data")[1] != dpo[1]
    # balanced pairs come from the same samples, picked into data (and an adapter) of their own
    balanced = onpolicy.run_names(
        argparse.Namespace(**{**base, "balanced_decision": True}, method="dpo"), "d"
    )
    assert balanced[1] == dpo[1] and balanced[0] != dpo[0]
    # answers judged by another rule (the sampler version) are another samples set; sets of the first
    # judge keep the names their committed results record
    names = {dpo[1]}
    for version in ("tooltune-samples/1", "tooltune-samples/3"):
        monkeypatch.setattr(onpolicy, "SAMPLER_VERSION", version)
        names.add(onpolicy.run_names(argparse.Namespace(**base, method="dpo"), "d")[1])
    assert len(names) == 3
    monkeypatch.setattr(onpolicy, "SAMPLER_VERSION", "tooltune-samples/1")
    first = onpolicy.run_names(argparse.Namespace(**base, method="dpo"), "d")[1]
    assert first == f"sft-a-{onpolicy._digest([4, 0.8, 300, 'd'])}-samples"


def test_the_adapter_name_carries_every_setting_away_from_its_default() -> None:
    onpolicy = bench_module("bfcl_onpolicy")
    plain = {"iters": 150, "lr": 5e-5, "beta": 0.1, "freeze_token_rows": False, "dpo_loss": "sigmoid",
             "no_call_share": None, "answer_check": 32, "decision_kl": 0.0,
             "balanced_decision": False}  # fmt: skip
    assert onpolicy.adapter_name(argparse.Namespace(**plain, method="dpo"), "t") == "t-i150"
    dpop = {**plain, "lr": 5e-6, "freeze_token_rows": True, "dpo_loss": "dpop"}
    assert onpolicy.adapter_name(argparse.Namespace(**dpop, method="dpo"), "t") == "t-i150-lr5e-06-fr-dpop"
    # the DPO loss names only a DPO adapter (other methods do not use it)
    assert (
        onpolicy.adapter_name(argparse.Namespace(**{**plain, "dpo_loss": "dpop"}, method="grpo"), "t")
        == "t-i150"
    )
    balanced = {**plain, "lr": 1e-5, "no_call_share": 0.5}
    assert onpolicy.adapter_name(argparse.Namespace(**balanced, method="grpo"), "t") == "t-i150-lr1e-05-nc0.5"
    # a bigger answer check may refuse what a smaller one let through: never reuse its adapter
    checked = {**balanced, "answer_check": 64}
    name = onpolicy.adapter_name(argparse.Namespace(**checked, method="grpo"), "t")
    assert name == "t-i150-lr1e-05-nc0.5-ac64"
    # a decision KL term trains another adapter
    held = {**checked, "decision_kl": 2.0}
    assert (
        onpolicy.adapter_name(argparse.Namespace(**held, method="grpo"), "t")
        == "t-i150-lr1e-05-nc0.5-dk2-ac64"
    )
    # pairs balanced by the call decision train another adapter
    bd = {**dpop, "balanced_decision": True}
    assert onpolicy.adapter_name(argparse.Namespace(**bd, method="dpo"), "t") == "t-i150-lr5e-06-fr-dpop-bd"
    # rejection SFT runs no answer check: its size names nothing there
    rejection = {**plain, "answer_check": 64}
    assert onpolicy.adapter_name(argparse.Namespace(**rejection, method="rejection"), "t") == "t-i150"


def test_a_long_eval_run_id_ends_with_a_hash_of_the_whole() -> None:
    onpolicy = bench_module("bfcl_onpolicy")
    short = "bfcl-simple-python-s0-n400-adapter-x"
    assert onpolicy.eval_run_id(short) == short
    stem = "bfcl-simple-python-s0-n400-adapter-" + "a" * 60 + "-i150-lr5e-06"
    dpop, held = onpolicy.eval_run_id(stem + "-dpop"), onpolicy.eval_run_id(stem + "-fr")
    assert len(dpop) == len(held) == 100 and dpop != held and dpop[:93] == held[:93]


def test_a_runs_answer_check_size_is_recorded_where_a_check_ran_and_is_not_the_default() -> None:
    bfcl_full = bench_module("bfcl_full")
    res = {"comparison_with_sft": {}, "sft": {"overall": {"n": 4, "native_pass": 2, "lenient_pass": 2}}}

    def fields(method: str, check: int) -> dict[str, object]:
        d = {"method": method, "sft_adapter": "s", "train": {"config": {"answer_check": check}}}
        return bfcl_full.on_policy_fields(d, res)

    assert fields("grpo", 64)["answer_check"] == 64
    assert "answer_check" not in fields("grpo", 32)  # the default: rows of earlier runs stay as they were
    assert "answer_check" not in fields("rejection", 64)  # rejection SFT runs no check


def test_a_runs_decision_kl_is_recorded_and_keeps_its_runs_apart() -> None:
    bfcl_full = bench_module("bfcl_full")
    res = {"comparison_with_sft": {}, "sft": {"overall": {"n": 4, "native_pass": 2, "lenient_pass": 2}}}
    d = {"method": "grpo", "sft_adapter": "s", "train": {"config": {"decision_kl": 2.0}}}
    assert bfcl_full.on_policy_fields(d, res)["decision_kl"] == 2.0
    plain = {**d, "train": {"config": {"decision_kl": 0.0}}}
    assert "decision_kl" not in bfcl_full.on_policy_fields(plain, res)  # earlier runs' rows stay as they were
    row = {"model": "m", "trained_on": "simple_python", "method": "grpo", "category": "irrelevance",
           "train_seed": "s", "adapter": {"native": 0.5, "lenient": 0.5}}  # fmt: skip
    groups = bfcl_full.spread([row, {**row, "decision_kl": 2.0}])
    assert len(groups) == 2  # runs with and without the term are not seeds of one recipe


def test_a_runs_balanced_pairs_are_recorded_and_keep_its_runs_apart() -> None:
    bfcl_full = bench_module("bfcl_full")
    res = {"comparison_with_sft": {}, "sft": {"overall": {"n": 4, "native_pass": 2, "lenient_pass": 2}}}
    d = {"method": "dpo", "sft_adapter": "s", "balanced_decision": True, "train": {"config": {}}}
    assert bfcl_full.on_policy_fields(d, res)["balanced_decision"] is True
    plain = {k: v for k, v in d.items() if k != "balanced_decision"}
    assert "balanced_decision" not in bfcl_full.on_policy_fields(plain, res)  # earlier rows stay the same
    row = {"model": "m", "trained_on": "simple_python", "method": "dpo", "category": "irrelevance",
           "train_seed": "s", "adapter": {"native": 0.5, "lenient": 0.5}}  # fmt: skip
    assert len(bfcl_full.spread([row, {**row, "balanced_decision": True}])) == 2


def test_a_failed_balanced_run_is_listed_as_balanced(tmp_path: Path) -> None:
    bfcl_full = bench_module("bfcl_full")
    failed = {"model": "/m/qwen", "method": "dpo", "sft_adapter": "s", "command": "x --lr 5e-06 --iters 150",
              "train": {"status": "failed", "error": "worse"}}  # fmt: skip
    plain, balanced = tmp_path / "plain.json", tmp_path / "balanced.json"
    plain.write_text(json.dumps(failed))
    balanced.write_text(json.dumps({**failed, "balanced_decision": True}))
    assert "balanced_decision" not in (bfcl_full.failed_training(plain) or {})
    assert (bfcl_full.failed_training(balanced) or {})["balanced_decision"] is True


def test_balanced_pairs_are_refused_for_a_method_without_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    onpolicy = bench_module("bfcl_onpolicy")
    with pytest.raises(SystemExit):
        onpolicy.main(["--sft-adapter", "a", "--workspace", "w", "--out", "o.json", "--method", "grpo",
                       "--balanced-decision"])  # fmt: skip
    assert "--balanced-decision balances preference pairs" in capsys.readouterr().err
