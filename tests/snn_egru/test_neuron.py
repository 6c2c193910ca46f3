"""The EGRU snnTorch neuron: constructor contract, stored state, errors, training."""

from __future__ import annotations

import pytest
import torch
from snntorch import surrogate
from snntorch._neurons.neurons import SpikingNeuron
from torch import nn

from snn_egru.functional import egru_step_torch
from snn_egru.neuron import EGRU
from snn_egru.thresholds import Threshold, beta_threshold_sample
from snn_egru.utils import clamp_thresholds, reset

DT = torch.float64


def make_neuron(input_size: int = 3, hidden: int = 5, seed: int = 0, **kwargs) -> EGRU:
    torch.manual_seed(seed)
    neuron = EGRU(input_size, hidden, dtype=DT, **kwargs)
    with torch.no_grad():
        neuron.bias_ih.normal_(0.0, 0.5)
        neuron.bias_hh.normal_(0.0, 0.5)
    return neuron


def test_is_a_spiking_neuron_not_in_global_instance_list() -> None:
    before = list(SpikingNeuron.instances)
    neuron = EGRU(3, 4)
    assert isinstance(neuron, SpikingNeuron)
    assert all(item is not neuron for item in SpikingNeuron.instances)
    assert len(SpikingNeuron.instances) == len(before)
    names = {name for name, _ in neuron.named_parameters()}
    assert names == {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "thresholds.theta"}
    assert neuron.weight_ih.shape == (12, 3) and neuron.weight_hh.shape == (12, 4)
    assert neuron.threshold.shape == (4,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reset_mechanism": "zero"}, "reset_mechanism='zero' is not supported"),
        ({"reset_mechanism": "none"}, "reset_mechanism='none' is not supported"),
        ({"reset_mechanism": "bogus"}, "reset_mechanism='bogus'"),
        ({"graded_spikes_factor": 2.0}, "graded_spikes_factor must be 1.0"),
        ({"learn_graded_spikes_factor": True}, "graded_spikes_factor must be 1.0"),
        ({"inhibition": True}, "inhibition=True is not supported"),
        ({"state_quant": lambda t: t}, "state_quant is not supported"),
        ({"threshold": 1.5}, r"must lie in \[0, 1\]"),
        ({"threshold": -0.1}, r"must lie in \[0, 1\]"),
        ({"threshold": 0.0, "threshold_init": "sigmoid"}, r"must lie in \(0, 1\)"),
        ({"threshold": torch.ones(3)}, r"shape \(4,\)"),
        ({"threshold_init": "gauss"}, "threshold_init must be one of"),
    ],
)
def test_inapplicable_or_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EGRU(3, 4, **kwargs)


def test_threshold_parametrisations() -> None:
    fixed = EGRU(3, 4, threshold=0.25)
    torch.testing.assert_close(fixed.threshold.detach(), torch.full((4,), 0.25))
    sig = EGRU(3, 4, threshold=torch.tensor([0.1, 0.2, 0.3, 0.4]), threshold_init="sigmoid")
    assert "thresholds.logit" in dict(sig.named_parameters())
    torch.testing.assert_close(sig.threshold.detach(), torch.tensor([0.1, 0.2, 0.3, 0.4]))
    torch.testing.assert_close(sig.threshold, torch.sigmoid(sig.thresholds.logit))
    frozen = EGRU(3, 4, learn_threshold=False)
    assert "thresholds.theta" in dict(frozen.named_buffers())
    draws = beta_threshold_sample(20000, 0.3, generator=torch.Generator().manual_seed(0))
    assert float(draws.mean()) == pytest.approx(0.3, abs=0.01)
    assert float(draws.min()) >= 0.0 and float(draws.max()) <= 1.0
    # Beta(3m/(1-m), 3) with m = 0.3: variance a b / ((a+b)^2 (a+b+1)), a = 9/7, b = 3
    a, b = 9.0 / 7.0, 3.0
    assert float(draws.var()) == pytest.approx(a * b / ((a + b) ** 2 * (a + b + 1)), rel=0.05)
    small = Threshold(1000, mean=0.01, learnable=False)
    assert float(small().mean()) == pytest.approx(0.01, abs=0.005)


def test_stateless_call_equals_step_function_and_state_carries() -> None:
    neuron = make_neuron(3, 5)
    x = torch.randn(6, 2, 3, dtype=DT) * 2
    y = c = torch.zeros(2, 5, dtype=DT)
    yn = cn = None
    events = 0.0
    for t in range(6):
        y, c, o = egru_step_torch(x[t], y, c, *neuron.params())
        yn, cn = neuron(x[t], yn, cn)
        torch.testing.assert_close(yn, y, rtol=0, atol=0)
        torch.testing.assert_close(cn, c, rtol=0, atol=0)
        events += float(o.detach().mean())
    assert 0.0 < events / 6 < 1.0
    # snnTorch idiom: an empty initial state means zeros
    empty_y, empty_c = make_neuron(3, 5).init_egru()
    y1, _ = neuron(x[0], empty_y, empty_c)
    y2, _ = neuron(x[0])
    torch.testing.assert_close(y1, y2)


