"""The EvNN recipe options of the LM training config (issue 23): per-layer gradient clipping
inside the backward pass and carrying only the events between windows; defaults unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from snn_egru.data.text import corpus_from_texts
from snn_egru.models.lm import lm_preset
from snn_egru.training.lm import LMTrainConfig, lm_training_preset
from snn_egru.training.lm_task import LMTask


def _task(**train) -> LMTask:
    line = "a b c d e f\n"
    corpus = corpus_from_texts(line * 100, line * 10, line * 10, name="cyclic")
    config = lm_preset("tiny", vocab_size=len(corpus.vocabulary), threshold_value=0.0)
    tc = lm_training_preset("tiny", **train)
    return LMTask(config, tc, corpus, torch.device("cpu"), resume=False, show_progress=False)


def _step(task: LMTask) -> None:
    window = task.batches(0)[0]
    task.model.zero_grad()
    task.training_loss(task.model, window).backward()


def test_defaults_are_unchanged_and_bad_values_are_refused() -> None:
    tc = LMTrainConfig()
    assert tc.layer_grad_clip == 0.0 and tc.carry == "state"
    with pytest.raises(ValueError, match="layer_grad_clip must be >= 0"):
        LMTrainConfig(layer_grad_clip=-0.1)
    with pytest.raises(ValueError, match="carry must be one of state, y"):
        LMTrainConfig(carry="c")


def test_layer_grad_clip_clamps_the_gradient_reaching_each_layer_output() -> None:
    grads = {}
    for clip in (0.0, 1e-30):
        task = _task(layer_grad_clip=clip)
        _step(task)
        grads[clip] = (
            task.model.rnn.weight_ih_l0.grad.abs().max().item(),
            task.model.decoder_bias.grad.abs().max().item(),
        )
    assert grads[0.0][0] > 1e-6 and grads[1e-30][0] < 1e-20  # the layers see ~no gradient
    assert grads[1e-30][1] == pytest.approx(grads[0.0][1])  # the decoder bias is not a layer


@pytest.mark.parametrize("carry", ["state", "y"])
def test_carry_y_restarts_the_cell_state_in_every_window(carry) -> None:
    task = _task(carry=carry)
    _step(task)
    task.after_step(SimpleNamespace(step=1), 0.0)
    assert any(bool((s.y != 0).any()) for s in task.state)
    zero_c = all(bool((s.c == 0).all()) for s in task.state)
    assert zero_c == (carry == "y")
