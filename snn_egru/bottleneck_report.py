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

Points of every bottleneck kind (``egru``, ``ff``, ``dense``: ``--bottleneck-kind``) of a group
share its baseline. The recommended setting is the point with the largest traffic reduction
among those within
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

from snn_egru.bottleneck_page import (
    PPL_COST_TARGET,
    TRAFFIC_TARGET,
    collect_line,
    collect_lines_of,
    plot,
    render_markdown,
)
from snn_egru.bottleneck_page import comparison_group as _group
from snn_egru.errors import UserError

__all__ = ["PPL_COST_TARGET", "TRAFFIC_TARGET", "collect", "main", "render_markdown"]

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
                "steps": s["steps"] + int(s.get("warm_start") or 0),
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
        # the training budget: a warm start's parent steps included (warm_start)
        "steps": settings["steps"] + int(settings.get("warm_start") or 0),
        "warm_start": int(settings.get("warm_start") or 0),
        "data": settings.get("data"),
        "preset": settings.get("preset"),
        "recipe": [list(item) for item in settings.get("recipe") or []],
        "ratio": float(settings.get("bottleneck", 0.0)),
        # what the bottlenecks compute (snn_egru.bottleneck.BOTTLENECK_KINDS); None: none
        "kind": (settings.get("bottleneck_kind") or "egru") if settings.get("bottleneck") else None,
        # L1 on the bottleneck's events (--bottleneck-l1); 0: none
        "bottleneck_l1": float(settings.get("bottleneck_l1") or 0.0),
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


def _reference_group(row: dict[str, Any]) -> tuple:
    """The one-layer reference of a point: the best one-layer point of the same width, budget
    and seed, whatever its recipe (each model at its own learning rate: the stricter test)."""
    return (row["width"], row["steps"], row["seed"])


def _kept(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"--keep {path}: no study JSON there")
    try:
        doc = json.loads(path.read_text())
        doc["points"], doc["commands"]  # noqa: B018 (a study JSON has both)
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(
            f"--keep {path}: not a study JSON of `collect` (points, commands)"
        ) from None
    return doc


def _merge_kept(
    path: Path,
    rows: list[dict[str, Any]],
    references: list[dict[str, Any]],
    commands: list[dict[str, Any]],
) -> list[str]:
    """Add the points, one-layer references and commands of the earlier study JSON ``path``
    to the lists (in place); returns its ``collect`` command lines."""
    old = _kept(path)
    earlier = collect_lines_of(old)
    # a kept point keeps its batch: trained again in a new folder (same key, maybe another
    # machine) it is a second row, each compared within its own batch; the same key of the
    # same batch (a page collected again onto its own JSON) is taken once, from the folder
    have = {(r["key"], r["source"]) for r in rows}
    kept = [{**r, "source": r.get("source") or str(path)} for r in old["points"]]
    rows += [r for r in kept if (r["key"], r["source"]) not in have]
    have = {(r["key"], r["source"]) for r in references}
    kept = [
        {**r, "source": r.get("source") or str(path)} for r in old.get("one_layer_references") or []
    ]
    references += [r for r in kept if (r["key"], r["source"]) not in have]
    seen = {c["command"] for c in commands}
    for command, run in zip(old["commands"], old.get("runs") or []):
        if command not in seen:
            commands.append({"command": command, **run})
    return earlier


def collect(
    folders: Sequence[str | Path], *, project: bool = False, keep: Sequence[str | Path] = ()
) -> dict[str, Any]:
    """The study's JSON (module docstring) from sweep folders (``project``: with the
    at-scale :func:`projection` for the points' ratios). ``keep``: earlier study JSONs whose
    points, one-layer references and commands are kept (their sweep folders may be gone), each
    in its own batch (``source``); a point of the same key and batch as one in ``folders`` is
    taken from the folder."""
    rows: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise UserError(f"no sweep folder {folder}")
        rows += [{**_row(r), "source": str(folder)} for r in _points(folder)]
        references += [{**r, "source": str(folder)} for r in _references(folder)]
        runs = folder / "runs.jsonl"
        if runs.exists():
            commands += [json.loads(line) for line in runs.read_text().splitlines() if line]
    earlier: list[str] = []
    for path in map(Path, keep):
        earlier += _merge_kept(path, rows, references, commands)
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
    rows.sort(
        key=lambda r: (_group(r), r["ratio"], r.get("kind") or "", r.get("bottleneck_l1") or 0)
    )
    one_layer: dict[tuple, dict[str, Any]] = {}
    anywhere: dict[tuple, dict[str, Any]] = {}
    for ref in sorted(references, key=lambda r: -r["test_perplexity"]):
        one_layer[(*_reference_group(ref), ref.get("source"))] = ref  # the best one is kept
        anywhere[_reference_group(ref)] = ref
    for r in rows:
        # a reference of the point's own batch, else the best of any batch (said on the page)
        ref = one_layer.get((*_reference_group(r), r.get("source"))) or anywhere.get(
            _reference_group(r)
        )
        r["one_layer_source"] = None if ref is None else ref.get("source")
        r["one_layer_key"] = None if ref is None else ref["key"]
        r["one_layer_perplexity"] = None if ref is None else ref["test_perplexity"]
        r["one_layer_recipe"] = None if ref is None else ref["recipe"]
    measured: dict[float, list[float]] = {}
    for r in rows:
        if r.get("kind") not in (None, "egru"):  # the projection maps EGRU bottlenecks
            continue
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
        "collect_lines": [
            *earlier,
            collect_line([str(f) for f in folders], project=project, keep=[str(k) for k in keep]),
        ],
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
        "warm_start": best.get("warm_start") or 0,
        "seed": best["seed"],
        "recipe": best.get("recipe") or [],
        "ratio": best["ratio"],
        "kind": best.get("kind"),
        "bottleneck_l1": best.get("bottleneck_l1") or 0.0,
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
        "--keep",
        action="append",
        default=[],
        metavar="STUDY.json",
        help="also keep the points of an earlier study JSON (e.g. docs/bottleneck.json, whose "
        "sweep folders may be gone), each compared within the batch it was trained in",
    )
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
            doc = collect(args.folders, project=args.project, keep=args.keep)
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
