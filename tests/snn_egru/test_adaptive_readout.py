"""The adaptive-softmax readout of a deployment artifact: the numpy reference against torch's
``AdaptiveLogSoftmaxWithLoss.log_prob``, the artifact's format checks and round trip, and
torch == reference == simulated chip (host readout) on an exported tiny model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_egru.adaptive_head import AdaptiveHead
from snn_egru.artifact import ArtifactError, DeploymentArtifact
from snn_egru.export import export_artifact
from snn_egru.models.lm import EGRULanguageModel, lm_preset
from snn_egru.pipeline import perplexity_from_logits

#: float32 log-probabilities: numpy and torch sum in other orders (BLAS, logsumexp).
FLOAT32_TOLERANCE = {"rtol": 1e-5, "atol": 2e-5}


def _torch_head(h: int, v: int, cutoffs, *, div_value=4.0, head_bias=False, seed=0):
    torch.manual_seed(seed)
    module = torch.nn.AdaptiveLogSoftmaxWithLoss(
        h, v, list(cutoffs), div_value=div_value, head_bias=head_bias
    )
    with torch.no_grad():  # torch's init leaves head_bias at 0: make it matter
        for p in module.parameters():
            p.normal_(0.0, 0.7)
    return module.eval()


def _head_of(module, word_rank) -> AdaptiveHead:
    """What export stores: torch's weights as they are, and the word ranks."""
    from snn_egru.export import _adaptive_head

    return _adaptive_head((module, word_rank))


def _torch_log_prob(module, x: np.ndarray, word_rank: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = module.log_prob(torch.from_numpy(x))
    return out[:, torch.from_numpy(word_rank)].numpy()


@pytest.mark.parametrize("head_bias", [False, True])
def test_reference_equals_torch_log_prob_with_ranks(head_bias) -> None:
    h, v, cutoffs = 20, 50, (5, 17, 33)
    module = _torch_head(h, v, cutoffs, head_bias=head_bias)
    rank = np.random.default_rng(1).permutation(v)
    head = _head_of(module, rank)
    head.validate()
    assert head.cutoffs == cutoffs and (head.head_bias is not None) == head_bias
    assert [p.shape for p in head.tail_projections] == [(5, 20), (1, 20), (0, 20)]  # 20 // 4**k
    x = np.maximum(np.random.default_rng(2).normal(0, 1, (31, h)), 0).astype(np.float32)
    ours = head.log_prob(x)
    assert ours.dtype == np.float32 and ours.shape == (31, v)
    np.testing.assert_allclose(ours, _torch_log_prob(module, x, rank), **FLOAT32_TOLERANCE)
    # float64 throughout: equal to rounding
    ours64 = head.astype(np.float64).log_prob(x.astype(np.float64))
    want64 = _torch_log_prob(module.double(), x.astype(np.float64), rank)
    np.testing.assert_allclose(ours64, want64, rtol=1e-12, atol=1e-12)
    # (..., H) -> (..., V)
    np.testing.assert_array_equal(head.log_prob(x.reshape(31, 1, h))[:, 0], ours)


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 12),
    v=st.integers(3, 40),
    data=st.data(),
    div_value=st.sampled_from([1.0, 2.0, 4.0]),
    head_bias=st.booleans(),
)
def test_reference_equals_torch_for_any_shape_and_cutoffs(h, v, data, div_value, head_bias):
    cutoffs = sorted(data.draw(st.sets(st.integers(1, v - 1), min_size=1, max_size=4)))
    module = _torch_head(h, v, cutoffs, div_value=div_value, head_bias=head_bias)
    rank = np.asarray(data.draw(st.permutations(range(v))), dtype=np.int64)
    x = np.random.default_rng(v * 100 + h).normal(0, 1, (4, h)).astype(np.float32)
    ours = _head_of(module, rank).log_prob(x)
    np.testing.assert_allclose(ours, _torch_log_prob(module, x, rank), **FLOAT32_TOLERANCE)


