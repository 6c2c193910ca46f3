"""Benchmark: the simulated SpiNNaker2 chip against the SpMV floor, PyTorch and numpy.

The published LM shapes (embedding 750 -> EGRU 1350/1350/750 -> tied decoder, vocabulary
10,000 as in the synthetic preset), 95 % pruned weights, mapped on 150 PEs (50/50/50, the
calibration mapping). In one run, on this machine, batch 1, one token at a time:

* the floor: a plain scipy CSR mat-vec over the same non-zeros (both products of the three
  layers per token, on the inputs the network really sees): what any simulator that does
  the chip's arithmetic on this CPU has to pay. It is the same float32 matrices and the
  same inputs, token by token, one scipy call per product (scipy's sparse product is
  single-threaded C++; its per-call Python cost is part of the floor), over every stored
  weight: the simulator sums only over the sources that fired (the same sums, bit for
  bit), so at 20 % activity its products alone read about a third of the floor's weights;
* the simulator's products alone (``LayerSimulator.products_only``: the compiled kernels
  of both products of every layer, on the same inputs, nothing else): the arithmetic part
  of a step, which no removal of per-step overhead takes away;
* the simulated chip (``NetworkSimulator.run_layer_inputs``: numerics, per-PE counters,
  per-step layer totals, the time profile and energy; built once, outside the timing), csr
  and event weight layouts, without per-step detail (``record=False``) and with it
  (``record=True``: every step's per-PE counts, events, and the host readout's logits);
  ``run_mapping`` (building the simulator included) as the user calls it;
* plain dense PyTorch CPU inference of the same network (dense float32 weight matrices,
  ``torch.set_num_threads(2)``, ``torch.inference_mode``, readout included);
* the numpy reference (``DeploymentArtifact.run_reference``, CSR weights, readout included).

Then the event layout against csr as activity falls (thresholds raised: 40 % -> 5 % of
units firing per step). Each row is timed ``--repeats`` times, the rows interleaved so
that a change of load hits all of them; the best time counts. The ratios to the floor are
also taken in ``--rounds`` rounds of the floor, csr, event and products rows back to back
(order rotated each round), one ratio per round: their median and range are printed too,
and move less from run to run than the ratio of two best-of times (on this shared 2-core
machine the best-of ratios moved by about 0.1 between runs). Every row but PyTorch is
single-threaded: numpy's and scipy's BLAS pinned to one thread (threadpoolctl) and timed
with ``time.thread_time()``, the CPU time of the timing thread alone (``process_time()``
would also count an idle OpenBLAS worker's spin after a dense product, charged to the next
row: ``benchmarks/_timing.py``); PyTorch runs on two threads and counts its wall time. The
wall-time ratios are printed too. Other processes on the machine slow every row (they
share the caches and the memory bus): compare the ratios, which are measured in the same
run; the report states the threads, the BLAS kernel and the load before and after.

Usage::

    .venv/bin/python benchmarks/simulator.py [--tokens 200] [--repeats 3] [--rounds 9] [--json]

JSON keys: ``floor_ms``, ``sim_csr_ms``, ``sim_event_ms``, ``sim_csr_over_floor``,
``sim_event_over_floor``, ``products_ms`` and ``products_over_floor`` (the simulator's
products alone, :func:`products_only`), ``event_over_csr`` (CPU time),
``sim_csr_over_floor_wall``, ``event_over_csr_wall``, ``sim_csr_record_ms``,
``run_mapping_csr_ms``, ``torch_ms``,
``numpy_ms``, ``activity``, ``paired`` (per row ``csr``, ``event``, ``products``: the
``median``, ``min`` and ``max`` of the per-round ratios to the floor; empty with
``--rounds 0``), ``sweep`` (rows of ``activity``, ``csr_ms``, ``event_ms``,
``event_over_csr``; empty with ``--sweep-tokens 0``), ``load_average``, ``conditions``
(threads, BLAS kernel, load before and after, CPUs); times are milliseconds per token.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend.calibration import calibration_artifact, calibration_mapping
from spinnaker2_backend.simulator import NetworkSimulator, run_mapping

try:  # run as a script: benchmarks/ is on sys.path
    from _timing import Session, best_of, interleaved
except ImportError:  # imported as benchmarks.simulator
    from benchmarks._timing import Session, best_of, interleaved

#: The rows timed in rounds against the floor (:func:`paired_ratios`), the floor first.
PAIRED = ("floor", "csr", "event", "products")

#: Threshold means of the activity sweep (about 40, 30, 20, 10, 5 % of units firing).
SWEEP_THRESHOLDS = (0.008, 0.025, 0.05, 0.085, 0.11)


def torch_dense_model(artifact: DeploymentArtifact):
    """Dense float32 tensors of every matrix (what a plain PyTorch deployment multiplies)."""

    def dense(w):
        return torch.from_numpy(np.asarray(w.toarray() if hasattr(w, "toarray") else w))

    layers = [
        (
            dense(layer.weight_ih).contiguous(),
            dense(layer.weight_hh).contiguous(),
            torch.from_numpy(layer.bias_ih),
            torch.from_numpy(layer.bias_hh),
            torch.from_numpy(layer.threshold),
        )
        for layer in artifact.layers
    ]
    embedding = torch.from_numpy(artifact.embedding)
    decoder = embedding  # tied
    bias = torch.from_numpy(artifact.readout_bias)
    return layers, embedding, decoder, bias


def torch_run(model, tokens: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Token by token, batch 1: embedding -> EGRU stack (docs/egru.md equations) -> decoder."""
    layers, embedding, decoder, bias = model
    states = [(torch.zeros(w_hh.shape[1]), torch.zeros(w_hh.shape[1])) for _, w_hh, *_ in layers]
    events = [[] for _ in layers]
    logits = []
    with torch.inference_mode():
        for token in tokens.tolist():
            x = embedding[token]
            for i, (w_ih, w_hh, b_ih, b_hh, theta) in enumerate(layers):
                c, y = states[i]
                h = theta.shape[0]
                gi = torch.mv(w_ih, x) + b_ih
                gh = torch.mv(w_hh, y) + b_hh
                r = torch.sigmoid(gi[:h] + gh[:h])
                z = torch.sigmoid(gi[h : 2 * h] + gh[h : 2 * h])
                n = torch.tanh(gi[2 * h :] + r * gh[2 * h :])
                c_tilde = z * c + (1 - z) * n
                o = (c_tilde > theta).to(c_tilde.dtype)
                y = o * c_tilde
                states[i] = (c_tilde - o * theta, y)
                events[i].append(y)
                x = y
            logits.append(torch.mv(decoder, x) + bias)
    return [torch.stack(e) for e in events], torch.stack(logits)


