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
