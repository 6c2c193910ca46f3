"""DVS128 Gesture: reading (through tonic, never downloading), frames, slices and a frame cache.

Preprocessing as published for the EGRU on DVS128 Gesture:

1. **Frames**: events are binned into frames of ``frame_us`` = 25 ms, counting events per
   pixel and polarity. Frame ``k`` holds the events with
   ``t0 + k * frame_us <= t < t0 + (k + 1) * frame_us`` (``t0`` = first event time), so a
   recording of duration ``D`` gives ``floor(D / frame_us) + 1`` frames. Channel 0 is OFF
   (``p = False``), channel 1 is ON, as in ``tonic.transforms.ToFrame``.
2. **Down-sampling**: the 128 x 128 counts are max-pooled over ``pool x pool`` blocks
   (4: 128 -> 32): ``frame[c, i, j] = max_{a,b < pool} count[c, pool*i + a, pool*j + b]``.
3. **Slices**: the network sees fixed-length slices of ``num_frames`` frames (68 = 1.7 s);
   training takes a random window, evaluation the first one; short recordings are padded
   with empty frames at the end.

Binning a recording is the slow part, so :class:`DVSFrames` caches the full frame stack of
every sample (``uint16`` counts, one ``.npy`` per sample) under a folder keyed by the data
source and the binning parameters; slicing happens after the cache, so random windows still
differ between epochs. Without a cache folder it caches in memory.

Data on disk (``tonic.datasets.DVSGesture``, tonic 1.7; see :func:`open_dvsgesture`)::

    <root>/DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy ... 10.npy
    <root>/DVSGesture/ibmGestureTest/user24_fluorescent/...

Each ``<label>.npy`` is an ``(N, 4)`` array ``x, y, p, t`` with ``t`` in milliseconds.

This module is torch-free; :class:`DVSFrames` is a map-style dataset that
``torch.utils.data.DataLoader`` accepts (it returns numpy arrays, collated into tensors).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from snn_egru.data.synthetic_dvs import (
    GESTURE_CLASSES,
    SENSOR_SIZE,
    SyntheticDVSGesture,
    SyntheticGestureConfig,
)
from snn_egru.errors import UserError

__all__ = [
    "DEFAULT_FRAME_US",
    "DEFAULT_NUM_FRAMES",
    "DEFAULT_POOL",
    "DVSFrames",
    "DVSGestureDataError",
    "FramePreprocessing",
    "SliceMode",
    "build_dvs_datasets",
    "events_to_frames",
    "find_dvsgesture_root",
    "open_dvsgesture",
    "slice_frames",
    "slice_start",
]

logger = logging.getLogger(__name__)

#: Frame length of the published preprocessing (25 ms).
DEFAULT_FRAME_US = 25_000
#: Max-pooling factor 128 x 128 -> 32 x 32.
DEFAULT_POOL = 4
#: Slice length: 1.7 s of 25 ms frames.
DEFAULT_NUM_FRAMES = 68
#: Bump when the binning algorithm changes (invalidates frame caches).
_BINNING_VERSION = 1
_UINT16_MAX = np.iinfo(np.uint16).max

SliceMode = Literal["start", "center", "random"]

_SPLIT_FOLDERS = {True: "ibmGestureTrain", False: "ibmGestureTest"}
_ARCHIVE_URLS = {
    True: "https://figshare.com/ndownloader/files/38022171",
    False: "https://figshare.com/ndownloader/files/38020584",
}


class DVSGestureDataError(UserError):
    """The DVS128 Gesture folder is missing, empty or laid out wrongly (message says how)."""


# --------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class FramePreprocessing:
    """Parameters of the event -> frame pipeline (defaults: as published).

    Attributes:
        frame_us: frame length in microseconds (25 ms).
        pool: max-pooling factor per spatial axis (4: 128 x 128 -> 32 x 32).
        num_frames: frames per slice fed to the network (68 = 1.7 s).
        sensor_size: ``(width, height, polarities)`` in tonic's order.
    """

    frame_us: int = DEFAULT_FRAME_US
    pool: int = DEFAULT_POOL
    num_frames: int = DEFAULT_NUM_FRAMES
    sensor_size: tuple[int, int, int] = SENSOR_SIZE

    def __post_init__(self) -> None:
        if self.frame_us < 1:
            raise ValueError(f"frame_us must be >= 1 microsecond, got {self.frame_us}")
        if self.pool < 1:
            raise ValueError(f"pool must be >= 1, got {self.pool}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        width, height, polarities = self.sensor_size
        if width % self.pool or height % self.pool:
            raise ValueError(
                f"sensor {width}x{height} is not divisible by pool={self.pool}: choose a pool "
                "that divides both sides"
            )
        if polarities not in (1, 2):
            raise ValueError(f"sensor_size must have 1 or 2 polarities, got {polarities}")

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one pooled frame, e.g. ``(2, 32, 32)``."""
        width, height, polarities = self.sensor_size
        return polarities, height // self.pool, width // self.pool

    @property
    def slice_duration_us(self) -> int:
        return self.frame_us * self.num_frames

    def binning_fingerprint(self) -> str:
        """Hash of what determines the full frame stack (not ``num_frames``: slicing is later)."""
        fields = {
            "frame_us": self.frame_us,
            "pool": self.pool,
            "sensor_size": list(self.sensor_size),
            "version": _BINNING_VERSION,
        }
        text = json.dumps(fields, sort_keys=True)
        return f"f{self.frame_us}us-p{self.pool}-" + hashlib.sha1(text.encode()).hexdigest()[:8]


