"""Constrained bottleneck kinds (snn_egru.bottleneck_layers): ``ff`` (max(0, tanh(Wx+b)),
event-based) and ``dense`` (tanh(Wx+b), every unit every step) as EGRU layers with fixed
parameters: forward against numpy, gradients against a hand-written reference and
gradcheck, fixed entries after optimizer steps and pruning, export / import round trip,
chip == torch across 2 simulated chips, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from snn_egru.bottleneck import BottleneckError, insert_bottlenecks
from snn_egru.bottleneck_layers import FIXED_Z_BIAS, constrain_bottlenecks
from snn_egru.models.lm import EGRULanguageModel, LanguageModelConfig, lm_preset
from snn_egru.sequence import EGRUSequence
from tests.snn_egru.test_bottleneck import _bottleneck_model, _chip_run_equals_torch

KINDS = ("ff", "dense")


def _model(kind: str, seed: int = 0, **overrides) -> EGRULanguageModel:
    return _bottleneck_model(seed, kind, **overrides)


def _numpy_bottleneck(kind: str, x: np.ndarray, w_n: np.ndarray, b_n: np.ndarray) -> np.ndarray:
    n = np.tanh(x.astype(np.float64) @ w_n.T.astype(np.float64) + b_n)
    return np.maximum(n, 0.0) if kind == "ff" else n


@pytest.mark.parametrize("kind", KINDS)
def test_forward_equals_numpy_relu_tanh_or_tanh(kind):
    model = _model(kind)
    tokens = torch.randint(0, 20, (9, 3), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(tokens)
    x = out.layer_outputs[0].numpy()  # the events the bottleneck reads
    y = out.layer_outputs[1].numpy()
    k = 6
    w_n = model.rnn.weight_ih_l1.detach().numpy()[2 * k :]
    b_n = model.rnn.bias_ih_l1.detach().numpy()[2 * k :]
    want = _numpy_bottleneck(kind, x, w_n, b_n)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    fired = (y != 0).mean()
    if kind == "dense":
        assert fired > 0.99  # every unit every step (tanh is 0 only at 0)
    else:
        assert 0.05 < fired < 0.95 and (y >= 0).all()
    # no memory: the same input gives the same output at every step
    layer_in = torch.as_tensor(x[:1]).repeat(4, 1, 1)
    rnn = model.rnn
    with torch.no_grad():
        gi = layer_in @ rnn.weight_ih_l1.T + rnn.bias_ih_l1
        ys, _, _ = rnn._run_layer(
            gi,
            (torch.zeros(3, k), torch.zeros(3, k)),
            rnn.weight_hh_l1,
            rnn.bias_hh_l1,
            rnn.threshold(1),
            None,
            None,
            False,
        )
    for t in range(1, 4):
        torch.testing.assert_close(ys[t], ys[0], rtol=0, atol=0)


def _one_layer(kind: str, dtype=torch.float64, dampening=0.7, support=1.0):
    torch.manual_seed(4)
    rnn = EGRUSequence(
        5, [4], dampening=dampening, support=support, learn_threshold=False, dtype=dtype
    )
    with torch.no_grad():
        rnn.weight_ih_l0.mul_(3.0)
        rnn.bias_ih_l0.uniform_(-0.5, 0.5)
    constrain_bottlenecks(rnn, [0], kind)
    return rnn


def test_ff_gradients_equal_a_hand_written_surrogate_reference():
    """y = n H(n), n = tanh(a), a = W_n x + b_n; the EGRU surrogate (product rule, triangle
    d * max(0, 1 - s |n|)) gives dy/da = (1 - n^2) (H(n) + n d max(0, 1 - s |n|))."""
    d, s = 0.7, 1.0
    rnn = _one_layer("ff", dampening=d, support=s)
    x = torch.randn(6, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x.requires_grad_(True)
    g = torch.randn(6, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    rnn.train()
    y, _ = rnn(x)
    (y * g).sum().backward()
    w_n = rnn.weight_ih_l0.detach()[8:]
    b_n = rnn.bias_ih_l0.detach()[8:]
    n = torch.tanh(x.detach() @ w_n.T + b_n)
    torch.testing.assert_close(y.detach(), torch.relu(n))
    da = g * (1 - n**2) * ((n > 0).double() + n * d * torch.clamp(1 - s * n.abs(), min=0))
    torch.testing.assert_close(x.grad, da @ w_n)
    torch.testing.assert_close(
        rnn.weight_ih_l0.grad[8:], da.reshape(-1, 4).T @ x.detach().reshape(-1, 5)
    )
    torch.testing.assert_close(rnn.bias_ih_l0.grad[8:], da.reshape(-1, 4).sum(0))
    # the fixed entries get no gradient
    assert (rnn.weight_ih_l0.grad[:8] == 0).all() and (rnn.bias_ih_l0.grad[:8] == 0).all()
    assert (rnn.weight_hh_l0.grad == 0).all() and (rnn.bias_hh_l0.grad == 0).all()


def test_dense_gradients_pass_gradcheck_in_float64():
    """theta = -2 puts v = n + 2 outside the surrogate's support: the gradient is exact."""
    rnn = _one_layer("dense")
    x = torch.randn(5, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    x.requires_grad_(True)
    w_full = rnn.weight_ih_l0.detach()
    w_n = w_full[8:].clone().requires_grad_(True)
    b_n = rnn.bias_ih_l0.detach()[8:].clone().requires_grad_(True)

    def f(x, w_n, b_n):
        params = {
            "weight_ih_l0": torch.cat([w_full[:8], w_n]),
            "bias_ih_l0": torch.cat([rnn.bias_ih_l0.detach()[:8], b_n]),
        }
        return torch.func.functional_call(rnn, params, (x,))[0]

    rnn.train()
    assert torch.autograd.gradcheck(f, (x, w_n, b_n))
    torch.testing.assert_close(f(x, w_n, b_n), torch.tanh(x @ w_n.T + b_n))


def _fixed_entries_hold(model: EGRULanguageModel) -> None:
    rnn, k = model.rnn, 6
    assert (rnn.weight_hh_l1 == 0).all() and (rnn.bias_hh_l1 == 0).all()
    assert (rnn.weight_ih_l1[: 2 * k] == 0).all() and (rnn.bias_ih_l1[:k] == 0).all()
    assert (rnn.bias_ih_l1[k : 2 * k] == -FIXED_Z_BIAS).all()
    want = 0.0 if model.config.bottleneck_kind == "ff" else -2.0
    assert (rnn.threshold(1) == want).all() and not rnn.threshold(1).requires_grad


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_parameters_stay_exactly_fixed_through_training_and_pruning(kind, tmp_path):
    from snn_egru.pruning import PruningConfig
    from snn_egru.training.lm import lm_training_preset, train_language_model
    from tests.snn_egru.test_training_lm import cyclic_corpus

    stack = insert_bottlenecks((24, 16), {0: 6})
    model_config = lm_preset(
        "tiny",
        vocab_size=7,
        hidden_sizes=stack.hidden_sizes,
        bottleneck_layers=stack.bottleneck_layers,
        bottleneck_kind=kind,
        learn_threshold=True,  # the bottleneck's threshold stays frozen all the same
    )
    pruning = PruningConfig(target_sparsity=0.8, start_step=2, end_step=6, frequency=2)
    train_config = lm_training_preset(
        "tiny",
        lr=3e-2,
        clip=1.0,
        max_steps=6,
        bptt=10,
        batch_size=4,
        final_test=False,
        weight_decay=0.5,
        pruning=pruning,
    )
    result = train_language_model(
        model_config, train_config, data=cyclic_corpus(), out_dir=tmp_path, show_progress=False
    )
    model = result.model
    _fixed_entries_hold(model)
    # the fixed zeros (2/3 of weight_ih_l1) count towards the matrix's 80 %: the n rows
    # are pruned to 3 * 0.8 - 2 = 40 %
    w_n = model.rnn.weight_ih_l1[12:]
    assert float((w_n == 0).float().mean()) == pytest.approx(0.4, abs=0.01)
    start = _model(kind)  # the learned entries did move
    assert not torch.equal(model.rnn.bias_ih_l1[12:], start.rnn.bias_ih_l1[12:])


@pytest.mark.parametrize("kind", KINDS)
def test_export_import_round_trip_keeps_the_kind(kind, tmp_path):
    from snn_egru.artifact import DeploymentArtifact
    from snn_egru.export import export_artifact
    from snn_egru.rebuild import torch_model_from_artifact

    model = _model(kind)
    path = export_artifact(model).save(tmp_path / "b.npz")
    loaded = DeploymentArtifact.load(path)
    fields = loaded.metadata["model"]["config"]["fields"]
    assert fields["bottleneck_kind"] == kind and fields["bottleneck_layers"] == [1]
    config = LanguageModelConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    )
    assert config.bottleneck_kind == kind
    tokens = np.array([3, 1, 4, 1, 5, 9, 2, 6], np.int64)
    ref = loaded.run_reference(tokens)
    with torch.no_grad():
        out = model(torch.as_tensor(tokens)[:, None])
        rebuilt = torch_model_from_artifact(loaded)(torch.as_tensor(tokens))[0]
    np.testing.assert_allclose(ref.logits, out.logits[:, 0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rebuilt.numpy(), out.logits[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ref.layer_events[1], out.layer_outputs[1][:, 0].numpy(), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("kind", KINDS)
def test_chip_equals_torch_and_only_the_projection_is_stored_and_crosses(kind):
    from snn_egru.export import export_artifact
    from spinnaker2_backend import Machine, map_network
    from spinnaker2_backend.mapping.crossings import bottleneck_layers_of, crossings_from_run

    model = _model(kind, seed=3)
    artifact = export_artifact(model)
    boundaries = bottleneck_layers_of(artifact)
    mapping = map_network(
        artifact,
        machine=Machine(chips=2),
        weight_format="event",
        max_units_per_pe=3,
        chip_boundaries=boundaries,
    )
    assert mapping.placement.chips_of(1) == (0,) and mapping.placement.chips_of(2) == (1,)
    # no recurrent traffic: the bottleneck's 2 PEs send to the next layer's PEs only
    routes = [r for r in mapping.routes if r.source.layer == 1]
    assert len(routes) == 2
    next_layer = {s.pe for s in mapping.placement.layers[2]}
    for route in routes:
        assert {pe for t in route.targets for pe in t.pes} == next_layer
    # only the n rows of weight_ih are stored: no recurrent weight, no r / z weight
    bottleneck = mapping.memory_models[1]
    w_ih = artifact.layers[1].weight_ih
    stored = int(w_ih.count_nonzero()) if sp.issparse(w_ih) else int(np.count_nonzero(w_ih))
    assert bottleneck.nnz(0, 6) == (stored, 0) and 0 < stored <= 6 * 24
    run = _chip_run_equals_torch(mapping, model)
    crossings = crossings_from_run(mapping, run)
    packets = [x.link_packets for x in crossings.layers]
    assert packets[0] == 0 and packets[2] == 0
    events = float((run.layer_events[1] != 0).sum(axis=1).mean())
    assert packets[1] == pytest.approx(events)  # one packet per event of the projection
    if kind == "dense":
        assert packets[1] == pytest.approx(6.0)  # k packets per token


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"bottleneck_kind": "linear"}, "unknown bottleneck kind 'linear'"),
        ({"bottleneck_kind": "ff", "bottleneck_layers": ()}, "without a bottleneck"),
        ({"bottleneck_kind": "ff", "zoneout": 0.1}, "zoneout=0"),
    ],
)
def test_bad_kinds_are_clear_errors(overrides, match):
    stack = insert_bottlenecks((24, 16), {0: 6})
    settings = {
        "vocab_size": 20,
        "hidden_sizes": stack.hidden_sizes,
        "bottleneck_layers": stack.bottleneck_layers,
        **overrides,
    }
    if not settings["bottleneck_layers"]:
        settings["hidden_sizes"] = (24, 16)
    with pytest.raises(ValueError, match=match):
        lm_preset("tiny", **settings)
    with pytest.raises(BottleneckError, match="constrained bottleneck kinds"):
        constrain_bottlenecks(EGRUSequence(4, [3]), [0], "egru")


