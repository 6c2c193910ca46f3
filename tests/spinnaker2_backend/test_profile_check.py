"""The profile evidence of docs/fidelity.md ("What still disagrees")."""

from __future__ import annotations

import numpy as np
import pytest

from spinnaker2_backend import map_network
from spinnaker2_backend.calibration import sequence_profile
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.profile_check import (
    ProfileAlternative,
    _input_ahead,
    layer_weight_counts,
)
from spinnaker2_backend.simulator import run_mapping
from spinnaker2_backend.synthetic import synthetic_network
from spinnaker2_backend.timing import OP_INDEX


@pytest.fixture(scope="module")
def small():
    net = synthetic_network(
        layer_sizes=(24, 24), input_size=16, sparsity=0.7, seed=1, threshold_mean=0.1
    )
    m = map_network(net, max_units_per_pe=8, receive_policy="bitmap16", receive_capacity=24)
    xs = np.random.default_rng(0).standard_normal((10, 16)).astype(np.float32)
    return m, run_mapping(m, xs)


def test_layer0_input_ahead_drops_its_input_product_only(small):
    m, run = small
    ahead = _input_ahead(run)
    before = sequence_profile(run, CycleCosts()).layer_critical_phase_seconds()
    after = sequence_profile(ahead, CycleCosts()).layer_critical_phase_seconds()
    assert before[0]["input_product"] > 0 and after[0]["input_product"] == 0
    assert after[1] == before[1]  # the other layer is untouched
    units = np.asarray(run.step_ops[0])[:, OP_INDEX["units"], :]
    np.testing.assert_array_equal(
        np.asarray(ahead.step_ops[0])[:, OP_INDEX["dram_bytes"], :], 3 * 4 * units
    )


def test_weight_counts_by_hand(small):
    m, run = small
    rows = layer_weight_counts(m, run)
    for i, row in enumerate(rows):
        nnz = [
            (m.pe_weights(i, s).weight_ih.nnz, m.pe_weights(i, s).weight_hh.nnz)
            for s in m.layers[i].slices
        ]
        assert (row["stored_ih"], row["stored_hh"]) == max(nnz, key=sum)
        assert 0 <= row["multiplied_hh"] <= 1
    assert rows[0]["multiplied_ih"] == 1.0  # layer 0's input from DRAM is dense: every hit


def test_paper_ranking():
    a = ProfileAlternative("x", 5.0, {"input product": 1.0, "recurrent product": 2.0, "b": 0.5})
    b = ProfileAlternative("y", 5.0, {"input product": 3.0, "recurrent product": 2.0})
    assert a.paper_ranking and not b.paper_ranking
    assert not ProfileAlternative("z", None, {}).paper_ranking
