"""Synthetic networks: shapes of the presets, magnitude pruning, thresholds, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend.synthetic import (
    PRESETS,
    magnitude_prune,
    sample_thresholds,
    synthetic_network,
    xavier_normal,
)


def test_paper_lm_shapes_and_exact_sparsity(paper_lm):
    assert paper_lm.layer_sizes == [1350, 1350, 750]
    assert paper_lm.input_size == 750
    assert paper_lm.input_kind == "embedding"
    assert paper_lm.embedding.shape == (10_000, 750)
    assert paper_lm.readout_kind == "tied_decoder"
    assert paper_lm.output_size == 10_000
    fan_in = 750
    for layer in paper_lm.layers:
        h = layer.hidden_size
        for w, cols in ((layer.weight_ih, fan_in), (layer.weight_hh, h)):
            assert sp.issparse(w) and w.format == "csr" and w.dtype == np.float32
            assert w.shape == (3 * h, cols)
            assert w.nnz == round(0.05 * 3 * h * cols)
            assert w.has_sorted_indices
        assert np.all(layer.bias_ih == 0) and np.all(layer.bias_hh == 0)
        fan_in = h
    for row in paper_lm.weight_sparsity():
        assert row["weight_ih"] == pytest.approx(0.95, abs=1e-6)
        assert row["weight_hh"] == pytest.approx(0.95, abs=1e-6)
    assert paper_lm.metadata["synthetic"]["seed"] == 0


def test_paper_dvs_is_dense_with_a_linear_readout():
    dvs = synthetic_network("paper-dvs")
    assert dvs.layer_sizes == [256, 256]
    assert dvs.input_size == 512 and dvs.input_kind == "features"
    assert dvs.readout_kind == "linear" and dvs.readout_weight.shape == (11, 256)
    for layer in dvs.layers:
        assert isinstance(layer.weight_ih, np.ndarray)
        assert isinstance(layer.weight_hh, np.ndarray)
    assert set(PRESETS) == {"paper-lm", "paper-dvs"}


def test_same_seed_same_network_other_seed_other_network():
    a = synthetic_network(layer_sizes=(20, 10), input_size=7, sparsity=0.8, seed=5)
    b = synthetic_network(layer_sizes=(20, 10), input_size=7, sparsity=0.8, seed=5)
    c = synthetic_network(layer_sizes=(20, 10), input_size=7, sparsity=0.8, seed=6)
    assert (a.layers[1].weight_hh != b.layers[1].weight_hh).nnz == 0
    np.testing.assert_array_equal(a.layers[0].threshold, b.layers[0].threshold)
    assert (a.layers[1].weight_hh != c.layers[1].weight_hh).nnz > 0


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 30),
    cols=st.integers(1, 30),
    sparsity=st.floats(0.0, 0.99),
    seed=st.integers(0, 1000),
)
def test_magnitude_pruning_keeps_the_largest_weights(rows, cols, sparsity, seed):
    w = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    pruned = magnitude_prune(w, sparsity)
    keep = round((1 - sparsity) * rows * cols)
    assert pruned.nnz == keep
    dense = pruned.toarray()
    kept = dense != 0
    np.testing.assert_array_equal(dense[kept], w[kept])  # values untouched
    if 0 < keep < rows * cols:
        assert np.abs(w[kept]).min() >= np.abs(w[~kept]).max()


def test_xavier_normal_scale_and_thresholds():
    rng = np.random.default_rng(0)
    w = xavier_normal(rng, 600, 400)
    assert w.dtype == np.float32
    assert w.std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    theta = sample_thresholds(rng, 20_000, 0.3)
    assert theta.min() >= 0 and theta.max() <= 1
    assert theta.mean() == pytest.approx(0.3, abs=0.01)
    with pytest.raises(ValueError, match="threshold mean"):
        sample_thresholds(rng, 3, 1.5)


def test_custom_network_is_a_valid_artifact_that_runs(tmp_path):
    net = synthetic_network(
        layer_sizes=(12, 8), input_size=5, sparsity=0.5, seed=1, readout_kind="linear",
        num_classes=3,
    )  # fmt: skip
    assert isinstance(net, DeploymentArtifact)
    xs = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    run = net.run_reference(xs)
    assert run.logits.shape == (4, 3)
    assert all(np.all(np.isfinite(e)) for e in run.layer_events)
    loaded = DeploymentArtifact.load(net.save(tmp_path / "syn.npz"))
    assert (loaded.layers[0].weight_ih != net.layers[0].weight_ih).nnz == 0
    dense = synthetic_network(layer_sizes=(4,), input_size=3, sparsity=0.0)
    assert isinstance(dense.layers[0].weight_hh, np.ndarray)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preset": "paper-xl"}, "unknown preset"),
        ({"preset": "paper-lm", "sparsity": 1.0}, "sparsity"),
        ({"layer_sizes": (4,)}, "needs layer_sizes and input_size"),
        ({"layer_sizes": (0,), "input_size": 3}, ">= 1"),
        ({"layer_sizes": (4,), "input_size": 3, "readout_kind": "linear"}, "num_classes"),
    ],
)
def test_bad_requests_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic_network(**kwargs)