def test_negative_thresholds_are_refused_in_a_layer_with_memory():
    from snn_egru.export import export_artifact
    from snn_egru.reference import validate_params, without_memory

    layers = export_artifact(_model("dense")).layers
    assert without_memory(layers[1]) and not without_memory(layers[0])
    validate_params(layers[1])
    bad = layers[0]._replace(threshold=np.full_like(layers[0].threshold, -2.0))
    with pytest.raises(ValueError, match="thresholds must be >= 0"):
        validate_params(bad)


# --------------------------------------------------------------------------- the sweep, the CLI
def test_sweep_kind_keys_labels_and_configs():
    from dataclasses import replace

    from snn_egru.sweep.grid import Grid, SweepPoint
    from snn_egru.sweep.runner import lm_configs

    settings = {"task": "lm", "cells": ("egru",), "widths": (64,), "layers": (2,)}
    plain, egru = Grid(**settings, bottlenecks=(0, 4)).points()
    none, ff = Grid(**settings, bottlenecks=(0, 4), bottleneck_kind="ff").points()
    assert none.key == plain.key and none.bottleneck_kind == "egru"  # no bottleneck, no kind
    assert "bottleneck_kind" not in egru.settings()  # keys from before the kind stay
    assert egru.key == replace(plain, bottleneck=4.0).key
    assert ff.key != egru.key and ff.settings()["bottleneck_kind"] == "ff"
    assert "bottleneck n/k=4 ff" in ff.label()
    model_config, _ = lm_configs(ff, vocab_size=50)
    assert model_config.bottleneck_kind == "ff" and model_config.hidden_sizes == (64, 16, 64)
    assert SweepPoint.from_settings(ff.settings()) == ff


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--bottlenecks", "4", "--bottleneck-kind", "linear"], "--bottleneck-kind 'linear'"),
        (["--bottleneck-kind", "ff"], "without a bottleneck"),
        (["--bottlenecks", "0", "--bottleneck-kind", "dense"], "without a bottleneck"),
    ],
)
def test_sweep_cli_bad_kinds_exit_2_with_one_line(capsys, tmp_path, extra, match):
    from snn_egru.sweep.cli import main

    args = ["run", "--task", "lm", "--cells", "egru", "--layers", "2", *extra]
    code = main([*args, "--out", str(tmp_path / "s"), "--list"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--bottleneck-kind", "ff"], "without a bottleneck"),
        (["--bottleneck-kind", "linear"], "invalid choice: 'linear'"),
        (["--hidden-sizes", "16", "--bottlenecks", "4"], "needs 2 or more layers"),
    ],
)
def test_train_lm_cli_bad_kinds_exit_2_with_one_line(capsys, tmp_path, extra, match):
    from snn_egru.cli import main

    try:
        code = main(["train", "lm", "--preset", "tiny", *extra, "--out", str(tmp_path / "r")])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not (tmp_path / "r").exists()


