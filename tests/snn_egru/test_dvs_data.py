"""DVS frames (binning, max-pooling, slices), the frame cache, and tonic's on-disk layout."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snn_egru.data.dvs as dvs
from snn_egru.data.dvs import (
    DVSFrames,
    DVSGestureDataError,
    FramePreprocessing,
    build_dvs_datasets,
    events_to_frames,
    find_dvsgesture_root,
    open_dvsgesture,
    slice_frames,
    slice_start,
)
from snn_egru.data.synthetic_dvs import (
    EVENT_DTYPE,
    SyntheticDVSGesture,
    SyntheticGestureConfig,
    write_dvsgesture_folder,
)
from snn_egru.errors import UserError

TINY = SyntheticGestureConfig(duration_s=0.15)


def _events(rows):
    """Structured events from ``(x, y, p, t)`` tuples."""
    return np.array([tuple(r) for r in rows], dtype=EVENT_DTYPE)


# ----------------------------------------------------------------------------- binning
def test_frames_hand_computed():
    events = _events(
        [
            (0, 0, 1, 1000),  # frame 0, ON, block (0, 0)
            (3, 3, 1, 2000),  # frame 0, ON, same 4x4 block, other pixel: max stays 1
            (5, 1, 0, 3000),  # frame 0, OFF, block (row 0, col 1)
            (5, 1, 0, 25999),  # frame 0 (t - t0 = 24999 < 25000): same pixel -> count 2
            (5, 1, 0, 26000),  # frame 1 (t - t0 = 25000)
            (127, 126, 1, 76000),  # frame 3 (75000 // 25000), last block
        ]
    )
    frames = events_to_frames(events)
    assert frames.dtype == np.uint16
    assert frames.shape == (4, 2, 32, 32)
    expected = np.zeros((4, 2, 32, 32), dtype=np.uint16)
    expected[0, 1, 0, 0] = 1
    expected[0, 0, 0, 1] = 2
    expected[1, 0, 0, 1] = 1
    expected[3, 1, 31, 31] = 1
    np.testing.assert_array_equal(frames, expected)
    # an explicit origin shifts the bins
    shifted = events_to_frames(events, t_start=0)
    assert shifted.shape[0] == 4 and shifted[1, 0, 0, 1] == 2
    # without pooling every event is one count
    assert events_to_frames(events, pool=1).sum() == len(events)


def test_frames_empty_and_bad_inputs():
    assert events_to_frames(_events([])).shape == (0, 2, 32, 32)
    with pytest.raises(ValueError, match="exceed the sensor"):
        events_to_frames(_events([(128, 0, 1, 0)]))
    with pytest.raises(ValueError, match="missing"):
        events_to_frames(np.zeros(3, dtype=[("x", int), ("t", int)]))
    with pytest.raises(ValueError, match="must divide"):
        events_to_frames(_events([(0, 0, 1, 0)]), pool=3)
    with pytest.raises(ValueError, match="divisible"):
        FramePreprocessing(pool=5)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    num_events=st.integers(1, 400),
    span_us=st.integers(1, 200_000),
    frame_us=st.sampled_from([1_000, 25_000, 40_000]),
    pool=st.sampled_from([1, 2, 4, 8]),
)
def test_frames_properties(seed, num_events, span_us, frame_us, pool):
    rng = np.random.default_rng(seed)
    events = np.zeros(num_events, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 128, num_events)
    events["y"] = rng.integers(0, 128, num_events)
    events["p"] = rng.random(num_events) < 0.5
    events["t"] = np.sort(rng.integers(0, span_us, num_events)) + 500
    frames = events_to_frames(events, frame_us=frame_us, pool=pool)
    duration = int(events["t"][-1] - events["t"][0])
    assert frames.shape == (duration // frame_us + 1, 2, 128 // pool, 128 // pool)
    full = events_to_frames(events, frame_us=frame_us, pool=1)
    assert int(full.sum()) == num_events
    blocks = full.reshape(full.shape[0], 2, 128 // pool, pool, 128 // pool, pool)
    np.testing.assert_array_equal(frames, blocks.max(axis=(3, 5)))


def test_frames_agree_with_tonic_to_frame():
    from tonic.functional.to_frame import to_frame_numpy

    events = SyntheticDVSGesture(num_samples=1, config=TINY)[0][0]
    ours = events_to_frames(events, frame_us=25_000, pool=1)
    theirs = to_frame_numpy(events.copy(), (128, 128, 2), time_window=25_000)
    # tonic drops the incomplete last window; every complete window must agree exactly
    assert 0 < theirs.shape[0] <= ours.shape[0]
    np.testing.assert_array_equal(ours[: theirs.shape[0]], theirs)


# ----------------------------------------------------------------------------- slices
def test_slices():
    frames = np.arange(5 * 2).reshape(5, 2).astype(np.uint16)
    np.testing.assert_array_equal(slice_frames(frames, 3, start=1), frames[1:4])
    padded = slice_frames(frames, 7, start=2)
    assert padded.shape == (7, 2) and padded.dtype == np.uint16
    np.testing.assert_array_equal(padded[:3], frames[2:])
    assert not padded[3:].any()
    assert slice_start(100, 68, "start") == 0
    assert slice_start(100, 68, "center") == 16
    assert slice_start(10, 68, "center") == 0
    starts = {slice_start(100, 68, "random", np.random.default_rng(s)) for s in range(200)}
    assert min(starts) >= 0 and max(starts) <= 32 and len(starts) > 10
    with pytest.raises(ValueError, match="needs an rng"):
        slice_start(100, 68, "random")
    with pytest.raises(ValueError, match="slice mode"):
        slice_start(100, 68, "middle")


def test_published_slice_is_68_frames_of_32x32():
    pre = FramePreprocessing()
    assert (pre.frame_us, pre.pool, pre.num_frames) == (25_000, 4, 68)
    assert pre.frame_shape == (2, 32, 32)
    assert pre.slice_duration_us == 1_700_000
    frames = DVSFrames(SyntheticDVSGesture(num_samples=1, config=TINY))
    x, label = frames[0]
    assert x.shape == (68, 2, 32, 32) and x.dtype == np.float32 and label == 0
    # 0.15 s of events = 6 or 7 frames; the rest of the slice is padding
    assert x[:5].sum() > 0 and not x[8:].any()


# ------------------------------------------------------------------------------- cache
class _CountingEvents:
    """Wraps an event dataset and counts reads (the expensive part a cache must skip)."""

    def __init__(self, inner):
        self.inner, self.reads = inner, 0
        self.targets, self.classes = inner.targets, inner.classes

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        return self.inner[i]


@pytest.mark.parametrize("on_disk", [False, True])
def test_second_epoch_does_no_binning(tmp_path, monkeypatch, on_disk):
    calls = []
    real = dvs.events_to_frames
    monkeypatch.setattr(dvs, "events_to_frames", lambda *a, **k: calls.append(1) or real(*a, **k))
    events = _CountingEvents(SyntheticDVSGesture(num_samples=3, seed=1, config=TINY))
    pre = FramePreprocessing(num_frames=4)
    frames = DVSFrames(
        events,
        preprocessing=pre,
        cache_dir=tmp_path if on_disk else None,
        cache_key="counting",
        slice_mode="random",
        seed=3,
    )
    first = [frames[i][0] for i in range(3)]
    assert len(calls) == 3 and frames.binning_calls == 3 and events.reads == 3
    frames.set_epoch(1)
    second = [frames[i][0] for i in range(3)]
    assert len(calls) == 3 and frames.binning_calls == 3 and events.reads == 3
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))  # new windows
    frames.set_epoch(0)
    for i in range(3):  # same epoch -> same windows (reproducible, worker-independent)
        np.testing.assert_array_equal(frames[i][0], first[i])
    if on_disk:
        cached = sorted(p.name for p in tmp_path.rglob("*.npy"))
        assert cached == ["000000.npy", "000001.npy", "000002.npy"]
        assert (tmp_path / "counting" / pre.binning_fingerprint() / "preprocessing.json").exists()
        # a new process (new object) on the same folder reads the cache
        again = DVSFrames(events, preprocessing=pre, cache_dir=tmp_path, cache_key="counting")
        again.warm_cache()
        assert again.binning_calls == 0 and len(calls) == 3 and events.reads == 3
        # other binning parameters -> other cache folder -> binned again
        other = DVSFrames(
            events,
            preprocessing=FramePreprocessing(frame_us=10_000),
            cache_dir=tmp_path,
            cache_key="counting",
        )
        other[0]
        assert other.binning_calls == 1


def test_cache_needs_a_key(tmp_path):
    class NoKey(_CountingEvents):
        pass

    with pytest.raises(ValueError, match="cache_key"):
        DVSFrames(NoKey(SyntheticDVSGesture(num_samples=1, config=TINY)), cache_dir=tmp_path)


def test_build_synthetic_datasets():
    pre = FramePreprocessing(num_frames=6)
    train, test = build_dvs_datasets(
        None, preprocessing=pre, synthetic_train_samples=4, synthetic_test_samples=2, seed=9
    )
    assert (len(train), len(test)) == (4, 2)
    assert train.slice_mode == "random" and test.slice_mode == "start"
    assert train.events.config.duration_s == pytest.approx(6 * 0.025)
    assert train[3][0].shape == (6, 2, 32, 32) and train.targets == [0, 1, 2, 3]


# ---------------------------------------------------------------------- tonic round trip
def _write_tonic_dataset(root, *, train=True, folders=10):
    """``folders`` users x 11 gestures in tonic's layout; returns what was written."""
    base = [SyntheticDVSGesture(num_samples=11, seed=7, config=TINY)[i] for i in range(11)]
    samples = []
    for k in range(folders):
        for events, label in base:
            shifted = events.copy()
            shifted["t"] += 1000 * k  # make every file distinct
            samples.append((shifted, label))
    write_dvsgesture_folder(root, samples, train=train)
    return samples


