"""Generate tool-calling training examples from tool schemas alone (plus optional caller examples and
an optional teacher).

Each kind targets one behaviour the small model must learn: call the right tool with exact arguments,
pick it among distractors, make parallel calls, chain calls over tool results, answer from a tool
result, and — just as important — *not* call when nothing fits. Tool sets are shuffled and sub-sampled
per example so the model cannot learn positions. Everything is driven by one ``random.Random(seed)``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field, field_validator

from tooltune.logs import get_logger
from tooltune.training import coding_chat, coding_requests
from tooltune.training.examples import (
    DataError,
    Example,
    ExampleMeta,
    call_message,
    example_from_record,
    split_turns,
)
from tooltune.training.near_miss import NEAR_MISS_ANSWERS, sibling_task, tool_covers
from tooltune.training.phrasing import (
    Several,
    clause,
    forms_in,
    mentions_all,
    multi_request,
    request_text,
    roles_swapped,
    task_phrase,
)
from tooltune.training.samplers import sample_value, words_of
from tooltune.training.similarity import DEDUP_THRESHOLD, LeakIndex, MinHashIndex, normalize_text
from tooltune.training.teacher import TEACHER_PROMPT_VERSION, Teacher, TeacherStats
from tooltune.training.toolspec import ToolSpec

log = get_logger(__name__)

# 2: numbers in written forms ($2,000,000 / 2 million / 5%), "City, ST" places, near_miss examples
# 3: parallel includes fan-out requests (several values of one or two parameters: a call per combination);
#    near_miss looks for a tool with a sibling task instead of giving up; "City, ST" only when the schema asks
# 4: string values from the description's own examples ("e.g., 'C', 'F#'") and more typed banks (musical
#    keys, stock indexes, seasons, months, weekdays...) instead of filler words; array items inherit the
#    array's description; wh-questions ("Who was …?", "How much is …?") that want a call
# 5: values put where the task phrase names them ("convert 500 from USD to CAD", "the president during
#    the Civil War"), half of the requests
# 6: the agent's built-in coding tools are asked for the way developers ask ("open src/app.py", "run
#    `make lint`", follow-ups into a tool result), with results in the real tools' text form; the leak
#    index holds the built-in suites too, which drops three chit-chat/general questions of the pools that
#    are coding-tools no-call cases word for word (12 of 800 examples for BFCL simple_python)
# 7: the coding tools' no-call examples are mostly messages answered in text *with* the tools offered
#    (code questions, thanks, arithmetic, translations, inline code, asks out of reach; some after a
#    finished tool exchange); "what does src/app.py do?" reads the file and answers from its content;
#    more pairs in one message (write, run_tests, git_diff, three files); bare file names; file
#    bodies that fit the file's extension. Other tools' data is unchanged.
# 8: the coding tools are asked for two or three things at once more often: three-tool joins, one tool
#    three times (list, search, tests), two one-line writes; calls in the order the message asks them.
#    Other tools' data is unchanged.
# 9: a coding-tools experiment on branch gen9, not merged (worse on the demo with one seed).
# 10: a number may carry the unit its description names ("300K", "2 kg", "5J/K"; the call keeps the bare
#     number); a currency code may be said by name ("Canadian dollars" for CAD); a schema asking for
#     "City, ST" gets it from a request naming the city only, and a plain location (never a "city")
#     sometimes gets a full form in the request, kept whole. The coding tools' data is byte-identical to 8.
GENERATOR_VERSION = "tooltune-data/10"

# ~25% of examples (after splitting multi-turn ones) end without a call: the model must learn not to
# over-call (BFCL irrelevance), including when the offered tool is about the topic but does another job.
DEFAULT_MIX: dict[str, float] = {
    "single": 0.16,
    "choose": 0.16,
    "parallel": 0.09,
    "edge_args": 0.07,
    "multi_answer": 0.08,
    "multi_chain": 0.05,
    "no_call": 0.2,
    "near_miss": 0.08,
    "chitchat": 0.11,
}
GENERATED_KINDS = tuple(DEFAULT_MIX)


class GenerateConfig(BaseModel):
    n: int = Field(default=500, ge=1, description="Examples (lines) to produce after splitting and dedup.")
    seed: int = 0
    kinds: list[str] = Field(default_factory=lambda: list(GENERATED_KINDS))
    split_turns: bool = Field(
        default=True, description="One example per assistant turn (loss on every turn)."
    )
    max_tools: int = Field(default=4, ge=1, description="Most tools offered in one example (tokens!).")
    teacher_share: float = Field(
        default=0.3, ge=0, le=1, description="Share of requests sent to the teacher."
    )
    teacher_no_call_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of the requests answered in text (near misses, requests for a tool that is not "
        "offered) sent to the teacher; None: teacher_share.",
    )
    teacher_tries: int = Field(
        default=2,
        ge=1,
        le=5,
        description="Samples asked of the teacher per request until one keeps every value and reads as a "
        "request (a retry costs one more completion).",
    )
    system_prompt: str | None = Field(
        default=None,
        description="System message to put in front of a share of conversations: the one the model will "
        "be served with (e.g. the coding agent's instructions), so training matches inference.",
    )
    system_share: float = Field(
        default=0.5, ge=0, le=1, description="Share of conversations that get system_prompt (rest: none)."
    )
    contrast_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of no_call requests for a tool that is not offered that also get their twin: "
        "the same words with that tool offered, answered with its call (kind 'contrast'). The pair "
        "differs only in the offered tools, so the model must read them to tell call from refusal.",
    )
    near_miss_contrast_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of near misses (the task next to an offered tool's) that also get their twin: "
        "the same request worded with the tool's own task, the same tools offered, answered with its "
        "call (kind 'contrast'). The pair differs in the task words only, so the model must read them.",
    )
    absent_tool_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of no_call examples that refuse a request for a tool that is not offered; the "
        "rest are questions, chit-chat and asks no tool serves, answered in text with tools offered. An "
        "agent that always has its tools never meets the first kind. None: 0.7.",
    )
    call_question_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description='Share of requests answered with a call that are asked as a question ("What is the '
        'density of ...?", "Who was the U.S. president during ...?") when the tool\'s task reads as one; '
        "the rest are commands. None: 0.5, as for the requests answered in text. Chit-chat and general "
        "questions make text answers questions more often than calls, and adapters learned to refuse "
        "questions the offered tool answers; a higher share evens that out.",
    )
    phrasebook_share: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Share of requests for the agent's built-in coding tools written the way developers "
        'ask ("open src/app.py", "run `make lint`", follow-ups into a result); the rest are phrased '
        "from the schema. Other tools have no phrasebook and are always phrased from their schema.",
    )
    mix: dict[str, float] | None = Field(
        default=None,
        description="Relative weight per kind (default DEFAULT_MIX). Match the target: single-turn "
        "benchmarks want few text-ending examples, or a small model learns to refuse.",
    )

    @field_validator("system_prompt")
    @classmethod
    def _agent_alias(cls, value: str | None) -> str | None:
        """``"agent"`` names the coding agent's own instructions — what `serve`/`ask` send."""
        if value == "agent":
            from tooltune.agent.coding_tools import DEFAULT_INSTRUCTIONS

            return DEFAULT_INSTRUCTIONS
        return value


