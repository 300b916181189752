"""Paired comparison of two eval runs (typically baseline vs adapter) on the same suite.

Pairing per case matters: small suites give noisy rates, but the *discordant* cases (pass in one
run, fail in the other) carry the evidence. McNemar's exact test is a binomial test on those, so a
"+5 points" headline comes with a p-value and the list of regressions to look at.
"""

from __future__ import annotations

from collections import defaultdict
from math import comb
from typing import Literal

from pydantic import BaseModel, Field

from tooltune.evals.results import CaseResult, EvalReport, RunMeta
from tooltune.evals.scoring import Score

Mode = Literal["native", "lenient"]


def mcnemar_exact(regressions: int, fixes: int) -> float:
    """Two-sided exact McNemar p-value: P(X <= min(b, c)) * 2 for X ~ Binomial(b + c, 1/2), capped at 1."""
    n = regressions + fixes
    if n == 0:
        return 1.0
    k = min(regressions, fixes)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


class McNemar(BaseModel):
    both_pass: int = 0
    both_fail: int = 0
    regressions: int = Field(0, description="pass in A, fail in B")
    fixes: int = Field(0, description="fail in A, pass in B")
    p_value: float = 1.0


class CategoryDelta(BaseModel):
    n: int = 0
    native_a: float = 0.0
    native_b: float = 0.0
    lenient_a: float = 0.0
    lenient_b: float = 0.0

    @property
    def native_delta(self) -> float:
        return self.native_b - self.native_a

    @property
    def lenient_delta(self) -> float:
        return self.lenient_b - self.lenient_a


class ChangedCase(BaseModel):
    case_id: str
    category: str
    mode: Mode
    reason_a: str | None = None
    reason_b: str | None = None
    detail_b: str = Field(default="", description="Why B's answer failed, when it did (the scorer's detail).")
    output_a: str = Field(default="", description="A's answer: its text and its calls.")
    output_b: str = Field(default="", description="B's answer: its text and its calls.")


class Comparison(BaseModel):
    run_a: str
    run_b: str
    label_a: str
    label_b: str
    suite: str
    same_suite: bool
    n_paired: int
    only_in_a: list[str] = Field(default_factory=list)
    only_in_b: list[str] = Field(default_factory=list)
    categories: dict[str, CategoryDelta]
    mcnemar_native: McNemar
    mcnemar_lenient: McNemar
    regressions: list[ChangedCase] = Field(default_factory=list)
    fixes: list[ChangedCase] = Field(default_factory=list)
    differs: list[str] = Field(
        default_factory=list,
        description="How the two runs were made differently besides the target (model, sampling, answer "
        "length, concurrency): each a reason the pairing measures more than the adapter.",
    )

    def regressed_ids(self) -> list[str]:
        """Ids of the cases that regressed, natively or leniently, each once (a case that regressed both
        ways is in ``regressions`` twice, once per mode)."""
        return list(dict.fromkeys(c.case_id for c in self.regressions))

    def fixed_ids(self) -> list[str]:
        """Ids of the cases that got fixed, natively or leniently, each once."""
        return list(dict.fromkeys(c.case_id for c in self.fixes))


def _per_case(report: EvalReport) -> dict[str, list[CaseResult]]:
    by: dict[str, list[CaseResult]] = defaultdict(list)
    for r in report.results:
        by[r.case_id].append(r)
    return by


def _passes(results: list[CaseResult], mode: Mode) -> bool:
    """With repeats, a case passes when more than half of its samples pass."""
    wins = sum(getattr(r, mode).passed for r in results)
    return wins * 2 > len(results)


def _first_failure(results: list[CaseResult], mode: Mode) -> Score | None:
    return next((getattr(r, mode) for r in results if not getattr(r, mode).passed), None)


def _reason(results: list[CaseResult], mode: Mode) -> str | None:
    fail = _first_failure(results, mode)
    return str(fail.reason) if fail else None


def _detail(results: list[CaseResult], mode: Mode) -> str:
    fail = _first_failure(results, mode)
    return fail.detail if fail else ""


