"""What every mapping stage shares: the error, the input sources and the PE slice.

A :class:`PESlice` (units ``[a, b)`` of one layer on one PE, with its routing key offset) is
what :mod:`~spinnaker2_backend.mapping.placement` produces and every later stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from spinnaker2_backend.formats import WEIGHT_FORMATS
from spinnaker2_backend.formats_int8 import QUANTIZED_WEIGHT_FORMATS

__all__ = [
    "ALL_WEIGHT_FORMATS",
    "FitAdvice",
    "HasSlices",
    "INPUT_SOURCES",
    "OVERFLOW_ACTIONS",
    "RECEIVE_POLICIES",
    "ReceiveOverflowError",
    "InputSource",
    "MappingError",
    "PESlice",
]


InputSource = Literal["dram", "host"]

#: Every weight format a mapping accepts: the float32 ones (``formats``) and the int8 ones
#: (``formats_int8``: ``csr-int8``, ``event-int8`` on the Arm core, ``mac-int8`` on the MAC
#: array), which need an int8 artifact.
ALL_WEIGHT_FORMATS: tuple[str, ...] = WEIGHT_FORMATS + QUANTIZED_WEIGHT_FORMATS

#: Where layer 0's input vectors come from: streamed from DRAM or sent by the host
#: (see :mod:`spinnaker2_backend.mapping`).
INPUT_SOURCES: tuple[str, ...] = ("dram", "host")


#: How a PE keeps the events it receives (``docs/spinnaker2.md``, "Receive policies"):
#:
#: ``dense``       a dense float32 vector per input: the step's input (``I`` words) and the
#:                 layer's ``y_{t-1}`` (``H`` words), zeroed each step;
#: ``reused``      one dense vector of ``max(I, H)`` words, used by the recurrent product
#:                 (as soon as the layer's own events are in) and then by the input product;
#: ``event-list``  a compact list of ``(source index, value)`` entries with a capacity
#:                 bound (from recorded activity or a user limit), reused by the two
#:                 products; events beyond the capacity are dropped and counted, or raise;
#: ``accumulate``  no buffer: each event is multiplied into the gate accumulators when it
#:                 arrives (needs ``weight_format="event"``, the column of the source).
RECEIVE_POLICIES: tuple[str, ...] = ("dense", "reused", "event-list", "bitmap16", "accumulate")
#: The receive policies that hold a given number of events (``receive_capacity``).
CAPPED_RECEIVE_POLICIES: tuple[str, ...] = ("event-list", "bitmap16")

#: What a full ``event-list`` does with one more event: ``raise`` (default) a
#: :class:`ReceiveOverflowError`, or ``drop`` it and count it (``events_dropped``).
OVERFLOW_ACTIONS: tuple[str, ...] = ("raise", "drop")


class ReceiveOverflowError(RuntimeError):
    """A PE received more events in a step than its ``event-list`` holds (``on_overflow=
    "raise"``); the message names the layer, the step, the counts and the fix."""


@dataclass(frozen=True)
class FitAdvice:
    """One "to fit, do X" of a :class:`MappingError`, in a form a program can follow.

    Attributes:
        kind: ``"max_units_per_pe"`` (more PEs), ``"chips"`` (more chips), ``"sparsity"``
            (prune more), ``"weight_format"``, ``"record_steps"``, ``"batch_size"``.
        change: the options to pass to :func:`~spinnaker2_backend.mapping.map_network`
            (``sparsity`` is the network's: re-prune it, e.g. ``synthetic_network(...,
            sparsity=...)``).
        text: the advice as the message prints it.
    """

    kind: str
    change: dict[str, Any] = field(default_factory=dict)
    text: str = ""


class MappingError(ValueError):
    """A network does not fit the machine (or cannot be mapped as asked).

    The message names the PE, the memory region, bytes needed vs available, and what to
    change (more PEs / ``max_units_per_pe``, more pruning, another weight format, fewer
    recorded steps, a smaller batch, more chips); :attr:`advice` holds the same as
    :class:`FitAdvice` items a program can apply.
    """

    def __init__(self, message: str, advice: tuple[FitAdvice, ...] | list[FitAdvice] = ()):
        super().__init__(message)
        self.advice = tuple(advice)


@dataclass(frozen=True)
class PESlice:
    """Units ``[unit_start, unit_stop)`` of one layer, computed by one PE.

    Attributes:
        layer: layer number.
        index_in_layer: 0.. number of slices of the layer - 1 (unit order).
        pe: global PE index on the machine.
        chip: chip number.
        pe_id: on-chip PE id (``qx << 5 | qy << 2 | pe``).
        qpe: ``(qx, qy)``.
        unit_start, unit_stop: the units.
        key_offset: routing key of the slice's first unit; unit ``u`` sends with key
            ``key_offset + (u - unit_start)``.
    """

    layer: int
    index_in_layer: int
    pe: int
    chip: int
    pe_id: int
    qpe: tuple[int, int]
    unit_start: int
    unit_stop: int
    key_offset: int

    @property
    def num_units(self) -> int:
        return self.unit_stop - self.unit_start

    @property
    def pe_in_qpe(self) -> int:
        return self.pe_id & 3

    @property
    def units(self) -> range:
        return range(self.unit_start, self.unit_stop)

    def key(self, unit: int) -> int:
        """Routing key of layer unit ``unit`` (``key_offset + local index``)."""
        if not self.unit_start <= unit < self.unit_stop:
            raise ValueError(f"unit {unit} is not on this PE ({self.unit_start}..{self.unit_stop})")
        return self.key_offset + unit - self.unit_start

    def label(self) -> str:
        """Readable location, e.g. ``PE 12 (chip 0, QPE (2,1) core 0; layer 0 units 0..26)``."""
        return (
            f"PE {self.pe} (chip {self.chip}, QPE ({self.qpe[0]},{self.qpe[1]}) core "
            f"{self.pe_in_qpe}; layer {self.layer} units {self.unit_start}..{self.unit_stop - 1})"
        )


class HasSlices(Protocol):
    """Anything that lists its PE slices (a :class:`~spinnaker2_backend.mapping.Placement`)."""

    @property
    def slices(self) -> list[PESlice]: ...


def check_receive_policy(receive_policy: str, weight_format: str) -> None:
    """Raise :class:`MappingError` for an unknown receive policy or one the weight format
    cannot use (``accumulate`` needs the per-source columns of ``weight_format="event"``)."""
    if receive_policy not in RECEIVE_POLICIES:
        raise MappingError(
            f"unknown receive policy {receive_policy!r}; choose one of "
            f"{', '.join(RECEIVE_POLICIES)}"
        )
    if receive_policy == "bitmap16" and weight_format != "csr":
        raise MappingError(
            "receive policy 'bitmap16' tests a source's bit while walking CSR rows: use "
            f"weight_format='csr' (got {weight_format!r}) or another receive policy"
        )
    if receive_policy == "accumulate" and weight_format != "event":
        raise MappingError(
            f"receive policy 'accumulate' multiplies each event into the accumulators as it "
            f"arrives, which needs the column of its source: use weight_format='event' "
            f"(got {weight_format!r}) or another receive policy (dense, reused, event-list; "
            f"the int8 formats sum in column order, not in arrival order)"
        )


def check_batch_size(batch_size) -> int:
    """A batch size >= 1 as an int, else :class:`MappingError`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise MappingError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise MappingError(f"batch_size must be >= 1 (samples a PE keeps), got {batch_size}")
    return int(batch_size)


def check_options(weight_format: str, record_steps: int, input_source: str) -> None:
    """Raise :class:`MappingError` for an unknown weight format or input source, or a bad
    ``record_steps`` (shared by the stages and :func:`map_network`)."""
    if weight_format not in ALL_WEIGHT_FORMATS:
        raise MappingError(
            f"unknown weight format {weight_format!r}; choose one of "
            f"{', '.join(ALL_WEIGHT_FORMATS)}"
        )
    if not isinstance(record_steps, int | np.integer) or record_steps < 0:
        raise MappingError(f"record_steps must be an integer >= 0, got {record_steps!r}")
    if input_source not in INPUT_SOURCES:
        raise MappingError(
            f"unknown input_source {input_source!r}; choose one of {', '.join(INPUT_SOURCES)}"
        )
