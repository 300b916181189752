"""Which adapter a workspace serves: ``<workspace>/active.json``.

Written only after a switch has been *verified*, so restarting tooltune serves what was last proven to
be served — never a selection that failed half-way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from tooltune.logs import get_logger
from tooltune.workspace import Workspace, atomic_write_json

log = get_logger(__name__)

ACTIVE_FILE = "active.json"


class ActiveSelection(BaseModel):
    model: str = Field(description="Model reference or path the server was started with.")
    model_fingerprint: str = ""
    adapter: str | None = Field(default=None, description="Registry name; None = baseline.")
    adapter_fingerprint: str | None = None
    updated: datetime = Field(default_factory=lambda: datetime.now(UTC))


def active_path(ws: Workspace) -> Path:
    return Path(ws.root) / ACTIVE_FILE


def read_active(ws: Workspace) -> ActiveSelection | None:
    path = active_path(ws)
    if not path.is_file():
        return None
    try:
        return ActiveSelection.model_validate_json(path.read_text("utf-8"))
    except (ValidationError, ValueError, OSError) as e:
        log.warning("active_selection_unreadable", path=str(path), error=str(e))
        return None


def write_active(ws: Workspace, selection: ActiveSelection) -> None:
    atomic_write_json(active_path(ws), selection.model_copy(update={"updated": datetime.now(UTC)}))
