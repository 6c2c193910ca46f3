"""The bottleneck study page itself: ``docs/bottleneck.md`` and its figure, rendered from the
JSON that :func:`snn_egru.bottleneck_report.collect` writes (the command and the figures it
computes live in :mod:`snn_egru.bottleneck_report`; this module only formats them).

It also holds what both sides share: the issue's targets and the grouping of points that are
compared with each other (same stack, budget, seed and recipe).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from snn_egru.sweep.report import table_row

__all__ = ["PPL_COST_TARGET", "TRAFFIC_TARGET", "comparison_group", "plot", "render_markdown"]

#: The issue's targets: >= 4x less chip-to-chip traffic at <= 3 % perplexity cost.
TRAFFIC_TARGET = 4.0
PPL_COST_TARGET = 0.03
#: The issue's multi-chip configuration: one that needs at least this many chips.
SCALE_CHIPS = 4
#: The figure's perplexity-cost axis ends here (%); costlier points sit on its top edge.
PLOT_COST_CAP = 100.0


def collect_line(folders: Sequence[str], *, project: bool, keep: Sequence[str] = ()) -> str:
    """The ``collect`` command that makes a study JSON at docs/bottleneck.json."""
    return (
        "python -m snn_egru.bottleneck_report collect "
        + " ".join(folders)
        + "".join(f" --keep {k}" for k in keep)
        + " --json docs/bottleneck.json"
        + (" --project" if project else "")
        + " --overwrite"
    )


def collect_lines_of(doc: dict[str, Any]) -> list[str]:
    """The ``collect`` commands that made a study JSON (one per collection; a JSON from
    before ``--keep`` names only its folders)."""
    return doc.get("collect_lines") or [
        collect_line(
            doc.get("collected_from") or ["runs/bottleneck"], project=bool(doc.get("projection"))
        )
    ]


def comparison_group(row: dict[str, Any]) -> tuple:
    """Points compared with each other: same stack, budget, seed, recipe and warm start, and
    the same batch (``source``: the sweep folder or kept study JSON a point came from; a
    point trained again elsewhere, on another machine, is compared within its own batch)."""
    recipe = json.dumps(row.get("recipe") or [], sort_keys=True)
    return (
        row["width"],
        row["layers"],
        row["steps"],
        row["seed"],
        recipe,
        _warm(row),
        row.get("source") or "",
    )


def _warm(row: dict[str, Any]) -> int:
    """Steps of the plain parent a point started from (0: from scratch)."""
    return int(row.get("warm_start") or 0)


def _steps_text(row: dict[str, Any]) -> str:
    """``2000``, or ``1000+1000`` for a warm start (parent's steps + the point's)."""
    warm = _warm(row)
    return f"{warm}+{row['steps'] - warm}" if warm else f"{row['steps']}"


_group = comparison_group


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(points: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | bottleneck | steps | seed | overrides | n/k | k | test ppl | ppl cost | chips "
        "| c2c events/token | c2c packets/token | c2c bytes/token | traffic reduction "
        "| link us/token | link nJ/token | chip us/token | chip mJ/token | batch |",
        "|" + "---|" * 19,
    ]
    for r in points:
        sizes = "/".join(map(str, r["hidden_sizes"]))
        cost = _fmt(r["ppl_cost"] and 100 * r["ppl_cost"], "+.1f")
        lines.append(
            table_row(
                f"egru {sizes}",
                _kind_label(r),
                _steps_text(r),
                r["seed"],
                _recipe_text(r.get("recipe") or []),
                _fmt(r["ratio"] or None, "g"),
                _fmt(r["k"], "d"),
                f"{r['test_perplexity']:.1f}",
                cost if r["ppl_cost"] is None else f"{cost} %",
                r["chips_used"],
                f"{r['c2c_events_per_token']:.1f}",
                f"{r['c2c_packets_per_token']:.1f}",
                f"{r['c2c_bytes_per_token']:.0f}",
                _fmt(r["c2c_traffic_reduction"], ".2f"),
                f"{1e6 * r['link_time_s_per_token']:.3f}",
                f"{1e9 * r['link_energy_j_per_token']:.2f}",
                f"{1e6 * r['seconds_per_token']:.1f}",
                f"{1e3 * r['energy_j_per_token']:.4f}",
                f"`{r['source']}`" if r.get("source") else "-",
            )
        )
    return lines


def _kind(row: dict[str, Any]) -> str:
    """What the point's bottlenecks compute (``-``: none; rows from before the kinds were
    EGRU layers)."""
    if not row.get("ratio"):
        return "-"
    return row.get("kind") or "egru"


def _kind_label(row: dict[str, Any]) -> str:
    """The kind with the bottleneck's own L1 penalty when it has one (``ff L1=0.03``)."""
    l1 = row.get("bottleneck_l1") or 0.0
    return _kind(row) + (f" L1={l1:g}" if row.get("ratio") and l1 else "")


