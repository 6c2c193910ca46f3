"""Benchmark: what int8 weights buy on a simulated SpiNNaker2 (memory, PEs, time, energy, size).

1. **The paper LM at 95 %** (synthetic stand-in of the calibration, ``paper-lm`` with the
   calibration's mean threshold): float32 ``csr`` (the baseline, as published) against
   ``csr-int8``, ``event-int8`` (int8 weights x float32 events on the Arm core) and
   ``mac-int8`` (16 x 4 tiles on the MAC array, events quantised). Each network is PTQ'd for
   its format (:func:`spinnaker2_backend.synthetic.quantize_network`; ``mac-int8``'s scales
   calibrated on the workload), mapped with the fewest PEs that fit (``map_network``
   automatic partition, event lists sized from the activity recorded on the workload, as the
   published mapping is modelled), on as many chips as it needs; then the workload (``--tokens``
   random token ids) runs on the simulated chip: time and energy per 70-token sequence.
   Ratios are against float32 ``csr`` of the same run. The same network is also run on the
   published split (50 PEs per layer, equal unit counts) where it fits, which isolates
   the per-weight cost from the PE count.
2. **The largest EGRU that fits** one chip and one 48-chip board, per format: a family of
   networks of the paper LM's shape scaled by ``k`` (layers ``1350k / 1350k / 750k``,
   embedding ``750k``, 95 % sparse, the same number of stored weights per row and random
   columns), the largest ``k`` on a grid of ``--step`` that ``map_network`` accepts
   (event lists of 10 % of each layer's sources, :data:`CAPACITY_ACTIVITY`; no run is
   needed), found by bisection.
   Reported as units and stored weights. On one chip every probe is a whole ``map_network``;
   on the board the probes run the stages up to the fit check (partition, placement, memory
   layout, fit) without the routing tables, whose construction grows with the square of the
   PEs (minutes per probe at 7,000 PEs), and ``--route-board`` confirms the result with a
   whole ``map_network``.

Usage::

    .venv/bin/python benchmarks/int8_capacity.py [--tokens 70] [--json] [--no-board]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import EGRUParams
from spinnaker2_backend import Machine
from spinnaker2_backend.calibration import CALIBRATION_THRESHOLD_MEAN
from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.mapping import (
    MappingError,
    check_fit,
    layer_memory_models,
    layout_memory,
    map_network,
    partition_network,
    place_slices,
)
from spinnaker2_backend.mapping.partition import largest_that_fits
from spinnaker2_backend.simulator import receive_capacity_from_run, run_mapping
from spinnaker2_backend.synthetic import (
    quantize_for_format,
    quantize_network,
    sample_thresholds,
    synthetic_network,
)

try:  # run as a script: benchmarks/ is on sys.path
    from _timing import Session
except ImportError:  # loaded from its file or as benchmarks.int8_capacity
    from benchmarks._timing import Session

log = logging.getLogger("benchmarks.int8_capacity")

FORMATS = ("csr", "csr-int8", "event-int8", "mac-int8")
SEQUENCE_TOKENS = 70
PAPER_SHAPE = {"layers": (1350, 1350, 750), "input": 750}
#: PEs per layer of the published mapping (equal unit counts): isolates the per-weight cost.
PUBLISHED_SPLIT = (50, 50, 50)


def _network_for(fmt: str, net: DeploymentArtifact, seed: int) -> DeploymentArtifact:
    return net if fmt in ("csr", "event", "dense") else quantize_for_format(net, fmt, seed=seed)


def _chips_needed(art: DeploymentArtifact, fmt: str, **options) -> int:
    pes = partition_network(art, weight_format=fmt, **options).num_slices
    return max(1, math.ceil(pes / ChipSpec().pes_per_chip))


def paper_lm(tokens: int, seed: int = 0) -> list[dict[str, Any]]:
    """Part 1: one row per format (see the module docstring)."""
    net = synthetic_network("paper-lm", seed=seed, threshold_mean=CALIBRATION_THRESHOLD_MEAN)
    workload = np.random.default_rng(seed).integers(0, net.embedding.shape[0], size=tokens)
    rows = []
    for fmt in FORMATS:
        begin = time.perf_counter()
        art = _network_for(fmt, net, seed)
        if fmt == "mac-int8":  # calibrate the event scales on the workload itself
            art = quantize_network(net, mode="int8", calibration_inputs=workload)
        options = {"receive_policy": "event-list"}
        probe_chips = _chips_needed(art, fmt)
        probe = map_network(art, weight_format=fmt, machine=Machine(chips=probe_chips + 1),
                            check=False, **options)  # fmt: skip
        recorded = run_mapping(probe, workload, record=True, readout="host")
        capacity = receive_capacity_from_run(recorded)
        models_opts = {**options, "receive_capacity": capacity}
        chips = probe_chips
        while True:
            try:
                mapping = map_network(art, weight_format=fmt, machine=Machine(chips=chips),
                                      **models_opts)  # fmt: skip
                break
            except MappingError:
                chips += 1
                if chips > probe_chips + 3:
                    raise
        run = run_mapping(mapping, workload, readout="host")
        report = mapping.report()
        published = None  # the same network on the published 50/50/50 split, if it fits
        try:
            split = map_network(art, weight_format=fmt, pes_per_layer=PUBLISHED_SPLIT,
                                balance="units", **models_opts)  # fmt: skip
            published = run_mapping(split, workload, readout="host").report(
                sequence_tokens=SEQUENCE_TOKENS
            )
        except MappingError as err:
            log.info("%s does not fit the published split: %s", fmt, err)
        chip = run.report(sequence_tokens=SEQUENCE_TOKENS)
        rows.append(
            {
                "weight_format": fmt,
                "pes": report.pes_used,
                "chips": mapping.machine.num_chips,
                "pes_per_layer": [lr.pes for lr in report.layers],
                "weight_bytes": report.total_weight_bytes,
                "fullest_pe_bytes": report.fullest.total,
                "fullest_pe_weight_bytes": report.fullest.weights,
                "mean_pe_bytes": int(round(np.mean([r.total for r in report.pes]))),
                "mean_pe_weight_bytes": int(round(np.mean([r.weights for r in report.pes]))),
                "receive_capacity": list(capacity),
                "seconds_per_sequence": chip.seconds_per_sequence,
                "energy_per_sequence_j": chip.energy_per_sequence_j,
                "activity": float(np.mean(chip.activity)),
                "published_split_seconds_per_sequence": None
                if published is None
                else published.seconds_per_sequence,
                "published_split_energy_per_sequence_j": None
                if published is None
                else published.energy_per_sequence_j,
                "host_seconds": time.perf_counter() - begin,
            }
        )
        ms = 1e3 * chip.seconds_per_sequence
        host = rows[-1]["host_seconds"]
        log.info("paper LM, %s: %d PEs, %.2f ms / sequence (%.0f s host)", fmt,
                 report.pes_used, ms, host)  # fmt: skip
    base = rows[0]
    for row in rows:
        split = row["published_split_seconds_per_sequence"]
        base_split = base["published_split_seconds_per_sequence"]
        row["published_split_time_ratio"] = (
            None if split is None or base_split is None else split / base_split
        )
        row["pes_ratio"] = row["pes"] / base["pes"]
        row["weight_bytes_ratio"] = row["weight_bytes"] / base["weight_bytes"]
        row["time_ratio"] = row["seconds_per_sequence"] / base["seconds_per_sequence"]
        row["energy_ratio"] = row["energy_per_sequence_j"] / base["energy_per_sequence_j"]
    return rows


# ------------------------------------------------------------------ capacity (part 2)
def _sparse_random(rng, rows: int, cols: int, density: float) -> sp.csr_matrix:
    """``rows x cols`` float32 CSR with ``round(density * cols)`` distinct random columns per
    row (Xavier-normal values), built in O(nnz) memory."""
    per_row = max(1, int(round(density * cols)))
    picks = np.sort(rng.integers(0, cols, size=(rows, per_row), dtype=np.int64), axis=1)
    keep = np.ones_like(picks, dtype=bool)
    keep[:, 1:] = picks[:, 1:] != picks[:, :-1]
    counts = keep.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    std = math.sqrt(2.0 / (rows + cols))
    data = (rng.standard_normal(int(indptr[-1])) * std).astype(np.float32)
    return sp.csr_matrix((data, picks[keep].astype(np.int32), indptr), shape=(rows, cols))


def scaled_lm(scale: float, sparsity: float = 0.95, seed: int = 0) -> DeploymentArtifact:
    """The paper LM's shape scaled by ``scale`` (feature inputs: no embedding in DRAM)."""
    rng = np.random.default_rng(seed)
    sizes = [max(1, int(round(h * scale))) for h in PAPER_SHAPE["layers"]]
    inputs = max(1, int(round(PAPER_SHAPE["input"] * scale)))
    layers = []
    for hidden in sizes:
        layers.append(
            EGRUParams(
                weight_ih=_sparse_random(rng, 3 * hidden, inputs, 1.0 - sparsity),
                weight_hh=_sparse_random(rng, 3 * hidden, hidden, 1.0 - sparsity),
                bias_ih=np.zeros(3 * hidden, np.float32),
                bias_hh=np.zeros(3 * hidden, np.float32),
                threshold=sample_thresholds(rng, hidden, 0.3),
            )
        )
        inputs = hidden
    return DeploymentArtifact(layers=layers, input_kind="features")


