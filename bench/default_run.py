"""What `tooltune train` does by default, timed from a fresh workspace: where a default run's wall time
goes, and the share spent validating (issue 35's goal: at most 10%).

    python bench/default_run.py [--model qwen2.5-coder-0.5b-instruct] [--iters N] [--out FILE]

Runs the commands a user would, with nothing set but the model (and ``--iters`` when given; the default
run is 150 steps): ``tooltune data generate --tools builtin:coding --out D`` (the default dataset), then
``tooltune train --dataset D --model M``. Writes the run's own time split (steps, validation,
checkpoints; from its metrics.json), the wall time of each command, and both token rates.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import command_line, machine_info  # noqa: E402

GOAL_VALIDATION_SHARE = 0.10


def tooltune(workspace: Path, *args: str) -> float:
    """Run one `tooltune` command as a user would (stderr shown); its wall time in seconds."""
    cmd = [
        sys.executable,
        "-c",
        "from tooltune.cli import main; main()",
        *args,
        "--workspace",
        str(workspace),
    ]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--iters", type=int, default=None, help="default: what `tooltune train` does")
    ap.add_argument("--workspace", type=Path, default=None, help="default: a fresh temporary folder")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "default_run.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tooltune-default-run-") as tmp:
        ws = args.workspace or Path(tmp) / "ws"
        if ws.exists() and any(ws.iterdir()):
            raise SystemExit(f"{ws} is not empty: the bench times a fresh workspace's first dataset and run")
        generate_s = tooltune(ws, "data", "generate", "--tools", "builtin:coding", "--out", "default-data")
        train_args = ["train", "--dataset", "default-data", "--model", args.model]
        train_args += ["--iters", str(args.iters)] if args.iters else []
        train_s = tooltune(ws, *train_args)
        [run_dir] = [d for d in (ws / "runs").iterdir() if (d / "run.json").is_file()]
        config = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
    split = metrics["time"]
    share = round(split["validation_s"] / split["total_s"], 4)
    doc: dict[str, Any] = {
        "benchmark": "default_run",
        "command": command_line(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "model": args.model,
        "commands": [
            "tooltune data generate --tools builtin:coding --out default-data",
            "tooltune " + " ".join(train_args),
        ],
        "config": config,  # the run's config.json: every value, defaults resolved
        "wall_s": {"generate": generate_s, "train_command": train_s},
        "run_time_s": split,
        "validation_share_of_run": share,
        "processed_tokens_per_second": metrics.get("processed_tokens_per_second"),
        "loss_tokens_per_second": metrics.get("loss_tokens_per_second"),
        "goal": {"validation_share_at_most": GOAL_VALIDATION_SHARE, "met": share <= GOAL_VALIDATION_SHARE},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"validation_share_of_run": share, "run_time_s": split}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
