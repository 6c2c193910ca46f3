"""binary16 rounding of received values (the bitmap16 design's 16-bit value array)."""

from __future__ import annotations

import numpy as np
import pytest

from snn_egru.reference import egru_step
from spinnaker2_backend import map_network
from spinnaker2_backend.receive_bitmap import round_received
from spinnaker2_backend.simulator import LayerSimulator, run_mapping
from spinnaker2_backend.synthetic import synthetic_network
from tests.spinnaker2_backend.conftest import small_net_inputs


@pytest.fixture(scope="module")
def inputs():
    return small_net_inputs(40)


def rounded_reference(artifact, xs, *, input_by_packets: bool):
    """The float32 reference with every received value rounded to binary16 first: each
    layer's ``y_{t-1}`` and the inputs of layers > 0 (layer 0's too when it arrives as
    packets)."""
    states = artifact.initial_states(dtype=np.float32)
    out = [[] for _ in artifact.layers]
    for x in artifact.layer_inputs(xs):
        inp = x
        for i, layer in enumerate(artifact.layers):
            if i > 0 or input_by_packets:
                inp = inp.astype(np.float16).astype(np.float32)
            state = states[i]._replace(y=state_y16(states[i].y))
            inp, states[i] = egru_step(inp, state, layer)
            out[i].append(inp)
    return [np.stack(o) for o in out]


def state_y16(y):
    return y.astype(np.float16).astype(np.float32)


def test_round_received_by_hand():
    v = np.array([1.0, 1.0 + 2**-11, 1.0 + 3 * 2**-11, 0.1, 1e-9, -2.0], dtype=np.float32)
    got = round_received(v)
    assert got.dtype == np.float32
    # ties to even: 1 + 2^-11 -> 1, 1 + 3 * 2^-11 -> 1 + 2^-9 ... the binary16 grid at 1 is 2^-10
    np.testing.assert_array_equal(got[:3], [1.0, 1.0, 1.0 + 2 * 2**-10])
    assert got[3] == np.float32(np.float16(0.1)) and abs(got[3] / 0.1 - 1) <= 2**-11
    assert got[4] == 0.0 and got[5] == -2.0
    with pytest.raises(ValueError, match="beyond binary16's range"):
        round_received(np.array([7e4], dtype=np.float32))


@pytest.mark.parametrize("input_source", ["dram", "host"])
def test_rounding_on_equals_a_reference_with_the_same_rounding(small_net, inputs, input_source):
    m = map_network(
        small_net, max_units_per_pe=8, receive_policy="bitmap16", input_source=input_source
    )
    on = run_mapping(m, inputs)  # the default for bitmap16: rounded
    want = rounded_reference(small_net, inputs, input_by_packets=input_source == "host")
    for got, w in zip(on.layer_events, want):
        np.testing.assert_array_equal(got, w)
    off = run_mapping(m, inputs, round_received=False)
    ref = small_net.run_reference(inputs)
    for got, w in zip(off.layer_events, ref.layer_events):
        np.testing.assert_array_equal(got, w)
    # the rounding changes the values (the test means something), not the network's activity
    diff = [np.max(np.abs(a - b)) for a, b in zip(on.layer_events, off.layer_events)]
    assert max(diff) > 0
    assert all(np.mean(a != 0) > 0.05 for a in on.layer_events)


def test_rounding_is_refused_for_policies_that_keep_float32(small_net, inputs):
    m = map_network(small_net, max_units_per_pe=8, receive_policy="event-list")
    with pytest.raises(ValueError, match="keeps float32 values"):
        run_mapping(m, inputs, round_received=True)
    # off is the default for every other policy: the reference bit for bit
    run = run_mapping(m, inputs)
    for got, w in zip(run.layer_events, small_net.run_reference(inputs).layer_events):
        np.testing.assert_array_equal(got, w)


def test_compiled_rounding_equals_numpys_float16_bit_for_bit():
    """Every finite binary16 value, the float32 values next to it, every midpoint between
    two binary16 values and its neighbours, and random values: the compiled rounding gives
    numpy's ``astype(float16)`` bits (ties to even, subnormals, the carry into the exponent)."""
    from spinnaker2_backend.kernels_half import HALF_OVERFLOW, round_binary16

    half = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    exact = np.unique(half[np.isfinite(half)].astype(np.float32))
    mid = ((exact[:-1].astype(np.float64) + exact[1:]) / 2).astype(np.float32)
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [exact, mid, np.array([-0.0, 0.0], np.float32)]  # np.unique keeps one zero
        + [np.nextafter(v, d) for v in (exact, mid) for d in (np.inf, -np.inf)]
        + [rng.standard_normal(10**5).astype(np.float32) * np.float32(100)]
        + [rng.uniform(-1e-4, 1e-4, 10**5).astype(np.float32)]
    )
    values = values[np.abs(values) < HALF_OVERFLOW].astype(np.float32)
    out = np.empty_like(values)
    nonzeros, largest = round_binary16(values, out)
    want = values.astype(np.float16).astype(np.float32)
    assert np.array_equal(out.view(np.uint32), want.view(np.uint32))
    assert nonzeros == np.count_nonzero(want) and largest == -1.0
    assert np.array_equal(round_received(values), want)  # the simulator's entry point
    flagged = round_binary16(
        np.array([1.0, HALF_OVERFLOW, -7e4], np.float32), np.empty(3, np.float32)
    )
    assert flagged == (3, 7e4)


@pytest.mark.parametrize("fmt, policy", [("csr", "bitmap16"), ("event", "event-list")])
def test_the_compiled_step_rejects_what_bitmap16_cannot_keep(fmt, policy):
    """The fused front of a step (kernels_step.layer_front) hands NaN / infinite inputs and
    values beyond binary16 to the checks, which raise naming them; a clean step after a
    rejected one runs as if the rejected one had not been tried."""
    net = synthetic_network(layer_sizes=(6, 5), input_size=4, sparsity=0.0, seed=1)
    m = map_network(net, max_units_per_pe=3, receive_policy=policy, weight_format=fmt)
    x = np.zeros(6, dtype=np.float32)
    x[1] = 7e4
    if policy == "bitmap16":
        with pytest.raises(ValueError, match="beyond binary16's range"):
            LayerSimulator(m, 1).step(x)
    x[1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        LayerSimulator(m, 1).step(x)
    clean = np.linspace(-1, 1, 6).astype(np.float32)
    sim, fresh = LayerSimulator(m, 1), LayerSimulator(m, 1)
    with pytest.raises(ValueError):
        sim.step(x)
    got, want = sim.step(clean), fresh.step(clean)
    np.testing.assert_array_equal(got.y, want.y)
    np.testing.assert_array_equal(got.ops, want.ops)
