"""The built-in coding phrasebook as a file against the code it copies (issue 33), request by request.

``bench/phrasebooks/coding.book.yaml`` holds the single-call requests, parallels and polish words of
``tooltune/data/coding_requests.py`` (values read from it, templates copied). Both generate the same
kinds of examples for ``builtin:coding`` with the same config and seeds; the draws differ (the file goes
through the phrasebook filler, with its own random stream), so the datasets are compared by what they
hold, not byte by byte:

  - per tool: its share of the calls, the argument sets its calls use (``path`` alone, ``path`` with
    ``start_line`` and ``end_line``...), the distinct request texts, mean words per request;
  - overlap: the share of one side's request templates (texts before polish, each argument's value
    put back as its slot) that the other side also wrote, from ``--per-tool`` requests a tool each;
  - parallel requests per tool (how many come out of as many tries, how many call three times), the
    total-variation distances between the two sides' template odds and argument-set odds.

    python bench/coding_book_parity.py [--n 600] [--seeds 0 1 2] [--per-tool 400] [--out FILE]

No model is needed: generation only.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tooltune.data import coding_requests  # noqa: E402
from tooltune.data.books import CODING_BOOK  # noqa: E402
from tooltune.data.generate import generate_examples  # noqa: E402
from tooltune.data.generate_config import GenerateConfig  # noqa: E402
from tooltune.data.phrasebook import load_phrasebook  # noqa: E402
from tooltune.data.phrasebook_check import check_phrasebook  # noqa: E402
from tooltune.data.phrasebook_fill import DataBook  # noqa: E402
from tooltune.data.tool_sources import load_tool_specs  # noqa: E402
from tooltune.workspace import atomic_write_json  # noqa: E402

from bench_common import command_line, machine_info  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "bench" / "phrasebooks" / "coding.book.yaml"
KINDS = ["single", "choose", "parallel", "edge_args"]


def calls_of(examples: list[Any]) -> list[tuple[str, str, frozenset[str]]]:
    """Each call a dataset trains: (tool, the user message before it, its argument names)."""
    out = []
    for ex in examples:
        msgs = ex.messages
        for i, m in enumerate(msgs[1:], start=1):
            for c in m.get("tool_calls") or []:
                f = c["function"]
                user = next((p["content"] for p in reversed(msgs[:i]) if p["role"] == "user"), "")
                out.append((f["name"], user, frozenset(f["arguments"])))
    return out


def profile(examples: list[Any]) -> dict[str, Any]:
    calls = calls_of(examples)
    per_tool: dict[str, list[tuple[str, frozenset[str]]]] = defaultdict(list)
    for name, text, keys in calls:
        per_tool[name].append((text, keys))
    return {
        "examples": len(examples),
        "calls": len(calls),
        "tools": {
            name: {
                "share": round(len(rows) / len(calls), 3),
                "argument_sets": {
                    "+".join(sorted(k)) or "(none)": round(n / len(rows), 3)
                    for k, n in Counter(keys for _, keys in rows).most_common()
                },
                "distinct_requests": len({t for t, _ in rows}),
                "mean_words": round(sum(len(t.split()) for t, _ in rows) / len(rows), 1),
            }
            for name, rows in sorted(per_tool.items())
        },
    }


def skeleton(text: str, args: dict[str, Any]) -> str:
    """The request with each argument's value put back as its slot ("open {path}"), quotes and backticks
    the file's filler may add around a value taken off, so templates compare, not drawn values."""
    out = text
    for key, value in sorted(args.items(), key=lambda kv: -len(json.dumps(kv[1]))):
        written = " ".join(value) if isinstance(value, list) else str(value)
        for quoted in (f"`{written}`", f'"{written}"', f"'{written}'", written):
            if written and quoted in out:
                out = out.replace(quoted, "{" + key + "}")
                break
    return out


def distance(a: Counter[Any], b: Counter[Any]) -> float:
    """Total-variation distance between two counts' distributions (0: the same odds, 1: nothing shared),
    summed exactly (``fsum``: a set's order changes with the hash seed, and a plain float sum with it)."""
    na, nb = sum(a.values()), sum(b.values())
    return round(math.fsum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b)) / 2, 3) if na and nb else 1.0


def overlap(book: DataBook, per_tool: int, seed: int) -> dict[str, Any]:
    """Per tool, from ``per_tool`` unpolished requests and parallel requests of each side: the share of
    each side's templates (request skeletons, :func:`skeleton`) the other side also wrote, a few the other
    never did, and the total-variation distances between the two sides' template odds and argument-set
    odds; of the parallel requests, how many came out and how many call three times."""
    out: dict[str, Any] = {}
    for name in coding_requests.CALLS:
        rng_code, rng_file = random.Random(seed), random.Random(seed)
        code_rows = [coding_requests.request(rng_code, name, polish=False) for _ in range(per_tool)]
        file_rows = [got for _ in range(per_tool) if (got := book.request(rng_file, name, polish=False))]
        code_t = Counter(skeleton(*r) for r in code_rows)
        file_t = Counter(skeleton(*r) for r in file_rows)
        code_pairs = [p for _ in range(per_tool) if (p := coding_requests.pair(rng_code, name))]
        file_pairs = [p for _ in range(per_tool) if (p := book.pair(rng_file, name))]
        out[name] = {
            "code_templates": len(code_t),
            "file_templates": len(file_t),
            "file_in_code": round(len(set(file_t) & set(code_t)) / len(file_t), 3) if file_t else None,
            "code_in_file": round(len(set(code_t) & set(file_t)) / len(code_t), 3) if code_t else None,
            "template_distance": distance(code_t, file_t),
            "argument_set_distance": distance(
                Counter(frozenset(a) for _, a in code_rows), Counter(frozenset(a) for _, a in file_rows)
            ),
            "only_code": sorted(set(code_t) - set(file_t))[:4],
            "only_file": sorted(set(file_t) - set(code_t))[:4],
            "parallel": {
                side: {
                    "made": len(pairs),
                    "three_calls": round(sum(len(c) == 3 for _, c in pairs) / len(pairs), 3)
                    if pairs
                    else None,
                }
                for side, pairs in (("code", code_pairs), ("file", file_pairs))
            },
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-tool", type=int, default=400)
    ap.add_argument("--book", type=Path, default=BOOK)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "coding_book_parity.json")
    args = ap.parse_args(argv)
    tools = load_tool_specs(["builtin:coding"])
    checked = check_phrasebook(load_phrasebook(args.book), tools)
    book = DataBook(checked, tools)
    runs = []
    for seed in args.seeds:
        cfg = GenerateConfig(n=args.n, seed=seed, kinds=KINDS, phrasebook_share=1.0)
        code = generate_examples(tools, cfg)
        filed = generate_examples(tools, cfg, books=[book])
        runs.append({"seed": seed, "code": profile(code.examples), "file": profile(filed.examples)})
    result = {
        "benchmark": "coding_book_parity",
        "command": command_line(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "book": str(args.book.relative_to(REPO)) if args.book.is_relative_to(REPO) else str(args.book),
        "book_issues": [str(i) for i in checked.issues],
        "kinds": KINDS,
        "n": args.n,
        "runs": runs,
        "overlap": overlap(book, args.per_tool, args.seeds[0]),
        "code_book_is": type(CODING_BOOK).__name__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result["overlap"], indent=1)[:3000])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
