"""Plots of the simulated chip (matplotlib, Agg backend, PNG files).

Memory part: :func:`plot_memory_heatmap` draws each chip's QPE grid (qx 1..7 across, qy 1..6
up) with the 4 PEs of every QPE as 2 x 2 squares (core 0 bottom left, 1 bottom right,
2 top left, 3 top right) coloured by data-memory use; the holes of the grid (no QPE) are
hatched; unused PEs are white; PEs that overflow are outlined in red.

The figures are built with matplotlib's object API and the Agg canvas (no pyplot state, no
display needed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from spinnaker2_backend.mapping import Mapping

__all__ = ["plot_memory_heatmap"]

# =============================================================================== memory

#: Offsets of PE 0..3 inside a QPE cell (x, y), in units of half a cell.
_PE_OFFSETS = ((0, 0), (1, 0), (0, 1), (1, 1))


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _draw_chip(ax, mapping: Mapping, chip: int, by_pe: dict, cmap, norm) -> None:
    """One chip's QPE grid: each PE in use coloured by its data memory (red edge: over)."""
    from matplotlib.patches import Rectangle

    spec = mapping.spec
    (x0, x1), (y0, y1) = spec.qpe_x_range, spec.qpe_y_range
    present = set(spec.qpe_coordinates)
    for qx in range(x0, x1 + 1):
        for qy in range(y0, y1 + 1):
            if (qx, qy) not in present:
                ax.add_patch(
                    Rectangle(
                        (qx - 0.5, qy - 0.5),
                        1,
                        1,
                        facecolor="0.85",
                        edgecolor="0.5",
                        hatch="//",
                        linewidth=0.8,
                    )
                )
                ax.text(qx, qy, "no\nQPE", ha="center", va="center", fontsize=6, color="0.3")
                continue
            for p, (dx, dy) in enumerate(_PE_OFFSETS[: spec.pes_per_qpe]):
                index = mapping.machine.index_of_qpe(chip, (qx, qy), p)
                s = by_pe.get(index)
                corner = (qx - 0.5 + 0.5 * dx, qy - 0.5 + 0.5 * dy)
                if s is None:
                    ax.add_patch(
                        Rectangle(corner, 0.5, 0.5, facecolor="white", edgecolor="0.8", lw=0.5)
                    )
                    continue
                mem = mapping.memory[index]
                over = mem.free < 0
                ax.add_patch(
                    Rectangle(
                        corner,
                        0.5,
                        0.5,
                        facecolor=cmap(norm(min(mem.utilisation, 1.0))),
                        edgecolor="red" if over else "white",
                        lw=1.5 if over else 0.5,
                    )
                )
                shade = "black" if mem.utilisation > 0.6 else "white"
                ax.text(
                    corner[0] + 0.25,
                    corner[1] + 0.25,
                    f"L{s.layer}",
                    ha="center",
                    va="center",
                    fontsize=5,
                    color=shade,
                )
            ax.add_patch(
                Rectangle((qx - 0.5, qy - 0.5), 1, 1, fill=False, edgecolor="0.2", linewidth=1.0)
            )
    ax.set_xlim(x0 - 0.55, x1 + 0.55)
    ax.set_ylim(y0 - 0.55, y1 + 0.55)
    ax.set_aspect("equal")
    ax.set_xticks(range(x0, x1 + 1))
    ax.set_yticks(range(y0, y1 + 1))
    ax.set_xlabel("qx")
    ax.set_ylabel("qy")
    ax.set_title(f"chip {chip}", fontsize=9)


def plot_memory_heatmap(
    mapping: Mapping,
    path: str | os.PathLike | None = None,
    *,
    chips: list[int] | None = None,
    title: str | None = None,
) -> Figure:
    """Heatmap of data-memory use per PE on the chip's QPE grid.

    Args:
        mapping: a :class:`~spinnaker2_backend.mapping.Mapping`.
        path: PNG file to write (``None``: only return the figure).
        chips: chips to draw (default: every chip with a PE in use, at most 8).
        title: figure title (default: network, format and fullest PE).

    Returns:
        The matplotlib ``Figure``.
    """
    from matplotlib import cm, colormaps, colors

    spec = mapping.spec
    by_pe = {s.pe: s for s in mapping.slices}
    if chips is None:
        chips = sorted({s.chip for s in mapping.slices})[:8]
    (x0, x1), (y0, y1) = spec.qpe_x_range, spec.qpe_y_range
    width, height = x1 - x0 + 1, y1 - y0 + 1
    ncols = min(len(chips), 4)
    nrows = -(-len(chips) // ncols)
    fig = _new_figure(1.0 + 0.85 * width * ncols + 1.2, 0.9 + 0.85 * height * nrows)
    norm = colors.Normalize(vmin=0.0, vmax=1.0)
    cmap = colormaps["viridis"]
    axes = []
    for k, chip in enumerate(chips):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        axes.append(ax)
        _draw_chip(ax, mapping, chip, by_pe, cmap, norm)
    mappable = cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(
        mappable,
        ax=axes,
        fraction=0.04,
        label=f"data memory used (fraction of {spec.data_memory_bytes // 1024} KiB)",
    )
    if title is None:
        fit = mapping.fit
        title = (
            f"{'/'.join(map(str, mapping.artifact.layer_sizes))} units, "
            f"{mapping.weight_format}, {mapping.num_pes_used} PEs; fullest PE {fit.fullest_pe} "
            f"{100 * fit.fullest_utilisation:.1f} %"
        )
    fig.suptitle(title, fontsize=10)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from snn_egru.cliargs import atomic_path

        with atomic_path(path) as tmp:  # whole or not at all (a full disk)
            fig.savefig(tmp, format="png")
    return fig


# ======================================================================================
# Profile / time plots of a run (RUNNING half) go below this line.
# ======================================================================================
