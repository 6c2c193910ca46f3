"""The simulated chip computes exactly the numpy reference, and counts what the PEs do.

Cross-checks: outputs and events against :mod:`snn_egru.reference` (hypothesis-generated
networks, all weight formats, float64 exact, float32 within rounding); per-PE counts against
the mapping's own encoded weights (``weights_touched``) and routes (loops over PEs here, the
simulator is vectorised); per-layer simulators summing to the network run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import TRACE_DECAY, EGRUParams, EGRUState, egru_step
from spinnaker2_backend import Machine, Mapping, map_network
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.simulator import (
    LayerSimulator,
    NetworkSimulator,
    run_mapping,
)
from spinnaker2_backend.timing import OP_INDEX, PHASE_INDEX


def random_artifact(
    rng: np.random.Generator,
    layer_sizes,
    input_size: int,
    *,
    sparsity: float,
    dtype=np.float64,
    threshold_high: float = 0.4,
    readout: str = "linear",
    sparse_storage: bool = True,
) -> DeploymentArtifact:
    """A random pruned EGRU stack with lively activity (weights N(0, 1/sqrt(fan_in)))."""
    layers = []
    fan_in = input_size
    for h in layer_sizes:
        mats = []
        for cols in (fan_in, h):
            w = rng.standard_normal((3 * h, cols)) * (1.5 / np.sqrt(max(cols * (1 - sparsity), 1)))
            w[rng.random(w.shape) < sparsity] = 0.0
            w = w.astype(dtype)
            mats.append(sp.csr_matrix(w) if sparse_storage else w)
        layers.append(
            EGRUParams(
                weight_ih=mats[0],
                weight_hh=mats[1],
                bias_ih=(0.3 * rng.standard_normal(3 * h)).astype(dtype),
                bias_hh=(0.3 * rng.standard_normal(3 * h)).astype(dtype),
                threshold=rng.uniform(0.0, threshold_high, h).astype(dtype),
            )
        )
        fan_in = h
    kwargs = {}
    if readout == "linear":
        kwargs = dict(
            readout_kind="linear",
            readout_weight=rng.standard_normal((5, layer_sizes[-1])).astype(dtype),
            readout_bias=rng.standard_normal(5).astype(dtype),
        )
    return DeploymentArtifact(layers=layers, input_kind="features", **kwargs)


def mapped_random_network(
    seed: int,
    layer_sizes: tuple[int, ...],
    input_size: int,
    steps: int,
    *,
    sparsity: float,
    **map_options,
) -> tuple[DeploymentArtifact, Mapping, np.ndarray]:
    """A float32 :func:`random_artifact`, its mapping (``map_network(**map_options)``) and
    ``steps`` float32 inputs, all drawn from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    artifact = random_artifact(rng, layer_sizes, input_size, sparsity=sparsity, dtype=np.float32)
    mapping = map_network(artifact, **map_options)
    xs = rng.standard_normal((steps, input_size)).astype(np.float32)
    return artifact, mapping, xs


def reference_states(artifact: DeploymentArtifact, xs: np.ndarray):
    """Per step, per layer ``(y, c, c_tilde)`` of the reference."""
    states = artifact.initial_states(dtype=xs.dtype)
    out = []
    for x in xs:
        inp, step = x, []
        for i, layer in enumerate(artifact.layers):
            inp, states[i] = egru_step(inp, states[i], layer)
            o = (inp != 0).astype(xs.dtype)
            step.append((inp, states[i].c, states[i].c + o * layer.threshold))
        out.append(step)
    return out


