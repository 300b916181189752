"""bench/prefill_chunks.py: a prompt's prefill timed by chunk size, on the tiny model end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from bench_import import bench_module

from tooltune.config import Settings


def test_prefill_by_chunk_writes_every_length_and_chunk_with_speedups(
    tiny_model: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = bench_module("prefill_chunks")
    out = tmp_path / "p.json"
    argv = ["prefill_chunks", "--model", str(tiny_model), "--tokens", "48,96", "--chunks", "96,32,16"]
    monkeypatch.setattr(sys, "argv", [*argv, "--repeats", "1", "--out", str(out)])
    mod.main()
    got = json.loads(out.read_text())
    assert got["benchmark"] == "prefill_chunks" and "--tokens 48,96 --chunks 96,32,16" in got["command"]
    assert got["tokens_in_cache"] == {"48": [48], "96": [96]}  # every chunk size prefilled every token
    assert set(got["by_length"]) == {"48", "96"}
    for n, row in got["by_length"].items():
        assert set(row["seconds"]) == {"96", "32", "16"} and all(t > 0 for t in row["seconds"].values())
        assert row["speedup_vs_96"]["96"] == 1.0
        for c, t in row["seconds"].items():  # tokens/s and speedups are the times' own
            assert row["tokens_per_s"][c] == round(int(n) / t, 1)
            assert row["speedup_vs_96"][c] == round(row["seconds"]["96"] / t, 2)
    parts = got["one_chunk_parts"]
    assert parts["tokens"] == 96 and parts["layers"] >= 1
    assert all(parts[k] > 0 for k in ("matmuls_all_layers_s", "attention_block_s", "sdpa_s", "mlp_block_s"))


def test_a_failed_measurement_says_why(tmp_path: Path) -> None:
    mod = bench_module("prefill_chunks")
    with pytest.raises(SystemExit, match="the measurement failed"):
        mod.measure(tmp_path / "no-model", [8], [8], 1, None)
