"""Learning from the model's own mistakes, round by round: sample → pick → train → evaluate on held-out
requests → keep the new adapter only if it is better (issue 36).

One round, from the current model (the base, or an adapter):

1. sample the current model's answers to the dataset's training requests (``data.onpolicy``);
2. pick training data from them: preference pairs (``dpo``, ``orpo``) or the model's own correct answers
   (``rejection``);
3. train a candidate adapter on it, starting from the current adapter's weights (``init_adapter``);
   with ``grpo`` steps 1–3 are one GRPO run on the dataset's requests (the worker samples the model
   inside training, ``k`` answers per request, and the scorer rewards them);
4. evaluate the current model and the candidate on the dataset's *test* split, requests no round trains
   on, at temperature 0 (native calls, paired McNemar);
5. the candidate becomes the current model only if its native rate is higher.

Every artifact (samples sets, datasets, adapters, eval runs) is named ``<name>-r<round>-…`` and kept, so
a round can be read back; the result lists each round's scores and decision.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from tooltune.adapters.registry import AdapterRegistry
from tooltune.config import Settings
from tooltune.data.onpolicy import (
    SAMPLER_VERSION,
    NothingToPairError,
    PickConfig,
    SampleConfig,
    pick_training_data,
    requests_suite,
    sample_dataset,
)
from tooltune.data.store import dataset_examples, load_dataset
from tooltune.errors import TooltuneError
from tooltune.evals.service import compare_runs, run_suite_on_server
from tooltune.jobs import JobStore
from tooltune.logs import get_logger
from tooltune.models.resolve import resolve_model
from tooltune.training.runs import cancel_training, get_run, start_training
from tooltune.training.train_config import (
    TrainConfig,
    adapter_lora_shape,
    decision_kl_problem,
    no_call_share_problem,
)
from tooltune.workspace import Workspace, atomic_write_json, validate_name

log = get_logger(__name__)


class ImproveConfig(BaseModel):
    """One improvement job; the training options not named here are TrainConfig's defaults."""

    dataset: str = Field(description="Dataset whose train requests are sampled and whose test split judges.")
    name: str = Field(
        max_length=40, description="Prefix of everything the rounds make (samples, datasets, adapters)."
    )
    adapter: str | None = Field(default=None, description="Adapter to start from (default: the base model).")
    model: str | None = Field(default=None, description="Base model (default: the adapter's base).")
    method: Literal["dpo", "orpo", "rejection", "grpo"] = Field(
        default="dpo",
        description="dpo (orpo): pairs of a correct and an own wrong answer; rejection: own correct answers; "
        "grpo: the model's answers sampled inside training, k per request, rewarded by the scorer.",
    )
    rounds: int = Field(
        default=1, ge=1, le=10, description="Rounds at most; each keeps or drops its candidate."
    )
    k: int = Field(default=4, ge=1, le=64, description="Answers sampled per request.")
    temperature: float = Field(default=0.8, ge=0.0, le=2.0, description="Sampling temperature.")
    limit: int | None = Field(
        default=None, ge=1, description="Train requests sampled per round (default: all)."
    )
    eval_limit: int | None = Field(
        default=None,
        ge=1,
        description="Held-out test cases per category for the keep/drop decision (default: all).",
    )
    iters: int = Field(default=50, ge=1, description="Training steps per round.")
    learning_rate: float | None = Field(default=None, gt=0, description="Default: TrainConfig's.")
    beta: float = Field(default=0.1, gt=0, description="dpo's beta; grpo's KL weight.")
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests in flight when sampling and evaluating."
    )
    max_tokens: int = Field(default=256, ge=8, description="Most tokens per answer (sampling and evals).")
    answer_check: int = Field(
        default=32,
        ge=0,
        le=256,
        description="dpo/orpo rounds: requests of the round's pairs, and up to as many more of the "
        "requests its samples always got right; rejection and grpo rounds: up to twice as many of the "
        "round's dataset's own requests; that the round's training answers before and after to drop a "
        "candidate that got worse (TrainConfig's answer_check; 0: none).",
    )
    # the same option as a training run's: one declaration (constraints, default, description)
    freeze_token_rows: bool = TrainConfig.model_fields["freeze_token_rows"]
    no_call_share: float | None = TrainConfig.model_fields["no_call_share"]
    decision_kl: float = TrainConfig.model_fields["decision_kl"]
    balanced_decision: bool = PickConfig.model_fields["balanced_decision"]  # the pick's own option

    @model_validator(mode="after")
    def _grpo_samples(self) -> ImproveConfig:
        if self.balanced_decision and self.method not in ("dpo", "orpo"):
            raise ValueError(
                f"balanced_decision balances preference pairs: it needs method dpo or orpo, not {self.method}"
            )
        for problem in (
            no_call_share_problem(self.method, self.no_call_share),
            decision_kl_problem(self.method, self.decision_kl),
        ):
            if problem is not None:
                raise ValueError(problem)
        if self.method == "grpo" and (self.k < 2 or self.temperature == 0):
            raise ValueError(
                "method grpo compares answers within a group: it needs k of at least 2 and a temperature "
                "above 0"
            )
        return self


