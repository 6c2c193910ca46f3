"""Progress of long work: a tqdm bar on a terminal, log lines otherwise (files, CI).

Torch-free; :func:`snn_egru.training.common.progress` wraps it for distributed training
(shown on the main rank only).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger("snn_egru.progress")

__all__ = ["LogProgress", "progress"]


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Iterator[T]:
    """Progress of a long loop: a tqdm bar on a terminal, log lines otherwise.

    ``disable=True`` hides both; ``disable=None`` (the default)
    draws a bar when stderr is a terminal and otherwise logs the start, a line every
    ``log_interval_s`` seconds (default 30: count, rate, ETA and the last postfix such as
    the loss) and the end, so logs written to a file or CI show the progress too. Keyword
    arguments go to ``tqdm`` (``total``, ``desc``, ``unit``, ...).
    """
    interval = float(kwargs.pop("log_interval_s", 30.0))
    disable = kwargs.get("disable")
    if disable is None and not _is_terminal(kwargs.get("file", sys.stderr)):
        return LogProgress(
            iterable,
            total=kwargs.get("total"),
            desc=kwargs.get("desc", "progress"),
            unit=kwargs.get("unit", "it"),
            initial=kwargs.get("initial", 0),
            interval_s=interval,
        )
    from tqdm.auto import tqdm

    kwargs["disable"] = disable
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class LogProgress:
    """The part of tqdm's interface the trainers use, reporting as log lines.

    Logs ``DESC: started`` (with the total), then at most one line every ``interval_s``
    seconds (``n/total unit (pct), rate unit/s, ETA, postfix``), and ``DESC: done`` with the
    count and the time when closed (or when the wrapped iterable ends).
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str = "progress",
        unit: str = "it",
        initial: int = 0,
        interval_s: float = 30.0,
        log: logging.Logger | None = None,
    ) -> None:
        import time

        self._clock = time.perf_counter
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start_n = int(initial)
        self.interval_s = interval_s
        self.postfix: dict[str, Any] = {}
        self.log = log or logger
        self._start = self._last = self._clock()
        self._closed = False
        of = f" of {total:,} {unit}s" if total else ""
        self.log.info("%s: started%s", desc, of)

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.interval_s:
            self._last = now
            self.log.info("%s: %s", self.desc, self._status(now))

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.postfix = {**dict(ordered_dict or {}), **kwargs}

    def _status(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = (self.n - self._start_n) / elapsed
        parts = [f"{self.n:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}s"]
        if self.total:
            parts[0] += f" ({self.n / self.total:.0%})"
        parts.append(f"{rate:.3g} {self.unit}s/s")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        now = self._clock()
        self.log.info(
            "%s: done, %s in %s", self.desc, self._status(now), _duration(now - self._start)
        )

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
