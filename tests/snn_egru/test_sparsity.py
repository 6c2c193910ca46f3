"""Sparsity accounting: hand-computed MAC counts, chunked streams, the torch probe, plots."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from snn_egru.plots import (
    SparsityPoint,
    plot_activity_over_time,
    plot_sparsity_vs_perplexity,
    sparsity_point,
)
from snn_egru.sequence import EGRUSequence
from snn_egru.sparsity import (
    MACCounts,
    SparsityMeter,
    SparsityProbe,
    column_nnz,
    format_sparsity_report,
    product_macs,
)


def matrix_with_column_nnz(rows: int, nnz_per_column: list[int]) -> np.ndarray:
    """A (rows, len(nnz)) matrix whose column j has exactly nnz[j] non-zeros (values 1..)."""
    w = np.zeros((rows, len(nnz_per_column)), dtype=np.float32)
    for j, count in enumerate(nnz_per_column):
        w[:count, j] = np.arange(1, count + 1)
    return w


# Layer 0: H = 2, I = 3; W_ih column nnz [4, 6, 1] (11 of 18), W_hh column nnz [2, 5] (7 of 12)
W_IH0 = matrix_with_column_nnz(6, [4, 6, 1])
W_HH0 = matrix_with_column_nnz(6, [2, 5])
X = np.array([[[1.0, 0.0, 2.0]], [[0.0, 0.0, 3.0]]], dtype=np.float32)  # (T=2, B=1, I=3)
Y0 = np.array([[[0.5, 0.0]], [[0.0, 0.0]]], dtype=np.float32)  # one event in 4 unit-steps
# Layer 1: H = 1, I = 2; W_ih column nnz [1, 3], W_hh column nnz [2]; fires every step
W_IH1 = matrix_with_column_nnz(3, [1, 3])
W_HH1 = matrix_with_column_nnz(3, [2])
Y1 = np.array([[[0.7]], [[0.9]]], dtype=np.float32)


def test_column_nnz_dense_sparse_and_explicit_zeros():
    assert column_nnz(W_IH0).tolist() == [4, 6, 1]
    csr = sp.csr_matrix(W_IH0)
    csr.data[0] = 0.0  # an explicit stored zero is not a weight
    assert column_nnz(csr).tolist() == [3, 6, 1]


def test_single_layer_hand_computed():
    meter = SparsityMeter([(W_IH0, W_HH0)], readout_weight=matrix_with_column_nnz(4, [3, 1]))
    meter.update(X, [Y0])
    account = meter.result()
    layer = account.layers[0]
    # input: x0 has columns {0, 2} active, x1 has {2}; dense 6*3; 11 weights
    assert layer.input_macs == MACCounts(18, 11, (6 * 2 + 6 * 1) / 2, ((4 + 1) + 1) / 2)
    # recurrent: y_{-1} = 0 (fresh state), y_0 has unit 0 active (column nnz 2)
    assert layer.recurrent_macs == MACCounts(12, 7, (0 + 6) / 2, (0 + 2) / 2)
    assert layer.activity_sparsity == 0.75
    assert layer.events_per_token == 0.5
    assert layer.input_density == 0.5
    assert layer.weight_sparsity_ih == pytest.approx(7 / 18)
    assert layer.weight_sparsity_hh == pytest.approx(5 / 12)
    # readout (O=4) on the events: y_0 unit 0 (column nnz 3), y_1 none
    assert account.readout_macs == MACCounts(8, 4, (4 + 0) / 2, (3 + 0) / 2)
    assert account.total_macs == MACCounts(18 + 12 + 8, 11 + 7 + 4, 9 + 3 + 2, 3 + 1 + 1.5)
    assert account.tokens == 2
    assert layer.activity_over_time.tolist() == [0.5, 0.0]
    assert account.rnn_macs.reduction == pytest.approx(30 / 4)


def test_incoming_state_events_count_for_the_first_recurrent_product():
    meter = SparsityMeter([(W_IH0, W_HH0)])
    meter.update(X, [Y0], previous_events=[np.array([[0.0, 0.3]])])
    rec = meter.result().layers[0].recurrent_macs
    # y_{-1} has unit 1 active (column nnz 5), y_0 unit 0 (column nnz 2)
    assert rec.activity_sparse == (6 + 6) / 2
    assert rec.event_driven == (5 + 2) / 2


def test_two_layers_hand_computed():
    meter = SparsityMeter([(W_IH0, W_HH0), (W_IH1, W_HH1)])
    meter.update(X, [Y0, Y1])
    account = meter.result()
    layer1 = account.layers[1]
    # layer 1's input is layer 0's events: (0.5, 0) then (0, 0)
    assert layer1.input_macs == MACCounts(6, 4, (3 * 1 + 0) / 2, (1 + 0) / 2)
    # recurrent: y1_{-1} = 0, then y1_0 = 0.7 (column nnz 2)
    assert layer1.recurrent_macs == MACCounts(3, 2, (0 + 3) / 2, (0 + 2) / 2)
    assert layer1.activity_sparsity == 0.0
    assert account.activity_sparsity == pytest.approx(1 - (1 + 2) / (4 + 2))
    assert account.events_per_token == pytest.approx(0.5 + 1.0)
    zeros = 7 + 5 + 2 + 1
    assert account.weight_sparsity == pytest.approx(zeros / (18 + 12 + 6 + 3))
    table = format_sparsity_report(account, title="hand case")
    assert "hand case" in table and "L1 recurrent" in table and "0.7500" in table


def brute_force_event_macs(w: np.ndarray, vectors: np.ndarray) -> float:
    total = 0
    for v in vectors:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                total += int(w[i, j] != 0 and v[j] != 0)
    return total


sparse_values = st.sampled_from([0.0, 0.0, 0.0, 0.25, -1.5])


@settings(max_examples=30, deadline=None)
@given(
    w=hnp.arrays(
        np.float32, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=sparse_values
    ),
    data=st.data(),
)
def test_event_driven_macs_equal_brute_force_count(w, data):
    vectors = data.draw(
        hnp.arrays(
            np.float32, st.tuples(st.integers(1, 5), st.just(w.shape[1])), elements=sparse_values
        )
    )
    counts, n = product_macs(w, vectors)
    assert n == vectors.shape[0]
    assert counts.event_driven == brute_force_event_macs(w, vectors)
    assert counts.dense == w.size * n
    assert counts.weight_sparse == np.count_nonzero(w) * n
    assert counts.event_driven <= min(counts.weight_sparse, counts.activity_sparse)
    assert product_macs(sp.csr_matrix(w), vectors)[0] == counts


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(2, 12), split=st.integers(1, 11))
def test_chunked_stream_equals_one_pass(seed, steps, split):
    split = min(split, steps - 1)
    rng = np.random.default_rng(seed)
    hidden, inputs, batch = 4, 3, 2
    w_ih = rng.normal(size=(3 * hidden, inputs)) * (rng.random((3 * hidden, inputs)) < 0.5)
    w_hh = rng.normal(size=(3 * hidden, hidden)) * (rng.random((3 * hidden, hidden)) < 0.5)
    x = rng.normal(size=(steps, batch, inputs)) * (rng.random((steps, batch, inputs)) < 0.7)
    y = rng.normal(size=(steps, batch, hidden)) * (rng.random((steps, batch, hidden)) < 0.3)
    whole = SparsityMeter([(w_ih, w_hh)], track_time=False)
    whole.update(x, [y])
    chunked = SparsityMeter([(w_ih, w_hh)], track_time=False)
    chunked.update(x[:split], [y[:split]])
    chunked.update(x[split:], [y[split:]], previous_events=[y[split - 1]])
    a, b = whole.result().layers[0], chunked.result().layers[0]
    for field in ("dense", "weight_sparse", "activity_sparse", "event_driven"):
        assert getattr(a.input_macs, field) == pytest.approx(getattr(b.input_macs, field))
        assert getattr(a.recurrent_macs, field) == pytest.approx(getattr(b.recurrent_macs, field))
    assert a.events == b.events and a.tokens == b.tokens == steps * batch


def test_meter_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="not \\(3H, I\\) / \\(3H, H\\)"):
        SparsityMeter([(np.zeros((5, 3)), np.zeros((6, 2)))])
    meter = SparsityMeter([(W_IH0, W_HH0)])
    with pytest.raises(ValueError, match="do not match"):
        meter.update(X, [np.zeros((2, 1, 5))])
    with pytest.raises(ValueError, match="events of 2 layers"):
        meter.update(X, [Y0, Y0])


# ----------------------------------------------------------------------------- torch probe
class FeatureModel(torch.nn.Module):
    """DVS-like protocol model: batch-first EGRU on features, linear readout, no all-layers."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = EGRUSequence(5, [6, 4], batch_first=True, threshold_mean=0.1)
        self.readout = torch.nn.Linear(4, 3)

    def forward(self, x, state=None):
        y, state = self.rnn(x, state)
        return self.readout(y), state

    def deployment_io(self):
        return {
            "input_kind": "features",
            "embedding": None,
            "readout_kind": "linear",
            "readout_weight": self.readout.weight.detach().numpy(),
            "readout_bias": self.readout.bias.detach().numpy(),
            "readout_source": "y",
        }


