"""Training speed/precision knobs: the allocator setting, bf16 autocast through the EGRU."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from snn_egru.training import allocator

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def _faults_of_reallocating(nbytes: int) -> int:
    """Fewest page faults of writing a freed-and-reallocated ``nbytes`` buffer (4 tries)."""
    counts = []
    for _ in range(4):
        t = torch.ones(nbytes // 4)
        other = torch.ones(1000)  # as in a training step, the buffer is not the heap's top
        del t
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.ones(nbytes // 4)  # writes every page
        del t, other
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return min(counts)


@glibc
def test_keep_buffers_mapped_reuses_a_freed_45mb_buffer() -> None:
    nbytes = 45 << 20  # the demo's logits; above glibc's 32 MiB cap on the mmap threshold
    try:
        allocator.restore_malloc_defaults()
        fresh = _faults_of_reallocating(nbytes)
        assert allocator.keep_buffers_mapped()
        kept = _faults_of_reallocating(nbytes)
    finally:
        allocator.restore_malloc_defaults()
        allocator.keep_buffers_mapped()
    pages = nbytes // resource.getpagesize()
    assert fresh > pages // 2  # mapped afresh: every page faults in again
    assert kept < pages // 10  # reused from the heap


def test_keep_buffers_mapped_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNN_EGRU_MALLOPT", "0")
    monkeypatch.setattr(allocator, "_applied", False)
    assert not allocator.keep_buffers_mapped()
