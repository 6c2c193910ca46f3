"""What one mapped layer did in one simulated step: :class:`LayerStepResult`.

Returned by :meth:`spinnaker2_backend.layer_simulator.LayerSimulator.step` (and re-exported
there and by :mod:`spinnaker2_backend.simulator`); the totals are read from the per-PE
operation counts (:data:`spinnaker2_backend.timing.OPS`).
"""

from __future__ import annotations

import numpy as np

from spinnaker2_backend.timing import OP_INDEX as _I
from spinnaker2_backend.timing import PHASES

__all__ = ["LayerStepResult", "OpTotals"]


class OpTotals:
    """The headline counts of a layer, derived from its per-operation totals: a subclass
    defines ``total(name)`` (``name`` one of :data:`spinnaker2_backend.timing.OPS`, summed
    over the layer's PEs). One definition for a step's result and for the running counters."""

    __slots__ = ()

    def total(self, name: str) -> int:
        raise NotImplementedError

    @property
    def events(self) -> int:
        return self.total("events")

    @property
    def packets_sent(self) -> int:
        return self.total("packets_sent")

    @property
    def packets_chip_to_chip(self) -> int:
        return self.total("packets_sent_chip")

    @property
    def packets_on_chip(self) -> int:
        return self.packets_sent - self.packets_chip_to_chip

    @property
    def packets_received(self) -> int:
        return self.total("packets_received")

    @property
    def macs(self) -> int:
        return self.total("macs") + self.total("readout_macs")

    @property
    def nonzeros_walked(self) -> int:
        return self.total("input_weights") + self.total("recurrent_weights")

    @property
    def dram_bytes(self) -> int:
        return self.total("dram_bytes") + self.total("readout_dram_bytes")


class LayerStepResult(OpTotals):
    """What one layer did in one step (all PEs of the layer).

    Attributes:
        y: ``(H,)`` graded events of the layer (the layer's output).
        events: units that fired.
        cycles: phase name -> ``(P,)`` cycles of each PE.
        phase_cycles: ``(len(PHASES), P)`` the same as an array.
        ops: ``(len(OPS), P)`` operation counts per PE.
        busy_cycles: ``(P,)`` cycles per PE (all phases).
        layer_cycles: cycles of the slowest PE (when the layer's step ends).
        noc_tail_cycles: latency of the last packet after that.
        events, packets, macs, nonzeros walked, DRAM bytes: see :class:`OpTotals`
            (``dma_bytes``: the DRAM bytes, by their old name).
        time_done_us: ``(P,)`` when each PE finished, from the layer's start.
        deadline_missed: ``(P,)`` bool, PEs that ran past ``tick_us`` (all False when no tick).
    """

    __slots__ = (
        "y",
        "ops",
        "phase_cycles",
        "busy_cycles",
        "layer_cycles",
        "noc_tail_cycles",
        "time_done_us",
        "deadline_missed",
    )

    def __init__(
        self,
        *,
        y: np.ndarray,
        ops: np.ndarray,
        phase_cycles: np.ndarray,
        busy_cycles: np.ndarray,
        layer_cycles: float,
        noc_tail_cycles: float,
        time_done_us: np.ndarray,
        deadline_missed: np.ndarray,
    ) -> None:
        self.y = y
        self.ops = ops
        self.phase_cycles = phase_cycles
        self.busy_cycles = busy_cycles
        self.layer_cycles = layer_cycles
        self.noc_tail_cycles = noc_tail_cycles
        self.time_done_us = time_done_us
        self.deadline_missed = deadline_missed

    def total(self, name: str) -> int:
        return int(round(float(self.ops[_I[name]].sum())))

    @property
    def cycles(self) -> dict[str, np.ndarray]:
        return {name: self.phase_cycles[i] for i, name in enumerate(PHASES)}

    @property
    def dma_bytes(self) -> int:
        """DRAM bytes read or written by DMA (:attr:`dram_bytes`)."""
        return self.dram_bytes

    def __repr__(self) -> str:
        return (
            f"LayerStepResult(events={self.events}, layer_cycles={self.layer_cycles:.0f}, "
            f"packets_on_chip={self.packets_on_chip}, "
            f"packets_chip_to_chip={self.packets_chip_to_chip}, macs={self.macs})"
        )
