"""Immutable, content-addressed datasets: ``<ws>/datasets/<name>/{train,valid,test}.jsonl + dataset.json``.

A training run records the dataset hash, so "which data trained this adapter" stays answerable; that
only holds if a name never silently changes content, hence: write once (atomically), refuse to
overwrite with different content, and derive the hash from the content and how it was made.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tooltune.data.examples import DataError, Example, example_from_record, read_jsonl
from tooltune.data.lint import SPLITS, LintReport
from tooltune.errors import WorkspaceError
from tooltune.logs import get_logger
from tooltune.workspace import Workspace, atomic_dir, atomic_write_json, validate_name

log = get_logger(__name__)


class DatasetMeta(BaseModel):
    """How a dataset was made; all of it (except ``created``) enters the hash, as :func:`portable_meta`
    writes it: without where on this machine its files were found."""

    sources: list[str] = Field(default_factory=list)
    generator_version: str = ""
    seed: int | None = None
    kinds: list[str] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    lint: LintReport | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class DatasetInfo(DatasetMeta):
    name: str
    path: Path
    hash: str
    counts: dict[str, int]
    created: str = ""


def split_of(ex: Example) -> str:
    """Deterministic 80/10/10 split by content hash; pieces of one conversation share a split (by
    ``meta.group``) so a prefix seen in training never turns up in validation."""
    key = ex.meta.group or ex.content_hash()
    bucket = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 80 else "valid" if bucket < 90 else "test"


def split_examples(
    examples: list[Example], split_by: Callable[[Example], str] = split_of
) -> dict[str, list[Example]]:
    """``examples`` by split (``split_by``: :func:`split_of` unless the caller splits by something else,
    e.g. on-policy data by request), never leaving train empty, nor valid when there are 10 or more."""
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for ex in examples:
        out[split_by(ex)].append(ex)
    if len(examples) >= 10:
        # Never leave valid (or train) empty: move the lowest-hash group deterministically.
        for need, donor in (("valid", "train"), ("valid", "test"), ("train", "test")):
            if not out[need] and out[donor]:
                groups = sorted({e.meta.group or e.content_hash() for e in out[donor]})
                g = groups[0]
                moved = [e for e in out[donor] if (e.meta.group or e.content_hash()) == g]
                out[donor] = [e for e in out[donor] if (e.meta.group or e.content_hash()) != g]
                out[need] += moved
    if not out["train"]:  # a few examples, none hashed to train: training needs them more
        return {"train": [*out["valid"], *out["test"]], "valid": [], "test": []}
    return out


def _canonical(examples: list[Example]) -> str:
    return "".join(ex.to_line() + "\n" for ex in examples)


# Tool-source kinds whose spec is not a path (see tooltune.data.tool_sources); ``examples:``/``import:``
# already name a file without its folder.
_NOT_A_PATH = ("builtin:", "examples:", "import:")


def _portable_path(path: str) -> str:
    """A file by its name: ``/home/me/clone/../shared/bench/bfcl/BFCL_x.json`` -> ``BFCL_x.json``."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def portable_source(source: str) -> str:
    """A tool source as the hash sees it: files by name, not by where this clone or cache keeps them (the
    tools themselves are in every example, so their content is hashed anyway)."""
    if source.startswith(_NOT_A_PATH):
        return source
    if source.startswith("mcp:"):
        command = source[4:].strip()
        if "://" in command:  # an MCP server's URL
            return source
        try:
            words = shlex.split(command)
        except ValueError:
            return source
        portable = [_portable_path(w) if Path(w).is_absolute() else w for w in words]
        return source if portable == words else "mcp:" + shlex.join(portable)
    if source.startswith("bfcl:"):
        return "bfcl:" + _portable_path(source[5:])
    return _portable_path(source)


def portable_meta(meta: DatasetMeta) -> DatasetMeta:
    """``meta`` without what depends on where things sit on this machine: the paths of the tool files
    (:func:`portable_source`), the eval files the leakage check found and the model folder's location
    (:meth:`LintReport.portable`), a local teacher model's folder. The same examples made with the same
    settings then hash the same in any clone, workspace or cache."""
    update: dict[str, Any] = {"sources": [portable_source(s) for s in meta.sources]}
    if meta.lint is not None:
        update["lint"] = meta.lint.portable()
    teacher = meta.stats.get("teacher")
    model = teacher.get("model") if isinstance(teacher, dict) else None
    if isinstance(model, str) and Path(model).is_absolute():  # `--teacher self` names the model's folder
        update["stats"] = {**meta.stats, "teacher": {**teacher, "model": Path(model).name}}
    return meta.model_copy(update=update)


