"""Training-loop helpers: reset, detach (truncated BPTT), clamp_thresholds."""

from __future__ import annotations

import snntorch as snn
import torch
from torch import nn

from snn_egru.functional import EGRUCellState
from snn_egru.neuron import EGRU
from snn_egru.sequence import EGRUSequence
from snn_egru.thresholds import Threshold
from snn_egru.utils import clamp_thresholds, detach, detach_states, reset


def test_detach_keeps_structure() -> None:
    a = torch.ones(2, requires_grad=True) * 2
    nested = {
        "states": [EGRUCellState(y=a, c=a + 1)],
        "pair": (a, None),
        "n": 3,
    }
    out = detach(nested)
    assert isinstance(out["states"], list) and isinstance(out["states"][0], EGRUCellState)
    assert not out["states"][0].c.requires_grad and out["states"][0].c.grad_fn is None
    assert out["pair"][1] is None and out["n"] == 3
    torch.testing.assert_close(out["states"][0].c, a.detach() + 1)


def test_truncated_bptt_with_detached_sequence_state() -> None:
    torch.manual_seed(0)
    seq = EGRUSequence(3, 4)
    x = torch.randn(8, 2, 3, requires_grad=True)
    _, state = seq(x[:4])
    out, _ = seq(x[4:], detach(state))
    (grad,) = torch.autograd.grad(out.sum() + state[0].c.sum() * 0, x)
    assert float(grad[4:].abs().sum()) > 0
    # the second window's loss does not reach the first window's inputs
    out2, _ = seq(x[4:], detach(state))
    (grad2,) = torch.autograd.grad(out2.sum(), x)
    assert float(grad2[:4].abs().sum()) == 0.0


def test_detach_states_and_reset_cover_egru_and_snntorch_neurons() -> None:
    leaky = snn.Leaky(beta=0.9, init_hidden=True)
    egru = EGRU(4, 5, init_hidden=True, output=True)
    net = nn.Sequential(nn.Linear(3, 4), leaky, nn.Linear(4, 4), egru)
    x = torch.randn(6, 3)
    y, c = net(x)
    y, c = net(x)
    assert egru.c.grad_fn is not None and leaky.mem.grad_fn is not None
    assert detach_states(net) == 3  # egru.y, egru.c, leaky.mem
    assert egru.c.grad_fn is None and leaky.mem.grad_fn is None
    torch.testing.assert_close(egru.c, c.detach())
    assert reset(net) == 2
    assert float(egru.c.abs().sum()) == 0.0 and float(leaky.mem.abs().sum()) == 0.0


def test_clamp_thresholds_counts_and_clamps() -> None:
    seq = EGRUSequence(3, [4, 4])
    sig = EGRUSequence(3, 4, threshold_init="sigmoid")
    net = nn.ModuleList([seq, sig, EGRU(2, 3)])
    with torch.no_grad():
        seq.threshold_l0.theta.copy_(torch.tensor([-0.5, 0.2, 1.7, 0.9]))
        logits_before = sig.threshold_l0.logit.clone()
    assert clamp_thresholds(net) == 4
    torch.testing.assert_close(
        seq.threshold(0).detach(), torch.tensor([0.0, 0.2, 1.0, 0.9]), rtol=0, atol=0
    )
    torch.testing.assert_close(sig.threshold_l0.logit.detach(), logits_before, rtol=0, atol=0)
    assert isinstance(seq.threshold_module(1), Threshold)