# --------------------------------------------------------------------- exact numerics


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**31 - 1),
    layer_sizes=st.lists(st.integers(1, 24), min_size=1, max_size=3),
    input_size=st.integers(1, 20),
    sparsity=st.sampled_from([0.0, 0.5, 0.8, 0.95]),
    units_per_pe=st.integers(1, 9),
    weight_format=st.sampled_from(["csr", "event", "dense"]),
    sparse_storage=st.booleans(),
)
def test_float64_outputs_and_events_equal_the_reference(
    seed, layer_sizes, input_size, sparsity, units_per_pe, weight_format, sparse_storage
):
    rng = np.random.default_rng(seed)
    artifact = random_artifact(
        rng, layer_sizes, input_size, sparsity=sparsity, sparse_storage=sparse_storage
    )
    mapping = map_network(artifact, weight_format=weight_format, max_units_per_pe=units_per_pe)
    xs = rng.standard_normal((200, input_size))
    run = run_mapping(mapping, xs, dtype=np.float64)
    ref = artifact.run_reference(xs)
    for got, want in zip(run.layer_events, ref.layer_events):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got != 0, want != 0)  # identical event patterns
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(run.logits, ref.logits, rtol=0, atol=1e-11)
    for state, want in zip(run.states, ref.states):
        np.testing.assert_allclose(state.c, want.c, rtol=0, atol=1e-12)
    # counts agree with the outputs
    events = run.step_counts("events")
    for layer, got in enumerate(run.layer_events):
        np.testing.assert_array_equal(events[:, layer], np.count_nonzero(got, axis=1))


@pytest.mark.parametrize("weight_format", ["csr", "event"])
def test_float32_sparse_formats_are_bit_identical_over_hundreds_of_steps(weight_format):
    """csr uses the reference's own CSR product; the event kernel sums the same terms in the
    same order per row: both reproduce the float32 reference bit for bit."""
    artifact, mapping, xs = mapped_random_network(
        3, (30, 25, 12), 16, 300, sparsity=0.8, weight_format=weight_format, max_units_per_pe=7
    )
    run = run_mapping(mapping, xs)
    ref = artifact.run_reference(xs)
    for got, want in zip(run.layer_events, ref.layer_events):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        assert 0.05 < np.mean(got != 0) < 0.95  # a lively network: the test means something


def test_float32_dense_within_rounding_events_agree_except_at_threshold():
    """Dense products (BLAS) round differently: compare each step from the reference's state;
    events must agree except for units within float32 rounding of their threshold."""
    artifact, mapping, xs = mapped_random_network(
        4, (32, 20), 24, 250, sparsity=0.3, weight_format="dense", max_units_per_pe=6
    )
    ref = reference_states(artifact, xs)
    sim = NetworkSimulator(mapping)
    states = artifact.initial_states()
    near_threshold = 0
    for t, x in enumerate(xs):
        sim.set_states(states)
        result = sim.step(x)
        for i, layer_result in enumerate(result.layers):
            y_ref, c_ref, c_tilde = ref[t][i]
            theta = artifact.layers[i].threshold
            # same input as the reference for the next layer's comparison
            close = np.abs(c_tilde - theta) <= 1e-5 * np.maximum(1.0, np.abs(theta))
            disagree = (layer_result.y != 0) != (y_ref != 0)
            assert not np.any(disagree & ~close), f"step {t} layer {i}"
            near_threshold += int(np.sum(disagree))
            ok = ~disagree
            np.testing.assert_allclose(layer_result.y[ok], y_ref[ok], rtol=1e-5, atol=1e-6)
        states = [
            EGRUState(c=ref[t][i][1], y=ref[t][i][0], trace=None)
            for i in range(len(artifact.layers))
        ]
    assert near_threshold <= 2


# ----------------------------------------------------------------------- per-PE counts


