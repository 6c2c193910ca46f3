"""The language model as a :class:`~snn_egru.training.loop.TrainingTask`.

What the LM adds to the shared loop: contiguous training streams (sharded among ranks),
truncated-BPTT windows of random length with the state carried (detached) from window to
window and the learning rate scaled by ``seq_len / bptt``, the activity regulariser,
thresholds clamped and pruning masks enforced after every step, validation perplexity on the
main rank (``best.pt``: the best model at the pruning target), and checkpoints that hold the
vocabulary, the pruner, the position in the epoch and the carried state (a resumed run
continues exactly).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from snn_egru import quantization as qat
from snn_egru.data.text import Corpus, batchify, bptt_windows, get_batch, shard_streams
from snn_egru.functional import EGRUCellState
from snn_egru.losses import (
    FULL_SOFTMAX,
    LogUniformSampler,
    linear_cross_entropy,
    parse_softmax,
    sampled_softmax_loss,
)
from snn_egru.models.lm import EGRULanguageModel, LanguageModelConfig
from snn_egru.pruning import Pruner
from snn_egru.training.common import (
    Checkpoint,
    all_reduce_mean,
    barrier,
    config_from_dict,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
    load_checkpoint,
    restore_training_state,
    set_seed,
)
from snn_egru.training.lm_eval import (
    EvalResult,
    RecurrentThreads,
    detach_state,
    evaluate_perplexity,
)
from snn_egru.training.loop import LoopSettings, Trainer

logger = logging.getLogger(__name__)

__all__ = ["LMTask", "estimate_steps_per_epoch"]


def estimate_steps_per_epoch(rows: int, bptt: int) -> int:
    """Windows of mean length ``bptt`` over ``rows`` stream positions."""
    return max(1, math.ceil((rows - 1) / bptt))


class LMTask:
    """Builds the model (seeded, QAT-prepared, optionally from ``init_from``) and the streams.

    Args:
        config: the architecture (vocabulary size already that of ``corpus``).
        tc: the :class:`~snn_egru.training.lm.LMTrainConfig`.
        corpus: the data; device: this rank's device; resume: a resume follows (then
            ``init_from`` is not read).
        init_model: ``init_model(model)`` writes the starting weights into the new model
            (after QAT preparation, before the streams; ``None``: the seeded init).
    """

    def __init__(
        self,
        config: LanguageModelConfig,
        tc: Any,
        corpus: Corpus,
        device: torch.device,
        *,
        resume: bool,
        show_progress: bool,
        init_model: Any = None,
    ) -> None:
        self.config, self.train_config, self.corpus = config, tc, corpus
        self.show_progress = show_progress
        self.rank, self.world = get_rank(), get_world_size()
        set_seed(tc.seed)
        self.model = EGRULanguageModel(config).to(device)
        if config.adaptive_softmax:  # frequency ranks before any weights are loaded
            self.model.set_word_ranks(torch.bincount(corpus.train, minlength=config.vocab_size))
        qat.prepare_qat(self.model, tc.quantize)  # before weights are loaded (QAT fits)
        if tc.init_from is not None and not resume:
            self._init_from(tc.init_from, device)
        if init_model is not None and not resume:
            init_model(self.model)
        streams = batchify(corpus.train, tc.batch_size)
        self.train_source = shard_streams(streams, self.rank, self.world).to(device)
        qat.calibrate(self.model, lambda m: m(self.train_source[: 4 * tc.bptt]), if_needed=True)
        self.pruner = Pruner(self.model, config=tc.pruning) if tc.pruning is not None else None
        self.steps_per_epoch = estimate_steps_per_epoch(self.train_source.shape[0], tc.bptt)
        self.vocab_list = corpus.vocabulary.to_list()
        self.window_index, self.windows_in_epoch = 0, self.steps_per_epoch
        self.state: list[EGRUCellState] | None = None
        self.best_valid = float("inf")
        self.valid: EvalResult | None = None
        self.running_loss, self.running_count, self.train_loss = 0.0, 0, float("nan")
        self._out: Any = None
        self.num_sampled = parse_softmax(tc.softmax)
        self.fused_blas = FULL_SOFTMAX.get(tc.softmax)  # the fused full-softmax loss
        self.rnn_threads = RecurrentThreads(self.model, backward=True)  # numbers unchanged
        if self.fused_blas is not None and (self.world > 1 or config.adaptive_softmax):
            raise ValueError(
                f"softmax={tc.softmax!r} is single-process only (no DDP), for a linear decoder "
                "(not adaptive_softmax): use softmax='full'"
            )
        self.sampler: LogUniformSampler | None = None
        if config.adaptive_softmax and (self.num_sampled is not None or self.world > 1):
            raise ValueError(
                "adaptive_softmax is single-process only (no DDP) and is its own training "
                "loss: leave softmax='full'"
            )
        if self.num_sampled is not None:
            if self.world > 1:
                raise ValueError("softmax='sampled:K' is single-process only (no DDP)")
            counts = torch.bincount(self.train_source.flatten().cpu(), minlength=config.vocab_size)
            self.sampler = LogUniformSampler(counts)

    def _init_from(self, path: str, device: torch.device) -> None:
        initial = load_checkpoint(path, map_location=device)
        if initial.config is not None:
            saved = config_from_dict(initial.config, LanguageModelConfig)
            config = self.config
            if (saved.hidden_sizes, saved.vocab_size, saved.adaptive_softmax) != (
                config.hidden_sizes,
                config.vocab_size,
                config.adaptive_softmax,
            ):
                raise ValueError(
                    f"{path} holds a model with hidden_sizes={list(saved.hidden_sizes)}, "
                    f"vocab_size={saved.vocab_size}, adaptive_softmax="
                    f"{list(saved.adaptive_softmax)}; this run builds "
                    f"{list(config.hidden_sizes)}, {config.vocab_size}, "
                    f"{list(config.adaptive_softmax)}"
                )
        restore_training_state(initial, model=self.model, restore_rng=False)
        logger.info("initialised the weights from %s", path)

    def loop_settings(self) -> LoopSettings:
        tc = self.train_config
        return LoopSettings.from_config(
            tc,
            schedule_steps=tc.schedule_steps or tc.max_steps or self.steps_per_epoch * tc.epochs,
            time_limit_s=tc.time_budget_s,
        )

    def seed_rank(self, step: int) -> None:
        """Dropout masks differ per rank (rank 0's RNG state is everywhere after a resume)."""
        if self.world > 1:
            torch.manual_seed(self.train_config.seed + 7919 * self.rank + step)

    @property
    def epochs_trained(self) -> float:
        """Position in the current epoch as a fraction of its windows."""
        return self.window_index / max(1, self.windows_in_epoch)

    # ------------------------------------------------------------------ loop hooks
    def batches(self, epoch: int) -> list[Any]:
        tc = self.train_config
        rows, seed = self.train_source.shape[0], tc.seed + epoch
        windows = list(bptt_windows(rows, tc.bptt, random_length=tc.random_bptt, seed=seed))
        self.windows_in_epoch = len(windows)
        return [w for w in windows if w.index >= self.window_index]

    def training_loss(self, model: torch.nn.Module, window: Any) -> Tensor:
        inputs, targets = get_batch(self.train_source, window.start, window.seq_len)
        self.rnn_threads.install()  # the time loop on one thread, until after_step
        adaptive = self.model.adaptive is not None
        fused = self.fused_blas is not None
        if self.sampler is not None or adaptive or fused:  # losses that read the decoder
            out = self.model.decoder_inputs(inputs, self.state)
        else:
            out = model(inputs, self.state)
        clip = self.train_config.layer_grad_clip
        if clip > 0:  # EvNN: per-layer clipping inside the backward pass
            for y in out.layer_outputs:
                if y.requires_grad:
                    y.register_hook(lambda grad, c=clip: grad.clamp(-c, c))
        if adaptive:  # out.logits: the decoder inputs y
            loss = self.model.adaptive_loss(out.logits.float(), targets)
        elif self.sampler is not None:
            loss = self._sampled_loss(out.logits, targets)
        elif fused:  # the full softmax, its logits never kept (out.logits: the decoder inputs)
            y = out.logits.reshape(-1, out.logits.shape[-1]).float()
            model_ = self.model
            loss = linear_cross_entropy(
                y, model_.decoder_weight, model_.decoder_bias, targets.reshape(-1),
                blas=self.fused_blas,
            )  # fmt: skip
        else:
            logits = out.logits.float()  # the loss in float32 (bf16 autocast: logits are bf16)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        self._out, self._loss, self._window = out, loss, window
        return loss + self.model.regularization_loss(out.layer_outputs)

    def _sampled_loss(self, y: Tensor, targets: Tensor) -> Tensor:
        model = self.model
        candidates = self.sampler.sample(self.num_sampled).to(y.device)
        return sampled_softmax_loss(
            y.reshape(-1, y.shape[-1]),
            model.decoder_weight,
            model.decoder_bias,
            targets.reshape(-1),
            candidates,
            self.sampler.log_prob,
        )

    def lr_scale(self, window: Any) -> float:
        return window.seq_len / self.train_config.bptt

    def after_step(self, trainer: Trainer, grad_norm: float) -> None:
        self.rnn_threads.remove()
        self.model.rnn.clamp_thresholds()
        self.model.apply_fixed_parameters()  # ff / dense bottlenecks (snn_egru.bottleneck_layers)
        if self.pruner is not None:
            self.pruner.step(trainer.step)
        self.state = detach_state(self._out.state)
        if self.train_config.carry == "y":  # EvNN: only the events cross windows, c restarts
            self.state = [EGRUCellState(y=s.y, c=torch.zeros_like(s.c)) for s in self.state]
        self.window_index = self._window.index + 1
        self.running_loss += float(self._loss.detach())
        self.running_count += 1
        self._out = None

    def reduce_train_loss(self) -> None:
        """The mean training loss since the last row, over every rank."""
        if self.running_count:
            mean = self.running_loss / self.running_count
            self.train_loss = float(all_reduce_mean(float(mean)))
            self.running_loss, self.running_count = 0.0, 0

    def train_row(self, trainer: Trainer) -> dict[str, Any]:
        self.reduce_train_loss()
        loss = self.train_loss
        return {
            "epoch": trainer.epoch,
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
            "lr": trainer.last_lr,
        }

    def end_epoch(self, trainer: Trainer) -> None:
        self.window_index, self.state = 0, None

    def evaluate(self, trainer: Trainer) -> bool:
        """Validation perplexity (main rank); improved: better and at the pruning target."""
        tc, result, started = self.train_config, None, time.perf_counter()
        if is_main_process():
            result = evaluate_perplexity(
                self.model,
                self.corpus.valid,
                batch_size=tc.eval_batch_size,
                bptt=tc.bptt,
                max_tokens=tc.eval_max_tokens,
                show_progress=self.show_progress,
            )
        barrier()
        self.valid = result if result is not None else EvalResult(float("nan"), float("nan"), 0)
        ppl = self.valid.perplexity
        if is_main_process():
            trainer.log(
                kind="valid", step=trainer.step, epoch=trainer.epoch, loss=self.valid.loss,
                perplexity=ppl,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            logger.info("step %d: valid perplexity %.2f (%.1f s)", trainer.step, ppl, seconds)
        pruner = self.pruner  # with pruning, only models at the final sparsity may be "best"
        eligible = pruner is None or (
            pruner.current_sparsity >= pruner.config.target_sparsity - 1e-9
        )
        improved = _broadcast_float(1.0 if ppl < self.best_valid and eligible else 0.0) > 0
        best = ppl if improved and is_main_process() else self.best_valid
        self.best_valid = _broadcast_float(best)
        return improved

    def checkpoint_fields(self, trainer: Trainer) -> dict[str, Any]:
        stream_state = None
        if self.state is not None:
            stream_state = [
                (_gather_streams(s.y).cpu(), _gather_streams(s.c).cpu()) for s in self.state
            ]
        ppl = self.valid.perplexity if self.valid is not None else None
        return {
            "vocabulary": self.vocab_list,
            "metrics": {"valid_perplexity": ppl, "best_valid_perplexity": self.best_valid},
            "extra": {
                "pruner": self.pruner.state_dict() if self.pruner is not None else None,
                "window_index": self.window_index,
                "stream_state": stream_state,
                "best_valid_perplexity": self.best_valid,
                "elapsed_s": trainer.elapsed(),
                "corpus": self.corpus.name,
            },
        }

    def restore(self, trainer: Trainer, checkpoint: Checkpoint) -> None:
        extra = checkpoint.extra
        if self.pruner is not None and extra.get("pruner") is not None:
            self.pruner.load_state_dict(extra["pruner"])
        self.window_index = int(extra.get("window_index", 0))
        self.batches(checkpoint.epoch)  # the length of the epoch resumed (epochs_trained)
        self.best_valid = float(extra.get("best_valid_perplexity", float("inf")))
        saved_state = extra.get("stream_state")
        if saved_state is not None:
            share = self.train_config.batch_size // self.world
            rows = slice(self.rank * share, (self.rank + 1) * share)
            device = self.train_source.device
            self.state = [
                EGRUCellState(y=y[rows].to(device), c=c[rows].to(device)) for y, c in saved_state
            ]
        self.seed_rank(checkpoint.step)


def _gather_streams(t: Tensor) -> Tensor:
    """Concatenate every rank's ``(B_local, ...)`` tensor along dim 0, in rank order."""
    if not is_distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


def _broadcast_float(value: float) -> float:
    if not is_distributed():
        return value
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())
