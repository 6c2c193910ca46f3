"""Quantisation-aware training: fake quantisers, eval forward == numpy reference, pruning,
snnTorch state levels, checkpoints, export to the int8 artifact, PTQ."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from snntorch.functional import quant as snn_quant

from snn_egru.artifact import ArtifactError, DeploymentArtifact
from snn_egru.pruning import Pruner, PruningConfig, prune_model
from snn_egru.quantization import (
    EGRUQuantizer,
    QuantizationConfig,
    calibrate,
    coerce_quantization,
    fake_quantize_activation,
    fake_quantize_weight,
    prepare_qat,
    quantize_artifact,
    quantized_layers,
    state_quant,
    weight_codes,
    weight_scales_torch,
)
from snn_egru.quantization import _exact_product as exact_product
from snn_egru.reference import (
    EGRUParams,
    QuantizedWeight,
    quantize_state,
    quantize_weight,
    quantized_egru_step,
    quantized_matvec,
    state_levels,
    weight_scales,
)
from snn_egru.sequence import EGRUSequence

ULP_TOL = 1e-6  # the point-wise sigmoid/tanh of torch and numpy differ by <= 2 float32 ulp


def _seq(seed=0, sizes=(16, 8), inputs=12, threshold=0.1):
    torch.manual_seed(seed)
    return EGRUSequence(inputs, list(sizes), threshold_mean=threshold)


def _reference_run(layers, xs):
    """Per layer (T, B, H) events of the numpy reference, sample by sample."""
    steps, batch = xs.shape[:2]
    out = [np.zeros((steps, batch, layer.hidden_size), np.float32) for layer in layers]
    for b in range(batch):
        states = [None] * len(layers)
        for t in range(steps):
            inp = xs[t, b]
            for k, layer in enumerate(layers):
                inp, states[k] = quantized_egru_step(inp, states[k], layer)
                out[k][t, b] = inp
    return out


# ----------------------------------------------------------------------- weights
@pytest.mark.parametrize("granularity", ["row", "gate"])
def test_weight_codes_and_scales_equal_the_reference(granularity):
    w = torch.randn(3 * 5, 7) * torch.rand(3 * 5, 1)
    w[0] = 0.0  # an all-zero row: scale 1
    w[w.abs() < 0.3] = 0.0  # pruned entries
    scale = weight_scales_torch(w, granularity=granularity, hidden_size=5)
    ref = quantize_weight(w.numpy(), granularity=granularity, hidden_size=5)
    assert scale.dtype == torch.float32
    np.testing.assert_array_equal(scale.numpy(), ref.scale)
    np.testing.assert_array_equal(weight_codes(w, scale).numpy(), ref.values.toarray())
    assert np.all(weight_codes(w, scale).numpy()[w.numpy() == 0] == 0)  # zero pattern kept


def test_weight_fake_quant_is_straight_through():
    w = torch.randn(6, 4, requires_grad=True)
    wq = fake_quantize_weight(w)
    scale = weight_scales_torch(w)
    torch.testing.assert_close(wq.detach(), weight_codes(w, scale) * scale[:, None])
    (wq * torch.arange(24.0).view(6, 4)).sum().backward()
    torch.testing.assert_close(w.grad, torch.arange(24.0).view(6, 4))


def test_activation_fake_quant_lsq_gradients():
    s = torch.tensor(0.1, requires_grad=True)
    x = torch.tensor([0.04, 0.26, -5.0, 20.0], requires_grad=True)
    y = fake_quantize_activation(x, s)
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, 0.3, -5.0, 12.7]))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1.0, 1.0, 1.0, 0.0]))  # clipped: 0
    # LSQ: d/ds = round(v) - v inside, +-127 outside: (0 - 0.4) + (3 - 2.6) + (-50 + 50) + 127
    torch.testing.assert_close(s.grad, torch.tensor(127.0), atol=1e-4, rtol=0)


def test_products_equal_quantized_matvec():
    torch.manual_seed(1)
    w = torch.randn(12, 9)
    w[torch.rand(12, 9) < 0.5] = 0
    qw = quantize_weight(w.numpy())
    codes, scale = weight_codes(w, weight_scales_torch(w)), weight_scales_torch(w)
    x = torch.randn(5, 9)
    bias = torch.zeros(12)
    # int8 mode: bit-exact (integer sums), float mode: float32 rounding
    got = exact_product(x, codes, scale, torch.tensor(np.float32(0.02)), bias).numpy()
    np.testing.assert_array_equal(got, quantized_matvec(qw, x.numpy(), x_scale=0.02))
    got = exact_product(x, codes, scale, None, bias).numpy()
    np.testing.assert_allclose(got, quantized_matvec(qw, x.numpy()), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------- eval == reference
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"granularity": "gate"},
        {"products": "int8"},
        {"products": "int8", "activation_scales": "calibrated", "granularity": "gate"},
        {"state": "uniform"},
        {"state": "threshold", "products": "int8"},
    ],
)
def test_eval_forward_equals_quantized_reference(fields):
    seq = _seq()
    x = torch.randn(15, 3, 12)
    prepare_qat(seq, QuantizationConfig(**fields), calibration=lambda m: m(x))
    seq.eval()
    with torch.no_grad():
        _, _, torch_layers = seq(x, return_all_layers=True)
    layers = quantized_layers(seq)
    assert all(layer.product_mode == QuantizationConfig(**fields).products for layer in layers)
    if fields.get("products") == "int8":  # layer k+1's input scale is layer k's event scale
        assert layers[1].input_scale == layers[0].event_scale
    ref = _reference_run(layers, x.numpy())
    for k in range(2):
        np.testing.assert_allclose(torch_layers[k].numpy(), ref[k], rtol=0, atol=ULP_TOL)
        assert float((ref[k] != 0).mean()) > 0.05  # the test is not vacuous: events flow


def test_exported_codes_equal_post_training_quantisation_of_the_weights():
    seq = _seq(2)
    prepare_qat(seq, QuantizationConfig(granularity="gate"))
    for k, layer in enumerate(quantized_layers(seq)):
        for name in ("weight_ih", "weight_hh"):
            ptq = quantize_weight(
                getattr(seq, f"{name}_l{k}").detach().numpy(),
                granularity="gate",
                hidden_size=seq.hidden_sizes[k],
            )
            got: QuantizedWeight = getattr(layer, name)
            np.testing.assert_array_equal(got.scale, ptq.scale)
            assert (got.values != ptq.values).nnz == 0 and got.values.dtype == np.int8


def test_float_backbone_unchanged_without_quantizer():
    seq = _seq(3)
    x = torch.randn(6, 2, 12)
    with torch.no_grad():
        before = seq(x)[0]
    prepare_qat(seq, "int8")
    seq.quantizer = None
    with torch.no_grad():
        torch.testing.assert_close(seq(x)[0], before, rtol=0, atol=0)


# ----------------------------------------------------------------------- training
@pytest.mark.parametrize("fields", [{}, {"products": "int8"}, {"state": "uniform"}])
def test_qat_training_keeps_the_pruned_zero_pattern(fields):
    seq = _seq(4)
    masks = prune_model(seq, 0.7)
    pruner = Pruner(seq, config=PruningConfig(target_sparsity=0.7, schedule="one_shot"))
    pruner.masks = {name: masks[name] for name in pruner.masks}
    x = torch.randn(8, 4, 12)
    prepare_qat(seq, QuantizationConfig(**fields), calibration=lambda m: m(x))
    opt = torch.optim.Adam(seq.parameters(), lr=1e-2)
    seq.train()
    for _ in range(3):
        loss = seq(x)[0].square().mean()
        opt.zero_grad()
        loss.backward()
        assert seq.weight_hh_l0.grad.abs().sum() > 0
        opt.step()
        seq.clamp_thresholds()
        pruner.step(1)
    if fields.get("products") == "int8":
        assert seq.quantizer.log_activation_scales.grad is not None
    for k, layer in enumerate(quantized_layers(seq)):
        for name in ("weight_ih", "weight_hh"):
            mask = masks[f"{name}_l{k}"].numpy()
            codes = getattr(layer, name).values.toarray()
            assert np.all(codes[~mask] == 0)
            assert (codes != 0).sum() <= mask.sum()


def test_fused_and_step_by_step_qat_gradients_agree():
    x = torch.randn(7, 3, 12)
    grads = []
    for fused in (True, False):
        seq = _seq(5)
        seq.fused_backward = fused
        prepare_qat(seq, "int8")
        seq.train()
        seq(x)[0].sum().backward()
        grads.append(seq.weight_hh_l0.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_state_dict_round_trip_and_float_checkpoints_load():
    seq = _seq(6)
    x = torch.randn(9, 2, 12)
    float_state = {k: v.clone() for k, v in seq.state_dict().items()}
    prepare_qat(
        seq, QuantizationConfig(products="int8", state="threshold"), calibration=lambda m: m(x)
    )
    seq.eval()
    with torch.no_grad():
        expected = seq(x)[0]
    fresh = _seq(7)
    prepare_qat(fresh, QuantizationConfig(products="int8", state="threshold"))
    fresh.load_state_dict(seq.state_dict())
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)[0], expected, rtol=0, atol=0)
    fresh.load_state_dict(float_state)  # a float checkpoint fits a prepared model (fine-tuning)
    plain = _seq(8)
    with pytest.raises(RuntimeError, match="quantizer"):
        plain.load_state_dict(seq.state_dict())  # a QAT checkpoint needs prepare_from_checkpoint


def test_config_coercion_and_refusals():
    assert coerce_quantization(None) is None
    assert coerce_quantization("int8") == QuantizationConfig()
    cfg = QuantizationConfig(products="int8", state="uniform", state_bits=16)
    assert coerce_quantization({"class": "x", "fields": {**cfg.__dict__}}) == cfg
    for bad in ({"weights": "int4"}, {"granularity": "tensor"}, {"state": "log"},
                {"state_bits": 1}, {"state_range": (0.0, 1.0)}):  # fmt: skip
        with pytest.raises(ValueError):
            QuantizationConfig(**bad)


# ----------------------------------------------------------------------- state levels
@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_bits": 8, "uniform": False, "thr_centered": True, "threshold": 0.3,
         "lower_limit": 1 / 0.3 - 1, "upper_limit": 1 / 0.3 - 1},
        {"num_bits": 4, "uniform": False, "thr_centered": False, "threshold": 1.0},
        {"num_bits": 6, "uniform": True, "threshold": 0.5, "lower_limit": 1.0, "upper_limit": 1.0},
    ],
)  # fmt: skip
def test_state_levels_match_snntorch_state_quant(kwargs):
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1.2, 1.2, 5000).astype(np.float32))
    theirs = snn_quant.state_quant(**kwargs)(x)
    ours = state_quant(**kwargs)(x)
    # non-uniform tables are built with the same Python arithmetic: identical; uniform ones
    # with numpy's linspace instead of torch's (one float32 ulp apart)
    tol = 0 if not kwargs["uniform"] else 2e-7
    torch.testing.assert_close(ours, theirs, rtol=0, atol=tol)
    np.testing.assert_allclose(quantize_state(x.numpy(), state_levels(**kwargs)), ours, atol=0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-2, 2, width=32), min_size=1, max_size=40), st.integers(2, 8))
def test_quantize_state_picks_the_nearest_level(values, bits):
    levels = state_levels(bits, uniform=True)
    x = np.asarray(values, np.float32)
    q = quantize_state(x, levels)
    best = np.abs(levels[None, :] - x[:, None]).min(axis=1)
    assert np.all(np.abs(q - x) <= best + 1e-7)
    t = torch.from_numpy(x)
    assert np.array_equal(state_quant(bits)(t).numpy(), q)  # same table via the torch path
    t.requires_grad_(True)
    state_quant(bits)(t).sum().backward()
    assert torch.equal(t.grad, torch.ones_like(t))  # straight-through, as snnTorch's


# ----------------------------------------------------------------------- PTQ of artifacts
def _float_artifact(seed=9):
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, h in ((6, 10), (10, 5)):
        w_ih = rng.normal(0, 0.6, (3 * h, n_in)).astype(np.float32)
        w_hh = rng.normal(0, 0.6, (3 * h, h)).astype(np.float32)
        w_hh[rng.random(w_hh.shape) < 0.5] = 0
        layers.append(
            EGRUParams(
                w_ih,
                sp.csr_matrix(w_hh),
                np.zeros(3 * h, np.float32),
                np.zeros(3 * h, np.float32),
                np.full(h, 0.1, np.float32),
            )  # fmt: skip
        )
    readout = rng.normal(size=(3, 5)).astype(np.float32)
    return DeploymentArtifact(layers=layers, readout_kind="linear", readout_weight=readout,
                              readout_bias=np.zeros(3, np.float32))  # fmt: skip


def test_quantize_artifact_calibrates_scales_from_recorded_activity():
    art = _float_artifact()
    xs = np.random.default_rng(1).normal(size=(30, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="calibration_inputs"):
        quantize_artifact(art, mode="int8")
    q = quantize_artifact(art, mode="int8", calibration_inputs=[xs])
    assert q.is_quantized and q.format_version == 2
    assert q.metadata["quantization"]["method"] == "ptq"
    weight_only = quantize_artifact(art)
    run = weight_only.run_reference(xs)
    assert q.layers[0].input_scale == pytest.approx(np.abs(xs).max() / 127, rel=1e-6)
    for k in range(2):
        assert q.layers[k].event_scale == pytest.approx(
            np.abs(run.layer_events[k]).max() / 127, rel=1e-6
        )
    assert q.layers[1].input_scale == q.layers[0].event_scale
    np.testing.assert_array_equal(
        weight_only.layers[0].weight_ih.scale, weight_scales(art.layers[0].weight_ih)
    )
    with pytest.raises(ArtifactError, match="already quantised"):
        quantize_artifact(q)


def test_quantizer_needs_one_state_quantiser_per_layer():
    seq = _seq()
    with pytest.raises(ValueError, match="one state quantiser per layer"):
        EGRUQuantizer(seq, QuantizationConfig(), state_quant=[state_quant(4)])
    q = EGRUQuantizer(seq, QuantizationConfig(), state_quant=state_quant(4))
    assert all(s is not None and s.levels.shape == (16,) for s in q.state_quants)
    with pytest.raises(ValueError, match="prepare_qat"):
        calibrate(_seq(), lambda m: None)
