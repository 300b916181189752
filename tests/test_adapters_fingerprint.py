"""Behavioural probes: parsing the server's logprobs, the distance, and the reference computation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from test_adapters_registry import make_lora_adapter

from tooltune.adapters.fingerprint import (
    MATCH_TOLERANCE,
    AdapterProbe,
    ProbeSignature,
    ProbeSpec,
    compute_adapter_probe,
    compute_base_probe,
    signature_distance,
    signature_from_response,
)
from tooltune.config import Settings
from tooltune.models.resolve import fingerprint_model
from tooltune.serving.blas import subprocess_env


def recorded_probe(base: ProbeSignature, adapter: ProbeSignature, distance: float) -> AdapterProbe:
    """An adapter's probe as the registry records it, recorded as telling base and adapter apart."""
    return AdapterProbe(
        probe=ProbeSpec(messages=[{"role": "user", "content": "hi"}]),
        base_model_fingerprint="x",
        base=base,
        adapter=adapter,
        distance=distance,
        distinguishes=True,
    )


def test_chosen_token_is_the_argmax_not_the_entry_id() -> None:
    """mlx_lm.server fills each entry's id from an argpartition: any member of the top-k set."""
    response = {
        "choices": [
            {
                "message": {"content": "ab"},
                "logprobs": {
                    "content": [
                        {
                            "id": 7,
                            "logprob": -3.0,
                            "top_logprobs": [{"id": 7, "logprob": -3.0}, {"id": 5, "logprob": -0.5}],
                        },
                        {
                            "id": 9,
                            "logprob": -0.1,
                            "top_logprobs": [{"id": 9, "logprob": -0.1}, {"id": 1, "logprob": -4.0}],
                        },
                    ]
                },
            }
        ]
    }
    sig = signature_from_response(response)
    assert sig.tokens == [5, 9]
    assert sig.text == "ab"
    assert sig.top[0] == [(5, -0.5), (7, -3.0)]


def test_distance_tolerates_noise_and_near_ties_but_not_real_changes() -> None:
    a = ProbeSignature(tokens=[1, 2], top=[[(1, -0.5), (3, -1.0)], [(2, -0.2), (4, -2.0)]])
    noisy = ProbeSignature(tokens=[1, 2], top=[[(1, -0.50001), (3, -1.00002)], [(2, -0.2), (4, -2.0)]])
    assert signature_distance(a, noisy) < MATCH_TOLERANCE
    # a near tie flipped by noise: different greedy token, tiny change in the gap
    tie_a = ProbeSignature(tokens=[1], top=[[(1, -0.693), (3, -0.6931)]])
    tie_b = ProbeSignature(tokens=[3], top=[[(3, -0.6930), (1, -0.6931)]])
    assert signature_distance(tie_a, tie_b) < MATCH_TOLERANCE
    changed = ProbeSignature(tokens=[3, 2], top=[[(3, -0.1), (1, -2.5)], [(2, -0.2), (4, -2.0)]])
    assert signature_distance(a, changed) > 1.0
    disjoint = ProbeSignature(tokens=[8], top=[[(8, -0.1), (9, -2.0)]])
    assert math.isinf(signature_distance(a, disjoint))
    assert math.isinf(signature_distance(a, ProbeSignature(tokens=[], top=[])))


def test_reference_probe_separates_adapter_and_matches_plain_base(
    tiny_model: Path, tmp_path: Path, settings: Settings
) -> None:
    adapter = make_lora_adapter(tiny_model, tmp_path / "a")
    env = subprocess_env(settings.cache_dir, enabled=settings.use_openblas)
    fp = fingerprint_model(tiny_model)
    probe = compute_adapter_probe(tiny_model, adapter, base_model_fingerprint=fp, env=env)
    assert probe.distinguishes and probe.adapter.tokens != probe.base.tokens
    assert len(probe.base.tokens) == probe.probe.max_tokens
    # base answers computed with LoRA scales at 0 equal those of the model loaded without the adapter
    base = compute_base_probe(tiny_model, base_model_fingerprint=fp, env=env)
    assert base.probe == probe.probe
    assert base.base.tokens == probe.base.tokens
    assert signature_distance(base.base, probe.base) < 1e-4