def test_per_pe_counts_match_encoded_weights_and_routes():
    rng = np.random.default_rng(5)
    artifact = random_artifact(rng, (20, 14), 9, sparsity=0.7, dtype=np.float64)
    for weight_format in ("csr", "event", "dense"):
        mapping = map_network(artifact, weight_format=weight_format, max_units_per_pe=4)
        sims = [LayerSimulator(mapping, i, dtype=np.float64) for i in range(2)]
        x = rng.standard_normal(9)
        x[rng.random(9) < 0.3] = 0.0
        for _ in range(5):  # a few steps so that y_{t-1} is not zero
            inputs = [x]
            results = []
            y_prev = [s.state.y for s in sims]
            for sim in sims:
                results.append(sim.step(inputs[-1]))
                inputs.append(results[-1].y)
            for layer, result in enumerate(results):
                placement = mapping.layers[layer]
                for p, s in enumerate(placement.slices):
                    pw = mapping.pe_weights(layer, s)
                    ops = result.ops[:, p]
                    assert ops[OP_INDEX["input_weights"]] == pw.weight_ih.weights_touched(
                        inputs[layer]
                    )
                    assert ops[OP_INDEX["recurrent_weights"]] == pw.weight_hh.weights_touched(
                        y_prev[layer]
                    )
                    fired = np.count_nonzero(result.y[s.unit_start : s.unit_stop])
                    assert ops[OP_INDEX["events"]] == fired
                    route = mapping.routes[s.pe]
                    assert ops[OP_INDEX["packets_sent"]] == fired * len(route.targets)
                    assert ops[OP_INDEX["packet_hops"]] == fired * sum(
                        t.noc_hops for t in route.targets
                    )
                    # received: every source slice (this layer now, the layer before now)
                    # whose multicast targets include this PE, one packet per event
                    received = 0
                    sources = [(result.y, placement.slices)]
                    if layer > 0:
                        sources.append((inputs[layer], mapping.layers[layer - 1].slices))
                    for values, slices in sources:
                        for src in slices:
                            if any(s.pe in t.pes for t in mapping.routes[src.pe].targets):
                                received += np.count_nonzero(values[src.unit_start : src.unit_stop])
                    assert ops[OP_INDEX["packets_received"]] == received
                    if layer == 0:
                        assert ops[OP_INDEX["dram_bytes"]] == 4 * 9
                    assert result.cycles["recurrent_product"][p] == pytest.approx(
                        result.phase_cycles[PHASE_INDEX["recurrent_product"], p]
                    )
                assert result.layer_cycles == pytest.approx(result.busy_cycles.max())


def test_event_layout_equals_csr_and_is_faster_when_activity_is_sparse():
    rng = np.random.default_rng(6)
    xs = rng.standard_normal((60, 40)).astype(np.float32)
    cycles = {}
    for label, threshold_high in (("lively", 0.3), ("sparse", 3.0)):
        artifact = random_artifact(  # same weights, thresholds scaled
            np.random.default_rng(60),
            (60, 60),
            40,
            sparsity=0.8,
            dtype=np.float32,
            threshold_high=threshold_high,
        )
        runs = {
            fmt: run_mapping(map_network(artifact, weight_format=fmt, max_units_per_pe=10), xs)
            for fmt in ("csr", "event")
        }
        for a, b in zip(runs["csr"].layer_events, runs["event"].layer_events):
            np.testing.assert_array_equal(a, b)
        cycles[label] = {
            fmt: run.profile.critical_phase_seconds()["recurrent_product"]
            for fmt, run in runs.items()
        }
        cycles[label]["activity"] = np.mean(runs["csr"].activity())
        cycles[label]["total"] = {fmt: run.seconds for fmt, run in runs.items()}
    assert cycles["sparse"]["activity"] < 0.1 < cycles["lively"]["activity"]
    # csr walks every stored weight: its recurrent product does not depend on activity
    assert cycles["sparse"]["csr"] == pytest.approx(cycles["lively"]["csr"], rel=1e-9)
    # the event layout walks only the columns of units that fired
    assert cycles["sparse"]["event"] < 0.25 * cycles["sparse"]["csr"]
    assert cycles["sparse"]["event"] < cycles["lively"]["event"]
    assert cycles["sparse"]["total"]["event"] < cycles["sparse"]["total"]["csr"]


