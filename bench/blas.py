"""BLAS benchmark: the same float32 model with and without the OpenBLAS preload.

Each mode runs in a fresh subprocess whose environment comes from ``tooltune.serving.blas.subprocess_env``
(exactly what the model server and training worker get). The child measures a 2048² float32 matmul
(GFLOPS) and prompt / generation tokens per second with ``mlx_lm.stream_generate`` on varied prompts (no
prompt-cache hits). The CPU is shared with other jobs, so every number is the best of ``--runs`` tries.

    python bench/blas.py                      # imported demo model, else a synthetic 0.5B-shaped model
    python bench/blas.py --model PATH --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "blas.json"
WORDS = (
    "read write list search file path module function class test import return value error config "
    "server client request response token model adapter dataset train eval report cache"
).split()


# --- child: runs inside the subprocess with (or without) the preload ----------------------------------


def _blas_in_process() -> str:
    maps = Path("/proc/self/maps")
    if maps.exists() and "libopenblas" in maps.read_text():
        return "openblas"
    return "reference" if sys.platform.startswith("linux") else "platform"


def _matmul_gflops(runs: int, n: int = 2048) -> list[float]:
    import mlx.core as mx

    a = mx.random.normal((n, n), dtype=mx.float32)
    b = mx.random.normal((n, n), dtype=mx.float32)
    mx.eval(a @ b)  # warm-up
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        mx.eval(a @ b)
        out.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return out


def _prompt(i: int, n_words: int) -> str:
    words = [WORDS[(i * 7 + j * 3 + j * j) % len(WORDS)] for j in range(n_words)]
    return f"Run {i}: explain briefly: " + " ".join(words)


def child(args: argparse.Namespace) -> None:
    import mlx.core as mx
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    result: dict = {
        "blas_loaded": _blas_in_process(),
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    result["matmul_gflops"] = _matmul_gflops(args.runs)
    model, tokenizer = load(args.model)
    mx.eval(model.parameters())
    runs = []
    for i in range(args.runs + 1):  # run 0 warms up
        prompt = tokenizer.encode(_prompt(i, args.prompt_words))
        responses = stream_generate(
            model, tokenizer, prompt, max_tokens=args.gen_tokens, sampler=make_sampler(temp=0.0)
        )
        last = None
        for last in responses:  # noqa: B007 - only the final response carries the totals
            pass
        assert last is not None
        if i > 0:
            runs.append(
                {
                    "prompt_tokens": last.prompt_tokens,
                    "prompt_tps": last.prompt_tps,
                    "generation_tokens": last.generation_tokens,
                    "generation_tps": last.generation_tps,
                    "peak_memory_gb": last.peak_memory,
                }
            )
    result["runs"] = runs
    print(json.dumps(result))


# --- parent: picks the model, runs both modes, writes the JSON -----------------------------------------


def _model(args: argparse.Namespace, tmp: Path) -> tuple[str, dict]:
    from tooltune.config import Settings
    from tooltune.errors import ModelNotFoundError
    from tooltune.models.resolve import resolve_model

    settings = Settings.load()
    try:
        path = resolve_model(args.model or settings.default_model, settings, download=False).path
        config = json.loads((path / "config.json").read_text())
        if config.get("quantization") or config.get("torch_dtype", "float32") != "float32":
            raise SystemExit(f"{path} is not a float32 model; the BLAS benchmark needs float32 weights")
        return str(path), {
            "path": str(path),
            "synthetic": False,
            "dtype": "float32",
            "model_type": config.get("model_type"),
        }
    except ModelNotFoundError:
        if args.model:
            raise
    from tooltune.testing.tiny_model import build

    path = build(
        tmp / "synthetic-0.5b",
        hidden_size=896,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        intermediate_size=4864,
    )
    return str(path), {
        "path": None,
        "synthetic": True,
        "dtype": "float32",
        "note": "random weights, 0.5B layer shapes, tiny vocabulary",
    }


def _best(values: list[float]) -> float:
    return round(max(values), 2)


def _summary(raw: dict) -> dict:
    runs = raw["runs"]
    return {
        "blas_loaded": raw["blas_loaded"],
        "openblas_threads": raw["openblas_threads"],
        "matmul_2048_gflops": _best(raw["matmul_gflops"]),
        "prompt_tps": _best([r["prompt_tps"] for r in runs]),
        "generation_tps": _best([r["generation_tps"] for r in runs]),
        "prompt_tokens": runs[0]["prompt_tokens"],
        "generation_tokens": runs[0]["generation_tokens"],
        "peak_memory_gb": round(max(r["peak_memory_gb"] for r in runs), 2),
        "all_runs": {
            "matmul_gflops": [round(x, 2) for x in raw["matmul_gflops"]],
            "prompt_tps": [round(r["prompt_tps"], 2) for r in runs],
            "generation_tps": [round(r["generation_tps"], 2) for r in runs],
        },
    }


def parent(args: argparse.Namespace) -> None:
    from tooltune.config import Settings
    from tooltune.serving.blas import THREADS_ENV, subprocess_env

    settings = Settings.load()
    if args.threads:
        os.environ[THREADS_ENV] = str(args.threads)  # read by blas_env for the child's OPENBLAS_NUM_THREADS
    with tempfile.TemporaryDirectory() as tmp:
        model_path, model_info = _model(args, Path(tmp))
        results = {}
        load_before = os.getloadavg()
        for mode in ("openblas", "reference"):
            env = subprocess_env(settings.cache_dir, enabled=mode == "openblas")
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--model",
                model_path,
                "--runs",
                str(args.runs),
                "--prompt-words",
                str(args.prompt_words),
                "--gen-tokens",
                str(args.gen_tokens),
            ]
            t = time.time()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
            if proc.returncode != 0:
                raise SystemExit(f"{mode} child failed:\n{proc.stderr[-3000:]}")
            results[mode] = _summary(json.loads(proc.stdout.strip().splitlines()[-1]))
            results[mode]["wall_s"] = round(time.time() - t, 1)
            print(f"{mode}: {json.dumps(results[mode])}", file=sys.stderr)
    o, r = results["openblas"], results["reference"]
    report = {
        "command": "python " + " ".join([str(Path(sys.argv[0]).resolve().relative_to(ROOT))] + sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "mlx": version("mlx"),
            "mlx-lm": version("mlx-lm"),
            "cmeel-openblas": version("cmeel-openblas"),
            "openblas_kernels": _openblas_kernels(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "model": model_info,
        "method": (
            "each mode in a fresh subprocess (env from tooltune.serving.blas.subprocess_env, "
            f"enabled=True/False); every number is the best of {args.runs} runs (one warm-up run discarded) "
            "because the 2 CPU cores are shared with other jobs; prompts vary per run (no prompt-cache "
            "hits); "
            f"greedy decoding, {args.gen_tokens} generated tokens; OpenBLAS threads: "
            f"{args.threads or 'one per CPU (tooltune default)'}"
        ),
        "results": results,
        "ratio_openblas_over_reference": {
            "matmul_2048": round(o["matmul_2048_gflops"] / r["matmul_2048_gflops"], 1),
            "prompt_tps": round(o["prompt_tps"] / r["prompt_tps"], 1),
            "generation_tps": round(o["generation_tps"] / r["generation_tps"], 1),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from tooltune.workspace import atomic_write_json

    atomic_write_json(args.out, report)
    print(json.dumps(report["ratio_openblas_over_reference"]))


def _openblas_kernels() -> str | None:
    """The kernel family the preloaded OpenBLAS runs on this CPU (from tooltune's pre-preload check)."""
    from tooltune.config import Settings
    from tooltune.serving.blas import CHECK_FILE, BlasCheck

    path = Settings.load().cache_dir / CHECK_FILE
    return BlasCheck.model_validate_json(path.read_text()).core if path.exists() else None


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="float32 MLX model (default: the imported demo model, else synthetic)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--prompt-words", type=int, default=40)
    p.add_argument("--gen-tokens", type=int, default=16)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OPENBLAS_NUM_THREADS for the preload run (default 1: spinning BLAS threads collapse on shared "
        "cores; 0 = tooltune's default, one per CPU)",
    )
    p.add_argument("--timeout", type=int, default=3600)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
