"""Benchmark: the Lava graph (lava_procs) against the backend's direct run, same network.

The network is the published SpiNNaker2 language model's shape (``spinnaker2_backend``
synthetic preset ``paper-lm``: embedding 750, EGRU 1350/1350/750, vocabulary 10,000, tied
decoder) with 95 % sparse CSR weights. For one stream of token ids it times, in one run:

- ``reference``: ``artifact.run_reference`` (the numpy EGRU, one process, the readout as one
  matrix product over all steps at the end);
- ``reference, streamed``: the same computation token by token as the Lava graph does it
  (``egru_stack_step`` then the readout of that step): the baseline of Lava's overhead;
- ``direct chip``: ``mapping.run`` (the simulated SpiNNaker2 chip, one process);
- ``lava floating_pt``: ``run_network(backend="floating_pt")`` (and once more with
  ``record_events=False``: three sink processes fewer);
- ``lava spinnaker2``: ``run_network(backend="spinnaker2")``;

and prints wall time per step, steps per second, the ratios of the Lava runs to their
direct counterparts (Lava per-step overhead), Lava start-up time, and checks that the
outputs and chip counters agree. Times are wall-clock on this machine (shared CPU: numbers
vary); the simulated chip time per token is the model's estimate, the same for both
chip runs.

    python benchmarks/lava_runtime.py                 # 200 tokens
    python benchmarks/lava_runtime.py --repeats 3     # median of 3 (shared CPU)
    python benchmarks/lava_runtime.py --tokens 70 --weight-format event
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from lava_procs.run import run_network
from snn_egru.reference import egru_stack_step
from spinnaker2_backend.mapping import map_network
from spinnaker2_backend.synthetic import synthetic_network


def timed(fn):
    """``(result, seconds)`` of one call."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def streamed_reference(artifact, tokens: np.ndarray) -> list[np.ndarray]:
    """Token by token, readout per step (what the Lava graph computes); returns logits."""
    states = artifact.initial_states()
    logits = []
    for x in artifact.layer_inputs(tokens):
        events, states = egru_stack_step(x, states, artifact.layers)
        logits.append(artifact.readout(events[-1]))
    return logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens in the stream")
    parser.add_argument("--sparsity", type=float, default=0.95, help="weight sparsity")
    parser.add_argument("--weight-format", default="csr", choices=("csr", "event", "dense"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each configuration (median reported)"
    )
    args = parser.parse_args()

    artifact, build_s = timed(
        lambda: synthetic_network("paper-lm", sparsity=args.sparsity, seed=args.seed)
    )
    vocab = artifact.embedding.shape[0]
    tokens = np.random.default_rng(args.seed).integers(0, vocab, size=args.tokens)
    print(
        f"network: paper-lm {'/'.join(map(str, artifact.layer_sizes))}, embedding "
        f"{artifact.input_size}, vocabulary {vocab}, sparsity {args.sparsity:g} "
        f"({args.weight_format} on chip), {args.tokens} tokens (built in {build_s:.1f} s)"
    )

    mapping, map_s = timed(lambda: map_network(artifact, weight_format=args.weight_format))
    # Interleaved repeats, median per configuration: the CPU may be shared.
    times: dict[str, list[float]] = {}
    startups: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        reference, seconds = timed(lambda: artifact.run_reference(tokens))
        times.setdefault("reference", []).append(seconds)
        _, seconds = timed(lambda: streamed_reference(artifact, tokens))
        times.setdefault("streamed", []).append(seconds)
        direct, seconds = timed(lambda: mapping.run(tokens))
        times.setdefault("direct", []).append(seconds)
        for key, backend, record in (
            ("lava_fp", "floating_pt", True),
            ("lava_fp_lean", "floating_pt", False),
            ("lava_chip", "spinnaker2", True),
        ):
            result = run_network(
                artifact,
                tokens,
                backend,
                weight_format=args.weight_format,
                record_events=record,
            )
            times.setdefault(key, []).append(result.run_s)
            startups.setdefault(key, []).append(result.startup_s)
            if key == "lava_fp":
                lava_fp = result
            elif key == "lava_chip":
                lava_chip = result
    median = {key: statistics.median(values) for key, values in times.items()}
    startup = {key: statistics.median(values) for key, values in startups.items()}
    reference_s, streamed_s, direct_s = median["reference"], median["streamed"], median["direct"]
    fp_s, chip_s = median["lava_fp"], median["lava_chip"]

    rows = [
        ("reference (numpy)", reference_s, None),
        ("reference, streamed", streamed_s, None),
        ("direct chip (mapping.run)", direct_s, None),
        ("lava floating_pt", fp_s, startup["lava_fp"]),
        ("  (logits only, no event sinks)", median["lava_fp_lean"], startup["lava_fp_lean"]),
        ("lava spinnaker2", chip_s, startup["lava_chip"]),
    ]
    print(f"\n{'run':<32} {'ms/step':>9} {'steps/s':>9} {'start-up s':>11}")
    for name, seconds, startup in rows:
        per_step = seconds / args.tokens
        start = f"{startup:11.2f}" if startup is not None else f"{'':>11}"
        print(f"{name:<32} {1e3 * per_step:9.3f} {1 / per_step:9.1f} {start}")
    print(
        f"(median of {args.repeats} run(s) each; mapping the network: {map_s:.2f} s, not "
        "included above)"
    )

    print("\nratios (wall time per step; start-up excluded)")
    print(f"  lava floating_pt / reference     {fp_s / reference_s:7.2f}x")
    print(f"  lava floating_pt / streamed ref  {fp_s / streamed_s:7.2f}x")
    print(f"  lava spinnaker2  / direct chip   {chip_s / direct_s:7.2f}x")
    print(f"  lava spinnaker2  / lava floating {chip_s / fp_s:7.2f}x")
    overhead_fp = (fp_s - streamed_s) / args.tokens
    overhead_chip = (chip_s - direct_s) / args.tokens
    print(
        f"  Lava overhead per step: {1e3 * overhead_fp:.2f} ms (floating_pt vs streamed "
        f"reference), {1e3 * overhead_chip:.2f} ms (spinnaker2 vs direct chip run; includes "
        f"the per-step readout the direct run does in one product)"
    )

    events_equal = all(
        np.array_equal(a, b) for a, b in zip(lava_fp.layer_events, reference.layer_events)
    )
    chip_equal = all(
        np.array_equal(a, b) for a, b in zip(lava_chip.layer_events, direct.layer_events)
    )
    counters_equal = lava_chip.chip.counters.per_layer() == direct.counters.per_layer()
    logits_gap = float(np.max(np.abs(lava_fp.logits - reference.logits)))
    print("\nchecks")
    print(f"  lava floating_pt events == reference:        {events_equal}")
    print(f"  lava spinnaker2 events == direct chip run:   {chip_equal}")
    print(f"  lava spinnaker2 counters == direct chip run: {counters_equal}")
    print(f"  max |logits lava floating_pt - reference|:   {logits_gap:.3g}")
    print(
        f"  simulated chip time per token: lava {1e3 * lava_chip.chip.seconds_per_token:.3f} ms,"
        f" direct {1e3 * direct.seconds_per_token:.3f} ms (model estimate)"
    )
    print(f"  units firing per step: {', '.join(f'{100 * a:.1f} %' for a in direct.activity())}")


if __name__ == "__main__":
    main()
