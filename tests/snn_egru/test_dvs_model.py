"""DVSGestureNet: shapes, readouts, streaming, presets, deployment view, reference cross-check."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from snn_egru.artifact import DeploymentArtifact
from snn_egru.interop import sequence_to_reference
from snn_egru.models.dvs import (
    DVS_PRESETS,
    DVSGestureConfig,
    DVSGestureNet,
    dvs_preset,
    low_pass_trace,
)
from snn_egru.reference import TRACE_DECAY
from snn_egru.training.common import config_from_dict, config_to_dict
from snn_egru.training.dvs import artifact_sequence_logits


def _frames(steps=6, batch=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.full((steps, batch, 2, 32, 32), 0.3), generator=g)
    return counts.to(dtype)


def _net(readout="y", seed=0, **overrides):
    torch.manual_seed(seed)
    # low thresholds: the tiny random network sends events
    config = dvs_preset("tiny", readout_source=readout, threshold_mean=0.05, **overrides)
    return DVSGestureNet(config).eval()


def test_shapes_and_features():
    net = _net()
    x = _frames()
    features = net.features(x)
    assert features.shape == (6, 3, 32) and bool((features >= 0).all())
    out = net(x, return_all_layers=True)
    assert out.logits.shape == (3, 11) and out.step_logits.shape == (6, 3, 11)
    assert [y.shape for y in out.layer_outputs] == [(6, 3, 32), (6, 3, 32)]
    assert len(out.state) == 2
    again = net.forward_features(features)
    torch.testing.assert_close(again.logits, out.logits)
    assert net(x).layer_outputs is None


def test_y_readout_averages_per_step_logits():
    net = _net("y")
    out = net(_frames())
    torch.testing.assert_close(out.logits, out.step_logits.mean(0))
    y, _ = net.rnn(net.features(_frames()))
    torch.testing.assert_close(out.step_logits, net.readout(y))


def test_trace_readout_reads_the_last_trace():
    net = _net("trace")
    x = _frames()
    out = net(x)
    y, _ = net.rnn(net.features(x))
    trace = torch.zeros_like(y[0])
    for y_t in y:
        trace = TRACE_DECAY * trace + (1 - TRACE_DECAY) * y_t
    torch.testing.assert_close(out.logits, net.readout(trace))
    torch.testing.assert_close(out.step_logits[-1], out.logits)
    torch.testing.assert_close(low_pass_trace(y)[-1], trace)


def test_streaming_in_two_parts_equals_whole():
    net = _net("y")
    x = _frames(steps=8)
    whole = net(x)
    first = net(x[:5])
    second = net(x[5:], first.state)
    torch.testing.assert_close(
        torch.cat([first.step_logits, second.step_logits]), whole.step_logits
    )


def test_gradients_reach_cnn_rnn_and_readout():
    net = _net().train()
    loss = torch.nn.functional.cross_entropy(net(_frames()).logits, torch.tensor([0, 3, 10]))
    loss.backward()
    for name in ("head.blocks.0.conv.weight", "rnn.weight_ih_l0", "readout.weight"):
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name


def test_presets():
    paper = DVS_PRESETS["paper"]
    assert (paper.frame_size, paper.in_channels, paper.num_classes) == (32, 2, 11)
    assert paper.feature_size == 512 and paper.hidden_sizes == (256, 256)
    net = DVSGestureNet(paper).eval()
    assert net.features(_frames(steps=2, batch=1)).shape == (2, 1, 512)
    assert net.rnn.hidden_sizes == (256, 256) and net.readout.in_features == 256
    assert DVS_PRESETS["small"].feature_size < 512
    with pytest.raises(ValueError, match="unknown DVS preset"):
        dvs_preset("huge")
    assert dvs_preset("small", hidden_sizes=[32]).hidden_sizes == (32,)


def test_config_round_trips_through_checkpoint_dicts():
    config = dvs_preset("small", readout_source="trace")
    restored = config_from_dict(config_to_dict(config), DVSGestureConfig)
    assert restored == config and isinstance(restored.conv_channels, tuple)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"readout_source": "mean"}, "readout_source"),
        ({"frame_size": 30}, "divisible"),
        ({"kernel_size": 4}, "odd"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"dropout": 1.0}, "dropout"),
        ({"threshold_init": "uniform"}, "threshold_init"),
    ],
)
def test_bad_configs_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(DVS_PRESETS["tiny"], **overrides)


def test_bad_inputs_raise():
    net = _net()
    with pytest.raises(ValueError, match=r"\(T, B, 2, 32, 32\)"):
        net(torch.zeros(3, 2, 32, 32))
    with pytest.raises(ValueError, match=r"\(T, B, 2, 32, 32\)"):
        net(torch.zeros(3, 1, 2, 64, 64))
    with pytest.raises(ValueError, match="features must have shape"):
        net.forward_features(torch.zeros(3, 1, 7))


def test_deployment_io():
    net = _net("trace")
    io = net.deployment_io()
    assert io["input_kind"] == "features" and io["embedding"] is None
    assert io["readout_kind"] == "linear" and io["readout_source"] == "trace"
    assert io["readout_weight"].shape == (11, 32) and io["readout_weight"].dtype == np.float32
    np.testing.assert_array_equal(io["readout_bias"], net.readout.bias.detach().numpy())


@pytest.mark.parametrize("readout", ["y", "trace"])
def test_matches_numpy_reference_per_sample(readout):
    """The chip's view (features -> reference EGRU stack -> readout) equals the torch model."""
    net = _net(readout).double()
    x = _frames(steps=7, batch=2, dtype=torch.float64)
    with torch.no_grad():
        out = net(x)
        features = net.features(x).numpy()
    io = net.deployment_io()
    artifact = DeploymentArtifact(
        layers=sequence_to_reference(net.rnn, dtype=np.float64),
        input_kind="features",
        readout_kind="linear",
        readout_weight=net.readout.weight.detach().numpy(),
        readout_bias=net.readout.bias.detach().numpy(),
        readout_source=io["readout_source"],
    )
    fired = 0
    for b in range(2):
        if readout == "y":
            run = artifact.run_reference(features[:, b])
            np.testing.assert_allclose(run.logits, out.step_logits[:, b].numpy(), atol=1e-10)
        else:
            with pytest.raises(NotImplementedError):
                artifact.run_reference(features[:, b])
            run = _run_layers(artifact, features[:, b])
        fired += int(np.count_nonzero(run.layer_events[-1]))
        logits = artifact_sequence_logits(artifact, run.layer_events[-1])
        np.testing.assert_allclose(logits, out.logits[b].numpy(), atol=1e-10)
    assert fired > 0, "the test network must send events to test anything"


