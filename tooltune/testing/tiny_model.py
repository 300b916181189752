"""A tiny Qwen2-shaped model for tests: random weights, a byte-level BPE trained on the fly, Qwen2.5's
tool chat template. Builds in about a second and loads with ``mlx_lm.load``, which picks the
``json_tools`` tool parser from the template — the same code path as the real Qwen2.5-Coder.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from tooltune.workspace import atomic_dir

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Added (non-special) tokens, as in Qwen2.5: they survive decoding, so the tool parser can see them.
ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>", "</tools>"]


def qwen_tool_template() -> str:
    return resources.files("tooltune.models").joinpath("templates/qwen2_5_tools.jinja").read_text("utf-8")


def _corpus() -> list[str]:
    """Text the BPE learns merges from: chat scaffolding, JSON, code-ish and English words."""
    template = qwen_tool_template()
    words = (
        "read_file write_file list_dir search_code run_command run_tests git_status git_diff path content "
        "pattern command args timeout name arguments function type object string integer number boolean "
        "array properties required description the a to of and in is for file directory src main tests "
        "README.md setup.py please can you show me what find run open list search call tool result answer "
        "user assistant system hello thanks weather calculate area triangle base height unit"
    ).split()
    lines = [template] * 3
    lines += [" ".join(words[i : i + 9]) for i in range(0, len(words), 3)]
    lines += [
        json.dumps({"name": w, "arguments": {"path": f"src/{w}.py", "n": i}}) for i, w in enumerate(words)
    ]
    return lines


def build_tokenizer(vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_tokens(ADDED_TOKENS)
    return tok


def build(
    path: Path | str,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int = 1024,
    seed: int = 0,
    model_vocab_size: int | None = None,
    dtype: str = "float32",
) -> Path:
    """Write a tiny Qwen2 model to ``path`` (atomically) and return it.

    ``model_vocab_size`` pads the embedding and LM head beyond the tokenizer's vocabulary (a benchmark
    of a real model's shape: Qwen2.5's head has 151,936 rows); ``dtype`` is the weights' dtype.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2

    path = Path(path)
    tok = build_tokenizer(vocab_size)
    n_vocab = tok.get_vocab_size()
    config = {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "intermediate_size": intermediate_size,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "rms_norm_eps": 1e-6,
        "vocab_size": max(n_vocab, model_vocab_size or 0),
        "max_position_embeddings": 4096,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "torch_dtype": dtype,
        "eos_token_id": tok.token_to_id("<|im_end|>"),
        "bos_token_id": None,
    }
    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    weights = {k: v.astype(getattr(mx, dtype)) for k, v in tree_flatten(model.parameters())}

    im_end = tok.token_to_id("<|im_end|>")
    endoftext = tok.token_to_id("<|endoftext|>")
    added = {
        str(tok.token_to_id(t)): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": t in SPECIAL_TOKENS,
        }
        for t in SPECIAL_TOKENS + ADDED_TOKENS
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
        "chat_template": qwen_tool_template(),
    }
    with atomic_dir(path, overwrite=True) as tmp:
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tok.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
        (tmp / "special_tokens_map.json").write_text(
            json.dumps({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, indent=2)
        )
        (tmp / "generation_config.json").write_text(
            json.dumps({"eos_token_id": [im_end, endoftext], "pad_token_id": endoftext}, indent=2)
        )
    return path