def test_probe_matches_a_meter_fed_by_hand_across_carried_chunks():
    torch.manual_seed(0)
    model = FeatureModel().eval()
    with torch.no_grad():
        model.rnn.weight_hh_l0[:, :2] = 0.0  # some weight sparsity
    x = torch.randn(3, 10, 5)  # (B, T, F)
    with SparsityProbe(model) as probe, torch.no_grad():
        _, state = model(x[:, :6])
        model(x[:, 6:], state)
    account = probe.result()
    with torch.no_grad():
        _, s1, ys1 = model.rnn(x[:, :6], return_all_layers=True)
        _, _, ys2 = model.rnn(x[:, 6:], s1, return_all_layers=True)
    weights = [
        (getattr(model.rnn, f"weight_ih_l{k}"), getattr(model.rnn, f"weight_hh_l{k}"))
        for k in range(2)
    ]
    meter = SparsityMeter(weights, readout_weight=model.readout.weight.detach())
    meter.update(x[:, :6].transpose(0, 1), [y.transpose(0, 1) for y in ys1])
    meter.update(x[:, 6:].transpose(0, 1), [y.transpose(0, 1) for y in ys2], [s.y for s in s1])
    expected = meter.result()
    assert account.tokens == expected.tokens == 30
    for ours, theirs in zip(account.layers, expected.layers):
        assert ours.events == theirs.events > 0
        assert ours.input_macs == theirs.input_macs
        assert ours.recurrent_macs == theirs.recurrent_macs
    assert account.readout_macs == expected.readout_macs
    assert account.layers[0].weight_sparsity_hh == pytest.approx(2 / 6)
    assert len(account.layers[0].activity_over_time) == 6  # longest chunk
    # hooks are gone after the block
    with torch.no_grad():
        model(x)
    assert probe.result().tokens == 30