def floor_inputs(artifact: DeploymentArtifact, tokens: np.ndarray):
    """Per layer: the CSR matrices and the inputs each product sees, token by token."""
    ref = artifact.run_reference(tokens)
    xs = artifact.layer_inputs(tokens).astype(np.float32)
    inputs = [xs] + [e.astype(np.float32) for e in ref.layer_events[:-1]]
    rows = []
    for layer, x, events in zip(artifact.layers, inputs, ref.layer_events):
        previous = np.vstack([np.zeros((1, events.shape[1]), np.float32), events[:-1]])
        w_ih = layer.weight_ih.tocsr().astype(np.float32)
        w_hh = layer.weight_hh.tocsr().astype(np.float32)
        rows.append((w_ih, w_hh, np.ascontiguousarray(x), np.ascontiguousarray(previous)))
    return rows


def spmv_floor(rows, steps: int) -> None:
    """Both products of every layer, one token at a time (scipy CSR mat-vec)."""
    for t in range(steps):
        for w_ih, w_hh, x, previous in rows:
            w_ih @ x[t]
            w_hh @ previous[t]


def products_only(sims, rows, steps: int) -> None:
    """The simulator's two products of every layer (``LayerSimulator.products_only``: the
    compiled kernels over the sources that fired, biases and gates up to ``tanh``), on the
    inputs the network sees, nothing else: the arithmetic every simulated step has to do,
    the part of a step no removal of per-step overhead can take away."""
    for t in range(steps):
        for layer, (_, _, x, previous) in zip(sims.layers, rows):
            layer.products_only(x[t], previous[t])


def fresh_run(sim: NetworkSimulator, xs: np.ndarray):
    """A run from the zero state (as ``run_mapping``; the event lists are sized for it)."""
    sim.reset()
    return sim.run_layer_inputs(xs)


def layout_mapping(artifact, fmt: str, tokens: np.ndarray, receive_capacity=None):
    """The calibration mapping of ``fmt`` (bitmap16 tests bits while walking CSR rows: the
    event layout keeps its received events in an event list), its lists sized on ``tokens``
    unless ``receive_capacity`` is given."""
    policy = {"receive_policy": "event-list"} if fmt == "event" else {}
    return calibration_mapping(
        artifact,
        weight_format=fmt,
        inputs=tokens,
        check=False,
        receive_capacity=receive_capacity,
        **policy,
    )


