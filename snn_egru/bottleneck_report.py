"""The bottleneck study page: ``docs/bottleneck.json`` from sweep folders, ``docs/bottleneck.md``
and its figure from that JSON.

::

    python -m snn_egru.bottleneck_report collect runs/bottleneck --json docs/bottleneck.json
    python -m snn_egru.bottleneck_report render docs/bottleneck.json --md docs/bottleneck.md \\
        --figure docs/figures/bottleneck.png

``collect`` reads every point of ``snn-egru sweep run ... --bottlenecks ... --layer-per-chip``
(``OUT/points/*.json``, ``OUT/runs.jsonl``) and groups the points by everything but the
bottleneck ratio: the point without bottleneck (ratio 0) of a group is the baseline, trained
with the same steps, batch and seed (equal training budget). For each point it computes

* ``c2c_traffic_reduction``: the baseline's chip-link packets per token over the point's
  (the same multicast trees the simulator charges; bytes are packets x 8, so the factor is
  the same for bytes);
* ``ppl_cost``: the point's test perplexity over the baseline's, minus 1.

The recommended setting is the point with the largest traffic reduction among those within
:data:`PPL_COST_TARGET` of the baseline's perplexity (if none is, the one with the smallest
perplexity cost), and the targets are judged on it. ``render`` writes the page from the JSON
only (a test checks that the page in docs/ is what ``render`` makes of the JSON there).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from snn_egru.errors import UserError
from snn_egru.sweep.report import table_row

__all__ = ["PPL_COST_TARGET", "TRAFFIC_TARGET", "collect", "main", "render_markdown"]

#: The issue's targets: >= 4x less chip-to-chip traffic at <= 3 % perplexity cost.
TRAFFIC_TARGET = 4.0
PPL_COST_TARGET = 0.03
PROG = "python -m snn_egru.bottleneck_report"


def _records(folder: Path) -> list[dict[str, Any]]:
    files = sorted((folder / "points").glob("*.json"))
    if not files:
        raise UserError(f"{folder}: no sweep points (expected {folder}/points/*.json)")
    records = [json.loads(path.read_text()) for path in files]
    return [r for r in records if r.get("status") == "done"]


def _points(folder: Path) -> list[dict[str, Any]]:
    return [r for r in _records(folder) if r["settings"].get("layer_per_chip")]


def _references(folder: Path) -> list[dict[str, Any]]:
    """One-layer LM points of the folder (no bottleneck, no chip boundary): what a stack
    of the same width, steps, seed and recipe is compared with (does the stack train?)."""
    out = []
    for record in _records(folder):
        s = record["settings"]
        if s.get("layer_per_chip") or s.get("bottleneck") or s.get("layers") != 1:
            continue
        if s.get("task") != "lm" or s.get("cell") != "egru":
            continue
        out.append(
            {
                "key": record["key"],
                "label": record["label"],
                "width": s["width"],
                "layers": 1,
                "seed": s["seed"],
                "steps": s["steps"],
                "recipe": [list(item) for item in s.get("recipe") or []],
                "test_perplexity": record["quality"]["test_perplexity"],
                "test_tokens": record.get("test_tokens"),
                "activity": 1.0 - record["activity_sparsity"],
                "train_s": record.get("train_s"),
            }
        )
    return out


def _row(record: dict[str, Any]) -> dict[str, Any]:
    chip = record["chip"]
    cross = chip["crossings"]
    settings = record["settings"]
    sizes = record["model_config"]["hidden_sizes"]
    marks = record["model_config"].get("bottleneck_layers") or []
    sparsity = record.get("layer_activity_sparsity") or []
    return {
        "key": record["key"],
        "label": record["label"],
        "width": settings["width"],
        "layers": settings["layers"],
        "seed": settings["seed"],
        "steps": settings["steps"],
        "data": settings.get("data"),
        "preset": settings.get("preset"),
        "recipe": [list(item) for item in settings.get("recipe") or []],
        "ratio": float(settings.get("bottleneck", 0.0)),
        "k": sizes[marks[0]] if marks else None,
        "hidden_sizes": sizes,
        "test_perplexity": record["quality"]["test_perplexity"],
        "test_tokens": record.get("test_tokens"),
        "bottleneck_activity": [1.0 - sparsity[i] for i in marks] if sparsity else None,
        "activity": 1.0 - record["activity_sparsity"],
        "pes_used": chip["pes_used"],
        "chips_used": sum(1 for n in chip["pes_per_chip"] if n),
        "pes_per_chip": chip["pes_per_chip"],
        "chip_boundaries": chip["chip_boundaries"],
        "chip_steps": chip["steps"],
        "c2c_events_per_token": cross["events_leaving"],
        "c2c_packets_per_token": cross["link_packets"],
        "c2c_bytes_per_token": cross["link_bytes"],
        "link_time_s_per_token": cross["link_time_s"],
        "link_energy_j_per_token": cross["link_energy_j"],
        "seconds_per_token": chip["seconds_per_token"],
        "energy_j_per_token": chip["energy_j_per_token"],
        "pairs": cross["pairs"],
        "train_s": record.get("train_s"),
        "threads": record.get("threads"),
        "load": [record.get("load_before"), record.get("load_after")],
    }


def _group(row: dict[str, Any]) -> tuple:
    """Points compared with each other: same stack, budget, seed and recipe."""
    recipe = json.dumps(row.get("recipe") or [], sort_keys=True)
    return (row["width"], row["layers"], row["steps"], row["seed"], recipe)


def _reference_group(row: dict[str, Any]) -> tuple:
    """The one-layer reference of a point: the best one-layer point of the same width, budget
    and seed, whatever its recipe (each model at its own learning rate: the stricter test)."""
    return (row["width"], row["steps"], row["seed"])


def collect(folders: Sequence[str | Path], *, project: bool = False) -> dict[str, Any]:
    """The study's JSON (module docstring) from sweep folders (``project``: with the
    at-scale :func:`projection` for the points' ratios)."""
    rows: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise UserError(f"no sweep folder {folder}")
        rows += [_row(r) for r in _points(folder)]
        references += _references(folder)
        runs = folder / "runs.jsonl"
        if runs.exists():
            commands += [json.loads(line) for line in runs.read_text().splitlines() if line]
    baselines = {_group(r): r for r in rows if r["ratio"] == 0}
    if not baselines:
        raise UserError("no point without bottleneck (--bottlenecks 0) to compare with")
    for r in rows:
        base = baselines.get(_group(r))
        if base is None or not r["c2c_packets_per_token"]:
            r["c2c_traffic_reduction"] = r["ppl_cost"] = None
            continue
        r["c2c_traffic_reduction"] = base["c2c_packets_per_token"] / r["c2c_packets_per_token"]
        r["ppl_cost"] = r["test_perplexity"] / base["test_perplexity"] - 1.0
    rows.sort(key=lambda r: (_group(r), r["ratio"]))
    one_layer: dict[tuple, dict[str, Any]] = {}
    for ref in sorted(references, key=lambda r: -r["test_perplexity"]):
        one_layer[_reference_group(ref)] = ref  # the best one of each group is kept
    for r in rows:
        ref = one_layer.get(_reference_group(r))
        r["one_layer_key"] = None if ref is None else ref["key"]
        r["one_layer_perplexity"] = None if ref is None else ref["test_perplexity"]
        r["one_layer_recipe"] = None if ref is None else ref["recipe"]
    measured: dict[float, list[float]] = {}
    for r in rows:
        value = r["activity"] if not r["ratio"] else _mean(r["bottleneck_activity"])
        measured.setdefault(r["ratio"], []).append(value)
    doc_projection = (
        projection(
            sorted(set(measured) | set(PROJECTION_RATIOS)),
            {k: _mean(v) for k, v in measured.items()},
        )
        if project
        else None
    )
    return {
        "collected_from": [str(f) for f in folders],
        "projection": doc_projection,
        "title": "Bottlenecks where an EGRU stack crosses chips",
        "commands": [c["command"] for c in commands],
        "runs": [
            {k: c.get(k) for k in ("shard", "wall_s", "threads", "load_before", "load_after")}
            for c in commands
        ],
        "targets": {"c2c_traffic_reduction": TRAFFIC_TARGET, "ppl_cost": PPL_COST_TARGET},
        "points": rows,
        "one_layer_references": references,
        "recommended": _recommend(rows),
    }