#: What each bottleneck kind is, for the page.
KIND_TEXT = {
    "egru": "an EGRU layer of k units (recurrent, gated, event-based)",
    "ff": "a feed-forward event-based projection y = max(0, tanh(W x + b)) of k units "
    "(only non-zero values are sent)",
    "dense": "a graded projection y = tanh(W x + b) of k units, every unit sent every step",
}


def _recipe_text(recipe: Sequence[Sequence[Any]]) -> str:
    return ", ".join(f"`{k}={json.dumps(v)}`" for k, v in recipe) if recipe else "none"


def _stack_trains(points: list[dict[str, Any]], base: dict[str, Any] | None) -> list[str]:
    """Each plain stack against the best one-layer model of its width, steps and seed
    (the recommended point's baseline first; plain stacks without such a reference:
    nothing)."""
    plain = [r for r in points if not r["ratio"] and r.get("one_layer_perplexity")]
    plain.sort(key=lambda r: r is not base)
    lines = []
    for r in plain:
        cost = r["test_perplexity"] / r["one_layer_perplexity"] - 1.0
        lines += [
            f"Does the stack train? The plain {'/'.join(map(str, r['hidden_sizes']))} stack "
            f"(seed {r['seed']}, overrides {_recipe_text(r.get('recipe') or [])}) "
            f"reaches {r['test_perplexity']:.1f} test perplexity, the best one-layer model "
            f"of the same width, steps and seed (overrides "
            f"{_recipe_text(r.get('one_layer_recipe') or [])}) "
            f"{r['one_layer_perplexity']:.1f} ({100 * cost:+.1f} %)"
            + (
                f" (the one-layer model from batch `{r['one_layer_source']}`, the stack from "
                f"`{r['source']}`: no one-layer model of the stack's batch)"
                if r.get("source") and r.get("one_layer_source") not in (None, r.get("source"))
                else ""
            )
            + ("" if r is base else ", not the recommended point's baseline")
            + ".",
            "",
        ]
    if base is not None and not base.get("one_layer_perplexity"):
        lines += [
            f"The recommended point's baseline (plain stack, seed {base['seed']}) has no "
            "one-layer model of the same width, steps and seed to compare with: whether it "
            "trains is not checked.",
            "",
        ]
    return lines


