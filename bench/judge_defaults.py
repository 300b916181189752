"""Recorded on-policy answers judged again by today's judge of generated truth (issue 36).

The judge (``tooltune.data.onpolicy.example_case``) once counted an optional parameter the generated
truth leaves out as ``extra_param`` even at the default its schema states; BFCL's possible answers accept
such a default. This re-judges answers an eval run recorded (its ``cases.jsonl``: the raw text and the
native calls) against the examples they answered, and says for each recorded ``extra_param`` whether
the filled parameter is at its stated default (``tooltune.toolspec.stated_defaults``).

    python bench/judge_defaults.py --examples bench/results/judge_defaults_cpu/examples.jsonl \\
        --cases bench/results/judge_defaults_cpu/cases.jsonl --bfcl ../shared/bench/bfcl \\
        --out bench/results/judge_defaults_cpu.json

``examples.jsonl`` holds the sampled split's examples in order (case ``train-<i>`` answered line i+1).
No model runs: the answers are the recorded ones.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tooltune.data.examples import example_from_record
from tooltune.data.onpolicy import SAMPLER_VERSION, example_case
from tooltune.evals.results import CaseResult
from tooltune.evals.scoring import check_value, score_case
from tooltune.toolspec import ToolSpec, stated_defaults
from tooltune.workspace import atomic_write_json

from bench_common import machine_info

_EXTRA = re.compile(r"^(?P<tool>.*?): unexpected parameter '(?P<param>.+)'$")


def _same(value: Any, defaults: list[Any], schema: Any) -> bool:
    """``value`` is one of ``defaults`` as the scorer reads an argument against its allowed answers."""
    return check_value("", "", schema, value, defaults).passed


def extra_param_kind(example: Any, result: CaseResult) -> str:
    """What a recorded ``extra_param`` filled: ``at_stated_default``, ``other_value`` (the schema states a
    default, the answer gives another value) or ``no_stated_default``."""
    m = _EXTRA.match(result.native.detail)
    if m is None:
        return "unreadable"
    specs = {s.name: s for s in (ToolSpec.from_openai(t) for t in example.tools)}
    spec = specs.get(m["tool"])
    call = next((c for c in result.lenient_calls if c.name == m["tool"]), None)
    if spec is None or call is None or m["param"] not in spec.properties:
        return "not_in_schema"
    defaults = stated_defaults(spec.properties[m["param"]])
    if not defaults:
        return "no_stated_default"
    value = call.arguments.get(m["param"])
    return "at_stated_default" if _same(value, defaults, spec.properties[m["param"]]) else "other_value"


def rejudge(examples: list[Any], results: list[CaseResult]) -> dict[str, Any]:
    recorded: Counter[str] = Counter()
    now: Counter[str] = Counter()
    flips: Counter[str] = Counter()
    extra: Counter[str] = Counter()
    extra_now: Counter[str] = Counter()
    for r in results:
        ex = examples[int(r.case_id.rsplit("-", 1)[1])]
        verdict = score_case(
            example_case(ex, r.case_id), r.native_calls, r.raw_text, dropped_call=r.dropped_call
        )
        before, after = r.native.reason or "right", verdict.native.reason or "right"
        recorded[before] += 1
        now[after] += 1
        if before != after:
            flips[f"{before} -> {after}"] += 1
        if before == "extra_param":
            kind = extra_param_kind(ex, r)
            extra[kind] += 1
            extra_now[f"{kind}: {after}"] += 1
    return {
        "answers": len(results),
        "recorded": dict(recorded.most_common()),
        "now": dict(now.most_common()),
        "changed": dict(flips.most_common()),
        "recorded_extra_param": dict(extra.most_common()),
        "recorded_extra_param_now": dict(sorted(extra_now.items())),
    }


def bfcl_agreement(
    bfcl: Path, categories: tuple[str, ...] = ("simple_python", "multiple", "parallel")
) -> dict[str, Any]:
    """How the defaults read from BFCL's function schemas compare with BFCL's possible answers, for every
    optional parameter an answer lists as "" (may be left out) beside values: ``agree`` (a value read is one
    of them), ``differ`` (the answer wants another value, mostly one the question asks for) or ``missed``
    (none read). Only the function schemas and the possible answers are read, never the questions."""
    counts: Counter[str] = Counter()
    differ: list[dict[str, Any]] = []
    for category in categories:
        functions = {}
        for line in (bfcl / f"BFCL_v4_{category}.json").read_text("utf-8").splitlines():
            row = json.loads(line)
            functions[row["id"]] = {f["name"]: ToolSpec.from_openai(f) for f in row["function"]}
        for line in (bfcl / "possible_answer" / f"BFCL_v4_{category}.json").read_text("utf-8").splitlines():
            row = json.loads(line)
            for answer in row["ground_truth"]:
                for name, params in answer.items():
                    spec = functions[row["id"]].get(name)
                    for param, allowed in params.items():
                        values = [a for a in allowed if a != ""]
                        if spec is None or param in spec.required or "" not in allowed or not values:
                            continue
                        read = stated_defaults(spec.properties.get(param))
                        kind = (
                            "missed"
                            if not read
                            else "agree"
                            if any(_same(v, read, spec.properties.get(param)) for v in values)
                            else "differ"
                        )
                        counts[kind] += 1
                        if kind == "differ" and len(differ) < 10:
                            differ.append({"parameter": f"{name}.{param}", "read": read, "answer": values})
    return {"categories": list(categories), **dict(counts.most_common()), "differ_examples": differ}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=Path, required=True, help="the sampled split's examples, in order")
    ap.add_argument("--cases", type=Path, required=True, help="the eval run's cases.jsonl")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--bfcl", type=Path, default=None, help="BFCL folder: also compare the defaults read with its answers"
    )
    ap.add_argument("--notes", default="")
    args = ap.parse_args()
    lines = args.examples.read_text("utf-8").splitlines()
    examples = [
        example_from_record(json.loads(line), f"{args.examples}:{i}") for i, line in enumerate(lines, 1)
    ]
    results = [CaseResult.model_validate_json(line) for line in args.cases.read_text("utf-8").splitlines()]
    out = {
        "benchmark": "judge_defaults",
        "command": "python bench/judge_defaults.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "judge": SAMPLER_VERSION,
        **rejudge(examples, results),
        **({"bfcl_defaults": bfcl_agreement(args.bfcl)} if args.bfcl else {}),
        "notes": args.notes,
    }
    atomic_write_json(args.out, out)
    print(json.dumps({k: out[k] for k in ("recorded", "now", "recorded_extra_param")}))


if __name__ == "__main__":
    main()
