"""Lava graphs with the ``spinnaker2`` models: same outputs as ``floating_pt``, same chip
counters as the backend's direct run of the whole network (``run_mapping``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from lava.magma.core.run_conditions import RunSteps

from lava_procs.common import LavaRunError
from lava_procs.egru_layer.models import PyEGRULayerSpiNNaker2
from lava_procs.egru_layer.process import CHIP_PHASES, EGRULayer
from lava_procs.network.process import EGRUNetwork
from lava_procs.run import LavaNetworkSession, run_network, stop_runtime
from lava_procs.run_configs import ChipOptions, SpiNNaker2SimCfg
from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import egru_sequence, egru_stack_step
from spinnaker2_backend import ChipSpec, map_network
from spinnaker2_backend.simulator import run_mapping
from tests.lava_procs.conftest import (
    feature_artifact,
    random_layer,
    token_artifact,
    wire_features,
)

pytestmark = [pytest.mark.lava, pytest.mark.timeout(180)]


def assert_same_chip_run(lava_run, direct_run) -> None:
    """Counter by counter, per layer and per step: the Lava run is the direct run."""
    assert lava_run.steps == direct_run.steps
    assert lava_run.counters.per_layer() == direct_run.counters.per_layer()
    for a, b in zip(lava_run.counters.layers, direct_run.counters.layers):
        np.testing.assert_array_equal(a.pes, b.pes)
        np.testing.assert_array_equal(a.ops, b.ops)
        np.testing.assert_array_equal(a.phase_cycles, b.phase_cycles)
    np.testing.assert_array_equal(lava_run.step_totals, direct_run.step_totals)
    np.testing.assert_array_equal(lava_run.profile.layer_cycles, direct_run.profile.layer_cycles)
    np.testing.assert_array_equal(
        lava_run.profile.critical_phase_cycles, direct_run.profile.critical_phase_cycles
    )
    assert lava_run.seconds_per_token == direct_run.seconds_per_token
    assert lava_run.energy == direct_run.energy
    assert lava_run.report().to_dict() == direct_run.report().to_dict()


def test_chunked_chip_session_equals_floating_pt_and_direct_run(no_leftover_processes):
    """CSR weights, csr format, several PEs per layer, two Lava runs of one graph."""
    artifact = token_artifact(seed=21, layer_sizes=(10, 12, 7)).with_sparse_weights()
    tokens = np.random.default_rng(22).integers(0, 13, size=30)
    options = ChipOptions(weight_format="csr", max_units_per_pe=3)

    floating = run_network(artifact, tokens, "floating_pt", timeout_s=60)
    network = EGRUNetwork(artifact=artifact, inputs=tokens, name="chip")
    with LavaNetworkSession(network, SpiNNaker2SimCfg(chip=options), timeout_s=60) as session:
        first = session.run(11)
        second = session.run(19)
        layers = network.layer_processes()
        assert all(layer.model_class is PyEGRULayerSpiNNaker2 for layer in layers)
        chip_vars = [
            {
                "step": float(layer.chip_step_cycles.get()[0]),
                "phases": layer.chip_phase_cycles.get(),
                "total": float(layer.chip_total_cycles.get()[0]),
                "packets": layer.chip_packets.get(),
                "dma": int(layer.chip_dma_bytes.get()[0]),
                "macs": int(layer.chip_macs.get()[0]),
                "energy": float(layer.chip_energy_j.get()[0]),
                "events": int(layer.events_emitted.get()[0]),
            }
            for layer in layers
        ]
        lava_run = session.chip_run()
        states = session.layer_states()

    # outputs: bit for bit the floating_pt graph (CSR products are the reference's)
    for index, events in enumerate(floating.layer_events):
        np.testing.assert_array_equal(
            np.concatenate([first.layer_events[index], second.layer_events[index]]), events
        )
        assert 0.05 < np.count_nonzero(events) / events.size < 0.95
    np.testing.assert_array_equal(np.concatenate([first.logits, second.logits]), floating.logits)
    for a, b in zip(states, floating.states):
        np.testing.assert_array_equal(a.c, b.c)

    # counters: the backend's direct run of the whole network, same mapping options
    mapping = map_network(artifact, weight_format="csr", max_units_per_pe=3)
    assert all(len(layer.slices) >= 3 for layer in mapping.layers)
    direct = run_mapping(mapping, tokens)
    assert_same_chip_run(lava_run, direct)
    assert lava_run.counters.summary()["packets_on_chip"] > 0

    # the per-layer chip Vars hold the same figures
    for index, (got, layer) in enumerate(zip(chip_vars, direct.counters.layers)):
        assert got["total"] == layer.layer_cycles
        assert got["step"] == direct.profile.layer_cycles[-1, index]
        np.testing.assert_array_equal(
            got["phases"], direct.profile.critical_phase_cycles[-1, index]
        )
        assert got["phases"].shape == (len(CHIP_PHASES),)
        assert got["packets"].tolist() == [layer.packets_on_chip, layer.packets_chip_to_chip]
        assert got["dma"] == layer.dram_bytes
        assert got["macs"] == layer.macs
        assert got["events"] == layer.events
    # each layer's energy share adds up to the run's energy (layers one after another)
    total_energy = sum(got["energy"] for got in chip_vars)
    assert total_energy == pytest.approx(direct.energy.total_j, rel=1e-9)


def test_event_format_run_network_on_dense_features(no_leftover_processes):
    """Event-driven weights, dense artifact, 300 MHz, a tick some PEs overrun, no per-PE
    step detail: outputs within float32 rounding, chip report exactly the direct run's."""
    artifact = feature_artifact(seed=23, input_size=6, sizes=(9, 8), classes=3, bias=True)
    features = np.random.default_rng(24).normal(size=(25, 6)).astype(np.float32)

    result = run_network(
        artifact,
        features,
        "spinnaker2",
        weight_format="event",
        max_units_per_pe=4,
        clock_mhz=300,
        tick_us=15.0,
        record_chip_steps=False,
        timeout_s=60,
    )
    reference = artifact.run_reference(features)
    for got, want in zip(result.layer_events, reference.layer_events):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got != 0, want != 0)  # same units fire
    np.testing.assert_allclose(result.logits, reference.logits, rtol=1e-5, atol=1e-5)

    mapping = map_network(
        artifact,
        spec=ChipSpec().with_clock_mhz(300),
        weight_format="event",
        max_units_per_pe=4,
    )
    direct = run_mapping(mapping, features, tick_us=15.0, record=False)
    assert direct.profile.deadlines_missed_total > 0  # the tick is too short for some PEs
    assert_same_chip_run(result.chip, direct)
    assert result.chip.step_ops is None and result.chip.profile.step_phase_cycles is None
    assert result.chip.clock_hz == 300e6
    assert result.chip.weight_format == "event"
    np.testing.assert_array_equal(result.chip.logits, result.logits)


