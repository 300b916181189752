"""GRPO with the eval scorer as the reward, inside mlx-lm's training loop.

Each step draws ``batch_size`` requests of an SFT dataset, lets the current policy answer each one
``group_size`` times at ``sample_temperature`` (mlx-lm-lora's ``generate_grpo``, from prompts rendered
here with the tools as ``mlx_lm.server`` renders them: mlx-lm-lora's GRPO dataset renders a bare prompt
without tools, which would train a prompt the server never sends), reads each answer the way the server
does (text between the tokenizer's tool-call markers through its tool parser; a call that does not parse
is dropped), scores it with the eval scorer against the example's own answer, and turns the rewards into
group-normalised advantages (mlx-lm-lora's ``calculate_rewards_and_advantages``).

The reward follows the scorer's verdict and reason code (:data:`REWARDS`): 1 for a right answer (a call
that passes, or no call attempt of any kind where none is due), partial credit for the native format with
the right tool, less for a native call to the wrong tool or a call written as text, nothing for no call,
an over-call or broken JSON. So format, name, arguments and the no-call decision all carry signal.

The loss is mlx-lm-lora's GRPO objective (``grpo`` loss type, one policy update per rollout, so the
importance ratio is 1 and only its gradient path remains) plus ``beta`` times the per-token KL estimate
against the reference, written out here because mlx-lm-lora keeps it in a private, compiled function that
wants a second model in memory. The reference is the starting policy (the base model, or the base plus
``init_adapter``): its log-probabilities for each rollout are computed before the step by loading the
starting LoRA weights for one forward pass. The LM head runs at the answer positions only.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tooltune.data.examples import Example
from tooltune.data.onpolicy import example_case
from tooltune.errors import TooltuneError
from tooltune.evals.scoring import RawCall, Reason, score_case
from tooltune.evals.suite import EvalCase
from tooltune.logs import get_logger

log = get_logger(__name__)

__all__ = ["REWARDS", "GrpoPrompts", "load_prompts", "server_answer", "reward", "grpo_loss_fn"]

# reward per outcome: the scorer's native reason code, "right" when the answer is right by both verdicts
REWARDS: dict[str, float] = {
    "right": 1.0,
    # the native format and the right tool, something off in the arguments
    Reason.missing_param.value: 0.5,
    Reason.extra_param.value: 0.5,
    Reason.wrong_value.value: 0.5,
    Reason.wrong_type.value: 0.5,
    Reason.wrong_count.value: 0.3,
    Reason.wrong_tool.value: 0.2,
    # a call written as text: the server returns no tool call
    Reason.unparsed_format.value: 0.1,
    Reason.bad_json.value: 0.0,
    Reason.no_call_made.value: 0.0,
    Reason.called_when_irrelevant.value: 0.0,
}


@dataclass
class GrpoPrompts:
    """The requests GRPO samples: rendered prompt tokens and the eval case each answer is scored against."""

    tokens: list[list[int]] = field(default_factory=list)
    cases: list[EvalCase] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file:line: why" of each record left out

    def __len__(self) -> int:
        return len(self.cases)


def prompt_tokens(tokenizer: Any, case: EvalCase) -> list[int]:
    """A case's conversation with its tools, rendered as ``mlx_lm.server`` renders the request, up to
    the assistant's turn."""
    ids = tokenizer.apply_chat_template(
        case.messages, tools=case.tools or None, tokenize=True, add_generation_prompt=True
    )
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def load_prompts(path: Path, tokenizer: Any, max_seq_length: int, max_completion_tokens: int) -> GrpoPrompts:
    """Read an SFT dataset split: each example's conversation before its last assistant turn becomes a
    prompt (rendered with its tools and the generation prompt), that turn the truth. A record that cannot
    be used (not JSON, no answer, a truth the scorer cannot express, a prompt too long for
    ``max_seq_length`` with the answer's room) is skipped and named; the rest go on."""
    out = GrpoPrompts()
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            ex = Example.model_validate(json.loads(line))
            case = example_case(ex, f"{path.stem}-{n}")
            ids = prompt_tokens(tokenizer, case)
        except Exception as e:  # noqa: BLE001 — one bad record (even a template error) never sinks the rest
            out.skipped.append(f"{where}: {type(e).__name__}: {e}")
            continue
        if len(ids) + max_completion_tokens > max_seq_length:
            out.skipped.append(
                f"{where}: the prompt ({len(ids)} tokens) and {max_completion_tokens} answer tokens do not "
                f"fit max_seq_length {max_seq_length}"
            )
            continue
        out.tokens.append(ids)
        out.cases.append(case)
    if out.skipped:
        log.warning("grpo.prompts_skipped", skipped=len(out.skipped), first=out.skipped[0])
    return out


