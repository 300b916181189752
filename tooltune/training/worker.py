"""The training worker: ``python -m tooltune.training.worker RUN_DIR``.

It drives mlx-lm's tuner API itself, mirroring ``mlx_lm/lora.py`` (freeze, ``linear_to_lora_layers``,
trainable-parameter count, ``adapter_config.json``, ``train``), because ``mlx_lm.lora.run`` replaces any
callback we pass and its console output is not meant to be parsed. Everything the parent needs is
written as files in the run folder: events.jsonl (one line per report), run.json (status, reasons),
metrics.json, checkpoints/, adapter/.

Two hooks make mlx-lm's ``train()`` resumable and cancellable without forking it:
- the ``iterate_batches`` it accepts is wrapped: each request for the next batch is a step boundary,
  where we checkpoint every ``save_every`` steps and honour SIGTERM (checkpoint, then stop);
- on resume, that wrapper replays the data order of the first ``k`` steps (its own RNG, untouched by
  validation), and ``train`` runs the remaining ``iters - k`` steps; callback iterations are offset by ``k``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import signal
import sys
import time
import traceback
import types
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tooltune.adapters.registry import AdapterRecord, AdapterRegistry
from tooltune.data.lint import lint_dataset_dir
from tooltune.errors import TooltuneError
from tooltune.jobs import JobRecord, JobStore, utcnow
from tooltune.logs import configure_logging, get_logger
from tooltune.training.loss_plot import write_loss_plot
from tooltune.training.losses import (
    anchored_loss,
    answer_only_loss,
    answer_positions,
    head_split,
    weighted_loss,
)
from tooltune.training.runs import RunRecord, TrainEvent, read_events, read_run, release_lock, write_run
from tooltune.training.seq_lengths import check_trainable, sequence_lengths
from tooltune.training.token_rows import (
    apply_token_rows,
    default_tokens,
    inspect_token_rows,
    resolve_token_ids,
    token_rows_frozen,
    untrained_row_parameters,
)
from tooltune.training.train_config import PREFERENCE_METHODS, TrainConfig, dataset_extra
from tooltune.training.value_tokens import CALL_OPEN, value_token_mask, value_token_weights
from tooltune.workspace import Workspace, atomic_write_json, atomic_write_text

log = get_logger("tooltune.training.worker")


class RunCancelled(Exception):
    """Raised at a step boundary after SIGTERM, once the checkpoint is on disk."""

    def __init__(self, iteration: int) -> None:
        super().__init__(f"cancelled at iteration {iteration}")
        self.iteration = iteration


class ConfigNotAppliedError(TooltuneError):
    pass


class DatasetLintError(TooltuneError):
    pass


def _peak_rss_gb() -> float:
    """Peak resident memory of this process (what the OS sees; MLX's own counter misses non-MLX memory)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1e9 if sys.platform == "darwin" else 1e6)


def describe_failure(exc: BaseException) -> str:
    """One sentence a user can act on, for run.json and the CLI/MCP answer."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, TooltuneError):
        return text
    low = text.lower()
    if (
        isinstance(exc, MemoryError)
        or "out of memory" in low
        or "bad_alloc" in low
        or "unable to allocate" in low
    ):
        return (
            f"out of memory while training ({text}); lower --batch-size or --max-seq-length, train fewer "
            "--num-layers, or add --grad-checkpoint"
        )
    if "[ring]" in text:  # mlx's ring backend, between the processes of a --hosts run
        if "peer was lost" in low or "closed by the peer" in low or "send/recv errors" in low:
            return (
                f"another process of this --hosts run stopped ({text}); worker.log holds its own error; "
                "checkpoints before this point are kept"
            )
        if "bind" in low:
            return (
                f"the ring backend could not listen on its port ({text}): another --hosts run, or some "
                "other program, holds it; wait for it to end"
            )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full while writing {exc.filename or 'run files'}; free some space, then resume the run"
    return f"{type(exc).__name__}: {text}"


class LossNotFiniteError(TooltuneError):
    """Training diverged (or had nothing to learn from): the weights are no longer usable."""


def check_finite_loss(kind: str, iteration: int, loss: float, max_seq_length: int) -> None:
    """Stop a run whose loss is NaN/inf instead of registering a broken adapter.

    Two causes seen in practice: a learning rate too high for mlx-lm's LoRA scale (diverges), and
    examples longer than max_seq_length under mask_prompt, where truncation removes every trained
    token and the loss is 0/0.
    """
    if math.isfinite(loss):
        return
    raise LossNotFiniteError(
        f"{kind} loss became {loss} at iteration {iteration}: lower --learning-rate (mlx-lm scales LoRA "
        f"updates by --scale), or raise --max-seq-length (now {max_seq_length}) if examples are longer, "
        "so the trained turn is not cut off; checkpoints before this point are kept"
    )


class Worker:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.ws = Workspace(run_dir.parent.parent)
        self.store = JobStore(self.ws)
        self.run = read_run(run_dir)
        self.job_id = self.run.job_id or ""
        self.config = TrainConfig.model_validate_json((run_dir / "config.json").read_text())
        self.start_iter = self.run.resume_from or 0
        self.cancel_requested = False
        self.trained_tokens = 0
        self.start_tokens = 0
        self.train_started = time.monotonic()
        self.last_checkpoint: int | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.optimizer: Any = None
        self._weight_cache: dict[bytes, Any] = {}  # loss weights per distinct token row
        self._sampler: Any = None  # grpo: each step's answers (training/grpo.py Sampler)
        self._check_requests: Any = None  # the answer check's requests (answer_check.py)
        # data-parallel runs (``--hosts``, started by mlx.launch): every process trains, rank 0 alone writes
        # the run's files and the job; the others own nothing and stop when rank 0 does. The rank is read
        # from mlx.launch's MLX_RANK before the group exists, so a process whose group fails to form
        # (a port taken) does not take itself for rank 0 and write the run's end.
        rank = os.environ.get("MLX_RANK", "0")
        self.rank = int(rank) if rank.isdigit() else 0
        self.world_size = 1
        # where the job's time went, and every token its steps processed (prompt and padding-free answer
        # alike: mlx-lm's own count is of the tokens that carry loss)
        self.validation_seconds = 0.0
        self.checkpoint_seconds = 0.0
        self.processed_tokens = 0

    # ---- lifecycle -----------------------------------------------------------------------------------

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def main(self) -> int:
        import mlx.core as mx

        from tooltune.device import detect_device, keep_mlx_on

        keep_mlx_on(detect_device(), mx)  # TOOLTUNE_DEVICE=cpu keeps a CUDA build of MLX on the CPU
        try:
            # a group of one unless mlx.launch started this process; a --hosts run insists on the ring it
            # was launched for (a process that fell back to a group of one would train, and write, alone)
            many = self.config.hosts is not None
            group = mx.distributed.init(strict=many, backend="ring" if many else "any")
            if many and group.size() < 2:
                raise TooltuneError(f"--hosts run, but MLX formed a group of {group.size()} process")
            self.rank, self.world_size = group.rank(), group.size()
            if self.leader:  # a follower keeps the default: mlx.launch stops it when another rank fails
                signal.signal(signal.SIGTERM, self._on_signal)
                signal.signal(signal.SIGINT, self._on_signal)
            self._mark_running()
            result = self._train()
        except RunCancelled as c:
            self._finish("cancelled", error=None, result={"cancelled_at": c.iteration})
            return 0
        except BaseException as e:  # noqa: BLE001 — every failure must end up in run.json
            traceback.print_exc()
            reason = describe_failure(e)
            log.error("train.failed", run=self.run.id, reason=reason, rank=self.rank)
            try:
                self._finish("failed", error=reason)
            finally:
                if self.leader:
                    release_lock(self.ws, self.job_id)
            return 1
        self._finish("succeeded", result=result)
        return 0

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        log.info("train.cancel_signal", signal=signum)
        self.cancel_requested = True

    def _mark_running(self) -> None:
        from importlib.metadata import version

        import mlx.core as mx

        blas = "openblas" if "openblas" in os.environ.get("LD_PRELOAD", "") else "default"
        device = str(mx.default_device())  # Device(gpu, 0) with MLX's CUDA backend, Device(cpu, 0) here
        log.info(
            "train.device",
            device=device,
            blas=blas,
            rank=self.rank,
            processes=self.world_size,
            pid=os.getpid(),
        )
        self.run = self.run.model_copy(
            update={
                "status": "running",
                "pid": os.getpid(),
                "started": self.run.started or utcnow(),
                "mlx_version": version("mlx"),
                "mlx_lm_version": version("mlx-lm"),
                "blas": blas,
                "device": device,
                "processes": self.world_size,
            }
        )
        self._save_run()
        job = self._update_job(
            self.job_id, status="running", pid=os.getpid(), progress={"message": "loading model"}
        )
        if job is not None and job.cancel_requested:  # cancelled while we were starting (JobStore.cancel)
            self.cancel_requested = True

    def _finish(self, status: str, *, error: str | None = None, result: dict[str, Any] | None = None) -> None:
        """Final writes in this order: artefacts, run.json, the training lock freed, job — so a reader
        seeing a final job finds the rest and can start the next run at once."""
        if not self.leader:
            return

        elapsed = time.monotonic() - self.train_started
        run = self.run.model_copy(
            update={
                "status": status,
                "error": error,
                "finished": utcnow(),
                "last_checkpoint": self.last_checkpoint or self.run.last_checkpoint,
                "train_seconds": self.run.train_seconds + elapsed,
            }
        )
        events = read_events(self.run_dir)
        metrics = self._metrics(events, run, elapsed)
        try:
            atomic_write_json(self.run_dir / "metrics.json", metrics)
            if events:
                write_loss_plot(self.run_dir / "loss.svg", events, title=f"{run.id} ({status})")
        except OSError as e:
            log.warning("train.metrics_write_failed", error=str(e))
        write_run(self.run_dir, run)
        self.run = run
        res = {
            "run_id": run.id,
            "run_dir": str(self.run_dir),
            "adapter": run.adapter_name if run.registered else None,
            "metrics": metrics,
            **(result or {}),
        }
        if run.registration_error:
            res["registration_error"] = run.registration_error
        # the lock goes before the job turns final: whoever waits for the job may start the next run
        release_lock(self.ws, self.job_id)
        self._update_job(
            self.job_id,
            status=status,
            error=error,
            result=res,
            progress={"current": run.iteration, "message": error or status},
        )
        log.info("train.finished", run=run.id, status=status, error=error)

    def _metrics(self, events: list[TrainEvent], run: RunRecord, seconds: float) -> dict[str, Any]:
        """metrics.json's numbers (:func:`summarize`), with a grpo run's rewards in short."""
        metrics = summarize(events, run, self.time_spent(seconds))
        if (self.run_dir / "rollouts.jsonl").is_file():
            from tooltune.training.grpo import summarize_rollouts

            metrics["rollouts"] = summarize_rollouts(self.run_dir / "rollouts.jsonl")
        return metrics

    # ---- training ------------------------------------------------------------------------------------

    def _train(self) -> dict[str, Any]:
        import mlx.core as mx
        import numpy as np
        from mlx_lm.tuner.datasets import CacheDataset
        from mlx_lm.tuner.trainer import TrainingArgs, train
        from mlx_lm.tuner.utils import linear_to_lora_layers, print_trainable_parameters
        from mlx_lm.utils import load, save_config

        cfg = self.config
        if not cfg.is_resolved:
            raise TooltuneError(
                "config.json is not resolved; start runs with tooltune.training.runs.start_training"
            )
        assert cfg.iters is not None and cfg.num_layers is not None and cfg.dataset_path and cfg.model_path
        self._check_cancel_before_training()
        model, tokenizer = load(str(cfg.model_path))
        dpo = cfg.method in PREFERENCE_METHODS  # trains on pairs (dpo or orpo)
        grpo = cfg.method == "grpo"  # samples the model on the dataset's requests
        rejection = cfg.method == "rejection"  # SFT on the model's own right answers, checked as dpo is
        if dpo:  # pairs are checked as they are tokenized (a record that does not render is named, skipped)
            from tooltune.training.preference import load_pairs

            train_set: Any = load_pairs(Path(cfg.dataset_path) / "train.jsonl", tokenizer, cfg.max_seq_length)
            valid_set: Any = load_pairs(Path(cfg.dataset_path) / "valid.jsonl", tokenizer, cfg.max_seq_length)
        elif grpo:
            from tooltune.training.grpo import GrpoPrompts, load_prompts

            if self.start_iter == 0:
                self._lint(tokenizer)
            train_set = load_prompts(
                Path(cfg.dataset_path) / "train.jsonl",
                tokenizer,
                cfg.max_seq_length,
                cfg.max_completion_tokens,
            )
            valid_set = GrpoPrompts()  # no validation loss: GRPO's is no measure; evaluate the adapter
        else:
            if self.start_iter == 0:
                self._lint(tokenizer)  # reuses the tokenizer just loaded: one load, not two
            train_set, valid_set = load_splits(Path(cfg.dataset_path), tokenizer, cfg.mask_prompt)
        if (dpo or grpo) and train_set.skipped + valid_set.skipped:
            left_out = train_set.skipped + valid_set.skipped
            self._warn(f"{len(left_out)} {'pairs' if dpo else 'requests'} left out (first: {left_out[0]})")
        if (dpo or grpo) and len(train_set) < cfg.batch_size:
            raise TooltuneError(
                f"{cfg.dataset_path}/train.jsonl has {len(train_set)} usable "
                f"{'pairs' if dpo else 'requests'} for batch_size {cfg.batch_size}"
                + (
                    f" ({len(train_set.skipped)} left out, first: {train_set.skipped[0]})"
                    if train_set.skipped
                    else ""
                )
            )
        if len(train_set) == 0:
            raise TooltuneError(f"{cfg.dataset_path}/train.jsonl is empty; add training examples")

        mx.random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        model.freeze()
        if cfg.num_layers > len(model.layers):
            raise TooltuneError(
                f"num_layers={cfg.num_layers} but the model has only {len(model.layers)} layers; "
                "lower --num-layers"
            )
        if cfg.fine_tune_type == "full":
            for layer in model.layers[-cfg.num_layers :]:
                layer.unfreeze()
        else:
            linear_to_lora_layers(
                model, cfg.num_layers, cfg.lora_parameters(), use_dora=cfg.fine_tune_type == "dora"
            )
        token_ids = self._apply_token_rows(model, tokenizer)
        if cfg.init_adapter_path is not None:
            self._load_init_adapter(model)
        self.model = model
        self.tokenizer = tokenizer
        self.optimizer = self._build_optimizer()
        applied = inspect_adaptation(model, cfg, token_ids)
        if cfg.init_adapter_path is not None:
            applied["init_adapter"] = {"name": cfg.init_adapter, "path": str(cfg.init_adapter_path)}
        train_data = train_set if dpo or grpo else CacheDataset(train_set)  # tokenized once, on first use
        if not (dpo or grpo):  # what max_seq_length cuts off (pairs and GRPO prompts are checked as loaded)
            lengths = sequence_lengths((train_data[i] for i in range(len(train_data))), cfg.max_seq_length)
            check_trainable(lengths, str(cfg.dataset))
            applied["sequence_lengths"] = lengths.model_dump()
            if (warning := lengths.warning()) and self.start_iter == 0:
                self._warn(warning)
        # rejection/dpo/orpo/grpo: the starting model's answers to the answer check's requests
        check_before: list[dict[str, Any]] = []
        if dpo:
            applied["method"] = self._prepare_pairs(model, train_set, valid_set)
        if grpo:
            applied["method"] = self._prepare_sampler(model, tokenizer, train_set)
        if rejection:
            picked = dataset_extra(Path(cfg.dataset_path))
            applied["method"] = {
                "name": "rejection",
                "examples": len(train_set),
                "valid_examples": len(valid_set),
                "picked": picked.get("from", {}),
                "samples_hash": picked.get("samples_hash"),
            }
        if dpo or grpo or rejection:
            t0 = time.monotonic()
            check_before = self._answer_check_before(model, tokenizer)
            if check_before:
                applied["method"]["answer_check"] = {
                    "requests": len(check_before),
                    "right_before": sum(a["right"] for a in check_before),
                    "seconds_before": round(time.monotonic() - t0, 2),
                }
                log.info("answer_check.before", **applied["method"]["answer_check"])
        if cfg.value_loss_weight != 1.0 or cfg.anchor_loss_weight:
            values = self._value_token_summary(train_data)
            if cfg.value_loss_weight != 1.0:
                applied["value_tokens"] = {"weight": cfg.value_loss_weight, **values}
            if cfg.anchor_loss_weight:
                applied["anchor"] = {
                    "weight": cfg.anchor_loss_weight,
                    "reference": "the base model (every LoRA at scale 0)",
                    **values,
                }
        if cfg.decision_loss_weight != 1.0:
            applied["decision_tokens"] = self._decision_token_summary(train_data)
        # where the LM head ran: what the trainer saw, read back (answer_only_head can be on and not apply)
        answer_head = (grpo and head_split(model) is not None) or (self._answer_only and not dpo)
        applied["lm_head"] = "answer positions" if answer_head else "every position"
        self.run = self.run.model_copy(update={"applied": applied})
        self._save_run()
        if self.start_iter:
            self._load_checkpoint(self.start_iter)
        print_trainable_parameters(model)

        adapter_dir = self.run_dir / "adapter"
        adapter_dir.mkdir(parents=True, exist_ok=True)
        # with token rows, mlx-lm needs explicit keys to rebuild the top-level LoRA modules on load
        keys = [*applied["keys"], *applied["top_level_keys"]] if token_ids else None
        if self.leader:
            save_config(cfg.mlx_adapter_config(adapter_dir, keys=keys), adapter_dir / "adapter_config.json")

        if len(valid_set) < cfg.batch_size and not grpo:  # mlx-lm can't make one validation batch
            self._warn(
                f"validation skipped: {len(valid_set)} validation examples is fewer than "
                f"batch_size {cfg.batch_size}"
            )
        remaining = cfg.iters - self.start_iter
        self._data_rng = np.random.RandomState(cfg.seed).get_state()
        self._update_job(
            self.job_id, progress={"current": self.start_iter, "total": cfg.iters, "message": "training"}
        )
        self.train_started = time.monotonic()
        if remaining > 0:
            args = TrainingArgs(
                batch_size=cfg.batch_size,
                iters=remaining,
                val_batches=cfg.val_batches,
                steps_per_report=cfg.steps_per_report,
                steps_per_eval=cfg.steps_per_eval,
                steps_per_save=remaining + 1,  # our own checkpoints (global numbering + optimizer state)
                adapter_file=str(adapter_dir / "adapters.safetensors"),
                max_seq_length=cfg.max_seq_length,
                grad_checkpoint=cfg.grad_checkpoint,
                grad_accumulation_steps=cfg.grad_accumulation_steps,
            )
            if dpo:
                from tooltune.training.preference import dpo_loss_fn, orpo_loss_fn

                pref = dpo_loss_fn(cfg.beta, cfg.dpo_loss) if cfg.method == "dpo" else orpo_loss_fn(cfg.beta)
                loss_kw: dict[str, Any] = {"loss": pref}
            elif grpo:
                from tooltune.training.grpo import grpo_loss_fn

                decision_token = self._sampler.decision_token if self._sampler is not None else None
                loss_kw = {
                    "loss": grpo_loss_fn(cfg.beta, cfg.sample_temperature, cfg.decision_kl, decision_token)
                }
            else:
                loss_kw = {"loss": self._loss()} if self._custom_loss or self._answer_only else {}
            enough_valid = len(valid_set) >= cfg.batch_size
            train(
                model=model,
                optimizer=self.optimizer,
                train_dataset=train_data,
                val_dataset=(valid_set if dpo else CacheDataset(valid_set)) if enough_valid else None,
                args=args,
                iterate_batches=(
                    self._iterate_pairs if dpo else self._iterate_rollouts if grpo else self._iterate_batches
                ),
                training_callback=EventWriter(self),
                **loss_kw,
            )
        self._save_checkpoint(cfg.iters)  # a SIGTERM during the last step loses nothing: the run is complete
        self.run = self.run.model_copy(update={"iteration": cfg.iters})
        if check_before:
            self._answer_check_after(model, tokenizer, check_before)
        done = self.run.model_copy(
            update={
                "status": "succeeded",
                "train_seconds": self.run.train_seconds + time.monotonic() - self.train_started,
            }
        )
        self._register(self._metrics(read_events(self.run_dir), done, time.monotonic() - self.train_started))
        return {"adapter_path": str(adapter_dir)}

    def _load_init_adapter(self, model: Any) -> None:
        """Start the LoRA weights from ``init_adapter``: every one of its arrays must have its place, of
        the same shape, in this run's LoRA (resolve checked rank, scale and layers; keys and token rows are
        checked here), or the starting model would silently differ from the adapter."""
        import mlx.core as mx
        from mlx.utils import tree_flatten

        cfg = self.config
        assert cfg.init_adapter_path is not None
        weights = mx.load(str(Path(cfg.init_adapter_path) / "adapters.safetensors"))
        params = dict(tree_flatten(model.trainable_parameters()))
        missing = sorted(k for k in weights if k not in params)
        shapes = sorted(k for k in weights if k in params and weights[k].shape != params[k].shape)
        if missing or shapes:
            what = f"arrays this run's LoRA lacks ({', '.join(missing[:3])})" if missing else ""
            what += ("; " if what else "") + (f"other shapes ({', '.join(shapes[:3])})" if shapes else "")
            raise ConfigNotAppliedError(
                f"init_adapter {cfg.init_adapter!r} does not fit this run: {what}; train with the adapter's "
                "keys and train_tokens"
            )
        model.load_weights(list(weights.items()), strict=False)
        mx.eval(model.parameters())

    def _prepare_pairs(self, model: Any, train_set: Any, valid_set: Any) -> dict[str, Any]:
        """For dpo, score every pair under the starting model (the reference); say what the run trains."""
        from tooltune.training.preference import score_reference

        cfg = self.config
        common = {
            "name": cfg.method,
            "beta": cfg.beta,
            "pairs": len(train_set),
            "valid_pairs": len(valid_set),
            "per_reason": dict(sorted(train_set.reasons.items())),
        }
        if cfg.method == "orpo":
            return {
                **common,
                "loss": "mlx-lm-lora orpo_loss: NLL of the chosen answer - beta * log-odds ratio",
            }
        t0 = time.monotonic()
        for pairs in (train_set, valid_set):
            score_reference(model, pairs, loss_type=cfg.dpo_loss, max_seq_length=cfg.max_seq_length)
        return {
            **common,
            "loss_type": cfg.dpo_loss,
            "reference": "the starting model (base"
            + (" + init_adapter" if cfg.init_adapter else "")
            + "), scored once per pair before step 1",
            "reference_seconds": round(time.monotonic() - t0, 2),
        }

    def _answer_check_before(self, model: Any, tokenizer: Any) -> list[dict[str, Any]]:
        """rejection/dpo/orpo/grpo: the starting model's greedy answers to the check requests,
        kept for the comparison after the last step; none when the check is off or finds no request."""
        from tooltune.data.onpolicy import ALWAYS_RIGHT_FILE
        from tooltune.training.answer_check import MIN_RIGHT, answer, check_requests

        cfg = self.config
        if not cfg.answer_check or not self.leader:  # rank 0 alone decides (and writes) a --hosts run's end
            return []
        folder = Path(cfg.dataset_path or "")
        try:
            self._check_requests = check_requests(
                [folder / "valid.jsonl", folder / "train.jsonl"],
                tokenizer,
                limit=cfg.answer_check,
                max_seq_length=cfg.max_seq_length,
                max_tokens=cfg.max_completion_tokens,
                seed=cfg.seed,
                always_right=folder / ALWAYS_RIGHT_FILE,
                pairs=cfg.method in PREFERENCE_METHODS,  # grpo: the SFT dataset's examples
            )
            if not len(self._check_requests):
                self._warn(
                    "answer check skipped: no request of the dataset (its pairs', its examples' or the "
                    "always-right ones) can be scored"
                )
                return []
            before = answer(model, tokenizer, self._check_requests, max_tokens=cfg.max_completion_tokens)
        except Exception as e:  # noqa: BLE001 — a check that cannot run never stops the training
            self._warn(f"answer check skipped: {describe_failure(e)}")
            return []
        for g in sorted(set(self._check_requests.groups)):
            right = sum(a["right"] for a in before if a["group"] == g)
            if right < MIN_RIGHT:
                self._warn(
                    f"answer check: the starting model gets {right} of its {g.replace('_', ' ')} requests "
                    f"right, fewer than the {MIN_RIGHT} a significant loss needs: that half cannot fail the "
                    "run (raise --answer-check to check more requests)"
                )
        return before

    def _answer_check_after(self, model: Any, tokenizer: Any, before: list[dict[str, Any]]) -> None:
        """rejection/dpo/orpo/grpo: the trained adapter answers the check requests; the comparison goes into
        run.json, and an adapter that answers significantly worse fails the run before it is registered."""
        from tooltune.training.answer_check import answer, compare_answers, worse_error

        cfg = self.config
        t0 = time.monotonic()
        try:
            after = answer(model, tokenizer, self._check_requests, max_tokens=cfg.max_completion_tokens)
        except Exception as e:  # noqa: BLE001 — the trained adapter is kept (registered) when the check fails
            self._warn(
                f"answer check after training failed, the adapter is kept unchecked: {describe_failure(e)}"
            )
            return
        summary = compare_answers(before, after)
        summary["seconds"] = round(time.monotonic() - t0, 2)
        earlier = (self.run.applied.get("method") or {}).get("answer_check") or {}
        summary["seconds_before"] = earlier.get("seconds_before")
        self.validation_seconds += summary["seconds"]  # a check of the model, not a training step
        counts = Counter(self._check_requests.splits)
        order = {"valid": 0, "train": 1}  # the pairs' validation split first, the always-right ones last
        splits = {k: counts[k] for k in sorted(counts, key=lambda k: (order.get(k, 2), k))}
        summary["splits"] = splits
        log.info("answer_check.after", **{k: v for k, v in summary.items() if k != "example_lost"})
        self._record_method(answer_check=summary)
        if summary["worse"]:
            raise worse_error(summary, method=cfg.method, learning_rate=cfg.learning_rate, splits=splits)

    def _record_method(self, **fields: Any) -> None:
        """Add ``fields`` to what run.json says of the training method (``applied.method``) and save it."""
        applied = dict(self.run.applied)
        applied["method"] = {**applied.get("method", {}), **fields}
        self.run = self.run.model_copy(update={"applied": applied})
        self._save_run()

    def _prepare_sampler(self, model: Any, tokenizer: Any, prompts: Any) -> dict[str, Any]:
        """For grpo: the sampler of each step's answers, with the starting LoRA weights as the reference;
        say what the run trains."""
        import numpy as np
        from mlx.utils import tree_flatten

        from tooltune.training.grpo import REWARDS, Sampler, tool_call_token

        cfg = self.config
        decision_token = tool_call_token(tokenizer) if cfg.decision_kl else None
        self._sampler = Sampler(
            model,
            tokenizer,
            prompts,
            batch_size=cfg.batch_size,
            group_size=cfg.group_size,
            temperature=cfg.sample_temperature,
            max_tokens=cfg.max_completion_tokens,
            beta=cfg.beta,
            # before any checkpoint is loaded: the starting policy (fresh LoRA = the base, or init_adapter)
            reference_weights=tree_flatten(model.trainable_parameters())
            if cfg.beta or cfg.decision_kl
            else None,
            rng=np.random.RandomState(cfg.seed),
            replay_draws=self._replayed_rollouts(),
            no_call_share=cfg.no_call_share,
            decision_token=decision_token,
        )
        no_call = sum(c.expects_no_call for c in prompts.cases)
        return {
            "name": "grpo",
            "requests": len(prompts),
            "requests_left_out": len(prompts.skipped),
            "no_call_requests": no_call,
            # the share of draws where no call is due: as set, or as the requests hold them
            "no_call_share": cfg.no_call_share
            if cfg.no_call_share is not None
            else round(no_call / max(len(prompts), 1), 4),
            "no_call_share_set": cfg.no_call_share is not None,
            "group_size": cfg.group_size,
            "sample_temperature": cfg.sample_temperature,
            "max_completion_tokens": cfg.max_completion_tokens,
            "beta": cfg.beta,
            "decision_kl": cfg.decision_kl,
            "reference": "none (beta 0)"
            if not (cfg.beta or cfg.decision_kl)
            else "the starting model (base" + (" + init_adapter" if cfg.init_adapter else "") + ")",
            "rewards": REWARDS,
            "loss": "GRPO (mlx-lm-lora's grpo loss type, one update per rollout) + beta * per-token KL"
            + (" + decision_kl * KL of the first token's call/no-call choice" if cfg.decision_kl else ""),
            "validation": "none: a GRPO loss measures nothing; the answer check (answer_check) and an "
            "eval of the adapter (tooltune eval) do",
        }

    def _replayed_rollouts(self) -> list[int]:
        """On resume: keep ``rollouts.jsonl``'s lines of the steps the checkpoint holds (later ones ran
        again), and return each kept step's draws, so the request order replays as it ran."""
        path = self.run_dir / "rollouts.jsonl"
        if not path.is_file():
            return []
        from tooltune.training.grpo import read_rollouts

        kept = [row for row in read_rollouts(path) if row["iteration"] <= self.start_iter]
        if self.leader:
            atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in kept))
        return [int(row.get("draws", 1)) for row in kept]

    def _iterate_rollouts(
        self,
        dataset: Any,
        batch_size: int,
        max_seq_length: int,
        loop: bool = False,
        seed: int | None = None,
        comm_group: Any = None,
    ) -> Iterator[Any]:
        """GRPO's batches: each step's answers sampled from the model as it is then, scored and batched
        (training/grpo.py), through the same step boundaries (:meth:`_steps`); a resumed run replays the
        request order without sampling. Each step's rewards go to ``rollouts.jsonl``."""
        from tooltune.training.grpo import (
            PolicyCollapsedError,
            check_not_collapsed,
            read_rollouts,
            rollout_record,
        )

        if not loop:
            return
        sampler = self._sampler
        step = [self.start_iter]
        # the steps before a resume count too: a run resumed from a checkpoint taken mid-collapse stops again
        history = read_rollouts(self.run_dir / "rollouts.jsonl")
        history = [r for r in history if r["iteration"] <= self.start_iter]

        def draw() -> Any:
            rollout = sampler()
            step[0] += 1
            record = rollout_record(step[0], rollout)
            if self.leader:
                with open(self.run_dir / "rollouts.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            history.append(record)
            try:
                check_not_collapsed(history, self.config.learning_rate)
            except PolicyCollapsedError as e:  # on record for `train improve`, which ends its loop there
                self._record_method(collapsed_at=e.iteration)
                raise
            return rollout

        for rollout in self._steps(draw, lambda r: r.processed_tokens, replay=sampler.skip):
            yield rollout.batch

    def _iterate_pairs(
        self,
        dataset: Any,
        batch_size: int,
        max_seq_length: int,
        loop: bool = False,
        seed: int | None = None,
        comm_group: Any = None,
    ) -> Iterator[Any]:
        """The preference counterpart of :meth:`_iterate_batches`: pair batches through the same step
        boundaries (:meth:`_steps`)."""
        import numpy as np

        from tooltune.training.preference import iterate_pair_batches

        if not loop:
            yield from iterate_pair_batches(
                dataset,
                batch_size,
                max_seq_length,
                loop=False,
                rng=None,
                rank=self.rank,
                size=self.world_size,
            )
            return
        seen = [0]  # tokens of the last batch drawn (prompt and answer, chosen and rejected)
        inner = iterate_pair_batches(
            dataset,
            batch_size,
            max_seq_length,
            loop=True,
            rng=np.random.RandomState(self.config.seed),
            rank=self.rank,
            size=self.world_size,
            on_tokens=lambda n: seen.__setitem__(0, n),
        )
        yield from self._steps(lambda: next(inner), lambda _batch: seen[0])

    def _apply_token_rows(self, model: Any, tokenizer: Any) -> dict[str, int]:
        """Trainable embedding rows for ``train_tokens`` (default: the tool-call markers); {token: id}."""

        cfg = self.config
        if cfg.fine_tune_type != "lora" or cfg.train_tokens == []:
            return {}
        tokens = cfg.train_tokens if cfg.train_tokens is not None else default_tokens(tokenizer)
        ids = resolve_token_ids(tokenizer, tokens)
        if cfg.freeze_token_rows and not ids:
            raise ConfigNotAppliedError(
                "freeze_token_rows: this model's tokenizer has no single-token tool-call markers, so there "
                "are no token rows to hold (name them with train_tokens, or leave freeze_token_rows off)"
            )
        apply_token_rows(
            model, list(ids.values()), rank=cfg.rank, scale=cfg.scale, frozen=cfg.freeze_token_rows
        )
        return ids

    def _warn(self, message: str) -> None:
        log.warning("train.warning", message=message)
        self.run = self.run.model_copy(update={"warnings": [*self.run.warnings, message]})
        self._save_run()

    def _build_optimizer(self) -> Any:
        import mlx.optimizers as optim
        from mlx_lm.tuner.utils import build_schedule

        cfg = self.config
        sched = cfg.mlx_lr_schedule()
        lr = build_schedule(sched) if sched else cfg.learning_rate
        cls = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD}[cfg.optimizer]
        return cls(learning_rate=lr, **cfg.optimizer_kwargs())

    def _lint(self, tokenizer: Any = None) -> None:
        """Refuse data that fails the data room's checks; a missing or crashing linter is recorded,
        not fatal (a linter bug must not block training)."""
        if not self.leader:
            return
        try:
            report = lint_dataset_dir(
                Path(self.config.dataset_path or "."),
                model_path=self.config.model_path,
                mask_prompt=self.config.mask_prompt,
                tokenizer=tokenizer,
            )
        except TooltuneError:
            raise  # the data itself is unusable (unreadable JSON, no splits): the run fails with that reason
        except Exception as e:  # noqa: BLE001
            log.warning("train.lint_unavailable", error=repr(e))
            self.run = self.run.model_copy(update={"lint": {"skipped": f"linter unavailable: {e!r}"}})
            self._save_run()
            return
        errors = [str(x) for x in getattr(report, "errors", [])]
        warnings = [str(x) for x in getattr(report, "warnings", [])]
        self.run = self.run.model_copy(
            update={"lint": {"ok": bool(report.ok), "errors": errors[:20], "warnings": warnings[:20]}}
        )
        self._save_run()
        if not report.ok:
            shown = "; ".join(errors[:3]) or "see `tooltune data lint`"
            raise DatasetLintError(
                f"dataset {self.config.dataset} failed lint ({len(errors)} errors: {shown}); "
                "fix the data and retry"
            )

    def _check_cancel_before_training(self) -> None:
        if self._agreed(self.cancel_requested):
            raise RunCancelled(self.start_iter)

    def _agreed(self, flag: bool) -> bool:
        """True on every process when it is true on any: processes of one run stop at the same step
        (one that stopped alone would leave the others waiting for it in the next gradient sum)."""
        if self.world_size == 1:
            return flag
        import mlx.core as mx

        return mx.distributed.all_sum(mx.array(int(flag)), stream=mx.cpu).item() > 0

    # ---- step boundaries: checkpoints, cancellation, resume ----------------------------------------

    def _iterate_batches(
        self,
        dataset: Any,
        batch_size: int,
        max_seq_length: int,
        loop: bool = False,
        seed: int | None = None,
        comm_group: Any = None,
    ) -> Iterator[Any]:
        from mlx_lm.tuner.trainer import iterate_batches

        inner = iterate_batches(
            dataset, batch_size, max_seq_length, loop=loop, seed=seed, comm_group=comm_group
        )
        if not loop:  # validation: the same loss weights, batches in mlx-lm's order
            yield from map(self._with_weights, inner)
            return
        steps = self._steps(lambda: self._next_train_batch(inner), processed_tokens)
        yield from map(self._with_weights, steps)

    def _steps(
        self, draw: Callable[[], Any], tokens: Callable[[Any], int], replay: Callable[[], Any] | None = None
    ) -> Iterator[Any]:
        """The training batches, one per step, with what every step boundary does: the data order an
        uninterrupted run would have seen replayed up to a resumed step (``replay``, default ``draw``),
        then before each later step checkpoints and cancellation (``_after_step``), and each batch's
        ``tokens`` counted as processed."""
        for _ in range(self.start_iter):
            (replay or draw)()
        it = self.start_iter
        while True:
            if it > self.start_iter:
                self._after_step(it)
            batch = draw()
            self.processed_tokens += tokens(batch) * self.world_size  # each process has a share
            yield batch
            it += 1

    def _with_weights(self, batch: tuple[Any, Any]) -> tuple[Any, ...]:
        """mlx-lm's (tokens, lengths) batch, plus per-token loss weights when some answer tokens weigh
        other than 1 (what ``weighted_loss`` takes), then the answer positions when the head runs there
        only (``answer_only_loss``), or the value-token mask when values are anchored (``anchored_loss``)."""
        if not (self._custom_loss or self._answer_only):
            return batch
        cfg = self.config
        import mlx.core as mx
        import numpy as np

        tokens, lengths = batch
        rows, spans = np.array(tokens), np.array(lengths)
        weights = np.ones(rows.shape, dtype=np.float32)
        if self._answer_only:  # weighted_loss's arguments plus the answer positions (answer_only_loss)
            if self._custom_loss:
                self._fill_weights(rows, spans, weights, None)
            return tokens, lengths, mx.array(weights), *answer_positions(spans, rows.shape[1] - 1)
        anchored = np.zeros(rows.shape, dtype=bool)
        self._fill_weights(rows, spans, weights, anchored)
        if cfg.anchor_loss_weight:
            return tokens, lengths, mx.array(weights), mx.array(anchored)
        return tokens, lengths, mx.array(weights)

    def _fill_weights(self, rows: Any, spans: Any, weights: Any, anchored: Any | None) -> None:
        """Each row's loss weights (value_token_weights), and its value-token mask into ``anchored`` when
        values are anchored; cached per distinct token row."""
        cfg = self.config
        for j, (offset, length) in enumerate(spans.tolist()):
            key = rows[j, :length].tobytes()
            if key not in self._weight_cache:
                row = rows[j, :length].tolist()
                values = value_token_mask(self.tokenizer, row, offset) if cfg.anchor_loss_weight else None
                self._weight_cache[key] = (
                    value_token_weights(
                        self.tokenizer, row, offset, cfg.value_loss_weight, cfg.decision_loss_weight, values
                    )[0],
                    values,
                )
            weights[j, :length], mask = self._weight_cache[key]
            if mask is not None and anchored is not None:
                anchored[j, :length] = mask

    @property
    def _custom_loss(self) -> bool:
        """Whether the loss is not mlx-lm's default: some answer tokens weigh other than 1 (values or the
        decision), or the values are anchored to the base model."""
        cfg = self.config
        return cfg.value_loss_weight != 1.0 or cfg.decision_loss_weight != 1.0 or bool(cfg.anchor_loss_weight)

    @property
    def _answer_only(self) -> bool:
        """Whether the loss applies the LM head at the answer positions only (answer_only_loss): with
        mask_prompt, a model whose body/head split is known, and no anchor (which compares full logits)."""
        cfg = self.config
        return (
            cfg.answer_only_head
            and cfg.mask_prompt
            and not cfg.anchor_loss_weight
            and self.model is not None
            and head_split(self.model) is not None
        )

    def _loss(self) -> Any:

        weight = self.config.anchor_loss_weight
        if self._answer_only:
            return answer_only_loss
        return anchored_loss(weight) if weight else weighted_loss

    def _decision_token_summary(self, train_set: Any) -> dict[str, Any]:  # a CacheDataset
        """The weighted first answer tokens, split into calls (``<tool_call>``) and text answers."""

        rows = (train_set[i] for i in range(len(train_set)))
        firsts = [self.tokenizer.decode([int(t[o])]) for t, o in rows if o < len(t)]
        calls = sum(f.strip() == CALL_OPEN for f in firsts)
        return {"weight": self.config.decision_loss_weight, "calls": calls, "text": len(firsts) - calls}

    def _value_token_summary(self, train_set: Any) -> dict[str, Any]:  # a CacheDataset: (tokens, offset)
        """How many answer tokens of the training set are argument values (weighted by
        value_loss_weight, or anchored); with none found the setting cannot work, so the run stops."""

        cfg = self.config
        answer = value = with_values = 0
        for i in range(len(train_set)):
            tokens, offset = train_set[i]
            n = int(value_token_mask(self.tokenizer, list(tokens), offset).sum())
            answer += len(tokens) - offset
            value += n
            with_values += n > 0
        if value == 0:
            setting = (
                f"value_loss_weight is {cfg.value_loss_weight}"
                if cfg.value_loss_weight != 1.0
                else f"anchor_loss_weight is {cfg.anchor_loss_weight}"
            )
            raise ConfigNotAppliedError(
                f"{setting} but no answer in {cfg.dataset_path}/train.jsonl has argument values in a "
                "<tool_call> block; leave value_loss_weight at 1 and anchor_loss_weight at 0 for this dataset"
            )
        return {
            "value_tokens": value,
            "answer_tokens": answer,
            "examples_with_values": with_values,
            "examples": len(train_set),
        }

    def _next_train_batch(self, inner: Iterator[Any]) -> Any:
        """Draw the next batch with the data order's own RNG, so validation passes don't shift it."""
        import numpy as np

        outer = np.random.get_state()
        np.random.set_state(self._data_rng)
        try:
            return next(inner)
        finally:
            self._data_rng = np.random.get_state()
            np.random.set_state(outer)

    def _after_step(self, it: int) -> None:
        cfg = self.config
        at_update = it % cfg.grad_accumulation_steps == 0  # never checkpoint half-accumulated gradients
        if at_update and it % cfg.save_every == 0:
            self._save_checkpoint(it)
        if at_update and self._agreed(self.cancel_requested):
            if self.last_checkpoint != it:
                self._save_checkpoint(it)
            raise RunCancelled(it)

    def _save_checkpoint(self, it: int) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        if not self.leader:
            self.last_checkpoint = it
            return
        started = time.monotonic()
        folder = self.run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        stem = f"{it:07d}"
        _save_safetensors(
            folder / f"{stem}_adapters.safetensors", dict(tree_flatten(self.model.trainable_parameters()))
        )
        _save_safetensors(folder / f"{stem}_optimizer.safetensors", dict(tree_flatten(self.optimizer.state)))
        # written last: a checkpoint counts only once its state file exists (see runs.checkpoints)
        atomic_write_json(
            folder / f"{stem}_state.json",
            {"iteration": it, "trained_tokens": self.trained_tokens, "time": time.time()},
        )
        mx.eval()
        self.checkpoint_seconds += time.monotonic() - started
        self.last_checkpoint = it
        self.run = self.run.model_copy(update={"last_checkpoint": it, "iteration": it})
        self._save_run()
        log.info("train.checkpoint", iteration=it)

    def _load_checkpoint(self, it: int) -> None:
        """Adapter weights into the model (strict=False: only the LoRA leaves) and the optimizer's state
        (moments and step, so the learning-rate schedule continues where it stopped)."""
        import mlx.core as mx
        from mlx.utils import tree_flatten

        folder = self.run_dir / "checkpoints"
        stem = f"{it:07d}"
        self.model.load_weights(str(folder / f"{stem}_adapters.safetensors"), strict=False)
        state = json.loads((folder / f"{stem}_state.json").read_text())
        self.trained_tokens = int(state.get("trained_tokens", 0))
        opt_file = folder / f"{stem}_optimizer.safetensors"
        if opt_file.exists():
            self.optimizer.init(self.model.trainable_parameters())
            saved = mx.load(str(opt_file))
            current = dict(tree_flatten(self.optimizer.state))
            if set(saved) - {"learning_rate"} <= set(current) | {"step"}:
                for key, value in saved.items():
                    _set_leaf(self.optimizer.state, key, value)
            else:
                log.warning("train.optimizer_state_mismatch", checkpoint=str(opt_file))
        log.info("train.resumed", iteration=it, trained_tokens=self.trained_tokens)

    def _register(self, metrics: dict[str, Any]) -> None:
        """Copy the final adapter into the registry; a failure here is recorded, the run's files stay."""
        if not self.leader:
            return
        try:
            run = self.run
            record = AdapterRecord(
                name=run.adapter_name,
                base_model=run.base_model or str(self.config.model_path),
                base_model_fingerprint=run.base_model_fingerprint or "",
                dataset_hash=run.dataset_hash,
                train_config=self.config.model_dump(mode="json"),
                train_metrics=metrics,
                run_id=run.id,
            )
            AdapterRegistry(self.ws).register(run.adapter_name, self.run_dir / "adapter", record)
            self.run = run.model_copy(update={"registered": True})
        except Exception as e:  # noqa: BLE001
            log.error("train.register_failed", error=repr(e))
            self.run = self.run.model_copy(update={"registration_error": describe_failure(e)})
        self._save_run()

    def time_spent(self, total_seconds: float) -> dict[str, float]:
        """Where this job's training wall time went: optimizer steps, validation passes, checkpoints (a
        resumed run's earlier jobs are in their own events)."""
        other = self.validation_seconds + self.checkpoint_seconds
        return {
            "total_s": round(total_seconds, 3),
            "steps_s": round(max(0.0, total_seconds - other), 3),
            "validation_s": round(self.validation_seconds, 3),
            "checkpoints_s": round(self.checkpoint_seconds, 3),
        }

    def _save_run(self) -> None:
        if self.leader:
            write_run(self.run_dir, self.run)

    def _update_job(self, job_id: str, **fields: Any) -> JobRecord | None:
        return self.store.update(job_id, **fields) if self.leader else None

    # ---- events ------------------------------------------------------------------------------------

    def write_event(self, event: TrainEvent) -> None:
        if not self.leader:
            return
        with open(self.run_dir / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(event.model_dump_json(exclude_none=True) + "\n")
            fh.flush()
        cfg = self.config
        if event.kind == "train":
            msg = f"iter {event.iteration}/{cfg.iters} loss {event.train_loss:.3f}"
            metrics = event.model_dump(exclude_none=True, exclude={"kind", "time"})
            self._update_job(
                self.job_id,
                progress={"current": event.iteration, "total": cfg.iters, "message": msg, "metrics": metrics},
            )
            self.run = self.run.model_copy(update={"iteration": event.iteration})
            self._save_run()


def load_splits(path: Path, tokenizer: Any, mask_prompt: bool) -> tuple[Any, Any]:
    """train and valid as mlx-lm's ``load_local_dataset`` makes them, except that an empty split file
    (a small dataset whose hash split left valid empty) is an empty split, not an IndexError."""
    from mlx_lm.tuner.datasets import create_dataset

    config = types.SimpleNamespace(mask_prompt=mask_prompt)
    out = []
    for name in ("train", "valid"):
        f = path / f"{name}.jsonl"
        rows = (
            [json.loads(line) for line in f.read_text("utf-8").splitlines() if line.strip()]
            if f.is_file()
            else []
        )
        out.append(create_dataset(rows, tokenizer, config) if rows else [])
    return out[0], out[1]


def _save_safetensors(path: Path, arrays: dict[str, Any]) -> None:
    import mlx.core as mx

    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # keeps the .safetensors suffix mlx insists on
    mx.save_safetensors(str(tmp), arrays)
    os.replace(tmp, path)


def _set_leaf(tree: Any, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def EventWriter(worker: Worker) -> Any:  # noqa: N802 — factory: mlx_lm is imported lazily
    """A ``TrainingCallback`` that turns mlx-lm's reports into events.jsonl lines with global iterations."""
    from mlx_lm.tuner.callbacks import TrainingCallback

    class _EventWriter(TrainingCallback):
        def on_train_loss_report(self, info: dict[str, Any]) -> None:
            worker.trained_tokens = worker.start_tokens + int(info["trained_tokens"])
            worker.write_event(
                TrainEvent(
                    kind="train",
                    iteration=worker.start_iter + int(info["iteration"]),
                    train_loss=float(info["train_loss"]),
                    learning_rate=float(info["learning_rate"]),
                    iterations_per_second=float(info["iterations_per_second"]),
                    tokens_per_second=float(info["tokens_per_second"]),
                    trained_tokens=worker.trained_tokens,
                    processed_tokens=worker.processed_tokens,
                    peak_memory_gb=float(info["peak_memory"]),
                    peak_rss_gb=_peak_rss_gb(),
                    time=time.time(),
                    elapsed=time.monotonic() - worker.train_started,
                )
            )
            check_finite_loss(
                "train", worker.start_iter + int(info["iteration"]), float(info["train_loss"]),
                worker.config.max_seq_length,
            )  # fmt: skip

        def on_val_loss_report(self, info: dict[str, Any]) -> None:
            worker.validation_seconds += float(info["val_time"])
            worker.write_event(
                TrainEvent(
                    kind="val",
                    iteration=worker.start_iter + int(info["iteration"]),
                    val_loss=float(info["val_loss"]),
                    val_time=float(info["val_time"]),
                    time=time.time(),
                    elapsed=time.monotonic() - worker.train_started,
                )
            )
            check_finite_loss(
                "validation", worker.start_iter + int(info["iteration"]), float(info["val_loss"]),
                worker.config.max_seq_length,
            )  # fmt: skip

    worker.start_tokens = worker.trained_tokens
    return _EventWriter()


def inspect_adaptation(
    model: Any, cfg: TrainConfig, token_ids: dict[str, int] | None = None
) -> dict[str, Any]:
    """Read back from the live model what was applied, and refuse to train if it differs from the config.

    This is the guard against "rank silently ignored": the numbers recorded in run.json come from the
    LoRA modules themselves, not from the config we meant to apply.
    """
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear
    from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

    # the token rows' one-hot selector (and held rows) are saved with the adapter but get no gradient
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    trainable -= untrained_row_parameters(model)
    total = sum(v.size for _, v in tree_flatten(model.parameters()))
    applied: dict[str, Any] = {"trainable_parameters": int(trainable), "total_parameters": int(total)}
    if cfg.fine_tune_type == "full":
        layers = [i for i, layer in enumerate(model.layers) if tree_flatten(layer.trainable_parameters())]
        applied.update(adapted_layers=len(layers), layer_indices=layers)
        if len(layers) != cfg.num_layers:
            raise ConfigNotAppliedError(
                f"{len(layers)} layers are trainable, config asked for {cfg.num_layers}"
            )
        return applied
    kinds = (LoRALinear, DoRALinear, LoRASwitchLinear, LoRAEmbedding, DoRAEmbedding)
    layer_indices, keys, ranks, scales, dropouts = [], set(), set(), set(), set()
    for i, layer in enumerate(model.layers):
        found = [(name, m) for name, m in layer.named_modules() if isinstance(m, kinds)]
        if found:
            layer_indices.append(i)
        for name, m in found:
            keys.add(name)
            ranks.add(int(m.lora_a.shape[-1]) if m.lora_a.ndim == 2 else int(m.lora_a.shape[-2]))
            scales.add(float(m.scale))
            dropouts.add(round(1.0 - float(m.dropout._p_1), 6))
    top_level = sorted(
        name
        for name, m in model.named_modules()
        if isinstance(m, kinds) and not name.startswith("model.layers.")
    )
    rows = inspect_token_rows(model)
    frozen = token_rows_frozen(model)
    applied.update(
        adapted_layers=len(layer_indices),
        layer_indices=layer_indices,
        keys=sorted(keys),
        top_level_keys=top_level,
        train_tokens=dict(token_ids or {}),
        **({"token_rows": "frozen (no gradient)" if frozen else "trained"} if frozen is not None else {}),
        rank=sorted(ranks),
        scale=sorted(scales),
        dropout=sorted(dropouts),
        dora=cfg.fine_tune_type == "dora",
    )
    problems = []
    if len(layer_indices) != cfg.num_layers:
        problems.append(f"{len(layer_indices)} adapted layers, expected {cfg.num_layers}")
    if ranks != {cfg.rank}:
        problems.append(f"ranks {sorted(ranks)}, expected {cfg.rank}")
    if scales != {float(cfg.scale)}:
        problems.append(f"scales {sorted(scales)}, expected {cfg.scale}")
    if dropouts != {round(cfg.dropout, 6)}:
        problems.append(f"dropouts {sorted(dropouts)}, expected {cfg.dropout}")
    expected_rows = {token_id: column for column, token_id in enumerate((token_ids or {}).values())}
    if rows != expected_rows:
        problems.append(f"trainable token rows {rows} (id: column), expected {expected_rows}")
    if frozen is not None and frozen != cfg.freeze_token_rows:
        problems.append(
            f"token rows {'frozen' if frozen else 'trainable'}, expected freeze_token_rows "
            f"{cfg.freeze_token_rows}"
        )
    if top_level and not token_ids:
        problems.append(f"unexpected top-level LoRA modules {top_level}")
    if cfg.keys is not None and keys != set(cfg.keys):
        problems.append(f"adapted modules {sorted(keys)}, expected {sorted(cfg.keys)} (check the key names)")
    if problems:
        raise ConfigNotAppliedError("the LoRA config was not applied as asked: " + "; ".join(problems))
    return applied


def processed_tokens(batch: tuple[Any, Any]) -> int:
    """Tokens a step runs the model over: each row's length, prompt included, padding not."""
    import numpy as np

    return int(np.array(batch[1])[:, 1].sum())


def summarize(
    events: list[TrainEvent], run: RunRecord, time_spent: dict[str, float] | None = None
) -> dict[str, Any]:
    """metrics.json: the numbers a person compares runs by, computed from every event of the run.

    Two token rates, named for what they count: ``loss_tokens_per_second`` (mlx-lm's count: the tokens
    that carry loss, a few dozen per example under mask_prompt) and ``processed_tokens_per_second``
    (every token the steps ran the model over, over the time spent in steps).
    """
    train = [e for e in events if e.kind == "train" and e.train_loss is not None]
    val = [e for e in events if e.kind == "val" and e.val_loss is not None]
    secs_per_iter = [1.0 / e.iterations_per_second for e in train if e.iterations_per_second]

    def loss_stats(prefix: str, items: list[TrainEvent], attr: str) -> dict[str, Any]:
        if not items:
            return {}
        values = [getattr(e, attr) for e in items]
        best = min(range(len(values)), key=values.__getitem__)
        return {
            f"first_{prefix}_loss": values[0],
            f"last_{prefix}_loss": values[-1],
            f"best_{prefix}_loss": values[best],
            f"best_{prefix}_iteration": items[best].iteration,
        }

    return {
        "status": run.status,
        "iterations": run.iteration,
        "iters_planned": run.iters,
        **loss_stats("train", train, "train_loss"),
        **loss_stats("val", val, "val_loss"),
        "wall_time_s": round(run.train_seconds, 3),
        "s_per_iter": round(sum(secs_per_iter) / len(secs_per_iter), 4) if secs_per_iter else None,
        "loss_tokens_per_second": round(sum(e.tokens_per_second or 0 for e in train) / len(train), 1)
        if train
        else None,
        "processed_tokens_per_second": round(train[-1].processed_tokens / time_spent["steps_s"], 1)
        if train and train[-1].processed_tokens and time_spent and time_spent["steps_s"] > 0
        else None,
        "time": time_spent,
        "trained_tokens": train[-1].trained_tokens if train else 0,
        "peak_memory_gb": max((e.peak_memory_gb or 0 for e in train), default=None),
        "peak_rss_gb": max((e.peak_rss_gb or 0 for e in train), default=None),
        "resumed_from": run.resumes,
    }


def main(argv: list[str] | None = None) -> int:

    configure_logging(json=True)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tooltune.training.worker RUN_DIR", file=sys.stderr)
        return 2
    return Worker(Path(args[0]).resolve()).main()


if __name__ == "__main__":
    sys.exit(main())
