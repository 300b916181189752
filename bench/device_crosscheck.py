"""Do two MLX backends (or dtypes, or batch layouts) give the same verdicts on the same BFCL cases?

    python bench/device_crosscheck.py --run cpu-f32=WS/reports/RUN/cases.jsonl \\
        --run gpu-f32=WS2/reports/RUN/cases.jsonl [--run ...] [--out bench/results/device_crosscheck.json]

Each ``--run`` names one eval run's per-case records (``cases.jsonl``, as tooltune's runner writes
them); several files may be given for one label, joined by commas (a suite's categories run apart).
The first label is the reference; every other run is compared with it on the cases both hold: the native
and the lenient verdict, and whether the answer (its text and native calls) is the same token for token.
The runs are made elsewhere (``bench/bfcl_baseline.py --concurrency 1`` on each machine, temperature 0);
this script only reads their records, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tooltune.evals.results import CaseResult
from tooltune.evals.runner import load_results
from tooltune.workspace import atomic_write_json


def read_run(spec: str) -> tuple[str, dict[str, CaseResult]]:
    label, sep, paths = spec.partition("=")
    if not sep or not label or not paths:
        raise SystemExit(f"--run {spec!r}: expected LABEL=PATH[,PATH...]")
    cases: dict[str, CaseResult] = {}
    for path in paths.split(","):
        p = Path(path)
        if not p.is_file():
            raise SystemExit(f"--run {label}: {p} is not a file")
        for r in load_results(p):
            if r.repeat == 0:
                cases[r.case_id] = r
    return label, cases


def answer(r: CaseResult) -> str:
    return r.answer_text(limit=400)


def compare(ref: dict[str, CaseResult], other: dict[str, CaseResult]) -> dict[str, Any]:
    shared = sorted(set(ref) & set(other))
    diffs: list[dict[str, Any]] = []
    same_native = same_lenient = same_answer = 0
    for cid in shared:
        a, b = ref[cid], other[cid]
        n_ok = a.native.passed == b.native.passed
        l_ok = a.lenient.passed == b.lenient.passed
        text_ok = answer(a) == answer(b)
        same_native += n_ok
        same_lenient += l_ok
        same_answer += text_ok
        if not (n_ok and l_ok and text_ok):
            diffs.append(
                {
                    "case": cid,
                    "verdict_changed": not (n_ok and l_ok),
                    "reference": {
                        "native": a.native.passed,
                        "lenient": a.lenient.passed,
                        "answer": answer(a),
                    },
                    "other": {"native": b.native.passed, "lenient": b.lenient.passed, "answer": answer(b)},
                }
            )
    n = len(shared)
    return {
        "cases": n,
        "same_native_verdict": same_native,
        "same_lenient_verdict": same_lenient,
        "same_answer": same_answer,
        "native_pass": {
            "reference": sum(ref[c].native.passed for c in shared),
            "other": sum(other[c].native.passed for c in shared),
        },
        "lenient_pass": {
            "reference": sum(ref[c].lenient.passed for c in shared),
            "other": sum(other[c].lenient.passed for c in shared),
        },
        "differences": diffs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=PATH[,PATH...]")
    ap.add_argument("--notes", default="")
    ap.add_argument("--out", type=Path, default=Path("bench/results/device_crosscheck.json"))
    args = ap.parse_args(argv)
    if len(args.run) < 2:
        ap.error("give at least two --run")
    runs = [read_run(spec) for spec in args.run]
    ref_label, ref = runs[0]
    doc = {
        "benchmark": "device_crosscheck",
        "command": "python " + " ".join(["bench/device_crosscheck.py", *(argv or sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "reference": ref_label,
        "comparisons": {label: compare(ref, cases) for label, cases in runs[1:]},
        "notes": args.notes,
    }
    atomic_write_json(args.out, doc)
    for label, c in doc["comparisons"].items():
        print(
            f"{ref_label} vs {label}: {c['cases']} cases, same native verdict {c['same_native_verdict']}, "
            f"same lenient verdict {c['same_lenient_verdict']}, same answer {c['same_answer']}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