def server_answer(text: str, tokenizer: Any, tools: list[dict[str, Any]]) -> tuple[list[RawCall], str, bool]:
    """What ``mlx_lm.server`` returns for a generated ``text``: (tool calls, content, a call dropped).
    Text between the tokenizer's tool-call markers goes through its tool parser (mlx-lm's own
    ``ToolCallFormatter``); a call that does not parse is dropped, as the server drops it; an unclosed
    call at the end is still parsed, as the server does at the end of a generation (an empty one is
    nothing, as there). Text that parses but is no call (no name, not an object) is dropped too, where
    the server would fail on it: a sampled answer must never stop training."""
    text = _without_reasoning(text, tokenizer)
    start, end = getattr(tokenizer, "tool_call_start", None), getattr(tokenizer, "tool_call_end", None)
    if not getattr(tokenizer, "has_tool_calling", False) or not start or not end:
        return [], text, False
    from mlx_lm.server import ToolCallFormatter

    content, pieces, rest = "", [], text
    while start in rest:
        before, _, after = rest.partition(start)
        content += before
        body, closed, rest = after.partition(end)
        if closed or body:
            pieces.append(body)
        if not closed:
            rest = ""
    content += rest
    calls: list[RawCall] = []
    dropped = False
    for piece in pieces:
        try:
            formatted = ToolCallFormatter(tokenizer.tool_parser, tools)([piece])
            parsed = [
                RawCall(name=f["function"]["name"], arguments=f["function"]["arguments"]) for f in formatted
            ]
        except Exception:  # noqa: BLE001 — valid JSON that is no call object: the server could not use it
            parsed = []
        calls += parsed
        dropped = dropped or not parsed
    return calls, content, dropped


def _without_reasoning(text: str, tokenizer: Any) -> str:
    """``text`` less a thinking model's reasoning, which the server returns apart from the content (and
    never parses for calls): every ``think_start … think_end`` span, and what precedes a ``think_end``
    with no start (the chat template opened the block in the prompt)."""
    if not getattr(tokenizer, "has_thinking", False):
        return text
    open_, close = getattr(tokenizer, "think_start", None), getattr(tokenizer, "think_end", None)
    if not open_ or not close:
        return text
    if close in text and (open_ not in text or text.index(close) < text.index(open_)):
        text = text.split(close, 1)[1]
    out = ""
    while open_ in text:
        before, _, after = text.partition(open_)
        out += before
        text = after.split(close, 1)[1] if close in after else ""  # an unclosed block is all reasoning
    return out + text


def reward(case: EvalCase, text: str, tokenizer: Any) -> tuple[float, str]:
    """The reward of one generated answer and the outcome it was given for (a :data:`REWARDS` key)."""
    calls, content, dropped = server_answer(text, tokenizer, case.tools)
    verdict = score_case(case, calls, content, dropped_call=dropped)
    if verdict.native.passed and verdict.lenient.passed and not (case.expects_no_call and verdict.attempted):
        return REWARDS["right"], "right"
    if verdict.native.passed:  # no native call where none is due, but one written as text
        return REWARDS[Reason.called_when_irrelevant.value], Reason.called_when_irrelevant.value
    outcome = verdict.native.reason.value if verdict.native.reason else Reason.no_call_made.value
    return REWARDS.get(outcome, 0.0), outcome


