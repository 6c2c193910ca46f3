"""Interop: numpy reference round trips, EvNN checkpoints (numerically), nn.GRU layout."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from snn_egru.functional import candidate_state
from snn_egru.interop import (
    _discover_evnn_prefixes,
    copy_from_gru,
    copy_to_gru,
    evnn_layer_to_params,
    export_evnn_state_dict,
    load_evnn_state_dict,
    load_reference_params,
    neuron_to_reference,
    sequence_to_reference,
)
from snn_egru.neuron import EGRU
from snn_egru.reference import EGRUParams, egru_stack_sequence
from snn_egru.sequence import EGRUSequence

DT = torch.float64


def random_sequence(input_size: int, hidden, seed: int, **kwargs) -> EGRUSequence:
    torch.manual_seed(seed)
    seq = EGRUSequence(input_size, hidden, dtype=DT, **kwargs)
    with torch.no_grad():
        for name, p in seq.named_parameters():
            if name.startswith("bias"):
                p.normal_(0.0, 0.5)
    return seq


# ------------------------------------------------------------------ numpy reference
def test_sequence_reference_round_trip() -> None:
    seq = random_sequence(4, [6, 3], seed=0, threshold_init="sigmoid")
    params = sequence_to_reference(seq)
    assert all(isinstance(p, EGRUParams) and p.weight_hh.dtype == np.float32 for p in params)
    np.testing.assert_allclose(
        params[1].threshold, torch.sigmoid(seq.threshold_l1.logit).detach().numpy(), rtol=1e-6
    )
    other = random_sequence(4, [6, 3], seed=1, threshold_init="sigmoid")
    load_reference_params(other, sequence_to_reference(seq, dtype=np.float64))
    x = torch.randn(5, 2, 4, dtype=DT)
    torch.testing.assert_close(other(x)[0], seq(x)[0], rtol=0, atol=1e-12)
    # sparse (pruned) reference weights load as dense
    sparse = [p._replace(weight_hh=sp.csr_matrix(p.weight_hh)) for p in params]
    third = random_sequence(4, [6, 3], seed=2)
    load_reference_params(third, sparse)
    np.testing.assert_array_equal(
        third.weight_hh_l0.detach().numpy().astype(np.float32), params[0].weight_hh
    )
    ref_ys, _ = egru_stack_sequence(x.numpy(), sequence_to_reference(third, dtype=np.float64))
    np.testing.assert_allclose(third(x)[0].detach().numpy(), ref_ys[-1], atol=1e-12)


def test_neuron_reference_round_trip_and_errors() -> None:
    torch.manual_seed(0)
    neuron = EGRU(3, 4, dtype=DT)
    params = neuron_to_reference(neuron, dtype=np.float64)
    other = EGRU(3, 4, dtype=DT)
    load_reference_params(other, params)
    x = torch.randn(2, 3, dtype=DT)
    torch.testing.assert_close(other(x)[1], neuron(x)[1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="one EGRUParams"):
        load_reference_params(other, [params, params])
    with pytest.raises(ValueError, match="weight_ih has shape"):
        load_reference_params(EGRU(5, 4, dtype=DT), params)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        load_reference_params(other, params._replace(threshold=np.full(4, 1.5)))
    with pytest.raises(ValueError, match="the EGRUSequence has 2"):
        load_reference_params(random_sequence(3, 4, seed=0, num_layers=2), [params])


# ------------------------------------------------------------------ EvNN
def evnn_forward(x: torch.Tensor, layers: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """An independent EGRU forward in EvNN's convention (z first, state named h).

    ``Wx = x @ kernel + bias``, chunks (z, r, g); ``cur_h = z h + (1 - z) g``; event where
    ``cur_h > thr``; ``h = cur_h - event thr``; output ``y = event cur_h``.
    """
    inp = x
    for layer in layers:
        hidden = layer["thr"].shape[0]
        h = torch.zeros(x.shape[1], hidden, dtype=x.dtype)
        y = torch.zeros_like(h)
        outs = []
        for t in range(x.shape[0]):
            vx = inp[t] @ layer["kernel"] + layer["bias"]
            vh = y @ layer["recurrent_kernel"] + layer["recurrent_bias"]
            z = torch.sigmoid(vx[:, :hidden] + vh[:, :hidden])
            r = torch.sigmoid(vx[:, hidden : 2 * hidden] + vh[:, hidden : 2 * hidden])
            g = torch.tanh(vx[:, 2 * hidden :] + r * vh[:, 2 * hidden :])
            cur_h = z * h + (1 - z) * g
            event = (cur_h - layer["thr"] > 0).to(x.dtype)
            h = cur_h - event * layer["thr"]
            y = event * cur_h
            outs.append(y)
        inp = torch.stack(outs)
    return inp


def random_evnn_layers(input_size: int, hiddens: list[int], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    n_in = input_size
    for k, hidden in enumerate(hiddens):
        prefix = f"rnns.{k}."
        state[prefix + "kernel"] = torch.randn(n_in, 3 * hidden, generator=g, dtype=DT) * 0.7
        state[prefix + "recurrent_kernel"] = (
            torch.randn(hidden, 3 * hidden, generator=g, dtype=DT) * 0.7
        )
        state[prefix + "bias"] = torch.randn(3 * hidden, generator=g, dtype=DT) * 0.5
        state[prefix + "recurrent_bias"] = torch.randn(3 * hidden, generator=g, dtype=DT) * 0.5
        state[prefix + "thr"] = torch.rand(hidden, generator=g, dtype=DT) * 0.5
        # non-layer tensors an EvNN checkpoint also holds: ignored
        state[prefix + "dampening_factor"] = torch.tensor([0.7])
        n_in = hidden
    state["encoder.weight"] = torch.randn(10, input_size, generator=g)
    return state


def evnn_layers_of(state: dict[str, torch.Tensor], n: int) -> list[dict[str, torch.Tensor]]:
    return [
        {
            key: state[f"rnns.{k}.{key}"]
            for key in ("kernel", "recurrent_kernel", "bias", "recurrent_bias", "thr")
        }
        for k in range(n)
    ]


def test_evnn_checkpoint_loads_to_same_outputs() -> None:
    state = random_evnn_layers(4, [6, 5], seed=0)
    seq = load_evnn_state_dict(EGRUSequence(4, [6, 5], dtype=DT), state)
    x = torch.randn(8, 3, 4, dtype=DT) * 2
    expected = evnn_forward(x, evnn_layers_of(state, 2))
    rate = float((expected != 0).double().mean())
    assert 0.0 < rate < 1.0
    out, _ = seq(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    # the transpose-only conversion (EvNN's own converter) would get the gates wrong
    wrong = EGRUSequence(4, [6, 5], dtype=DT)
    with torch.no_grad():
        for k in range(2):
            p = f"rnns.{k}."
            getattr(wrong, f"weight_ih_l{k}").copy_(state[p + "kernel"].t())
            getattr(wrong, f"weight_hh_l{k}").copy_(state[p + "recurrent_kernel"].t())
            getattr(wrong, f"bias_ih_l{k}").copy_(state[p + "bias"])
            getattr(wrong, f"bias_hh_l{k}").copy_(state[p + "recurrent_bias"])
            getattr(wrong, f"threshold_l{k}").set_(state[p + "thr"])
    assert float((wrong(x)[0].detach() - expected).abs().max()) > 1e-3


def test_evnn_export_round_trip_and_forward() -> None:
    seq = random_sequence(3, [5, 4], seed=3)
    exported = export_evnn_state_dict(seq)
    assert exported["rnns.0.kernel"].shape == (3, 15)
    assert exported["rnns.1.recurrent_kernel"].shape == (4, 12)
    x = torch.randn(6, 2, 3, dtype=DT) * 2
    torch.testing.assert_close(
        evnn_forward(x, evnn_layers_of(exported, 2)), seq(x)[0].detach(), rtol=0, atol=1e-12
    )
    back = load_evnn_state_dict(random_sequence(3, [5, 4], seed=4), exported)
    for (name, a), b in zip(seq.state_dict().items(), back.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    neuron = EGRU(3, 5, dtype=DT)
    bare = {k[len("rnns.0.") :]: v for k, v in exported.items() if k.startswith("rnns.0.")}
    load_evnn_state_dict(neuron, bare, prefixes=[""])
    torch.testing.assert_close(neuron.weight_hh, seq.weight_hh_l0, rtol=0, atol=0)
    assert set(export_evnn_state_dict(neuron)) == set(bare)


def test_evnn_errors_name_the_problem() -> None:
    state = random_evnn_layers(4, [6], seed=0)
    seq = EGRUSequence(4, 6, dtype=DT)
    missing = {k: v for k, v in state.items() if k != "rnns.0.recurrent_bias"}
    with pytest.raises(KeyError, match="rnns.0.recurrent_bias"):
        load_evnn_state_dict(seq, missing)
    bad = dict(state)
    bad["rnns.0.bias"] = torch.zeros(17, dtype=DT)
    with pytest.raises(ValueError, match=r"bias has shape \(17,\), expected \(18,\)"):
        load_evnn_state_dict(seq, bad)
    with pytest.raises(ValueError, match=r"weight_ih has shape \(18, 4\).*\(18, 5\)"):
        load_evnn_state_dict(EGRUSequence(5, 6, dtype=DT), state)
    with pytest.raises(ValueError, match="found 1 EvNN layers"):
        load_evnn_state_dict(EGRUSequence(4, 6, num_layers=2, dtype=DT), state)
    with pytest.raises(KeyError, match="no EvNN EGRU layer"):
        load_evnn_state_dict(seq, {"encoder.weight": torch.zeros(2)})
    with pytest.raises(KeyError, match=r"missing EvNN keys \['thr'\]"):
        evnn_layer_to_params(
            {
                k: state["rnns.0." + k]
                for k in ("kernel", "recurrent_kernel", "bias", "recurrent_bias")
            }
        )
    prefixes = _discover_evnn_prefixes({f"rnns.{k}.recurrent_kernel": 0 for k in (10, 2, 0)})
    assert prefixes == ["rnns.0.", "rnns.2.", "rnns.10."]


# ------------------------------------------------------------------ nn.GRU
def test_gru_copy_round_trip_and_layout() -> None:
    torch.manual_seed(0)
    gru = torch.nn.GRU(4, 6, num_layers=2, dtype=DT)
    seq = copy_from_gru(EGRUSequence(4, 6, num_layers=2, dtype=DT), gru)
    back = copy_to_gru(seq, torch.nn.GRU(4, 6, num_layers=2, dtype=DT))
    for (name, a), b in zip(gru.state_dict().items(), back.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # layout: with y = c = h the EGRU's candidate state is exactly the GRU's new state
    x = torch.randn(1, 3, 4, dtype=DT)
    h0 = torch.randn(2, 3, 6, dtype=DT)
    _, h1 = gru(x, h0)
    p = seq.layer_params(0)
    gi = F.linear(x[0], p.weight_ih, p.bias_ih)
    gh = F.linear(h0[0], p.weight_hh, p.bias_hh)
    torch.testing.assert_close(candidate_state(gi, gh, h0[0]), h1[0], rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="bidirectional"):
        copy_from_gru(seq, torch.nn.GRU(4, 6, num_layers=2, bidirectional=True))
    with pytest.raises(ValueError, match=r"hidden_size 6 != \[6, 5\]"):
        copy_from_gru(EGRUSequence(4, [6, 5]), torch.nn.GRU(4, 6, num_layers=2))
