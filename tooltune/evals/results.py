"""Result and report models: what one eval run records and what reports are rendered from.

``cases.jsonl`` (one :class:`CaseResult` per line, appended as cases finish) is the raw record that
makes runs resumable; :class:`EvalReport` is derived from it and is the JSON source of truth that the
Markdown and HTML reports render.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from tooltune.evals.parse_calls import ParsedCall
from tooltune.evals.scoring import RawCall, Score
from tooltune.evals.suite import NO_CALL_CATEGORIES

ErrorKind = Literal["http_status", "connection", "timeout", "other"]
RETRYABLE_ERRORS: tuple[str, ...] = ("connection", "timeout")


def now() -> datetime:
    return datetime.now(UTC)


class CaseResult(BaseModel):
    """One model answer to one case (one repeat), scored natively and leniently."""

    case_id: str
    category: str
    repeat: int = 0
    expects_no_call: bool = False
    raw_text: str = ""
    native_calls: list[RawCall] = Field(default_factory=list)
    # the server ended the answer on a tool call but returned none: mlx_lm.server drops a call it cannot
    # parse (``"heat_capacity": 5J/K``) and its text with it, so the answer looks empty
    dropped_call: bool = False
    lenient_calls: list[ParsedCall] = Field(default_factory=list)
    parse_strategy: str | None = None
    native: Score
    lenient: Score
    attempted: bool = False
    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    error_kind: ErrorKind | None = None
    finished: datetime = Field(default_factory=now)

    @property
    def key(self) -> tuple[str, int]:
        return (self.case_id, self.repeat)

    def answer_text(self, limit: int = 500) -> str:
        """What the model answered, as a reader needs it: the text, then each native call as
        ``name({"arg": value})`` (an undecodable argument string as it came), or the request's error."""
        if self.error:
            return self.error[:limit]
        calls = [f"{c.name}({_arguments_text(c.arguments)})" for c in self.native_calls]
        dropped = "[a tool call the server could not parse and dropped]" if self.dropped_call else ""
        return "\n".join(part for part in (self.raw_text, *calls, dropped) if part)[:limit]


def _arguments_text(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


class RunMeta(BaseModel):
    """Everything needed to reproduce or resume a run (written once, at the start)."""

    run_id: str
    suite: str
    suite_hash: str
    suite_source: str = ""
    n_cases: int
    categories: dict[str, int] = Field(default_factory=dict)
    model_name: str
    base_url: str
    shard_urls: list[str] = Field(
        default_factory=list,
        description="Every endpoint the cases were shared between, when more than one (all serve the same "
        "model); base_url is the first.",
    )
    adapter: str | None = None
    label: str = ""
    temperature: float = 0.0
    seed: int | None = None
    repeats: int = 1
    concurrency: int = 1
    max_tokens: int = 256
    extra_body: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = None
    loss_curve: list[tuple[int, float]] = Field(default_factory=list)
    created: datetime = Field(default_factory=now)
    tooltune_version: str = ""


class Metrics(BaseModel):
    """Pass counts over (case, repeat) samples. For no-call categories ``lenient`` means "no call
    attempt of any kind" (text-formatted calls count as calls)."""

    n: int = 0
    native_pass: int = 0
    lenient_pass: int = 0
    attempted: int = 0
    errors: int = 0
    no_call_category: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def native_rate(self) -> float:
        return self.native_pass / self.n if self.n else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def lenient_rate(self) -> float:
        return self.lenient_pass / self.n if self.n else 0.0


class EvalReport(BaseModel):
    meta: RunMeta
    complete: bool
    n_expected: int
    n_results: int
    overall: Metrics
    categories: dict[str, Metrics]
    reasons_native: dict[str, int]
    reasons_lenient: dict[str, int]
    wall_s: float = 0.0
    cases_per_min: float = 0.0
    mean_latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    finished: datetime = Field(default_factory=now)
    results: list[CaseResult] = Field(default_factory=list)

    def rates(self) -> dict[str, dict[str, float]]:
        """``{category: {"native": r, "lenient": r}}`` — the compact form agents and tables want."""
        out = {k: {"native": m.native_rate, "lenient": m.lenient_rate} for k, m in self.categories.items()}
        out["overall"] = {"native": self.overall.native_rate, "lenient": self.overall.lenient_rate}
        return out


def build_report(meta: RunMeta, results: list[CaseResult], *, wall_s: float = 0.0) -> EvalReport:
    """Aggregate case results; ``wall_s`` is the time spent running (summed over resumed sessions)."""
    results = sorted(results, key=lambda r: (r.case_id, r.repeat))
    cats: dict[str, Metrics] = defaultdict(Metrics)
    overall = Metrics()
    for r in results:
        for m in (cats[r.category], overall):
            m.n += 1
            m.native_pass += r.native.passed
            m.lenient_pass += r.lenient.passed
            m.attempted += r.attempted
            m.errors += r.error is not None
        cats[r.category].no_call_category = r.expects_no_call or r.category in NO_CALL_CATEGORIES
    reasons_native = Counter(str(r.native.reason) for r in results if not r.native.passed)
    reasons_lenient = Counter(str(r.lenient.reason) for r in results if not r.lenient.passed)
    ok = [r for r in results if r.error is None]
    n_expected = meta.n_cases * meta.repeats
    return EvalReport(
        meta=meta,
        complete=len(results) >= n_expected,
        n_expected=n_expected,
        n_results=len(results),
        overall=overall,
        categories=dict(sorted(cats.items())),
        reasons_native=dict(reasons_native.most_common()),
        reasons_lenient=dict(reasons_lenient.most_common()),
        wall_s=round(wall_s, 3),
        cases_per_min=round(len(results) / wall_s * 60, 3) if wall_s > 0 else 0.0,
        mean_latency_s=round(sum(r.latency_s for r in ok) / len(ok), 3) if ok else 0.0,
        input_tokens=sum(r.input_tokens for r in results),
        output_tokens=sum(r.output_tokens for r in results),
        results=results,
    )
