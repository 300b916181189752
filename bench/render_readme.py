"""Regenerate README.md's "Results" section and bench/RESULTS.md from bench/results/*.json (the numbers
are never typed by hand).

README gets a few headline rows (HEADLINE) and a summary over every result; bench/RESULTS.md gets the
table of every BFCL attempt, the base models, the baseline, the platform numbers and each attempt's
details (per-suite table, training, notes, goals, diagnosis).

Usage: python bench/render_readme.py [--check]   (--check: exit 1 if either file is out of date)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"
DETAILS = REPO / "bench" / "RESULTS.md"


def _load(name: str) -> dict[str, Any] | None:
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def _pct(passed: int, n: int) -> str:
    return f"{passed}/{n} ({passed / n:.0%})" if n else "–"


def wilson(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a pass rate (sound at n = 40, unlike the normal approximation)."""
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _pct_ci(passed: int, n: int) -> str:
    """``31/40 (78%, 62–88%)``: the count, the rate and its 95% interval."""
    if not n:
        return "–"
    lo, hi = wilson(passed, n)
    return f"{passed}/{n} ({passed / n:.0%}, {lo:.0%}–{hi:.0%})"


def _link(name: str) -> str:
    return f"[`{name}`](bench/results/{name})"


def _goals(category: str, goals: dict[str, Any]) -> str:
    names = {
        "category_native": f"{category} native",
        "irrelevance_any_call_counted": "irrelevance with any call attempt counted",
    }
    parts = []
    for key, label in names.items():
        g = goals.get(key)
        if g:
            verdict = "met" if g["met"] else f"**missed** by {g['missed_by']:.0%}"
            parts.append(f"{label} ≥ {g['goal']:.0%}: {g['measured']:.0%}, {verdict}")
    return "Goals: " + "; ".join(parts) + "."


TEXT_KINDS = ("no_call", "near_miss", "chitchat")  # example kinds answered in text, without a call


def _mix(d: dict[str, Any]) -> dict[str, float]:
    if isinstance(d.get("data", {}).get("mix"), dict):
        return d["data"]["mix"]
    m = re.search(r"--mix (\{.*?\})", d.get("command", ""))
    return json.loads(m.group(1)) if m else {}


def _model_size(path: str) -> str:
    """ "0.5B" for .../qwen2.5-coder-0.5b-instruct; the folder name when it names no size."""
    name = Path(path).name
    m = re.search(r"(\d+(?:\.\d+)?)b\b", name.lower())
    return f"{m.group(1)}B" if m else name


