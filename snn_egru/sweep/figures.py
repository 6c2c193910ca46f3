"""The figures of a merged sweep document: quality against cost per task, every point per
seed and each cell's front (``tradeoff_{lm,dvs}_{macs,energy}.png``).

The fronts, configurations and budgets are those of :mod:`snn_egru.sweep.report` (same
definitions as the markdown). Torch-free (matplotlib).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snn_egru.sweep.report import _quality, at_steps, configurations, front, front_points

__all__ = ["write_figures"]

COLORS = {"egru": "tab:blue", "gru": "tab:orange", "lstm": "tab:green"}
MARKERS = ["o", "s", "^", "D"]


def _plot(doc: dict[str, Any], task: str, cost: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = front_points(doc["points"])
    points = [p for p in shown if p["status"] == "done" and p["settings"]["task"] == task]
    if not points:
        return False
    budget = (doc.get("headline_budgets") or {}).get(task)
    configs = configurations(at_steps(shown, task, budget) if budget else shown, task)
    higher = task == "dvs"
    fig, ax = plt.subplots(figsize=(8.4, 4.4))

    def x_of(p: dict[str, Any]) -> float:
        if cost == "energy":
            return 1e3 * p["chip"]["energy_j_per_token"]
        return p["macs_per_token"]["effective_with_decoder"] / 1e6

    scale = 1e3 if cost == "energy" else 1e-6
    seeds = sorted({p["settings"]["seed"] for p in points})
    for cell in ("egru", "gru", "lstm"):
        mine = [p for p in points if p["settings"]["cell"] == cell]
        if not mine:
            continue
        for k, seed in enumerate(seeds):
            sel = [p for p in mine if p["settings"]["seed"] == seed]
            if not sel:  # no legend entry for a seed this cell did not run
                continue
            ax.scatter(
                [x_of(p) for p in sel],
                [_quality(p) * (100 if higher else 1) for p in sel],
                color=COLORS[cell],
                marker=MARKERS[k % len(MARKERS)],
                alpha=0.6,
                label=f"{cell} seed {seed}",
            )
        line = front([c for c in configs if c["cell"] == cell], cost, higher_is_better=higher)
        ax.plot(
            [c[cost] * scale for c in line],
            [c["quality"] * (100 if higher else 1) for c in line],
            color=COLORS[cell],
            label=f"{cell} front (mean over seeds{f', {budget} steps' if budget else ''})",
        )
    for p in points:  # the width (x layers) beside each marker
        s = p["settings"]
        text = f"{s['width']}" + (f"x{s['layers']}" if s["layers"] > 1 else "")
        text += f" p{s['prune']:g}" if s["prune"] else ""
        text += f" ({s['steps']} steps)" if budget and s["steps"] != budget else ""
        text += "*" if s.get("recipe") else ""  # trained on its own recipe (the table's row)
        y = _quality(p) * (100 if higher else 1)
        ax.annotate(text, (x_of(p), y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(
        "simulated chip energy per token (mJ)"
        if cost == "energy"
        else "effective MACs per token, decoder counted (millions)"
    )
    ax.set_ylabel("test accuracy (%)" if higher else "test perplexity")
    if not higher:
        ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(which="minor", labelsize=6)
    ax.grid(True, which="both", alpha=0.3)
    # outside the axes: inside it hid the cheap EGRU points
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    steps = sorted({p["settings"]["steps"] for p in points})
    ax.set_title(f"{task.upper()}: {', '.join(map(str, steps))} training steps", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_figures(doc: dict[str, Any], folder: Path) -> list[Path]:
    """``tradeoff_{lm,dvs}_{macs,energy}.png`` (those with points)."""
    out = []
    for task, cost, name in (
        ("lm", "macs", "tradeoff_lm_macs.png"),
        ("lm", "energy", "tradeoff_lm_energy.png"),
        ("dvs", "macs", "tradeoff_dvs_macs.png"),
        ("dvs", "energy", "tradeoff_dvs_energy.png"),
    ):
        if _plot(doc, task, cost, Path(folder) / name):
            out.append(Path(folder) / name)
    return out