def test_init_hidden_keeps_state_when_input_and_hidden_sizes_differ() -> None:
    """snnTorch's SLSTM loses its state when input_size != hidden_size; EGRU must not."""
    explicit = make_neuron(3, 7)
    kept = make_neuron(3, 7, init_hidden=True)
    kept.load_state_dict(explicit.state_dict())
    x = torch.randn(5, 2, 3, dtype=DT) * 2
    y = c = None
    for t in range(5):
        y, c = explicit(x[t], y, c)
        out = kept(x[t])
        torch.testing.assert_close(out, y, rtol=0, atol=0)
    torch.testing.assert_close(kept.c, c, rtol=0, atol=0)
    assert float(kept.c.detach().abs().sum()) > 0
    # batch size changes: the stored state is re-created for the new batch, from zeros
    out3 = kept(torch.randn(3, 3, dtype=DT))
    assert out3.shape == (3, 7) and kept.y.shape == (3, 7)
    fresh = make_neuron(3, 7)
    fresh.load_state_dict(explicit.state_dict())
    x3 = torch.randn(3, 3, dtype=DT)
    kept.reset_mem()
    assert float(kept.c.abs().sum()) == 0.0 and not kept.c.requires_grad
    torch.testing.assert_close(kept(x3), fresh(x3)[0], rtol=0, atol=0)
    with pytest.raises(TypeError, match="must not be passed while init_hidden=True"):
        kept(x3, torch.zeros(3, 7, dtype=DT), torch.zeros(3, 7, dtype=DT))
    kept.output = True
    y_out, c_out = kept(x3)
    assert c_out is kept.c and y_out is kept.y and kept.mem is kept.c


def test_reset_helpers_find_egru_inside_models() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(EGRU(3, 4, init_hidden=True)))
    net(torch.randn(5, 2))
    inner = net[1][0]
    assert inner.c.shape == (5, 4)
    assert reset(net) == 1
    assert float(inner.c.abs().sum()) == 0.0 and float(inner.y.abs().sum()) == 0.0
    with torch.no_grad():
        inner.thresholds.theta.fill_(1.2)
    assert clamp_thresholds(net) == 1
    assert float(inner.threshold.detach().max()) == 1.0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda n: n(torch.randn(2, 4, dtype=DT)), ValueError, "input_size=3"),
        (lambda n: n(torch.ones(2, 3, dtype=torch.int64)), TypeError, "floating point"),
        (lambda n: n(torch.ones(2, 3, 3, dtype=DT)), ValueError, "1 or 2 dimensions"),
        (lambda n: n(torch.tensor([[float("nan"), 0, 0]], dtype=DT)), ValueError, "NaN"),
        (
            lambda n: n(torch.randn(2, 3, dtype=DT), torch.zeros(2, 4, dtype=DT), None),
            ValueError,
            r"state y has shape \(2, 4\), expected \(2, 5\)",
        ),
        (
            lambda n: n(torch.randn(2, 3, dtype=DT), None, torch.zeros(2, 5)),
            TypeError,
            "state c has dtype",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call(make_neuron(3, 5))


def test_nan_weights_raise_and_out_of_range_thresholds_are_clamped() -> None:
    neuron = make_neuron(3, 5)
    x = torch.randn(2, 3, dtype=DT)
    neuron(x)
    with torch.no_grad():
        neuron.bias_hh[2] = float("inf")
    with pytest.raises(ValueError, match="bias_hh contains NaN or infinite"):
        neuron(x)
    neuron = make_neuron(3, 5)
    with torch.no_grad():
        neuron.thresholds.theta[0] = -0.2
        neuron.thresholds.theta[1] = 1.3
    neuron(x)  # clamped in the forward pass, as EvNN does
    assert float(neuron.threshold.detach().min()) == 0.0
    assert float(neuron.threshold.detach().max()) == 1.0
    with torch.no_grad():
        neuron.thresholds.theta[0] = -0.2
    neuron.clamp_thresholds()  # the explicit form
    assert float(neuron.threshold.detach().min()) == 0.0


def test_surrogate_options() -> None:
    x = torch.randn(4, 3, dtype=DT) * 2
    base = make_neuron(3, 5)
    other = make_neuron(3, 5, spike_grad=surrogate.fast_sigmoid())
    disabled = make_neuron(3, 5, surrogate_disable=True)
    y_base, _ = base(x, torch.rand(4, 5, dtype=DT), torch.rand(4, 5, dtype=DT))
    for neuron in (other, disabled):
        neuron.load_state_dict(base.state_dict())
        torch.manual_seed(1)
        y, c = neuron(x, torch.rand(4, 5, dtype=DT), torch.rand(4, 5, dtype=DT))
        assert y.dtype == DT
        (g_theta,) = torch.autograd.grad(c.sum(), neuron.thresholds.theta)
        assert bool(torch.isfinite(g_theta).all())
    # with the surrogate disabled, theta only gets the reset term: dc/dtheta = -o
    torch.manual_seed(2)
    y, c = disabled(x, torch.rand(4, 5, dtype=DT), torch.rand(4, 5, dtype=DT))
    (g_theta,) = torch.autograd.grad(c.sum(), disabled.thresholds.theta)
    torch.testing.assert_close(g_theta, -(y != 0).to(DT).sum(0))
    assert y_base.shape == (4, 5)


def test_trains_inside_sequential_with_init_hidden() -> None:
    """Toy task: output the running sum of a 1-D input stream; the loss must go down."""
    torch.manual_seed(0)
    egru = EGRU(8, 16, init_hidden=True, threshold_mean=0.1)
    net = nn.Sequential(nn.Linear(2, 8), egru, nn.Linear(16, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    data_gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(40):
        x = torch.rand(10, 16, 2, generator=data_gen) - 0.5
        target = torch.cumsum(x[..., :1] - x[..., 1:], dim=0) * 0.5
        reset(net)
        loss = sum(((net(x[t]) - target[t]) ** 2).mean() for t in range(10)) / 10
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        clamp_thresholds(net)
        losses.append(float(loss.detach()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)
