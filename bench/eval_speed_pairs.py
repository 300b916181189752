"""The server layouts of bench/eval_speed.py, run again in alternating pairs on one suite, to tell a
layout's effect from the machine's drift between runs.

    python bench/eval_speed_pairs.py [--model qwen2.5-coder-0.5b-instruct] [--pairs 2] [--threads 2]
                                     [--concurrency 4] [--out bench/results/eval_speed_pairs.json]

Each pair runs the built-in coding-tools sample of eval_speed.py (2 cases per category) on a fresh
``mlx_lm.server`` with its default prompt processing (``new``) and with ``--prompt-concurrency 1``
(``new_prompt_1``: prompts one at a time, decoding batched), the order flipped every pair. Recorded per
run: wall seconds and whether the answers are the first run's, token for token.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import eval_speed  # noqa: E402

from tooltune.config import Settings  # noqa: E402
from tooltune.serving.server_flags import PROMPT_ONE_AT_A_TIME  # noqa: E402

from bench_common import machine_info, same_answers  # noqa: E402

LAYOUTS = {"new": [], "new_prompt_1": list(PROMPT_ONE_AT_A_TIME)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--coding-per-category", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval_speed_pairs.json")
    args = ap.parse_args(argv)
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")

    from tooltune.models.resolve import resolve_model
    from tooltune.workspace import Workspace, atomic_write_json

    root = Path(tempfile.mkdtemp(prefix="tooltune-eval-pairs-"))
    settings = Settings.load(workspace=root / "ws")
    ws = Workspace(settings.workspace).ensure()
    model = resolve_model(args.model, settings).path
    cases = {"coding_tools": eval_speed.suites(ws, 0, args.coding_per_category)["coding_tools"]}
    runs: list[dict] = []
    first: dict[str, str] | None = None
    for pair in range(args.pairs):
        order = list(LAYOUTS) if pair % 2 == 0 else list(reversed(LAYOUTS))
        for label in order:
            got = eval_speed.run_layout(
                settings, ws, model, args.threads, args.concurrency, cases, LAYOUTS[label]
            )["coding_tools"]
            if first is None:
                first = got["answers"]
            runs.append(
                {
                    "pair": pair,
                    "layout": label,
                    "server_args": LAYOUTS[label],
                    "cases": got["cases"],
                    "wall_s": got["wall_s"],
                    "same_answers_as_first": same_answers(first, got["answers"]),
                }
            )
            eval_speed.log(f"pair {pair}: {label} {got['wall_s']} s")
    walls = {label: [r["wall_s"] for r in runs if r["layout"] == label] for label in LAYOUTS}
    doc = {
        "benchmark": "eval_speed_pairs",
        "command": "python "
        + " ".join(["bench/eval_speed_pairs.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "model": str(model),
        "threads": args.threads,
        "concurrency": args.concurrency,
        "runs": runs,
        "wall_s": {
            label: {"min": min(w), "max": max(w), "mean": round(sum(w) / len(w), 1)}
            for label, w in walls.items()
        },
        "ratio_of_means": round(
            (sum(walls["new"]) / len(walls["new"]))
            / (sum(walls["new_prompt_1"]) / len(walls["new_prompt_1"])),
            3,
        ),
    }
    atomic_write_json(args.out, doc)
    eval_speed.log(f"wrote {args.out}: {doc['wall_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
