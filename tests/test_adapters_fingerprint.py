"""Behavioural probes: parsing the server's logprobs, the distance, and the reference computation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_adapters_registry import make_lora_adapter

from tooltune.adapters.fingerprint import (
    MATCH_TOLERANCE,
    ProbeSignature,
    compute_adapter_probe,
    compute_base_probe,
    signature_distance,
    signature_from_response,
)
from tooltune.config import Settings
from tooltune.models.blas import subprocess_env
from tooltune.models.resolve import fingerprint_model


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


@pytest.mark.slow
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