def test_a_fingerprint_child_killed_by_a_signal_is_not_blamed_on_the_model_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a CPU its OpenBLAS can't run on, the child dies by SIGILL: the error must say so, not "check
    its files" (what this machine's first run printed, with an empty output)."""
    import signal
    import subprocess

    from tooltune.adapters import fingerprint
    from tooltune.adapters.fingerprint import FingerprintError, ProbeSpec

    def killed(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, -signal.SIGILL, stdout="", stderr="")

    monkeypatch.setattr(fingerprint.subprocess, "run", killed)
    spec = ProbeSpec(messages=[{"role": "user", "content": "hi"}], tools=[])
    with pytest.raises(FingerprintError) as err:
        fingerprint._run_reference(tmp_path, None, [spec], {}, 5)
    assert "killed by SIGILL (illegal instruction" in str(err.value)
    assert "check its files" not in str(err.value)

    def failed(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="FileNotFoundError: config.json")

    monkeypatch.setattr(fingerprint.subprocess, "run", failed)
    with pytest.raises(FingerprintError, match="check its files"):
        fingerprint._run_reference(tmp_path, None, [spec], {}, 5)


def test_half_precision_models_match_probes_more_loosely(tmp_path: Path) -> None:
    """An H200 serving the 0.5B in bfloat16 answered the probe 0.25 away from mlx-lm's own answer for
    the same weights, a 1.5B adapter 0.625: a bfloat16 model must still verify, a float32 one must not
    at those distances."""
    from tooltune.adapters.fingerprint import tolerances, weights_dtype

    ref = ProbeSignature(tokens=[1, 2], top=[[(1, -0.2), (3, -4.0)], [(2, -0.1), (4, -6.0)]])
    bf16_noise = ProbeSignature(tokens=[1, 2], top=[[(1, -0.2), (3, -4.25)], [(2, -0.1), (4, -6.0)]])
    d = signature_distance(ref, bf16_noise)
    assert d == pytest.approx(0.25)
    strict, strict_apart = tolerances("float32")
    loose, loose_apart = tolerances("bfloat16")
    assert d > strict and d < loose
    # one of three 1.5B adapters served in bfloat16 on an H200 answered 0.625 away (both tries)
    bf16_15b = ProbeSignature(tokens=[1, 2], top=[[(1, -0.825), (3, -4.0)], [(2, -0.1), (4, -6.0)]])
    d15 = signature_distance(ref, bf16_15b)
    assert d15 == pytest.approx(0.625) and strict < d15 < loose
    assert tolerances("4-bit (float32 scales)") == (strict, strict_apart)
    assert tolerances("float16") == (loose, loose_apart) == tolerances("4-bit (bfloat16 scales)")
    assert loose_apart > loose and strict_apart > strict  # a distinguishing probe is never within noise
    # the dtype is read from the weights' header (packed integer weights skipped), else the config
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert weights_dtype(tmp_path) == "bfloat16"
    header = json.dumps({"a.weight": {"dtype": "U32"}, "a.scales": {"dtype": "F32"}}).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    assert weights_dtype(tmp_path) == "float32"  # the header wins over a config that says otherwise
    (tmp_path / "model.safetensors").write_bytes(b"version https://git-lfs")  # an LFS pointer
    assert weights_dtype(tmp_path) == "unknown" and tolerances("unknown") == (loose, loose_apart)


