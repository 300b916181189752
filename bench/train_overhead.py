"""Overhead of `tooltune train` over the raw `mlx_lm.lora` CLI, same config, same OpenBLAS environment.

    python bench/train_overhead.py [--models tiny,qwen2.5-coder-0.5b-instruct] [--repeats 2] [--out FILE]

For each model both paths train the same LoRA config on the same 30-example tool-call dataset
(24 train / 6 valid), alternating raw / tooltune, ``--repeats`` times. Measured per attempt:
- wall time from launching the command to its exit (tooltune: the foreground CLI, which spawns the
  worker, lints the data, trains, checkpoints with optimizer state, plots, registers the adapter);
- s/iter over the second half of the run, from the modification times of the two checkpoints both
  paths write (iteration iters/2 and iters) — the same yardstick for both, no console parsing;
- peak RSS and CPU seconds of the process that trains (VmHWM, utime+stime polled from /proc; the
  tooltune CLI parent that only tails events is not counted, its wall time is).
Other engineers share the CPU, so the best attempt of each path is compared, and every attempt is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tooltune.config import Settings  # noqa: E402
from tooltune.models.resolve import read_config, resolve_model  # noqa: E402
from tooltune.serving.blas import blas_env, subprocess_env  # noqa: E402

TOOL = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file from the repository.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "File path"}},
            "required": ["path"],
        },
    },
}
PROMPTS = ["Read src/main.py", "Show me src/main.py please", "open the file src/main.py", "src/main.py?"]


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    call = {"type": "function", "function": {"name": "read_file", "arguments": {"path": "src/main.py"}}}
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": PROMPTS[i % 4]},
                    {"role": "assistant", "content": "", "tool_calls": [call]},
                ],
                "tools": [TOOL],
            }
        )
        for i in range(30)
    ]
    (folder / "train.jsonl").write_text("\n".join(lines[:24]) + "\n")
    (folder / "valid.jsonl").write_text("\n".join(lines[24:]) + "\n")
    return folder


def bench_config(n_layers: int, iters: int, big: bool) -> dict[str, Any]:
    """One config, expressed for both tools below (same values, each tool's spelling)."""
    return {
        "num_layers": min(16, n_layers),
        "rank": 8,
        "scale": 20.0,
        "dropout": 0.0,
        "batch_size": 1 if big else 2,
        "iters": iters,
        "learning_rate": 1e-4,
        "steps_per_report": 5,
        "steps_per_eval": iters,
        "val_batches": 2,
        "save_every": iters // 2,
        "max_seq_length": 512,
        "seed": 0,
    }


class ProcSampler:
    """Polls peak RSS (VmHWM) and CPU time (utime+stime) of the pid returned by ``find_pid``.

    CPU seconds are less sensitive than wall time to other jobs on a shared machine (they still grow a
    little under contention: cache misses, OpenBLAS spinning)."""

    def __init__(self, find_pid: Any) -> None:
        self.find_pid = find_pid
        self.peak_kb = 0
        self.cpu_ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pid = self.find_pid()
            if pid:
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    self.cpu_ticks = max(self.cpu_ticks, int(fields[11]) + int(fields[12]))
                except (OSError, IndexError, ValueError):
                    pass
            self._stop.wait(0.2)

    def stop(self) -> tuple[float, float]:
        """(peak RSS in GB, CPU seconds) of the sampled process."""
        self._stop.set()
        self._thread.join()
        return round(self.peak_kb / 1e6, 3), round(self.cpu_ticks / os.sysconf("SC_CLK_TCK"), 2)


def second_half_s_per_iter(ckpt_half: Path, ckpt_end: Path, iters: int) -> float | None:
    if not (ckpt_half.exists() and ckpt_end.exists()):
        return None
    return round((ckpt_end.stat().st_mtime - ckpt_half.stat().st_mtime) / (iters - iters // 2), 4)


def run_raw(model: Path, data: Path, cfg: dict[str, Any], work: Path, env: dict[str, str]) -> dict[str, Any]:
    adapters = work / "raw-adapters"
    yml = work / "raw.yaml"
    yml.write_text(
        yaml.safe_dump(
            {
                "model": str(model),
                "train": True,
                "data": str(data),
                "fine_tune_type": "lora",
                "adapter_path": str(adapters),
                "lora_parameters": {"rank": cfg["rank"], "scale": cfg["scale"], "dropout": cfg["dropout"]},
                **{k: cfg[k] for k in cfg if k not in ("rank", "scale", "dropout")},
            }
        )
    )
    cmd = [sys.executable, "-m", "mlx_lm", "lora", "-c", str(yml)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = ProcSampler(lambda: proc.pid)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    peak, cpu = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"mlx_lm.lora failed: {err.decode()[-2000:]}")
    it = cfg["iters"]
    return {
        "wall_s": round(wall, 3),
        "s_per_iter": second_half_s_per_iter(
            adapters / f"{it // 2:07d}_adapters.safetensors", adapters / f"{it:07d}_adapters.safetensors", it
        ),
        "peak_rss_gb": peak,
        "cpu_s": cpu,
        "command": " ".join(cmd[1:]),
    }


def run_tooltune(
    model: Path, data: Path, cfg: dict[str, Any], work: Path, env: dict[str, str]
) -> dict[str, Any]:
    ws = work / "ws"
    yml = work / "tooltune.yaml"
    yml.write_text(yaml.safe_dump({"model": str(model), "dataset": str(data), **cfg}))
    cmd = [sys.executable, "-c", "from tooltune.cli import main; main()", "train", "--config", str(yml)]
    env = {**env, "TOOLTUNE_HOME": str(ws)}

    def worker_pid() -> int | None:
        for f in (ws / "jobs").glob("*.json"):
            pid = json.loads(f.read_text()).get("pid")
            if pid:
                return int(pid)
        return None

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = ProcSampler(worker_pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    peak, cpu = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"tooltune train failed: {out.decode()[-1000:]} {err.decode()[-2000:]}")
    (run_dir,) = list((ws / "runs").glob("run-*"))
    it = cfg["iters"]
    ck = run_dir / "checkpoints"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "wall_s": round(wall, 3),
        "s_per_iter": second_half_s_per_iter(
            ck / f"{it // 2:07d}_state.json", ck / f"{it:07d}_state.json", it
        ),
        "peak_rss_gb": peak,
        "cpu_s": cpu,
        "mlx_s_per_iter": metrics.get("s_per_iter"),
        "first_train_loss": metrics.get("first_train_loss"),
        "last_train_loss": metrics.get("last_train_loss"),
        "command": "tooltune train --config tooltune.yaml",
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "mlx": version("mlx"),
        "mlx_lm": version("mlx-lm"),
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tiny-iters", type=int, default=40)
    ap.add_argument("--iters", type=int, default=20, help="iterations for real models")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_overhead.json")
    args = ap.parse_args()

    settings = Settings.load()
    blas = blas_env(settings.cache_dir, enabled=settings.use_openblas)
    env = subprocess_env(settings.cache_dir, enabled=settings.use_openblas)
    # results of models not measured in this invocation are kept from the existing file
    results: dict[str, dict[str, Any]] = {}
    if args.out.exists():
        for r in json.loads(args.out.read_text()).get("results", []):
            results[r["model"]] = r
    start = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}

    def write_report() -> None:
        report = {
            "benchmark": "tooltune train vs raw mlx_lm.lora, same config and OpenBLAS env",
            "command": "python bench/train_overhead.py " + " ".join(sys.argv[1:]),
            **start,
            "machine": {**start["machine"], "blas": blas.name, "load_average_now": os.getloadavg()},
            "method": (
                "alternating raw/tooltune, best of N attempts compared (the CPU is shared with other "
                "jobs, so single attempts are noisy); every attempt is listed; written after each attempt"
            ),
            "goal": "wall_ratio_best <= 1.05",
            "results": list(results.values()),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="tt-bench-train-") as tmp:
        tmpd = Path(tmp)
        data = write_dataset(tmpd / "data")
        for name in [m for m in args.models.split(",") if m]:
            if name == "tiny":
                from tooltune.testing.tiny_model import build

                model_path, big = build(tmpd / "tiny-qwen2"), False
            else:
                try:
                    model_path, big = resolve_model(name, settings, download=False).path, True
                except Exception as e:  # noqa: BLE001 — a missing model is skipped, and said so
                    results[name] = {"model": name, "skipped": str(e)}
                    print(f"skip {name}: {e}", file=sys.stderr)
                    continue
            n_layers = int(read_config(model_path)["num_hidden_layers"])
            cfg = bench_config(n_layers, args.iters if big else args.tiny_iters, big)
            attempts: dict[str, list[dict[str, Any]]] = {"raw": [], "tooltune": []}
            for r in range(args.repeats):
                for kind, fn in (("raw", run_raw), ("tooltune", run_tooltune)):
                    work = tmpd / f"{name}-{kind}-{r}"
                    work.mkdir()
                    res = fn(model_path, data, cfg, work, env)
                    res["load_average"] = os.getloadavg()[0]
                    attempts[kind].append(res)
                    print(f"{name} {kind} #{r}: {res}", file=sys.stderr)
                    results[name] = summarize(name, model_path, cfg, attempts)
                    write_report()
    write_report()
    keys = ("model", "wall_ratio_best", "s_per_iter_ratio_best", "cpu_ratio_best", "skipped")
    print(json.dumps([{k: r.get(k) for k in keys} for r in results.values()], indent=1))


def summarize(
    name: str, model_path: Path, cfg: dict[str, Any], attempts: dict[str, list[dict[str, Any]]]
) -> dict:
    out: dict[str, Any] = {
        "model": name,
        "model_path": str(model_path) if name != "tiny" else "tooltune.testing.tiny_model.build()",
        "config": cfg,
        "repeats_done": min(len(v) for v in attempts.values()),
        "attempts": attempts,
    }
    if not all(attempts.values()):
        return out
    best = {k: min(v, key=lambda a: a["wall_s"]) for k, v in attempts.items()}

    def ratio(key: str) -> float | None:
        vals = {k: [a[key] for a in v if a.get(key)] for k, v in attempts.items()}
        if not (vals["raw"] and vals["tooltune"]):
            return None
        return round(min(vals["tooltune"]) / min(vals["raw"]), 3)

    out.update(
        best=best,
        wall_ratio_best=ratio("wall_s"),
        s_per_iter_ratio_best=ratio("s_per_iter"),
        cpu_ratio_best=ratio("cpu_s"),
        peak_rss_gb={k: max(a["peak_rss_gb"] for a in v) for k, v in attempts.items()},
    )
    return out


if __name__ == "__main__":
    main()