class RoundResult(BaseModel):
    round: int
    start: str | None = Field(description="The model the round started from (None: the base).")
    samples: str = Field(description="The samples set picked from ('' for grpo: it samples while it trains).")
    data: str
    picked: dict[str, int] = Field(
        description="Rows picked per source or reason; for grpo, the rollouts' outcomes per reason."
    )
    candidate: str
    start_native: float | None = Field(description="None when the candidate was dropped before the eval.")
    candidate_native: float | None
    held_out_cases: int
    p_value: float | None = Field(description="McNemar exact test on the paired native verdicts.")
    kept: bool
    dropped: str | None = Field(
        default=None,
        description="Why the candidate was dropped before the held-out eval (its answer check found it "
        "worse, or GRPO collapsed); None when it was judged.",
    )


class ImproveResult(BaseModel):
    start: str | None
    best: str | None = Field(description="The adapter to use after the rounds (None: the base stayed best).")
    rounds: list[RoundResult]
    stopped: str = Field(description="Why the loop ended.")


ProgressFn = Callable[[str], None]


class CandidateDroppedError(TooltuneError):
    """A round's training ended without a candidate to judge: its answer check found it worse, or GRPO
    collapsed."""


async def _train_candidate(settings: Settings, cfg: TrainConfig, name: str) -> None:
    """Train in tooltune's worker without blocking the event loop (the MCP server keeps answering); a
    cancelled round cancels its training job too."""
    import anyio

    job = await anyio.to_thread.run_sync(lambda: start_training(cfg, settings, name=name))
    store = JobStore(Workspace(settings.workspace))
    try:
        while not (job := store.get(job.id)).done:
            await anyio.sleep(1.0)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lambda: cancel_training(job.id, settings))
        raise
    if job.status != "succeeded":
        try:
            method = get_run(settings, job.id).applied.get("method") or {}
        except TooltuneError:  # no run record to read: the job's own error says what happened
            method = {}
        # the run's own answer check dropped the candidate (training/answer_check.py), or GRPO collapsed
        if (method.get("answer_check") or {}).get("worse") or method.get("collapsed_at"):
            raise CandidateDroppedError(f"the candidate was dropped before the held-out eval: {job.error}")
        raise TooltuneError(f"training {job.id} {job.status}: {job.error}")


def _check_same_job(ws: Workspace, cfg: ImproveConfig) -> None:
    """A name runs one recipe: a rerun with the same settings reads the rounds back (more rounds may be
    asked for); other settings under the same name would reuse artifacts made another way."""
    path = ws.root / "improve" / f"{cfg.name}.json"
    # the judge of generated truth too: earlier rounds' held-out scores were judged by it
    mine = {**cfg.model_dump(exclude={"rounds"}), "judge": SAMPLER_VERSION}
    if path.is_file():
        had = json.loads(path.read_text("utf-8"))
        # a setting added since that job ran counts as its default (the job ran as that default would)
        defaults = {
            k: f.get_default(call_default_factory=True) for k, f in ImproveConfig.model_fields.items()
        }
        differ = sorted(k for k in mine if had.get(k, defaults.get(k)) != mine[k])
        if differ:
            why = " (an older tooltune judged its answers by another rule)" if "judge" in differ else ""
            raise TooltuneError(
                f"improve {cfg.name!r} ran before with other {', '.join(differ)}{why}; choose a new --name"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, mine)


