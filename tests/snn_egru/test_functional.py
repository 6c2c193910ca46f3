"""The torch step function and the surrogate spike: values, gradients, snnTorch surrogates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from snntorch import surrogate

from snn_egru.functional import (
    EGRUSpike,
    candidate_state,
    egru_layer_loop,
    egru_step_torch,
    event_driven_recurrent,
    fire_and_reset,
    heaviside_no_grad,
    pseudo_derivative,
    triangle,
)
from snn_egru.reference import EGRUParams, EGRUState, egru_step

DT = torch.float64


def random_layer(input_size: int, hidden: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(3 * hidden, input_size, generator=g, dtype=DT) * 0.6,
        torch.randn(3 * hidden, hidden, generator=g, dtype=DT) * 0.6,
        torch.randn(3 * hidden, generator=g, dtype=DT) * 0.5,
        torch.randn(3 * hidden, generator=g, dtype=DT) * 0.5,
        torch.rand(hidden, generator=g, dtype=DT) * 0.5,
    ]


def test_spike_forward_is_heaviside_with_h0_zero() -> None:
    v = torch.tensor([-1.0, -1e-12, 0.0, 1e-12, 2.0], dtype=DT)
    out = EGRUSpike.apply(v, 0.7, 1.0)
    assert out.dtype == DT
    assert out.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("dampening", "support", "v", "expected"),
    [
        # 0.7 * max(0, 1 - |v|)
        (0.7, 1.0, [-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.5], [0, 0, 0.35, 0.7, 0.525, 0, 0]),
        # LM recipe: 3.6 * max(0, 1 - 3.6 |v|): at 0.1 -> 3.6 * 0.64 = 2.304; zero beyond 1/3.6
        (3.6, 3.6, [0.0, 0.1, -0.1, 0.25, 0.3], [3.6, 2.304, 2.304, 0.36, 0.0]),
    ],
)
def test_pseudo_derivative_values(
    dampening: float, support: float, v: list[float], expected: list[float]
) -> None:
    v_t = torch.tensor(v, dtype=DT, requires_grad=True)
    spikes = triangle(dampening, support)(v_t)
    (grad,) = torch.autograd.grad(spikes.sum(), v_t)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pseudo_derivative(v_t.detach(), dampening, support), expected)


def test_triangle_scales_upstream_gradient_and_refuses_bad_arguments() -> None:
    v = torch.tensor([0.5], dtype=DT, requires_grad=True)
    (grad,) = torch.autograd.grad(triangle()(v), v, grad_outputs=torch.tensor([3.0], dtype=DT))
    assert grad.item() == pytest.approx(3.0 * 0.7 * 0.5)
    with pytest.raises(ValueError, match="support must be > 0"):
        triangle(0.7, 0.0)
    with pytest.raises(ValueError, match="dampening must be > 0"):
        triangle(-1.0, 1.0)
    assert repr(triangle(3.6, 3.6)) == "triangle(dampening=3.6, support=3.6)"


def test_gradcheck_spike_outside_support() -> None:
    """Away from v = 0 (|v| > 1/support) the surrogate equals the true derivative (0)."""
    v = torch.tensor([-0.9, -0.3, 0.2, 0.7], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: EGRUSpike.apply(t, 0.7, 10.0), (v,))


def _inputs_with_margin(seed: int, margin: float) -> tuple[torch.Tensor, ...]:
    """A step's inputs where every |c~ - theta| is at least ``margin`` (half the units fire)."""
    w_ih, w_hh, b_ih, b_hh, _ = random_layer(3, 4, seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, 3, generator=g, dtype=DT)
    y = torch.rand(2, 4, generator=g, dtype=DT)
    c = torch.rand(2, 4, generator=g, dtype=DT) * 0.3
    gi = torch.nn.functional.linear(x, w_ih, b_ih)
    gh = torch.nn.functional.linear(y, w_hh, b_hh)
    c_tilde = candidate_state(gi, gh, c)
    # thresholds placed 0.1 below the batch minimum (fire) or above the maximum (no event)
    theta = torch.where(
        torch.arange(4) % 2 == 0,
        c_tilde.min(0).values - 0.1,
        c_tilde.max(0).values + 0.1,
    ).clamp(min=0.0)
    v = c_tilde - theta
    assert bool((v.abs() > margin).all())
    return x, y, c, w_ih, w_hh, b_ih, b_hh, theta


