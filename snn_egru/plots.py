"""Sparsity plots (PNG, matplotlib's Agg canvas; no pyplot state, no backend switching).

* :func:`plot_activity_over_time`: fraction of units that sent an event at each step, one
  line per layer (from :class:`~snn_egru.sparsity.SparsityAccount.layers`
  ``activity_over_time``);
* :func:`plot_sparsity_vs_perplexity`: one point per model (e.g. dense, 80 %, 95 % pruned):
  perplexity against activity sparsity, weight sparsity or the MAC reduction;
* :func:`plot_unit_firing_rates`: histogram of the per-unit firing rates (fraction of steps
  on which a unit sent an event), one outline per model: dead units, always-on units.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from snn_egru.sparsity import SparsityAccount

__all__ = [
    "SparsityPoint",
    "plot_activity_over_time",
    "plot_sparsity_vs_perplexity",
    "plot_unit_firing_rates",
    "sparsity_point",
]

_AXES = {
    "activity_sparsity": "activity sparsity (fraction of zero events)",
    "weight_sparsity": "weight sparsity (fraction of zero weights)",
    "mac_reduction": "MAC reduction, dense / event-driven (x)",
}


class SparsityPoint(NamedTuple):
    """One model in a sparsity-vs-perplexity plot."""

    label: str
    perplexity: float
    activity_sparsity: float
    weight_sparsity: float
    mac_reduction: float


def sparsity_point(label: str, perplexity: float, account: SparsityAccount) -> SparsityPoint:
    """A :class:`SparsityPoint` from a measured account (EGRU stack MACs)."""
    return SparsityPoint(
        label=label,
        perplexity=float(perplexity),
        activity_sparsity=account.activity_sparsity,
        weight_sparsity=account.weight_sparsity,
        mac_reduction=account.rnn_macs.reduction,
    )


def _new_figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plots are written as PNG; give a path ending in .png, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    from snn_egru.cliargs import atomic_path

    with atomic_path(path) as tmp:  # whole or not at all (a full disk)
        figure.savefig(tmp, format="png")
    return path


def plot_activity_over_time(
    account: SparsityAccount,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    max_steps: int | None = None,
) -> Path:
    """Fraction of active units per step and layer (mean over streams and chunks).

    Args:
        account: a measured :class:`~snn_egru.sparsity.SparsityAccount` (with time series).
        path: output ``.png``.
        title: figure title.
        max_steps: plot only the first steps.

    Returns:
        The path written.
    """
    series = [layer.activity_over_time for layer in account.layers]
    if not any(len(s) for s in series):
        raise ValueError("the account has no activity time series (measure with track_time=True)")
    figure = _new_figure()
    axes = figure.add_subplot(1, 1, 1)
    for layer, values in zip(account.layers, series):
        values = np.asarray(values)[:max_steps]
        axes.plot(
            np.arange(len(values)),
            values,
            label=f"layer {layer.index} (H={layer.hidden_size}, "
            f"sparsity {layer.activity_sparsity:.1%})",
        )
    axes.set_xlabel("time step within a window")
    axes.set_ylabel("fraction of units with an event")
    axes.set_ylim(0.0, 1.0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    axes.set_title(title or f"EGRU activity (overall sparsity {account.activity_sparsity:.1%})")
    return _save(figure, path)


def plot_sparsity_vs_perplexity(
    points: Sequence[SparsityPoint | Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    x: str = "activity_sparsity",
    title: str | None = None,
) -> Path:
    """Perplexity of several models against one sparsity measure.

    Args:
        points: :class:`SparsityPoint` (or mappings with its fields), one per model.
        path: output ``.png``.
        x: ``"activity_sparsity"``, ``"weight_sparsity"`` or ``"mac_reduction"``.
        title: figure title.
    """
    if x not in _AXES:
        raise ValueError(f"x must be one of {list(_AXES)}, got {x!r}")
    if not points:
        raise ValueError("give at least one model to plot")
    rows = [p if isinstance(p, SparsityPoint) else SparsityPoint(**p) for p in points]
    figure = _new_figure()
    axes = figure.add_subplot(1, 1, 1)
    xs = [getattr(p, x) for p in rows]
    ys = [p.perplexity for p in rows]
    axes.plot(xs, ys, "o-" if len(rows) > 1 else "o")
    for p, px, py in zip(rows, xs, ys):
        axes.annotate(p.label, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel(_AXES[x])
    axes.set_ylabel("perplexity")
    axes.grid(True, alpha=0.3)
    axes.set_title(title or "sparsity vs perplexity")
    return _save(figure, path)


def plot_unit_firing_rates(
    rates: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    bins: int = 40,
) -> Path:
    """Histogram of per-unit firing rates, one step outline per model.

    Args:
        rates: ``{label: (H,) firing rates in [0, 1]}`` (e.g. from
            :func:`snn_egru.training.lm.unit_firing_rates`); the legend gives each model's
            number of dead units (rate 0) and its mean rate.
        path: output ``.png``.
        title: figure title.
        bins: histogram bins over ``[0, 1]``.
    """
    if not rates:
        raise ValueError("give the firing rates of at least one model")
    figure = _new_figure()
    axes = figure.add_subplot(1, 1, 1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for label, values in rates.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0 or np.any((values < 0) | (values > 1)) or not np.isfinite(values).all():
            raise ValueError(f"firing rates of {label!r} must be a non-empty array in [0, 1]")
        dead = int(np.sum(values == 0))
        axes.hist(
            values,
            bins=edges,
            histtype="step",
            linewidth=1.5,
            label=f"{label}: {dead} dead of {values.size}, mean rate {values.mean():.2f}",
        )
    axes.set_xlabel("firing rate (fraction of steps with an event)")
    axes.set_ylabel("units")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    axes.set_title(title or "per-unit firing rates")
    return _save(figure, path)
