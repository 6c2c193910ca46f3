"""EGRU layers in a hand-wired Lava graph with Lava's stock processes, on both run configs.

What it shows (for Lava users)
------------------------------
A graph wired by hand from ``lava.proc`` processes and ours::

    RingBuffer --> EGRULayer "l0" --> EGRULayer "l1" --+--> Monitor (l1.y_out)
    (features)                                         +--> Dense (identity,
                                                            num_message_bits=24) --> LIF
                                                                           Monitor (LIF.v)

and an :class:`lava_procs.network.process.EGRUNetwork` used through its ports (a
``RingBuffer`` feeds ``x_in``, a ``Monitor`` probes ``logits_out``), each run

* with Lava's own ``Loihi2SimCfg(select_tag="floating_pt")``: every process runs its
  floating-point model, the EGRU layers the numpy reference;
* with :class:`lava_procs.run_configs.SpiNNaker2SimCfg`: the EGRU layers run their PEs of
  the simulated SpiNNaker2 chip (the two hand-wired layers mapped together, ``l0``'s events
  sent to ``l1`` as NoC packets), the stock processes fall back to their floating-point
  models.

Step alignment: a ``RingBuffer`` sends its ``k``-th column at Lava time step ``k + 1``; an
EGRU layer sends its events in the step it receives its input (no delay); a stock
``Dense`` sends at step ``t`` what it received at step ``t - 1`` (one step of delay).
With ``num_message_bits > 0`` the Dense keeps the graded event values; with ``0`` it sees
each event as a 1.

Each graph is started with :func:`lava_procs.run.running_graph` (stopped when the block
ends, also on errors) and run with :func:`lava_procs.run.run_steps` (with a time limit; a
model's error is raised with its own message). The script checks the EGRU events, the
delayed graded values, the LIF voltage and the logits against numpy, and exits 1 when
anything disagrees. No torch is imported.

How to run
----------
::

    .venv/bin/python examples/lava_stock_graph.py --smoke     # a few seconds
    .venv/bin/python examples/lava_stock_graph.py --steps 50 --hidden 64 32

Expected output
---------------
Log lines on stderr. A ``--smoke`` run printed (model lists shortened)::

    == Loihi2SimCfg(select_tag='floating_pt') ==
    models: l0 PyEGRULayerFloat, l1 PyEGRULayerFloat, RingBuffer PySendModelFloat, Dense ...
    events emitted: l0 22, l1 4
      max |events (l1) vs numpy|: 0.0e+00
      max |Dense output vs events one step earlier|: 0.0e+00
      max |LIF v vs numpy LIF|: 0.0e+00
      max |EGRUNetwork logits_out vs numpy|: 0.0e+00
      graded (0 < value < 1) Dense outputs: 3
    == SpiNNaker2SimCfg(weight_format='csr') ==
    models: l0 PyEGRULayerSpiNNaker2, l1 PyEGRULayerSpiNNaker2, RingBuffer PySendModelFloat, ...
    events emitted: l0 22, l1 4
    chip: l0 and l1 mapped together on 2 PEs; packets on chip l0 22, l1 0
      max |events (l1) vs numpy|: 1.5e-08
      max |Dense output vs events one step earlier|: 0.0e+00
      max |LIF v vs numpy LIF|: 0.0e+00
      max |EGRUNetwork logits_out vs numpy|: 9.3e-09
      graded (0 < value < 1) Dense outputs: 3
    all agree: yes
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from snn_egru.examples_support import add_lava_run_arguments, example_parser, parse_example_args

log = logging.getLogger("examples.lava_stock_graph")

#: Largest |difference| from numpy accepted as agreement (float32 arithmetic on the chip).
TOLERANCE = 1e-4
#: ``--smoke``: tiny layers, few steps.
SMOKE = {"steps": 8, "hidden": [6, 5], "input_size": 4}
#: LIF parameters of the stock LIF process.
LIF_PARAMS = {"du": 1.0, "dv": 0.5, "vth": 0.3}


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help``)."""
    p = example_parser(__doc__, smoke="layers 6/5, 8 steps; mostly Lava start-up")
    p.add_argument("--hidden", type=int, nargs=2, default=[32, 16], help="units of l0, l1")
    p.add_argument("--input-size", type=int, default=8, help="feature vector size")
    add_lava_run_arguments(p)
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject bad option values with a message naming the fix (exit status 2)."""
    if args.steps < 2:
        parser.error(f"--steps must be >= 2 (the Dense delay needs two), got {args.steps}")
    if min(args.hidden) < 1 or args.input_size < 1:
        parser.error("--hidden and --input-size must be >= 1")


def make_layers(hidden: list[int], input_size: int, rng: np.random.Generator) -> list[Any]:
    """Two float32 EGRU layers (``torch.nn.GRU`` layout) whose units fire now and then."""
    from snn_egru.reference import EGRUParams

    layers, fan_in = [], input_size
    for units in hidden:
        layers.append(
            EGRUParams(
                weight_ih=(rng.normal(size=(3 * units, fan_in)) * 2 / np.sqrt(fan_in)).astype(
                    np.float32
                ),
                weight_hh=(rng.normal(size=(3 * units, units)) * 2 / np.sqrt(units)).astype(
                    np.float32
                ),
                bias_ih=rng.normal(0.0, 0.3, 3 * units).astype(np.float32),
                bias_hh=rng.normal(0.0, 0.3, 3 * units).astype(np.float32),
                threshold=rng.uniform(0.0, 0.2, units).astype(np.float32),
            )
        )
        fan_in = units
    return layers


def run_hand_wired(layers: list[Any], features: np.ndarray, run_cfg: Any, timeout: float) -> dict:
    """Build the hand-wired graph, run it, read the Monitors and Vars (graph stopped after)."""
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    from lava_procs.egru_layer.process import EGRULayer
    from lava_procs.io.process import HostSink
    from lava_procs.run import run_steps, running_graph

    steps = len(features)
    source = RingBuffer(data=features.T.astype(np.float64))
    l0 = EGRULayer.from_params(layers[0], name="l0")
    l1 = EGRULayer.from_params(layers[1], name="l1")
    units = layers[1].hidden_size
    dense = Dense(weights=np.eye(units), num_message_bits=24, name="Dense")
    lif = LIF(shape=(units,), name="LIF", **LIF_PARAMS)
    delayed = HostSink(shape=(units,), name="delayed")  # what Dense sends, per step
    source.s_out.connect(l0.x_in)
    l0.y_out.connect(l1.x_in)
    l1.y_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    dense.a_out.connect(delayed.data_in)
    events_monitor = Monitor()
    events_monitor.probe(l1.y_out, steps)
    v_monitor = Monitor()
    v_monitor.probe(lif.v, steps)
    with running_graph(source, run_cfg) as graph:
        run_steps(graph, steps, timeout_s=timeout)
        out = {
            "events": events_monitor.get_data()[l1.name]["y_out"],
            "v": v_monitor.get_data()[lif.name]["v"],
            "delayed": delayed.take(steps, timeout_s=timeout)[1],
            "models": {
                label: p.model_class.__name__
                for label, p in (
                    ("l0", l0),
                    ("l1", l1),
                    ("RingBuffer", source),
                    ("Dense", dense),
                    ("LIF", lif),
                    ("Monitor", v_monitor),
                )
            },
            "packets": [int(p.chip_packets.get()[0]) for p in (l0, l1)],
            "events_emitted": [int(p.events_emitted.get()[0]) for p in (l0, l1)],
        }
    return out


def run_network_ports(artifact: Any, features: np.ndarray, run_cfg: Any, timeout: float) -> Any:
    """EGRUNetwork without its own source/sinks: RingBuffer -> x_in, logits_out -> Monitor."""
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    from lava_procs.network.process import EGRUNetwork
    from lava_procs.run import run_steps, running_graph

    network = EGRUNetwork(artifact=artifact, record_events=False, record_logits=False, name="net")
    source = RingBuffer(data=features.T.astype(np.float64))
    source.s_out.connect(network.x_in)
    monitor = Monitor()
    monitor.probe(network.logits_out, len(features))
    with running_graph(source, run_cfg) as graph:
        run_steps(graph, len(features), timeout_s=timeout)
        return monitor.get_data()[network.name]["logits_out"]


def main(argv: list[str] | None = None) -> int:
    """Run the example; 0 when everything agrees with numpy, else 1."""
    args = parse_example_args(build_parser(), argv, check=check_args, smoke=SMOKE)
    # Lava first (it sets the multiprocessing start method), then the numpy work.
    from lava.magma.core.run_configs import Loihi2SimCfg

    from lava_procs.graph import lif_float_reference
    from lava_procs.run_configs import SpiNNaker2SimCfg
    from snn_egru.artifact import DeploymentArtifact
    from snn_egru.reference import egru_sequence

    rng = np.random.default_rng(args.seed)
    layers = make_layers(args.hidden, args.input_size, rng)
    features = rng.normal(size=(args.steps, args.input_size)).astype(np.float32)
    want0, _ = egru_sequence(features, layers[0])
    want1, _ = egru_sequence(want0, layers[1])
    readout = (rng.normal(size=(3, args.hidden[1])) / np.sqrt(args.hidden[1])).astype(np.float32)
    artifact = DeploymentArtifact(
        layers=layers, input_kind="features", readout_kind="linear", readout_weight=readout
    )
    want_logits = artifact.run_reference(features).logits

    worst = 0.0
    for run_cfg, title in (
        (Loihi2SimCfg(select_tag="floating_pt"), "Loihi2SimCfg(select_tag='floating_pt')"),
        (
            SpiNNaker2SimCfg(weight_format=args.weight_format),
            f"SpiNNaker2SimCfg(weight_format={args.weight_format!r})",
        ),
    ):
        got = run_hand_wired(layers, features, run_cfg, args.timeout)
        fresh_cfg = type(run_cfg)(**_same_options(run_cfg))  # a run config serves one graph
        logits = run_network_ports(artifact, features, fresh_cfg, args.timeout)
        print(f"== {title} ==")
        print("models: " + ", ".join(f"{name} {model}" for name, model in got["models"].items()))
        print(f"events emitted: l0 {got['events_emitted'][0]}, l1 {got['events_emitted'][1]}")
        if isinstance(run_cfg, SpiNNaker2SimCfg):
            [network] = run_cfg.networks
            mapping = network.mapping
            names = " and ".join(layer.name for layer in network.layers)
            print(
                f"chip: {names} mapped together on {sum(len(m.pes) for m in mapping.layers)} "
                f"PEs; packets on chip l0 {got['packets'][0]:,}, l1 {got['packets'][1]:,}"
            )
        diffs = {
            "events (l1) vs numpy": float(np.max(np.abs(got["events"] - want1))),
            "Dense output vs events one step earlier": float(
                np.max(np.abs(got["delayed"][1:] - got["events"][:-1]))
                + np.max(np.abs(got["delayed"][0]))
            ),
            "LIF v vs numpy LIF": float(
                np.max(np.abs(got["v"] - lif_float_reference(got["delayed"], **LIF_PARAMS)))
            ),
            "EGRUNetwork logits_out vs numpy": float(np.max(np.abs(logits - want_logits))),
        }
        graded = int(np.count_nonzero((got["delayed"] > 0) & (got["delayed"] < 1)))
        for name, value in diffs.items():
            print(f"  max |{name}|: {value:.1e}")
        print(f"  graded (0 < value < 1) Dense outputs: {graded}")
        worst = max(worst, *diffs.values())
    agree = worst <= TOLERANCE
    print(f"all agree: {'yes' if agree else 'NO'}")
    if not agree:
        log.error("largest difference %.2e exceeds %.0e", worst, TOLERANCE)
        return 1
    return 0


def _same_options(run_cfg: Any) -> dict:
    """Keywords that rebuild ``run_cfg`` (a run config is used for one graph)."""
    from lava_procs.run_configs import SpiNNaker2SimCfg

    if isinstance(run_cfg, SpiNNaker2SimCfg):
        return {"chip": run_cfg.chip}
    return {"select_tag": run_cfg.select_tag}


if __name__ == "__main__":
    raise SystemExit(main())