def events_to_frames(
    events: np.ndarray,
    *,
    sensor_size: tuple[int, int, int] = SENSOR_SIZE,
    frame_us: int = DEFAULT_FRAME_US,
    pool: int = DEFAULT_POOL,
    t_start: int | None = None,
) -> np.ndarray:
    """Bin events into max-pooled count frames.

    ``count[k, c, y, x]`` = number of events with polarity ``c`` at ``(x, y)`` and
    ``t_start + k * frame_us <= t < t_start + (k + 1) * frame_us``; the result is
    ``frames[k, c, i, j] = max_{a, b < pool} count[k, c, pool*i + a, pool*j + b]``.

    Args:
        events: structured array with fields ``x, y, p, t`` (t in microseconds, sorted or
            not); ``p`` is bool or 0/1 (channel 0 = OFF, 1 = ON).
        sensor_size: ``(width, height, polarities)``.
        frame_us: frame length in microseconds.
        pool: max-pooling factor per axis (must divide width and height).
        t_start: time of the first frame's start (default: the first event's time).

    Returns:
        ``(T, P, height // pool, width // pool)`` uint16 counts (saturating at 65535), with
        ``T = (t_last - t_start) // frame_us + 1`` (``T = 0`` for no events).
    """
    width, height, polarities = sensor_size
    if width % pool or height % pool:
        raise ValueError(f"pool={pool} must divide the sensor size {width}x{height}")
    names = events.dtype.names or ()
    missing = [f for f in ("x", "y", "p", "t") if f not in names]
    if missing:
        raise ValueError(
            f"events must be a structured array with fields x, y, p, t; missing {missing}"
        )
    shape_out = (polarities, height // pool, width // pool)
    if events.size == 0:
        return np.zeros((0, *shape_out), dtype=np.uint16)
    t = events["t"].astype(np.int64)
    origin = int(t.min()) if t_start is None else int(t_start)
    keep = t >= origin
    if not np.all(keep):
        events, t = events[keep], t[keep]
        if events.size == 0:
            return np.zeros((0, *shape_out), dtype=np.uint16)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = events["p"].astype(np.int64)
    if x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height:
        raise ValueError(
            f"event coordinates exceed the sensor {width}x{height}: x in [{x.min()}, "
            f"{x.max()}], y in [{y.min()}, {y.max()}]"
        )
    if p.min() < 0 or p.max() >= polarities:
        raise ValueError(f"polarity values must lie in [0, {polarities}), got {np.unique(p)}")
    frame = (t - origin) // frame_us
    num_frames = int(frame.max()) + 1
    flat = ((frame * polarities + p) * height + y) * width + x
    counts = np.bincount(flat, minlength=num_frames * polarities * height * width)
    counts = counts.reshape(num_frames, polarities, height // pool, pool, width // pool, pool)
    pooled = counts.max(axis=(3, 5))
    return np.minimum(pooled, _UINT16_MAX).astype(np.uint16)


def slice_start(total_frames: int, num_frames: int, mode: SliceMode, rng: Any = None) -> int:
    """First frame of a ``num_frames`` window in a recording of ``total_frames`` frames.

    ``"start"``: 0; ``"center"``: the middle window; ``"random"``: uniform over all windows
    that fit (``rng`` a ``numpy.random.Generator``). Recordings shorter than the window start
    at 0 (and are padded by :func:`slice_frames`).
    """
    spare = max(total_frames - num_frames, 0)
    if mode == "start":
        return 0
    if mode == "center":
        return spare // 2
    if mode == "random":
        if rng is None:
            raise ValueError("slice mode 'random' needs an rng")
        return int(rng.integers(0, spare + 1))
    raise ValueError(f"slice mode must be 'start', 'center' or 'random', got {mode!r}")


def slice_frames(frames: np.ndarray, num_frames: int, *, start: int = 0) -> np.ndarray:
    """``frames[start : start + num_frames]``, padded with zero frames at the end if short.

    Args:
        frames: ``(T, ...)`` frame stack.
        num_frames: length of the slice.
        start: first frame (``0 <= start``).

    Returns:
        ``(num_frames, ...)`` array of the same dtype.
    """
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    window = frames[start : start + num_frames]
    if window.shape[0] == num_frames:
        return window
    pad = np.zeros((num_frames - window.shape[0], *frames.shape[1:]), dtype=frames.dtype)
    return np.concatenate([window, pad], axis=0)


# ---------------------------------------------------------------------- frames dataset
class DVSFrames:
    """Fixed-length frame slices of an event dataset, with a frame cache.

    ``dataset[i]`` returns ``(frames, label)``: ``frames`` a float32 array
    ``(num_frames, P, H / pool, W / pool)`` of event counts, ``label`` an int. The full frame
    stack of sample ``i`` is computed once (:func:`events_to_frames`) and cached; later
    accesses (later epochs) only slice it.

    Args:
        events: map-style event dataset, ``events[i] -> (structured events, label)``
            (``tonic.datasets.DVSGesture``, :class:`SyntheticDVSGesture`, ...).
        preprocessing: frame parameters (default: as published).
        cache_dir: folder for the on-disk cache (``.npy`` per sample under
            ``cache_dir/<source key>/<binning fingerprint>/``); ``None`` caches in memory
            (per process: each DataLoader worker keeps its own copy).
        cache_key: names the data source in the cache path; default ``events.cache_key()``.
            Required with ``cache_dir`` when the dataset has no ``cache_key`` method.
        slice_mode: which window of each recording: ``"start"`` (evaluation), ``"center"``,
            ``"random"`` (training: a new window per epoch, see :meth:`set_epoch`).
        seed: seed of the random windows (window of sample ``i`` in epoch ``e`` is drawn
            from ``SeedSequence([seed, e, i])``: reproducible, same in every worker).

    Attributes:
        binning_calls: how many recordings this object has binned (cache misses).
        classes: class names (from the event dataset).
    """

    def __init__(
        self,
        events: Any,
        *,
        preprocessing: FramePreprocessing | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_key: str | None = None,
        slice_mode: SliceMode = "start",
        seed: int = 0,
    ) -> None:
        if slice_mode not in ("start", "center", "random"):
            raise ValueError(
                f"slice_mode must be 'start', 'center' or 'random', got {slice_mode!r}"
            )
        self.events = events
        self.preprocessing = preprocessing or FramePreprocessing()
        self.slice_mode: SliceMode = slice_mode
        self.seed = int(seed)
        self.epoch = 0
        self.binning_calls = 0
        self.classes = list(getattr(events, "classes", GESTURE_CLASSES))
        self._memory: dict[int, np.ndarray] = {}
        self._labels: dict[int, int] = {}
        if cache_key is None and hasattr(events, "cache_key"):
            cache_key = events.cache_key()
        self.cache_key = cache_key
        self.cache_folder: Path | None = None
        if cache_dir is not None:
            if cache_key is None:
                raise ValueError(
                    "cache_dir needs a cache_key naming the data source (the event dataset "
                    "has no cache_key() method)"
                )
            self.cache_folder = (
                Path(cache_dir) / _safe_name(cache_key) / self.preprocessing.binning_fingerprint()
            )
            self.cache_folder.mkdir(parents=True, exist_ok=True)
            meta = self.cache_folder / "preprocessing.json"
            if not meta.exists():
                info = {"source": cache_key, **asdict(self.preprocessing)}
                info.pop("num_frames")
                meta.write_text(json.dumps(info, indent=2))

    def __len__(self) -> int:
        return len(self.events)

    @property
    def targets(self) -> list[int]:
        """Labels of all samples (without loading events when the dataset lists them)."""
        targets = getattr(self.events, "targets", None)
        if targets is not None and len(targets) == len(self):
            return [int(t) for t in targets]
        return [self.label(i) for i in range(len(self))]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random windows ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def label(self, index: int) -> int:
        """The label of sample ``index``."""
        targets = getattr(self.events, "targets", None)
        if targets is not None and len(targets) == len(self):
            return int(targets[index])
        if index not in self._labels:
            self.full_frames(index)
        return self._labels[index]

    def _cache_file(self, index: int) -> Path:
        assert self.cache_folder is not None
        sample_id = getattr(self.events, "sample_id", None)
        name = _safe_name(sample_id(index)) if sample_id is not None else f"{index:06d}"
        return self.cache_folder / f"{name}.npy"

    def full_frames(self, index: int) -> np.ndarray:
        """All frames of recording ``index``: ``(T, P, h, w)`` uint16 (cached)."""
        index = int(index)
        if self.cache_folder is None:
            cached = self._memory.get(index)
            if cached is not None:
                return cached
        else:
            path = self._cache_file(index)
            if path.exists():
                try:
                    return np.load(path, allow_pickle=False)
                except (OSError, ValueError) as err:
                    logger.warning("re-binning %s: unreadable cache file (%s)", path, err)
        events, label = self.events[index]
        self._labels[index] = int(label)
        pre = self.preprocessing
        frames = events_to_frames(
            events, sensor_size=pre.sensor_size, frame_us=pre.frame_us, pool=pre.pool
        )
        self.binning_calls += 1
        if self.cache_folder is None:
            self._memory[index] = frames
        else:
            _atomic_save(self._cache_file(index), frames)
        return frames

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        frames = self.full_frames(index)
        num = self.preprocessing.num_frames
        rng = None
        if self.slice_mode == "random":
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))
        start = slice_start(frames.shape[0], num, self.slice_mode, rng)
        window = slice_frames(frames, num, start=start)
        if window.shape[1:] != self.preprocessing.frame_shape:
            raise ValueError(
                f"sample {index}: frames of shape {window.shape[1:]} do not match the "
                f"preprocessing's {self.preprocessing.frame_shape}"
            )
        return window.astype(np.float32), self.label(index)

    def warm_cache(self, *, progress: Callable[[Sequence[int]], Any] | None = None) -> int:
        """Bin every sample not cached yet; returns how many were binned now."""
        before = self.binning_calls
        indices = range(len(self))
        for i in progress(indices) if progress is not None else indices:
            self.full_frames(i)
        return self.binning_calls - before


