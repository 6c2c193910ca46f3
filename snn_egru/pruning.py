"""Unstructured magnitude pruning of weight matrices, one-shot or gradual, with enforced masks.

Each selected matrix ``W`` is pruned on its own (per-matrix, not global): the
``round(s * W.numel())`` entries of smallest ``|W|`` are set to zero and a boolean mask
remembers them. After every optimizer step the masks are applied again
(``W <- W * mask``), so pruned weights stay exactly zero whatever the optimizer does
(Adam moments, decoupled weight decay).

Gradual pruning follows the cubic schedule of Zhu & Gupta (2017, "To prune, or not to
prune"), from sparsity ``s_i`` at step ``t_0`` to ``s_f`` at step ``t_1``::

    s(t) = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0))**3     for t_0 <= t <= t_1
    s(t) = s_i before t_0,   s_f after t_1

and masks are recomputed every ``frequency`` steps from the current magnitudes (weights
pruned earlier are zero, so they stay pruned: the sparsity only grows).

By default the recurrent stack's ``weight_ih*`` / ``weight_hh*`` matrices are pruned and the
embedding / decoder / readout are left dense; ``include`` / ``exclude`` (``fnmatch`` patterns
over parameter names) change that.

Typical use inside a training loop::

    pruner = Pruner(model, config=PruningConfig(target_sparsity=0.95, start_step=1000,
                                                 end_step=8000))
    ...
    optimizer.step()
    pruner.step(step)          # step = optimizer steps taken so far
    ...
    save_checkpoint(..., extra={"pruner": pruner.state_dict()})
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Parameters pruned by default (the EGRU stack's matrices).
DEFAULT_INCLUDE: tuple[str, ...] = ("*weight_ih*", "*weight_hh*")
#: Parameters never pruned by default.
DEFAULT_EXCLUDE: tuple[str, ...] = ("*embedding*", "*decoder*", "*readout*")

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_INCLUDE",
    "Pruner",
    "PruningConfig",
    "apply_masks",
    "cubic_sparsity",
    "magnitude_mask",
    "matrix_sparsity",
    "prune_model",
    "select_prunable",
]


@dataclass
class PruningConfig:
    """How and when to prune.

    Attributes:
        target_sparsity: final fraction of zeros per matrix, ``0 <= s_f < 1``.
        schedule: ``"one_shot"`` (prune to the target at ``start_step``) or ``"gradual"``
            (cubic schedule from ``initial_sparsity`` at ``start_step`` to the target at
            ``end_step``).
        initial_sparsity: ``s_i`` of the gradual schedule.
        start_step: first step at which masks are computed.
        end_step: step at which the gradual schedule reaches the target.
        frequency: masks are recomputed every ``frequency`` steps (Zhu & Gupta's Delta t).
        include / exclude: ``fnmatch`` patterns over parameter names; a 2-D parameter is
            pruned when it matches an include pattern and no exclude pattern.
    """

    target_sparsity: float = 0.95
    schedule: Literal["one_shot", "gradual"] = "gradual"
    initial_sparsity: float = 0.0
    start_step: int = 0
    end_step: int = 0
    frequency: int = 100
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE

    def __post_init__(self) -> None:
        if not 0.0 <= self.target_sparsity < 1.0:
            raise ValueError(f"target_sparsity must lie in [0, 1), got {self.target_sparsity}")
        if not 0.0 <= self.initial_sparsity <= self.target_sparsity:
            raise ValueError(
                f"initial_sparsity must lie in [0, target_sparsity], got {self.initial_sparsity}"
            )
        if self.schedule not in ("one_shot", "gradual"):
            raise ValueError(f"schedule must be 'one_shot' or 'gradual', got {self.schedule!r}")
        if self.start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {self.start_step}")
        if self.schedule == "gradual" and self.end_step < self.start_step:
            raise ValueError(
                f"end_step ({self.end_step}) must be >= start_step ({self.start_step}) for "
                "gradual pruning"
            )
        if self.frequency < 1:
            raise ValueError(f"frequency must be >= 1, got {self.frequency}")
        self.include = tuple(self.include)
        self.exclude = tuple(self.exclude)


# --------------------------------------------------------------------------- pure functions
def cubic_sparsity(step: int, *, initial: float, final: float, start: int, end: int) -> float:
    """Zhu & Gupta's cubic sparsity at ``step`` (module docstring)."""
    if step < start:
        return initial
    if step >= end:
        return final
    frac = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - frac) ** 3


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean keep-mask pruning the ``round(sparsity * numel)`` smallest ``|weight|``.

    Ties are broken by position (stable sort), so the count is exact.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    numel = weight.numel()
    num_pruned = int(round(sparsity * numel))
    keep = torch.ones(numel, dtype=torch.bool, device=weight.device)
    if num_pruned > 0:
        order = torch.sort(weight.detach().abs().reshape(-1), stable=True).indices
        keep[order[:num_pruned]] = False
    return keep.view_as(weight)


