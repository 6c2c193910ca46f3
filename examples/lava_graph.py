"""An EGRU network as a Lava process graph, on the numpy reference and on a simulated SpiNNaker2.

What it shows (for Lava users)
------------------------------
1. a small deployment artifact: a synthetic network
   (:func:`spinnaker2_backend.synthetic.synthetic_network`), one written by hand from numpy
   arrays (``--handmade``: the layout of :class:`snn_egru.reference.EGRUParams`), or a
   saved ``.npz`` (``--artifact``, e.g. the one ``examples/language_model.py`` writes);
2. the hierarchical process :class:`lava_procs.network.process.EGRUNetwork` built by hand
   (source -> EGRU layers; events recorded by the layers, logits of each run computed on
   the host in one product) and run with
   :class:`lava_procs.run.LavaNetworkSession` (a context manager: the runtime is always
   stopped) under both run configs of :mod:`lava_procs.run_configs`:

   * ``FloatingPtSimCfg()``: the ``floating_pt`` process models (the numpy reference);
   * ``SpiNNaker2SimCfg(chip=ChipOptions(weight_format=...))``: the ``spinnaker2`` models,
     every layer process running its PEs of the simulated chip;

   each in two runs (``session.run(k)`` then the rest): the state carries over;
3. the Vars read back after the runs (``Var.get()``): each layer's state ``c``/``y``,
   ``events_emitted``, ``steps_run`` and, on the chip, ``chip_total_cycles``,
   ``chip_packets``, ``chip_macs``, ``chip_energy_j``; and the chip report of the Lava run;
4. the check: the logits, every layer's events and the final states of both Lava runs
   agree with :meth:`snn_egru.artifact.DeploymentArtifact.run_reference` (the numpy
   reference of ``snn_egru.reference``), and the Lava chip run's time per step with a
   direct run of the same mapping (``run_mapping``).

No torch is imported. The exit status is 1 when a backend disagrees with the reference.

How to run
----------
::

    .venv/bin/python examples/lava_graph.py --smoke           # a few seconds
    .venv/bin/python examples/lava_graph.py --layer-sizes 256 128 --steps 50 \\
        --weight-format event
    .venv/bin/python examples/lava_graph.py --handmade
    .venv/bin/python examples/lava_graph.py --artifact runs/example_lm/artifact.npz --steps 20

Expected output
---------------
Log lines on stderr; on stdout the Vars of each run and an agreement table. A ``--smoke``
run printed (lines shortened)::

    == floating_pt: Vars after 2 runs (6 + 2 steps) ==
    layer 0: units 24, steps_run 8, events_emitted 64
      c[:6] = [ 0.0129 -0.1023 -0.3673  0.0132  0.0622 -0.0588]
      y[:6] = [0.0129 0.     0.     0.0154 0.0718 0.    ]
    layer 1: units 16, steps_run 8, events_emitted 37
      ...
    == spinnaker2 (csr weights): Vars after 2 runs (6 + 2 steps) ==
    layer 0: units 24, steps_run 8, events_emitted 64, chip_total_cycles 149,435, chip_packets
      on chip 64 / chip to chip 0, chip_macs 9,216, chip_energy_j 3.312e-04
      c[:6] = [ 0.0129 -0.1023 -0.3673  0.0132  0.0622 -0.0588]
      ...
    chip report: 8 steps on 2 PEs: 223.5 us per step, 5.202 mJ per 70-step sequence at 0.332 W
    == agreement with snn_egru.reference (max |difference|) ==
    backend       logits    events    c         y
    floating_pt   0.0e+00   0.0e+00   0.0e+00   0.0e+00
    spinnaker2    0.0e+00   0.0e+00   0.0e+00   0.0e+00
    chip time per step: Lava 223.5 us, direct run_mapping 223.5 us
    all agree: yes
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from snn_egru.examples_support import (
    add_lava_run_arguments,
    check_files,
    example_parser,
    parse_example_args,
)

log = logging.getLogger("examples.lava_graph")

#: Largest |difference| from the reference accepted as agreement (float32 arithmetic).
AGREEMENT_TOLERANCE = 1e-4
#: Values of ``c`` and ``y`` printed per layer.
PRINT_UNITS = 6
#: ``--smoke``: small layers, few steps.
SMOKE = {"layer_sizes": [24, 16], "input_size": 8, "classes": 4, "steps": 8}


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help``)."""
    p = example_parser(__doc__, smoke="layers 24/16, 8 steps; mostly Lava start-up")
    src = p.add_argument_group("network")
    src.add_argument("--artifact", metavar="NPZ", help="a saved deployment artifact")
    src.add_argument(
        "--handmade", action="store_true", help="build the artifact from numpy arrays by hand"
    )
    src.add_argument("--layer-sizes", type=int, nargs="+", default=[64, 32])
    src.add_argument("--input-size", type=int, default=16, help="feature vector size")
    src.add_argument("--classes", type=int, default=5, help="outputs of the linear readout")
    src.add_argument(
        "--sparsity", type=float, default=0.5, help="weight sparsity of the synthetic network"
    )
    src.add_argument(
        "--threshold-mean", type=float, default=0.1, help="mean threshold (synthetic network)"
    )
    add_lava_run_arguments(p.add_argument_group("run"))
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject bad option values with a message naming the fix (exit status 2)."""
    if args.steps < 2:
        parser.error(f"--steps must be >= 2 (two runs of one session), got {args.steps}")
    if min(args.layer_sizes) < 1 or args.input_size < 1 or args.classes < 1:
        parser.error("--layer-sizes, --input-size and --classes must be >= 1")
    if not 0.0 <= args.sparsity < 1.0:
        parser.error(f"--sparsity must lie in [0, 1), got {args.sparsity}")
    if args.artifact is not None and args.handmade:
        parser.error("give --artifact or --handmade, not both")
    check_files(parser, args, "artifact")


# --------------------------------------------------------------------------- artifacts
def artifact_from_numpy(
    layer_sizes: list[int], input_size: int, classes: int, rng: np.random.Generator
) -> Any:
    """A features-in, linear-readout network written from numpy arrays.

    Layer ``l`` with ``H`` units and input size ``I`` holds (``torch.nn.GRU`` layout, gate
    order r, z, n): ``weight_ih (3H, I)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``,
    ``bias_hh (3H,)``, ``threshold (H,)``; weights ``N(0, 1/fan_in)``, thresholds
    ``U(0.05, 0.3)`` so that units fire now and then.
    """
    from snn_egru.artifact import DeploymentArtifact
    from snn_egru.reference import EGRUParams

    layers = []
    fan_in = input_size
    for hidden in layer_sizes:
        layers.append(
            EGRUParams(
                weight_ih=(rng.normal(size=(3 * hidden, fan_in)) / np.sqrt(fan_in)).astype(
                    np.float32
                ),
                weight_hh=(rng.normal(size=(3 * hidden, hidden)) / np.sqrt(hidden)).astype(
                    np.float32
                ),
                bias_ih=np.zeros(3 * hidden, dtype=np.float32),
                bias_hh=np.zeros(3 * hidden, dtype=np.float32),
                threshold=rng.uniform(0.05, 0.3, hidden).astype(np.float32),
            )
        )
        fan_in = hidden
    return DeploymentArtifact(
        layers=layers,
        input_kind="features",
        readout_kind="linear",
        readout_weight=(rng.normal(size=(classes, fan_in)) / np.sqrt(fan_in)).astype(np.float32),
        readout_bias=np.zeros(classes, dtype=np.float32),
        metadata={"source": "examples/lava_graph.py --handmade"},
    )


def make_artifact(args: argparse.Namespace, rng: np.random.Generator) -> Any:
    """The network to run (see ``--artifact`` / ``--handmade`` / synthetic)."""
    from snn_egru.artifact import load_artifact
    from spinnaker2_backend.synthetic import synthetic_network

    if args.artifact is not None:
        return load_artifact(args.artifact)
    if args.handmade:
        return artifact_from_numpy(args.layer_sizes, args.input_size, args.classes, rng)
    return synthetic_network(
        layer_sizes=args.layer_sizes,
        input_size=args.input_size,
        sparsity=args.sparsity,
        input_kind="features",
        readout_kind="linear",
        num_classes=args.classes,
        threshold_mean=args.threshold_mean,
        seed=args.seed,
    )


def make_inputs(artifact: Any, steps: int, rng: np.random.Generator) -> np.ndarray:
    """Random token ids ``(T,)`` or feature vectors ``(T, I)``, as the artifact takes."""
    if artifact.input_kind == "embedding":
        return rng.integers(0, artifact.embedding.shape[0], size=steps).astype(np.int64)
    return rng.normal(0.0, 1.0, size=(steps, artifact.input_size)).astype(np.float32)


# ---------------------------------------------------------------------------------- Lava
@dataclass
class LayerVars:
    """What one EGRULayer process's Vars hold after the runs (``Var.get()``)."""

    c: np.ndarray
    y: np.ndarray
    events_emitted: int
    steps_run: int
    chip: dict[str, Any]


