"""Progress a person can see: log lines when stderr is not a terminal (files, CI)."""

from __future__ import annotations

import logging

from snn_egru.progress import LogProgress, progress


def test_log_lines_instead_of_a_bar_when_not_a_terminal(caplog) -> None:
    caplog.set_level(logging.INFO, logger="snn_egru.progress")
    bar = progress(total=4, desc="train", unit="step", log_interval_s=0.0)
    assert isinstance(bar, LogProgress)  # pytest's stderr is not a terminal
    for _ in range(4):
        bar.set_postfix(loss="2.310")
        bar.update(1)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "train: started of 4 steps"
    assert any("2/4 steps (50%)" in x and "steps/s" in x and "ETA" in x for x in lines), lines
    assert any("loss 2.310" in x for x in lines)
    assert lines[-1].startswith("train: done, 4/4 steps (100%)")


def test_wrapped_iterable_logs_start_and_end_and_can_be_hidden(caplog) -> None:
    caplog.set_level(logging.INFO, logger="snn_egru.progress")
    assert list(progress(range(3), desc="eval")) == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "eval: started of 3 its" and lines[-1].startswith("eval: done, 3/3 its")
    caplog.clear()
    assert list(progress(range(3), desc="eval", disable=True)) == [0, 1, 2]
    assert not caplog.records


def test_training_logs_the_loss_without_a_terminal(tmp_path, caplog) -> None:
    """A tiny training run whose stderr is not a terminal: start, loss and end are logged."""
    from dataclasses import replace

    import torch

    from snn_egru.training.lm import preset_configs, train_language_model
    from tests.snn_egru.test_training_lm import cyclic_corpus

    torch.set_num_threads(1)
    model_config, train_config = preset_configs("tiny")
    model_config = replace(model_config, vocab_size=7)
    train_config = replace(train_config, max_steps=3, final_test=False, log_every=1)
    caplog.set_level(logging.INFO, logger="snn_egru.progress")
    train_language_model(model_config, train_config, data=cyclic_corpus(), out_dir=tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    assert any(x.startswith("train: started of 3 steps") for x in lines), lines
    assert any(x.startswith("train: done, 3/3 steps") and "loss" in x for x in lines), lines
    assert any(x.startswith("eval: started") for x in lines)