#: Fewest bytes one stored weight can take per format (value + index): a quick bound that
#: rejects a scale before its network is built.
MIN_BYTES_PER_WEIGHT = {"csr": 8, "csr-int8": 2, "event-int8": 2, "mac-int8": 1}


def _surely_too_big(scale: float, fmt: str, chips: int, sparsity: float = 0.95) -> bool:
    sizes = [h * scale for h in PAPER_SHAPE["layers"]]
    inputs = [PAPER_SHAPE["input"] * scale] + sizes[:-1]
    weights = sum(3 * h * (i + h) * (1.0 - sparsity) for h, i in zip(sizes, inputs))
    spec = ChipSpec()
    return weights * MIN_BYTES_PER_WEIGHT[fmt] > chips * spec.pes_per_chip * spec.data_memory_bytes


#: Receive policy of the capacity search: event lists holding this fraction of each layer's
#: sources (the ~10 % activity bound the published memory table implies, docs/spinnaker2.md);
#: dense vectors of every source would fill a large network's PEs by themselves.
CAPACITY_ACTIVITY = 0.10


def _receive_options(art: DeploymentArtifact) -> dict[str, Any]:
    sizes = [max(layer.input_size, layer.hidden_size) for layer in art.layers]
    return {
        "receive_policy": "event-list",
        "receive_capacity": [math.ceil(CAPACITY_ACTIVITY * n) for n in sizes],
    }


