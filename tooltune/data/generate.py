"""Generate tool-calling training examples from tool schemas alone (plus optional caller examples and
an optional teacher).

Each kind targets one behaviour the small model must learn: call the right tool with exact arguments,
pick it among distractors, make parallel calls, chain calls over tool results, answer from a tool
result, and — just as important — *not* call when nothing fits. Tool sets are shuffled and sub-sampled
per example so the model cannot learn positions. Everything is driven by one ``random.Random(seed)``.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from tooltune.data.books import Book
from tooltune.data.builders import ExampleBuilder
from tooltune.data.examples import DataError, Example, example_key, split_turns
from tooltune.data.generate_config import (
    DEFAULT_KINDS,
    DEFAULT_MIX,
    GENERATED_KINDS,
    OPT_IN_WEIGHT,
    GenerateConfig,
    GenerateResult,
)
from tooltune.data.similarity import DEDUP_THRESHOLD, LeakIndex, MinHashIndex
from tooltune.data.teacher import Teacher
from tooltune.logs import get_logger
from tooltune.toolspec import ToolSpec

log = get_logger(__name__)


def generate_examples(
    tools: list[ToolSpec],
    config: GenerateConfig | None = None,
    *,
    caller: list[Example] | None = None,
    leak_index: LeakIndex | None = None,
    teacher: Teacher | None = None,
    progress: Callable[[int, int], None] | None = None,
    books: list[Book] | None = None,
) -> GenerateResult:
    """Generate ``config.n`` examples (caller examples first), split per assistant turn, with near-
    duplicates and eval-leaked requests dropped and counted. ``books``: phrasebooks (from files) that
    phrase their tools' requests the way people ask."""
    cfg = config or GenerateConfig()
    if not tools:
        raise DataError("no tools to generate examples for; pass --tools with at least one tool")
    unknown = [k for k in cfg.kinds if k not in GENERATED_KINDS]
    if unknown:
        raise DataError(f"unknown kind(s) {unknown}; choose from {', '.join(GENERATED_KINDS)}")
    t0 = time.perf_counter()
    gen = ExampleBuilder(tools, cfg, teacher, books)
    # a kind asked for by name that the default mix leaves out (trajectory) gets a weight of its own
    mix = cfg.mix or {k: DEFAULT_MIX[k] or (OPT_IN_WEIGHT if k in cfg.kinds else 0.0) for k in DEFAULT_MIX}
    bad = sorted(set(mix) - set(GENERATED_KINDS))
    if bad:
        raise DataError(f"unknown kind(s) {bad} in mix; choose from {', '.join(GENERATED_KINDS)}")
    # an opt-in kind (not in the default kinds) given a weight in the mix is asked for by that weight
    opted = [
        k for k in GENERATED_KINDS if k not in DEFAULT_KINDS and k not in cfg.kinds and mix.get(k, 0) > 0
    ]
    kinds = [k for k in [*cfg.kinds, *opted] if mix.get(k, 0) > 0]
    weights = [mix[k] for k in kinds]
    if not kinds:
        raise DataError("the mix gives every selected kind weight 0; give at least one a positive weight")
    dedup = MinHashIndex(DEDUP_THRESHOLD, bands=16, rows=8, seed=cfg.seed)
    out: list[Example] = []
    counts: Counter[str] = Counter()
    dup = leaked = convs = 0
    leaked_sources: list[str] = []

    def accept(ex: Example, conv_keys: list[str]) -> bool:
        """Keep ``ex`` unless it leaked or near-duplicates an example of *another* conversation (the
        pieces of one conversation share their request by design)."""
        nonlocal dup, leaked
        if leak_index is not None:
            for text in ex.user_texts():
                hit = leak_index.match(text)
                if hit is not None:
                    leaked += 1
                    if len(leaked_sources) < 20:
                        leaked_sources.append(hit[0])
                    return False
        key = example_key(ex)
        if dedup.query(key) is not None:
            dup += 1
            return False
        conv_keys.append(key)
        out.append(ex)
        counts[ex.meta.kind] += 1
        if progress is not None:
            progress(len(out), cfg.n)
        return True

    def accept_pieces(conv: Example, twin: Example | None = None) -> None:
        """The split pieces of ``conv`` in order, stopping at the first one dropped: a later piece
        contains that turn unterminated, where it would get no loss under mask_prompt. A contrast
        ``twin`` shares the request by design, so it is checked against the others, not against it."""
        keys: list[str] = []
        for piece in split_turns(conv) if cfg.split_turns else [conv]:
            if len(out) >= cfg.n or not accept(piece, keys):
                break
        else:
            if twin is not None and len(out) < cfg.n:
                accept(twin, keys)
        for key in keys:
            dedup.add(str(next(dedup_ids)), key)

    dedup_ids = itertools.count()
    for ex in caller or []:
        accept_pieces(ex)
    attempts = 0
    while len(out) < cfg.n and attempts < cfg.n * 30:
        attempts += 1
        kind = gen.rng.choices(kinds, weights=weights)[0]
        conv = gen.conversation(kind)
        if conv is None:
            continue
        pair = [conv, twin] if (twin := gen.take_twin()) is not None else [conv]
        if cfg.system_prompt and gen.rng.random() < cfg.system_share:
            # a twin gets what its refusal gets: the pair differs only in the offered tools
            prompt = cfg.system_prompt
            pair = [ex.model_copy(update={"messages": with_system(prompt, ex.messages)}) for ex in pair]
        convs += 1
        accept_pieces(*pair)
    if not out:
        raise DataError("no examples were produced; check the tool schemas and --kinds")
    if len(out) < cfg.n:
        log.warning(
            "fewer examples than asked",
            asked=cfg.n,
            produced=len(out),
            hint="the tool set is too small for this many distinct examples",
        )
    res = GenerateResult(
        examples=out,
        counts=dict(sorted(counts.items())),
        conversations=convs,
        dropped_duplicates=dup,
        dropped_leaked=leaked,
        leaked_sources=leaked_sources,
        dropped_unverifiable=gen.unverifiable,
        teacher=teacher.stats if teacher is not None else None,
        seconds=round(time.perf_counter() - t0, 3),
    )
    log.info("examples generated", n=len(out), duplicates=dup, leaked=leaked, seconds=res.seconds)
    return res


def with_system(prompt: str, msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``msgs`` opened by the system ``prompt``; a conversation that has a system line already (a dated
    one says what today is) keeps it after the prompt, in one system message (chat templates take one,
    first)."""
    if msgs and msgs[0].get("role") == "system":
        return [{**msgs[0], "content": f"{prompt}\n\n{msgs[0]['content']}"}, *msgs[1:]]
    return [{"role": "system", "content": prompt}, *msgs]