def _safe_name(text: str) -> str:
    """A file-system-safe version of ``text`` (path separators and oddities replaced)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temporary file, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------ tonic DVSGesture
def _layout_help(root: Path) -> str:
    return (
        "Put the DVS128 Gesture files (tonic's preprocessed version) there in this layout:\n"
        f"  {root}/DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy ... 10.npy\n"
        f"  {root}/DVSGesture/ibmGestureTest/user24_fluorescent/0.npy ... 10.npy\n"
        "(one folder per user and lighting, one <label>.npy per gesture, label 0-10), or put "
        f"the archives ibmGestureTrain.tar.gz ({_ARCHIVE_URLS[True]}) and ibmGestureTest.tar.gz "
        f"({_ARCHIVE_URLS[False]}) in {root}/DVSGesture/ and they are extracted on first use. "
        "Without a data folder, training uses synthetic gestures."
    )


def find_dvsgesture_root(path: str | os.PathLike, *, train: bool = True) -> Path:
    """The folder to pass to tonic as ``save_to`` for the DVS128 Gesture data under ``path``.

    Accepts ``path`` = the folder holding ``DVSGesture/``, the ``DVSGesture`` folder itself,
    or its ``ibmGestureTrain``/``ibmGestureTest`` folder. An archive
    ``DVSGesture/ibmGesture{Train,Test}.tar.gz`` that is not extracted yet is extracted.

    Raises:
        DVSGestureDataError: the folder is missing, empty, or not in tonic's layout (the
            message gives the layout).
    """
    path = Path(path).expanduser()
    split = _SPLIT_FOLDERS[train]
    if not path.exists():
        raise DVSGestureDataError(
            f"DVS128 Gesture folder {path} does not exist. {_layout_help(path)}"
        )
    candidates = [path, path.parent]
    if path.name in _SPLIT_FOLDERS.values():
        candidates.append(path.parent.parent)
    for save_to in candidates:
        base = save_to / "DVSGesture"
        if not base.is_dir():
            continue
        folder = base / split
        archive = base / f"{split}.tar.gz"
        if not _has_samples(folder) and archive.is_file() and archive.stat().st_size > 0:
            logger.info("extracting %s (first use)", archive)
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(base, filter="data")
        if _has_samples(folder):
            return save_to
        raise DVSGestureDataError(
            f"DVS128 Gesture: {folder} holds no user folders with .npy files. "
            f"{_layout_help(save_to)}"
        )
    raise DVSGestureDataError(
        f"no DVS128 Gesture data under {path} (no DVSGesture/{split} folder). {_layout_help(path)}"
    )


def _has_samples(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*/*.npy"))


def open_dvsgesture(
    path: str | os.PathLike,
    *,
    train: bool = True,
    transform: Callable[[np.ndarray], Any] | None = None,
) -> Any:
    """Open a DVS128 Gesture split from a local folder with tonic's own reader; never downloads.

    The returned object is a ``tonic.datasets.DVSGesture`` (a subclass that raises
    :class:`DVSGestureDataError` instead of downloading, and accepts an extracted folder
    without its archive). Samples are sorted by file path (by user folder, then label; tonic lists
    them in file-system order), and the object gains ``cache_key()`` and ``sample_id(i)`` for
    :class:`DVSFrames`. ``dataset[i]`` is ``(events, label)`` with tonic's dtype, t in us.

    Args:
        path: see :func:`find_dvsgesture_root`.
        train: the training split (``ibmGestureTrain``) or the test split.
        transform: tonic-style transform applied to the events.
    """
    import numpy.lib.recfunctions  # noqa: F401  (tonic's reader uses np.lib.recfunctions)

    save_to = find_dvsgesture_root(path, train=train)
    reader = _local_reader_class()(str(save_to), train=train, transform=transform)
    order = sorted(range(len(reader.data)), key=lambda i: _natural_key(reader.data[i]))
    for name in ("data", "targets", "users", "lighting"):
        values = getattr(reader, name)
        setattr(reader, name, [values[i] for i in order])
    return reader


def _natural_key(path: str) -> tuple[str, int, str]:
    """Sort key: user folder, then the label number of ``<label>.npy`` (2 before 10)."""
    p = Path(path)
    return (str(p.parent), int(p.stem) if p.stem.isdigit() else -1, p.name)


_READER_CLASS: type | None = None


def _local_reader_class() -> type:
    """tonic's DVSGesture reader, minus downloading (built on first use: tonic is heavy)."""
    global _READER_CLASS
    if _READER_CLASS is not None:
        return _READER_CLASS
    import tonic

    # The class must keep the name "DVSGesture": tonic derives the folder from the class name.
    class DVSGesture(tonic.datasets.DVSGesture):
        """``tonic.datasets.DVSGesture`` that reads a local folder and never downloads."""

        def _check_exists(self) -> bool:
            return _has_samples(Path(self.location_on_system, self.folder_name))

        def download(self) -> None:
            folder = Path(self.location_on_system, self.folder_name)
            raise DVSGestureDataError(
                f"DVS128 Gesture not found at {folder}; this project never downloads. "
                f"{_layout_help(Path(self.location_on_system).parent)}"
            )

        def cache_key(self) -> str:
            split = "train" if self.train else "test"
            where = str(Path(self.location_on_system).resolve())
            return f"dvsgesture-{split}-{hashlib.sha1(where.encode()).hexdigest()[:8]}"

        def sample_id(self, index: int) -> str:
            rel = Path(self.data[index]).relative_to(
                Path(self.location_on_system, self.folder_name)
            )
            return str(rel.with_suffix(""))

    _READER_CLASS = DVSGesture
    return DVSGesture