def _verdict(doc: dict[str, Any]) -> list[str]:
    rec = doc["recommended"]
    if rec is None:
        return ["No bottleneck point with a baseline: nothing to recommend."]
    red, cost = rec["c2c_traffic_reduction"], 100 * rec["ppl_cost"]
    met = rec["traffic_target_met"] and rec["ppl_target_met"]
    points = doc["points"]
    rec_row = next((r for r in points if r["key"] == rec["key"]), None)
    base = next(
        (
            r
            for r in points
            if rec_row is not None and not r["ratio"] and _group(r) == _group(rec_row)
        ),
        None,
    )
    row = rec_row or {}
    budget = [
        f"Budget of the comparison: {rec.get('steps', row.get('steps'))} training steps for "
        f"every point (same batch, windows and schedule"
        + (
            f"; warm start: the plain stack trained {_warm(row)} steps, then "
            f"{row['steps'] - _warm(row)} more with the bottlenecks inserted from it, against "
            f"the same plain stack continued for {row['steps'] - _warm(row)} steps"
            if _warm(row)
            else ""
        )
        + f"), seed "
        f"{rec.get('seed', row.get('seed'))}, the `{row.get('preset')}` recipe with overrides "
        f"{_recipe_text(rec.get('recipe') or row.get('recipe') or [])}; test perplexity over "
        f"{row.get('test_tokens')} test tokens.",
        "",
    ]
    stack_vs_one = None
    if base is not None and base.get("one_layer_perplexity"):
        stack_vs_one = base["test_perplexity"] / base["one_layer_perplexity"] - 1.0
    budget += _stack_trains(points, base)
    better = [r for r in points if r["ppl_cost"] is not None and r["ppl_cost"] < 0]
    caveat: list[str] = []
    if better:
        why = (
            f"The plain stack is {100 * stack_vs_one:.1f} % worse than the one-layer model of "
            "the same budget, so it is undertrained at this budget and a narrower stack can "
            "beat it; "
            if stack_vs_one is not None and stack_vs_one > PPL_COST_TARGET
            else "A bottleneck regularises or trains faster at this budget; "
        )
        caveat = [
            "",
            f"**Read this with care:** {len(better)} bottlenecked point(s) reach a *lower* "
            f"perplexity than the same stack without bottlenecks. {why}the cost measured here "
            "is the cost at this budget, not at convergence.",
        ]
    trains = rec.get("baseline_trains")
    if met and trains:
        word = "**met**."
    elif met:
        word = "**not claimed**: the figures are within it, but " + (
            "the plain stack it is measured against does not train as well as the "
            "one-layer model of the same budget (above), so it is no trained baseline."
            if trains is False
            else "no one-layer reference of the same budget was measured, so whether the "
            "plain stack is a trained baseline is not checked."
        )
    else:
        word = (
            f"**not met** (traffic {'met' if rec['traffic_target_met'] else 'not met'}, "
            f"perplexity {'met' if rec['ppl_target_met'] else 'not met'})."
        )
    return [
        *budget,
        f"Recommended: **n/k = {rec['ratio']:g}, {_kind(rec)} bottleneck** (k = {rec['k']}, "
        f"{KIND_TEXT[_kind(rec)]}"
        + (
            f"; trained with `--bottleneck-l1 {rec['bottleneck_l1']:g}`, an L1 penalty on "
            "its events"
            if rec.get("bottleneck_l1")
            else ""
        )
        + "): "
        f"`c2c_traffic_reduction` = {red:.2f}x, `ppl_cost` = {cost:+.2f} %.",
        "",
        f"Target (>= {TRAFFIC_TARGET:g}x less chip-to-chip traffic per token at <= "
        f"{100 * PPL_COST_TARGET:g} % perplexity cost, equal training budget, against a "
        "plain stack that trains): " + word,
        *caveat,
    ]


def render_markdown(doc: dict[str, Any], figure: str | None = "figures/bottleneck.png") -> str:
    """``docs/bottleneck.md`` from the JSON of :func:`collect` (module docstring)."""
    points = doc["points"]
    lines = [
        f"# {doc['title']}",
        "",
        "<!-- generated by `python -m snn_egru.bottleneck_report render`; do not edit: "
        "regenerate it from docs/bottleneck.json -->",
        "",
        "Made by:",
        "",
        "```",
        *doc["commands"],
        *collect_lines_of(doc),
        "python -m snn_egru.bottleneck_report render docs/bottleneck.json --md docs/bottleneck.md "
        "--figure docs/figures/bottleneck.png --overwrite",
        "```",
        "",
        "Runs (each point under the shared machine's lock): "
        + "; ".join(
            f"shard {r['shard']} {_fmt(r['wall_s'] and r['wall_s'] / 60, '.1f')} min, "
            f"{r['threads']} thread(s), load {r['load_before']} -> {r['load_after']}"
            for r in doc["runs"]
        )
        + ".",
        "",
        "## Result",
        "",
        *_verdict(doc),
        "",
        *_scope(doc),
        "",
        "## Every point",
        "",
        *_table(points),
        "",
        "## What was run",
        "",
        *_setup(points),
        *_projection_lines(doc.get("projection")),
        "",
        "## Definitions",
        "",
        "A bottleneck is a layer of k = n / (n/k) units inserted at every layer boundary "
        "of the stack (`snn_egru.bottleneck`), of one of three kinds (column *bottleneck*, "
        "`--bottleneck-kind`): `egru`, an EGRU layer (recurrent, gated, event-based); `ff`, "
        "y = max(0, tanh(W x + b)), feed-forward and event-based (its traffic is its "
        "activity); `dense`, y = tanh(W x + b), the graded linear projection of the events "
        "(tanh-squashed), every unit every step (k packets per token). `ff` and `dense` are "
        "EGRU layers with parameters held fixed (`snn_egru.bottleneck_layers`: recurrent "
        "weights, r- and z-gate input weights and recurrent biases 0, z-gate bias -1000 so "
        "that z = 0 exactly and the layer has no memory, threshold frozen at 0 / -2), so "
        "every backend runs them unchanged and the mapper stores only their W and b. "
        "The mapping puts a chip boundary after each "
        "bottleneck (after each layer without bottlenecks: `--layer-per-chip`), so the "
        "bottleneck sits on the chips of the layer before it and only its events cross. "
        "Chip-to-chip traffic is counted along the multicast trees of the router tables "
        "(`spinnaker2_backend.mapping.crossings`): *c2c events* leave their chip, *c2c "
        "packets* are link traversals (one per event and link of its tree), *bytes* are "
        "packets x 8 (32-bit key + 32-bit payload). Link time is the busiest link's packets "
        "x `chip_link_packet_cycles` at the PE clock, link energy packets x "
        "`chip_link_energy_j` (both [C], assumed); chip time and energy per token are the "
        "simulated run's (all [C]-tagged constants as in docs/spinnaker2.md). "
        "`c2c_traffic_reduction` = packets per token of the same stack without bottlenecks "
        "(same width, layers, seed and training steps) over the bottlenecked one's; "
        "`ppl_cost` = perplexity ratio - 1.",
    ]
    lines += ["", *_usage()]
    if figure:
        lines += ["", "## Figure", "", f"![perplexity cost vs chip-to-chip traffic]({figure})"]
    return "\n".join(lines) + "\n"


