"""`tooltune eval`: run tool-calling eval suites, compare baseline vs adapter, write reports."""

from __future__ import annotations

import cyclopts

app = cyclopts.App(name="eval", help="Run tool-calling eval suites and compare baseline vs adapter.")