def test_log_probabilities_are_their_own_log_softmax_so_perplexity_reads_them() -> None:
    module = _torch_head(16, 40, (6, 20))
    head = _head_of(module, np.arange(40))
    x = np.random.default_rng(3).normal(0, 1, (25, 16)).astype(np.float32)
    lp = head.log_prob(x).astype(np.float64)
    # each row sums to 1 in probability, so log_softmax(lp) == lp up to float32 rounding
    np.testing.assert_allclose(np.logaddexp.reduce(lp, axis=1), 0.0, atol=1e-5)
    targets = np.random.default_rng(4).integers(0, 40, 25)
    direct = math.exp(-lp[np.arange(25), targets].mean())
    assert math.isclose(perplexity_from_logits(lp, targets), direct, rel_tol=1e-5)


# ------------------------------------------------------------------------- artifacts
def _tiny_adaptive_model(vocab: int = 30, cutoffs=(4, 12)) -> EGRULanguageModel:
    torch.manual_seed(0)
    config = lm_preset(
        "tiny", vocab_size=vocab, adaptive_softmax=cutoffs, tie_weights=False, threshold_mean=0.02
    )
    model = EGRULanguageModel(config)
    model.set_word_ranks(torch.arange(vocab, 0, -1).roll(7))  # word 7 most frequent
    with torch.no_grad():
        for p in model.adaptive.parameters():
            p.mul_(3.0)
    return model.eval()


@pytest.fixture(scope="module")
def adaptive_artifact() -> DeploymentArtifact:
    return export_artifact(_tiny_adaptive_model(), vocabulary=[f"w{i}" for i in range(30)])


def test_export_save_load_round_trip(adaptive_artifact, tmp_path) -> None:
    art = adaptive_artifact
    assert art.readout_kind == "adaptive" and art.decoder_weight is None
    assert art.output_size == 30 and art.has_readout and art.readout_bias is None
    model = _tiny_adaptive_model()
    np.testing.assert_array_equal(art.adaptive.word_rank, model.word_rank.numpy())
    np.testing.assert_array_equal(
        art.adaptive.head_weight, model.adaptive.head.weight.detach().numpy()
    )
    loaded = DeploymentArtifact.load(art.save(tmp_path / "a.npz"))
    assert loaded.adaptive.cutoffs == (4, 12)
    for name, value in art.adaptive.to_arrays().items():
        np.testing.assert_array_equal(loaded.adaptive.to_arrays()[name], value, err_msg=name)
    tokens = np.random.default_rng(5).integers(0, 30, 40)
    np.testing.assert_array_equal(
        loaded.run_reference(tokens).logits, art.run_reference(tokens).logits
    )


def _write(tmp_path, arrays) -> str:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


def test_malformed_adaptive_files_are_refused_clearly(adaptive_artifact, tmp_path) -> None:
    good = tmp_path / "good.npz"
    adaptive_artifact.save(good)
    with np.load(good) as npz:
        base = {k: npz[k] for k in npz.files}

    def load_with(**changes):
        arrays = dict(base)
        for key, value in changes.items():
            if value is None:
                arrays.pop(key)
            else:
                arrays[key] = value
        return DeploymentArtifact.load(_write(tmp_path, arrays))

    cases = {
        "missing the entry 'adaptive.tail1.output'": {"adaptive.tail1.output": None},
        "cutoffs must be increasing": {"adaptive.cutoffs": np.array([12, 4])},
        "head_weight must be": {"adaptive.head_weight": base["adaptive.head_weight"][:-1]},
        r"tail0.output must be \(8, ": {"adaptive.tail0.output": np.zeros((7, 4), np.float32)},
        "permutation": {"adaptive.word_rank": np.zeros(30, np.int64)},
        "finite": {"adaptive.head_weight": base["adaptive.head_weight"] * np.nan},
        "unexpected entries": {"adaptive.tail2.output": np.zeros((1, 1), np.float32)},
    }
    for message, changes in cases.items():
        with pytest.raises(ArtifactError, match=message):
            load_with(**changes)
    meta = str(base["meta_json"]).replace('"readout_kind": "adaptive"', '"readout_kind": "none"')
    with pytest.raises(ArtifactError, match="adaptive-softmax entries but readout_kind='none'"):
        load_with(meta_json=np.array(meta))
    with pytest.raises(ArtifactError, match="goes with readout_kind='adaptive'"):
        DeploymentArtifact(layers=adaptive_artifact.layers, readout_kind="adaptive")
    with pytest.raises(ArtifactError, match="reads 5 values per step"):
        DeploymentArtifact(
            layers=adaptive_artifact.layers,
            readout_kind="adaptive",
            adaptive=_head_of(_torch_head(5, 30, (4, 12)), np.arange(30)),
        )