class GenerateResult(BaseModel):
    examples: list[Example]
    counts: dict[str, int]
    conversations: int = 0
    dropped_duplicates: int = 0
    dropped_leaked: int = 0
    leaked_sources: list[str] = Field(default_factory=list)
    dropped_unverifiable: int = 0
    teacher: TeacherStats | None = None
    seconds: float = 0.0


def _validator(tool: ToolSpec) -> Draft202012Validator:
    return Draft202012Validator(tool.parameters)


class _Gen:
    """State of one generation run: the pool, the rng, validators."""

    def __init__(self, tools: list[ToolSpec], cfg: GenerateConfig, teacher: Teacher | None) -> None:
        self.tools = tools
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.teacher = teacher
        self.validators = {id(t): _validator(t) for t in tools}
        self.unverifiable = 0
        self._twin: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._taught = False
        # the agent's own tools get their phrasebook kinds; checked without a draw, so others' data stays
        self.has_book = any(coding_requests.covers(t) for t in tools)

    # --- building blocks -------------------------------------------------------------------------
    def args_for(self, tool: ToolSpec, *, edge: bool = False) -> dict[str, Any] | None:
        """Sampled arguments: every required param, optionals sometimes (always for edge cases)."""
        rng = self.rng
        for _ in range(6):
            args: dict[str, Any] = {}
            for name, schema in tool.properties.items():
                schema = schema if isinstance(schema, dict) else {}
                if name in tool.required or rng.random() < (0.9 if edge else 0.3):
                    args[name] = sample_value(rng, name, schema, edge=edge)
            if self.validators[id(tool)].is_valid(args):
                return args
        self.unverifiable += 1
        return None

    def tool_set(self, must: list[ToolSpec], extra: int) -> list[dict[str, Any]]:
        """``must`` plus up to ``extra`` distractors (never a second tool with the same name), shuffled."""
        names = {t.name for t in must}
        chosen = list(must)
        pool = [t for t in self.tools if t.name not in names]
        extra = max(0, min(extra, self.cfg.max_tools - len(chosen), len(pool)))
        for t in self.rng.sample(pool, extra):
            if t.name not in names:
                names.add(t.name)
                chosen.append(t)
        self.rng.shuffle(chosen)
        return [t.to_openai() for t in chosen]

    def request(self, tool: ToolSpec, args: dict[str, Any], *, no_call: bool = False) -> str | None:
        share = self.cfg.call_question_share
        question = 0.5 if share is None or no_call else share
        for _ in range(4):
            text = request_text(self.rng, tool, args, question=question)
            if mentions_all(text, args):
                return self.maybe_paraphrase(text, args, no_call=no_call)
        self.unverifiable += 1
        return None

    def maybe_paraphrase(
        self,
        text: str,
        *arg_sets: dict[str, Any],
        task_word: str = "",
        not_words: Iterable[str] = (),
        no_call: bool = False,
    ) -> str:
        """A share of requests go to the teacher (``no_call``: one answered in text, which has its own
        share). ``task_word`` must survive too and ``not_words`` must not appear: a near miss ("the
        sunset") must not turn back into the tool's own task ("sunrise")."""
        share = self.cfg.teacher_share
        if no_call and self.cfg.teacher_no_call_share is not None:
            share = self.cfg.teacher_no_call_share
        if self.teacher is None or self.rng.random() >= share:
            return text
        keep = forms_in(text, *arg_sets) + ([task_word] if task_word and task_word in text else [])
        # judged against the template's own reading: a template the check trips on is not evidence
        judge_roles = not roles_swapped(text, *arg_sets)
        avoid = [re.compile(rf"\b{re.escape(w)}\b", re.I) for w in not_words]

        def check(out: str) -> str | None:
            if judge_roles and roles_swapped(out, *arg_sets):
                return "roles_swapped"
            if any(a.search(out) for a in avoid):
                return "task_changed"
            return None

        out = self.teacher.paraphrase(
            text, keep, seed=self.rng.randrange(1 << 30), tries=self.cfg.teacher_tries, check=check
        )
        if out is None:
            return text
        self._taught = True
        return out

    def pick(self) -> ToolSpec:
        return self.rng.choice(self.tools)

    # --- kinds -----------------------------------------------------------------------------------
    def natural(self, tool: ToolSpec) -> bool:
        """Ask for this tool in a developer's words? Draws only for phrasebook tools, so datasets of
        other tools stay what they were."""
        return coding_requests.covers(tool) and self.rng.random() < self.cfg.phrasebook_share

    def book_request(self, tool: ToolSpec, *, polish: bool = True) -> tuple[str, dict[str, Any]] | None:
        text, args = coding_requests.request(self.rng, tool.name, polish=polish)
        if not self.validators[id(tool)].is_valid(args):
            self.unverifiable += 1
            return None
        return text, args

    def single(self, *, extra: int | None = None, edge: bool = False) -> list[dict[str, Any]] | None:
        tool = self.pick()
        if not edge and self.natural(tool):
            got = self.book_request(tool)
            if got is None:
                return None
            text, args = got
        else:
            args = self.args_for(tool, edge=edge)
            if args is None:
                return None
            text = self.request(tool, args)
            if text is None:
                return None
        n_extra = extra if extra is not None else self.rng.choice([0, 0, 1, 2])
        self._tools = self.tool_set([tool], n_extra)
        return [{"role": "user", "content": text}, call_message([(tool.name, args)])]

    def choose(self) -> list[dict[str, Any]] | None:
        return self.single(extra=self.rng.randint(2, max(2, self.cfg.max_tools - 1)))

    def edge_args(self) -> list[dict[str, Any]] | None:
        return self.single(edge=True)

    def parallel(self) -> list[dict[str, Any]] | None:
        rng = self.rng
        if rng.random() < 0.4:
            return self.fan_out()
        k = rng.choice([2, 2, 3])
        same = rng.random() < 0.5
        base = self.pick()
        if self.natural(base):
            return self.book_parallel(base, same)
        calls: list[tuple[ToolSpec, dict[str, Any]]] = []
        for i in range(k):
            tool = base if same or i == 0 else self.pick()
            if any(t.name == tool.name and t is not tool for t, _ in calls):
                continue
            args = self.args_for(tool)
            if args is None or any(t.name == tool.name and a == args for t, a in calls):
                continue
            calls.append((tool, args))
        if len(calls) < 2:
            return None
        text = multi_request(rng, [clause(rng, t, a) for t, a in calls])
        if not all(mentions_all(text, a) for _, a in calls):
            self.unverifiable += 1
            return None
        text = self.maybe_paraphrase(text, *(a for _, a in calls))
        uniq = list({t.name: t for t, _ in calls}.values())
        self._tools = self.tool_set(uniq, rng.choice([0, 1, 2]))
        return [{"role": "user", "content": text}, call_message([(t.name, a) for t, a in calls])]

    def book_parallel(self, base: ToolSpec, same: bool) -> list[dict[str, Any]] | None:
        """Two or three calls in one message, in a developer's words: one tool twice or three times
        ("open a.py and b.py") or two or three tools ("git status and run the tests")."""
        rng = self.rng
        paired = coding_requests.pair(rng, base.name) if same else None
        if paired is not None:
            text, arg_list = paired
            calls = [(base, a) for a in arg_list]
        else:
            others = [t for t in self.tools if coding_requests.covers(t) and t.name != base.name]
            if not others:
                return None
            # a quarter ask three tools at once ("git status, the diff and the tests")
            picked = [base, *rng.sample(others, min(len(others), 2 if rng.random() < 0.25 else 1))]
            asked = [(t, self.book_request(t, polish=False)) for t in picked]
            # join() puts a multi-line request (file content) last: order the calls as the text reads
            order = sorted(((t, r) for t, r in asked if r is not None), key=lambda p: "\n" in p[1][0])
            joined = coding_requests.join(rng, [text for _, (text, _) in order])
            if joined is None or len(order) < len(picked):
                return None
            text = joined
            calls = [(t, args) for t, (_, args) in order]
        if not all(self.validators[id(t)].is_valid(a) for t, a in calls):
            self.unverifiable += 1
            return None
        uniq = list({t.name: t for t, _ in calls}.values())
        self._tools = self.tool_set(uniq, rng.choice([0, 1, 2]))
        return [{"role": "user", "content": text}, call_message([(t.name, a) for t, a in calls])]

    def fan_out(self) -> list[dict[str, Any]] | None:
        """One request naming several values of one or two parameters: a call per value, or per
        combination ("BRCA1 and BRCA2 in humans and chimpanzees" is four calls)."""
        rng = self.rng
        tool = self.pick()
        if self.natural(tool):  # "open a.py and b.py": the phrasebook's own pairs
            return self.book_parallel(tool, same=True)
        args = self.args_for(tool)
        if args is None:
            return None
        scalars = [n for n, v in args.items() if isinstance(v, str | int | float) and not isinstance(v, bool)]
        if not scalars or any(isinstance(v, list | dict) for v in args.values()):
            return None  # "a, b and c" would read the same for an array argument and for several calls
        fanned = rng.sample(scalars, 2 if len(scalars) > 1 and rng.random() < 0.35 else 1)
        values: dict[str, Several] = {}
        for name in fanned:
            schema = tool.properties.get(name, {})
            vals = [args[name]]
            want = 2 if len(fanned) == 2 else rng.choice([2, 3, 3])
            for _ in range(12):
                v = sample_value(rng, name, schema if isinstance(schema, dict) else {})
                if v not in vals and type(v) is type(args[name]):
                    vals.append(v)
                if len(vals) == want:
                    break
            if len(vals) < 2:
                return None
            values[name] = Several(vals)
        combos = itertools.product(*(values[n] for n in fanned))
        calls = [{**args, **dict(zip(fanned, combo, strict=True))} for combo in combos]
        if not all(self.validators[id(tool)].is_valid(c) for c in calls):
            self.unverifiable += 1
            return None
        said = {**args, **values}
        text = self.request(tool, said)
        if text is None:
            return None
        self._tools = self.tool_set([tool], rng.choice([0, 1, 2]))
        return [{"role": "user", "content": text}, call_message([(tool.name, c) for c in calls])]

    def multi_answer(self) -> list[dict[str, Any]] | None:
        if self.has_book and self.rng.random() < 0.3:
            return self.explain()
        msgs = self.single(extra=self.rng.choice([0, 1, 2, 3]))
        if msgs is None:
            return None
        fn = msgs[1]["tool_calls"][0]["function"]
        tool = next(t for t in self.tools if t.name == fn["name"])
        result, answer = fake_result(self.rng, tool, fn["arguments"])
        return [
            *msgs,
            {"role": "tool", "name": tool.name, "content": result},
            {"role": "assistant", "content": answer},
        ]

    def multi_chain(self) -> list[dict[str, Any]] | None:
        rng = self.rng
        a = self.pick()
        if self.natural(a):
            return self.follow_up()
        b = a if rng.random() < 0.3 else self.pick()
        if b.name == a.name and b is not a:
            b = a
        args_a, args_b = self.args_for(a), self.args_for(b)
        if args_a is None or args_b is None or (a is b and args_a == args_b):
            return None
        text = multi_request(rng, [clause(rng, a, args_a), clause(rng, b, args_b)], sequential=True)
        if not (mentions_all(text, args_a) and mentions_all(text, args_b)):
            self.unverifiable += 1
            return None
        text = self.maybe_paraphrase(text, args_a, args_b)
        res_a, _ = fake_result(rng, a, args_a)
        res_b, answer = fake_result(rng, b, args_b)
        self._tools = self.tool_set(list({t.name: t for t in (a, b)}.values()), rng.choice([0, 1, 2]))
        msgs = [
            {"role": "user", "content": text},
            call_message([(a.name, args_a)]),
            {"role": "tool", "name": a.name, "content": res_a},
            call_message([(b.name, args_b)]),
        ]
        if rng.random() < 0.5:
            msgs += [
                {"role": "tool", "name": b.name, "content": res_b},
                {"role": "assistant", "content": answer},
            ]
        return msgs

    def explain(self) -> list[dict[str, Any]] | None:
        """ "What does src/app.py do?": read it, then answer from its content (not "here it is")."""
        reader = next((t for t in self.tools if t.name == "read_file" and coding_requests.covers(t)), None)
        if reader is None:
            return None
        text, path, body, answer = coding_requests.explain(self.rng)
        self._tools = self.tool_set([reader], self.rng.choice([0, 1, 2, 3]))
        return [
            {"role": "user", "content": text},
            call_message([(reader.name, {"path": path})]),
            {"role": "tool", "name": reader.name, "content": body},
            {"role": "assistant", "content": answer},
        ]

    def follow_up(self) -> list[dict[str, Any]] | None:
        """A second request that points into the first call's result ("open the second one"): the model
        must take the value from the tool's output, as the agent does in a session."""
        calls, results, asks = coding_requests.follow_up(self.rng)
        by_name = {t.name: t for t in self.tools}
        if any(n not in by_name or not self.validators[id(by_name[n])].is_valid(a) for n, a in calls):
            self.unverifiable += 1
            return None
        msgs: list[dict[str, Any]] = []
        for i, (name, args) in enumerate(calls):
            msgs += [{"role": "user", "content": asks[i]}, call_message([(name, args)])]
            if i < len(results):
                msgs.append({"role": "tool", "name": name, "content": results[i]})
        uniq = list({n: by_name[n] for n, _ in calls}.values())
        self._tools = self.tool_set(uniq, self.rng.choice([0, 1, 2, 3]))
        return msgs

    def no_call(self) -> list[dict[str, Any]] | None:
        """A request for a tool that is *not* offered (the rest of the set is unrelated), or a general
        question no tool serves: answered in plain text."""
        rng = self.rng
        target = self.pick()
        unrelated = [t for t in self.tools if not _related(t, target)]
        absent = 0.7 if self.cfg.absent_tool_share is None else self.cfg.absent_tool_share
        if unrelated and rng.random() < absent:
            if self.natural(target):
                got = self.book_request(target)
                text, args = got if got is not None else (None, None)
            else:
                args = self.args_for(target)
                text = self.request(target, args, no_call=True) if args is not None else None
            if text is None or args is None:
                return None
            offered = rng.sample(unrelated, min(len(unrelated), rng.randint(1, min(4, self.cfg.max_tools))))
            rng.shuffle(offered)
            self._tools = [t.to_openai() for t in offered]
            task = task_phrase(target).imperative()
            answer = rng.choice(REFUSALS).format(task=task)
            # drawn only when asked for, so datasets made without twins stay the same
            if self.cfg.contrast_share > 0 and rng.random() < self.cfg.contrast_share:
                with_target = [*offered[: self.cfg.max_tools - 1], target]
                rng.shuffle(with_target)
                self._twin = (
                    [{"role": "user", "content": text}, call_message([(target.name, args)])],
                    [t.to_openai() for t in with_target],
                )
            return [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        offered = rng.sample(self.tools, min(len(self.tools), rng.randint(1, min(4, self.cfg.max_tools))))
        coding = any(coding_requests.covers(t) for t in offered)
        if coding and rng.random() < 0.8:
            return self.coding_chat(offered)
        vocab = {w for t in offered for w in _tool_words(t)}
        options = [(q, a) for q, a in GENERAL_QA if not (set(normalize_text(q).split()) & vocab)]
        if coding:
            # questions about code a coding agent answers from what it knows, and asks it has no tool for
            options += coding_chat.CODING_QA
        if not options:
            return None
        q, a = rng.choice(options)
        self._tools = [t.to_openai() for t in offered]
        return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]

    def coding_chat(self, offered: list[ToolSpec]) -> list[dict[str, Any]] | None:
        """A message a coding agent answers in text with its tools offered (a question, thanks, an ask
        out of its reach), a quarter of them after a finished tool exchange."""
        rng = self.rng
        self._tools = [t.to_openai() for t in offered]
        book = [t for t in offered if coding_requests.covers(t)]
        if rng.random() < 0.25:
            tool = rng.choice(book)
            got = self.book_request(tool)
            if got is None:
                return None
            result, answer = coding_requests.result(rng, tool.name, got[1])
            q, a = coding_chat.after_exchange(rng)
            return [
                {"role": "user", "content": got[0]},
                call_message([(tool.name, got[1])]),
                {"role": "tool", "name": tool.name, "content": result},
                {"role": "assistant", "content": answer},
                {"role": "user", "content": q},
                {"role": "assistant", "content": a},
            ]
        q, a = coding_chat.text_answer(rng)
        return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]

    def near_miss(self) -> list[dict[str, Any]] | None:
        """A request for the task next to an offered tool's ("sunset" when it computes the sunrise),
        answered in text: the topic matches, the job does not."""
        rng = self.rng
        for _ in range(12):  # most tools have no sibling word: look for one that does
            tool = self.pick()
            sibling = sibling_task(rng, tool)
            if sibling is not None:
                break
        args = self.args_for(tool)
        if sibling is None or args is None:
            return None
        phrase, new_word = sibling
        twin_rng = None
        # drawn only when asked for, so datasets made without twins stay the same
        if self.cfg.near_miss_contrast_share > 0 and rng.random() < self.cfg.near_miss_contrast_share:
            twin_rng = random.Random()
            twin_rng.setstate(rng.getstate())  # the twin replays the same wording choices
        text = request_text(rng, tool, args, phrase)
        # rewritten like the calls' requests, so wording alone does not tell a call from a text answer
        # (on BFCL this did not stop the over-calling: bench attempts 19 and 20)
        own = set(task_phrase(tool).imperative().lower().split()) - set(phrase.imperative().lower().split())
        text = self.maybe_paraphrase(text, args, task_word=new_word, not_words=own, no_call=True)
        others = [
            t
            for t in self.tools
            if not _related(t, tool) and not tool_covers(t, new_word) and t.name != tool.name
        ]
        n_others = min(len(others), rng.randint(0, max(0, self.cfg.max_tools - 1)))
        offered = [tool, *rng.sample(others, n_others)]
        rng.shuffle(offered)
        self._tools = [t.to_openai() for t in offered]
        answer = rng.choice(NEAR_MISS_ANSWERS).format(
            task=phrase.imperative(), offered=task_phrase(tool).imperative()
        )
        if twin_rng is not None:
            exact = request_text(twin_rng, tool, args)
            if exact != text and mentions_all(exact, args):
                self._twin = (
                    [{"role": "user", "content": exact}, call_message([(tool.name, args)])],
                    self._tools,
                )
        return [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]

    def chitchat(self) -> list[dict[str, Any]] | None:
        rng = self.rng
        offered = rng.sample(self.tools, min(len(self.tools), rng.randint(1, min(4, self.cfg.max_tools))))
        self._tools = [t.to_openai() for t in offered]
        q, a = rng.choice(CHITCHAT)
        if a == "{capabilities}":
            tasks = [task_phrase(t).imperative() for t in offered[:3]]
            a = (
                "I can "
                + (", ".join(tasks[:-1]) + " and " + tasks[-1] if len(tasks) > 1 else tasks[0])
                + ". Tell me what you need."
            )
        return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]

    def conversation(self, kind: str) -> Example | None:
        self._tools: list[dict[str, Any]] = []
        self._twin = None
        self._taught = False  # set when the teacher's rewrite of a request is kept
        msgs = getattr(self, kind)()
        if msgs is None:
            return None
        return _example(msgs, self._tools, kind, teacher=self._taught)

    def take_twin(self) -> Example | None:
        """The call twin (kind 'contrast') of the conversation just made, if it has one."""
        if self._twin is None:
            return None
        msgs, tools = self._twin
        self._twin = None
        return _example(msgs, tools, "contrast")


