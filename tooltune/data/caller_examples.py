"""Examples the caller writes: full chat lines pass through, request/calls pairs are checked against the
tools and expanded with a shuffled tool set."""

from __future__ import annotations

import json
import random
from typing import Any

from tooltune.data.examples import DataError, Example, ExampleMeta, call_message, example_from_record
from tooltune.data.similarity import normalize_text
from tooltune.toolspec import ToolSpec


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
            tool = next((t for t in cands if t.validator().is_valid(args)), None)
            if tool is None:
                err = next(iter(sorted(cands[0].validator().iter_errors(args), key=lambda e: list(e.path))))
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
