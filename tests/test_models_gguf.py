"""GGUF import: write small GGUFs with gguf.GGUFWriter, convert them, and check the converted MLX
model's logits against an independent numpy decoder that reads the GGUF the llama.cpp way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter, quants

from tooltune.config import Settings
from tooltune.errors import GGUFImportError
from tooltune.models import gguf_tensors as gt
from tooltune.models.gguf_import import RECORD_FILE, import_gguf, read_import_record
from tooltune.testing.gguf_reference import ReferenceDecoder
from tooltune.testing.tiny_model import ADDED_TOKENS, SPECIAL_TOKENS, build_tokenizer, qwen_tool_template

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128

# one quant type per tensor kind, so one file exercises many dequantizers
QWEN_TYPES = {
    "token_embd": Q.Q5_0,
    "output": Q.Q8_0,
    "attn_q": Q.Q4_0,
    "attn_k": Q.Q5_0,
    "attn_v": Q.Q8_0,
    "attn_output": Q.F16,
    "ffn_gate": Q.Q4_1,
    "ffn_up": Q.BF16,
    "ffn_down": Q.Q8_0,
}
LLAMA_TYPES = {
    "token_embd": Q.F32,
    "output": Q.Q8_0,
    "attn_q": Q.Q8_0,
    "attn_k": Q.Q5_1,
    "attn_v": Q.F16,
    "attn_output": Q.Q4_0,
    "ffn_gate": Q.F16,
    "ffn_up": Q.Q8_0,
    "ffn_down": Q.F32,
}
PROMPTS = [
    "<|im_start|>user\nRead the file src/main.py<|im_end|>\n<|im_start|>assistant\n",
    '{"name": "read_file", "arguments": {"path": "README.md"}}',
    "hello",
]


def _tokenizer_metadata() -> tuple[list[str], list[int], list[str]]:
    tok = build_tokenizer()
    vocab = tok.get_vocab()
    tokens = [""] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    types = [3 if t in SPECIAL_TOKENS else 4 if t in ADDED_TOKENS else 1 for t in tokens]
    merges = [" ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    return tokens, types, merges


SPM_PIECES = [
    "▁",
    "▁the",
    "▁a",
    "th",
    "e",
    "t",
    "h",
    "a",
    "▁r",
    "r",
    "d",
    "▁read",
    "ea",
    "re",
    "ad",
    "f",
    "i",
    "l",
    ".",
]


def _spm_metadata() -> tuple[list[str], list[int], list[float]]:
    """A small sentencepiece-style vocabulary: unk, bos/eos, 256 byte-fallback tokens, scored pieces."""
    tokens = [
        "<unk>",
        "<s>",
        "</s>",
        *(f"<0x{b:02X}>" for b in range(256)),
        *SPM_PIECES,
        "<|im_end|>",
        "<|endoftext|>",
    ]
    types = [2, 3, 3] + [6] * 256 + [1] * len(SPM_PIECES) + [3, 3]
    scores = [0.0] * 259 + [-float(i) for i in range(len(SPM_PIECES))] + [0.0, 0.0]
    return tokens, types, scores


def _quantized(arr: np.ndarray, qtype: Q) -> np.ndarray:
    if qtype == Q.F32:
        return arr.astype(np.float32)
    if qtype == Q.F16:
        return arr.astype(np.float16)
    return quants.quantize(arr.astype(np.float32), qtype)


def write_tiny_gguf(
    path: Path,
    *,
    arch: str = "qwen2",
    types: dict[str, Q] | None = None,
    tied: bool = True,
    pre: str = "gpt2",
    spm: bool = False,
    seed: int = 0,
) -> Path:
    """A 2-layer decoder with the tiny test tokenizer and Qwen's tool template, weights in HF layout
    (Q/K permuted the llama.cpp way for llama)."""
    types = types or (QWEN_TYPES if arch == "qwen2" else LLAMA_TYPES)
    rng = np.random.default_rng(seed)
    if spm:
        tokens, token_types, scores = _spm_metadata()
    else:
        tokens, token_types, merges = _tokenizer_metadata()
    vocab = len(tokens)
    head_dim = HIDDEN // HEADS

    def rand(*shape: int, scale: float = 0.15) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = GGUFWriter(path, arch)
    w.add_name(f"tiny {arch}")
    w.add_block_count(LAYERS)
    w.add_context_length(2048)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0 if arch == "llama" else 1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_dimension_count(head_dim)
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    if spm:
        w.add_tokenizer_model("llama")
        w.add_token_scores(scores)
        w.add_bos_token_id(tokens.index("<s>"))
        w.add_eos_token_id(tokens.index("</s>"))
        w.add_add_bos_token(True)
    else:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_merges(merges)
        w.add_eos_token_id(tokens.index("<|im_end|>"))
        w.add_bos_token_id(tokens.index("<|endoftext|>"))
        w.add_pad_token_id(tokens.index("<|endoftext|>"))
        w.add_add_bos_token(False)
    w.add_chat_template(qwen_tool_template())

    def add(name: str, kind: str, arr: np.ndarray) -> None:
        w.add_tensor(
            name,
            _quantized(arr, types[kind]),
            raw_dtype=types[kind] if types[kind] not in (Q.F32, Q.F16) else None,
        )

    emb = rand(vocab, HIDDEN, scale=0.5)
    add("token_embd.weight", "token_embd", emb)
    add("output.weight", "output", emb if tied else rand(vocab, HIDDEN, scale=0.5))
    w.add_tensor("output_norm.weight", (1 + rand(HIDDEN, scale=0.1)))
    for i in range(LAYERS):
        p = f"blk.{i}"
        q, k = rand(HEADS * head_dim, HIDDEN), rand(KV_HEADS * head_dim, HIDDEN)
        if arch == "llama":
            q, k = gt.permute_rope(q, HEADS), gt.permute_rope(k, KV_HEADS)
        w.add_tensor(f"{p}.attn_norm.weight", 1 + rand(HIDDEN, scale=0.1))
        w.add_tensor(f"{p}.ffn_norm.weight", 1 + rand(HIDDEN, scale=0.1))
        add(f"{p}.attn_q.weight", "attn_q", q)
        add(f"{p}.attn_k.weight", "attn_k", k)
        add(f"{p}.attn_v.weight", "attn_v", rand(KV_HEADS * head_dim, HIDDEN))
        add(f"{p}.attn_output.weight", "attn_output", rand(HIDDEN, HEADS * head_dim))
        if arch == "qwen2":  # qwen2 has q/k/v biases (never permuted: qwen2 is not a llama-permuted arch)
            w.add_tensor(f"{p}.attn_q.bias", rand(HEADS * head_dim))
            w.add_tensor(f"{p}.attn_k.bias", rand(KV_HEADS * head_dim))
            w.add_tensor(f"{p}.attn_v.bias", rand(KV_HEADS * head_dim))
        add(f"{p}.ffn_gate.weight", "ffn_gate", rand(FFN, HIDDEN))
        add(f"{p}.ffn_up.weight", "ffn_up", rand(FFN, HIDDEN))
        add(f"{p}.ffn_down.weight", "ffn_down", rand(HIDDEN, FFN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _mlx_logits(model_dir: Path, ids: list[int]) -> np.ndarray:
    import mlx.core as mx
    from mlx_lm import load

    model, _ = load(str(model_dir))
    out = model(mx.array([ids]))
    return np.array(out[0].astype(mx.float32))


def _assert_close(ours: np.ndarray, ref: np.ndarray, rel: float = 1e-3) -> None:
    err = float(np.abs(ours - ref).max())
    scale = float(np.abs(ref).max())
    assert err <= rel * scale, f"max abs diff {err:.3g} vs logit scale {scale:.3g}"
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


@pytest.fixture(scope="module")
def qwen_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-qwen2.gguf")


@pytest.fixture(scope="module")
def qwen_imported(qwen_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    seen: list[tuple[int, int]] = []
    out = import_gguf(
        qwen_gguf, tmp_path_factory.mktemp("out") / "tiny-qwen2", progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1][0] == seen[-1][1] == len(seen)
    return out


def test_qwen2_logits_match_numpy_reference(qwen_gguf: Path, qwen_imported: Path) -> None:
    from mlx_lm import load

    record = read_import_record(qwen_imported)
    assert record is not None and record.tie_word_embeddings and record.tied_from == "output.weight"
    assert {"Q5_0", "Q8_0", "Q4_0", "Q4_1", "F16", "BF16", "F32"} <= set(record.quant_types)
    # tied: both embedding and lm_head come from the more precise output.weight (Q8_0), as the import chose
    ref = ReferenceDecoder(qwen_gguf, embedding="output.weight", lm_head="output.weight")
    _, tokenizer = load(str(qwen_imported))
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        _assert_close(_mlx_logits(qwen_imported, ids), ref.logits(ids))


def test_qwen2_config_and_tool_parser(qwen_imported: Path) -> None:
    from mlx_lm import load

    config = json.loads((qwen_imported / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert config["rope_theta"] == 1000000.0 and config["tie_word_embeddings"] is True
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_key_value_heads"]) == (
        HIDDEN,
        LAYERS,
        KV_HEADS,
    )
    assert "lm_head.weight" not in json.dumps(
        json.loads((qwen_imported / "model.safetensors.index.json").read_text())
    )
    _, tokenizer = load(str(qwen_imported))
    assert tokenizer.init_kwargs.get("tool_parser_type") == "json_tools"
    assert tokenizer._tool_parser is not None
    tiny = build_tokenizer()
    for text in PROMPTS + ['<tool_call>\n{"name": "x"}\n</tool_call>']:
        assert tokenizer.encode(text) == tiny.encode(text).ids
    assert tokenizer.eos_token == "<|im_end|>"
    messages = [{"role": "user", "content": "Read src/a.py"}]
    tools = [{"type": "function", "function": {"name": "read_file", "description": "Read", "parameters": {}}}]
    rendered = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert "<tools>" in rendered and rendered.endswith("<|im_start|>assistant\n")


def test_import_record_written(qwen_gguf: Path, qwen_imported: Path) -> None:
    from tooltune.models.gguf_import import sha256_file

    record = read_import_record(qwen_imported)
    assert record is not None
    assert record.source_sha256 == sha256_file(qwen_gguf)
    assert (
        record.architecture == "qwen2" and record.dtype == "float32" and record.n_tensors == 3 + LAYERS * 12
    )


def test_llama_permuted_qk_untied(tmp_path: Path) -> None:
    src = write_tiny_gguf(tmp_path / "tiny-llama.gguf", arch="llama", tied=False, pre="llama-bpe")
    out = import_gguf(src, tmp_path / "tiny-llama")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is False
    ref = ReferenceDecoder(src)  # interleaved rope on the permuted GGUF rows, as llama.cpp computes it
    for ids in ([1, 5, 200, 33, 7, 400, 12, 2], [3, 3, 3, 3, 90, 91]):
        _assert_close(_mlx_logits(out, ids), ref.logits(ids))


def test_llama_sentencepiece_vocabulary(tmp_path: Path) -> None:
    """Sentencepiece vocabularies (Llama 2, Mistral) go through transformers' converter; BOS is added."""
    from mlx_lm import load

    src = write_tiny_gguf(tmp_path / "spm.gguf", arch="llama", tied=False, spm=True)
    out = import_gguf(src, tmp_path / "spm")
    _, tokenizer = load(str(out))
    ids = tokenizer.encode("the read file.")
    assert ids[0] == 1 and tokenizer.decode(ids[1:]) == "the read file."
    assert tokenizer.eos_token == "</s>"
    ref = ReferenceDecoder(src)
    _assert_close(_mlx_logits(out, ids), ref.logits(ids))


