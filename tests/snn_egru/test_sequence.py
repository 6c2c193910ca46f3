"""EGRUSequence: numpy reference == torch step == EGRU neuron == EGRUSequence, and the rest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_egru.functional import (
    EGRUCellState,
    candidate_state,
    egru_step_torch,
    fire_and_reset,
    triangle,
)
from snn_egru.interop import load_reference_params, sequence_to_reference
from snn_egru.neuron import EGRU
from snn_egru.reference import egru_stack_sequence
from snn_egru.sequence import EGRUSequence
from tests.snn_egru.conftest import make_sequence

DT = torch.float64


def neuron_from_layer(seq: EGRUSequence, layer: int) -> EGRU:
    p = seq.layer_params(layer)
    neuron = EGRU(p.weight_ih.shape[1], p.threshold.shape[0], dtype=DT)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(neuron, name).copy_(getattr(p, name))
        neuron.thresholds.set_(p.threshold.detach())
    return neuron


@pytest.mark.parametrize(
    ("input_size", "hidden", "batch"),
    [(3, 5, 2), (7, [4, 6], 3), (5, [5, 5, 2], 1), (2, 9, 4)],
)
def test_reference_step_neuron_and_sequence_agree(
    input_size: int, hidden: int | list[int], batch: int
) -> None:
    seq = make_sequence(input_size, hidden, seed=input_size)
    steps = 8
    x = torch.randn(steps, batch, input_size, dtype=DT) * 2.0
    output, state, layer_outputs = seq(x, return_all_layers=True)
    # numpy reference, float64
    ref_ys, ref_states = egru_stack_sequence(
        x.numpy(), sequence_to_reference(seq, dtype=np.float64)
    )
    rates = []
    for k, (ys, ref) in enumerate(zip(layer_outputs, ref_ys)):
        np.testing.assert_allclose(ys.detach().numpy(), ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state[k].c.detach().numpy(), ref_states[k].c, atol=1e-12)
        rates.append(float((ref != 0).mean()))
    assert 0.0 < np.mean(rates) < 1.0, rates
    torch.testing.assert_close(output, layer_outputs[-1])
    # torch step function and neuron, layer by layer, state carried across calls
    layer_input = x
    for k in range(seq.num_layers):
        p = seq.layer_params(k)
        neuron = neuron_from_layer(seq, k)
        y = c = torch.zeros(batch, p.threshold.shape[0], dtype=DT)
        yn = cn = None
        outs = []
        for t in range(steps):
            y, c, _ = egru_step_torch(layer_input[t], y, c, *p)
            yn, cn = neuron(layer_input[t], yn, cn)
            torch.testing.assert_close(yn, y, rtol=0, atol=1e-13)
            outs.append(y)
        torch.testing.assert_close(torch.stack(outs), layer_outputs[k], rtol=0, atol=1e-12)
        torch.testing.assert_close(c, state[k].c, rtol=0, atol=1e-12)
        layer_input = torch.stack(outs)


def test_two_halves_equal_whole_and_batch_first() -> None:
    seq = make_sequence(4, [6, 3], seed=1)
    x = torch.randn(10, 2, 4, dtype=DT) * 2
    whole, state_whole = seq(x)
    first, state = seq(x[:4])
    second, state = seq(x[4:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=0, atol=0)
    for a, b in zip(state, state_whole):
        assert isinstance(a, EGRUCellState)
        torch.testing.assert_close(a.y, b.y, rtol=0, atol=0)
        torch.testing.assert_close(a.c, b.c, rtol=0, atol=0)
    seq.batch_first = True
    out_bf, state_bf, layers_bf = seq(x.transpose(0, 1), return_all_layers=True)
    torch.testing.assert_close(out_bf, whole.transpose(0, 1), rtol=0, atol=0)
    assert layers_bf[0].shape == (2, 10, 6) and state_bf[0].y.shape == (2, 6)
    unbatched, state_u = seq(x[:, 0])  # (T, I): batch_first does not apply
    torch.testing.assert_close(unbatched, whole[:, 0], rtol=0, atol=1e-13)
    assert state_u[1].c.shape == (3,)
    again, _ = seq(x[:, 0], state_u)
    assert again.shape == (10, 3)


def test_event_driven_inference_equals_dense() -> None:
    """No-grad batch-1 inference reads only the columns of units that fired."""
    seq = make_sequence(5, [20, 8], seed=2, event_driven=True)
    seq.eval()
    x = torch.randn(12, 1, 5, dtype=DT) * 2
    dense, dense_state = seq(x)  # gradients enabled: dense path
    with torch.no_grad():
        sparse, sparse_state = seq(x)
        sparse_again, _ = seq(x)  # cached transposed weights
    active = (dense != 0).double().mean()
    assert 0.0 < float(active) < 0.5
    torch.testing.assert_close(sparse, dense.detach(), rtol=0, atol=1e-13)
    torch.testing.assert_close(sparse_again, sparse, rtol=0, atol=0)
    torch.testing.assert_close(sparse_state[0].c, dense_state[0].c.detach(), rtol=0, atol=1e-13)
    seq.event_driven = False
    with torch.no_grad():
        dense_no_grad, _ = seq(x)
    seq.event_driven = True
    torch.testing.assert_close(sparse, dense_no_grad, rtol=0, atol=1e-13)
    with torch.no_grad():  # after a weight update the cache must not be reused
        seq.weight_hh_l0.mul_(0.5)
        updated, _ = seq(x)
    reference, _ = seq(x)
    torch.testing.assert_close(updated, reference.detach(), rtol=0, atol=1e-13)


def test_gradient_of_sequence_equals_step_by_step_neuron() -> None:
    seq = make_sequence(3, 6, seed=3)
    neuron = neuron_from_layer(seq, 0)
    x = torch.randn(7, 2, 3, dtype=DT) * 2
    target = torch.randn(7, 2, 6, dtype=DT)
    out, state = seq(x)
    loss_seq = ((out - target) ** 2).sum() + state[0].c.sum()
    y = c = None
    outs = []
    for t in range(7):
        y, c = neuron(x[t], y, c)
        outs.append(y)
    loss_neuron = ((torch.stack(outs) - target) ** 2).sum() + c.sum()
    torch.testing.assert_close(loss_seq, loss_neuron)
    grads_seq = torch.autograd.grad(loss_seq, [*seq.layer_params(0)[:4], seq.threshold_l0.theta])
    grads_neuron = torch.autograd.grad(
        loss_neuron,
        [
            neuron.weight_ih,
            neuron.weight_hh,
            neuron.bias_ih,
            neuron.bias_hh,
            neuron.thresholds.theta,
        ],
    )
    for name, a, b in zip(("w_ih", "w_hh", "b_ih", "b_hh", "theta"), grads_seq, grads_neuron):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
        assert float(a.abs().sum()) > 0, name


def test_parameter_names_shapes_and_per_layer_sizes() -> None:
    seq = EGRUSequence(750, [1350, 1350, 750])
    assert seq.num_layers == 3
    shapes = {name: tuple(p.shape) for name, p in seq.named_parameters()}
    assert shapes["weight_ih_l0"] == (4050, 750)
    assert shapes["weight_hh_l1"] == (4050, 1350)
    assert shapes["weight_ih_l2"] == (2250, 1350)
    assert shapes["bias_hh_l2"] == (2250,)
    assert shapes["threshold_l2.theta"] == (750,)
    assert float(seq.bias_ih_l0.detach().abs().sum()) == 0.0
    # Xavier normal: std = sqrt(2 / (fan_in + fan_out))
    std = float(seq.weight_hh_l1.detach().std())
    assert std == pytest.approx((2.0 / (1350 + 4050)) ** 0.5, rel=0.02)
    assert abs(float(seq.threshold(0).detach().mean()) - 0.3) < 0.03
    frozen = EGRUSequence(2, 3, num_layers=2, learn_threshold=False, threshold_init="sigmoid")
    assert "threshold_l1.logit" in dict(frozen.named_buffers())
    assert "threshold_l1.logit" not in dict(frozen.named_parameters())
    with pytest.raises(ValueError, match="disagrees"):
        EGRUSequence(2, [3, 4], num_layers=3)


def test_dropconnect_uses_one_mask_per_forward_call() -> None:
    seq = make_sequence(3, 5, seed=4, dropconnect=0.5)
    x = torch.randn(6, 2, 3, dtype=DT) * 2
    seq.train()
    torch.manual_seed(123)
    out_train, _ = seq(x)
    torch.manual_seed(123)  # replay the single mask draw of the forward call
    dropped = F.dropout(seq.weight_hh_l0.detach(), 0.5, training=True)
    plain = make_sequence(3, 5, seed=4)
    plain.load_state_dict(seq.state_dict())
    with torch.no_grad():
        plain.weight_hh_l0.copy_(dropped)
    plain.eval()
    expected, _ = plain(x)
    torch.testing.assert_close(out_train, expected, rtol=0, atol=1e-13)
    seq.eval()  # no DropConnect in evaluation
    plain.load_state_dict(seq.state_dict())
    torch.testing.assert_close(seq(x)[0], plain(x)[0], rtol=0, atol=0)


def test_variational_dropout_between_layers_shares_mask_over_time() -> None:
    seq = make_sequence(3, [5, 4], seed=5, dropout=0.4)
    x = torch.randn(6, 2, 3, dtype=DT) * 2
    seq.train()
    torch.manual_seed(7)
    out, _, layers = seq(x, return_all_layers=True)
    torch.manual_seed(7)
    mask = torch.empty(1, 2, 5, dtype=DT).bernoulli_(0.6).div_(0.6)
    second = EGRUSequence(5, 4, dtype=DT)
    load_reference_params(second, sequence_to_reference(seq, dtype=np.float64)[1:])
    second.eval()
    expected, _ = second(layers[0].detach() * mask)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-13)


def test_zoneout_training_and_evaluation() -> None:
    seq = make_sequence(3, 4, seed=6, zoneout=0.3)
    x = torch.randn(1, 2, 3, dtype=DT) * 2
    y0 = torch.rand(2, 4, dtype=DT) * 0.5
    c0 = torch.rand(2, 4, dtype=DT) * 0.5
    p = seq.layer_params(0)
    seq.eval()
    # evaluation: c~ <- 0.3 c_prev + 0.7 c~ (the expectation of the training-time mixing)
    gi = F.linear(x[0], p.weight_ih, p.bias_ih)
    gh = F.linear(y0, p.weight_hh, p.bias_hh)
    mixed = 0.3 * c0 + 0.7 * candidate_state(gi, gh, c0)
    expected = fire_and_reset(mixed, p.threshold, triangle())
    out, state = seq(x, [(y0, c0)])
    torch.testing.assert_close(out[0], expected.y, rtol=0, atol=1e-14)
    torch.testing.assert_close(state[0].c, expected.c, rtol=0, atol=1e-14)
    # training with p = 1: every unit keeps its old state, so c never changes from c0
    seq.zoneout = 1.0
    seq.train()
    with torch.no_grad():
        seq.threshold_l0.set_(0.99)
    _, state = seq(torch.randn(5, 2, 3, dtype=DT), [(y0, c0)])
    torch.testing.assert_close(state[0].c, c0, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s(torch.randn(4, 2, 5, dtype=DT)), ValueError, "input_size=3"),
        (lambda s: s(torch.randint(0, 3, (4, 2, 3))), TypeError, "floating point"),
        (lambda s: s(torch.randn(4, 2, 3, dtype=torch.float32)), TypeError, "dtype"),
        (lambda s: s(torch.randn(2, 3, 4, 3, dtype=DT)), ValueError, "2 or 3 dimensions"),
        (
            lambda s: s(torch.full((4, 2, 3), float("nan"), dtype=DT)),
            ValueError,
            "input contains NaN",
        ),
        (
            lambda s: s(torch.randn(4, 2, 3, dtype=DT), [(torch.zeros(3, 5, dtype=DT),) * 2]),
            ValueError,
            r"state\[0\].y has shape \(3, 5\), expected \(2, 5\)",
        ),
        (
            lambda s: s(torch.randn(4, 2, 3, dtype=DT), [(torch.zeros(2, 5, dtype=DT),) * 2] * 2),
            ValueError,
            "one \\(y, c\\) pair per layer",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, message) -> None:
    seq = make_sequence(3, 5)
    with pytest.raises(error, match=message):
        call(seq)


def test_bad_parameters_and_probabilities_raise() -> None:
    seq = make_sequence(3, 5)
    x = torch.randn(4, 2, 3, dtype=DT)
    with torch.no_grad():
        seq.weight_hh_l0[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weight_hh_l0 contains NaN"):
        seq(x)
    seq = make_sequence(3, 5)
    with torch.no_grad():
        seq.threshold_l0.theta[1] = 1.5  # e.g. an optimizer step without clamping
    seq(x)  # clamped in the forward pass (EvNN's behaviour), no error
    assert float(seq.threshold(0).detach().max()) == 1.0
    seq.clamp_thresholds()
    seq(x)
    for name in ("dropout", "dropconnect", "zoneout"):
        with pytest.raises(ValueError, match=f"{name} is a probability"):
            EGRUSequence(3, 5, **{name: -0.1})
    with pytest.raises(ValueError, match="dropout is a probability"):
        EGRUSequence(3, 5, dropout=1.0)
    with pytest.raises(ValueError, match="threshold_init"):
        EGRUSequence(3, 5, threshold_init="uniform")
    with pytest.raises(ValueError, match="threshold_mean"):
        EGRUSequence(3, 5, threshold_mean=1.2)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"zoneout": 0.3, "dropconnect": 0.2, "dropout": 0.25},
        {"threshold_init": "sigmoid", "dampening": 3.6, "support": 3.6},
    ],
)
def test_fused_training_path_equals_step_by_step_autograd(options: dict) -> None:
    fused = make_sequence(4, [6, 5], seed=8, **options)
    plain = make_sequence(4, [6, 5], seed=8, fused_backward=False, **options)
    plain.load_state_dict(fused.state_dict())
    fused.train()
    plain.train()
    x = (torch.randn(7, 3, 4, dtype=DT) * 2).requires_grad_(True)
    state = [(torch.rand(3, h, dtype=DT) * 0.5, torch.rand(3, h, dtype=DT) * 0.5) for h in (6, 5)]
    results = []
    for seq in (fused, plain):
        torch.manual_seed(99)  # same random masks for both
        out, final, layers = seq(x, state, return_all_layers=True)
        loss = (out**2).sum() + final[0].c.sum() + 0.5 * layers[0].sum()
        grads = torch.autograd.grad(loss, [x, *seq.parameters()])
        results.append((out, grads))
    (out_f, grads_f), (out_p, grads_p) = results
    torch.testing.assert_close(out_f, out_p, rtol=0, atol=1e-13)
    assert 0.0 < float((out_f != 0).double().mean()) < 1.0
    names = ["x", *(name for name, _ in fused.named_parameters())]
    for name, a, b in zip(names, grads_f, grads_p):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)


@settings(max_examples=12, deadline=None)
@given(
    input_size=st.integers(1, 6),
    hidden=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    batch=st.integers(1, 3),
    steps=st.integers(1, 6),
    split=st.integers(0, 6),
    seed=st.integers(0, 2**16),
)
def test_property_sequence_matches_reference_in_any_split(
    input_size: int, hidden: list[int], batch: int, steps: int, split: int, seed: int
) -> None:
    """Any sizes: the stack equals the numpy reference, and a split run equals a whole run."""
    seq = make_sequence(input_size, hidden, seed=seed)
    x = torch.randn(
        steps, batch, input_size, dtype=DT, generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        whole, state = seq(x)
        split = min(split, steps)
        first, mid = seq(x[:split])
        second, end = seq(x[split:], mid)
    ref_ys, ref_states = egru_stack_sequence(
        x.numpy(), sequence_to_reference(seq, dtype=np.float64)
    )
    np.testing.assert_allclose(whole.numpy(), ref_ys[-1], rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=0, atol=1e-12)
    for k, ref_state in enumerate(ref_states):
        np.testing.assert_allclose(end[k].c.numpy(), ref_state.c, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state[k].y.numpy(), ref_state.y, rtol=0, atol=1e-12)


def test_unbatched_state_must_be_one_dimensional() -> None:
    seq = make_sequence(3, 4)
    with pytest.raises(ValueError, match=r"unbatched input \(T, I\) takes state\[0\].y"):
        seq(
            torch.randn(5, 3, dtype=DT),
            [(torch.zeros(1, 4, dtype=DT), torch.zeros(1, 4, dtype=DT))],
        )


def test_event_driven_path_is_taken_only_without_gradients(monkeypatch) -> None:
    """The Python loop (the compiled one is checked in test_fastloop.py)."""
    import snn_egru.sequence as sequence_module

    monkeypatch.setenv("SNN_EGRU_COMPILED_LOOP", "0")
    calls = []
    original = sequence_module.event_driven_recurrent

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(sequence_module, "event_driven_recurrent", counting)
    x = torch.randn(3, 1, 2, dtype=DT)
    forced = make_sequence(2, 6, event_driven=True).eval()
    forced(x)
    assert calls == []  # gradients needed: dense fused path
    with torch.no_grad():
        forced(x)
    assert len(calls) == 3
    calls.clear()
    auto_small = make_sequence(2, 6).eval()
    auto_large = make_sequence(2, sequence_module.EVENT_DRIVEN_MIN_HIDDEN).eval()
    with torch.no_grad():
        auto_small(x)
        assert calls == []
        auto_large(x)
    assert len(calls) == 3