def test_torch_reference_chip_and_rebuilt_model_agree(adaptive_artifact) -> None:
    from snn_egru.rebuild import torch_model_from_artifact
    from spinnaker2_backend import map_network
    from spinnaker2_backend.simulator import run_mapping

    art = adaptive_artifact
    tokens = np.random.default_rng(6).integers(0, 30, 60)
    with torch.no_grad():
        out = _tiny_adaptive_model()(torch.from_numpy(tokens).view(-1, 1))
    want = out.logits[:, 0].numpy()
    ref = art.run_reference(tokens)
    events = ref.layer_events[-1]
    assert 0.05 < np.count_nonzero(events) / events.size < 0.95  # units fire, not all
    np.testing.assert_allclose(ref.logits, want, **FLOAT32_TOLERANCE)
    rebuilt = torch_model_from_artifact(art).logits_numpy(tokens)
    np.testing.assert_allclose(rebuilt, ref.logits, **FLOAT32_TOLERANCE)
    chip = run_mapping(map_network(art, max_units_per_pe=7), tokens)  # readout on the host
    for got, layer in zip(chip.layer_events, ref.layer_events):  # float32 sums, other order
        np.testing.assert_array_equal(got != 0, layer != 0)
        np.testing.assert_allclose(got, layer, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(chip.logits, art.readout(chip.layer_events[-1]))
    np.testing.assert_allclose(chip.logits, ref.logits, **FLOAT32_TOLERANCE)
    targets = np.roll(tokens, -1)[:-1]
    assert math.isclose(
        perplexity_from_logits(chip.logits[:-1], targets),
        perplexity_from_logits(want[:-1], targets),
        rel_tol=1e-5,
    )
    with pytest.raises(ValueError, match="on-chip readout is one linear layer.*--readout host"):
        run_mapping(map_network(art), tokens, readout="chip")


def test_pruning_leaves_the_adaptive_head_dense() -> None:
    """The demo's pruning (default include/exclude) prunes the EGRU matrices only: the
    adaptive head stays dense, as a decoder does."""
    from snn_egru.pruning import prune_model

    model = _tiny_adaptive_model()
    masks = prune_model(model, 0.9)
    assert masks and all(name.startswith("rnn.") for name in masks)
    assert all(int((p == 0).sum()) == 0 for p in model.adaptive.parameters())


def test_neurobench_table_refuses_an_adaptive_readout(adaptive_artifact) -> None:
    from snn_egru.errors import UserError
    from snn_egru.neurobench import ArtifactNet

    with pytest.raises(UserError, match="adaptive softmax.*--adaptive-softmax none"):
        ArtifactNet(adaptive_artifact)


def test_int8_export_keeps_the_adaptive_readout(tmp_path) -> None:
    model = _tiny_adaptive_model()
    quantized = export_artifact(model, quantize="int8")  # int8 EGRU layers, float head
    assert quantized.is_quantized and quantized.readout_kind == "adaptive"
    loaded = DeploymentArtifact.load(quantized.save(tmp_path / "q.npz"))
    tokens = np.random.default_rng(7).integers(0, 30, 30)
    run = loaded.run_reference(tokens)
    np.testing.assert_array_equal(run.logits, loaded.readout(run.layer_events[-1]))
    np.testing.assert_allclose(np.logaddexp.reduce(run.logits, axis=1), 0.0, atol=1e-5)