@dataclass
class Rollout:
    """One step's sampled answers as model inputs, with what the step logs."""

    # (tokens, positions, valid, advantages, reference log-probs[, the reference's log-probabilities of
    # opening with the tool-call marker and of not doing so, with a decision term])
    batch: tuple[Any, ...]
    rewards: list[float]
    outcomes: Counter[str]
    generated_tokens: int
    processed_tokens: int
    seconds: dict[str, float]
    draws: int = 1  # request sets sampled for this step (flat ones are drawn again)
    flat_groups: int = 0  # groups of the kept draw whose answers all earned the same reward
    groups: int = 0  # requests in the kept draw
    cut_off: int = 0  # answers that reached max_completion_tokens
    drawn_rewards: list[float] = field(default_factory=list)  # every draw's, the flat ones included
    requests: list[list[int]] = field(default_factory=list)  # the requests of each draw (dataset order)
    drawn_outcomes: Counter[str] = field(default_factory=Counter)
    # groups of the kept draw that carry a signal (answers rewarded differently), by whether a call is due
    learned: dict[str, int] = field(default_factory=dict)
    no_call_groups: int = 0  # groups of the kept draw where no call is due


# A group whose answers all earn the same reward has zero advantage: the step learns nothing from it (only
# the KL term pulls). A step whose every group is flat is sampled again with the next requests, at most
# this many draws in all (DAPO's dynamic sampling); the last draw is trained on whatever it holds.
MAX_DRAWS = 4