def compute_hash(texts: dict[str, str], meta: DatasetMeta) -> str:
    """The examples of each split and how they were made (:func:`portable_meta`), never where."""
    h = hashlib.sha256()
    for s in SPLITS:
        h.update(s.encode() + b"\0" + texts.get(s, "").encode("utf-8") + b"\0")
    h.update(portable_meta(meta).model_dump_json(exclude={"created"}).encode("utf-8"))
    return "sha256:" + h.hexdigest()


def _ws(ws: Workspace | Path) -> Workspace:
    return ws if isinstance(ws, Workspace) else Workspace(Path(ws))


def save_dataset(
    ws: Workspace | Path,
    name: str,
    examples: list[Example],
    meta: DatasetMeta | dict[str, Any],
    split_by: Callable[[Example], str] = split_of,
) -> DatasetInfo:
    """Split (by ``split_by``), hash and write atomically. Same name + same hash: returns the existing
    dataset. Same name + different content: refused."""
    ws = _ws(ws)
    validate_name(name, "dataset name")
    if not examples:
        raise DataError(f"dataset {name!r} would be empty; nothing was written")
    meta = meta if isinstance(meta, DatasetMeta) else DatasetMeta.model_validate(meta)
    splits = split_examples(examples, split_by)
    texts = {s: _canonical(v) for s, v in splits.items()}
    digest = compute_hash(texts, meta)
    final = ws.datasets / name
    if final.exists():
        existing = load_dataset(ws, name)
        if existing.hash == digest:
            log.info("dataset already exists with the same content", name=name, hash=digest)
            return existing
        raise WorkspaceError(
            f"dataset {name!r} already exists with different content ({existing.hash[:19]}…); "
            "datasets are immutable — choose a new --out name"
        )
    counts = {s: len(v) for s, v in splits.items()}
    info = DatasetInfo(
        **meta.model_dump(),
        name=name,
        path=final,
        hash=digest,
        counts=counts,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    with atomic_dir(final) as tmp:
        for s in SPLITS:
            (tmp / f"{s}.jsonl").write_text(texts[s], encoding="utf-8")
        atomic_write_json(tmp / "dataset.json", json.loads(info.model_dump_json(exclude={"path"})))
    log.info("dataset saved", name=name, hash=digest, **counts)
    return info


def load_dataset(ws: Workspace | Path, name: str) -> DatasetInfo:
    ws = _ws(ws)
    path = ws.dataset_dir(name)
    meta_file = path / "dataset.json"
    if not meta_file.is_file():
        known = ", ".join(d.name for d in list_datasets(ws)) or "none"
        raise DataError(
            f"dataset {name!r} not found in {ws.datasets} (known: {known}); "
            "create it with `tooltune data generate` or `tooltune data import`"
        )
    data = json.loads(meta_file.read_text(encoding="utf-8"))
    return DatasetInfo.model_validate({**data, "path": path})


def list_datasets(ws: Workspace | Path) -> list[DatasetInfo]:
    ws = _ws(ws)
    out: list[DatasetInfo] = []
    if not ws.datasets.is_dir():
        return out
    for d in sorted(ws.datasets.iterdir()):
        if d.is_dir() and not d.name.startswith(".") and (d / "dataset.json").is_file():
            try:
                out.append(load_dataset(ws, d.name))
            except (ValueError, DataError) as e:
                log.warning("unreadable dataset.json", dataset=d.name, error=str(e))
    return out


def read_examples(path: Path) -> list[Example]:
    """All examples of a JSONL file (train/valid/test or a caller file); errors name file:line."""
    return [example_from_record(obj, f"{path}:{i}") for i, obj in read_jsonl(path)]


def dataset_examples(info: DatasetInfo, split: str | None = None) -> list[Example]:
    out: list[Example] = []
    for s in [split] if split else list(SPLITS):
        f = info.path / f"{s}.jsonl"
        if f.is_file():
            out += read_examples(f)
    return out
