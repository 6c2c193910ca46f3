"""Golden trace of the numpy reference EGRU step, computed by hand (scalar math) in the test.

Layer: I = 1 input, H = 2 units, 3 steps; gate order (r, z, n) in nn.GRU layout.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from snn_egru.reference import (
    TRACE_DECAY,
    EGRUParams,
    EGRUState,
    egru_sequence,
    egru_step,
    init_state,
    validate_params,
)


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# rows: r0, r1, z0, z1, n0, n1
W_IH = [[0.5], [-0.5], [0.0], [1.0], [2.0], [1.0]]
W_HH = [
    [1.0, 0.0],  # r0 <- y0
    [0.0, 0.0],  # r1
    [0.0, 0.0],  # z0
    [-1.0, 0.0],  # z1 <- y0
    [0.5, 0.0],  # n0 <- y0
    [2.0, -1.0],  # n1 <- y0, y1
]
B_IH = [0.0, 0.0, 0.5, 0.0, 0.0, 0.1]
B_HH = [0.0, 0.0, 0.0, 0.0, 0.2, 0.0]
THETA = [0.3, 0.9]
XS = [1.0, 0.5, -1.0]


def golden_params() -> EGRUParams:
    return EGRUParams(
        weight_ih=np.array(W_IH, dtype=np.float64),
        weight_hh=np.array(W_HH, dtype=np.float64),
        bias_ih=np.array(B_IH, dtype=np.float64),
        bias_hh=np.array(B_HH, dtype=np.float64),
        threshold=np.array(THETA, dtype=np.float64),
    )


def hand_candidate(x: float, y0p: float, y1p: float, c0p: float, c1p: float):
    """``(ct0, ct1)`` of one step, unit by unit (each line is one equation of docs/egru.md,
    with the golden weights written in: ``gi = W_IH x + B_IH``, ``gh = W_HH y_prev + B_HH``)."""
    gi = [0.5 * x, -0.5 * x, 0.0 * x + 0.5, 1.0 * x, 2.0 * x, 1.0 * x + 0.1]
    gh = [1.0 * y0p, 0.0, 0.0, -1.0 * y0p, 0.5 * y0p + 0.2, 2.0 * y0p - 1.0 * y1p]
    r0, r1 = sig(gi[0] + gh[0]), sig(gi[1] + gh[1])
    z0, z1 = sig(gi[2] + gh[2]), sig(gi[3] + gh[3])
    n0 = math.tanh(gi[4] + r0 * gh[4])
    n1 = math.tanh(gi[5] + r1 * gh[5])
    return z0 * c0p + (1 - z0) * n0, z1 * c1p + (1 - z1) * n1


def hand_trace() -> list[dict[str, list[float]]]:
    """The three steps written out (:func:`hand_candidate`, then threshold and reset)."""
    steps = []
    # ---- step 1: x = 1.0, y_prev = c_prev = (0, 0); only biases reach gh.
    # r = sig(0.5), sig(-0.5); z = sig(0.5), sig(1.0); n = tanh(2 + 0.2 r0), tanh(1.1)
    ct0, ct1 = hand_candidate(1.0, 0.0, 0.0, 0.0, 0.0)
    # ct0 = 0.3775 * 0.9719 = 0.3669 > 0.3 -> EVENT; ct1 = 0.2689 * 0.8005 = 0.2153 < 0.9
    assert ct0 > THETA[0] and ct1 <= THETA[1]
    y0, y1 = ct0, 0.0
    c0, c1 = ct0 - THETA[0], ct1  # reset by subtraction: 0.0669
    steps.append({"o": [1.0, 0.0], "y": [y0, y1], "c": [c0, c1], "ct": [ct0, ct1]})
    # ---- step 2: x = 0.5, recurrent input is y (unit 0's event), not c.
    ct0, ct1 = hand_candidate(0.5, y0, y1, c0, c1)
    # ct0 = 0.0416 + 0.3775 * 0.8480 = 0.3618 > 0.3 -> EVENT
    # ct1 = 0.1148 + 0.4668 * 0.7265 = 0.4539 < 0.9
    assert ct0 > THETA[0] and ct1 <= THETA[1]
    y0, y1 = ct0, 0.0
    c0, c1 = ct0 - THETA[0], ct1
    steps.append({"o": [1.0, 0.0], "y": [y0, y1], "c": [c0, c1], "ct": [ct0, ct1]})
    # ---- step 3: x = -1.0; unit 0 falls below its threshold: no event anywhere.
    ct0, ct1 = hand_candidate(-1.0, y0, y1, c0, c1)
    # ct0 = 0.0385 - 0.3775 * 0.9491 = -0.3199 < 0.3
    assert ct0 <= THETA[0] and ct1 <= THETA[1]
    steps.append({"o": [0.0, 0.0], "y": [0.0, 0.0], "c": [ct0, ct1], "ct": [ct0, ct1]})
    return steps


def test_golden_trace_matches_hand_computation() -> None:
    params = golden_params()
    state = None
    golden = hand_trace()
    # a few hand-rounded intermediate values, so the golden trace itself is pinned
    assert golden[0]["ct"][0] == pytest.approx(0.36691, abs=1e-5)
    assert golden[0]["c"][0] == pytest.approx(0.06691, abs=1e-5)
    assert golden[1]["ct"][1] == pytest.approx(0.45391, abs=1e-5)
    assert golden[2]["c"][0] == pytest.approx(-0.31985, abs=1e-5)
    for x, expected in zip(XS, golden):
        y, state = egru_step(np.array([x]), state, params)
        np.testing.assert_allclose(y, expected["y"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(state.c, expected["c"], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(state.y != 0, np.array(expected["o"]) == 1.0)
    assert y.dtype == np.float64


def test_event_exactly_at_threshold_is_no_event() -> None:
    """H(0) = 0: a unit whose candidate state equals theta does not fire."""
    params = golden_params()
    # the reference's own c~ (no event with theta = 1, so c = c~), equal to the hand value
    _, no_event = egru_step(np.array([1.0]), None, params._replace(threshold=np.ones(2)))
    ct0 = float(no_event.c[0])
    assert ct0 == pytest.approx(hand_trace()[0]["ct"][0], abs=1e-15)
    at_threshold = params._replace(threshold=np.array([ct0, 0.9]))
    y, state = egru_step(np.array([1.0]), None, at_threshold)
    assert y[0] == 0.0 and state.c[0] == ct0


def test_trace_is_low_pass_of_events() -> None:
    params = golden_params()
    state = init_state(2, dtype=np.float64, trace=True)
    expected_trace = [0.0, 0.0]
    for x, step in zip(XS, hand_trace()):
        _, state = egru_step(np.array([x]), state, params)
        expected_trace = [
            TRACE_DECAY * tr + (1 - TRACE_DECAY) * y for tr, y in zip(expected_trace, step["y"])
        ]
        np.testing.assert_allclose(state.trace, expected_trace, rtol=0, atol=1e-15)
    assert state.trace[0] > 0 and state.trace[1] == 0


def test_sequence_and_sparse_weights_agree_with_steps() -> None:
    params = golden_params()
    ys, final = egru_sequence(np.array(XS).reshape(3, 1), params)
    np.testing.assert_allclose(ys[:, 0], [s["y"][0] for s in hand_trace()], atol=1e-15)
    sparse = params._replace(
        weight_ih=sp.csr_matrix(params.weight_ih), weight_hh=sp.csr_matrix(params.weight_hh)
    )
    ys_sparse, _ = egru_sequence(np.array(XS).reshape(3, 1), sparse)
    np.testing.assert_allclose(ys_sparse, ys, atol=1e-15)
    assert isinstance(final, EGRUState)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshold": np.zeros((2, 1))}, "threshold must be a 1-D"),
        ({"weight_hh": np.zeros((6, 3))}, "weight_hh has shape"),
        ({"bias_ih": np.zeros(5)}, "bias_ih has shape"),
        ({"weight_ih": np.zeros((6, 1), dtype=np.int64)}, "must be floating point"),
        ({"bias_hh": np.full(6, np.nan)}, "NaN or infinite"),
        ({"threshold": np.array([0.3, -0.1])}, "thresholds must be >= 0"),
    ],
)
def test_validate_params_errors(change: dict, message: str) -> None:
    validate_params(golden_params())
    with pytest.raises(ValueError, match=message):
        validate_params(golden_params()._replace(**change))


def test_reference_step_rejects_wrong_input_width() -> None:
    with pytest.raises(ValueError, match="input_size=1"):
        egru_step(np.zeros(3), None, golden_params())
