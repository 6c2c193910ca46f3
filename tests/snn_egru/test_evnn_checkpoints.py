"""EvNN checkpoints as EvNN writes them (v0.1 and v0.2 key layouts), EvNN's state semantics
and per-step (c, o), compared numerically with an independent forward in EvNN's convention."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snn_egru.functional import TriangleSurrogate
from snn_egru.interop import EVNN_SCALAR_KEYS, export_evnn_state_dict, load_evnn_state_dict
from snn_egru.sequence import EGRUSequence
from snn_egru.thresholds import Threshold
from tests.snn_egru.test_interop import random_sequence

DT = torch.float64


class EvNNLayerLayout(nn.Module):
    """The entries of one EvNN EGRU layer's state dict, registered in EvNN's order: ``_max_norm``
    (set up first by its gradient-clipping option), the four weights, the two pseudo-derivative
    constants, then the thresholds (``thr``; v0.1: ``thr_reparam``). Parameters only, no
    computation: it stands for EvNN's module where ``load_state_dict(strict=True)`` is
    concerned."""

    def __init__(self, input_size: int, hidden: int, *, v01: bool = False) -> None:
        super().__init__()

        def fixed(value: float) -> nn.Parameter:
            return nn.Parameter(torch.tensor([value]), requires_grad=False)

        self._max_norm = fixed(-1.0)
        self.kernel = nn.Parameter(torch.zeros(input_size, 3 * hidden))
        self.recurrent_kernel = nn.Parameter(torch.zeros(hidden, 3 * hidden))
        self.bias = nn.Parameter(torch.zeros(3 * hidden))
        self.recurrent_bias = nn.Parameter(torch.zeros(3 * hidden))
        self.dampening_factor = fixed(0.7)
        self.pseudo_derivative_support = fixed(1.0)
        if v01:
            self.thr_reparam = nn.Parameter(torch.zeros(hidden))
        else:
            self.thr = nn.Parameter(torch.zeros(hidden))


class EvNNLanguageModelLayout(nn.Module):
    """EvNN's LM benchmark keeps its layers in ``self.rnns`` (an ``nn.ModuleList``)."""

    def __init__(self, input_size: int, hiddens: list[int], *, v01: bool = False) -> None:
        super().__init__()
        sizes = [input_size, *hiddens]
        self.rnns = nn.ModuleList(
            EvNNLayerLayout(n_in, n_out, v01=v01) for n_in, n_out in zip(sizes, sizes[1:])
        )


class _TriangleSpike(torch.autograd.Function):
    """EvNN's spike: H(v) (H(0) = 0), backward ``d * max(0, 1 - s |v|)``."""

    @staticmethod
    def forward(ctx, v, dampening, support):  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.constants = (dampening, support)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (v,) = ctx.saved_tensors
        dampening, support = ctx.constants
        return grad * dampening * torch.clamp(1 - support * v.abs(), min=0.0), None, None


def evnn_layer_forward(x, layer, y0=None):
    """EvNN's recursion for one layer in its own layout: gates (z, r, g), state ``h``, initial
    events ``y0`` and ``h = 0``; returns per-step ``(y, h, o)``."""
    hidden = layer["recurrent_kernel"].shape[0]
    thr = layer["thr"] if "thr" in layer else torch.sigmoid(layer["thr_reparam"])
    dampening = float(layer["dampening_factor"][0])
    support = float(layer["pseudo_derivative_support"][0])
    y = torch.zeros(x.shape[1], hidden, dtype=x.dtype) if y0 is None else y0
    h = torch.zeros_like(y)
    ys, hs, os_ = [], [], []
    wx = x @ layer["kernel"] + layer["bias"]
    for t in range(x.shape[0]):
        vx = wx[t].chunk(3, dim=1)
        vh = (y @ layer["recurrent_kernel"] + layer["recurrent_bias"]).chunk(3, dim=1)
        z = torch.sigmoid(vx[0] + vh[0])
        r = torch.sigmoid(vx[1] + vh[1])
        g = torch.tanh(vx[2] + r * vh[2])
        cur = z * h + (1 - z) * g
        o = _TriangleSpike.apply(cur - thr, dampening, support)
        h = cur - o * thr
        y = o * cur
        ys.append(y)
        hs.append(h)
        os_.append(o)
    return torch.stack(ys), torch.stack(hs), torch.stack(os_)


