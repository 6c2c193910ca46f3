"""Mapping int8 artifacts: exact byte accounting per PE, the partition against exact bytes,
the receive policies, the CLI, and the errors that name the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_egru.reference import QuantizedWeight, quantize_weight
from spinnaker2_backend import Machine, MappingError, map_network, synthetic_network
from spinnaker2_backend.cli import main
from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.formats import slice_rows
from spinnaker2_backend.formats_int8 import (
    QUANTIZED_WEIGHT_FORMATS,
    encode_quantized,
    int8_weight_bytes,
    mac_tile_count,
)
from spinnaker2_backend.mapping.memory import layer_memory_models
from spinnaker2_backend.synthetic import quantize_for_format, quantize_network
from tests.spinnaker2_backend.strategies import pruned_networks


@pytest.fixture(scope="module")
def small():
    return synthetic_network(layer_sizes=(40, 24), input_size=18, sparsity=0.7, seed=3)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(0, 70),
    cols=st.integers(1, 300),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    fmt=st.sampled_from(QUANTIZED_WEIGHT_FORMATS),
)
def test_byte_formula_equals_the_encoding(rows, cols, density, seed, fmt):
    rng = np.random.default_rng(seed)
    w = sp.random(rows, cols, density=density, random_state=rng, dtype=np.float32, format="csr")
    qw = quantize_weight(w)
    block = encode_quantized(qw.values, qw.scale, fmt)
    tiles = mac_tile_count(qw.values)
    assert int8_weight_bytes(fmt, rows, cols, qw.values.nnz, tiles) == block.bytes
    if fmt == "mac-int8":
        assert tiles == block.num_tiles


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    net_seed=pruned_networks(most_units=50, most_inputs=40, most_sparsity=0.98, most_seed=1000),
    fmt=st.sampled_from(QUANTIZED_WEIGHT_FORMATS),
    max_units=st.one_of(st.none(), st.integers(1, 20)),
)
def test_every_pe_accounts_its_encoded_bytes(net_seed, fmt, max_units):
    net, seed = net_seed
    net = quantize_for_format(net, fmt, seed=seed)
    m = map_network(net, weight_format=fmt, max_units_per_pe=max_units, check=False)
    for s in m.slices:
        pw = m.pe_weights(s.layer, s)
        layout = m.memory[s.pe]
        items = {item: size for region, item, size in layout.items if region == "weights"}
        assert items == {"weight_ih": pw.weight_ih.bytes, "weight_hh": pw.weight_hh.bytes}
        assert pw.format_name == fmt


def test_auto_partition_fits_exactly_and_packs_greedily():
    """Tiny PEs force many slices: every slice fits by the exact count, and the PE count is
    that of greedy packing on exact bytes (no slice of the greedy split can grow)."""
    net = synthetic_network(layer_sizes=(120, 90), input_size=60, sparsity=0.6, seed=1)
    spec = ChipSpec(data_memory_bytes=24_000)
    for fmt in QUANTIZED_WEIGHT_FORMATS:
        q = quantize_for_format(net, fmt)
        m = map_network(q, weight_format=fmt, machine=Machine(chips=4, spec=spec))
        models = m.memory_models
        for lp in m.partition.layers:
            model = models[lp.layer]
            assert all(model.data_bytes(a, b) <= spec.data_memory_bytes for a, b in lp.bounds)
            # greedy reference: extend each slice while it fits
            start, count = 0, 0
            while start < model.hidden_size:
                stop = start + 1
                while stop < model.hidden_size and model.data_bytes(start, stop + 1) <= 24_000:
                    stop += 1
                start, count = stop, count + 1
            assert lp.num_slices == count, (fmt, lp.layer)


def test_int8_formats_store_about_a_quarter_of_the_value_bytes():
    net = synthetic_network(layer_sizes=(200, 200), input_size=100, sparsity=0.9, seed=0)
    q = quantize_network(net)
    csr = map_network(net, weight_format="csr", max_units_per_pe=25)
    int8 = map_network(q, weight_format="csr-int8", max_units_per_pe=25)
    nnz = sum(m.nnz(0, m.hidden_size)[0] + m.nnz(0, m.hidden_size)[1] for m in int8.memory_models)
    # float csr: 4 B value + 4 B index; csr-int8 here: 1 B code + 1 B column index (< 256)
    assert csr.report().total_weight_bytes > 8 * nnz
    ratio = csr.report().total_weight_bytes / int8.report().total_weight_bytes
    assert 3.3 < ratio < 4.1


@pytest.mark.parametrize("policy", ["dense", "reused", "event-list"])
def test_receive_policies_with_int8(small, policy):
    q = quantize_network(small)
    m = map_network(q, weight_format="csr-int8", receive_policy=policy, receive_capacity=10
                    if policy == "event-list" else None)  # fmt: skip
    assert m.report().receive_policy == policy
    with pytest.raises(MappingError, match="accumulate.*column order"):
        map_network(q, weight_format="event-int8", receive_policy="accumulate")


# --------------------------------------------------------------------------- errors
def test_quantized_artifact_with_a_float_format_names_the_int8_formats(small):
    with pytest.raises(MappingError, match="csr-int8.*mac-int8.*dequantized"):
        map_network(quantize_network(small), weight_format="csr")


def test_float_artifact_with_an_int8_format_names_the_export_and_ptq(small):
    with pytest.raises(MappingError, match=r"export --quantize int8.*quantize_artifact"):
        map_network(small, weight_format="csr-int8")
    with pytest.raises(MappingError, match="export --quantize int8"):
        layer_memory_models(small, spec=ChipSpec(), weight_format="mac-int8")


def test_product_mode_must_match_the_format(small):
    with pytest.raises(MappingError, match="MAC array.*--quant-products int8"):
        map_network(quantize_network(small, mode="float"), weight_format="mac-int8")
    with pytest.raises(MappingError, match="map with --weight-format mac-int8"):
        map_network(quantize_for_format(small, "mac-int8"), weight_format="csr-int8")


def test_bad_scales_and_codes_are_named(small):
    q = quantize_network(small)
    layer = q.layers[0]
    bad_scale = layer._replace(
        weight_ih=QuantizedWeight(layer.weight_ih.values, layer.weight_ih.scale[:-1])
    )
    q.layers[0] = bad_scale  # bypasses the artifact's own check, as a hand-built one could
    with pytest.raises(MappingError, match=r"scale has shape.*re-quantise"):
        map_network(q, weight_format="csr-int8")
    codes = layer.weight_hh.values.copy()
    codes.data[0] = -128
    q.layers[0] = layer._replace(weight_hh=QuantizedWeight(codes, layer.weight_hh.scale))
    with pytest.raises(MappingError, match=r"\[-127, 127\].*re-quantise"):
        map_network(q, weight_format="event-int8")


# --------------------------------------------------------------------------- CLI
def test_cli_json_has_the_float_structure(capsys):
    assert main(["map", "--synthetic", "paper-dvs", "--weight-format", "dense", "--json"]) == 0
    floats = json.loads(capsys.readouterr().out)
    assert main(["map", "--synthetic", "paper-dvs", "--weight-format", "mac-int8", "--json"]) == 0
    ints = json.loads(capsys.readouterr().out)
    assert set(ints) == set(floats) and set(ints["pes"][0]) == set(floats["pes"][0])
    assert ints["weight_format"] == "mac-int8" and ints["fits"]
    # dense weights: one byte per code (plus scales and tile indices) instead of four
    assert 3.5 < floats["total_weight_bytes"] / ints["total_weight_bytes"] < 4.0


def test_cli_float_artifact_with_int8_format_is_one_line(small, tmp_path, capsys):
    path = small.save(tmp_path / "float.npz")
    assert main(["map", str(path), "--weight-format", "csr-int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--quantize int8" in err


def test_mac_tiles_follow_the_local_rows():
    """The tile count of a slice is that of its local block (gate-major rows), not of the
    global rows."""
    w = sp.random(3 * 20, 10, density=0.3, random_state=0, dtype=np.float32, format="csr")
    qw = quantize_weight(w)
    rows = slice_rows(20, 4, 13)
    block = encode_quantized(qw.values[rows], qw.scale[rows], "mac-int8")
    assert mac_tile_count(qw.values[rows]) == block.num_tiles
