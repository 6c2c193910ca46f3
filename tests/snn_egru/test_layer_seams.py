"""Two traps of snnTorch habits with EGRU layers: a layer right after a Conv2d (the error
names the nn.Flatten fix and the feature size), and an output layer that stays silent in
training (one clear warning per layer, naming the fix)."""

from __future__ import annotations

import re
import warnings

import pytest
import snntorch.utils as snn_utils
import torch
from torch import nn

from snn_egru import EGRU, EGRUSequence


def test_egru_after_conv2d_error_names_flatten_and_the_feature_size() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3)
    features = conv(torch.randn(2, 1, 6, 6))  # (2, 4, 4, 4): 64 features per sample
    with pytest.raises(ValueError) as info:
        nn.Sequential(conv, EGRU(10, 5))(torch.randn(2, 1, 6, 6))
    message = str(info.value)
    assert "nn.Flatten()" in message and "(2, 64)" in message
    assert "input_size=64" in message and "input_size=10" in message
    fixed = nn.Sequential(conv, nn.Flatten(), EGRU(64, 5))  # the fix the message names
    assert fixed(torch.randn(2, 1, 6, 6)).y.shape == (2, 5)
    assert features.flatten(1).shape == (2, 64)
    with pytest.raises(ValueError, match="matches this layer's input_size"):
        EGRU(64, 5)(features)


def test_sequence_after_a_per_step_conv_names_flatten_start_dim_2() -> None:
    with pytest.raises(ValueError, match=re.escape("nn.Flatten(start_dim=2)")) as info:
        EGRUSequence(8, 4)(torch.randn(5, 2, 3, 2, 2))  # (T, B, C, H, W)
    assert "input_size=12" in str(info.value)


def _silent_output_net() -> nn.Sequential:
    """A 3-unit output EGRU whose frozen thresholds (1.0) no candidate state reaches."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8),
        EGRU(8, 8, init_hidden=True, threshold_mean=0.05),
        nn.Linear(8, 3),
        EGRU(3, 3, init_hidden=True, threshold=1.0, learn_threshold=False),
    )


def _batches(net: nn.Module, count: int) -> None:
    for _ in range(count):
        snn_utils.reset(net)
        events = torch.stack([net(torch.rand(4, 6)) for _ in range(5)])
        events.sum().backward()


def test_silent_output_layer_warns_once_in_training_naming_the_fix() -> None:
    net = _silent_output_net().train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _batches(net, 4)
    silent = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(silent) == 1, [str(w.message) for w in silent]
    message = str(silent[0].message)
    assert "EGRU(3 -> 3)" in message and "no event during a whole training batch" in message
    assert "threshold_mean=0.05" in message and "docs/ecosystems.md" in message
    net.eval()  # evaluation never warns
    net[3]._silent_warned = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            snn_utils.reset(net)
            for _ in range(5):
                net(torch.rand(4, 6))
            snn_utils.reset(net)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_active_layers_do_not_warn() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), EGRU(8, 8, init_hidden=True, threshold_mean=0.05))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _batches(net, 3)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_sequence_warns_once_per_silent_layer_in_training_only() -> None:
    torch.manual_seed(0)
    seq = EGRUSequence(6, [8, 3], threshold_mean=0.05)
    with torch.no_grad():
        seq.threshold_module(1).theta.fill_(1.0)  # layer 1 can never fire
    x = torch.randn(7, 4, 6) * 3
    seq.eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seq(x)
    assert not caught
    seq.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            seq(x)[0].sum().backward()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "EGRUSequence layer 1 (3 units)" in messages[0], messages