def evnn_checkpoint(input_size, hiddens, seed, *, v01=False, dampening=3.6, support=3.6):
    """A state dict exactly as EvNN's LM (``rnns.{k}.``) saves it, random values."""
    layout = EvNNLanguageModelLayout(input_size, hiddens, v01=v01).to(DT)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in layout.state_dict().items():
        name = key.split(".")[-1]
        if name == "_max_norm":
            state[key] = torch.tensor([-1.0])
        elif name == "dampening_factor":
            state[key] = torch.tensor([dampening])
        elif name == "pseudo_derivative_support":
            state[key] = torch.tensor([support])
        elif name == "thr":
            state[key] = torch.rand(value.shape, generator=g, dtype=DT) * 0.5
        elif name == "thr_reparam":
            state[key] = torch.randn(value.shape, generator=g, dtype=DT) * 2.0**0.5
        else:
            state[key] = torch.randn(value.shape, generator=g, dtype=DT) * 0.6
    return state


def _layer(state, k):
    prefix = f"rnns.{k}."
    return {key[len(prefix) :]: v for key, v in state.items() if key.startswith(prefix)}


def test_checkpoint_surrogate_constants_are_read_and_gradients_match() -> None:
    state = evnn_checkpoint(4, [6], seed=0, dampening=3.6, support=3.6)
    seq = load_evnn_state_dict(EGRUSequence(4, 6, dtype=DT), state)
    assert isinstance(seq.spike_grad, TriangleSurrogate)
    assert (seq.spike_grad.dampening, seq.spike_grad.support) == (3.6, 3.6)
    x = torch.randn(7, 3, 4, dtype=DT) * 2
    layer = {k: v.clone().requires_grad_(v.dtype == DT) for k, v in _layer(state, 0).items()}
    y_ref, _, _ = evnn_layer_forward(x, layer)
    (y_ref**2).sum().backward()
    y, _ = seq(x)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    (y**2).sum().backward()
    # dL/dthr and dL/dkernel in EvNN's layout: the same numbers (up to EvNN's float32 3.6)
    torch.testing.assert_close(seq.threshold_l0.theta.grad, layer["thr"].grad, rtol=1e-5, atol=1e-9)
    exported_grad = export_evnn_state_dict(
        _with_params(seq, {n: p.grad for n, p in seq.named_parameters()})
    )
    torch.testing.assert_close(
        exported_grad["rnns.0.kernel"], layer["kernel"].grad, rtol=1e-5, atol=1e-8
    )
    # with the module's defaults (0.7 / 1.0) the forward is the same, the gradients are not
    other = load_evnn_state_dict(EGRUSequence(4, 6, dtype=DT), state)
    other.spike_grad = TriangleSurrogate(0.7, 1.0)
    (other(x)[0] ** 2).sum().backward()
    rel = (other.threshold_l0.theta.grad - layer["thr"].grad).norm() / layer["thr"].grad.norm()
    assert float(rel) > 0.1


def _with_params(seq: EGRUSequence, values: dict) -> EGRUSequence:
    copy = EGRUSequence(seq.input_size, seq.hidden_size, dtype=DT)
    with torch.no_grad():
        for name, p in copy.named_parameters():
            p.copy_(values[name])
    copy.spike_grad = seq.spike_grad
    return copy


def test_export_of_a_clamped_amplitude_warns_and_keeps_the_values() -> None:
    seq = random_sequence(3, [5, 4], seed=3, dampening=1.0, support=1.0, event_amplitude="clamped")
    with pytest.warns(UserWarning, match="amplitude='clamped', which EvNN does not have"):
        exported = export_evnn_state_dict(seq)
    x = torch.randn(6, 2, 3, dtype=DT) * 2
    y0, _, _ = evnn_layer_forward(x, _layer(exported, 0))
    y1, _, _ = evnn_layer_forward(y0, _layer(exported, 1))
    torch.testing.assert_close(y1, seq(x)[0].detach(), rtol=0, atol=1e-12)


