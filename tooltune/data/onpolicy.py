"""On-policy samples: the model's own answers to a dataset's requests, each judged against the request's
generated truth by the eval scorer, and what training can pick from them.

Every generated example ends in the answer that is right for it (its calls, or a text answer where no
call is right). :func:`example_case` turns the conversation before that answer into an eval case whose
``expected`` is the answer, so :func:`sample_dataset` can ask the served model (base or adapter) for
``k`` answers per request at a temperature, through the same ``mlx_lm.server``, chat template, tool
parser and scorer as an eval, and keep every answer with its native and lenient verdicts and reason
codes. The result is a *samples set* under ``<workspace>/samples/<name>/``: immutable and
content-addressed like a dataset (``samples.jsonl`` + ``samples.json`` with its hash).

From a samples set:

- :func:`rejection_examples` builds a training set of the model's own correct answers (the generated
  truth where no sample was right): rejection-sampled SFT;
- :func:`preference_pairs` pairs a correct answer with the model's own wrong one, per reason code, so
  refusals, wrong values and over-calls are all represented: the data of preference training.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from tooltune.data.examples import DataError, Example, ExampleMeta, call_message
from tooltune.data.store import SPLITS, DatasetInfo, DatasetMeta, dataset_examples, load_dataset, save_dataset
from tooltune.errors import first_error
from tooltune.evals.results import CaseResult
from tooltune.evals.suite import NO_CALL, EvalCase, EvalSuite
from tooltune.logs import get_logger
from tooltune.toolspec import ToolSpec, stated_defaults
from tooltune.workspace import Workspace, atomic_dir, atomic_write_json, validate_name

log = get_logger(__name__)

SAMPLER_VERSION = "tooltune-samples/2"  # 2: optional parameters at a stated default pass
PAIRS_FORMAT = "preference_pairs"  # dataset.json extra.format of a pairs dataset (method dpo trains on it)


class SampleConfig(BaseModel):
    """How the model is sampled; every value is recorded in the samples set and enters its hash."""

    k: int = Field(default=4, ge=1, le=64, description="Answers sampled per request.")
    temperature: float = Field(
        default=0.8, ge=0.0, le=2.0, description="Sampling temperature (0 gives k equal answers)."
    )
    max_tokens: int = Field(default=256, ge=8, le=8192, description="Most tokens per answer.")
    split: Literal["train", "valid", "test"] = Field(
        default="train", description="Which split of the dataset is sampled."
    )
    limit: int | None = Field(
        default=None, ge=1, description="Sample only the first N requests of the split."
    )
    seed: int | None = Field(
        default=0,
        description="Sampling seed sent with each request (the k answers get seed, seed+1, ...). None: no "
        "seed, so mlx_lm.server batches the requests (it serves seeded ones one by one): faster, not "
        "reproducible.",
    )
    concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight at once.")

    @classmethod
    def like(cls, source: Any, **over: Any) -> SampleConfig:
        """The settings ``source`` names alike (k, temperature, limit, max_tokens, concurrency: an
        ImproveConfig, a benchmark's arguments), with ``over`` on top."""
        same = ("k", "temperature", "limit", "max_tokens", "concurrency")
        return cls(**{name: getattr(source, name) for name in same}, **over)


class Sample(BaseModel):
    """One answer of the model and its verdicts (the eval scorer's, native and lenient)."""

    text: str = ""
    calls: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Native tool calls as {name, arguments} (arguments a dict or raw text).",
    )
    native: bool
    lenient: bool
    reason: str | None = Field(
        default=None, description="Why the native verdict failed (a scorer reason code)."
    )
    attempted: bool = False
    dropped: bool = Field(
        default=False,
        description="The server dropped a malformed call: the text is not what the model wrote.",
    )
    error: str | None = None

    def right(self, expects_no_call: bool) -> bool:
        """Right by both verdicts: a native answer that passes, and for a request that wants no call, no
        call attempted in any form (a call written as text or dropped by the server is an over-call)."""
        ok = self.native and self.lenient and not self.error and not self.dropped
        return ok and not (expects_no_call and self.attempted)


