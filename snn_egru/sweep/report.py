"""Merge the points of a sweep, compute the fronts and headline figures, write the table.

Definitions (also printed in the generated markdown):

* a *configuration* is a point without its seed; its quality, MACs and energy are the means
  over its seeds (each seed is still listed and drawn);
* the *front* of a cell (per task) is the Pareto front of its configurations: sorted by cost
  (MACs or energy per token), a configuration is on it when its perplexity is lower than that
  of every cheaper configuration (DVS: its accuracy higher);
* the front's perplexity at a cost ``x`` between its cheapest and dearest configuration is
  linear interpolation in ``log x`` between the two neighbouring front configurations; above
  its dearest configuration it is that configuration's perplexity (the best the cell reached
  at that cost or less: a step, not extrapolated); below its cheapest it is undefined;
* ``lm_egru_over_gru_ppl_at_equal_macs``: for every GRU configuration whose effective MACs
  per token (decoder counted) are not below the EGRU front's cheapest configuration, the EGRU
  front's perplexity at that cost over the GRU's perplexity; the headline is the worst
  (largest) ratio. ``None`` when every GRU configuration is cheaper than the EGRU front. (A
  dense configuration dearer than the whole EGRU front counts: otherwise a better, cheaper
  EGRU point that removes a dear one from the front would drop that comparison.)
  ``..._at_equal_rnn_macs``: the same on the recurrent layers' MACs alone;
  ``..._at_equal_energy``: on simulated chip energy per token;
* ``dvs_egru_minus_gru_accuracy``: the best EGRU configuration with at least 50 % activity
  sparsity minus the best GRU configuration, test accuracy in points.

Torch-free. The figures of the same document are drawn by :mod:`snn_egru.sweep.figures`.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from snn_egru.errors import UserError

__all__ = [
    "configurations",
    "front",
    "front_at",
    "headline_figures",
    "load_points",
    "merge",
    "render_markdown",
]

#: The issue's targets (docs/tradeoff.md says how far each is).
TARGETS = {
    "train_steps": 1000,
    "seeds": 2,
    "test_split": "whole PTB test split (82,430 tokens)",
    "lm_egru_over_gru_ppl_at_equal_macs": "<= 1.00 at every GRU point the EGRU front spans",
    "lm_egru_over_gru_ppl_at_equal_energy": "< 1.00 (EGRU front below the dense fronts)",
    "dvs_egru_minus_gru_accuracy": ">= -1 point at >= 50 % activity sparsity, harder setting",
}
#: Tokens of the PTB test split (targets counted).
PTB_TEST_TOKENS = 82_430


# --------------------------------------------------------------------------- loading
def load_points(
    folders: Iterable[Path], keys_of_command: Callable[[str], set[str]] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every point record (``points/*.json``) and run log entry of the sweep folders.

    An entry may also be one point file of another sweep folder (``FOLDER/points/KEY.json``):
    that point alone is merged, by reference (its weights stay where they are), with the
    entries of ``FOLDER/runs.jsonl`` whose grid holds it, by ``keys_of_command(command)``
    (the CLI passes :func:`snn_egru.sweep.cli.point_keys_of_command`)."""
    points: dict[str, dict[str, Any]] = {}
    runs: list[dict[str, Any]] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file() and folder.suffix == ".json" and folder.parent.name == "points":
            record = _read_point(folder)
            points.setdefault(record["key"], record)
            log = folder.parent.parent / "runs.jsonl"
            if log.exists():
                if keys_of_command is None:
                    raise ValueError(f"merging the point file {folder} needs keys_of_command")
                for run in _read_runs(log):
                    if record["key"] in keys_of_command(run.get("command", "")):
                        runs.append(run)
            continue
        if not folder.is_dir():
            raise UserError(
                f"{folder} is not a sweep folder (no such directory) nor a point file "
                "(FOLDER/points/KEY.json)"
            )
        files = sorted((folder / "points").glob("*.json"))
        if not files:
            raise UserError(f"{folder} holds no results (points/*.json); run the sweep first")
        for path in files:
            record = _read_point(path)
            points.setdefault(record["key"], record)
        log = folder / "runs.jsonl"
        if log.exists():
            runs += _read_runs(log)
    unique = {json.dumps(r, sort_keys=True): r for r in runs}  # a folder and a file of it
    return sorted(points.values(), key=_order), list(unique.values())


