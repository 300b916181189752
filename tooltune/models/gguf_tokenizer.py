"""Build a Hugging Face fast tokenizer (``tokenizer.json`` + ``tokenizer_config.json``) from GGUF metadata.

A GGUF has no tokenizer.json: it stores the vocabulary, merges, token types and special ids under
llama.cpp's keys. transformers can rebuild a tokenizer from them, but its GGUF reader imports torch, so
byte-level BPE files (Qwen2, Llama 3: ``tokenizer.ggml.model == "gpt2"``) are rebuilt here with the
``tokenizers`` library alone; sentencepiece-style files fall back to transformers' converter.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from gguf import GGUFReader

from tooltune.errors import GGUFImportError
from tooltune.logs import get_logger

log = get_logger(__name__)

# llama.cpp token types
CONTROL = 3
USER_DEFINED = 4

# How each pre-tokenizer named in ``tokenizer.ggml.pre`` splits text before BPE (from the upstream
# tokenizer.json files; the same table llama.cpp and transformers keep).
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPLITS = {
    "qwen2": _QWEN2_SPLIT,
    "deepseek-r1-qwen": _QWEN2_SPLIT,
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "llama-bpe": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
}
GPT2_PRES = ("gpt2", "default", "gpt-2")
# Llama 3 vocabularies contain whole words that BPE would not rebuild from the merges; HF looks them up first.
IGNORE_MERGES_PRES = ("llama3", "llama-v3", "llama-bpe", "smaug-bpe")


def field_value(reader: GGUFReader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


@lru_cache(maxsize=1)
def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte → printable-unicode table (bytes_to_unicode)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def _byte_level_spelling(token: str) -> str:
    """Tokens are stored in byte-level spelling already; re-spell any that contain other characters."""
    alphabet = _byte_alphabet()
    if set(token) <= set(alphabet.values()):
        return token
    return "".join(alphabet[b] for b in token.encode("utf-8"))


def build_byte_level_tokenizer(
    tokens: list[str], merges: list[str], token_types: list[int], pre: str | None, *, bos: str | None
) -> Any:
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab: dict[str, int] = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t if token_types[i] in (CONTROL, USER_DEFINED) else _byte_level_spelling(t), i)
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    bpe = models.BPE(
        vocab=vocab,
        merges=pairs,
        unk_token=None,
        fuse_unk=False,
        byte_fallback=False,
        ignore_merges=(pre in IGNORE_MERGES_PRES),
    )
    tok = Tokenizer(bpe)
    split = SPLITS.get(pre or "")
    if split is not None:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
            ]
        )
    else:
        if pre not in GPT2_PRES and pre is not None:
            log.warning("gguf_unknown_pretokenizer", pre=pre, using="gpt2 regex")
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(
            add_prefix_space=False, trim_offsets=False, use_regex=True
        )
    if pre in ("qwen2", "deepseek-r1-qwen"):
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    if bos is not None:
        tok.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single=f"{bos}:0 $A:0",
                    pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                    special_tokens=[(bos, vocab[bos])],
                ),
            ]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = [
        AddedToken(t, special=True, normalized=False)
        for t, ty in zip(tokens, token_types, strict=True)
        if ty == CONTROL
    ]
    added = [
        AddedToken(t, special=False, normalized=False)
        for t, ty in zip(tokens, token_types, strict=True)
        if ty == USER_DEFINED
    ]
    tok.add_special_tokens(specials)
    tok.add_tokens(added)
    for t in specials + added:
        if tok.token_to_id(t.content) != vocab[t.content]:
            raise GGUFImportError(
                f"added token {t.content!r} did not keep its id; the GGUF vocabulary looks inconsistent"
            )
    return tok


def _transformers_tokenizer(reader: GGUFReader, arch: str, tokenizer_type: str) -> Any:
    """Sentencepiece / unigram vocabularies: transformers' GGUF converter (no torch needed for this part)."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer
    except ImportError as e:  # moved or missing in this transformers version
        raise GGUFImportError(
            f"tokenizer type {tokenizer_type!r} needs transformers' GGUF tokenizer converter, which this "
            "transformers version does not provide; supported without it: byte-level BPE ('gpt2')"
        ) from e
    d: dict[str, Any] = {
        "tokenizer_type": tokenizer_type,
        "pre_tokenizer_type": field_value(reader, "tokenizer.ggml.pre"),
        "tokens": field_value(reader, "tokenizer.ggml.tokens"),
        "token_type": field_value(reader, "tokenizer.ggml.token_type"),
    }
    for key, name in (("scores", "scores"), ("merges", "merges"), ("add_space_prefix", "add_prefix_space")):
        value = field_value(reader, f"tokenizer.ggml.{key}")
        if value is not None:
            d[name] = value
    backend, _ = convert_gguf_tokenizer(arch, d)
    return backend


