"""What a simulated run keeps per step, with memory bounded by what the user asks for.

A run keeps three kinds of figures (:class:`StepHistory`):

* **running totals of the whole run** (:class:`RunTotals`): the sums the report, the profile,
  the energy, the activity and the plots are computed from: the critical path's phases per
  layer and summed over the layers, the NoC tails, the operation counts per layer, the end
  of the free-running schedule and the sum of the ticks. They take ``O(layers x phases)``
  memory whatever the length of the run, and they are *exact*: each is made of the same
  floating-point additions, in the same order, as the reduction over per-step arrays it
  replaces (numpy's ``sum`` over an axis that is not the last adds rows one after another;
  a whole-array ``sum`` adds blocks of :data:`BLOCK_SUM` elements pairwise, which
  :class:`BlockSum` reproduces with one block of buffer; ``cumsum`` and the pipelined
  schedule are sequential), so a report does not change by a bit with the window.
* **per-step layer rows**: per step and layer the slowest PE's cycles, the NoC tail, the
  slowest PE's phases, the operation counts summed over the PEs and the schedule (start and
  finish), ``L x (4 + len(PHASES) + len(OPS))`` float64 (0.9 KB for three layers).
  ``Run.step_totals`` and the profile's per-step arrays are made of them.
* **per-step detail**: per layer and step the per-PE operation counts and phase cycles,
  the events ``y`` of every unit, and the readout's input (from which the logits are
  computed). For the published LM on 150 PEs this is about 70 KB per step (plus 40 KB of
  logits).

``record_window=N`` keeps the rows and the detail of the last ``N`` steps only (rings of
``N`` entries): memory does not grow with the run. Without a window every step's rows are
kept (and with ``record=True`` every step's detail). ``record=False`` keeps no detail.

Every step's rows can also be streamed to a file (:class:`StepLog`, ``run --save-steps``):
an ``.npz`` of chunks, one ``.npy`` member per column and chunk, that ``numpy.load`` opens
and :func:`read_step_log` joins into one array per column.

The per-PE totals of the whole run (``LayerCounters``, the per-PE phase profile, deadline
counts) are running sums in the simulator and never depend on the window.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections import deque
from pathlib import Path

import numpy as np

__all__ = [
    "BLOCK_SUM",
    "STEP_COLUMNS",
    "BlockSum",
    "RunTotals",
    "StepHistory",
    "StepLog",
    "check_window",
    "read_step_log",
]

#: Rows per preallocated block of the per-step layer rows (runs without a window).
BLOCK_ROWS = 4096

#: Steps filled in place before they are added to the running totals in one block.
STAGE_ROWS = 256

#: Elements numpy's ``add.reduce`` sums pairwise as one block of a contiguous array (its
#: iterator's buffer size); the blocks are then added one after another.
BLOCK_SUM = 8192

#: The per-step layer rows, in the order :meth:`StepHistory.new_step` returns them.
STEP_COLUMNS = (
    "layer_cycles",
    "layer_tails",
    "critical_phase_cycles",
    "op_totals",
    "start_cycles",
    "finish_cycles",
)


def check_window(window: int | None) -> int | None:
    """``None`` (every step) or a positive number of steps, else ValueError."""
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(
            f"record_window must be a positive number of steps (or None for every step), "
            f"got {window!r}"
        )
    return int(window)


class BlockSum:
    """``np.sum`` of a stream of float64 values, bit for bit, with one block of memory.

    numpy sums a contiguous float64 array in blocks of :data:`BLOCK_SUM` elements, each
    block pairwise, the blocks one after another into a total starting at 0.0. This keeps
    the current block and the total of the blocks before it."""

    def __init__(self) -> None:
        self._block = np.empty(BLOCK_SUM)
        self._fill = 0
        self._total = 0.0

    def add(self, values) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        while values.size:
            take = min(BLOCK_SUM - self._fill, values.size)
            self._block[self._fill : self._fill + take] = values[:take]
            self._fill += take
            values = values[take:]
            if self._fill == BLOCK_SUM:
                self._total += np.sum(self._block)
                self._fill = 0

    def copy(self) -> BlockSum:
        out = BlockSum()
        out._block[: self._fill] = self._block[: self._fill]
        out._fill, out._total = self._fill, self._total
        return out

    @property
    def value(self) -> float:
        if not self._fill:
            return float(self._total)
        return float(self._total + np.sum(self._block[: self._fill]))


class RunTotals:
    """The whole-run figures of a run, updated a block of steps at a time (see the module
    docstring).

    Each attribute equals the expression over the per-step ``(T, L, ...)`` arrays noted
    beside it (what :func:`spinnaker2_backend.timing.build_profile` computes), bit for bit:
    a sum over the steps is a reduction over axis 0 that starts from the running total (a
    sequential one, as numpy's over a non-last axis), the schedule a ``cumsum`` that starts
    from the running position.

    Args:
        num_layers, num_phases: shapes.
        pipelined: the schedule (:func:`spinnaker2_backend.timing.schedule`).
        tick_us: tick duration (wall time = the ticks, :func:`~spinnaker2_backend.timing.
            tick_durations`) or None (free-running).
        clock_hz: PE clock.
    """

    def __init__(
        self,
        num_layers: int,
        *,
        num_phases: int,
        pipelined: bool,
        tick_us: float | None,
        clock_hz: float,
    ) -> None:
        self.num_layers = int(num_layers)
        self.pipelined = bool(pipelined)
        self.tick_us = tick_us
        self.clock_hz = float(clock_hz)
        self.steps = 0
        # critical_phase_cycles.sum(axis=(0, 1)) and .sum(axis=0)
        self.critical_phase_sum = np.zeros(num_phases)
        self.layer_critical_phase_sum = np.zeros((num_layers, num_phases))
        self._tails = BlockSum()  # layer_tails.sum()
        self._ticks = BlockSum()  # np.sum(tick_durations(...))
        # schedule(): sequential = a cumsum over the steps' layers; pipelined = its loop
        self._cum = 0.0
        self._ready = [0.0] * num_layers
        self.end_cycles = -np.inf  # max(finish + tails)
        # pipelined ticks: tick k holds layer l of step k - l; the work of the L - 1 ticks
        # after the last step added, so far
        self._pending = np.zeros(max(num_layers - 1, 0))

    @staticmethod
    def _running(total: np.ndarray, rows: np.ndarray) -> None:
        """``total`` + each of ``rows`` in turn (``(n, *total.shape)``), in place."""
        stack = np.empty((len(rows) + 1, *total.shape))
        stack[0] = total
        stack[1:] = rows
        total[...] = stack.sum(axis=0)

    def add_block(
        self,
        layer_cycles: np.ndarray,
        tails: np.ndarray,
        critical: np.ndarray,
        start: np.ndarray,
        finish: np.ndarray,
    ) -> None:
        """Add ``n`` steps: their rows ``(n, L)``, ``(n, L)``, ``(n, L, phases)``; writes
        their free-running schedule into ``start`` and ``finish`` ``(n, L)``."""
        n, layers = layer_cycles.shape
        if n == 0:
            return
        self._running(self.critical_phase_sum, critical.reshape(n * layers, -1))
        self._running(self.layer_critical_phase_sum, critical)
        self._tails.add(tails)
        if self.pipelined:
            ready = self._ready  # Python floats: the same IEEE additions as float64
            begun, done = [], []
            for busy, tail in zip(layer_cycles.tolist(), tails.tolist()):
                upstream = 0.0
                for i in range(layers):
                    s = max(upstream, ready[i])
                    f = s + busy[i]
                    begun.append(s)
                    done.append(f)
                    upstream = ready[i] = f + tail[i]
            start[...] = np.reshape(begun, (n, layers))
            finish[...] = np.reshape(done, (n, layers))
        else:
            chained = (layer_cycles + tails).reshape(-1)
            cum = np.empty(len(chained) + 1)
            cum[0] = self._cum
            cum[1:] = chained
            cum = np.cumsum(cum)[1:]
            self._cum = float(cum[-1])
            start[...] = (cum - chained).reshape(n, layers)
            finish[...] = start + layer_cycles
        self.end_cycles = max(self.end_cycles, float(np.max(finish + tails)))
        if self.tick_us is not None:
            busy = layer_cycles + tails
            if self.pipelined:
                work = np.zeros(n + layers - 1)
                work[: len(self._pending)] = self._pending
                for i in range(layers):
                    work[i : i + n] = np.maximum(work[i : i + n], busy[:, i])
                self._ticks.add(self._durations(work[:n]))
                self._pending = work[n:].copy()
            else:
                self._ticks.add(self._durations(busy.sum(axis=1)))
        self.steps += n

    def _durations(self, work_cycles: np.ndarray) -> np.ndarray:
        return np.maximum(work_cycles / self.clock_hz, self.tick_us * 1e-6)

    @property
    def tail_cycles_sum(self) -> float:
        return self._tails.value

    @property
    def wall_seconds(self) -> float:
        """The run's duration: the sum of the ticks, or the end of the schedule."""
        if not self.steps:
            return 0.0
        if self.tick_us is None:
            return self.end_cycles / self.clock_hz
        if not self.pipelined:
            return self._ticks.value
        ticks = self._ticks.copy()  # + the last L - 1 pipelined ticks (the stream unchanged)
        ticks.add(self._durations(self._pending))
        return ticks.value


class _Rows:
    """Fixed-shape float64 rows appended one at a time: preallocated blocks (every row
    kept) or a ring of ``window`` rows (the last ones kept)."""

    def __init__(self, shape: tuple[int, ...], window: int | None) -> None:
        self.shape = shape
        self.window = window
        self.blocks: list[np.ndarray] = []
        self.count = 0
        if window is not None:
            self.blocks.append(np.empty((window, *shape)))

    def extend(self, rows: np.ndarray) -> None:
        """Append ``rows`` ``(n, *shape)`` (into the ring: its last ``window`` only)."""
        while len(rows):
            if self.window is not None:
                ring = self.blocks[0]
                if len(rows) > self.window:  # only the last window rows stay
                    self.count += len(rows) - self.window
                    rows = rows[-self.window :]
                i = self.count % self.window
                take = min(self.window - i, len(rows))
                ring[i : i + take] = rows[:take]
            else:
                i = self.count % BLOCK_ROWS
                if i == 0:
                    self.blocks.append(np.empty((BLOCK_ROWS, *self.shape)))
                take = min(BLOCK_ROWS - i, len(rows))
                self.blocks[-1][i : i + take] = rows[:take]
            self.count += take
            rows = rows[take:]

    def array(self) -> np.ndarray:
        """The kept rows, oldest first (a copy)."""
        if not self.count:
            return np.zeros((0, *self.shape))
        if self.window is not None:
            ring = self.blocks[0]
            if self.count <= self.window:
                return ring[: self.count].copy()
            cut = self.count % self.window
            return np.concatenate([ring[cut:], ring[:cut]])
        if len(self.blocks) == 1:
            return self.blocks[0][: self.count].copy()
        out = np.empty((self.count, *self.shape))
        for i, block in enumerate(self.blocks):
            part = out[i * BLOCK_ROWS : (i + 1) * BLOCK_ROWS]
            part[...] = block[: len(part)]
        return out


class StepHistory:
    """The per-step figures of a run and its running totals (see the module docstring).

    Args:
        num_layers: layers of the network. num_phases, num_ops: rows of the per-PE arrays.
        detail: keep the per-step detail at all (``record``).
        window: keep the rows and the detail of the last ``window`` steps only (None: every
            step).
        pipelined, tick_us, clock_hz: the schedule (for the running totals).
        log: a :class:`StepLog` every step's rows are written to, or None.
    """

    def __init__(
        self,
        num_layers: int,
        *,
        num_phases: int,
        num_ops: int,
        detail: bool,
        window: int | None,
        pipelined: bool = False,
        tick_us: float | None = None,
        clock_hz: float = 150e6,
        log: StepLog | None = None,
    ) -> None:
        self.num_layers = num_layers
        self.window = check_window(window)
        shapes = {
            "layer_cycles": (num_layers,),
            "layer_tails": (num_layers,),
            "critical_phase_cycles": (num_layers, num_phases),
            "op_totals": (num_layers, num_ops),
            "start_cycles": (num_layers,),
            "finish_cycles": (num_layers,),
        }
        self.rows = {name: _Rows(shapes[name], self.window) for name in STEP_COLUMNS}
        # the steps since the last flush: filled in place, then added in one block
        self._stage = {name: np.empty((STAGE_ROWS, *shapes[name])) for name in STEP_COLUMNS}
        self._staged = 0
        self._stage_rows = [
            tuple(self._stage[name][i] for name in STEP_COLUMNS[:4]) for i in range(STAGE_ROWS)
        ]
        self.totals = RunTotals(
            num_layers,
            num_phases=num_phases,
            pipelined=pipelined,
            tick_us=tick_us,
            clock_hz=clock_hz,
        )
        self.detail = bool(detail)
        self.log = log
        # one entry per recorded step: (step, ops per layer, cycles per layer, y per layer,
        # readout input or None)
        self._steps: deque = deque(maxlen=self.window)

    @property
    def steps(self) -> int:
        """Steps added so far."""
        return self.totals.steps + self._staged

    def new_step(self, detail=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Add a step; returns its rows (layer cycles ``(L,)``, tails ``(L,)``, critical
        phases ``(L, len(PHASES))``, totals ``(L, len(OPS))``) to fill in place before the
        next call. ``detail``: ``(ops, cycles, events, readout_input)`` (per-layer lists, and
        an array or None), kept when the history keeps detail."""
        if self._staged == STAGE_ROWS:
            self.flush()
        if self.detail and detail is not None:
            self._steps.append((self.steps, *detail))
        rows = self._stage_rows[self._staged]
        self._staged += 1
        return rows

    def keep_detail(self, detail) -> None:
        """The detail (as :meth:`new_step`'s) of the step :meth:`new_step` added last, filled
        after its rows, kept when the history keeps detail."""
        if self.detail:
            self._steps.append((self.steps - 1, *detail))

    def flush(self) -> None:
        """Add the staged steps to the running totals, the kept rows and the log."""
        n, self._staged = self._staged, 0
        if not n:
            return
        block = [self._stage[name][:n] for name in STEP_COLUMNS]
        cycles, tails, critical, _, start, finish = block
        self.totals.add_block(cycles, tails, critical, start, finish)
        for name, rows in zip(STEP_COLUMNS, block):
            self.rows[name].extend(rows)
        if self.log is not None:
            self.log.extend(dict(zip(STEP_COLUMNS, block)))

    def kept_rows(self) -> dict[str, np.ndarray]:
        """The kept per-step rows, ``(N, ...)`` per column (oldest first)."""
        self.flush()
        return {name: rows.array() for name, rows in self.rows.items()}

    def kept_steps(self) -> np.ndarray:
        """Indices of the steps whose rows are kept (ascending)."""
        n = min(self.steps, self.window) if self.window is not None else self.steps
        return np.arange(self.steps - n, self.steps, dtype=np.int64)

    def recorded_steps(self) -> np.ndarray:
        """Indices of the steps whose detail is kept (ascending)."""
        return np.array([entry[0] for entry in self._steps], dtype=np.int64)

    def detail_arrays(self, layer: int, field: int, shape: tuple[int, ...]) -> np.ndarray:
        """``(N, *shape)`` of one layer's kept detail; ``field`` 1 ops, 2 cycles, 3 events."""
        rows = [entry[field][layer] for entry in self._steps]
        return np.stack(rows) if rows else np.zeros((0, *shape))

    def readout_inputs(self) -> list[np.ndarray]:
        return [entry[4] for entry in self._steps if entry[4] is not None]


# ============================================================================ the step log
#: Steps per chunk of a :class:`StepLog`.
LOG_CHUNK = 4096

_MEMBER = re.compile(r"^(?P<name>[a-z_]+)\.(?P<chunk>\d{6})\.npy$")


class StepLog:
    """Every step's layer rows streamed to an ``.npz`` file, :data:`LOG_CHUNK` steps at a
    time (memory: one chunk). One ``.npy`` member per column and chunk
    (``layer_cycles.000000.npy`` ...), plus ``meta.npy`` (layers, phases, operations); open
    it with :func:`read_step_log` (one array per column) or ``numpy.load``.

    Columns (``T`` steps, ``L`` layers, float64): ``layer_cycles``, ``layer_tails``,
    ``start_cycles``, ``finish_cycles`` ``(T, L)``; ``critical_phase_cycles`` ``(T, L,
    len(PHASES))``; ``op_totals`` ``(T, L, len(OPS))`` (operation counts summed over the
    layer's PEs)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        phases: tuple[str, ...],
        ops: tuple[str, ...],
        chunk: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.phases, self.ops = tuple(phases), tuple(ops)
        self.chunk = int(chunk or LOG_CHUNK)
        self._buffer: dict[str, list[np.ndarray]] = {name: [] for name in STEP_COLUMNS}
        self._buffered = 0
        self._chunks = 0
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED)
        self._write(
            "meta.npy",
            np.array([f"phases={','.join(self.phases)}", f"ops={','.join(self.ops)}"], dtype=str),
        )

    def _write(self, member: str, array: np.ndarray) -> None:
        with self._zip.open(member, "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)

    def extend(self, rows: dict[str, np.ndarray]) -> None:
        """Append a block of steps: per column ``(n, ...)``."""
        n = len(rows[STEP_COLUMNS[0]])
        done = 0
        while done < n:
            take = min(self.chunk - self._buffered, n - done)
            for name in STEP_COLUMNS:
                self._buffer[name].append(np.array(rows[name][done : done + take], np.float64))
            self._buffered += take
            done += take
            if self._buffered >= self.chunk:
                self.flush()

    def flush(self) -> None:
        if not self._buffered:
            return
        for name in STEP_COLUMNS:
            self._write(f"{name}.{self._chunks:06d}.npy", np.concatenate(self._buffer[name]))
            self._buffer[name] = []
        self._buffered = 0
        self._chunks += 1

    def close(self) -> None:
        if self._zip.fp is None:
            return
        self.flush()
        self._zip.close()

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_step_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The columns of a :class:`StepLog` file, one array per column (every step), plus
    ``"phases"`` and ``"ops"`` (the names of the last axis of ``critical_phase_cycles`` and
    ``op_totals``)."""
    with np.load(path, allow_pickle=False) as npz:
        chunks: dict[str, dict[int, np.ndarray]] = {}
        meta = None
        for member in npz.files:
            if member == "meta":
                meta = [str(x) for x in npz[member]]
                continue
            match = _MEMBER.match(member + ".npy")
            if match is None or match["name"] not in STEP_COLUMNS:
                raise ValueError(f"{path}: not a step log (unexpected member {member!r})")
            chunks.setdefault(match["name"], {})[int(match["chunk"])] = npz[member]
    if meta is None:
        raise ValueError(f"{path}: not a step log (no meta member)")
    out: dict[str, np.ndarray] = {}
    for name in STEP_COLUMNS:
        parts = chunks.get(name, {})
        out[name] = np.concatenate([parts[i] for i in sorted(parts)]) if parts else np.zeros((0,))
    fields = dict(item.split("=", 1) for item in meta)
    out["phases"] = np.array(fields["phases"].split(","))
    out["ops"] = np.array(fields["ops"].split(","))
    return out
