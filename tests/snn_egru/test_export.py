"""Export torch -> deployment artifact -> file -> numpy reference, and malformed files."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from snn_egru.artifact import FORMAT_VERSION, ArtifactError, DeploymentArtifact
from snn_egru.export import export_artifact, export_language_model_checkpoint
from snn_egru.models.lm import EGRULanguageModel, lm_preset
from snn_egru.pruning import prune_model
from snn_egru.sparsity import SparsityProbe
from snn_egru.training.common import save_checkpoint

VOCAB = 40


def trained_like_model(seed: int = 0, **overrides) -> EGRULanguageModel:
    """A tiny LM with a spread-out embedding so that units fire often but not always."""
    torch.manual_seed(seed)
    model = EGRULanguageModel(lm_preset("tiny", **{"vocab_size": VOCAB, **overrides}))
    with torch.no_grad():
        model.embedding.weight.normal_(0.0, 1.0)
        model.decoder_bias.normal_(0.0, 0.1)
    return model.eval()


def torch_logits_in_two_chunks(model, tokens, split):
    with torch.no_grad():
        first = model(tokens[:split, None])
        second = model(tokens[split:, None], first.state)
    return torch.cat([first.logits, second.logits])[:, 0].numpy()


def reference_logits_in_two_chunks(artifact, tokens, split):
    first = artifact.run_reference(tokens[:split])
    second = artifact.run_reference(tokens[split:], first.states)
    events = [np.concatenate([a, b]) for a, b in zip(first.layer_events, second.layer_events)]
    return np.concatenate([first.logits, second.logits]), events


def test_round_trip_torch_artifact_file_reference(tmp_path):
    model = trained_like_model()
    vocabulary = [f"w{i}" for i in range(VOCAB)]
    artifact = export_artifact(model, vocabulary=vocabulary, metadata={"note": "unit test"})
    assert artifact.input_kind == "embedding" and artifact.readout_kind == "tied_decoder"
    assert artifact.layer_sizes == [24, 16] and artifact.vocabulary == vocabulary
    assert artifact.metadata["note"] == "unit test"
    assert artifact.metadata["model"]["config"]["fields"]["hidden_sizes"] == [24, 16]
    assert all(isinstance(layer.weight_hh, np.ndarray) for layer in artifact.layers)  # dense
    path = artifact.save(tmp_path / "lm.npz")
    loaded = DeploymentArtifact.load(path)

    tokens = torch.randint(0, VOCAB, (45,), generator=torch.Generator().manual_seed(1))
    expected = torch_logits_in_two_chunks(model, tokens, 20)
    logits, events = reference_logits_in_two_chunks(loaded, tokens.numpy(), 20)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch_events = model(tokens[:, None]).layer_outputs
    for ours, theirs in zip(events, torch_events):
        activity = (ours != 0).mean()
        assert 0.05 < activity < 0.95, "the check must exercise both events and silence"
        np.testing.assert_array_equal(ours != 0, theirs[:, 0].numpy() != 0)


def test_pruned_model_exports_csr_with_the_right_sparsity(tmp_path):
    model = trained_like_model(seed=2)
    prune_model(model, 0.9)
    artifact = export_artifact(model)  # auto: >= 50 % zeros -> CSR
    for layer, row in zip(artifact.layers, artifact.weight_sparsity()):
        assert sp.issparse(layer.weight_ih) and sp.issparse(layer.weight_hh)
        assert row["weight_ih"] == pytest.approx(0.9, abs=0.01)
        assert row["weight_hh"] == pytest.approx(0.9, abs=0.01)
        assert layer.weight_hh.nnz == int(np.count_nonzero(layer.weight_hh.toarray()))
    path = artifact.save(tmp_path / "pruned.npz")
    with np.load(path) as npz:
        assert "layer0.weight_hh.csr_data" in npz.files and "layer0.weight_hh" not in npz.files
    loaded = DeploymentArtifact.load(path)
    assert sp.issparse(loaded.layers[1].weight_ih)
    dense = export_artifact(model, sparse=False)
    assert isinstance(dense.layers[0].weight_ih, np.ndarray)
    tokens = np.arange(30) % VOCAB
    np.testing.assert_allclose(
        loaded.run_reference(tokens).logits, dense.run_reference(tokens).logits, atol=1e-5
    )
    expected = torch_logits_in_two_chunks(model, torch.from_numpy(tokens), 15)
    np.testing.assert_allclose(loaded.run_reference(tokens).logits, expected, atol=1e-5)
    # the dense (unpruned) model stays dense in auto mode; sparse=True forces CSR
    assert isinstance(export_artifact(trained_like_model()).layers[0].weight_hh, np.ndarray)
    assert sp.issparse(export_artifact(trained_like_model(), sparse=True).layers[0].weight_hh)


def test_sparsity_probe_agrees_with_the_artifact_events():
    model = trained_like_model(seed=3)
    tokens = torch.randint(0, VOCAB, (25,), generator=torch.Generator().manual_seed(4))
    with SparsityProbe(model) as probe, torch.no_grad():
        model(tokens[:, None])
    account = probe.result()
    run = export_artifact(model).run_reference(tokens.numpy())
    for layer, events in zip(account.layers, run.layer_events):
        assert layer.events == int(np.count_nonzero(events))
        assert layer.activity_sparsity == pytest.approx(1 - np.count_nonzero(events) / events.size)
    # the readout is the tied decoder: V x H_last dense MACs per token
    assert account.readout_macs.dense == VOCAB * 16


def test_export_checkpoint_and_protocol_errors(tmp_path):
    model = trained_like_model(seed=5)
    save_checkpoint(
        tmp_path / "lm.pt",
        model=model,
        config=model.config,
        vocabulary=[f"w{i}" for i in range(VOCAB)],
        metrics={"test_perplexity": 12.5},
    )
    artifact = export_language_model_checkpoint(tmp_path / "lm.pt", tmp_path / "lm.npz")
    assert (tmp_path / "lm.npz").exists()
    assert artifact.metadata["metrics"]["test_perplexity"] == 12.5
    assert artifact.vocabulary[3] == "w3"

    with pytest.raises(TypeError, match="needs an 'rnn' attribute"):
        export_artifact(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="zoneout"):
        export_artifact(trained_like_model(zoneout=0.1))
    assert export_artifact(trained_like_model(zoneout=0.1), allow_zoneout=True).num_layers == 2
    with pytest.raises(TypeError, match="JSON"):
        export_artifact(model, metadata={"bad": object()})
    with pytest.raises(ArtifactError, match="vocabulary has 3 words"):
        export_artifact(model, vocabulary=["a", "b", "c"])


# ------------------------------------------------------------------ malformed artifact files
@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    model = trained_like_model(seed=6)
    prune_model(model, 0.6, include=("*weight_hh_l1*",))
    path = tmp_path_factory.mktemp("artifact") / "good.npz"
    export_artifact(model, vocabulary=[f"w{i}" for i in range(VOCAB)]).save(path)
    return path


def rewrite(source, target, *, drop=(), replace=None):
    """Copy an artifact .npz leaving out ``drop`` keys and replacing arrays by ``replace``."""
    with np.load(source) as npz:
        arrays = {key: npz[key] for key in npz.files if key not in drop}
    arrays.update(replace or {})
    np.savez(target, **arrays)
    return target


def test_good_file_loads(good_file):
    artifact = DeploymentArtifact.load(good_file)
    assert sp.issparse(artifact.layers[1].weight_hh)
    assert isinstance(artifact.layers[1].weight_ih, np.ndarray)


@pytest.mark.parametrize(
    "key",
    ["layer0.bias_hh", "layer1.threshold", "meta_json", "layer1.weight_hh.csr_indptr", "embedding"],
)
def test_missing_entries_are_named(good_file, tmp_path, key):
    bad = rewrite(good_file, tmp_path / "bad.npz", drop=(key,))
    with pytest.raises(ArtifactError) as info:
        DeploymentArtifact.load(bad)
    message = str(info.value)
    if key == "embedding":  # a consequence is reported: embedding input needs a table
        assert "needs a 2-D embedding table" in message
    else:
        assert repr(key) in message and "missing" in message


def test_wrong_version_and_foreign_files(good_file, tmp_path):
    bad = rewrite(good_file, tmp_path / "v9.npz", replace={"version": np.array(FORMAT_VERSION + 8)})
    with pytest.raises(ArtifactError, match=f"version {FORMAT_VERSION + 8}.*re-export"):
        DeploymentArtifact.load(bad)
    no_marker = rewrite(good_file, tmp_path / "nomarker.npz", drop=("format",))
    with pytest.raises(ArtifactError, match="missing 'format' marker"):
        DeploymentArtifact.load(no_marker)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ArtifactError, match="is not a snn-egru artifact"):
        DeploymentArtifact.load(garbage)
    with pytest.raises(ArtifactError, match="no artifact at"):
        DeploymentArtifact.load(tmp_path / "absent.npz")


def test_shape_mismatches_are_rejected(good_file, tmp_path):
    bad = rewrite(
        good_file, tmp_path / "b.npz", replace={"layer0.bias_ih": np.zeros(5, np.float32)}
    )
    with pytest.raises(ArtifactError, match="bias_ih has shape \\(5,\\), expected \\(72,\\)"):
        DeploymentArtifact.load(bad)
    narrow = rewrite(
        good_file, tmp_path / "e.npz", replace={"embedding": np.zeros((VOCAB, 3), np.float32)}
    )
    with pytest.raises(ArtifactError, match="embedding has width 3"):
        DeploymentArtifact.load(narrow)
    bias = rewrite(good_file, tmp_path / "r.npz", replace={"readout_bias": np.zeros(3, np.float32)})
    with pytest.raises(ArtifactError, match="readout_bias has shape"):
        DeploymentArtifact.load(bias)
    stack = rewrite(
        good_file, tmp_path / "s.npz", replace={"layer1.weight_ih": np.zeros((48, 5), np.float32)}
    )
    with pytest.raises(ArtifactError, match="layer 1 expects input_size=5"):
        DeploymentArtifact.load(stack)


def test_corrupt_csr_is_rejected(good_file, tmp_path):
    with np.load(good_file) as npz:
        indices = npz["layer1.weight_hh.csr_indices"].copy()
        indptr = npz["layer1.weight_hh.csr_indptr"].copy()
    indices[0] = 10_000  # column out of range
    bad = rewrite(good_file, tmp_path / "c.npz", replace={"layer1.weight_hh.csr_indices": indices})
    with pytest.raises(ArtifactError, match="layer1.weight_hh: corrupt CSR"):
        DeploymentArtifact.load(bad)
    short = rewrite(
        good_file, tmp_path / "p.npz", replace={"layer1.weight_hh.csr_indptr": indptr[:-5]}
    )
    with pytest.raises(ArtifactError, match="layer1.weight_hh: corrupt CSR"):
        DeploymentArtifact.load(short)


@pytest.mark.parametrize(
    "key, message",
    [
        ("layer0.weight_ih", "layer 0: weight_ih contains NaN"),
        ("layer1.threshold", "layer 1: threshold contains NaN"),
        ("embedding", "embedding contains NaN"),
        ("readout_bias", "readout_bias contains NaN"),
        ("layer1.weight_hh.csr_data", "layer 1: weight_hh contains NaN"),
    ],
)
def test_non_finite_values_are_rejected(good_file, tmp_path, key, message):
    with np.load(good_file) as npz:
        value = npz[key].astype(np.float32).copy()
    value.flat[0] = np.inf if key.endswith("bias") else np.nan
    bad = rewrite(good_file, tmp_path / "nan.npz", replace={key: value})
    with pytest.raises(ArtifactError, match=message.replace("NaN", "NaN or infinite")):
        DeploymentArtifact.load(bad)


def test_malformed_metadata_is_rejected(good_file, tmp_path):
    broken = rewrite(good_file, tmp_path / "j.npz", replace={"meta_json": np.array("{not json")})
    with pytest.raises(ArtifactError, match="meta_json"):
        DeploymentArtifact.load(broken)
    with np.load(good_file) as npz:
        meta = json.loads(str(npz["meta_json"]))
    del meta["input_kind"]
    lacking = rewrite(
        good_file, tmp_path / "k.npz", replace={"meta_json": np.array(json.dumps(meta))}
    )
    with pytest.raises(ArtifactError, match="'input_kind'"):
        DeploymentArtifact.load(lacking)
    meta["input_kind"] = "embedding"
    meta["vocabulary"] = ["only", "two"]
    short_vocab = rewrite(
        good_file, tmp_path / "v.npz", replace={"meta_json": np.array(json.dumps(meta))}
    )
    with pytest.raises(ArtifactError, match="vocabulary has 2 words"):
        DeploymentArtifact.load(short_vocab)


def test_pickled_object_arrays_are_refused(good_file, tmp_path):
    """The loader never unpickles: an object array in the file is an error, not code."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(good_file) as source, zipfile.ZipFile(buffer, "w") as target:
        for item in source.namelist():
            target.writestr(item, source.read(item))
        payload = io.BytesIO()
        np.save(payload, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        target.writestr("evil.npy", payload.getvalue())
    path = tmp_path / "evil.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ArtifactError):
        DeploymentArtifact.load(path)