def test_round_trip_through_tonics_own_reader(tmp_path):
    import tonic

    samples = _write_tonic_dataset(tmp_path)
    split = tmp_path / "DVSGesture" / "ibmGestureTrain"
    assert (tmp_path / "DVSGesture" / "ibmGestureTrain.tar.gz").is_file()
    assert sorted(p.name for p in split.iterdir())[:2] == ["user01_fluorescent", "user02_led"]
    assert len(list(split.glob("*/*.npy"))) == 110
    table = np.load(split / "user01_fluorescent" / "3.npy")
    assert table.shape[1] == 4 and table.dtype == np.int64

    # tonic's own class: finds the files (no download: nothing is reachable anyway)
    reader = tonic.datasets.DVSGesture(save_to=str(tmp_path), train=True)
    assert len(reader) == 110
    by_file = {}
    for i, path in enumerate(reader.data):
        user = int(path.split("/")[-2][4:6])
        by_file[(user, reader.targets[i])] = i
    for (user, label), i in list(by_file.items())[::13]:
        events, target = reader[i]
        assert target == label and events.dtype == EVENT_DTYPE
        original, original_label = samples[(user - 1) * 11 + label]
        assert original_label == label
        expected = original.copy()
        expected["t"] = expected["t"] // 1000 * 1000  # tonic's files keep milliseconds
        np.testing.assert_array_equal(events, expected)
    assert sorted(set(reader.users)) == list(range(1, 11))

    # the project's opener: same files, sorted, with cache identity; then the frames pipeline
    opened = open_dvsgesture(tmp_path, train=True)
    assert isinstance(opened, tonic.datasets.DVSGesture) and len(opened) == 110
    assert sorted(opened.data) == sorted(reader.data)
    assert opened.targets[:12] == [*range(11), 0]  # user folders in order, labels 0..10
    assert opened.sample_id(0) == "user01_fluorescent/0"
    assert opened.sample_id(10) == "user01_fluorescent/10"
    frames = DVSFrames(opened, preprocessing=FramePreprocessing(num_frames=10))
    x, label = frames[3]
    events, target = opened[3]
    assert label == target == 3
    np.testing.assert_array_equal(x, slice_frames(events_to_frames(events), 10).astype(np.float32))