def _fits(scale: float, fmt: str, chips: int, *, route: bool | None = None) -> bool:
    """Does the scaled network map on ``chips``? ``route`` (default: on one chip only) runs
    the whole ``map_network``; without it the stages up to the fit check run (partition,
    placement, memory layout, fit: everything but the routing tables, whose cost grows with
    the square of the PEs and which no board-sized network here comes close to filling)."""
    if _surely_too_big(scale, fmt, chips):
        return False
    route = chips == 1 if route is None else route
    net = scaled_lm(scale)
    art = _network_for(fmt, net, 0)
    if fmt == "mac-int8":  # memory does not depend on the event scales: fixed ones
        art.layers = [lay._replace(input_scale=1.0, event_scale=1.0) for lay in art.layers]
    machine = Machine(chips=chips)
    receive = _receive_options(art)
    try:
        if route:
            map_network(art, weight_format=fmt, machine=machine, **receive)
            return True
        models = layer_memory_models(art, spec=machine.spec, weight_format=fmt, **receive)
        parts = partition_network(art, spec=machine.spec, weight_format=fmt, memory_models=models)
        if parts.num_slices > machine.num_pes:
            return False
        placement = place_slices(parts, machine)
        check_fit(layout_memory(models, placement), placement, models, raise_error=True)
        return True
    except MappingError:
        return False


def largest_fitting(
    fmt: str, chips: int, *, step: float = 0.05, start: float | None = None
) -> float:
    """The largest scale ``k`` (a multiple of ``step``) whose network maps on ``chips``.

    Gallops from ``start`` (default ``step``) by doubling strides until the answer is
    bracketed, then bisects (the mapper's search, :func:`~spinnaker2_backend.mapping.
    partition.largest_that_fits`); assumes that a network that fits still fits when shrunk. ``0``:
    not even ``step`` fits.
    """
    first = max(1, int(round((start or step) / step)))
    n = largest_that_fits(lambda n: _fits(n * step, fmt, chips), low=1, guess=first)
    return n * step