def _scope(doc: dict[str, Any]) -> list[str]:
    """Which figures are trained and simulated and which are a projection (mapped only)."""
    chips = sorted({r["chips_used"] for r in doc["points"]})
    big = [r for r in doc["points"] if r["chips_used"] >= SCALE_CHIPS]
    text = (
        f"Trained and simulated: every point of the table below (chips used: "
        f"{', '.join(map(str, chips)) or 'none'}). "
    )
    if big:
        text += f"On at least {SCALE_CHIPS} chips (the issue's configuration): {len(big)} of them. "
    else:
        text += f"None of them uses {SCALE_CHIPS} chips or more. "
    proj = doc.get("projection")
    if proj:
        rows = [r for r in proj["rows"] if r["chips_used"] >= SCALE_CHIPS]
        text += (
            f"The {'/'.join(map(str, proj['plain_sizes']))} stack (section *At scale*, "
            f"{len(rows)} of its placements on {SCALE_CHIPS} chips or more) is a projection: "
            "mapped and its traffic counted with synthetic weights and assumed activity, "
            "not trained, so it has no perplexity."
        )
    else:
        text += "No projection at scale was collected (`collect --project`)."
    return [text]


def _projection_lines(proj: dict[str, Any] | None) -> list[str]:
    if not proj:
        return []
    sizes = "/".join(map(str, proj["plain_sizes"]))
    lines = [
        "",
        f"## At scale: the paper LM at 2x width ({sizes}), mapped, not trained",
        "",
        f"Synthetic weights pruned to {100 * proj['sparsity']:g} % (CSR, `bitmap16` receive, "
        f"as the published deployment), every wide unit firing on {100 * proj['activity']:g} "
        "% of the steps (`TRAINED_LM_ACTIVITY`, the trained-LM figure the chip model uses) and "
        "an EGRU bottleneck unit (kind `egru`) on that times the activity ratio bottleneck / "
        "plain stack measured in the trained `egru`-kind points above where there is one, "
        "else as often as a wide unit "
        "(assumptions: these bottlenecks are not trained). "
        "Traffic is counted on the multicast trees of the mapping, as above; the reduction is "
        "against the packed plain stack (no chip boundaries).",
        "",
        "| stack | n/k | chip boundaries after | PEs | chips | bottleneck activity "
        "| c2c packets/token | per layer | c2c bytes/token | reduction vs packed "
        "| link us/token |",
        "|" + "---|" * 11,
    ]
    for r in proj["rows"]:
        lines.append(
            f"| {'/'.join(map(str, r['hidden_sizes']))} | {_fmt(r['ratio'] or None, 'g')} "
            f"| {','.join(map(str, r['chip_boundaries'])) or '-'} | {r['pes_used']} "
            f"| {r['chips_used']} | {_fmt(r['bottleneck_activity'], '.3f')}"
            f"{_source(r)} "
            f"| {r['c2c_packets_per_token']:.0f} "
            f"| {' / '.join(f'{v:.0f}' for v in r['layer_packets'])} "
            f"| {r['c2c_bytes_per_token']:.0f} | {r['c2c_traffic_reduction_vs_packed']:.2f} "
            f"| {1e6 * r['link_time_s_per_token']:.2f} |"
        )
    spills = [r for r in proj["rows"] if r.get("bottleneck_spills")]
    if spills:
        lines += [""] + [
            f"n/k = {r['ratio']:g}: {r['bottleneck_spills']} (its layer and bottleneck need "
            "more than one chip's PEs; its input crosses too, counted above)."
            for r in spills
        ]
    return lines


