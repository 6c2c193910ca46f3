"""Bottleneck layers (snn_egru.bottleneck): sizes and errors, forward and gradients against
a hand-written step loop, export / import round trip, chip == torch across 2 chips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snn_egru.bottleneck import (
    BottleneckError,
    bottleneck_width,
    check_bottleneck_layers,
    insert_bottlenecks,
    plain_sizes,
)
from snn_egru.functional import egru_step_torch
from snn_egru.models.lm import EGRULanguageModel, lm_preset


def test_insert_bottlenecks_expands_the_stack_and_marks_the_layers():
    stack = insert_bottlenecks((512, 512, 256), {0: 64, 1: 32})
    assert stack.hidden_sizes == (512, 64, 512, 32, 256)
    assert stack.bottleneck_layers == (1, 3)
    assert stack.chip_boundaries == (1, 3)
    assert plain_sizes(stack.hidden_sizes, stack.bottleneck_layers) == (512, 512, 256)
    assert insert_bottlenecks((8, 8), {}).hidden_sizes == (8, 8)
    assert bottleneck_width(512, 8) == 64
    assert bottleneck_width(100, 3) == 33


@pytest.mark.parametrize(
    ("sizes", "bottlenecks", "match"),
    [
        ((16, 16), {0: 0}, "k must be >= 1"),
        ((16, 16), {0: -3}, "k must be >= 1"),
        ((16, 16), {0: 16}, "not narrower than its layer"),
        ((16, 16), {0: 40}, "not narrower than its layer"),
        ((16, 16), {1: 4}, "no layer boundary 1"),
        ((16,), {0: 4}, "1-layer stack has no layer boundary"),
    ],
)
def test_bad_bottlenecks_are_clear_errors(sizes, bottlenecks, match):
    with pytest.raises(BottleneckError, match=match):
        insert_bottlenecks(sizes, bottlenecks)


def test_bad_ratios_and_marks_are_clear_errors():
    with pytest.raises(BottleneckError, match="must be > 1"):
        bottleneck_width(64, 1)
    with pytest.raises(BottleneckError, match="k = 0"):
        bottleneck_width(64, 200)
    with pytest.raises(BottleneckError, match="inner layer"):
        check_bottleneck_layers((16, 4, 16), (2,))
    with pytest.raises(BottleneckError, match="not narrower"):
        check_bottleneck_layers((16, 20, 16), (1,))
    with pytest.raises(ValueError, match="not narrower"):
        lm_preset("tiny", vocab_size=20, hidden_sizes=(24, 30, 16), bottleneck_layers=(1,))


def _bottleneck_model(seed: int = 0, kind: str = "egru", **overrides) -> EGRULanguageModel:
    """A tiny LM 24/6/16 (a bottleneck of ``kind`` after layer 0), weights scaled so that
    every layer fires; the fixed parameters of a constrained kind written back."""
    stack = insert_bottlenecks((24, 16), {0: 6})
    config = lm_preset(
        "tiny",
        vocab_size=20,
        hidden_sizes=stack.hidden_sizes,
        bottleneck_layers=stack.bottleneck_layers,
        bottleneck_kind=kind,
        threshold_value=0.02,
        dropconnect=0.0,
        **overrides,
    )
    torch.manual_seed(seed)
    model = EGRULanguageModel(config).eval()
    with torch.no_grad():  # livelier units than the default init (every layer fires)
        for name, p in model.rnn.named_parameters():
            if "weight" in name:
                p.mul_(4.0)
    model.apply_fixed_parameters()
    return model


def _chip_run_equals_torch(mapping, model: EGRULanguageModel):
    """Run 12 tokens through ``mapping`` on the simulated chip; every layer's events equal
    ``model``'s (float32 summation order: rtol 1e-4). Returns the chip run."""
    from spinnaker2_backend import run_mapping

    tokens = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], np.int64)
    run = run_mapping(mapping, tokens, progress=False)
    with torch.no_grad():
        out = model(torch.as_tensor(tokens)[:, None])
    for k in range(len(out.layer_outputs)):
        np.testing.assert_allclose(
            run.layer_events[k], out.layer_outputs[k][:, 0].numpy(), rtol=1e-4, atol=1e-5
        )
    return run