def _run_layers(artifact, features):
    """Events of every layer through the reference stack (readout ignored)."""
    plain = dataclasses.replace(artifact, readout_kind="none", readout_weight=None)
    plain = dataclasses.replace(plain, readout_bias=None, readout_source="y")
    return plain.run_reference(features)


@pytest.mark.parametrize("cell, module", [("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM)])
def test_dense_heads_swap_only_the_recurrent_layers(cell, module):
    torch.manual_seed(0)
    net = DVSGestureNet(dvs_preset("tiny", cell=cell)).eval()
    assert [type(layer) for layer in net.rnn.layers] == [module, module]
    frames = torch.rand(5, 2, 2, 32, 32)
    with torch.no_grad():
        out = net(frames, return_all_layers=True)
        h1, _ = net.rnn.layers[0](net.features(frames))
        h2, _ = net.rnn.layers[1](h1)
        expected = net.readout(h2).mean(dim=0)
    torch.testing.assert_close(out.logits, expected)
    assert out.logits.shape == (2, 11) and len(out.layer_outputs) == 2
    with pytest.raises(ValueError, match="dense baseline .* cannot be exported"):
        net.deployment_io()
    with pytest.raises(ValueError, match="unknown recurrent cell 'rnn'; valid names: egru, gru"):
        dvs_preset("tiny", cell="rnn")
