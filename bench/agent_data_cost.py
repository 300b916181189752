"""What a training step costs on the agent's data with every tool offered (issue 34, T4) against the data
with a drawn few (T2/T3): the same mix (the coding tools' data, trajectories 40%), generator seed 0,
a few steps of the default recipe each, on this machine.

    python bench/agent_data_cost.py [--model qwen2.5-coder-0.5b-instruct] [--iters 10]
        [--out bench/results/agent_data_cost.json]

``drawn``: each example offers a few tools, shuffled (the default), max_seq_length 1024; ``all``:
``offer_all_tools``, every tool in the agent's order, max_seq_length 2048 (its examples reach ~1,450
tokens). The result records per side the seconds a step, the tokens processed a second, the examples'
token lengths, and the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from onpolicy_cost import train_and_wait  # noqa: E402

from tooltune.workspace import atomic_write_json  # noqa: E402

from bench_common import command_line, machine_info, restart_with_blas  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIDES = {"drawn": (False, 1024), "all": (True, 2048)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="cache name or MLX folder (default: the default model)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--trajectory-share", type=float, default=0.4)
    ap.add_argument(
        "--lengths",
        type=int,
        nargs=2,
        default=[SIDES["drawn"][1], SIDES["all"][1]],
        metavar=("DRAWN", "ALL"),
        help="max_seq_length of each side (default 1024 2048: what the 0.5B's tokenizer needs)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "agent_data_cost.json")
    args = ap.parse_args()
    restart_with_blas()

    from mlx_lm.utils import load_tokenizer

    from tooltune.config import Settings
    from tooltune.data.datasets import generate_dataset
    from tooltune.data.examples import example_from_record, read_jsonl
    from tooltune.data.generate_config import DEFAULT_MIX, GenerateConfig
    from tooltune.models.resolve import resolve_model
    from tooltune.training.train_config import TrainConfig
    from tooltune.workspace import Workspace

    tmp = tempfile.TemporaryDirectory()
    settings = Settings.load(workspace=Path(tmp.name))
    ws = Workspace(settings.workspace).ensure()
    model = resolve_model(args.model or settings.default_model, settings).path
    tokenizer = load_tokenizer(model)
    share = args.trajectory_share
    mix = {**{k: v * (1 - share) for k, v in DEFAULT_MIX.items()}, "trajectory": share}
    sides: dict[str, Any] = {}
    for (side, (offer_all, _)), length in zip(SIDES.items(), args.lengths, strict=True):
        gen = GenerateConfig(n=500, seed=0, mix=mix, system_prompt="agent", offer_all_tools=offer_all)
        generate_dataset(ws, side, ["builtin:coding"], gen, model_path=model)
        lengths = sorted(
            len(tokenizer.apply_chat_template(ex.messages, tools=ex.tools, tokenize=True))
            for ex in (
                example_from_record(obj, f"train.jsonl:{i}")
                for i, obj in read_jsonl(ws.dataset_dir(side) / "train.jsonl")
            )
        )
        cfg = TrainConfig(
            model=str(model), dataset=side, iters=args.iters, max_seq_length=length,
            steps_per_report=max(1, args.iters // 2), steps_per_eval=10**6, val_batches=1, seed=0,
        )  # fmt: skip
        job, _run, metrics, _wall = train_and_wait(settings, ws, cfg, side)
        sides[side] = {
            "offer_all_tools": offer_all,
            "max_seq_length": length,
            "status": job.status,
            "error": job.error,
            "s_per_step": metrics.get("s_per_iter"),
            "processed_tokens_per_second": metrics.get("processed_tokens_per_second"),
            "time": metrics.get("time"),
            "example_tokens": {
                "median": lengths[len(lengths) // 2],
                "max": lengths[-1],
                "over_max_seq_length": sum(n > length for n in lengths),
                "examples": len(lengths),
            },
        }
    ratio = None
    if sides["drawn"]["s_per_step"] and sides["all"]["s_per_step"]:
        ratio = round(sides["all"]["s_per_step"] / sides["drawn"]["s_per_step"], 2)
    out = {
        "benchmark": "agent_data_cost",
        "command": command_line(),
        "machine": machine_info(),
        "model": model.name,
        "iters": args.iters,
        "trajectory_share": share,
        "sides": sides,
        "step_cost_ratio_all_to_drawn": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}: a step costs {ratio}x with every tool offered", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