def _example(
    msgs: list[dict[str, Any]], tools: list[dict[str, Any]], kind: str, *, teacher: bool = False
) -> Example:
    group = normalize_text(json.dumps(msgs, sort_keys=True))
    gid = hashlib.sha256(group.encode()).hexdigest()[:16]
    meta = ExampleMeta(kind=kind, source="generated", group=gid, teacher=teacher)
    return Example(messages=msgs, tools=tools, meta=meta)


def _tool_words(t: ToolSpec) -> set[str]:
    stop = {
        "the",
        "a",
        "an",
        "of",
        "for",
        "to",
        "and",
        "in",
        "on",
        "given",
        "with",
        "by",
        "from",
        "or",
        "is",
        "get",
        "find",
        "calculate",
        "retrieve",
        "specific",
        "specified",
        "based",
        "its",
        "their",
        "this",
    }
    words = set(words_of(t.name)) | set(normalize_text(t.description).split())
    return {w for w in words if w not in stop and len(w) > 2}


def _related(a: ToolSpec, b: ToolSpec) -> bool:
    """Could ``a`` plausibly serve a request meant for ``b``? Then it must not be offered as "no fit"."""
    if a.name == b.name:
        return True
    wa, wb = _tool_words(a), _tool_words(b)
    if not wa or not wb:
        return False
    return len(wa & wb) / min(len(wa), len(wb)) > 0.25


