"""State shared by CLI commands of one invocation: settings, consoles (stdout for results, stderr for
progress and errors)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from tooltune.config import Settings
from tooltune.workspace import Workspace

console = Console()
console_err = Console(stderr=True)
_settings: Settings | None = None


def init(workspace: Path | None = None) -> Settings:
    global _settings
    _settings = Settings.load(workspace=workspace)
    return _settings


def settings() -> Settings:
    return _settings or init()


def workspace() -> Workspace:
    return Workspace(settings().workspace).ensure()


def served_model_path(model: str | None, adapter: str | None) -> Path:
    """The base model to serve: the one named, else the adapter's base, else the default model (already
    in the cache: the CLI never downloads to serve)."""
    from tooltune.models.resolve import resolve_model

    ref = model
    if ref is None and adapter:
        from tooltune.adapters.registry import AdapterRegistry

        ref = AdapterRegistry(workspace()).get(adapter).base_model
    return resolve_model(ref or settings().default_model, settings(), download=False).path
