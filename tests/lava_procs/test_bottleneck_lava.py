"""A bottlenecked network (a narrow layer between two wide ones) on both Lava backends
equals the numpy reference. (The Lava chip models map each layer themselves, without chip
boundaries; chip == torch across 2 chips with the boundary is in
tests/snn_egru/test_bottleneck.py.)"""

from __future__ import annotations

import numpy as np

from lava_procs import run_network
from spinnaker2_backend import Machine
from tests.lava_procs.conftest import token_artifact


def _both_backends_equal_the_reference(artifact, tokens, reference, **chip_options) -> None:
    """``artifact`` on Lava's floating_pt models and on its chip models (2 chips) gives the
    reference's logits and events."""
    floating = run_network(artifact, tokens, "floating_pt", timeout_s=60)
    chip = run_network(
        artifact, tokens, "spinnaker2", machine=Machine(chips=2), timeout_s=120, **chip_options
    )
    for result in (floating, chip):
        np.testing.assert_allclose(result.logits, reference.logits, rtol=1e-5, atol=1e-6)
        for got, want in zip(result.layer_events, reference.layer_events):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bottleneck_network_on_both_lava_backends_equals_the_reference(no_leftover_processes):
    artifact = token_artifact(seed=5, layer_sizes=(24, 4, 16))
    artifact.metadata = {"model": {"config": {"fields": {"bottleneck_layers": [1]}}}}
    tokens = np.random.default_rng(6).integers(0, 13, size=12)
    reference = artifact.run_reference(tokens)
    assert all((ev != 0).any() for ev in reference.layer_events)
    _both_backends_equal_the_reference(
        artifact, tokens, reference, weight_format="dense", max_units_per_pe=1
    )


def test_ff_and_dense_bottlenecks_on_both_lava_backends_equal_the_reference(
    no_leftover_processes,
):
    """The constrained kinds (snn_egru.bottleneck_layers) are EGRU layers with fixed
    parameters: the Lava processes run them unchanged, the dense one with thresholds -2."""
    from snn_egru.export import export_artifact
    from tests.snn_egru.test_bottleneck_kinds import _model

    tokens = np.random.default_rng(6).integers(0, 20, size=10)
    for kind in ("ff", "dense"):
        artifact = export_artifact(_model(kind, seed=3))
        reference = artifact.run_reference(tokens)
        events = reference.layer_events[1]
        assert (events != 0).any() and ((events < 0).any() if kind == "dense" else True)
        _both_backends_equal_the_reference(
            artifact, tokens, reference, weight_format="event", max_units_per_pe=3
        )