class SampledRequest(BaseModel):
    """A request of the dataset, its generated truth and the model's answers to it."""

    id: str
    kind: str
    example: Example = Field(description="The generated example; its last assistant turn is the truth.")
    expects_no_call: bool
    samples: list[Sample]

    @property
    def correct(self) -> list[Sample]:
        return [s for s in self.samples if s.right(self.expects_no_call)]

    @property
    def wrong(self) -> list[Sample]:
        return [s for s in self.samples if not s.error and not s.right(self.expects_no_call)]

    def why_wrong(self, sample: Sample) -> str:
        """The reason code of a wrong answer: the native verdict's, else what only the lenient parse or
        the server saw (a call written as text or dropped where none was due, a text call that is wrong)."""
        if sample.error:
            return "error"
        if sample.reason:
            return sample.reason
        return "called_when_irrelevant" if self.expects_no_call else "wrong_when_parsed"


class Skipped(BaseModel):
    index: int
    why: str


class SamplesInfo(BaseModel):
    name: str
    hash: str
    dataset: str
    dataset_hash: str
    model: str
    adapter: str | None
    config: SampleConfig
    sampler_version: str = SAMPLER_VERSION
    eval_run: str = Field(description="The eval run that holds the raw answers (reports/<run>/).")
    counts: dict[str, int]
    reasons: dict[str, int] = Field(
        description="Why the wrong samples are wrong (scorer reason codes; a call written as text or dropped "
        "where none was due counts as called_when_irrelevant)."
    )
    per_kind: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Per example kind: requests, samples, correct samples, requests never right.",
    )
    skipped: list[Skipped] = Field(default_factory=list)
    created: str = ""
    path: Path | None = Field(default=None, exclude=True)


class SamplesError(DataError):
    """A samples set that cannot be made or read; the message says what to fix."""


class NothingToPairError(SamplesError):
    """No wrong answer that can be written as the model wrote it: no preference pair to make."""


# ------------------------------------------------------------------------------------ requests → cases


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: arguments are not JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise DataError(f"{where}: arguments must be a JSON object")
    return value


def _allowed(value: Any) -> list[Any]:
    """The one value the truth gives, in the scorer's form: ``[value]``; an object's keys each get their
    own list of one value, a list of objects a list of such dicts (evals/suite.py's format, one level
    deep as the scorer compares; deeper values stay whole)."""
    if isinstance(value, dict):
        return [{k: [v] for k, v in value.items()}]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [[{k: [x] for k, x in v.items()} for v in value]]
    return [value]


def _left_out(spec: ToolSpec, args: dict[str, Any]) -> dict[str, list[Any]]:
    """What the judge accepts for each optional parameter of ``spec`` that the truth leaves out: left out
    too (``""``), or set to the default its schema states (:func:`stated_defaults`), as BFCL's possible
    answers do. Without this, a call that fills one at its default was judged wrong (``extra_param``), and
    data picked by that judge taught the model to drop arguments."""
    required = set(spec.required)
    return {
        p: ["", *(_allowed(d)[0] for d in stated_defaults(schema))]
        for p, schema in spec.properties.items()
        if p not in required and p not in args
    }


def example_case(ex: Example, case_id: str) -> EvalCase:
    """The conversation before ``ex``'s last assistant turn, expecting that turn (its calls, or no call).

    Raises :class:`DataError` naming what does not fit (no assistant turn, arguments that are not a JSON
    object, a call the scorer's format cannot express)."""
    answer_at = max((i for i, m in enumerate(ex.messages) if m.get("role") == "assistant"), default=None)
    if not answer_at:
        raise DataError("no assistant answer after a request")
    answer = ex.messages[answer_at]
    expected: list[dict[str, dict[str, list[Any]]]] | str = NO_CALL
    calls = answer.get("tool_calls") or []
    if calls:
        expected = []
        for j, tc in enumerate(calls):
            fn = tc.get("function", tc)
            args = _arguments(fn.get("arguments", {}), f"tool_calls[{j}]")
            expected.append({str(fn.get("name")): {p: _allowed(v) for p, v in args.items()}})
    fields = dict(id=case_id, category=ex.meta.kind, messages=ex.messages[:answer_at], tools=ex.tools)
    try:
        case = EvalCase(**fields, expected=expected)  # type: ignore[arg-type]
        if calls:  # then what the truth leaves out, judged by the tool spec the scorer uses
            specs = case.specs
            wider = [
                {name: {**_left_out(specs[name], params), **params}}
                for call in case.expected
                for name, params in call.items()
            ]
            case = EvalCase(**fields, expected=wider)  # type: ignore[arg-type]
    except ValidationError as e:
        err = first_error(e)
        raise DataError(f"{err.where}: {err.msg}") from None
    if calls:  # the truth must pass its own check, or a model that answers exactly so is marked wrong
        from tooltune.evals.scoring import RawCall, score_case

        truth = [RawCall(name=str(tc.get("function", tc).get("name")), arguments=_arguments(
            tc.get("function", tc).get("arguments", {}), "truth")) for tc in calls]  # fmt: skip
        verdict = score_case(case, truth, "").native
        if not verdict.passed:
            raise DataError(f"the scorer cannot express this answer ({verdict.reason}: {verdict.detail})")
    return case


