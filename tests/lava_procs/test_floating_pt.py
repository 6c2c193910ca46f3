"""Lava graphs with the ``floating_pt`` models against the numpy reference.

Every graph start costs about half a second, so each test runs one graph and checks
several things on it. Events and states must be bit-for-bit equal to
``artifact.run_reference`` (the models call the same ``egru_step``); logits are compared with
a float32 tolerance only because the reference computes them for all steps in one matrix
product and the Lava readout one step at a time (BLAS may sum in another order).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from lava.magma.core.run_conditions import RunSteps

from lava_procs.common import LavaRunError
from lava_procs.egru_layer.models import PyEGRULayerFloat
from lava_procs.egru_layer.process import EGRULayer
from lava_procs.io.process import EmbeddingSource, FeatureSource, HostSink, Readout
from lava_procs.network.process import EGRUNetwork
from lava_procs.run import LavaNetworkSession, run_network, stop_runtime
from lava_procs.run_configs import FloatingPtSimCfg
from snn_egru.reference import EGRUState, egru_step
from tests.lava_procs.conftest import (
    feature_artifact,
    random_layer,
    token_artifact,
    wire_features,
)

pytestmark = [pytest.mark.lava, pytest.mark.timeout(120)]

LOGIT_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def assert_events_equal(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for index, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == b.dtype, f"layer {index}"
        np.testing.assert_array_equal(a, b, err_msg=f"events of layer {index}")


def assert_states_equal(got: list[EGRUState], want: list[EGRUState]) -> None:
    for index, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a.c, b.c, err_msg=f"c of layer {index}")
        np.testing.assert_array_equal(a.y, b.y, err_msg=f"y of layer {index}")


def test_three_layer_token_network_equals_reference(no_leftover_processes):
    artifact = token_artifact(seed=1, layer_sizes=(9, 11, 6))
    tokens = np.random.default_rng(2).integers(0, 13, size=40)

    result = run_network(artifact, tokens, "floating_pt", timeout_s=60)
    reference = artifact.run_reference(tokens)

    np.testing.assert_array_equal(result.time_steps, np.arange(1, 41))
    assert_events_equal(result.layer_events, reference.layer_events)
    for events in result.layer_events:  # the test means something only if units fire
        assert 0.05 < np.count_nonzero(events) / events.size < 0.95
        assert np.any((events > 0) & (events < 1))  # graded values, not binarised
    # the host readout of the run is the reference's own product: bit for bit
    np.testing.assert_array_equal(result.logits, reference.logits)
    assert result.logits.shape == (40, 13)
    assert_states_equal(result.states, reference.states)
    assert result.backend == "floating_pt"
    assert result.chip is None
    assert result.steps_per_s > 0


def test_feature_network_from_given_states_and_fewer_steps(no_leftover_processes):
    artifact = feature_artifact(seed=3, input_size=5, sizes=(7,), classes=4, bias=False)
    rng = np.random.default_rng(4)
    features = rng.normal(0.0, 1.0, (30, 5)).astype(np.float32)
    states = [
        EGRUState(
            c=rng.uniform(-0.5, 0.5, 7).astype(np.float32),
            y=rng.uniform(0.0, 0.5, 7).astype(np.float32),
        )
    ]

    result = run_network(artifact, features, num_steps=22, initial_states=states, timeout_s=60)
    reference = artifact.run_reference(features[:22], states=states)

    assert result.num_steps == 22
    assert_events_equal(result.layer_events, reference.layer_events)
    np.testing.assert_allclose(result.logits, reference.logits, **LOGIT_TOLERANCE)
    assert_states_equal(result.states, reference.states)


def test_session_chunks_vars_round_trip_and_deferred_error(no_leftover_processes):
    """Two runs of one graph == one long run; Vars get/set between runs; bad set raises."""
    artifact = token_artifact(seed=5, layer_sizes=(8, 6))
    assert not sp.issparse(artifact.layers[0].weight_hh)
    assert sp.issparse(artifact.layers[1].weight_hh)
    tokens = np.random.default_rng(6).integers(0, 13, size=36)
    whole = artifact.run_reference(tokens[:20])

    network = EGRUNetwork(artifact=artifact, inputs=tokens, name="chunks")
    with LavaNetworkSession(network, FloatingPtSimCfg(), timeout_s=60) as session:
        first, second = session.iter_run(20, chunk_steps=12)  # two Lava runs: 12 + 8
        # chunks, concatenated, are the long run; time steps count on
        np.testing.assert_array_equal(first.time_steps, np.arange(1, 13))
        np.testing.assert_array_equal(second.time_steps, np.arange(13, 21))
        assert_events_equal(
            [np.concatenate(pair) for pair in zip(first.layer_events, second.layer_events)],
            whole.layer_events,
        )
        np.testing.assert_allclose(
            np.concatenate([first.logits, second.logits]), whole.logits, **LOGIT_TOLERANCE
        )
        assert_states_equal(session.layer_states(), whole.states)

        layer0, layer1 = network.layer_processes()
        assert layer0.model_class is PyEGRULayerFloat
        # Vars round trip: dense and CSR weights read back as given
        np.testing.assert_array_equal(layer0.weight_ih.get(), artifact.layers[0].weight_ih)
        w_hh1 = layer1.weight_hh.get()
        assert sp.issparse(w_hh1)
        np.testing.assert_array_equal(w_hh1.toarray(), artifact.layers[1].weight_hh.toarray())
        events_so_far = sum(int(np.count_nonzero(e)) for e in whole.layer_events[0])
        assert int(layer0.events_emitted.get()[0]) == events_so_far
        assert int(layer0.steps_run.get()[0]) == 20

        # set new parameters and a new state, then the next run follows them
        new_w_hh1 = artifact.layers[1].weight_hh * np.float32(0.5)  # same sparsity pattern
        new_bias0 = artifact.layers[0].bias_ih + np.float32(0.25)
        layer1.weight_hh.set(new_w_hh1)
        layer0.bias_ih.set(new_bias0.astype(np.float64))
        rng = np.random.default_rng(7)
        new_states = [
            EGRUState(
                c=rng.uniform(-0.3, 0.3, h).astype(np.float32),
                y=rng.uniform(0.0, 0.4, h).astype(np.float32),
            )
            for h in artifact.layer_sizes
        ]
        session.set_layer_states(new_states)
        assert_states_equal(session.layer_states(), new_states)
        third = session.run(9)
        changed = dataclasses.replace(
            artifact,
            layers=[
                artifact.layers[0]._replace(bias_ih=new_bias0),
                artifact.layers[1]._replace(weight_hh=new_w_hh1),
            ],
        )
        expected = changed.run_reference(tokens[20:29], states=new_states)
        assert_events_equal(third.layer_events, expected.layer_events)
        np.testing.assert_allclose(third.logits, expected.logits, **LOGIT_TOLERANCE)

        # a bad value set from the host is reported by the next step, not hung on
        layer1.threshold.set(np.full(6, -1.0))
        with pytest.raises(LavaRunError, match=r"layer_1.*time step 30.*thresholds must be >= 0"):
            session.run(1)
        with pytest.raises(RuntimeError, match="failed"):
            session.run(1)
        with pytest.raises(ValueError, match="only 7 of the network's 36 inputs are left"):
            session.run(8)


def test_standalone_layer_graph_with_trace(no_leftover_processes):
    """EGRULayer wired by hand: zero delay, graded events, trace, Vars, model by tag."""
    rng = np.random.default_rng(8)
    params = random_layer(rng, 4, 5)
    features = rng.normal(0.0, 1.0, (15, 4)).astype(np.float32)
    start = EGRUState(
        c=np.zeros(5, np.float32), y=np.zeros(5, np.float32), trace=np.zeros(5, np.float32)
    )
    want_y, want_trace, state = [], [], start
    for x in features:
        y, state = egru_step(x, state, params)
        want_y.append(y)
        want_trace.append(state.trace)
    want_y, want_state = np.stack(want_y), state

    layer = EGRULayer.from_params(params, track_trace=True, name="layer")
    events_sink = wire_features(layer, features)
    trace_sink = HostSink(shape=(5,), name="trace")
    layer.trace_out.connect(trace_sink.data_in)
    try:
        layer.create_runtime(run_cfg=FloatingPtSimCfg())
        layer.run(condition=RunSteps(num_steps=15))
        steps, events = events_sink.take(15, timeout_s=30)
        trace_steps, traces = trace_sink.take(15, timeout_s=30)
        np.testing.assert_array_equal(steps, np.arange(1, 16))  # no delay through the layer
        np.testing.assert_array_equal(trace_steps, np.arange(1, 16))
        np.testing.assert_array_equal(events.astype(np.float32), want_y)
        np.testing.assert_array_equal(traces.astype(np.float32), np.stack(want_trace))
        final = layer.state()
        np.testing.assert_array_equal(final.c, want_state.c)
        np.testing.assert_array_equal(final.trace, want_state.trace)
        np.testing.assert_array_equal(layer.params().weight_hh, params.weight_hh)
        assert int(layer.last_step_events.get()[0]) == np.count_nonzero(want_y[-1])
        assert np.all(layer.chip_packets.get() == 0)  # no chip under floating_pt
        assert layer.model_class is PyEGRULayerFloat
    finally:
        stop_runtime(layer)


def test_nan_input_raises_clear_error_and_stops(no_leftover_processes):
    artifact = feature_artifact(seed=9, input_size=4, sizes=(6, 5))
    features = np.random.default_rng(10).normal(size=(12, 4)).astype(np.float32)
    features[4, 2] = np.nan
    with pytest.raises(
        LavaRunError,
        match=r"EGRULayer 'egru_network.layer_0' failed at Lava time step 5: .*NaN",
    ) as caught:
        run_network(artifact, features, timeout_s=60)
    assert isinstance(caught.value.model_errors[0], RuntimeError)


def test_bad_inputs_rejected_before_lava_starts():
    artifact = feature_artifact(seed=11, input_size=4, sizes=(6,))
    with pytest.raises(ValueError, match=r"feature vectors of shape \(T, 4\)"):
        run_network(artifact, np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="backend must be one of"):
        run_network(artifact, np.zeros((5, 4), np.float32), backend="loihi")
    with pytest.raises(ValueError, match=r"num_steps must lie in \[1, 5\]"):
        run_network(artifact, np.zeros((5, 4), np.float32), num_steps=6)
    tokens = token_artifact(seed=12, layer_sizes=(5,))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 13\)"):
        run_network(tokens, np.array([1, 13]))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 13\)"):
        EmbeddingSource(embedding=tokens.embedding, token_ids=np.array([-1]))
    with pytest.raises(ValueError, match=r"embedding must be a 2-D floating-point matrix \(V, E\)"):
        EmbeddingSource(embedding=np.arange(4), token_ids=np.array([0]))
    with pytest.raises(ValueError, match="embedding contains NaN or infinite values"):
        EmbeddingSource(embedding=np.full((3, 2), np.nan), token_ids=np.array([0]))
    with pytest.raises(ValueError, match=r"readout weight must be .* matrix \(O, H\)"):
        Readout(weight=np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="readout weight contains NaN or infinite values"):
        Readout(weight=np.full((3, 2), np.inf))
    # a source of the wrong width cannot even be connected (Lava checks port shapes)
    layer = EGRULayer.from_params(artifact.layers[0])
    wide = FeatureSource(features=np.zeros((3, 5), np.float32))
    with pytest.raises(AssertionError, match=r"Shapes \(5,\) and \(4,\) are incompatible"):
        wide.x_out.connect(layer.x_in)
    with pytest.raises(ValueError, match="weight_hh has shape"):
        EGRULayer(
            weight_ih=np.zeros((9, 4), np.float32),
            weight_hh=np.zeros((9, 4), np.float32),
            bias_ih=np.zeros(9, np.float32),
            bias_hh=np.zeros(9, np.float32),
            threshold=np.zeros(3, np.float32),
        )


def test_timeout_stops_the_graph(no_leftover_processes):
    artifact = token_artifact(seed=13, layer_sizes=(6,))
    tokens = np.zeros(400, dtype=np.int64)
    with pytest.raises(TimeoutError, match="did not finish within"):
        run_network(artifact, tokens, timeout_s=0.01)


def test_keyboard_interrupt_stops_the_graph(no_leftover_processes, monkeypatch):
    artifact = token_artifact(seed=14, layer_sizes=(6,))

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(LavaNetworkSession, "_assemble", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_network(artifact, np.arange(5), timeout_s=60)


def test_readout_process_step_by_step_matches_host_readout(no_leftover_processes):
    """readout="process": a Lava Readout process computes the logits every step."""
    artifact = feature_artifact(seed=15, input_size=4, sizes=(6, 5), classes=3, bias=True)
    features = np.random.default_rng(16).normal(size=(12, 4)).astype(np.float32)
    reference = artifact.run_reference(features)
    network = EGRUNetwork(artifact=artifact, inputs=features, readout="process", name="proc")
    with LavaNetworkSession(network, FloatingPtSimCfg(), timeout_s=60) as session:
        outputs = session.run(12)
        assert network.readout_process() is not None
        assert network.logits_sink() is not None
    np.testing.assert_allclose(outputs.logits, reference.logits, **LOGIT_TOLERANCE)
    assert_events_equal(outputs.layer_events, reference.layer_events)
    with pytest.raises(ValueError, match="readout must be one of"):
        EGRUNetwork(artifact=artifact, inputs=features, readout="chip")