def test_host_input_and_chip_to_chip_packets():
    rng = np.random.default_rng(13)
    artifact = random_artifact(rng, (90, 80), 7, sparsity=0.5, dtype=np.float32)
    xs = rng.standard_normal((6, 7)).astype(np.float32)
    mapping = map_network(
        artifact, max_units_per_pe=1, machine=Machine(chips=2), input_source="host"
    )
    assert {s.chip for s in mapping.slices} == {0, 1}
    run = run_mapping(mapping, xs)
    first = run.counters.layers[0]
    assert first.dram_bytes == 0
    # every layer-0 PE receives the 7 input values from the host as packets
    assert np.all(first.per_pe("packets_received") >= 6 * 7)
    expected_chip = 0
    for layer, placement in enumerate(mapping.layers):
        for s in placement.slices:
            fired = np.count_nonzero(run.layer_events[layer][:, s.unit_start : s.unit_stop])
            expected_chip += fired * sum(t.chip_hops > 0 for t in mapping.routes[s.pe].targets)
    assert run.counters.total("packets_sent_chip") == expected_chip > 0
    assert run.counters.summary()["packets_chip_to_chip"] == expected_chip
    assert run.energy.chip_link_j > 0 and run.num_chips == 2
    assert run.profile.layer_tails.max() >= CycleCosts().chip_link_cycles


# -------------------------------------------------------------- composition and state


def test_per_layer_simulators_sum_to_the_network_run():
    artifact, mapping, xs = mapped_random_network(
        7, (18, 15, 9), 11, 40, sparsity=0.6, weight_format="event", max_units_per_pe=5
    )
    run = run_mapping(mapping, xs)
    inputs = xs
    for layer in range(3):
        sim = LayerSimulator(mapping, layer)  # one per Lava process
        ys, ops = [], []
        for x in inputs:
            result = sim.step(x)
            ys.append(result.y)
            ops.append(result.ops)
        ys = np.stack(ys)
        np.testing.assert_array_equal(ys, run.layer_events[layer])
        np.testing.assert_array_equal(np.stack(ops), run.step_ops[layer])
        counters = run.counters.layers[layer]
        np.testing.assert_array_equal(sim.counters.ops, counters.ops)
        np.testing.assert_array_equal(sim.counters.phase_cycles, counters.phase_cycles)
        assert sim.counters.layer_cycles == counters.layer_cycles
        assert sim.counters.summary() == counters.summary()
        inputs = ys
    for name in ("events", "packets_sent", "packets_received", "macs", "dram_bytes"):
        assert run.counters.total(name) == sum(c.total(name) for c in run.counters.layers)
    totals = run.step_totals.sum(axis=0)  # (L, OPS)
    for layer, counters in enumerate(run.counters.layers):
        np.testing.assert_allclose(totals[layer], counters.ops.sum(axis=1))


def test_continuing_from_states_equals_one_long_run_and_reset_zeroes():
    artifact, mapping, xs = mapped_random_network(
        8, (12, 10), 6, 30, sparsity=0.5, max_units_per_pe=4
    )
    whole = run_mapping(mapping, xs)
    first = run_mapping(mapping, xs[:13])
    second = run_mapping(mapping, xs[13:], states=first.states)
    for layer in range(2):
        joined = np.concatenate([first.layer_events[layer], second.layer_events[layer]])
        np.testing.assert_array_equal(joined, whole.layer_events[layer])
    assert first.counters.total("events") + second.counters.total("events") == (
        whole.counters.total("events")
    )
    sim = LayerSimulator(mapping, 0)
    sim.step(xs[0])
    assert sim.counters.steps == 1 and sim.counters.total("macs") > 0
    sim.reset()
    assert sim.counters.steps == 0 and sim.counters.total("macs") == 0
    assert not np.any(sim.state.c) and not np.any(sim.state.y)


