"""Every "to fit, do X" names the receive policy, capacity and balance that would fit, and
following each one programmatically makes the mapping fit (issue 22, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend import ChipSpec, map_network
from spinnaker2_backend.mapping.base import MappingError
from spinnaker2_backend.synthetic import synthetic_network
from tests.spinnaker2_backend.conftest import zero_bias_layer

SPEC = ChipSpec(data_memory_bytes=8 * 1024, stack_heap_bytes=1024, debug_log_bytes=256)


def _advice(net, **options):
    with pytest.raises(MappingError) as err:
        map_network(net, spec=SPEC, **options)
    return {a.kind: a for a in err.value.advice}, str(err.value)


def _wide() -> DeploymentArtifact:
    # 40 units fed by 1400 inputs: dense receive buffers (1440 words) do not fit 8 KiB
    return synthetic_network(layer_sizes=(40,), input_size=1400, sparsity=0.998, seed=3)


def test_receive_policy_advice_is_followed():
    net = _wide()
    advice, text = _advice(net, pes_per_layer=4, input_source="host")
    tip = advice["receive_policy"]
    assert f"receive_policy={tip.change['receive_policy']}" in text
    mapping = map_network(net, spec=SPEC, pes_per_layer=4, input_source="host", **tip.change)
    assert mapping.fits


def test_receive_capacity_advice_is_followed():
    net = _wide()
    options = dict(pes_per_layer=4, input_source="host", receive_policy="event-list")
    advice, _ = _advice(net, receive_capacity=1000, **options)
    tip = advice["receive_capacity"]
    assert 1 <= tip.change["receive_capacity"] < 1000
    options.update(tip.change)
    assert map_network(net, spec=SPEC, **options).fits
    # one more entry than advised does not fit: the advice is the largest that fits
    options["receive_capacity"] += 1
    with pytest.raises(MappingError):
        map_network(net, spec=SPEC, **options)


def _lopsided() -> DeploymentArtifact:
    """16 units: the first 4 have dense rows, the rest almost none; equal unit counts put
    the heavy ones on one PE, a split by bytes spreads them."""
    rng = np.random.default_rng(0)
    h, i = 16, 60
    dense = rng.standard_normal((3 * h, i)).astype(np.float32)
    rows = np.zeros(3 * h, bool)
    for gate in range(3):
        rows[gate * h : gate * h + 4] = True
    w_ih = sp.csr_matrix(np.where(rows[:, None], dense, 0.0).astype(np.float32))
    w_hh = sp.csr_matrix(np.eye(3 * h, h, dtype=np.float32))
    return DeploymentArtifact(layers=[zero_bias_layer(w_ih, w_hh, 0.1)], input_kind="features")


def test_balance_advice_is_followed():
    net = _lopsided()
    spec = ChipSpec(data_memory_bytes=5 * 1024, stack_heap_bytes=1024, debug_log_bytes=256)
    with pytest.raises(MappingError) as err:
        map_network(net, spec=spec, pes_per_layer=4, balance="units")
    tip = next(a for a in err.value.advice if a.kind == "balance")
    assert tip.change == {"balance": "bytes"}
    assert map_network(net, spec=spec, pes_per_layer=4, **tip.change).fits
