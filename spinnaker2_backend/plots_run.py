"""Plots of a simulated run (matplotlib, Agg canvas, PNG files).

* :func:`plot_profile`: the time profile like the published one, as stacked bars per PE
  (mean time per step in each phase group, microseconds; layers side by side, separated),
  plus one stacked bar per layer for its critical path (the slowest PE of every step).
* :func:`plot_packets`: packets per step (on chip and chip to chip) and events per step, per
  layer.

The figures are built with matplotlib's object API (no pyplot state, no display needed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spinnaker2_backend.timing import PHASES, PROFILE_GROUPS

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from spinnaker2_backend.results import Run

__all__ = ["plot_packets", "plot_profile", "save_run_plots"]

#: Colours of the profile groups (stable across figures).
_GROUP_COLOURS = {
    "DRAM input": "#8c564b",
    "input product": "#1f77b4",
    "recurrent product": "#d62728",
    "point-wise": "#2ca02c",
    "send/receive": "#ff7f0e",
    "overhead": "#7f7f7f",
    "readout": "#9467bd",
}


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _check_path(path: str | os.PathLike | None) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plots are written as PNG: give a file name ending in .png, not {path}")
    return path


def _save(fig: Figure, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    from snn_egru.cliargs import atomic_path

    with atomic_path(path) as tmp:  # whole or not at all (a full disk)
        fig.savefig(tmp, format="png")


def _grouped_rows(phase_values: np.ndarray) -> dict[str, np.ndarray]:
    """``(len(PHASES), ...)`` -> group name -> summed values."""
    index = {name: i for i, name in enumerate(PHASES)}
    return {
        group: sum(phase_values[index[name]] for name in names)
        for group, names in PROFILE_GROUPS.items()
    }


def plot_profile(run: Run, path: str | os.PathLike | None = None, *, title: str | None = None):
    """Stacked profile bars: per PE (left) and per layer's critical path (right).

    Args:
        run: a :class:`~spinnaker2_backend.results.Run`.
        path: PNG file to write (``None``: only return the figure).
        title: figure title (default: network, format, clock, time per token).

    Returns:
        The matplotlib ``Figure``.
    """
    path = _check_path(path)
    profile = run.profile
    steps = max(run.steps, 1)
    us = 1e6 / profile.clock_hz / steps  # cycles summed over steps -> us per step
    fig = _new_figure(13, 4.8)
    ax_pe, ax_layer = fig.subplots(1, 2, gridspec_kw={"width_ratios": [4, 1]})

    # per PE, layers one after another with a gap
    position = 0.0
    ticks, tick_labels, bottoms = [], [], None
    xs, heights = [], {g: [] for g in PROFILE_GROUPS}
    for layer, cycles in enumerate(profile.pe_phase_cycles):
        grouped = _grouped_rows(cycles * us)
        count = cycles.shape[1]
        x = position + np.arange(count)
        xs.append(x)
        for group in PROFILE_GROUPS:
            heights[group].append(np.asarray(grouped[group], dtype=float))
        ticks.append(position + (count - 1) / 2)
        tick_labels.append(f"layer {layer}\n({count} PEs)")
        position += count + max(2.0, 0.04 * count)
    x_all = np.concatenate(xs) if xs else np.zeros(0)
    bottoms = np.zeros_like(x_all)
    for group in PROFILE_GROUPS:
        values = np.concatenate(heights[group]) if heights[group] else np.zeros(0)
        if not np.any(values):
            continue
        ax_pe.bar(
            x_all,
            values,
            bottom=bottoms,
            width=1.0,
            color=_GROUP_COLOURS[group],
            label=group,
            linewidth=0,
        )
        bottoms = bottoms + values
    ax_pe.set_xticks(ticks, tick_labels)
    ax_pe.set_ylabel("busy time per step (us)")
    ax_pe.set_title("per PE (mean over steps)")
    ax_pe.legend(loc="upper right", fontsize=8, ncols=2)

    # per layer, critical path
    critical = profile.layer_critical_phase_sum  # (L, phases), every step
    layers = np.arange(critical.shape[0])
    grouped = _grouped_rows(critical.T * us)
    bottom = np.zeros(len(layers))
    for group in PROFILE_GROUPS:
        values = np.asarray(grouped[group], dtype=float)
        if not np.any(values):
            continue
        ax_layer.bar(layers, values, bottom=bottom, color=_GROUP_COLOURS[group], label=group)
        bottom = bottom + values
    ax_layer.set_xticks(layers, [f"layer {i}" for i in layers])
    ax_layer.set_ylabel("slowest PE per step (us)")
    ax_layer.set_title("critical path")
    if profile.tick_us is not None:
        ax_layer.axhline(profile.tick_us, color="black", linestyle="--", linewidth=1)
        ax_layer.text(0, profile.tick_us, " tick", va="bottom", fontsize=8)
    sizes = "/".join(map(str, run.layer_sizes))
    fig.suptitle(
        title
        or (
            f"EGRU {sizes}, {run.weight_format}, {run.clock_hz / 1e6:g} MHz: "
            f"{run.seconds_per_token * 1e3:.3f} ms per token (simulated)"
        )
    )
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_packets(run: Run, path: str | os.PathLike | None = None, *, title: str | None = None):
    """Packets per step (on chip, chip to chip) and events per step, per layer.

    Args:
        run: a :class:`~spinnaker2_backend.results.Run`.
        path: PNG file to write (``None``: only return the figure).
        title: figure title.

    Returns:
        The matplotlib ``Figure``.
    """
    path = _check_path(path)
    fig = _new_figure(10, 5.5)
    ax_packets, ax_events = fig.subplots(2, 1, sharex=True)
    # the steps whose per-step counts the run kept (a recording window: the last ones)
    steps = np.arange(run.steps) if run.recorded_steps is None else run.recorded_steps
    sent = run.step_counts("packets_sent")
    chip = run.step_counts("packets_sent_chip")
    events = run.step_counts("events")
    for layer in range(sent.shape[1]):
        (line,) = ax_packets.plot(steps, sent[:, layer] - chip[:, layer], label=f"layer {layer}")
        if np.any(chip[:, layer]):
            ax_packets.plot(
                steps,
                chip[:, layer],
                linestyle="--",
                color=line.get_color(),
                label=f"layer {layer} chip-to-chip",
            )
        ax_events.plot(steps, events[:, layer], color=line.get_color(), label=f"layer {layer}")
    ax_packets.set_ylabel("packets sent per step")
    ax_packets.legend(fontsize=8)
    ax_events.set_ylabel("events per step")
    ax_events.set_xlabel("step")
    sizes = "/".join(map(str, run.layer_sizes))
    fig.suptitle(title or f"EGRU {sizes}, {run.weight_format}: packets and events per step")
    fig.tight_layout()
    _save(fig, path)
    return fig


def save_run_plots(run: Run, directory: str | os.PathLike) -> list[Path]:
    """Write ``profile.png`` and ``packets.png`` into ``directory``; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "profile.png", directory / "packets.png"]
    plot_profile(run, paths[0])
    plot_packets(run, paths[1])
    return paths