def test_llama_without_unpermute_would_differ(tmp_path: Path) -> None:
    """Guard for the test above: skipping the un-permutation must break the logits, so the check has teeth."""
    src = write_tiny_gguf(tmp_path / "tiny-llama.gguf", arch="llama", tied=False)
    ref = ReferenceDecoder(src)
    ref.interleaved_rope = False  # what a converter that forgets the permutation effectively computes
    ids = [1, 5, 200, 33, 7, 400, 12, 2]
    out = import_gguf(src, tmp_path / "m")
    ours = _mlx_logits(out, ids)
    assert float(np.abs(ours - ref.logits(ids)).max()) > 1e-2 * float(np.abs(ours).max())


def test_bfloat16_and_quantized_outputs(qwen_gguf: Path, tmp_path: Path) -> None:
    ids = [1, 40, 41, 42, 7]
    ref = ReferenceDecoder(qwen_gguf, embedding="output.weight", lm_head="output.weight").logits(ids)
    bf16 = import_gguf(qwen_gguf, tmp_path / "bf16", dtype="bfloat16")
    assert json.loads((bf16 / "config.json").read_text())["torch_dtype"] == "bfloat16"
    _assert_close(_mlx_logits(bf16, ids), ref, rel=0.05)
    q4 = import_gguf(qwen_gguf, tmp_path / "q4", quantize=4)
    config = json.loads((q4 / "config.json").read_text())
    assert config["quantization"]["bits"] == 4
    ours = _mlx_logits(q4, ids)
    corr = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
    assert corr > 0.9, f"4-bit logits correlate {corr:.3f} with the reference"