def _source(row: dict[str, Any]) -> str:
    where = row.get("bottleneck_activity_from")
    return f" ({where})" if where else ""


def _usage() -> list[str]:
    return [
        "## How to use it",
        "",
        "- Model: `insert_bottlenecks(hidden_sizes, {boundary: k})` "
        "(`snn_egru.bottleneck`) gives the stack and `bottleneck_layers` for "
        "`LanguageModelConfig(hidden_sizes=..., bottleneck_layers=...)`; k <= 0, k not "
        "narrower than its layer and a boundary the stack does not have are refused. The "
        "export keeps the marks in the artifact's model config.",
        "- Mapping: `map_network(artifact, chip_boundaries=[...])` starts the layer after each "
        "listed one on a fresh chip; `python -m spinnaker2_backend map ART --chips N "
        "--chip-boundaries bottlenecks --crossings` does it for the marked bottlenecks (a "
        "bottleneck that spills beyond the chips of the layer before it is refused, exit 2) "
        "and prints the traffic per layer and chip pair.",
        "- Crossings of a run: `crossings_from_run(mapping, run)` "
        "(`spinnaker2_backend.mapping.crossings`); `check_chip_boundaries(mapping, [...])` "
        "refuses a boundary that is not a chip boundary.",
        "- Sweep: `snn-egru sweep run --task lm --layers L --bottlenecks 0,4,8 "
        "--layer-per-chip --chips N ...`; every point's `chip.crossings` holds the figures. "
        "`--bottleneck-kind ff` / `dense` picks the kind (`LanguageModelConfig."
        "bottleneck_kind`, kept in the artifact's model config; `snn-egru train lm "
        "--hidden-sizes ... --bottlenecks N/K --bottleneck-kind ff` trains one). "
        "`--bottleneck-l1 G` (both commands; `LanguageModelConfig.bottleneck_l1`) adds G times "
        "the bottleneck's summed event amplitude per step to the loss: fewer events cross, "
        "so a wide bottleneck can send a sparse code (column *bottleneck*: `ff L1=G`).",
        "- Warm start: `snn-egru sweep run ... --warm-start S` trains each point's plain stack "
        "S steps first (an ordinary point of the sweep, cached), then `--steps` more from its "
        "weights: a bottlenecked point with its bottlenecks inserted from the trained stack "
        "(`snn_egru.bottleneck_insert.init_from_plain`: the layers copied, the bottleneck and "
        "the next layer's input weights from a truncated SVD of that layer's trained input "
        "weights, a pair of units of opposite signs per direction for the one-sided `ff` / "
        "`egru` kinds), the plain point continued as it is, so both have the same budget "
        "(column *steps*: `S+N`).",
        "- Study page: `python -m snn_egru.bottleneck_report collect FOLDER... --json J` "
        "(`--keep OLD.json` keeps the points of an earlier study whose folders are gone), "
        "then `render J --md PAGE --figure PNG`.",
    ]