def test_standalone_chip_layer_remaps_after_weight_set(no_leftover_processes):
    """A stand-alone EGRULayer on the chip (one-layer mapping); Var.set of weights remaps."""
    rng = np.random.default_rng(25)
    params = random_layer(rng, 4, 6)
    features = rng.normal(size=(16, 4)).astype(np.float32)
    new_w_hh = params.weight_hh * np.float32(0.5)

    layer = EGRULayer.from_params(params, name="chip_layer")
    sink = wire_features(layer, features)
    cfg = SpiNNaker2SimCfg(max_units_per_pe=2)
    try:
        layer.create_runtime(run_cfg=cfg)
        layer.run(condition=RunSteps(num_steps=10))
        packets_after_10 = layer.chip_packets.get().copy()
        state_10 = layer.state()
        layer.weight_hh.set(new_w_hh.astype(np.float64))
        layer.run(condition=RunSteps(num_steps=6))
        steps, events = sink.take(16, timeout_s=30)
        assert layer.model_class is PyEGRULayerSpiNNaker2
        assert int(layer.steps_run.get()[0]) == 16
        packets_after_16 = layer.chip_packets.get()
    finally:
        stop_runtime(layer)

    np.testing.assert_array_equal(steps, np.arange(1, 17))
    want_first, _ = egru_sequence(features[:10], params)
    want_second, _ = egru_sequence(features[10:], params._replace(weight_hh=new_w_hh), state_10)
    np.testing.assert_allclose(events[:10], want_first, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(events[10:], want_second, rtol=1e-5, atol=1e-6)
    # counters kept counting over the re-mapping (same PEs), and packets were sent
    assert packets_after_10[0] > 0
    assert packets_after_16[0] > packets_after_10[0]
    [(_, mapping)] = cfg.mappings.values()  # the host mapped a one-layer network
    assert mapping.layers[0].num_pes == 3
    direct = map_network(DeploymentArtifact(layers=[params]), max_units_per_pe=2)
    assert (
        run_mapping(direct, features[:10]).counters.layers[0].packets_on_chip == packets_after_10[0]
    )


def test_chip_options_and_mapping_errors_are_clear(no_leftover_processes):
    with pytest.raises(ValueError, match="weight_format must be one of"):
        ChipOptions(weight_format="coo")
    with pytest.raises(ValueError, match="give either chip"):
        SpiNNaker2SimCfg(chip=ChipOptions(), weight_format="csr")
    with pytest.raises(ValueError, match="PE clock must be one of 150, 300 MHz"):
        run_network(
            token_artifact(seed=26, layer_sizes=(5,)), np.arange(3), "spinnaker2", clock_mhz=200
        )
    # a PE memory too small for one unit: the mapping fails while the graph is compiled,
    # before any model process starts, and the message says why
    tiny = ChipSpec(data_memory_bytes=8 * 1024)
    artifact = feature_artifact(seed=27, input_size=300, sizes=(40,))
    with pytest.raises(LavaRunError, match="could not start the Lava graph.*MappingError"):
        run_network(artifact, np.zeros((3, 300), np.float32), "spinnaker2", spec=tiny)


def test_trace_readout_on_both_backends(no_leftover_processes):
    """readout_source='trace': the last layer sends its low-pass trace to the readout."""
    artifact = feature_artifact(seed=28, input_size=5, sizes=(7, 6), classes=3, bias=True)
    artifact = dataclasses.replace(artifact, readout_source="trace").with_sparse_weights()
    features = np.random.default_rng(29).normal(size=(15, 5)).astype(np.float32)
    states = artifact.initial_states()
    assert states[-1].trace is not None
    want_logits, want_events = [], [[] for _ in artifact.layers]
    for x in features:
        events, states = egru_stack_step(x, states, artifact.layers)
        for store, y in zip(want_events, events):
            store.append(y)
        want_logits.append(artifact.readout(states[-1].trace))

    for backend in ("floating_pt", "spinnaker2"):
        result = run_network(artifact, features, backend, max_units_per_pe=3, timeout_s=60)
        for got, want in zip(result.layer_events, want_events):
            np.testing.assert_array_equal(got, np.stack(want), err_msg=backend)
        np.testing.assert_allclose(
            result.logits, np.stack(want_logits), rtol=1e-5, atol=1e-6, err_msg=backend
        )
        np.testing.assert_array_equal(result.states[-1].trace, states[-1].trace)
