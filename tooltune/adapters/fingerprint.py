"""Fingerprints of *behaviour*: prove which weights a server is really serving.

A file hash can't tell us what the ``mlx_lm.server`` child has loaded (it silently ignores a
per-request adapter when the request names its default model). So we ask the model itself: a fixed
probe prompt, greedy decoding, and the top log-probabilities at each step. The reference signatures
for base and base+adapter are computed once, with mlx-lm in a separate process (OpenBLAS preloaded,
memory returned to the OS when it exits), and stored in the adapter's ``tooltune.json``. After every
start or switch the server answers the same probe and must match the expected signature — and, when
the probe distinguishes them, must *not* match the other one.

Run as ``python -m tooltune.adapters.fingerprint --model DIR [--adapter DIR]`` to print the
reference signatures as JSON (that is how :func:`compute_reference` uses it).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tooltune.device import detect_device, keep_mlx_on
from tooltune.errors import TooltuneError
from tooltune.models.weights import float_weights_dtype
from tooltune.subprocs import exit_status

PROBE_MAX_TOKENS = 8
PROBE_TOP_K = 5
# Same weights served by the batched server path vs. mlx-lm's single-sequence path differ by ~1e-5
# in float32; low-precision formats by more. Real adapters move the probe's log-probs by far more.
MATCH_TOLERANCE = 0.05
DISTINGUISH_MIN = 0.25
# bfloat16/float16 weights: a logit near 30 is stored to ±0.125. On an NVIDIA H200 (MLX's CUDA backend)
# the batched server answered the probe 0.25 away from mlx-lm's own single-sequence answer for the 0.5B
# in bfloat16, and 0.625 away for one of three 1.5B adapters (both tries; the same weights: its greedy
# answer was inf away from the base model's). The thresholds scale with that noise. Real adapters move
# the probe by far more (inf: the base model writes text where the adapter calls the tool).
HALF_MATCH_TOLERANCE = 1.0
HALF_DISTINGUISH_MIN = 2.0

_READ_FILE_TOOL = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a text file from the project and return its contents.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "Path of the file."}},
            "required": ["path"],
        },
    },
}

# Tried in order until one separates base from adapter: a tool-calling prompt first (what the
# adapters are trained to change), then plain chat.
PROBE_CANDIDATES: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": "Read the file src/main.py"}], "tools": [_READ_FILE_TOOL]},
    {"messages": [{"role": "user", "content": "hello, what can you do?"}], "tools": None},
    {"messages": [{"role": "user", "content": "List the files in the tests directory."}], "tools": None},
]


class FingerprintError(TooltuneError):
    pass


class ProbeSignature(BaseModel):
    """What a model answers to the probe: greedy tokens, their text, and the top log-probs per step."""

    tokens: list[int]
    text: str = ""
    top: list[list[tuple[int, float]]] = Field(
        default_factory=list, description="per generated position: [token id, logprob] of the top-k tokens"
    )
    eos: list[int] = Field(
        default_factory=list, description="end-of-sequence ids (known on the reference side only)"
    )


class ProbeSpec(BaseModel):
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    max_tokens: int = PROBE_MAX_TOKENS
    top_k: int = PROBE_TOP_K


class AdapterProbe(BaseModel):
    """Expected probe answers for one adapter on one base model, recorded in ``tooltune.json``."""

    probe: ProbeSpec
    base_model_fingerprint: str
    base: ProbeSignature
    adapter: ProbeSignature
    distance: float = Field(description="max |Δ logprob| between base and adapter answers")
    distinguishes: bool = Field(description="True when the probe tells base and adapter apart")
    mlx_lm_version: str = ""


class BaseProbe(BaseModel):
    """Expected probe answer of a base model alone (used to verify baseline serving)."""

    probe: ProbeSpec
    base_model_fingerprint: str
    base: ProbeSignature
    mlx_lm_version: str = ""


def weights_dtype(model_path: Path) -> str:
    """The float format the model computes in: the first float tensor of its weights (a quantized
    model's packed integer weights are skipped, its scales say), else its config's dtype, else
    "unknown". Never raises: a file it cannot read only makes the check the loose one."""
    try:
        if found := float_weights_dtype(model_path):
            return found
        config = json.loads((model_path / "config.json").read_text("utf-8"))
        dtype = config.get("torch_dtype") or config.get("dtype")
        return str(dtype) if dtype else "unknown"
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return "unknown"


def exact_logprobs(dtype: str) -> bool:
    """Whether weights of ``dtype`` compute log-probs that two code paths reproduce closely: float32
    (also quantized weights with float32 scales) does; half precision, and a format that could not be
    read, does not."""
    return dtype == "float32" or "float32 scales" in dtype


def tolerances(dtype: str) -> tuple[float, float]:
    """(match, distinguish): how far a served probe answer may be from the reference and still be the
    same weights, and how far base and adapter answers must be apart for the probe to tell them apart.
    float32 computation is strict; half precision is not (:func:`exact_logprobs`)."""
    if exact_logprobs(dtype):
        return MATCH_TOLERANCE, DISTINGUISH_MIN
    return HALF_MATCH_TOLERANCE, HALF_DISTINGUISH_MIN


def greedy_answer_tells(served: ProbeSignature, want: ProbeSignature, other: ProbeSignature | None) -> bool:
    """Whether ``served`` is ``want``'s answer and not ``other``'s by its greedy tokens alone: every token
    as ``want`` wrote it (to its end of sequence), where ``other`` wrote another answer. For half-precision
    weights, whose log-probs move by more than any fixed tolerance on some hardware (a 1.5B adapter in
    bfloat16 on an H100 answered its probe token for token, 1.25 away in log-prob from mlx-lm's own
    answer, over the 1.0 that sufficed on an H200): other weights would have had to write, token for
    token, the answer on which base and adapter disagree."""
    if other is None:
        return False
    eos = set(served.eos) | set(want.eos) | set(other.eos)
    s, w, o = (_strip_eos(x, eos).tokens for x in (served, want, other))
    return bool(w) and s == w and o != w


def signature_distance(a: ProbeSignature, b: ProbeSignature) -> float:
    """Max |Δ logprob| over comparable positions; ``inf`` if nothing is comparable.

    Position *i* is comparable while the greedy tokens before it agree (its distribution is computed
    from the same prefix). Where the chosen tokens first differ, that position still counts — and a
    different greedy choice at a comparable position means the distributions differ — so the distance
    is at least the gap between the two choices there.
    """
    # mlx_lm.server reports no position for a final EOS token when it batches, the reference does:
    # compare what was generated before the end of sequence.
    eos = set(a.eos) | set(b.eos)
    a, b = _strip_eos(a, eos), _strip_eos(b, eos)
    worst = 0.0
    n = min(len(a.top), len(b.top))
    if n == 0:
        # both ended at once (e.g. an adapter that learned to stop): equal iff both said nothing
        return 0.0 if len(a.top) == len(b.top) and a.text == b.text else math.inf
    for i in range(n):
        da, db = dict(a.top[i]), dict(b.top[i])
        common = set(da) & set(db)
        if not common:
            return math.inf
        worst = max(worst, max(abs(da[t] - db[t]) for t in common))
        if i < len(a.tokens) and i < len(b.tokens) and a.tokens[i] != b.tokens[i]:
            ta, tb = a.tokens[i], b.tokens[i]
            if ta in db and tb in da:
                worst = max(worst, abs((da[ta] - da[tb]) - (db[ta] - db[tb])))
            else:
                worst = math.inf
            break
    return worst


def _strip_eos(sig: ProbeSignature, eos: set[int]) -> ProbeSignature:
    if sig.tokens and sig.tokens[-1] in eos and len(sig.top) == len(sig.tokens):
        return sig.model_copy(update={"tokens": sig.tokens[:-1], "top": sig.top[:-1]})
    return sig


def signature_from_response(response: dict[str, Any]) -> ProbeSignature:
    """Parse an ``mlx_lm.server`` chat completion requested with ``top_logprobs``.

    The server puts an *arbitrary* member of the top-k set in each entry's ``id`` (from an
    argpartition), so the chosen token under greedy decoding is the argmax of ``top_logprobs``.
    """
    choice = response["choices"][0]
    content = ((choice.get("logprobs") or {}).get("content")) or []
    top: list[list[tuple[int, float]]] = []
    tokens: list[int] = []
    for entry in content:
        pairs = [(int(t["id"]), float(t["logprob"])) for t in entry.get("top_logprobs", [])]
        if not pairs:
            continue
        pairs.sort(key=lambda p: -p[1])
        top.append(pairs)
        tokens.append(pairs[0][0])
    message = choice.get("message") or {}
    text = message.get("content") or ""
    if not text and message.get("tool_calls"):  # the server parsed the answer into a call: show it
        text = "; ".join(
            f"{(c.get('function') or {}).get('name', '?')}({(c.get('function') or {}).get('arguments', '')})"
            for c in message["tool_calls"]
        )
    return ProbeSignature(tokens=tokens, text=text, top=top)


def probe_request_body(spec: ProbeSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": spec.messages,
        "max_tokens": spec.max_tokens,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": spec.top_k,
    }
    if spec.tools:
        body["tools"] = spec.tools
    return body


# ---------------------------------------------------------------- reference computation (child side)


def _greedy_signature(model: Any, tokenizer: Any, spec: ProbeSpec) -> ProbeSignature:
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    kwargs: dict[str, Any] = {"add_generation_prompt": True, "tokenize": True}
    if spec.tools:
        kwargs["tools"] = spec.tools
    prompt = tokenizer.apply_chat_template(spec.messages, **kwargs)
    if isinstance(prompt, dict):  # transformers 5 may return a BatchEncoding
        prompt = prompt["input_ids"]
    eos = set(tokenizer.eos_token_ids)
    tokens: list[int] = []
    top: list[list[tuple[int, float]]] = []
    for token, logprobs in generate_step(
        mx.array(prompt), model, max_tokens=spec.max_tokens, sampler=lambda lp: mx.argmax(lp, axis=-1)
    ):
        tok = int(token.item() if hasattr(token, "item") else token)
        lp = logprobs.astype(mx.float32)
        idx = mx.argpartition(-lp, kth=spec.top_k - 1)[: spec.top_k].tolist()
        vals = lp[idx].tolist()
        pairs = sorted(zip(idx, vals, strict=True), key=lambda p: -p[1])
        top.append([(int(i), float(v)) for i, v in pairs])
        tokens.append(tok)
        if tok in eos:
            break
    text = tokenizer.decode([t for t in tokens if t not in eos])
    return ProbeSignature(tokens=tokens, text=text, top=top, eos=sorted(eos))


def _lora_modules(model: Any) -> list[Any]:
    from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

    kinds = (LoRALinear, LoRASwitchLinear, LoRAEmbedding)
    return [m for _, m in model.named_modules() if isinstance(m, kinds)]


def _reference_main(argv: list[str] | None = None) -> int:
    """Child entry point: print ``{"base": [...], "adapter": [...] | null}`` signatures as JSON.

    With a LoRA adapter the model is loaded once: the base answers come from the same weights with
    every LoRA ``scale`` set to 0 (``y + 0·z`` is exactly the base output), and candidates stop at the
    first one that separates base from adapter — loading a 0.5B model twice and running every
    candidate took minutes on a loaded 2-core machine. DoRA/full fine-tunes fall back to two passes.
    """
    parser = argparse.ArgumentParser(description="Print reference probe signatures as JSON.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter")
    parser.add_argument("--probes", required=True, help="JSON list of ProbeSpec")
    args = parser.parse_args(argv)

    import mlx.core as mx
    import mlx_lm
    from mlx_lm import load
    from mlx_lm.tuner.utils import load_adapters

    keep_mlx_on(detect_device(), mx)  # the reference runs where the server does

    specs = [ProbeSpec.model_validate(p) for p in json.loads(args.probes)]
    model, tokenizer = load(args.model)
    out: dict[str, Any] = {"mlx_lm_version": mlx_lm.__version__, "base": [], "adapter": None}
    kind = "lora"
    if args.adapter:
        kind = json.loads((Path(args.adapter) / "adapter_config.json").read_text()).get(
            "fine_tune_type", "lora"
        )
    if not args.adapter or kind != "lora":
        out["base"] = [_greedy_signature(model, tokenizer, s).model_dump() for s in specs]
    if args.adapter:
        model = load_adapters(model, args.adapter)
        model.eval()
        out["adapter"] = []
        loras = _lora_modules(model) if kind == "lora" else []
        for i, spec in enumerate(specs):
            adapter = _greedy_signature(model, tokenizer, spec)
            out["adapter"].append(adapter.model_dump())
            if kind == "lora":
                scales = [m.scale for m in loras]
                for m in loras:
                    m.scale = 0.0
                out["base"].append(_greedy_signature(model, tokenizer, spec).model_dump())
                for m, sc in zip(loras, scales, strict=True):
                    m.scale = sc
            base = ProbeSignature.model_validate(out["base"][i])
            if signature_distance(base, adapter) >= tolerances(weights_dtype(Path(args.model)))[1]:
                break
    json.dump(out, sys.stdout)
    return 0


# ---------------------------------------------------------------- reference computation (parent side)


def _run_reference(
    model_path: Path, adapter_path: Path | None, specs: list[ProbeSpec], env: dict[str, str], timeout: float
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tooltune.adapters.fingerprint", "--model", str(model_path)]
    if adapter_path is not None:
        cmd += ["--adapter", str(adapter_path)]
    cmd += ["--probes", json.dumps([s.model_dump() for s in specs])]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise FingerprintError(
            f"computing the probe fingerprint of {model_path} took over {timeout:.0f}s; "
            "retry when the machine is less loaded"
        ) from e
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        what = f"adapter {adapter_path}" if adapter_path else f"model {model_path}"
        if proc.returncode < 0:  # a signal: the machine or a native library, not the model's files
            raise FingerprintError(
                f"the process fingerprinting {what} {exit_status(proc.returncode)}. Last output:\n{tail}"
            )
        raise FingerprintError(
            f"could not load {what} to fingerprint it; check its files. Last output:\n{tail}"
        )
    return json.loads(proc.stdout)


def compute_adapter_probe(
    model_path: Path,
    adapter_path: Path,
    *,
    base_model_fingerprint: str,
    env: dict[str, str],
    timeout: float = 600,
) -> AdapterProbe:
    """Reference answers of base and base+adapter; picks the first candidate probe that tells them apart."""
    specs = [ProbeSpec(messages=c["messages"], tools=c["tools"]) for c in PROBE_CANDIDATES]
    out = _run_reference(model_path, adapter_path, specs, env, timeout)
    _, distinguish_min = tolerances(weights_dtype(model_path))
    best: AdapterProbe | None = None
    for spec, b, a in zip(specs, out["base"], out["adapter"], strict=False):
        base, adapter = ProbeSignature.model_validate(b), ProbeSignature.model_validate(a)
        dist = signature_distance(base, adapter)
        probe = AdapterProbe(
            probe=spec,
            base_model_fingerprint=base_model_fingerprint,
            base=base,
            adapter=adapter,
            distance=min(dist, 1e9),
            distinguishes=dist >= distinguish_min,
            mlx_lm_version=out.get("mlx_lm_version", ""),
        )
        if probe.distinguishes:
            return probe
        if best is None or probe.distance > best.distance:
            best = probe
    assert best is not None
    return best


def compute_base_probe(
    model_path: Path, *, base_model_fingerprint: str, env: dict[str, str], timeout: float = 600
) -> BaseProbe:
    spec = ProbeSpec(messages=PROBE_CANDIDATES[0]["messages"], tools=PROBE_CANDIDATES[0]["tools"])
    out = _run_reference(model_path, None, [spec], env, timeout)
    return BaseProbe(
        probe=spec,
        base_model_fingerprint=base_model_fingerprint,
        base=ProbeSignature.model_validate(out["base"][0]),
        mlx_lm_version=out.get("mlx_lm_version", ""),
    )


if __name__ == "__main__":
    raise SystemExit(_reference_main())
