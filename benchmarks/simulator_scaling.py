"""Benchmark: simulator time per token as the paper LM grows (synthetic, 95 % pruned).

The published LM (embedding 750 -> EGRU 1350/1350/750 -> tied decoder, vocabulary 10,000;
thresholds as the calibration stand-in; the activity is printed) with every layer and
the embedding scaled by ``k`` (``--scales``, default 1 2 4; 8 takes 77.3 M stored
weights, 6 GB peak and 3.5 minutes): the stored weights grow as ``k^2``, so the network is mapped on
``k^2`` chips with ``150 k^2`` PEs shared by stored weights (as the calibration mapping
shares 150 PEs on one chip), i.e. the same weights per PE at every scale; the router
entries of the fullest chip are printed. From 4x on, the
receive buffers (one word per source unit) also outgrow a PE's SRAM, so the mapping is
not checked for fit and the PEs over are printed (a real deployment would need more
PEs per layer, or smaller slices of the input buffer).

For each scale, in the same run: the SpMV floor (a plain scipy CSR mat-vec over the same
non-zeros, both products of every layer, one token at a time) and the simulator
(``NetworkSimulator.run``, csr layout, counters, profile, energy; ``record=False``), best
CPU time of ``--repeats``: single-threaded, numpy's and scipy's BLAS pinned to one thread
and timed with ``time.thread_time()`` (``benchmarks/_timing.py``: ``process_time()``
would count an idle OpenBLAS worker's spin too), with the wall time beside it. Printed
per scale: time per token, nanoseconds per stored weight, growth against linear in stored
weights (``(t_k / t_1) / (nnz_k / nnz_1)``), and the per-PE packet count kernel (every PE
of a layer receives the events of every other PE; counted from one shared row per layer
plus one correction per PE, ``layer_setup.ReceiveTable``: linear in the PEs, where a
dense ``P x P`` table was quadratic).

Usage::

    .venv/bin/python benchmarks/simulator_scaling.py [--scales 1 2 4] [--tokens 50] [--json]

JSON keys: ``rows`` (per scale: ``scale``, ``units``, ``chips``, ``pes``,
``router_entries`` (most on one chip), ``pes_over_sram``, ``nonzeros``, ``activity``, ``sim_ms``,
``floor_ms``, ``sim_over_floor``, ``sim_ns_per_nonzero``, ``floor_ns_per_nonzero``,
``sim_growth_over_linear``, ``floor_growth_over_linear``, ``counts_ms``, ``sim_wall_ms``,
``floor_wall_ms``), ``tokens``, ``repeats``, ``load_average``, ``conditions`` (threads,
BLAS kernel, load before and after, CPUs).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from spinnaker2_backend import Machine, map_network, synthetic_network
from spinnaker2_backend.calibration import CALIBRATION_THRESHOLD_MEAN, pes_per_layer_by_weights
from spinnaker2_backend.kernels import layer_ops
from spinnaker2_backend.simulator import NetworkSimulator

try:  # run as a script: benchmarks/ is on sys.path
    from _timing import Session, best_of, single_threaded
except ImportError:  # imported as benchmarks.simulator_scaling
    from benchmarks._timing import Session, best_of, single_threaded

BASE_LAYERS = (1350, 1350, 750)
BASE_INPUT = 750
BASE_PES = 150


def counts_seconds(sim: NetworkSimulator, steps: int) -> float:
    """CPU seconds (this thread, BLAS pinned to one thread) of the per-PE packet counts of
    ``steps`` steps (every layer)."""
    with single_threaded():
        return _counts_seconds(sim, steps)


def _counts_seconds(sim: NetworkSimulator, steps: int) -> float:
    start = time.thread_time()
    for _ in range(steps):
        for layer in sim.layers:
            ops = np.empty((1, *layer._static_ops.shape))
            layer_ops(
                layer._static_ops,
                layer._fired,
                layer._fired_before,
                layer._receive_in.arrays,
                layer._host_received,
                layer._receive_own.arrays,
                layer._per_event,
                *layer._op_rows[:6],  # the six rows of layer_ops (then the event format's)
                ops,
            )
    return time.thread_time() - start


def measure(scale: int, tokens: int, repeats: int, sparsity: float) -> dict:
    art = synthetic_network(
        "paper-lm",
        layer_sizes=[scale * h for h in BASE_LAYERS],
        input_size=scale * BASE_INPUT,
        sparsity=sparsity,
        seed=0,
        threshold_mean=CALIBRATION_THRESHOLD_MEAN,
    )
    chips = scale * scale
    pes = pes_per_layer_by_weights(art, BASE_PES * chips)
    machine = Machine(chips=chips)
    # from 4x on, the dense receive buffers (one word per source unit) outgrow a PE's SRAM
    # too; map anyway (the simulator's cost does not depend on it) and count those PEs
    mapping = map_network(art, weight_format="csr", pes_per_layer=pes, machine=machine, check=False)
    entries = max(mapping.routes.router_entries.values())
    ids = np.random.default_rng(0).integers(0, art.embedding.shape[0], tokens)
    ref = art.run_reference(ids)
    xs = art.layer_inputs(ids).astype(np.float32)
    rows = []
    for layer, x, events in zip(art.layers, [xs, *ref.layer_events[:-1]], ref.layer_events):
        previous = np.vstack([np.zeros((1, events.shape[1]), np.float32), events[:-1]])
        rows.append((layer.weight_ih.tocsr(), layer.weight_hh.tocsr(), x, previous))
    nnz = sum(w_ih.nnz + w_hh.nnz for w_ih, w_hh, _, _ in rows)

    def floor():
        for t in range(tokens):
            for w_ih, w_hh, x, previous in rows:
                w_ih @ x[t]
                w_hh @ previous[t]

    sim = NetworkSimulator(mapping, record=False, progress=False)
    best = {"floor": float("inf"), "sim": float("inf")}
    wall = dict(best)
    sim.run(ids[:1])  # warm-up (compiled kernels, lazily built tables): not timed
    for _ in range(repeats):  # interleaved: a change of load hits both
        for name, fn in (("floor", floor), ("sim", lambda: sim.run(ids))):
            t = best_of(fn, 1)
            best[name] = min(best[name], t["cpu"])
            wall[name] = min(wall[name], t["wall"])
    counts = min(counts_seconds(sim, tokens) for _ in range(repeats))
    return {
        "scale": scale,
        "units": [scale * h for h in BASE_LAYERS],
        "chips": chips,
        "pes": int(sum(pes)),
        "router_entries": int(entries),
        "pes_over_sram": len(mapping.fit.problems),
        "nonzeros": int(nnz),
        "activity": float(np.mean([np.mean(e != 0) for e in ref.layer_events])),
        "sim_ms": best["sim"] / tokens * 1e3,
        "floor_ms": best["floor"] / tokens * 1e3,
        "sim_over_floor": best["sim"] / best["floor"],
        "sim_ns_per_nonzero": best["sim"] / tokens / nnz * 1e9,
        "floor_ns_per_nonzero": best["floor"] / tokens / nnz * 1e9,
        "counts_ms": counts / tokens * 1e3,
        "sim_wall_ms": wall["sim"] / tokens * 1e3,
        "floor_wall_ms": wall["floor"] / tokens * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if min(args.tokens, args.repeats, *args.scales) < 1:
        parser.error("--tokens, --repeats and --scales must be >= 1")
    session = Session()
    rows = [measure(k, args.tokens, args.repeats, args.sparsity) for k in args.scales]
    base = rows[0]
    for row in rows:
        grown = row["nonzeros"] / base["nonzeros"]
        row["sim_growth_over_linear"] = row["sim_ms"] / base["sim_ms"] / grown
        row["floor_growth_over_linear"] = row["floor_ms"] / base["floor_ms"] / grown
    figures = session.figures(
        {
            "rows": rows,
            "tokens": args.tokens,
            "repeats": args.repeats,
        }
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"paper LM scaled k x (units and embedding), {args.sparsity:.0%} pruned, csr, "
        f"{BASE_PES} k^2 PEs on k^2 chips; {args.tokens} tokens, best CPU time of "
        f"{args.repeats} (BLAS 1 thread, thread_time)"
    )
    print(Session.line(figures["conditions"]))
    print(
        f"{'k':>2} {'units':>17} {'chips':>5} {'PEs':>5} {'entries':>8} {'over':>5} "
        f"{'stored weights':>15} "
        f"{'activity':>8} {'sim ms':>8} {'floor ms':>8} {'sim/floor':>9} {'sim ns/w':>8} "
        f"{'floor ns/w':>10} {'sim vs lin':>10} {'floor vs lin':>12} {'counts ms':>9}"
    )
    for r in rows:
        units = "/".join(map(str, r["units"]))
        print(
            f"{r['scale']:>2} {units:>17} {r['chips']:>5} {r['pes']:>5} "
            f"{r['router_entries']:>8,} {r['pes_over_sram']:>5} "
            f"{r['nonzeros']:>15,} "
            f"{r['activity']:>8.1%} {r['sim_ms']:>8.2f} {r['floor_ms']:>8.2f} "
            f"{r['sim_over_floor']:>9.2f} {r['sim_ns_per_nonzero']:>8.3f} "
            f"{r['floor_ns_per_nonzero']:>10.3f} {r['sim_growth_over_linear']:>10.2f} "
            f"{r['floor_growth_over_linear']:>12.2f} {r['counts_ms']:>9.3f}"
        )
    print(
        "vs lin: time growth divided by stored-weight growth (1.00 = linear). 'counts ms': "
        "the per-PE packet counts (all-to-all events within a layer and to the next), "
        "linear in the PEs (one shared receive row per layer plus one correction per PE)."
    )


if __name__ == "__main__":
    main()