# ------------------------------------------------------------------------ convenience
def build_dvs_datasets(
    data_dir: str | os.PathLike | None = None,
    *,
    preprocessing: FramePreprocessing | None = None,
    cache_dir: str | os.PathLike | None = None,
    synthetic_train_samples: int = 220,
    synthetic_test_samples: int = 110,
    synthetic_config: SyntheticGestureConfig | None = None,
    seed: int = 0,
) -> tuple[DVSFrames, DVSFrames]:
    """Train and test frame datasets: DVS128 Gesture from ``data_dir``, or synthetic ones.

    Args:
        data_dir: folder with the DVS128 Gesture data (:func:`find_dvsgesture_root`);
            ``None`` uses :class:`SyntheticDVSGesture` (train and test draw different
            samples).
        preprocessing: frame parameters (default as published: 25 ms, 32 x 32, 68 frames).
        cache_dir: frame cache folder (``None``: in memory).
        synthetic_train_samples, synthetic_test_samples: sizes of the synthetic splits.
        synthetic_config: synthetic sensor/scene parameters; by default recordings last
            one slice (``num_frames * frame_us``).
        seed: seed of the synthetic data and of the random training windows.

    Returns:
        ``(train, test)``: train with random windows, test with the first window.
    """
    pre = preprocessing or FramePreprocessing()
    if data_dir is None:
        config = synthetic_config or SyntheticGestureConfig(duration_s=pre.slice_duration_us / 1e6)
        train_events: Any = SyntheticDVSGesture(
            num_samples=synthetic_train_samples, train=True, seed=seed, config=config
        )
        test_events: Any = SyntheticDVSGesture(
            num_samples=synthetic_test_samples, train=False, seed=seed, config=config
        )
    else:
        train_events = open_dvsgesture(data_dir, train=True)
        test_events = open_dvsgesture(data_dir, train=False)
    train = DVSFrames(
        train_events, preprocessing=pre, cache_dir=cache_dir, slice_mode="random", seed=seed
    )
    test = DVSFrames(test_events, preprocessing=pre, cache_dir=cache_dir, slice_mode="start")
    return train, test
