"""What drafting a phrasebook costs (issue 33): a model served by tooltune itself (``--teacher self``)
drafts one entry per tool of a tool set, as `tooltune data phrasebook draft` does, at each
``--concurrency`` level on a fresh server (so no level finds another's prompts in the cache).

    python bench/phrasebook_draft_cost.py --model qwen2.5-coder-1.5b-instruct --tools builtin:issue-tracker
        [--concurrency 8 1] [--limit-tools N] [--book-dir bench/phrasebooks] [--out FILE]

The result records per level: wall seconds, the tokens the server wrote (streamed pieces, about one
per token; a reply is cut off once it holds the tool's entry) and so tokens/s, drafts asked, what was
kept and dropped per tool, and the machine. With ``--book-dir`` the
first level's book is written there as ``<suite>.drafted.yaml`` (refused if one exists), with the
header `data phrasebook draft` writes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import command_line, machine_info, restart_with_blas  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def book_name(tools: str) -> str:
    """``builtin:issue-tracker`` -> ``issue_tracker`` (the file name bench/phrasebook_suites.py reads)."""
    return tools.split(":", 1)[-1].rsplit("/", 1)[-1].removesuffix(".json").replace("-", "_")


def keep_replies(teacher: Any, path: Path, concurrency: int) -> None:
    """Append each draft's reply to ``path`` (a JSON line: level, tool, seconds, text)."""
    chat = teacher.chat
    path.parent.mkdir(parents=True, exist_ok=True)

    def recorded(messages: list[dict[str, str]], **kw: Any) -> str:
        t0 = time.perf_counter()
        text = chat(messages, **kw)
        if kw.get("max_tokens") == 1:  # the warm-up of the shared prompt
            return text
        tool = messages[-1]["content"].rsplit("Write the JSON for ", 1)[-1].rstrip(".")
        line = {"concurrency": concurrency, "tool": tool, "seconds": round(time.perf_counter() - t0, 1),
                "text": text}  # fmt: skip
        with path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        return text

    teacher.chat = recorded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="cache name or MLX folder of the drafting model")
    ap.add_argument("--tools", required=True, help="tool source, as for data generate --tools")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 1])
    ap.add_argument("--limit-tools", type=int, default=None, help="draft only the first N tools")
    ap.add_argument("--tries", type=int, default=2)
    ap.add_argument(
        "--rounds", type=int, default=1, help="drafts merged per tool (data phrasebook draft --rounds)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--book-dir", type=Path, default=None)
    ap.add_argument(
        "--replies", type=Path, default=None, help="JSONL file for every reply (tool, tokens, text)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "phrasebook_draft_cost.json")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1 (got {args.rounds})")
    restart_with_blas()

    from tooltune.config import Settings
    from tooltune.data.phrasebook_draft import (
        DRAFT_PROMPT_VERSION,
        draft_with_teacher,
        drafted_header,
        phrasebook_yaml,
    )
    from tooltune.data.teacher import SELF, open_teacher
    from tooltune.data.tool_sources import load_tool_specs
    from tooltune.models.resolve import resolve_model
    from tooltune.workspace import atomic_write_text

    book_path = (args.book_dir / f"{book_name(args.tools)}.drafted.yaml").resolve() if args.book_dir else None
    if book_path is not None and book_path.exists():
        raise SystemExit(f"{book_path} exists; move it away first")
    tmp = tempfile.TemporaryDirectory()
    settings = Settings.load(workspace=Path(tmp.name))
    model_path = resolve_model(args.model, settings).path
    specs = load_tool_specs([args.tools])[: args.limit_tools]
    levels: list[dict[str, Any]] = []
    for i, concurrency in enumerate(args.concurrency):
        with open_teacher(SELF, model_path=model_path, settings=settings) as teacher:
            assert teacher is not None
            if args.replies is not None:
                keep_replies(teacher, args.replies, concurrency)
            t0 = time.perf_counter()
            book, stats = draft_with_teacher(
                teacher, specs, name=book_name(args.tools) + ".drafted", tries=args.tries,
                seed=args.seed, concurrency=concurrency, rounds=args.rounds,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            written = teacher.completion_tokens
        levels.append({
            "concurrency": concurrency,
            "rounds": args.rounds,
            "seconds": round(wall, 1),
            "tools": len(specs),
            "drafts_asked": sum(t.tries for t in stats.tools),
            "completion_tokens": written,
            "completion_tokens_per_second": round(written / wall, 2),
            "tools_with_entries": len(book.tools),
            "request_templates_kept": stats.kept_requests,
            "entries_dropped": stats.dropped,
            "per_tool": [t.model_dump() for t in stats.tools],
        })  # fmt: skip
        print(json.dumps({k: v for k, v in levels[-1].items() if k != "per_tool"}), flush=True)
        if i == 0 and book_path is not None:
            header = drafted_header(
                f"{model_path.name} (served by tooltune, --teacher self)",
                wall,
                concurrency,
                args.tools,
                f"{book_path.name} --tools {args.tools}",
                args.rounds,
            )
            atomic_write_text(book_path, phrasebook_yaml(book, header))
    result = {
        "command": command_line(),
        "model": model_path.name,
        "tools": args.tools,
        "draft_prompt_version": DRAFT_PROMPT_VERSION,
        "levels": levels,
        # a book outside the repository (a lent machine's folder) is named by its absolute path: copied
        # into the repository, the result is pointed at the copy
        "book": (str(book_path.relative_to(REPO)) if book_path.is_relative_to(REPO) else str(book_path))
        if book_path
        else None,
        "machine": machine_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