def _setup(points: list[dict[str, Any]]) -> list[str]:
    if not points:
        return ["No points."]
    from spinnaker2_backend.constants import ChipSpec

    per_chip = ChipSpec().pes_per_chip
    p = points[0]
    tokens = sorted({r["test_tokens"] for r in points if r["test_tokens"]})
    steps = sorted({r["chip_steps"] for r in points})
    train = [r["train_s"] for r in points if r["train_s"]]
    recipes = list(dict.fromkeys(_recipe_text(r.get("recipe") or []) for r in points))
    recipe = (
        f"overrides {recipes[0]} (`--recipe`, every point)"
        if len(recipes) == 1
        else f"overrides {'; '.join(recipes)} (`--recipe`, column *overrides*: the same for "
        "every point of a comparison)"
    )
    return [
        f"- Language model on {p['data']}, {p['layers']} EGRU layers of {p['width']} units "
        f"(embedding {p['width']}, tied decoder), the `{p['preset']}` recipe with {recipe}; "
        f"every point {'/'.join(str(s) for s in sorted({r['steps'] for r in points}))} "
        f"training steps of the same batch and window (equal training budget), seed(s) "
        f"{sorted({r['seed'] for r in points})}.",
        f"- Test perplexity over {', '.join(map(str, tokens))} test tokens; chip figures over "
        f"the first {', '.join(map(str, steps))} test tokens on the simulated chips, weights "
        "in the `event` format, fewest PEs that fit.",
        f"- Chips used: {', '.join(str(r['chips_used']) for r in points)} (PEs per chip "
        f"{'; '.join('/'.join(str(n) for n in r['pes_per_chip'] if n) for r in points)}); "
        f"without chip boundaries (packed) the same PEs would fit on "
        f"{', '.join(str(-(-r['pes_used'] // per_chip)) for r in points)} chip(s) of "
        f"{per_chip} PEs: the chip count is the one-layer-per-chip placement's.",
        f"- Training time per point: {min(train):.0f}-{max(train):.0f} s."
        if train
        else "- Training time: not recorded.",
    ]


def plot(doc: dict[str, Any], path: Path) -> None:
    """Perplexity cost against chip-to-chip traffic reduction, one marker per point and one
    line per comparison (same stack, budget, seed and recipe)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["points"] if r["c2c_traffic_reduction"] is not None]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    plain = {_group(r): r for r in rows if not r["ratio"]}
    for r in rows:
        if r["ratio"]:
            groups.setdefault((*_group(r), _kind(r)), []).append(r)
    for key, members in groups.items():
        if key[:-1] in plain:
            members.append(plain[key[:-1]])
    costs = [100 * r["ppl_cost"] for r in rows]
    # points beyond PLOT_COST_CAP (a diverged run) are drawn on the top edge, value written
    top = max([c for c in costs if c <= PLOT_COST_CAP] or [PLOT_COST_CAP]) * 1.15 + 1.0

    def shown(r: dict[str, Any]) -> float:
        return min(100 * r["ppl_cost"], top)

    fig, ax = plt.subplots(figsize=(11, 5.5))
    markers = {"egru": "o", "ff": "s", "dense": "^"}
    for members in groups.values():
        members = sorted(members, key=lambda r: r["c2c_traffic_reduction"])
        first = members[0]
        kind = _kind(next(r for r in members if r["ratio"]))
        ax.plot(
            [r["c2c_traffic_reduction"] for r in members],
            [shown(r) for r in members],
            marker=markers.get(kind, "o"),
            ls="-" if _warm(first) else "--",
            label=f"{kind}, {first['width']} wide, {_steps_text(first)} steps, seed "
            f"{first['seed']}, "
            + ", ".join(f"{k}={v}" for k, v in first.get("recipe") or [])
            + (f" [{first['source']}]" if first.get("source") else ""),
        )
    if len(groups) > 1:  # beside the axes: a legend inside hid the points
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for r in rows:
        if not r["ratio"]:
            continue
        text = f"{_kind_label(r)} n/k={r['ratio']:g}"
        if 100 * r["ppl_cost"] > top:
            text += f" ({100 * r['ppl_cost']:+.0f} %, off scale)"
        ax.annotate(
            text,
            (r["c2c_traffic_reduction"], shown(r)),
            textcoords="offset points",
            xytext=(4, -10 if _kind(r) == "ff" else 4),
            fontsize="x-small",
        )
    ax.set_ylim(-2, top * 1.05)
    ax.axhline(100 * PPL_COST_TARGET, ls="--", c="gray")
    ax.axvline(TRAFFIC_TARGET, ls="--", c="gray")
    ax.set_xscale("log")
    ax.set_xlabel("chip-to-chip traffic reduction (x, packets per token)")
    ax.set_ylabel("test perplexity cost (%)")
    ax.set_title("bottleneck ratio n/k: traffic against quality")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
