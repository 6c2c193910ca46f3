"""The synthetic DVS gesture generator: format, physics-like properties, classes, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_egru.data.synthetic_dvs import (
    EVENT_DTYPE,
    GESTURE_CLASSES,
    NUM_CLASSES,
    SENSOR_SIZE,
    SyntheticDVSGesture,
    SyntheticGestureConfig,
    generate_gesture_events,
    gesture_scene,
    sample_seed,
)

SHORT = SyntheticGestureConfig(duration_s=0.4)


def test_dtype_and_classes_match_tonic():
    import tonic

    assert EVENT_DTYPE == tonic.datasets.DVSGesture.dtype
    assert list(GESTURE_CLASSES) == tonic.datasets.DVSGesture.classes
    assert SENSOR_SIZE == tonic.datasets.DVSGesture.sensor_size


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    label=st.integers(0, NUM_CLASSES - 1),
    seed=st.integers(0, 2**31 - 1),
    duration_s=st.floats(0.1, 0.5),
)
def test_events_are_sorted_and_in_bounds(label, seed, duration_s):
    config = SyntheticGestureConfig(duration_s=duration_s)
    events = generate_gesture_events(label, seed=seed, config=config)
    assert events.dtype == EVENT_DTYPE
    assert events.ndim == 1
    assert np.all(np.diff(events["t"]) >= 0), "timestamps must be sorted"
    assert events["t"].min() >= 0 and events["t"].max() < config.duration_us
    assert events["x"].min() >= 0 and events["x"].max() < 128
    assert events["y"].min() >= 0 and events["y"].max() < 128


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    label=st.integers(0, NUM_CLASSES - 1),
    seed=st.integers(0, 2**31 - 1),
    duration_s=st.floats(1.0, 1.5),
)
def test_events_come_at_realistic_rates(label, seed, duration_s):
    """Over a clip of at least one period of the slowest gesture (~1 Hz): a 0.1 s window of
    a 2 Hz clap can fall between two claps (4.6 k events/s measured), so shorter clips have
    no rate to check. Measured at 1 s over 550 clips: 15.3-67.3 k events/s, polarity
    0.48-0.55."""
    config = SyntheticGestureConfig(duration_s=duration_s)
    events = generate_gesture_events(label, seed=seed, config=config)
    rate = len(events) / duration_s
    assert 1e4 <= rate <= 1.5e5, f"event rate {rate:.0f}/s outside 1e4..1.5e5"
    # both polarities occur in comparable numbers (edges brighten and darken)
    assert 0.3 < events["p"].mean() < 0.7


def test_same_seed_same_events_other_seed_other_events():
    a = generate_gesture_events(3, seed=11, config=SHORT)
    b = generate_gesture_events(3, seed=11, config=SHORT)
    c = generate_gesture_events(3, seed=12, config=SHORT)
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)


def _centroid_track(events: np.ndarray, frame_us: int = 25_000) -> np.ndarray:
    frame = events["t"] // frame_us
    track = []
    for k in range(int(frame.max()) + 1):
        sel = frame == k
        if sel.sum() < 20:  # a frame without motion: no position to track
            continue
        track.append((events["x"][sel].mean(), events["y"][sel].mean()))
    return np.asarray(track)


def _turning_angle(track: np.ndarray) -> float:
    """Total angle swept by the centroid around its mean (y down: + = clockwise on screen)."""
    rel = track - track.mean(axis=0)
    angle = np.unwrap(np.arctan2(rel[:, 1], rel[:, 0]))
    return float(angle[-1] - angle[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_arm_rotations_turn_the_right_way(seed):
    config = SyntheticGestureConfig(duration_s=0.5, noise_rate_hz=0.0)
    for label, clockwise in ((3, True), (4, False), (5, True), (6, False)):
        track = _centroid_track(generate_gesture_events(label, seed=seed, config=config))
        turn = _turning_angle(track)
        assert (turn > 1.0) if clockwise else (turn < -1.0), (GESTURE_CLASSES[label], turn)


def test_right_and_left_gestures_happen_on_their_side():
    config = SyntheticGestureConfig(duration_s=0.3, noise_rate_hz=0.0)
    for right, left in ((1, 2), (3, 5), (4, 6)):
        x_right = generate_gesture_events(right, seed=5, config=config)["x"].mean()
        x_left = generate_gesture_events(left, seed=5, config=config)["x"].mean()
        assert x_right > 64 > x_left, (GESTURE_CLASSES[right], x_right, x_left)


def test_drums_move_vertically_and_clapping_horizontally():
    config = SyntheticGestureConfig(duration_s=0.6, noise_rate_hz=0.0)
    drums = generate_gesture_events(8, seed=2, config=config)
    # the two drum hands beat in anti-phase: the events of each side move up and down
    right = drums[drums["x"] > drums["x"].mean()]
    track = _centroid_track(right)
    assert track[:, 1].std() > 2.0 * track[:, 0].std()
    clap = generate_gesture_events(0, seed=2, config=config)
    right = clap[clap["x"] > clap["x"].mean()]
    track = _centroid_track(right)
    assert track[:, 0].std() > track[:, 1].std()


def test_static_scene_makes_only_noise():
    """No motion -> no signal events: with noise off, a scene frozen in time is silent."""
    config = SyntheticGestureConfig(duration_s=0.2, noise_rate_hz=0.0, speed_scale=1e-9)
    events = generate_gesture_events(3, seed=0, config=config)
    # the head still sways slowly (class-independent), but the arm does not move
    assert len(events) < 0.05 * len(generate_gesture_events(3, seed=0, config=SHORT))


def test_background_noise_rate():
    config = SyntheticGestureConfig(duration_s=0.2, noise_rate_hz=5.0, speed_scale=1e-9)
    quiet = SyntheticGestureConfig(duration_s=0.2, noise_rate_hz=0.0, speed_scale=1e-9)
    extra = len(generate_gesture_events(0, seed=1, config=config)) - len(
        generate_gesture_events(0, seed=1, config=quiet)
    )
    expected = 5.0 * 128 * 128 * 0.2
    assert abs(extra - expected) < 5 * np.sqrt(expected)


def test_scene_rejects_bad_label_and_config():
    style_rng = np.random.default_rng(0)
    from snn_egru.data.synthetic_dvs import _draw_style

    with pytest.raises(ValueError, match="label must be in"):
        gesture_scene(11, 0.0, _draw_style(style_rng))
    with pytest.raises(ValueError, match="label must be in"):
        generate_gesture_events(-1, seed=0)
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        SyntheticGestureConfig(duration_s=0)
    with pytest.raises(ValueError, match="background"):
        SyntheticGestureConfig(background=1.5)


def test_dataset_behaves_like_tonic_dataset():
    ds = SyntheticDVSGesture(num_samples=13, train=True, seed=4, config=SHORT)
    assert len(ds) == 13
    assert ds.targets == [i % 11 for i in range(13)]
    assert ds.classes == list(GESTURE_CLASSES) and ds.sensor_size == (128, 128, 2)
    events, label = ds[12]
    assert label == 1 and events.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(
        events, generate_gesture_events(1, seed=sample_seed(4, True, 12), config=SHORT)
    )
    # train and test splits differ; transforms apply
    test_events, _ = SyntheticDVSGesture(num_samples=13, train=False, seed=4, config=SHORT)[12]
    assert not np.array_equal(events, test_events)
    counted = SyntheticDVSGesture(
        num_samples=2, seed=4, config=SHORT, transform=len, target_transform=str
    )
    n, name = counted[1]
    assert isinstance(n, int) and n > 0 and name == "1"
    with pytest.raises(IndexError):
        ds[13]
    assert ds.cache_key() != SyntheticDVSGesture(num_samples=13, seed=5, config=SHORT).cache_key()
    # float noise in the duration does not change the cache identity
    a = SyntheticGestureConfig(duration_s=68 * 0.025).fingerprint()
    assert a == SyntheticGestureConfig(duration_s=1.7).fingerprint()
    assert a != SyntheticGestureConfig(duration_s=1.7, noise_rate_hz=0.3).fingerprint()