def test_export_loads_strictly_into_evnn_layout_and_back() -> None:
    seq = random_sequence(3, [5, 4], seed=3, dampening=3.6, support=3.6)
    exported = export_evnn_state_dict(seq)
    layout = EvNNLanguageModelLayout(3, [5, 4]).to(DT)
    layout.load_state_dict(exported, strict=True)  # raises on a missing/unexpected key
    assert set(exported) == set(layout.state_dict())
    assert float(layout.rnns[1].dampening_factor) == pytest.approx(3.6)
    assert float(layout.rnns[0]._max_norm) == -1.0
    x = torch.randn(6, 2, 3, dtype=DT) * 2
    y0, _, _ = evnn_layer_forward(x, _layer(exported, 0))
    y1, _, _ = evnn_layer_forward(y0, _layer(exported, 1))
    torch.testing.assert_close(y1, seq(x)[0].detach(), rtol=0, atol=1e-12)
    # v0.1 layout: thr_reparam
    v01 = export_evnn_state_dict(seq, version="v0.1")
    EvNNLanguageModelLayout(3, [5, 4], v01=True).to(DT).load_state_dict(v01, strict=True)
    torch.testing.assert_close(
        torch.sigmoid(v01["rnns.0.thr_reparam"]), seq.threshold(0).detach(), rtol=1e-9, atol=1e-9
    )
    assert set(EVNN_SCALAR_KEYS) <= {key.split(".")[-1] for key in exported}


def test_v01_checkpoint_thr_reparam_loads() -> None:
    state = evnn_checkpoint(4, [6, 5], seed=1, v01=True)
    x = torch.randn(8, 3, 4, dtype=DT) * 2
    y0, _, _ = evnn_layer_forward(x, _layer(state, 0))
    expected, _, _ = evnn_layer_forward(y0, _layer(state, 1))
    for init in ("sigmoid", "beta"):
        seq = load_evnn_state_dict(EGRUSequence(4, [6, 5], threshold_init=init, dtype=DT), state)
        torch.testing.assert_close(seq(x)[0].detach(), expected.detach(), rtol=0, atol=1e-12)
    # the sigmoid module holds v0.1's logit exactly
    torch.testing.assert_close(seq.threshold_l0.theta, torch.sigmoid(state["rnns.0.thr_reparam"]))
    sig = load_evnn_state_dict(EGRUSequence(4, [6, 5], threshold_init="sigmoid", dtype=DT), state)
    torch.testing.assert_close(sig.threshold_l1.logit, state["rnns.1.thr_reparam"], rtol=0, atol=0)


def test_v01_initialisation_mean_is_one_half() -> None:
    torch.manual_seed(0)
    theta = Threshold(20000, init="sigmoid").effective().detach()
    assert abs(float(theta.mean()) - 0.5) < 0.01
    logit = torch.logit(theta.double())
    assert abs(float(logit.std()) - 2.0**0.5) < 0.05  # EvNN v0.1: Normal(0, sqrt(2))
    assert abs(float(Threshold(20000).effective().detach().mean()) - 0.3) < 0.01  # v0.2 unchanged
    seq = EGRUSequence(3, 2000, threshold_init="sigmoid")
    assert abs(float(seq.threshold(0).detach().mean()) - 0.5) < 0.03


