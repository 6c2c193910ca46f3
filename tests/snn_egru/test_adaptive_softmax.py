"""Adaptive softmax as a model option: exact log-probabilities, frequency ranks, training,
evaluation, checkpoint round trip, export (an adaptive readout on the host), and the clear
refusals (tied decoder, on-chip readout, DDP/sampled)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from snn_egru.models.lm import EGRULanguageModel, lm_preset


def _model(**overrides) -> EGRULanguageModel:
    torch.manual_seed(0)
    config = lm_preset(
        "tiny", vocab_size=30, adaptive_softmax=(4, 12), tie_weights=False, **overrides
    )
    return EGRULanguageModel(config).eval()


def test_config_refuses_a_tied_decoder_and_bad_cutoffs() -> None:
    with pytest.raises(ValueError, match="own output weights.*tie_weights=False"):
        lm_preset("tiny", vocab_size=30, adaptive_softmax=(4,))
    for bad in ((12, 4), (0, 4), (4, 4), (4, 30)):
        with pytest.raises(ValueError, match="adaptive_softmax cutoffs"):
            lm_preset("tiny", vocab_size=30, adaptive_softmax=bad, tie_weights=False)
    assert lm_preset("tiny").adaptive_softmax == ()  # the default: the full softmax


def test_forward_gives_exact_log_probabilities_and_the_training_loss_matches() -> None:
    model = _model()
    counts = torch.arange(30, 0, -1).roll(7)  # word 7 most frequent, word 6 rarest
    model.set_word_ranks(counts)
    assert model.word_rank[7] == 0 and model.word_rank[6] == 29
    tokens = torch.randint(0, 30, (5, 3), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 30, (5, 3), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        log_prob = model(tokens).logits
        y = model.decoder_inputs(tokens).logits
        loss = model.adaptive_loss(y, targets)
    assert log_prob.shape == (5, 3, 30)
    assert torch.allclose(log_prob.logsumexp(-1), torch.zeros(5, 3), atol=1e-5)  # exact
    nll = -log_prob.gather(-1, targets.unsqueeze(-1)).mean()
    assert torch.allclose(loss, nll, atol=1e-5)
    # the head holds the most frequent words: its scores are the head's first columns
    head = model.adaptive.head(y.reshape(-1, y.shape[-1])).log_softmax(-1)
    assert torch.allclose(log_prob.reshape(-1, 30)[:, 7], head[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match="no single decoder matrix"):
        model.decoder_weight  # noqa: B018


def test_export_writes_an_adaptive_readout() -> None:
    from snn_egru.export import export_artifact

    artifact = export_artifact(_model())  # tests/snn_egru/test_adaptive_readout.py: the rest
    assert artifact.readout_kind == "adaptive" and artifact.adaptive.cutoffs == (4, 12)


def _train_tiny(tmp_path, **tc_overrides):
    from snn_egru.data.text import corpus_from_texts
    from snn_egru.training.lm import lm_training_preset, train_language_model

    words = [f"w{(i * 7) % 23}" if i % 3 else "w1" for i in range(3000)]  # w1: most frequent
    text = " ".join(words) + "\n"
    corpus = corpus_from_texts(text, text[:2000], text[:2000], name="cyclic")
    tc = lm_training_preset("tiny", max_steps=6, eval_every=3, log_every=1, bptt=10)
    for key, value in tc_overrides.items():
        setattr(tc, key, value)
    config = lm_preset("tiny", vocab_size=len(corpus.vocabulary), adaptive_softmax=(3, 10),
                       tie_weights=False)  # fmt: skip
    result = train_language_model(config, tc, data=corpus, out_dir=tmp_path, show_progress=False)
    return corpus, tc, result


def test_training_evaluation_and_checkpoint_round_trip(tmp_path) -> None:
    from snn_egru.training.lm import load_language_model
    from snn_egru.training.lm_eval import evaluate_perplexity

    corpus, tc, result = _train_tiny(tmp_path)
    model = result.model
    w1 = corpus.vocabulary.stoi["w1"]
    assert int(model.word_rank[w1]) == 0  # frequency-ranked from the training split
    train = [r["loss"] for r in result.history if r["kind"] == "train"]
    assert all(math.isfinite(x) for x in train) and train[-1] < train[0]
    valid = [r for r in result.history if r["kind"] == "valid"][-1]
    ours = evaluate_perplexity(model, corpus.valid, batch_size=tc.eval_batch_size, bptt=tc.bptt,
                               max_tokens=tc.eval_max_tokens, show_progress=False)  # fmt: skip
    assert valid["perplexity"] == ours.perplexity
    # perplexity = exp(mean NLL) of the full log-probabilities (all V words), window by
    # window: the evaluation's target-only path gives the same
    model.eval()
    source = corpus.valid[: tc.eval_max_tokens + 1]
    from snn_egru.data.text import batchify, bptt_windows, get_batch

    data = batchify(source, tc.eval_batch_size)
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for w in bptt_windows(data.shape[0], tc.bptt, random_length=False):
            inputs, targets = get_batch(data, w.start, w.seq_len)
            out = model(inputs, state)
            state = out.state
            log_prob = out.logits.reshape(-1, out.logits.shape[-1])
            total -= float(log_prob.gather(1, targets.reshape(-1, 1)).sum())
            count += targets.numel()
    assert math.isclose(ours.perplexity, math.exp(total / count), rel_tol=1e-5)
    loaded = load_language_model(tmp_path / "last.pt", map_location="cpu")
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    assert torch.equal(loaded.word_rank, model.word_rank)
    assert loaded.config.adaptive_softmax == (3, 10) and loaded.adaptive is not None
    tokens = corpus.test[:20].reshape(10, 2)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(tokens).logits, model.eval()(tokens).logits)
    # fine-tuning a full-softmax model from it is refused before any work, naming the option
    from snn_egru.training.lm import train_language_model

    full = lm_preset("tiny", vocab_size=len(corpus.vocabulary))
    tc_init = replace(tc, init_from=str(tmp_path / "last.pt"))
    with pytest.raises(ValueError, match=r"adaptive_softmax=\[3, 10\]; this run builds"):
        train_language_model(full, tc_init, data=corpus, show_progress=False)


def test_sampled_softmax_with_adaptive_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="adaptive_softmax .* softmax='full'"):
        _train_tiny(tmp_path, softmax="sampled:4")


def test_command_line_flag_unties_export_writes_and_chip_readout_exits_2(tmp_path, capsys):
    from snn_egru.training.lm import _parser, configs_from_args

    args = _parser("lm").parse_args(["--preset", "tiny", "--adaptive-softmax", "2000,6000"])
    config, _ = configs_from_args(args)
    assert config.adaptive_softmax == (2000, 6000) and not config.tie_weights
    from snn_egru.errors import UserError

    none = _parser("lm").parse_args(["--preset", "tiny", "--adaptive-softmax", "none"])
    config, _ = configs_from_args(none)  # one vocabulary with `snn-egru demo`
    assert config.adaptive_softmax == () and config.tie_weights
    bad = _parser("lm").parse_args(["--preset", "tiny", "--adaptive-softmax", "9,3"])
    with pytest.raises(UserError, match="--adaptive-softmax"):
        configs_from_args(bad)
    both = ["--preset", "tiny", "--adaptive-softmax", "20", "--softmax", "sampled:8"]
    with pytest.raises(UserError, match="drop --softmax"):
        configs_from_args(_parser("lm").parse_args(both))

    from snn_egru.cli import main as cli_main

    _train_tiny(tmp_path / "run")
    capsys.readouterr()
    code = cli_main(["export", str(tmp_path / "run" / "last.pt"), "--out", str(tmp_path / "a.npz")])
    assert code == 0 and (tmp_path / "a.npz").exists()
    from spinnaker2_backend.cli import main as chip_main

    capsys.readouterr()
    code = chip_main(["run", str(tmp_path / "a.npz"), "--steps", "3", "--readout", "chip"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "on-chip readout is one linear layer" in err[0] and "--readout host" in err[0]
