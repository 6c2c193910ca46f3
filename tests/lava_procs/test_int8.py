"""Int8 artifacts in Lava: the ``spinnaker2`` model runs the int8 codes bit-exactly (equal to
the quantised reference and to the direct simulator run), ``floating_pt`` runs the
dequantised reference."""

from __future__ import annotations

import numpy as np
import pytest

from lava_procs.run import run_network
from spinnaker2_backend import map_network
from spinnaker2_backend.simulator import run_mapping
from spinnaker2_backend.synthetic import quantize_network
from tests.lava_procs.conftest import token_artifact
from tests.lava_procs.test_spinnaker2 import assert_same_chip_run


@pytest.mark.parametrize(
    ("fmt", "mode"), [("csr-int8", "float"), ("event-int8", "float"), ("mac-int8", "int8")]
)
def test_int8_artifact_on_both_backends(fmt, mode, no_leftover_processes):
    float_art = token_artifact(seed=31, layer_sizes=(10, 12, 7)).with_sparse_weights()
    tokens = np.random.default_rng(32).integers(0, 13, size=24)
    art = quantize_network(float_art, mode=mode, calibration_inputs=tokens)
    ref = art.run_reference(tokens)  # the quantised reference (int8 products)
    deq = art.dequantized().run_reference(tokens)

    chip = run_network(art, tokens, "spinnaker2", weight_format=fmt, max_units_per_pe=4,
                       timeout_s=60)  # fmt: skip
    for got, want in zip(chip.layer_events, ref.layer_events):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(chip.logits, ref.logits)
    direct = run_mapping(map_network(art, weight_format=fmt, max_units_per_pe=4), tokens)
    assert_same_chip_run(chip.chip, direct)

    floating = run_network(art, tokens, "floating_pt", timeout_s=60)
    for got, want in zip(floating.layer_events, deq.layer_events):
        np.testing.assert_array_equal(got, want)
    if mode == "int8":  # the MAC array's quantised events differ from the float view's
        assert any(not np.array_equal(a, b) for a, b in zip(ref.layer_events, deq.layer_events))
