"""Lava seams: a wrong-shape Var.set names the var and both shapes (and stop() returns),
a wrong threshold length is named as itself, a hand-wired layer takes int8 weights, and
Lava and the simulator (tqdm) share one process in either import/run order."""

from __future__ import annotations

import textwrap
import threading

import numpy as np
import pytest
from lava.magma.core.run_conditions import RunSteps

from lava_procs.egru_layer.process import EGRULayer
from lava_procs.run import stop_runtime
from lava_procs.run_configs import FloatingPtSimCfg
from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import EGRUState, egru_step, quantize_params
from tests.fresh_python import run_python
from tests.lava_procs.conftest import random_layer, wire_features

pytestmark = pytest.mark.lava


def _graph(params, features):
    layer = EGRULayer.from_params(params, name="layer")
    return layer, wire_features(layer, features)


def _stop_within(layer, seconds: float) -> None:
    done = threading.Event()

    def stop() -> None:
        stop_runtime(layer)
        done.set()

    threading.Thread(target=stop, daemon=True).start()
    assert done.wait(seconds), "stop did not return"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [("weight_ih", np.zeros((3, 4)), "(15, 4)"), ("threshold", np.zeros(3), "(5,)")],
)
def test_wrong_shape_set_names_the_var_and_stop_returns(
    no_leftover_processes, var, value, expected
) -> None:
    rng = np.random.default_rng(8)
    params = random_layer(rng, 4, 5)
    layer, _sink = _graph(params, rng.normal(0.0, 1.0, (6, 4)).astype(np.float32))
    try:
        layer.create_runtime(run_cfg=FloatingPtSimCfg())
        layer.run(condition=RunSteps(num_steps=2))
        with pytest.raises(ValueError) as info:
            getattr(layer, var).set(value)
        message = str(info.value)
        assert f"layer.{var}.set()" in message and expected in message
        assert str(value.shape) in message
        layer.run(condition=RunSteps(num_steps=2))  # nothing was sent: the graph still runs
        np.testing.assert_array_equal(layer.params().weight_ih, params.weight_ih)
    finally:
        _stop_within(layer, 30.0)


def test_wrong_threshold_length_is_named_as_the_threshold() -> None:
    params = random_layer(np.random.default_rng(1), 4, 5)
    with pytest.raises(ValueError, match=r"threshold has 3 entries, expected 5") as info:
        EGRULayer.from_params(params._replace(threshold=params.threshold[:3]))
    assert "weight_ih" not in str(info.value)


def test_hand_wired_layer_takes_int8_weights(no_leftover_processes) -> None:
    rng = np.random.default_rng(3)
    quantized = quantize_params(random_layer(rng, 4, 5))
    features = rng.normal(0.0, 1.0, (8, 4)).astype(np.float32)
    want, state = [], EGRUState(c=np.zeros(5, np.float32), y=np.zeros(5, np.float32))
    for x in features:
        y, state = egru_step(x, state, quantized.dequantize())
        want.append(y)
    for layer_of in (
        lambda: EGRULayer.from_params(quantized, name="layer"),
        lambda: EGRULayer(
            weight_ih=quantized.weight_ih,  # QuantizedWeight, hand-wired
            weight_hh=quantized.weight_hh,
            bias_ih=quantized.bias_ih,
            bias_hh=quantized.bias_hh,
            threshold=quantized.threshold,
            name="layer",
        ),
    ):
        layer = layer_of()
        sink = wire_features(layer, features)
        try:
            layer.create_runtime(run_cfg=FloatingPtSimCfg())
            layer.run(condition=RunSteps(num_steps=8))
            _steps, events = sink.take(8, timeout_s=30)
        finally:
            stop_runtime(layer)
        np.testing.assert_allclose(events, np.stack(want), rtol=1e-6, atol=1e-6)
        assert np.count_nonzero(events) > 0


_ONE_PROCESS = """
import numpy as np
from tests.lava_procs.conftest import random_layer
from snn_egru.artifact import DeploymentArtifact

rng = np.random.default_rng(0)
artifact = DeploymentArtifact(layers=[random_layer(rng, 4, 6)])
features = rng.normal(0.0, 1.0, (5, 4)).astype(np.float32)

def simulate():
    from spinnaker2_backend import map_network
    from spinnaker2_backend.simulator import run_mapping
    run = run_mapping(map_network(artifact, max_units_per_pe=3), features, progress=True)
    return np.asarray(run.layer_events[0] if hasattr(run, "layer_events") else 0)

def lava():
    from lava_procs.run import run_network
    return run_network(artifact, features, backend="floating_pt").logits

for part in {order}:
    part()
print("ok")
"""


@pytest.mark.parametrize("order", ["(simulate, lava)", "(lava, simulate)"])
def test_lava_and_the_simulator_share_one_process_in_either_order(order: str) -> None:
    script = textwrap.dedent(_ONE_PROCESS).format(order=order)
    result = run_python(script, timeout=240, env={"TQDM_DISABLE": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_chip_kernel_setup_is_reported_apart_from_the_run(no_leftover_processes) -> None:
    """The simulator's kernels are compiled or loaded before Lava forks the models, and that
    time is reported as part of the start-up, not of the steps."""
    from lava_procs.run import run_network

    rng = np.random.default_rng(4)
    artifact = DeploymentArtifact(layers=[random_layer(rng, 4, 6)])
    features = rng.normal(0.0, 1.0, (6, 4)).astype(np.float32)
    result = run_network(artifact, features, backend="spinnaker2")
    assert 0.0 < result.kernel_setup_s <= result.startup_s
    reference = artifact.run_reference(features)
    np.testing.assert_allclose(result.layer_events[0], reference.layer_events[0], atol=1e-5)
    floating = run_network(artifact, features, backend="floating_pt")
    assert floating.kernel_setup_s == 0.0


def test_every_python_model_declares_what_lavas_decorators_would():
    """``host_cpu_model`` stands for ``@implements(proc, LoihiProtocol) @requires(CPU)
    @tag(...)``: each model implements its process on the CPU under the Loihi protocol, the
    layer's two models under one tag each, the host models under both."""
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    from lava_procs.egru_layer import models as layer_models
    from lava_procs.egru_layer.process import EGRULayer
    from lava_procs.io import models as io_models
    from lava_procs.io import process as io

    expected = {
        layer_models.PyEGRULayerFloat: (EGRULayer, ["floating_pt"]),
        layer_models.PyEGRULayerSpiNNaker2: (EGRULayer, ["spinnaker2"]),
        io_models.PyEmbeddingSourceModel: (io.EmbeddingSource, ["floating_pt", "spinnaker2"]),
        io_models.PyFeatureSourceModel: (io.FeatureSource, ["floating_pt", "spinnaker2"]),
        io_models.PyReadoutModel: (io.Readout, ["floating_pt", "spinnaker2"]),
        io_models.PyHostSinkModel: (io.HostSink, ["floating_pt", "spinnaker2"]),
    }
    for model, (proc, tags) in expected.items():
        assert model.implements_process is proc, model
        assert model.implements_protocol is LoihiProtocol, model
        assert model.required_resources == [CPU], model
        assert model.tags == tags, model
