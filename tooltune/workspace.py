"""Where runtime state lives: ``<workspace>/{datasets,runs,adapters,reports,evals,jobs}``.

Everything written here goes through :func:`atomic_write_text` / :func:`atomic_dir` so a crash never
leaves a half-written file or folder behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tooltune.errors import WorkspaceError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

SUBDIRS = ("datasets", "runs", "adapters", "reports", "evals", "jobs")


def validate_name(name: str, what: str = "name") -> str:
    """Names become folder names: refuse separators, ``..`` and anything unusual."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise WorkspaceError(
            f"invalid {what} {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit (no path separators, no '..')"
        )
    return name


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def ensure(self) -> Workspace:
        for sub in SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def evals(self) -> Path:
        return self.root / "evals"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def dataset_dir(self, name: str) -> Path:
        return self.datasets / validate_name(name, "dataset name")

    def adapter_dir(self, name: str) -> Path:
        return self.adapters / validate_name(name, "adapter name")

    def run_dir(self, run_id: str) -> Path:
        return self.runs / validate_name(run_id, "run id")


# read once at import (os.umask can only be read by setting it, which is not thread-safe later)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def file_mode(path: Path) -> int:
    """The mode a file written at ``path`` should get: the existing file's, else the umask's default.

    ``mkstemp`` creates its files 0600, which a rename would carry over to every report, result and
    record; a file written atomically should look like one written with ``open``.
    """
    try:
        return Path(path).stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode(path))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, sort_keys=False, default=str)
    atomic_write_text(path, text + "\n")


@contextlib.contextmanager
def atomic_dir(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; on success rename it to ``final``, on error delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        raise WorkspaceError(f"{final} already exists; choose another name or delete it first")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700; the final folder should look like any other
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
