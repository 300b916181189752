"""Did preference training, GRPO or rejection SFT make the model answer its own requests worse? Asked of
the model.

A DPO run's loss can fall while what the model writes falls apart: on one H200, DPO from the 0.5B's
SFT adapter (learning rate 5e-5, 150 steps, beta 0.1) brought the validation loss from 0.69 to 0.27,
and the adapter then answered every BFCL simple_python question with the same sentence over and over
(0 of 400 right; the SFT adapter it started from: 269). The loss only compares the chosen answer with
the rejected one; nothing in it keeps the chosen answer likely.

So a preference run answers some of its own requests greedily twice, with the starting model before
the first step and with the trained adapter after the last, scores both with the eval scorer against the
correct answer, and compares them request by request (exact McNemar test), separately for the
requests where a call is due and those where none is: a model that stops calling gets every refusal
"right", so one count over both would hide exactly that collapse. An adapter that gets significantly
fewer right in either group (p < :data:`ALPHA`) fails the run: it is not registered, and the message
says what it writes now. Greedy answers, as the server gives them to an eval.

The requests come from two places. The pairs' own requests are those the model got wrong at least once
when sampled, so it often gets few of them right before training, and a group needs :data:`MIN_RIGHT`
right answers before a loss there can be significant. The pick step also keeps the requests it got right
every time (``always_right.jsonl`` beside the pairs, not trained on), and the check asks up to as many
more of those. Without them, DPO at 5e-6 on one H100 passed the check (2 of its 16 no-call requests
right before training, so that half could not fail) and then called a tool on 150 of BFCL's 240
irrelevance questions, where its start had called on 52.

GRPO runs are checked the same way, on their SFT dataset's requests (the validation split first, then
the training split), each judged against its example's answer. Its loss measures nothing either: on one
H100, GRPO at 1e-5 from the SFT adapter took simple_python from 271 to 290 of 400 and called a tool on
185 of BFCL's 240 irrelevance questions, where its start had called on 51; its own rollouts called where
no call was due on 375 of 1,680 answers, and nothing stopped it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tooltune.data.examples import Example
from tooltune.data.onpolicy import AlwaysRightRequest, PreferencePair, example_case
from tooltune.errors import TooltuneError
from tooltune.evals.compare import mcnemar_exact
from tooltune.evals.suite import EvalCase
from tooltune.training.grpo import prompt_tokens, reward

__all__ = [
    "GROUPS",
    "ALPHA",
    "MIN_RIGHT",
    "AnswersGotWorseError",
    "CheckRequests",
    "check_requests",
    "answer",
    "compare_answers",
    "worse_error",
]

ALPHA = 0.05
"""A run fails when its adapter gets fewer check requests right with an exact paired p-value below this."""
MIN_RIGHT = 6
"""Right answers a group needs before training for its worst case (all lost, none gained) to reach ALPHA."""


class AnswersGotWorseError(TooltuneError):
    """The trained adapter answers the run's own validation requests significantly worse than its start."""


GROUPS = ("call_due", "no_call_due")


@dataclass
class CheckRequests:
    """The requests a run is checked on: prompt tokens, the case each greedy answer is scored against,
    its group (a call due or not) and the split it came from."""

    ids: list[str] = field(default_factory=list)
    tokens: list[list[int]] = field(default_factory=list)
    cases: list[EvalCase] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cases)


