"""`tooltune adapters`: the registry of trained adapters."""

from __future__ import annotations

import cyclopts

app = cyclopts.App(name="adapters", help="List, show, rename, delete and export trained adapters.")
