"""Artifact version 2 (int8 layers): round trip, version rules, bad files, QAT export."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from snn_egru.artifact import (
    FORMAT_VERSION,
    QUANTIZED_FORMAT_VERSION,
    ArtifactError,
    DeploymentArtifact,
)
from snn_egru.cli import main as cli_main
from snn_egru.export import export_artifact
from snn_egru.models.lm import EGRULanguageModel, lm_preset
from snn_egru.pruning import PruningConfig
from snn_egru.quantization import QuantizationConfig, quantize_artifact
from snn_egru.reference import QuantizedEGRUParams
from snn_egru.training.lm import load_language_model, train_language_model
from tests.snn_egru.conftest import tiny_dvs_cli_argv
from tests.snn_egru.test_quantization import _float_artifact
from tests.snn_egru.test_training_lm import cyclic_corpus, tiny_configs

XS = np.random.default_rng(2).normal(size=(25, 6)).astype(np.float32)


def _quantized(mode="int8", **kw):
    return quantize_artifact(_float_artifact(), mode=mode, calibration_inputs=XS, **kw)


def _arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _old_reader_check(path):
    """The version check of the reader before int8 support (it read version 1 only)."""
    data = _arrays(path)
    version = int(data.get("version", -1))
    if version != 1:
        raise ArtifactError(
            f"{path} has artifact version {version}; this snn-egru reads version 1: "
            "re-export it with this version"
        )


@pytest.mark.parametrize(
    "kw", [{}, {"granularity": "gate"}, {"mode": "float", "state": "threshold"}]
)
def test_round_trip_keeps_codes_scales_and_outputs(tmp_path, kw):
    art = _quantized(**kw)
    path = art.save(tmp_path / "q.npz")
    back = DeploymentArtifact.load(path)
    assert back.format_version == QUANTIZED_FORMAT_VERSION == int(_arrays(path)["version"])
    assert back.quantization() == art.quantization()
    for a, b in zip(art.layers, back.layers):
        assert isinstance(b, QuantizedEGRUParams)
        for name in ("weight_ih", "weight_hh"):
            qa, qb = getattr(a, name), getattr(b, name)
            assert qb.values.dtype == np.int8 and (qa.values != qb.values).nnz == 0
            np.testing.assert_array_equal(qa.scale, qb.scale)
        assert (a.input_scale, a.event_scale) == (b.input_scale, b.event_scale)
    np.testing.assert_array_equal(art.run_reference(XS).logits, back.run_reference(XS).logits)
    meta = json.loads(str(_arrays(path)["meta_json"]))
    assert meta["layer_kinds"] == ["int8", "int8"]
    assert meta["quantization"][0]["granularity"] == kw.get("granularity", "row")


def test_float_artifacts_stay_version_1_and_quantised_ones_fail_in_old_readers(tmp_path):
    float_path = _float_artifact().save(tmp_path / "f.npz")
    assert int(_arrays(float_path)["version"]) == FORMAT_VERSION == 1
    _old_reader_check(float_path)  # old readers still read float artifacts
    DeploymentArtifact.load(float_path)
    q_path = _quantized().save(tmp_path / "q.npz")
    with pytest.raises(ArtifactError, match="version 2; this snn-egru reads version 1: re-export"):
        _old_reader_check(q_path)
    data = _arrays(q_path)
    data["version"] = np.array(3)
    np.savez(tmp_path / "v3.npz", **data)
    with pytest.raises(ArtifactError, match="version 3; this snn-egru reads versions 1, 2"):
        DeploymentArtifact.load(tmp_path / "v3.npz")


def test_run_reference_uses_the_quantised_step():
    art = _float_artifact()
    q = quantize_artifact(art)
    deq = q.dequantized()
    assert not deq.is_quantized and q.is_quantized
    # float mode on dequantised weights: the same up to float32 rounding of the products
    np.testing.assert_allclose(
        q.run_reference(XS).logits, deq.run_reference(XS).logits, rtol=1e-4, atol=1e-5
    )
    mac = _quantized()
    assert not np.array_equal(mac.run_reference(XS).logits, q.run_reference(XS).logits)
    assert q.weight_sparsity()[0]["weight_hh"] >= 0.45


def _corrupt(tmp_path, change):
    path = _quantized().save(tmp_path / "q.npz")
    data = _arrays(path)
    change(data)
    np.savez(tmp_path / "bad.npz", **data)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update({"layer0.weight_ih.scale": d["layer0.weight_ih.scale"][:-1]}),
         "scale must be float32 of shape"),
        (lambda d: d.update({"layer0.weight_hh.scale": d["layer0.weight_hh.scale"].astype(
            np.float64)}), "scale must be float32"),
        (lambda d: d["layer0.weight_ih.q_data"].__setitem__(0, -128),
         r"outside \[-127, 127\]"),
        (lambda d: d.update({"layer1.weight_ih.q_data": d["layer1.weight_ih.q_data"].astype(
            np.int16) * 3}), r"outside \[-127, 127\]"),
        (lambda d: d.update({"layer1.weight_ih.q_data": d["layer1.weight_ih.q_data"].astype(
            np.int32)}), "must be stored as int8"),
        (lambda d: d.update({"layer0.weight_ih.q_data": d["layer0.weight_ih.q_data"].astype(
            np.float32)}), "must hold int8 codes"),
        (lambda d: d.update({"layer0.event_scale": np.array([1.0, 2.0], np.float32)}),
         "must be one float32 number"),
        (lambda d: d.update({"layer0.event_scale": np.array(-1.0, np.float32)}),
         "event_scale must be finite and > 0"),
        (lambda d: d.pop("layer0.event_scale"), "both be set or both None"),
        (lambda d: d.update({"meta_json": np.array(json.dumps({**json.loads(str(
            d["meta_json"])), "quantization": [{"granularity": "gate"}, None]}))}),
         "claims gate granularity"),
        (lambda d: d.update({"meta_json": np.array(json.dumps({**json.loads(str(
            d["meta_json"])), "layer_kinds": ["int8"]}))}), "layer_kinds"),
        (lambda d: d.pop("layer1.weight_hh.q_indptr"), "missing the entry"),
    ],
)  # fmt: skip
def test_bad_int8_files_fail_clearly(tmp_path, change, message):
    with pytest.raises(ArtifactError, match=message) as info:
        DeploymentArtifact.load(_corrupt(tmp_path, change))
    assert "\n" not in str(info.value)


def test_bad_levels_and_scales_in_memory():
    q = _quantized(mode="float", state="uniform")
    layer = q.layers[0]
    with pytest.raises(ArtifactError, match="strictly increasing"):
        replace(q, layers=[layer._replace(state_levels=layer.state_levels[::-1]), q.layers[1]])
    bad = layer.weight_hh._replace(scale=layer.weight_hh.scale[:3])
    with pytest.raises(ArtifactError, match="one float32 scale per output row"):
        replace(q, layers=[layer._replace(weight_hh=bad), q.layers[1]])


# ------------------------------------------------------------------ QAT -> artifact
@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qat")
    model_config, train_config = tiny_configs(
        max_steps=8,
        quantize=QuantizationConfig(products="int8", state="uniform"),
        pruning=PruningConfig(target_sparsity=0.5, schedule="one_shot", start_step=2),
    )
    result = train_language_model(
        model_config, train_config, data=cyclic_corpus(), out_dir=out, show_progress=False
    )
    return out, result


def test_qat_checkpoint_exports_the_codes_its_forward_uses(qat_run):
    out, result = qat_run
    model, vocab, _ = load_language_model(out / "last.pt")
    assert model.rnn.quantizer is not None
    assert model.rnn.quantizer.config == QuantizationConfig(products="int8", state="uniform")
    art = export_artifact(model, vocabulary=vocab)
    assert art.metadata["quantization"]["method"] == "qat"
    assert all(q["product_mode"] == "int8" for q in art.quantization())
    assert art.weight_sparsity()[0]["weight_hh"] >= 0.5
    tokens = cyclic_corpus().test[:60]
    with torch.no_grad():
        torch_logits = model(tokens[:, None]).logits[:, 0].numpy()
    ref = art.run_reference(tokens.numpy()).logits
    np.testing.assert_allclose(ref, torch_logits, rtol=0, atol=1e-4)
    # the learned scales are the ones exported, bit for bit
    scales = torch.exp(model.rnn.quantizer.log_activation_scales.detach()).numpy()
    assert art.layers[0].input_scale == float(scales[0])
    assert art.layers[1].event_scale == float(scales[2])


def test_float_fine_tune_from_a_float_checkpoint_then_qat(tmp_path, qat_run):
    out, _ = qat_run
    model_config, train_config = tiny_configs(max_steps=3, init_from=str(out / "last.pt"))
    # a QAT checkpoint cannot initialise a float run silently (its scales have no place)
    with pytest.raises(Exception, match="quantizer"):
        train_language_model(model_config, train_config, data=cyclic_corpus(), out_dir=None)
    float_run = tmp_path / "float"
    train_language_model(
        model_config,
        replace(train_config, init_from=None),
        data=cyclic_corpus(),
        out_dir=float_run,
        show_progress=False,
    )
    qat = train_language_model(
        model_config,
        replace(train_config, init_from=str(float_run / "last.pt"), quantize="int8"),
        data=cyclic_corpus(),
        out_dir=tmp_path / "qat",
        show_progress=False,
    )
    assert qat.model.rnn.quantizer is not None


def test_cli_export_quantize_and_refusals(tmp_path, qat_run, capsys):
    out, _ = qat_run
    model_config, train_config = tiny_configs(max_steps=2)
    float_run = tmp_path / "f"
    train_language_model(
        model_config, train_config, data=cyclic_corpus(), out_dir=float_run, show_progress=False
    )
    ckpt = str(float_run / "last.pt")
    # the CLI loads PTB's vocabulary-bearing checkpoint; this one is the cyclic corpus's
    assert cli_main(["export", ckpt, "--out", str(tmp_path / "a.npz"), "--quantize", "int8"]) == 0
    assert "int8 weights, float products, version 2" in capsys.readouterr().out
    assert DeploymentArtifact.load(tmp_path / "a.npz").is_quantized
    code = cli_main(
        ["export", ckpt, "--out", str(tmp_path / "b.npz"), "--quantize", "int8",
         "--quant-products", "int8"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--calibration" in err and "Traceback" not in err
    np.save(tmp_path / "calib.npy", cyclic_corpus().train[:200].numpy())
    assert cli_main(
        ["export", ckpt, "--out", str(tmp_path / "b.npz"), "--quantize", "int8",
         "--quant-products", "int8", "--calibration", str(tmp_path / "calib.npy")]
    ) == 0  # fmt: skip
    layer = DeploymentArtifact.load(tmp_path / "b.npz").layers[0]
    assert layer.product_mode == "int8" and layer.input_scale > 0
    # a QAT checkpoint exports its own codes; asking for another mode is refused
    assert cli_main(["export", str(out / "last.pt"), "--out", str(tmp_path / "c.npz")]) == 0
    assert "int8 products, version 2" in capsys.readouterr().out
    code = cli_main(
        ["export", str(out / "last.pt"), "--out", str(tmp_path / "d.npz"), "--quantize", "int8"]
    )
    assert code == 2 and "leave --quantize out" in capsys.readouterr().err


def test_train_cli_flags(tmp_path, capsys):
    from snn_egru.training.lm import _parser, configs_from_args

    args = _parser().parse_args(
        ["--preset", "tiny", "--quantize", "int8", "--quant-products", "int8",
         "--quant-state", "threshold", "--quant-state-bits", "16"]
    )  # fmt: skip
    _, tc = configs_from_args(args)
    assert tc.quantize == QuantizationConfig(products="int8", state="threshold", state_bits=16)
    code = cli_main(["train", "lm", "--preset", "tiny", "--quant-state", "uniform"])
    assert code == 2 and "need --quantize int8" in capsys.readouterr().err
    assert EGRULanguageModel(lm_preset("tiny", vocab_size=7)).rnn.quantizer is None


def test_float_only_chip_formats_refuse_int8_artifacts_clearly():
    from spinnaker2_backend import map_network
    from spinnaker2_backend.mapping import MappingError

    q = _quantized()
    with pytest.raises(MappingError, match="int8 layers .* map artifact.dequantized"):
        map_network(q, weight_format="csr")
    mapping = map_network(q.dequantized(), weight_format="csr")  # the float view maps
    assert mapping is not None


def test_dvs_cli_trains_with_quantize_and_exports_int8(tmp_path, capsys):
    from snn_egru.training.dvs import load_dvs_model
    from snn_egru.training.dvs import main as dvs_main

    out = tmp_path / "run"
    argv = [
        *tiny_dvs_cli_argv(out),
        "--quantize", "int8", "--quant-products", "int8", "--quant-state", "uniform",
        "--export", str(out / "dvs.npz"), "--compare", "3",
    ]  # fmt: skip
    assert dvs_main(argv) == 0
    assert "agreement 1.0000" in capsys.readouterr().out
    artifact = DeploymentArtifact.load(out / "dvs.npz")
    assert artifact.format_version == 2
    assert [q["product_mode"] for q in artifact.quantization()] == ["int8", "int8"]
    model = load_dvs_model(out / "last.pt")[0]
    assert model.rnn.quantizer.config.state == "uniform"
    # fine-tuning that checkpoint again (init_from) keeps its learned scales (no
    # recalibration): shift them far from any calibration, then fine-tune
    payload = torch.load(out / "last.pt", weights_only=False)
    key = "rnn.quantizer.log_activation_scales"
    payload["model_state"][key] = payload["model_state"][key] + 1.0
    torch.save(payload, out / "last.pt")
    model = load_dvs_model(out / "last.pt")[0]
    again = tmp_path / "again"
    argv2 = [*argv[: argv.index("--out")], "--out", str(again), "--no-progress",
             "--init-from", str(out / "last.pt"), "--quantize", "int8",
             "--quant-products", "int8", "--quant-state", "uniform"]  # fmt: skip
    assert dvs_main(argv2) == 0
    again_model = load_dvs_model(again / "last.pt")[0]
    before = model.rnn.quantizer.log_activation_scales.detach()
    after = again_model.rnn.quantizer.log_activation_scales.detach()
    # one step of LSQ moves the learned scales a little; recalibration would undo the +1
    assert torch.allclose(before, after, atol=0.05)