def check_requests(
    files: list[Path],
    tokenizer: Any,
    *,
    limit: int,
    max_seq_length: int,
    max_tokens: int,
    seed: int = 0,
    always_right: Path | None = None,
    pairs: bool = True,
) -> CheckRequests:
    """Up to ``limit`` distinct requests of a dataset, half where a call is due and half where none is
    (the other group fills in when one runs short), each group in a seeded shuffle with the first of
    ``files`` (the validation split) before the rest. With ``pairs``, each pair's conversation and tools
    with its chosen answer as the truth; then up to ``limit`` more, split the same way, from
    ``always_right`` (the requests the model got right every time it was sampled, with the truth they
    were judged against): no pair holds them, so only they show a run breaking what the model already
    did right. Without ``pairs`` (GRPO's SFT datasets and rejection picks, which have no always-right
    requests), each example's conversation before its last assistant turn with that turn as the truth, up
    to twice ``limit`` of them: as many as pairs and always-right ones together. A record that cannot be
    scored or does not fit ``max_seq_length`` with ``max_tokens`` of answer is passed over (training
    already named and skipped records that do not load)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out = CheckRequests()
    if not pairs:
        _fill(out, _pools(files, _example_case, rng, seen), 2 * limit, tokenizer, max_seq_length, max_tokens)
        return out
    _fill(out, _pools(files, _pair_case, rng, seen), limit, tokenizer, max_seq_length, max_tokens)
    if always_right is not None:
        pools = _pools([always_right], _always_right_case, rng, seen)
        _fill(out, pools, limit, tokenizer, max_seq_length, max_tokens)
    return out


Pool = list[tuple[str, str, EvalCase]]


def _pair_case(record: dict[str, Any], where: str) -> tuple[str, EvalCase]:
    pair = PreferencePair.model_validate(record)
    return pair.id, example_case(Example(messages=[*pair.messages, pair.chosen], tools=pair.tools), where)


def _example_case(record: dict[str, Any], where: str) -> tuple[str, EvalCase]:
    case = example_case(Example.model_validate(record), where)
    request = json.dumps({"messages": case.messages, "tools": case.tools}, sort_keys=True, ensure_ascii=False)
    return "request-" + hashlib.sha256(request.encode("utf-8")).hexdigest()[:16], case


def _always_right_case(record: dict[str, Any], where: str) -> tuple[str, EvalCase]:
    req = AlwaysRightRequest.model_validate(record)
    return req.id, example_case(Example(messages=[*req.messages, req.answer], tools=req.tools), where)


def _pools(
    files: list[Path],
    read: Callable[[dict[str, Any], str], tuple[str, EvalCase]],
    rng: random.Random,
    seen: set[str],
) -> dict[str, Pool]:
    """Each group's requests from ``files`` (read by ``read``), each file's shuffled after the earlier
    files' ones; a request already in ``seen`` is passed over."""
    pools: dict[str, Pool] = {g: [] for g in GROUPS}
    for path in files:
        try:
            lines = path.read_text("utf-8").splitlines() if path.is_file() else []
        except (OSError, UnicodeDecodeError):  # an unreadable file gives no request; the others still do
            continue
        found: dict[str, Pool] = {g: [] for g in GROUPS}
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                request_id, case = read(json.loads(line), f"{path.stem}-{n}")
            except Exception:  # noqa: BLE001, S112 — a record the check cannot use is passed over, not fatal
                continue
            if request_id in seen:
                continue
            seen.add(request_id)
            found["no_call_due" if case.expects_no_call else "call_due"].append((request_id, path.stem, case))
        for g in GROUPS:  # this file's requests, shuffled, after the earlier files' ones
            rng.shuffle(found[g])
            pools[g] += found[g]
    return pools


