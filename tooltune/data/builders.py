"""The example builders: one method per kind of example (a single call, a choice among distractors,
parallel calls, chains over tool results, answers from a result, no-call refusals and near misses)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
from collections.abc import Iterable
from typing import Any

from tooltune.data import coding_chat, coding_requests
from tooltune.data.books import CODING_BOOK, Book
from tooltune.data.canned_text import CHITCHAT, GENERAL_QA, REFUSALS, fake_result
from tooltune.data.examples import Example, ExampleMeta, call_message
from tooltune.data.generate_config import GenerateConfig
from tooltune.data.near_miss import NEAR_MISS_ANSWERS, sibling_task, tool_covers
from tooltune.data.phrasing import (
    Several,
    clause,
    forms_in,
    mentions_all,
    multi_request,
    request_text,
    roles_swapped,
    task_phrase,
)
from tooltune.data.samplers import sample_value, words_of
from tooltune.data.similarity import normalize_text
from tooltune.data.teacher import Teacher
from tooltune.toolspec import ToolSpec


class ExampleBuilder:
    """State of one generation run: the pool, the rng, validators."""

    def __init__(
        self,
        tools: list[ToolSpec],
        cfg: GenerateConfig,
        teacher: Teacher | None,
        books: list[Book] | None = None,
    ) -> None:
        self.tools = tools
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.teacher = teacher
        self.validators = {id(t): t.validator() for t in tools}
        self.unverifiable = 0
        self._twin: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._taught = False
        # the agent's own tools get their phrasebook kinds; checked without a draw, so others' data stays
        self.has_book = any(coding_requests.covers(t) for t in tools)
        # a phrasebook file's books come first: a user's book may phrase a built-in tool their own way
        self.books: list[Book] = [*(books or []), CODING_BOOK]
        # tools whose phrasebook file has near misses; none for BFCL or the coding tools (no draw there)
        self.near_tools = [t for t in tools if self.book_of(t) not in (None, CODING_BOOK)]
        self._weights: list[float] | None = None  # each tool's odds under tool_odds="intents"

    def book_of(self, tool: ToolSpec) -> Book | None:
        """The phrasebook that phrases ``tool``, if any."""
        return next((b for b in self.books if b.covers(tool)), None)

    def result_of(self, tool: ToolSpec, args: dict[str, Any]) -> tuple[str, str]:
        """A tool result and an answer using it: in the book's shape when it gives one."""
        book = self.book_of(tool)
        got = book.result(self.rng, tool.name, args) if book is not None else None
        return got if got is not None else fake_result(self.rng, tool, args)

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

    def offer(self, drawn: list[ToolSpec], allowed: list[ToolSpec] | None = None) -> list[ToolSpec]:
        """The tools an example offers: ``drawn`` as it was drawn, or with ``offer_all_tools`` every tool of
        ``allowed`` (default: the whole set) and the drawn ones, in the tool set's order (an agent sends
        its tools in one order, every time)."""
        if not self.cfg.offer_all_tools:
            return drawn
        keep = {t.name for t in (self.tools if allowed is None else allowed)} | {t.name for t in drawn}
        own = {t.name: t for t in drawn}  # a set may hold two specs of one name: offer the drawn one, once
        out: list[ToolSpec] = []
        for t in self.tools:
            if t.name in keep and t.name not in {o.name for o in out}:
                out.append(own.get(t.name, t))
        return out

    def tool_set(self, must: list[ToolSpec], extra: int) -> list[dict[str, Any]]:
        """``must`` plus up to ``extra`` distractors (never a second tool with the same name), shuffled;
        with ``offer_all_tools``, the whole set in its order."""
        if self.cfg.offer_all_tools:
            return [t.to_openai() for t in self.offer(must)]
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
        """The tool a request asks for: evenly, or by ``tool_odds="intents"`` (one draw either way)."""
        weights = self._intent_weights() if self.cfg.tool_odds == "intents" else None
        if weights is None or len(set(weights)) == 1:
            return self.rng.choice(self.tools)  # the stream every dataset before tool_odds was made with
        return self.rng.choices(self.tools, weights=weights)[0]

    def _intent_weights(self) -> list[float]:
        if self._weights is None:
            known: dict[int, float] = {}
            for t in self.tools:
                n = book.intents(t.name) if (book := self.book_of(t)) is not None else None
                if n is not None:
                    known[id(t)] = math.sqrt(n)
            rest = sum(known.values()) / len(known) if known else 1.0
            self._weights = [known.get(id(t), rest) for t in self.tools]
        return self._weights

    # --- kinds -----------------------------------------------------------------------------------
    def natural(self, tool: ToolSpec) -> bool:
        """Ask for this tool in a developer's words? Draws only for phrasebook tools, so datasets of
        other tools stay what they were."""
        return self.book_of(tool) is not None and self.rng.random() < self.cfg.phrasebook_share

    def book_request(self, tool: ToolSpec, *, polish: bool = True) -> tuple[str, dict[str, Any]] | None:
        book = self.book_of(tool)
        got = book.request(self.rng, tool.name, polish=polish) if book is not None else None
        if got is None:
            self.unverifiable += 1
            return None
        text, args = got
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
        book = self.book_of(base)
        assert book is not None
        paired = book.pair(rng, base.name) if same else None
        if paired is not None:
            text, arg_list = paired
            calls = [(base, a) for a in arg_list]
        else:
            others = [t for t in self.tools if self.book_of(t) is book and t.name != base.name]
            if not others:
                return None
            # a quarter ask three tools at once ("git status, the diff and the tests")
            picked = [base, *rng.sample(others, min(len(others), 2 if rng.random() < 0.25 else 1))]
            asked = [(t, self.book_request(t, polish=False)) for t in picked]
            # join() puts a multi-line request (file content) last: order the calls as the text reads
            order = sorted(((t, r) for t, r in asked if r is not None), key=lambda p: "\n" in p[1][0])
            joined = book.join(rng, [text for _, (text, _) in order])
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
        result, answer = self.result_of(tool, fn["arguments"])
        return [
            *msgs,
            {"role": "tool", "name": tool.name, "content": result},
            {"role": "assistant", "content": answer},
        ]

    def multi_chain(self) -> list[dict[str, Any]] | None:
        rng = self.rng
        a = self.pick()
        if self.natural(a):
            book = self.book_of(a)
            assert book is not None
            got = self.follow_up(book)
            if got is not None or book is CODING_BOOK:
                return got
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
        res_a, _ = self.result_of(a, args_a)
        res_b, answer = self.result_of(b, args_b)
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

    def follow_up(self, book: Book) -> list[dict[str, Any]] | None:
        """A second request that points into the first call's result ("open the second one"): the model
        must take the value from the tool's output, as the agent does in a session."""
        fu = book.follow_up(self.rng)
        if fu is None:
            return None
        calls, results, asks = fu
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

    def trajectory(self) -> list[dict[str, Any]] | None:
        """A whole job from one request: each call chosen from the previous result, then an answer from
        what came back (the coding tools' ``recorded_jobs``, a phrasebook's ``jobs``)."""
        books = [b for b in self.books if any(b.covers(t) for t in self.tools)]
        if not books:
            return None
        book = books[0] if len(books) == 1 else self.rng.choice(books)
        job = book.job(self.rng)
        if job is None:
            return None
        by_name = {t.name: t for t in self.tools}
        if any(n not in by_name or not self.validators[id(by_name[n])].is_valid(a) for n, a, _ in job.steps):
            self.unverifiable += 1
            return None
        msgs: list[dict[str, Any]] = [{"role": "user", "content": job.request}]
        for name, args, result in job.steps:
            msgs += [call_message([(name, args)]), {"role": "tool", "name": name, "content": result}]
        msgs.append({"role": "assistant", "content": job.answer})
        uniq = list({n: by_name[n] for n, _, _ in job.steps}.values())
        self._tools = self.tool_set(uniq, self.rng.choice([0, 1, 2]))
        return msgs

    def no_call(self) -> list[dict[str, Any]] | None:
        """A request for a tool that is *not* offered (the rest of the set is unrelated), or a general
        question no tool serves: answered in plain text."""
        rng = self.rng
        target = self.pick()
        unrelated = [t for t in self.tools if not related_tools(t, target)]
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
            if self.cfg.offer_all_tools:  # every tool that could not do the refused job (no shell)
                verb = task_phrase(target).verb
                unrelated = [t for t in unrelated if not tool_covers(t, verb)]
                offered = self.offer([t for t in offered if t in unrelated], allowed=unrelated)
                if not offered:
                    return None
            self._tools = [t.to_openai() for t in offered]
            task = task_phrase(target).imperative()
            answer = rng.choice(REFUSALS).format(task=task)
            # drawn only when asked for, so datasets made without twins stay the same
            if self.cfg.contrast_share > 0 and rng.random() < self.cfg.contrast_share:
                with_target = [*offered[: self.cfg.max_tools - 1], target]
                rng.shuffle(with_target)
                with_target = self.offer(with_target, allowed=[*unrelated, target])
                self._twin = (
                    [{"role": "user", "content": text}, call_message([(target.name, args)])],
                    [t.to_openai() for t in with_target],
                )
            return [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        offered = rng.sample(self.tools, min(len(self.tools), rng.randint(1, min(4, self.cfg.max_tools))))
        offered = self.offer(offered)
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
        if self.near_tools and rng.random() < 0.7:
            got = self.book_near_miss()
            if got is not None:
                return got
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
            if not related_tools(t, tool) and not tool_covers(t, new_word) and t.name != tool.name
        ]
        n_others = min(len(others), rng.randint(0, max(0, self.cfg.max_tools - 1)))
        offered = [tool, *rng.sample(others, n_others)]
        rng.shuffle(offered)
        offered = self.offer(offered, allowed=[tool, *others])
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

    def book_near_miss(self) -> list[dict[str, Any]] | None:
        """A phrasebook's own near miss ("close the sprint" when the tracker only edits issues), with its
        tool offered among tools that do not serve it either."""
        rng = self.rng
        tool = rng.choice(self.near_tools)
        book = self.book_of(tool)
        got = book.near_miss(rng, tool) if book is not None else None
        if got is None:
            return None
        text, answer = got
        others = [t for t in self.tools if t.name != tool.name]
        offered = [
            tool,
            *rng.sample(others, min(len(others), rng.randint(0, max(0, self.cfg.max_tools - 1)))),
        ]
        rng.shuffle(offered)
        offered = self.offer(offered)  # a book's near miss is one no tool of its set serves
        self._tools = [t.to_openai() for t in offered]
        return [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]

    def chitchat(self) -> list[dict[str, Any]] | None:
        rng = self.rng
        drawn = rng.sample(self.tools, min(len(self.tools), rng.randint(1, min(4, self.cfg.max_tools))))
        offered = self.offer(drawn)
        self._tools = [t.to_openai() for t in offered]
        q, a = rng.choice(CHITCHAT)
        if a == "{capabilities}":  # a few of what it can do, as drawn (not always the set's first three)
            tasks = [task_phrase(t).imperative() for t in drawn[:3]]
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
        for book in self.books:  # a book that says dates relative to a today draws it per conversation
            book.new_conversation(self.rng)
        msgs = getattr(self, kind)()
        if msgs is None:
            return None
        for book in self.books:  # ... and then states that today in a system line
            msgs = book.finish(self.rng, msgs)
            if self._twin is not None:
                self._twin = (book.finish(self.rng, self._twin[0]), self._twin[1])
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


def related_tools(a: ToolSpec, b: ToolSpec) -> bool:
    """Could ``a`` plausibly serve a request meant for ``b``? Then it must not be offered as "no fit"."""
    if a.name == b.name:
        return True
    wa, wb = _tool_words(a), _tool_words(b)
    if not wa or not wb:
        return False
    return len(wa & wb) / min(len(wa), len(wb)) > 0.25
