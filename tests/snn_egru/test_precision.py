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


_FAULTS = """
import json, resource
import torch
from snn_egru.training import allocator


def faults(nbytes):
    counts = []  # fewest page faults of writing a freed-and-reallocated buffer, 4 tries
    for _ in range(4):
        t = torch.ones(nbytes // 4)
        other = torch.ones(1000)  # as in a training step, the buffer is not the heap's top
        del t
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.ones(nbytes // 4)  # writes every page
        del t, other
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return min(counts)


nbytes = NBYTES  # set by the test
allocator.restore_malloc_defaults()
fresh = faults(nbytes)
applied = allocator.keep_buffers_mapped()
print(json.dumps({"fresh": fresh, "applied": applied, "kept": faults(nbytes)}))
"""


@glibc
def test_keep_buffers_mapped_reuses_a_freed_45mb_buffer() -> None:
    """Measured in a fresh process: in a test worker, the heap left by earlier tests (free
    blocks kept by this very setting) can serve the buffer without a fault either way."""
    import json

    from tests.fresh_python import run_python

    nbytes = 45 << 20  # the demo's logits; above glibc's 32 MiB cap on the mmap threshold
    done = run_python(_FAULTS.replace("NBYTES", str(nbytes)))
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    pages = nbytes // resource.getpagesize()
    assert got["applied"]
    assert got["fresh"] > pages // 2  # mapped afresh: every page faults in again
    assert got["kept"] < pages // 10  # reused from the heap


def test_keep_buffers_mapped_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNN_EGRU_MALLOPT", "0")
    monkeypatch.setattr(allocator, "_applied", False)
    assert not allocator.keep_buffers_mapped()


def _train_tiny_lm(precision: str):
    from snn_egru.data.text import corpus_from_texts
    from snn_egru.models.lm import lm_preset
    from snn_egru.training.lm import lm_training_preset, train_language_model

    text = " ".join(f"w{(i * 7) % 23}" for i in range(3000)) + "\n"
    corpus = corpus_from_texts(text, text[:2000], text[:2000], name="cyclic")
    tc = lm_training_preset(
        "tiny", max_steps=8, log_every=1, bptt=10, precision=precision, final_test=False
    )
    return train_language_model(
        lm_preset("tiny", vocab_size=24), tc, data=corpus, show_progress=False
    )


def test_bf16_autocast_trains_through_the_fused_egru_loop_close_to_float32() -> None:
    """bf16 rounds the embedding/projection/decoder products to 8 mantissa bits (relative
    error ~2^-8 per product); after 8 steps the training losses stay within 2 % of float32's
    and the EGRU state is float32."""
    fp32, bf16 = _train_tiny_lm("fp32"), _train_tiny_lm("bf16")
    loss32 = [r["loss"] for r in fp32.history if r["kind"] == "train"]
    loss16 = [r["loss"] for r in bf16.history if r["kind"] == "train"]
    assert len(loss32) == len(loss16) == 8
    assert loss16 != loss32  # autocast really ran
    for a, b in zip(loss32, loss16):
        assert abs(a - b) <= 0.02 * abs(a)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    out = bf16.model(torch.zeros(3, 2, dtype=torch.long))
    assert all(s.c.dtype == torch.float32 for s in out.state)


def test_precision_is_checked() -> None:
    from snn_egru.training.loop import LoopSettings

    with pytest.raises(ValueError, match="unknown precision"):
        LoopSettings(lr=1e-3, weight_decay=0.0, schedule_steps=1, epochs=1, precision="fp8")


def _train_tiny_dvs(precision: str, folder):
    from snn_egru.data.dvs import DVSFrames, FramePreprocessing
    from snn_egru.data.synthetic_dvs import SyntheticDVSGesture, SyntheticGestureConfig
    from snn_egru.models.dvs import dvs_preset
    from snn_egru.training.dvs import DVSTrainConfig, train_dvs

    events = SyntheticDVSGesture(
        num_samples=12, seed=3, config=SyntheticGestureConfig(duration_s=6 * 0.025)
    )
    pre = FramePreprocessing(num_frames=6)
    train = DVSFrames(events, preprocessing=pre, slice_mode="random", seed=1)
    test = DVSFrames(events, preprocessing=pre, slice_mode="start")
    tc = DVSTrainConfig(epochs=1, batch_size=4, lr=6e-3, seed=5, log_every=1, precision=precision)
    return train_dvs(dvs_preset("tiny"), tc, dataset=(train, test), out_dir=folder / precision)


def test_bf16_dvs_training_runs_close_to_float32(tmp_path) -> None:
    rows = {
        p: [r["loss"] for r in _train_tiny_dvs(p, tmp_path).history if r["kind"] == "train"]
        for p in ("fp32", "bf16")
    }
    assert len(rows["fp32"]) == len(rows["bf16"]) >= 3
    assert rows["fp32"] != rows["bf16"]
    for a, b in zip(rows["fp32"], rows["bf16"]):
        assert abs(a - b) <= 0.02 * abs(a)