def requests_suite(
    examples: list[Example], *, name: str, id_prefix: str
) -> tuple[EvalSuite, dict[str, Example], list[Skipped]]:
    """The examples as one eval suite (ids ``<prefix>-<index>``); the ones that do not fit are skipped
    and listed, the rest go on."""
    cases: list[EvalCase] = []
    by_id: dict[str, Example] = {}
    skipped: list[Skipped] = []
    for i, ex in enumerate(examples):
        cid = f"{id_prefix}-{i}"
        try:
            cases.append(example_case(ex, cid))
        except DataError as e:
            skipped.append(Skipped(index=i, why=str(e)))
            continue
        by_id[cid] = ex
    if skipped:
        log.warning("samples.skipped", skipped=len(skipped), first=skipped[0].why)
    return EvalSuite(name=name, source=f"samples:{name}", cases=cases), by_id, skipped


def to_sample(r: CaseResult) -> Sample:
    return Sample(
        text=r.raw_text,
        calls=[c.model_dump() for c in r.native_calls],
        native=r.native.passed,
        lenient=r.lenient.passed,
        reason=r.native.reason.value if r.native.reason else None,
        attempted=r.attempted,
        dropped=r.dropped_call,
        error=r.error,
    )


def group_samples(results: list[CaseResult], by_id: dict[str, Example]) -> list[SampledRequest]:
    grouped: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        grouped[r.case_id].append(r)
    out = []
    for cid, ex in by_id.items():
        rs = sorted(grouped.get(cid, []), key=lambda r: r.repeat)
        if not rs:
            continue
        out.append(
            SampledRequest(
                id=cid,
                kind=ex.meta.kind,
                example=ex,
                expects_no_call=rs[0].expects_no_call,
                samples=[to_sample(r) for r in rs],
            )
        )
    return out


# ------------------------------------------------------------------------------------------ the store


def samples_root(ws: Workspace) -> Path:
    return ws.root / "samples"


def _summary(
    requests: list[SampledRequest],
) -> tuple[dict[str, int], dict[str, int], dict[str, dict[str, int]]]:
    reasons: Counter[str] = Counter()
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for rq in requests:
        pk = per_kind[rq.kind]
        pk["requests"] += 1
        pk["samples"] += len(rq.samples)
        pk["correct"] += len(rq.correct)
        pk["never_right"] += not rq.correct
        reasons.update(rq.why_wrong(s) for s in rq.samples if not s.right(rq.expects_no_call))
    samples = sum(len(rq.samples) for rq in requests)
    counts = {
        "requests": len(requests),
        "samples": samples,
        "correct_samples": sum(len(rq.correct) for rq in requests),
        "requests_always_right": sum(len(rq.correct) == len(rq.samples) for rq in requests),
        "requests_never_right": sum(not rq.correct for rq in requests),
        "errors": sum(1 for rq in requests for s in rq.samples if s.error),
    }
    return counts, dict(reasons.most_common()), {k: dict(v) for k, v in sorted(per_kind.items())}


def save_samples(ws: Workspace, name: str, requests: list[SampledRequest], **meta: Any) -> SamplesInfo:
    """Write atomically; the same name with the same content returns the existing set, with other
    content is refused (samples sets are immutable, like datasets)."""
    validate_name(name, "samples name")
    if not requests:
        raise SamplesError(f"samples set {name!r} would be empty; nothing was written")
    text = "".join(rq.model_dump_json() + "\n" for rq in requests)
    recipe = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in meta.items() if k != "skipped"}
    digest = (
        "sha256:"
        + hashlib.sha256(
            (json.dumps(recipe, sort_keys=True, default=str) + "\n" + text).encode("utf-8")
        ).hexdigest()
    )
    counts, reasons, per_kind = _summary(requests)
    final = samples_root(ws) / name
    if final.exists():
        existing = load_samples_info(ws, name)
        if existing.hash == digest:
            return existing
        raise SamplesError(f"samples set {name!r} already exists with different content; choose a new name")
    info = SamplesInfo(
        name=name,
        hash=digest,
        counts=counts,
        reasons=reasons,
        per_kind=per_kind,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        **meta,
    )
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(final) as tmp:
        (tmp / "samples.jsonl").write_text(text, encoding="utf-8")
        atomic_write_json(tmp / "samples.json", json.loads(info.model_dump_json()))
    log.info("samples.saved", name=name, hash=digest, **counts)
    return info.model_copy(update={"path": final})


