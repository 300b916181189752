"""TrainConfig: every knob of a LoRA run, loadable from YAML/TOML and CLI flags, resolved before launch.

Resolution happens in the parent, before any worker starts, so a wrong model name, a missing dataset or
``num_layers`` larger than the model fails at once with one sentence saying what to change. The
resolved config (model path, dataset path, concrete ``num_layers`` and ``iters``) is what the worker
reads and what ``config.json`` records, so a run can be repeated exactly.

mlx-lm's own name for the LoRA multiplier is ``scale`` (its YAML key ``alpha`` raises KeyError); we
accept ``alpha`` as an alias and mlx-lm's nested ``lora_parameters: {rank, scale, dropout, keys}`` too,
so a config written for ``mlx_lm.lora`` loads here unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import ipaddress
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from tooltune.config import Settings
from tooltune.data.onpolicy import PAIRS_FORMAT
from tooltune.errors import TooltuneError, first_error
from tooltune.models.resolve import read_config, resolve_model
from tooltune.workspace import Workspace

# The recipe behind the committed benchmarks (bench/results/bfcl_adapter_*.json, attempts 8, 25 and 31;
# demo --quick): batch 1, rank 8 on the last 8 blocks, lr 5e-5 with cosine decay after a 5% warmup,
# sequences up to 1024 tokens, 4 validation batches before the first step, at the middle and at the end.
# The 0.5B on a 2-core CPU: 5.1 s a step on the built-in coding tools' default dataset, 3.8% of the run
# validating (bench/results/default_run.json); 9-15 s a step on BFCL's longer prompts (batch 4 on 16
# blocks took ~70 s a step, its 25-batch validation 470 s).
DEFAULT_NUM_LAYERS = 8
DEFAULT_ITERS = 150


# filled in by TrainConfig.resolve(), never options a person sets
RESOLVED_FIELDS = (
    "model_path",
    "dataset_path",
    "model_layers",
    "train_examples",
    "valid_examples",
    "init_adapter_path",
)


PREFERENCE_METHODS = ("dpo", "orpo")  # methods that train on a pairs dataset
LOSS_METHODS = (*PREFERENCE_METHODS, "grpo")  # methods with a loss of their own (no SFT loss weights)


def decision_kl_problem(method: str, weight: float) -> str | None:
    """Why ``decision_kl`` cannot go with ``method`` (only GRPO samples the decision it holds)."""
    if weight and method != "grpo":
        return f"decision_kl holds GRPO's sampled decision; method '{method}' samples none"
    return None


class TrainConfigError(TooltuneError):
    pass


def no_call_share_problem(method: str, share: float | None) -> str | None:
    """Why ``no_call_share`` cannot go with ``method`` (only GRPO draws requests while it trains)."""
    if share is not None and method != "grpo":
        return f"no_call_share weighs GRPO's draws; method '{method}' draws none"
    return None


class TrainConfig(BaseModel):
    """One training run's configuration. ``None`` means "pick a sensible default when resolving"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str | None = Field(
        default=None, description="Base model: cache name, MLX folder, .gguf or hub id."
    )
    dataset: str = Field(description="Workspace dataset name, or a folder with train.jsonl/valid.jsonl.")
    fine_tune_type: Literal["lora", "dora", "full"] = Field(default="lora", description="lora, dora or full.")
    num_layers: int | None = Field(
        default=None,
        description=f"Last N transformer blocks to adapt; -1 = all; default min({DEFAULT_NUM_LAYERS}, all).",
    )
    rank: int = Field(default=8, ge=1, le=1024, description="LoRA rank.")
    scale: float = Field(
        default=20.0,
        gt=0,
        validation_alias=AliasChoices("scale", "alpha"),
        description="LoRA scale (mlx-lm's name for alpha; the update is multiplied by it).",
    )
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    keys: list[str] | None = Field(
        default=None,
        description="Module paths inside each block to adapt, e.g. self_attn.q_proj; None = all linear.",
    )
    train_tokens: list[str] | None = Field(
        default=None,
        description="Tokens whose embedding (and LM-head) rows are trained too, inside the LoRA adapter. "
        "None = the tool-call markers <tool_call> and </tool_call> when they are single tokens (their rows "
        "are untrained in Qwen2.5-Coder-0.5B, see training/token_rows.py); [] = none. LoRA only.",
    )
    freeze_token_rows: bool = Field(
        default=False,
        description="Keep the train_tokens rows at their starting values (an init_adapter's; zero for a "
        "new adapter): they stay in the adapter but get no gradient, so only the LoRA blocks learn. "
        "Measured on the 0.5B, holding them did not change what DPO lost (docs/BFCL_ATTEMPTS.md, "
        "'The token rows held'). Not with adamw's weight_decay, which would still shrink them.",
    )
    optimizer: Literal["adam", "adamw", "sgd"] = Field(default="adam", description="adam, adamw or sgd.")
    weight_decay: float = Field(default=0.0, ge=0.0, description="Only used by adamw.")
    learning_rate: float = Field(
        default=5e-5,
        gt=0,
        description="Peak learning rate. mlx-lm multiplies LoRA updates by `scale` (20): 2e-4 diverged on "
        "Qwen2.5-Coder-0.5B here, 5e-5 trained cleanly (bench/results/bfcl_adapter_*.json).",
    )
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="cosine", description="constant, or cosine decay to min_learning_rate after the warmup."
    )
    warmup: int | None = Field(
        default=None,
        ge=0,
        description="Linear warmup steps from warmup_init to learning_rate; default iters // 20 (at least 1) "
        "with the cosine schedule, none with constant.",
    )
    warmup_init: float = Field(default=0.0, ge=0.0, description="Learning rate at the start of the warmup.")
    min_learning_rate: float = Field(default=0.0, ge=0.0, description="End of the cosine decay.")
    iters: int | None = Field(default=None, ge=1, description=f"Optimizer steps; default {DEFAULT_ITERS}.")
    epochs: float | None = Field(
        default=None, gt=0, description="Alternative to iters: passes over train.jsonl."
    )
    batch_size: int = Field(default=1, ge=1, description="Examples per step.")
    grad_accumulation_steps: int = Field(
        default=1, ge=1, description="Steps whose gradients are summed before one optimizer update."
    )
    max_seq_length: int = Field(default=1024, ge=16, description="Longer examples are truncated.")
    mask_prompt: bool = Field(
        default=True,
        description="Loss on the last message only (mlx-lm semantics). On by default: generated datasets "
        "put every assistant turn last once, so this trains the answers, not the tool schemas in the prompt.",
    )
    value_loss_weight: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Loss weight of the argument-value tokens inside <tool_call> blocks (1 = like every "
        "other answer token). Below 1 the adapter learns when and how to call more than what to fill "
        "in, leaving values closer to the base model's own (see training/value_tokens.py).",
    )
    decision_loss_weight: float = Field(
        default=1.0,
        ge=0.0,
        le=50.0,
        description="Loss weight of each answer's first token: `<tool_call>` or the first word of a text "
        "answer, i.e. the decision to call (1 = like every other answer token). Above 1 the adapter "
        "learns when to call more than how; needs mask_prompt (the answer's start is the prompt's end).",
    )
    anchor_loss_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=50.0,
        description="Weight of a KL term that keeps the next-token distribution on argument-value tokens "
        "close to the base model's (the same model with the adapter switched off): the adapter learns "
        "the call format while the values stay the base model's (0 = off). One more forward pass and a "
        "vocabulary-wide KL per step (about twice the time per step on a 2-core CPU with the 0.5B model); "
        "needs mask_prompt and fine_tune_type 'lora' (see training/losses.py).",
    )
    answer_only_head: bool = Field(
        default=True,
        description="With mask_prompt, apply the LM head only at the answer's positions (the same loss and "
        "gradients; the head is over a quarter of a 0.5B model's weights and otherwise runs at every prompt "
        "position). Off = mlx-lm's way, every position. Architectures other than qwen2/qwen3/llama always "
        "use mlx-lm's way (see training/losses.py).",
    )
    grad_checkpoint: bool = Field(default=False, description="Trade compute for memory.")
    seed: int = Field(default=0, description="Seed for the LoRA init and the data order.")
    steps_per_report: int = Field(default=10, ge=1, description="Steps between train-loss reports.")
    steps_per_eval: int | None = Field(
        default=None,
        ge=1,
        description="Steps between validation-loss evaluations; default half the run (mlx-lm also "
        "validates before the first step and at the end).",
    )
    save_every: int = Field(
        default=50, ge=1, description="Checkpoint (adapter + optimizer state) every N steps."
    )
    val_batches: int = Field(
        default=4, ge=-1, description="Validation batches per evaluation; -1 = the whole validation set."
    )
    method: Literal["sft", "rejection", "dpo", "orpo", "grpo"] = Field(
        default="sft",
        description="sft: supervised on the dataset's examples; rejection: supervised on a rejection dataset "
        "(`tooltune data pick --method rejection`: the model's own correct answers, the generated truth "
        "where no sample was right), with the answer check; dpo: preference training on a pairs dataset "
        "(`tooltune data pick --method pairs`: a correct answer against the model's own wrong one), with "
        "mlx-lm-lora's DPO loss and the starting model as the reference; orpo: the same pairs with "
        "mlx-lm-lora's ORPO loss (the chosen answer's NLL plus an odds-ratio term, no reference) "
        "(see training/preference.py); grpo: on an SFT dataset's requests, the model answers each "
        "group_size times and learns from the eval scorer's verdicts as rewards (training/grpo.py).",
    )
    beta: float = Field(
        default=0.1,
        ge=0,
        le=10.0,
        description="dpo: how far the policy may move from the reference (DPO's beta); orpo: the weight of "
        "the odds-ratio term; grpo: the weight of the KL penalty against the starting model (0: none).",
    )
    group_size: int = Field(
        default=4, ge=2, le=64, description="grpo: answers sampled per request and step (one group)."
    )
    sample_temperature: float = Field(
        default=0.8, gt=0, le=2.0, description="grpo: the temperature the answers are sampled at."
    )
    decision_kl: float = Field(
        default=0.0,
        ge=0,
        le=50.0,
        description="grpo: the weight of a KL term that holds each answer's first-token choice (open with "
        "the tool-call marker or not) at the starting model's: answers learn their arguments while the "
        "decision to call stays where the start had it (0: none). Needs a model with tool-call markers.",
    )
    no_call_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="grpo: the share of each step's requests drawn from those where no call is due, the "
        "rest from those where one is (unset: as the dataset holds them). The model's call decision is "
        "one decision everywhere: on one H100, GRPO on the 0.5B drawing no-call requests as its data held "
        "them (24%) learned to call on 185 of BFCL's 240 irrelevance questions (its start: 51); at 0.5 "
        "it fell silent where a call was due (BFCL simple_python 271 -> 214).",
    )
    max_completion_tokens: int = Field(
        default=128,
        ge=8,
        le=4096,
        description="grpo: the most tokens a sampled answer may have; rejection/dpo/orpo/grpo: the same for "
        "the answer check's greedy answers.",
    )
    answer_check: int = Field(
        default=32,
        ge=0,
        le=256,
        description="rejection/dpo/orpo/grpo: requests of the run's own dataset that the starting model and "
        "the trained adapter answer greedily, scored against the correct answer, half where a call is due "
        "and half where none is, the validation split first: dpo/orpo, this many of its pairs' requests and "
        "up to as many more of the requests the model always got right (kept beside the pairs when they were "
        "picked); rejection/grpo, up to twice this many of its examples' requests. A run whose adapter gets "
        "significantly "
        "fewer right in either half (exact paired test, p < 0.05) fails and is not registered "
        "(training/answer_check.py). 0: no check.",
    )
    dpo_loss: Literal["sigmoid", "hinge", "ipo", "dpop"] = Field(
        default="sigmoid", description="dpo: the loss form (mlx-lm-lora's loss types)."
    )
    init_adapter: str | None = Field(
        default=None,
        description="Registered adapter whose LoRA weights the run starts from (DPO, or more SFT, on top of "
        "an SFT adapter); the run needs its base model, rank, num_layers, keys and train_tokens. The new "
        "adapter holds the whole change (the starting one plus what this run learned).",
    )
    hosts: Path | None = Field(
        default=None,
        description='An mlx.launch host file (JSON: [{"ssh": host, "ips": [ip]}, ...], or the '
        '{"hosts": [...]} that mlx.distributed_config writes; 127.0.0.1 runs a process here): '
        "data-parallel LoRA over MLX's ring backend, one process per entry, gradients averaged by "
        "mlx-lm; batch_size (the whole batch) must be a multiple of their number. Every host needs this "
        "workspace and Python environment at the same paths; the first process writes the run.",
    )

    # filled in by resolve(); the worker only ever sees resolved configs
    model_path: Path | None = None
    dataset_path: Path | None = None
    model_layers: int | None = None
    train_examples: int | None = None
    valid_examples: int | None = None
    init_adapter_path: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten_mlx_lora_parameters(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("lora_parameters"), dict):
            data = dict(data)
            nested = data.pop("lora_parameters")
            for key, value in nested.items():
                data.setdefault(key, value)
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.iters is not None and self.epochs is not None:
            raise ValueError("give either iters or epochs, not both")
        if self.num_layers is not None and (self.num_layers == 0 or self.num_layers < -1):
            raise ValueError("num_layers must be -1 (all) or at least 1")
        if self.decision_loss_weight != 1.0 and not self.mask_prompt:
            raise ValueError(
                "decision_loss_weight needs mask_prompt: without it the answer's first token is not known"
            )
        if self.anchor_loss_weight and not self.mask_prompt:
            raise ValueError("anchor_loss_weight needs mask_prompt: the anchored values are in the answer")
        if self.anchor_loss_weight and self.fine_tune_type != "lora":
            raise ValueError(
                f"anchor_loss_weight works with fine_tune_type 'lora' only, not {self.fine_tune_type!r}: "
                "the base model is the LoRA model at scale 0"
            )
        if self.train_tokens and self.fine_tune_type != "lora":
            raise ValueError(
                f"train_tokens works with fine_tune_type 'lora' only, not {self.fine_tune_type!r}"
            )
        if self.freeze_token_rows and (self.train_tokens == [] or self.fine_tune_type != "lora"):
            raise ValueError(
                "freeze_token_rows holds the train_tokens rows of a LoRA adapter; this run has none "
                f"(train_tokens {self.train_tokens}, fine_tune_type {self.fine_tune_type!r})"
            )
        if self.freeze_token_rows and self.optimizer == "adamw" and self.weight_decay:
            raise ValueError(
                "freeze_token_rows with adamw's weight_decay: the decay would still shrink the held rows; "
                "use adam, or weight_decay 0"
            )
        if (problem := no_call_share_problem(self.method, self.no_call_share)) is not None:
            raise ValueError(problem)
        if (problem := decision_kl_problem(self.method, self.decision_kl)) is not None:
            raise ValueError(problem)
        if self.method in PREFERENCE_METHODS and self.beta == 0:
            raise ValueError(f"method {self.method} needs beta above 0")
        if self.method in LOSS_METHODS:
            custom = {
                "value_loss_weight": self.value_loss_weight != 1.0,
                "decision_loss_weight": self.decision_loss_weight != 1.0,
                "anchor_loss_weight": bool(self.anchor_loss_weight),
            }
            if any(custom.values()):
                names = ", ".join(k for k, v in custom.items() if v)
                raise ValueError(
                    f"{names} weigh the SFT loss; method '{self.method}' has its own loss, leave them out"
                )
        if self.init_adapter and self.fine_tune_type == "full":
            raise ValueError(
                "init_adapter starts LoRA weights from an adapter; fine_tune_type 'full' has none"
            )
        if self.train_tokens and len(self.train_tokens) > self.rank:
            raise ValueError(
                f"train_tokens has {len(self.train_tokens)} tokens but rank is {self.rank}; each token "
                "needs one rank column"
            )
        return self

    def default_warmup(self, iters: int) -> int:
        """The recipe's warmup: 5% of the run before a cosine decay; a constant rate starts at once."""
        return max(1, iters // 20) if self.lr_schedule == "cosine" else 0

    # ---- loading ---------------------------------------------------------------------------------

    @classmethod
    def short_run(cls, model: str, dataset: str, *, iters: int, **settings: Any) -> TrainConfig:
        """The recipe for short adapter runs (demo, benchmarks): cosine decay after a 5% warmup, loss on
        the answers only; ``settings`` (rank, layers, lr, intervals...) fill in the rest."""
        base: dict[str, Any] = {"lr_schedule": "cosine", "warmup": max(1, iters // 20), "mask_prompt": True}
        return cls(model=model, dataset=dataset, iters=iters, **{**base, **settings})

    @classmethod
    def from_file(cls, path: Path | str, **overrides: Any) -> TrainConfig:
        """Load YAML/TOML/JSON; ``overrides`` (CLI flags that were given) win over the file."""
        return cls.from_dict(read_config_file(path), **overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> TrainConfig:
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        # "alpha" in the file must not beat --scale on the command line
        if "scale" in overrides and overrides["scale"] is not None:
            merged.pop("alpha", None)
        try:
            return cls.model_validate(merged)
        except ValidationError as e:
            raise TrainConfigError(f"invalid training config: {_first_error(e)}") from None

    # ---- mlx-lm views -----------------------------------------------------------------------------

    @property
    def is_resolved(self) -> bool:
        return self.model_path is not None and self.dataset_path is not None and self.iters is not None

    def lora_parameters(self) -> dict[str, Any]:
        """Exactly what ``linear_to_lora_layers`` receives (``keys`` omitted = mlx-lm's default)."""
        params: dict[str, Any] = {"rank": self.rank, "scale": self.scale, "dropout": self.dropout}
        if self.keys is not None:
            params["keys"] = list(self.keys)
        return params

    def mlx_lr_schedule(self) -> dict[str, Any] | None:
        """mlx-lm's ``lr_schedule`` dict for ``build_schedule`` (None = constant, no warmup)."""
        assert self.iters is not None
        warmup = self.warmup or 0
        if self.lr_schedule == "constant" and warmup == 0:
            return None
        if self.lr_schedule == "cosine":
            # build_schedule starts the decay at step warmup+1 (join_schedules boundary)
            decay_steps = max(1, self.iters - warmup - (1 if warmup else 0))
            sched: dict[str, Any] = {
                "name": "cosine_decay",
                "arguments": [self.learning_rate, decay_steps, self.min_learning_rate],
            }
        else:  # constant after warmup: a "linear" schedule from lr to lr
            sched = {"name": "linear_schedule", "arguments": [self.learning_rate, self.learning_rate, 1]}
        if warmup:
            sched["warmup"] = warmup
            sched["warmup_init"] = self.warmup_init
        return sched

    def mlx_adapter_config(self, adapter_path: Path, *, keys: list[str] | None = None) -> dict[str, Any]:
        """The fields ``mlx_lm.lora`` writes to adapter_config.json (``vars(args)``), from this config.

        ``mlx_lm.load(..., adapter_path=...)``/``mlx_lm.server --adapter-path`` read ``fine_tune_type``,
        ``num_layers`` and ``lora_parameters``; the rest documents the run the way mlx-lm would.
        """
        assert self.is_resolved
        lora = self.lora_parameters() if self.fine_tune_type != "full" else None
        if lora is not None and keys is not None:  # what the worker actually adapted, top-level modules too
            lora["keys"] = list(keys)
        return {
            "adapter_path": str(adapter_path),
            "batch_size": self.batch_size,
            "config": None,
            "data": str(self.dataset_path),
            "fine_tune_type": self.fine_tune_type,
            "grad_accumulation_steps": self.grad_accumulation_steps,
            "grad_checkpoint": self.grad_checkpoint,
            "iters": self.iters,
            "learning_rate": self.learning_rate,
            "lora_parameters": lora,
            "lr_schedule": self.mlx_lr_schedule(),
            "mask_prompt": self.mask_prompt,
            "max_seq_length": self.max_seq_length,
            "model": str(self.model_path),
            "num_layers": self.num_layers,
            "optimizer": self.optimizer,
            "optimizer_config": {self.optimizer: self.optimizer_kwargs()},
            "resume_adapter_file": None,
            "save_every": self.save_every,
            "seed": self.seed,
            "steps_per_eval": self.steps_per_eval,
            "steps_per_report": self.steps_per_report,
            "test": False,
            "train": True,
            "val_batches": self.val_batches,
        }

    def optimizer_kwargs(self) -> dict[str, Any]:
        return {"weight_decay": self.weight_decay} if self.optimizer == "adamw" else {}

    # ---- resolution -------------------------------------------------------------------------------

    def resolve(self, settings: Settings) -> TrainConfig:
        """A copy with model/dataset paths and every default made concrete; raises on what can't work."""
        model_ref = self.model or settings.default_model
        model_path = resolve_model(model_ref, settings).path
        n_layers = _model_layers(read_config(model_path))
        if self.num_layers is None:
            num_layers = min(DEFAULT_NUM_LAYERS, n_layers)
        elif self.num_layers == -1:
            num_layers = n_layers
        elif self.num_layers > n_layers:
            raise TrainConfigError(
                f"num_layers={self.num_layers} but model {model_ref!r} has only {n_layers} layers; "
                f"use --num-layers {n_layers} (or -1 for all)"
            )
        else:
            num_layers = self.num_layers

        hosts = None
        if self.hosts is not None:
            hosts = Path(self.hosts).expanduser().resolve()
            check_host_file(hosts, self.batch_size)
        dataset_path = resolve_dataset(self.dataset, Workspace(settings.workspace))
        n_train = count_lines(dataset_path / "train.jsonl")
        n_valid = count_lines(dataset_path / "valid.jsonl")
        if n_train < self.batch_size:
            raise TrainConfigError(
                f"dataset {self.dataset!r} has {n_train} training examples "
                f"but batch_size is {self.batch_size}; "
                "lower --batch-size or add examples"
            )
        pairs = dataset_format(dataset_path) == PAIRS_FORMAT
        if self.method in PREFERENCE_METHODS and not pairs:
            raise TrainConfigError(
                f"method {self.method} trains on preference pairs, and dataset {self.dataset!r} holds "
                "examples; make pairs with `tooltune data sample` then `tooltune data pick --method pairs`"
            )
        if self.method in ("sft", "rejection", "grpo") and pairs:
            raise TrainConfigError(
                f"dataset {self.dataset!r} holds preference pairs; train it with --method dpo or orpo"
                + (" (grpo samples the requests of an SFT dataset)" if self.method == "grpo" else "")
            )
        if self.method == "rejection" and dataset_extra(dataset_path).get("method") != "rejection":
            raise TrainConfigError(
                f"method rejection trains on the model's own correct answers, and dataset {self.dataset!r} "
                "was not picked from its samples; make one with `tooltune data sample` then `tooltune data "
                "pick --method rejection`, or train this one with --method sft"
            )
        if self.method == "grpo" and hosts is not None:
            raise TrainConfigError("method grpo samples and trains in one process; leave out hosts")
        if self.method in LOSS_METHODS and importlib.util.find_spec("mlx_lm_lora") is None:
            raise TrainConfigError(
                f"method {self.method} uses mlx-lm-lora's loss, which is not installed: "
                "pip install 'tooltune[rl]'"
            )
        init_adapter_path = (
            self._init_adapter(settings, model_path, num_layers) if self.init_adapter else None
        )
        if self.epochs is not None:
            iters = max(1, math.ceil(self.epochs * n_train / self.batch_size))
        else:
            iters = self.iters or DEFAULT_ITERS
        return self.model_copy(
            update={
                "model": model_ref,
                "model_path": model_path,
                "num_layers": num_layers,
                "iters": iters,
                "warmup": self.warmup if self.warmup is not None else self.default_warmup(iters),
                "steps_per_eval": self.steps_per_eval or max(1, iters // 2),
                "dataset_path": dataset_path,
                "hosts": hosts,
                "model_layers": n_layers,
                "train_examples": n_train,
                "valid_examples": n_valid,
                "init_adapter_path": init_adapter_path,
            }
        )

    def _init_adapter(self, settings: Settings, model_path: Path, num_layers: int) -> Path:
        """The starting adapter's folder, after checking it was trained on this base model with this run's
        LoRA shape (a different one would load partly, or not at all)."""
        from tooltune.adapters.registry import AdapterRegistry
        from tooltune.models.resolve import fingerprint_model

        assert self.init_adapter is not None
        registry = AdapterRegistry(Workspace(settings.workspace))
        registry.check_base(self.init_adapter, fingerprint_model(model_path), f"model {self.model!r}")
        folder = registry.path(self.init_adapter)
        shape = adapter_lora_shape(registry, self.init_adapter)
        ours = {
            "fine_tune_type": self.fine_tune_type,
            "rank": self.rank,
            "scale": self.scale,
            "num_layers": num_layers,
        }
        differ = [f"{k} {shape.get(k)} (this run: {v})" for k, v in ours.items() if shape.get(k) != v]
        recorded = shape.get("train_tokens")
        if recorded is not None and self.train_tokens is not None and recorded != self.train_tokens:
            differ.append(f"train_tokens {recorded} (this run: {self.train_tokens})")
        if differ:
            raise TrainConfigError(
                f"init_adapter {self.init_adapter!r} was trained with "
                + ", ".join(differ)
                + "; use its values"
            )
        return folder


class RingHost(BaseModel):
    """One process of a ``--hosts`` run: where mlx.launch starts it (``ssh``; 127.0.0.1 = here, no ssh)
    and the addresses its ring backend listens on."""

    ssh: str
    ips: list[str]

    @property
    def local(self) -> bool:
        return self.ssh == "127.0.0.1" and all(ipaddress.ip_address(ip).is_loopback for ip in self.ips)


HOST_FILE_EXAMPLE = '[{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}, {"ssh": "host2", "ips": ["192.168.1.2"]}]'


def read_host_file(path: Path) -> list[RingHost]:
    """The processes of an mlx.launch host file: a list of hosts, or the ``{"backend", "envs", "hosts"}``
    object ``mlx.distributed_config`` writes. Checked here, because mlx.launch only finds a bad file once
    the run is started (and a host with no IPs only when its ring backend needs them)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as e:
        raise TrainConfigError(f"cannot read the host file {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise TrainConfigError(f"{path}: not JSON ({e}); mlx.launch wants a list of hosts") from None
    entries = data
    if isinstance(data, dict) and "hosts" in data:
        backend = data.get("backend") or "ring"
        if backend != "ring":
            raise TrainConfigError(
                f"{path} asks for mlx.launch's {backend!r} backend; tooltune trains over the ring backend "
                'only: set "backend": "ring" or remove it'
            )
        envs = data.get("envs", [])
        if not isinstance(envs, list) or not all(isinstance(e, str) and "=" in e for e in envs):
            raise TrainConfigError(f'{path}: "envs" must be a list of "NAME=value" strings')
        entries = data["hosts"]
    if not isinstance(entries, list) or not all(isinstance(h, dict) for h in entries):
        raise TrainConfigError(
            f"{path}: expected a list like {HOST_FILE_EXAMPLE} "
            '(or the {"hosts": [...]} of mlx.distributed_config)'
        )
    hosts = []
    for i, entry in enumerate(entries):
        where = f"{path}: host {i + 1} of {len(entries)}"
        ssh, ips = entry.get("ssh"), entry.get("ips")
        if not isinstance(ssh, str) or not ssh.strip():
            raise TrainConfigError(
                f'{where} has no "ssh" (the host to start its process on; 127.0.0.1 = here)'
            )
        if not isinstance(ips, list) or not ips:
            raise TrainConfigError(
                f'{where} ({ssh}) has no "ips": the ring backend connects processes by IP address, '
                'e.g. "ips": ["127.0.0.1"] for a process here'
            )
        for ip in ips:
            try:
                ipaddress.ip_address(ip if isinstance(ip, str) else "")
            except ValueError:
                raise TrainConfigError(f'{where} ({ssh}): {ip!r} in "ips" is not an IP address') from None
        hosts.append(RingHost(ssh=ssh, ips=ips))
    return hosts


def check_host_file(path: Path, batch_size: int) -> list[RingHost]:
    """The host file's processes, refused when they cannot run ``batch_size`` together: mlx-lm splits each
    batch evenly over the processes."""
    hosts = read_host_file(path)
    if not hosts:
        raise TrainConfigError(f"{path} lists no hosts; expected a list like {HOST_FILE_EXAMPLE}")
    if len(hosts) == 1:
        raise TrainConfigError(f"{path} names one process; leave --hosts out to train in one")
    if batch_size % len(hosts):
        raise TrainConfigError(
            f"batch_size {batch_size} does not split over the {len(hosts)} processes of {path}; "
            f"use a multiple of {len(hosts)}"
        )
    return hosts


def _model_layers(config: dict[str, Any]) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(config.get(key), int):
            return config[key]
    text = config.get("text_config")
    if isinstance(text, dict):
        return _model_layers(text)
    raise TrainConfigError("the model's config.json does not say how many layers it has (num_hidden_layers)")


def resolve_dataset(ref: str, ws: Workspace) -> Path:
    """A workspace dataset name (``<ws>/datasets/<name>``) or a folder holding train.jsonl."""
    candidates = []
    path = Path(ref).expanduser()
    if "/" in ref or path.is_absolute() or ref.startswith("."):
        candidates.append(path)
    else:
        candidates += [ws.datasets / ref, path]
    for cand in candidates:
        if (cand / "train.jsonl").is_file():
            return cand.resolve()
    known = (
        ", ".join(sorted(p.name for p in ws.datasets.glob("*") if (p / "train.jsonl").is_file())) or "none"
    )
    raise TrainConfigError(
        f"dataset {ref!r} not found (need a folder with train.jsonl; workspace datasets: {known}); "
        "create one with `tooltune data` or pass a folder path"
    )


def adapter_lora_shape(registry: Any, adapter: str | None) -> dict[str, Any]:
    """The LoRA shape of a registered adapter, read from its adapter_config.json (what mlx-lm loads;
    averaged and imported adapters have it too), plus the token rows its training recorded: what a run
    that starts from it (``init_adapter``) must use to load its weights."""
    if adapter is None:
        return {}
    cfg = json.loads((registry.path(adapter) / "adapter_config.json").read_text("utf-8"))
    if cfg.get("fine_tune_type", "lora") == "full":
        raise TooltuneError(
            f"adapter {adapter!r} is a full fine-tune: a run can start from LoRA adapters only"
        )
    lora = cfg.get("lora_parameters") or {}
    shape: dict[str, Any] = {
        "fine_tune_type": cfg.get("fine_tune_type", "lora"),
        "num_layers": cfg.get("num_layers"),
        **{k: lora[k] for k in ("rank", "scale", "dropout") if lora.get(k) is not None},
    }
    recorded = registry.get(adapter).train_config
    for k in ("keys", "train_tokens"):
        if recorded.get(k) is not None:
            shape[k] = recorded[k]
    return {k: v for k, v in shape.items() if v is not None}


def dataset_extra(path: Path) -> dict[str, Any]:
    """A dataset folder's dataset.json ``extra`` (how it was made: a pick's method, a pairs format), or {}."""
    meta = path / "dataset.json"
    if not meta.is_file():
        return {}
    try:
        extra = json.loads(meta.read_text("utf-8")).get("extra") or {}
    except (ValueError, AttributeError, OSError):  # bad JSON or bytes that are no UTF-8
        return {}
    return extra if isinstance(extra, dict) else {}


def dataset_format(path: Path) -> str:
    """What a dataset folder holds: ``examples`` (SFT) or preference pairs, from its dataset.json."""
    return str(dataset_extra(path).get("format", "examples"))


def count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def dataset_hash(path: Path) -> str:
    """The dataset's content hash: dataset.json's own hash when the data room wrote one, else sha256
    of the splits."""
    meta = path / "dataset.json"
    if meta.is_file():
        try:
            recorded = json.loads(meta.read_text()).get("hash")
            if isinstance(recorded, str) and recorded:
                return recorded
        except (ValueError, AttributeError):
            pass
    h = hashlib.sha256()
    for split in ("train", "valid", "test"):
        f = path / f"{split}.jsonl"
        if f.is_file():
            h.update(split.encode())
            h.update(f.read_bytes())
    return "sha256:" + h.hexdigest()[:16]


def read_config_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (ValueError, yaml.YAMLError) as e:
        raise TrainConfigError(f"could not parse {path}: {e}") from None
    if not isinstance(data, dict):
        raise TrainConfigError(f"{path} must hold a mapping of option: value")
    return data


def _first_error(e: ValidationError) -> str:
    err = first_error(e, default="config")
    msg = err.msg
    if err.type == "extra_forbidden":
        msg = f"unknown option (known: {', '.join(sorted(TrainConfig.model_fields))})"
    return f"{err.where}: {msg}"