def paired_ratios(fns: dict, rounds: int) -> dict[str, dict[str, float]]:
    """Per row but the first (the floor), the ratio to the floor measured in each of
    ``rounds`` rounds (every row once per round, back to back, the order rotated from round
    to round): ``{row: {"median", "min", "max"}}``. A ratio of two rows timed seconds apart
    moves less with the machine's load than one of two best-of times taken minutes apart."""
    names = list(fns)
    ratios: dict[str, list[float]] = {name: [] for name in names[1:]}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        cpu = {name: best_of(fns[name], 1)["cpu"] for name in order}
        for name in names[1:]:
            ratios[name].append(cpu[name] / cpu[names[0]])
    return {
        name: {"median": float(np.median(v)), "min": min(v), "max": max(v)}
        for name, v in ratios.items()
    }


def activity_sweep(tokens: np.ndarray, repeats: int) -> list[dict[str, float]]:
    rows = []
    for threshold in SWEEP_THRESHOLDS:
        artifact = calibration_artifact(threshold_mean=threshold)
        xs = artifact.layer_inputs(tokens).astype(np.float32)
        mappings = {fmt: layout_mapping(artifact, fmt, tokens) for fmt in ("csr", "event")}
        sims = {
            fmt: NetworkSimulator(m, record=False, progress=False) for fmt, m in mappings.items()
        }
        runs: dict = {}
        fns = {
            fmt: (lambda f=fmt, s=sim, x=xs, r=runs: r.__setitem__(f, fresh_run(s, x)))
            for fmt, sim in sims.items()
        }
        best, _ = interleaved(fns, repeats)
        activity = float(np.mean(runs["csr"].activity()))
        rows.append(
            {
                "threshold_mean": threshold,
                "activity": activity,
                "csr_ms": best["csr"] / len(tokens) * 1e3,
                "event_ms": best["event"] / len(tokens) * 1e3,
                "event_over_csr": best["event"] / best["csr"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sweep-tokens", type=int, default=60, help="tokens per sweep point (0: no sweep)"
    )
    parser.add_argument(
        "--rounds", type=int, default=9, help="rounds of the paired floor ratios (0: none)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if min(args.tokens, args.repeats) < 1 or min(args.sweep_tokens, args.rounds) < 0:
        parser.error("--tokens and --repeats must be >= 1, --sweep-tokens and --rounds >= 0")
    torch.set_num_threads(2)
    session = Session()

    artifact = calibration_artifact()
    tokens = np.random.default_rng(0).integers(0, artifact.embedding.shape[0], args.tokens)
    xs = artifact.layer_inputs(tokens).astype(np.float32)
    mappings = {  # the event layout's extra column starts overflow a layer-1 PE: time it anyway
        fmt: layout_mapping(artifact, fmt, tokens) for fmt in ("csr", "event")
    }
    model = torch_dense_model(artifact)
    floor_rows = floor_inputs(artifact, tokens)
    sims = {fmt: NetworkSimulator(m, record=False, progress=False) for fmt, m in mappings.items()}
    recording = NetworkSimulator(mappings["csr"], record=True, progress=False)
    ref = artifact.run_reference(tokens)
    out: dict[str, object] = {}

    def keep(name, fn):
        return lambda: out.__setitem__(name, fn())

    fns = {
        "floor": lambda: spmv_floor(floor_rows, args.tokens),
        "products": lambda: products_only(sims["csr"], floor_rows, args.tokens),
        "csr": keep("csr", lambda: fresh_run(sims["csr"], xs)),
        "event": keep("event", lambda: fresh_run(sims["event"], xs)),
        "csr_record": keep("csr_record", lambda: fresh_run(recording, xs)),
        "run_mapping": keep("run_mapping", lambda: run_mapping(mappings["csr"], tokens)),
        "torch": keep("torch", lambda: torch_run(model, tokens)),
        "numpy": lambda: artifact.run_reference(tokens),
    }
    for sim in (*sims.values(), recording):  # the simulators run from a zero state
        sim.reset()
    # torch: two threads, wall time (its CPU time would count both threads)
    best, wall = interleaved(fns, args.repeats, multi_threaded=("torch",))

    # they all compute the same network (the simulators continue their state between
    # repeats, so compare a fresh run): bit for bit with float32 received values; the
    # timed runs keep the deployment's default (bitmap16 rounds received values to
    # binary16, receive_bitmap.round_received), whose events agree with the reference's
    # (the event lists were sized on the rounded run, which may fire a few events less: the
    # float32 check runs on lists that hold every unit, so no event is refused)
    whole = max(max(layer.input_size, layer.hidden_size) for layer in artifact.layers)
    for fmt, mapping in mappings.items():
        unrounded = layout_mapping(artifact, fmt, tokens, receive_capacity=whole)
        run = run_mapping(unrounded, tokens, round_received=False)
        for got, want in zip(run.layer_events, ref.layer_events):
            assert np.array_equal(got, want), f"{fmt} differs from the reference"
        for got, want in zip(run_mapping(mapping, tokens).layer_events, ref.layer_events):
            agree = np.mean((got != 0) == (want != 0))
            assert agree > 0.99, f"{fmt} (default receive) fires with the reference on {agree:.3%}"
    torch_events, _ = out["torch"]
    for got, want in zip(torch_events, ref.layer_events):
        agree = np.mean((got.numpy() != 0) == (want != 0))
        assert agree > 0.99, f"PyTorch events agree on only {agree:.3%}"

    paired = paired_ratios({name: fns[name] for name in PAIRED}, args.rounds) if args.rounds else {}
    sweep = activity_sweep(tokens[: args.sweep_tokens], args.repeats) if args.sweep_tokens else []
    per_token = {name: seconds / args.tokens * 1e3 for name, seconds in best.items()}
    activity = float(np.mean(out["csr"].activity()))
    figures = session.figures(
        {
            "floor_ms": per_token["floor"],
            "sim_csr_ms": per_token["csr"],
            "sim_event_ms": per_token["event"],
            "sim_csr_over_floor": best["csr"] / best["floor"],
            "sim_event_over_floor": best["event"] / best["floor"],
            "products_ms": per_token["products"],
            "products_over_floor": best["products"] / best["floor"],
            "event_over_csr": best["event"] / best["csr"],
            "sim_csr_over_floor_wall": wall["csr"] / wall["floor"],
            "event_over_csr_wall": wall["event"] / wall["csr"],
            "sim_csr_record_ms": per_token["csr_record"],
            "run_mapping_csr_ms": per_token["run_mapping"],
            "torch_ms": per_token["torch"],
            "numpy_ms": per_token["numpy"],
            "activity": activity,
            "paired": paired,
            "sweep": sweep,
            "tokens": args.tokens,
            "repeats": args.repeats,
        }
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return

    nnz = sum(w_ih.nnz + w_hh.nnz for w_ih, w_hh, _, _ in floor_rows)
    print(
        f"published LM shapes 750 -> 1350/1350/750 -> 10,000, 95 % pruned ({nnz:,} stored "
        f"weights), 150 PEs; {args.tokens} tokens, batch 1, best of {args.repeats}; activity "
        f"{activity:.1%} of units per step"
    )
    print(Session.line(figures["conditions"]))
    labels = {
        "floor": "floor: scipy CSR mat-vec, both products x 3",
        "products": "the simulator's products alone (kernels)",
        "csr": "simulated chip, csr (counters, profile)",
        "event": "simulated chip, event (counters, profile)",
        "csr_record": "simulated chip, csr, record=True (+ logits)",
        "run_mapping": "run_mapping, csr (builds the simulator)",
        "torch": "dense PyTorch (2 threads, with readout)",
        "numpy": "numpy reference (CSR, with readout, 1 thread)",
    }
    print(f"{'':<46} {'tokens/s':>10} {'ms/token':>9} {'vs floor':>9} {'vs csr':>8}")
    for name, label in labels.items():
        print(
            f"{label:<46} {args.tokens / best[name]:>10.1f} {per_token[name]:>9.3f} "
            f"{best[name] / best['floor']:>8.2f}x {best[name] / best['csr']:>7.2f}x"
        )
    print(
        f"sim_csr_over_floor = {figures['sim_csr_over_floor']:.2f} (target <= 0.6), "
        f"sim_event_over_floor = {figures['sim_event_over_floor']:.2f} (target <= 0.3), "
        f"products alone {figures['products_over_floor']:.2f}; event_over_csr = "
        f"{figures['event_over_csr']:.2f}; in wall time: "
        f"{figures['sim_csr_over_floor_wall']:.2f} and {figures['event_over_csr_wall']:.2f}"
    )
    for name, r in paired.items():
        print(
            f"paired with the floor, {args.rounds} rounds: {name} {r['median']:.2f}x median "
            f"({r['min']:.2f}-{r['max']:.2f})"
        )
    if sweep:
        print(f"\nevent vs csr as activity falls ({args.sweep_tokens} tokens per point)")
    print(f"{'threshold mean':>15} {'activity':>9} {'csr ms':>8} {'event ms':>9} {'event/csr':>10}")
    for row in sweep:
        print(
            f"{row['threshold_mean']:>15.3f} {row['activity']:>8.1%} {row['csr_ms']:>8.3f} "
            f"{row['event_ms']:>9.3f} {row['event_over_csr']:>10.2f}"
        )
    for fmt in ("csr", "event"):
        report = run_mapping(mappings[fmt], tokens, record=False).report()
        print(
            f"simulated {fmt}: {report.seconds_per_sequence * 1e3:.2f} ms and "
            f"{report.energy_per_sequence_j:.4f} J per 70-token sequence "
            f"({report.average_power_w:.3f} W)"
        )


if __name__ == "__main__":
    main()
