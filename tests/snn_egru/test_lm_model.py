"""The EGRU language model: shapes, tying, dropouts, regularisers, presets, protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snn_egru.models.lm import (
    LM_PRESETS,
    EGRULanguageModel,
    LanguageModelConfig,
    embedding_with_word_dropout,
    lm_preset,
    locked_dropout,
)
from snn_egru.sequence import EGRUSequence


def tiny(**overrides) -> LanguageModelConfig:
    return lm_preset("tiny", **{"vocab_size": 30, **overrides})


def test_forward_shapes_state_and_tied_decoder():
    torch.manual_seed(0)
    model = EGRULanguageModel(tiny())
    tokens = torch.randint(0, 30, (7, 3))
    logits, state, layer_outputs = model(tokens)
    assert logits.shape == (7, 3, 30)
    assert [tuple(y.shape) for y in layer_outputs] == [(7, 3, 24), (7, 3, 16)]
    assert [tuple(s.y.shape) for s in state] == [(3, 24), (3, 16)]
    assert isinstance(model.rnn, EGRUSequence)
    assert model.decoder is None and model.decoder_weight is model.embedding.weight
    names = {name for name, _ in model.named_parameters()}
    assert {"rnn.weight_ih_l0", "rnn.weight_hh_l1", "embedding.weight", "decoder_bias"} <= names


def test_eval_logits_are_the_tied_decoder_of_the_last_events():
    torch.manual_seed(1)
    model = EGRULanguageModel(tiny()).eval()
    tokens = torch.randint(0, 30, (5, 2))
    with torch.no_grad():
        out = model(tokens)
        expected = out.layer_outputs[-1] @ model.embedding.weight.T + model.decoder_bias
    torch.testing.assert_close(out.logits, expected)


def test_tying_needs_matching_sizes_and_untied_works():
    with pytest.raises(ValueError, match="last EGRU layer must have embedding_size=16"):
        tiny(hidden_sizes=(24, 20))
    model = EGRULanguageModel(tiny(hidden_sizes=(24, 20), tie_weights=False))
    assert model.decoder.weight.shape == (30, 20)
    assert model(torch.zeros(4, 2, dtype=torch.long)).logits.shape == (4, 2, 30)
    assert model.deployment_io()["readout_kind"] == "linear"


def test_state_carried_over_chunks_equals_one_pass_in_eval_mode():
    torch.manual_seed(2)
    model = EGRULanguageModel(tiny()).eval()
    tokens = torch.randint(0, 30, (12, 2))
    with torch.no_grad():
        whole = model(tokens).logits
        first = model(tokens[:5])
        second = model(tokens[5:], first.state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits]), whole)


def test_dropouts_act_in_training_only():
    torch.manual_seed(3)
    model = EGRULanguageModel(tiny(input_dropout=0.5, output_dropout=0.5, word_dropout=0.5))
    tokens = torch.randint(0, 30, (6, 2))
    model.eval()
    with torch.no_grad():
        a, b = model(tokens).logits, model(tokens).logits
    torch.testing.assert_close(a, b)
    model.train()
    with torch.no_grad():
        c = model(tokens).logits
    assert not torch.allclose(a, c)


def test_word_dropout_drops_whole_words_and_locked_dropout_shares_masks_over_time():
    torch.manual_seed(4)
    embedding = torch.nn.Embedding(5, 8)
    tokens = torch.tensor([[0, 1], [0, 2], [3, 0], [0, 4]])
    out = embedding_with_word_dropout(embedding, tokens, 0.5)
    for word in range(5):
        rows = out[tokens == word]
        dropped = (rows == 0).all(dim=-1)
        assert dropped.all() or not dropped.any(), "a word is dropped everywhere or nowhere"
        if not dropped.any():
            torch.testing.assert_close(rows[0], embedding.weight[word] * 2.0)
    x = torch.ones(10, 3, 6)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y, y[:1].expand_as(y)), "one mask per stream and feature, all steps"
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_regularization_loss_hand_computed():
    model = EGRULanguageModel(
        tiny(activity_regularization=2.0, temporal_activity_regularization=3.0, event_l1=0.5)
    )
    y0 = torch.tensor([[[1.0, -1.0]], [[0.0, 0.0]]])  # (T=2, B=1, H=2)
    y1 = torch.tensor([[[0.0, 2.0]], [[2.0, 0.0]]])
    # AR: 2 * mean(y1^2) = 2 * 8/4; TAR: 3 * mean(((2,-2))^2) = 3 * 4; L1: 0.5 * (0.5 + 1)
    expected = 2.0 * 2.0 + 3.0 * 4.0 + 0.5 * (0.5 + 1.0)
    assert float(model.regularization_loss([y0, y1])) == pytest.approx(expected)
    assert float(EGRULanguageModel(tiny()).regularization_loss([y0, y1])) == 0.0


def test_deployment_io_protocol():
    model = EGRULanguageModel(tiny())
    io = model.deployment_io()
    assert io["input_kind"] == "embedding" and io["readout_kind"] == "tied_decoder"
    assert io["readout_source"] == "y" and io["readout_weight"] is None
    assert io["embedding"].dtype == np.float32 and io["embedding"].shape == (30, 16)
    np.testing.assert_array_equal(io["embedding"], model.embedding.weight.detach().numpy())
    assert io["readout_bias"].shape == (30,)


def test_presets_and_recipe_values():
    paper = LM_PRESETS["paper"]
    assert paper.hidden_sizes == (1350, 1350, 750) and paper.embedding_size == 750
    assert paper.tie_weights and (paper.dampening, paper.support) == (3.6, 3.6)
    assert paper.threshold_mean == 0.01 and paper.learn_threshold is False
    assert paper.dropconnect == 0.7 and paper.input_dropout == 0.6
    assert paper.word_dropout == 0.1 and paper.layer_dropout == 0.25
    model = EGRULanguageModel(lm_preset("small", vocab_size=30))
    assert all(0 <= t <= 1 for t in model.rnn.threshold(0).tolist())
    # the tuned small recipe (docs/lm_quality.md): wide pseudo-derivative, thresholds 0, frozen
    small = LM_PRESETS["small"]
    assert (small.dampening, small.support, small.threshold_value) == (1.0, 1.0, 0.0)
    assert not small.learn_threshold and small.cell == "egru"
    small_model = EGRULanguageModel(lm_preset("small", vocab_size=30))
    assert small_model.rnn.threshold(0).abs().max() == 0.0
    with pytest.raises(ValueError, match="unknown language-model preset 'huge'"):
        lm_preset("huge")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(input_dropout=1.0), "input_dropout must lie in"),
        (dict(vocab_size=1), "vocab_size must be >= 2"),
        (dict(activity_regularization=-1.0), "activity_regularization must be >= 0"),
    ],
)
def test_bad_configs(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


def test_bad_tokens_are_rejected():
    model = EGRULanguageModel(tiny())
    with pytest.raises(ValueError, match="integer tensor of shape \\(T, B\\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.zeros(4, 2))


@pytest.mark.parametrize("cell, module", [("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM)])
def test_dense_baselines_match_torch_layers_in_eval(cell, module):
    """cell='gru'/'lstm': same embedding and tied decoder, layers are torch's own."""
    torch.manual_seed(3)
    model = EGRULanguageModel(tiny(cell=cell)).eval()
    assert not model.is_event_based
    assert [type(layer) for layer in model.rnn.layers] == [module, module]
    tokens = torch.randint(0, 30, (6, 2))
    with torch.no_grad():
        out = model(tokens)
        x = model.embedding(tokens)
        h1, _ = model.rnn.layers[0](x)
        h2, _ = model.rnn.layers[1](h1)
        expected = h2 @ model.embedding.weight.T + model.decoder_bias
    torch.testing.assert_close(out.logits, expected)
    assert [tuple(s.y.shape) for s in out.state] == [(2, 24), (2, 16)]
    # the state carries over windows like one pass
    with torch.no_grad():
        first = model(tokens[:4])
        second = model(tokens[4:], first.state)
    torch.testing.assert_close(second.logits, out.logits[4:], rtol=1e-5, atol=1e-6)
    model.rnn.clamp_thresholds()  # no thresholds: a no-op the training loop may call
    with pytest.raises(ValueError, match="dense baseline .* cannot be exported"):
        model.deployment_io()