def attempts() -> list[str]:
    """One row per BFCL adapter result: the recipe that varied and both goal numbers side by side."""
    rows = [
        "**All BFCL adapter attempts** (40 held-out questions each; irrelevance counts any call attempt, "
        "native or written as text, as a call):",
        "",
        "| result | model | category | generator | iterations | lr | rank × layers | data & training seed | "
        "text-answer share of the mix | text answers generated | category native (baseline → adapter) | "
        "irrelevance (baseline → adapter) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in sorted(RESULTS.glob("bfcl_adapter_*.json")):
        d = json.loads(p.read_text())
        cfg = d.get("train", {}).get("config") or {}
        mix = _mix(d)
        share = sum(mix.get(k, 0) for k in TEXT_KINDS) / (sum(mix.values()) or 1)
        kinds = d["data"].get("kinds") or {}  # what the generator produced (drafts it dropped are not here)
        made = f"{sum(kinds.get(k, 0) for k in TEXT_KINDS) / sum(kinds.values()):.1%}" if kinds else "–"
        cat, irr = d["results"][d["category"]], d["results"].get("irrelevance")
        native = f"{_pct(cat['baseline']['overall']['native_pass'], cat['baseline']['overall']['n'])} → " + (
            f"**{_pct(cat['adapter']['overall']['native_pass'], cat['adapter']['overall']['n'])}**"
        )
        irr_cell = (
            f"{_pct(irr['baseline']['overall']['lenient_pass'], irr['baseline']['overall']['n'])} → "
            f"**{_pct(irr['adapter']['overall']['lenient_pass'], irr['adapter']['overall']['n'])}**"
            if irr
            else "–"
        )
        average = _combination(d)
        generators = list(dict.fromkeys(m["data"].get("generator") for m in d.get("members", [])))
        generator = (
            " + ".join(generators) if len(generators) > 1 else d["data"].get("generator", "tooltune-data/1")
        )
        rows.append(
            f"| {_link(p.name)} | {_model_size(d['model'])} | {d['category']}{_sample(d)} | {generator}"
            f"{_data_options(d['data'])}{_value_weight(cfg)}{average}{_call_bias(d)} | "
            f"{cfg.get('iters', '?')} | {cfg.get('learning_rate', '?'):g} | "
            f"{cfg.get('rank', '?')} × {cfg.get('num_layers', '?')} | {cfg.get('seed', '?')} | {share:.0%} | {made} | "
            f"{native} | {irr_cell} |"
        )
    return [*rows, ""]


def _value_weight(cfg: dict[str, Any]) -> str:
    """The loss weights of argument values and of the call decision, and the values' anchor to the base
    model, when an attempt changed them (training/value_tokens.py, training/losses.py)."""
    w, d = cfg.get("value_loss_weight", 1), cfg.get("decision_loss_weight", 1)
    a = cfg.get("anchor_loss_weight", 0)
    return (
        (f" + value tokens weighted {w:g}" if w != 1 else "")
        + (f" + decision token weighted {d:g}" if d != 1 else "")
        + (f" + values anchored to the base model (KL × {a:g})" if a else "")
    )


def _call_bias(d: dict[str, Any]) -> str:
    """The logit bias on the tool-call token the adapter was evaluated with (bfcl_adapter.py --call-bias)."""
    bias = _bias(d)
    return f" + evaluated with `<tool_call>` logit {bias:+g}" if bias else ""


def _bias(d: dict[str, Any]) -> float | None:
    return (d.get("call_bias") or {}).get("bias")


def _combination(d: dict[str, Any]) -> str:
    """How the tested adapter was built from trained runs: their average, and its strength when not 1."""
    n, strength = len(d.get("members") or []), (d.get("train") or {}).get("strength", 1)
    at = f" at strength {strength:g}" if strength != 1 else ""
    if n > 1:
        return f" (average of {n} runs{at})"
    return f" (one run{at})" if at else ""


def _sample(d: dict[str, Any]) -> str:
    """Which seeded sample of questions an attempt was scored on, when not the usual one (seed 0)."""
    seed = (d.get("eval_sample") or {}).get("seed", 0)
    return f" (question sample {seed})" if seed else ""


def _data_options(data: dict[str, Any]) -> str:
    """The generator options an attempt used beyond its version (none for most)."""
    parts = []
    if data.get("contrast_share"):
        parts.append(f"contrast twins {data['contrast_share']:g}")
    if data.get("near_miss_contrast_share"):
        parts.append(f"near-miss twins {data['near_miss_contrast_share']:g}")
    if data.get("call_question_share") is not None:
        parts.append(f"calls asked as questions {data['call_question_share']:g}")
    if data.get("teacher"):
        t = data["teacher"]
        tries = t.get("tries", 1)
        no_call = t.get("no_call_share", t["share"])  # recorded apart since the split shares
        split = f" (text answers {no_call:g})" if no_call != t["share"] else ""
        parts.append(f"self-teacher {t['share']:g}{split}" + (f" ×{tries}" if tries > 1 else ""))
    return "".join(f" + {p}" for p in parts)


def details() -> list[str]:
    """Each attempt's per-suite table, training, notes, goals and diagnosis."""
    out: list[str] = []
    for p in sorted(RESULTS.glob("bfcl_adapter_*.json")):
        d = json.loads(p.read_text())
        cat = d["category"]
        cfg = d.get("train", {}).get("config") or {}
        recipe = (
            f" {cfg['iters']} iterations, rank {cfg['rank']}, {cfg['num_layers']} layers, lr {cfg['learning_rate']:g}."
            if cfg
            else ""
        )
        out += [
            f"**BFCL {cat}: baseline vs LoRA adapter trained on data generated from the function schemas "
            f"only** ({d['date'][:10]}, {_link(p.name)}).{recipe} Model {Path(d['model']).name}, float32, "
            f"temperature 0; seeded sample of held-out questions{_sample(d) or ' (sample 0)'}."
            + (f" The adapter's requests add {b:+g} to the `<tool_call>` logit." if (b := _bias(d)) else ""),
            "",
            "| suite | cases | baseline native | adapter native | baseline lenient | adapter lenient | "
            "McNemar p (native) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key, r in d["results"].items():
            b, a = r["baseline"]["overall"], r["adapter"]["overall"]
            mc = r["comparison"]["mcnemar_native"]["p_value"]
            out.append(
                f"| {key} | {a['n']} | {_pct(b['native_pass'], b['n'])} | **{_pct(a['native_pass'], a['n'])}** | "
                f"{_pct(b['lenient_pass'], b['n'])} | {_pct(a['lenient_pass'], a['n'])} | {mc:.2g} |"
            )
        train = d.get("train", {})
        metrics = train.get("metrics") or {}
        wall = metrics.get("wall_seconds") or metrics.get("train_seconds") or metrics.get("wall_s")
        out += [
            "",
            "For `irrelevance` (correct = no call), *native* counts only the server's `tool_calls`, *lenient* "
            "counts any call attempt, including one written as text — the number to trust there.",
            f"Training: dataset `{d['data']['name']}` ({sum(d['data']['counts'].values())} examples, "
            f"{d['data'].get('dropped_leaked', 0)} dropped as near eval questions), adapter `{train.get('adapter')}`"
            + (f", {wall:.0f} s of training" if isinstance(wall, int | float) else "")
            + f"; total wall time {d['total_wall_s'] / 60:.0f} min.",
        ]
        if d.get("members"):
            out.append(_members(d))
        if d.get("notes"):
            # markers like <tool_call> would be read as HTML tags and vanish from the rendered page
            out.append("Notes: " + d["notes"].replace("<", "&lt;").replace(">", "&gt;"))
        if isinstance(d.get("goals"), dict):
            out.append(_goals(cat, d["goals"]))
        elif d.get("goals"):
            out.append(f"Goals: {d['goals']}")
        if d.get("diagnosis"):
            out.append(f"Diagnosis: {d['diagnosis']}")
        out.append("")
    return out


def _members(d: dict[str, Any]) -> str:
    """How each averaged run scored alone on the same questions, and what the average changed."""
    strength = (d.get("train") or {}).get("strength", 1)
    tested = (
        "average" if strength == 1 else f"{'average' if len(d['members']) > 1 else 'adapter'} at {strength:g}"
    )
    runs = "Averaged runs" if len(d["members"]) > 1 else "The run at full strength"
    parts = []
    for key, r in d["results"].items():
        for m, seed in zip(r.get("members", []), d["members"], strict=True):
            o = m["adapter"]["overall"]
            passed = o["lenient_pass"] if key == "irrelevance" else o["native_pass"]
            mc = m["comparison_with_average"]["mcnemar_native" if key != "irrelevance" else "mcnemar_lenient"]
            borrowed = f" (from {seed['from_result']})" if seed.get("from_result") else ""
            parts.append(
                f"{key} {seed['data'].get('generator')} seed {seed['train_seed']}{borrowed} alone {_pct(passed, o['n'])} "
                f"(the {tested} fixes {mc['fixes']}, breaks {mc['regressions']})"
            )
    return f"{runs} (each alone, same questions): " + "; ".join(parts) + "."


def baseline() -> list[str]:
    d = _load("bfcl_baseline.json")
    if not d:
        return []
    rows = [
        f"**BFCL baseline** (no adapter, {d['date'][:10]}, {_link('bfcl_baseline.json')}):",
        "",
        "| category | cases | native | lenient |",
        "|---|---:|---:|---:|",
    ]
    for cat, r in d["results"].items():
        rows.append(
            f"| {cat} | {r['n']} | {_pct(r['native_pass'], r['n'])} | {_pct(r['lenient_pass'], r['n'])} |"
        )
    return [*rows, ""]


def base_models() -> list[str]:
    """How well each base model writes the right call in its own format: what format training keeps at best."""
    d = _load("bfcl_base_models.json")
    if not d:
        return []
    q = d["question_sample"]
    rows = [
        f"**Base models, no adapter** ({d['machine']['date'][:10]}, {_link('bfcl_base_models.json')}; the "
        f"attempts' question sample {q['seed']}, temperature 0). *Lenient* on {q['suites'][0]} is the argument "
        "skill an adapter starts from; on irrelevance it counts questions answered without any call attempt:",
        "",
        "| model | " + " | ".join(f"{s} native | {s} lenient" for s in q["suites"]) + " |",
        "|---|" + "---:|---:|" * len(q["suites"]),
    ]
    for name, r in d["models"].items():
        cells = []
        for suite in q["suites"]:
            o = r[suite]
            cells += [_pct(o["native_pass"], o["n"]), _pct(o["lenient_pass"], o["n"])]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*rows, ""]


def platform() -> list[str]:
    out: list[str] = [
        "**Platform benchmarks** (2 shared CPU cores; other jobs ran at the same time, see each file):",
        "",
    ]
    b = _load("blas.json")
    if b:
        r = b["ratio_openblas_over_reference"]
        o = b["results"]["openblas"]
        out.append(
            f"- OpenBLAS preload vs MLX's reference BLAS ({_link('blas.json')}): matmul {r['matmul_2048']}×, "
            f"prompt {r['prompt_tps']}× ({o['prompt_tps']} tok/s), generation {r['generation_tps']}× "
            f"({o['generation_tps']} tok/s) on the 0.5B float32 model."
        )
    s = _load("switch.json")
    if s:
        for run in s["runs"]:
            med = {x["strategy"]: x["median_switch_s"] for x in run["results"]}
            out.append(
                f"- Adapter switch, {run['model']} ({_link('switch.json')}): per-request {med.get('per_request')} s, "
                f"restart {med.get('restart')} s (median incl. verification) → default `{run['faster']}`."
            )
    t = _load("eval_throughput.json")
    if t:
        lv = t["levels"]
        out.append(
            f"- Eval throughput, 0.5B ({_link('eval_throughput.json')}): "
            + ", ".join(f"concurrency {k}: {v['cases_per_min']} cases/min" for k, v in lv.items())
            + f" (speed-up {max(t['speedup_vs_1'].values())}×; prompt processing of ~570-token tool prompts "
            "does not batch on 2 cores)."
        )
    o = _load("train_overhead.json")
    if o:
        for r in o["results"]:
            best = r.get("best", {})
            if "raw" in best and "tooltune" in best:
                c = r.get("config") or {}
                out.append(
                    f"- Training overhead, {r['model']} ({_link('train_overhead.json')}; batch "
                    f"{c.get('batch_size', '?')}, {c.get('num_layers', '?')} layers, sequences ≤ "
                    f"{c.get('max_seq_length', '?')} tokens): raw `mlx_lm lora` "
                    f"{best['raw']['s_per_iter']:.2f} s/iter vs `tooltune train` {best['tooltune']['s_per_iter']:.2f} "
                    f"s/iter (wall ratio {best['tooltune']['wall_s'] / best['raw']['wall_s']:.2f}×), peak RSS "
                    f"{best['tooltune']['peak_rss_gb']} GB."
                )
    return [*out, ""]


# The README's rows: the 0.5B's best pair (native with irrelevance), the larger model, and the best native
# of each other category tried.
HEADLINE = (
    ("bfcl_adapter_simple_python_v3_i300.json", "best 0.5B pair, attempt 8"),
    ("bfcl_adapter_simple_python_1.5b_v10_i150_vw0.3.json", "attempt 31"),
    ("bfcl_adapter_parallel.json", ""),
    ("bfcl_adapter_multiple_v4.json", ""),
)
# One recipe trained with three data and training seeds: how far seeds alone move native.
SEED_SPREAD = (
    "bfcl_adapter_simple_python_v3_i300.json",
    "bfcl_adapter_simple_python_v3_i300_t1.json",
    "bfcl_adapter_simple_python_v3_i300_t2.json",
)


def _native(d: dict[str, Any], who: str, mode: str = "native_pass") -> tuple[int, int]:
    o = d["results"][d["category"]][who]["overall"]
    return o[mode], o["n"]


def headline_table() -> list[str]:
    rows = [
        "| BFCL category | model | native calls: base → adapter | base model, call written as text | "
        "irrelevance, no call attempt: base → adapter | result |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, label in HEADLINE:
        d = _load(name)
        if not d:
            continue
        irr = d["results"].get("irrelevance")
        irr_cell = (
            f"{_pct_ci(irr['baseline']['overall']['lenient_pass'], irr['baseline']['overall']['n'])} → "
            f"**{_pct_ci(irr['adapter']['overall']['lenient_pass'], irr['adapter']['overall']['n'])}**"
            if irr
            else "–"
        )
        rows.append(
            f"| {d['category']}{f' ({label})' if label else ''} | {_model_size(d['model'])} | {_pct_ci(*_native(d, 'baseline'))} → "
            f"**{_pct_ci(*_native(d, 'adapter'))}** | {_pct_ci(*_native(d, 'baseline', 'lenient_pass'))} | "
            f"{irr_cell} | {_link(name)} |"
        )
    return rows


def summary() -> list[str]:
    """What every result says together: goals met, the best native, the spread from seeds alone."""
    results = {p.name: json.loads(p.read_text()) for p in sorted(RESULTS.glob("bfcl_adapter_*.json"))}
    if not results:
        return []
    goals = [d["goals"] for d in results.values() if isinstance(d.get("goals"), dict)]
    native_met = sum(g["category_native"]["met"] for g in goals)
    irr_met = sum(bool(g.get("irrelevance_any_call_counted", {}).get("met")) for g in goals)
    best = max(results, key=lambda n: _native(results[n], "adapter")[0] / _native(results[n], "adapter")[1])
    models = sorted({_model_size(d["model"]) for d in results.values()})
    out = [
        f"All {len(results)} BFCL result files ({', '.join(models)}; some score one adapter on another "
        f"question sample): the native goal (≥ 90%) is met by "
        f"{native_met or 'none'}; the best native is {_pct(*_native(results[best], 'adapter'))} "
        f"({_link(best)}). The irrelevance goal (≥ 85%, any call attempt counted as a call) is met by "
        f"{irr_met}."
    ]
    spread = [results[n] for n in SEED_SPREAD if n in results]
    if len(spread) > 1:
        seeds = ", ".join(str(d["train"]["config"]["seed"]) for d in spread)
        scores = ", ".join(str(_native(d, "adapter")[0]) for d in spread)
        out.append(
            f"Seeds alone move these numbers: attempt 8's recipe trained with seeds {seeds} scored native "
            f"{scores} out of 40."
        )
    return out


# full-scale summaries (bench/bfcl_full.py) in the order they appear, with the folder of their inputs
FULL = [("bfcl_full_0.5b.json", "0.5B", "bfcl_full"), ("bfcl_full_1.5b.json", "1.5B", "bfcl_full_1.5b")]


def _rate_ci(scores: dict[str, Any], mode: str, n: int) -> str:
    """``66% (61–70%)`` from a bfcl_full row's fraction and interval."""
    lo, hi = scores[f"{mode}_interval"]
    return f"{scores[mode]:.0%} ({lo:.0%}–{hi:.0%})"


def _seeds_cell(rows: list[dict[str, Any]], who: str, mode: str) -> str:
    """One adapter: its rate and interval; several seeds: each seed's rate and the range of the intervals."""
    if len(rows) == 1:
        return _rate_ci(rows[0][who], mode, rows[0]["cases"])
    rates = " / ".join(f"{r[who][mode]:.0%}" for r in rows)
    lo = min(r[who][f"{mode}_interval"][0] for r in rows)
    hi = max(r[who][f"{mode}_interval"][1] for r in rows)
    return f"{rates} (seeds {', '.join(str(r['train_seed']) for r in rows)}; {lo:.0%}–{hi:.0%})"


def full_scale(summary: str, model: str, inputs: str) -> list[str]:
    """The headline: every case of each BFCL category, baseline and adapter, from bench/bfcl_full.py."""
    d = _load(summary)
    if not d:
        return []
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in d["rows"]:
        by.setdefault(r["trained_on"], {}).setdefault(r["category"], []).append(r)
    out = [
        f"**Every case** of each BFCL category, the {model}, temperature 0, 95% intervals (Wilson; "
        f"{d['machine']}; {_link(summary)}). Native: the model's own tool-call format, the only one a client "
        "parses. Irrelevance: no call attempt at all (native or written as text) counts as a pass.",
        "",
        "| BFCL category | cases | native calls: base → adapter | base model, call written as text | "
        "irrelevance (240), no call attempt: base → adapter | results |",
        "|---|---:|---:|---:|---:|---|",
    ]
    order = ["simple_python", "multiple", "parallel", "parallel_multiple"]
    for trained_on, cats in sorted(
        by.items(), key=lambda kv: (kv[0] not in order, order.index(kv[0]) if kv[0] in order else 0, kv[0])
    ):
        rows = cats.get(trained_on, [])
        irr = cats.get("irrelevance", [])
        if not rows:
            continue
        base = rows[0]["baseline"]
        irr_cell = (
            f"{_rate_ci(irr[0]['baseline'], 'lenient', irr[0]['cases'])} → "
            f"**{_seeds_cell(irr, 'adapter', 'lenient')}**"
            if irr
            else "–"
        )
        out.append(
            f"| {trained_on} | {rows[0]['cases']} | {_rate_ci(base, 'native', rows[0]['cases'])} → "
            f"**{_seeds_cell(rows, 'adapter', 'native')}** | {_rate_ci(base, 'lenient', rows[0]['cases'])} | "
            f"{irr_cell} | "
            + ", ".join(f"[`{r['result']}`](bench/results/{inputs}/{r['result']})" for r in rows)
            + " |"
        )
    sp = by.get("simple_python", {}).get("simple_python", [])
    if sp:
        no_call = [r["adapter"].get("native_misses", {}).get("no_call_made", 0) for r in sp]
        worse = [r for r in sp if r["adapter"]["native"] < r["baseline"]["lenient"]]
        ps = [r["mcnemar_p_lenient"] for r in worse if r["mcnemar_p_lenient"] is not None]
        out += [
            "",
            f"On simple_python the adapter's native calls stay below the base model's own text-format skill "
            f"with {len(worse)} of {len(sp)} training seeds"
            + (f" (paired McNemar p ≤ {max(ps):.3f})" if ps else "")
            + f"; it answers in text where a call was due on {min(no_call)}–{max(no_call)} of "
            f"{sp[0]['cases']} questions. The seeds spread the adapter's native rate over "
            f"{min(r['adapter']['native'] for r in sp):.0%}–{max(r['adapter']['native'] for r in sp):.0%}.",
        ]
    return [*out, ""]


# issue 36's goals (every case of each category): simple_python native, irrelevance with no call attempt
METHOD_GOALS = {"0.5B": (0.87, 0.85), "1.5B": (0.93, 0.85)}
# each method's best full-category run that kept its answer check (bench/bfcl_onpolicy.py, judge 2), from
# the seed-0 SFT adapter of its model: (model, what the run changed, result file)
METHOD_ROWS = [
    ("0.5B", "rejection SFT, lr 5e-5", "onpolicy_gpu_h100_judge2/simple_python_rejection_lr5e-5.json"),
    ("0.5B", "DPO, DPOP loss, lr 5e-6", "onpolicy_gpu_h100_judge2/simple_python_dpo_dpop_lr5e-6.json"),
    (
        "0.5B",
        "GRPO, lr 1e-5, no-call as the data holds",
        "onpolicy_gpu_h100_judge2/simple_python_grpo_lr1e-5.json",
    ),
    (
        "0.5B",
        "GRPO, lr 1e-5, 35% no-call draws",
        "onpolicy_gpu_h100_share035/simple_python_grpo_lr1e-5_nc0.35_ac64.json",
    ),
    (
        "0.5B",
        "GRPO, lr 1e-5, 50% no-call draws",
        "onpolicy_gpu_h100_share/simple_python_grpo_lr1e-5_nc0.5.json",
    ),
    (
        "1.5B",
        "DPO, DPOP loss, lr 5e-6, pairs balanced",
        "onpolicy_gpu_h100_1.5b_bd/simple_python_dpo_dpop_bd_lr5e-6.json",
    ),
    (
        "1.5B",
        "DPO, DPOP loss, lr 1e-5, pairs balanced",
        "onpolicy_gpu_h100_1.5b_bd/simple_python_dpo_dpop_bd_lr1e-5.json",
    ),
]
# what a step of each method costs on this CPU (bench/onpolicy_cost.py); later files win for a stage
METHOD_COSTS = ["onpolicy_cost.json", "grpo_cost.json", "onpolicy_cost_methods.json"]


def _method_cell(category: dict[str, Any], mode: str) -> tuple[str, float]:
    """``271 → **279** (p = 0.29)``: the SFT start's passes, the method's, and the paired test between them
    (McNemar on the cases either run changed); with the method's rate."""
    sft, new = category["sft"]["overall"], category["adapter"]["overall"]
    p = category["comparison_with_sft"][f"mcnemar_{mode}"]["p_value"]
    n = new["n"]
    rate = new[f"{mode}_pass"] / n
    return f"{sft[f'{mode}_pass']} → **{new[f'{mode}_pass']}** ({rate:.1%}; p = {p:.2g})", rate


def method_costs() -> dict[str, dict[str, Any]]:
    """Each measured stage of bench/onpolicy_cost.py with the file it comes from; later files win."""
    out: dict[str, dict[str, Any]] = {}
    for name in METHOD_COSTS:
        d = _load(name)
        for stage, rec in (d or {}).get("stages", {}).items():
            out[stage] = {**rec, "file": name, "machine": d["machine"]}  # type: ignore[index]
    return out


def methods_table() -> list[str]:
    """Issue 36's methods on every case of simple_python and irrelevance, each against its SFT start and
    the goals, with what the run cost on one GPU and what a step costs on this CPU."""
    rows = [(m, what, name, d) for m, what, name in METHOD_ROWS if (d := _load(name))]
    if not rows:
        return []
    out = [
        "**Learning from the model's own mistakes** (issue 36): each method trained from the SFT adapter of "
        "the table above (seed 0; its scores here are from the same run as the method's), on its own answers to generated requests scored by tooltune's scorer, "
        "the best run of each that kept its answer check; every case of simple_python (400) and irrelevance "
        "(240), temperature 0, one NVIDIA H100 (MLX CUDA backend, bfloat16). Cells: the SFT start's passes → "
        "the method's, the paired McNemar p between them. Goals (issue 36): simple_python native ≥ 87% "
        "(0.5B) or ≥ 93% (1.5B), irrelevance ≥ 85% with no call attempt.",
        "",
        "| model | method | simple_python, native | irrelevance, no call attempt | goals met | one H100, "
        "the run | result |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    met_any = 0
    for model, what, name, d in rows:
        sp, sp_rate = _method_cell(d["results"]["simple_python"], "native")
        irr, irr_rate = _method_cell(d["results"]["irrelevance"], "lenient")
        goal_sp, goal_irr = METHOD_GOALS[model]
        met = [
            label
            for label, ok in (("simple_python", sp_rate >= goal_sp), ("irrelevance", irr_rate >= goal_irr))
            if ok
        ]
        met_any += len(met) == 2
        out.append(
            f"| {model} | {what} | {sp} | {irr} | {', '.join(met) or 'none'} | "
            f"{d['invocation_wall_s']:.0f} s | {_link(name)} |"
        )
    out += ["", f"{met_any} of {len(rows)} runs meet both goals. " + _cost_sentence(), ""]
    return out


def _cost_sentence() -> str:
    """What a step of each method costs on this CPU, from bench/onpolicy_cost.py's stages."""
    costs = method_costs()
    parts = []
    if "sample" in costs:
        parts.append(f"sampling the model's answers {costs['sample']['seconds_per_answer']:.0f} s an answer")
    for stage, label in (("rejection", "rejection SFT"), ("dpo", "DPO"), ("orpo", "ORPO"), ("grpo", "GRPO")):
        c = costs.get(stage)
        if not c or c.get("status") != "succeeded":
            continue
        extra = ""
        if stage == "dpo" and c.get("reference_seconds"):
            n_pairs = sum((costs.get("pick") or {}).get("pairs", {}).values())
            pairs = f"its {n_pairs} pairs" if n_pairs else "its pairs"
            extra = f", after scoring {pairs} under the reference ({c['reference_seconds']:.0f} s)"
        if stage == "orpo":
            extra = " (no reference pass)"
        if stage == "grpo":
            extra = f" ({c['config']['group_size']} answers sampled and scored per step)"
        parts.append(f"{label} {c['s_per_step']:.0f} s a step{extra}")
    if not parts:
        return ""
    files = sorted({c["file"] for c in costs.values()})
    machine = next(iter(costs.values()))["machine"]
    return (
        f"On this CPU ({machine['cpus']} cores, the 0.5B in float32; "
        + ", ".join(_link(f) for f in files)
        + "): "
        + "; ".join(parts)
        + "."
    )


def render() -> str:
    lines = [
        *(line for summary, model, inputs in FULL for line in full_scale(summary, model, inputs)),
        *methods_table(),
        "Earlier attempts, each on a seeded sample of **40 questions** per BFCL category (temperature 0), "
        "each row one trained adapter, with its 95% interval (Wilson): at n = 40 an interval spans about "
        "30 points, so rows closer than that are not told apart, and the sample can be easier or harder "
        "than its category.",
        "",
        *headline_table(),
        "",
        *summary(),
        "",
        "Every attempt, the base models, the baseline and the platform benchmarks: "
        "[bench/RESULTS.md](bench/RESULTS.md). What each attempt changed and what it measured: "
        "[docs/BFCL_ATTEMPTS.md](docs/BFCL_ATTEMPTS.md).",
        "Regenerate this section and bench/RESULTS.md with `python bench/render_readme.py`.",
    ]
    return "\n".join(lines)


def render_details() -> str:
    head = [
        "# BFCL results, attempt by attempt",
        "",
        "Generated from `bench/results/*.json` by `python bench/render_readme.py`; do not edit.",
        "The README's Results section shows a few headline rows; the story of the attempts is in",
        "[docs/BFCL_ATTEMPTS.md](../docs/BFCL_ATTEMPTS.md).",
        "",
        "Each BFCL run's HTML comparison pages are not committed (`bench/results/*.html` is git-ignored):",
        "`bench/bfcl_adapter.py` copies them next to its JSON when it runs, and",
        "`tooltune --workspace WS eval compare BASELINE_RUN ADAPTER_RUN` rebuilds one from the bench workspace",
        "(WS: the script's `--workspace`, default `~/.cache/tooltune/bench-ws`; the run ids are each JSON's",
        "`results.<suite>.baseline.run_id` and `results.<suite>.adapter.run_id`). It writes",
        "`WS/reports/ADAPTER_RUN/vs-BASELINE_RUN.html`; `tooltune eval report RUN` re-renders one run's",
        "`report.html`.",
        "",
    ]
    body = attempts() + base_models() + baseline() + platform() + ["## Details per attempt", "", *details()]
    # links are relative to bench/ here
    return "\n".join(head + body).replace("](bench/results/", "](results/") + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    readme = REPO / "README.md"
    text = readme.read_text()
    i, j = text.index(START) + len(START), text.index(END)
    new = text[:i] + "\n" + render() + "\n" + text[j:]
    details = render_details()
    if args.check:
        stale = [
            p.name for p, t in ((readme, new), (DETAILS, details)) if not p.exists() or p.read_text() != t
        ]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python bench/render_readme.py", file=sys.stderr)
        sys.exit(1 if stale else 0)
    readme.write_text(new)
    DETAILS.write_text(details)


if __name__ == "__main__":
    main()
