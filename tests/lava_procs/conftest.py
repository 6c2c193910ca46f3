"""Small random artifacts for the Lava tests (numpy weights, no training, no torch), and a
layer wired between a feature source and an event sink.

Every test here runs under a time limit (:data:`LAVA_TEST_TIMEOUT_S`, pytest-timeout's
signal method: the test fails with a traceback of where it waited, the others go on), and
whatever model processes a test leaves behind (a hang, a failure) are killed after it, so
a hang fails one test and leaves nothing running.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import EGRUParams

#: Time limit of every Lava test (s): ten times the slowest one on a loaded 2-core machine.
LAVA_TEST_TIMEOUT_S = 240

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """A time limit on every test of this folder (one given by the test itself wins)."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(LAVA_TEST_TIMEOUT_S, method="signal"))


@pytest.fixture(autouse=True)
def _kill_leftover_model_processes():
    """After each test: kill the model processes it left running (after a hang or a failed
    stop), so they never outlive it. A test that must leave none uses
    :func:`no_leftover_processes`, which fails first."""
    yield
    for child in multiprocessing.active_children():
        child.terminate()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join(5)


def random_layer(
    rng: np.random.Generator,
    input_size: int,
    hidden_size: int,
    *,
    sparse: bool = False,
    density: float = 0.5,
    weight_scale: float = 0.8,
) -> EGRUParams:
    """A float32 layer whose units fire on a fair fraction of steps (thresholds 0..0.3)."""
    w_ih = rng.normal(0.0, weight_scale, (3 * hidden_size, input_size)).astype(np.float32)
    w_hh = rng.normal(0.0, weight_scale, (3 * hidden_size, hidden_size)).astype(np.float32)
    if sparse:
        w_ih[rng.random(w_ih.shape) >= density] = 0.0
        w_hh[rng.random(w_hh.shape) >= density] = 0.0
        w_ih, w_hh = sp.csr_matrix(w_ih), sp.csr_matrix(w_hh)
    return EGRUParams(
        weight_ih=w_ih,
        weight_hh=w_hh,
        bias_ih=rng.normal(0.0, 0.3, 3 * hidden_size).astype(np.float32),
        bias_hh=rng.normal(0.0, 0.3, 3 * hidden_size).astype(np.float32),
        threshold=rng.uniform(0.0, 0.3, hidden_size).astype(np.float32),
    )


def token_artifact(
    seed: int, layer_sizes: tuple[int, ...], *, vocab: int = 13
) -> DeploymentArtifact:
    """Token ids -> embedding -> EGRU stack (odd layers CSR) -> decoder tied to embedding.

    The embedding width is the last layer's size (a tied decoder needs it); layer 0 takes it.
    """
    rng = np.random.default_rng(seed)
    width = layer_sizes[-1]
    layers = []
    inputs = width
    for index, hidden in enumerate(layer_sizes):
        layers.append(random_layer(rng, inputs, hidden, sparse=index % 2 == 1))
        inputs = hidden
    return DeploymentArtifact(
        layers=layers,
        input_kind="embedding",
        embedding=rng.normal(0.0, 1.0, (vocab, width)).astype(np.float32),
        readout_kind="tied_decoder",
        readout_bias=rng.normal(0.0, 0.1, vocab).astype(np.float32),
        vocabulary=[f"w{i}" for i in range(vocab)],
    )


def feature_artifact(
    seed: int, input_size: int, sizes: tuple[int, ...], *, classes: int = 4, bias: bool = False
) -> DeploymentArtifact:
    """Feature vectors -> EGRU stack (dense) -> linear readout."""
    rng = np.random.default_rng(seed)
    layers = []
    inputs = input_size
    for hidden in sizes:
        layers.append(random_layer(rng, inputs, hidden))
        inputs = hidden
    return DeploymentArtifact(
        layers=layers,
        input_kind="features",
        readout_kind="linear",
        readout_weight=rng.normal(0.0, 1.0, (classes, sizes[-1])).astype(np.float32),
        readout_bias=rng.normal(0.0, 0.1, classes).astype(np.float32) if bias else None,
        class_names=[f"c{i}" for i in range(classes)],
    )


def wire_features(layer, features: np.ndarray):
    """``FeatureSource(features) -> layer -> HostSink``: returns the sink of the layer's
    events (the graph is compiled and started by running ``layer``)."""
    from lava_procs.io.process import FeatureSource, HostSink

    source = FeatureSource(features=features, name="src")
    sink = HostSink(shape=(layer.hidden_size,), name="events")
    source.x_out.connect(layer.x_in)
    layer.y_out.connect(sink.data_in)
    return sink


@pytest.fixture
def no_leftover_processes():
    """Fail if a test leaves Lava model processes running (the graph was not stopped)."""
    yield
    alive = multiprocessing.active_children()
    assert not alive, f"Lava processes still running after the test: {alive}"