def test_dense_baseline_dropconnect_masks_weight_hh_and_keeps_its_gradient():
    torch.manual_seed(4)
    model = EGRULanguageModel(
        tiny(cell="gru", dropconnect=0.5, input_dropout=0.0, output_dropout=0.0, layer_dropout=0.0)
    ).train()
    tokens = torch.randint(0, 30, (5, 2))
    a, b = model(tokens).logits, model(tokens).logits
    assert not torch.allclose(a, b)  # a fresh DropConnect mask per call
    a.sum().backward()
    grad = model.rnn.layers[0].weight_hh_l0.grad
    assert grad is not None and grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tokens).logits, model(tokens).logits)


def test_unknown_cell_lists_the_valid_names():
    with pytest.raises(
        ValueError, match="unknown recurrent cell 'rnn'; valid names: egru, gru, lstm"
    ):
        tiny(cell="rnn")
    with pytest.raises(ValueError, match="zoneout is implemented for the EGRU only"):
        tiny(cell="lstm", zoneout=0.1)


def test_event_amplitude_reaches_the_layers_and_bad_names_list_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown event_amplitude 'signed'; valid names: state, clamped"
    ):
        tiny(event_amplitude="signed")
    from snn_egru.models.lm import EGRULanguageModel

    model = EGRULanguageModel(tiny(event_amplitude="clamped"))
    assert model.rnn.spike_grad.amplitude == "clamped"
    assert EGRULanguageModel(tiny()).rnn.spike_grad.amplitude == "state"