def test_gradcheck_step_with_egru_spike() -> None:
    """Every gradient path of the step (reset through theta included) with EGRUSpike in place.

    With support 50 the pseudo-derivative vanishes for |v| >= 0.02 and the inputs keep
    |v| > 0.05, so the finite-difference gradient is well defined and must match.
    """
    inputs = tuple(t.clone().requires_grad_(True) for t in _inputs_with_margin(3, 0.05))
    spike = triangle(0.7, 50.0)

    def step(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, c, _ = egru_step_torch(*args, spike_fn=spike)
        return y, c

    assert torch.autograd.gradcheck(step, inputs)


def test_gradcheck_step_with_smooth_spike_function() -> None:
    """The step composes the spike function's derivative correctly (smooth stand-in for H)."""
    inputs = tuple(t.clone().requires_grad_(True) for t in _inputs_with_margin(4, 0.05))

    def step(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(egru_step_torch(*args, spike_fn=lambda v: torch.sigmoid(8.0 * v)))

    assert torch.autograd.gradcheck(step, inputs)


def test_threshold_gradient_has_event_and_reset_terms() -> None:
    """dc/dtheta and dy/dtheta carry both the event (surrogate) and the reset term."""
    c_tilde = torch.tensor([[0.5, 0.2]], dtype=DT)
    theta = torch.tensor([0.3, 0.4], dtype=DT, requires_grad=True)
    out = fire_and_reset(c_tilde, theta, triangle())
    (g_c,) = torch.autograd.grad(out.c.sum(), theta, retain_graph=True)
    (g_y,) = torch.autograd.grad(out.y.sum(), theta)
    # c = c~ - o theta:  dc/dtheta = -o - theta * do/dtheta,  do/dtheta = -0.7 (1 - |v|)
    # unit 0: v = 0.2, o = 1: -1 - 0.3 * (-0.7 * 0.8) = -0.832
    # unit 1: v = -0.2, o = 0:  0 - 0.4 * (-0.7 * 0.8) = 0.224
    np.testing.assert_allclose(g_c.numpy(), [-0.832, 0.224], atol=1e-12)
    # y = o c~: dy/dtheta = c~ * do/dtheta: unit 0: 0.5 * -0.56, unit 1: 0.2 * -0.56
    np.testing.assert_allclose(g_y.numpy(), [-0.28, -0.112], atol=1e-12)


def test_clamped_event_amplitude_golden_gradients() -> None:
    """amplitude="clamped": dy/dv = max(c~, theta) H'(v); the values are those of "state"."""
    c_tilde = torch.tensor([[0.5, 0.2, -0.3]], dtype=DT, requires_grad=True)
    theta = torch.tensor([0.3, 0.4, 0.1], dtype=DT, requires_grad=True)
    state = fire_and_reset(c_tilde, theta, triangle())
    clamped = fire_and_reset(c_tilde, theta, triangle(amplitude="clamped"))
    for a, b in zip(state, clamped):
        assert torch.equal(a, b)
    g_state = torch.autograd.grad(state.y.sum(), [c_tilde, theta], retain_graph=True)
    g_clamped = torch.autograd.grad(clamped.y.sum(), [c_tilde, theta], retain_graph=True)
    # v = 0.2, -0.2, -0.4; H' = 0.7 (1 - |v|) = 0.56, 0.56, 0.42; o = 1, 0, 0
    # state:   dy/dc~ = o + c~ H' = 1.28, 0.112, -0.126 (below zero: the wrong sign)
    # clamped: dy/dc~ = o + max(c~, theta) H' = 1.28, 0.224, 0.042
    np.testing.assert_allclose(g_state[0].numpy(), [[1.28, 0.112, -0.126]], atol=1e-12)
    np.testing.assert_allclose(g_clamped[0].numpy(), [[1.28, 0.224, 0.042]], atol=1e-12)
    # dy/dtheta = -amplitude H'
    np.testing.assert_allclose(g_clamped[1].numpy(), [-0.28, -0.224, -0.042], atol=1e-12)
    # the reset's gradient does not change
    g_c = [torch.autograd.grad(o.c.sum(), [c_tilde, theta]) for o in (state, clamped)]
    for a, b in zip(*g_c):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_event_amplitude_is_checked_and_kept_by_pickle() -> None:
    import pickle

    with pytest.raises(ValueError, match="amplitude must be one of state, clamped"):
        triangle(amplitude="signed")
    spike = pickle.loads(pickle.dumps(triangle(1.0, 2.0, "clamped")))
    assert (spike.dampening, spike.support, spike.amplitude) == (1.0, 2.0, "clamped")
    assert repr(spike) == "triangle(dampening=1.0, support=2.0, amplitude='clamped')"
    old = triangle(1.0, 2.0)
    del old.__dict__["amplitude"]  # a surrogate pickled before the option existed
    assert pickle.loads(pickle.dumps(old)).amplitude == "state"


def test_step_matches_reference_and_gradients_reach_all_parameters() -> None:
    params = [t.requires_grad_(True) for t in random_layer(5, 6, 0)]
    g = torch.Generator().manual_seed(9)
    x = torch.randn(4, 5, generator=g, dtype=DT) * 2
    y = torch.zeros(4, 6, dtype=DT)
    c = torch.zeros(4, 6, dtype=DT)
    ref_state = None
    ref_params = EGRUParams(*(p.detach().numpy() for p in params))
    total, rates = 0.0, []
    for t in range(4):
        xt = torch.roll(x, t, 0)
        y, c, o = egru_step_torch(xt, y, c, *params)
        ref_y, ref_state = egru_step(xt.numpy(), ref_state, ref_params)
        np.testing.assert_allclose(y.detach().numpy(), ref_y, rtol=0, atol=1e-13)
        np.testing.assert_allclose(c.detach().numpy(), ref_state.c, rtol=0, atol=1e-13)
        total = total + (y**2).sum() + c.sum()
        rates.append(float(o.detach().mean()))
    assert 0.0 < np.mean(rates) < 1.0
    grads = torch.autograd.grad(total, params)
    for name, grad in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh", "theta"), grads):
        assert grad is not None and float(grad.abs().sum()) > 0, name
    assert isinstance(ref_state, EGRUState)


@pytest.mark.parametrize(
    "spike_fn", [surrogate.fast_sigmoid(), surrogate.atan(), surrogate.sigmoid()]
)
def test_snntorch_surrogates_give_same_forward(spike_fn) -> None:
    params = [t.requires_grad_(True) for t in random_layer(3, 5, 1)]
    x = torch.randn(2, 3, dtype=DT) * 2
    y0 = torch.rand(2, 5, dtype=DT)
    c0 = torch.rand(2, 5, dtype=DT) * 0.3
    default = egru_step_torch(x, y0, c0, *params)
    other = egru_step_torch(x, y0, c0, *params, spike_fn=spike_fn)
    assert other.y.dtype == DT
    torch.testing.assert_close(other.y, default.y)
    torch.testing.assert_close(other.c, default.c)
    grads = torch.autograd.grad(other.y.sum() + other.c.sum(), params)
    assert all(bool(torch.isfinite(g).all()) for g in grads)
    assert float(grads[-1].abs().sum()) > 0


def test_heaviside_no_grad_has_no_gradient_through_event() -> None:
    v = torch.tensor([0.2, -0.2], dtype=DT, requires_grad=True)
    out = heaviside_no_grad(v)
    assert out.tolist() == [1.0, 0.0] and not out.requires_grad


@pytest.mark.parametrize("zoneout", ["none", "train", "eval"])
def test_gradcheck_fused_layer_loop(zoneout: str) -> None:
    """The hand-written BPTT of the fused loop against finite differences (smooth spike fn)."""
    g = torch.Generator().manual_seed(11)
    steps, batch, hidden = 4, 2, 3
    gi = torch.randn(steps, batch, 3 * hidden, generator=g, dtype=DT)
    y0 = torch.rand(batch, hidden, generator=g, dtype=DT)
    c0 = torch.rand(batch, hidden, generator=g, dtype=DT)
    w_hh = torch.randn(3 * hidden, hidden, generator=g, dtype=DT)
    b_hh = torch.randn(3 * hidden, generator=g, dtype=DT)
    theta = torch.rand(hidden, generator=g, dtype=DT)
    keep = torch.rand(steps, batch, hidden, generator=g) < 0.4 if zoneout == "train" else None
    p_eval = 0.3 if zoneout == "eval" else 0.0
    inputs = tuple(t.requires_grad_(True) for t in (gi, y0, c0, w_hh, b_hh, theta))

    def loop(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return egru_layer_loop(
            *args,
            spike_fn=lambda v: torch.sigmoid(6.0 * v),
            keep_mask=keep,
            zoneout_eval=p_eval,
        )

    assert torch.autograd.gradcheck(loop, inputs)


@pytest.mark.parametrize(
    "spike_fn", [triangle(3.6, 3.6), triangle(1.0, 1.0, "clamped"), surrogate.fast_sigmoid(), None]
)
def test_fused_loop_equals_step_by_step_autograd(spike_fn) -> None:
    g = torch.Generator().manual_seed(12)
    steps, batch, hidden = 6, 3, 5
    gi = torch.randn(steps, batch, 3 * hidden, generator=g, dtype=DT) * 1.5
    args = [
        gi,
        torch.zeros(batch, hidden, dtype=DT),
        torch.rand(batch, hidden, generator=g, dtype=DT) * 0.3,
        torch.randn(3 * hidden, hidden, generator=g, dtype=DT) * 0.5,
        torch.randn(3 * hidden, generator=g, dtype=DT) * 0.5,
        torch.rand(hidden, generator=g, dtype=DT) * 0.4,
    ]
    args = [a.requires_grad_(True) for a in args]
    spike = heaviside_no_grad if spike_fn is None else spike_fn
    ys, c_last = egru_layer_loop(*args, spike_fn=spike)
    y, c, outs = args[1], args[2], []
    for t in range(steps):
        gh = torch.nn.functional.linear(y, args[3], args[4])
        y, c, _ = fire_and_reset(candidate_state(gi[t], gh, c), args[5], spike)
        outs.append(y)
    torch.testing.assert_close(ys, torch.stack(outs), rtol=0, atol=1e-14)
    rate = float((ys != 0).double().mean())
    assert 0.0 < rate < 1.0
    weights = torch.randn(steps, batch, hidden, generator=g, dtype=DT)
    loss_fused = (ys * weights).sum() + (c_last**2).sum()
    loss_steps = (torch.stack(outs) * weights).sum() + (c**2).sum()
    grads_fused = torch.autograd.grad(loss_fused, args)
    grads_steps = torch.autograd.grad(loss_steps, args)
    for name, a, b in zip(("gi", "y0", "c0", "w_hh", "b_hh", "theta"), grads_fused, grads_steps):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("batch", [1, 4])
def test_event_driven_recurrent_equals_dense(batch: int) -> None:
    g = torch.Generator().manual_seed(13)
    hidden = 40
    w_hh = torch.randn(3 * hidden, hidden, generator=g, dtype=DT)
    b_hh = torch.randn(3 * hidden, generator=g, dtype=DT)
    y = torch.rand(batch, hidden, generator=g, dtype=DT)
    y = y * (torch.rand(batch, hidden, generator=g) < 0.15)
    y[0] = 0.0  # a sample without events
    dense = torch.nn.functional.linear(y, w_hh, b_hh)
    events = event_driven_recurrent(y, w_hh.t().contiguous(), b_hh)
    torch.testing.assert_close(events, dense, rtol=0, atol=1e-13)
    full = torch.rand(batch, hidden, generator=g, dtype=DT)  # dense fallback
    torch.testing.assert_close(
        event_driven_recurrent(full, w_hh.t().contiguous(), b_hh),
        torch.nn.functional.linear(full, w_hh, b_hh),
    )
