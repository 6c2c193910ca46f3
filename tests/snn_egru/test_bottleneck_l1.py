"""``bottleneck_l1``: an L1 penalty on the bottleneck layers' events only (what crosses the
chip boundary), against a hand-written sum; its gradient reaches the bottleneck and the
layers before it; it makes a trained bottleneck send fewer events; the sweep and the
trainer's command line carry it; bad values are clear errors."""

from __future__ import annotations

import pytest
import torch

from snn_egru.models.lm import LanguageModelConfig, lm_preset
from tests.snn_egru.test_bottleneck import _bottleneck_model


@pytest.mark.parametrize("kind", ["egru", "ff", "dense"])
def test_the_penalty_is_the_summed_crossing_amplitude_per_step(kind):
    model = _bottleneck_model(0, kind, bottleneck_l1=0.3, event_l1=0.05).train()
    torch.manual_seed(1)
    tokens = torch.randint(0, 20, (7, 3))
    out = model(tokens)
    ys = out.layer_outputs
    assert [y.shape[-1] for y in ys] == [24, 6, 16]
    by_hand = 0.05 * sum(y.abs().mean() for y in ys)
    bottleneck = ys[1].abs()
    by_hand = by_hand + 0.3 * bottleneck.sum() / (bottleneck.shape[0] * bottleneck.shape[1])
    loss = model.regularization_loss(ys).detach()
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-6)
    assert float(bottleneck.sum()) > 0  # the case is not trivial: the bottleneck fires
    # with event_l1 = 0 the whole penalty is the bottleneck's, and it trains the layers that
    # feed it: its own input weights and the first layer (through the bottleneck's input)
    model = _bottleneck_model(0, kind, bottleneck_l1=0.3).train()
    out = model(tokens)
    model.zero_grad()
    model.regularization_loss(out.layer_outputs).backward()
    grads = {name: p.grad for name, p in model.rnn.named_parameters()}
    for name, grad in grads.items():
        if "layers.2" in name:  # the layer after the bottleneck is not penalised
            assert grad is None or float(grad.abs().sum()) == 0.0, name
    for name in ("weight_ih_l1", "weight_ih_l0"):
        assert grads[name] is not None and float(grads[name].abs().sum()) > 0, name


def test_penalty_is_zero_at_its_default():
    model = _bottleneck_model(0, "ff").train()
    out = model(torch.randint(0, 20, (5, 2)))
    assert float(model.regularization_loss(out.layer_outputs)) == 0.0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"bottleneck_l1": -0.1}, "bottleneck_l1 must be >= 0"),
        ({"bottleneck_l1": 0.1}, "this stack has none: give bottleneck_layers"),
    ],
)
def test_bad_values_are_clear_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        lm_preset("tiny", **overrides)


def test_a_trained_bottleneck_sends_fewer_events_with_the_penalty():
    from snn_egru.data.text import corpus_from_texts
    from snn_egru.training.lm import lm_training_preset, train_language_model

    words = [f"w{(i * 7) % 23}" if i % 3 else "w1" for i in range(3000)]
    text = " ".join(words) + "\n"
    corpus = corpus_from_texts(text, text[:2000], text[:2000], name="cyclic")
    torch.set_num_threads(1)

    def crossing(gamma: float) -> float:
        config = lm_preset(
            "tiny",
            vocab_size=len(corpus.vocabulary),
            hidden_sizes=(24, 12, 16),
            bottleneck_layers=(1,),
            bottleneck_kind="ff",
            bottleneck_l1=gamma,
        )
        tc = lm_training_preset("tiny", max_steps=25, eval_every=0, log_every=25, bptt=10)
        tc.save_checkpoints, tc.final_test = False, False
        model = train_language_model(config, tc, data=corpus, show_progress=False).model
        ids = corpus.test[:200].view(-1, 1)
        with torch.no_grad():
            ys = model.eval()(ids).layer_outputs
        return float((ys[1] != 0).float().sum(-1).mean())

    # measured: 8.96 -> 1.49 events per step; a penalty of 0.05 or more silences it here
    free, penalised = crossing(0.0), crossing(0.02)
    assert free > 1.0, free  # without the penalty the bottleneck is busy
    assert 0 < penalised < 0.5 * free, (free, penalised)


# --------------------------------------------------------------------------- the sweep, the CLI
def test_sweep_points_carry_it_only_where_there_is_a_bottleneck():
    from snn_egru.sweep.grid import Grid, SweepPoint
    from snn_egru.sweep.runner import lm_configs

    settings = {"task": "lm", "cells": ("egru",), "widths": (64,), "layers": (2,)}
    plain, ff = Grid(**settings, bottlenecks=(0, 4), bottleneck_kind="ff").points()
    plain_l1, ff_l1 = Grid(
        **settings, bottlenecks=(0, 4), bottleneck_kind="ff", bottleneck_l1=0.05
    ).points()
    assert plain_l1.key == plain.key and plain_l1.bottleneck_l1 == 0.0  # one shared baseline
    assert "bottleneck_l1" not in ff.settings()  # keys from before it stay
    assert ff_l1.key != ff.key and ff_l1.settings()["bottleneck_l1"] == 0.05
    assert "ff b-l1=0.05" in ff_l1.label()
    model_config, _ = lm_configs(ff_l1, vocab_size=50)
    assert model_config.bottleneck_l1 == 0.05 and model_config.bottleneck_layers == (1,)
    assert lm_configs(plain_l1, vocab_size=50)[0].bottleneck_l1 == 0.0
    assert SweepPoint.from_settings(ff_l1.settings()) == ff_l1


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--bottleneck-l1", "0.1"], "without a bottleneck"),
        (["--bottlenecks", "4", "--bottleneck-l1", "-1"], "--bottleneck-l1: -1 must lie in"),
        (["--bottlenecks", "4", "--bottleneck-l1", "0.1,0.2"], "give one number"),
    ],
)
def test_sweep_cli_bad_values_exit_2_with_one_line(capsys, tmp_path, extra, match):
    from snn_egru.sweep.cli import main

    args = ["run", "--task", "lm", "--cells", "egru", "--layers", "2", *extra]
    code = main([*args, "--out", str(tmp_path / "s"), "--list"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_train_lm_cli_builds_it_and_refuses_it_without_a_bottleneck(capsys, tmp_path):
    from snn_egru.cli import main
    from snn_egru.training.lm import _parser, configs_from_args

    args = _parser().parse_args(
        ["--preset", "tiny", "--hidden-sizes", "24", "16", "--bottlenecks", "4"]
        + ["--bottleneck-kind", "ff", "--bottleneck-l1", "0.2"]
    )
    model_config, _ = configs_from_args(args)
    assert isinstance(model_config, LanguageModelConfig)
    assert model_config.bottleneck_l1 == 0.2 and model_config.bottleneck_layers == (1,)
    code = main(["train", "lm", "--preset", "tiny", "--bottleneck-l1", "0.2"]
                + ["--out", str(tmp_path / "r")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bottleneck-l1 0.2 penalises" in err[0], err
    assert "--bottlenecks" in err[0]
    assert not (tmp_path / "r").exists()