def test_train_lm_cli_builds_the_bottlenecked_config():
    from snn_egru.bottleneck import BOTTLENECK_KINDS
    from snn_egru.training.lm import _parser, configs_from_args
    from snn_egru.training.lm_args import BOTTLENECK_KIND_NAMES

    assert BOTTLENECK_KIND_NAMES == BOTTLENECK_KINDS
    args = _parser().parse_args(
        ["--preset", "tiny", "--hidden-sizes", "24", "16", "--bottlenecks", "4"]
        + ["--bottleneck-kind", "dense"]
    )
    model_config, _ = configs_from_args(args)
    assert model_config.hidden_sizes == (24, 6, 16) and model_config.bottleneck_layers == (1,)
    assert model_config.bottleneck_kind == "dense"


def test_the_report_shows_each_points_kind_against_the_shared_baseline(tmp_path):
    from snn_egru.bottleneck_report import collect, render_markdown
    from tests.snn_egru.test_bottleneck_report import _record, _sweep

    ff = _record("f", 8, 203.0, 8.0, [64, 8, 64], [1])  # 5x, +1.5 %
    ff["settings"]["bottleneck_kind"] = "ff"
    folder = _sweep(
        tmp_path,
        [
            _record("a", 0, 200.0, 40.0, [64, 64], []),
            _record("b", 4, 204.0, 10.0, [64, 16, 64], [1]),  # 4x, +2 %
            ff,
        ],
    )
    doc = collect([folder])
    kinds = {p["key"]: p["kind"] for p in doc["points"]}
    assert kinds == {"a": None, "b": "egru", "f": "ff"}
    rec = doc["recommended"]
    assert rec["key"] == "f" and rec["kind"] == "ff" and rec["c2c_traffic_reduction"] == 5.0
    page = render_markdown(doc)
    assert "| egru 64/8/64 | ff | 300 | 0 | none | 8 | 8 | 203.0 | +1.5 % |" in page
    assert "| egru 64/64 | - | 300 |" in page
    assert "Recommended: **n/k = 8, ff bottleneck** (k = 8, a feed-forward" in page