def test_a_probe_recorded_under_the_strict_threshold_is_judged_again(
    tiny_model: Path, settings: Settings
) -> None:
    from tooltune.serving.model_server import ModelServer

    sig = ProbeSignature(tokens=[1], top=[[(1, -0.1)]])
    probe = recorded_probe(sig, sig, 0.3)  # recorded when 0.25 was the threshold for every dtype
    server = ModelServer(tiny_model, settings=settings)
    assert server._weights_dtype == "float32" and server._distinguishes(probe)
    server._weights_dtype = "bfloat16"
    assert not server._distinguishes(probe)


def test_a_probe_answer_the_server_parsed_into_a_call_shows_the_call() -> None:
    """mlx_lm.server moves a tool call out of ``content``; the signature's text (what a mismatch message
    quotes) is the call, not an empty string."""
    response = {
        "choices": [
            {
                "message": {
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "read_file", "arguments": '{"path": "src/main.py"}'}}
                    ],
                },
                "logprobs": {"content": [{"top_logprobs": [{"id": 7, "logprob": -0.1}]}]},
            }
        ]
    }
    sig = signature_from_response(response)
    assert sig.text == 'read_file({"path": "src/main.py"})' and sig.tokens == [7]
    plain = {"choices": [{"message": {"content": "hello"}, "logprobs": {"content": []}}]}
    assert signature_from_response(plain).text == "hello"


def test_models_list_reads_the_float_format_of_quantized_weights_from_their_scales(tmp_path: Path) -> None:
    """`models list` takes the dtype from the weights' header, where a quantized model's packed integer
    weights are skipped (the same reader, and order, the probe tolerance uses), else from the config; a
    header that cannot be read falls back to the config instead of failing the listing."""
    from tooltune.models.catalog import model_dtype

    header = json.dumps({"a.weight": {"dtype": "U32"}, "a.scales": {"dtype": "BF16"}}).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    quantized = {"quantization": {"bits": 4, "group_size": 64}}
    assert model_dtype(tmp_path, quantized) == "4-bit (bfloat16 scales)"
    assert model_dtype(tmp_path, {"torch_dtype": "float16"}) == "bfloat16"  # the weights, not a stale config
    (tmp_path / "model.safetensors").write_bytes(b"version https://git-lfs")  # an LFS pointer
    assert model_dtype(tmp_path, {}) == "unknown"
    assert model_dtype(tmp_path, {"torch_dtype": "float16"}) == "float16"