def test_out_of_range_checkpoint_thresholds_are_clamped_with_a_warning() -> None:
    state = evnn_checkpoint(4, [6], seed=2)
    state["rnns.0.thr"][0] = 1.4
    state["rnns.0.thr"][1] = -0.1
    with pytest.warns(UserWarning, match="2 of 6 thresholds lie outside"):
        seq = load_evnn_state_dict(EGRUSequence(4, 6, dtype=DT), state)
    theta = seq.threshold(0).detach()
    assert float(theta[0]) == 1.0 and float(theta[1]) == 0.0
    clamped = dict(state)
    clamped["rnns.0.thr"] = state["rnns.0.thr"].clamp(0, 1)
    x = torch.randn(5, 2, 4, dtype=DT)
    expected, _, _ = evnn_layer_forward(x, _layer(clamped, 0))
    torch.testing.assert_close(seq(x)[0].detach(), expected.detach(), rtol=0, atol=1e-12)


def test_y_only_state_semantics_with_evnn_state_tensors() -> None:
    """EvNN's LM: windows carry only y (1, B, H); h starts at 0 in each window."""
    state = evnn_checkpoint(4, [6], seed=4)
    seq = load_evnn_state_dict(EGRUSequence(4, 6, state_semantics="y", dtype=DT), state)
    x = torch.randn(10, 3, 4, dtype=DT) * 2
    layer = _layer(state, 0)
    y_a, _, _ = evnn_layer_forward(x[:5], layer)
    carried = y_a[-1].unsqueeze(0)  # EvNN: torch.unsqueeze(hiddens[:, -1], 0), (1, B, H)
    y_b, _, _ = evnn_layer_forward(x[5:], layer, y0=carried[0])
    out_a, s_a = seq(x[:5])
    assert s_a[0].shape == (1, 3, 6)
    out_b, s_b = seq(x[5:], s_a)
    torch.testing.assert_close(out_a.detach(), y_a.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(out_b.detach(), y_b.detach(), rtol=0, atol=1e-12)
    out_bare, _ = seq(x[5:], carried)  # one layer: EvNN's bare (1, B, H) tensor
    torch.testing.assert_close(out_bare, out_b, rtol=0, atol=0)
    # the (y, c) semantics differs: it carries c too
    yc = load_evnn_state_dict(EGRUSequence(4, 6, dtype=DT), state)
    _, s_yc = yc(x[:5])
    assert float((yc(x[5:], s_yc)[0] - out_b).detach().abs().max()) > 0
    with pytest.raises(ValueError, match=r"expected \(3, 6\) or EvNN's \(1, 3, 6\)"):
        seq(x, [torch.zeros(2, 3, 6, dtype=DT)])
    with pytest.raises(ValueError, match="state_semantics must be one of"):
        EGRUSequence(4, 6, state_semantics="h")


@pytest.mark.parametrize("batch_first", [False, True])
def test_return_state_sequence_gives_evnn_c_and_o_with_surrogate_gradient(batch_first) -> None:
    state = evnn_checkpoint(4, [6], seed=5)
    seq = load_evnn_state_dict(
        EGRUSequence(4, 6, return_state_sequence=True, batch_first=batch_first, dtype=DT), state
    )
    x = torch.randn(9, 2, 4, dtype=DT) * 2
    layer = {k: v.clone().requires_grad_(v.dtype == DT) for k, v in _layer(state, 0).items()}
    y_ref, h_ref, o_ref = evnn_layer_forward(x, layer)
    out, _, (internals,) = seq(x.transpose(0, 1) if batch_first else x)
    c, o = internals
    if batch_first:
        out, c, o = out.transpose(0, 1), c.transpose(0, 1), o.transpose(0, 1)
    torch.testing.assert_close(out, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(c, h_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(o, o_ref, rtol=0, atol=0)
    # EvNN-style activity regulariser on c and o: gradients as in EvNN's graph
    (c.abs().mean() + o.mean()).backward()
    (h_ref.abs().mean() + o_ref.mean()).backward()
    assert float(seq.threshold_l0.theta.grad.abs().sum()) > 0
    torch.testing.assert_close(
        seq.threshold_l0.theta.grad, layer["thr"].grad, rtol=1e-6, atol=1e-14
    )
    # per call, and the fused training path stays the default without it
    plain = seq(x, return_state_sequence=False)
    assert len(plain) == 2