async def _sample_pick_train(
    settings: Settings,
    server: Any,
    ws: Workspace,
    registry: AdapterRegistry,
    cfg: ImproveConfig,
    model_path: Any,
    current: str | None,
    r: int,
    tag: str,
    candidate: str,
    say: ProgressFn,
) -> tuple[str, str, dict[str, int], str | None]:
    """Steps 1-3 of a sampled round: (samples set, training dataset, rows picked, why the loop stops or
    None: the reason alone, the caller names the round); the candidate is trained unless an earlier
    invocation did."""
    say(f"round {r}: sampling {current or 'the base model'}")
    sample_cfg = SampleConfig.like(cfg, seed=r)
    samples = await sample_dataset(server, ws, cfg.dataset, f"{tag}-samples", sample_cfg, adapter=current)
    method = "rejection" if cfg.method == "rejection" else "pairs"
    try:
        picked = pick_training_data(
            ws, samples.name, method, f"{tag}-data", seed=r, balanced_decision=cfg.balanced_decision
        )
    except NothingToPairError as e:  # nothing wrong to learn from on these requests
        return "", "", {}, str(e)
    say(f"round {r}: training on {sum(picked.counts.values())} rows ({picked.picked})")
    train_cfg = _round_config(cfg, registry, model_path, current, dataset=picked.dataset, method=cfg.method)
    try:
        await _train_round(settings, registry, train_cfg, candidate, cfg.name)
    except CandidateDroppedError as e:  # the loop ends with the best adapter so far, as for a worse one
        return samples.name, picked.dataset, picked.picked, str(e)
    return samples.name, picked.dataset, picked.picked, None


def _round_config(
    cfg: ImproveConfig,
    registry: AdapterRegistry,
    model_path: Any,
    current: str | None,
    **fields: Any,
) -> TrainConfig:
    """A round's training run: from the current adapter's weights and LoRA shape, the job's steps,
    beta and learning rate, plus the method's own ``fields``."""
    return TrainConfig(
        model=str(model_path),
        init_adapter=current,
        iters=cfg.iters,
        beta=cfg.beta,
        answer_check=cfg.answer_check,
        freeze_token_rows=cfg.freeze_token_rows,
        **({"learning_rate": cfg.learning_rate} if cfg.learning_rate else {}),
        **adapter_lora_shape(registry, current),
        **fields,
    )


def grpo_fields(cfg: ImproveConfig, round_no: int) -> dict[str, Any]:
    """A GRPO round's own training fields: the dataset's requests, the job's sampling, a seed per round."""
    return {
        "dataset": cfg.dataset,
        "method": "grpo",
        "group_size": cfg.k,
        "sample_temperature": cfg.temperature,
        "max_completion_tokens": min(cfg.max_tokens, 4096),
        "seed": round_no,
        "no_call_share": cfg.no_call_share,
        "decision_kl": cfg.decision_kl,
    }


async def _train_round(
    settings: Settings, registry: AdapterRegistry, train_cfg: TrainConfig, candidate: str, job: str
) -> None:
    """Train the round's candidate, unless an earlier invocation of the ``job`` already did, or saw it
    dropped from the same start: drops are kept in the job's file (``improve/<job>.json``,
    ``dropped_rounds``), so a rerun ends where the first run ended instead of training the same candidate
    again; a round whose start changed since (its adapter trained anew) trains again."""
    if candidate in registry.names():
        return
    path = Workspace(settings.workspace).root / "improve" / f"{job}.json"
    init = train_cfg.init_adapter
    start = f"{init}:{registry.get(init).adapter_fingerprint}" if init else "base"
    saved = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    drop = (saved.get("dropped_rounds") or {}).get(candidate)
    if drop and drop.get("start") == start:
        raise CandidateDroppedError(f"{drop['why']} (as recorded by an earlier run of this job)")
    try:
        await _train_candidate(settings, train_cfg, candidate)
    except CandidateDroppedError as e:
        saved = json.loads(path.read_text("utf-8")) if path.is_file() else {}  # as it is now
        saved.setdefault("dropped_rounds", {})[candidate] = {"why": str(e), "start": start}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, saved)
        raise


def _dropped_round(
    r: int, start: str | None, samples: str, data: str, picked: dict[str, int], candidate: str, why: str
) -> RoundResult:
    """A round whose candidate never reached the held-out eval, listed with why."""
    return RoundResult(
        round=r, start=start, samples=samples, data=data, picked=picked, candidate=candidate,
        start_native=None, candidate_native=None, held_out_cases=0, p_value=None, kept=False, dropped=why,
    )  # fmt: skip