def test_a_half_precision_answer_right_token_for_token_verifies_past_the_logprob_tolerance(
    tiny_model: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1.5B adapter in bfloat16 on an H100 answered its probe token for token, 1.25 away in log-prob
    from mlx-lm's own answer (the tolerance is 1.0): the switch must verify. float32 weights stay strict,
    and an answer that differs in a token, or is the base model's, still fails."""
    from types import SimpleNamespace

    import anyio

    from tooltune.serving.model_server import ModelServer, ServedModelMismatchError, _Target

    def sig(tokens: list[int], runner_up: list[int], gaps: list[float]) -> ProbeSignature:
        top = [[(t, -0.1), (r, -0.1 - g)] for t, r, g in zip(tokens, runner_up, gaps, strict=True)]
        return ProbeSignature(tokens=tokens, top=top)

    base = sig([5, 6, 7], [1, 2, 3], [3.0, 4.0, 9.0])
    adapter = sig([1, 2, 3], [5, 6, 7], [4.0, 5.0, 12.0])
    expected = recorded_probe(base, adapter, 1e9)
    served: dict[str, ProbeSignature] = {"now": sig([1, 2, 3], [5, 6, 7], [4.0, 5.0, 13.25])}

    async def probe(child: Any, target: Any, spec: Any) -> ProbeSignature:
        return served["now"]

    server = ModelServer(tiny_model, settings=settings)
    monkeypatch.setattr(server, "_probe", probe)
    child: Any = SimpleNamespace(port=1, pid=2)

    def verify(*args: Any) -> Any:
        return anyio.run(server._verify_with, *args)

    server._weights_dtype = "bfloat16"
    state = verify(child, _Target(name="a1"), expected)
    assert state.verified and state.adapter == "a1" and state.probe_distance == pytest.approx(1.25)
    assert state.matched_by_tokens
    # the reference ended its answer with an end of sequence the batched server does not report
    ended = adapter.model_copy(
        update={"tokens": [1, 2, 3, 9], "top": [*adapter.top, [(9, -0.1)]], "eos": [9]}
    )
    assert verify(child, _Target(name="a1"), recorded_probe(base, ended, 1e9)).matched_by_tokens
    served["now"] = sig([1, 2, 3], [5, 6, 7], [4.0, 5.0, 14.5])  # the same tokens, 2.5 away: other weights
    with pytest.raises(ServedModelMismatchError, match="distance 2.5"):
        verify(child, _Target(name="a1"), expected)
    served["now"] = sig([1, 2, 3], [5, 6, 7], [4.0, 5.0, 12.0])  # within the tolerance: no token rule needed
    assert not verify(child, _Target(name="a1"), expected).matched_by_tokens
    served["now"] = sig([1, 2, 3], [5, 6, 7], [4.0, 5.0, 13.25])
    server._weights_dtype = "float32"  # strict weights: no token rule
    with pytest.raises(ServedModelMismatchError, match="resembles neither"):
        verify(child, _Target(name="a1"), expected)
    server._weights_dtype = "bfloat16"
    served["now"] = sig([1, 2, 4], [5, 6, 3], [4.0, 5.0, 13.25])  # one token off: other weights
    with pytest.raises(ServedModelMismatchError, match="its first 2 of 3 greedy tokens"):
        verify(child, _Target(name="a1"), expected)
    served["now"] = base  # the adapter was not applied
    with pytest.raises(ServedModelMismatchError, match="resembles the base model"):
        verify(child, _Target(name="a1"), expected)
    # the base model is verified the same way: its own answer token for token, the adapter's is not
    served["now"] = sig([5, 6, 7], [1, 2, 3], [3.0, 4.0, 10.5])
    assert verify(child, _Target(name=None), expected).adapter is None
    # a probe that does not tell them apart leaves only the log-probs to judge
    blind = expected.model_copy(update={"distinguishes": False, "distance": 0.5})
    served["now"] = sig([1, 2, 3], [5, 6, 7], [4.0, 5.0, 13.25])
    with pytest.raises(ServedModelMismatchError):
        verify(child, _Target(name="a1"), blind)


def test_a_switch_matched_by_tokens_alone_is_probed_again_after_a_reload(
    tiny_model: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overwritten adapter files under the same path may still be cached by the server; a match by
    tokens alone cannot tell old files from new, so the adapter is reloaded and probed once more."""
    from types import SimpleNamespace

    import anyio

    from tooltune.serving.model_server import ModelServer, ServedState, _Target

    server = ModelServer(tiny_model, settings=settings)
    loads: list[str | None] = []
    answers: list[bool] = []

    async def wait_ready(child: Any, target: _Target) -> None:
        loads.append(target.name)

    async def verify_with(child: Any, target: _Target, expected: Any) -> ServedState:
        return ServedState(
            model_path=tiny_model, model_fingerprint="x", adapter=target.name, strategy="per_request",
            port=1, verified=True, matched_by_tokens=answers.pop(0),
        )  # fmt: skip

    monkeypatch.setattr(server, "_require_child", lambda: SimpleNamespace(alive=True))
    monkeypatch.setattr(server, "_wait_ready", wait_ready)
    monkeypatch.setattr(server, "_verify_with", verify_with)
    target = _Target(name="a1", path=Path("/adapters/a1"))
    answers[:] = [True, False]
    state = anyio.run(server._switch_per_request, target, None)
    assert loads == ["a1", None, "a1"] and not state.matched_by_tokens and server.served.adapter == "a1"
    loads.clear()
    answers[:] = [False]  # matched within the tolerance: no reload
    anyio.run(server._switch_per_request, target, None)
    assert loads == ["a1"]