def test_decoder_input_ablations_read_the_candidate_state_and_cannot_be_exported():
    from snn_egru.functional import candidate_state
    from snn_egru.models.lm import EGRULanguageModel

    with pytest.raises(ValueError, match="unknown decoder_input 'c'; valid names: events, state"):
        tiny(decoder_input="c")
    with pytest.raises(ValueError, match="is an EGRU ablation"):
        tiny(cell="gru", decoder_input="state")
    torch.manual_seed(0)
    tokens = torch.randint(0, 30, (6, 3))
    events = EGRULanguageModel(tiny()).eval()
    logits = {}
    for name in ("state", "positive-state"):
        model = EGRULanguageModel(tiny(decoder_input=name)).eval()
        model.load_state_dict(events.state_dict())
        with torch.no_grad():
            logits[name] = model(tokens).logits
        with pytest.raises(ValueError, match="is an ablation .* cannot be exported"):
            model.deployment_io()
        from snn_egru.sparsity import SparsityProbe

        with SparsityProbe(model) as probe, torch.no_grad():  # events counted, no readout
            model(tokens)
        assert 0.0 <= probe.result().activity_sparsity <= 1.0
    # c~ of the last layer by hand, step by step, from the first layer's events
    with torch.no_grad():
        x = events.embedding(tokens)
        y0, _, layers = events.rnn(x, return_all_layers=True)
        p = events.rnn.layer_params(1)
        y, c, c_tildes = torch.zeros(3, 16), torch.zeros(3, 16), []
        for t in range(6):
            gi = F.linear(layers[0][t], p.weight_ih, p.bias_ih)
            c_tilde = candidate_state(gi, F.linear(y, p.weight_hh, p.bias_hh), c)
            o = (c_tilde > p.threshold).to(c_tilde.dtype)
            y, c = o * c_tilde, c_tilde - o * p.threshold
            c_tildes.append(c_tilde)
        c_tilde = torch.stack(c_tildes)
        torch.testing.assert_close(y0, layers[1])
        for name, value in (("state", c_tilde), ("positive-state", torch.relu(c_tilde))):
            expected = F.linear(value, events.decoder_weight, events.decoder_bias)
            torch.testing.assert_close(logits[name], expected, rtol=1e-5, atol=1e-5)
    assert (c_tilde < 0).any()  # the part the events never show


def test_train_cli_cell_and_event_amplitude_flags_reach_the_configs():
    from snn_egru.training.dvs import _configs_from_args as dvs_configs
    from snn_egru.training.dvs import build_arg_parser as dvs_parser
    from snn_egru.training.lm import _parser, configs_from_args

    mc, _ = configs_from_args(_parser().parse_args(["--preset", "tiny", "--cell", "lstm"]))
    assert mc.cell == "lstm"
    argv = ["--preset", "small", "--event-amplitude", "state"]
    mc, _ = configs_from_args(_parser().parse_args(argv))
    assert mc.event_amplitude == "state" and mc.hidden_sizes == (256,)
    # the small preset starts every threshold at 0; --threshold-mean asks for a Beta draw
    mc, _ = configs_from_args(_parser().parse_args(["--preset", "small"]))
    assert mc.threshold_value == 0.0
    argv = ["--preset", "small", "--threshold-mean", "0.2"]
    mc, _ = configs_from_args(_parser().parse_args(argv))
    assert (mc.threshold_value, mc.threshold_mean) == (None, 0.2)
    argv = ["--preset", "tiny", "--cell", "gru", "--event-amplitude", "clamped"]
    dc, _ = dvs_configs(dvs_parser().parse_args(argv))
    assert (dc.cell, dc.event_amplitude) == ("gru", "clamped")