def matrix_sparsity(weight: torch.Tensor) -> float:
    """Fraction of exact zeros."""
    return 1.0 - int(torch.count_nonzero(weight)) / max(1, weight.numel())


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def select_prunable(
    model: nn.Module,
    include: tuple[str, ...] = DEFAULT_INCLUDE,
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
) -> dict[str, nn.Parameter]:
    """2-D parameters whose name matches ``include`` and not ``exclude`` (in module order).

    A DDP wrapper is looked through, so names never carry a ``module.`` prefix.
    """
    from snn_egru.training.common import unwrap_model

    model = unwrap_model(model)
    selected = {
        name: param
        for name, param in model.named_parameters()
        if param.ndim == 2 and _matches(name, include) and not _matches(name, exclude)
    }
    return selected


@torch.no_grad()
def apply_masks(params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
    """``W <- W * mask`` in place for every masked parameter."""
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].dtype))


def prune_model(
    model: nn.Module,
    sparsity: float,
    *,
    include: tuple[str, ...] = DEFAULT_INCLUDE,
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
) -> dict[str, torch.Tensor]:
    """One-shot magnitude pruning in place; returns the keep-masks by parameter name."""
    params = select_prunable(model, include, exclude)
    if not params:
        raise ValueError(
            f"no parameter matches include={include} / exclude={exclude}; nothing to prune"
        )
    masks = {name: magnitude_mask(p, sparsity) for name, p in params.items()}
    apply_masks(params, masks)
    return masks


# --------------------------------------------------------------------------- the pruner
class Pruner:
    """Keeps pruning masks of a model and enforces them after every optimizer step.

    Args:
        model: the model (DDP wrappers are looked through).
        config: a :class:`PruningConfig`.

    Attributes:
        masks: ``{parameter name: bool keep-mask}`` (all ``True`` until the first pruning).
        current_sparsity: the sparsity the masks were last computed for.
    """

    def __init__(self, model: nn.Module, *, config: PruningConfig) -> None:
        self.config = config
        self.params = select_prunable(model, config.include, config.exclude)
        if not self.params:
            raise ValueError(
                f"no parameter matches include={config.include} / exclude={config.exclude}; "
                "nothing to prune"
            )
        self.masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in self.params.items()}
        self.current_sparsity = 0.0

    def sparsity_at(self, step: int) -> float:
        """Scheduled sparsity at optimizer step ``step``."""
        cfg = self.config
        if cfg.schedule == "one_shot":
            return cfg.target_sparsity if step >= cfg.start_step else 0.0
        return cubic_sparsity(
            step,
            initial=cfg.initial_sparsity,
            final=cfg.target_sparsity,
            start=cfg.start_step,
            end=cfg.end_step,
        )

    def _is_update_step(self, step: int) -> bool:
        cfg = self.config
        if step < cfg.start_step:
            return False
        if cfg.schedule == "one_shot" or step >= cfg.end_step:
            return True
        return (step - cfg.start_step) % cfg.frequency == 0

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Recompute every mask for ``sparsity`` from the current magnitudes, then apply.

        Already pruned weights are zero, so they stay pruned while ``sparsity`` grows.
        """
        for name, param in self.params.items():
            self.masks[name] = magnitude_mask(param * self.masks[name], sparsity)
        self.current_sparsity = float(sparsity)
        self.apply()
        logger.info("pruned %d matrices to sparsity %.4f", len(self.params), sparsity)

    def apply(self) -> None:
        """Zero the pruned weights (call after every optimizer step)."""
        apply_masks(self.params, self.masks)

    def step(self, step: int) -> bool:
        """Update masks when the schedule says so, then enforce them.

        Args:
            step: optimizer steps taken so far (call right after ``optimizer.step()``).

        Returns:
            ``True`` when the masks changed at this step.
        """
        changed = False
        if self._is_update_step(step):
            target = self.sparsity_at(step)
            if target > self.current_sparsity + 1e-12:
                self.prune_to(target)
                changed = True
        self.apply()
        return changed

    def sparsity(self) -> dict[str, float]:
        """Actual fraction of zeros per pruned matrix."""
        return {name: matrix_sparsity(p) for name, p in self.params.items()}

    def state_dict(self) -> dict[str, Any]:
        """Masks, config and progress (tensors and plain values: checkpoint-safe)."""
        return {
            "config": dataclasses.asdict(self.config),
            "current_sparsity": self.current_sparsity,
            "masks": {name: mask.cpu() for name, mask in self.masks.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore masks and progress (the config given at construction is kept)."""
        masks = state["masks"]
        if set(masks) != set(self.params):
            raise ValueError(
                f"pruner state covers {sorted(masks)} but this model prunes {sorted(self.params)}"
            )
        for name, mask in masks.items():
            if mask.shape != self.params[name].shape:
                raise ValueError(
                    f"mask {name} has shape {tuple(mask.shape)}, parameter has "
                    f"{tuple(self.params[name].shape)}"
                )
            self.masks[name] = mask.to(device=self.params[name].device, dtype=torch.bool)
        self.current_sparsity = float(state["current_sparsity"])
        self.apply()
