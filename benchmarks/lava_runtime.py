"""Benchmark: the Lava graph (lava_procs) against the numpy reference, same network, one run.

The network is the published SpiNNaker2 language model's shape (``spinnaker2_backend``
synthetic preset ``paper-lm``: embedding 750, EGRU 1350/1350/750, vocabulary 10,000, tied
decoder) with 95 % sparse CSR weights. For one stream of token ids it times, in one run:

- ``reference``: ``artifact.run_reference`` (the numpy EGRU in one process, the readout as
  one matrix product over all steps at the end): the baseline of every ratio;
- ``reference, streamed``: the same token by token with the readout of each step;
- ``direct chip``: ``run_mapping`` (the simulated SpiNNaker2 chip, one process);
- ``lava floating_pt`` / ``lava spinnaker2``: ``run_network`` (the readout of a run on the
  host in one product, as on the chip's host: ``readout="host"``);
- ``lava floating_pt, Readout process``: the same with a Lava ``Readout`` process that
  computes the logits every step (``readout="process"``);

and prints wall time per step, steps per second and the ratios against the reference, and
checks that the outputs and chip counters agree. ``--profile`` adds where a step's time
goes (the EGRU stack, a per-step readout, the chip model's per-step extras, Lava's cost per
process and step measured on a tiny network); ``--memory-steps N`` runs a session of ``N``
steps in chunks and prints the growth of the resident memory per step (host and model
processes). Times are wall-clock on this machine (shared CPU: numbers vary; ratios come
from the same run).

    python benchmarks/lava_runtime.py                      # 200 tokens
    python benchmarks/lava_runtime.py --repeats 3 --profile --memory-steps 600 --json
    python benchmarks/lava_runtime.py --tokens 70 --weight-format event
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import statistics
import time

import numpy as np

from lava_procs.run import run_network
from snn_egru.reference import egru_stack_step
from spinnaker2_backend import map_network, synthetic_network
from spinnaker2_backend.simulator import LayerSimulator, run_mapping

try:  # run as a script: benchmarks/ is on sys.path
    from _timing import Session
except ImportError:  # imported as benchmarks.lava_runtime
    from benchmarks._timing import Session


def timed(fn):
    """``(result, seconds)`` of one call."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def streamed_reference(artifact, tokens: np.ndarray) -> list[np.ndarray]:
    """Token by token, readout per step; returns logits."""
    states = artifact.initial_states()
    logits = []
    for x in artifact.layer_inputs(tokens):
        events, states = egru_stack_step(x, states, artifact.layers)
        logits.append(artifact.readout(events[-1]))
    return logits


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def graph_rss() -> int:
    """Resident bytes of this process and its child processes (the Lava models)."""
    total = rss_bytes()
    for child in multiprocessing.active_children():
        try:
            total += rss_bytes(child.pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


# ---------------------------------------------------------------------------------- profile
def profile_step(artifact, mapping, tokens: np.ndarray) -> dict[str, float]:
    """Per-step costs (ms) of the pieces of one Lava step, each timed on its own."""
    from lava_procs.chip_report import summarize_step
    from spinnaker2_backend.energy import estimate_energy

    clock = time.perf_counter
    xs = artifact.layer_inputs(tokens)
    states = artifact.initial_states()
    stack = readout = 0.0
    last = []
    for x in xs:
        t0 = clock()
        events, states = egru_stack_step(x, states, artifact.layers)
        t1 = clock()
        artifact.readout(events[-1])
        t2 = clock()
        stack += t1 - t0
        readout += t2 - t1
        last.append(events[-1])
    t0 = clock()
    artifact.readout(np.stack(last))
    batched = clock() - t0
    sims = [LayerSimulator(mapping, i, dtype=np.float32) for i in range(artifact.num_layers)]
    chip = full_record = summary_bytes = summary_s = energy_s = 0.0
    for x in xs:
        inp = x
        for sim in sims:
            t0 = clock()
            result = sim.step(inp)
            t1 = clock()
            # what a chip model sent per step before (result + counters) and sends now
            full_record += len(pickle.dumps((result, sim.counters.copy())))
            t2 = clock()
            summary = pickle.dumps(summarize_step(result, keep_pe_steps=False, keep_busy=False))
            t3 = clock()
            counters = sim.counters
            estimate_energy(
                wall_seconds=(counters.layer_cycles + counters.tail_cycles) / 150e6,
                busy_cycles=float(counters.phase_cycles.sum()),
                packets=counters.total("packets_sent"),
                packet_hops=counters.total("packet_hops"),
                chip_link_hops=counters.total("chip_link_hops"),
                dram_bytes=counters.dram_bytes,
                clock_hz=150e6,
                chips=1,
            )
            t4 = clock()
            chip += t1 - t0
            summary_bytes += len(summary)
            summary_s += t3 - t2
            energy_s += t4 - t3
            inp = result.y
    n = len(xs)
    return {
        "egru_stack_ms": 1e3 * stack / n,
        "readout_per_step_ms": 1e3 * readout / n,
        "readout_batched_ms": 1e3 * batched / n,
        "chip_layers_ms": 1e3 * chip / n,
        "chip_record_before_bytes": full_record / n,
        "chip_summary_bytes": summary_bytes / n,
        "chip_summary_ms": 1e3 * summary_s / n,
        "chip_energy_var_ms": 1e3 * energy_s / n,
    }


def profile_lava_processes(steps: int, repeats: int) -> list[dict[str, float]]:
    """Lava's own cost per step against the number of processes, on a tiny network (the
    models' compute is negligible): the graph of today (source + 3 layers), with a Readout
    process and its sink, and the graph as it was (plus one sink process per layer)."""
    from lava_procs.io.process import HostSink
    from lava_procs.network.process import EGRUNetwork
    from lava_procs.run import LavaNetworkSession
    from lava_procs.run_configs import FloatingPtSimCfg

    tiny = synthetic_network(
        layer_sizes=[8, 8, 8],
        input_size=8,
        sparsity=0.5,
        seed=0,
        input_kind="embedding",
        vocab_size=16,
        readout_kind="tied_decoder",
    )
    tokens = np.random.default_rng(0).integers(0, 16, size=steps)
    graphs = (
        ("source + 3 layers (host readout)", "host", 0),
        ("+ Readout process + logits sink", "process", 0),
        ("+ one sink process per layer", "process", 3),
    )
    seconds: dict[str, list[float]] = {label: [] for label, _, _ in graphs}
    for _ in range(repeats):  # interleaved, median: the CPU may be shared
        for label, readout, sinks in graphs:
            network = EGRUNetwork(
                artifact=tiny, inputs=tokens, readout=readout, record_events=False, name="tiny"
            )
            for i in range(sinks):
                sink = HostSink(shape=(8,), name=f"extra_sink_{i}")
                getattr(network, f"y_out_{i}").connect(sink.data_in)
            with LavaNetworkSession(network, FloatingPtSimCfg(), timeout_s=300) as session:
                session.run(10)  # warm-up
                seconds[label].append(timed(lambda: session.run(steps - 10))[1])
    return [
        {
            "graph": label,
            "processes": 4 + (2 if readout == "process" else 0) + sinks,
            "ms_per_step": 1e3 * statistics.median(seconds[label]) / (steps - 10),
        }
        for label, readout, sinks in graphs
    ]


def memory_growth(artifact, tokens: np.ndarray, backend: str, chunk: int) -> dict[str, float]:
    """Resident memory of a session (host + model processes) after its first chunk and at
    the end; per-step detail not kept (``keep_chip_steps=False``, no per-layer events)."""
    from lava_procs.network.process import EGRUNetwork
    from lava_procs.run import LavaNetworkSession, make_run_config

    network = EGRUNetwork(artifact=artifact, inputs=tokens, record_events=False, name="mem")
    run_cfg = make_run_config(backend)
    with LavaNetworkSession(network, run_cfg, keep_chip_steps=False, timeout_s=600) as session:
        chunks = session.iter_run(chunk_steps=chunk)
        next(chunks)
        first = graph_rss()
        first_steps = session.steps_done
        for _ in chunks:
            pass
        last = graph_rss()
        steps = session.steps_done - first_steps
        if session.on_chip:
            session.chip_run()  # the report of the whole run is still exact
        table_bytes = session.chip_bytes_per_step
    return {
        "backend": backend,
        "steps_measured": steps,
        "rss_first_chunk_mb": first / 2**20,
        "rss_end_mb": last / 2**20,
        "bytes_per_step": (last - first) / steps,
        "chip_step_table_bytes_per_step": table_bytes,
    }


# ------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens in the stream")
    parser.add_argument("--sparsity", type=float, default=0.95, help="weight sparsity")
    parser.add_argument("--weight-format", default="csr", choices=("csr", "event", "dense"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each configuration (median reported)"
    )
    parser.add_argument("--profile", action="store_true", help="where a step's time goes")
    parser.add_argument(
        "--memory-steps", type=int, default=0, help="steps of the memory-growth session (0: off)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a tiny 3-layer network instead of paper-lm (a smoke test of the benchmark)",
    )
    args = parser.parse_args()
    if min(args.tokens, args.repeats) < 1:
        parser.error("--tokens and --repeats must be >= 1")
    session = Session("wall (perf_counter); the reference's BLAS and Lava's processes as set")

    if args.tiny:
        build = lambda: synthetic_network(  # noqa: E731
            layer_sizes=[24, 24, 16],
            input_size=16,
            sparsity=args.sparsity,
            seed=args.seed,
            input_kind="embedding",
            vocab_size=40,
            readout_kind="tied_decoder",
        )
    else:
        build = lambda: synthetic_network(  # noqa: E731
            "paper-lm", sparsity=args.sparsity, seed=args.seed
        )
    artifact, build_s = timed(build)
    vocab = artifact.embedding.shape[0]
    tokens = np.random.default_rng(args.seed).integers(0, vocab, size=args.tokens)
    print(
        f"network: {'tiny' if args.tiny else 'paper-lm'} "
        f"{'/'.join(map(str, artifact.layer_sizes))}, embedding "
        f"{artifact.input_size}, vocabulary {vocab}, sparsity {args.sparsity:g} "
        f"({args.weight_format} on chip), {args.tokens} tokens (built in {build_s:.1f} s); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )

    mapping, map_s = timed(lambda: map_network(artifact, weight_format=args.weight_format))
    # Interleaved repeats, median per configuration: the CPU may be shared.
    times: dict[str, list[float]] = {}
    startups: dict[str, list[float]] = {}
    results = {}
    for _ in range(args.repeats):
        results["reference"], seconds = timed(lambda: artifact.run_reference(tokens))
        times.setdefault("reference", []).append(seconds)
        _, seconds = timed(lambda: streamed_reference(artifact, tokens))
        times.setdefault("streamed", []).append(seconds)
        results["direct"], seconds = timed(lambda: run_mapping(mapping, tokens))
        times.setdefault("direct", []).append(seconds)
        for key, backend, readout in (
            ("lava_fp", "floating_pt", "host"),
            ("lava_fp_process", "floating_pt", "process"),
            ("lava_chip", "spinnaker2", "host"),
        ):
            result = run_network(
                artifact, tokens, backend, weight_format=args.weight_format, readout=readout
            )
            times.setdefault(key, []).append(result.run_s)
            startups.setdefault(key, []).append(result.startup_s)
            results[key] = result
    median = {key: statistics.median(values) for key, values in times.items()}
    startup = {key: statistics.median(values) for key, values in startups.items()}
    per_step = {key: seconds / args.tokens for key, seconds in median.items()}
    reference_s = per_step["reference"]

    rows = [
        ("reference (numpy)", "reference"),
        ("reference, streamed", "streamed"),
        ("direct chip (run_mapping)", "direct"),
        ("lava floating_pt", "lava_fp"),
        ("lava floating_pt, Readout process", "lava_fp_process"),
        ("lava spinnaker2", "lava_chip"),
    ]
    print(f"\n{'run':<36} {'ms/step':>9} {'steps/s':>9} {'/ reference':>12} {'start-up s':>11}")
    for name, key in rows:
        start = f"{startup[key]:11.2f}" if key in startup else f"{'':>11}"
        print(
            f"{name:<36} {1e3 * per_step[key]:9.3f} {1 / per_step[key]:9.1f} "
            f"{per_step[key] / reference_s:11.2f}x {start}"
        )
    print(
        f"(median of {args.repeats} run(s) each; mapping the network: {map_s:.2f} s, not "
        "included above)"
    )

    reference, direct = results["reference"], results["direct"]
    lava_fp, lava_chip = results["lava_fp"], results["lava_chip"]
    checks = {
        "lava floating_pt events == reference": all(
            np.array_equal(a, b) for a, b in zip(lava_fp.layer_events, reference.layer_events)
        ),
        "lava floating_pt logits == reference": bool(
            np.array_equal(lava_fp.logits, reference.logits)
        ),
        "lava spinnaker2 events == direct chip run": all(
            np.array_equal(a, b) for a, b in zip(lava_chip.layer_events, direct.layer_events)
        ),
        "lava spinnaker2 logits == direct chip run": bool(
            np.array_equal(lava_chip.logits, direct.logits)
        ),
        "lava spinnaker2 counters == direct chip run": (
            lava_chip.chip.counters.per_layer() == direct.counters.per_layer()
        ),
    }
    process_gap = float(np.max(np.abs(results["lava_fp_process"].logits - reference.logits)))
    print("\nchecks")
    for name, value in checks.items():
        print(f"  {name + ':':<46} {value}")
    print(f"  max |logits with Readout process - reference|:  {process_gap:.3g}")
    print(
        f"  simulated chip time per token: lava {1e3 * lava_chip.chip.seconds_per_token:.3f} ms,"
        f" direct {1e3 * direct.seconds_per_token:.3f} ms (model estimate)"
    )
    print(f"  units firing per step: {', '.join(f'{100 * a:.1f} %' for a in direct.activity())}")

    out = {
        "tokens": args.tokens,
        "repeats": args.repeats,
        "load_average": os.getloadavg()[0],
        "lava_steps_per_s": {
            "floating_pt": 1 / per_step["lava_fp"],
            "spinnaker2": 1 / per_step["lava_chip"],
            "floating_pt_readout_process": 1 / per_step["lava_fp_process"],
        },
        "reference_steps_per_s": 1 / reference_s,
        "direct_chip_steps_per_s": 1 / per_step["direct"],
        "lava_over_reference": {
            "floating_pt": per_step["lava_fp"] / reference_s,
            "spinnaker2": per_step["lava_chip"] / reference_s,
            "floating_pt_readout_process": per_step["lava_fp_process"] / reference_s,
        },
        "lava_spinnaker2_over_direct_chip": per_step["lava_chip"] / per_step["direct"],
        "startup_s": startup,
        "checks": checks,
    }

    if args.profile:
        prof = profile_step(artifact, mapping, tokens[: min(60, args.tokens)])
        lava_rows = profile_lava_processes(steps=410, repeats=max(args.repeats, 3))
        print("\nprofile: one step's pieces, each timed alone (ms per step)")
        print(f"  EGRU stack (3 layers, numpy reference):     {prof['egru_stack_ms']:.3f}")
        print(f"  readout of one step (10000 x 750 mat-vec):  {prof['readout_per_step_ms']:.3f}")
        print(f"  readout of the run in one product, per step: {prof['readout_batched_ms']:.3f}")
        print(f"  chip layers (3 LayerSimulator.step):        {prof['chip_layers_ms']:.3f}")
        print(
            f"  chip record per step: before {prof['chip_record_before_bytes']:,.0f} bytes "
            f"(result + counters), now {prof['chip_summary_bytes']:,.0f} bytes "
            f"({prof['chip_summary_ms']:.3f} ms to summarise and pickle)"
        )
        print(f"  chip energy Var per step (3 layers):        {prof['chip_energy_var_ms']:.3f}")
        print("  Lava per step on a tiny network (compute negligible; median of the repeats):")
        base = lava_rows[0]
        for row in lava_rows:
            extra = row["processes"] - base["processes"]
            per_process = (
                f", {(row['ms_per_step'] - base['ms_per_step']) / extra:.3f} ms per extra process"
                if extra
                else ""
            )
            print(
                f"    {row['graph']:<36} {row['processes']} processes "
                f"{row['ms_per_step']:.3f} ms{per_process}"
            )
        out["profile"] = {**prof, "lava_processes": lava_rows}

    if args.memory_steps:
        steps = max(args.memory_steps, 200)
        stream = np.random.default_rng(args.seed + 1).integers(0, vocab, size=steps)
        print(f"\nmemory: a session of {steps} steps in chunks of 100, per-step detail not kept")
        out["memory"] = []
        for backend in ("floating_pt", "spinnaker2"):
            mem = memory_growth(artifact, stream, backend, chunk=100)
            out["memory"].append(mem)
            print(
                f"  {backend:<12} resident (host + model processes, shared pages counted in "
                f"each) {mem['rss_first_chunk_mb']:.0f} MB after the first chunk, "
                f"{mem['rss_end_mb']:.0f} MB after {steps} steps: "
                f"{mem['bytes_per_step']:,.0f} bytes per step (of it kept by design: the "
                f"chip report's per-step layer totals, {mem['chip_step_table_bytes_per_step']:,} "
                "bytes per step)"
            )

    out["conditions"] = session.finish()
    print("\n" + Session.line(out["conditions"]))
    if args.json:
        print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