def write_tokenizer(reader: GGUFReader, arch: str, out_dir: Path, *, context_length: int) -> dict[str, Any]:
    """Write tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json.

    Returns facts for config.json and the import record (eos ids, bos id, pre-tokenizer, template found).
    """
    tokenizer_type = field_value(reader, "tokenizer.ggml.model")
    tokens: list[str] | None = field_value(reader, "tokenizer.ggml.tokens")
    if tokenizer_type is None or not tokens:
        raise GGUFImportError(
            "the GGUF has no tokenizer metadata (tokenizer.ggml.*); tooltune needs an embedded vocabulary"
        )
    token_types: list[int] = field_value(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    pre = field_value(reader, "tokenizer.ggml.pre")
    template = field_value(reader, "tokenizer.chat_template")

    def token_at(key: str) -> tuple[int | None, str | None]:
        idx = field_value(reader, f"tokenizer.ggml.{key}")
        if idx is None or not 0 <= int(idx) < len(tokens):
            return None, None
        return int(idx), tokens[int(idx)]

    eos_id, eos = token_at("eos_token_id")
    bos_id, bos = token_at("bos_token_id")
    pad_id, pad = token_at("padding_token_id")
    unk_id, unk = token_at("unknown_token_id")
    eot_id, _ = token_at("eot_token_id")
    eom_id, _ = token_at("eom_token_id")
    add_bos = field_value(reader, "tokenizer.ggml.add_bos_token")
    if add_bos is None:
        add_bos = tokenizer_type == "llama"
    add_bos = bool(add_bos) and bos is not None

    if tokenizer_type == "gpt2":
        merges = field_value(reader, "tokenizer.ggml.merges")
        if not merges:
            raise GGUFImportError("the GGUF's byte-level BPE tokenizer has no merges (tokenizer.ggml.merges)")
        tok = build_byte_level_tokenizer(tokens, merges, token_types, pre, bos=bos if add_bos else None)
    else:
        tok = _transformers_tokenizer(reader, arch, tokenizer_type)
        if add_bos and bos is not None and bos_id is not None:
            from tokenizers import processors

            tok.post_processor = processors.TemplateProcessing(
                single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)]
            )
    tok.save(str(out_dir / "tokenizer.json"))

    added_decoder = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": ty == CONTROL,
        }
        for i, (t, ty) in enumerate(zip(tokens, token_types, strict=True))
        if ty in (CONTROL, USER_DEFINED)
    }
    # Qwen sets no bos_token; keep one only where the tokenizer adds it or the template uses it.
    keep_bos = add_bos or (template is not None and "bos_token" in template)
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added_decoder,
        "bos_token": bos if keep_bos else None,
        "eos_token": eos,
        "pad_token": pad,
        "unk_token": unk,
        "add_bos_token": add_bos,
        "model_max_length": context_length,
        "clean_up_tokenization_spaces": False,
    }
    if template is not None:
        tokenizer_config["chat_template"] = template
        (out_dir / "chat_template.jinja").write_text(template, encoding="utf-8")
    else:
        log.warning("gguf_no_chat_template", hint="the model will have no chat template")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False))
    special_map = {
        k: v
        for k, v in (
            ("bos_token", bos if keep_bos else None),
            ("eos_token", eos),
            ("pad_token", pad),
            ("unk_token", unk),
        )
        if v is not None
    }
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2, ensure_ascii=False))
    eos_ids = [i for i in dict.fromkeys((eos_id, eot_id, eom_id)) if i is not None]
    generation = {"eos_token_id": eos_ids if len(eos_ids) != 1 else eos_ids[0]}
    if bos_id is not None:
        generation["bos_token_id"] = bos_id
    if pad_id is not None:
        generation["pad_token_id"] = pad_id
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2))
    return {
        "eos_token_ids": eos_ids,
        "bos_token_id": bos_id,
        "tokenizer_model": tokenizer_type,
        "pretokenizer": pre,
        "has_chat_template": template is not None,
        "n_tokens": len(tokens),
    }