def test_opener_accepts_folder_without_archive_and_other_entry_points(tmp_path):
    events, label = SyntheticDVSGesture(num_samples=3, config=TINY)[2]
    write_dvsgesture_folder(tmp_path, [(events, label)], train=False, write_archive_marker=False)
    for entry in (tmp_path, tmp_path / "DVSGesture", tmp_path / "DVSGesture" / "ibmGestureTest"):
        assert find_dvsgesture_root(entry, train=False) == tmp_path
    test = open_dvsgesture(tmp_path / "DVSGesture", train=False)
    assert len(test) == 1 and test.targets == [2] and test.users == [1]
    assert test.cache_key().startswith("dvsgesture-test-")
    # the train split is absent: a clear error naming the layout
    with pytest.raises(DVSGestureDataError, match="ibmGestureTrain/user01_fluorescent/0.npy"):
        open_dvsgesture(tmp_path, train=True)


def test_missing_or_empty_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(DVSGestureDataError, match="does not exist") as err:
        find_dvsgesture_root(tmp_path / "nowhere")
    assert isinstance(err.value, UserError)
    assert "ibmGestureTrain.tar.gz" in str(err.value) and "synthetic" in str(err.value)
    with pytest.raises(DVSGestureDataError, match="no DVS128 Gesture data"):
        find_dvsgesture_root(tmp_path)
    (tmp_path / "DVSGesture" / "ibmGestureTrain").mkdir(parents=True)
    with pytest.raises(DVSGestureDataError, match="holds no user folders"):
        find_dvsgesture_root(tmp_path)
    # tonic's constructor path: our reader raises instead of downloading
    reader_class = dvs._local_reader_class()
    with pytest.raises(DVSGestureDataError, match="never downloads"):
        reader_class(str(tmp_path), train=True)


def test_archive_is_extracted_on_first_use(tmp_path):
    source = tmp_path / "source"
    events, label = SyntheticDVSGesture(num_samples=1, config=TINY)[0]
    split = write_dvsgesture_folder(source, [(events, label)], train=True)
    target = tmp_path / "data" / "DVSGesture"
    target.mkdir(parents=True)
    with tarfile.open(target / "ibmGestureTrain.tar.gz", "w:gz") as tar:
        tar.add(split, arcname="ibmGestureTrain")
    opened = open_dvsgesture(tmp_path / "data", train=True)
    assert len(opened) == 1
    np.testing.assert_array_equal(opened[0][0]["x"], events["x"])