def test_plots_write_png_files(tmp_path):
    meter = SparsityMeter([(W_IH0, W_HH0), (W_IH1, W_HH1)])
    meter.update(X, [Y0, Y1])
    account = meter.result()
    path = plot_activity_over_time(account, tmp_path / "activity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = [
        sparsity_point("dense", 120.0, account),
        SparsityPoint("pruned 90%", 135.0, 0.8, 0.9, 20.0),
        {
            "label": "pruned 95%",
            "perplexity": 150.0,
            "activity_sparsity": 0.82,
            "weight_sparsity": 0.95,
            "mac_reduction": 40.0,
        },
    ]
    for axis in ("activity_sparsity", "weight_sparsity", "mac_reduction"):
        out = plot_sparsity_vs_perplexity(points, tmp_path / f"{axis}.png", x=axis)
        assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="x must be one of"):
        plot_sparsity_vs_perplexity(points, tmp_path / "p.png", x="speed")
    with pytest.raises(ValueError, match="ending in .png"):
        plot_activity_over_time(account, tmp_path / "a.pdf")
    no_series = SparsityMeter([(W_IH0, W_HH0)], track_time=False)
    no_series.update(X, [Y0])
    with pytest.raises(ValueError, match="no activity time series"):
        plot_activity_over_time(no_series.result(), tmp_path / "b.png")


def test_unit_firing_rate_histogram_writes_a_png_and_refuses_bad_rates(tmp_path):
    from snn_egru.plots import plot_unit_firing_rates

    rates = {"a": np.array([0.0, 0.0, 0.5, 1.0]), "b": np.linspace(0.0, 1.0, 16)}
    path = plot_unit_firing_rates(rates, tmp_path / "rates.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="must be a non-empty array in \\[0, 1\\]"):
        plot_unit_firing_rates({"bad": np.array([0.2, 1.5])}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="at least one model"):
        plot_unit_firing_rates({}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="ending in .png"):
        plot_unit_firing_rates(rates, tmp_path / "rates.jpg")
