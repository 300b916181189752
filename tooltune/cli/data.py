"""`tooltune data`: tool specs → generated examples → checked, immutable datasets."""

from __future__ import annotations

import cyclopts

app = cyclopts.App(name="data", help="Generate, lint and inspect training datasets (tool-calling examples).")