def _mean(values: Any) -> float:
    values = list(values or [])
    return sum(values) / len(values) if values else 0.0


def _recommend(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    candidates = [r for r in rows if r["ratio"] and r["ppl_cost"] is not None]
    if not candidates:
        return None
    within = [r for r in candidates if r["ppl_cost"] <= PPL_COST_TARGET]
    best = (
        max(within, key=lambda r: r["c2c_traffic_reduction"])
        if within
        else min(candidates, key=lambda r: r["ppl_cost"])
    )
    base = next((r for r in rows if not r["ratio"] and _group(r) == _group(best)), None)
    one = None if base is None else base.get("one_layer_perplexity")
    stack_cost = None if not one else base["test_perplexity"] / one - 1.0
    traffic_met = best["c2c_traffic_reduction"] >= TRAFFIC_TARGET
    ppl_met = best["ppl_cost"] <= PPL_COST_TARGET
    return {
        "key": best["key"],
        "label": best["label"],
        "plain_stack_over_one_layer_ppl_cost": stack_cost,
        # the baseline must itself be a trained network: a plain stack worse than the one-layer
        # model of the same budget by more than the perplexity target does not count
        "baseline_trains": None if stack_cost is None else stack_cost <= PPL_COST_TARGET,
        "target_met": traffic_met
        and ppl_met
        and stack_cost is not None
        and stack_cost <= PPL_COST_TARGET,
        "steps": best["steps"],
        "seed": best["seed"],
        "recipe": best.get("recipe") or [],
        "ratio": best["ratio"],
        "k": best["k"],
        "c2c_traffic_reduction": best["c2c_traffic_reduction"],
        "ppl_cost": best["ppl_cost"],
        "traffic_target_met": traffic_met,
        "ppl_target_met": ppl_met,
    }


# ------------------------------------------------------------------------------ projection
#: The ">= 4 chips" configuration of the projection: the published LM at twice its width,
#: pruned like it (95 %, CSR, bitmap16 receive); packed it needs 4 chips.
PROJECTION_SIZES = (2700, 2700, 1500)
PROJECTION_SPARSITY = 0.95
#: Ratios n/k always projected (besides those of the trained points).
PROJECTION_RATIOS = (4.0, 8.0, 16.0)


def projection(ratios: Sequence[float], measured: dict[float, float]) -> dict[str, Any]:
    """Chip-to-chip packets per token of the paper LM at 2x width (synthetic 95 %-pruned
    weights, mapped, not trained) without and with bottlenecks, each unit firing on
    ``TRAINED_LM_ACTIVITY`` of the steps and a bottleneck unit on ``measured[ratio] /
    measured[0]`` times that (the trained points' activity ratio; 1 where not measured)."""
    from spinnaker2_backend import Machine, MappingError, map_network, synthetic_network
    from spinnaker2_backend.mapping.crossings import check_bottleneck_placement, count_crossings
    from spinnaker2_backend.synthetic import TRAINED_LM_ACTIVITY

    rows = []
    plain = PROJECTION_SIZES
    cases: list[tuple[float, bool]] = [(0.0, False), (0.0, True)]
    cases += [(float(r), True) for r in ratios if r]
    for ratio, boundaries in cases:
        from snn_egru.bottleneck import bottleneck_width, insert_bottlenecks

        marks: tuple[int, ...] = ()
        sizes: tuple[int, ...] = plain
        if ratio:
            stack = insert_bottlenecks(
                plain, {0: bottleneck_width(plain[0], ratio), 1: bottleneck_width(plain[1], ratio)}
            )
            sizes, marks = stack.hidden_sizes, stack.bottleneck_layers
        cut = marks if ratio else (tuple(range(len(plain) - 1)) if boundaries else ())
        net = synthetic_network(
            layer_sizes=sizes,
            input_size=plain[-1],
            sparsity=PROJECTION_SPARSITY,
            input_kind="features",
            readout_kind="none",
            threshold_mean=0.01,
        )
        mapping = map_network(
            net,
            weight_format="csr",
            receive_policy="bitmap16",
            machine=Machine(chips=8),
            chip_boundaries=cut,
            check=False,
        )
        spill = None
        if marks:
            try:
                check_bottleneck_placement(mapping, marks)
            except MappingError as err:  # reported in the row, its traffic still counted
                spill = str(err).split(":")[0]
        known = bool(ratio) and ratio in measured and measured.get(0.0, 0.0) > 0
        scale = measured[ratio] / measured[0.0] if known else 1.0
        activity = {
            i: TRAINED_LM_ACTIVITY * (scale if i in marks else 1.0) for i in range(len(sizes))
        }
        events = {s.pe: activity[s.layer] * s.num_units for s in mapping.placement.slices}
        cross = count_crossings(mapping, events, source="assumed activity")
        rows.append(
            {
                "ratio": ratio,
                "chip_boundaries": list(cut),
                "hidden_sizes": list(sizes),
                "bottleneck_activity": activity[marks[0]] if marks else None,
                "pes_used": mapping.placement.num_pes_used,
                "chips_used": len({sl.chip for sl in mapping.placement.slices}),
                "fits": bool(mapping.fit.ok),
                "bottleneck_spills": spill,
                "bottleneck_activity_from": (
                    None if not ratio else "trained ratio" if known else "assumed = wide layers"
                ),
                "c2c_packets_per_token": cross.link_packets,
                "c2c_bytes_per_token": cross.link_bytes,
                "layer_packets": [x.link_packets for x in cross.layers],
                "link_time_s_per_token": cross.link_time_s,
                "link_energy_j_per_token": cross.link_energy_j,
            }
        )
    base = rows[0]["c2c_packets_per_token"]
    for r in rows:
        r["c2c_traffic_reduction_vs_packed"] = base / r["c2c_packets_per_token"]
    return {
        "plain_sizes": list(plain),
        "sparsity": PROJECTION_SPARSITY,
        "activity": TRAINED_LM_ACTIVITY,
        "rows": rows,
    }


# ------------------------------------------------------------------------------ the page
def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(points: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | n/k | k | test ppl | ppl cost | chips | c2c events/token | c2c packets/token "
        "| c2c bytes/token | traffic reduction | link us/token | link nJ/token | chip us/token "
        "| chip mJ/token |",
        "|" + "---|" * 14,
    ]
    for r in points:
        sizes = "/".join(map(str, r["hidden_sizes"]))
        cost = _fmt(r["ppl_cost"] and 100 * r["ppl_cost"], "+.1f")
        lines.append(
            table_row(
                f"egru {sizes}",
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
            )
        )
    return lines


def _recipe_text(recipe: Sequence[Sequence[Any]]) -> str:
    return ", ".join(f"`{k}={json.dumps(v)}`" for k, v in recipe) if recipe else "none"


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
        f"every point (same batch, windows and schedule), seed "
        f"{rec.get('seed', row.get('seed'))}, the `{row.get('preset')}` recipe with overrides "
        f"{_recipe_text(rec.get('recipe') or row.get('recipe') or [])}; test perplexity over "
        f"{row.get('test_tokens')} test tokens.",
        "",
    ]
    stack_vs_one = None
    if base is not None and base.get("one_layer_perplexity"):
        stack_vs_one = base["test_perplexity"] / base["one_layer_perplexity"] - 1.0
        budget += [
            f"Does the stack train? The plain {'/'.join(map(str, base['hidden_sizes']))} stack "
            f"reaches {base['test_perplexity']:.1f} test perplexity, the best one-layer model "
            f"of the same width, steps and seed (overrides "
            f"{_recipe_text(base.get('one_layer_recipe') or [])}) "
            f"{base['one_layer_perplexity']:.1f} ({100 * stack_vs_one:+.1f} %).",
            "",
        ]
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
        f"Recommended: **n/k = {rec['ratio']:g}** (k = {rec['k']}): "
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
        "python -m snn_egru.bottleneck_report collect "
        + " ".join(doc.get("collected_from") or ["runs/bottleneck"])
        + " --json docs/bottleneck.json"
        + (" --project" if doc.get("projection") else "")
        + " --overwrite",
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
        "A bottleneck is an EGRU layer of k = n / (n/k) units inserted at every layer boundary "
        "of the stack (`snn_egru.bottleneck`); the mapping puts a chip boundary after each "
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
        "a bottleneck unit on that times the activity ratio bottleneck / plain stack measured "
        "in the trained points above where there is one, else as often as a wide unit "
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
        "--layer-per-chip --chips N ...`; every point's `chip.crossings` holds the figures.",
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
    return [
        f"- Language model on {p['data']}, {p['layers']} EGRU layers of {p['width']} units "
        f"(embedding {p['width']}, tied decoder), the `{p['preset']}` recipe with overrides "
        f"{_recipe_text(p.get('recipe') or [])} (`--recipe`, every point); every point "
        f"{p['steps']} training "
        f"steps of the same batch and window (equal training budget), seed(s) "
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
    """Perplexity cost against chip-to-chip traffic reduction, one marker per point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["points"] if r["c2c_traffic_reduction"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        [r["c2c_traffic_reduction"] for r in rows],
        [100 * r["ppl_cost"] for r in rows],
        "o-",
    )
    for r in rows:
        ax.annotate(
            "none" if not r["ratio"] else f"n/k={r['ratio']:g}",
            (r["c2c_traffic_reduction"], 100 * r["ppl_cost"]),
            textcoords="offset points",
            xytext=(4, 4),
        )
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


# ------------------------------------------------------------------------------ command
def _new(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    col = sub.add_parser("collect", help="sweep folders -> the study's JSON")
    col.add_argument("folders", nargs="+")
    col.add_argument("--json", required=True)
    col.add_argument(
        "--project",
        action="store_true",
        help="add the at-scale projection (paper LM at 2x width, mapped; ~1 min CPU)",
    )
    ren = sub.add_parser("render", help="the study's JSON -> markdown page and figure")
    ren.add_argument("json")
    ren.add_argument("--md", required=True)
    ren.add_argument("--figure", default=None)
    for p in (col, ren):
        p.add_argument("--overwrite", action="store_true")
        p.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "collect":
            out = _new(args.json, args.overwrite)
            doc = collect(args.folders, project=args.project)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            print(f"{out}: {len(doc['points'])} point(s)")
            return 0
        src = Path(args.json)
        if not src.is_file():
            raise UserError(f"no study JSON at {src}")
        doc = json.loads(src.read_text())
        md = _new(args.md, args.overwrite)
        figure = _new(args.figure, args.overwrite) if args.figure else None
        rel = None if figure is None else _relative(figure, md)
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(render_markdown(doc, rel))
        if figure is not None:
            plot(doc, figure)
        print(f"{md}" + (f", {figure}" if figure else ""))
        return 0
    except UserError as err:
        if args.verbose:
            raise
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2


def _relative(figure: Path, md: Path) -> str:
    try:
        return str(figure.resolve().relative_to(md.resolve().parent))
    except ValueError:
        return str(figure)


if __name__ == "__main__":
    raise SystemExit(main())
