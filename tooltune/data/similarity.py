"""Near-duplicate detection and eval-leakage detection on request text.

Character 5-gram Jaccard similarity over normalised text catches reworded copies that an exact match
misses; MinHash + banded LSH keeps it near-linear so thousands of examples are checked in seconds, and
every LSH candidate is confirmed with the exact Jaccard so the threshold means what it says.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from tooltune.logs import get_logger

log = get_logger(__name__)

DEDUP_THRESHOLD = 0.9
LEAK_THRESHOLD = 0.75
_P = (1 << 31) - 1


def normalize_text(text: str) -> str:
    """Lower-case, punctuation to spaces, whitespace collapsed: "Hi!  Read X." == "hi read x"."""
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip()


def shingles(text: str, k: int = 5) -> frozenset[str]:
    t = normalize_text(text)
    if len(t) <= k:
        return frozenset([t]) if t else frozenset()
    return frozenset(t[i : i + k] for i in range(len(t) - k + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class MinHashIndex:
    """MinHash signatures in ``bands`` x ``rows`` LSH buckets; ``query`` returns confirmed matches."""

    def __init__(self, threshold: float, *, bands: int = 16, rows: int = 4, seed: int = 1) -> None:
        self.threshold = threshold
        self.bands, self.rows = bands, rows
        rs = np.random.RandomState(seed)
        n = bands * rows
        self._a = rs.randint(1, _P, size=n, dtype=np.int64)
        self._b = rs.randint(0, _P, size=n, dtype=np.int64)
        self._buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
        self._sets: list[frozenset[str]] = []
        self._keys: list[str] = []
        self._exact: dict[str, int] = {}

    def _signature(self, sh: frozenset[str]) -> np.ndarray:
        if not sh:
            return np.zeros(self.bands * self.rows, dtype=np.int64)
        hv = np.fromiter(
            (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little") for s in sh),
            dtype=np.int64,
            count=len(sh),
        )
        return ((np.outer(self._a, hv) + self._b[:, None]) % _P).min(axis=1)

    def _bands(self, sig: np.ndarray) -> list[bytes]:
        return [sig[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]

    def add(self, key: str, text: str) -> None:
        sh = shingles(text)
        idx = len(self._sets)
        self._sets.append(sh)
        self._keys.append(key)
        self._exact.setdefault(normalize_text(text), idx)
        for band, b in zip(self._buckets, self._bands(self._signature(sh)), strict=True):
            band.setdefault(b, []).append(idx)

    def query(self, text: str) -> tuple[str, float] | None:
        """Best match at or above the threshold as (key, similarity), else None."""
        norm = normalize_text(text)
        if norm in self._exact:
            return self._keys[self._exact[norm]], 1.0
        sh = shingles(text)
        cands: set[int] = set()
        for band, b in zip(self._buckets, self._bands(self._signature(sh)), strict=True):
            cands.update(band.get(b, ()))
        best: tuple[str, float] | None = None
        for i in cands:
            sim = jaccard(sh, self._sets[i])
            if sim >= self.threshold and (best is None or sim > best[1]):
                best = (self._keys[i], sim)
        return best

    def __len__(self) -> int:
        return len(self._sets)


class EvalText(BaseModel):
    source: str  # "suite:<file>:<id>" or "bfcl:<file>:<id>"
    text: str


def default_bfcl_dir() -> Path | None:
    """TOOLTUNE_BFCL_DIR, else ``bench/bfcl`` or ``../shared/bench/bfcl`` relative to the repo."""
    env = os.environ.get("TOOLTUNE_BFCL_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    for cand in (
        repo / "bench" / "bfcl",
        repo.parent / "shared" / "bench" / "bfcl",
    ):
        if cand.is_dir() and any(cand.glob("BFCL_*.json")):
            return cand
    return None


def eval_texts(suites_dir: Path | None, bfcl_dir: Path | None) -> list[EvalText]:
    """Every user message of every eval case we might be scored on.

    Suites: the built-in ones (``coding-tools``, ...) and ``<ws>/evals/suites/*.jsonl`` (cases with
    ``messages``), and the built-in agent task suites' requests (``coding-tasks``). BFCL: the
    ``question`` user contents of each non-``live_*`` file — read here only
    to keep them *out* of training data.
    """
    from tooltune.evals.suite import BUILTIN_SUITES, builtin_suite_text
    from tooltune.evals.tasks import BUILTIN_TASK_SUITES, load_task_suite

    out: list[EvalText] = []
    files = [(f"builtin:{file}", builtin_suite_text(name)) for name, file in sorted(BUILTIN_SUITES.items())]
    if suites_dir is not None and suites_dir.is_dir():
        files += [(f"suite:{f.name}", f.read_text("utf-8")) for f in sorted(suites_dir.glob("*.jsonl"))]
    for where, text in files:
        for i, line in enumerate(text.splitlines(), start=1):
            try:
                case = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(case, dict):
                continue
            for m in _flatten_messages(case.get("messages") or case.get("question") or []):
                out.append(EvalText(source=f"{where}:{case.get('id', i)}", text=m))
    for name in sorted(BUILTIN_TASK_SUITES):  # the agent task suites' requests (docs/TASKS.md)
        out += [EvalText(source=f"tasks:{name}:{t.id}", text=t.request) for t in load_task_suite(name).tasks]
    if bfcl_dir is not None and bfcl_dir.is_dir():
        for f in sorted(bfcl_dir.glob("*.json")):
            if "live" in f.name.lower():
                continue
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
                try:
                    case = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(case, dict):
                    for m in _flatten_messages(case.get("question") or []):
                        out.append(EvalText(source=f"bfcl:{f.name}:{case.get('id', i)}", text=m))
    return out


def _flatten_messages(msgs: object) -> Iterable[str]:
    if isinstance(msgs, dict):
        if msgs.get("role") == "user" and isinstance(msgs.get("content"), str):
            yield msgs["content"]
    elif isinstance(msgs, list):
        for m in msgs:
            yield from _flatten_messages(m)


class LeakIndex:
    """All eval requests, queryable for exact or near matches."""

    def __init__(self, texts: list[EvalText], threshold: float = LEAK_THRESHOLD) -> None:
        self.index = MinHashIndex(threshold, bands=32, rows=4)
        self.sources = sorted({t.source.split(":")[0] + ":" + t.source.split(":")[1] for t in texts})
        for t in texts:
            if len(normalize_text(t.text)) >= 8:  # "hi" in a suite must not ban every greeting
                self.index.add(t.source, t.text)

    @classmethod
    def for_workspace(cls, ws_root: Path | None, bfcl_dir: Path | None = None) -> LeakIndex:
        suites = ws_root / "evals" / "suites" if ws_root is not None else None
        bfcl = bfcl_dir if bfcl_dir is not None else default_bfcl_dir()
        texts = eval_texts(suites, bfcl)
        log.debug("leak index built", texts=len(texts), bfcl=str(bfcl), suites=str(suites))
        return cls(texts)

    def match(self, text: str) -> tuple[str, float] | None:
        if len(normalize_text(text)) < 8:
            return None
        return self.index.query(text)

    def __len__(self) -> int:
        return len(self.index)