def _read_point(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); delete it to retrain") from None
    if not isinstance(record, dict) or "key" not in record or "settings" not in record:
        raise UserError(f"{path} is not a sweep point (no key / settings)")
    return record


def _read_runs(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _order(record: dict[str, Any]) -> tuple:
    s = record["settings"]
    th = s.get("threshold")
    return (
        s["task"],
        ["egru", "gru", "lstm"].index(s["cell"]),
        s["width"],
        s["layers"],
        -1.0 if th is None else th,
        s["event_l1"],
        s["prune"],
        s["steps"],
        json.dumps(s.get("recipe", [])),
        s["seed"],
    )


# --------------------------------------------------------------------------- fronts
def _quality(record: dict[str, Any]) -> float:
    q = record["quality"]
    return q["test_perplexity"] if "test_perplexity" in q else q["test_accuracy"]


def configurations(points: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Points of ``task`` grouped over seeds: means of quality and costs, per-seed values."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in points:
        if record["status"] != "done" or record["settings"]["task"] != task:
            continue
        s = dict(record["settings"])
        s.pop("seed")
        groups[json.dumps(s, sort_keys=True)].append(record)
    out = []
    for members in groups.values():
        members.sort(key=lambda r: r["settings"]["seed"])
        s = members[0]["settings"]

        def mean(get: Callable[[dict[str, Any]], float], members: list = members) -> float:
            return statistics.fmean(get(r) for r in members)

        out.append(
            {
                "cell": s["cell"],
                "settings": {k: v for k, v in s.items() if k != "seed"},
                "seeds": [r["settings"]["seed"] for r in members],
                "quality": mean(_quality),
                "quality_per_seed": [_quality(r) for r in members],
                "macs": mean(lambda r: r["macs_per_token"]["effective_with_decoder"]),
                "rnn_macs": mean(lambda r: r["macs_per_token"]["effective_rnn"]),
                "energy": mean(lambda r: r["chip"]["energy_j_per_token"]),
                "activity_sparsity": mean(lambda r: r["activity_sparsity"]),
            }
        )
    return sorted(out, key=lambda c: (c["cell"], c["macs"]))


def front(configs: list[dict[str, Any]], cost: str, *, higher_is_better: bool = False):
    """The Pareto front of ``configs`` over ``cost`` (see the module docstring)."""
    best = -math.inf if higher_is_better else math.inf
    out = []
    for c in sorted(
        configs, key=lambda c: (c[cost], -c["quality"] if higher_is_better else c["quality"])
    ):
        better = c["quality"] > best if higher_is_better else c["quality"] < best
        if better:
            out.append(c)
            best = c["quality"]
    return out


def front_at(front_configs: list[dict[str, Any]], cost: str, x: float) -> float | None:
    """The front's quality at cost ``x``: log-cost linear interpolation; above the dearest
    configuration, its quality (the best at cost <= ``x``); None below the cheapest."""
    if not front_configs:
        return None
    xs = [c[cost] for c in front_configs]
    if x < xs[0] or x <= 0:
        return None
    if x >= xs[-1]:
        return front_configs[-1]["quality"]
    for left, right in zip(front_configs, front_configs[1:]):
        if left[cost] <= x <= right[cost]:
            if right[cost] == left[cost]:
                return min(left["quality"], right["quality"])
            u = (math.log(x) - math.log(left[cost])) / (
                math.log(right[cost]) - math.log(left[cost])
            )
            return left["quality"] + u * (right["quality"] - left["quality"])
    return front_configs[0]["quality"]  # a front of one configuration, x equal to its cost


def _ratios(configs: list[dict[str, Any]], base: str, cost: str) -> dict[str, Any]:
    egru = front([c for c in configs if c["cell"] == "egru"], cost)
    rows = []
    for c in configs:
        if c["cell"] != base:
            continue
        at = front_at(egru, cost, c[cost])
        rows.append(
            {
                "width": c["settings"]["width"],
                "layers": c["settings"]["layers"],
                cost: c[cost],
                f"{base}_perplexity": c["quality"],
                "egru_front_perplexity": at,
                "beyond_front": bool(egru) and c[cost] > egru[-1][cost],
                "ratio": None if at is None else at / c["quality"],
            }
        )
    spanned = [r["ratio"] for r in rows if r["ratio"] is not None]
    return {"worst": max(spanned) if spanned else None, "points": rows}


def main_steps(points: list[dict[str, Any]], task: str) -> int | None:
    """The training budget the fronts and headline figures of ``task`` use (they compare
    points of one budget only): the largest budget with a done EGRU point and a done dense
    (GRU or LSTM) point, the most trained comparison there is; without one, the budget with
    the most done points (ties: the larger budget)."""
    counts: dict[int, int] = defaultdict(int)
    cells: dict[int, set[str]] = defaultdict(set)
    for p in points:
        if p["status"] == "done" and p["settings"]["task"] == task:
            counts[p["settings"]["steps"]] += 1
            cells[p["settings"]["steps"]].add(p["settings"]["cell"])
    compared = [steps for steps, c in cells.items() if "egru" in c and c & {"gru", "lstm"}]
    if compared:
        return max(compared)
    return max(counts, key=lambda steps: (counts[steps], steps)) if counts else None


def at_steps(points: list[dict[str, Any]], task: str, steps: int | None) -> list[dict[str, Any]]:
    return [p for p in points if p["settings"]["task"] == task and p["settings"]["steps"] == steps]


def headline_figures(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures (module docstring) with the per-point ratios behind them, each
    task at its main budget (:func:`main_steps`); ``by_steps``: the LM figures at every
    budget."""
    points = front_points(points)
    budgets = {task: main_steps(points, task) for task in ("lm", "dvs")}
    by_steps = {
        str(steps): _lm_figures(at_steps(points, "lm", steps))[0]
        for steps in sorted(
            {p["settings"]["steps"] for p in points if p["settings"]["task"] == "lm"}
        )
    }
    out, details = _lm_figures(at_steps(points, "lm", budgets["lm"]))
    dvs = configurations(at_steps(points, "dvs", budgets["dvs"]), "dvs")
    egru = [c for c in dvs if c["cell"] == "egru" and c["activity_sparsity"] >= 0.5]
    gru = [c for c in dvs if c["cell"] == "gru"]
    out["dvs_egru_minus_gru_accuracy"] = (
        100.0 * (max(c["quality"] for c in egru) - max(c["quality"] for c in gru))
        if egru and gru
        else None
    )
    return {"figures": out, "details": details, "budgets": budgets, "by_steps": by_steps}


def _lm_figures(points: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    lm = configurations(points, "lm")
    out: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for name, base, cost in (
        ("lm_egru_over_gru_ppl_at_equal_macs", "gru", "macs"),
        ("lm_egru_over_gru_ppl_at_equal_rnn_macs", "gru", "rnn_macs"),
        ("lm_egru_over_gru_ppl_at_equal_energy", "gru", "energy"),
        ("lm_egru_over_lstm_ppl_at_equal_macs", "lstm", "macs"),
        ("lm_egru_over_lstm_ppl_at_equal_energy", "lstm", "energy"),
    ):
        result = _ratios(lm, base, cost)
        out[name] = result["worst"]
        details[name] = result["points"]
    return out, details


# --------------------------------------------------------------------------- ablations
def _twin_key(settings: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in settings.items() if k != "recipe"}, sort_keys=True)


def front_points(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points the fronts are made of: every point but the ablation variants (a recipe
    change whose twin without it is done is judged against that twin, not on the front)."""
    plain = {
        _twin_key(p["settings"])
        for p in points
        if p["status"] == "done" and not p["settings"].get("recipe")
    }
    return [
        p for p in points if not (p["settings"].get("recipe") and _twin_key(p["settings"]) in plain)
    ]


def ablations(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every done point with a recipe change whose twin without it (same everything else,
    same seed) is done: the change's effect on quality and sparsity. ``helps``: quality
    better by more than the baseline configuration's seed spread (the relative difference
    between its best and worst seed; ``None`` with one seed: no spread to judge against)."""
    done = [p for p in points if p["status"] == "done"]
    plain = {_twin_key(p["settings"]): p for p in done if not p["settings"].get("recipe")}
    spread: dict[str, float] = {}
    for p in plain.values():
        group = {k: v for k, v in p["settings"].items() if k != "seed"}
        seeds = [_quality(q) for q in plain.values() if _same_but_seed(q["settings"], group)]
        if len(seeds) > 1:
            spread[json.dumps(group, sort_keys=True)] = max(seeds) / min(seeds) - 1.0
    rows = []
    for p in done:
        recipe = p["settings"].get("recipe")
        base = plain.get(_twin_key(p["settings"])) if recipe else None
        if base is None:
            continue
        lm = "test_perplexity" in p["quality"]
        ratio = _quality(p) / _quality(base)
        gain = (1.0 - ratio) if lm else (ratio - 1.0)  # > 0: better
        group = {k: v for k, v in base["settings"].items() if k != "seed"}
        noise = spread.get(json.dumps(group, sort_keys=True))
        rows.append(
            {
                "task": p["settings"]["task"],
                "change": ", ".join(f"{k}={v}" for k, v in recipe),
                "model": f"{p['settings']['cell']}-{p['settings']['width']}"
                f"x{p['settings']['layers']}",
                "seed": p["settings"]["seed"],
                "steps": p["settings"]["steps"],
                "baseline_quality": _quality(base),
                "quality": _quality(p),
                "ratio": ratio,
                "baseline_activity_sparsity": base["activity_sparsity"],
                "activity_sparsity": p["activity_sparsity"],
                "seed_spread": noise,
                "helps": None if noise is None else gain > noise,
            }
        )
    return rows


def _same_but_seed(settings: dict[str, Any], group: dict[str, Any]) -> bool:
    return {k: v for k, v in settings.items() if k != "seed"} == group


# --------------------------------------------------------------------------- merge
def merge(
    folders: Iterable[Path],
    command: str,
    keys_of_command: Callable[[str], set[str]] | None = None,
) -> dict[str, Any]:
    """The merged document (``docs/tradeoff.json``); ``keys_of_command``: :func:`load_points`."""
    points, runs = load_points(folders, keys_of_command)
    head = headline_figures(points)
    done = [p for p in points if p["status"] == "done"]
    settings = [p["settings"] for p in done]
    used = {
        "train_steps": sorted({s["steps"] for s in settings}),
        "seeds": sorted({s["seed"] for s in settings}),
        "lm_test_tokens": sorted({p["test_tokens"] for p in done if "test_tokens" in p}),
        "chip_steps": sorted({p["chip"]["steps"] for p in done}),
        "data": sorted({f"{s['task']}:{s['data']}" for s in settings}),
        "weight_formats": sorted({s["weight_format"] for s in settings}),
    }
    return {
        "title": "Trade-off study: quality against MACs and simulated chip energy per token",
        "commands": sorted({r["command"] for r in runs}) + [command],
        "runs": runs,
        "sweep_wall_s": sum(r.get("wall_s", 0.0) for r in runs),
        "used": used,
        "targets": TARGETS,
        "headline": head["figures"],
        "headline_details": head["details"],
        "headline_budgets": head["budgets"],
        "headline_by_steps": head["by_steps"],
        "ablations": ablations(points),
        "points": points,
    }


# --------------------------------------------------------------------------- markdown
def table_row(*cells: Any) -> str:
    """One row of a markdown table: ``| a | b | c |``."""
    return "| " + " | ".join(map(str, cells)) + " |"


def _fmt(value: Any, spec: str = ".3g", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _point_row(i: int, p: dict[str, Any]) -> str:
    s = p["settings"]
    th = s.get("threshold")
    activity = "-"
    if s["cell"] == "egru":
        activity = f"th {'preset' if th is None else format(th, 'g')}, l1 {s['event_l1']:g}"
    name = f"{s['cell']}-{s['width']}" + (f"x{s['layers']}" if s["layers"] > 1 else "")
    if s.get("recipe"):
        name += " (" + ", ".join(f"{k}={v}" for k, v in s["recipe"]) + ")"
    if s.get("layer_per_chip"):
        name += " [a chip per layer]"
    if p["status"] != "done":
        return (
            f"| {i} | {s['task']} | {name} | {activity} | {s['prune']:g} | {s['seed']} | "
            f"{s['steps']} | {p['status']}: {p.get('error', '')[:80]} | | | | | | | | | | |"
        )
    q = p["quality"]
    quality = (
        f"{q['test_perplexity']:.1f}"
        if "test_perplexity" in q
        else f"{100 * q['test_accuracy']:.1f} %"
    )
    m = p["macs_per_token"]
    c = p["chip"]
    chip_note = " (lower bound)" if c.get("lower_bound") else ""
    return (
        f"| {i} | {s['task']} | {name} | {activity} | {s['prune']:g} | {s['seed']} | "
        f"{s['steps']} | {quality} | {m['effective_with_decoder'] / 1e6:.3f} | "
        f"{m['effective_rnn'] / 1e6:.3f} | {100 * p['activity_sparsity']:.1f} | "
        f"{_dead(p)} | {100 * p['weight_sparsity']:.1f} | {c['pes_used']} | {c['steps']} | "
        f"{1e6 * c['seconds_per_token']:.1f} | {1e3 * c['energy_j_per_token']:.4f}{chip_note} | "
        f"{c['average_power_w']:.3f} |"
    )


def _dead(p: dict[str, Any]) -> str:
    """Dead units (no event over the test evaluation) per layer, of the layer's width;
    ``-`` for a dense cell or a point recorded before they were counted."""
    dead = p.get("dead_units")
    if not dead:
        return "-"
    return "/".join(str(d) for d in dead) + f" of {p['settings']['width']}"


def _target_line(name: str, value: Any, limit: float, unit: str = "") -> str:
    if value is None:
        why = (
            "no DVS EGRU point at >= 50 % activity sparsity and GRU point"
            if name.startswith("dvs")
            else "every GRU point is cheaper than the EGRU front"
        )
        return f"- `{name}`: not defined by this grid ({why})"
    if name.startswith("dvs"):
        met = value >= limit
        gap = "" if met else f", {limit - value:.1f} points short"
        verdict = "met" if met else "not met"
        return f"- `{name}` = {value:+.1f} points: target >= {limit:+.0f} {verdict}{gap}"
    met = value <= limit
    gap = "" if met else f", {100 * (value / limit - 1):.1f} % above"
    return (
        f"- `{name}` = {value:.3f}: target <= {limit:.2f} {'met' if met else 'not met'}{gap}{unit}"
    )


def render_markdown(doc: dict[str, Any]) -> str:
    """``docs/tradeoff.md`` from the merged document (deterministic: same JSON, same text)."""
    used = doc["used"]
    lines = [
        f"# {doc['title']}",
        "",
        "<!-- generated by `snn-egru sweep report`; do not edit: regenerate it from "
        "docs/tradeoff.json -->",
        "",
        "Made by:",
        "",
        "```",
        *doc["commands"],
        "```",
        "",
        f"Sweep wall time: {doc['sweep_wall_s'] / 60:.1f} min in "
        f"{len(doc['runs'])} invocation(s) ("
        + "; ".join(
            f"{r.get('threads', '?')} thread(s), load {r.get('load_before', '?')}"
            for r in doc["runs"]
        )
        + ").",
        "",
        "## What was run, against the issue's targets",
        "",
        "| | used here | target |",
        "|---|---|---|",
        f"| training steps | {', '.join(map(str, used['train_steps']))} | "
        f"{TARGETS['train_steps']} |",
        f"| seeds | {', '.join(map(str, used['seeds']))} | {TARGETS['seeds']} |",
        f"| LM test tokens (predicted) | "
        f"{', '.join(map(str, used['lm_test_tokens'])) or '-'} | "
        f"{PTB_TEST_TOKENS} (whole split; 82,420 when run as 10 streams) |",
        f"| simulated chip steps per point | {', '.join(map(str, used['chip_steps']))} | "
        "whole test split |",
        f"| data | {', '.join(used['data'])} | PTB; harder synthetic DVS |",
        f"| chip weight format | {', '.join(used['weight_formats'])} | |",
        "",
    ]
    lines += _headline_lines(doc)
    lines += _ablation_lines(doc)
    lines += _point_lines(doc)
    return "\n".join(lines) + "\n"


def _headline_lines(doc: dict[str, Any]) -> list[str]:
    head = doc["headline"]
    budgets = doc.get("headline_budgets") or {}
    lines = ["## Headline figures", ""]
    if budgets:
        lines += [
            "Fronts and figures compare points of one training budget: "
            + ", ".join(f"{task.upper()} {steps} steps" for task, steps in budgets.items() if steps)
            + " (per task, the largest budget with both an EGRU and a dense point; without"
            + " one, the budget with the most points).",
            "",
        ]
    lines += [
        _target_line(
            "lm_egru_over_gru_ppl_at_equal_macs", head["lm_egru_over_gru_ppl_at_equal_macs"], 1.0
        ),
        _target_line(
            "lm_egru_over_gru_ppl_at_equal_energy",
            head["lm_egru_over_gru_ppl_at_equal_energy"],
            1.0,
        ),
        _target_line("dvs_egru_minus_gru_accuracy", head["dvs_egru_minus_gru_accuracy"], -1.0),
        "",
        "Also (no target): "
        + ", ".join(
            f"`{k}` = {_fmt(v, '.3f')}"
            for k, v in head.items()
            if k
            not in (
                "lm_egru_over_gru_ppl_at_equal_macs",
                "lm_egru_over_gru_ppl_at_equal_energy",
                "dvs_egru_minus_gru_accuracy",
            )
        )
        + ".",
        "",
        *_by_steps_lines(doc),
        "Per GRU / LSTM configuration (mean over seeds) and the EGRU front at its cost:",
        "",
        "| figure | dense model | its cost | its perplexity | EGRU front there | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in doc["headline_details"].items():
        cost = next((k for k in ("macs", "rnn_macs", "energy") if rows and k in rows[0]), None)
        for r in rows:
            base = "gru" if "gru_perplexity" in r else "lstm"
            unit = f"{r[cost] * 1e3:.4f} mJ" if cost == "energy" else f"{r[cost] / 1e6:.3f} M"
            lines.append(
                table_row(
                    name,
                    f"{base}-{r['width']}x{r['layers']}",
                    unit,
                    f"{r[f'{base}_perplexity']:.1f}",
                    _fmt(r["egru_front_perplexity"], ".1f", "below the front")
                    + (" (dearest EGRU, cheaper)" if r.get("beyond_front") else ""),
                    _fmt(r["ratio"], ".3f"),
                )
            )
    return lines


def _by_steps_lines(doc: dict[str, Any]) -> list[str]:
    by_steps = doc.get("headline_by_steps") or {}
    if len(by_steps) < 2:
        return []
    names = ("lm_egru_over_gru_ppl_at_equal_macs", "lm_egru_over_gru_ppl_at_equal_energy")
    return [
        "LM figures at each training budget (points of that budget only; `-`: the EGRU "
        "front there reaches no GRU configuration):",
        "",
        "| steps | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
        *(
            f"| {steps} | " + " | ".join(_fmt(figs.get(n), ".3f") for n in names) + " |"
            for steps, figs in by_steps.items()
        ),
        "",
    ]


def _ablation_lines(doc: dict[str, Any]) -> list[str]:
    rows = doc.get("ablations") or []
    if not rows:
        return []
    lines = [
        "",
        "## Recipe ablations",
        "",
        "One change against the recipe it modifies, same model, seed and steps (`--recipe "
        "NAME=VALUE`). *Helps*: better by more than the baseline configuration's seed spread "
        "(best over worst seed); a change that does not is not kept.",
        "",
        "| task | model | change | seed | steps | baseline | with the change | ratio | "
        "act. sparsity % (baseline -> change) | seed spread % | helps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lm = r["task"] == "lm"

        def q(value: float, lm: bool = lm) -> str:
            return f"{value:.1f}" if lm else f"{100 * value:.1f} %"

        helps = "-" if r["helps"] is None else ("yes" if r["helps"] else "no")
        spread = "-" if r["seed_spread"] is None else f"{100 * r['seed_spread']:.1f}"
        activity = (
            f"{100 * r['baseline_activity_sparsity']:.1f} -> {100 * r['activity_sparsity']:.1f}"
        )
        lines.append(
            table_row(
                *(r[name] for name in ("task", "model", "change", "seed", "steps")),
                q(r["baseline_quality"]),
                q(r["quality"]),
                f"{r['ratio']:.3f}",
                activity,
                spread,
                helps,
            )
        )
    return lines


def _point_lines(doc: dict[str, Any]) -> list[str]:
    lines = [
        "",
        *(["## Notes", "", doc["notes"], ""] if doc.get("notes") else []),
        "## Every point",
        "",
        "MACs per token as NeuroBench counts them (effective: zero inputs and zero weights "
        "skipped); *with decoder* counts the tied decoder (LM) / linear readout (DVS) on the "
        "last layer's output, *rnn* the recurrent layers alone. DVS: per frame, the CNN head "
        "(off chip, the same for every cell) not counted. Chip: the simulated SpiNNaker2, "
        "mapped with the fewest PEs that fit, time / energy / power per token over the "
        "point's *chip steps* (LM: its first test tokens, one stream from a zero state; the "
        "whole test split is 82429 steps; DVS: the frames of its test recordings), readout on "
        "the host, as published; *[a chip per layer]*: mapped with a chip boundary after every "
        "layer (`--layer-per-chip`). Dense GRU / LSTM: costed with every "
        "unit sending an event every step (their own weights, EGRU stand-in); LSTM chip "
        "figures are lower bounds (3 of its 4 gates). Dead units: EGRU units that sent no "
        "event over the whole test evaluation, per layer (not counted for the points run "
        "before they were: `-`).",
        "",
        "| # | task | model | activity | prune | seed | steps | ppl / acc. | MMACs/token "
        "(with decoder) | MMACs/token (rnn) | act. sparsity % | dead units | weight sparsity % | "
        "PEs | chip steps | chip us/token | chip mJ/token | chip W |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_point_row(i, p) for i, p in enumerate(doc["points"], 1)]
    lines += [
        "",
        "## Definitions",
        "",
        "A configuration is a point without its seed (means over seeds). A cell's front is "
        "the Pareto front of its configurations (sorted by cost, each lower in perplexity than "
        "every cheaper one); the front's perplexity at a cost between its ends is linear "
        "interpolation in log cost between the two neighbouring configurations; above its "
        "dearest configuration it is that configuration's perplexity (the best reached at that "
        "cost or less: a step, never extrapolated; marked *dearest EGRU, cheaper*); below its "
        "cheapest it is undefined. A ratio is the EGRU front's perplexity at a GRU (LSTM) "
        "configuration's cost over that configuration's perplexity; the headline is the worst "
        "ratio over the configurations not cheaper than the front (a dense configuration "
        "dearer than the whole EGRU front counts, so a cheaper, better EGRU point cannot drop "
        "a comparison by removing a dear point from the front). DVS: best EGRU configuration "
        "at >= 50 % "
        "activity sparsity minus the best GRU configuration, in points.",
        "",
        "## Figures",
        "",
        "Each seed a marker, each cell's front (means over seeds) a line; `*` after a label: "
        "a point on its own recipe (its row in the table names it).",
        "",
    ]
    tasks = {p["settings"]["task"] for p in doc["points"] if p["status"] == "done"}
    if "lm" in tasks:
        lines += [
            "![perplexity vs MACs](figures/tradeoff_lm_macs.png)",
            "![perplexity vs energy](figures/tradeoff_lm_energy.png)",
        ]
    if "dvs" in tasks:
        lines += [
            "![DVS accuracy vs MACs](figures/tradeoff_dvs_macs.png)",
            "![DVS accuracy vs energy](figures/tradeoff_dvs_energy.png)",
        ]
    return lines
