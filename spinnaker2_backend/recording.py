"""What a simulated run keeps per step, with memory bounded by what the user asks for.

A run of the simulator keeps two kinds of per-step figures (:class:`StepHistory`):

* the layer totals of every step: the slowest PE's cycles, the NoC tail, the slowest PE's
  phases and the operation counts summed over the layer's PEs, ``L x (2 + len(PHASES) +
  len(OPS))`` float64 per step (0.8 KB for three layers). The time profile (schedule,
  ticks, critical path), the energy, ``Run.step_totals`` and the plots are computed from
  them, exactly, for the whole run. They are stored in blocks of preallocated rows, not as
  one Python object per step.
* the per-step detail: per layer and step the per-PE operation counts and phase cycles,
  the events ``y`` of every unit, and the readout's input (from which the logits are
  computed). For the published LM on 150 PEs this is about 70 KB per step (plus 40 KB of
  logits), so a whole test split does not fit in memory. ``record=True`` keeps it for
  every step; ``record_window=N`` keeps it for the last ``N`` steps only (a ring of ``N``
  entries; memory does not grow with the run); ``record=False`` keeps none.

The per-PE totals of the whole run (``LayerCounters``, the per-PE phase profile, deadline
counts) are running sums in the simulator and never depend on the window.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["StepHistory", "check_window"]

#: Rows per preallocated block of the per-step layer totals.
BLOCK_ROWS = 4096


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


class _Rows:
    """Fixed-shape float64 rows appended one at a time into preallocated blocks."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.blocks: list[np.ndarray] = []
        self.count = 0

    def append(self, row: np.ndarray) -> None:
        self.next_row()[...] = row

    def next_row(self) -> np.ndarray:
        """The next row, to be filled in place (a view into the current block)."""
        i = self.count % BLOCK_ROWS
        if i == 0:
            self.blocks.append(np.empty((BLOCK_ROWS, *self.shape)))
        self.count += 1
        return self.blocks[-1][i]

    def array(self) -> np.ndarray:
        if not self.count:
            return np.zeros((0, *self.shape))
        if len(self.blocks) == 1:
            return self.blocks[0][: self.count].copy()
        return np.concatenate(self.blocks)[: self.count]


class StepHistory:
    """The per-step figures of a run (see the module docstring).

    Args:
        num_layers: layers of the network. num_phases, num_ops: rows of the per-PE arrays.
        detail: keep the per-step detail at all (``record``).
        window: keep it for the last ``window`` steps only (None: every step).
    """

    def __init__(
        self,
        num_layers: int,
        *,
        num_phases: int,
        num_ops: int,
        detail: bool,
        window: int | None,
    ) -> None:
        self.num_layers = num_layers
        self.layer_cycles = _Rows((num_layers,))
        self.layer_tails = _Rows((num_layers,))
        self.critical = _Rows((num_layers, num_phases))
        self.totals = _Rows((num_layers, num_ops))
        self.detail = bool(detail)
        self.window = check_window(window)
        # one entry per recorded step: (step, ops per layer, cycles per layer, y per layer,
        # readout input or None)
        self._steps: deque = deque(maxlen=self.window)

    @property
    def steps(self) -> int:
        """Steps added so far."""
        return self.layer_cycles.count

    def new_step(self, detail=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Start a step; returns its rows (layer cycles ``(L,)``, tails ``(L,)``, critical
        phases ``(L, len(PHASES))``, totals ``(L, len(OPS))``) to fill in place. ``detail``:
        ``(ops, cycles, events, readout_input)`` (per-layer lists, and an array or None),
        kept when the history keeps detail."""
        step = self.steps
        rows = (
            self.layer_cycles.next_row(),
            self.layer_tails.next_row(),
            self.critical.next_row(),
            self.totals.next_row(),
        )
        if self.detail and detail is not None:
            self._steps.append((step, *detail))
        return rows

    def recorded_steps(self) -> np.ndarray:
        """Indices of the steps whose detail is kept (ascending)."""
        return np.array([entry[0] for entry in self._steps], dtype=np.int64)

    def detail_arrays(self, layer: int, field: int, shape: tuple[int, ...]) -> np.ndarray:
        """``(N, *shape)`` of one layer's kept detail; ``field`` 1 ops, 2 cycles, 3 events."""
        rows = [entry[field][layer] for entry in self._steps]
        return np.stack(rows) if rows else np.zeros((0, *shape))

    def readout_inputs(self) -> list[np.ndarray]:
        return [entry[4] for entry in self._steps if entry[4] is not None]