REFUSALS = [
    "None of the available tools can {task}, so I can't do that here.",
    "I don't have a tool that can {task}. The functions I was given do something else.",
    "Sorry, I can't {task} with the tools available to me.",
    "The provided functions don't cover this: none of them can {task}.",
    "I can't help with that using these tools — there is no function to {task}.",
]

GENERAL_QA = [
    ("What's the capital of Australia?", "The capital of Australia is Canberra."),
    ("Who wrote Pride and Prejudice?", "Pride and Prejudice was written by Jane Austen."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    (
        "Write a haiku about autumn leaves.",
        "Red leaves drift and fall,\nwhispering to the cold ground —\nthe year exhales slow.",
    ),
    (
        "Tell me a joke about programmers.",
        "Why do programmers prefer dark mode? Because light attracts bugs.",
    ),
    ("What does HTTP stand for?", "HTTP stands for HyperText Transfer Protocol."),
    (
        "Explain what a closure is in one sentence.",
        "A closure is a function that remembers the variables from the scope where it was created.",
    ),
    (
        "Can you recommend a good book on habits?",
        "Atomic Habits by James Clear is a popular, practical choice.",
    ),
    (
        "What is the boiling point of water at sea level in Celsius?",
        "Water boils at 100 degrees Celsius at sea level.",
    ),
    (
        "Summarize the plot of Romeo and Juliet in one line.",
        "Two young lovers from feuding families marry in secret, "
        "and a chain of misunderstandings ends in both their deaths.",
    ),
    (
        "How do I say thank you in Japanese?",
        'You say "arigatou" (ありがとう), or more politely "arigatou gozaimasu".',
    ),
    (
        "What's the difference between a list and a tuple in Python?",
        "A list is mutable and can change after creation; a tuple is immutable.",
    ),
    (
        "Please book me a table for two at a sushi place tonight.",
        "I can't make reservations — I don't have a booking tool here. "
        "A restaurant app or a phone call will do it.",
    ),
    ("Order me a pizza with extra cheese.", "I can't place orders; none of my tools can do that."),
    (
        "Send a text message to my mom saying I'll be late.",
        "I can't send messages — I don't have a messaging tool.",
    ),
    (
        "Set an alarm for 6:30 tomorrow morning.",
        "I can't set alarms from here; please use your phone's clock app.",
    ),
    ("Play some relaxing music.", "I can't play music — I have no media tool available."),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci."),
    ("What's a good name for a golden retriever puppy?", "How about Sunny, Maple or Biscuit?"),
    ("Give me a motivational quote.", '"The secret of getting ahead is getting started." — Mark Twain'),
    (
        "Why is the sky blue?",
        "Sunlight scatters off air molecules, and shorter blue wavelengths "
        "scatter the most (Rayleigh scattering).",
    ),
    (
        "What year did the first moon landing happen?",
        "The first crewed moon landing was in 1969 (Apollo 11).",
    ),
    ("Translate 'good night' into French.", "'Good night' in French is \"bonne nuit\"."),
    (
        "Is a tomato a fruit or a vegetable?",
        "Botanically a tomato is a fruit, though it is cooked like a vegetable.",
    ),
    ("How many continents are there?", "There are seven continents."),
    (
        "Draft a one-line apology for missing a meeting.",
        "Sorry I missed today's meeting — could you share the notes so I can catch up?",
    ),
]

CHITCHAT = [
    ("Hi!", "Hello! How can I help you today?"),
    ("Hello there", "Hi! What can I do for you?"),
    ("Good morning!", "Good morning! What would you like to do?"),
    ("Thanks, that's all I needed.", "You're welcome! Let me know if anything else comes up."),
    ("thank you so much", "Happy to help!"),
    ("What can you do?", "{capabilities}"),
    ("What tools do you have?", "{capabilities}"),
    ("Who are you?", "I'm an assistant that can use a few tools to help with your requests."),
    ("How are you doing today?", "I'm doing well, thanks for asking! What can I help you with?"),
    ("ok cool", "Great! Tell me if you need anything else."),
    ("Never mind, forget it.", "No problem. I'm here if you need me."),
    ("Bye!", "Goodbye! Have a great day."),
    ("lol that's funny", "Glad it made you smile! Anything else I can do?"),
    ("Are you a robot?", "I'm an AI assistant. How can I help?"),
]


def fake_result(rng: random.Random, tool: ToolSpec, args: dict[str, Any]) -> tuple[str, str]:
    """A plausible tool result (the built-in tools' own text form; JSON for others) and a short final
    answer that uses it."""
    if coding_requests.covers(tool):  # the built-in tools' own text output, as the agent will see it
        return coding_requests.result(rng, tool.name, args)
    tp = task_phrase(tool)
    if tp.verb in ("calculate", "compute", "estimate", "count", "measure", "evaluate", "solve", "predict"):
        value = round(rng.uniform(1, 5000), rng.choice([0, 2]))
        value = int(value) if value == int(value) else value
        obj = tp.obj[0].upper() + tp.obj[1:] if tp.obj else "The result"
        return json.dumps({"result": value}), rng.choice(
            [f"The result is {value}.", f"{obj}: {value}.", f"It comes out to {value}."]
        )
    status = rng.choice(["success", "ok"])
    return json.dumps({"status": status, "data": {"summary": f"{tp.obj} ready"}}), rng.choice(
        [
            "Done. The request went through successfully.",
            f"All set — {tp.obj} is ready.",
            "That worked; the tool reported success.",
        ]
    )


def expand_caller_records(
    records: list[tuple[str, dict[str, Any]]], tools: list[ToolSpec], seed: int = 0
) -> list[Example]:
    """Caller-supplied examples: full ``{"messages", "tools"}`` lines pass through; ``{"request", "calls"}``
    pairs are validated against the tools and expanded with a shuffled tool set. ``where`` = file:line."""
    rng = random.Random(seed)
    by_name: dict[str, list[ToolSpec]] = {}
    for t in tools:
        by_name.setdefault(t.name, []).append(t)
    out: list[Example] = []
    for where, obj in records:
        if "messages" in obj:
            ex = example_from_record(obj, where)
            if not ex.tools:
                called = {c["name"] for c in ex.calls()}
                ex.tools = [by_name[n][0].to_openai() for n in called if n in by_name]
            ex.meta = ExampleMeta(kind="caller", source=where.rsplit(":", 1)[0], group=ex.content_hash()[:16])
            out.append(ex)
            continue
        req = obj.get("request")
        if not isinstance(req, str) or not req.strip():
            raise DataError(f"{where}: field 'request' must be a non-empty string")
        calls = obj.get("calls", [])
        if not isinstance(calls, list):
            raise DataError(f"{where}: field 'calls' must be a list of {{name, arguments}}")
        used: list[ToolSpec] = []
        pairs: list[tuple[str, dict[str, Any]]] = []
        for i, call in enumerate(calls):
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise DataError(f"{where}: calls[{i}].name must be a tool name")
            cands = by_name.get(call["name"])
            if not cands:
                raise DataError(
                    f"{where}: calls[{i}].name: unknown tool {call['name']!r}; known: "
                    f"{', '.join(sorted(by_name)[:20])}"
                )
            args = call.get("arguments", {})
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError as e:
                    raise DataError(f"{where}: calls[{i}].arguments is not valid JSON") from e
            if not isinstance(args, dict):
                raise DataError(f"{where}: calls[{i}].arguments must be an object")
            tool = next((t for t in cands if _validator(t).is_valid(args)), None)
            if tool is None:
                err = next(iter(sorted(_validator(cands[0]).iter_errors(args), key=lambda e: list(e.path))))
                field = ".".join(str(p) for p in err.absolute_path) or "(root)"
                raise DataError(f"{where}: calls[{i}].arguments.{field}: {err.message}")
            used.append(tool)
            pairs.append((tool.name, args))
        if pairs:
            msgs = [{"role": "user", "content": req}, call_message(pairs)]
        else:
            answer = obj.get("answer") or "None of the available tools can help with that request."
            msgs = [{"role": "user", "content": req}, {"role": "assistant", "content": str(answer)}]
        names = {t.name for t in used}
        pool = [t for t in tools if t.name not in names]
        chosen = list({t.name: t for t in used}.values()) + rng.sample(
            pool, min(len(pool), rng.randint(1, 4))
        )
        rng.shuffle(chosen)
        out.append(
            Example(
                messages=msgs,
                tools=[t.to_openai() for t in chosen],
                meta=ExampleMeta(
                    kind="caller", source=where.rsplit(":", 1)[0], group=normalize_text(req)[:40]
                ),
            )
        )
    return out


def example_key(ex: Example) -> str:
    """What makes two examples the same lesson: the user's words and the trained target."""
    return " | ".join(ex.user_texts()) + " => " + ex.target_text()


def generate_examples(
    tools: list[ToolSpec],
    config: GenerateConfig | None = None,
    *,
    caller: list[Example] | None = None,
    leak_index: LeakIndex | None = None,
    teacher: Teacher | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateResult:
    """Generate ``config.n`` examples (caller examples first), split per assistant turn, with near-
    duplicates and eval-leaked requests dropped and counted."""
    cfg = config or GenerateConfig()
    if not tools:
        raise DataError("no tools to generate examples for; pass --tools with at least one tool")
    unknown = [k for k in cfg.kinds if k not in GENERATED_KINDS]
    if unknown:
        raise DataError(f"unknown kind(s) {unknown}; choose from {', '.join(GENERATED_KINDS)}")
    t0 = time.perf_counter()
    gen = _Gen(tools, cfg, teacher)
    mix = cfg.mix or DEFAULT_MIX
    bad = sorted(set(mix) - set(GENERATED_KINDS))
    if bad:
        raise DataError(f"unknown kind(s) {bad} in mix; choose from {', '.join(GENERATED_KINDS)}")
    kinds = [k for k in cfg.kinds if mix.get(k, 0) > 0]
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
            system = {"role": "system", "content": cfg.system_prompt}
            pair = [ex.model_copy(update={"messages": [system, *ex.messages]}) for ex in pair]
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


def _lint_failure(name: str, report: Any) -> DataError:
    first = "; ".join(str(i) for i in report.errors[:3])
    return DataError(
        f"dataset {name!r} failed lint with {len(report.errors)} error(s), nothing was written: {first}"
    )


def generate_dataset(
    ws: Any,
    name: str,
    specs: list[str],
    config: GenerateConfig | None = None,
    *,
    model_path: Path | str | None = None,
    examples_file: Path | None = None,
    teacher: Teacher | None = None,
    bfcl_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, GenerateResult]:
    """Tool specs -> examples -> lint (with the model's template when given) -> immutable dataset.

    Returns ``(DatasetInfo, GenerateResult)``; nothing is written when lint finds errors.
    """
    from tooltune.training.dataset_store import DatasetMeta, save_dataset
    from tooltune.training.lint import lint_items
    from tooltune.training.tool_sources import load_tool_specs
    from tooltune.workspace import Workspace, validate_name

    cfg = config or GenerateConfig()
    ws = ws if isinstance(ws, Workspace) else Workspace(Path(ws))
    validate_name(name, "dataset name")
    if (ws.datasets / name).exists():
        from tooltune.errors import WorkspaceError

        raise WorkspaceError(
            f"dataset {name!r} already exists; datasets are immutable — choose another --out"
        )
    tools = load_tool_specs(specs)
    caller: list[Example] = []
    if examples_file is not None:
        from tooltune.training.examples import read_jsonl

        recs = [(f"{examples_file}:{i}", obj) for i, obj in read_jsonl(Path(examples_file))]
        caller = expand_caller_records(recs, tools, seed=cfg.seed)
    leak = LeakIndex.for_workspace(ws.root, bfcl_dir)
    result = generate_examples(tools, cfg, caller=caller, leak_index=leak, teacher=teacher, progress=progress)
    report = _lint_in_memory(result.examples, model_path=model_path, leak_index=leak, lint_items=lint_items)
    if not report.ok:
        raise _lint_failure(name, report)
    meta = DatasetMeta(
        sources=list(specs) + ([f"examples:{Path(examples_file).name}"] if examples_file else []),
        generator_version=GENERATOR_VERSION,
        seed=cfg.seed,
        kinds=list(cfg.kinds),
        stats={
            "counts": result.counts,
            "conversations": result.conversations,
            "dropped_duplicates": result.dropped_duplicates,
            "dropped_leaked": result.dropped_leaked,
            "dropped_unverifiable": result.dropped_unverifiable,
            "tools": len(tools),
            "teacher": (
                {
                    **result.teacher.model_dump(),
                    "model": teacher.model,
                    "share": cfg.teacher_share,
                    "no_call_share": (
                        cfg.teacher_share if cfg.teacher_no_call_share is None else cfg.teacher_no_call_share
                    ),
                    "tries": cfg.teacher_tries,
                    "prompt": TEACHER_PROMPT_VERSION,
                }
                if result.teacher and teacher
                else None
            ),
            "split_turns": cfg.split_turns,
            **({"phrasebook_share": cfg.phrasebook_share} if any(map(coding_requests.covers, tools)) else {}),
            # recorded only when used, so datasets made without twins keep their hashes
            **({"absent_tool_share": cfg.absent_tool_share} if cfg.absent_tool_share is not None else {}),
            **({"contrast_share": cfg.contrast_share} if cfg.contrast_share else {}),
            **(
                {"call_question_share": cfg.call_question_share}
                if cfg.call_question_share is not None
                else {}
            ),
            **(
                {"near_miss_contrast_share": cfg.near_miss_contrast_share}
                if cfg.near_miss_contrast_share
                else {}
            ),
        },
        lint=report,
    )
    return save_dataset(ws, name, result.examples, meta), result


def _lint_in_memory(
    examples: list[Example], *, model_path: Path | str | None, leak_index: LeakIndex | None, lint_items: Any
) -> Any:
    """Lint exactly the lines that will be written (one temp file), so the stored report is real."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tooltune-lint-") as tmp:
        f = Path(tmp) / "examples.jsonl"
        f.write_text("".join(ex.to_line() + "\n" for ex in examples), encoding="utf-8")
        report = lint_items([(f, "examples.jsonl")], model_path=model_path, leak_index=leak_index)
    if model_path is not None:
        report.model = Path(model_path).name
    return report


def import_dataset(
    ws: Any,
    name: str,
    file: Path,
    *,
    specs: list[str] | None = None,
    model_path: Path | str | None = None,
    split: bool = True,
    bfcl_dir: Path | None = None,
    seed: int = 0,
) -> Any:
    """Caller-written examples (full lines or request/calls pairs; pairs need ``specs``) -> lint -> dataset.
    Leaked or invalid examples are errors here: the caller should fix their file, not have it edited."""
    from tooltune.training.dataset_store import DatasetMeta, save_dataset
    from tooltune.training.examples import read_jsonl
    from tooltune.training.lint import lint_items
    from tooltune.training.tool_sources import load_tool_specs
    from tooltune.workspace import Workspace

    ws = ws if isinstance(ws, Workspace) else Workspace(Path(ws))
    tools = load_tool_specs(specs) if specs else []
    recs = [(f"{file}:{i}", obj) for i, obj in read_jsonl(Path(file))]
    if not recs:
        raise DataError(f"{file}: no examples in the file")
    if any("messages" not in obj for _, obj in recs) and not tools:
        raise DataError(f"{file}: request/calls pairs need tools; pass --tools")
    examples = expand_caller_records(recs, tools, seed=seed)
    # First lint the caller's lines where they stand, so errors name *their* file:line.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tooltune-import-") as tmp:
        src = Path(tmp) / Path(file).name
        lines = [""] * max(int(w.rsplit(":", 1)[1]) for w, _ in recs)
        for (w, _), ex in zip(recs, examples, strict=True):
            lines[int(w.rsplit(":", 1)[1]) - 1] = ex.to_line()
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        first = lint_items([(src, Path(file).name)], model_path=model_path, leak_index=None)
    if not first.ok:
        raise _lint_failure(name, first)
    if split:
        examples = [p for ex in examples for p in split_turns(ex)]
    leak = LeakIndex.for_workspace(ws.root, bfcl_dir)
    report = _lint_in_memory(examples, model_path=model_path, leak_index=leak, lint_items=lint_items)
    if not report.ok:
        raise _lint_failure(name, report)
    meta = DatasetMeta(
        sources=[f"import:{Path(file).name}", *(specs or [])],
        generator_version=GENERATOR_VERSION,
        seed=seed,
        kinds=["caller"],
        stats={"split_turns": split},
        lint=report,
    )
    return save_dataset(ws, name, examples, meta)
