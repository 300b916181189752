"""The registry of trained adapters: ``<workspace>/adapters/<name>/``.

Each entry holds exactly what ``mlx_lm`` needs (``adapters.safetensors``, ``adapter_config.json``) so
the folder works with ``mlx_lm.generate --adapter-path`` as-is, plus ``tooltune.json`` (an
:class:`AdapterRecord`): which base model it belongs to (by weight fingerprint, not by name), the
dataset, config, metrics, eval scores, versions, and the probe answers used to verify serving.

Every change is atomic (temp folder + rename, temp file + rename): a failed or interrupted register
leaves nothing behind, and a reader never sees half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from tooltune.adapters.active import read_active, write_active
from tooltune.adapters.fingerprint import AdapterProbe
from tooltune.errors import TooltuneError
from tooltune.logs import get_logger
from tooltune.workspace import Workspace, atomic_dir, atomic_write_json, file_mode, validate_name

log = get_logger(__name__)

ADAPTER_FILES = ("adapters.safetensors", "adapter_config.json")
RECORD_FILE = "tooltune.json"


class UnknownAdapterError(TooltuneError):
    pass


class AdapterExistsError(TooltuneError):
    pass


class AdapterMismatchError(TooltuneError):
    pass


class CorruptAdapterError(TooltuneError):
    pass


class AdapterInUseError(TooltuneError):
    pass


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for key, dist in (("mlx", "mlx"), ("mlx_lm", "mlx-lm"), ("tooltune", "tooltune")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "unknown"
    return out


class AdapterRecord(BaseModel):
    """Everything we know about one registered adapter (``tooltune.json``)."""

    name: str
    base_model: str = Field(description="Reference the adapter was trained on (cache name, path or hub id).")
    base_model_fingerprint: str = Field(description="tooltune.models.resolve.fingerprint_model of the base.")
    dataset_hash: str | None = None
    train_config: dict[str, Any] = Field(default_factory=dict)
    train_metrics: dict[str, Any] = Field(default_factory=dict)
    eval_scores: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    versions: dict[str, str] = Field(default_factory=_versions)
    adapter_fingerprint: str = Field(default="", description="sha256 of the adapter files (set at register).")
    probe: AdapterProbe | None = Field(default=None, description="Expected probe answers (set at first use).")


def adapter_files_fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        h.update(name.encode())
        with open(folder / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def validate_adapter_files(folder: Path) -> dict[str, Any]:
    """Check the mlx-lm adapter files without loading MLX; returns the parsed adapter_config.

    Catches what would otherwise surface as an obscure crash inside the server child: missing files,
    unparsable config, a truncated or non-safetensors weights file.
    """
    folder = Path(folder)
    where = f"adapter folder {folder}"
    if not folder.is_dir():
        raise CorruptAdapterError(f"{where} does not exist; point at the folder holding adapters.safetensors")
    for name in ADAPTER_FILES:
        if not (folder / name).is_file():
            raise CorruptAdapterError(f"{where} has no {name}; re-run training or copy the complete adapter")
    try:
        config = json.loads((folder / "adapter_config.json").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptAdapterError(
            f"{where}: adapter_config.json is not valid JSON ({e}); re-create it"
        ) from e
    if not isinstance(config, dict):
        raise CorruptAdapterError(f"{where}: adapter_config.json must be a JSON object")
    kind = config.get("fine_tune_type", "lora")
    if kind not in ("lora", "dora", "full"):
        raise CorruptAdapterError(f"{where}: unknown fine_tune_type {kind!r} in adapter_config.json")
    if kind != "full":
        params = config.get("lora_parameters")
        if not isinstance(config.get("num_layers"), int) or not isinstance(params, dict):
            raise CorruptAdapterError(
                f"{where}: adapter_config.json needs integer num_layers and a lora_parameters object"
            )
        missing = [k for k in ("rank", "scale") if k not in params]
        if missing:
            raise CorruptAdapterError(
                f"{where}: lora_parameters lacks {', '.join(missing)} (mlx-lm needs both)"
            )
    _check_safetensors(folder / "adapters.safetensors")
    return config


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    bad = f"{path} is not a valid safetensors file"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CorruptAdapterError(f"{bad} (too short); re-run training or copy it again")
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or 8 + n > size:
                raise CorruptAdapterError(
                    f"{bad} (header length out of range); re-run training or copy it again"
                )
            header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptAdapterError(f"{bad} (header is not JSON); re-run training or copy it again") from e
    tensors = {k: v for k, v in header.items() if k != "__metadata__"} if isinstance(header, dict) else {}
    if not tensors:
        raise CorruptAdapterError(f"{bad} (no tensors); re-run training or copy it again")
    end = max(int(v["data_offsets"][1]) for v in tensors.values())
    if 8 + n + end > size:
        raise CorruptAdapterError(f"{bad} (truncated: tensors end past the file); copy it again")


class AdapterRegistry:
    """CRUD over ``<workspace>/adapters``; all writes atomic, all names validated."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.root = ws.adapters

    # ------------------------------------------------------------ queries
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def path(self, name: str) -> Path:
        folder = self.ws.adapter_dir(name)
        if not (folder / RECORD_FILE).is_file():
            known = ", ".join(self.names()) or "none"
            raise UnknownAdapterError(
                f"no adapter named {name!r} (known adapters: {known}); `tooltune adapters list` shows them"
            )
        return folder

    def get(self, name: str) -> AdapterRecord:
        folder = self.path(name)
        try:
            record = AdapterRecord.model_validate_json((folder / RECORD_FILE).read_text("utf-8"))
        except (ValidationError, ValueError) as e:
            raise CorruptAdapterError(
                f"{folder / RECORD_FILE} is unreadable ({type(e).__name__}); "
                "delete the adapter and register it again"
            ) from e
        # the folder name is the truth (a rename interrupted between its two steps stays consistent)
        return record.model_copy(update={"name": name})

    def list(self) -> list[AdapterRecord]:
        out: list[AdapterRecord] = []
        for name in self.names():
            try:
                out.append(self.get(name))
            except TooltuneError as e:
                log.warning("adapter_unreadable", adapter=name, error=str(e))
        return sorted(out, key=lambda r: (r.created, r.name))

    # ------------------------------------------------------------ writes
    def register(
        self, name: str, source_dir: Path, record: AdapterRecord, *, overwrite: bool = False
    ) -> AdapterRecord:
        """Copy an mlx-lm adapter folder into the registry under ``name`` (all-or-nothing)."""
        validate_name(name, "adapter name")
        source_dir = Path(source_dir)
        validate_adapter_files(source_dir)
        final = self.ws.adapter_dir(name)
        if final.exists() and not overwrite:
            raise AdapterExistsError(
                f"an adapter named {name!r} already exists; "
                "choose another name, delete it, or pass overwrite=True"
            )
        stored = record.model_copy(
            update={"name": name, "adapter_fingerprint": adapter_files_fingerprint(source_dir)}
        )
        if stored.probe is not None and stored.adapter_fingerprint != record.adapter_fingerprint:
            stored = stored.model_copy(
                update={"probe": None}
            )  # a probe belongs to the files it was computed on
        with atomic_dir(final, overwrite=overwrite) as tmp:
            for fname in ADAPTER_FILES:
                shutil.copy2(source_dir / fname, tmp / fname)
            validate_adapter_files(tmp)  # the copy, not just the source
            atomic_write_json(tmp / RECORD_FILE, stored)
        log.info(
            "adapter_registered", adapter=name, base=stored.base_model, fingerprint=stored.adapter_fingerprint
        )
        return stored

    def _rewrite(self, adapter: str, **changes: Any) -> AdapterRecord:
        record = self.get(adapter).model_copy(update=changes)
        AdapterRecord.model_validate(record.model_dump())  # fail before writing, not after
        atomic_write_json(self.path(adapter) / RECORD_FILE, record)
        return record

    def update_eval_scores(self, name: str, scores: dict[str, Any]) -> AdapterRecord:
        """Merge ``scores`` into the record's eval_scores (atomic rewrite of tooltune.json)."""
        merged = {**self.get(name).eval_scores, **scores}
        return self._rewrite(name, eval_scores=merged)

    def set_probe(self, name: str, probe: AdapterProbe) -> AdapterRecord:
        return self._rewrite(name, probe=probe)

    def delete(self, name: str, *, force: bool = False) -> None:

        folder = self.path(name)
        active = read_active(self.ws)
        if active is not None and active.adapter == name and not force:
            raise AdapterInUseError(
                f"adapter {name!r} is the active adapter; switch to another one (or baseline) first, or force"
            )
        trash = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".deleted", dir=self.root))
        os.replace(folder, trash / name)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("adapter_deleted", adapter=name)

    def rename(self, old: str, new: str) -> AdapterRecord:

        src = self.path(old)
        dst = self.ws.adapter_dir(new)
        if dst.exists():
            raise AdapterExistsError(f"an adapter named {new!r} already exists; choose another name")
        os.rename(src, dst)
        record = self._rewrite(new, name=new)
        active = read_active(self.ws)
        if active is not None and active.adapter == old:
            write_active(self.ws, active.model_copy(update={"adapter": new}))
        log.info("adapter_renamed", old=old, new=new)
        return record

    def export(self, name: str, dest: Path) -> Path:
        """Write a copy usable with ``mlx_lm.generate --adapter-path``: a folder, or a ``.tar.gz``."""
        src = self.path(name)
        validate_adapter_files(src)
        dest = Path(dest).expanduser()
        files = [*ADAPTER_FILES, RECORD_FILE]
        if dest.name.endswith((".tar.gz", ".tgz")):
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
            os.fchmod(fd, file_mode(dest))
            os.close(fd)
            try:
                with tarfile.open(tmp, "w:gz") as tar:
                    for f in files:
                        tar.add(src / f, arcname=f"{name}/{f}")
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return dest
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise AdapterExistsError(f"{dest} already exists and is not empty; export to a new folder")
        if dest.is_dir():
            dest.rmdir()
        with atomic_dir(dest) as tmp:
            for f in files:
                shutil.copy2(src / f, Path(tmp) / f)
        return dest

    # ------------------------------------------------------------ checks
    def check_base(
        self, name: str, model_fingerprint: str, model_label: str = "the served model"
    ) -> AdapterRecord:
        """Refuse an adapter trained on different base weights (it would load, and silently be wrong)."""
        record = self.get(name)
        if record.base_model_fingerprint != model_fingerprint:
            raise AdapterMismatchError(
                f"adapter {name!r} was trained on {record.base_model} (fingerprint "
                f"{record.base_model_fingerprint}) but {model_label} has fingerprint {model_fingerprint}; "
                "serve its base model or pick an adapter trained on this one"
            )
        folder = self.path(name)
        validate_adapter_files(folder)
        if record.adapter_fingerprint and adapter_files_fingerprint(folder) != record.adapter_fingerprint:
            raise CorruptAdapterError(
                f"the files of adapter {name!r} changed after it was registered "
                "(its recorded probe no longer applies); register it again with overwrite=True"
            )
        return record
