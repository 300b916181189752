"""`tooltune models`: base models (list, import a GGUF, import the demo default)."""

from __future__ import annotations

import cyclopts

app = cyclopts.App(name="models", help="Base models: list the cache, import GGUF files, import the demo model.")