def rollout_batch(
    rows: list[list[int]], prompt_lengths: list[int], advantages: Any, reference: Any | None = None
) -> tuple[Any, ...]:
    """Right-padded prompt+answer rows (widths in steps of 32, as mlx-lm pads) and the answer positions
    the head runs at; ``reference`` (per answer position) defaults to zeros until it is scored."""
    import mlx.core as mx
    import numpy as np

    from tooltune.training.losses import answer_positions

    longest = max(len(r) for r in rows)
    width = 32 * -(-longest // 32)
    tokens = np.zeros((len(rows), width), np.int32)
    for j, row in enumerate(rows):
        tokens[j, : len(row)] = row
    spans = np.array([[p, len(r) - 1] for p, r in zip(prompt_lengths, rows, strict=True)])
    positions, valid = answer_positions(spans, width - 1)
    if reference is None:
        reference = mx.zeros(positions.shape, dtype=mx.float32)
    return mx.array(tokens), positions, valid, mx.array(advantages, dtype=mx.float32), reference


def token_logps(
    model: Any, tokens: Any, positions: Any, temperature: float = 1.0, first_token: int | None = None
) -> Any:
    """Log-probabilities of the target tokens at ``positions`` (per row) under the distribution sampled
    from (logits over ``temperature``, as TRL scores GRPO's samples), with the LM head run there only
    when the model's body/head split is known (training/losses.py ``head_split``). With ``first_token``,
    also each row's log-probabilities of opening the answer with that token and of not doing so (a
    log-sum-exp over the other tokens: exact where the choice is near certain), as two more arrays."""
    import mlx.core as mx

    from tooltune.training.losses import head_split

    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    picked = mx.take_along_axis(targets, positions, axis=1)
    split = head_split(model)
    if split is None:
        logits = mx.take_along_axis(model(inputs), positions[..., None], axis=1)
    else:
        body, head = split
        logits = head(mx.take_along_axis(body(inputs), positions[..., None], axis=1))
    logits = logits.astype(mx.float32) / temperature
    norm = mx.logsumexp(logits, axis=-1)
    picked_logps = mx.take_along_axis(logits, picked[..., None], axis=-1).squeeze(-1) - norm
    if first_token is None:
        return picked_logps
    first = logits[:, 0]
    others = mx.where(mx.arange(first.shape[-1]) == first_token, -mx.inf, first)
    return picked_logps, first[:, first_token] - norm[:, 0], mx.logsumexp(others, axis=-1) - norm[:, 0]


def tool_call_token(tokenizer: Any) -> int:
    """The one token a tool call opens with (Qwen's ``<tool_call>``): the decision a decision KL term
    holds. A model without tool-call markers, or whose marker is several tokens, has none to hold, nor
    has a thinking model (its answers open with its reasoning, not with the decision)."""
    if getattr(tokenizer, "has_thinking", False):
        raise ValueError("decision_kl holds the first answer token; a thinking model's is its reasoning")
    start = getattr(tokenizer, "tool_call_start", None)
    ids = tokenizer.encode(start, add_special_tokens=False) if start else []
    if len(ids) != 1:
        raise ValueError(
            f"decision_kl needs a tool-call marker that is one token; this model's is {start!r} ({ids})"
        )
    return int(ids[0])


def decision_kl(reference: tuple[Any, Any], policy: tuple[Any, Any]) -> Any:
    """Per row, KL(reference || policy) of the two-way choice "the answer opens with the tool-call marker
    or not", from each side's log-probabilities of opening with it and of not (no clipping: the term
    still pulls where the policy has made the choice near certain)."""
    import mlx.core as mx

    (r_call, r_not), (p_call, p_not) = reference, policy
    return mx.exp(r_call) * (r_call - p_call) + mx.exp(r_not) * (r_not - p_not)


def grpo_loss_fn(
    beta: float, temperature: float = 1.0, decision: float = 0.0, decision_token: int | None = None
) -> Any:
    """The loss mlx-lm's ``train`` calls as ``loss(model, *batch)`` on a :func:`rollout_batch`: per answer
    token ``-A * ratio`` (ratio = 1 on policy, its gradient that of the log-probability) plus ``beta`` times
    ``exp(ref - logp) - (ref - logp) - 1``, averaged per answer then over answers (mlx-lm-lora's ``grpo``
    loss type); log-probabilities at the sampling ``temperature``. With ``decision`` above 0, plus that
    weight times :func:`decision_kl` of ``decision_token`` at the first answer position, averaged over
    answers (the batch then carries the reference's log-probabilities of opening with it and of not as a
    sixth and seventh array). Returns (loss, answer tokens)."""
    import mlx.core as mx

    if decision and decision_token is None:
        raise ValueError("a decision KL term needs the tool-call marker's token")

    def loss(
        model: Any, tokens: Any, positions: Any, valid: Any, advantages: Any, reference: Any, *first: Any
    ) -> Any:
        if decision:
            logps, *policy_first = token_logps(model, tokens, positions, temperature, decision_token)
        else:
            logps = token_logps(model, tokens, positions, temperature)
        ratio = mx.exp(logps - mx.stop_gradient(logps))
        per_token = -ratio * advantages[:, None]
        if beta:
            delta = mx.minimum(mx.stop_gradient(reference) - logps, 20.0)  # mlx-lm-lora's overflow bound
            per_token = per_token + beta * mx.maximum(mx.expm1(delta) - delta, 0)
        mask = valid.astype(mx.float32)
        counts = mask.sum(axis=1)
        value = ((per_token * mask).sum(axis=1) / mx.maximum(counts, 1)).mean()
        if decision:
            held = (mx.stop_gradient(first[0]), mx.stop_gradient(first[1]))
            value = value + decision * decision_kl(held, (policy_first[0], policy_first[1])).mean()
        return value, counts.sum()

    return loss


class Sampler:
    """Draws each step's requests, samples the policy, scores and batches the answers."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompts: GrpoPrompts,
        *,
        batch_size: int,
        group_size: int,
        temperature: float,
        max_tokens: int,
        beta: float,
        reference_weights: list[tuple[str, Any]] | None,
        rng: Any,
        replay_draws: list[int] | None = None,
        no_call_share: float | None = None,
        decision_token: int | None = None,
    ) -> None:
        self.model, self.tokenizer, self.prompts = model, tokenizer, prompts
        self.batch_size, self.group_size = batch_size, group_size
        self.temperature, self.max_tokens, self.beta = temperature, max_tokens, beta
        self.reference_weights = reference_weights
        self.decision_token = decision_token  # set: the batch carries the reference's first-token logps
        if (beta or decision_token is not None) and reference_weights is None:
            raise ValueError("a KL term (beta > 0, or a decision term) needs the reference weights")
        self.rng = rng
        self._order: list[int] = []
        self._replay = list(replay_draws or [])  # draws per step already trained, for a resumed run
        self.no_call_share = no_call_share
        # with a share: each group of requests (no call due, a call due) in its own shuffled order
        self._groups = {
            no_call: [i for i, c in enumerate(prompts.cases) if c.expects_no_call == no_call]
            for no_call in (True, False)
        }
        self._group_order: dict[bool, list[int]] = {True: [], False: []}
        if no_call_share is not None:
            for no_call, share in ((True, no_call_share), (False, 1 - no_call_share)):
                if share > 0 and not self._groups[no_call]:
                    where = "no call is due" if no_call else "a call is due"
                    raise TooltuneError(
                        f"no_call_share {no_call_share:g} draws requests where {where}, and the training "
                        "split has none that can be used (left out ones are counted in run.json's "
                        "requests_left_out)"
                    )

    def _draw(self) -> list[int]:
        picked: list[int] = []
        while len(picked) < self.batch_size:
            if self.no_call_share is None:
                if not self._order:
                    self._order = [int(i) for i in self.rng.permutation(len(self.prompts))]
                picked.append(self._order.pop())
                continue
            no_call = bool(self.rng.random_sample() < self.no_call_share)
            order, group = self._group_order[no_call], self._groups[no_call]
            if not order:
                order += [group[int(i)] for i in self.rng.permutation(len(group))]
            picked.append(order.pop())
        return picked

    def skip(self) -> None:
        """Advance the request order by one step without sampling: as many draws as the step took when it
        ran (a resumed run replays the order; ``replay_draws``, else one)."""
        for _ in range(self._replay.pop(0) if self._replay else 1):
            self._draw()

    def __call__(self) -> Rollout:
        """Sample a step: redraw while every group is flat (at most :data:`MAX_DRAWS` draws)."""
        spent: Counter[str] = Counter()
        generated, cut_off, rewards, outcomes = 0, 0, [], Counter[str]()
        requests: list[list[int]] = []
        for draw in range(1, MAX_DRAWS + 1):
            requests.append(self._draw())
            rollout = self._sample(requests[-1], last=draw == MAX_DRAWS)
            spent.update(rollout.seconds)
            generated += rollout.generated_tokens
            cut_off += rollout.cut_off
            rewards += rollout.rewards
            outcomes.update(rollout.outcomes)
            if rollout.batch:
                break
        rollout.draws, rollout.seconds, rollout.generated_tokens = draw, dict(spent), generated
        rollout.cut_off, rollout.drawn_rewards, rollout.drawn_outcomes = cut_off, rewards, outcomes
        rollout.requests = requests
        return rollout

    def _sample(self, picked: list[int], *, last: bool) -> Rollout:
        """Sample, score and batch one draw; a draw whose every group is flat comes back without a batch
        (and without the reference pass) unless it is the ``last``."""
        import mlx.core as mx
        from mlx_lm_lora.trainer.grpo_trainer import calculate_rewards_and_advantages, generate_grpo

        t0 = time.monotonic()
        completions, texts, indices = generate_grpo(
            self.model,
            self.tokenizer,
            [self.prompts.tokens[i] for i in picked],
            max_tokens=self.max_tokens,
            group_size=self.group_size,
            # its batch_size also bounds the answers decoded at once: every answer of the step together
            batch_size=self.batch_size * self.group_size,
            end_token="",
            temperature=self.temperature,
            top_p=1.0,
            top_k=0,
            min_p=0.0,
        )
        t1 = time.monotonic()
        scored = [
            reward(self.prompts.cases[picked[i]], text, self.tokenizer)
            for i, text in zip(indices, texts, strict=True)
        ]
        rewards = [r for r, _ in scored]
        groups: dict[int, set[float]] = {}
        for i, r in zip(indices, rewards, strict=True):
            groups.setdefault(i, set()).add(r)
        flat = sum(len(g) == 1 for g in groups.values())
        if flat == len(groups) and not last:  # nothing to learn from this draw: draw again
            return Rollout(
                batch=(),
                rewards=rewards,
                outcomes=Counter(o for _, o in scored),
                generated_tokens=sum(int(c.size) for c in completions),
                cut_off=sum(int(c.size) >= self.max_tokens for c in completions),
                processed_tokens=0,
                seconds={"generate": t1 - t0, "score": time.monotonic() - t1, "reference": 0.0},
                flat_groups=flat,
                groups=len(groups),
            )

        def scorer_reward(completions: list[str], **_: Any) -> list[float]:
            return rewards

        advantages, _metrics = calculate_rewards_and_advantages(
            reward_funcs=[scorer_reward],
            expanded_prompts=[""] * len(texts),
            all_completion_texts=texts,
            expanded_answers=[""] * len(texts),
            expanded_types=[None] * len(texts),
            batch_indices=indices,
            unique_prompt_indices=sorted(set(indices)),
        )
        rows = [
            self.prompts.tokens[picked[i]] + c.tolist() for i, c in zip(indices, completions, strict=True)
        ]
        lengths = [len(self.prompts.tokens[picked[i]]) for i in indices]
        batch = rollout_batch(rows, lengths, advantages.tolist())
        t2 = time.monotonic()
        if self.decision_token is not None:
            batch = (*batch[:4], *self._reference_logps(batch[0], batch[1], self.decision_token))
        elif self.beta and self.reference_weights is not None:
            batch = (*batch[:4], self._reference_logps(batch[0], batch[1]))
        t3 = time.monotonic()
        mx.eval(batch)
        no_call = {i for i in groups if self.prompts.cases[picked[i]].expects_no_call}
        varied = {i for i, g in groups.items() if len(g) > 1}
        return Rollout(
            learned={"call_due": len(varied - no_call), "no_call_due": len(varied & no_call)},
            no_call_groups=len(no_call),
            batch=batch,
            rewards=rewards,
            outcomes=Counter(o for _, o in scored),
            generated_tokens=sum(int(c.size) for c in completions),
            cut_off=sum(int(c.size) >= self.max_tokens for c in completions),
            processed_tokens=sum(len(r) for r in rows),
            seconds={"generate": t1 - t0, "score": t2 - t1, "reference": t3 - t2},
            flat_groups=flat,
            groups=len(groups),
        )

    def _reference_logps(self, tokens: Any, positions: Any, first_token: int | None = None) -> Any:
        """The starting policy's log-probabilities of the sampled answers (with ``first_token``, also of
        opening each answer with that token and of not: a triple): its LoRA weights loaded for one forward
        pass, the current ones put back."""
        import mlx.core as mx
        from mlx.utils import tree_flatten

        assert self.reference_weights is not None
        current = tree_flatten(self.model.trainable_parameters())  # arrays are immutable: references do
        training = self.model.training
        self.model.eval()
        try:
            self.model.load_weights(self.reference_weights, strict=False)
            got = token_logps(self.model, tokens, positions, self.temperature, first_token)
            ref = mx.stop_gradient(got) if first_token is None else tuple(map(mx.stop_gradient, got))
            mx.eval(ref)
        finally:
            self.model.load_weights(current, strict=False)
            self.model.train(training)
        return ref


def rollout_record(iteration: int, r: Rollout) -> dict[str, Any]:
    """One line of a run's ``rollouts.jsonl``: what the step's sampled answers earned, over every draw
    (what the policy does) and over the draw trained on."""
    rewards = r.drawn_rewards or r.rewards
    return {
        "iteration": iteration,
        "reward_mean": round(sum(rewards) / max(len(rewards), 1), 4),
        "right": (r.drawn_outcomes or r.outcomes).get("right", 0),
        "answers": len(rewards),
        "outcomes": dict(sorted((r.drawn_outcomes or r.outcomes).items())),
        "trained_reward_mean": round(sum(r.rewards) / max(len(r.rewards), 1), 4),
        "cut_off": r.cut_off,
        "generated_tokens": r.generated_tokens,
        "draws": r.draws,
        "requests": r.requests,
        "groups": r.groups,
        "flat_groups": r.flat_groups,
        "no_call_groups": r.no_call_groups,
        "learned": r.learned,
        "seconds": {k: round(v, 3) for k, v in r.seconds.items()},
    }


COLLAPSE_STEPS = 5


class PolicyCollapsedError(TooltuneError):
    """GRPO's policy stopped writing answers: no later step can learn (every group's rewards are equal)."""

    def __init__(self, message: str, iteration: int) -> None:
        super().__init__(message)
        self.iteration = iteration  # the first step of the collapse


def check_not_collapsed(
    history: list[dict[str, Any]], learning_rate: float, steps: int = COLLAPSE_STEPS
) -> None:
    """Stop a GRPO run whose policy has collapsed: in each of the last ``steps`` steps every answer ran to
    max_completion_tokens and earned nothing, after a step that earned something with answers that
    ended. Seen on one H100: the 0.5B at learning rate 5e-5 wrote good calls for 13 steps, then only
    cut-off junk (``bad_json``) from step 14 on; with every group flat, nothing after could undo it."""
    if len(history) <= steps:
        return
    last = history[-steps:]
    if any(r["reward_mean"] > 0 or r["cut_off"] < r["answers"] for r in last):
        return
    if not any(r["reward_mean"] > 0 and r["cut_off"] < r["answers"] for r in history[:-steps]):
        return  # never earned anything with answers that ended: a model that always runs long, no collapse
    first = last[0]["iteration"]
    raise PolicyCollapsedError(
        f"GRPO collapsed at iteration {first}: in the {steps} steps from there every answer ran to "
        f"max_completion_tokens and earned no reward; train again with a lower --learning-rate (this run: "
        f"{learning_rate:g}); only checkpoints before iteration {first} hold the policy before the collapse",
        first,
    )


def summarize_rollouts(path: Path, window: int = 10) -> dict[str, Any]:
    """The run's rewards in short: the mean reward of the first and the last ``window`` steps, the
    outcomes over the run, and the time spent generating and scoring the reference."""
    rows = read_rollouts(path)
    if not rows:
        return {}
    outcomes: Counter[str] = Counter()
    for row in rows:
        outcomes.update(row["outcomes"])
    counted = [r for r in rows if "no_call_groups" in r and "learned" in r and "groups" in r]

    def mean(part: list[dict[str, Any]]) -> float:
        return round(sum(r["reward_mean"] for r in part) / len(part), 4)

    return {
        "steps": len(rows),
        "first_reward_mean": mean(rows[:window]),
        "last_reward_mean": mean(rows[-window:]),
        "outcomes": dict(sorted(outcomes.items())),
        "generated_tokens": sum(r["generated_tokens"] for r in rows),
        "draws": sum(r.get("draws", 1) for r in rows),
        "steps_all_flat": sum(r.get("flat_groups", 0) == r.get("groups", -1) for r in rows),
        # the groups trained on, and those that taught something (answers rewarded differently), by
        # whether a call was due: where GRPO's signal about the call decision came from (steps written
        # before these were counted, as in a run resumed across the change, are left out and counted)
        "trained_groups": {
            "call_due": sum(r["groups"] - r["no_call_groups"] for r in counted),
            "no_call_due": sum(r["no_call_groups"] for r in counted),
        },
        "learned_groups": {k: sum(r["learned"][k] for r in counted) for k in ("call_due", "no_call_due")},
        "steps_without_group_counts": len(rows) - len(counted),
        "cut_off": sum(r.get("cut_off", 0) for r in rows),
        "generate_s": round(sum(r["seconds"]["generate"] for r in rows), 2),
        "reference_s": round(sum(r["seconds"]["reference"] for r in rows), 2),
    }


def read_rollouts(path: Path) -> list[dict[str, Any]]:
    """The lines of a ``rollouts.jsonl``; a torn one (a kill mid-write) is left out, as events are."""
    rows: list[dict[str, Any]] = []
    for line in path.read_text("utf-8").splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "iteration" in row:
            rows.append(row)
    return rows
