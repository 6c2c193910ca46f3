"""An artifact with an adaptive-softmax readout (log-probabilities, computed on the host) on
both Lava backends: the host readout of the run is the reference's, bit for bit; the
AdaptiveReadout process (step by step) equals it to float32 rounding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lava_procs.io.models import PyAdaptiveReadoutModel
from lava_procs.network.process import EGRUNetwork
from lava_procs.run import LavaNetworkSession, run_network
from lava_procs.run_configs import FloatingPtSimCfg
from snn_egru.adaptive_head import AdaptiveHead
from snn_egru.artifact import DeploymentArtifact
from tests.lava_procs.conftest import token_artifact

pytestmark = [pytest.mark.lava, pytest.mark.timeout(180)]

#: The process reads out one step at a time, the reference the whole run in one product.
LOGIT_TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def adaptive_token_artifact(seed: int, layer_sizes: tuple[int, ...]) -> DeploymentArtifact:
    """:func:`token_artifact` (13 words) with an adaptive head: 3 head words, clusters
    [3, 8) (width 2) and [8, 13) (width 1), a head bias, shuffled word ranks."""
    base = token_artifact(seed, layer_sizes).with_sparse_weights()
    rng = np.random.default_rng(seed + 100)
    h = layer_sizes[-1]

    def normal(*shape):
        return rng.normal(0.0, 1.0, shape).astype(np.float32)

    head = AdaptiveHead(
        cutoffs=(3, 8),
        head_weight=normal(5, h),
        head_bias=normal(5),
        tail_projections=[normal(2, h), normal(1, h)],
        tail_outputs=[normal(5, 2), normal(5, 1)],
        word_rank=rng.permutation(13).astype(np.int64),
    )
    return dataclasses.replace(base, readout_kind="adaptive", readout_bias=None, adaptive=head)


def test_adaptive_readout_on_both_backends_equals_the_reference(no_leftover_processes):
    artifact = adaptive_token_artifact(seed=31, layer_sizes=(10, 7))
    tokens = np.random.default_rng(32).integers(0, 13, size=25)
    reference = artifact.run_reference(tokens)
    assert reference.logits.shape == (25, 13)
    np.testing.assert_allclose(np.logaddexp.reduce(reference.logits, axis=1), 0.0, atol=1e-5)

    for backend in ("floating_pt", "spinnaker2"):
        result = run_network(artifact, tokens, backend, max_units_per_pe=4, timeout_s=60)
        for got, want in zip(result.layer_events, reference.layer_events):
            np.testing.assert_array_equal(got, want, err_msg=backend)
        # the host readout: the artifact's numpy log-probabilities of the recorded events
        np.testing.assert_array_equal(result.logits, reference.logits, err_msg=backend)


def test_adaptive_readout_process_step_by_step(no_leftover_processes):
    artifact = adaptive_token_artifact(seed=33, layer_sizes=(8, 6))
    tokens = np.random.default_rng(34).integers(0, 13, size=20)
    reference = artifact.run_reference(tokens)
    network = EGRUNetwork(artifact=artifact, inputs=tokens, readout="process", name="adaptive")
    with LavaNetworkSession(network, FloatingPtSimCfg(), timeout_s=60) as session:
        outputs = session.run(20)
        assert network.readout_process().model_class is PyAdaptiveReadoutModel
    assert outputs.logits.shape == (20, 13)
    np.testing.assert_allclose(outputs.logits, reference.logits, **LOGIT_TOLERANCE)