# --- bad input: one clear sentence, no output folder left behind -------------------------------------


def _no_output(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_not_a_gguf(tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    src.write_text("this is a README, not a model\n")
    out = tmp_path / "out" / "m"
    out.parent.mkdir()
    with pytest.raises(GGUFImportError, match="is not a GGUF file"):
        import_gguf(src, out)
    _no_output(out)


@pytest.mark.parametrize("keep", [0.5, 0.999, 40])
def test_truncated_gguf(qwen_gguf: Path, tmp_path: Path, keep: float) -> None:
    data = qwen_gguf.read_bytes()
    src = tmp_path / "cut.gguf"
    src.write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    out = tmp_path / "out" / "m"
    out.parent.mkdir()
    with pytest.raises(GGUFImportError, match="truncated"):
        import_gguf(src, out)
    _no_output(out)


def test_unsupported_architecture(tmp_path: Path) -> None:
    src = tmp_path / "phi.gguf"
    w = GGUFWriter(src, "phi2")
    w.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "out" / "m"
    out.parent.mkdir()
    with pytest.raises(
        GGUFImportError, match=r"architecture 'phi2' is not supported; supported: qwen2, llama"
    ):
        import_gguf(src, out)
    _no_output(out)


def test_unsupported_quant_type(qwen_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = gt.can_dequantize
    monkeypatch.setattr(gt, "can_dequantize", lambda q: q != Q.Q4_1 and real(q))
    out = tmp_path / "m"
    with pytest.raises(GGUFImportError, match=r"tensor 'blk\.0\.ffn_gate\.weight' uses quant type Q4_1"):
        import_gguf(qwen_gguf, out)
    assert not out.exists()


def test_not_enough_disk(qwen_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000))
    out = tmp_path / "m"
    with pytest.raises(GGUFImportError, match="not enough disk space"):
        import_gguf(qwen_gguf, out)
    assert not out.exists()


def test_refuses_existing_output(qwen_gguf: Path, qwen_imported: Path) -> None:
    with pytest.raises(GGUFImportError, match="already exists"):
        import_gguf(qwen_gguf, qwen_imported)
    assert (qwen_imported / RECORD_FILE).exists()


def test_failure_mid_conversion_leaves_nothing(
    qwen_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tooltune.models.gguf_import as gi

    def boom(*a: object, **k: object) -> None:
        raise GGUFImportError("simulated failure while writing the tokenizer")

    monkeypatch.setattr(gi, "write_tokenizer", boom)
    out = tmp_path / "m"
    with pytest.raises(GGUFImportError, match="simulated"):
        import_gguf(qwen_gguf, out)
    _no_output(out)


def test_resolve_gguf_imports_once(
    qwen_gguf: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tooltune.models.resolve as resolve_room
    from tooltune.models.resolve import resolve_model

    first = resolve_model(qwen_gguf, settings)
    assert first.source == "gguf" and first.path == settings.models_dir / "tiny-qwen2"
    monkeypatch.setattr(resolve_room, "import_gguf", lambda *a, **k: pytest.fail("imported twice"))
    assert resolve_model(qwen_gguf, settings).path == first.path
    assert resolve_model("tiny-qwen2", settings).source == "cache"