def capacity(
    chip_counts: list[int], step: float, *, route_board: bool = False, board_step: float = 0.25
) -> list[dict[str, Any]]:
    rows = []
    for chips in chip_counts:
        for fmt in FORMATS:
            begin = time.perf_counter()
            # weights grow as k**2: start a bigger machine at sqrt(chips) x the 1-chip answer
            one_chip = next(
                (r["scale"] for r in rows if r["chips"] == 1 and r["weight_format"] == fmt),
                None,
            )
            start = one_chip * math.sqrt(chips) if one_chip else None
            grid = step if chips == 1 else board_step
            scale = largest_fitting(fmt, chips, step=grid, start=start)
            routed = chips == 1
            if route_board and chips > 1 and scale > 0:
                while scale > 0 and not _fits(scale, fmt, chips, route=True):
                    scale = round(scale - board_step, 10)
                routed = True
            net = scaled_lm(scale) if scale > 0 else None
            units = sum(net.layer_sizes) if net else 0
            weights = sum(lay.weight_ih.nnz + lay.weight_hh.nnz for lay in net.layers) if net else 0
            rows.append(
                {
                    "chips": chips,
                    "weight_format": fmt,
                    "scale": scale,
                    "layer_sizes": list(net.layer_sizes) if net else [],
                    "units": units,
                    "stored_weights": int(weights),
                    "routed": routed,
                    "host_seconds": time.perf_counter() - begin,
                }
            )
            log.info("largest on %d chip(s), %s: scale %.2f, %d units, %d weights (%.0f s)",
                     chips, fmt, scale, units, weights, rows[-1]["host_seconds"])  # fmt: skip
    for chips in chip_counts:
        base = next(r for r in rows if r["chips"] == chips and r["weight_format"] == "csr")
        for r in rows:
            if r["chips"] == chips:
                r["weights_ratio"] = r["stored_weights"] / max(base["stored_weights"], 1)
    return rows


def _split_cell(row: dict) -> str:
    seconds = row["published_split_seconds_per_sequence"]
    if seconds is None:
        return "does not fit"
    ratio = row["published_split_time_ratio"]
    return f"{1e3 * seconds:.1f} ms" + ("" if ratio is None else f" ({ratio:.2f}x)")


def markdown(lm: list[dict], cap: list[dict]) -> str:
    lines = [
        "| format | PEs (chips) | PEs per layer | weight bytes | fullest PE (weights) | "
        "mean PE (weights) | time / 70 tokens | energy / 70 tokens | time on 50/50/50 PEs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if not lm:
        lines = []
    for r in lm:
        lines.append(
            f"| `{r['weight_format']}` | {r['pes']} ({r['chips']}) | "
            f"{'/'.join(map(str, r['pes_per_layer']))} | {r['weight_bytes']:,} "
            f"({r['weight_bytes_ratio']:.2f}x) | {r['fullest_pe_bytes']:,} "
            f"({r['fullest_pe_weight_bytes']:,}) | {r['mean_pe_bytes']:,} "
            f"({r['mean_pe_weight_bytes']:,}) | {1e3 * r['seconds_per_sequence']:.1f} ms "
            f"({r['time_ratio']:.2f}x) | {1e3 * r['energy_per_sequence_j']:.1f} mJ "
            f"({r['energy_ratio']:.2f}x) | {_split_cell(r)} |"
        )
    if cap:
        lines += [
            "" if lines else "",
            "| machine | format | largest scale k | layer sizes | stored weights | checked by |",
            "|---|---|---|---|---|---|",
        ]
        for r in cap:
            machine = "1 chip" if r["chips"] == 1 else f"{r['chips']} chips"
            lines.append(
                f"| {machine} | `{r['weight_format']}` | {r['scale']:.2f} | "
                f"{'/'.join(map(str, r['layer_sizes']))} | {r['stored_weights']:,} "
                f"({r['weights_ratio']:.2f}x) | "
                f"{'map_network' if r['routed'] else 'partition/place/memory/fit'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=SEQUENCE_TOKENS, help="workload tokens")
    parser.add_argument("--step", type=float, default=0.05, help="grid of the scale k (1 chip)")
    parser.add_argument("--board-step", type=float, default=0.25, help="grid on the board")
    parser.add_argument("--no-board", action="store_true", help="one chip only (no 48-chip)")
    parser.add_argument("--no-lm", action="store_true", help="skip part 1")
    parser.add_argument("--no-capacity", action="store_true", help="skip part 2")
    parser.add_argument(
        "--route-board", action="store_true", help="confirm the board sizes with map_network"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    if args.tokens < 1 or not args.step > 0:
        parser.error("--tokens must be >= 1 and --step > 0")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    session = Session("wall (perf_counter), host_seconds only: the figures are simulated")
    lm = [] if args.no_lm else paper_lm(args.tokens)
    chips = [1] if args.no_board else [1, ChipSpec().chips_per_board]
    cap = (
        []
        if args.no_capacity
        else capacity(chips, args.step, route_board=args.route_board, board_step=args.board_step)
    )
    conditions = session.finish()
    if args.json:
        print(json.dumps({"paper_lm": lm, "capacity": cap, "conditions": conditions}, indent=2))
    else:
        print(markdown(lm, cap))
        print("\n" + Session.line(conditions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