def _fill(
    out: CheckRequests,
    pools: dict[str, Pool],
    limit: int,
    tokenizer: Any,
    max_seq_length: int,
    max_tokens: int,
) -> None:
    """Up to ``limit`` requests of ``pools`` into ``out``: half a group, the other filling in."""
    start = len(out)
    quota = {GROUPS[0]: limit - limit // 2, GROUPS[1]: limit // 2}
    for g in GROUPS:
        _take(out, pools[g], quota[g], g, tokenizer, max_seq_length, max_tokens)
    for g in GROUPS:  # one group ran short: the other fills the rest
        _take(out, pools[g], limit - (len(out) - start), g, tokenizer, max_seq_length, max_tokens)


def _take(
    out: CheckRequests,
    pool: Pool,
    n: int,
    group: str,
    tokenizer: Any,
    max_seq_length: int,
    max_tokens: int,
) -> None:
    """Move up to ``n`` requests that fit from the front of ``pool`` into ``out`` (rendered as served)."""
    taken = 0
    while pool and taken < n:
        pair_id, split, case = pool.pop(0)
        try:
            ids = prompt_tokens(tokenizer, case)
        except Exception:  # noqa: BLE001, S112 — a template error on one request passes it over
            continue
        if len(ids) + max_tokens > max_seq_length:
            continue
        out.ids.append(pair_id)
        out.tokens.append(ids)
        out.cases.append(case)
        out.groups.append(group)
        out.splits.append(split)
        taken += 1


def answer(model: Any, tokenizer: Any, requests: CheckRequests, *, max_tokens: int) -> list[dict[str, Any]]:
    """The model's greedy answer to each request, scored: ``{"right", "outcome", "text"}`` per request."""
    from mlx_lm_lora.trainer.grpo_trainer import generate_grpo

    if not len(requests):
        return []
    _, texts, indices = generate_grpo(
        model,
        tokenizer,
        requests.tokens,
        max_tokens=max_tokens,
        group_size=1,
        batch_size=min(len(requests), 16),
        end_token="",
        temperature=0.0,  # mlx-lm's sampler at temperature 0 is the argmax: greedy, as an eval asks
        top_p=1.0,
        top_k=0,
        min_p=0.0,
    )
    by_request = dict(zip(indices, texts, strict=True))
    out = []
    for i, case in enumerate(requests.cases):
        text = by_request.get(i, "")
        _, outcome = reward(case, text, tokenizer)
        out.append(
            {"right": outcome == "right", "outcome": outcome, "text": text[:300], "group": requests.groups[i]}
        )
    return out


def _paired(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = list(zip((b["right"] for b in before), (a["right"] for a in after), strict=True))
    regressions = sum(b and not a for b, a in pairs)
    fixes = sum(a and not b for b, a in pairs)
    p = mcnemar_exact(regressions, fixes)
    lost = [a["text"] for b, a in zip(before, after, strict=True) if b["right"] and not a["right"]]
    right_before = sum(b for b, _ in pairs)
    return {
        "requests": len(pairs),
        "right_before": right_before,
        "right_after": sum(a for _, a in pairs),
        "regressions": regressions,
        "fixes": fixes,
        "p_value": round(p, 6),
        "worse": regressions > fixes and p < ALPHA,
        # losing every right answer and gaining none reaches p < 0.05 only from MIN_RIGHT right answers on
        "can_fail": right_before >= MIN_RIGHT,
        "example_lost": lost[0] if lost else None,
    }


def compare_answers(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """The starting model's and the adapter's answers compared request by request, as the run records
    them: over all requests and per group (``call_due``, ``no_call_due``); ``worse`` when the adapter
    gets fewer right in a group with an exact paired p-value below :data:`ALPHA`."""
    summary = _paired(before, after)
    groups = {}
    for g in GROUPS:
        idx = [i for i, b in enumerate(before) if b.get("group", GROUPS[0]) == g]
        if idx:
            groups[g] = _paired([before[i] for i in idx], [after[i] for i in idx])
    summary["groups"] = groups
    summary["worse"] = any(v["worse"] for v in groups.values())
    summary["worse_in"] = [g for g, v in groups.items() if v["worse"]]
    summary["outcomes_before"] = _count(b["outcome"] for b in before)
    summary["outcomes_after"] = _count(a["outcome"] for a in after)
    return summary


def worse_error(
    summary: dict[str, Any], *, method: str, learning_rate: float, splits: dict[str, int] | None = None
) -> AnswersGotWorseError:
    """The error that fails a run whose :func:`compare_answers` summary is ``worse``."""
    parts = []
    for g in summary["worse_in"]:
        v = summary["groups"][g]
        where = "where a call is due" if g == "call_due" else "where no call is due"
        parts.append(
            f"of {v['requests']} requests {where}, the starting model got {v['right_before']} right and the "
            f"trained adapter {v['right_after']} ({v['regressions']} lost, {v['fixes']} gained, "
            f"p = {v['p_value']:.2g}); it now writes, for example, {(v['example_lost'] or '')[:160]!r}"
        )
    source = ", ".join(f"{n} {split.replace('_', '-')}" for split, n in (splits or {}).items())
    return AnswersGotWorseError(
        f"{method} made the model answer its own requests worse (answered greedily"
        f"{f'; {source} requests checked' if source else ''}): {'; and '.join(parts)}. "
        "The adapter was not registered (its checkpoints are in the run folder); train again with a lower "
        f"--learning-rate (this run: {learning_rate:g}) or fewer --iters"
    )


def _count(outcomes: Any) -> dict[str, int]:
    return dict(Counter(outcomes).most_common())