def _hand_written_logits(model: EGRULanguageModel, tokens: torch.Tensor) -> torch.Tensor:
    """The stack as an explicit loop over layers and steps of the EGRU step equations."""
    x = model.embedding(tokens)  # (T, B, E)
    for k in range(model.rnn.num_layers):
        p = model.rnn.layer_params(k)
        hidden = p.threshold.shape[0]
        y = x.new_zeros(x.shape[1], hidden)
        c = x.new_zeros(x.shape[1], hidden)
        outs = []
        for t in range(x.shape[0]):
            step = egru_step_torch(
                x[t],
                y,
                c,
                p.weight_ih,
                p.weight_hh,
                p.bias_ih,
                p.bias_hh,
                p.threshold,
                spike_fn=model.rnn.spike_grad,
            )
            y, c = step.y, step.c
            outs.append(y)
        x = torch.stack(outs)
    return torch.nn.functional.linear(x, model.decoder_weight, model.decoder_bias)


def test_forward_and_gradients_equal_a_hand_written_loop():
    model = _bottleneck_model()
    assert [model.rnn.layer_params(k).threshold.shape[0] for k in range(3)] == [24, 6, 16]
    tokens = torch.randint(0, 20, (7, 3), generator=torch.Generator().manual_seed(1))
    out = model(tokens)
    bottleneck_events = out.layer_outputs[1]
    assert bottleneck_events.shape == (7, 3, 6) and (bottleneck_events != 0).any()
    expected = _hand_written_logits(model, tokens)
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    target = torch.randint(0, 20, (7, 3), generator=torch.Generator().manual_seed(2))

    def grads(logits):
        model.zero_grad()
        torch.nn.functional.cross_entropy(logits.reshape(-1, 20), target.reshape(-1)).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    got = grads(model(tokens).logits)
    want = grads(_hand_written_logits(model, tokens))
    assert set(got) == set(want)
    for name in ("rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.weight_ih_l0"):
        assert got[name].abs().sum() > 0, f"{name}: no gradient through the bottleneck"
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_export_import_round_trip_keeps_the_bottleneck(tmp_path):
    from snn_egru.artifact import DeploymentArtifact
    from snn_egru.export import export_artifact
    from spinnaker2_backend.mapping.crossings import bottleneck_layers_of

    model = _bottleneck_model()
    artifact = export_artifact(model)
    path = artifact.save(tmp_path / "bottleneck.npz")
    loaded = DeploymentArtifact.load(path)
    assert loaded.layer_sizes == [24, 6, 16]
    assert bottleneck_layers_of(loaded) == (1,)
    tokens = np.array([3, 1, 4, 1, 5, 9, 2, 6], np.int64)
    ref = loaded.run_reference(tokens)
    with torch.no_grad():
        out = model(torch.as_tensor(tokens)[:, None])
    np.testing.assert_allclose(ref.logits, out.logits[:, 0].numpy(), rtol=1e-4, atol=1e-5)
    for k in range(3):
        np.testing.assert_allclose(
            ref.layer_events[k], out.layer_outputs[k][:, 0].numpy(), rtol=1e-4, atol=1e-5
        )


def test_chip_equals_torch_with_the_bottleneck_output_alone_crossing_chips():
    from snn_egru.export import export_artifact
    from spinnaker2_backend import Machine, map_network
    from spinnaker2_backend.mapping.crossings import (
        bottleneck_layers_of,
        check_chip_boundaries,
        crossings_from_run,
    )

    model = _bottleneck_model(seed=3)
    artifact = export_artifact(model)
    boundaries = bottleneck_layers_of(artifact)
    mapping = map_network(
        artifact,
        machine=Machine(chips=2),
        weight_format="event",
        max_units_per_pe=4,
        chip_boundaries=boundaries,
    )
    check_chip_boundaries(mapping, boundaries)
    assert mapping.placement.chips_of(0) == mapping.placement.chips_of(1) == (0,)
    assert mapping.placement.chips_of(2) == (1,)
    run = _chip_run_equals_torch(mapping, model)
    crossings = crossings_from_run(mapping, run)
    assert crossings.link_packets > 0
    assert [x.link_packets > 0 for x in crossings.layers] == [False, True, False]
    # the same count the simulator charges energy and time for
    steps = run.steps
    assert crossings.link_packets * steps == pytest.approx(run.counters.total("chip_link_hops"))
