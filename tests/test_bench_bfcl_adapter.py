"""bench/bfcl_adapter.py's reuse of an adapter trained elsewhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench_import import bench_module

from tooltune.config import Settings
from tooltune.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
RUN = "run-20261206-174503-1e096a"  # the 1.5B's seed-0 SFT run, committed with its results


def test_a_reused_adapter_without_its_run_record_is_reused_not_refused(settings: Settings) -> None:
    """An adapter copied in from another machine travels without its training run (the eighth H100
    session's chain stopped here): its applied settings are then unknown (None), not an error; with the
    run record present they are read from it."""
    bfcl_adapter = bench_module("bfcl_adapter")
    ws = Workspace(settings.workspace).ensure()
    assert bfcl_adapter.reused_run_applied(settings, RUN) is None
    assert bfcl_adapter.reused_run_applied(settings, None) is None
    shutil.copytree(ROOT / "bench/results/onpolicy_gpu_h100_1.5b/runs" / RUN, ws.runs / RUN)
    applied = bfcl_adapter.reused_run_applied(settings, RUN)
    recorded = json.loads((ws.runs / RUN / "run.json").read_text())["applied"]
    assert applied == recorded and applied["adapted_layers"] == 8
