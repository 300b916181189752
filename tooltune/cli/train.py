"""`tooltune train` and `tooltune runs`: LoRA training runs in a worker subprocess."""

from __future__ import annotations

import cyclopts

app = cyclopts.App(name="train", help="Train a LoRA adapter on a dataset (worker subprocess, resumable).")
runs_app = cyclopts.App(name="runs", help="List and inspect training runs.")
