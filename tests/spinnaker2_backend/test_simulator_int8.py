"""The simulated chip on int8 artifacts: bit-exact against the quantised numpy reference
(random pruned networks, every int8 format and receive policy, batches, state levels; a QAT
and a PTQ artifact of trained models), and the int8 cycle model counted by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_egru.reference import quantize_codes, state_levels
from spinnaker2_backend import map_network, synthetic_network
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.formats_int8 import QUANTIZED_WEIGHT_FORMATS
from spinnaker2_backend.simulator import LayerSimulator, run_mapping
from spinnaker2_backend.synthetic import quantize_network
from spinnaker2_backend.timing import OP_INDEX, PHASE_INDEX
from tests.spinnaker2_backend.strategies import pruned_networks

MODE = {"csr-int8": "float", "event-int8": "float", "mac-int8": "int8"}


def _assert_bit_equal(run, ref):
    for i, (a, b) in enumerate(zip(run.layer_events, ref.layer_events)):
        assert a.dtype == np.float32
        assert np.array_equal(a, b), f"layer {i} differs from the quantised reference"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    net_seed=pruned_networks(
        most_units=40, most_inputs=30, most_sparsity=0.95, most_seed=10_000, thresholds=(0.02, 0.5)
    ),
    fmt=st.sampled_from(QUANTIZED_WEIGHT_FORMATS),
    policy=st.sampled_from(["dense", "reused", "event-list"]),
    max_units=st.integers(1, 16),
    levels=st.booleans(),
)
def test_random_pruned_networks_are_bit_exact(net_seed, fmt, policy, max_units, levels):
    net, seed = net_seed
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((6, net.input_size)).astype(np.float32)
    q = quantize_network(net, mode=MODE[fmt], calibration_inputs=xs)
    if levels:
        q.layers = [lay._replace(state_levels=state_levels(6)) for lay in q.layers]
    ref = q.run_reference(xs)
    m = map_network(q, weight_format=fmt, receive_policy=policy, max_units_per_pe=max_units)
    _assert_bit_equal(run_mapping(m, xs), ref)


@pytest.mark.parametrize("fmt", QUANTIZED_WEIGHT_FORMATS)
def test_batches_equal_independent_runs(fmt):
    net = synthetic_network(layer_sizes=(30, 20), input_size=12, sparsity=0.7, seed=4,
                            threshold_mean=0.1)  # fmt: skip
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((3, 8, 12)).astype(np.float32)
    q = quantize_network(net, mode=MODE[fmt], calibration_inputs=xs[0])
    m = map_network(q, weight_format=fmt, max_units_per_pe=7, batch_size=3)
    run = run_mapping(m, xs, batch_size=3)
    for b in range(3):
        ref = q.run_reference(xs[b])
        for layer in range(2):
            assert np.array_equal(run.layer_events[layer][b], ref.layer_events[layer])


def test_int8_formats_need_float32():
    net = quantize_network(synthetic_network(layer_sizes=(8,), input_size=4, seed=0))
    m = map_network(net, weight_format="csr-int8")
    with pytest.raises(ValueError, match="runs in float32"):
        LayerSimulator(m, 0, dtype=np.float64)


# --------------------------------------------------------------------- cycle model
def _one_step(fmt, policy="dense"):
    net = synthetic_network(layer_sizes=(24,), input_size=40, sparsity=0.6, seed=2,
                            threshold_mean=0.1)  # fmt: skip
    x = np.random.default_rng(3).standard_normal(40).astype(np.float32)
    x[::3] = 0.0
    q = quantize_network(net, mode=MODE[fmt], calibration_inputs=x[None])
    m = map_network(q, weight_format=fmt, max_units_per_pe=10, receive_policy=policy)
    sim = LayerSimulator(m, 0)
    return m, q, x, sim.step(x)


def test_csr_int8_cycles_by_hand():
    m, q, x, r = _one_step("csr-int8")
    c = CycleCosts()
    for i, s in enumerate(m.layers[0].slices):
        pw = m.pe_weights(0, s)
        rows = 3 * s.num_units
        walk = c.csr_nonzero_cycles + c.int8_convert_cycles + c.mac_cycles
        want = rows * (c.csr_row_cycles + c.int8_row_scale_cycles) + pw.weight_ih.nnz * walk
        assert r.phase_cycles[PHASE_INDEX["input_product"], i] == pytest.approx(want)
        assert r.ops[OP_INDEX["weight_bytes_read"], i] == pw.bytes


def test_event_int8_walks_the_columns_of_events():
    m, q, x, r = _one_step("event-int8")
    c = CycleCosts()
    active = np.flatnonzero(x)
    for i, s in enumerate(m.layers[0].slices):
        block = m.pe_weights(0, s).weight_ih
        walked = int(block.column_lengths()[active].sum())
        assert walked == block.weights_touched(x)
        walk = c.event_nonzero_cycles + c.int8_convert_cycles + c.mac_cycles
        want = (
            active.size * c.event_column_cycles
            + 3 * s.num_units * c.int8_row_scale_cycles
            + walked * walk
        )
        assert r.phase_cycles[PHASE_INDEX["input_product"], i] == pytest.approx(want)


def test_mac_int8_cycles_by_hand():
    m, q, x, r = _one_step("mac-int8")
    c = CycleCosts()
    codes = quantize_codes(x, q.layers[0].input_scale)
    for i, s in enumerate(m.layers[0].slices):
        block = m.pe_weights(0, s).weight_ih
        tiles = block.tiles_issued(codes)
        assert r.ops[OP_INDEX["input_tiles"], i] == tiles
        assert r.ops[OP_INDEX["macs"], i] >= tiles * 64
        want = (
            c.mac_setup_cycles
            + tiles * c.mac_tile_cycles
            + 3 * s.num_units * c.mac_row_readout_cycles
            + np.count_nonzero(codes) * c.event_quantise_cycles
        )
        assert r.phase_cycles[PHASE_INDEX["input_product"], i] == pytest.approx(want)
    # recurrent product at step 0: y_prev is all zero, no tile is issued
    assert r.ops[OP_INDEX["recurrent_tiles"]].sum() == 0


def test_csr_int8_with_an_event_list_merges_like_csr():
    m, q, x, r = _one_step("csr-int8", policy="event-list")
    assert r.ops[OP_INDEX["input_merge_steps"]].sum() == 0  # layer 0 from DRAM: no list
    assert r.ops[OP_INDEX["list_entries"]].sum() == 0  # nothing fired before step 0


# --------------------------------------------------------------- trained models
@pytest.mark.slow
def test_qat_and_ptq_artifacts_of_trained_models_are_bit_exact():
    torch = pytest.importorskip("torch")
    from snn_egru.export import export_artifact
    from snn_egru.pruning import PruningConfig
    from snn_egru.quantization import QuantizationConfig, quantize_artifact
    from snn_egru.training.lm import load_language_model, train_language_model
    from tests.snn_egru.test_training_lm import cyclic_corpus, tiny_configs

    torch.set_num_threads(1)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        model_config, train_config = tiny_configs(
            max_steps=6,
            quantize=QuantizationConfig(products="int8", state="uniform"),
            pruning=PruningConfig(target_sparsity=0.5, schedule="one_shot", start_step=2),
        )
        train_language_model(model_config, train_config, data=cyclic_corpus(),
                             out_dir=Path(tmp), show_progress=False)  # fmt: skip
        model, vocab, _ = load_language_model(Path(tmp) / "last.pt")
    qat = export_artifact(model, vocabulary=vocab)
    tokens = cyclic_corpus().test[:40].numpy()
    ref = qat.run_reference(tokens)
    m = map_network(qat, weight_format="mac-int8", receive_policy="event-list")
    run = run_mapping(m, tokens)
    _assert_bit_equal(run, ref)
    np.testing.assert_array_equal(run.logits, ref.logits)
    # PTQ ("float" products) of the dequantised float network on the Arm-core formats
    ptq = quantize_artifact(qat.dequantized(), mode="float")
    ref = ptq.run_reference(tokens)
    for fmt in ("csr-int8", "event-int8"):
        _assert_bit_equal(run_mapping(map_network(ptq, weight_format=fmt), tokens), ref)