def load_samples_info(ws: Workspace, name: str) -> SamplesInfo:
    path = samples_root(ws) / validate_name(name, "samples name")
    meta = path / "samples.json"
    if not meta.is_file():
        known = ", ".join(
            sorted(p.name for p in samples_root(ws).glob("*") if (p / "samples.json").is_file())
        )
        raise SamplesError(
            f"samples set {name!r} not found in {samples_root(ws)} (known: {known or 'none'}); "
            "make one with `tooltune data sample`"
        )
    return SamplesInfo.model_validate_json(meta.read_text("utf-8")).model_copy(update={"path": path})


def load_samples(ws: Workspace, name: str) -> tuple[SamplesInfo, list[SampledRequest]]:
    """The set and its requests; a line that does not parse is skipped and named (file:line)."""
    info = load_samples_info(ws, name)
    assert info.path is not None
    out: list[SampledRequest] = []
    f = info.path / "samples.jsonl"
    for i, line in enumerate(f.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(SampledRequest.model_validate_json(line))
        except ValidationError as e:
            log.warning("samples.bad_line", where=f"{f}:{i}", error=first_error(e).msg)
    return info, out


# ------------------------------------------------------------------------------------------- sampling


ProgressFn = Callable[[int, int, CaseResult], None]


async def sample_dataset(
    server: Any,
    ws: Workspace,
    dataset: str,
    out: str,
    cfg: SampleConfig,
    *,
    adapter: str | None = None,
    on_progress: ProgressFn | None = None,
) -> SamplesInfo:
    """Sample ``cfg.k`` answers per request of ``dataset``'s split from ``server`` (a running
    :class:`~tooltune.serving.model_server.ModelServer`; ``adapter`` None = the base model), score them
    and save the samples set ``out``. The answers are an eval run (``samples-<out>``), so an interrupted
    sampling resumes where it stopped."""
    from tooltune.evals.runner import load_results, run_dir
    from tooltune.evals.service import run_suite_on_server

    validate_name(out, "samples name")
    if len(f"samples-{out}") > 100:
        raise SamplesError(f"samples name {out!r} is too long: at most 92 characters (its eval run adds 8)")
    info = load_dataset(ws, dataset)
    if (samples_root(ws) / out).exists():  # made before: the same set only if asked the same way
        done = load_samples_info(ws, out)
        # concurrency is how fast, not what: a set sampled 4 at a time is the same set at 16
        same = {"concurrency"}
        asked = {"dataset hash": info.hash, "adapter": adapter, "config": cfg.model_dump(exclude=same)}
        had = {
            "dataset hash": done.dataset_hash,
            "adapter": done.adapter,
            "config": done.config.model_dump(exclude=same),
        }
        differ = [k for k in asked if asked[k] != had[k]]
        if differ:
            raise SamplesError(
                f"samples set {out!r} exists, made with another {' and '.join(differ)}; choose a new name"
            )
        if done.sampler_version != SAMPLER_VERSION:  # kept: a resumed improve round must find its samples
            log.warning(
                "samples.older_judge",
                name=out,
                made_by=done.sampler_version,
                now=SAMPLER_VERSION,
                why="its answers were judged by an older rule; sample again under a new name to judge anew",
            )
        return done
    if cfg.split not in SPLITS:
        raise SamplesError(f"no split {cfg.split!r}; one of {', '.join(SPLITS)}")
    examples = dataset_examples(info, cfg.split)[: cfg.limit]
    if not examples:
        raise SamplesError(f"dataset {dataset!r} has no {cfg.split} examples to sample")
    suite, by_id, skipped = requests_suite(examples, name=f"samples-{out}", id_prefix=cfg.split)
    if not suite.cases:
        raise SamplesError(f"none of {dataset!r}'s {cfg.split} examples ends in an answer to sample against")
    run_id = f"samples-{out}"
    report = await run_suite_on_server(
        server,
        suite,
        ws=ws,
        adapter=adapter,
        label="samples",
        run_id=run_id,
        concurrency=cfg.concurrency,
        repeats=cfg.k,
        temperature=cfg.temperature,
        seed=cfg.seed,
        max_tokens=cfg.max_tokens,
        on_progress=on_progress,
    )
    results = load_results(run_dir(ws, report.meta.run_id) / "cases.jsonl")
    requests = group_samples(results, by_id)
    return save_samples(
        ws,
        out,
        requests,
        dataset=dataset,
        dataset_hash=info.hash,
        model=str(getattr(server, "model_path", "")),
        adapter=adapter,
        config=cfg,
        eval_run=run_id,
        skipped=skipped,
    )


# ------------------------------------------------------------------------------------ what to train on


def _answer_message(sample: Sample) -> dict[str, Any] | None:
    """The model's own answer as an assistant turn of the training format (arguments a JSON object, as
    the generator writes them); None when a call's arguments are not a JSON object, which the chat
    template could not render as the model wrote it."""
    if sample.dropped:  # the server dropped a malformed call: its text is not what the model wrote
        return None
    if not sample.calls:
        return {"role": "assistant", "content": sample.text}
    calls: list[tuple[str, dict[str, Any]]] = []
    for c in sample.calls:
        args = c.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                return None
        if not isinstance(args, dict):
            return None
        calls.append((str(c.get("name")), args))
    return call_message(calls)


def _prompt(rq: SampledRequest) -> list[dict[str, Any]]:
    last = max(i for i, m in enumerate(rq.example.messages) if m.get("role") == "assistant")
    return rq.example.messages[:last]


def _with_answer(rq: SampledRequest, answer: dict[str, Any], source: str) -> Example:
    meta = ExampleMeta(kind=rq.kind, source=source, group=rq.example.meta.group or rq.id)
    return Example(messages=[*_prompt(rq), answer], tools=rq.example.tools, meta=meta)


def _truth(rq: SampledRequest) -> dict[str, Any]:
    return rq.example.messages[
        max(i for i, m in enumerate(rq.example.messages) if m.get("role") == "assistant")
    ]


def request_split(samples_hash: str, request: str) -> Literal["train", "valid"]:
    """Where the data picked from one sampled request goes: 90/10 train/valid by the samples set and the
    request. Not by the examples' own split (:func:`tooltune.data.store.split_of`): the requests were
    sampled from one split of their dataset, so that hash would put every one of them in it."""
    bucket = int(hashlib.sha256(f"{samples_hash}:{request}".encode()).hexdigest(), 16) % 10
    return "valid" if bucket == 0 else "train"


def rejection_examples(
    requests: list[SampledRequest], *, per_request: int = 1, truth_where_none: bool = True, seed: int = 0
) -> tuple[list[Example], dict[str, int]]:
    """Training examples from the model's own correct answers (up to ``per_request`` distinct ones per
    request) and, where no sample was right, the generated truth. Returns the examples and where they
    came from (``own``, ``truth``, ``dropped``)."""
    rng = random.Random(seed)
    out: list[Example] = []
    stats: Counter[str] = Counter()
    for rq in requests:
        own: dict[str, dict[str, Any]] = {}
        for s in rq.correct:
            msg = _answer_message(s)
            if msg is not None:
                own.setdefault(json.dumps(msg, sort_keys=True), msg)
        if own:
            chosen = rng.sample(list(own.values()), min(per_request, len(own)))
            out += [_with_answer(rq, msg, "onpolicy:own") for msg in chosen]
            stats["own"] += len(chosen)
        elif truth_where_none:
            out.append(_with_answer(rq, _truth(rq), "onpolicy:truth"))
            stats["truth"] += 1
        else:
            stats["dropped"] += 1
    return out, dict(stats)


class PreferencePair(BaseModel):
    """A correct answer and the model's own wrong one to the same request, with why the wrong one fails."""

    id: str
    kind: str
    reason: str
    messages: list[dict[str, Any]] = Field(description="The conversation before the answer.")
    tools: list[dict[str, Any]]
    chosen: dict[str, Any] = Field(description="A correct assistant turn (the model's own where it had one).")
    rejected: dict[str, Any] = Field(description="One of the model's wrong assistant turns.")
    chosen_is_own: bool


class AlwaysRightRequest(BaseModel):
    """A request every sampled answer got right. No pair teaches it, which is what makes it worth asking
    after preference training: the answer check (training/answer_check.py) sees there whether the run
    broke what the model already did right, which the pairs' own requests cannot show."""

    id: str
    kind: str
    messages: list[dict[str, Any]] = Field(description="The conversation before the answer.")
    tools: list[dict[str, Any]]
    answer: dict[str, Any] = Field(
        description="The request's generated answer: the truth its samples were judged against."
    )


def always_right_requests(requests: list[SampledRequest]) -> list[AlwaysRightRequest]:
    """The requests whose every sample was right, each with the truth its samples were judged against
    (so the check judges a greedy answer exactly as sampling judged them)."""
    return [
        AlwaysRightRequest(
            id=rq.id, kind=rq.kind, messages=_prompt(rq), tools=rq.example.tools, answer=_truth(rq)
        )
        for rq in requests
        if rq.samples and not rq.wrong
    ]


def decision_direction(pair: PreferencePair) -> Literal["to_call", "to_text"] | None:
    """Which way a pair pushes the call-or-answer decision, read from why its rejected answer is wrong:
    ``to_call`` when the model answered in text where a call was due (``no_call_made``), ``to_text``
    when it called where none was (``called_when_irrelevant``, a native call or one written as text),
    None for a pair about values, arguments, types, counts or the tool."""
    if pair.reason == "no_call_made":
        return "to_call"
    if pair.reason == "called_when_irrelevant":
        return "to_text"
    return None


def balance_decision(pairs: list[PreferencePair], rng: random.Random) -> tuple[list[PreferencePair], int]:
    """Keep as many pairs pushing toward a call as toward a text answer (a random subset of the larger
    side), so the pairs as a whole do not move the call decision; the other pairs all stay.
    Returns the kept pairs (in their order) and how many were dropped."""
    sides: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        if (way := decision_direction(p)) is not None:
            sides[way].append(i)
    keep = min(len(sides["to_call"]), len(sides["to_text"]))
    dropped = {i for idx in sides.values() if len(idx) > keep for i in rng.sample(idx, len(idx) - keep)}
    return [p for i, p in enumerate(pairs) if i not in dropped], len(dropped)


def preference_pairs(
    requests: list[SampledRequest],
    *,
    per_request: int = 1,
    seed: int = 0,
    max_share: float = 0.5,
    balanced_decision: bool = False,
) -> tuple[list[PreferencePair], dict[str, int]]:
    """Pairs (correct, the model's own wrong answer), at most ``per_request`` per request. While several
    reason codes have pairs, none keeps more than ``max_share`` of all the pairs drawn (a random subset
    stays), so refusals, wrong values and over-calls are all represented. With ``balanced_decision``,
    then (after that cap, so a reason may end above ``max_share``) as many pairs prefer a call to the
    model's text as prefer a text answer to its call (:func:`balance_decision`). Returns the pairs and
    the count per reason (``skipped_unrenderable``: wrong answers the template cannot write as the model
    did; ``dropped_to_balance``: pairs the balance left out)."""
    rng = random.Random(seed)
    by_reason: dict[str, list[PreferencePair]] = defaultdict(list)
    unrenderable = 0
    for rq in requests:
        wrong: dict[str, tuple[Sample, dict[str, Any]]] = {}
        for s in rq.wrong:
            msg = _answer_message(s)
            if msg is None:  # arguments that are no JSON object: the template cannot write them as sampled
                unrenderable += 1
                continue
            wrong.setdefault(json.dumps(msg, sort_keys=True), (s, msg))
        if not wrong:
            continue
        right = [m for m in (_answer_message(s) for s in rq.correct) if m is not None]
        chosen_own = bool(right)
        chosen = rng.choice(right) if right else _truth(rq)
        wrong.pop(json.dumps(chosen, sort_keys=True), None)  # a "wrong" answer written like the right one
        for s, msg in rng.sample(list(wrong.values()), min(per_request, len(wrong))):
            reason = rq.why_wrong(s)
            by_reason[reason].append(
                PreferencePair(
                    id=rq.id,
                    kind=rq.kind,
                    reason=reason,
                    messages=_prompt(rq),
                    tools=rq.example.tools,
                    chosen=chosen,
                    rejected=msg,
                    chosen_is_own=chosen_own,
                )
            )
    total = sum(len(v) for v in by_reason.values())
    if len(by_reason) > 1 and total:
        cap = max(1, int(max_share * total))
        for reason, pairs in by_reason.items():
            if len(pairs) > cap:
                by_reason[reason] = rng.sample(pairs, cap)
    pairs = [p for reason in sorted(by_reason) for p in by_reason[reason]]
    dropped = 0
    if balanced_decision:
        pairs, dropped = balance_decision(pairs, rng)
        if dropped:
            log.info("pairs.balanced", dropped=dropped, kept=len(pairs))
    counts = dict(sorted(Counter(p.reason for p in pairs).items()))
    if unrenderable:
        counts["skipped_unrenderable"] = unrenderable
    if dropped:
        counts["dropped_to_balance"] = dropped
    return pairs, counts


ALWAYS_RIGHT_FILE = "always_right.jsonl"
"""In a pairs dataset: the sampled requests the model always got right (:class:`AlwaysRightRequest`),
not trained on; the answer check asks them."""


def save_pairs_dataset(
    ws: Workspace,
    name: str,
    pairs: list[PreferencePair],
    *,
    samples: SamplesInfo,
    counts: dict[str, int],
    always_right: Sequence[AlwaysRightRequest] = (),
) -> Path:
    """Write ``pairs`` as a dataset folder ``<ws>/datasets/<name>/`` (train/valid/test JSONL split by
    request, ``dataset.json`` with ``extra.format`` = preference_pairs) that `tooltune train --method dpo`
    takes as its ``--dataset``, with ``always_right`` in :data:`ALWAYS_RIGHT_FILE` (no split, not trained
    on). Immutable like the other datasets: same content is returned, other refused."""
    validate_name(name, "dataset name")
    if not pairs:
        raise SamplesError(f"no pairs for dataset {name!r}; nothing was written")
    splits: dict[str, list[PreferencePair]] = {"train": [], "valid": [], "test": []}
    for p in pairs:  # every pair of one request in one split
        splits[request_split(samples.hash, p.id)].append(p)
    if not splits["train"]:  # few pairs, all hashed to valid: training needs them more
        splits["train"], splits["valid"] = splits["valid"], []
    texts = {s: "".join(p.model_dump_json() + "\n" for p in v) for s, v in splits.items()}
    extra: dict[str, Any] = {
        "format": PAIRS_FORMAT,
        "samples": samples.name,
        "samples_hash": samples.hash,
        "per_reason": counts,
    }
    pairs_only = _pairs_digest(texts, extra)  # the hash such a dataset had before always-right requests
    if always_right:
        texts["always_right"] = "".join(r.model_dump_json() + "\n" for r in always_right)
        extra["always_right"] = len(always_right)
    digest = _pairs_digest(texts, extra)
    final = ws.dataset_dir(name)
    if final.exists():
        old = (
            json.loads((final / "dataset.json").read_text("utf-8"))
            if (final / "dataset.json").is_file()
            else {}
        )
        if old.get("hash") == digest:
            return final
        if old.get("hash") == pairs_only:  # the same pairs, picked before always-right requests were kept
            log.warning(
                "pairs.kept_without_always_right",
                name=name,
                why="the dataset was made before always-right requests were kept; its answer check asks "
                "the pairs' requests only (pick again under a new name to add them)",
            )
            return final
        raise SamplesError(f"dataset {name!r} already exists with different content; choose a new --out name")
    meta = {
        "name": name,
        "hash": digest,
        "sources": [f"samples:{samples.name}"],
        "generator_version": samples.sampler_version,
        "kinds": sorted({p.kind for p in pairs}),
        "counts": {s: len(v) for s, v in splits.items()},
        "extra": extra,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(final) as tmp:
        for s, text in texts.items():
            (tmp / f"{s}.jsonl").write_text(text, encoding="utf-8")
        atomic_write_json(tmp / "dataset.json", meta)
    log.info("pairs.saved", name=name, hash=digest, **meta["counts"])
    return final


def _pairs_digest(texts: dict[str, str], extra: dict[str, Any]) -> str:
    body = json.dumps({"texts": texts, "extra": extra}, sort_keys=True).encode("utf-8")
    return "sha256:" + hashlib.sha256(body).hexdigest()


class PickConfig(BaseModel):
    """How a samples set becomes training data: the options `tooltune data pick` and MCP
    ``pick_training_data`` share (one declaration)."""

    method: Literal["rejection", "pairs"] = Field(
        description="rejection: a dataset of the model's own correct answers (the generated truth where none "
        "was right), for SFT; pairs: preference pairs (a correct answer against the model's own wrong one, "
        "per reason code so refusals, wrong values and over-calls are all represented), for DPO or ORPO."
    )
    per_request: int = Field(
        default=1, ge=1, le=16, description="Most own answers (rejection) or wrong answers (pairs) a request."
    )
    seed: int = Field(default=0, description="Seed of the choices.")
    balanced_decision: bool = Field(
        default=False,
        description="pairs only: keep as many pairs preferring a call to the model's text answer as "
        "preferring a text answer to its call (a random subset of the larger side goes), so the pairs do not "
        "move the call-or-answer decision as a whole; pairs about values, arguments or the tool all stay.",
    )

    @model_validator(mode="after")
    def _pairs_to_balance(self) -> PickConfig:
        if self.balanced_decision and self.method != "pairs":
            raise ValueError("balanced_decision balances preference pairs: it needs method 'pairs'")
        return self


class Picked(BaseModel):
    """What :func:`pick_training_data` made: a dataset of examples (rejection) or of pairs (pairs)."""

    dataset: str
    method: Literal["rejection", "pairs"]
    counts: dict[str, int] = Field(description="Rows per split.")
    picked: dict[str, int] = Field(
        description="rejection: answers from the model itself (own) or the generated truth; pairs: pairs "
        "per reason code of the wrong answer."
    )
    samples_adapter: str | None = Field(description="The adapter that was sampled (None: the base model).")
    always_right: int = Field(
        default=0,
        description="pairs: requests every sample got right, kept beside the pairs (not trained on) for the "
        "answer check to ask.",
    )


def _picked_before(ws: Workspace, name: str, meta: DatasetMeta) -> DatasetInfo | None:
    """The rejection dataset ``name`` when an older tooltune picked it from the same samples set with the
    same recipe, before such data was split by request (:func:`request_split`); a resumed
    ``train improve`` round picks its dataset again under the same name. None otherwise."""
    if not (ws.dataset_dir(name) / "dataset.json").is_file():
        return None
    old = load_dataset(ws, name)
    recipe = {k: v for k, v in meta.extra.items() if k != "split"}
    if "split" in old.extra or old.extra != recipe or (old.sources, old.seed) != (meta.sources, meta.seed):
        return None
    log.warning(
        "rejection.kept_old_split",
        name=name,
        valid=old.counts.get("valid", 0),
        why="picked before rejection data was split by request; pick again under a new name for a "
        "validation split of about a tenth of the requests",
    )
    return old


def pick_training_data(
    ws: Workspace,
    samples: str,
    method: Literal["rejection", "pairs"],
    out: str,
    *,
    per_request: int = 1,
    seed: int = 0,
    balanced_decision: bool = False,
) -> Picked:
    """The one pick service both skins call: a samples set → a new dataset ``out``. ``balanced_decision``
    (pairs only) keeps as many pairs preferring a call as preferring a text answer."""
    if balanced_decision and method != "pairs":
        raise SamplesError("balanced_decision applies to preference pairs (method 'pairs') only")
    if per_request < 1:
        raise SamplesError(f"per_request must be at least 1, got {per_request}")
    info, requests = load_samples(ws, samples)
    if method == "rejection":
        examples, where = rejection_examples(requests, per_request=per_request, seed=seed)
        meta = DatasetMeta(
            sources=[f"samples:{info.name}"],
            generator_version=info.sampler_version,
            seed=seed,
            kinds=sorted({e.meta.kind for e in examples}),
            extra={
                "samples_hash": info.hash,
                "method": "rejection",
                "per_request": per_request,
                "from": where,
                "split": "by request",
            },
        )
        ds = _picked_before(ws, out, meta) or save_dataset(
            ws, out, examples, meta, split_by=lambda ex: request_split(info.hash, ex.meta.group or "")
        )
        return Picked(
            dataset=ds.name, method=method, counts=ds.counts, picked=where, samples_adapter=info.adapter
        )
    pairs, per_reason = preference_pairs(
        requests, per_request=per_request, seed=seed, balanced_decision=balanced_decision
    )
    if not pairs:
        if per_reason.get("dropped_to_balance"):
            why = (
                f"its {per_reason['dropped_to_balance']} pairs all push the call decision one way, and "
                "balanced_decision keeps as many of each way (pick without it to train on them)"
            )
        elif per_reason.get("skipped_unrenderable"):
            why = (
                f"its {per_reason['skipped_unrenderable']} wrong answers are calls with arguments that are "
                "no JSON object"
            )
        else:
            why = "every sample was right"
        raise NothingToPairError(f"samples set {samples!r} gives no preference pair: {why}")
    kept = always_right_requests(requests)
    folder = save_pairs_dataset(ws, out, pairs, samples=info, counts=per_reason, always_right=kept)
    meta = json.loads((folder / "dataset.json").read_text("utf-8"))
    return Picked(
        dataset=out,
        method=method,
        counts=meta["counts"],
        picked=per_reason,
        samples_adapter=info.adapter,
        always_right=meta["extra"].get("always_right", 0),  # 0 in a dataset picked before they were kept
    )
