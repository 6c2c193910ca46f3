"""Property tests over network shapes, and import hygiene (no torch; Lava only on demand)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lava_procs.egru_layer.process import EGRULayer
from lava_procs.run import run_network
from snn_egru.artifact import DeploymentArtifact
from tests.fresh_python import run_python
from tests.lava_procs.conftest import random_layer

LOGIT_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@st.composite
def networks(draw):
    """Random small artifacts: 1-3 layers, sizes 1-9, dense or CSR, features or tokens."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    sizes = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3))
    tokens = draw(st.booleans())
    width = sizes[-1] if tokens else draw(st.integers(1, 6))
    layers, inputs = [], width
    for hidden in sizes:
        layers.append(random_layer(rng, inputs, hidden, sparse=draw(st.booleans())))
        inputs = hidden
    steps = draw(st.integers(5, 20))
    if tokens:
        vocab = draw(st.integers(2, 8))
        artifact = DeploymentArtifact(
            layers=layers,
            input_kind="embedding",
            embedding=rng.normal(size=(vocab, width)).astype(np.float32),
            readout_kind="tied_decoder",
        )
        inputs = rng.integers(0, vocab, size=steps)
    else:
        artifact = DeploymentArtifact(
            layers=layers,
            readout_kind="linear",
            readout_weight=rng.normal(size=(3, sizes[-1])).astype(np.float32),
            readout_bias=rng.normal(size=3).astype(np.float32),
        )
        inputs = rng.normal(size=(steps, width)).astype(np.float32)
    return artifact, inputs


@pytest.mark.lava
@pytest.mark.timeout(120)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=networks())
def test_floating_pt_equals_reference_for_any_shape(case):
    artifact, inputs = case
    result = run_network(artifact, inputs, timeout_s=60)
    reference = artifact.run_reference(inputs)
    for got, want in zip(result.layer_events, reference.layer_events):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(result.logits, reference.logits, **LOGIT_TOLERANCE)
    for got, want in zip(result.states, reference.states):
        np.testing.assert_array_equal(got.c, want.c)


@settings(max_examples=25, deadline=None)
@given(
    inputs=st.integers(1, 12),
    hidden=st.integers(1, 12),
    sparse=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_layer_process_interface_follows_the_weights(inputs, hidden, sparse, seed):
    """Ports and Vars take their shapes from the weights; Vars hold copies of them."""
    params = random_layer(np.random.default_rng(seed), inputs, hidden, sparse=sparse)
    layer = EGRULayer.from_params(params, name="shape_check")
    assert layer.x_in.shape == (inputs,)
    assert layer.y_out.shape == layer.trace_out.shape == (hidden,)
    assert layer.weight_ih.shape == (3 * hidden, inputs)
    assert layer.weight_hh.shape == (3 * hidden, hidden)
    assert layer.c.shape == layer.y.shape == layer.threshold.shape == (hidden,)
    assert layer.weights_are_sparse == sparse
    before_compile = layer.params()  # Var.get before a runtime returns the initial values
    for field in ("weight_ih", "weight_hh"):
        got, want = getattr(before_compile, field), getattr(params, field)
        if sparse:
            np.testing.assert_array_equal(got.toarray(), want.toarray())
        else:
            np.testing.assert_array_equal(got, want)
            assert not np.shares_memory(getattr(layer, field).init, want)
    np.testing.assert_array_equal(layer.state().c, np.zeros(hidden, np.float32))


def test_imports_keep_torch_out_and_lava_lazy():
    code = (
        "import sys\n"
        "import lava_procs\n"
        "assert 'lava' not in sys.modules, 'import lava_procs must not import Lava'\n"
        "from lava_procs import run_network, SpiNNaker2SimCfg, EGRUNetwork\n"
        "import lava_procs.egru_layer.models, lava_procs.io.models, lava_procs.network.models\n"
        "import lava_procs.chip_report\n"
        "assert 'lava' in sys.modules\n"
        "assert 'torch' not in sys.modules, 'lava_procs imported torch'\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
