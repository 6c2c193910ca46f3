"""A synthetic twin of DVS128 Gesture: 11 classes of moving shapes seen by an emulated DVS.

Used by the tests and by the offline demo (no download, no data folder). The events look like
the real data as read by ``tonic.datasets.DVSGesture``: a numpy structured array with exactly
tonic's dtype ``[("x", int16), ("y", int16), ("p", bool), ("t", int64)]``, ``t`` in
microseconds, sorted by time, on a 128 x 128 sensor with 2 polarities.

How events are made (a small event-camera emulator, in the spirit of ESIM / v2e)
-----------------------------------------------------------------------------------
A scene of bright "limbs" (capsules: a segment with a radius, soft edges) on a dark background
is rendered every ``step_us`` microseconds as a log intensity ``L(x, y, t)``. Each pixel keeps a
reference level ``L_ref``; whenever ``|L - L_ref|`` exceeds the pixel's contrast threshold
``C_xy`` (``contrast_threshold`` with a fixed per-pixel mismatch), the pixel emits
``n = floor(|L - L_ref| / C_xy)`` events of polarity ``sign(L - L_ref)`` (``p = True`` is ON,
brighter) and ``L_ref`` moves by ``n * C_xy`` towards ``L``. The ``n`` events are spread evenly
over the step, then every timestamp gets Gaussian timing noise (``timing_jitter_us``).
Background activity is added as Poisson noise: ``noise_rate_hz`` per pixel, random polarity.
Moving edges therefore produce events and static parts produce none, as on a real DVS.

The 11 classes follow the names (and indices) of DVS128 Gesture; each is a distinct motion:

====  =================  ===========================================================
 id   name               motion (image coordinates: x to the right, y downwards)
====  =================  ===========================================================
 0    Hand clapping      two hands meet and part horizontally in front of the body
 1    Right hand wave    right forearm swings left-right around the elbow
 2    Left hand wave     the same on the left side
 3    Right arm cw       right arm turns clockwise (as seen on the image) round the shoulder
 4    Right arm ccw      counter-clockwise
 5    Left arm cw        left arm, clockwise
 6    Left arm ccw       left arm, counter-clockwise
 7    Arm roll           both hands circle each other in front of the chest
 8    Air drums          both hands beat up and down in anti-phase
 9    Air guitar         right hand strums fast and short, left hand slides slowly
 10   Other gestures     one hand on a random Lissajous path
====  =================  ===========================================================

Every sample draws its own position, size, speed, phase, contrast and sensor mismatch from a
generator seeded by ``(seed, split, index)``, so samples are reproducible and differ from
each other; a slowly swaying head adds class-independent events.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.special import expit

__all__ = [
    "EVENT_DTYPE",
    "GESTURE_CLASSES",
    "NUM_CLASSES",
    "SENSOR_SIZE",
    "Capsule",
    "SyntheticDVSGesture",
    "SyntheticGestureConfig",
    "gesture_scene",
    "generate_gesture_events",
    "sample_seed",
    "write_dvsgesture_folder",
]

#: tonic's DVSGesture event dtype (``tonic.datasets.DVSGesture.dtype``), t in microseconds.
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
#: (width, height, polarities) of the DVS128 sensor, in tonic's order.
SENSOR_SIZE: tuple[int, int, int] = (128, 128, 2)
#: Class names of DVS128 Gesture, index = label (as ``tonic.datasets.DVSGesture.classes``).
GESTURE_CLASSES: tuple[str, ...] = (
    "Hand clapping",
    "Right hand wave",
    "Left hand wave",
    "Right arm cw",
    "Right arm ccw",
    "Left arm cw",
    "Left arm ccw",
    "Arm roll",
    "Air drums",
    "Air guitar",
    "Other gestures",
)
NUM_CLASSES = len(GESTURE_CLASSES)

_LOG_EPS = 1e-3  # keeps log(intensity) finite
_EDGE_MARGIN_PX = 6.0  # beyond radius + margin * softness a capsule's intensity is negligible


@dataclass(frozen=True)
class SyntheticGestureConfig:
    """Parameters of the synthetic sensor and scenes.

    Attributes:
        duration_s: length of every sample in seconds (DVS128 Gesture samples last ~6 s).
        step_us: emulator time step in microseconds (scene re-rendered every step).
        contrast_threshold: mean log-intensity change ``C`` that makes a pixel fire.
        threshold_mismatch: relative per-pixel standard deviation of ``C`` (fixed pattern).
        timing_jitter_us: standard deviation of the Gaussian noise added to timestamps.
        noise_rate_hz: background-activity rate per pixel (Poisson, random polarity).
        background: intensity of the (static) background, foreground limbs add up to 1.
        edge_softness_px: width of the soft edge of every limb (logistic profile).
        speed_scale: multiplies every gesture frequency (1.0 = natural speeds ~0.7-3 Hz).
        distractors: extra hands per sample, each on its own random Lissajous path and
            independent of the class (people moving in the background); 0 (default): none.
            They make the task harder: their events mix with the gesture's, and class 10
            ("other gestures": one hand on a random Lissajous path) looks like any class
            with a distractor. :meth:`harder` is the sweep's harder setting.
    """

    duration_s: float = 1.0
    step_us: int = 2000
    contrast_threshold: float = 0.25
    threshold_mismatch: float = 0.05
    timing_jitter_us: float = 150.0
    noise_rate_hz: float = 0.2
    background: float = 0.15
    edge_softness_px: float = 1.0
    speed_scale: float = 1.0
    distractors: int = 0

    @classmethod
    def harder(cls, **overrides: Any) -> SyntheticGestureConfig:
        """The harder setting of the trade-off sweep (``snn-egru sweep --data
        synthetic-hard``): two distractor hands, 10x the background activity (2 Hz per
        pixel), 3x the timing jitter; everything else as the default."""
        values: dict[str, Any] = {
            "distractors": 2,
            "noise_rate_hz": 2.0,
            "timing_jitter_us": 450.0,
        }
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if self.step_us < 1:
            raise ValueError(f"step_us must be >= 1 microsecond, got {self.step_us}")
        if not self.contrast_threshold > 0:
            raise ValueError(f"contrast_threshold must be > 0, got {self.contrast_threshold}")
        if self.threshold_mismatch < 0 or self.timing_jitter_us < 0 or self.noise_rate_hz < 0:
            raise ValueError("threshold_mismatch, timing_jitter_us and noise_rate_hz must be >= 0")
        if not 0 < self.background < 1:
            raise ValueError(f"background must lie in (0, 1), got {self.background}")
        if not self.edge_softness_px > 0 or not self.speed_scale > 0:
            raise ValueError("edge_softness_px and speed_scale must be > 0")
        if isinstance(self.distractors, bool) or int(self.distractors) != self.distractors:
            raise ValueError(f"distractors must be an integer >= 0, got {self.distractors!r}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be an integer >= 0, got {self.distractors}")

    @property
    def duration_us(self) -> int:
        return int(round(self.duration_s * 1e6))

    def fingerprint(self) -> str:
        """A short stable hash of the configuration (used in cache keys).

        The duration enters as whole microseconds, so 1.7 and 68 * 0.025 give the same key.
        """
        fields = asdict(self)
        fields["duration_s"] = self.duration_us
        if not self.distractors:  # added later: the default keeps its earlier key
            del fields["distractors"]
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


class Capsule(NamedTuple):
    """A limb: the set of points within ``radius`` of the segment ``(x0, y0)-(x1, y1)``.

    ``contrast`` is the intensity the limb adds to the background (0..1).
    """

    x0: float
    y0: float
    x1: float
    y1: float
    radius: float
    contrast: float


class _GestureStyle(NamedTuple):
    """Per-sample variation of a gesture (drawn once per sample)."""

    cx: float  # body centre x
    cy: float  # body centre y
    scale: float  # size of the person
    freq: float  # gesture frequency multiplier
    phase: float  # start phase (rad)
    hand_radius: float
    contrast: float
    lissajous: tuple[float, float, float, float]  # f1, f2, phi1, phi2 (class 10)


def _draw_style(rng: np.random.Generator) -> _GestureStyle:
    return _GestureStyle(
        cx=64.0 + rng.uniform(-8.0, 8.0),
        cy=64.0 + rng.uniform(-6.0, 6.0),
        scale=rng.uniform(0.85, 1.15),
        freq=rng.uniform(0.8, 1.25),
        phase=rng.uniform(0.0, 2.0 * math.pi),
        hand_radius=rng.uniform(5.5, 7.5),
        contrast=rng.uniform(0.6, 0.95),
        lissajous=(
            rng.uniform(0.5, 2.0),
            rng.uniform(0.5, 2.0),
            rng.uniform(0.0, 2.0 * math.pi),
            rng.uniform(0.0, 2.0 * math.pi),
        ),
    )


def _limb(x0: float, y0: float, x1: float, y1: float, r: float, c: float) -> Capsule:
    return Capsule(float(x0), float(y0), float(x1), float(y1), float(r), float(c))


def _hand(x: float, y: float, r: float, c: float) -> Capsule:
    return Capsule(float(x), float(y), float(x), float(y), float(r), float(c))


def gesture_scene(label: int, t_s: float, style: _GestureStyle, speed_scale: float = 1.0):
    """The limbs of gesture ``label`` at time ``t_s`` (seconds) for one sample's ``style``.

    Args:
        label: class index in ``[0, 11)`` (see the module table).
        t_s: time in seconds from the start of the sample.
        style: the sample's variation (position, size, speed, phase, contrast).
        speed_scale: global multiplier of all gesture frequencies.

    Returns:
        list of :class:`Capsule` (head, arms, hands) in sensor pixel coordinates.
    """
    s = style.scale
    cx, cy, r, c = style.cx, style.cy, style.hand_radius * s, style.contrast
    arm_r = 0.55 * r
    w = 2.0 * math.pi * style.freq * speed_scale
    ph = style.phase
    # a head swaying slowly: events that do not depend on the class
    head = _hand(cx + 1.5 * math.sin(2.0 * math.pi * 0.3 * t_s + ph), cy - 38 * s, 11 * s, 0.5 * c)
    limbs: list[Capsule] = [head]
    if label == 0:  # hand clapping: hands meet and part, ~2 Hz
        gap = r + 14 * s * 0.5 * (1 + math.cos(2.0 * w * t_s + ph))
        for side in (-1, 1):
            hx, hy = cx + side * gap, cy + 8 * s
            limbs += [_limb(cx + side * 24 * s, cy + 26 * s, hx, hy, arm_r, c), _hand(hx, hy, r, c)]
    elif label in (1, 2):  # hand wave: forearm swings around the elbow, ~1.5 Hz
        side = 1 if label == 1 else -1
        ex, ey = cx + side * 30 * s, cy + 6 * s
        angle = -math.pi / 2 + 0.7 * math.sin(1.5 * w * t_s + ph)
        hx, hy = ex + side * 26 * s * math.cos(angle), ey + 26 * s * math.sin(angle)
        limbs += [_limb(ex, ey, hx, hy, arm_r, c), _hand(hx, hy, r, c)]
    elif label in (3, 4, 5, 6):  # arm rotation round the shoulder, ~1 Hz
        side = 1 if label in (3, 4) else -1
        direction = 1 if label in (3, 5) else -1  # +angle = clockwise with y pointing down
        sx, sy = cx + side * 22 * s, cy - 12 * s
        angle = direction * w * t_s + ph
        hx, hy = sx + 24 * s * math.cos(angle), sy + 24 * s * math.sin(angle)
        limbs += [_limb(sx, sy, hx, hy, arm_r, c), _hand(hx, hy, r, c)]
    elif label == 7:  # arm roll: both hands circle each other, ~2 Hz
        angle = 2.0 * w * t_s + ph
        for k in (0, 1):
            a = angle + k * math.pi
            hx, hy = cx + 10 * s * math.cos(a), cy + 10 * s + 8 * s * math.sin(a)
            ex = cx + (24 if k == 0 else -24) * s
            limbs += [_limb(ex, cy + 28 * s, hx, hy, arm_r, c), _hand(hx, hy, r, c)]
    elif label == 8:  # air drums: hands beat in anti-phase, ~2.5 Hz
        for k, side in enumerate((-1, 1)):
            hx = cx + side * 16 * s
            hy = cy + 12 * s + 11 * s * math.sin(2.5 * w * t_s + ph + k * math.pi)
            limbs += [_limb(cx + side * 30 * s, cy + 22 * s, hx, hy, arm_r, c), _hand(hx, hy, r, c)]
    elif label == 9:  # air guitar: fast short strum right, slow slide left
        hx, hy = cx + 12 * s, cy + 16 * s + 9 * s * math.sin(3.0 * w * t_s + ph)
        limbs += [_limb(cx + 28 * s, cy + 4 * s, hx, hy, arm_r, c), _hand(hx, hy, r, c)]
        u = 7 * s * math.sin(0.5 * w * t_s + ph)
        fx, fy = cx - 30 * s + u, cy - 4 * s - 0.5 * u
        limbs += [_limb(cx - 18 * s, cy + 18 * s, fx, fy, arm_r, c), _hand(fx, fy, r, c)]
    elif label == 10:  # other: one hand on a random Lissajous path
        f1, f2, p1, p2 = style.lissajous
        hx = cx + 22 * s * math.sin(2.0 * math.pi * f1 * speed_scale * t_s + p1)
        hy = cy + 16 * s * math.sin(2.0 * math.pi * f2 * speed_scale * t_s + p2)
        limbs += [_limb(cx + 20 * s, cy + 30 * s, hx, hy, arm_r, c), _hand(hx, hy, r, c)]
    else:
        raise ValueError(f"label must be in [0, {NUM_CLASSES}), got {label}")
    return limbs


def _draw_distractors(rng: np.random.Generator, count: int) -> list[tuple[float, ...]]:
    """Per distractor hand: centre offset (x, y), amplitudes (x, y), frequencies, phases."""
    return [
        (
            rng.uniform(-40.0, 40.0),
            rng.uniform(-30.0, 30.0),
            rng.uniform(8.0, 20.0),
            rng.uniform(6.0, 16.0),
            rng.uniform(0.5, 2.5),
            rng.uniform(0.5, 2.5),
            rng.uniform(0.0, 2.0 * math.pi),
            rng.uniform(0.0, 2.0 * math.pi),
        )
        for _ in range(count)
    ]


def _scene(label: int, t_s: float, style: _GestureStyle, speed: float, paths: list) -> list:
    """The gesture's limbs and the distractor hands at time ``t_s``."""
    return gesture_scene(label, t_s, style, speed) + _distractor_hands(paths, t_s, style, speed)


