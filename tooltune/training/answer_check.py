"""Did preference training make the model answer its own requests worse? Asked of the model itself.

A DPO run's loss can fall while what the model writes falls apart: on one H200, DPO from the 0.5B's
SFT adapter (learning rate 5e-5, 150 steps, beta 0.1) brought the validation loss from 0.69 to 0.27,
and the adapter then answered every BFCL simple_python question with the same sentence over and over
(0 of 400 right; the SFT adapter it started from: 269). The loss only compares the chosen answer with
the rejected one; nothing in it keeps the chosen answer likely.

So a preference run answers a few of its validation requests greedily twice, with the starting model
before the first step and with the trained adapter after the last, scores both with the eval scorer
against the pair's correct answer, and compares them request by request (exact McNemar test). An adapter
that gets significantly fewer right (p < :data:`ALPHA`) fails the run: it is not registered, and the
message says what it writes now. Greedy answers, as the server gives them to an eval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tooltune.data.examples import Example
from tooltune.data.onpolicy import PreferencePair, example_case
from tooltune.errors import TooltuneError
from tooltune.evals.compare import mcnemar_exact
from tooltune.evals.suite import EvalCase
from tooltune.training.grpo import reward

__all__ = [
    "ALPHA",
    "AnswersGotWorseError",
    "CheckRequests",
    "check_requests",
    "answer",
    "compare_answers",
    "worse_error",
]

ALPHA = 0.05
"""A run fails when its adapter gets fewer check requests right with an exact paired p-value below this."""


class AnswersGotWorseError(TooltuneError):
    """The trained adapter answers the run's own validation requests significantly worse than its start."""


@dataclass
class CheckRequests:
    """The requests a run is checked on: prompt tokens, and the case each greedy answer is scored against."""

    ids: list[str] = field(default_factory=list)
    tokens: list[list[int]] = field(default_factory=list)
    cases: list[EvalCase] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cases)


def check_requests(
    files: list[Path], tokenizer: Any, *, limit: int, max_seq_length: int, max_tokens: int
) -> CheckRequests:
    """Up to ``limit`` distinct requests of a pairs dataset, the validation split first (``files`` in
    order): each pair's conversation and tools with its chosen answer as the truth. A pair that cannot
    be scored or does not fit ``max_seq_length`` with ``max_tokens`` of answer is passed over (the
    training already named and skipped records that do not load)."""
    out = CheckRequests()
    for path in files:
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if len(out) >= limit:
                return out
            if not line.strip():
                continue
            try:
                pair = PreferencePair.model_validate(json.loads(line))
                if pair.id in out.ids:
                    continue
                ex = Example(messages=[*pair.messages, pair.chosen], tools=pair.tools)
                case = example_case(ex, f"{path.stem}-{n}")
                ids = tokenizer.apply_chat_template(
                    case.messages, tools=case.tools or None, tokenize=True, add_generation_prompt=True
                )
                ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
            except Exception:  # noqa: BLE001, S112 — a pair the check cannot use is passed over, not fatal
                continue
            if len(ids) + max_tokens > max_seq_length:
                continue
            out.ids.append(pair.id)
            out.tokens.append(ids)
            out.cases.append(case)
    return out


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
        out.append({"right": outcome == "right", "outcome": outcome, "text": text[:300]})
    return out


def compare_answers(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """The starting model's and the adapter's answers compared request by request, as the run records
    them; ``worse`` when the adapter gets fewer right with an exact paired p-value below :data:`ALPHA`."""
    pairs = list(zip((b["right"] for b in before), (a["right"] for a in after), strict=True))
    regressions = sum(b and not a for b, a in pairs)
    fixes = sum(a and not b for b, a in pairs)
    p = mcnemar_exact(regressions, fixes)
    lost = [a["text"] for b, a in zip(before, after, strict=True) if b["right"] and not a["right"]]
    return {
        "requests": len(pairs),
        "right_before": sum(b for b, _ in pairs),
        "right_after": sum(a for _, a in pairs),
        "regressions": regressions,
        "fixes": fixes,
        "p_value": round(p, 6),
        "worse": regressions > fixes and p < ALPHA,
        "outcomes_before": _count(b["outcome"] for b in before),
        "outcomes_after": _count(a["outcome"] for a in after),
        "example_lost": lost[0] if lost else None,
    }


def worse_error(summary: dict[str, Any], *, method: str, learning_rate: float) -> AnswersGotWorseError:
    """The error that fails a run whose :func:`compare_answers` summary is ``worse``."""
    example = (summary["example_lost"] or "")[:160]
    return AnswersGotWorseError(
        f"{method} made the model answer its own validation requests worse: of {summary['requests']} "
        f"answered greedily, the starting model got {summary['right_before']} right and the trained adapter "
        f"{summary['right_after']} ({summary['regressions']} lost, {summary['fixes']} gained, "
        f"p = {summary['p_value']:.2g}); it now writes, for example, {example!r}. "
        "The adapter was not registered (its checkpoints are in the run folder); train again with a lower "
        f"--learning-rate (this run: {learning_rate:g}) or fewer --iters"
    )


def _count(outcomes: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