def test_pipelined_is_faster_with_the_same_outputs():
    artifact, mapping, xs = mapped_random_network(
        9, (20, 20, 20), 10, 25, sparsity=0.7, max_units_per_pe=5
    )
    sequential = run_mapping(mapping, xs)
    pipelined = run_mapping(mapping, xs, pipelined=True)
    for a, b in zip(sequential.layer_events, pipelined.layer_events):
        np.testing.assert_array_equal(a, b)
    assert pipelined.seconds < 0.6 * sequential.seconds
    # the pipeline is no faster than its slowest layer
    slowest_layer = sequential.profile.layer_cycles.sum(axis=0).max() / sequential.clock_hz
    assert pipelined.seconds >= slowest_layer


def test_readout_on_host_and_on_chip():
    artifact, mapping, xs = mapped_random_network(
        10, (16, 12), 8, 20, sparsity=0.5, max_units_per_pe=4
    )
    host = run_mapping(mapping, xs)
    chip = run_mapping(mapping, xs, readout="chip")
    np.testing.assert_allclose(host.logits, artifact.run_reference(xs).logits, atol=1e-5)
    np.testing.assert_array_equal(host.logits, chip.logits)
    assert host.profile.critical_phase_seconds()["readout"] == 0.0
    assert chip.profile.critical_phase_seconds()["readout"] > 0.0
    last = chip.counters.layers[-1]
    fired = chip.step_counts("events")[:, -1].sum()
    assert last.total("readout_macs") == 5 * fired  # 5 outputs split over the PEs
    assert chip.counters.total("readout_dram_bytes") > 0
    assert chip.seconds > host.seconds and chip.energy.total_j > host.energy.total_j


def test_trace_readout_follows_the_reference_trace():
    rng = np.random.default_rng(11)
    artifact = random_artifact(rng, (10, 8), 5, sparsity=0.4, dtype=np.float64)
    artifact = dataclasses.replace(artifact, readout_source="trace")
    mapping = map_network(artifact, max_units_per_pe=3)
    xs = rng.standard_normal((15, 5))
    run = run_mapping(mapping, xs, dtype=np.float64)
    states = artifact.initial_states(dtype=np.float64)
    traces = []
    for x in xs:
        inp = x
        for i, layer in enumerate(artifact.layers):
            inp, states[i] = egru_step(inp, states[i], layer)
        traces.append(states[-1].trace)
    np.testing.assert_allclose(run.logits, artifact.readout(np.stack(traces)), atol=1e-12)
    assert TRACE_DECAY == 0.9
    assert run.counters.layers[-1].total("trace_units") == 15 * 8
    assert run.counters.layers[0].total("trace_units") == 0


# ---------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(12)
    artifact = random_artifact(rng, (6,), 4, sparsity=0.0, readout="none", dtype=np.float32)
    mapping = map_network(artifact)
    sim = LayerSimulator(mapping, 0)
    with pytest.raises(ValueError, match=r"takes an input of shape \(4,\)"):
        sim.step(np.zeros(5, dtype=np.float32))
    with pytest.raises(TypeError, match="floating point"):
        sim.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="state.c must have shape"):
        sim.set_state(EGRUState(c=np.zeros(3), y=np.zeros(6)))
    with pytest.raises(IndexError, match="out of range"):
        LayerSimulator(mapping, 1)
    with pytest.raises(ValueError, match="float32 .* or float64"):
        LayerSimulator(mapping, 0, dtype=np.float16)
    with pytest.raises(ValueError, match="tick_us must be a positive"):
        LayerSimulator(mapping, 0, tick_us=0)
    with pytest.raises(ValueError, match="readout='chip' needs a network with a readout"):
        run_mapping(mapping, rng.standard_normal((2, 4)), readout="chip")
    with pytest.raises(ValueError, match="readout must be one of host, chip"):
        run_mapping(mapping, rng.standard_normal((2, 4)), readout="gpu")
    with pytest.raises(ValueError, match=r"feature vectors of shape \(T, 4\)"):
        run_mapping(mapping, rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match="needs a Mapping"):
        LayerSimulator(artifact, 0)