def _distractor_hands(
    paths: list[tuple[float, ...]], t_s: float, style: _GestureStyle, speed_scale: float
) -> list[Capsule]:
    """The distractor hands at time ``t_s`` (class-independent Lissajous paths)."""
    r, c = style.hand_radius * style.scale, 0.8 * style.contrast
    hands = []
    for dx, dy, ax, ay, f1, f2, p1, p2 in paths:
        hx = 64.0 + dx + ax * math.sin(2.0 * math.pi * f1 * speed_scale * t_s + p1)
        hy = 64.0 + dy + ay * math.sin(2.0 * math.pi * f2 * speed_scale * t_s + p2)
        hands.append(_hand(hx, hy, r, c))
    return hands


def _capsule_box(cap: Capsule, margin: float) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of a limb grown by ``margin`` pixels."""
    grow = cap.radius + margin
    return (
        min(cap.x0, cap.x1) - grow,
        min(cap.y0, cap.y1) - grow,
        max(cap.x0, cap.x1) + grow,
        max(cap.y0, cap.y1) + grow,
    )


def _pixel_window(
    boxes: Sequence[tuple[float, float, float, float]], width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Integer pixel window ``(x0, y0, x1, y1)`` (exclusive ends) covering ``boxes``."""
    xmin, ymin, xmax, ymax = boxes[0]
    for b in boxes[1:]:
        xmin, ymin = min(xmin, b[0]), min(ymin, b[1])
        xmax, ymax = max(xmax, b[2]), max(ymax, b[3])
    x0, y0 = max(0, int(math.floor(xmin))), max(0, int(math.floor(ymin)))
    x1, y1 = min(width, int(math.ceil(xmax)) + 1), min(height, int(math.ceil(ymax)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def _render_capsule(cap: Capsule, xs: np.ndarray, ys: np.ndarray, *, softness: float) -> np.ndarray:
    """Foreground intensity of one limb, ``contrast * sigmoid((radius - dist) / softness)``.

    ``xs`` ``(1, W)`` and ``ys`` ``(H, 1)`` are the pixel-centre coordinates of the window.
    """
    dx, dy = cap.x1 - cap.x0, cap.y1 - cap.y0
    length2 = dx * dx + dy * dy
    if length2 > 0:
        u = np.clip(((xs - cap.x0) * dx + (ys - cap.y0) * dy) / length2, 0.0, 1.0)
        px, py = xs - (cap.x0 + u * dx), ys - (cap.y0 + u * dy)
    else:
        px, py = xs - cap.x0, ys - cap.y0
    dist = np.sqrt(px * px + py * py)
    return (cap.contrast * expit((cap.radius - dist) / softness)).astype(np.float32, copy=False)


def generate_gesture_events(
    label: int,
    *,
    seed: int | np.random.SeedSequence,
    config: SyntheticGestureConfig | None = None,
) -> np.ndarray:
    """Emulate a DVS recording of one gesture (see the module docstring for the model).

    The scene's foreground is ``max_j limb_j(x, y, t)``, the log intensity is
    ``L = log(background + foreground + 1e-3)``. Each limb is re-rendered only in the window
    it covers before or after the step (elsewhere its contribution is below
    ``contrast * sigmoid(-6)``), and events are looked for only inside those windows.

    Args:
        label: class index in ``[0, 11)``.
        seed: seed of the sample (same seed, label and config -> identical events).
        config: sensor and scene parameters (default :class:`SyntheticGestureConfig`).

    Returns: ``(N,)`` structured array of dtype :data:`EVENT_DTYPE`, sorted by ``t``
    (microseconds in ``[0, duration_us)``), ``0 <= x, y < 128``.
    """
    if not 0 <= int(label) < NUM_CLASSES:
        raise ValueError(f"label must be in [0, {NUM_CLASSES}), got {label}")
    cfg = config or SyntheticGestureConfig()
    rng = np.random.default_rng(seed)
    width, height, _ = SENSOR_SIZE
    style = _draw_style(rng)
    thresholds = cfg.contrast_threshold * np.clip(
        1.0 + cfg.threshold_mismatch * rng.standard_normal((height, width)), 0.5, 1.5
    ).astype(np.float32)
    grid_x = np.arange(width, dtype=np.float32)[None, :]
    grid_y = np.arange(height, dtype=np.float32)[:, None]
    softness = cfg.edge_softness_px
    margin = _EDGE_MARGIN_PX * softness + 1.0

    duration_us = cfg.duration_us
    num_steps = max(1, int(math.ceil(duration_us / cfg.step_us)))
    paths = _draw_distractors(rng, cfg.distractors)  # none by default (no draw)
    limbs = _scene(label, 0.0, style, cfg.speed_scale, paths)
    # per-limb foreground images; the scene is their maximum
    layers = np.stack([_render_capsule(cap, grid_x, grid_y, softness=softness) for cap in limbs])
    l_ref = np.log(cfg.background + layers.max(axis=0) + _LOG_EPS).astype(np.float32)
    chunks_x, chunks_y, chunks_p, chunks_t = [], [], [], []
    for step in range(1, num_steps + 1):
        t_us = min(step * cfg.step_us, duration_us)
        new_limbs = _scene(label, t_us * 1e-6, style, cfg.speed_scale, paths)
        changed = []
        for j, (old, new) in enumerate(zip(limbs, new_limbs)):
            if old == new:
                continue
            win = _pixel_window(
                [_capsule_box(old, margin), _capsule_box(new, margin)], width, height
            )
            if win is None:
                continue
            x0, y0, x1, y1 = win
            layers[j, y0:y1, x0:x1] = _render_capsule(
                new, grid_x[:, x0:x1], grid_y[y0:y1], softness=softness
            )
            changed.append((x0, y0, x1, y1))
        limbs = new_limbs
        if not changed:
            continue
        x0, y0, x1, y1 = _pixel_window(changed, width, height)
        window = (slice(y0, y1), slice(x0, x1))
        log_i = np.log(cfg.background + layers[:, y0:y1, x0:x1].max(axis=0) + _LOG_EPS)
        diff = log_i - l_ref[window]
        counts = np.floor(np.abs(diff) / thresholds[window]).astype(np.int64)
        rows, cols = np.nonzero(counts)
        if rows.size == 0:
            continue
        n = counts[rows, cols]
        sign = np.sign(diff[rows, cols])
        l_ref[y0 + rows, x0 + cols] += sign * n * thresholds[y0 + rows, x0 + cols]
        # n events per pixel, spread evenly over the step: k / n of the way, k = 1..n
        rep = np.repeat(np.arange(rows.size), n)
        k = np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n) + 1
        step_start = t_us - cfg.step_us
        chunks_x.append(x0 + cols[rep])
        chunks_y.append(y0 + rows[rep])
        chunks_p.append(sign[rep] > 0)
        chunks_t.append(step_start + np.round(k * cfg.step_us / n[rep]).astype(np.int64))

    # background activity: Poisson events, uniform in space and time, random polarity
    num_noise = int(rng.poisson(cfg.noise_rate_hz * width * height * duration_us * 1e-6))
    chunks_x.append(rng.integers(0, width, num_noise))
    chunks_y.append(rng.integers(0, height, num_noise))
    chunks_p.append(rng.random(num_noise) < 0.5)
    chunks_t.append(rng.integers(0, duration_us, num_noise))

    t = np.concatenate(chunks_t).astype(np.float64)
    if cfg.timing_jitter_us > 0:
        t += cfg.timing_jitter_us * rng.standard_normal(t.size)
    events = np.empty(t.size, dtype=EVENT_DTYPE)
    events["x"] = np.concatenate(chunks_x)
    events["y"] = np.concatenate(chunks_y)
    events["p"] = np.concatenate(chunks_p)
    events["t"] = np.clip(np.round(t), 0, duration_us - 1).astype(np.int64)
    order = np.argsort(events["t"], kind="stable")
    return events[order]


def sample_seed(seed: int, train: bool, index: int) -> np.random.SeedSequence:
    """The seed of sample ``index`` of a split: independent streams per (seed, split, index)."""
    return np.random.SeedSequence([int(seed), 1 if train else 0, int(index)])


class SyntheticDVSGesture:
    """A map-style dataset of synthetic gestures, used like ``tonic.datasets.DVSGesture``.

    ``dataset[i]`` returns ``(events, label)``: events a structured array of tonic's DVSGesture
    dtype (t in microseconds), label an int. Labels are balanced: sample ``i`` has label
    ``i % 11``. Events are generated on access (deterministic), so nothing is held in memory.

    Args:
        num_samples: number of samples in this split.
        train: the split (train and test draw different samples for the same index).
        seed: base seed.
        config: sensor and scene parameters.
        transform: applied to the events (like tonic's ``transform``).
        target_transform: applied to the label.

    Attributes (as tonic's DVSGesture): ``classes``, ``sensor_size``, ``dtype``, ``ordering``,
    ``targets``.
    """

    classes = list(GESTURE_CLASSES)
    sensor_size = SENSOR_SIZE
    dtype = EVENT_DTYPE
    ordering = EVENT_DTYPE.names

    def __init__(
        self,
        *,
        num_samples: int,
        train: bool = True,
        seed: int = 0,
        config: SyntheticGestureConfig | None = None,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples = int(num_samples)
        self.train = bool(train)
        self.seed = int(seed)
        self.config = config or SyntheticGestureConfig()
        self.transform = transform
        self.target_transform = target_transform
        self.targets = [i % NUM_CLASSES for i in range(self.num_samples)]

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index = index % self.num_samples
        label = self.targets[index]
        events = generate_gesture_events(
            label, seed=sample_seed(self.seed, self.train, index), config=self.config
        )
        target: Any = label
        if self.transform is not None:
            events = self.transform(events)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return events, target

    def cache_key(self) -> str:
        """Identifies the samples (config, seed, split) for frame caches."""
        split = "train" if self.train else "test"
        return f"synthetic-{split}-seed{self.seed}-{self.config.fingerprint()}"

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"SyntheticDVSGesture(num_samples={self.num_samples}, {split}, seed={self.seed})"


def write_dvsgesture_folder(
    save_to: str | os.PathLike,
    samples: Sequence[tuple[np.ndarray, int]] | SyntheticDVSGesture,
    *,
    train: bool = True,
    user_folders: Sequence[str] | None = None,
    write_archive_marker: bool = True,
) -> Path:
    """Write samples in the on-disk layout ``tonic.datasets.DVSGesture`` (tonic 1.7) reads.

    Layout (``save_to`` is what you pass to tonic as ``save_to``)::

        save_to/DVSGesture/ibmGestureTrain.tar.gz          (tonic checks it exists; a marker)
        save_to/DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy ... 10.npy
        save_to/DVSGesture/ibmGestureTrain/user02_fluorescent/...

    (``ibmGestureTest`` for ``train=False``). Each ``<label>.npy`` holds an ``(N, 4)`` int64
    array with columns ``x, y, p, t`` and ``t`` in **milliseconds** (tonic multiplies by
    1000 on load), exactly like the preprocessed files tonic downloads. A user folder holds at
    most one sample per label, so samples go to the first folder without that label.
    tonic only treats the folder as present (and does not download) with the archive file
    and at least 100 ``.npy`` files.

    Args:
        save_to: the root folder (tonic's ``save_to``).
        samples: ``(events, label)`` pairs (events of :data:`EVENT_DTYPE`) or a dataset.
        train: write the train split (``ibmGestureTrain``) or the test split.
        user_folders: names ``user<NN>_<lighting>`` to use, in order (default generated).
        write_archive_marker: create an empty ``ibmGesture*.tar.gz`` so tonic finds the split.

    Returns:
        the split folder (``save_to/DVSGesture/ibmGesture{Train,Test}``).
    """
    name = "ibmGestureTrain" if train else "ibmGestureTest"
    root = Path(save_to) / "DVSGesture"
    split_dir = root / name
    split_dir.mkdir(parents=True, exist_ok=True)
    if write_archive_marker:
        (root / f"{name}.tar.gz").touch()
    lightings = ("fluorescent", "led", "natural", "lab", "fluorescent_led")
    used: list[set[int]] = []
    folders: list[str] = []
    for i in range(len(samples)):
        events, label = samples[i]
        label = int(label)
        slot = next((k for k, labels in enumerate(used) if label not in labels), None)
        if slot is None:
            slot = len(used)
            used.append(set())
            if user_folders is not None:
                if slot >= len(user_folders):
                    raise ValueError(
                        f"{len(user_folders)} user folders cannot hold the samples of label "
                        f"{label}: each folder holds one sample per label"
                    )
                folders.append(user_folders[slot])
            else:
                folders.append(f"user{slot + 1:02d}_{lightings[slot % len(lightings)]}")
        used[slot].add(label)
        folder = split_dir / folders[slot]
        folder.mkdir(parents=True, exist_ok=True)
        events = np.asarray(events)
        table = np.stack(
            [
                events["x"].astype(np.int64),
                events["y"].astype(np.int64),
                events["p"].astype(np.int64),
                events["t"].astype(np.int64) // 1000,
            ],
            axis=1,
        )
        np.save(folder / f"{label}.npy", table)
    return split_dir