async def improve(
    settings: Settings, server: Any, cfg: ImproveConfig, *, on_progress: ProgressFn | None = None
) -> ImproveResult:
    """Run up to ``cfg.rounds`` rounds on ``server`` (a running ModelServer of the base model); see the
    module docstring. Training runs in tooltune's worker while the server stays up."""
    validate_name(cfg.name, "improve name")
    ws = Workspace(settings.workspace).ensure()
    registry = AdapterRegistry(ws)
    _check_same_job(ws, cfg)
    say = on_progress or (lambda _m: None)
    info = load_dataset(ws, cfg.dataset)
    held_out = dataset_examples(info, "test")
    suite, _, skipped = requests_suite(held_out, name=f"{cfg.name}-heldout", id_prefix="test")
    if not suite.cases:
        raise TooltuneError(
            f"dataset {cfg.dataset!r} has no test requests to judge a round by; generate a larger dataset"
        )
    suite = suite.subset(cfg.eval_limit)
    model_ref = cfg.model or (registry.get(cfg.adapter).base_model if cfg.adapter else settings.default_model)
    model_path = resolve_model(model_ref, settings).path
    current = cfg.adapter
    rounds: list[RoundResult] = []
    stopped = f"ran {cfg.rounds} round(s)"

    async def held_out_run(target: str | None) -> Any:
        return await run_suite_on_server(
            server,
            suite,
            ws=ws,
            adapter=target,
            label=target or "baseline",
            run_id=f"{cfg.name}-heldout-{target or 'base'}"[:100],
            concurrency=cfg.concurrency,
            max_tokens=cfg.max_tokens,
        )

    for r in range(1, cfg.rounds + 1):
        tag = f"{cfg.name}-r{r}"
        candidate = f"{tag}-adapter"
        if cfg.method == "grpo":
            say(f"round {r}: GRPO from {current or 'the base model'} on {cfg.dataset}'s requests")
            grpo_cfg = _round_config(cfg, registry, model_path, current, **grpo_fields(cfg, r))
            try:
                await _train_round(settings, registry, grpo_cfg, candidate, cfg.name)
            except CandidateDroppedError as e:  # collapsed: the loop ends with the best adapter so far
                stopped = f"round {r}: {e}"
                rounds.append(_dropped_round(r, current, "", cfg.dataset, {}, candidate, str(e)))
                break
            rollouts = registry.get(candidate).train_metrics.get("rollouts") or {}
            samples_name, data_name, picked_rows = "", cfg.dataset, dict(rollouts.get("outcomes") or {})
        else:
            samples_name, data_name, picked_rows, stop = await _sample_pick_train(
                settings, server, ws, registry, cfg, model_path, current, r, tag, candidate, say
            )
            if stop:
                if data_name:  # a candidate was trained and dropped (no data: nothing to learn from)
                    rounds.append(
                        _dropped_round(r, current, samples_name, data_name, picked_rows, candidate, stop)
                    )
                stopped = f"round {r}: {stop}"
                break
        say(
            f"round {r}: judging {candidate} against {current or 'the base model'} "
            f"on {len(suite.cases)} held-out cases"
        )
        before = await held_out_run(current)
        after = await held_out_run(candidate)
        cmp = compare_runs(ws, before.meta.run_id, after.meta.run_id)
        kept = after.overall.native_rate > before.overall.native_rate
        rounds.append(
            RoundResult(
                round=r,
                start=current,
                samples=samples_name,
                data=data_name,
                picked=picked_rows,
                candidate=candidate,
                start_native=before.overall.native_rate,
                candidate_native=after.overall.native_rate,
                held_out_cases=len(suite.cases),
                p_value=cmp.mcnemar_native.p_value,
                kept=kept,
            )
        )
        log.info(
            "improve.round",
            round=r,
            kept=kept,
            start=before.overall.native_rate,
            candidate=after.overall.native_rate,
        )
        if not kept:
            stopped = f"round {r}: the candidate was not better on the held-out cases"
            break
        current = candidate
    if skipped:
        log.warning("improve.heldout_skipped", skipped=len(skipped))
    return ImproveResult(start=cfg.adapter, best=current, rounds=rounds, stopped=stopped)
