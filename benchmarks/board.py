"""Benchmark: the paper LM scaled to fill a 48-chip board: map, build, time per token, memory.

The published LM (embedding 750 -> EGRU 1350/1350/750 -> tied decoder, vocabulary 10,000,
95 % pruned, the calibration thresholds: the network of ``simulator_scaling.py``) with every
layer and the embedding scaled by ``k``, mapped with ``150 k^2`` PEs on the fewest chips that
hold them (``k^2`` for integer ``k``; 48 for ``k = sqrt(48)``),
shared by stored weights (the calibration mapping's weights per PE at every scale). The
default ``--scales 1 6.93`` measures the 1x network (the baseline of the ratios, measured in
the same run) and ``k = sqrt(48)``: 7,200 PEs on the 48 chips of one board.

Each scale runs in a fresh interpreter (its peak resident memory is its own), one after the
other, and reports:

- ``generate_s``: the synthetic network (streamed pruning, threshold tuning), wall time;
- ``map_s``: ``map_network`` (partition, place, route, memory; not checked for fit: from 4x
  the receive buffers outgrow a PE's SRAM, the PEs over are counted), wall time;
- ``build_s``: ``NetworkSimulator(mapping)`` (weights per PE, receive tables, timing), wall;
- ``ms_per_token``: ``NetworkSimulator.run`` (csr, counters, profile, energy;
  ``record=False``) over ``--tokens`` tokens, best of ``--repeats``, CPU time of the
  thread with numpy's and scipy's BLAS pinned to one thread (``benchmarks/_timing.py``),
  with the wall time beside it;
- ``peak_rss_mb``: the interpreter's peak resident set (``getrusage``) after generating,
  mapping, building and running (each the peak so far);
- ratios to the first scale of the run (``--scales``' first): map, build, time per token,
  each also per stored weight.

Usage::

    .venv/bin/python benchmarks/board.py [--scales 1 6.93] [--tokens 20] [--repeats 2] [--json]

JSON keys: ``rows`` (per scale: ``scale``, ``units``, ``input_size``, ``chips``, ``pes``,
``nonzeros``, ``activity``, ``router_entries`` (most on one chip), ``pes_over_sram``,
``generate_s``, ``map_s``, ``build_s``, ``ms_per_token``, ``wall_ms_per_token``,
``peak_rss_mb`` (``generate``, ``map``, ``build``, ``run``), ``map_ratio``,
``build_ratio``, ``token_ratio``, ``token_ratio_per_weight``), ``baseline_scale``,
``tokens``, ``repeats``, ``conditions`` (threads, BLAS kernel, load before and after, CPUs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

try:  # run as a script: benchmarks/ is on sys.path
    from _timing import Session, best_of
except ImportError:  # imported as benchmarks.board
    from benchmarks._timing import Session, best_of

BASE_LAYERS = (1350, 1350, 750)
BASE_INPUT = 750
BASE_PES = 150
BOARD_SCALE = round(math.sqrt(48), 2)  # 6.93: 150 k^2 = 7,200 PEs on 48 chips


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def measure(scale: float, tokens: int, repeats: int, sparsity: float) -> dict:
    """The figures of one scale, in this interpreter."""
    import numpy as np

    from spinnaker2_backend import Machine, map_network, synthetic_network
    from spinnaker2_backend.calibration import (
        CALIBRATION_THRESHOLD_MEAN,
        pes_per_layer_by_weights,
    )
    from spinnaker2_backend.simulator import NetworkSimulator

    units = [int(round(scale * h)) for h in BASE_LAYERS]
    input_size = int(round(scale * BASE_INPUT))
    peak = {}
    start = time.perf_counter()
    art = synthetic_network(
        "paper-lm",
        layer_sizes=units,
        input_size=input_size,
        sparsity=sparsity,
        seed=0,
        threshold_mean=CALIBRATION_THRESHOLD_MEAN,
    )
    generate_s = time.perf_counter() - start
    peak["generate"] = _peak_mb()
    pes = pes_per_layer_by_weights(art, int(round(BASE_PES * scale * scale)))
    # the fewest chips that hold them: k^2 for integer k up to 8, 48 for sqrt(48)
    chips = max(1, math.ceil(sum(pes) / Machine(chips=1).pes_per_chip))
    start = time.perf_counter()
    mapping = map_network(
        art, weight_format="csr", pes_per_layer=pes, machine=Machine(chips=chips), check=False
    )
    map_s = time.perf_counter() - start
    peak["map"] = _peak_mb()
    start = time.perf_counter()
    sim = NetworkSimulator(mapping, record=False, progress=False)
    build_s = time.perf_counter() - start
    peak["build"] = _peak_mb()
    ids = np.random.default_rng(0).integers(0, art.embedding.shape[0], tokens)
    sim.run(ids[:1])  # warm-up (compiled kernels, lazily built tables): not timed
    cpu = wall = float("inf")
    for _ in range(repeats):
        t = best_of(lambda: sim.run(ids), 1)
        cpu, wall = min(cpu, t["cpu"]), min(wall, t["wall"])
    peak["run"] = _peak_mb()
    nnz = sum(layer.weight_ih.nnz + layer.weight_hh.nnz for layer in art.layers)
    # the fraction of units firing per step on these tokens (the numpy reference)
    events = art.run_reference(ids).layer_events
    activity = [float(np.mean(e != 0)) for e in events]
    return {
        "scale": scale,
        "units": units,
        "input_size": input_size,
        "chips": chips,
        "pes": int(sum(pes)),
        "nonzeros": int(nnz),
        "activity": activity,
        "router_entries": int(mapping.routes.max_router_entries),
        "pes_over_sram": len(mapping.fit.problems),
        "generate_s": generate_s,
        "map_s": map_s,
        "build_s": build_s,
        "ms_per_token": cpu / tokens * 1e3,
        "wall_ms_per_token": wall / tokens * 1e3,
        "peak_rss_mb": peak,
    }


def _child(scale: float, tokens: int, repeats: int, sparsity: float) -> dict:
    """:func:`measure` in a fresh interpreter (its own peak memory)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--one", repr(scale)]
    cmd += ["--tokens", str(tokens), "--repeats", str(repeats), "--sparsity", str(sparsity)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"scale": scale, "error": f"exit {proc.returncode}: {tail[0]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, BOARD_SCALE])
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)  # a child's scale
    args = parser.parse_args()
    if min(args.tokens, args.repeats) < 1 or min(args.scales) <= 0:
        parser.error("--tokens and --repeats must be >= 1, --scales > 0")
    if not 0.0 < args.sparsity < 1.0:
        parser.error("--sparsity must be in (0, 1)")
    if args.one is not None:
        print(json.dumps(measure(args.one, args.tokens, args.repeats, args.sparsity)))
        return
    import numpy  # noqa: F401  (its BLAS pools, for the conditions; the children pin them)

    session = Session(clock="map/build: wall; per token: thread_time, BLAS pinned to 1")
    rows = [_child(k, args.tokens, args.repeats, args.sparsity) for k in args.scales]
    base = rows[0]
    for row in rows:
        if "error" in row or "error" in base:
            continue
        grown = row["nonzeros"] / base["nonzeros"]
        row["map_ratio"] = row["map_s"] / base["map_s"]
        row["build_ratio"] = row["build_s"] / base["build_s"]
        row["token_ratio"] = row["ms_per_token"] / base["ms_per_token"]
        row["token_ratio_per_weight"] = row["token_ratio"] / grown
    figures = {
        "rows": rows,
        "baseline_scale": args.scales[0],
        "tokens": args.tokens,
        "repeats": args.repeats,
        "conditions": session.finish(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"paper LM scaled k x, {args.sparsity:.0%} pruned, csr, 150 k^2 PEs on the fewest "
        f"chips; {args.tokens} tokens, best of {args.repeats}; each scale in a fresh "
        f"interpreter; ratios against k = {args.scales[0]:g} of this run"
    )
    print(Session.line(figures["conditions"]))
    print(
        f"{'k':>5} {'chips':>5} {'PEs':>6} {'stored weights':>15} {'gen s':>7} {'map s':>7} "
        f"{'build s':>7} {'ms/token':>9} {'wall ms':>8} {'peak MB':>8} {'map x':>6} "
        f"{'build x':>7} {'token x':>7} {'x/weight':>8}"
    )
    for r in rows:
        if "error" in r:
            print(f"{r['scale']:>5g} failed: {r['error']}")
            continue
        ratios = "".join(
            f" {r.get(k, float('nan')):>{w}.2f}"
            for k, w in (
                ("map_ratio", 6),
                ("build_ratio", 7),
                ("token_ratio", 7),
                ("token_ratio_per_weight", 8),
            )
        )
        print(
            f"{r['scale']:>5g} {r['chips']:>5} {r['pes']:>6,} {r['nonzeros']:>15,} "
            f"{r['generate_s']:>7.1f} {r['map_s']:>7.2f} {r['build_s']:>7.2f} "
            f"{r['ms_per_token']:>9.2f} {r['wall_ms_per_token']:>8.2f} "
            f"{max(r['peak_rss_mb'].values()):>8,.0f}{ratios}"
        )


if __name__ == "__main__":
    main()
