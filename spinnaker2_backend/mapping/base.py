"""What every mapping stage shares: the error, the input sources and the PE slice.

A :class:`PESlice` (units ``[a, b)`` of one layer on one PE, with its routing key offset) is
what :mod:`~spinnaker2_backend.mapping.placement` produces and every later stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from spinnaker2_backend.formats import WEIGHT_FORMATS

__all__ = [
    "HasSlices",
    "INPUT_SOURCES",
    "InputSource",
    "MappingError",
    "PESlice",
]


InputSource = Literal["dram", "host"]

#: Where layer 0's input vectors come from: streamed from DRAM or sent by the host
#: (see :mod:`spinnaker2_backend.mapping`).
INPUT_SOURCES: tuple[str, ...] = ("dram", "host")


class MappingError(ValueError):
    """A network does not fit the machine (or cannot be mapped as asked).

    The message names the PE, the memory region, bytes needed vs available, and what to
    change (more PEs / ``max_units_per_pe``, more pruning, another weight format, fewer
    recorded steps, more chips).
    """


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


def check_options(weight_format: str, record_steps: int, input_source: str) -> None:
    """Raise :class:`MappingError` for an unknown weight format or input source, or a bad
    ``record_steps`` (shared by the stages and :func:`map_network`)."""
    if weight_format not in WEIGHT_FORMATS:
        raise MappingError(
            f"unknown weight format {weight_format!r}; choose one of {', '.join(WEIGHT_FORMATS)}"
        )
    if not isinstance(record_steps, int | np.integer) or record_steps < 0:
        raise MappingError(f"record_steps must be an integer >= 0, got {record_steps!r}")
    if input_source not in INPUT_SOURCES:
        raise MappingError(
            f"unknown input_source {input_source!r}; choose one of {', '.join(INPUT_SOURCES)}"
        )
