"""Shared fixtures of the snn_egru tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tests use small tensors: one intra-op thread avoids thread contention on a
    2-core machine (2 threads ran such tests several times slower under load)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def deterministic_tiny_lm(vocab_size: int):
    """The tiny LM preset without dropout (runs are deterministic and comparable), with
    learned thresholds that start low enough (0.05) for the units to fire from step one."""
    from snn_egru.models.lm import LM_DROPOUTS, lm_preset

    no_dropout = dict.fromkeys((*LM_DROPOUTS, "dropconnect"), 0.0)
    return lm_preset(
        "tiny", vocab_size=vocab_size, **no_dropout, threshold_mean=0.05, learn_threshold=True
    )


def make_sequence(
    input_size: int, hidden: int | list[int], seed: int = 0, dtype=torch.float64, **kwargs
):
    """An EGRUSequence (float64 unless ``dtype``) with random biases, so that events occur
    (neither none nor all)."""
    from snn_egru.sequence import EGRUSequence

    torch.manual_seed(seed)
    seq = EGRUSequence(input_size, hidden, dtype=dtype, **kwargs)
    with torch.no_grad():
        for k in range(seq.num_layers):
            getattr(seq, f"bias_ih_l{k}").normal_(0.0, 0.5)
            getattr(seq, f"bias_hh_l{k}").normal_(0.0, 0.5)
    return seq


def tiny_dvs_cli_argv(out) -> list[str]:
    """``snn_egru.training.dvs`` arguments of a seconds-long run: the tiny preset, one epoch
    over 11 synthetic 4-frame samples, output in ``out``, no progress bars."""
    return [
        "--preset", "tiny", "--num-frames", "4", "--synthetic-train", "11",
        "--synthetic-test", "11", "--synthetic-duration", "0.1", "--epochs", "1",
        "--batch-size", "11", "--out", str(out), "--no-progress", "--seed", "2",
    ]  # fmt: skip