@dataclass
class LavaRun:
    """One backend's outputs over both runs, the Vars, and (chip) the report."""

    backend: str
    runs: list[int]
    logits: np.ndarray | None
    layer_events: list[np.ndarray]
    layers: list[LayerVars]
    chip_run: Any = None


def run_graph(artifact: Any, inputs: np.ndarray, run_cfg: Any, *, timeout_s: float) -> LavaRun:
    """Build the EGRUNetwork process, run it in two runs, read every layer's Vars.

    The session stops the Lava runtime when the ``with`` block ends, also on errors.
    """
    from lava_procs.network.process import EGRUNetwork
    from lava_procs.run import LavaNetworkSession

    steps = len(inputs)
    runs = [steps - steps // 3, steps // 3]
    network = EGRUNetwork(artifact=artifact, inputs=inputs, record_events=True, name="egru_net")
    with LavaNetworkSession(network, run_cfg, timeout_s=timeout_s) as session:
        outputs = [session.run(n) for n in runs]  # the second run continues the first
        log.info(
            "%s: compiled and started in %.2f s, %d steps run",
            type(run_cfg).__name__,
            session.startup_s,
            session.steps_done,
        )
        layers = []
        for process in network.layer_processes():
            chip = {}
            if session.on_chip:
                packets = process.chip_packets.get()
                chip = {
                    "chip_total_cycles": float(process.chip_total_cycles.get()[0]),
                    "chip_packets_on_chip": int(packets[0]),
                    "chip_packets_chip_to_chip": int(packets[1]),
                    "chip_macs": int(process.chip_macs.get()[0]),
                    "chip_energy_j": float(process.chip_energy_j.get()[0]),
                }
            layers.append(
                LayerVars(
                    c=np.asarray(process.c.get()),
                    y=np.asarray(process.y.get()),
                    events_emitted=int(process.events_emitted.get()[0]),
                    steps_run=int(process.steps_run.get()[0]),
                    chip=chip,
                )
            )
        logits = None
        if outputs[0].logits is not None:
            logits = np.concatenate([o.logits for o in outputs])
        events = [
            np.concatenate([o.layer_events[i] for o in outputs]) for i in range(artifact.num_layers)
        ]
        chip_run = None
        if session.on_chip:
            chip_run = session.chip_run(states=session.layer_states())
    backend = "spinnaker2" if chip_run is not None else "floating_pt"
    return LavaRun(backend, runs, logits, events, layers, chip_run)


# -------------------------------------------------------------------------------- report
def _values(array: np.ndarray) -> str:
    shown = np.asarray(array, dtype=np.float64)[:PRINT_UNITS] + 0.0  # -0.0 prints as 0.0
    return np.array2string(shown, precision=4, suppress_small=True)


def format_vars(result: LavaRun, title: str) -> str:
    """The Vars read after the runs, layer by layer."""
    runs = " + ".join(map(str, result.runs))
    lines = [f"== {title}: Vars after {len(result.runs)} runs ({runs} steps) =="]
    for i, layer in enumerate(result.layers):
        line = (
            f"layer {i}: units {layer.c.shape[0]}, steps_run {layer.steps_run}, "
            f"events_emitted {layer.events_emitted}"
        )
        if layer.chip:
            line += (
                f", chip_total_cycles {layer.chip['chip_total_cycles']:,.0f}, chip_packets on "
                f"chip {layer.chip['chip_packets_on_chip']:,} / chip to chip "
                f"{layer.chip['chip_packets_chip_to_chip']:,}, chip_macs "
                f"{layer.chip['chip_macs']:,}, chip_energy_j {layer.chip['chip_energy_j']:.3e}"
            )
        lines += [line, f"  c[:{PRINT_UNITS}] = {_values(layer.c)}"]
        lines.append(f"  y[:{PRINT_UNITS}] = {_values(layer.y)}")
    if result.chip_run is not None:
        report = result.chip_run.report()
        lines.append(
            f"chip report: {report.steps} steps on {report.num_pes} PEs: "
            f"{report.seconds_per_token * 1e6:.1f} us per step, "
            f"{report.energy_per_sequence_j * 1e3:.4g} mJ per {report.sequence_tokens}-step "
            f"sequence at {report.average_power_w:.3f} W"
        )
    return "\n".join(lines)


def differences(result: LavaRun, reference: Any) -> dict[str, float]:
    """Largest |Lava - reference| of logits, events and the final c and y, over all layers."""
    events = max(
        float(np.max(np.abs(a - b), initial=0.0))
        for a, b in zip(result.layer_events, reference.layer_events)
    )
    c = max(
        float(np.max(np.abs(layer.c - state.c), initial=0.0))
        for layer, state in zip(result.layers, reference.states)
    )
    y = max(
        float(np.max(np.abs(layer.y - state.y), initial=0.0))
        for layer, state in zip(result.layers, reference.states)
    )
    out = {"events": events, "c": c, "y": y}
    if reference.logits is not None and result.logits is not None:
        out["logits"] = float(np.max(np.abs(result.logits - reference.logits)))
    return out


def reference_run(artifact: Any, inputs: np.ndarray) -> Any:
    """``artifact.run_reference`` (a trace readout is compared on events and states only)."""
    import dataclasses

    if artifact.readout_source == "trace":
        artifact = dataclasses.replace(
            artifact,
            readout_kind="none",
            readout_weight=None,
            readout_bias=None,
            readout_source="y",
        )
    return artifact.run_reference(inputs)


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the example; returns 0 when both backends agree with the reference, else 1."""
    args = parse_example_args(build_parser(), argv, check=check_args, smoke=SMOKE)
    # Lava first (it sets the multiprocessing start method), then the numpy work.
    from lava_procs.run_configs import ChipOptions, FloatingPtSimCfg, SpiNNaker2SimCfg
    from spinnaker2_backend.simulator import run_mapping

    rng = np.random.default_rng(args.seed)
    artifact = make_artifact(args, rng)
    inputs = make_inputs(artifact, args.steps, rng)
    log.info(
        "network: %s input %d -> layers %s -> %s readout; %d steps",
        artifact.input_kind,
        artifact.input_size,
        "/".join(map(str, artifact.layer_sizes)),
        artifact.readout_kind,
        args.steps,
    )
    reference = reference_run(artifact, inputs)

    float_run = run_graph(artifact, inputs, FloatingPtSimCfg(), timeout_s=args.timeout)
    chip_cfg = SpiNNaker2SimCfg(chip=ChipOptions(weight_format=args.weight_format))
    chip_run = run_graph(artifact, inputs, chip_cfg, timeout_s=args.timeout)
    direct = run_mapping(chip_cfg.mapping_for(artifact), inputs)

    print(format_vars(float_run, "floating_pt"))
    print(format_vars(chip_run, f"spinnaker2 ({args.weight_format} weights)"))
    rows = {run.backend: differences(run, reference) for run in (float_run, chip_run)}
    columns = [name for name in ("logits", "events", "c", "y") if name in rows["floating_pt"]]
    print("== agreement with snn_egru.reference (max |difference|) ==")
    print((f"{'backend':<14}" + "".join(f"{name:<10}" for name in columns)).rstrip())
    for backend, diffs in rows.items():
        print((f"{backend:<14}" + "".join(f"{diffs[name]:<10.1e}" for name in columns)).rstrip())
    lava_time = chip_run.chip_run.seconds_per_token
    print(
        f"chip time per step: Lava {lava_time * 1e6:.1f} us, direct run_mapping "
        f"{direct.seconds_per_token * 1e6:.1f} us"
    )
    worst = max(max(diffs.values()) for diffs in rows.values())
    agree = worst <= AGREEMENT_TOLERANCE and np.isclose(
        lava_time, direct.seconds_per_token, rtol=1e-9
    )
    print(f"all agree: {'yes' if agree else 'NO'}")
    if not agree:
        log.error(
            "a backend differs from the reference by %.2e (tolerance %.0e) or the chip times "
            "differ",
            worst,
            AGREEMENT_TOLERANCE,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
