"""The machine: one or several SpiNNaker2 chips, their PEs, QPEs and hop distances.

Addressing (``docs/spinnaker2.md``):

* A chip has 38 quad-PEs (QPEs) at grid coordinates ``qx`` 1..7, ``qy`` 1..6 with no QPE at
  (4,3), (4,4), (7,3), (7,4); each QPE has 4 PEs, so 152 application PEs. The management
  core is not an application PE and is not enumerated.
* The on-chip PE id packs the coordinates: ``id = qx << 5 | qy << 2 | pe`` so that
  ``qx = (id >> 5) & 7``, ``qy = (id >> 2) & 7``, ``pe = id & 3``.
* The machine numbers its PEs globally: ``index = chip * pes_per_chip + k`` where ``k``
  enumerates the chip's QPEs in :attr:`ChipSpec.qpe_coordinates` order (``qy`` then ``qx``)
  and the PEs inside each QPE.

Distances:

* On chip, packets follow XY routing on the QPE grid: ``|dqx| + |dqy|`` hops between QPEs
  (0 inside a QPE). The hole positions are assumed passable by the NoC [C].
* Between chips, a separate count of chip-to-chip link hops. Chips sit on a 2-D grid
  (a board's 48 chips on :attr:`ChipSpec.board_chip_grid`, 8 x 6) connected as a triangular
  mesh with 6 links per chip (neighbours (+-1, 0), (0, +-1), (+1, +1), (-1, -1)) [C]: the
  board's real wiring is not modelled. For a packet that leaves its chip the on-chip part is
  counted as the XY distance between the two QPE coordinates (as if the link ports were at
  the source QPE) [C].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from spinnaker2_backend.constants import ChipSpec

__all__ = [
    "Hops",
    "Machine",
    "PECoordinates",
    "pe_id_from_coordinates",
    "pe_id_to_coordinates",
    "triangular_mesh_hops",
]


def pe_id_from_coordinates(qx: int, qy: int, pe: int) -> int:
    """On-chip PE id of PE ``pe`` (0..3) of QPE ``(qx, qy)``: ``qx << 5 | qy << 2 | pe``."""
    if not (0 <= qx <= 7 and 0 <= qy <= 7 and 0 <= pe <= 3):
        raise ValueError(f"PE coordinates out of range: qx={qx}, qy={qy}, pe={pe}")
    return (qx << 5) | (qy << 2) | pe


def pe_id_to_coordinates(pe_id: int) -> tuple[int, int, int]:
    """``(qx, qy, pe)`` of an on-chip PE id: ``((id >> 5) & 7, (id >> 2) & 7, id & 3)``."""
    if not 0 <= pe_id <= 0xFF:
        raise ValueError(f"an on-chip PE id is 8 bits (0..255), got {pe_id}")
    return (pe_id >> 5) & 7, (pe_id >> 2) & 7, pe_id & 3


def triangular_mesh_hops(dx, dy):
    """Hops for a displacement ``(dx, dy)`` on a triangular mesh whose links go along x, y
    and the (+1, +1) diagonal: ``max(|dx|, |dy|)`` when ``dx`` and ``dy`` have the same sign,
    else ``|dx| + |dy|``. Works on ints and numpy arrays."""
    same_sign = (dx * dy) > 0
    adx, ady = abs(dx), abs(dy)
    if isinstance(same_sign, bool | np.bool_):
        return int(max(adx, ady) if same_sign else adx + ady)
    return np.where(same_sign, np.maximum(adx, ady), adx + ady)


class PECoordinates(NamedTuple):
    """Where a PE is.

    Attributes:
        index: global PE index on the machine (0 .. num_pes - 1).
        chip: chip number (0 .. num_chips - 1).
        pe_id: on-chip PE id (``qx << 5 | qy << 2 | pe``).
        qpe: ``(qx, qy)`` of its QPE.
        pe_in_qpe: 0..3 inside the QPE.
    """

    index: int
    chip: int
    pe_id: int
    qpe: tuple[int, int]
    pe_in_qpe: int


class Hops(NamedTuple):
    """Distance a packet travels: on-chip NoC hops between QPEs, and chip-to-chip hops."""

    noc: int
    chip: int


@dataclass(frozen=True, init=False)
class Machine:
    """One or several SpiNNaker2 chips.

    Args:
        chips: number of chips (1 by default).
        spec: the chip figures (:class:`ChipSpec` defaults when omitted).
        chip_grid: ``(width, height)`` of the grid the chips sit on for hop counts; by default
            the board grid (8 x 6) for up to 48 chips, else a near-square grid [C].

    Examples:
        >>> Machine().num_pes
        152
        >>> Machine.board().num_chips
        48
    """

    chips: int
    spec: ChipSpec
    chip_grid: tuple[int, int]

    def __init__(
        self,
        *,
        chips: int = 1,
        spec: ChipSpec | None = None,
        chip_grid: tuple[int, int] | None = None,
    ) -> None:
        spec = spec if spec is not None else ChipSpec()
        if not isinstance(chips, int) or chips < 1:
            raise ValueError(f"a machine needs at least one chip, got chips={chips!r}")
        if chips > spec.max_chips:
            raise ValueError(
                f"chips={chips} exceeds the largest SpiNNaker2 machine ({spec.max_chips} chips)"
            )
        if chip_grid is None:
            width, height = spec.board_chip_grid
            if chips > width * height:
                width = 1
                while width * width < chips:
                    width += 1
                height = -(-chips // width)
            chip_grid = (width, height)
        if chip_grid[0] * chip_grid[1] < chips:
            raise ValueError(f"chip_grid {chip_grid} has fewer than {chips} positions")
        object.__setattr__(self, "chips", chips)
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "chip_grid", tuple(chip_grid))

    @classmethod
    def board(cls, *, boards: int = 1, spec: ChipSpec | None = None) -> Machine:
        """A machine of ``boards`` boards of 48 chips each."""
        spec = spec if spec is not None else ChipSpec()
        if boards < 1:
            raise ValueError(f"boards must be >= 1, got {boards}")
        return cls(chips=boards * spec.chips_per_board, spec=spec)

    # ------------------------------------------------------------------ sizes
    @property
    def num_chips(self) -> int:
        return self.chips

    @cached_property
    def pes_per_chip(self) -> int:
        return self.spec.pes_per_chip

    @property
    def num_pes(self) -> int:
        """Application PEs on the machine (152 per chip)."""
        return self.chips * self.pes_per_chip

    @property
    def num_qpes(self) -> int:
        return self.chips * self.spec.qpes_per_chip

    # ------------------------------------------------------------ enumeration
    @cached_property
    def _chip_pes(self) -> tuple[tuple[tuple[int, int], int, int], ...]:
        """Per chip-local PE number: ``(qpe, pe_in_qpe, pe_id)``."""
        out = []
        for qx, qy in self.spec.qpe_coordinates:
            for p in range(self.spec.pes_per_qpe):
                out.append(((qx, qy), p, pe_id_from_coordinates(qx, qy, p)))
        return tuple(out)

    @cached_property
    def _local_of_pe_id(self) -> dict[int, int]:
        return {pe_id: k for k, (_, _, pe_id) in enumerate(self._chip_pes)}

    def pe(self, index: int) -> PECoordinates:
        """Coordinates of the PE with global ``index``."""
        if not 0 <= index < self.num_pes:
            raise IndexError(f"PE index {index} out of range 0..{self.num_pes - 1}")
        chip, local = divmod(index, self.pes_per_chip)
        qpe, pe_in_qpe, pe_id = self._chip_pes[local]
        return PECoordinates(index, chip, pe_id, qpe, pe_in_qpe)

    def pes(self) -> list[PECoordinates]:
        """Every application PE of the machine, in global index order."""
        return [self.pe(i) for i in range(self.num_pes)]

    def index_of(self, chip: int, pe_id: int) -> int:
        """Global index of on-chip PE ``pe_id`` of ``chip`` (raises for absent PEs)."""
        if not 0 <= chip < self.chips:
            raise IndexError(f"chip {chip} out of range 0..{self.chips - 1}")
        local = self._local_of_pe_id.get(pe_id)
        if local is None:
            qx, qy, p = pe_id_to_coordinates(pe_id)
            raise ValueError(
                f"PE id {pe_id} (QPE ({qx},{qy}), PE {p}) does not exist on a chip (holes at "
                f"{list(self.spec.qpe_holes)}, QPE grid qx {self.spec.qpe_x_range}, qy "
                f"{self.spec.qpe_y_range})"
            )
        return chip * self.pes_per_chip + local

    def index_of_qpe(self, chip: int, qpe: tuple[int, int], pe_in_qpe: int) -> int:
        """Global index of PE ``pe_in_qpe`` of QPE ``qpe`` on ``chip``."""
        return self.index_of(chip, pe_id_from_coordinates(qpe[0], qpe[1], pe_in_qpe))

    # -------------------------------------------------------------- distances
    def chip_position(self, chip: int) -> tuple[int, int]:
        """``(cx, cy)`` of a chip on the chip grid (row-major) [C]."""
        if not 0 <= chip < self.chips:
            raise IndexError(f"chip {chip} out of range 0..{self.chips - 1}")
        cy, cx = divmod(chip, self.chip_grid[0])
        return cx, cy

    @staticmethod
    def qpe_hops(a: tuple[int, int], b: tuple[int, int]) -> int:
        """NoC hops between two QPEs with XY routing: ``|dqx| + |dqy|``."""
        return abs(a[0] - b[0]) + abs(a[1] - b[1])

    @staticmethod
    def xy_route(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
        """QPEs a packet visits from ``a`` to ``b`` (both included): along x first, then y."""
        path = [a]
        x, y = a
        while x != b[0]:
            x += 1 if b[0] > x else -1
            path.append((x, y))
        while y != b[1]:
            y += 1 if b[1] > y else -1
            path.append((x, y))
        return path

    def chip_hops(self, chip_a: int, chip_b: int) -> int:
        """Chip-to-chip link hops on a triangular mesh (6 links per chip) [C]."""
        if chip_a == chip_b:
            return 0
        ax, ay = self.chip_position(chip_a)
        bx, by = self.chip_position(chip_b)
        return triangular_mesh_hops(bx - ax, by - ay)

    def hops(self, pe_a: int, pe_b: int) -> Hops:
        """Hops from PE ``pe_a`` to PE ``pe_b`` (global indices)."""
        a, b = self.pe(pe_a), self.pe(pe_b)
        return Hops(self.qpe_hops(a.qpe, b.qpe), self.chip_hops(a.chip, b.chip))

    def __repr__(self) -> str:
        return f"Machine(chips={self.chips}, pes={self.num_pes})"