def _shown(results: list[CaseResult], mode: Mode) -> str:
    """The answer of a sample that agrees with the case's verdict (with repeats, a failing case is
    shown by one of its failures, a passing one by a pass)."""
    verdict = _passes(results, mode)
    sample = next((r for r in results if getattr(r, mode).passed == verdict), results[0])
    return sample.answer_text()


def _settings(m: RunMeta) -> dict[str, object]:
    """What a run was made with besides its target (a seed is sent only when sampling)."""
    return {
        "model_name": m.model_name,
        "temperature": m.temperature,
        "seed": m.seed if m.temperature > 0 else None,
        "repeats": m.repeats,
        "max_tokens": m.max_tokens,
        "concurrency": m.concurrency,
    }


def setting_differences(a: dict[str, object], b: dict[str, object]) -> list[str]:
    """``name: a vs b`` for each setting of ``a`` that ``b`` does not share (eval and task runs alike)."""
    return [f"{k}: {a[k]} vs {b.get(k)}" for k in a if a[k] != b.get(k)]


def run_differences(a: RunMeta, b: RunMeta) -> list[str]:
    """The settings two eval runs did not share (the target, adapter or base model, aside), as
    ``name: a vs b``; the suite version is ``same_suite``."""
    return setting_differences(_settings(a), _settings(b))


def compare_reports(a: EvalReport, b: EvalReport) -> Comparison:
    ca, cb = _per_case(a), _per_case(b)
    paired = sorted(set(ca) & set(cb))
    cats: dict[str, CategoryDelta] = defaultdict(CategoryDelta)
    tests = {"native": McNemar(), "lenient": McNemar()}
    regressions: list[ChangedCase] = []
    fixes: list[ChangedCase] = []
    for cid in paired:
        cat = ca[cid][0].category
        d = cats[cat]
        d.n += 1
        for mode in ("native", "lenient"):
            pa, pb = _passes(ca[cid], mode), _passes(cb[cid], mode)  # type: ignore[arg-type]
            setattr(d, f"{mode}_a", getattr(d, f"{mode}_a") + pa)
            setattr(d, f"{mode}_b", getattr(d, f"{mode}_b") + pb)
            t = tests[mode]
            if pa and pb:
                t.both_pass += 1
            elif not pa and not pb:
                t.both_fail += 1
            else:
                change = ChangedCase(
                    case_id=cid,
                    category=cat,
                    mode=mode,  # type: ignore[arg-type]
                    reason_a=_reason(ca[cid], mode),  # type: ignore[arg-type]
                    reason_b=_reason(cb[cid], mode),  # type: ignore[arg-type]
                    detail_b=_detail(cb[cid], mode),  # type: ignore[arg-type]
                    output_a=_shown(ca[cid], mode),  # type: ignore[arg-type]
                    output_b=_shown(cb[cid], mode),  # type: ignore[arg-type]
                )
                if pa:
                    t.regressions += 1
                    regressions.append(change)
                else:
                    t.fixes += 1
                    fixes.append(change)
    for d in cats.values():
        for f in ("native_a", "native_b", "lenient_a", "lenient_b"):
            setattr(d, f, getattr(d, f) / d.n)
    for t in tests.values():
        t.p_value = mcnemar_exact(t.regressions, t.fixes)
    total = CategoryDelta(n=len(paired))
    if paired:
        for f in ("native_a", "native_b", "lenient_a", "lenient_b"):
            setattr(total, f, sum(getattr(d, f) * d.n for d in cats.values()) / len(paired))
    categories = dict(sorted(cats.items()))
    categories["overall"] = total
    return Comparison(
        run_a=a.meta.run_id,
        run_b=b.meta.run_id,
        label_a=a.meta.label or a.meta.adapter or "A",
        label_b=b.meta.label or b.meta.adapter or "B",
        suite=a.meta.suite if a.meta.suite == b.meta.suite else f"{a.meta.suite} / {b.meta.suite}",
        same_suite=a.meta.suite_hash == b.meta.suite_hash,
        n_paired=len(paired),
        only_in_a=sorted(set(ca) - set(cb)),
        only_in_b=sorted(set(cb) - set(ca)),
        categories=categories,
        mcnemar_native=tests["native"],
        mcnemar_lenient=tests["lenient"],
        regressions=regressions,
        fixes=fixes,
        differs=run_differences(a.meta, b.meta),
    )
